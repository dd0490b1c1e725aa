//! `cargo xtask bench density`: how many spacecores this host holds, and what each costs it.
//!
//! [`BASELINE_COUNT`] spacecores first (the baseline of the same run: the host's used memory
//! moves by a few MiB on its own, so one spacecore alone is lost in that noise), then `--count`
//! spacecores started at once, each with 1 vCPU, 256 MiB, a 16 MiB disk and a NIC with its HTTP port published on a
//! free loopback port, under the launcher's defaults (confined as root). For each run:
//!
//! * **time until all serve**: from the first launcher started to the last answer to `GET /`
//!   through a published port (each spacecore is asked in turn once its launcher printed its
//!   port, again every 5 ms until it answers);
//! * **host memory per spacecore**: the host's used memory (`MemTotal - MemAvailable`, which
//!   counts the page tables, the kernel's KVM and network-namespace memory and everything else a
//!   spacecore makes the kernel hold, not only the processes' resident sets) once all serve,
//!   less before, over the count; the launchers' resident sets (`VmRSS`) beside it;
//! * **idle CPU**: the launchers' utime + stime over `--idle-seconds` with no request, in % of
//!   one core, for all of them together.
//!
//! The goals (docs/performance of the project's issue): at most 3 MiB each, all serving within
//! 10 s, idle CPU of all together under 2% of one core; the ratios are against the baseline of
//! the same run (1.0: each spacecore costs as much among many as among few).

use std::fs;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::cpu;
use super::http::Client;
use super::net::published_http;
use super::vm::{self, Launcher, Scratch};
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
/// The launchers' flags that let the spacecores past the host's admission check (whose
/// defaults would stop 1000 guests of 256 MiB on a 24 GiB host).
const LIFT_ADMISSION: [&str; 4] = ["--cpu-overcommit", "1000", "--memory-overcommit", "1000"];
/// Least host memory per spacecore a ratio is taken against: below, the baseline is the host's
/// own movement, not the spacecores'.
const MEASURABLE: f64 = 256.0 * 1024.0;

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
}

/// One run's figures.
#[derive(Debug, Serialize)]
struct Run {
    count: u32,
    /// First launcher started to the last `GET /` answered.
    all_serving_ms: f64,
    /// Host used memory (MemTotal - MemAvailable) once all serve, less before, per spacecore.
    host_memory_per_spacecore_bytes: f64,
    /// The launchers' resident sets (VmRSS, guest memory touched included), per spacecore.
    rss_per_spacecore_bytes: f64,
    /// utime + stime of all launchers over the idle window, % of one core.
    idle_cpu_percent: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    idle_seconds: u32,
    baseline: Run,
    run: Run,
    /// `run`'s host memory per spacecore over `baseline`'s; null when the baseline's is within
    /// the host's own noise (under [`MEASURABLE`]).
    memory_ratio: f64,
    /// `run.all_serving_ms` over `baseline.all_serving_ms`.
    serving_ratio: f64,
}

pub fn run(args: &Args) -> Result<()> {
    let prepared = vm::prepare("density")?;
    let scratch = Scratch::new("density")?;
    raise_open_files_limit();
    let idle = Duration::from_secs(u64::from(args.idle_seconds));
    let few = BASELINE_COUNT.min(args.count);
    progress(format_args!("baseline: {few} spacecore(s) started at once..."));
    let baseline = measure(&prepared.launch, &prepared.image, scratch.path(), few, idle)?;
    progress(format_args!("{} spacecores started at once...", args.count));
    let run = measure(&prepared.launch, &prepared.image, scratch.path(), args.count, idle)?;
    let report = Report {
        idle_seconds: args.idle_seconds,
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

/// Starts `count` spacecores at once, waits until all serve, reads memory and idle CPU, stops
/// them.
fn measure(
    launch: &std::path::Path,
    image: &std::path::Path,
    dir: &std::path::Path,
    count: u32,
    idle: Duration,
) -> Result<Run> {
    let tables = "[spec.networking.inbound_ports]\nHTTP = 80\n\n[spec.networking.publish]\nHTTP = 0\n";
    let mut specs = Vec::new();
    for i in 0..count {
        let name = format!("density-{count}-{i}");
        specs.push(vm::write_spec(dir, &name, image, "storage = \"16Mi\"\n", tables)?);
    }
    let before = host_used_bytes()?;
    let started = Instant::now();
    let mut launchers = Vec::new();
    for spec in &specs {
        // The host's admission check is lifted: this measures what the host holds.
        launchers.push(Launcher::spawn(launch, spec, dir, &LIFT_ADMISSION)?);
    }
    for (i, launcher) in launchers.iter_mut().enumerate() {
        let addr = launcher.wait_for("`published` event of HTTP", SERVE_TIMEOUT, published_http)?;
        serve(addr, started + SERVE_TIMEOUT).with_context(|| format!("spacecore {i} of {count}"))?;
    }
    let all_serving = started.elapsed();
    std::thread::sleep(SETTLE);
    let used = host_used_bytes()?.saturating_sub(before);
    let pids: Vec<u32> = launchers.iter().map(Launcher::pid).collect();
    let rss: u64 = pids.iter().map(|&pid| rss_bytes(pid)).sum::<Result<u64>>()?;
    let ticks_before = cpu_ticks(&pids)?;
    std::thread::sleep(idle);
    let ticks = cpu_ticks(&pids)?.saturating_sub(ticks_before);
    let idle_cpu_percent = cpu::cpu_percent(ticks, cpu::clock_ticks_per_second(), idle);
    progress(format_args!("stopping {count} spacecore(s)..."));
    for launcher in &launchers {
        launcher.signal_terminate()?;
    }
    for launcher in &mut launchers {
        let status = launcher.wait(Duration::from_secs(30))?;
        if !status.success() {
            return Err(launcher.failure(status));
        }
    }
    let count_f = f64::from(count);
    Ok(Run {
        count,
        all_serving_ms: all_serving.as_secs_f64() * 1000.0,
        host_memory_per_spacecore_bytes: used as f64 / count_f,
        rss_per_spacecore_bytes: rss as f64 / count_f,
        idle_cpu_percent,
    })
}

/// `GET /` to `addr` until it answers 200, or an error at `deadline`.
fn serve(addr: SocketAddr, deadline: Instant) -> Result<()> {
    loop {
        let answered = Client::connect(addr).and_then(|mut client| client.get_root());
        match answered {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => bail!("GET / through {addr}: {e:#}"),
            Err(_) => std::thread::sleep(RETRY),
        }
    }
}

/// `MemTotal - MemAvailable` of `/proc/meminfo`, bytes.
fn host_used_bytes() -> Result<u64> {
    let text = fs::read_to_string("/proc/meminfo").context("cannot read /proc/meminfo")?;
    let total = meminfo_kib(&text, "MemTotal:").context("no MemTotal in /proc/meminfo")?;
    let available = meminfo_kib(&text, "MemAvailable:").context("no MemAvailable in /proc/meminfo")?;
    Ok(total.saturating_sub(available) * 1024)
}

/// The value in KiB of the `/proc/meminfo` (or `/proc/PID/status`) line starting with `key`.
fn meminfo_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
}

/// VmRSS of process `pid`, bytes.
fn rss_bytes(pid: u32) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("process {pid}"))?;
    Ok(meminfo_kib(&text, "VmRSS:").with_context(|| format!("no VmRSS for process {pid}"))? * 1024)
}

/// utime + stime of the processes, in clock ticks.
fn cpu_ticks(pids: &[u32]) -> Result<u64> {
    pids.iter().map(|&pid| cpu::process_ticks(pid)).sum()
}

/// Room for the launchers' pipes: the soft limit of open files goes to the hard limit.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}

fn render(r: &Report) -> String {
    let mib = |b: f64| b / (1024.0 * 1024.0);
    let (b, n) = (&r.baseline, &r.run);
    let memory_pass = n.host_memory_per_spacecore_bytes <= MEMORY_GOAL;
    let serving_pass = n.all_serving_ms <= SERVING_GOAL.as_secs_f64() * 1000.0;
    let idle_pass = n.idle_cpu_percent < IDLE_CPU_GOAL;
    format!(
        "density: spacecores of 1 vCPU, 256 MiB, a 16 MiB disk and a published HTTP port, started at once\n\
         {:<44} {:>12} {:>12} {:>8}\n\
         {:<44} {:>12.2} {:>12.2} {:>8}   goal <= 3 MiB  {}\n\
         {:<44} {:>12.2} {:>12.2}\n\
         {:<44} {:>12.0} {:>12.0} {:>8.2}   goal <= 10000 ms  {}\n\
         {:<44} {:>12.2} {:>12.2}            goal < 2% of a core, all together  {}\n",
        "",
        format!("{} at once", b.count),
        format!("{} at once", n.count),
        "ratio",
        "host memory per spacecore (MiB)",
        mib(b.host_memory_per_spacecore_bytes),
        mib(n.host_memory_per_spacecore_bytes),
        if r.memory_ratio.is_nan() { "-".to_owned() } else { format!("{:.2}", r.memory_ratio) },
        verdict(memory_pass),
        "launcher resident set per spacecore (MiB)",
        mib(b.rss_per_spacecore_bytes),
        mib(n.rss_per_spacecore_bytes),
        "first start to all serving (ms)",
        b.all_serving_ms,
        n.all_serving_ms,
        r.serving_ratio,
        verdict(serving_pass),
        format!("idle CPU over {} s (% of one core)", r.idle_seconds),
        b.idle_cpu_percent,
        n.idle_cpu_percent,
        verdict(idle_pass),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_are_read() {
        let meminfo = "MemTotal:       24000000 kB\nMemFree: 1 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(meminfo_kib(meminfo, "MemTotal:"), Some(24_000_000));
        assert_eq!(meminfo_kib(meminfo, "MemAvailable:"), Some(20_000_000));
        assert_eq!(meminfo_kib(meminfo, "Nope:"), None);
        let line = test_support::log::json_line(
            test_support::log::Source::Launcher,
            "published HTTP: 127.0.0.1:41234 -> guest 10.0.0.2:80",
            serde_json::json!({"event": "published", "port": "HTTP", "address": "127.0.0.1:41234", "guest": "10.0.0.2:80"}),
        );
        let line = test_support::log::LogLine::parse(&line).unwrap();
        assert_eq!(published_http(&line), Some("127.0.0.1:41234".parse().unwrap()));
    }
}
