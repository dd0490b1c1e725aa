//! `cargo xtask bench all`: every bench, one after another, each as its own `cargo xtask bench
//! NAME` process (so one that fails leaves the others running), then one Markdown table of
//! every figure the project has a goal for, read back from the benches' JSON under
//! `target/bench/`, against that goal.
//!
//! A figure whose bench does not report it reads `not measured`; the rows of a bench that failed
//! read `failed: REASON` and make the command fail, after the table is written. No number is
//! ever made up: each comes from a JSON file its bench wrote in this run (the file is removed
//! before the bench starts).

use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd::{self, progress};

/// `quick` (the default) or `full`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Small runs of every bench, a few minutes in all on a 2-core host (the default).
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// Every bench with its own defaults (tens of minutes).
    #[arg(long)]
    full: bool,
    /// Spacecores started at once by the density bench (default: 20 quick, 50 full).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=2000))]
    density_count: Option<u32>,
}

/// One `cargo xtask bench ...` run and the JSON it leaves.
struct Step {
    /// The key rows refer to it by (`sign-idle` for the second sign run).
    key: &'static str,
    /// `bench` arguments after `bench`.
    args: Vec<String>,
    /// The JSON file the bench writes, under `target/bench/`.
    json: &'static str,
}

/// What came of a step.
enum Outcome {
    /// The bench exited 0; its JSON (`Null` if it wrote none).
    Ran(Value),
    /// The bench failed: why, in one line.
    Failed(String),
}

/// How a figure is held against its goal.
#[derive(Clone, Copy)]
enum Goal {
    AtMost(f64),
    AtLeast(f64),
    Below(f64),
}

impl Goal {
    fn met(self, value: f64) -> bool {
        match self {
            Goal::AtMost(goal) => value <= goal,
            Goal::AtLeast(goal) => value >= goal,
            Goal::Below(goal) => value < goal,
        }
    }
}

/// One row of the table: a figure with a goal.
struct Row {
    figure: &'static str,
    /// The step that measures it.
    step: &'static str,
    /// The goal, as written in the table.
    goal_text: &'static str,
    goal: Goal,
    /// The figure (and its text, with what it is made of) from the step's JSON; `None` when the
    /// JSON does not hold it.
    measure: fn(&Value) -> Option<(f64, String)>,
}

/// The benches and their arguments.
fn steps(args: &Args) -> Vec<Step> {
    let full = args.full;
    let density_count = args.density_count.unwrap_or(if full { 50 } else { 20 });
    let list = |line: &str| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let mut steps = vec![
        Step {
            key: "boot",
            args: if full { list("boot") } else { list("boot --runs 10") },
            json: "boot.json",
        },
        Step {
            key: "net",
            args: if full { list("net") } else { list("net --requests 300 --bulk-mib 8") },
            json: "net.json",
        },
        Step {
            key: "disk",
            args: if full { list("disk") } else { list("disk --ops 200 --read-mib 16") },
            json: "disk.json",
        },
        // Under load: a task every 3 ms, the sign bench's own stream.
        Step {
            key: "sign",
            args: if full {
                list("sign")
            } else {
                list("sign --rounds 1 --signatures 200 --tasks 100 --task-interval-ms 3")
            },
            json: "sign-bn254.json",
        },
        // Idle: tasks 100 ms apart, each alone in the system.
        Step {
            key: "sign-idle",
            args: if full {
                list("sign --rounds 1 --tasks 50 --task-interval-ms 100")
            } else {
                list("sign --rounds 1 --signatures 50 --tasks 20 --task-interval-ms 100")
            },
            json: "sign-bn254.json",
        },
        // 4 s idle windows: the CPU is counted in clock ticks (10 ms), so 0.25 % resolution, half
        // the 0.5 % target.
        Step {
            key: "recover",
            args: if full {
                list("recover")
            } else {
                list("recover --crashes 5 --idle-seconds 4 --cold-runs 2")
            },
            json: "recover.json",
        },
    ];
    steps.push(Step {
        key: "update",
        args: if full { list("update") } else { list("update --runs 2") },
        json: "update.json",
    });
    let idle = if full { "5" } else { "2" };
    let density = format!("density --count {density_count} --idle-seconds {idle}");
    steps.push(Step { key: "density", args: list(&density), json: "density.json" });
    steps
}

/// `a / b` as a ratio with both figures.
fn ratio(a: f64, b: f64, unit: &str) -> Option<(f64, String)> {
    (a.is_finite() && b.is_finite() && b > 0.0)
        .then(|| (a / b, format!("{:.2}x ({a:.1} {unit} / {b:.1} {unit})", a / b)))
}

/// `value` with two decimals and its `unit` (" ms", "%").
fn figure(value: f64, unit: &str) -> Option<(f64, String)> {
    Some((value, format!("{value:.2}{unit}")))
}

/// [`figure`] of the density bench, with the number of spacecores it ran at once.
fn at_once(json: &Value, value: f64, unit: &str) -> Option<(f64, String)> {
    let count = num(json, "/run/count")?;
    Some((value, format!("{value:.2}{unit} ({count} at once)")))
}

fn num(json: &Value, pointer: &str) -> Option<f64> {
    json.pointer(pointer)?.as_f64().filter(|v| v.is_finite())
}

/// Every figure with a goal (the project's goals, issue 14; the recover and update benches' own
/// targets last), and where it comes from.
fn rows() -> Vec<Row> {
    vec![
        Row {
            figure: "`GET /` p50, published port / loopback server",
            step: "net",
            goal_text: "<= 2.0x",
            goal: Goal::AtMost(2.0),
            measure: |j| ratio(num(j, "/guest/get/p50_us")?, num(j, "/baseline/get/p50_us")?, "µs"),
        },
        Row {
            figure: "1 MiB echo one way, published port / loopback server",
            step: "net",
            goal_text: ">= 0.5x",
            goal: Goal::AtLeast(0.5),
            measure: |j| {
                ratio(num(j, "/guest/echo/one_way_mb_s")?, num(j, "/baseline/echo/one_way_mb_s")?, "MB/s")
            },
        },
        Row {
            figure: "AVS task created to aggregated p50, chain-less, idle (a task every 100 ms)",
            step: "sign-idle",
            goal_text: "<= 3 ms",
            goal: Goal::AtMost(3.0),
            measure: |j| figure(num(j, "/end_to_end/latency_p50_ms")?, " ms"),
        },
        Row {
            figure: "AVS task created to aggregated p50, chain-less, under load (a task every 3 ms)",
            step: "sign",
            goal_text: "<= 5 ms",
            goal: Goal::AtMost(5.0),
            measure: |j| figure(num(j, "/end_to_end/latency_p50_ms")?, " ms"),
        },
        Row {
            figure: "tasks/s of one 1-vCPU spacecore / host signing rate",
            step: "sign",
            goal_text: ">= 0.8",
            goal: Goal::AtLeast(0.8),
            measure: |j| ratio(num(j, "/end_to_end/tasks_per_s")?, num(j, "/host_signatures_per_s")?, "/s"),
        },
        Row {
            figure: "boot to ready / bare-VM floor",
            step: "boot",
            goal_text: "<= 2.0x",
            goal: Goal::AtMost(2.0),
            measure: |j| ratio(num(j, "/boot_to_ready_us/median")?, num(j, "/floor_wall_us/median")?, "µs"),
        },
        Row {
            figure: "snapshot start to ready / bare-VM floor",
            step: "boot",
            goal_text: "<= 1.5x",
            goal: Goal::AtMost(1.5),
            measure: |j| {
                ratio(num(j, "/snapshot_to_ready_us/median")?, num(j, "/floor_wall_us/median")?, "µs")
            },
        },
        Row {
            figure: "`hac-launch --until-ready` whole process / floor",
            step: "boot",
            goal_text: "<= 3x",
            goal: Goal::AtMost(3.0),
            measure: |j| ratio(num(j, "/launch_wall_us/median")?, num(j, "/floor_wall_us/median")?, "µs"),
        },
        Row {
            figure: "4 KiB write + flush, guest / host (ops/s)",
            step: "disk",
            goal_text: ">= 0.8x",
            goal: Goal::AtLeast(0.8),
            measure: |j| ratio(num(j, "/guest/write_ops_per_s")?, num(j, "/host/write_ops_per_s")?, "/s"),
        },
        Row {
            figure: "density: host memory per spacecore",
            step: "density",
            goal_text: "<= 3 MiB",
            goal: Goal::AtMost(3.0),
            measure: |j| {
                // The bench clamps the host's used memory at what it was before the launchers
                // started: 0 means the host freed more meanwhile than they took, nothing measured.
                let bytes = num(j, "/run/host_memory_per_spacecore_bytes").filter(|b| *b > 0.0)?;
                at_once(j, bytes / (1024.0 * 1024.0), " MiB")
            },
        },
        Row {
            figure: "density: idle CPU of all together, % of one core",
            step: "density",
            goal_text: "< 2%",
            goal: Goal::Below(2.0),
            measure: |j| at_once(j, num(j, "/run/idle_cpu_percent")?, "%"),
        },
        Row {
            figure: "density: first start to all serving",
            step: "density",
            goal_text: "<= 10 s",
            goal: Goal::AtMost(10.0),
            measure: |j| at_once(j, num(j, "/run/all_serving_ms")? / 1000.0, " s"),
        },
        Row {
            figure: "crash to serving again p50 (recover bench's target)",
            step: "recover",
            goal_text: "<= 50 ms",
            goal: Goal::AtMost(50.0),
            measure: |j| figure(num(j, "/recovery/serving_us/p50")? / 1000.0, " ms"),
        },
        Row {
            figure: "idle launcher CPU, worst of 3 specs (recover bench's target)",
            step: "recover",
            goal_text: "< 0.5%",
            goal: Goal::Below(0.5),
            measure: |j| {
                let specs = j.get("idle")?.as_array()?;
                let worst =
                    specs.iter().map(|s| s.pointer("/idle/percent")?.as_f64()).collect::<Option<Vec<_>>>()?;
                let worst = worst.into_iter().reduce(f64::max)?;
                Some((worst, format!("{worst:.4}%")))
            },
        },
        Row {
            figure: "rolling update: client-visible errors (update bench's target)",
            step: "update",
            goal_text: "0",
            goal: Goal::AtMost(0.0),
            measure: |j| {
                let errors = num(j, "/update/errors")?;
                let runs = j.pointer("/update/runs")?.as_array()?.len();
                Some((errors, format!("{errors} over {runs} update(s)")))
            },
        },
        Row {
            figure: "rolling update window / cold restart window, medians (update bench's target)",
            step: "update",
            goal_text: "<= 1.0x",
            goal: Goal::AtMost(1.0),
            measure: |j| {
                ratio(
                    num(j, "/update/window_us/median")? / 1000.0,
                    num(j, "/cold_restart/window_us/median")? / 1000.0,
                    "ms",
                )
            },
        },
    ]
}

/// The cell of a row, and whether it is a failure.
fn cells(row: &Row, outcome: Option<&Outcome>) -> (String, String) {
    match outcome {
        None => ("-".into(), "not measured: the bench did not run".into()),
        Some(Outcome::Failed(why)) => ("-".into(), format!("failed: {why}")),
        Some(Outcome::Ran(json)) => match (row.measure)(json) {
            None => ("-".into(), "not measured".into()),
            Some((value, text)) => (text, if row.goal.met(value) { "met" } else { "not met" }.into()),
        },
    }
}

/// A table cell: no `|` and no line break.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The Markdown table of `rows` against `outcomes` (by step key).
fn table(rows: &[Row], outcomes: &[(&str, Outcome)]) -> String {
    let mut out =
        String::from("| figure | bench | measured | goal | result |\n| --- | --- | --- | --- | --- |\n");
    for row in rows {
        let outcome = outcomes.iter().find(|(key, _)| *key == row.step).map(|(_, o)| o);
        let (measured, result) = cells(row, outcome);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            cell(row.figure),
            row.step,
            cell(&measured),
            row.goal_text,
            cell(&result)
        ));
    }
    out
}

/// The first line of `xtask: error: ...` in `stderr`, shortened; else the exit status.
fn failure_reason(stderr: &str, status: &str) -> String {
    let line = stderr.lines().find_map(|l| l.strip_prefix("xtask: error: ")).map(str::trim);
    let mut reason = line.map_or_else(|| format!("exited with {status}"), str::to_owned);
    if reason.chars().count() > 160 {
        reason = reason.chars().take(160).collect::<String>() + "...";
    }
    reason
}

/// This xtask executable, linked (or copied) to `dir`: a build of the workspace while the
/// benches run replaces `target/debug/xtask`, and each bench must still start. Removed on drop.
struct OwnExe(PathBuf);

impl OwnExe {
    fn new(dir: &Path) -> Result<OwnExe> {
        let exe = std::env::current_exe().context("cannot find the xtask executable")?;
        let own = dir.join(format!("xtask-bench-all-{}", std::process::id()));
        let _ = fs::remove_file(&own);
        if fs::hard_link(&exe, &own).is_err() {
            fs::copy(&exe, &own)
                .with_context(|| format!("cannot copy {} to {}", exe.display(), own.display()))?;
        }
        Ok(OwnExe(own))
    }
}

impl Drop for OwnExe {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Runs `cargo xtask bench ARGS` (this very binary, as `exe`), its stdout and stderr passed on to
/// this process's stderr; the JSON it wrote, or why it failed.
fn run_step(exe: &Path, step: &Step, json: &Path) -> Result<Outcome> {
    match fs::remove_file(json) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", json.display())),
    }
    let mut command = Command::new(exe);
    command
        .arg("bench")
        .args(&step.args)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Ok(Outcome::Failed(format!("cannot run `{}`: {e}", cmd::describe(&command)))),
    };
    let mut stderr = String::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("{line}");
            stderr.push_str(&line);
            stderr.push('\n');
        }
    }
    let status = child.wait().context("cannot wait for the bench")?;
    if !status.success() {
        return Ok(Outcome::Failed(failure_reason(&stderr, &status.to_string())));
    }
    let text = match fs::read_to_string(json) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Ran(Value::Null)),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", json.display())),
    };
    let value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", json.display()))?;
    Ok(Outcome::Ran(value))
}

pub fn run(args: &Args) -> Result<()> {
    let out_dir = cmd::target_dir().join("bench");
    fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let mode = if args.full { "full" } else { "quick" };
    let started = Instant::now();
    let steps = steps(args);
    let exe = OwnExe::new(&out_dir)?;
    let mut outcomes: Vec<(&str, Outcome)> = Vec::new();
    let mut commands = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let line = format!("cargo xtask bench {}", step.args.join(" "));
        progress(format_args!("bench all [{}/{}]: {line}", i + 1, steps.len()));
        let json = out_dir.join(step.json);
        let outcome = run_step(&exe.0, step, &json)?;
        // A second run of the same bench writes the same file: keep each run's copy.
        if let Outcome::Ran(value) = &outcome
            && !value.is_null()
        {
            let copy = out_dir.join(format!("all-{}.json", step.key));
            fs::write(&copy, serde_json::to_string_pretty(value)? + "\n")
                .with_context(|| format!("cannot write {}", copy.display()))?;
        }
        commands.push(line);
        outcomes.push((step.key, outcome));
    }
    let failed: Vec<&str> =
        outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Failed(_))).map(|(key, _)| *key).collect();
    let mut report = table(&rows(), &outcomes);
    report.push_str(&format!(
        "\n`cargo xtask bench all` ({mode}) in {:.0} s; the runs:\n\n",
        started.elapsed().as_secs_f64()
    ));
    for line in &commands {
        report.push_str(&format!("- `{line}`\n"));
    }
    let path: PathBuf = out_dir.join("all.md");
    fs::write(&path, &report).with_context(|| format!("cannot write {}", path.display()))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{report}")?;
    writeln!(stdout, "table: {}", path.display())?;
    if !failed.is_empty() {
        bail!("{} bench(es) failed: {}", failed.len(), failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcomes(net: Outcome) -> Vec<(&'static str, Outcome)> {
        vec![("net", net)]
    }

    #[test]
    fn figures_are_held_against_their_goals() {
        let net = json!({
            "guest": {"get": {"p50_us": 60.0}, "echo": {"one_way_mb_s": 100.0}},
            "baseline": {"get": {"p50_us": 40.0}, "echo": {"one_way_mb_s": 400.0}},
        });
        let table = table(&rows(), &outcomes(Outcome::Ran(net)));
        let line = |start: &str| table.lines().find(|l| l.starts_with(start)).unwrap().to_owned();
        let get = line("| `GET /` p50");
        assert!(get.contains("1.50x (60.0 µs / 40.0 µs)") && get.ends_with("| met |"), "{get}");
        let echo = line("| 1 MiB echo");
        assert!(echo.contains("0.25x") && echo.ends_with("| not met |"), "{echo}");
        // Benches that did not run: every other row says so, with no figure.
        let boot = line("| boot to ready");
        assert!(boot.ends_with("| - | <= 2.0x | not measured: the bench did not run |"), "{boot}");
    }

    #[test]
    fn a_figure_the_bench_does_not_report_is_not_measured_and_a_failure_is_named() {
        let missing = table(&rows(), &outcomes(Outcome::Ran(json!({"guest": {}}))));
        assert!(
            missing
                .lines()
                .any(|l| l.starts_with("| `GET /` p50") && l.ends_with("| - | <= 2.0x | not measured |"))
        );
        let failed =
            Outcome::Failed(failure_reason("xtask: building\nxtask: error: no usable /dev/kvm | x\n", "1"));
        let failed = table(&rows(), &outcomes(failed));
        let row = failed.lines().find(|l| l.starts_with("| 1 MiB echo")).unwrap();
        assert!(row.ends_with("| failed: no usable /dev/kvm \\| x |"), "{row}");
        assert_eq!(failure_reason("nothing\n", "exit status: 3"), "exited with exit status: 3");
    }

    #[test]
    fn a_clamped_host_memory_is_not_measured() {
        let density = |bytes: f64| {
            let run = json!({"count": 20, "host_memory_per_spacecore_bytes": bytes, "idle_cpu_percent": 0.0, "all_serving_ms": 230.0});
            table(&rows(), &[("density", Outcome::Ran(json!({ "run": run })))])
        };
        let row =
            |table: &str| table.lines().find(|l| l.starts_with("| density: host memory")).unwrap().to_owned();
        assert!(row(&density(0.0)).ends_with("| - | <= 3 MiB | not measured |"), "{}", row(&density(0.0)));
        assert!(row(&density(2.5 * 1024.0 * 1024.0)).contains("2.50 MiB (20 at once) | <= 3 MiB | met"));
    }

    #[test]
    fn goals_compare_the_right_way() {
        assert!(Goal::AtMost(2.0).met(2.0) && !Goal::AtMost(2.0).met(2.01));
        assert!(Goal::AtLeast(0.8).met(0.8) && !Goal::AtLeast(0.8).met(0.79));
        assert!(Goal::Below(2.0).met(1.99) && !Goal::Below(2.0).met(2.0));
    }

    #[test]
    fn every_row_names_a_step_that_runs() {
        let args = Args { quick: false, full: false, density_count: None };
        let keys: Vec<&str> = steps(&args).iter().map(|s| s.key).collect();
        for row in rows() {
            assert!(keys.contains(&row.step), "{}: {}", row.figure, row.step);
        }
    }
}
