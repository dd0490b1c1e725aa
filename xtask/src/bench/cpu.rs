//! What a process costs in CPU, read from `/proc`: its utime + stime (`/proc/PID/stat`) and each
//! thread's time on CPU (`/proc/PID/task/TID/schedstat`). Shared by the recover and density
//! benches.

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cmd;

/// The clock tick of `/proc` CPU times when `getconf CLK_TCK` cannot say (Linux's USER_HZ).
const DEFAULT_CLK_TCK: u64 = 100;

/// utime + stime of process `pid`, in clock ticks.
pub fn process_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    Ok(parse_stat(&text).with_context(|| format!("cannot parse {path}: {text:?}"))?.ticks)
}

/// What the bench reads of `/proc/PID/stat`.
#[derive(Debug, PartialEq)]
pub struct Stat {
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub ticks: u64,
}

/// Parses a `stat` line: `pid (comm) state ppid ... utime stime ...` (fields 14 and 15). The
/// name may hold spaces and parentheses, so the fields are counted after the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let fields: Vec<&str> = text.get(text.rfind(')')? + 1..)?.split_whitespace().collect();
    // fields[0] is field 3 (state).
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Stat { ppid, ticks: utime + stime })
}

/// The first field of a `schedstat` line: time on CPU, in ns.
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// A thread's name and time on CPU in ns.
#[derive(Debug, Clone, PartialEq)]
pub struct Thread {
    pub name: String,
    pub ns: u64,
}

/// The process's utime + stime in ticks, and each live thread's time on CPU (by thread id).
pub fn cpu_snapshot(pid: u32) -> Result<(u64, BTreeMap<u32, Thread>)> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let ticks = parse_stat(&text).with_context(|| format!("cannot parse {path}: {text:?}"))?.ticks;
    let mut threads = BTreeMap::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        let Some(tid) = entry?.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let dir = format!("/proc/{pid}/task/{tid}");
        // A thread may end between the listing and the reads.
        let ns = fs::read_to_string(format!("{dir}/schedstat")).ok().and_then(|t| parse_schedstat(&t));
        let name = fs::read_to_string(format!("{dir}/comm")).ok();
        if let (Some(ns), Some(name)) = (ns, name) {
            threads.insert(tid, Thread { name: name.trim_end().to_owned(), ns });
        }
    }
    Ok((ticks, threads))
}

/// Time on CPU in µs by thread name between two snapshots, for the threads alive at the end
/// (a thread born within the window counts whole).
pub fn thread_us(before: &BTreeMap<u32, Thread>, after: &BTreeMap<u32, Thread>) -> BTreeMap<String, f64> {
    let mut by_name = BTreeMap::new();
    for (tid, end) in after {
        let start = before.get(tid).filter(|t| t.name == end.name).map_or(0, |t| t.ns);
        *by_name.entry(end.name.clone()).or_insert(0.0) += end.ns.saturating_sub(start) as f64 / 1000.0;
    }
    by_name.retain(|_, us| *us > 0.0);
    by_name
}

/// `ticks` of CPU over `wall`, in % of one core.
pub fn cpu_percent(ticks: u64, clk_tck: u64, wall: Duration) -> f64 {
    ticks as f64 / clk_tck.max(1) as f64 / wall.as_secs_f64().max(1e-9) * 100.0
}

/// The host's CPU time so far, from the `cpu` lines of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostCpu {
    /// user + nice + system + irq + softirq of all CPUs, in clock ticks: what ran, every process
    /// and kernel worker (not idle, iowait, or steal, the time the hypervisor under this host
    /// gave to others).
    pub busy_ticks: u64,
    /// The CPUs (`cpuN` lines).
    pub cpus: u32,
}

/// Parses the text of `/proc/stat`.
pub fn parse_proc_stat(text: &str) -> Option<HostCpu> {
    let total = text.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let ticks: Vec<u64> = total.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest and guest_nice are within user and nice).
    let [user, nice, system, _idle, _iowait, irq, softirq, ..] = ticks[..] else { return None };
    let cpus =
        text.lines().filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit));
    Some(HostCpu { busy_ticks: user + nice + system + irq + softirq, cpus: cpus.count() as u32 })
}

pub fn host_cpu() -> Result<HostCpu> {
    let text = fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    parse_proc_stat(&text).with_context(|| format!("cannot parse /proc/stat: {text:?}"))
}

/// `getconf CLK_TCK`, or Linux's fixed USER_HZ.
pub fn clock_ticks_per_second() -> u64 {
    cmd::capture(std::process::Command::new("getconf").arg("CLK_TCK"))
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(DEFAULT_CLK_TCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_stat_and_schedstat() {
        // Field 14 (utime) = 250, field 15 (stime) = 31; the name holds a space and a `)`.
        let text = "4242 (hac launch) x) S 4000 4242 4000 0 -1 4194560 1200 0 0 0 250 31 0 0 20 0 9 0 \
                    123456 80000000 1000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat(text), Some(Stat { ppid: 4000, ticks: 281 }));
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
        let mine = fs::read_to_string("/proc/self/stat").unwrap();
        assert_eq!(parse_stat(&mine).unwrap().ppid, std::os::unix::process::parent_id());
        assert_eq!(parse_schedstat("85907074 17584918 221\n"), Some(85_907_074));
        assert_eq!(parse_schedstat(""), None);
        let (_, threads) = cpu_snapshot(std::process::id()).unwrap();
        assert!(!threads.is_empty());
    }

    #[test]
    fn reads_the_hosts_cpu_time() {
        let text = "cpu  100 5 50 9000 7 3 2 40 30 0\ncpu0 50 2 25 4500 3 1 1 20 15 0\n\
                    cpu1 50 3 25 4500 4 2 1 20 15 0\nintr 12345 0\nctxt 999\n";
        assert_eq!(parse_proc_stat(text), Some(HostCpu { busy_ticks: 100 + 5 + 50 + 3 + 2, cpus: 2 }));
        assert_eq!(parse_proc_stat("cpu  1 2 3\n"), None);
        assert_eq!(parse_proc_stat("intr 1\n"), None);
        let here = host_cpu().unwrap();
        assert!(here.cpus >= 1 && here.busy_ticks > 0);
    }

    #[test]
    fn cpu_percent_and_thread_breakdown() {
        assert!((cpu_percent(5, 100, Duration::from_secs(10)) - 0.5).abs() < 1e-12);
        assert!((cpu_percent(100, 100, Duration::from_secs(1)) - 100.0).abs() < 1e-12);
        let t = |name: &str, ns| Thread { name: name.into(), ns };
        let before =
            BTreeMap::from([(1, t("hac-launch", 10_000)), (2, t("vcpu0", 100_000)), (3, t("relay", 4))]);
        let after = BTreeMap::from([
            (1, t("hac-launch", 10_000)),
            (2, t("vcpu0", 103_000)),
            (4, t("health", 2_000)),
            (5, t("health", 1_500)),
        ]);
        let spent = thread_us(&before, &after);
        assert_eq!(spent, BTreeMap::from([("vcpu0".into(), 3.0), ("health".into(), 3.5)]));
    }
}
