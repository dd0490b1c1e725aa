//! The launcher's confinement of itself (its "jail"), in the spirit of Firecracker's jailer,
//! but applied by the launcher to its own process: it needs root to set up the spacecore (the
//! network namespace, the tap, the published ports, the disk), and none of it once the guest
//! runs.
//!
//! Two steps:
//!
//! 1. [`prepare`], at the start of the launch while the process has a single thread: no new
//!    privileges, an empty capability bounding set, no inheritable or ambient capabilities, a
//!    private mount namespace (so that the later `pivot_root` moves every thread), and the
//!    seccomp filters compiled. From then on, each thread that starts installs the filter of
//!    its kind ([`enter`], [`spawn`]), including the threads started while the devices are set
//!    up (the relays' acceptors, the metrics server, the signal thread).
//! 2. [`confine`], once the devices, the namespace, the tap, the disk, the published ports and
//!    the first VM exist and before the guest runs its first instruction: a cgroup v2 with
//!    `cpu.max` and `memory.max` where the host has one, rlimits, an empty root directory
//!    (`pivot_root`, the old root detached), the thread that starts device workers, the switch
//!    to the unprivileged user (which clears every capability of every thread), and the main
//!    thread's own filter.
//!
//! Everything a later boot needs was obtained before: the `/dev/kvm` descriptor (kept by
//! `vmm`), the open image, the disk and the tap (kept by the devices), the eventfds (created
//! with the devices), the passwords. So restarts work unchanged in the jail: a new VM is an
//! ioctl on the kept `/dev/kvm` descriptor, guest memory an anonymous mapping.

mod cgroup;
pub mod seccomp;

pub use seccomp::{Ids, Kind};

use crate::output::Log;
use seccompiler::BpfProgram;
use std::cell::Cell;
use std::ffi::CString;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};
use std::thread::{Builder, JoinHandle};

/// The user the launcher switches to by default.
pub const DEFAULT_USER: &str = "spacecore";
/// The directory under which each spacecore's empty root is made, `<dir>/<name>`.
pub const DEFAULT_JAIL_DIR: &str = "/run/spacecore/jail";

/// Why the launcher cannot confine itself (or refuses to run unconfined).
#[derive(Debug, thiserror::Error)]
#[error("confinement: {0}")]
pub struct JailError(String);

fn fail(what: impl std::fmt::Display, e: impl std::fmt::Display) -> JailError {
    JailError(format!("{what}: {e}"))
}

fn last_error(what: impl std::fmt::Display) -> JailError {
    fail(what, std::io::Error::last_os_error())
}

/// What the command line says about confinement.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--no-jail`: do not confine (unsafe).
    pub no_jail: bool,
    /// `--uid`: the user id to switch to, instead of the `spacecore` user's.
    pub uid: Option<u32>,
    /// `--gid`: the group id to switch to, instead of the `spacecore` user's group.
    pub gid: Option<u32>,
}

/// What the launcher will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Confine, as this user.
    Jail(Identity),
    /// Run unconfined, for this reason (printed at start).
    Off(String),
}

/// The unprivileged user and group the confined launcher runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// How it was chosen, for the start-up line: `spacecore` or `--uid/--gid`.
    pub source: String,
}

/// Whether to confine, from the spec (`spec.security.isolation`,
/// `spec.virtualization.criteria.security`), `--no-jail` and whether the launcher runs as root.
/// Confinement is on by default as root; `"high"` makes it mandatory.
pub fn wanted(
    isolation: Option<hac::Isolation>,
    security: hac::SecurityLevel,
    no_jail: bool,
    root: bool,
) -> Result<Option<String>, JailError> {
    let high = security == hac::SecurityLevel::High;
    match (isolation, no_jail) {
        (Some(hac::Isolation::Jailed), true) => Err(JailError(
            "--no-jail contradicts spec.security.isolation = \"jailed\"; remove one of the two".into(),
        )),
        (_, true) if high => Err(JailError(
            "--no-jail is refused: spec.virtualization.criteria.security = \"high\" makes confinement mandatory"
                .into(),
        )),
        (_, true) => Ok(Some("--no-jail".into())),
        (Some(hac::Isolation::Unconfined), false) => Ok(Some("spec.security.isolation = \"none\"".into())),
        (_, false) if root => Ok(None),
        (Some(hac::Isolation::Jailed), false) => Err(JailError(
            "spec.security.isolation = \"jailed\" needs the launcher to start as root (it drops root \
             once the devices are set up)"
                .into(),
        )),
        (None, false) if high => Err(JailError(
            "spec.virtualization.criteria.security = \"high\" needs the launcher to start as root, to confine it"
                .into(),
        )),
        (None, false) => Ok(Some("not started as root".into())),
    }
}

/// Decides and, when confining, finds the user to switch to: `--uid`/`--gid`, else the
/// [`DEFAULT_USER`] user and its group. A missing user is an error saying how to create one.
pub fn decide(plan: &hac::Plan, options: &Options) -> Result<Decision, JailError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let security = plan.virtualization.criteria.security;
    if let Some(why) = wanted(plan.security_isolation, security, options.no_jail, root)? {
        return Ok(Decision::Off(why));
    }
    let identity = match (options.uid, options.gid) {
        (Some(uid), Some(gid)) => Identity { uid, gid, source: "--uid/--gid".into() },
        (uid, gid) => {
            let user = lookup_user(DEFAULT_USER)?.ok_or_else(|| {
                JailError(format!(
                    "no user `{DEFAULT_USER}` on this host to run the confined launcher as; create it \
                     (`useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
                     {DEFAULT_USER}`), or pass --uid and --gid, or run unconfined with --no-jail (unsafe: \
                     docs/security.md)"
                ))
            })?;
            let source = match (uid, gid) {
                (None, None) => format!("user {DEFAULT_USER}"),
                _ => format!("--uid/--gid and user {DEFAULT_USER}"),
            };
            Identity { uid: uid.unwrap_or(user.0), gid: gid.unwrap_or(user.1), source }
        }
    };
    if identity.uid == 0 || identity.gid == 0 {
        return Err(JailError(format!(
            "uid {} gid {}: the confined launcher must run as an unprivileged user and group, not root",
            identity.uid, identity.gid
        )));
    }
    Ok(Decision::Jail(identity))
}

/// The uid and gid of `name` from the user database, `None` if there is no such user.
fn lookup_user(name: &str) -> Result<Option<(u32, u32)>, JailError> {
    let c_name = CString::new(name).map_err(|e| fail("user name", e))?;
    // SAFETY: zeroed `passwd` is a valid out-parameter; getpwnam_r writes it and its strings
    // into `buf`, which outlives every use.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the sizes given.
    let rc = unsafe { libc::getpwnam_r(c_name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 {
        return Err(fail(format!("cannot look up user {name}"), std::io::Error::from_raw_os_error(rc)));
    }
    Ok((!result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid)))
}

/// The compiled filters and the nursery, once [`prepare`] ran.
struct Active {
    programs: Vec<BpfProgram>,
    /// Installed with each of `programs`: opening a file fails with EACCES.
    refusals: BpfProgram,
    nursery: OnceLock<std::sync::Mutex<Sender<Job>>>,
    /// Debug builds only: the kind of thread that makes a forbidden call as soon as its filter
    /// is in place (`SPACECORE_JAIL_SELFTEST`), to show what a violation does.
    selftest: Option<Kind>,
}

type Job = Box<dyn FnOnce() + Send>;

static ACTIVE: OnceLock<Active> = OnceLock::new();

thread_local! {
    /// The kind whose filter this thread installed or inherited from the nursery.
    static INSTALLED: Cell<Option<Kind>> = const { Cell::new(None) };
}

/// Whether the process is being confined (after [`prepare`]).
pub fn active() -> bool {
    ACTIVE.get().is_some()
}

/// Installs `kind`'s filter on the calling thread, once, if the process is being confined;
/// otherwise does nothing. A filter that cannot be installed ends the process: a thread must
/// not run unconfined in a launcher that confines itself.
pub fn enter(kind: Kind) {
    if let Some(active) = install(kind) {
        selftest(active, kind);
    }
}

/// [`enter`] without the selftest; the process's filters, if it is being confined.
fn install(kind: Kind) -> Option<&'static Active> {
    let active = ACTIVE.get()?;
    if INSTALLED.get() != Some(kind) {
        let applied = seccompiler::apply_filter(&active.refusals)
            .and_then(|()| seccompiler::apply_filter(&active.programs[kind.index()]));
        if let Err(e) = applied {
            eprintln!("hac-launch: confinement: cannot install the {} seccomp filter: {e}", kind.name());
            std::process::abort();
        }
        INSTALLED.set(Some(kind));
    }
    Some(active)
}

/// Debug builds: with `SPACECORE_JAIL_SELFTEST=KIND`, the first thread of that kind makes a
/// call its filter forbids, once the filter is in place: the process must die of SIGSYS.
fn selftest(active: &Active, kind: Kind) {
    if active.selftest == Some(kind) {
        // No list has Unix sockets. SAFETY: socket(2) has no memory-safety preconditions; it
        // does not return: the filter kills the process.
        unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
    }
}

/// Starts `f` on a new thread of `kind`, confined to `kind`'s filter when the process is being
/// confined. Device workers are started by the nursery, a thread that runs the device filter
/// only, so that they do not inherit the filter of the vCPU thread that activates them (a vCPU
/// thread has no disk or tap calls).
pub fn spawn<F, T>(kind: Kind, builder: Builder, f: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let Some(active) = ACTIVE.get() else { return builder.spawn(f) };
    let nursery = active.nursery.get().filter(|_| kind == Kind::Device);
    let Some(nursery) = nursery else {
        return builder.spawn(move || {
            enter(kind);
            f()
        });
    };
    let (reply, answer) = channel();
    let job: Job = Box::new(move || {
        let spawned = builder.spawn(move || {
            // The nursery's filter, inherited.
            INSTALLED.set(Some(Kind::Device));
            if let Some(active) = ACTIVE.get() {
                selftest(active, Kind::Device);
            }
            f()
        });
        let _ = reply.send(spawned);
    });
    let sent = nursery.lock().unwrap_or_else(|p| p.into_inner()).send(job);
    sent.map_err(|_| std::io::Error::other("the thread that starts device workers is gone"))?;
    answer.recv().map_err(|_| std::io::Error::other("the thread that starts device workers is gone"))?
}

/// What [`prepare`] set up, for [`confine`].
#[derive(Debug)]
pub struct Prepared {
    identity: Identity,
    root: PathBuf,
    /// Time spent in [`prepare`].
    took: std::time::Duration,
}

/// Step 1, while the process has one thread: no new privileges, no capability in the bounding,
/// inheritable and ambient sets (the effective and permitted ones stay until [`confine`]), a
/// private mount namespace, and the filters compiled and in force for every thread started
/// from now on. `jail_dir/<name>` will be the empty root.
pub fn prepare(identity: Identity, name: &str, jail_dir: &Path) -> Result<Prepared, JailError> {
    let started = std::time::Instant::now();
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1) has no memory-safety preconditions.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(last_error("no_new_privs"));
    }
    drop_bounding_set()?;
    // SAFETY: clears this thread's ambient set; no memory is passed.
    if unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) } != 0 {
        return Err(last_error("clearing the ambient capabilities"));
    }
    set_capabilities(|data| {
        for d in data.iter_mut() {
            d.inheritable = 0;
        }
    })?;
    // A mount namespace of the launcher's own, entered while it has one thread, so that every
    // thread shares it and the pivot_root of `confine` moves them all. Nothing of it
    // propagates back to the host.
    // SAFETY: unshare and mount have no memory-safety preconditions; the strings are valid.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(last_error("cannot make a private mount namespace"));
        }
        let flags = libc::MS_REC | libc::MS_PRIVATE;
        if libc::mount(c"none".as_ptr(), c"/".as_ptr(), std::ptr::null(), flags, std::ptr::null()) != 0 {
            return Err(last_error("cannot make the mounts private"));
        }
    }
    // SAFETY: getpid cannot fail.
    let ids = Ids { uid: identity.uid, gid: identity.gid, pid: unsafe { libc::getpid() } as u32 };
    let programs = Kind::ALL
        .iter()
        .map(|&kind| {
            seccomp::compile(kind, ids).map_err(|e| fail(format!("the {} seccomp filter", kind.name()), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let selftest = if cfg!(debug_assertions) {
        let wanted = std::env::var("SPACECORE_JAIL_SELFTEST").unwrap_or_default();
        Kind::ALL.into_iter().find(|kind| kind.name() == wanted)
    } else {
        None
    };
    let refusals = seccomp::refusals().map_err(|e| fail("the seccomp filter of refusals", e))?;
    let active = Active { programs, refusals, nursery: OnceLock::new(), selftest };
    if ACTIVE.set(active).is_err() {
        return Err(JailError("prepared twice".into()));
    }
    Ok(Prepared { identity, root: jail_dir.join(name), took: started.elapsed() })
}

/// What the confined process may need, to size its rlimits.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// vCPUs.
    pub vcpus: u32,
    /// Guest memory, bytes.
    pub memory_bytes: u64,
    /// The most connections the launcher may hold at once: those its published ports and its
    /// relays to named endpoints may relay, and its metrics server may serve.
    pub connections: u64,
    /// The disk's size in bytes (0: no disk).
    pub disk_bytes: u64,
    /// The largest file of a snapshot the launcher saves (`--save-snapshot`; 0: it saves none).
    pub snapshot_bytes: u64,
    /// Whether the log goes to a file (`spec.observability.log_file`), which grows without end.
    pub log_file: bool,
}

/// The descriptors and threads a launcher may hold at once beyond those open at confinement:
/// two (descriptors and threads) per relayed connection, a few per boot.
fn headroom(budget: &Budget) -> u64 {
    2 * budget.connections + 4 * u64::from(budget.vcpus) + 64
}

/// `RLIMIT_NPROC` for a launcher that has `own` threads and may need `headroom` more, on a host
/// whose kernel allows `threads_max` threads in all (`/proc/sys/kernel/threads-max`). The kernel
/// counts the limit per user, over every process of the user, so it bounds all the spacecores
/// sharing the `spacecore` user together, not this one: sized per launcher, it let the first
/// few hundred launchers of a host take the count and the next ones fail to start threads
/// (`cargo xtask bench density --count 1000`: relays refused connections). So the user's
/// threads may take half of the host's, enough for thousands of spacecores, while a thread
/// bomb still leaves the host the other half. Per spacecore, threads are bounded by the relays'
/// connection limits and, where the host offers it, the cgroup.
pub fn nproc_limit(own: u64, headroom: u64, threads_max: u64) -> u64 {
    (own + headroom).max(threads_max / 2)
}

/// What [`confine`] did, for the start-up line and the tests.
#[derive(Debug, Clone)]
pub struct Confined {
    /// The empty root.
    pub root: PathBuf,
    /// The cgroup, or why there is none.
    pub cgroup: Result<PathBuf, String>,
    /// `RLIMIT_NOFILE`.
    pub nofile: u64,
    /// `RLIMIT_NPROC`.
    pub nproc: u64,
    /// `RLIMIT_FSIZE`, if set.
    pub fsize: Option<u64>,
}

/// Step 2, once everything the guest will ever use is open and before it runs: cgroup,
/// rlimits, the empty root, the nursery, the unprivileged user, the main thread's filter.
pub fn confine(prepared: Prepared, name: &str, budget: &Budget, log: &Log) -> Result<Confined, JailError> {
    let started = std::time::Instant::now();
    let Prepared { identity, root, took } = prepared;
    // Caches filled while files may still be opened: the launcher's own /proc/self/status
    // (rss), and malloc's arena limit (glibc reads /sys/devices/system/cpu/online the first
    // time a thread needs a new arena).
    let _ = crate::host::rss_kib();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: mallopt only sets a malloc parameter.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, (8 * cpus) as libc::c_int) };

    let cgroup = cgroup::join(name, budget.vcpus, budget.memory_bytes);
    match &cgroup {
        Ok(path) => log.launcher(format_args!(
            "cgroup: {} (cpu.max {}, memory.max {})",
            path.display(),
            cgroup::cpu_max(budget.vcpus),
            cgroup::memory_max(budget.memory_bytes)
        )),
        Err(why) => log.launcher(format_args!(
            "cgroup: none: {why}; the guest's cpu and memory are not limited by a cgroup"
        )),
    }

    let (nofile, nproc, fsize) = set_rlimits(budget)?;
    enter_empty_root(&root)?;

    // The nursery: starts device workers under the device filter only.
    let (jobs, inbox) = channel::<Job>();
    Builder::new()
        .name("jail-nursery".into())
        .spawn(move || {
            install(Kind::Device);
            for job in inbox {
                job();
            }
        })
        .map_err(|e| fail("cannot start the thread that starts device workers", e))?;
    if let Some(active) = ACTIVE.get() {
        let _ = active.nursery.set(std::sync::Mutex::new(jobs));
    }

    switch_user(&identity)?;
    enter(Kind::Control);
    log.launcher(format_args!(
        "confined: uid {} gid {} ({}), root {} (empty, private mount namespace), seccomp per thread \
         (vcpu, device, relay, control, update; a violation kills the launcher with SIGSYS), no capabilities, \
         no_new_privs, rlimits nofile {nofile} nproc {nproc} core 0 fsize {}; in {} us",
        identity.uid,
        identity.gid,
        identity.source,
        root.display(),
        fsize.map_or("unlimited".to_owned(), |n| n.to_string()),
        (took + started.elapsed()).as_micros(),
    ));
    Ok(Confined { root, cgroup, nofile, nproc, fsize })
}

/// Drops every capability from this thread's bounding set (threads started later inherit it).
fn drop_bounding_set() -> Result<(), JailError> {
    for cap in 0..=63 {
        // SAFETY: PR_CAPBSET_READ/DROP take a capability number and touch no memory.
        let present = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap, 0, 0, 0) };
        if present < 0 {
            break; // past the last capability this kernel knows
        }
        // SAFETY: as above.
        if present == 1 && unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            return Err(last_error(format!("cannot drop capability {cap} from the bounding set")));
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// This thread's capability sets (effective, permitted, inheritable), 64 bits each.
fn capabilities() -> Result<[CapData; 2], JailError> {
    let mut header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two `CapData` (version 3) into `data`.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(last_error("capget"));
    }
    Ok(data)
}

fn set_capabilities(change: impl FnOnce(&mut [CapData; 2])) -> Result<(), JailError> {
    let mut data = capabilities()?;
    change(&mut data);
    let mut header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    // SAFETY: capset reads two `CapData` (version 3) from `data`.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(last_error("capset"));
    }
    Ok(())
}

/// Sets the rlimits; returns (nofile, nproc, fsize).
fn set_rlimits(budget: &Budget) -> Result<(u64, u64, Option<u64>), JailError> {
    let open_now = highest_open_fd() + 1;
    let threads_now = std::fs::read_dir("/proc/self/task").map_or(32, |d| d.count() as u64);
    let nofile = open_now + headroom(budget);
    let threads_max = std::fs::read_to_string("/proc/sys/kernel/threads-max")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(65_536);
    let nproc = nproc_limit(threads_now, headroom(budget), threads_max);
    set_rlimit(libc::RLIMIT_NOFILE, nofile, "RLIMIT_NOFILE")?;
    set_rlimit(libc::RLIMIT_NPROC, nproc, "RLIMIT_NPROC")?;
    set_rlimit(libc::RLIMIT_CORE, 0, "RLIMIT_CORE")?;
    // The largest file the launcher writes is its disk or a snapshot's memory, unless its log (or its standard output
    // or error) goes to a regular file, which grows without end.
    let output_to_file = [libc::STDOUT_FILENO, libc::STDERR_FILENO].iter().any(|&fd| {
        // SAFETY: fstat writes one `stat` into a valid place.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        unsafe { libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG }
    });
    let fsize = (!budget.log_file && !output_to_file).then_some(budget.disk_bytes.max(budget.snapshot_bytes));
    if let Some(bytes) = fsize {
        set_rlimit(libc::RLIMIT_FSIZE, bytes, "RLIMIT_FSIZE")?;
    }
    Ok((nofile, nproc, fsize))
}

fn highest_open_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok()).max().unwrap_or(2))
        .unwrap_or(1024)
}

fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64, name: &str) -> Result<(), JailError> {
    let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
    // SAFETY: setrlimit reads one valid `rlimit`.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(last_error(format!("cannot set {name} to {value}")));
    }
    Ok(())
}

/// Makes `root` (created if missing: a directory of root's, mode 0700, not a symbolic link)
/// the root of every thread, read-only, with the host's tree detached.
fn enter_empty_root(root: &Path) -> Result<(), JailError> {
    let what = |w: &str| format!("{w} {}", root.display());
    if let Some(parent) = root.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| fail(what("cannot create the parent of"), e))?;
        // Nobody but root may swap the root for something else between the checks below and
        // the mount.
        let meta =
            std::fs::symlink_metadata(parent).map_err(|e| fail(what("cannot read the parent of"), e))?;
        if !meta.is_dir() || meta.uid() != 0 || meta.permissions().mode() & 0o022 != 0 {
            return Err(JailError(format!(
                "{} (--jail-dir) must be a directory owned by root that no one else may write to",
                parent.display()
            )));
        }
    }
    match std::fs::DirBuilder::new().mode(0o700).create(root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(what("cannot create"), e)),
    }
    let meta = std::fs::symlink_metadata(root).map_err(|e| fail(what("cannot read"), e))?;
    if !meta.is_dir() || meta.uid() != 0 || meta.permissions().mode() & 0o777 != 0o700 {
        return Err(JailError(format!(
            "{} must be a directory owned by root with mode 0700 (not a symbolic link)",
            root.display()
        )));
    }
    if std::fs::read_dir(root).map_err(|e| fail(what("cannot read"), e))?.next().is_some() {
        return Err(JailError(format!("{} must be empty: it becomes the launcher's root", root.display())));
    }
    let c_root = CString::new(root.as_os_str().as_encoded_bytes()).map_err(|e| fail("root path", e))?;
    let none = std::ptr::null::<libc::c_char>();
    // SAFETY: mount, chdir, pivot_root and umount2 take valid C strings; they have no other
    // memory-safety preconditions.
    unsafe {
        if libc::mount(c_root.as_ptr(), c_root.as_ptr(), none, libc::MS_BIND | libc::MS_REC, std::ptr::null())
            != 0
        {
            return Err(last_error(what("cannot bind-mount")));
        }
        let flags = libc::MS_BIND
            | libc::MS_REMOUNT
            | libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_NOEXEC;
        if libc::mount(none, c_root.as_ptr(), none, flags, std::ptr::null()) != 0 {
            return Err(last_error(what("cannot make read-only")));
        }
        if libc::chdir(c_root.as_ptr()) != 0 {
            return Err(last_error(what("cannot enter")));
        }
        // pivot_root(".", "."): the old root ends up on top of the new one, then is detached.
        if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0 {
            return Err(last_error(what("pivot_root into")));
        }
        if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 {
            return Err(last_error("cannot detach the host's root"));
        }
        if libc::chdir(c"/".as_ptr()) != 0 {
            return Err(last_error("cannot enter the new root"));
        }
    }
    Ok(())
}

/// Switches every thread to the unprivileged user and group, with no supplementary group
/// (glibc makes each thread switch); leaving uid 0 clears every thread's effective, permitted
/// and ambient capabilities. Then checks that this thread has none left.
fn switch_user(identity: &Identity) -> Result<(), JailError> {
    let Identity { uid, gid, .. } = *identity;
    // SAFETY: setgroups with an empty list, setresgid and setresuid take no memory.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(last_error("cannot drop the supplementary groups"));
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            return Err(last_error(format!("cannot switch to gid {gid}")));
        }
        if libc::setresuid(uid, uid, uid) != 0 {
            return Err(last_error(format!("cannot switch to uid {uid}")));
        }
    }
    let left = capabilities()?;
    if left.iter().any(|d| d.effective != 0 || d.permitted != 0 || d.inheritable != 0) {
        return Err(JailError(format!("capabilities left after switching to uid {uid}: {left:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hac::{Isolation, SecurityLevel};

    #[test]
    fn confinement_is_on_as_root_and_mandatory_with_high_security() {
        let std = SecurityLevel::Standard;
        let high = SecurityLevel::High;
        assert_eq!(wanted(None, std, false, true).unwrap(), None);
        assert_eq!(wanted(Some(Isolation::Jailed), std, false, true).unwrap(), None);
        assert_eq!(wanted(None, std, true, true).unwrap().as_deref(), Some("--no-jail"));
        assert_eq!(
            wanted(Some(Isolation::Unconfined), std, false, true).unwrap().as_deref(),
            Some("spec.security.isolation = \"none\"")
        );
        assert_eq!(wanted(None, std, false, false).unwrap().as_deref(), Some("not started as root"));
        assert!(
            wanted(Some(Isolation::Jailed), std, true, true).unwrap_err().to_string().contains("contradicts")
        );
        assert!(wanted(Some(Isolation::Jailed), std, false, false).unwrap_err().to_string().contains("root"));
        assert!(wanted(None, high, true, true).unwrap_err().to_string().contains("mandatory"));
        assert!(wanted(None, high, false, false).unwrap_err().to_string().contains("root"));
        assert_eq!(wanted(None, high, false, true).unwrap(), None);
    }

    #[test]
    fn a_missing_user_is_none_and_root_exists() {
        assert_eq!(lookup_user("root").unwrap(), Some((0, 0)));
        assert_eq!(lookup_user("no-such-user-spacecore-test").unwrap(), None);
    }

    #[test]
    fn the_thread_limit_leaves_room_for_a_fleet_and_half_the_host() {
        // This host: threads-max 192739. A thousand launchers of ~20 threads fit; a bomb does not.
        assert_eq!(nproc_limit(20, 600, 192_739), 96_369);
        assert!(nproc_limit(20, 600, 192_739) > 1000 * 20);
        // A tiny host still gives the launcher its own threads and headroom.
        assert_eq!(nproc_limit(20, 600, 1000), 620);
    }

    #[test]
    fn the_budget_covers_every_relayed_connection() {
        let budget = Budget {
            vcpus: 2,
            memory_bytes: 1 << 30,
            connections: 2 * 256 + 64 + 8,
            disk_bytes: 0,
            snapshot_bytes: 0,
            log_file: false,
        };
        assert!(headroom(&budget) >= 2 * (2 * 256 + 64 + 8) + 4 * 2);
    }
}
