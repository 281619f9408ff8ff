//! `create`: the container set up and waiting, with no microbox process
//! left above it (DESIGN.md section 10). The engine (conmon, the runc
//! shim) is the subreaper: create clones the container's process, which
//! becomes its PID 1, builds the container inside its namespaces, takes on
//! the process's ids, capabilities and seccomp filter, then blocks reading
//! `exec.fifo` (held open read-write since create); create records it and
//! exits. `start` writes one byte into the fifo, and the process execs.
//!
//! Everything that can fail is done before create exits, so the engine
//! hears of it from create: the config, the cgroup and its device rules,
//! the mounts, the lookup of the executable, the console socket.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::mount::{open_tree, OpenTreeFlags};
use rustix::process::{set_parent_process_death_signal, Signal};

use super::cli::{CreateArgs, Globals};
use super::config::{self, Config, NsKind};
use super::process::{self, Prepared};
use super::state::{self, ContainerDir, Record};
use crate::cgroup::container::{relative_path, ContainerCgroup};
use crate::cgroup::Placement;
use crate::error::{Error, Result};
use crate::fs::container::{ContainerFs, ContainerPlan, MountEntry};
use crate::sandbox::channel::{self, Channel, Message};
use crate::sys::clone::{clone3, Forked};
use crate::sys::exec::exit_now;

/// What the container's process exits with when its set-up fails (create
/// reports the error itself).
const EXIT_SETUP_FAILED: i32 = 1;

pub(crate) fn create(g: &Globals, a: &CreateArgs) -> Result<()> {
    let bundle = absolute(a.bundle.as_deref().unwrap_or(Path::new(".")))?;
    let (config, config_text) = config::load(&bundle)?;
    let rel = relative_path(config.cgroups_path.as_deref(), &a.id, g.systemd_cgroup)?;
    let cgroup_v2 = matches!(
        crate::cgroup::detect()?,
        crate::cgroup::Hierarchy::V2 { .. }
    );
    let mounts = config
        .mounts
        .iter()
        .map(|m| MountEntry {
            destination: &m.destination,
            kind: &m.kind,
            source: &m.source,
            options: &m.options,
        })
        .collect();
    let plan = crate::fs::container::plan(&ContainerFs {
        mounts,
        masked_paths: &config.masked_paths,
        readonly_paths: &config.readonly_paths,
        root_readonly: config.root_readonly,
        sysctls: &config.sysctl,
        devices: &config.devices,
        cgroup_v2,
    })?;
    check_propagation(config.propagation.as_deref())?;
    let prepared = process::prepare(
        &config.process,
        config.seccomp.as_ref(),
        preserved_fds(a.preserve_fds),
    )?;
    let dir = ContainerDir::create(&g.root, &a.id)?;
    if let Err(err) = state::write_atomically(&dir.kept_config(), &config_text) {
        let _ = dir.remove();
        return Err(err);
    }
    match create_in(g, a, &bundle, &config, &rel, &plan, &prepared, &dir) {
        Ok(()) => Ok(()),
        Err(err) => {
            let _ = dir.remove();
            Err(err)
        }
    }
}

/// `--preserve-fds N` plus the socket-activation fds (`LISTEN_FDS`).
fn preserved_fds(given: u32) -> u32 {
    let listen = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    given.saturating_add(listen)
}

/// Only private propagation is built: every mount of the container is
/// private in its own namespace.
fn check_propagation(propagation: Option<&str>) -> Result<()> {
    match propagation {
        None | Some("") | Some("private") | Some("rprivate") => Ok(()),
        Some(other) => Err(Error::usage(format!(
            "config.json: linux.rootfsPropagation: {other:?} is not supported (only private)"
        ))),
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| Error::os("open the bundle", e).on(path.display()))
}

#[allow(clippy::too_many_arguments)]
fn create_in(
    g: &Globals,
    a: &CreateArgs,
    bundle: &Path,
    config: &Config,
    rel: &Path,
    plan: &ContainerPlan,
    prepared: &Prepared,
    dir: &ContainerDir,
) -> Result<()> {
    // The staging point the root is attached at, in the container's mount
    // namespace only.
    std::fs::create_dir_all(crate::fs::plan::staging())
        .map_err(|e| Error::os("create", e).on(crate::fs::plan::staging()))?;
    let fifo_path = dir.fifo();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo_path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .map_err(|e| Error::os("create", e).on(fifo_path.display()))?;
    // Opened here, for reading and writing: such an open of a FIFO never
    // waits for a peer, and the process, which keeps it, reads `start`'s
    // byte from it after its ids and capabilities have changed.
    let fifo = rustix::fs::open(
        &fifo_path,
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::os("open", e).on(fifo_path.display()))?;
    let console = match (&a.console_socket, config.process.terminal) {
        (Some(path), true) => Some(process::connect_console(path)?),
        (None, true) => {
            return Err(Error::usage(
                "process.terminal is true but no --console-socket was given",
            ))
        }
        (_, false) => None,
    };
    let root_tree = clone_root(&config.root)?;
    let mut prepared_binds = Vec::with_capacity(plan.binds.len());
    for bind in &plan.binds {
        let (source, _) = crate::fs::open_source(bind)?;
        prepared_binds.push(crate::fs::prepare_bind(bind, &source)?);
    }
    let joined = open_namespaces(config)?;
    let cgroup = ContainerCgroup::create(rel, &config.resources)?;
    let record_of = |pid: i32, start_time: u64| Record {
        id: a.id.clone(),
        oci_version: config.oci_version.clone(),
        pid,
        start_time,
        bundle: bundle.to_path_buf(),
        root: config.root.clone(),
        created: crate::log::rfc3339_utc(std::time::SystemTime::now()),
        cgroup: cgroup.clone(),
        own_pid_ns: config
            .namespaces
            .iter()
            .any(|n| n.kind == NsKind::Pid && n.path.is_none()),
        systemd_cgroup: g.systemd_cgroup,
        annotations: config.annotations.clone(),
    };
    // A record before the process exists (pid 0 reads as stopped): a
    // create killed from here on leaves a cgroup `delete --force` finds.
    if let Err(err) = dir.write_record(&record_of(0, 0)) {
        let _ = cgroup.remove();
        return Err(err);
    }
    let result = start_process(
        config,
        plan,
        prepared,
        &cgroup,
        fifo,
        console,
        &root_tree,
        &prepared_binds,
        &joined,
        dir.lock_fd(),
    )
    .and_then(|pid| {
        let Some((start_time, _)) = state::process_start(pid) else {
            return Err(Error::runtime(
                "the container's process ended during create",
            ));
        };
        let record = record_of(pid, start_time);
        dir.write_record(&record)?;
        if let Some(path) = &a.pid_file {
            state::write_atomically(&absolute_file(path)?, pid.to_string().as_bytes())?;
        }
        Ok(())
    });
    if result.is_err() {
        let _ = cgroup.remove();
    }
    result
}

fn absolute_file(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| Error::os("read the working directory", e))?;
    Ok(cwd.join(path))
}

/// The bundle's root, with every mount below it, as a detached private tree.
fn clone_root(root: &Path) -> Result<OwnedFd> {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_RECURSIVE;
    let tree = open_tree(rustix::fs::CWD, root, flags)
        .map_err(|e| Error::os("open root.path", e).on(root.display()))?;
    crate::sys::mount::set_attr(
        tree.as_fd(),
        rustix::mount::MountAttrFlags::empty(),
        crate::sys::mount::PROPAGATION_PRIVATE,
        true,
    )
    .map_err(|e| Error::os("make root.path private", e).on(root.display()))?;
    Ok(tree)
}

/// Namespaces joined by path, opened here (host paths), joined by the
/// process in the kernel's order: the user namespace first. A pid
/// namespace applies to children only, so create joins that one itself.
fn open_namespaces(config: &Config) -> Result<Vec<(NsKind, OwnedFd)>> {
    let mut out = Vec::new();
    let mut ordered: Vec<_> = config
        .namespaces
        .iter()
        .filter(|n| n.path.is_some())
        .collect();
    ordered.sort_by_key(|n| n.kind != NsKind::User);
    for ns in ordered {
        let Some(path) = &ns.path else { continue };
        let fd = rustix::fs::open(
            path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::os("open the namespace", e).on(path.display()))?;
        if ns.kind == NsKind::Pid {
            rustix::thread::move_into_link_name_space(fd.as_fd(), Some(ns.kind.link_type()))
                .map_err(|e| Error::os("join the pid namespace", e).on(path.display()))?;
            continue;
        }
        out.push((ns.kind, fd));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn start_process(
    config: &Config,
    plan: &ContainerPlan,
    prepared: &Prepared,
    cgroup: &ContainerCgroup,
    fifo: OwnedFd,
    console: Option<OwnedFd>,
    root_tree: &OwnedFd,
    binds: &[crate::fs::PreparedBind<'_>],
    joined: &[(NsKind, OwnedFd)],
    lock_fd: u32,
) -> Result<i32> {
    let (parent, child) = channel::pair().map_err(|e| Error::os("create the set-up channel", e))?;
    let (cgroup_fd, placement) = cgroup.placement()?;
    let mut flags = 0u64;
    for ns in &config.namespaces {
        // The cgroup namespace is made by the process once it is inside.
        if ns.path.is_none() && ns.kind != NsKind::Cgroup {
            flags |= ns.kind.flag();
        }
    }
    let new_user = config
        .namespaces
        .iter()
        .any(|n| n.kind == NsKind::User && n.path.is_none());
    match clone3(flags, cgroup_fd.as_ref().map(AsFd::as_fd))
        .map_err(|e| Error::os(crate::error::CLONE_OP, e))?
    {
        Forked::Child => {
            drop(parent);
            // Born inside (v2): the host's cgroup directory stays out.
            drop(cgroup_fd);
            if crate::sys::exec::close_range(lock_fd, lock_fd).is_err() {
                exit_now(EXIT_SETUP_FAILED);
            }
            let setup = ChildSetup {
                config,
                plan,
                prepared,
                root_tree,
                binds,
                joined,
                new_user,
            };
            container_main(&setup, child, placement, fifo, console)
        }
        Forked::Parent { pid, pidfd } => {
            drop(child);
            drop(fifo);
            drop(console);
            let told = tell_and_wait(config, new_user, pid, &parent);
            if told.is_err() {
                let _ = rustix::process::pidfd_send_signal(&pidfd, Signal::KILL);
                let _ = rustix::process::waitid(
                    rustix::process::WaitId::PidFd(pidfd.as_fd()),
                    rustix::process::WaitIdOptions::EXITED,
                );
            }
            told.map(|()| pid)
        }
    }
}

/// The parent's half: id maps and oom score, Go, then the process's word.
fn tell_and_wait(config: &Config, new_user: bool, pid: i32, chan: &Channel) -> Result<()> {
    if new_user {
        let maps = crate::ns::IdMaps {
            uids: config.uid_mappings.clone(),
            gids: config.gid_mappings.clone(),
        };
        crate::ns::write_id_maps(pid, &maps)?;
    }
    if let Some(score) = config.process.oom_score_adj {
        let path = format!("/proc/{pid}/oom_score_adj");
        std::fs::write(&path, score.to_string()).map_err(|e| Error::os("write", e).on(&path))?;
    }
    chan.send(&Message::Go)
        .map_err(|e| Error::os("start the container's set-up", e))?;
    match chan.recv() {
        Ok(Some(Message::Started)) => Ok(()),
        Ok(Some(Message::SetupFailed(err))) => Err(err),
        _ => Err(Error::runtime(
            "the container's process died during its set-up",
        )),
    }
}

struct ChildSetup<'a> {
    config: &'a Config,
    plan: &'a ContainerPlan,
    prepared: &'a Prepared,
    root_tree: &'a OwnedFd,
    binds: &'a [crate::fs::PreparedBind<'a>],
    joined: &'a [(NsKind, OwnedFd)],
    new_user: bool,
}

/// The container's process. Never returns: execve or _exit.
fn container_main(
    s: &ChildSetup<'_>,
    chan: Channel,
    placement: Placement<'_>,
    fifo: OwnedFd,
    console: Option<OwnedFd>,
) -> ! {
    let exe = match setup(s, &chan, placement, console) {
        Ok(exe) => exe,
        Err(err) => {
            let _ = chan.send(&Message::SetupFailed(err));
            exit_now(EXIT_SETUP_FAILED)
        }
    };
    // From here on create exits: no parent-death signal, and the engine
    // (the subreaper) becomes the parent.
    if set_parent_process_death_signal(None).is_err() {
        exit_now(EXIT_SETUP_FAILED);
    }
    // The process's ids, capabilities, seccomp filter and fds before it
    // waits: a created container's PID 1 holds no more than the container
    // (an exec'd process with CAP_SYS_PTRACE could drive it otherwise).
    if let Err(err) = process::enter(s.prepared, &[chan.fd().as_fd(), fifo.as_fd()]) {
        let _ = chan.send(&Message::SetupFailed(err));
        exit_now(EXIT_SETUP_FAILED);
    }
    if chan.send(&Message::Started).is_err() {
        exit_now(EXIT_SETUP_FAILED);
    }
    drop(chan);
    if let Err(err) = wait_for_start(&fifo) {
        report_late(&err);
    }
    drop(fifo);
    let err = process::execve(s.prepared, &exe);
    report_late(&err)
}

/// After create returned nobody listens on the channel: the error goes to
/// the container's stderr, which the engine logs.
fn report_late(err: &Error) -> ! {
    crate::log::error(&err.to_string(), &[]);
    exit_now(EXIT_SETUP_FAILED)
}

fn setup(
    s: &ChildSetup<'_>,
    chan: &Channel,
    placement: Placement<'_>,
    console: Option<OwnedFd>,
) -> Result<CString> {
    set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| Error::os("set the parent-death signal", e))?;
    // Non-dumpable until exec (CVE-2019-5736), as a sandbox's init.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| Error::os("make the container's process non-dumpable", e))?;
    placement
        .join_current_thread()
        .map_err(|e| Error::os("move the container into its cgroup", e))?;
    match chan.recv() {
        Ok(Some(Message::Go)) => {}
        _ => exit_now(EXIT_SETUP_FAILED),
    }
    for (kind, fd) in s.joined {
        rustix::thread::move_into_link_name_space(fd.as_fd(), Some(kind.link_type())).map_err(
            |e| {
                Error::os("join", e).on(format_args!(
                    "the container's {} namespace",
                    kind.proc_name()
                ))
            },
        )?;
    }
    if s.new_user {
        crate::ns::become_namespace_root()?;
    }
    // Joining a user namespace and the id change both reset the
    // parent-death signal and the dumpable flag: set them again.
    set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| Error::os("set the parent-death signal", e))?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| Error::os("make the container's process non-dumpable", e))?;
    if s.config
        .namespaces
        .iter()
        .any(|n| n.kind == NsKind::Cgroup && n.path.is_none())
    {
        crate::ns::enter_cgroup_namespace()?;
    }
    crate::fs::setup_container(&s.plan.steps, s.root_tree.as_fd(), s.binds)?;
    let new_uts = s.config.namespaces.iter().any(|n| n.kind == NsKind::Uts);
    for (value, set, what) in [
        (
            &s.config.hostname,
            rustix::system::sethostname as fn(&[u8]) -> rustix::io::Result<()>,
            "hostname",
        ),
        (
            &s.config.domainname,
            rustix::system::setdomainname,
            "domainname",
        ),
    ] {
        if let Some(value) = value {
            if !new_uts {
                return Err(Error::usage(format!(
                    "config.json: {what} needs a uts namespace of its own"
                )));
            }
            set(value.as_bytes()).map_err(|e| Error::os("set the container's", e).on(what))?;
        }
    }
    let new_net = s
        .config
        .namespaces
        .iter()
        .any(|n| n.kind == NsKind::Network && n.path.is_none());
    if new_net {
        crate::net::loopback_up()?;
    }
    check_cwd(s.prepared)?;
    let exe = process::resolve_executable(s.prepared)?;
    let _ = rustix::process::setsid();
    if let Some(console) = &console {
        process::setup_terminal(console.as_fd(), s.prepared.console_size)?;
    }
    Ok(exe)
}

/// process.cwd must be a directory of the container's: found at create,
/// the engine hears of it from create.
fn check_cwd(p: &Prepared) -> Result<()> {
    let st = rustix::fs::stat(p.cwd.as_c_str())
        .map_err(|e| Error::os("use process.cwd", e).on(p.cwd.to_string_lossy()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
        return Err(Error::failed("use process.cwd", "not a directory").on(p.cwd.to_string_lossy()));
    }
    Ok(())
}

/// Blocks until `start` writes its byte into the fifo, which this process
/// holds open for reading and writing since create (so the open never
/// waited, and needs no permission on the fifo after the ids change).
fn wait_for_start(fifo: &OwnedFd) -> Result<()> {
    let mut byte = [0u8; 1];
    loop {
        match rustix::io::read(fifo, &mut byte) {
            Ok(1) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => return Err(Error::runtime("the start fifo closed before start")),
            Err(e) => return Err(Error::os("wait on the start fifo", e)),
        }
    }
}
