//! probe: a small static program that microbox's integration tests run inside a
//! sandbox. Each subcommand looks at one thing (fds, capabilities, a syscall, mount
//! flags, ...) and prints `key=value` lines, one pair per line, for the tests to parse.
//! Expected failures are reported as data (`open=EROFS`), never as a panic.
//!
//! Every syscall it tries is chosen so that it cannot change the system even when it
//! is allowed: invalid magic numbers, null pointers, nonexistent paths, query-only
//! forms. Each attempt runs in a forked child, so a seccomp kill (SIGSYS) is reported
//! as `result=SIGSYS` instead of ending the probe.

// A test tool that talks to the kernel in raw integers: the casts between the
// kernel's register-sized values and libc's C types are the point, not a hazard.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: probe SUBCOMMAND [ARGS] [+ SUBCOMMAND [ARGS]]...
  fds | pid | caps | seccomp | ids | idmap | hostname | env | net | procs | ns
  connect IP:PORT | udp IP:PORT | udp-stream IP:PORT SECS | serve IP:PORT SECS
  syscall NAME... | x32 NAME... | int80 NAME... | syscalls
  mknod-block [DIR] | open PATH ro|rw|w|create | write PATH TEXT | read PATH
  stat PATH | mounts PATH | mountinfo | cwd [NAME] | exe | tiocsti | cgroup
  inodes DIR | setgroups GID,GID...
  sleep-trap SIG | sleep SECS | zombie | orphan SECS [MARKER] | exit N
  kill-self SIG | exec-as UID GID PROG [ARGS...] | fill PATH MIB
  alloc MIB | forks N | open-many | spin SECS [THREADS]
  seccomp-listener | deny-flood N
  pty | lsdev DIR | cgroup-mount DIR CONTROLLER
  unix-connect PATH|@ABSTRACT | proc-writable | vsock | inotify N SECS
  setid-create DIR | numbers LO HI | proc-routes DIR | proc-root-only
  ptys MAX | tcp-hold MIB CONNS
  opens ro|rw|w PATH... | entries DIR | signal PID SIG... | mask-attacks DIR | \
  chroot-escape DIR MARKER";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `probe A ARGS + B ARGS`: each subcommand in turn, like `a; b` in a shell;
    // the status is the first non-zero one.
    let code = args
        .split(|a| a == "+")
        .map(run)
        .fold(0, |first, code| if first != 0 { first } else { code });
    let _ = std::io::stdout().flush();
    #[allow(clippy::exit)] // the probe is an ordinary process, not a clone3 child
    std::process::exit(code);
}

fn run(args: &[String]) -> i32 {
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return 2;
    };
    let rest = &args[1..];
    let arg = |i: usize| rest.get(i).map(String::as_str);
    match (cmd.as_str(), arg(0), arg(1)) {
        ("fds", _, _) => fds(),
        ("pid", _, _) => pid(),
        ("caps", _, _) => status_fields(&["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]),
        ("seccomp", _, _) => status_fields(&["Seccomp", "Seccomp_filters", "NoNewPrivs"]),
        ("ids", _, _) => ids(),
        ("idmap", _, _) => idmap(),
        ("hostname", _, _) => hostname(),
        ("env", _, _) => env(),
        ("net", _, _) => net(),
        ("connect", Some(addr), _) => connect(addr),
        ("udp", Some(addr), _) => udp(addr),
        ("udp-stream", Some(addr), Some(secs)) => with_number(secs, |s| udp_stream(addr, s)),
        ("serve", Some(addr), secs) => serve(addr, secs.and_then(|s| s.parse().ok()).unwrap_or(30)),
        ("procs", _, _) => procs(),
        ("ns", _, _) => ns(),
        ("syscalls", _, _) => {
            for call in CALLS {
                out("name", call.name);
            }
            0
        }
        ("syscall", Some(_), _) => syscalls(rest, Abi::Native),
        ("x32", Some(_), _) => syscalls(rest, Abi::X32),
        ("int80", Some(_), _) => syscalls(rest, Abi::Int80),
        ("mknod-block", dir, _) => mknod_block(dir.unwrap_or("/tmp")),
        ("open", Some(path), Some(mode)) => open(path, mode),
        ("opens", Some(mode), Some(_)) => opens(mode, &rest[1..]),
        ("entries", Some(dir), _) => entries(dir),
        ("inodes", Some(dir), _) => inodes(dir),
        ("setgroups", Some(list), _) => set_groups(list),
        ("signal", Some(pid), Some(_)) => signal(pid, &rest[1..]),
        ("mask-attacks", Some(dir), _) => mask_attacks(dir),
        ("write", Some(path), Some(text)) => write(path, text),
        ("read", Some(path), _) => read(path),
        ("stat", Some(path), _) => stat(path),
        ("mounts", Some(path), _) => mounts(path),
        ("mountinfo", _, _) => mountinfo(),
        ("cwd", name, _) => cwd(name),
        ("exe", _, _) => exe(),
        ("tiocsti", _, _) => tiocsti(),
        ("cgroup", _, _) => cgroup(),
        ("sleep-trap", Some(sig), _) => with_signal(sig, sleep_trap),
        ("sleep", Some(secs), _) => with_number(secs, |s| {
            std::thread::sleep(Duration::from_secs(s));
            0
        }),
        ("zombie", _, _) => zombie(),
        ("orphan", Some(secs), _) => with_number(secs, orphan),
        ("exit", Some(n), _) => with_number(n, |n| (n & 0xff) as i32),
        ("kill-self", Some(sig), _) => with_signal(sig, kill_self),
        ("exec-as", Some(uid), Some(gid)) => exec_as(uid, gid, &rest[2..]),
        ("fill", Some(path), Some(mib)) => with_number(mib, |m| fill(path, m)),
        ("pty", _, _) => pty(),
        ("lsdev", Some(dir), _) => lsdev(dir),
        ("cgroup-mount", Some(dir), Some(ctrl)) => cgroup_mount(dir, ctrl),
        ("unix-connect", Some(addr), _) => unix_connect(addr),
        ("proc-writable", _, _) => proc_writable(),
        ("vsock", _, _) => vsock(),
        ("inotify", Some(n), Some(secs)) => {
            with_number(n, |n| with_number(secs, |s| inotify(n, s)))
        }
        ("setid-create", Some(dir), _) => setid_create(dir),
        ("proc-routes", Some(dir), _) => proc_routes(dir),
        ("chroot-escape", Some(dir), Some(marker)) => chroot_escape(dir, marker),
        ("proc-root-only", _, _) => proc_root_only(),
        ("ptys", Some(max), _) => with_number(max, ptys),
        ("tcp-hold", Some(mib), Some(conns)) => {
            with_number(mib, |m| with_number(conns, |c| tcp_hold(m, c)))
        }
        ("numbers", Some(lo), Some(hi)) => {
            with_number(lo, |lo| with_number(hi, |hi| numbers(lo, hi)))
        }
        ("alloc", Some(mib), _) => with_number(mib, alloc),
        ("forks", Some(n), _) => with_number(n, forks),
        ("open-many", _, _) => open_many(),
        ("seccomp-listener", _, _) => seccomp_listener(),
        ("deny-flood", Some(n), _) => with_number(n, deny_flood),
        ("spin", Some(secs), threads) => with_number(secs, |s| {
            with_number(threads.unwrap_or("2"), |t| spin(s, t))
        }),
        _ => {
            eprintln!("probe: bad arguments {args:?}\n{USAGE}");
            2
        }
    }
}

// ---------------------------------------------------------------------------
// output helpers

fn out(key: &str, value: impl std::fmt::Display) {
    println!("{key}={value}");
}

fn flush() {
    let _ = std::io::stdout().flush();
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errno_name(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::EPIPE => "EPIPE",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOKEY => "ENOKEY",
        libc::EKEYREJECTED => "EKEYREJECTED",
        libc::EDQUOT => "EDQUOT",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        _ => return format!("E{e}"),
    };
    name.to_string()
}

const SIGNALS: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

fn signal_name(sig: i32) -> String {
    match usize::try_from(sig - 1).ok().and_then(|i| SIGNALS.get(i)) {
        Some(name) => format!("SIG{name}"),
        None => format!("SIG{sig}"),
    }
}

/// `TERM`, `SIGTERM` or `15`.
fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let bare = s.strip_prefix("SIG").unwrap_or(s);
    SIGNALS
        .iter()
        .position(|n| n.eq_ignore_ascii_case(bare))
        .map(|i| i as i32 + 1)
}

fn with_signal(s: &str, f: impl FnOnce(i32) -> i32) -> i32 {
    match parse_signal(s) {
        Some(sig) => f(sig),
        None => {
            eprintln!("probe: unknown signal {s:?}");
            2
        }
    }
}

fn with_number(s: &str, f: impl FnOnce(u64) -> i32) -> i32 {
    match s.parse::<u64>() {
        Ok(n) => f(n),
        Err(_) => {
            eprintln!("probe: not a number: {s:?}");
            2
        }
    }
}

fn cstring(s: &str) -> Option<CString> {
    let c = CString::new(s).ok();
    if c.is_none() {
        eprintln!("probe: NUL byte in {s:?}");
    }
    c
}

fn io_errno(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => errno_name(n),
        None => format!("{:?}", e.kind()),
    }
}

// ---------------------------------------------------------------------------
// process facts

/// The open fds, minus the one the listing itself uses.
fn fds() -> i32 {
    let own_dir = format!("/proc/{}/fd", std::process::id());
    let entries = match std::fs::read_dir("/proc/self/fd") {
        Ok(e) => e,
        Err(e) => {
            out("fds_error", io_errno(&e));
            return 1;
        }
    };
    let mut fds = Vec::new();
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let target = std::fs::read_link(entry.path())
            .map(|t| t.display().to_string())
            .unwrap_or_else(|e| format!("?{}", io_errno(&e)));
        if target == own_dir {
            continue;
        }
        fds.push((fd, target));
    }
    fds.sort();
    let list: Vec<String> = fds.iter().map(|(fd, _)| fd.to_string()).collect();
    out("fds", list.join(","));
    for (fd, target) in fds {
        out(&format!("fd.{fd}"), target);
    }
    0
}

fn pid() -> i32 {
    // SAFETY: these calls take no pointers and cannot fail in a way that matters here.
    let (pid, ppid, sid, pgid) = unsafe {
        (
            libc::getpid(),
            libc::getppid(),
            libc::getsid(0),
            libc::getpgrp(),
        )
    };
    out("pid", pid);
    out("ppid", ppid);
    out("sid", sid);
    out("pgid", pgid);
    0
}

fn status_fields(keys: &[&str]) -> i32 {
    let status = match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => s,
        Err(e) => {
            out("status_error", io_errno(&e));
            return 1;
        }
    };
    for line in status.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if keys.contains(&k) {
                out(k, v.trim());
            }
        }
    }
    0
}

fn ids() -> i32 {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are to live locals of the right type.
    unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
    out("uid", r);
    out("euid", e);
    out("suid", s);
    // SAFETY: as above.
    unsafe { libc::getresgid(&mut r, &mut e, &mut s) };
    out("gid", r);
    out("egid", e);
    out("sgid", s);
    0
}

fn idmap() -> i32 {
    for file in ["uid_map", "gid_map", "setgroups"] {
        match std::fs::read_to_string(format!("/proc/self/{file}")) {
            Ok(text) => {
                for line in text.lines() {
                    out(file, line.split_whitespace().collect::<Vec<_>>().join(" "));
                }
            }
            Err(e) => out(file, format!("?{}", io_errno(&e))),
        }
    }
    ids()
}

fn hostname() -> i32 {
    // SAFETY: utsname is plain data; uname fills it and cannot overrun it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is to a live, correctly sized local.
    if unsafe { libc::uname(&mut uts) } != 0 {
        out("hostname_error", errno_name(errno()));
        return 1;
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            // c_char is i8 on x86_64 and u8 on aarch64.
            .map(|&c| c.to_ne_bytes()[0])
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    out("hostname", field(&uts.nodename));
    out("domainname", field(&uts.domainname));
    0
}

fn env() -> i32 {
    let mut vars: Vec<_> = std::env::vars_os().collect();
    vars.sort();
    for (k, v) in vars {
        out(&format!("env.{}", k.to_string_lossy()), v.to_string_lossy());
    }
    0
}

/// Interfaces of this process's network namespace (/proc/net follows the netns).
fn net() -> i32 {
    let text = match std::fs::read_to_string("/proc/net/dev") {
        Ok(t) => t,
        Err(e) => {
            out("net_error", io_errno(&e));
            return 1;
        }
    };
    let mut links: Vec<&str> = text
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim()))
        .collect();
    links.sort_unstable();
    out("links", links.join(","));
    0
}

/// A TCP connect to ADDR (ip:port) with a 2 s timeout: `connect=ok` (with the
/// local address it left from, and the peer's first line) or the errno. Tests
/// only ever give loopback addresses or addresses in namespaces they made.
fn connect(addr: &str) -> i32 {
    let Ok(addr) = addr.parse::<std::net::SocketAddr>() else {
        out("connect", "bad-address");
        return 2;
    };
    match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)) {
        Ok(stream) => {
            out("connect", "ok");
            if let Ok(local) = stream.local_addr() {
                out("local", local.ip());
            }
            // A `serve` peer says who it saw; anything else may say nothing.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stream), &mut line);
            if !line.is_empty() {
                out("reply", line.trim_end());
            }
        }
        Err(e) => out("connect", io_errno(&e)),
    }
    0
}

/// One UDP datagram to `addr` and the answer, if one comes within 2 s.
fn udp(addr: &str) -> i32 {
    let Ok(addr) = addr.parse::<std::net::SocketAddr>() else {
        out("udp", "bad-address");
        return 2;
    };
    let sock = match std::net::UdpSocket::bind("0.0.0.0:0") {
        Ok(sock) => sock,
        Err(e) => {
            out("udp", io_errno(&e));
            return 0;
        }
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
    if let Err(e) = sock.send_to(b"hello\n", addr) {
        out("udp", io_errno(&e));
        return 0;
    }
    let mut buf = [0u8; 256];
    match sock.recv(&mut buf) {
        Ok(n) => {
            out("udp", "ok");
            out("reply", String::from_utf8_lossy(&buf[..n]).trim_end());
        }
        Err(e) => out("udp", io_errno(&e)),
    }
    0
}

/// One UDP flow to `addr` for `secs`: a datagram every 200 ms from one
/// socket (so one conntrack entry), replies read in between. Prints
/// `first_reply=ok` at the first reply (flushed: a test waits for it), then
/// `replies=N` at the end. Errors (ICMP unreachable) do not end it.
fn udp_stream(addr: &str, secs: u64) -> i32 {
    let Ok(addr) = addr.parse::<std::net::SocketAddr>() else {
        out("udp-stream", "bad-address");
        return 2;
    };
    let sock = match std::net::UdpSocket::bind("0.0.0.0:0") {
        Ok(sock) => sock,
        Err(e) => {
            out("udp-stream", io_errno(&e));
            return 1;
        }
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut replies = 0u64;
    while Instant::now() < deadline {
        let sent = Instant::now();
        let _ = sock.send_to(b"hello\n", addr);
        let mut buf = [0u8; 256];
        if sock.recv(&mut buf).is_ok() {
            replies += 1;
            if replies == 1 {
                out("first_reply", "ok");
                flush();
            }
        }
        std::thread::sleep(Duration::from_millis(200).saturating_sub(sent.elapsed()));
    }
    out("replies", replies);
    0
}

/// A responder on `addr`, TCP and UDP, for `secs`: each connection or datagram
/// is answered with `from <peer address>` (so a test sees NAT at work). Prints
/// `serving=ok` once both sockets listen, and `udp_served=N` at the end.
fn serve(addr: &str, secs: u64) -> i32 {
    let Ok(addr) = addr.parse::<std::net::SocketAddr>() else {
        out("serve", "bad-address");
        return 2;
    };
    let tcp = match std::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            out("serve", io_errno(&e));
            return 1;
        }
    };
    let udp = match std::net::UdpSocket::bind(addr) {
        Ok(s) => s,
        Err(e) => {
            out("serve", io_errno(&e));
            return 1;
        }
    };
    out("serving", "ok");
    flush();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let _ = tcp.set_nonblocking(true);
    let _ = udp.set_read_timeout(Some(Duration::from_millis(20)));
    let mut udp_served = 0u64;
    while Instant::now() < deadline {
        // Every pending connection before the next UDP wait: many clients at once
        // must not each wait out a UDP timeout.
        while let Ok((mut stream, peer)) = tcp.accept() {
            let _ = stream.set_nonblocking(false);
            let _ = writeln!(stream, "from {}", peer.ip());
        }
        let mut buf = [0u8; 256];
        if let Ok((_, peer)) = udp.recv_from(&mut buf) {
            udp_served += 1;
            let _ = udp.send_to(format!("from {}\n", peer.ip()).as_bytes(), peer);
        }
    }
    out("udp_served", udp_served);
    0
}

fn numeric_proc_entries() -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

fn procs() -> i32 {
    let pids = numeric_proc_entries();
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    out("pids", list.join(","));
    for pid in pids {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim_end().to_string())
            .unwrap_or_else(|e| format!("?{}", io_errno(&e)));
        out(&format!("proc.{pid}"), comm);
    }
    0
}

fn ns() -> i32 {
    let Ok(entries) = std::fs::read_dir("/proc/self/ns") else {
        out("ns_error", errno_name(errno()));
        return 1;
    };
    let mut all: Vec<(String, String)> = entries
        .flatten()
        .map(|e| {
            let link = std::fs::read_link(e.path())
                .map(|l| l.display().to_string())
                .unwrap_or_else(|err| format!("?{}", io_errno(&err)));
            (e.file_name().to_string_lossy().into_owned(), link)
        })
        .collect();
    all.sort();
    for (name, link) in all {
        out(&format!("ns.{name}"), link);
    }
    0
}

// ---------------------------------------------------------------------------
// syscalls

#[derive(Clone, Copy, PartialEq, Eq)]
enum Abi {
    Native,
    X32,
    Int80,
}

#[derive(Clone, Copy)]
enum Arg {
    Int(u64),
    Str(&'static CStr),
    SelfPid,
}

use Arg::{Int, SelfPid, Str};

const NUL: Arg = Int(0);
const MINUS1: Arg = Int(u64::MAX);
const AT_FDCWD: Arg = Int(libc::AT_FDCWD as i64 as u64);
const X32_BIT: i64 = 0x4000_0000;

struct Call {
    name: &'static str,
    nr: i64,
    /// The x32 number where it differs from the native one (compat entry points).
    x32: Option<i64>,
    /// The i386 number for `int 0x80`, where i386 has the call.
    i386: Option<i64>,
    args: [Arg; 6],
}

const fn call(name: &'static str, nr: i64, i386: Option<i64>, args: [Arg; 6]) -> Call {
    Call {
        name,
        nr,
        x32: None,
        i386,
        args,
    }
}

const fn compat(mut c: Call, x32: i64) -> Call {
    c.x32 = Some(x32);
    c
}

const NO_ARGS: [Arg; 6] = [NUL; 6];
const NOFILE: &CStr = c"/probe-nonexistent";

/// The given leading arguments, the rest 0.
const fn args(given: &[Arg]) -> [Arg; 6] {
    let mut all = NO_ARGS;
    let mut i = 0;
    while i < given.len() {
        all[i] = given[i];
        i += 1;
    }
    all
}

const NEWUSER: u64 = libc::CLONE_NEWUSER as u64;
const NEWNS: u64 = libc::CLONE_NEWNS as u64;
const SIGCHLD: u64 = libc::SIGCHLD as u64;

/// Numbers the libc crate does not give on every architecture.
#[cfg(target_arch = "x86_64")]
mod nr {
    pub const KEXEC_FILE_LOAD: i64 = libc::SYS_kexec_file_load;
    pub const IOPL: i64 = libc::SYS_iopl;
    pub const IOPERM: i64 = libc::SYS_ioperm;
}
#[cfg(target_arch = "aarch64")]
mod nr {
    /// asm-generic/unistd.h.
    pub const KEXEC_FILE_LOAD: i64 = 294;
    /// x86 port I/O: no such calls; -1 is ENOSYS everywhere.
    pub const IOPL: i64 = -1;
    pub const IOPERM: i64 = -1;
}

/// Every call has arguments that make it fail or do nothing even when allowed.
#[rustfmt::skip]
static CALLS: &[Call] = &[
    call("getpid", libc::SYS_getpid, Some(20), NO_ARGS),
    // Makes the forked child traced by the probe, which only waits for it.
    compat(call("ptrace", libc::SYS_ptrace, Some(26), args(&[Int(libc::PTRACE_TRACEME as u64)])), 521),
    // These run in the forked child, which exits right after.
    call("unshare", libc::SYS_unshare, Some(310), args(&[Int(NEWUSER)])),
    call("unshare-newns", libc::SYS_unshare, Some(310), args(&[Int(NEWNS)])),
    // fork-like raw clone (no stack); the new process exits at once.
    call("clone", libc::SYS_clone, Some(120), args(&[Int(NEWUSER | SIGCHLD)])),
    call("clone-newns", libc::SYS_clone, Some(120), args(&[Int(NEWNS | SIGCHLD)])),
    call("clone-plain", libc::SYS_clone, Some(120), args(&[Int(SIGCHLD)])),
    // clone_args of size 0: EINVAL when allowed.
    call("clone3", libc::SYS_clone3, Some(435), NO_ARGS),
    // Targets and sources that do not exist, fds that are not open.
    call("mount", libc::SYS_mount, Some(21), args(&[Str(c"none"), Str(NOFILE), Str(c"tmpfs")])),
    call("umount2", libc::SYS_umount2, Some(52), args(&[Str(NOFILE)])),
    call("pivot_root", libc::SYS_pivot_root, Some(217), args(&[Str(NOFILE), Str(NOFILE)])),
    call("fsopen", libc::SYS_fsopen, Some(430), args(&[Str(c"probe-nofs")])),
    call("fsconfig", libc::SYS_fsconfig, Some(431), args(&[MINUS1])),
    call("fsmount", libc::SYS_fsmount, Some(432), args(&[MINUS1])),
    call("fspick", libc::SYS_fspick, Some(433), args(&[MINUS1, Str(NOFILE)])),
    call("open_tree", libc::SYS_open_tree, Some(428), args(&[MINUS1, Str(NOFILE)])),
    // Newer than the libc crate's tables: the numbers are the same on x86_64 and
    // i386 (syscall_64.tbl, syscall_32.tbl). Null structs: EFAULT or EINVAL when allowed.
    call("open_tree_attr", 467, Some(467), args(&[MINUS1, Str(NOFILE)])),
    call("statmount", 457, Some(457), NO_ARGS),
    call("listmount", 458, Some(458), NO_ARGS),
    call("listns", 470, Some(470), NO_ARGS),
    // Length 0: seals nothing.
    call("mseal", 462, Some(462), NO_ARGS),
    call("move_mount", libc::SYS_move_mount, Some(429), args(&[MINUS1, Str(c""), MINUS1, Str(c"")])),
    call("setns", libc::SYS_setns, Some(346), args(&[MINUS1])),
    // Query only: the id of the session keyring, never created.
    call("keyctl", libc::SYS_keyctl, Some(288), args(&[
        Int(libc::KEYCTL_GET_KEYRING_ID as u64),
        Int(libc::KEY_SPEC_SESSION_KEYRING as i64 as u64),
    ])),
    call("add_key", libc::SYS_add_key, Some(286), NO_ARGS),
    call("request_key", libc::SYS_request_key, Some(287), NO_ARGS),
    // Unknown command.
    call("bpf", libc::SYS_bpf, Some(357), args(&[Int(0x7fff)])),
    call("perf_event_open", libc::SYS_perf_event_open, Some(336), args(&[NUL, NUL, MINUS1, MINUS1])),
    call("io_uring_setup", libc::SYS_io_uring_setup, Some(425), NO_ARGS),
    call("io_uring_enter", libc::SYS_io_uring_enter, Some(426), args(&[Int(u32::MAX as u64)])),
    call("io_uring_register", libc::SYS_io_uring_register, Some(427), args(&[Int(u32::MAX as u64)])),
    call("open_by_handle_at", libc::SYS_open_by_handle_at, Some(342), args(&[MINUS1])),
    call("name_to_handle_at", libc::SYS_name_to_handle_at, Some(341), args(&[AT_FDCWD, Str(c"/")])),
    // An arch field and flag bit that do not exist, and too many segments: EINVAL
    // when allowed; never unloads a loaded kernel.
    compat(call("kexec_load", libc::SYS_kexec_load, Some(283), args(&[NUL, Int(17), NUL, Int(0xffff_0100)])), 528),
    call("kexec_file_load", nr::KEXEC_FILE_LOAD, None, args(&[MINUS1, MINUS1, NUL, NUL, Int(1 << 30)])),
    call("init_module", libc::SYS_init_module, Some(128), args(&[NUL, NUL, Str(c"")])),
    call("finit_module", libc::SYS_finit_module, Some(350), args(&[MINUS1, Str(c"")])),
    call("delete_module", libc::SYS_delete_module, Some(129), args(&[
        Str(c"probe_no_such_module"),
        Int(libc::O_NONBLOCK as u64),
    ])),
    // Magic numbers 0: EINVAL when allowed.
    call("reboot", libc::SYS_reboot, Some(88), NO_ARGS),
    // Zero iovecs from itself.
    compat(call("process_vm_readv", libc::SYS_process_vm_readv, Some(347), args(&[SelfPid])), 539),
    compat(call("process_vm_writev", libc::SYS_process_vm_writev, Some(348), args(&[SelfPid])), 540),
    call("userfaultfd", libc::SYS_userfaultfd, Some(374), args(&[Int(libc::O_CLOEXEC as u64)])),
    // 0xffffffff queries the persona without changing it.
    call("personality", libc::SYS_personality, Some(136), args(&[Int(0xffff_ffff)])),
    // The file cannot be opened, so accounting is never switched.
    call("acct", libc::SYS_acct, Some(51), args(&[Str(c"/probe-nonexistent/acct")])),
    call("kcmp", libc::SYS_kcmp, Some(349), args(&[SelfPid, SelfPid])),
    // SYSLOG_ACTION_SIZE_BUFFER: a query.
    call("syslog", libc::SYS_syslog, Some(103), args(&[Int(10)])),
    call("quotactl", libc::SYS_quotactl, Some(131), NO_ARGS),
    call("fanotify_init", libc::SYS_fanotify_init, Some(338), args(&[Int(0xffff_ffff)])),
    // Null time and zone: nothing to set.
    call("settimeofday", libc::SYS_settimeofday, Some(79), NO_ARGS),
    call("clock_settime", libc::SYS_clock_settime, Some(264), NO_ARGS),
    call("adjtimex", libc::SYS_adjtimex, Some(124), NO_ARGS),
    call("clock_adjtime", libc::SYS_clock_adjtime, Some(343), NO_ARGS),
    // Level 0 and an empty range: nothing to grant.
    call("iopl", nr::IOPL, Some(110), NO_ARGS),
    call("ioperm", nr::IOPERM, Some(101), NO_ARGS),
    call("swapon", libc::SYS_swapon, Some(87), args(&[Str(NOFILE)])),
    call("swapoff", libc::SYS_swapoff, Some(115), args(&[Str(NOFILE)])),
    // sysinfo(NULL): EFAULT shows the call reached the kernel.
    call("sysinfo", libc::SYS_sysinfo, Some(116), NO_ARGS),
];

/// `struct mount_attr` (include/uapi/linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const OPEN_TREE_CLONE: u64 = 1;
const FSCONFIG_CMD_CREATE: u64 = 6;

/// The classic chroot escape: chroot into DIR/jail with the working directory
/// left outside it, climb `..` far past any root, chroot(".") there, and look
/// for MARKER (a file only the host's root has). Prints `chroot=` (ok or the
/// errno), and after a chroot that worked `marker=` (seen or absent).
fn chroot_escape(dir: &str, marker: &str) -> i32 {
    let jail = format!("{dir}/jail");
    let _ = std::fs::create_dir_all(&jail);
    let (Some(jail_c), Some(dot), Some(up)) = (cstring(&jail), cstring("."), cstring("..")) else {
        return 2;
    };
    // SAFETY: NUL-terminated strings that live across the calls.
    if unsafe { libc::chroot(jail_c.as_ptr()) } != 0 {
        out("chroot", errno_name(errno()));
        return 0;
    }
    out("chroot", "ok");
    for _ in 0..64 {
        // SAFETY: as above.
        unsafe { libc::chdir(up.as_ptr()) };
    }
    // SAFETY: as above.
    unsafe { libc::chroot(dot.as_ptr()) };
    let seen = std::path::Path::new(marker).exists();
    out("marker", if seen { "seen" } else { "absent" });
    0
}

/// Every route to an unmasked procfs or a writable /proc/sys that the outside
/// review tried with CAP_SYS_ADMIN, each taken for real as far as it goes. Per
/// route prints `route.NAME=STEP:ERRNO` for the step that was refused, or
/// `route.NAME=LEAK:WHAT` if a masked file could be read or
/// /proc/sys/kernel/core_pattern opened for writing (opened only, never written).
/// DIR is a scratch directory for mount targets. Run it only inside a sandbox.
fn proc_routes(dir: &str) -> i32 {
    let target = format!("{dir}/probe-proc");
    let _ = std::fs::create_dir_all(&target);
    let target_c = cstring(&target).unwrap_or_default();
    let rdonly_off = MountAttr {
        attr_set: 0,
        attr_clr: MOUNT_ATTR_RDONLY,
        propagation: 0,
        userns_fd: 0,
    };
    let attr_ptr = &rdonly_off as *const MountAttr as u64;
    let attr_size = std::mem::size_of::<MountAttr>() as u64;

    // A new procfs on the scratch directory, then what it shows.
    let new_proc = || {
        let ret = raw(
            libc::SYS_mount as u64,
            &[
                c"proc".as_ptr() as u64,
                target_c.as_ptr() as u64,
                c"proc".as_ptr() as u64,
                0,
                0,
            ],
        );
        if ret < 0 {
            return format!("mount:{}", errno_name(-ret as i32));
        }
        leak_at(&target)
    };
    // Each route in a forked child: an unshare or mount must not change the
    // probe's own view for the routes after it.
    type Route<'a> = (&'a str, Box<dyn Fn() -> String + 'a>);
    let routes: Vec<Route> = vec![
        (
            "open_tree",
            Box::new(|| {
                let fd = raw(
                    428,
                    &[AT_FDCWD_U, c"/proc".as_ptr() as u64, OPEN_TREE_CLONE],
                );
                leak_through(fd, "open_tree")
            }),
        ),
        (
            "open_tree_attr",
            Box::new(|| {
                let fd = raw(
                    467,
                    &[
                        AT_FDCWD_U,
                        c"/proc".as_ptr() as u64,
                        OPEN_TREE_CLONE,
                        attr_ptr,
                        attr_size,
                    ],
                );
                leak_through(fd, "open_tree_attr")
            }),
        ),
        (
            "fsopen",
            Box::new(|| {
                let fs = raw(430, &[c"proc".as_ptr() as u64, 0]);
                if fs < 0 {
                    return format!("fsopen:{}", errno_name(-fs as i32));
                }
                let ret = raw(431, &[fs as u64, FSCONFIG_CMD_CREATE, 0, 0, 0]);
                if ret < 0 {
                    return format!("fsconfig:{}", errno_name(-ret as i32));
                }
                leak_through(raw(432, &[fs as u64, 0, 0]), "fsmount")
            }),
        ),
        ("mount", Box::new(&new_proc)),
        (
            "mount_setattr",
            Box::new(|| {
                let ret = raw(
                    442,
                    &[
                        AT_FDCWD_U,
                        c"/proc/sys".as_ptr() as u64,
                        0,
                        attr_ptr,
                        attr_size,
                    ],
                );
                if ret < 0 {
                    return format!("mount_setattr:{}", errno_name(-ret as i32));
                }
                leak_at("/proc")
            }),
        ),
        (
            "remount_rw",
            Box::new(|| {
                let flags: u64 = libc::MS_REMOUNT | libc::MS_BIND;
                let ret = raw(
                    libc::SYS_mount as u64,
                    &[0, c"/proc/sys".as_ptr() as u64, 0, flags, 0],
                );
                if ret < 0 {
                    return format!("mount:{}", errno_name(-ret as i32));
                }
                leak_at("/proc")
            }),
        ),
        (
            "umount_mask",
            Box::new(|| {
                let ret = raw(
                    libc::SYS_umount2 as u64,
                    &[c"/proc/timer_list".as_ptr() as u64, libc::MNT_DETACH as u64],
                );
                if ret < 0 {
                    return format!("umount2:{}", errno_name(-ret as i32));
                }
                leak_at("/proc")
            }),
        ),
        (
            "unshare_new_proc",
            Box::new(|| {
                let ret = raw(libc::SYS_unshare as u64, &[libc::CLONE_NEWNS as u64]);
                if ret < 0 {
                    return format!("unshare:{}", errno_name(-ret as i32));
                }
                new_proc()
            }),
        ),
    ];
    for (name, route) in &routes {
        flush();
        let (rx, tx) = pipe_pair();
        // SAFETY: the probe is single-threaded; the child only runs the route,
        // writes one line to the pipe and exits.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let verdict = route();
            // SAFETY: tx is the pipe's open write end; the buffer is live.
            unsafe { libc::write(tx, verdict.as_ptr().cast(), verdict.len()) };
            // SAFETY: ends the forked child without running the parent's atexit state.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: tx is ours to close.
        unsafe { libc::close(tx) };
        let verdict = read_all_fd(rx);
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(child, &mut status, 0) };
        let verdict = if verdict.is_empty() {
            format!("child:{status:#x}")
        } else {
            verdict
        };
        out(&format!("route.{name}"), verdict);
    }
    0
}

const AT_FDCWD_U: u64 = libc::AT_FDCWD as i64 as u64;

/// A raw syscall; returns the result or minus the errno.
fn raw(nr: u64, a: &[u64]) -> i64 {
    let arg = |i: usize| a.get(i).copied().unwrap_or(0);
    // SAFETY: the callers pass pointers to live, NUL-terminated strings or structs
    // of the size they name; everything else is a plain integer.
    let ret = unsafe {
        libc::syscall(
            nr as libc::c_long,
            arg(0),
            arg(1),
            arg(2),
            arg(3),
            arg(4),
            arg(5),
        )
    };
    if ret == -1 {
        -i64::from(errno())
    } else {
        ret
    }
}

fn pipe_pair() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe writes.
    unsafe { libc::pipe(fds.as_mut_ptr()) };
    (fds[0], fds[1])
}

fn read_all_fd(fd: i32) -> String {
    let mut buf = [0u8; 512];
    let mut text = Vec::new();
    loop {
        // SAFETY: buf is writable for its length; fd is the pipe's read end.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        text.extend_from_slice(&buf[..n as usize]);
    }
    // SAFETY: fd is ours to close.
    unsafe { libc::close(fd) };
    String::from_utf8_lossy(&text).into_owned()
}

/// What a procfs mount `fd` gives: a masked file's content, or core_pattern
/// open for writing.
fn leak_through(fd: i64, step: &str) -> String {
    if fd < 0 {
        return format!("{step}:{}", errno_name(-fd as i32));
    }
    leak_at(&format!("/proc/self/fd/{fd}"))
}

fn leak_at(proc_dir: &str) -> String {
    for masked in [
        "timer_list",
        "interrupts",
        "vmallocinfo",
        "keys",
        "kpageflags",
    ] {
        let path = format!("{proc_dir}/{masked}");
        if let Ok(text) = std::fs::read(&path) {
            if !text.is_empty() {
                return format!("LEAK:{masked}");
            }
        }
    }
    let core_pattern = format!("{proc_dir}/sys/kernel/core_pattern");
    match std::fs::OpenOptions::new().write(true).open(&core_pattern) {
        Ok(_) => "LEAK:core_pattern-writable".to_string(),
        Err(e) => format!("contained:{}", errno_name(e.raw_os_error().unwrap_or(0))),
    }
}

/// Walks /proc outside the pid directories and prints `readable=PATH` for every
/// regular file that is root-only by its mode (no group or other bits) and that
/// this process can open and read a byte of; `checked=N` at the end. /proc/kmsg
/// is only opened: a read would take a message from the host's log.
fn proc_root_only() -> i32 {
    let mut checked = 0u32;
    walk_proc(&mut |path, meta| {
        let mode = meta.mode();
        if !meta.is_file() || meta.uid() != 0 || mode & 0o077 != 0 || mode & 0o400 == 0 {
            return;
        }
        checked += 1;
        let Ok(mut file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        else {
            return;
        };
        let mut byte = [0u8; 1];
        if path == std::path::Path::new("/proc/kmsg")
            || std::io::Read::read(&mut file, &mut byte).is_ok()
        {
            out("readable", path.display());
        }
    });
    out("checked", checked);
    0
}

/// Calls `visit` for every entry of /proc that is not a directory, outside the
/// pid directories, descending at most 8 levels. symlink_metadata: /proc/net
/// and /proc/mounts lead into /proc/self.
fn walk_proc(visit: &mut dyn FnMut(&std::path::Path, &std::fs::Metadata)) {
    fn walk(
        dir: &std::path::Path,
        depth: u32,
        visit: &mut dyn FnMut(&std::path::Path, &std::fs::Metadata),
    ) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if depth == 0
                && (name.bytes().all(|b| b.is_ascii_digit())
                    || name == "self"
                    || name == "thread-self")
            {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_dir() {
                visit(&path, &meta);
            } else if depth < 8 {
                walk(&path, depth + 1, visit);
            }
        }
    }
    walk(std::path::Path::new("/proc"), 0, visit);
}

/// Calls every syscall number in `lo..=hi` with zero arguments (for numbers the
/// tests pick above every table: no kernel has them) and prints how many got
/// ENOSYS, then `nr.N=RESULT` for each that did not.
fn numbers(lo: u64, hi: u64) -> i32 {
    let mut enosys = 0;
    for nr in lo..=hi {
        // SAFETY: a raw syscall with zero arguments; the numbers are ones the
        // tests know no kernel has, and the probe is ready for any return.
        let ret = unsafe { libc::syscall(nr as libc::c_long, 0, 0, 0, 0, 0, 0) };
        let e = errno();
        if ret == -1 && e == libc::ENOSYS {
            enosys += 1;
        } else if ret == -1 {
            out(&format!("nr.{nr}"), errno_name(e));
        } else {
            out(&format!("nr.{nr}"), format!("ok:{ret}"));
        }
    }
    out("enosys", enosys);
    0
}

/// Tries each named call in a forked child; prints `result.NAME=ok|ERRNO|SIGNAL`
/// per name, and for a single name also `syscall=`, `abi=` and `result=`.
fn syscalls(names: &[String], abi: Abi) -> i32 {
    let abi_name = match abi {
        Abi::Native => "native",
        Abi::X32 => "x32",
        Abi::Int80 => "int80",
    };
    let mut code = 0;
    for name in names {
        let result = match CALLS.iter().find(|c| c.name == name.as_str()) {
            Some(call) => try_call(call, abi),
            None => {
                eprintln!("probe: unknown syscall {name:?} (see 'probe syscalls')");
                code = 2;
                "unknown".to_string()
            }
        };
        if names.len() == 1 {
            out("syscall", name);
            out("abi", abi_name);
            out("result", &result);
        }
        out(&format!("result.{name}"), result);
    }
    code
}

fn try_call(call: &Call, abi: Abi) -> String {
    if abi == Abi::Int80 && call.i386.is_none() {
        return "unavailable".into();
    }
    flush();
    // SAFETY: the probe is single-threaded, so the child may do anything the parent could.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return format!("fork:{}", errno_name(errno()));
    }
    if child == 0 {
        let ret = invoke(call, abi);
        // The clone variants create a process that lands here with 0: it only exits.
        let code = if ret >= 0 {
            0
        } else {
            (-ret).clamp(1, 255) as i32
        };
        // SAFETY: _exit ends the forked child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: status is a live local; child is our own child.
    let waited = unsafe { libc::waitpid(child, &mut status, 0) };
    if waited != child {
        return format!("waitpid:{}", errno_name(errno()));
    }
    if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => "ok".into(),
            e => errno_name(e),
        }
    } else if libc::WIFSIGNALED(status) {
        signal_name(libc::WTERMSIG(status))
    } else {
        format!("status:{status:#x}")
    }
}

/// Returns the raw kernel result: >= 0 success, -errno failure.
fn invoke(call: &Call, abi: Abi) -> i64 {
    // SAFETY: no pointers are passed.
    let own_pid = unsafe { libc::getpid() } as u64;
    let value = |a: Arg| match a {
        Int(v) => v,
        Str(s) => s.as_ptr() as u64,
        SelfPid => own_pid,
    };
    match abi {
        Abi::Native | Abi::X32 => {
            let nr = match abi {
                Abi::X32 => call.x32.unwrap_or(call.nr) | X32_BIT,
                _ => call.nr,
            };
            let a = call.args.map(value);
            // SAFETY: every argument is an integer, null, or a pointer to a 'static
            // NUL-terminated string; none of the calls writes through a non-null pointer.
            unsafe { raw_syscall(nr, a) }
        }
        // No i386 entry on aarch64: the kernel has no such ABI there.
        #[cfg(not(target_arch = "x86_64"))]
        Abi::Int80 => -i64::from(libc::ENOSYS),
        #[cfg(target_arch = "x86_64")]
        Abi::Int80 => {
            // i386 registers are 32 bits wide and the probe's data lives above 4 GiB:
            // copy the strings into a page mapped below 2 GiB. A null instead would
            // change the meaning of some calls (acct(NULL) switches accounting off).
            let mut low = low_page();
            let mut used = 0usize;
            let mut a = [0u32; 6];
            for (slot, arg) in a.iter_mut().zip(call.args) {
                *slot = match (arg, low.as_deref_mut()) {
                    (Str(s), Some(page)) => {
                        let bytes = s.to_bytes_with_nul();
                        if used + bytes.len() > LOW_PAGE {
                            return -i64::from(libc::E2BIG);
                        }
                        page[used..used + bytes.len()].copy_from_slice(bytes);
                        let addr = page[used..].as_ptr() as u64;
                        used += bytes.len();
                        addr as u32
                    }
                    // No low page: refuse rather than pass a null with another meaning.
                    (Str(_), None) => return -i64::from(libc::ENOMEM),
                    (other, _) => value(other) as u32,
                };
            }
            let nr = call.i386.unwrap_or(0) as u32;
            // SAFETY: as above, with the strings copied to the low page, which lives
            // until the child exits.
            unsafe { int80_syscall(nr, [a[0], a[1], a[2], a[3], a[4]]) }
        }
    }
}

#[cfg(target_arch = "x86_64")]
const LOW_PAGE: usize = 4096;

#[cfg(target_arch = "x86_64")]
/// A page below 2 GiB (MAP_32BIT) that i386 calls can address, or None.
fn low_page() -> Option<&'static mut [u8]> {
    // SAFETY: a fresh anonymous private mapping, used only by this forked child.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            LOW_PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED || p as u64 > u64::from(u32::MAX) - LOW_PAGE as u64 {
        return None;
    }
    // SAFETY: the mapping is LOW_PAGE bytes, readable and writable, never unmapped,
    // and this is its only reference.
    Some(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), LOW_PAGE) })
}

/// The `syscall` instruction with an explicit number, so x32 numbers (bit 30 set)
/// reach the kernel as they are.
///
/// # Safety
/// The arguments must be valid for the given syscall.
#[cfg(target_arch = "x86_64")]
unsafe fn raw_syscall(nr: i64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: the x86_64 syscall ABI: number in rax, arguments in rdi, rsi, rdx, r10,
    // r8, r9; the kernel clobbers rcx and r11 and touches no user stack.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// `svc #0` with the number in x8, as the aarch64 syscall ABI has it.
///
/// # Safety
/// The arguments must be valid for the given syscall.
#[cfg(target_arch = "aarch64")]
unsafe fn raw_syscall(nr: i64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: the aarch64 syscall ABI: number in x8, arguments in x0-x5, result in
    // x0; the kernel preserves every other register and touches no user stack.
    unsafe {
        std::arch::asm!(
            "svc #0",
            in("x8") nr,
            inlateout("x0") a[0] as i64 => ret,
            in("x1") a[1],
            in("x2") a[2],
            in("x3") a[3],
            in("x4") a[4],
            in("x5") a[5],
            options(nostack),
        );
    }
    ret
}

/// The legacy i386 entry (`int 0x80`) from 64-bit code: the kernel reads i386
/// numbers and 32-bit arguments and reports AUDIT_ARCH_I386 to seccomp.
///
/// # Safety
/// The arguments must be valid for the given i386 syscall.
#[cfg(target_arch = "x86_64")]
unsafe fn int80_syscall(nr: u32, a: [u32; 5]) -> i64 {
    let ret: u64;
    // SAFETY: LLVM reserves rbx, so the first argument is swapped in and out around
    // the interrupt; eax, ecx, edx, esi, edi carry the rest. The kernel preserves all
    // registers but rax.
    unsafe {
        std::arch::asm!(
            "xchg {a0:r}, rbx",
            "int 0x80",
            "xchg {a0:r}, rbx",
            a0 = inout(reg) u64::from(a[0]) => _,
            inlateout("rax") u64::from(nr) => ret,
            in("rcx") u64::from(a[1]),
            in("rdx") u64::from(a[2]),
            in("rsi") u64::from(a[3]),
            in("rdi") u64::from(a[4]),
        );
    }
    // The result is a 32-bit value in eax.
    i64::from(ret as u32 as i32)
}

// ---------------------------------------------------------------------------
// files, devices, mounts

/// Tries to create a block device (8:0, the first SCSI/SATA disk) and /dev/mem
/// (1:1) in DIR, then to open and read them; removes what it created.
fn mknod_block(dir: &str) -> i32 {
    let nodes = [
        ("blk", libc::S_IFBLK, libc::makedev(8, 0)),
        ("mem", libc::S_IFCHR, libc::makedev(1, 1)),
    ];
    for (label, kind, dev) in nodes {
        let path = format!(
            "{}/probe-{label}-{}",
            dir.trim_end_matches('/'),
            std::process::id()
        );
        let Some(c) = cstring(&path) else { return 2 };
        // SAFETY: c is a live NUL-terminated string.
        if unsafe { libc::mknod(c.as_ptr(), kind | 0o600, dev) } != 0 {
            out(&format!("mknod_{label}"), errno_name(errno()));
            continue;
        }
        out(&format!("mknod_{label}"), "ok");
        // SAFETY: as above.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            out(&format!("open_{label}"), errno_name(errno()));
        } else {
            out(&format!("open_{label}"), "ok");
            let mut buf = [0u8; 512];
            // SAFETY: buf is a live buffer of the given length; fd is ours.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            out(
                &format!("read_{label}"),
                if n < 0 {
                    errno_name(errno())
                } else {
                    "ok".into()
                },
            );
            // SAFETY: fd is ours and closed once.
            unsafe { libc::close(fd) };
        }
        let _ = std::fs::remove_file(&path);
    }
    0
}

fn open_flags(mode: &str) -> Option<i32> {
    match mode {
        "ro" => Some(libc::O_RDONLY),
        "rw" => Some(libc::O_RDWR),
        "w" => Some(libc::O_WRONLY),
        "create" => Some(libc::O_WRONLY | libc::O_CREAT),
        _ => {
            eprintln!("probe: open mode must be ro, rw, w or create");
            None
        }
    }
}

/// `ok`, or the errno name of a failed open; nothing is written through the fd.
fn open_result(path: &str, flags: i32) -> String {
    let Some(c) = cstring(path) else {
        return "EINVAL".into();
    };
    // SAFETY: c is a live NUL-terminated string; nothing is written through the fd.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOCTTY, 0o644) };
    if fd < 0 {
        return errno_name(errno());
    }
    // SAFETY: fd is ours and closed once.
    unsafe { libc::close(fd) };
    "ok".into()
}

fn open(path: &str, mode: &str) -> i32 {
    let Some(flags) = open_flags(mode) else {
        return 2;
    };
    out("open", open_result(path, flags));
    0
}

/// `open.PATH=ok|ERRNO` for each path.
fn opens(mode: &str, paths: &[String]) -> i32 {
    let Some(flags) = open_flags(mode) else {
        return 2;
    };
    for path in paths {
        out(&format!("open.{path}"), open_result(path, flags));
    }
    0
}

/// `entries=N`, the entries a listing of DIR gives (`entries=ERRNO` if it
/// cannot be opened), and `list_error=ERRNO` if reading it failed.
fn entries(dir: &str) -> i32 {
    let d = match std::fs::read_dir(dir) {
        Ok(d) => d,
        Err(e) => {
            out("entries", io_errno(&e));
            return 0;
        }
    };
    let mut n = 0;
    for entry in d {
        match entry {
            Ok(_) => n += 1,
            Err(e) => out("list_error", io_errno(&e)),
        }
    }
    out("entries", n);
    0
}

/// Compares each entry's inode number as readdir gives it (d_ino) with
/// lstat's: `inodes=N` entries, `inode_mismatches=M`, and the first few as
/// `mismatch=NAME D_INO ST_INO`. Mount points are left out: readdir names the
/// directory under the mount, on every filesystem.
fn inodes(dir: &str) -> i32 {
    use std::os::unix::fs::DirEntryExt;
    let Ok(dir_dev) = std::fs::metadata(dir).map(|m| m.dev()) else {
        out("inodes", "ENOENT");
        return 1;
    };
    let d = match std::fs::read_dir(dir) {
        Ok(d) => d,
        Err(e) => {
            out("inodes", io_errno(&e));
            return 1;
        }
    };
    let (mut n, mut bad) = (0, 0);
    for entry in d.flatten() {
        n += 1;
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.dev() != dir_dev {
            continue;
        }
        if meta.ino() != entry.ino() {
            bad += 1;
            if bad <= 3 {
                let name = entry.file_name().to_string_lossy().into_owned();
                out("mismatch", format!("{name} {} {}", entry.ino(), meta.ino()));
            }
        }
    }
    out("inodes", n);
    out("inode_mismatches", bad);
    0
}

/// setgroups(2) with the comma-separated gids, then `groups=` as getgroups
/// reads them back, or `setgroups=ERRNO`.
fn set_groups(list: &str) -> i32 {
    let Ok(gids) = list
        .split(',')
        .map(str::parse::<libc::gid_t>)
        .collect::<Result<Vec<_>, _>>()
    else {
        eprintln!("probe: setgroups GID,GID...");
        return 2;
    };
    // SAFETY: the pointer and length describe `gids`, which outlives the call.
    if unsafe { libc::setgroups(gids.len(), gids.as_ptr()) } != 0 {
        out("setgroups", errno_name(errno()));
        return 1;
    }
    let mut back = [0 as libc::gid_t; 64];
    // SAFETY: `back` is writable for 64 gids.
    let n = unsafe { libc::getgroups(64, back.as_mut_ptr()) };
    let shown: Vec<String> = back[..usize::try_from(n).unwrap_or(0)]
        .iter()
        .map(ToString::to_string)
        .collect();
    out("setgroups", "ok");
    out("groups", shown.join(","));
    0
}

/// Sends each signal to PID (`signal.SIG=ok|ERRNO`), then after 200 ms prints
/// PID's state letter from /proc/PID/stat (`state=S`), or `state=gone`.
fn signal(pid: &str, signals: &[String]) -> i32 {
    let Ok(pid) = pid.parse::<i32>() else {
        eprintln!("probe: bad pid {pid:?}");
        return 2;
    };
    for name in signals {
        let Some(sig) = parse_signal(name) else {
            eprintln!("probe: unknown signal {name:?}");
            return 2;
        };
        // SAFETY: kill takes no pointers.
        let r = unsafe { libc::kill(pid, sig) };
        out(
            &format!("signal.{name}"),
            if r == 0 {
                "ok".into()
            } else {
                errno_name(errno())
            },
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.trim_start().chars().next()
        })
        .map_or("gone".to_string(), String::from);
    out("state", state);
    0
}

/// Every way to take a /proc mask or read-only bind off from inside, one after
/// the other in this process (`attempt.NAME=ok|ERRNO`), then the state of what
/// they protect: core_pattern opened for writing, the same through a new procfs
/// on DIR/p, and the bytes /proc/timer_list gives.
fn mask_attacks(dir: &str) -> i32 {
    let new_proc = format!("{dir}/p");
    let _ = std::fs::create_dir_all(&new_proc);
    let umount = |path: &str, flags: i32| -> String {
        let Some(c) = cstring(path) else {
            return "EINVAL".into();
        };
        // SAFETY: c is a live NUL-terminated path.
        let r = unsafe { libc::umount2(c.as_ptr(), flags) };
        if r == 0 {
            "ok".into()
        } else {
            errno_name(errno())
        }
    };
    let mount = |source: Option<&str>, target: &str, fstype: Option<&str>, flags: libc::c_ulong| {
        let (source, target, fstype) = (
            source.and_then(cstring),
            cstring(target),
            fstype.and_then(cstring),
        );
        let Some(target) = target else {
            return "EINVAL".to_string();
        };
        let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: every pointer is null or a live NUL-terminated string; data is null.
        let r = unsafe {
            libc::mount(
                ptr(&source),
                target.as_ptr(),
                ptr(&fstype),
                flags,
                std::ptr::null(),
            )
        };
        if r == 0 {
            "ok".to_string()
        } else {
            errno_name(errno())
        }
    };
    out("attempt.umount-mask", umount("/proc/timer_list", 0));
    out(
        "attempt.umount-lazy-sys",
        umount("/proc/sys", libc::MNT_DETACH),
    );
    out("attempt.umount-acpi", umount("/proc/acpi", 0));
    out(
        "attempt.remount-sys",
        mount(None, "/proc/sys", None, libc::MS_REMOUNT),
    );
    out(
        "attempt.remount-bind-sys",
        mount(None, "/proc/sys", None, libc::MS_REMOUNT | libc::MS_BIND),
    );
    out(
        "attempt.mount-proc",
        mount(Some("proc"), &new_proc, Some("proc"), 0),
    );
    out(
        "core_pattern",
        open_result("/proc/sys/kernel/core_pattern", libc::O_WRONLY),
    );
    out(
        "new_proc_core_pattern",
        open_result(
            &format!("{new_proc}/sys/kernel/core_pattern"),
            libc::O_WRONLY,
        ),
    );
    match std::fs::read("/proc/timer_list") {
        Ok(b) => out("timer_list_bytes", b.len()),
        Err(e) => out("timer_list_bytes", io_errno(&e)),
    }
    0
}

fn write(path: &str, text: &str) -> i32 {
    match std::fs::write(path, text) {
        Ok(()) => out("write", "ok"),
        Err(e) => out("write", io_errno(&e)),
    }
    0
}

fn read(path: &str) -> i32 {
    use std::io::Read;
    let mut buf = vec![0u8; 4096];
    match std::fs::File::open(path).and_then(|mut f| f.read(&mut buf)) {
        Ok(n) => {
            out("read", "ok");
            out("bytes", n);
            let text = String::from_utf8_lossy(&buf[..n]);
            out("content", text.lines().next().unwrap_or(""));
        }
        Err(e) => out("read", io_errno(&e)),
    }
    0
}

/// The file type as the probe prints it.
fn kind_name(m: &std::fs::Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_symlink() {
        "link"
    } else if t.is_dir() {
        "dir"
    } else if t.is_file() {
        "file"
    } else if t.is_char_device() {
        "chr"
    } else if t.is_block_device() {
        "blk"
    } else if t.is_fifo() {
        "fifo"
    } else {
        "socket"
    }
}

fn stat(path: &str) -> i32 {
    match std::fs::symlink_metadata(path) {
        Ok(m) => {
            out("stat", "ok");
            out("type", kind_name(&m));
            out("mode", format!("{:o}", m.mode() & 0o7777));
            out("uid", m.uid());
            out("gid", m.gid());
            out("dev", m.dev());
            out("ino", m.ino());
            out("size", m.size());
            let rdev = m.rdev();
            out(
                "rdev",
                format!("{}:{}", libc::major(rdev), libc::minor(rdev)),
            );
        }
        Err(e) => out("stat", io_errno(&e)),
    }
    0
}

fn fs_type_name(magic: i64) -> String {
    let name = match magic {
        0x0102_1994 => "tmpfs",
        0x794c_7630 => "overlay",
        0x9fa0 => "proc",
        0x6265_6572 => "sysfs",
        0x1cd1 => "devpts",
        0xef53 => "ext4",
        0x6367_7270 => "cgroup2",
        0x0027_e0eb => "cgroup",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x8584_58f6 => "ramfs",
        0x1980_0202 => "mqueue",
        0x6e73_6673 => "nsfs",
        0x7472_6163 => "tracefs",
        0x6462_6720 => "debugfs",
        0x7363_6673 => "securityfs",
        _ => return format!("{magic:#x}"),
    };
    name.to_string()
}

fn mounts(path: &str) -> i32 {
    let Some(c) = cstring(path) else { return 2 };
    // SAFETY: statvfs is plain data, filled by the call.
    let mut vfs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c and vfs are live for the call.
    if unsafe { libc::statvfs(c.as_ptr(), &mut vfs) } != 0 {
        out("mounts", errno_name(errno()));
        return 0;
    }
    out("mounts", "ok");
    let flag = |f: libc::c_ulong| u8::from(vfs.f_flag & f != 0);
    out("ro", flag(libc::ST_RDONLY));
    out("nosuid", flag(libc::ST_NOSUID));
    out("nodev", flag(libc::ST_NODEV));
    out("noexec", flag(libc::ST_NOEXEC));
    out("size_bytes", vfs.f_blocks * vfs.f_frsize);
    // SAFETY: statfs is plain data, filled by the call.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c and sfs are live for the call.
    if unsafe { libc::statfs(c.as_ptr(), &mut sfs) } == 0 {
        out("fstype", fs_type_name(sfs.f_type as i64));
    }
    0
}

/// The mount table as this process sees it: mount point, type, source, options.
fn mountinfo() -> i32 {
    let text = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(t) => t,
        Err(e) => {
            out("mountinfo", io_errno(&e));
            return 1;
        }
    };
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(point), Some(opts), Some(fstype), Some(source)) = (
            fields.get(4),
            fields.get(5),
            fields.get(sep + 1),
            fields.get(sep + 2),
        ) else {
            continue;
        };
        out("mount", format!("{point} {fstype} {source} {opts}"));
    }
    0
}

/// Where the process starts: getcwd, whether walking `..` ends at this root, and
/// optionally whether NAME (relative) is reachable from the cwd.
fn cwd(name: Option<&str>) -> i32 {
    match std::env::current_dir() {
        Ok(p) => out("cwd", p.display()),
        Err(e) => out("cwd", format!("?{}", io_errno(&e))),
    }
    let root = std::fs::metadata("/").map(|m| (m.dev(), m.ino()));
    let mut path = std::path::PathBuf::from(".");
    let mut reaches_root = false;
    for _ in 0..256 {
        let here = std::fs::metadata(&path).map(|m| (m.dev(), m.ino()));
        let up = std::fs::metadata(path.join("..")).map(|m| (m.dev(), m.ino()));
        match (here, up) {
            (Ok(h), Ok(u)) if h == u => {
                reaches_root = root.as_ref().is_ok_and(|r| *r == h);
                break;
            }
            (Ok(_), Ok(_)) => path.push(".."),
            _ => break,
        }
    }
    out("reaches_root", u8::from(reaches_root));
    if let Some(name) = name {
        out(
            "name_visible",
            u8::from(std::fs::symlink_metadata(name).is_ok()),
        );
    }
    0
}

/// For every visible process: what its /proc/PID/exe is (st_dev:st_ino and link),
/// whether it opens for writing, and whether /proc/PID/mem opens. Nothing is written.
fn exe() -> i32 {
    for pid in numeric_proc_entries() {
        let link = format!("/proc/{pid}/exe");
        match std::fs::metadata(&link) {
            Ok(m) => out(&format!("exe.{pid}"), format!("{}:{}", m.dev(), m.ino())),
            Err(e) => out(&format!("exe.{pid}"), io_errno(&e)),
        }
        match std::fs::read_link(&link) {
            Ok(t) => out(&format!("exe.{pid}.link"), t.display()),
            Err(e) => out(&format!("exe.{pid}.link"), format!("?{}", io_errno(&e))),
        }
        // No O_TRUNC, nothing written: only whether the open is allowed.
        match std::fs::OpenOptions::new().write(true).open(&link) {
            Ok(_) => out(&format!("exe.{pid}.write"), "ok"),
            Err(e) => out(&format!("exe.{pid}.write"), io_errno(&e)),
        }
        match std::fs::File::open(format!("/proc/{pid}/mem")) {
            Ok(_) => out(&format!("mem.{pid}"), "ok"),
            Err(e) => out(&format!("mem.{pid}"), io_errno(&e)),
        }
    }
    0
}

/// Pushes one NUL byte into the input queue of the terminal on fd 0, the
/// CVE-2017-5226 primitive; a NUL is harmless if it does get through.
fn tiocsti() -> i32 {
    // SAFETY: isatty takes no pointer.
    out("isatty", unsafe { libc::isatty(0) });
    let byte: u8 = 0;
    // SAFETY: TIOCSTI reads one byte through the pointer, which points to a live local.
    let r = unsafe { libc::ioctl(0, libc::TIOCSTI, &byte as *const u8) };
    out(
        "tiocsti",
        if r == 0 {
            "ok".into()
        } else {
            errno_name(errno())
        },
    );
    0
}

fn cgroup() -> i32 {
    match std::fs::read_to_string("/proc/self/cgroup") {
        Ok(t) => t.lines().for_each(|l| out("cgroup", l)),
        Err(e) => out("cgroup", format!("?{}", io_errno(&e))),
    }
    let files = [
        "memory.max",
        "memory.swap.max",
        "pids.max",
        "cpu.max",
        "memory/memory.limit_in_bytes",
        "memory/memory.memsw.limit_in_bytes",
        "pids/pids.max",
        "cpu/cpu.cfs_quota_us",
        "cpu/cpu.cfs_period_us",
    ];
    for f in files {
        if let Ok(v) = std::fs::read_to_string(format!("/sys/fs/cgroup/{f}")) {
            out(f, v.trim());
        }
    }
    0
}

// ---------------------------------------------------------------------------
// signals and process trees

static GOT_SIGNAL: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    GOT_SIGNAL.store(true, Ordering::SeqCst);
}

/// Installs a handler for SIG, prints `ready`, and exits 0 once it arrives (3 after
/// 60 s without it).
fn sleep_trap(sig: i32) -> i32 {
    // SAFETY: sigaction is plain data; the handler only stores to an atomic, which
    // is async-signal-safe.
    let installed = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut()) == 0
    };
    if !installed {
        out("sigaction", errno_name(errno()));
        return 1;
    }
    println!("ready");
    flush();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !GOT_SIGNAL.load(Ordering::SeqCst) {
        if Instant::now() > deadline {
            println!("timeout");
            return 3;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("got {}", signal_name(sig));
    0
}

fn kill_self(sig: i32) -> i32 {
    flush();
    // SAFETY: resetting a disposition and raising a signal at ourselves; the empty
    // set is a live local.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
    std::thread::sleep(Duration::from_secs(1));
    out("survived", signal_name(sig));
    1
}

/// Orphans a grandchild (it exits after 300 ms, once reparented) and watches
/// whether whoever inherits it reaps it within 10 s.
fn zombie() -> i32 {
    let mut pipe = [0; 2];
    // SAFETY: pipe writes two fds into the live array.
    if unsafe { libc::pipe(pipe.as_mut_ptr()) } != 0 {
        out("zombie", errno_name(errno()));
        return 1;
    }
    flush();
    // SAFETY: single-threaded; the child only forks, writes and _exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: as above.
        let grandchild = unsafe { libc::fork() };
        if grandchild == 0 {
            std::thread::sleep(Duration::from_millis(300));
            // SAFETY: ends the grandchild without the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        let bytes = grandchild.to_ne_bytes();
        // SAFETY: bytes is live for the call; the pipe's write end is ours.
        unsafe {
            libc::write(pipe[1], bytes.as_ptr().cast(), bytes.len());
            libc::_exit(0);
        }
    }
    if child < 0 {
        out("zombie", errno_name(errno()));
        return 1;
    }
    let mut status = 0;
    let mut bytes = [0u8; 4];
    // SAFETY: status and bytes are live locals; child is ours.
    let n = unsafe {
        libc::waitpid(child, &mut status, 0);
        libc::read(pipe[0], bytes.as_mut_ptr().cast(), bytes.len())
    };
    let grandchild = libc::pid_t::from_ne_bytes(bytes);
    if n != 4 || grandchild <= 0 {
        out("zombie", "no-grandchild");
        return 1;
    }
    out("grandchild", grandchild);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut zombie_seen = false;
    let mut reaped = false;
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{grandchild}/stat")) {
            Err(_) => {
                reaped = true;
                break;
            }
            Ok(stat) => {
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next());
                zombie_seen |= state == Some('Z');
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    out("zombie_seen", u8::from(zombie_seen));
    out("reaped", u8::from(reaped));
    0
}

/// Leaves a process behind that sleeps SECS in its own session with stdio on
/// /dev/null (so it holds no pipe of the caller). MARKER, if any, is only in its
/// cmdline, for the host to find it.
fn orphan(secs: u64) -> i32 {
    flush();
    // SAFETY: single-threaded; the child only rearranges its own fds and sleeps.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: the path is a static C string; the fds are the child's own.
        unsafe {
            libc::setsid();
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            for fd in 0..3 {
                if null >= 0 {
                    libc::dup2(null, fd);
                } else {
                    libc::close(fd);
                }
            }
        }
        std::thread::sleep(Duration::from_secs(secs));
        // SAFETY: ends the child without the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    if child < 0 {
        out("orphan", errno_name(errno()));
        return 1;
    }
    out("orphan", child);
    0
}

fn exec_as(uid: &str, gid: &str, prog: &[String]) -> i32 {
    let (Ok(uid), Ok(gid)) = (uid.parse::<libc::uid_t>(), gid.parse::<libc::gid_t>()) else {
        eprintln!("probe: exec-as UID GID PROG [ARGS...]");
        return 2;
    };
    let Some(argv): Option<Vec<CString>> = prog.iter().map(|a| cstring(a)).collect() else {
        return 2;
    };
    if argv.is_empty() {
        eprintln!("probe: exec-as needs a program");
        return 2;
    }
    // SAFETY: no pointers except the null group list of length 0.
    let dropped = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(gid) == 0
            && libc::setuid(uid) == 0
    };
    if !dropped {
        out("exec_as", errno_name(errno()));
        return 1;
    }
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    flush();
    // SAFETY: argv holds NUL-terminated strings that outlive the call, and the pointer
    // array is null-terminated.
    unsafe { libc::execv(ptrs[0], ptrs.as_ptr()) };
    out("exec_as", errno_name(errno()));
    127
}

/// Writes MIB mebibytes to PATH in 1 MiB steps; reports how many made it.
fn fill(path: &str, mib: u64) -> i32 {
    let mut file = match std::fs::File::create(path) {
        Ok(f) => f,
        Err(e) => {
            out("fill", io_errno(&e));
            return 0;
        }
    };
    let chunk = vec![0x5au8; 1 << 20];
    let mut written = 0;
    let mut result = "ok".to_string();
    for _ in 0..mib {
        match file.write_all(&chunk).and_then(|()| file.sync_data()) {
            Ok(()) => written += 1,
            Err(e) => {
                result = io_errno(&e);
                break;
            }
        }
    }
    out("written_mib", written);
    out("fill", result);
    0
}

// ---------------------------------------------------------------------------
// resource limits

/// Allocates MIB mebibytes in 1 MiB blocks, writing every byte so each page is
/// really charged. Progress is flushed every 8 MiB: the last `touched_mib` line
/// survives an OOM kill and says how far it got.
fn alloc(mib: u64) -> i32 {
    let mut blocks = Vec::new();
    for i in 1..=mib {
        // A non-zero fill: zeroed memory may come from untouched zero pages.
        blocks.push(vec![0xa5u8; 1 << 20]);
        if i % 8 == 0 || i == mib {
            out("touched_mib", i);
            flush();
        }
    }
    out("alloc", "ok");
    drop(blocks);
    0
}

/// The cgroup's task count as seen from inside, on v2 or v1, if it is visible.
fn pids_current() -> Option<String> {
    [
        "/sys/fs/cgroup/pids.current",
        "/sys/fs/cgroup/pids/pids.current",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .map(|v| v.trim().to_string())
}

/// A bounded fork bomb: tries N forks; every child waits (at most 30 s) for the
/// probe to close a pipe, so all of them are alive at the peak. Reports how many
/// forks worked, how many failed with EAGAIN or otherwise, the index of the first
/// failure, and the cgroup's task count at the peak; then releases and reaps them.
fn forks(n: u64) -> i32 {
    let mut pipe = [0; 2];
    // SAFETY: pipe writes two fds into the live array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        out("forks", errno_name(errno()));
        return 1;
    }
    flush();
    let mut children = Vec::new();
    let (mut eagain, mut other) = (0u64, 0u64);
    let mut first_failure: Option<u64> = None;
    let mut other_errno = 0;
    for i in 0..n {
        // SAFETY: single-threaded; the child only closes, polls and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: the fds are the child's copies; pfd is a live local.
            unsafe {
                libc::close(pipe[1]);
                let mut pfd = libc::pollfd {
                    fd: pipe[0],
                    events: libc::POLLIN,
                    revents: 0,
                };
                libc::poll(&mut pfd, 1, 30_000);
                libc::_exit(0);
            }
        }
        if pid < 0 {
            let e = errno();
            if e == libc::EAGAIN {
                eagain += 1;
            } else {
                other += 1;
                other_errno = e;
            }
            first_failure.get_or_insert(i);
            continue;
        }
        children.push(pid);
    }
    out("forked", children.len());
    out("eagain", eagain);
    out("other_errors", other);
    if other > 0 {
        out("other_errno", errno_name(other_errno));
    }
    match first_failure {
        Some(i) => out("first_failure", i),
        None => out("first_failure", "none"),
    }
    if let Some(current) = pids_current() {
        out("pids_current", current);
    }
    flush();
    // SAFETY: closing our write end wakes every child; status is a live local.
    unsafe {
        libc::close(pipe[1]);
        let mut status = 0;
        for pid in &children {
            libc::waitpid(*pid, &mut status, 0);
        }
    }
    out("reaped", children.len());
    0
}

fn process_cpu_time() -> Duration {
    // SAFETY: timespec is plain data, filled by the call.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: ts is a live local of the right type.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Tries to install a seccomp filter (allow everything) with a listener of
/// its own, after no_new_privs; reports `listener=ok` or the errno.
fn seccomp_listener() -> i32 {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        out("listener", format!("nnp:{}", errno_name(errno())));
        return 0;
    }
    let mut allow = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: libc::SECCOMP_RET_ALLOW,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: allow.as_mut_ptr(),
    };
    // SAFETY: `prog` points at one instruction that outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        out("listener", errno_name(errno()));
    } else {
        out("listener", "ok");
    }
    0
}

/// Calls ptrace(PTRACE_TRACEME) N times; reports how many got EPERM.
fn deny_flood(n: u64) -> i32 {
    let mut eperm = 0u64;
    for _ in 0..n {
        // SAFETY: PTRACE_TRACEME takes no pointers.
        let ret = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
        if ret < 0 && errno() == libc::EPERM {
            eperm += 1;
        }
    }
    out("eperm", eperm);
    0
}

/// Opens /dev/null until open fails (at most 100000 times); reports how many
/// opened, the highest descriptor and the error.
fn open_many() -> i32 {
    let mut opened = 0u32;
    let mut highest = -1;
    let mut error = "none".to_string();
    while opened < 100_000 {
        // SAFETY: a NUL-terminated path; the descriptor is kept open on purpose.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
        if fd < 0 {
            error = errno_name(errno());
            break;
        }
        opened += 1;
        highest = highest.max(fd);
    }
    out("opened", opened);
    out("highest_fd", highest);
    out("open_error", error);
    0
}

/// Busy-loops in THREADS threads for SECS seconds of wall time, then reports the
/// process's own CPU time against the wall time (`share` is in cores). Prints
/// `spinning` first so a host-side observer knows when to start measuring.
fn spin(secs: u64, threads: u64) -> i32 {
    let threads = threads.max(1);
    let wall = Duration::from_secs(secs);
    println!("spinning");
    flush();
    let start = Instant::now();
    let cpu0 = process_cpu_time();
    let busy = move || {
        let mut n = 0u64;
        while start.elapsed() < wall {
            n = std::hint::black_box(n.wrapping_add(1));
        }
        n
    };
    let helpers: Vec<_> = (1..threads).map(|_| std::thread::spawn(busy)).collect();
    busy();
    for h in helpers {
        let _ = h.join();
    }
    let cpu = process_cpu_time().saturating_sub(cpu0);
    let elapsed = start.elapsed();
    out("threads", threads);
    out("wall_ms", elapsed.as_millis());
    out("cpu_ms", cpu.as_millis());
    out(
        "share",
        format!("{:.3}", cpu.as_secs_f64() / elapsed.as_secs_f64()),
    );
    0
}

// ---------------------------------------------------------------------------
// devices, ptys, cgroupfs

/// Opens a new pty pair through /dev/ptmx and sends one line from the master to
/// the slave: `ptmx=`, `pts=` (the slave's path), `slave=`, `echo=` (ok when the
/// line came through).
/// Opens /dev/ptmx until it fails or `max` masters are open (the soft NOFILE
/// limit raised to the hard one first); prints `opened=N` and `error=ERRNO`.
fn ptys(max: u64) -> i32 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: limit is a live rlimit for getrlimit to fill and setrlimit to read.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    let mut opened = 0u64;
    let mut error = "none".to_string();
    while opened < max {
        // SAFETY: a static C string; the fds stay open until the probe exits.
        let fd = unsafe { libc::open(c"/dev/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
        if fd < 0 {
            error = errno_name(errno());
            break;
        }
        opened += 1;
    }
    out("opened", opened);
    out("error", error);
    0
}

/// TCP memory of the machine in bytes, from /proc/net/sockstat's `TCP: ... mem
/// PAGES` (host-wide: TCP memory is not per network namespace).
fn tcp_mem_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let pages = text
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "mem").nth(1))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Opens CONNS loopback TCP connections whose receivers never read, and
/// writes into them without blocking until MIB MiB are queued in all or every
/// one says EAGAIN. Prints `queued=BYTES`, and the machine's TCP memory before
/// and while holding (`tcp_before=`, `tcp_during=`), then exits (the kernel
/// frees it all).
fn tcp_hold(mib: u64, conns: u64) -> i32 {
    use std::io::Write as _;
    use std::net::{TcpListener, TcpStream};
    let before = tcp_mem_bytes();
    let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
        out("listen", errno_name(errno()));
        return 1;
    };
    let Ok(addr) = listener.local_addr() else {
        return 1;
    };
    let mut streams = Vec::new();
    for _ in 0..conns {
        let Ok(client) = TcpStream::connect(addr) else {
            out("connect", errno_name(errno()));
            return 1;
        };
        let Ok((server, _)) = listener.accept() else {
            return 1;
        };
        let _ = client.set_nonblocking(true);
        streams.push((client, server));
    }
    let target = mib << 20;
    let chunk = vec![0x5au8; 64 << 10];
    let mut queued = 0u64;
    'all: for (client, _) in &mut streams {
        loop {
            if queued >= target {
                break 'all;
            }
            match client.write(&chunk) {
                Ok(n) => queued += n as u64,
                Err(_) => break,
            }
        }
    }
    out("queued", queued);
    out("tcp_before", before);
    out("tcp_during", tcp_mem_bytes());
    0
}

fn pty() -> i32 {
    // SAFETY: a static C string; the fd is ours.
    let master = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if master < 0 {
        out("ptmx", errno_name(errno()));
        return 0;
    }
    out("ptmx", "ok");
    // SAFETY: master is an open pty master.
    if unsafe { libc::grantpt(master) } != 0 || unsafe { libc::unlockpt(master) } != 0 {
        out("unlockpt", errno_name(errno()));
        return 0;
    }
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: the buffer is live and its length is passed.
    if unsafe { libc::ptsname_r(master, name.as_mut_ptr(), name.len()) } != 0 {
        out("ptsname", errno_name(errno()));
        return 0;
    }
    // SAFETY: ptsname_r wrote a NUL-terminated string into name.
    let path = unsafe { CStr::from_ptr(name.as_ptr()) };
    out("pts", path.to_string_lossy());
    // SAFETY: path is a live NUL-terminated string.
    let slave = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        out("slave", errno_name(errno()));
        return 0;
    }
    out("slave", "ok");
    let line = b"mbx-pty\n";
    let mut buf = [0u8; 64];
    // SAFETY: both buffers are live for the calls; the fds are ours. The slave is in
    // canonical mode, so the read returns the complete line the master wrote.
    let n = unsafe {
        libc::write(master, line.as_ptr().cast(), line.len());
        libc::read(slave, buf.as_mut_ptr().cast(), buf.len())
    };
    let echoed = usize::try_from(n).is_ok_and(|n| buf[..n] == line[..]);
    out(
        "echo",
        if echoed {
            "ok".to_string()
        } else {
            format!("bad:{n}")
        },
    );
    // SAFETY: both fds are ours and closed once.
    unsafe {
        libc::close(slave);
        libc::close(master);
    }
    0
}

/// Every entry below DIR (symlinks not followed): `node=PATH TYPE MAJOR:MINOR`.
fn lsdev(dir: &str) -> i32 {
    fn walk(dir: &std::path::Path, depth: u32) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            out("node_error", dir.display());
            return;
        };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let kind = kind_name(&m);
            let rdev = m.rdev();
            out(
                "node",
                format!(
                    "{} {kind} {}:{}",
                    p.display(),
                    libc::major(rdev),
                    libc::minor(rdev)
                ),
            );
            if m.is_dir() && depth > 0 {
                walk(&p, depth - 1);
            }
        }
    }
    walk(std::path::Path::new(dir), 8);
    0
}

/// The CVE-2022-0492 set-up steps, stopped before anything is written: a direct
/// cgroup v1 mount of CONTROLLER on DIR (`mount=`), then in a forked child
/// unshare(NEWUSER|NEWNS|NEWCGROUP) (`unshare=`) and the same mount there
/// (`mount_after_unshare=`). A mount that succeeds is detached at once; no
/// file in it (release_agent, notify_on_release) is ever opened.
fn cgroup_mount(dir: &str, controller: &str) -> i32 {
    let (Some(target), Some(data)) = (cstring(dir), cstring(controller)) else {
        return 2;
    };
    let _ = std::fs::create_dir_all(dir);
    let try_mount = || {
        // SAFETY: all strings are live NUL-terminated C strings.
        let r = unsafe {
            libc::mount(
                c"cgroup".as_ptr(),
                target.as_ptr(),
                c"cgroup".as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        if r == 0 {
            // SAFETY: as above.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
            "ok".to_string()
        } else {
            errno_name(errno())
        }
    };
    out("mount", try_mount());
    flush();
    let mut pipe = [0; 2];
    // SAFETY: pipe writes two fds into the live array.
    if unsafe { libc::pipe(pipe.as_mut_ptr()) } != 0 {
        out("unshare", format!("pipe:{}", errno_name(errno())));
        return 1;
    }
    // SAFETY: single-threaded; the child reports through the pipe and _exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        let flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWCGROUP;
        // SAFETY: unshare takes no pointers.
        let report = if unsafe { libc::unshare(flags) } == 0 {
            format!("unshare=ok\nmount_after_unshare={}\n", try_mount())
        } else {
            format!("unshare={}\n", errno_name(errno()))
        };
        // SAFETY: the buffer is live; the write end is ours; _exit skips destructors.
        unsafe {
            libc::write(pipe[1], report.as_ptr().cast(), report.len());
            libc::_exit(0);
        }
    }
    // SAFETY: the write end belongs to the child now.
    unsafe { libc::close(pipe[1]) };
    if child < 0 {
        out("unshare", format!("fork:{}", errno_name(errno())));
        return 1;
    }
    let mut buf = [0u8; 256];
    let mut status = 0;
    // SAFETY: buf and status are live locals; child is ours.
    let n = unsafe {
        let n = libc::read(pipe[0], buf.as_mut_ptr().cast(), buf.len());
        libc::waitpid(child, &mut status, 0);
        n
    };
    match usize::try_from(n) {
        Ok(n) if n > 0 => print!("{}", String::from_utf8_lossy(&buf[..n])),
        _ => out("unshare", format!("child-status:{status:#x}")),
    }
    0
}

// ---------------------------------------------------------------------------
// red-team checks (tests/redteam.rs)

/// Connects a stream socket to a Unix socket: `@NAME` is an abstract name (whose
/// namespace is the network namespace), anything else a path. Nothing is sent.
fn unix_connect(addr: &str) -> i32 {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixStream};
    let target = match addr.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(addr),
    };
    let result = target.and_then(|target| UnixStream::connect_addr(&target));
    match result {
        Ok(_) => out("unix-connect", "ok"),
        Err(e) => out("unix-connect", io_errno(&e)),
    }
    0
}

/// Every regular file under /proc, outside the per-process directories, that has
/// a write permission bit and opens for writing: `writable=PATH` per file, then
/// `checked=N`. Files without a write bit are skipped: sandbox root's
/// DAC_OVERRIDE opens them, but procfs gives them no write handler. Only open(2)
/// is tried, nothing is ever written.
fn proc_writable() -> i32 {
    let mut checked = 0u32;
    walk_proc(&mut |path, meta| {
        if !meta.is_file() || meta.mode() & 0o222 == 0 {
            return;
        }
        checked += 1;
        let Some(c) = path.to_str().and_then(cstring) else {
            return;
        };
        // SAFETY: c is a live NUL-terminated string; the fd is closed at once and
        // nothing is written through it.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK,
            )
        };
        if fd >= 0 {
            out("writable", path.display());
            // SAFETY: fd is ours and closed once.
            unsafe { libc::close(fd) };
        }
    });
    out("checked", checked);
    0
}

/// Whether an AF_VSOCK stream socket can be created (nothing is bound or sent):
/// vsock is not network-namespaced, so `--net none` does not cover it.
fn vsock() -> i32 {
    const AF_VSOCK: libc::c_int = 40;
    // SAFETY: plain socket(2); the fd is closed at once.
    let fd = unsafe { libc::socket(AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        out("vsock", errno_name(errno()));
    } else {
        out("vsock", "ok");
        // SAFETY: fd is ours and closed once.
        unsafe { libc::close(fd) };
    }
    0
}

/// Creates up to `n` inotify instances, prints `inotify=COUNT` (and the errno that
/// stopped it as `inotify_error`), and holds them for `secs` seconds.
fn inotify(n: u64, secs: u64) -> i32 {
    let mut made = 0u64;
    for _ in 0..n {
        // SAFETY: inotify_init1 takes flags only; the fds stay open until exit.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            out("inotify_error", errno_name(errno()));
            break;
        }
        made += 1;
    }
    out("inotify", made);
    flush();
    std::thread::sleep(Duration::from_secs(secs));
    0
}

/// Tries every way a process can give a new file in `dir` a setuid/setgid mode,
/// a device type or file capabilities, one `NAME=ok|ERRNO` line per attempt
/// (redteam2). Everything is made inside `dir`, which the test owns.
fn setid_create(dir: &str) -> i32 {
    const SETID: libc::c_uint = 0o4755;
    const SYS_FCHMODAT2: libc::c_long = 452;
    const AT_EMPTY_PATH: libc::c_int = 0x1000;
    let path = |name: &str| CString::new(format!("{dir}/{name}")).expect("no NUL in dir");
    let report = |name: &str, ret: libc::c_long| {
        out(
            name,
            if ret < 0 {
                errno_name(errno())
            } else {
                "ok".to_string()
            },
        );
    };
    let plain = path("plain");
    // SAFETY: every call below takes NUL-terminated paths that live across it,
    // plain integers, or pointers to locals of the right size; fds are closed once.
    unsafe {
        let fd = libc::open(
            plain.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o755,
        );
        if fd < 0 {
            out("setup", errno_name(errno()));
            return 1;
        }
        report("fchmod", libc::c_long::from(libc::fchmod(fd, SETID)));
        let by_fd = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
        report(
            "chmod_proc_fd",
            libc::c_long::from(libc::chmod(by_fd.as_ptr(), SETID)),
        );
        libc::close(fd);
        report(
            "chmod",
            libc::c_long::from(libc::chmod(plain.as_ptr(), SETID)),
        );
        report(
            "chmod_setgid",
            libc::c_long::from(libc::chmod(plain.as_ptr(), 0o2755)),
        );
        report(
            "fchmodat",
            libc::c_long::from(libc::fchmodat(libc::AT_FDCWD, plain.as_ptr(), SETID, 0)),
        );
        report(
            "fchmodat2",
            libc::syscall(SYS_FCHMODAT2, libc::AT_FDCWD, plain.as_ptr(), SETID, 0),
        );
        let opath = libc::open(plain.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
        report(
            "fchmodat2_o_path",
            libc::syscall(SYS_FCHMODAT2, opath, c"".as_ptr(), SETID, AT_EMPTY_PATH),
        );
        libc::close(opath);
        let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC;
        let fd = libc::open(path("open").as_ptr(), flags, SETID);
        report("open", libc::c_long::from(fd));
        let fd2 = libc::openat(libc::AT_FDCWD, path("openat").as_ptr(), flags, 0o2755);
        report("openat", libc::c_long::from(fd2));
        #[cfg(target_arch = "x86_64")]
        {
            report(
                "creat",
                libc::syscall(libc::SYS_creat, path("creat").as_ptr(), SETID),
            );
            report(
                "mknod_reg",
                libc::syscall(
                    libc::SYS_mknod,
                    path("mknod").as_ptr(),
                    libc::S_IFREG | SETID,
                    0,
                ),
            );
        }
        report(
            "mknodat_reg",
            libc::c_long::from(libc::mknodat(
                libc::AT_FDCWD,
                path("mknodat").as_ptr(),
                libc::S_IFREG | 0o6755,
                0,
            )),
        );
        // struct open_how { u64 flags, mode, resolve }
        let how: [u64; 3] = [flags as u64, u64::from(SETID), 0];
        report(
            "openat2",
            libc::syscall(
                libc::SYS_openat2,
                libc::AT_FDCWD,
                path("openat2").as_ptr(),
                how.as_ptr(),
                std::mem::size_of_val(&how),
            ),
        );
        let d = CString::new(dir).expect("no NUL");
        let tmp = libc::open(
            d.as_ptr(),
            libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC,
            SETID,
        );
        report("tmpfile_setid", libc::c_long::from(tmp));
        let tmp = libc::open(
            d.as_ptr(),
            libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC,
            0o755,
        );
        if tmp >= 0 {
            report(
                "tmpfile_fchmod",
                libc::c_long::from(libc::fchmod(tmp, SETID)),
            );
            let by_fd = CString::new(format!("/proc/self/fd/{tmp}")).expect("no NUL");
            report(
                "tmpfile_linkat",
                libc::c_long::from(libc::linkat(
                    libc::AT_FDCWD,
                    by_fd.as_ptr(),
                    libc::AT_FDCWD,
                    path("tmpfile").as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )),
            );
            libc::close(tmp);
        }
        report(
            "mknod_char",
            libc::c_long::from(libc::mknodat(
                libc::AT_FDCWD,
                path("null").as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(1, 3),
            )),
        );
        report(
            "mknod_block",
            libc::c_long::from(libc::mknodat(
                libc::AT_FDCWD,
                path("disk").as_ptr(),
                libc::S_IFBLK | 0o666,
                libc::makedev(7, 0),
            )),
        );
        report(
            "mkdir_setgid",
            libc::c_long::from(libc::mkdir(path("dir").as_ptr(), 0o6777)),
        );
        // vfs_cap_data v2 (20 bytes) and v3 (24, with rootid 0): CAP_SETUID permitted
        // and effective.
        let v2: [u32; 5] = [0x0200_0001, 1 << 7, 0, 0, 0];
        let v3: [u32; 6] = [0x0300_0001, 1 << 7, 0, 0, 0, 0];
        for (name, data, len) in [
            ("setxattr_cap_v2", v2.as_ptr().cast::<libc::c_void>(), 20),
            ("setxattr_cap_v3", v3.as_ptr().cast::<libc::c_void>(), 24),
        ] {
            report(
                name,
                libc::c_long::from(libc::setxattr(
                    plain.as_ptr(),
                    c"security.capability".as_ptr(),
                    data,
                    len,
                    0,
                )),
            );
        }
        report(
            "io_uring_setup",
            libc::syscall(libc::SYS_io_uring_setup, 1, [0u8; 120].as_mut_ptr()),
        );
    }
    0
}
