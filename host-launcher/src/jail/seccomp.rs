//! The seccomp allowlists, one per kind of launcher thread, compiled with `seccompiler`.
//!
//! A thread's filters stack: a thread created by a filtered thread keeps its creator's filters
//! and may add its own, so what it may do is what every filter of its chain allows. The lists
//! are built for that chain:
//!
//! * the main thread (the supervisor) runs [`Kind::Control`]; the vCPU threads it starts add
//!   [`Kind::Vcpu`] (a subset: `KVM_RUN` and the register reads of a crash report, the console,
//!   and what a device's activation needs), and the health-check threads add [`Kind::Relay`];
//! * device workers are started by a thread that runs [`Kind::Device`] only (the "nursery",
//!   see `jail::spawn`), so a vCPU thread never needs the disk's or the tap's system calls;
//! * the published ports' and the endpoints' relays (accept, connect, copy) run
//!   [`Kind::Relay`], installed by their acceptor threads, which their connection threads inherit;
//! * the signal thread and the metrics server run [`Kind::Control`];
//! * the update thread (`crate::update`: the control socket of `hac-launch --update`) runs
//!   [`Kind::Update`]: a relay's calls, and `recvmsg` to take the new image's descriptor.
//!
//! Anything else kills the whole process (`SECCOMP_RET_KILL_PROCESS`): it ends with SIGSYS.
//! No list has `execve`, `ptrace`, `mount`, `bpf`, `kexec_*`, `init_module`, `process_vm_*`,
//! `unshare`, `setns`, `keyctl` or `perf_event_open`.
//!
//! Opening a file is refused rather than fatal: a second filter, [`refusals`], installed with
//! every list, answers `open`, `openat` and `openat2` with `EACCES` without performing them.
//! glibc opens files of its own accord (malloc reads `/proc/sys/vm/overcommit_memory` the first
//! time a thread's heap shrinks, and `/sys/devices/system/cpu/online` when it makes an arena),
//! and copes with a refusal; there is nothing to open in the launcher's empty root anyway.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// The kinds of launcher threads, each with its own allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A vCPU thread: runs the guest, handles its exits (hypercalls, device registers).
    Vcpu,
    /// A device worker: serves a virtio queue from the disk file or the tap.
    Device,
    /// A relay thread: a published port's or a named endpoint's acceptor and connections, the
    /// health checks.
    Relay,
    /// The rest: the main thread (supervisor: VM creation and restarts), the signal thread,
    /// the metrics server.
    Control,
    /// The update thread: accepts `hac-launch --update` on the control socket, takes the new
    /// image's open descriptor, checks the new guest's health from inside the namespace.
    Update,
}

impl Kind {
    /// Every kind, in the order of [`Kind::index`].
    pub const ALL: [Kind; 5] = [Kind::Vcpu, Kind::Device, Kind::Relay, Kind::Control, Kind::Update];

    /// The kind's position in [`Kind::ALL`].
    pub fn index(self) -> usize {
        match self {
            Kind::Vcpu => 0,
            Kind::Device => 1,
            Kind::Relay => 2,
            Kind::Control => 3,
            Kind::Update => 4,
        }
    }

    /// The kind's name, as the docs and the selftest use it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Vcpu => "vcpu",
            Kind::Device => "device",
            Kind::Relay => "relay",
            Kind::Control => "control",
            Kind::Update => "update",
        }
    }
}

/// What the filters need to know of the process: the ids it switches to (the only `setresuid`,
/// `setresgid` and `setgroups` the filters allow are the switch to them) and its pid (threads
/// may signal threads of their own process only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// The unprivileged user id.
    pub uid: u32,
    /// The unprivileged group id.
    pub gid: u32,
    /// This process's id.
    pub pid: u32,
}

/// One system call's rule: allowed whatever its arguments, or when one of these conditions
/// sets holds.
#[derive(Debug, Clone)]
enum Rule {
    Always,
    When(Vec<Vec<Cond>>),
}

type List = BTreeMap<i64, Rule>;

fn add(list: &mut List, syscall: libc::c_long, rule: Rule) {
    let merged = match (list.remove(&syscall), rule) {
        (None, rule) => rule,
        (Some(Rule::Always), _) | (_, Rule::Always) => Rule::Always,
        (Some(Rule::When(mut a)), Rule::When(b)) => {
            a.extend(b);
            Rule::When(a)
        }
    };
    list.insert(syscall, merged);
}

fn always(list: &mut List, syscalls: &[libc::c_long]) {
    for &s in syscalls {
        add(list, s, Rule::Always);
    }
}

/// `arg == value` (the low 32 bits, as the kernel reads `int` arguments).
fn eq(arg: u8, value: u64) -> Cond {
    Cond::new(arg, Len::Dword, Op::Eq, value).expect("argument index below 6")
}

/// `arg & mask == value & mask`.
fn masked(arg: u8, mask: u64, value: u64) -> Cond {
    Cond::new(arg, Len::Dword, Op::MaskedEq(mask), value).expect("argument index below 6")
}

fn when(list: &mut List, syscall: libc::c_long, conditions: Vec<Vec<Cond>>) {
    add(list, syscall, Rule::When(conditions));
}

/// `_IOC(dir, type, nr, size)` of the Linux ioctl encoding.
const fn ioc(dir: u64, kind: u64, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | (kind << 8) | nr
}
const KVMIO: u64 = 0xAE;
const IOC_READ: u64 = 2;
const IOC_WRITE: u64 = 1;
/// `KVM_RUN`.
pub const KVM_RUN: u64 = ioc(0, KVMIO, 0x80, 0);
/// `KVM_GET_REGS`.
pub const KVM_GET_REGS: u64 = ioc(IOC_READ, KVMIO, 0x81, size_of::<kvm_bindings::kvm_regs>() as u64);
/// `KVM_GET_SREGS`.
pub const KVM_GET_SREGS: u64 = ioc(IOC_READ, KVMIO, 0x83, size_of::<kvm_bindings::kvm_sregs>() as u64);

/// `KVM_GET_XSAVE` (a snapshot's vector registers).
pub const KVM_GET_XSAVE: u64 = ioc(IOC_READ, KVMIO, 0xa4, size_of::<kvm_bindings::kvm_xsave>() as u64);
/// `KVM_GET_MSRS` (a snapshot's TSC).
pub const KVM_GET_MSRS: u64 =
    ioc(IOC_READ | IOC_WRITE, KVMIO, 0x88, size_of::<kvm_bindings::kvm_msrs>() as u64);

/// What every launcher thread does: memory, threads, futexes, time, exit; the switch to the
/// unprivileged ids (glibc makes every thread do it); and the signal handlers' wake-up.
fn base(ids: Ids) -> List {
    use libc::*;
    let mut list = List::new();
    always(
        &mut list,
        &[
            SYS_futex,
            SYS_exit,
            SYS_exit_group,
            SYS_mmap,
            SYS_mprotect,
            SYS_munmap,
            SYS_madvise,
            SYS_mremap,
            SYS_brk,
            SYS_clone3,
            SYS_set_robust_list,
            SYS_rseq,
            SYS_sigaltstack,
            SYS_rt_sigprocmask,
            SYS_rt_sigreturn,
            SYS_sched_getaffinity,
            SYS_sched_yield,
            SYS_gettid,
            SYS_getpid,
            SYS_clock_gettime,
            SYS_clock_nanosleep,
            SYS_nanosleep,
            SYS_getrandom,
            SYS_write,
            SYS_close,
            // Answered EACCES by `refusals`, never performed.
            SYS_open,
            SYS_openat,
            SYS_openat2,
        ],
    );
    // Threads only (the fallback of glibc's pthread_create when clone3 is missing).
    when(&mut list, SYS_clone, vec![vec![masked(0, CLONE_THREAD as u64, CLONE_THREAD as u64)]]);
    // Thread names, and seccompiler's own call before each filter it installs.
    when(
        &mut list,
        SYS_prctl,
        vec![vec![eq(0, PR_SET_NAME as u64)], vec![eq(0, PR_SET_NO_NEW_PRIVS as u64), eq(1, 1)]],
    );
    // Adding a filter only ever narrows what the thread may do; never with TSYNC.
    when(&mut list, SYS_seccomp, vec![vec![eq(0, SECCOMP_SET_MODE_FILTER as u64), eq(1, 0)]]);
    let (uid, gid) = (u64::from(ids.uid), u64::from(ids.gid));
    when(&mut list, SYS_setresuid, vec![vec![eq(0, uid), eq(1, uid), eq(2, uid)]]);
    when(&mut list, SYS_setresgid, vec![vec![eq(0, gid), eq(1, gid), eq(2, gid)]]);
    when(&mut list, SYS_setgroups, vec![vec![eq(0, 0)]]);
    // Whether a descriptor is open: the standard library asks before it closes one (debug
    // builds).
    when(&mut list, SYS_fcntl, vec![vec![eq(1, F_GETFD as u64)]]);
    // Signals to this process's own threads only (vCPU kicks, abort).
    when(&mut list, SYS_tgkill, vec![vec![eq(0, u64::from(ids.pid))]]);
    // The SIGTERM/SIGINT handler wakes the signal thread with send(.., MSG_DONTWAIT) on
    // whichever thread it runs.
    when(&mut list, SYS_sendto, vec![vec![eq(3, MSG_DONTWAIT as u64)]]);
    list
}

/// A vCPU thread: `KVM_RUN`, the registers for a crash report or a snapshot, the console, the
/// Wait hypercall (futexes), and a device's activation (its stop event, epoll and rate timer; the
/// worker itself is started by the nursery).
fn vcpu(list: &mut List) {
    use libc::*;
    let ioctls = [KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_XSAVE, KVM_GET_MSRS]
        .iter()
        .map(|&cmd| vec![eq(1, cmd)])
        .collect();
    when(list, SYS_ioctl, ioctls);
    always(list, &[SYS_read, SYS_eventfd2, SYS_epoll_create1, SYS_epoll_ctl, SYS_timerfd_create]);
    let fcntls =
        [F_GETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC].iter().map(|&op| vec![eq(1, op as u64)]).collect();
    when(list, SYS_fcntl, fcntls);
}

/// A device worker: the disk file (positioned reads and writes, data sync), the tap (reads and
/// writes of frames), its epoll and its rate timer.
fn device(list: &mut List) {
    use libc::*;
    always(
        list,
        &[
            SYS_read,
            SYS_readv,
            SYS_writev,
            SYS_pread64,
            SYS_pwrite64,
            SYS_preadv,
            SYS_pwritev,
            SYS_preadv2,
            SYS_pwritev2,
            SYS_fdatasync,
            SYS_fsync,
            SYS_lseek,
            SYS_epoll_wait,
            SYS_epoll_pwait,
            SYS_epoll_ctl,
            SYS_timerfd_settime,
            SYS_timerfd_gettime,
        ],
    );
}

/// TCP: accept, connect (IPv4 and IPv6 stream sockets only), copy, time out.
fn relay(list: &mut List) {
    use libc::*;
    always(
        list,
        &[
            SYS_accept4,
            SYS_accept,
            SYS_connect,
            SYS_getpeername,
            SYS_getsockname,
            SYS_setsockopt,
            SYS_getsockopt,
            SYS_shutdown,
            SYS_poll,
            SYS_ppoll,
            SYS_recvfrom,
            SYS_sendto,
            SYS_read,
            SYS_readv,
            SYS_writev,
        ],
    );
    let stream = |family: c_int| vec![eq(0, family as u64), masked(1, 0xf, SOCK_STREAM as u64)];
    when(list, SYS_socket, vec![stream(AF_INET), stream(AF_INET6)]);
    when(list, SYS_ioctl, vec![vec![eq(1, FIONBIO)]]);
    let fcntls = [F_GETFD, F_GETFL, F_SETFL].iter().map(|&op| vec![eq(1, op as u64)]).collect();
    when(list, SYS_fcntl, fcntls);
}

/// The supervisor (VM creation, restarts, vCPU kicks, the memory registered late), the
/// signal thread and the metrics server (TCP, the sidecar's calls into the namespace).
/// Threads it starts keep this list under their own, so it holds the vCPU's and the health
/// checks' calls too.
fn control(list: &mut List) {
    use libc::*;
    relay(list);
    vcpu(list);
    // Every KVM ioctl (on /dev/kvm, the VM, the vCPUs; type 0xAE), and FIONBIO.
    when(list, SYS_ioctl, vec![vec![masked(1, 0xff00, KVMIO << 8)]]);
    always(
        list,
        &[SYS_pread64, SYS_lseek, SYS_mincore, SYS_rt_sigaction, SYS_capget, SYS_getresuid, SYS_getresgid],
    );
}

/// The update thread: a relay's calls (accept on the control socket, the health checks of the
/// new guest), `recvmsg` with `MSG_CMSG_CLOEXEC` only, to take the descriptor of the new image
/// that `hac-launch --update` opened outside (`SCM_RIGHTS`), and `lseek`, to read that image
/// from its start (its digest, and a trial load into scratch memory before anything is
/// stopped). No `sendmsg`: nothing leaves the launcher as a descriptor.
fn update(list: &mut List) {
    use libc::*;
    relay(list);
    when(list, SYS_recvmsg, vec![vec![eq(2, MSG_CMSG_CLOEXEC as u64)]]);
    always(list, &[SYS_lseek]);
}

/// The allowlist of `kind` as (system call, rule) pairs.
fn list(kind: Kind, ids: Ids) -> List {
    let mut list = base(ids);
    match kind {
        Kind::Vcpu => vcpu(&mut list),
        Kind::Device => device(&mut list),
        Kind::Relay => relay(&mut list),
        Kind::Control => control(&mut list),
        Kind::Update => update(&mut list),
    }
    list
}

/// The calls refused with `EACCES` (opening files), installed beside every allowlist.
pub const REFUSED: [libc::c_long; 3] = [libc::SYS_open, libc::SYS_openat, libc::SYS_openat2];

/// The filter that answers [`REFUSED`] with `EACCES` and lets the allowlist judge the rest.
pub fn refusals() -> Result<BpfProgram, seccompiler::BackendError> {
    let rules = REFUSED.iter().map(|&s| (s, Vec::new())).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        TargetArch::x86_64,
    )?;
    filter.try_into()
}

/// Whether `kind`'s list allows `syscall` with some arguments.
pub fn allows(kind: Kind, ids: Ids, syscall: libc::c_long) -> bool {
    list(kind, ids).contains_key(&syscall)
}

/// How many system calls `kind`'s list names.
pub fn len(kind: Kind, ids: Ids) -> usize {
    list(kind, ids).len()
}

/// Compiles `kind`'s allowlist: the listed calls are allowed, anything else kills the process.
pub fn compile(kind: Kind, ids: Ids) -> Result<BpfProgram, seccompiler::BackendError> {
    let rules = list(kind, ids)
        .into_iter()
        .map(|(syscall, rule)| {
            let rules = match rule {
                Rule::Always => Vec::new(),
                Rule::When(sets) => sets.into_iter().map(SeccompRule::new).collect::<Result<Vec<_>, _>>()?,
            };
            Ok((syscall, rules))
        })
        .collect::<Result<BTreeMap<_, _>, seccompiler::BackendError>>()?;
    let filter =
        SeccompFilter::new(rules, SeccompAction::KillProcess, SeccompAction::Allow, TargetArch::x86_64)?;
    filter.try_into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: Ids = Ids { uid: 999, gid: 998, pid: 1234 };

    #[test]
    fn every_allowlist_lets_the_refusals_answer_opens() {
        for kind in Kind::ALL {
            for syscall in REFUSED {
                assert!(allows(kind, IDS, syscall), "{}: {syscall}", kind.name());
            }
        }
        assert!(!refusals().unwrap().is_empty());
    }

    #[test]
    fn every_kind_compiles() {
        for kind in Kind::ALL {
            let program = compile(kind, IDS).unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
            assert!(!program.is_empty() && program.len() < u16::MAX as usize, "{}", kind.name());
        }
    }

    #[test]
    fn no_list_runs_programs_traces_or_changes_namespaces() {
        use libc::*;
        let forbidden = [
            SYS_execve,
            SYS_execveat,
            SYS_ptrace,
            SYS_mount,
            SYS_umount2,
            SYS_pivot_root,
            SYS_chroot,
            SYS_unshare,
            SYS_setns,
            SYS_bpf,
            SYS_kexec_load,
            SYS_init_module,
            SYS_finit_module,
            SYS_process_vm_readv,
            SYS_process_vm_writev,
            SYS_keyctl,
            SYS_perf_event_open,
            SYS_setuid,
            SYS_capset,
            SYS_socketpair,
            SYS_bind,
            SYS_listen,
            SYS_kill,
            SYS_fork,
            SYS_vfork,
        ];
        for kind in Kind::ALL {
            for syscall in forbidden {
                assert!(!allows(kind, IDS, syscall), "{} allows system call {syscall}", kind.name());
            }
        }
    }

    #[test]
    fn a_vcpu_has_no_network_and_no_disk_calls() {
        use libc::*;
        for syscall in
            [SYS_socket, SYS_connect, SYS_accept4, SYS_sendmsg, SYS_pwrite64, SYS_fdatasync, SYS_mincore]
        {
            assert!(!allows(Kind::Vcpu, IDS, syscall), "vcpu allows system call {syscall}");
        }
        assert!(allows(Kind::Vcpu, IDS, SYS_ioctl) && allows(Kind::Vcpu, IDS, SYS_write));
        // A device worker has no network either: its tap is an open file.
        assert!(!allows(Kind::Device, IDS, SYS_socket) && !allows(Kind::Device, IDS, SYS_ioctl));
        assert!(allows(Kind::Device, IDS, SYS_fdatasync));
        // Relays have no KVM and no disk.
        assert!(!allows(Kind::Relay, IDS, SYS_fdatasync) && !allows(Kind::Relay, IDS, SYS_pwrite64));
        assert!(len(Kind::Vcpu, IDS) < len(Kind::Control, IDS));
    }

    #[test]
    fn only_the_update_thread_takes_descriptors_and_it_has_no_kvm_or_disk() {
        use libc::*;
        for kind in Kind::ALL {
            assert_eq!(allows(kind, IDS, SYS_recvmsg), kind == Kind::Update, "{}", kind.name());
            assert!(!allows(kind, IDS, SYS_sendmsg), "{} may send descriptors", kind.name());
        }
        for syscall in [SYS_fdatasync, SYS_pwrite64, SYS_pread64, SYS_mincore, SYS_fstat, SYS_statx] {
            assert!(!allows(Kind::Update, IDS, syscall), "update allows system call {syscall}");
        }
        // No KVM ioctl: the supervisor boots the new image, not the update thread.
        let ioctls = list(Kind::Update, IDS);
        let Some(Rule::When(sets)) = ioctls.get(&SYS_ioctl) else { panic!("ioctl: FIONBIO only") };
        assert_eq!(sets.len(), 1);
        assert_eq!(len(Kind::Update, IDS), len(Kind::Relay, IDS) + 2, "recvmsg and lseek");
    }

    #[test]
    fn the_update_thread_dies_on_a_recvmsg_without_cloexec() {
        // SAFETY: getuid and getgid cannot fail.
        let ids = Ids { pid: 0, uid: unsafe { libc::getuid() }, gid: unsafe { libc::getgid() } };
        let program = compile(Kind::Update, ids).unwrap();
        let refusals = refusals().unwrap();
        let installed = |program: &BpfProgram| {
            seccompiler::apply_filter(&refusals)
                .and_then(|()| seccompiler::apply_filter(program))
                .map_or(10, |()| 0)
        };
        let recv = |flags: libc::c_int| {
            // SAFETY: recvmsg on a bad descriptor with an empty header fails with EBADF.
            let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
            // SAFETY: as above; `header` is valid for the call.
            unsafe { libc::recvmsg(-1, &mut header, flags) }
        };
        let allowed = in_child(|| {
            if installed(&program) != 0 {
                return 10;
            }
            if recv(libc::MSG_CMSG_CLOEXEC) == -1 { 0 } else { 11 }
        });
        assert_eq!(allowed, Ok(0), "recvmsg with MSG_CMSG_CLOEXEC");
        let forbidden = in_child(|| {
            if installed(&program) != 0 {
                return 10;
            }
            recv(0);
            12
        });
        assert_eq!(forbidden, Err(libc::SIGSYS), "recvmsg without MSG_CMSG_CLOEXEC");
    }

    #[test]
    fn the_kvm_ioctl_numbers_are_linux_s() {
        // From <linux/kvm.h> on x86-64.
        assert_eq!(KVM_RUN, 0xae80);
        assert_eq!(KVM_GET_REGS, 0x8090_ae81);
        assert_eq!(KVM_GET_SREGS, 0x8138_ae83);
    }

    /// Runs `body` in a forked child and returns how it ended: `Ok(status)` for an exit,
    /// `Err(signal)` for a signal.
    fn in_child(body: impl FnOnce() -> i32) -> Result<i32, i32> {
        // SAFETY: the child runs `body`, which makes only system calls (no allocation, no
        // lock), and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let status = body();
            // SAFETY: ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(status) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        if libc::WIFSIGNALED(status) { Err(libc::WTERMSIG(status)) } else { Ok(libc::WEXITSTATUS(status)) }
    }

    #[test]
    fn a_forbidden_call_kills_the_process_and_an_allowed_one_does_not() {
        // SAFETY: getpid and getuid cannot fail.
        let ids = Ids { pid: 0, uid: unsafe { libc::getuid() }, gid: unsafe { libc::getgid() } };
        let program = compile(Kind::Device, ids).unwrap();
        let refusals = refusals().unwrap();
        let installed = |program: &BpfProgram| {
            seccompiler::apply_filter(&refusals)
                .and_then(|()| seccompiler::apply_filter(program))
                .map_or(10, |()| 0)
        };
        let allowed = in_child(|| {
            if installed(&program) != 0 {
                return 10;
            }
            // SAFETY: fdatasync on a bad descriptor fails with EBADF; it is allowed to try.
            let rc = unsafe { libc::fdatasync(-1) };
            if rc != -1 {
                return 11;
            }
            // SAFETY: openat with a valid C string; it must fail with EACCES, not kill.
            let fd = unsafe { libc::openat(libc::AT_FDCWD, c"/".as_ptr(), libc::O_RDONLY) };
            // SAFETY: reads this thread's errno.
            let errno = unsafe { *libc::__errno_location() };
            if fd == -1 && errno == libc::EACCES { 0 } else { 12 }
        });
        assert_eq!(allowed, Ok(0), "fdatasync allowed, openat refused with EACCES");
        let forbidden = in_child(|| {
            if installed(&program) != 0 {
                return 10;
            }
            // SAFETY: socket(2) has no memory-safety preconditions; here it must never return.
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
            12
        });
        assert_eq!(forbidden, Err(libc::SIGSYS), "a device worker opening a socket");
    }
}
