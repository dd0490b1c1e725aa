//! `cargo xtask bench recover`: how fast the supervisor brings a crashed spacecore back to
//! serving, seen from a client, and what an idle spacecore costs the host in CPU.
//!
//! 1. **Recovery.** One spacecore with `auto-recovery` and `backoff_initial = "0ms"` (so the
//!    figure is the mechanism, not the policy), booted with `spacecore.testhooks=on`, is made to
//!    panic `--crashes` times by `POST /test/panic` through its published port. Each crash is
//!    timed from the write of that request until a `GET /` on a fresh connection through the
//!    same port answers 200 with a boot count one higher than before the crash. The launcher's
//!    own `recovered in N us` is read for each crash too. One more spacecore, with the default
//!    backoff, crashes once. The baseline, measured in the same run, is a cold start of the
//!    same spec: from spawning `hac-launch` until `GET /` answers 200.
//! 2. **Idle CPU.** Measured by [`idle`](super::idle) on three specs this module writes, after
//!    the recovery runs; its figures are the report's `idle` entries.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use serde::Serialize;

use super::cpu::clock_ticks_per_second;
use super::idle::{self, IdleSpec};
use super::serving::{
    Conn, LAUNCH_TIMEOUT, PROBE_STAGGER, PROBE_TIMEOUT, Probe, SERVE_LIMIT, SETTLE, free_port, micros,
    ready_us, wait_serving,
};
use super::stats::{self, Summary};
use super::vm::{self, Launcher, Scratch};
use super::{verdict, write_json};
use crate::cmd::progress;
use test_support::log::LogLine;

/// Crash to serving again, p50, in µs.
const SERVING_TARGET_US: f64 = 50_000.0;
/// CPU of an idle spacecore's launcher, in % of one core.
const IDLE_TARGET_PERCENT: f64 = 0.5;
/// The guest's port and what the probes ask.
const GUEST_PORT: u16 = 80;
const POST_PANIC: &[u8] = b"POST /test/panic HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n\r\n";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Crashes of the spacecore with backoff 0 ms.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    crashes: u32,
    /// Seconds of each CPU window (idle, then busy), per spec.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3600))]
    idle_seconds: u32,
    /// Timed cold starts (spawn to serving) of the baseline, after an untimed one.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    cold_runs: u32,
}

/// p50, p99 and max of samples in µs, with the samples.
#[derive(Debug, Clone, Serialize)]
struct Dist {
    p50: f64,
    p99: f64,
    min: f64,
    max: f64,
    samples: Vec<f64>,
}

impl Dist {
    fn of(samples: &[f64]) -> Result<Dist> {
        let pick = |p| stats::percentile(samples, p).context("no samples");
        Ok(Dist {
            p50: pick(50.0)?,
            p99: pick(99.0)?,
            min: pick(0.0)?,
            max: pick(100.0)?,
            samples: samples.to_vec(),
        })
    }
}

/// One crash, as the client and the launcher saw it.
#[derive(Debug, Clone, Serialize)]
struct Crash {
    /// The write of `POST /test/panic` to the first `GET /` answered 200 by the new boot.
    serving_us: f64,
    /// The launcher's `recovered in N us`: from its seeing the failure to the new guest's ready.
    launcher_recovered_us: f64,
    /// From the `restart N after guest panic (backoff M ms)` line.
    restart: u32,
    backoff_ms: u64,
    boot_before: u64,
    boot_after: u64,
    /// Probes made until the new boot answered.
    probes: u32,
    /// Probes answered 200 by the guest that was to crash (before it did).
    stale_answers: u32,
}

#[derive(Debug, Serialize)]
struct Recovery {
    crashes: Vec<Crash>,
    serving_us: Dist,
    launcher_recovered_us: Dist,
    first_boot: u64,
    last_boot: u64,
}

#[derive(Debug, Serialize)]
struct ColdStart {
    /// Spawning `hac-launch` to the first `GET /` answered 200.
    serving_us: Summary,
    /// The launcher's `ready in N us` (from its own start).
    launcher_ready_us: Summary,
}

#[derive(Debug, Serialize)]
struct Targets {
    serving_p50_us: f64,
    idle_percent: f64,
}

#[derive(Debug, Serialize)]
struct Verdicts {
    serving_p50: bool,
    /// One per entry of `idle`.
    idle: Vec<bool>,
}

/// Everything the bench measured; written to `target/bench/recover.json`.
#[derive(Debug, Serialize)]
struct Report {
    crashes: u32,
    idle_seconds: u32,
    cold_runs: u32,
    published: SocketAddr,
    spec: String,
    probe_stagger_us: f64,
    probe_timeout_us: f64,
    clock_ticks_per_s: u64,
    recovery: Recovery,
    default_backoff: Crash,
    cold_start: ColdStart,
    /// Recovery p50 over cold start median (client's figures).
    recovery_over_cold: f64,
    idle: Vec<IdleSpec>,
    targets: Targets,
    pass: Verdicts,
}

pub fn run(args: &Args) -> Result<()> {
    let prepared = vm::prepare("recover")?;
    let scratch = Scratch::new("recover")?;
    let published = free_port()?;
    let specs = Specs::write(scratch.path(), &prepared.image, published.port())?;
    let hooks = ["--cmdline", "spacecore.testhooks=on"];
    let launch = |spec: &Path| Launcher::spawn(&prepared.launch, spec, scratch.path(), &hooks);

    // The baseline first: the recovery spacecore holds the disk's lock while it runs.
    progress(format_args!(
        "cold start: spawning hac-launch until GET / on {published} answers, 1 untimed + {} runs...",
        args.cold_runs
    ));
    let (mut cold, mut cold_ready) = (Vec::new(), Vec::new());
    for run in 0..=args.cold_runs {
        thread::sleep(SETTLE);
        let start = Instant::now();
        let mut launcher = launch(&specs.recovery)?;
        let served = wait_serving(published, start, |_| Probe::Done).context("cold start")?;
        let ready = launcher.wait_for("`ready` event", LAUNCH_TIMEOUT, ready_us)?;
        launcher.terminate(LAUNCH_TIMEOUT)?;
        let us = micros(served.at - start);
        if run > 0 {
            progress(format_args!("cold start {run}/{}: serving after {}", args.cold_runs, ms(us)));
            cold.push(us);
            cold_ready.push(ready);
        }
    }
    let cold_start = ColdStart {
        serving_us: Summary::of(&cold).context("no cold start")?,
        launcher_ready_us: Summary::of(&cold_ready).context("no cold start")?,
    };

    thread::sleep(SETTLE);
    progress(format_args!("recovery: {} crashes of a spacecore with backoff 0 ms...", args.crashes));
    let mut launcher = launch(&specs.recovery)?;
    launcher.wait_for("`ready` event", LAUNCH_TIMEOUT, ready_us)?;
    wait_serving(published, Instant::now(), |_| Probe::Done).context("first boot")?;
    let mut crashes = Vec::new();
    for i in 1..=args.crashes {
        thread::sleep(SETTLE);
        let crash = crash(published, &mut launcher).with_context(|| format!("crash {i}"))?;
        progress(format_args!(
            "crash {i}/{}: serving again after {} (launcher: recovered in {}), boot {}",
            args.crashes,
            ms(crash.serving_us),
            ms(crash.launcher_recovered_us),
            crash.boot_after
        ));
        crashes.push(crash);
    }
    launcher.terminate(LAUNCH_TIMEOUT)?;
    let recovery = Recovery {
        serving_us: Dist::of(&crashes.iter().map(|c| c.serving_us).collect::<Vec<_>>())?,
        launcher_recovered_us: Dist::of(
            &crashes.iter().map(|c| c.launcher_recovered_us).collect::<Vec<_>>(),
        )?,
        first_boot: crashes.first().map_or(0, |c| c.boot_before),
        last_boot: crashes.last().map_or(0, |c| c.boot_after),
        crashes,
    };
    ensure!(
        recovery.last_boot == recovery.first_boot + u64::from(args.crashes),
        "the boot count went from {} to {} over {} crashes",
        recovery.first_boot,
        recovery.last_boot,
        args.crashes
    );

    thread::sleep(SETTLE);
    progress("recovery with the default backoff: one crash...");
    let mut launcher = launch(&specs.default_backoff)?;
    launcher.wait_for("`ready` event", LAUNCH_TIMEOUT, ready_us)?;
    wait_serving(published, Instant::now(), |_| Probe::Done).context("first boot")?;
    thread::sleep(SETTLE);
    let default_backoff = crash(published, &mut launcher).context("crash with the default backoff")?;
    launcher.terminate(LAUNCH_TIMEOUT)?;

    let clk_tck = clock_ticks_per_second();
    let idle = idle::measure(&specs.idle(), published, args.idle_seconds, clk_tck, launch)?;

    let report = Report {
        crashes: args.crashes,
        idle_seconds: args.idle_seconds,
        cold_runs: args.cold_runs,
        published,
        spec: fs::read_to_string(&specs.recovery)?,
        probe_stagger_us: micros(PROBE_STAGGER),
        probe_timeout_us: micros(PROBE_TIMEOUT),
        clock_ticks_per_s: clk_tck,
        recovery_over_cold: recovery.serving_us.p50 / cold_start.serving_us.median,
        pass: Verdicts {
            serving_p50: recovery.serving_us.p50 <= SERVING_TARGET_US,
            idle: idle.iter().map(|s| s.idle.percent < IDLE_TARGET_PERCENT).collect(),
        },
        recovery,
        default_backoff,
        cold_start,
        idle,
        targets: Targets { serving_p50_us: SERVING_TARGET_US, idle_percent: IDLE_TARGET_PERCENT },
    };
    print!("{}", render(&report));
    let out = write_json("recover", &report)?;
    println!("figures written to {}", out.display());
    Ok(())
}

/// The bench's spec files.
struct Specs {
    /// auto-recovery, backoff 0 ms; also the idle bench's "failover" spec.
    recovery: PathBuf,
    /// auto-recovery with the default backoff.
    default_backoff: PathBuf,
    /// No failover, no metrics.
    plain: PathBuf,
    /// `recovery` with Prometheus metrics and the sidecar.
    observed: PathBuf,
}

impl Specs {
    fn write(dir: &Path, image: &Path, port: u16) -> Result<Specs> {
        let spec = |name: &str, tables: &str| {
            let net = format!(
                "[spec.networking.inbound_ports]\nHTTP = {GUEST_PORT}\n\n[spec.networking.publish]\nHTTP = {port}\n\n"
            );
            vm::write_spec(dir, name, image, "storage = \"64Mi\"\n", &(net + tables))
        };
        // Health checks at their default interval and timeout; the guest has no keystore and no
        // [spec.avs], so it answers 206 (partially healthy), which counts as alive.
        let failover = "[spec.failover]\nstrategy = \"auto-recovery\"\n";
        let no_backoff = format!("{failover}max_restarts = 1000\nbackoff_initial = \"0ms\"\n");
        let metrics = "\n[spec.observability]\nmonitoring = \"Prometheus\"\nmetrics_address = \"127.0.0.1:0\"\nsidecar = true\n";
        Ok(Specs {
            recovery: spec("bench-recover", &no_backoff)?,
            default_backoff: spec("bench-recover-backoff", failover)?,
            plain: spec("bench-recover-plain", "")?,
            observed: spec("bench-recover-metrics", &(no_backoff.clone() + metrics))?,
        })
    }

    /// The idle bench's specs: (name, description, path).
    fn idle(&self) -> [(&'static str, &'static str, &Path); 3] {
        [
            ("plain", "no failover, no metrics", &self.plain),
            ("failover", "auto-recovery, health checks every 1 s", &self.recovery),
            ("failover+metrics", "auto-recovery + Prometheus metrics, sidecar", &self.observed),
        ]
    }
}

/// One crash of the spacecore behind `addr`, supervised by `launcher`.
fn crash(addr: SocketAddr, launcher: &mut Launcher) -> Result<Crash> {
    // The crash request goes on a connection that has just been answered, so it reaches the
    // guest at once; the answer tells the boot count before the crash.
    let mut conn = Conn::open(addr, SERVE_LIMIT)?;
    let (status, before) = conn.get_root()?;
    let before = before.with_context(|| format!("GET / answered {status} before the crash"))?;
    let start = Instant::now();
    conn.send(POST_PANIC).context("sending POST /test/panic")?;
    let served = wait_serving(addr, start, |boot| match boot {
        b if b == before => Probe::Stale,
        b if b == before + 1 => Probe::Done,
        b => Probe::Wrong(format!("the boot count went from {before} to {b} on one crash")),
    })?;
    drop(conn);
    let mut restart = None;
    let (launcher_us, cause) = launcher.wait_for("`recovered` event", LAUNCH_TIMEOUT, |line| {
        if let Some(r) = restart_line(line) {
            restart = Some(r);
        }
        recovered_line(line)
    })?;
    let (n, restart_cause, backoff_ms) =
        restart.context("no `restart` event before the `recovered` event")?;
    ensure!(
        cause == "panic" && restart_cause == "panic",
        "the launcher restarted after {restart_cause:?} and recovered after {cause:?}, not after a guest panic"
    );
    Ok(Crash {
        serving_us: micros(served.at - start),
        launcher_recovered_us: launcher_us,
        restart: n,
        backoff_ms,
        boot_before: before,
        boot_after: served.boot,
        probes: served.probes,
        stale_answers: served.stale,
    })
}

/// The launcher's `recovered` event (`recovered in N us after CAUSE`): (`recovery_us`, `cause`,
/// the metrics' label: `panic` for a guest panic).
fn recovered_line(line: &LogLine) -> Option<(f64, String)> {
    if !line.is_event("recovered") {
        return None;
    }
    Some((line.u64_field("recovery_us")? as f64, line.str_field("cause")?.to_owned()))
}

/// The launcher's `restart` event (`restart N after CAUSE (backoff M ms)`): (`restart`,
/// `cause`, `backoff_ms`).
fn restart_line(line: &LogLine) -> Option<(u32, String, u64)> {
    if !line.is_event("restart") {
        return None;
    }
    let n = u32::try_from(line.u64_field("restart")?).ok()?;
    Some((n, line.str_field("cause")?.to_owned(), line.u64_field("backoff_ms")?))
}

/// µs as milliseconds with two decimals.
fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

/// The table printed at the end of the bench.
fn render(r: &Report) -> String {
    let mut out = format!(
        "\nrecover bench: one spacecore (1 vCPU, 256 MiB, 64 MiB disk, HTTP published on {}), auto-recovery,\n\
         backoff 0 ms; {} crashes by POST /test/panic. serving = a GET / on a fresh connection through the \
         published\nport answers 200 with the boot count one higher (probes every {} µs, {} ms timeout)\n",
        r.published,
        r.crashes,
        r.probe_stagger_us,
        r.probe_timeout_us / 1000.0
    );
    let mut row = |name: &str, a: String, b: String, c: String, target: &str, result: &str| {
        let line = format!("{name:<34} {a:>11} {b:>11} {c:>11}   {target:<12} {result}");
        out.push_str(line.trim_end());
        out.push('\n');
    };
    row("", "p50".into(), "p99".into(), "max".into(), "target", "result");
    let rec = &r.recovery;
    let s = &rec.serving_us;
    row(
        "crash to serving (client)",
        ms(s.p50),
        ms(s.p99),
        ms(s.max),
        "<= 50 ms p50",
        verdict(r.pass.serving_p50),
    );
    let l = &rec.launcher_recovered_us;
    row("recovered in (launcher)", ms(l.p50), ms(l.p99), ms(l.max), "-", "");
    let c = &r.cold_start.serving_us;
    let p99 = stats::percentile(&c.samples, 99.0).unwrap_or(c.max);
    row(
        &format!("cold start to serving ({} runs)", c.samples.len()),
        ms(c.median),
        ms(p99),
        ms(c.max),
        "baseline",
        "",
    );
    let c = &r.cold_start.launcher_ready_us;
    let p99 = stats::percentile(&c.samples, 99.0).unwrap_or(c.max);
    row("cold start: ready in (launcher)", ms(c.median), ms(p99), ms(c.max), "-", "");
    row(
        "recovery / cold start (p50)",
        format!("{:.2}x", r.recovery_over_cold),
        String::new(),
        String::new(),
        "-",
        "",
    );
    let d = &r.default_backoff;
    row(
        &format!("default backoff ({} ms), 1 crash", d.backoff_ms),
        ms(d.serving_us),
        String::new(),
        String::new(),
        "-",
        "",
    );
    row("  recovered in (launcher)", ms(d.launcher_recovered_us), String::new(), String::new(), "-", "");
    out.push_str(&format!(
        "boot count: {} -> {} over {} crashes, one more per crash (state kept on the disk)\n",
        rec.first_boot, rec.last_boot, r.crashes
    ));

    idle::render(&mut out, r.idle_seconds, r.clock_ticks_per_s, &r.idle, &r.pass.idle);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::idle::unexpected_line;
    use serde_json::json;
    use test_support::log::{Source, json_line};

    fn line(source: Source, message: &str, fields: serde_json::Value) -> LogLine {
        LogLine::parse(&json_line(source, message, fields)).unwrap()
    }

    #[test]
    fn reads_the_launcher_events_only() {
        let fields = json!({"event": "recovered", "recovery_us": 5873, "cause": "panic"});
        let recovered = line(Source::Launcher, "recovered in 5873 us after guest panic", fields.clone());
        assert_eq!(recovered_line(&recovered), Some((5873.0, "panic".into())));
        assert_eq!(
            recovered_line(&line(Source::Guest, "recovered in 5873 us after guest panic", fields)),
            None
        );
        assert_eq!(
            recovered_line(&line(Source::Launcher, "recovered in 5873 us after guest panic", json!({}))),
            None
        );
        let fields = json!({"event": "recovered", "recovery_us": 7997, "cause": "unhealthy"});
        let health = line(Source::Launcher, "recovered in 7997 us after failed health checks", fields);
        assert_eq!(recovered_line(&health), Some((7997.0, "unhealthy".into())));
        let fields = json!({"event": "restart", "restart": 12, "cause": "error_exit", "backoff_ms": 0});
        let text = "restart 12 after guest exit with status 3 (backoff 0 ms)";
        assert_eq!(
            restart_line(&line(Source::Launcher, text, fields.clone())),
            Some((12, "error_exit".into(), 0))
        );
        assert_eq!(restart_line(&line(Source::Guest, text, fields)), None);
        let no_backoff = json!({"event": "restart", "restart": 1, "cause": "panic"});
        assert_eq!(restart_line(&line(Source::Launcher, "restart 1 after guest panic", no_backoff)), None);
        let ready = json!({"event": "ready", "ready_us": 6573});
        assert_eq!(ready_us(&line(Source::Launcher, "ready in 6573 us", ready.clone())), Some(6573.0));
        assert_eq!(ready_us(&line(Source::Guest, "ready in 6573 us", ready.clone())), None);
        let failed = json!({"event": "health_failed", "reason": "answered 503"});
        assert!(unexpected_line(&line(Source::Launcher, "health: check failed (answered 503)", failed)));
        let restart = json!({"event": "restart", "restart": 1, "cause": "unhealthy", "backoff_ms": 10});
        assert!(unexpected_line(&line(
            Source::Launcher,
            "restart 1 after failed health checks (backoff 10 ms)",
            restart
        )));
        assert!(!unexpected_line(&line(Source::Launcher, "ready in 6573 us", ready)));
    }

    #[test]
    fn distributions() {
        let d = Dist::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((d.p50, d.min, d.max), (3.0, 1.0, 5.0));
        assert!((d.p99 - 4.96).abs() < 1e-9);
        assert!(Dist::of(&[]).is_err());
    }
}
