//! The idle-CPU part of `cargo xtask bench recover`: the launcher's CPU time (utime + stime of
//! every thread, vCPU threads included, from `/proc/PID/stat`) over `--idle-seconds` of no
//! requests, for three specs: no failover and no metrics; auto-recovery with health checks at
//! their default interval; and the same with Prometheus metrics and the sidecar. The point of
//! comparison is the same launcher over the same time serving 100 `GET /` per second.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use super::cpu::{cpu_percent, cpu_snapshot, thread_us};
use super::http::Client;
use super::serving::{LAUNCH_TIMEOUT, Probe, SETTLE, micros, ready_us, wait_serving};
use super::verdict;
use super::vm::Launcher;
use crate::cmd::progress;
use test_support::log::LogLine;

/// Requests per second of the busy window.
const BUSY_RATE: u32 = 100;
/// Pause between ready and the idle window, so the boot's own work is over.
const IDLE_SETTLE: Duration = Duration::from_secs(2);

/// The launcher's CPU over one window.
#[derive(Debug, Serialize)]
pub(super) struct CpuWindow {
    wall_s: f64,
    /// utime + stime of the process (every thread, ended ones included), in clock ticks.
    ticks: u64,
    /// `ticks` in % of one core: the figure the target applies to.
    pub(super) percent: f64,
    /// Time on CPU (`/proc/PID/task/TID/schedstat`, in ns) of the threads alive at the end of
    /// the window, in µs: precise, but without threads that ended within the window.
    threads_us: f64,
    /// `threads_us` in % of one core.
    threads_percent: f64,
    /// `threads_us` by thread name.
    by_thread_us: BTreeMap<String, f64>,
    /// `GET /` answered during the window (0 when idle).
    requests: u32,
}

#[derive(Debug, Serialize)]
pub(super) struct IdleSpec {
    name: String,
    description: String,
    pub(super) idle: CpuWindow,
    busy: CpuWindow,
    /// `threads_percent` idle over busy.
    idle_over_busy: f64,
    /// Launcher lines about failed health checks and restarts while it ran (expected: none).
    unexpected: Vec<String>,
}

/// The launcher's CPU on each of `specs` (name, description, path), one launcher at a time
/// spawned by `launch` and serving on `published`: `idle_seconds` idle, then as long busy.
pub(super) fn measure(
    specs: &[(&str, &str, &Path)],
    published: SocketAddr,
    idle_seconds: u32,
    clk_tck: u64,
    launch: impl Fn(&Path) -> Result<Launcher>,
) -> Result<Vec<IdleSpec>> {
    let window = Duration::from_secs(u64::from(idle_seconds));
    let mut idle = Vec::new();
    for &(name, description, spec) in specs {
        thread::sleep(SETTLE);
        progress(format_args!(
            "idle CPU, {description}: {}s idle, then {}s at {BUSY_RATE} GET/s...",
            idle_seconds, idle_seconds
        ));
        let mut launcher = launch(spec)?;
        let pid = launcher.pid();
        launcher.wait_for("`ready` event", LAUNCH_TIMEOUT, ready_us)?;
        wait_serving(published, Instant::now(), |_| Probe::Done).context("first boot")?;
        thread::sleep(IDLE_SETTLE);
        let quiet = cpu_window(pid, clk_tck, || {
            thread::sleep(window);
            Ok(0)
        })?;
        let busy = cpu_window(pid, clk_tck, || light_load(published, window))?;
        launcher.terminate(LAUNCH_TIMEOUT)?;
        let unexpected = launcher.lines()?.into_iter().filter(unexpected_line).map(|l| l.message).collect();
        progress(format_args!("{description}: idle {:.3} %, busy {:.3} %", quiet.percent, busy.percent));
        idle.push(IdleSpec {
            name: name.to_owned(),
            description: description.to_owned(),
            idle_over_busy: quiet.threads_percent / busy.threads_percent.max(f64::MIN_POSITIVE),
            idle: quiet,
            busy,
            unexpected,
        });
    }

    Ok(idle)
}

/// A launcher event that should not happen while a spacecore idles or serves a light load: a
/// failure, a restart, a recovery or a failed health check.
pub(super) fn unexpected_line(line: &LogLine) -> bool {
    matches!(line.event(), Some("guest_failed" | "restart" | "recovered" | "health_failed" | "crash_loop"))
}

/// The launcher's CPU while `during` runs; `during` returns the requests it made.
fn cpu_window(pid: u32, clk_tck: u64, during: impl FnOnce() -> Result<u32>) -> Result<CpuWindow> {
    let (ticks0, threads0) = cpu_snapshot(pid)?;
    let start = Instant::now();
    let requests = during()?;
    let wall = start.elapsed();
    let (ticks1, threads1) = cpu_snapshot(pid)?;
    let ticks = ticks1.saturating_sub(ticks0);
    let by_thread_us = thread_us(&threads0, &threads1);
    let threads_us = by_thread_us.values().fold(0.0, |sum, us| sum + us);
    Ok(CpuWindow {
        wall_s: wall.as_secs_f64(),
        ticks,
        percent: cpu_percent(ticks, clk_tck, wall),
        threads_us,
        threads_percent: threads_us / micros(wall).max(1e-3) * 100.0,
        by_thread_us,
        requests,
    })
}

/// [`BUSY_RATE`] `GET /` per second on one keep-alive connection for `window`, each sent on
/// schedule (none is sent early to catch up); the number answered.
fn light_load(addr: SocketAddr, window: Duration) -> Result<u32> {
    let mut client = Client::connect(addr)?;
    let interval = Duration::from_secs(1) / BUSY_RATE;
    let start = Instant::now();
    let mut sent = 0u32;
    loop {
        let due = start + interval * sent;
        let now = Instant::now();
        if due >= start + window {
            break;
        }
        if due > now {
            thread::sleep(due - now);
        }
        client.get_root().with_context(|| format!("GET / number {} of the busy window", sent + 1))?;
        sent += 1;
    }
    // The window is the same length as the idle one, whatever the last answer took.
    if let Some(left) = (start + window).checked_duration_since(Instant::now()) {
        thread::sleep(left);
    }
    Ok(sent)
}

/// The idle table printed at the end of the bench, after the recovery's: one row for each of
/// `idle`, with its verdict from `pass`.
pub(super) fn render(out: &mut String, idle_seconds: u32, clk_tck: u64, idle: &[IdleSpec], pass: &[bool]) {
    out.push_str(&format!(
        "\nlauncher CPU in % of one core over {} s, idle then serving {BUSY_RATE} GET / per second on one connection\n\
         stat = utime+stime of the whole process, /proc/PID/stat (the target's figure; 1 clock tick = {:.3} %);\n\
         threads = schedstat time on CPU of the threads alive at the end (ns precision)\n",
        idle_seconds,
        cpu_percent(1, clk_tck, Duration::from_secs(u64::from(idle_seconds)))
    ));
    let mut row = |cells: [&str; 8]| {
        let [name, a, b, c, d, e, target, result] = cells;
        let line = format!("{name:<44} {a:>8} {b:>8} {c:>8} {d:>8} {e:>9}   {target:<8} {result}");
        out.push_str(line.trim_end());
        out.push('\n');
    };
    row(["", "idle", "", "busy", "", "idle/busy", "", ""]);
    row(["", "stat", "threads", "stat", "threads", "threads", "target", "result"]);
    let pc = |x: f64| format!("{x:.3}%");
    for (spec, pass) in idle.iter().zip(pass) {
        let (i, b) = (&spec.idle, &spec.busy);
        row([
            &spec.description,
            &pc(i.percent),
            &pc(i.threads_percent),
            &pc(b.percent),
            &pc(b.threads_percent),
            &format!("{:.3}x", spec.idle_over_busy),
            "< 0.5%",
            verdict(*pass),
        ]);
    }
    for spec in idle {
        for line in &spec.unexpected {
            out.push_str(&format!("note ({}): {line}\n", spec.name));
        }
    }
}
