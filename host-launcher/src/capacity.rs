//! The host's capacity, shared by the spacecores on it. Before it sets anything up, a launcher
//! reserves its vCPUs and guest memory in `<state>/running/` and is refused when, with the
//! reservations of the launchers still alive, the vCPUs would pass the host's CPUs times the CPU
//! overcommit, or the guest memory the host's memory times the memory overcommit. So an operator
//! who starts one spacecore too many on a host gets a clear refusal at start instead of guests
//! starving each other, or the host's OOM killer, later.
//!
//! A reservation is a file `<pid>.json` (name, pid, the process's start time, vCPUs, memory),
//! written under an exclusive lock of `<state>/running/.lock`. A launcher confined after start
//! cannot remove its file at exit; a reservation counts only while its process lives (the pid
//! with the same start time in `/proc`), and the next launcher removes those that do not.

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
    let start_time = start_time(pid)
        .ok_or_else(|| io(Path::new("/proc/self/stat"))(std::io::ErrorKind::NotFound.into()))?;
    let wanted = Reservation { name: name.to_owned(), pid, start_time, vcpus, memory_bytes };
    let others = alive(dir, pid)?;
    admit(&wanted, &others, host(), over)?;
    let path = dir.join(format!("{pid}.json"));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(io(&path))?;
    let json = serde_json::to_vec(&wanted).unwrap_or_default();
    file.write_all(&json).map_err(io(&path))?;
    drop(lock);
    Ok(())
}

/// The reservations in `dir` whose process is alive, other than `own`'s; the others' files are
/// removed.
fn alive(dir: &Path, own: u32) -> Result<Vec<Reservation>, CapacityError> {
    let entries =
        fs::read_dir(dir).map_err(|source| CapacityError::Io { path: dir.to_path_buf(), source })?;
    let mut alive = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let reservation: Option<Reservation> =
            read_small(&path).and_then(|bytes| serde_json::from_slice(&bytes).ok());
        match reservation {
            Some(r) if r.pid != own && start_time(r.pid) == Some(r.start_time) => alive.push(r),
            _ => {
                let _ = fs::remove_file(&path);
            }
        }
    }
    Ok(alive)
}

/// A reservation file's bytes (at most 4 KiB; not through a link).
fn read_small(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(4096).read_to_end(&mut bytes).ok()?;
    Some(bytes)
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
    let _ = fs::remove_file(dir.join(format!("{}.json", std::process::id())));
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

    #[test]
    fn reservations_of_dead_processes_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        // This process, reserved: alive, but its own reservation is not counted against itself.
        reserve(dir.path(), "me", 1, 1 << 20, Overcommit::default()).unwrap();
        assert!(dir.path().join(format!("{}.json", std::process::id())).exists());
        // A process that does not exist (or was another one): removed.
        let dead = Reservation { name: "gone".into(), pid: 1, start_time: 1, vcpus: 1, memory_bytes: 1 };
        fs::write(dir.path().join("1.json"), serde_json::to_vec(&dead).unwrap()).unwrap();
        fs::write(dir.path().join("2.json"), b"not json").unwrap();
        assert!(alive(dir.path(), std::process::id()).unwrap().is_empty());
        assert!(!dir.path().join("1.json").exists() && !dir.path().join("2.json").exists());
        release(dir.path());
        assert!(!dir.path().join(format!("{}.json", std::process::id())).exists());
    }

    #[test]
    fn a_live_reservation_counts_against_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let live = Reservation {
            name: "a".into(),
            pid: me,
            start_time: start_time(me).unwrap(),
            vcpus: 1,
            memory_bytes: 1,
        };
        // Counted when it is another process's: simulate by asking as another pid.
        fs::write(dir.path().join(format!("{me}.json")), serde_json::to_vec(&live).unwrap()).unwrap();
        assert_eq!(alive(dir.path(), me.wrapping_add(1)).unwrap(), vec![live]);
    }
}
