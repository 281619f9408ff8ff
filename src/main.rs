#![forbid(unsafe_code)]

use microbox::cli::{self, Command};
use microbox::spec::LogLevel;
use microbox::{log, sandbox};

/// microbox's own failure, usage errors included (as `docker run`, `env`, `chroot`).
const EXIT_MICROBOX: i32 = 125;

fn main() {
    microbox::error::exit_125_on_panic();
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if microbox::oci::is_oci_call(&args) {
        #[allow(clippy::exit)] // the process itself, not a clone3 child
        std::process::exit(microbox::oci::main(args));
    }
    microbox::profile::configure();
    microbox::profile::mark("supervisor", "exec");
    let code = match cli::parse(args.clone()) {
        Ok(Command::Help) => {
            print!("{}", cli::help_text());
            0
        }
        Ok(Command::Version) => {
            use microbox::security::syscalls::{highest, Arch};
            println!("{}", microbox::cli::version_line());
            // What the seccomp filter was reviewed against: auditors and the
            // tests read it; every other number gets ENOSYS.
            println!(
                "seccomp: {} syscall table of Linux {} (highest {}); numbers it does not name get ENOSYS",
                Arch::NATIVE,
                Arch::NATIVE.table_kernel(),
                highest(Arch::NATIVE)
            );
            0
        }
        Ok(Command::NetCleanup { bridge }) => match sandbox::clean_network(&bridge) {
            Ok(()) => 0,
            Err(err) => {
                log::error(&err.to_string(), &[]);
                EXIT_MICROBOX
            }
        },
        Ok(Command::Run(spec)) => {
            log::configure(spec.log_level, spec.log_format);
            match sandbox::run(&spec) {
                Ok(status) => status,
                Err(err) => {
                    log::error(&err.to_string(), &[]);
                    EXIT_MICROBOX
                }
            }
        }
        Err(err) => {
            log::configure(LogLevel::Error, cli::requested_log_format(&args));
            log::error(&err.to_string(), &[]);
            EXIT_MICROBOX
        }
    };
    #[allow(clippy::exit)] // the parent process, not a clone3 child
    std::process::exit(code);
}
