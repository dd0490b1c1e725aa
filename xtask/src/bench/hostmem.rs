//! What a set of processes (spacecore launchers) costs the host's memory, read from `/proc`: the
//! host's `/proc/meminfo` and each process's `smaps_rollup` and `status`.
//!
//! The host's used memory (`MemTotal - MemAvailable`) counts everything, but on a shared host it
//! moves by hundreds of MiB with other users' builds (their compilers' anonymous memory above
//! all), more than tens of spacecores take. So the cost is counted by where it lies:
//!
//! * **user memory** of the launchers, read per process, so no other process moves it: their
//!   anonymous and shmem pages (`Pss_Anon + Pss_Shmem` of `smaps_rollup`), the guests' touched
//!   memory included (it is the launchers' anonymous mapping); the shared file pages (their
//!   executable and libraries, reclaimable page cache) are kept apart;
//! * **page tables** of the launchers (`VmPTE`), per process;
//! * **kernel stacks** of the launchers' threads: their number times the host's `KernelStack`
//!   over its tasks (16 KiB on x86_64);
//! * **the kernel's own memory** a spacecore makes it hold (KVM's VM, vCPU and memory-slot
//!   arrays, the tap, the network namespace, eventfds, sockets, pipes): only the host's figures
//!   tell, so these are the rise of `Slab`, `VmallocUsed` (less the kernel stacks when they are
//!   vmalloc'd: `CONFIG_VMAP_STACK`, on by default on x86_64), `SecPageTables` (KVM's shadow
//!   page tables) and `Percpu`, categories a compiler barely moves.
//!
//! The host's used memory is read with the free pages of the kernel's per-CPU lists taken out
//! ([`Meminfo::used`]): `MemAvailable` does not count them, and they move by hundreds of MiB.

use std::fs;

use anyhow::{Context, Result};
use serde::Serialize;

/// `/proc/meminfo`'s figures that spacecores move, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Meminfo {
    pub mem_total: u64,
    pub mem_available: u64,
    pub anon_pages: u64,
    pub slab: u64,
    pub kernel_stack: u64,
    pub page_tables: u64,
    /// `SecPageTables` (0 on kernels before 6.0, which have no such line).
    pub sec_page_tables: u64,
    pub vmalloc_used: u64,
    /// `Percpu` (0 where the kernel has no such line).
    pub percpu: u64,
    /// Free pages on the per-CPU lists (`count:` of `/proc/zoneinfo`'s pagesets), which
    /// `MemFree` and `MemAvailable` leave out.
    pub pcp_free: u64,
}

impl Meminfo {
    /// Parses the text of `/proc/meminfo`; `None` without one of the lines every kernel the
    /// project runs on has.
    pub fn parse(text: &str) -> Option<Meminfo> {
        let kib = |key: &str| meminfo_kib(text, key).map(|k| k * 1024);
        Some(Meminfo {
            mem_total: kib("MemTotal:")?,
            mem_available: kib("MemAvailable:")?,
            anon_pages: kib("AnonPages:")?,
            slab: kib("Slab:")?,
            kernel_stack: kib("KernelStack:")?,
            page_tables: kib("PageTables:")?,
            sec_page_tables: kib("SecPageTables:").unwrap_or(0),
            vmalloc_used: kib("VmallocUsed:")?,
            percpu: kib("Percpu:").unwrap_or(0),
            pcp_free: 0,
        })
    }

    /// `/proc/meminfo`, with the per-CPU free pages of `/proc/zoneinfo`.
    pub fn read() -> Result<Meminfo> {
        let text = fs::read_to_string("/proc/meminfo").context("cannot read /proc/meminfo")?;
        let zoneinfo = fs::read_to_string("/proc/zoneinfo").context("cannot read /proc/zoneinfo")?;
        let meminfo =
            Meminfo::parse(&text).with_context(|| format!("cannot parse /proc/meminfo: {text:?}"))?;
        Ok(Meminfo { pcp_free: pcp_free_bytes(&zoneinfo), ..meminfo })
    }

    /// `MemTotal - MemAvailable`, less the free pages on the per-CPU lists: what the host holds
    /// (page cache and reclaimable slab it could give back left out).
    ///
    /// `MemFree`, and so `MemAvailable`, leave out the free pages the kernel keeps on its per-CPU
    /// lists, and this host's kernel (6.18) lets those lists grow (`high:` of `/proc/zoneinfo`): they
    /// held from 240 to 360 MiB here. A burst of allocations (launchers starting) is served from
    /// them first: twenty spacecores took about 90 MiB while `MemTotal - MemAvailable` rose by
    /// 14 MiB, the lists having given 64 MiB.
    pub fn used(&self) -> u64 {
        self.mem_total.saturating_sub(self.mem_available).saturating_sub(self.pcp_free)
    }
}

/// Bytes of a page (x86_64, the only architecture the launcher runs on).
const PAGE_BYTES: u64 = 4096;

/// The free pages on the per-CPU lists, bytes: the `count:` lines of the text of
/// `/proc/zoneinfo` (one per CPU and zone, in its `pagesets`).
pub fn pcp_free_bytes(zoneinfo: &str) -> u64 {
    let counts =
        zoneinfo.lines().filter_map(|l| l.trim_start().strip_prefix("count:")?.trim().parse::<u64>().ok());
    counts.sum::<u64>() * PAGE_BYTES
}

/// The value in KiB of the `/proc/meminfo` (or `/proc/PID/status`, `smaps_rollup`) line
/// starting with `key`.
pub fn meminfo_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
}

/// What processes hold, bytes (or threads), summed over them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProcessMemory {
    /// `Pss_Anon + Pss_Shmem` (`RssAnon + RssShmem` of `status` on kernels without them).
    pub anon: u64,
    /// `Pss_File`: their share of the file pages they map (executable, libraries).
    pub file: u64,
    /// `VmRSS`, for comparison: shared file pages count whole in each process.
    pub rss: u64,
    /// `VmPTE`.
    pub page_tables: u64,
    /// `Threads`.
    pub threads: u64,
}

impl ProcessMemory {
    /// One process's, from the text of its `/proc/PID/status` and `/proc/PID/smaps_rollup`.
    pub fn parse(status: &str, rollup: &str) -> Option<ProcessMemory> {
        let kib = |text: &str, key: &str| meminfo_kib(text, key).map(|k| k * 1024);
        let anon = match (kib(rollup, "Pss_Anon:"), kib(rollup, "Pss_Shmem:")) {
            (Some(anon), Some(shmem)) => anon + shmem,
            _ => kib(status, "RssAnon:")? + kib(status, "RssShmem:").unwrap_or(0),
        };
        Some(ProcessMemory {
            anon,
            file: kib(rollup, "Pss_File:").unwrap_or(0),
            rss: kib(status, "VmRSS:")?,
            page_tables: kib(status, "VmPTE:")?,
            threads: meminfo_kib(status, "Threads:")?,
        })
    }

    pub fn read(pid: u32) -> Result<ProcessMemory> {
        let read = |file: &str| {
            let path = format!("/proc/{pid}/{file}");
            fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))
        };
        let (status, rollup) = (read("status")?, read("smaps_rollup").unwrap_or_default());
        ProcessMemory::parse(&status, &rollup)
            .with_context(|| format!("cannot parse /proc/{pid}/status: {status:?}"))
    }

    /// What it holds, bytes, with kernel stacks of `stack` bytes: anonymous memory, page tables
    /// and its threads' kernel stacks.
    pub fn held(&self, stack: u64) -> f64 {
        (self.anon + self.page_tables + self.threads * stack) as f64
    }

    /// The sum over `pids`.
    pub fn sum(pids: &[u32]) -> Result<ProcessMemory> {
        let mut total = ProcessMemory::default();
        for &pid in pids {
            let one = ProcessMemory::read(pid)?;
            total.anon += one.anon;
            total.file += one.file;
            total.rss += one.rss;
            total.page_tables += one.page_tables;
            total.threads += one.threads;
        }
        Ok(total)
    }
}

/// The tasks (threads) of the host now: the entries of every `/proc/PID/task`.
pub fn host_tasks() -> Result<u64> {
    let mut tasks = 0;
    for entry in fs::read_dir("/proc").context("cannot list /proc")? {
        let entry = entry?;
        if entry.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
            // A process may end between the listing and the read.
            tasks += fs::read_dir(entry.path().join("task")).map_or(0, |d| d.count() as u64);
        }
    }
    Ok(tasks)
}

/// Kernel stack of one task: `KernelStack` over the host's tasks (`tasks`, counted at about the
/// same time), rounded to a whole KiB.
pub fn stack_per_task(meminfo: &Meminfo, tasks: u64) -> u64 {
    let per = meminfo.kernel_stack as f64 / tasks.max(1) as f64;
    (per / 1024.0).round() as u64 * 1024
}

/// Whether `config` (a kernel's `.config`) allocates kernel stacks with vmalloc
/// (`CONFIG_VMAP_STACK=y`); `None` when it does not say (no such line, set or unset).
pub fn vmap_stack(config: &str) -> Option<bool> {
    config.lines().find_map(|line| match line.trim() {
        "CONFIG_VMAP_STACK=y" => Some(true),
        "# CONFIG_VMAP_STACK is not set" => Some(false),
        _ => None,
    })
}

/// Whether this host's kernel stacks are counted in `VmallocUsed`: its configuration, from
/// `/boot/config-RELEASE` or `/proc/config.gz`; where neither says, x86_64's default (yes).
pub fn stacks_in_vmalloc() -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let boot = fs::read_to_string(format!("/boot/config-{}", release.trim())).ok();
    let proc_config = || {
        let mut zcat = std::process::Command::new("zcat");
        zcat.arg("/proc/config.gz").stderr(std::process::Stdio::null());
        crate::cmd::capture(&mut zcat).ok()
    };
    boot.or_else(proc_config).as_deref().and_then(vmap_stack).unwrap_or(true)
}

/// What a set of processes costs the host, bytes, all of them together, by where it lies
/// (module docs). Signed: a figure read from the host's meminfo may fall while other users
/// free memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Cost {
    /// The processes' anonymous and shmem memory (the guests' touched memory included).
    pub user: f64,
    /// The processes' page tables.
    pub page_tables: f64,
    /// Their threads' kernel stacks.
    pub kernel_stacks: f64,
    /// Rise of the host's `Slab`.
    pub slab: f64,
    /// Rise of the host's `VmallocUsed`, kernel stacks left out where they are vmalloc'd.
    pub vmalloc: f64,
    /// Rise of the host's `SecPageTables`.
    pub sec_page_tables: f64,
    /// Rise of the host's `Percpu`.
    pub percpu: f64,
}

impl Cost {
    /// From the host's meminfo `before` the processes started and `with` them, their own
    /// figures `processes`, a kernel stack's size and whether stacks are in `VmallocUsed`.
    pub fn count(
        before: &Meminfo,
        with: &Meminfo,
        processes: &ProcessMemory,
        stack: u64,
        stacks_in_vmalloc: bool,
    ) -> Cost {
        let rise = |f: fn(&Meminfo) -> u64| f(with) as f64 - f(before) as f64;
        let stacks_rise = if stacks_in_vmalloc { rise(|m| m.kernel_stack) } else { 0.0 };
        Cost {
            user: processes.anon as f64,
            page_tables: processes.page_tables as f64,
            kernel_stacks: (processes.threads * stack) as f64,
            slab: rise(|m| m.slab),
            vmalloc: rise(|m| m.vmalloc_used) - stacks_rise,
            sec_page_tables: rise(|m| m.sec_page_tables),
            percpu: rise(|m| m.percpu),
        }
    }

    /// The kernel's part: slab, vmalloc, shadow page tables and per-CPU memory.
    pub fn kernel(&self) -> f64 {
        self.slab + self.vmalloc + self.sec_page_tables + self.percpu
    }

    pub fn total(&self) -> f64 {
        self.user + self.page_tables + self.kernel_stacks + self.kernel()
    }

    /// Each figure over `n`.
    pub fn per(&self, n: f64) -> Cost {
        let n = n.max(1.0);
        Cost {
            user: self.user / n,
            page_tables: self.page_tables / n,
            kernel_stacks: self.kernel_stacks / n,
            slab: self.slab / n,
            vmalloc: self.vmalloc / n,
            sec_page_tables: self.sec_page_tables / n,
            percpu: self.percpu / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24683792 kB\nMemFree:        22776428 kB\n\
        MemAvailable:   24076092 kB\nAnonPages:          8020 kB\nSlab:             873852 kB\n\
        KernelStack:        1424 kB\nPageTables:         3336 kB\nSecPageTables:         0 kB\n\
        VmallocUsed:       20132 kB\nPercpu:             4248 kB\n";

    #[test]
    fn meminfo_is_read() {
        let m = Meminfo::parse(MEMINFO).unwrap();
        assert_eq!(m.mem_total, 24_683_792 * 1024);
        assert_eq!(m.used(), (24_683_792 - 24_076_092) * 1024);
        assert_eq!(
            (m.slab, m.kernel_stack, m.vmalloc_used, m.percpu),
            (873_852 * 1024, 1424 * 1024, 20_132 * 1024, 4248 * 1024)
        );
        // An older kernel: no SecPageTables, no Percpu.
        let old: String = MEMINFO
            .lines()
            .filter(|l| !l.starts_with("SecPage") && !l.starts_with("Percpu"))
            .map(|l| format!("{l}\n"))
            .collect();
        let m = Meminfo::parse(&old).unwrap();
        assert_eq!((m.sec_page_tables, m.percpu), (0, 0));
        assert_eq!(Meminfo::parse("MemTotal: 1 kB\n"), None);
        assert_eq!(meminfo_kib(MEMINFO, "Nope:"), None);
        let here = Meminfo::read().unwrap();
        assert!(here.mem_total > 0 && here.used() < here.mem_total);
        // The per-CPU lists' free pages are not used memory.
        let m = Meminfo { pcp_free: 100 * 1024, ..m };
        assert_eq!(m.used(), (24_683_792 - 24_076_092 - 100) * 1024);
    }

    #[test]
    fn per_cpu_free_pages_are_read() {
        let zoneinfo = "Node 0, zone      DMA\n  per-node stats\n      nr_inactive_anon 424\n\
            pages free     3840\n        min      5\n  pagesets\n    cpu: 0\n              count:    0\n\
                          high:     0\n              batch:    1\n  vm stats threshold: 8\n\
            Node 0, zone   Normal\n  pages free     4548608\n  pagesets\n    cpu: 0\n\
                          count:    9975\n              high:     10270\n    cpu: 1\n\
                          count:    82527\n              high:     82752\n";
        assert_eq!(pcp_free_bytes(zoneinfo), (9975 + 82_527) * 4096);
        assert_eq!(pcp_free_bytes(""), 0);
        let here = fs::read_to_string("/proc/zoneinfo").unwrap();
        assert!(here.contains("count:"), "no per-CPU lists in /proc/zoneinfo");
    }

    #[test]
    fn process_memory_is_read() {
        let status = "Name:\thac-launch\nVmRSS:\t    6344 kB\nRssAnon:\t    2004 kB\nRssFile:\t    4340 kB\n\
                      RssShmem:\t       0 kB\nVmPTE:\t     144 kB\nThreads:\t9\n";
        let rollup = "5595a87c4000-7ffe1fdab000 ---p 00000000 00:00 0   [rollup]\nRss:  6344 kB\n\
                      Pss:   4908 kB\nPss_Anon:  2000 kB\nPss_File:  2904 kB\nPss_Shmem:  4 kB\n";
        let p = ProcessMemory::parse(status, rollup).unwrap();
        assert_eq!(
            p,
            ProcessMemory {
                anon: 2004 * 1024,
                file: 2904 * 1024,
                rss: 6344 * 1024,
                page_tables: 144 * 1024,
                threads: 9
            }
        );
        // Without a smaps_rollup (or one without Pss_Anon): status's RssAnon + RssShmem.
        assert_eq!(ProcessMemory::parse(status, "").unwrap().anon, 2004 * 1024);
        assert_eq!(ProcessMemory::parse("VmRSS: 1 kB\n", rollup), None);
        assert_eq!(p.held(16 * 1024), ((2004 + 144 + 9 * 16) * 1024) as f64);
        let mine = ProcessMemory::sum(&[std::process::id(), std::process::id()]).unwrap();
        assert!(mine.threads >= 2 && mine.rss > 0 && mine.page_tables > 0);
    }

    #[test]
    fn kernel_stacks_and_configuration() {
        let m = Meminfo { kernel_stack: 16 * 1024 * 100 + 300, ..Meminfo::default() };
        assert_eq!(stack_per_task(&m, 100), 16 * 1024);
        assert_eq!(stack_per_task(&m, 0), 1600 * 1024);
        assert_eq!(
            vmap_stack("CONFIG_X=y\nCONFIG_HAVE_ARCH_VMAP_STACK=y\nCONFIG_VMAP_STACK=y\n"),
            Some(true)
        );
        assert_eq!(vmap_stack("# CONFIG_VMAP_STACK is not set\n"), Some(false));
        assert_eq!(vmap_stack("CONFIG_HAVE_ARCH_VMAP_STACK=y\n"), None);
        assert!(host_tasks().unwrap() >= 1);
    }

    #[test]
    fn cost_counts_each_part_once() {
        const KIB: u64 = 1024;
        let before = Meminfo {
            mem_total: 1 << 30,
            mem_available: 1 << 29,
            anon_pages: 100 * KIB,
            slab: 1000 * KIB,
            kernel_stack: 160 * KIB,
            page_tables: 10 * KIB,
            sec_page_tables: 0,
            vmalloc_used: 2000 * KIB,
            percpu: 50 * KIB,
            pcp_free: 0,
        };
        // Two launchers of 9 threads: 288 KiB of stacks, vmalloc'd; KVM's arrays 1400 KiB; the
        // slab 900 KiB more; another user's 100 KiB of anonymous memory freed meanwhile.
        let with = Meminfo {
            anon_pages: 4000 * KIB,
            slab: 1900 * KIB,
            kernel_stack: 448 * KIB,
            sec_page_tables: 64 * KIB,
            vmalloc_used: (2000 + 288 + 1400) * KIB,
            ..before
        };
        let processes = ProcessMemory {
            anon: 4000 * KIB,
            file: 10,
            rss: 12_000 * KIB,
            page_tables: 300 * KIB,
            threads: 18,
        };
        let cost = Cost::count(&before, &with, &processes, 16 * KIB, true);
        let kib = |b: f64| b / 1024.0;
        assert_eq!(kib(cost.user), 4000.0);
        assert_eq!(kib(cost.page_tables), 300.0);
        assert_eq!(kib(cost.kernel_stacks), 288.0);
        assert_eq!(kib(cost.slab), 900.0);
        assert_eq!(kib(cost.vmalloc), 1400.0);
        assert_eq!(kib(cost.sec_page_tables), 64.0);
        assert_eq!(kib(cost.kernel()), 2364.0);
        assert_eq!(kib(cost.total()), 4000.0 + 300.0 + 288.0 + 2364.0);
        assert_eq!(kib(cost.per(2.0).total()), kib(cost.total()) / 2.0);
        // Stacks not vmalloc'd: VmallocUsed's rise is KVM's alone.
        let plain = Meminfo { vmalloc_used: (2000 + 1400) * KIB, ..with };
        assert_eq!(kib(Cost::count(&before, &plain, &processes, 16 * KIB, false).vmalloc), 1400.0);
        // A host figure that falls (another user freed slab) counts negative, not clamped.
        let fell = Meminfo { slab: 800 * KIB, ..with };
        assert_eq!(kib(Cost::count(&before, &fell, &processes, 16 * KIB, true).slab), -200.0);
    }
}
