//! The host's capacity, shared by the spacecores on it. Before it sets anything up, a launcher
//! reserves its vCPUs and guest memory in `<state>/running/` and is refused when, with the
//! reservations of the launchers still alive, the vCPUs would pass the host's CPUs times the CPU
//! overcommit, or the guest memory the host's memory times the memory overcommit. So an operator
//! who starts one spacecore too many on a host gets a clear refusal at start instead of guests
//! starving each other, or the host's OOM killer, later.
//!
//! A reservation is a line of `<state>/running/reservations` (JSON: name, pid, the process's
//! start time, vCPUs, memory), added under an exclusive lock of `<state>/running/.lock`. A
//! launcher confined after start cannot remove its line at exit, so a reservation counts only
//! while its process lives: the next launcher drops the lines of processes that are gone
//! (`kill(pid, 0)`: no such process), and, only when the reservations left would refuse it,
//! checks each against its process's start time in `/proc` (a pid reused by another process
//! does not count).
//!
//! Every launcher reads all reservations under the lock, so what it reads must stay cheap when
//! many start at once: one file, and no `/proc/PID/stat` per reservation unless needed. (A file
//! per reservation, each checked in `/proc`, cost about 15 µs per reservation on a 2-core host:
//! a thousand launchers started at once spent 7 s in turn under the lock.)

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How far a host's CPUs and memory may be promised to guests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overcommit {
    /// vCPUs per host CPU.
    pub cpu: f64,
    /// Guest memory per byte of host memory.
    pub memory: f64,
}

impl Overcommit {
    /// vCPUs are mostly idle (a spacecore's vCPU sleeps between requests): four per host CPU.
    pub const DEFAULT_CPU: f64 = 4.0;
    /// Guest memory is touched lazily, but a guest may touch all of it: none promised twice.
    pub const DEFAULT_MEMORY: f64 = 1.0;
}

impl Default for Overcommit {
    fn default() -> Self {
        Overcommit { cpu: Self::DEFAULT_CPU, memory: Self::DEFAULT_MEMORY }
    }
}

/// What a spacecore reserves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reservation {
    /// `metadata.name`.
    pub name: String,
    /// The launcher's process id.
    pub pid: u32,
    /// Its start time (`/proc/PID/stat` field 22, clock ticks since boot): with the pid, it names
    /// the process even after the pid is reused.
    pub start_time: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// Guest memory, bytes.
    pub memory_bytes: u64,
}

/// What the host offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// CPUs.
    pub cpus: u32,
    /// Memory, bytes.
    pub memory_bytes: u64,
}

/// Why a spacecore may not start here.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    /// Past what the host offers: what, how much, and what to do.
    #[error("{0}")]
    Full(String),
    /// The reservations cannot be read or written.
    #[error("cannot reserve the host's capacity in {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Checks `wanted` against `others` (the reservations alive) on `host`.
pub fn admit(
    wanted: &Reservation,
    others: &[Reservation],
    host: Host,
    over: Overcommit,
) -> Result<(), CapacityError> {
    let vcpus: u64 = others.iter().map(|r| u64::from(r.vcpus)).sum();
    let memory: u64 = others.iter().map(|r| r.memory_bytes).sum();
    let cpu_offered = f64::from(host.cpus) * over.cpu;
    let memory_offered = host.memory_bytes as f64 * over.memory;
    let mib = |b: f64| format!("{:.0} MiB", b / (1024.0 * 1024.0));
    let full = |what: &str,
                reserved: String,
                asked: String,
                offered: String,
                host: String,
                ratio: f64,
                flag: &str| {
        CapacityError::Full(format!(
            "this host cannot take spacecore {}: {what} ({} running spacecore(s) reserve {reserved}, this one \
             asks {asked}, the host offers {offered} = {host} x {ratio} overcommit); stop a spacecore, or raise \
             --{flag}-overcommit",
            wanted.name,
            others.len()
        ))
    };
    if (vcpus + u64::from(wanted.vcpus)) as f64 > cpu_offered {
        return Err(full(
            "vCPUs",
            format!("{vcpus} vCPUs"),
            format!("{} vCPUs", wanted.vcpus),
            format!("{cpu_offered} vCPUs"),
            format!("{} CPUs", host.cpus),
            over.cpu,
            "cpu",
        ));
    }
    if (memory + wanted.memory_bytes) as f64 > memory_offered {
        return Err(full(
            "guest memory",
            mib(memory as f64),
            mib(wanted.memory_bytes as f64),
            mib(memory_offered),
            mib(host.memory_bytes as f64),
            over.memory,
            "memory",
        ));
    }
    Ok(())
}

/// This host's CPUs and memory.
pub fn host() -> Host {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    Host { cpus, memory_bytes: crate::host::limits().max_memory_bytes }
}

/// Reserves `vcpus` and `memory_bytes` for spacecore `name` (this process) in `dir`, or refuses.
pub fn reserve(
    dir: &Path,
    name: &str,
    vcpus: u32,
    memory_bytes: u64,
    over: Overcommit,
) -> Result<(), CapacityError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CapacityError::Io { path, source }
    };
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
    let lock_path = dir.join(".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    let pid = std::process::id();
    let started = start_time(pid)
        .ok_or_else(|| io(Path::new("/proc/self/stat"))(std::io::ErrorKind::NotFound.into()))?;
    let wanted = Reservation { name: name.to_owned(), pid, start_time: started, vcpus, memory_bytes };
    let ledger = dir.join(LEDGER);
    let listed = read_ledger(&ledger).map_err(io(&ledger))?;
    let listed_len = listed.len();
    let mut others: Vec<Reservation> =
        listed.into_iter().filter(|r| r.pid != pid && process_exists(r.pid)).collect();
    let host = host();
    if admit(&wanted, &others, host, over).is_err() {
        // Some of these pids may be other processes' by now: only the live reservations count.
        others.retain(|r| start_time(r.pid) == Some(r.start_time));
        admit(&wanted, &others, host, over)?;
    }
    if others.len() == listed_len {
        append_line(&ledger, &wanted).map_err(io(&ledger))?;
    } else {
        others.push(wanted);
        write_ledger(&ledger, &others).map_err(io(&ledger))?;
    }
    drop(lock);
    Ok(())
}

/// The file of the reservations, one JSON line each, in the directory `reserve` is given.
const LEDGER: &str = "reservations";

/// The reservations listed in `path` (none if it does not exist; lines that are not one are
/// left out, and dropped at the next rewrite).
fn read_ledger(path: &Path) -> std::io::Result<Vec<Reservation>> {
    use std::io::Read;
    let mut text = String::new();
    match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path) {
        Ok(mut file) => file.read_to_string(&mut text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect())
}

/// Adds `reservation` as a line at the end of `path`.
fn append_line(path: &Path, reservation: &Reservation) -> std::io::Result<()> {
    let mut file =
        OpenOptions::new().create(true).append(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path)?;
    file.write_all(&line_of(reservation))
}

/// Replaces `path` with `reservations` (written aside, then renamed over it).
fn write_ledger(path: &Path, reservations: &[Reservation]) -> std::io::Result<()> {
    let aside = path.with_extension("new");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&aside)?;
    file.write_all(&reservations.iter().flat_map(line_of).collect::<Vec<u8>>())?;
    drop(file);
    fs::rename(&aside, path)
}

/// `reservation` as a JSON line.
fn line_of(reservation: &Reservation) -> Vec<u8> {
    let mut line = serde_json::to_vec(reservation).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Whether a process `pid` exists (`kill(pid, 0)` fails with anything but "no such process":
/// one that exists but is not ours to signal answers EPERM).
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists and may be signalled; nothing is sent.
    let sent = unsafe { libc::kill(pid, 0) } == 0;
    sent || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Field 22 of `/proc/PID/stat` (the start time), if the process exists.
fn start_time(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_start_time(&text)
}

/// Field 22 of a `/proc/PID/stat` line, whose second field (the command, in parentheses) may
/// hold spaces and parentheses.
fn stat_start_time(text: &str) -> Option<u64> {
    // After the command: state is field 3, so field 22 is the 20th.
    text[text.rfind(')')? + 1..].split_whitespace().nth(19)?.parse().ok()
}

/// Removes this process's reservation from `dir`, where it still can (an unconfined launcher).
pub fn release(dir: &Path) {
    let Ok(lock) = OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW).open(dir.join(".lock"))
    else {
        return;
    };
    if lock.lock().is_err() {
        return;
    }
    let ledger = dir.join(LEDGER);
    let Ok(listed) = read_ledger(&ledger) else { return };
    let own = std::process::id();
    if listed.iter().any(|r| r.pid == own) {
        let rest: Vec<Reservation> = listed.into_iter().filter(|r| r.pid != own).collect();
        let _ = write_ledger(&ledger, &rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn reservation(name: &str, vcpus: u32, memory_bytes: u64) -> Reservation {
        Reservation { name: name.into(), pid: 1, start_time: 1, vcpus, memory_bytes }
    }

    #[test]
    fn the_host_is_shared_up_to_its_overcommit() {
        let host = Host { cpus: 2, memory_bytes: 24 * GIB };
        let over = Overcommit::default();
        let running = vec![reservation("a", 4, 8 * GIB), reservation("b", 2, 8 * GIB)];
        assert!(
            admit(&reservation("c", 2, 8 * GIB), &running, host, over).is_ok(),
            "8 vCPUs, 24 GiB: full, not past"
        );
        let e = admit(&reservation("c", 3, GIB), &running, host, over).unwrap_err().to_string();
        assert!(e.contains("cannot take spacecore c: vCPUs (2 running spacecore(s) reserve 6 vCPUs"), "{e}");
        assert!(e.contains("--cpu-overcommit"), "{e}");
        let e = admit(&reservation("c", 1, 8 * GIB + 1), &running, host, over).unwrap_err().to_string();
        assert!(e.contains("guest memory") && e.contains("--memory-overcommit"), "{e}");
        // With more overcommit, both fit.
        let generous = Overcommit { cpu: 8.0, memory: 2.0 };
        assert!(admit(&reservation("c", 8, 24 * GIB), &running, host, generous).is_ok());
    }

    #[test]
    fn start_times_are_read_past_odd_commands() {
        let stat = "42 (hac) launch) S 1 42 42 0 -1 4194560 0 0 0 0 1 2 0 0 20 0 3 0 987654 1 2";
        assert_eq!(stat_start_time(stat), Some(987_654));
        assert_eq!(stat_start_time("42 (x"), None);
        assert!(start_time(std::process::id()).is_some());
    }

    /// The reservations `dir`'s ledger lists.
    fn listed(dir: &Path) -> Vec<Reservation> {
        read_ledger(&dir.join(LEDGER)).unwrap()
    }

    /// A pid no process has: past `pid_max`.
    fn no_process() -> u32 {
        let max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().unwrap();
        max + 1
    }

    #[test]
    fn reservations_of_gone_processes_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let gone =
            Reservation { name: "gone".into(), pid: no_process(), start_time: 1, vcpus: 1, memory_bytes: 1 };
        let ledger = dir.path().join(LEDGER);
        fs::write(&ledger, [line_of(&gone), b"not json\n".to_vec()].concat()).unwrap();
        assert_eq!(listed(dir.path()), vec![gone]);
        // This process reserves: the gone one's line (and the bad line) are dropped.
        reserve(dir.path(), "me", 1, 1 << 20, Overcommit::default()).unwrap();
        let mine = listed(dir.path());
        assert_eq!(mine.len(), 1);
        assert_eq!((mine[0].name.as_str(), mine[0].pid), ("me", std::process::id()));
        assert!(fs::read_to_string(&ledger).unwrap().ends_with("}\n"));
        // Reserving again replaces this process's line (its own reservation never counts
        // against itself, even on a host it fills).
        let cpus = host().cpus;
        reserve(dir.path(), "me", cpus, 1 << 20, Overcommit { cpu: 1.0, memory: 1.0 }).unwrap();
        assert_eq!(listed(dir.path()).len(), 1);
        release(dir.path());
        assert!(listed(dir.path()).is_empty());
        // Nothing to release, or no directory at all: nothing happens.
        release(dir.path());
        release(&dir.path().join("absent"));
    }

    #[test]
    fn a_live_reservation_counts_against_the_next_and_a_reused_pid_does_not() {
        let dir = tempfile::tempdir().unwrap();
        // pid 1 lives, but not with this start time: a reservation whose pid was reused.
        let reused =
            Reservation { name: "old".into(), pid: 1, start_time: u64::MAX, vcpus: 1, memory_bytes: 1 };
        fs::write(dir.path().join(LEDGER), line_of(&reused)).unwrap();
        // While the host has room, it is kept (and counted) without a look at its start time.
        let roomy = Overcommit { cpu: 1000.0, memory: 1.0 };
        reserve(dir.path(), "a", 1, 1 << 20, roomy).unwrap();
        assert_eq!(listed(dir.path())[0], reused);
        assert_eq!(listed(dir.path()).len(), 2);
        // The appended line is this process's, with its start time.
        let me = std::process::id();
        let mine = listed(dir.path()).pop().unwrap();
        assert_eq!((mine.pid, Some(mine.start_time)), (me, start_time(me)));
        assert!(process_exists(me) && process_exists(1) && !process_exists(no_process()));
        // Once it would refuse a launcher, the reused pid's reservation is checked and dropped.
        let tight = Overcommit { cpu: 1.0, memory: 1.0 };
        let cpus = host().cpus;
        fs::write(dir.path().join(LEDGER), line_of(&Reservation { vcpus: cpus, ..reused })).unwrap();
        reserve(dir.path(), "b", 1, 1 << 20, tight).unwrap();
        let now = listed(dir.path());
        assert_eq!(now.len(), 1, "{now:?}");
        assert_eq!(now[0].name, "b");
        // Another process's live reservation taking every CPU refuses the next launcher, and
        // lapses with its process.
        let mut other = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let live = Reservation {
            name: "other".into(),
            pid: other.id(),
            start_time: start_time(other.id()).unwrap(),
            vcpus: cpus,
            memory_bytes: 1,
        };
        fs::write(dir.path().join(LEDGER), line_of(&live)).unwrap();
        let e = reserve(dir.path(), "c", 1, 1 << 20, tight).unwrap_err().to_string();
        assert!(e.contains("cannot take spacecore c: vCPUs (1 running spacecore(s)"), "{e}");
        assert_eq!(listed(dir.path()), vec![live]);
        other.kill().unwrap();
        other.wait().unwrap();
        reserve(dir.path(), "c", 1, 1 << 20, tight).unwrap();
        assert_eq!(listed(dir.path()).iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["c"]);
    }
}
