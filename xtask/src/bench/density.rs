//! `cargo xtask bench density`: how many spacecores this host holds, and what each costs it.
//!
//! [`BASELINE_COUNT`] spacecores first (the baseline of the same run), then `--count`
//! spacecores started at once, each with 1 vCPU, 256 MiB, a 16 MiB disk and a NIC with its HTTP
//! port published on a free loopback port, under the launcher's defaults (confined as root).
//! For each run:
//!
//! * **time until all serve**: from the first launcher started to the last answer to `GET /`
//!   through a published port (each spacecore is asked in turn once its launcher printed its
//!   port, again every 5 ms until it answers); beside it, how long starting the launchers took,
//!   each launcher's own `ready_us` and the CPU each took until then;
//! * **host memory per spacecore**: what they make the host hold, counted by where it lies
//!   ([`hostmem`]): the launchers' anonymous memory (the guests' touched memory included) and
//!   page tables, read per process, their threads' kernel stacks, and the rise of the kernel's
//!   slab, vmalloc (KVM's memory-slot arrays), shadow page tables and per-CPU memory once all
//!   serve, over the count. Beside it the host's used memory (`MemTotal - MemAvailable` less the
//!   free pages on the kernel's per-CPU lists, which `MemAvailable` leaves out): its
//!   rise from before the start and its fall once they stopped, a check that moves with the
//!   host's other users;
//! * **idle CPU**: the time on CPU of every thread of the launchers (`schedstat`, ns) over
//!   `--idle-seconds` with no request, in % of one core, for all of them together.
//!
//! Before each run the bench waits until the kernel's memory no longer falls (the previous
//! run's network namespaces and VMs are freed by kernel workers after their launchers exit).
//!
//! The goals (docs/performance of the project's issue): at most 3 MiB each, all serving within
//! 10 s, idle CPU of all together under 2% of one core; the ratios are against the baseline of
//! the same run (1.0: each spacecore costs as much among many as among few).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::boot::number_after;
use super::cpu;
use super::hostmem::{self, Cost, Meminfo, ProcessMemory};
use super::http::Client;
use super::net::published_http;
use super::serving;
use super::stats::Summary;
use super::vm::{self, Launcher};
use super::{verdict, write_json};
use crate::cmd::progress;

/// Most host memory a spacecore may take (goal), bytes.
const MEMORY_GOAL: f64 = 3.0 * 1024.0 * 1024.0;
/// Longest time until all serve (goal).
const SERVING_GOAL: Duration = Duration::from_secs(10);
/// Most idle CPU of all spacecores together (goal), % of one core.
const IDLE_CPU_GOAL: f64 = 2.0;
/// How long one spacecore may take to serve, counted from its launcher's start.
const SERVE_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between two `GET /` to a spacecore that does not answer yet.
const RETRY: Duration = Duration::from_millis(5);
/// How long the launchers may take to exit after SIGTERM, all together; then they are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// The launchers' flags that let the spacecores past the host's admission check (whose
/// defaults would stop 1000 guests of 256 MiB on a 24 GiB host).
const LIFT_ADMISSION: [&str; 4] = ["--cpu-overcommit", "1000", "--memory-overcommit", "1000"];
/// Least host memory per spacecore a ratio is taken against.
const MEASURABLE: f64 = 256.0 * 1024.0;
/// The kernel's memory has settled when it fell by less than this over [`SETTLE_STEP`].
const SETTLED_BYTES: i64 = 1 << 20;
/// Between two reads of the kernel's memory while it settles.
const SETTLE_STEP: Duration = Duration::from_millis(500);
/// Longest wait for the kernel's memory to settle.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// `value / baseline`, or NaN (null in the JSON, `-` in the table) when the baseline is not
/// measurable.
fn ratio(value: f64, baseline: f64) -> f64 {
    if baseline >= MEASURABLE { value / baseline } else { f64::NAN }
}

/// Spacecores of the baseline run (fewer if `--count` is smaller).
const BASELINE_COUNT: u32 = 10;
/// Pause once all serve, before memory and CPU are read, so the boots' own work is over.
const SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Spacecores started at once (1 to 2000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=2000))]
    count: u32,
    /// Seconds over which the idle CPU of all of them is measured (1 to 600).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=600))]
    idle_seconds: u32,
    /// Start every spacecore from one snapshot (`hac-launch --snapshot`), saved from the first
    /// one's spec before each run, instead of booting the image.
    #[arg(long)]
    snapshot: bool,
}

/// One run's figures; "per spacecore" figures are the run's over its count.
#[derive(Debug, Serialize)]
struct Run {
    count: u32,
    /// First launcher started to the last `GET /` answered.
    all_serving_ms: f64,
    /// First launcher started to the last one started (the bench starts them one by one).
    all_started_ms: f64,
    /// First launcher started to each spacecore's first answer, in the order they are asked.
    served_ms: Option<Summary>,
    /// `GET /` asked until all answered (one connection each).
    probes: u64,
    /// Each launcher's `ready_us` (its start to its guest's readiness), in ms.
    ready_ms: Option<Summary>,
    /// utime + stime of the launchers once all serve (their start-up and boots), per spacecore.
    boot_cpu_ms_per_spacecore: f64,
    /// The same by thread name, from each live thread's `schedstat` (threads that ended, such as
    /// the jail's, are left out), per spacecore.
    boot_cpu_ms_by_thread: BTreeMap<String, f64>,
    /// The host's busy CPU time (every process and kernel worker, the bench's and other users'
    /// included) from the first launcher started to all serving, per spacecore.
    host_busy_ms_per_spacecore: f64,
    /// The host's CPUs: all serving takes at least count x host_busy_ms_per_spacecore / cpus.
    cpus: u32,
    /// What a spacecore costs the host's memory, counted ([`Cost::total`] of `cost`).
    host_memory_per_spacecore_bytes: f64,
    /// Its parts.
    cost_per_spacecore: Cost,
    /// The guests' resident memory (the launchers' last `memory:` lines): their anonymous
    /// memory, part of `user`, and their image's pages shared from its file, which are not.
    guest_resident_per_spacecore_bytes: f64,
    /// The bytes of each guest's image mapped from its file, shared by all of them (in the
    /// page cache once, whatever the number of spacecores).
    image_shared_per_spacecore_bytes: f64,
    /// The host's used memory ([`Meminfo::used`]) once all serve, less before.
    host_used_rise_per_spacecore_bytes: f64,
    /// The same once all stopped and the kernel's memory settled, less once all serve.
    host_used_fall_per_spacecore_bytes: f64,
    /// What the bench's own process took meanwhile (anonymous memory, page tables and kernel
    /// stacks of its two reader threads per launcher), part of the host's rise.
    bench_rise_per_spacecore_bytes: f64,
    /// The kernel's part ([`Cost::kernel`]) once all serve, less once all stopped and settled:
    /// it should match the rise.
    kernel_fall_per_spacecore_bytes: f64,
    /// The launchers' share of the file pages they map (reclaimable page cache, not counted).
    file_per_spacecore_bytes: f64,
    /// The launchers' resident sets (VmRSS: shared file pages count whole in each).
    rss_per_spacecore_bytes: f64,
    /// The launchers' threads.
    threads_per_spacecore: f64,
    /// A kernel stack on this host (`KernelStack` over its tasks).
    kernel_stack_bytes: u64,
    /// The launchers' time on CPU over the idle window, % of one core.
    idle_cpu_percent: f64,
    /// The same by thread name (all launchers together), µs over the window.
    idle_cpu_us_by_thread: BTreeMap<String, f64>,
    /// VM exits the launchers counted over their whole life (boot, idle, stop), per spacecore.
    hypercalls_per_spacecore: f64,
    device_accesses_per_spacecore: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    /// The host's limits that the run's count takes a share of.
    room: Room,
    idle_seconds: u32,
    /// Whether every spacecore started from one snapshot (`--snapshot`).
    from_snapshot: bool,
    /// Whether this host's kernel stacks are in `VmallocUsed` (`CONFIG_VMAP_STACK`).
    kernel_stacks_in_vmalloc: bool,
    baseline: Run,
    run: Run,
    /// `run`'s host memory per spacecore over `baseline`'s.
    memory_ratio: f64,
    /// `run.all_serving_ms` over `baseline.all_serving_ms`.
    serving_ratio: f64,
}

pub fn run(args: &Args) -> Result<()> {
    let prepared = vm::prepare("density")?;
    let scratch = vm::Scratch::new("density")?;
    raise_open_files_limit();
    let host = Host { stacks_in_vmalloc: hostmem::stacks_in_vmalloc() };
    let idle = Duration::from_secs(u64::from(args.idle_seconds));
    let few = BASELINE_COUNT.min(args.count);
    progress(format_args!("baseline: {few} spacecore(s) started at once..."));
    let start = Start { snapshot: args.snapshot, idle };
    let baseline = measure(&prepared.launch, &prepared.image, scratch.path(), few, start, &host)?;
    // The baseline tells how many threads a spacecore takes: room for the run is checked before
    // it starts anything.
    let room = Room::read(args.count, baseline.threads_per_spacecore)?;
    let problems = room.problems(args.count);
    if !problems.is_empty() {
        bail!("this host has no room for {} spacecores at once: {}", args.count, problems.join("; "));
    }
    progress(format_args!("{} spacecores started at once...", args.count));
    let run = measure(&prepared.launch, &prepared.image, scratch.path(), args.count, start, &host)?;
    let report = Report {
        room,
        idle_seconds: args.idle_seconds,
        from_snapshot: args.snapshot,
        kernel_stacks_in_vmalloc: host.stacks_in_vmalloc,
        memory_ratio: ratio(run.host_memory_per_spacecore_bytes, baseline.host_memory_per_spacecore_bytes),
        serving_ratio: run.all_serving_ms / baseline.all_serving_ms.max(0.001),
        baseline,
        run,
    };
    print!("{}", render(&report));
    let out = write_json("density", &report)?;
    progress(format_args!("figures written to {}", out.display()));
    Ok(())
}

/// Threads of the bench per launcher (reading its stdout and its stderr).
const BENCH_THREADS_PER_LAUNCHER: f64 = 2.0;
/// Open files of the bench per launcher (the pipes of its stdout and stderr).
const BENCH_FILES_PER_LAUNCHER: u64 = 2;
/// Open files the bench needs besides (its own, the client's socket, the toolchain's).
const BENCH_FILES: u64 = 64;
/// Pids below this are not handed out again once pids wrap (Linux's RESERVED_PIDS).
const RESERVED_PIDS: u64 = 300;

/// The host's limits that spacecores started at once take a share of, and what a run takes.
/// Every spacecore is a launcher process with its threads and a network and a mount namespace;
/// the bench adds two threads and two pipes per launcher.
#[derive(Debug, Serialize, PartialEq)]
struct Room {
    /// `kernel.pid_max`: every thread takes a pid below it.
    pid_max: u64,
    /// `kernel.threads-max`.
    threads_max: u64,
    /// The host's tasks before the run.
    tasks_now: u64,
    /// Those and the run's: count x (a launcher's threads + the bench's per launcher).
    tasks_needed: u64,
    /// `user.max_net_namespaces` and `user.max_mnt_namespaces`: one of each per launcher.
    max_net_namespaces: u64,
    max_mnt_namespaces: u64,
    /// The bench's soft `RLIMIT_NOFILE`, once raised to the hard limit.
    open_files_limit: u64,
    open_files_needed: u64,
}

impl Room {
    fn read(count: u32, threads_per_spacecore: f64) -> Result<Room> {
        let sysctl = |name: &str| -> Result<u64> {
            let path = format!("/proc/sys/{}", name.replace('.', "/"));
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
            text.trim().parse().with_context(|| format!("{path}: {text:?}"))
        };
        let tasks_now = hostmem::host_tasks()?;
        let per = threads_per_spacecore + BENCH_THREADS_PER_LAUNCHER;
        Ok(Room {
            pid_max: sysctl("kernel.pid_max")?,
            threads_max: sysctl("kernel.threads-max")?,
            tasks_now,
            tasks_needed: tasks_now + (f64::from(count) * per).ceil() as u64,
            max_net_namespaces: sysctl("user.max_net_namespaces")?,
            max_mnt_namespaces: sysctl("user.max_mnt_namespaces")?,
            open_files_limit: rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .unwrap_or(u64::MAX),
            open_files_needed: u64::from(count) * BENCH_FILES_PER_LAUNCHER + BENCH_FILES,
        })
    }

    /// Each limit the run would pass, with the setting that lifts it.
    fn problems(&self, count: u32) -> Vec<String> {
        let count = u64::from(count);
        let mut problems = Vec::new();
        let pids = self.pid_max.saturating_sub(RESERVED_PIDS);
        if self.tasks_needed > pids {
            problems.push(format!(
                "it needs about {} tasks (threads) and kernel.pid_max {} leaves {pids}: sysctl -w kernel.pid_max={}",
                self.tasks_needed,
                self.pid_max,
                (self.tasks_needed + RESERVED_PIDS).next_power_of_two().min(1 << 22)
            ));
        }
        if self.tasks_needed > self.threads_max {
            problems.push(format!(
                "it needs about {} threads, past kernel.threads-max {}: sysctl -w kernel.threads-max={}",
                self.tasks_needed,
                self.threads_max,
                self.tasks_needed * 2
            ));
        }
        for (name, limit) in [
            ("user.max_net_namespaces", self.max_net_namespaces),
            ("user.max_mnt_namespaces", self.max_mnt_namespaces),
        ] {
            if count > limit {
                problems.push(format!(
                    "one namespace per spacecore, past {name} {limit}: sysctl -w {name}={count}"
                ));
            }
        }
        if self.open_files_needed > self.open_files_limit {
            problems.push(format!(
                "the bench needs {} open files, past its hard RLIMIT_NOFILE {}: ulimit -Hn {}",
                self.open_files_needed, self.open_files_limit, self.open_files_needed
            ));
        }
        problems
    }
}

/// What the bench knows of the host before it starts.
struct Host {
    stacks_in_vmalloc: bool,
}

/// Launchers started together. Dropping the set (a run that failed half-way) sends SIGTERM to
/// all at once, then waits for them together and kills those still running after
/// [`STOP_TIMEOUT`]: their VMs, taps and network namespaces end with their processes.
struct Fleet(Vec<Launcher>);

impl Fleet {
    /// SIGTERM to every launcher still running, then waits for all (together at most
    /// [`STOP_TIMEOUT`], then kills the rest); each one's status, or why it has none.
    fn stop(&mut self) -> Vec<Result<ExitStatus>> {
        for launcher in &mut self.0 {
            // One already reaped is not signalled (its pid may be another process's by now).
            if launcher.running() {
                let _ = launcher.signal_terminate();
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        self.0.iter_mut().map(|l| l.wait(deadline.saturating_duration_since(Instant::now()))).collect()
    }

    fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Launcher::pid).collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Starts `count` spacecores at once, waits until all serve, reads memory and idle CPU, stops
/// them.
/// How a run starts its spacecores.
#[derive(Debug, Clone, Copy)]
struct Start {
    /// From one snapshot of the first spacecore's spec.
    snapshot: bool,
    /// How long the idle CPU is measured.
    idle: Duration,
}

fn measure(launch: &Path, image: &Path, dir: &Path, count: u32, start: Start, host: &Host) -> Result<Run> {
    let idle = start.idle;
    let tables = "[spec.networking.inbound_ports]\nHTTP = 80\n\n[spec.networking.publish]\nHTTP = 0\n";
    let mut specs = Vec::new();
    for i in 0..count {
        let name = format!("density-{count}-{i}");
        specs.push(vm::write_spec(dir, &name, image, "storage = \"16Mi\"\n", tables)?);
    }
    let mut args: Vec<String> = LIFT_ADMISSION.iter().map(|a| a.to_string()).collect();
    if start.snapshot {
        let snapshot = dir.join(format!("snapshot-{count}"));
        vm::save_snapshot(launch, &specs[0], &snapshot, Some(dir))?;
        args.extend(["--snapshot".to_owned(), snapshot.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let before = settle_kernel_memory()?;
    let bench_before = ProcessMemory::read(std::process::id())?;
    let host_cpu_before = cpu::host_cpu()?;
    let started = Instant::now();
    let mut fleet = Fleet(Vec::with_capacity(specs.len()));
    for spec in &specs {
        // The host's admission check is lifted: this measures what the host holds.
        fleet.0.push(Launcher::spawn(launch, spec, dir, &args)?);
    }
    let all_started = started.elapsed();
    let (mut served_ms, mut probes) = (Vec::with_capacity(fleet.0.len()), 0);
    for (i, launcher) in fleet.0.iter_mut().enumerate() {
        let addr = launcher.wait_for("`published` event of HTTP", SERVE_TIMEOUT, published_http)?;
        probes +=
            serve(addr, started + SERVE_TIMEOUT).with_context(|| format!("spacecore {i} of {count}"))?;
        served_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let all_serving = started.elapsed();
    let host_cpu = cpu::host_cpu()?;
    let mut ready_ms = Vec::with_capacity(fleet.0.len());
    for launcher in &mut fleet.0 {
        ready_ms.push(launcher.wait_for("`ready` event", SERVE_TIMEOUT, serving::ready_us)? / 1000.0);
    }
    std::thread::sleep(SETTLE);
    let n = f64::from(count);
    let pids = fleet.pids();
    let with = Meminfo::read()?;
    let processes = ProcessMemory::sum(&pids)?;
    let bench_with = ProcessMemory::read(std::process::id())?;
    let stack = hostmem::stack_per_task(&with, hostmem::host_tasks()?);
    let boot_ticks = cpu_ticks(&pids)?;
    let idle_before = thread_snapshot(&pids)?;
    let idle_started = Instant::now();
    std::thread::sleep(idle);
    let idle_after = thread_snapshot(&pids)?;
    let idle_wall = idle_started.elapsed();
    let idle_cpu_us_by_thread = cpu::thread_us(&idle_before, &idle_after);
    let boot_cpu_ms_by_thread = cpu::thread_us(&BTreeMap::new(), &idle_before)
        .into_iter()
        .map(|(name, us)| (name, us / 1000.0 / n))
        .collect();
    // A fold from 0.0: an empty f64 sum is -0.0.
    let idle_us = idle_cpu_us_by_thread.values().fold(0.0, |a, b| a + b);
    progress(format_args!("stopping {count} spacecore(s)..."));
    let statuses = fleet.stop();
    let mut ends = Vec::with_capacity(statuses.len());
    for (launcher, status) in fleet.0.iter_mut().zip(statuses) {
        let status = status?;
        if !status.success() {
            return Err(launcher.failure(status));
        }
        ends.push(Ending::of(launcher)?);
    }
    let after = settle_kernel_memory()?;
    let cost = Cost::count(&before, &with, &processes, stack, host.stacks_in_vmalloc);
    let kernel_after = Cost::count(&before, &after, &ProcessMemory::default(), 0, host.stacks_in_vmalloc);
    let signed = |a: u64, b: u64| a as f64 - b as f64;
    let clk_tck = cpu::clock_ticks_per_second() as f64;
    Ok(Run {
        count,
        all_serving_ms: all_serving.as_secs_f64() * 1000.0,
        all_started_ms: all_started.as_secs_f64() * 1000.0,
        served_ms: Summary::of(&served_ms),
        probes,
        ready_ms: Summary::of(&ready_ms),
        boot_cpu_ms_per_spacecore: boot_ticks as f64 / clk_tck * 1000.0 / n,
        boot_cpu_ms_by_thread,
        host_busy_ms_per_spacecore: host_cpu.busy_ticks.saturating_sub(host_cpu_before.busy_ticks) as f64
            / clk_tck
            * 1000.0
            / n,
        cpus: host_cpu.cpus,
        host_memory_per_spacecore_bytes: cost.total() / n,
        cost_per_spacecore: cost.per(n),
        guest_resident_per_spacecore_bytes: ends.iter().map(|e| e.guest_resident_bytes).sum::<f64>() / n,
        image_shared_per_spacecore_bytes: ends.iter().map(|e| e.image_shared_bytes).sum::<f64>() / n,
        host_used_rise_per_spacecore_bytes: signed(with.used(), before.used()) / n,
        host_used_fall_per_spacecore_bytes: signed(with.used(), after.used()) / n,
        bench_rise_per_spacecore_bytes: (bench_with.held(stack) - bench_before.held(stack)) / n,
        kernel_fall_per_spacecore_bytes: (cost.kernel() - kernel_after.kernel()) / n,
        file_per_spacecore_bytes: processes.file as f64 / n,
        rss_per_spacecore_bytes: processes.rss as f64 / n,
        threads_per_spacecore: processes.threads as f64 / n,
        kernel_stack_bytes: stack,
        idle_cpu_percent: idle_us / (idle_wall.as_secs_f64() * 1e6) * 100.0,
        idle_cpu_us_by_thread,
        hypercalls_per_spacecore: ends.iter().map(|e| e.hypercalls).sum::<f64>() / n,
        device_accesses_per_spacecore: ends.iter().map(|e| e.device_accesses).sum::<f64>() / n,
    })
}

/// What a launcher's last lines say of its run.
struct Ending {
    guest_resident_bytes: f64,
    image_shared_bytes: f64,
    hypercalls: f64,
    device_accesses: f64,
}

impl Ending {
    fn of(launcher: &Launcher) -> Result<Ending> {
        let lines = launcher.lines()?;
        let memory = lines.iter().find_map(|l| l.launcher("memory: ")).context("no `memory: ...` line")?;
        let exits = lines.iter().find_map(|l| l.launcher("exits: ")).context("no `exits: ...` line")?;
        let (hypercalls, device_accesses) =
            parse_exits(exits).with_context(|| format!("exits: {exits:?}"))?;
        let guest_kib = parse_guest_resident_kib(memory).with_context(|| format!("memory: {memory:?}"))?;
        let shared_kib = parse_image_shared_kib(memory);
        Ok(Ending {
            guest_resident_bytes: guest_kib * 1024.0,
            image_shared_bytes: shared_kib * 1024.0,
            hypercalls,
            device_accesses,
        })
    }
}

/// `launcher rss <A> KiB, guest resident <B> KiB, overhead <C> KiB` (after `memory: `): B.
fn parse_guest_resident_kib(memory: &str) -> Option<f64> {
    match number_after(memory, "guest resident ")? {
        (kib, unit) if unit.starts_with("KiB") => Some(kib),
        _ => None,
    }
}

/// `...; image <S> KiB shared from its file` (after `memory: `): S; 0 for `image copied`.
fn parse_image_shared_kib(memory: &str) -> f64 {
    match number_after(memory, "; image ") {
        Some((kib, unit)) if unit.starts_with("KiB shared") => kib,
        _ => 0.0,
    }
}

/// `<H> hypercalls, <D> device register accesses` (after `exits: `): H and D.
fn parse_exits(exits: &str) -> Option<(f64, f64)> {
    let (hypercalls, rest) = number_after(exits, "")?;
    let rest = rest.strip_prefix("hypercalls, ")?;
    let (devices, rest) = number_after(rest, "")?;
    rest.starts_with("device register accesses").then_some((hypercalls, devices))
}

/// Whether the kernel's memory (slab, vmalloc, shadow page tables, per-CPU) fell by less than
/// [`SETTLED_BYTES`] from `last` to `now`.
fn settled(last: &Meminfo, now: &Meminfo) -> bool {
    let kernel = |m: &Meminfo| (m.slab + m.vmalloc_used + m.sec_page_tables + m.percpu) as i64;
    kernel(last) - kernel(now) < SETTLED_BYTES
}

/// Waits until the kernel's memory no longer falls (at most [`SETTLE_LIMIT`]); the host's
/// meminfo then.
fn settle_kernel_memory() -> Result<Meminfo> {
    let deadline = Instant::now() + SETTLE_LIMIT;
    let mut last = Meminfo::read()?;
    loop {
        std::thread::sleep(SETTLE_STEP);
        let now = Meminfo::read()?;
        if settled(&last, &now) || Instant::now() >= deadline {
            return Ok(now);
        }
        last = now;
    }
}

/// `GET /` to `addr` until it answers 200 (the attempts), or an error at `deadline`.
fn serve(addr: SocketAddr, deadline: Instant) -> Result<u64> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let answered = Client::connect(addr).and_then(|mut client| client.get_root());
        match answered {
            Ok(()) => return Ok(attempts),
            Err(e) if Instant::now() >= deadline => bail!("GET / through {addr}: {e:#}"),
            Err(_) => std::thread::sleep(RETRY),
        }
    }
}

/// utime + stime of the processes, in clock ticks.
fn cpu_ticks(pids: &[u32]) -> Result<u64> {
    pids.iter().map(|&pid| cpu::process_ticks(pid)).sum()
}

/// Every thread of the processes with its time on CPU (thread ids are the host's, so one map).
fn thread_snapshot(pids: &[u32]) -> Result<BTreeMap<u32, cpu::Thread>> {
    let mut threads = BTreeMap::new();
    for &pid in pids {
        threads.extend(cpu::cpu_snapshot(pid)?.1);
    }
    Ok(threads)
}

/// Room for the launchers' pipes: the soft limit of open files goes to the hard limit.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}

/// A part of [`Cost`] in the table: its name and how to take it.
type Part = (&'static str, fn(&Cost) -> f64);

fn render(r: &Report) -> String {
    let mib = |b: f64| b / (1024.0 * 1024.0);
    let (b, n) = (&r.baseline, &r.run);
    let memory_pass = n.host_memory_per_spacecore_bytes <= MEMORY_GOAL;
    let serving_pass = n.all_serving_ms <= SERVING_GOAL.as_secs_f64() * 1000.0;
    let idle_pass = n.idle_cpu_percent < IDLE_CPU_GOAL;
    let mut out = format!(
        "density: spacecores of 1 vCPU, 256 MiB, a 16 MiB disk and a published HTTP port, started at once{}\n\
         {:<48} {:>12} {:>12} {:>8}\n",
        if r.from_snapshot { ", each from one snapshot (--snapshot)" } else { "" },
        "",
        format!("{} at once", b.count),
        format!("{} at once", n.count),
        "ratio",
    );
    let mut row = |name: &str, base: f64, run: f64, digits: usize, tail: &str| {
        out.push_str(&format!("{name:<48} {base:>12.digits$} {run:>12.digits$}{tail}\n"));
    };
    let memory_ratio =
        if r.memory_ratio.is_nan() { "-".to_owned() } else { format!("{:.2}", r.memory_ratio) };
    row(
        "host memory per spacecore, counted (MiB)",
        mib(b.host_memory_per_spacecore_bytes),
        mib(n.host_memory_per_spacecore_bytes),
        2,
        &format!(" {memory_ratio:>8}   goal <= 3 MiB  {}", verdict(memory_pass)),
    );
    let parts: [Part; 7] = [
        ("  launcher anonymous memory, guest's included", |c| c.user),
        ("  page tables", |c| c.page_tables),
        ("  kernel stacks", |c| c.kernel_stacks),
        ("  kernel slab", |c| c.slab),
        ("  kernel vmalloc (KVM's memory-slot arrays)", |c| c.vmalloc),
        ("  KVM shadow page tables", |c| c.sec_page_tables),
        ("  per-CPU", |c| c.percpu),
    ];
    for (name, part) in parts {
        row(name, mib(part(&b.cost_per_spacecore)), mib(part(&n.cost_per_spacecore)), 3, "");
    }
    row(
        "  guest resident, shared image pages included",
        mib(b.guest_resident_per_spacecore_bytes),
        mib(n.guest_resident_per_spacecore_bytes),
        3,
        "",
    );
    row(
        "  its image shared from the file (not counted)",
        mib(b.image_shared_per_spacecore_bytes),
        mib(n.image_shared_per_spacecore_bytes),
        3,
        "",
    );
    row(
        "host used memory rise per spacecore (MiB)",
        mib(b.host_used_rise_per_spacecore_bytes),
        mib(n.host_used_rise_per_spacecore_bytes),
        2,
        "   (moves with the host's other users)",
    );
    row(
        "  of which the bench's own process (MiB)",
        mib(b.bench_rise_per_spacecore_bytes),
        mib(n.bench_rise_per_spacecore_bytes),
        3,
        "",
    );
    let unattributed = |r: &Run| {
        r.host_used_rise_per_spacecore_bytes
            - r.bench_rise_per_spacecore_bytes
            - r.host_memory_per_spacecore_bytes
    };
    row("  rise less the bench's and the counted (MiB)", mib(unattributed(b)), mib(unattributed(n)), 3, "");
    row(
        "host used memory fall once stopped (MiB)",
        mib(b.host_used_fall_per_spacecore_bytes),
        mib(n.host_used_fall_per_spacecore_bytes),
        2,
        "",
    );
    row(
        "kernel part's fall once stopped (MiB)",
        mib(b.kernel_fall_per_spacecore_bytes),
        mib(n.kernel_fall_per_spacecore_bytes),
        3,
        "",
    );
    row(
        "launcher resident set (MiB, shared pages whole)",
        mib(b.rss_per_spacecore_bytes),
        mib(n.rss_per_spacecore_bytes),
        2,
        "",
    );
    row(
        "first start to all serving (ms)",
        b.all_serving_ms,
        n.all_serving_ms,
        0,
        &format!(" {:>8.2}   goal <= 10000 ms  {}", r.serving_ratio, verdict(serving_pass)),
    );
    row("  first start to last launcher started (ms)", b.all_started_ms, n.all_started_ms, 0, "");
    let served = |run: &Run| run.served_ms.as_ref().map_or(f64::NAN, |s| s.median);
    row("  first start to half of them serving (ms)", served(b), served(n), 0, "");
    row("  GET / asked until all answered", b.probes as f64, n.probes as f64, 0, "");
    let ready = |run: &Run, f: fn(&Summary) -> f64| run.ready_ms.as_ref().map_or(f64::NAN, f);
    row("  a launcher's start to ready, median (ms)", ready(b, |s| s.median), ready(n, |s| s.median), 0, "");
    row("  a launcher's start to ready, max (ms)", ready(b, |s| s.max), ready(n, |s| s.max), 0, "");
    row(
        "  launcher CPU per spacecore until all serve (ms)",
        b.boot_cpu_ms_per_spacecore,
        n.boot_cpu_ms_per_spacecore,
        1,
        "",
    );
    let thread = |r: &Run, name: &str| r.boot_cpu_ms_by_thread.get(name).copied().unwrap_or(0.0);
    for name in ["hac-launch", "vcpu0"] {
        row(&format!("    of which thread {name} (ms)"), thread(b, name), thread(n, name), 1, "");
    }
    row(
        "  host busy CPU per spacecore, all processes (ms)",
        b.host_busy_ms_per_spacecore,
        n.host_busy_ms_per_spacecore,
        1,
        "",
    );
    let floor = |r: &Run| f64::from(r.count) * r.host_busy_ms_per_spacecore / f64::from(r.cpus.max(1));
    row("  that CPU over the host's CPUs (ms)", floor(b), floor(n), 0, "");
    row(
        &format!("idle CPU over {} s (% of one core)", r.idle_seconds),
        b.idle_cpu_percent,
        n.idle_cpu_percent,
        3,
        &format!("            goal < 2% of a core, all together  {}", verdict(idle_pass)),
    );
    row(
        "VM exits per spacecore, whole life",
        b.hypercalls_per_spacecore + b.device_accesses_per_spacecore,
        n.hypercalls_per_spacecore + n.device_accesses_per_spacecore,
        0,
        "",
    );
    let room = &r.room;
    out.push_str(&format!(
        "room: {} tasks of kernel.pid_max {} and kernel.threads-max {}; {} of the bench's {} open files; \
         one network and one mount namespace per spacecore, of {} and {}\n",
        room.tasks_needed,
        room.pid_max,
        room.threads_max,
        room.open_files_needed,
        room.open_files_limit,
        room.max_net_namespaces,
        room.max_mnt_namespaces
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launcher_lines_are_read() {
        let line = test_support::log::json_line(
            test_support::log::Source::Launcher,
            "published HTTP: 127.0.0.1:41234 -> guest 10.0.0.2:80",
            serde_json::json!({"event": "published", "port": "HTTP", "address": "127.0.0.1:41234", "guest": "10.0.0.2:80"}),
        );
        let line = test_support::log::LogLine::parse(&line).unwrap();
        assert_eq!(published_http(&line), Some("127.0.0.1:41234".parse().unwrap()));
        let memory = "launcher rss 4932 KiB, guest resident 1256 KiB, overhead 3676 KiB";
        assert_eq!(parse_guest_resident_kib(memory), Some(1256.0));
        assert_eq!(parse_guest_resident_kib("launcher rss 4932 KiB, guest resident 2 MiB"), None);
        assert_eq!(parse_image_shared_kib(memory), 0.0);
        let shared = "launcher rss 6100 KiB, guest resident 1279 KiB, overhead 4821 KiB; image 872 KiB shared from its file";
        assert_eq!(parse_guest_resident_kib(shared), Some(1279.0));
        assert_eq!(parse_image_shared_kib(shared), 872.0);
        assert_eq!(parse_image_shared_kib("launcher rss 1 KiB, guest resident 1 KiB; image copied"), 0.0);
        assert_eq!(parse_exits("28 hypercalls, 104 device register accesses"), Some((28.0, 104.0)));
        assert_eq!(parse_exits("28 hypercalls"), None);
        assert_eq!(parse_exits("28 hypercalls, 104 other"), None);
    }

    #[test]
    fn room_for_the_run_is_checked_against_each_limit() {
        let room = Room {
            pid_max: 32768,
            threads_max: 192_739,
            tasks_now: 300,
            tasks_needed: 300 + 11 * 1000,
            max_net_namespaces: 96_369,
            max_mnt_namespaces: 96_369,
            open_files_limit: 20_000,
            open_files_needed: 2064,
        };
        assert!(room.problems(1000).is_empty(), "{:?}", room.problems(1000));
        // 3000 spacecores of 9 threads: 33 300 tasks, past pid_max.
        let big = Room { tasks_needed: 300 + 11 * 3000, open_files_needed: 6064, ..room };
        let problems = big.problems(3000);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("kernel.pid_max 32768") && problems[0].ends_with("kernel.pid_max=65536")
        );
        let tight = Room { threads_max: 5000, max_net_namespaces: 999, open_files_limit: 1024, ..room };
        let problems = tight.problems(1000).join("\n");
        assert!(problems.contains("kernel.threads-max=22600"), "{problems}");
        assert!(problems.contains("user.max_net_namespaces=1000"), "{problems}");
        assert!(problems.contains("ulimit -Hn 2064"), "{problems}");
        assert!(!problems.contains("max_mnt"), "{problems}");
        let here = Room::read(10, 9.0).unwrap();
        assert!(here.pid_max > 0 && here.tasks_needed >= here.tasks_now + 110);
    }

    #[test]
    fn kernel_memory_settles_once_it_stops_falling() {
        let m = |slab: u64, vmalloc: u64| Meminfo { slab, vmalloc_used: vmalloc, ..Meminfo::default() };
        const MIB: u64 = 1 << 20;
        // Namespaces still being freed: 3 MiB less within a step.
        assert!(!settled(&m(100 * MIB, 50 * MIB), &m(98 * MIB, 49 * MIB)));
        // Less than 1 MiB less, or more (another user's): settled.
        assert!(settled(&m(100 * MIB, 50 * MIB), &m(100 * MIB, 49 * MIB + 1)));
        assert!(settled(&m(100 * MIB, 50 * MIB), &m(120 * MIB, 50 * MIB)));
    }

    #[test]
    fn the_table_shows_each_part_and_the_verdicts() {
        let run = |count: u32, per_mib: f64| {
            let cost = Cost { user: per_mib * 1024.0 * 1024.0, ..Cost::default() };
            Run {
                count,
                all_serving_ms: 1000.0,
                all_started_ms: 100.0,
                served_ms: Summary::of(&[500.0, 1000.0]),
                probes: 40,
                ready_ms: Summary::of(&[400.0, 600.0]),
                boot_cpu_ms_per_spacecore: 20.0,
                boot_cpu_ms_by_thread: BTreeMap::from([("vcpu0".to_owned(), 7.5)]),
                host_busy_ms_per_spacecore: 30.0,
                cpus: 2,
                host_memory_per_spacecore_bytes: cost.total(),
                cost_per_spacecore: cost,
                guest_resident_per_spacecore_bytes: 0.0,
                image_shared_per_spacecore_bytes: 0.0,
                host_used_rise_per_spacecore_bytes: 0.0,
                host_used_fall_per_spacecore_bytes: 0.0,
                bench_rise_per_spacecore_bytes: 0.0,
                kernel_fall_per_spacecore_bytes: 0.0,
                file_per_spacecore_bytes: 0.0,
                rss_per_spacecore_bytes: 0.0,
                threads_per_spacecore: 9.0,
                kernel_stack_bytes: 16384,
                idle_cpu_percent: 0.0,
                idle_cpu_us_by_thread: BTreeMap::new(),
                hypercalls_per_spacecore: 28.0,
                device_accesses_per_spacecore: 104.0,
            }
        };
        let report = Report {
            room: Room::read(1000, 9.0).unwrap(),
            idle_seconds: 2,
            from_snapshot: false,
            kernel_stacks_in_vmalloc: true,
            memory_ratio: 2.0,
            serving_ratio: 1.0,
            baseline: run(10, 2.0),
            run: run(1000, 4.0),
        };
        let table = render(&report);
        let line = |start: &str| table.lines().find(|l| l.starts_with(start)).unwrap().to_owned();
        let memory = line("host memory per spacecore, counted");
        assert!(memory.contains("2.00") && memory.contains("4.00") && memory.ends_with("MISS"), "{memory}");
        assert!(line("  launcher anonymous memory").contains("4.000"));
        assert!(line("first start to all serving").ends_with("PASS"));
        assert!(line("  a launcher's start to ready, max").contains("600"));
        assert!(line("VM exits per spacecore").contains("132"));
        assert!(line("    of which thread vcpu0").contains("7.5"));
        // 1000 spacecores of 30 ms on 2 CPUs: 15 s at the least.
        assert!(line("  that CPU over the host's CPUs").contains("15000"));
        assert!(line("room: ").contains("of kernel.pid_max"));
    }
}
