//! `cargo xtask bench boot`: how long `hac-launch` takes to bring the image to
//! ready, and what memory it costs, against the floor `hac-floor` (a bare KVM
//! VM created, run to `hlt` and torn down by the same kind of Rust process);
//! and how long it takes from a snapshot of the same spec (`--snapshot`, saved
//! once with `--save-snapshot` before the timed runs).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use test_support::log::{self, LogLine};

use super::stats::Summary;
use super::verdict;
use crate::build_image::SIZE_BUDGET_BYTES;
use crate::cmd::{self, describe, progress};

const READY_TARGET_US: f64 = 10_000.0;
const OVERHEAD_TARGET_KIB: f64 = 4096.0;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Timed runs of each of hac-launch and hac-floor (at least 10).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(10..))]
    runs: u32,
    /// The spec to boot [default: <workspace>/examples/spacecore.toml].
    #[arg(long, value_name = "PATH")]
    spec: Option<PathBuf>,
}

/// The figures `hac-launch --until-ready` prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LaunchReport {
    /// From `ready in <N> us`: the launcher's own measure from its start.
    ready_us: f64,
    launcher_rss_kib: f64,
    guest_resident_kib: f64,
    overhead_kib: f64,
}

#[derive(Debug, Serialize)]
struct Targets {
    boot_to_ready_median_us: f64,
    overhead_median_kib: f64,
    image_bytes: u64,
}

#[derive(Debug, Serialize)]
struct Verdicts {
    boot_to_ready: bool,
    overhead: bool,
    image: bool,
}

/// Everything the bench measured; written to `target/bench/boot.json`.
#[derive(Debug, Serialize)]
struct Report {
    runs: u32,
    spec: PathBuf,
    image_path: PathBuf,
    image_bytes: u64,
    image_sha256: String,
    boot_to_ready_us: Summary,
    launch_wall_us: Summary,
    floor_wall_us: Summary,
    launch_wall_over_floor: f64,
    ready_over_floor: f64,
    /// `ready in` of `hac-launch --until-ready --snapshot DIR SPEC`.
    snapshot_to_ready_us: Summary,
    /// Its whole process.
    snapshot_wall_us: Summary,
    snapshot_ready_over_floor: f64,
    overhead_kib: Summary,
    launcher_rss_kib: Summary,
    guest_resident_kib: Summary,
    targets: Targets,
    pass: Verdicts,
}

pub fn run(args: &Args) -> Result<()> {
    let spec = args.spec.clone().unwrap_or_else(|| cmd::workspace_root().join("examples/spacecore.toml"));
    if !spec.is_file() {
        bail!("spec {} does not exist", spec.display());
    }
    let super::vm::Prepared { launch, built, .. } = super::vm::prepare("boot")?;
    let floor = launch.with_file_name("hac-floor");

    let snapshot = cmd::target_dir().join("bench").join("boot-snapshot");
    progress(format_args!("saving a snapshot of {} into {}...", spec.display(), snapshot.display()));
    super::vm::save_snapshot(&launch, &spec, &snapshot, None)?;

    progress("warm-up: one untimed run of each...");
    time_launch(&launch, &spec, None)?;
    time_launch(&launch, &spec, Some(&snapshot))?;
    time_floor(&floor)?;

    let n = args.runs;
    let (mut reports, mut launch_wall, mut floor_wall) = (Vec::new(), Vec::new(), Vec::new());
    let (mut snapshot_ready, mut snapshot_wall) = (Vec::new(), Vec::new());
    for i in 1..=n {
        // The kernel finishes tearing a VM down (its memory slot, its network namespace)
        // after the process exits; let that settle so each run measures a boot, not the
        // previous run's teardown.
        std::thread::sleep(SETTLE);
        let (wall, report) = time_launch(&launch, &spec, None)?;
        std::thread::sleep(SETTLE);
        let (from_snapshot, restored) = time_launch(&launch, &spec, Some(&snapshot))?;
        std::thread::sleep(SETTLE);
        let floor_us = time_floor(&floor)?;
        progress(format_args!(
            "run {i}/{n}: hac-launch {} (ready in {}), from the snapshot {} (ready in {}), hac-floor {}",
            ms(wall),
            ms(report.ready_us),
            ms(from_snapshot),
            ms(restored.ready_us),
            ms(floor_us)
        ));
        snapshot_ready.push(restored.ready_us);
        snapshot_wall.push(from_snapshot);
        reports.push(report);
        launch_wall.push(wall);
        floor_wall.push(floor_us);
    }

    let summary = |f: fn(&LaunchReport) -> f64| {
        Summary::of(&reports.iter().map(f).collect::<Vec<_>>()).context("no runs")
    };
    let boot_to_ready_us = summary(|r| r.ready_us)?;
    let launch_wall_us = Summary::of(&launch_wall).context("no runs")?;
    let floor_wall_us = Summary::of(&floor_wall).context("no runs")?;
    let overhead_kib = summary(|r| r.overhead_kib)?;
    let snapshot_to_ready_us = Summary::of(&snapshot_ready).context("no runs")?;
    let snapshot_wall_us = Summary::of(&snapshot_wall).context("no runs")?;
    let image_bytes = built.manifest.size_bytes;
    let report = Report {
        runs: n,
        spec,
        image_path: built.elf,
        image_bytes,
        image_sha256: built.manifest.sha256.clone(),
        launch_wall_over_floor: launch_wall_us.median / floor_wall_us.median,
        ready_over_floor: boot_to_ready_us.median / floor_wall_us.median,
        snapshot_ready_over_floor: snapshot_to_ready_us.median / floor_wall_us.median,
        snapshot_to_ready_us,
        snapshot_wall_us,
        pass: Verdicts {
            boot_to_ready: boot_to_ready_us.median <= READY_TARGET_US,
            overhead: overhead_kib.median <= OVERHEAD_TARGET_KIB,
            image: image_bytes <= SIZE_BUDGET_BYTES,
        },
        boot_to_ready_us,
        launch_wall_us,
        floor_wall_us,
        overhead_kib,
        launcher_rss_kib: summary(|r| r.launcher_rss_kib)?,
        guest_resident_kib: summary(|r| r.guest_resident_kib)?,
        targets: Targets {
            boot_to_ready_median_us: READY_TARGET_US,
            overhead_median_kib: OVERHEAD_TARGET_KIB,
            image_bytes: SIZE_BUDGET_BYTES,
        },
    };
    print!("{}", render(&report));

    let out_dir = cmd::target_dir().join("bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let out = out_dir.join("boot.json");
    fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("figures written to {}", out.display());
    Ok(())
}

/// Runs `hac-launch --until-ready SPEC` (from the snapshot in `snapshot`, if given): wall time
/// in µs and what it printed.
fn time_launch(launch: &Path, spec: &Path, snapshot: Option<&Path>) -> Result<(f64, LaunchReport)> {
    let mut command = Command::new(launch);
    command.arg("--until-ready");
    if let Some(dir) = snapshot {
        command.arg("--snapshot").arg(dir);
    }
    command.arg(spec);
    let (wall, output) = timed(&mut command)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = parse_launch_output(&stdout)
        .with_context(|| format!("reading the output of `{}`:\n{stdout}", describe(&command)))?;
    Ok((wall, report))
}

/// Runs `hac-floor`: wall time in µs.
fn time_floor(floor: &Path) -> Result<f64> {
    timed(&mut Command::new(floor)).map(|(wall, _)| wall)
}

/// Pause before each timed run, for the kernel's deferred teardown of the previous one.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

/// Wall time from spawn to exit in µs; an error unless it exits 0.
fn timed(command: &mut Command) -> Result<(f64, Output)> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let child = command.spawn().with_context(|| format!("cannot run `{}`", describe(command)))?;
    let output = child.wait_with_output()?;
    let wall_us = start.elapsed().as_nanos() as f64 / 1000.0;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}); stdout:\n{}\nstderr:\n{}",
            describe(command),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok((wall_us, output))
}

/// Reads, from the launcher's JSON log, the `ready` event's `ready_us` and the launcher's
/// `memory: launcher rss <A> KiB, guest resident <B> KiB, overhead <C> KiB` line (a plain line:
/// no event carries these figures, so they are read from its message).
fn parse_launch_output(stdout: &str) -> Result<LaunchReport> {
    let lines = log::parse_all(stdout).map_err(|e| {
        anyhow!(
            "{e}; the bench reads the launcher's JSON log: the spec must set spec.observability.logging \
             (\"json\", or Loki, Fluentd or ELK)"
        )
    })?;
    // The guest's lines never count: only the launcher's.
    let ready_us = lines.iter().find_map(LogLine::ready_us).context("no `ready` event with `ready_us`")?;
    let memory = lines
        .iter()
        .find_map(|l| l.launcher("memory: "))
        .context("no `memory: launcher rss ...` line from the launcher")?;
    let kib = |key: &str| -> Result<f64> {
        match number_after(memory, key) {
            Some((value, unit)) if unit.starts_with("KiB") => Ok(value),
            _ => bail!("no `{key}<N> KiB` in {memory:?}"),
        }
    };
    Ok(LaunchReport {
        ready_us: ready_us as f64,
        launcher_rss_kib: kib("launcher rss ")?,
        guest_resident_kib: kib("guest resident ")?,
        overhead_kib: kib("overhead ")?,
    })
}

/// The number right after `key` in `line`, and the rest of the line after
/// the number and one space.
pub(super) fn number_after<'a>(line: &'a str, key: &str) -> Option<(f64, &'a str)> {
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-')).unwrap_or(rest.len());
    let value = rest[..end].parse().ok()?;
    Some((value, rest[end..].trim_start()))
}

/// µs as milliseconds with two decimals.
fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

/// The table printed at the end of the bench.
fn render(r: &Report) -> String {
    let mut out = String::new();
    let mut row = |name: &str, median: String, min: String, max: String, target: &str, result: &str| {
        let line = format!("{name:<26} {median:>12} {min:>12} {max:>12}   {target:<14} {result}");
        out.push_str(line.trim_end());
        out.push('\n');
    };
    row("", "median".into(), "min".into(), "max".into(), "target", "result");
    let times = |s: &Summary| (ms(s.median), ms(s.min), ms(s.max));
    let (a, b, c) = times(&r.boot_to_ready_us);
    row("boot-to-ready (launcher)", a, b, c, "<= 10.00 ms", verdict(r.pass.boot_to_ready));
    let (a, b, c) = times(&r.launch_wall_us);
    row("hac-launch wall", a, b, c, "-", "");
    let (a, b, c) = times(&r.floor_wall_us);
    row("hac-floor wall (floor)", a, b, c, "-", "");
    let ratio = |x: f64| format!("{x:.2}x");
    row("hac-launch wall / floor", ratio(r.launch_wall_over_floor), String::new(), String::new(), "-", "");
    row("boot-to-ready / floor", ratio(r.ready_over_floor), String::new(), String::new(), "-", "");
    let (a, b, c) = times(&r.snapshot_to_ready_us);
    row("snapshot-to-ready", a, b, c, "-", "");
    let (a, b, c) = times(&r.snapshot_wall_us);
    row("hac-launch --snapshot wall", a, b, c, "-", "");
    let over = ratio(r.snapshot_ready_over_floor);
    row("snapshot-to-ready / floor", over, String::new(), String::new(), "-", "");
    let kib = |x: f64| format!("{x:.0} KiB");
    let o = &r.overhead_kib;
    row("memory overhead", kib(o.median), kib(o.min), kib(o.max), "<= 4096 KiB", verdict(r.pass.overhead));
    row(
        "image size",
        cmd::kib(r.image_bytes),
        String::new(),
        String::new(),
        "<= 1024.0 KiB",
        verdict(r.pass.image),
    );
    format!(
        "\nboot bench: {} runs each of `hac-launch --until-ready {}`, the same from a snapshot (`--snapshot`) \
         and `hac-floor`, in turn\n{out}",
        r.runs,
        r.spec.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A launcher's JSON log: the guest's lines say the same words, and count for nothing.
    fn output(ready_fields: serde_json::Value, memory: &str) -> String {
        use test_support::log::{Source, json_line};
        let none = serde_json::json!({});
        let guest_ready = serde_json::json!({"event": "ready", "ready_us": 1});
        [
            json_line(Source::Launcher, "booting spacecore:latest (312 KiB)", none.clone()),
            json_line(Source::Guest, "ready in 1 us", guest_ready),
            json_line(
                Source::Guest,
                "memory: launcher rss 1 KiB, guest resident 1 KiB, overhead 0 KiB",
                none.clone(),
            ),
            json_line(Source::Launcher, "ready in 3412 us", ready_fields),
            json_line(Source::Launcher, memory, none),
        ]
        .join("\n")
    }

    const MEMORY: &str = "memory: launcher rss 5120 KiB, guest resident 2048 KiB, overhead 3072 KiB";

    fn ready() -> serde_json::Value {
        serde_json::json!({"event": "ready", "ready_us": 3412})
    }

    #[test]
    fn parses_ready_and_memory_lines() {
        let report = parse_launch_output(&output(ready(), MEMORY)).unwrap();
        assert_eq!(
            report,
            LaunchReport {
                ready_us: 3412.0,
                launcher_rss_kib: 5120.0,
                guest_resident_kib: 2048.0,
                overhead_kib: 3072.0,
            }
        );
    }

    #[test]
    fn missing_or_malformed_lines_are_errors() {
        // The human lines are no longer read.
        let text = "[sc launcher] ready in 3412 us\n[sc launcher] ".to_owned() + MEMORY;
        assert!(parse_launch_output(&text).is_err());
        // No ready event (the words alone), no memory line, or a malformed one.
        assert!(parse_launch_output(&output(serde_json::json!({}), MEMORY)).is_err());
        assert!(parse_launch_output(&output(ready(), "memory: unknown")).is_err());
        assert!(
            parse_launch_output(&output(ready(), &MEMORY.replace("overhead 3072", "overhead x"))).is_err()
        );
    }

    #[test]
    fn table_shows_targets_and_verdicts() {
        let s = |x: f64| Summary::of(&[x, x * 1.5]).unwrap();
        let report = Report {
            runs: 10,
            spec: "spec.toml".into(),
            image_path: "i.elf".into(),
            image_bytes: 2 * 1024 * 1024,
            image_sha256: String::new(),
            boot_to_ready_us: s(3000.0),
            launch_wall_us: s(5000.0),
            floor_wall_us: s(1000.0),
            launch_wall_over_floor: 5.0,
            ready_over_floor: 3.0,
            snapshot_to_ready_us: s(2000.0),
            snapshot_wall_us: s(4000.0),
            snapshot_ready_over_floor: 2.0,
            overhead_kib: s(3000.0),
            launcher_rss_kib: s(5000.0),
            guest_resident_kib: s(2000.0),
            targets: Targets { boot_to_ready_median_us: 1.0, overhead_median_kib: 1.0, image_bytes: 1 },
            pass: Verdicts { boot_to_ready: true, overhead: true, image: false },
        };
        let table = render(&report);
        let line = |name: &str| table.lines().find(|l| l.starts_with(name)).unwrap().to_owned();
        assert!(line("boot-to-ready (launcher)").contains("3.75 ms"), "{table}");
        assert!(line("boot-to-ready (launcher)").ends_with("PASS"), "{table}");
        assert!(line("image size").ends_with("MISS"), "{table}");
        assert!(line("hac-launch wall / floor").contains("5.00x"), "{table}");
        assert!(line("snapshot-to-ready / floor").contains("2.00x"), "{table}");
        assert!(line("snapshot-to-ready ").contains("2.50 ms"), "{table}");
    }

    #[test]
    fn number_after_reads_decimals_and_negatives() {
        assert_eq!(number_after("ready in 12.5 us", "ready in "), Some((12.5, "us")));
        assert_eq!(number_after("overhead -4 KiB", "overhead "), Some((-4.0, "KiB")));
        assert_eq!(number_after("nothing", "overhead "), None);
    }
}
