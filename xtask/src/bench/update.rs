//! `cargo xtask bench update`: how long a spacecore does not answer while its image is
//! replaced by a rolling update (`hac-launch --update`), against a cold restart of the same
//! spec (stop the launcher, start it again), measured in the same run.
//!
//! One spacecore (1 vCPU, 256 MiB, a 64 MiB disk, HTTP published on a fixed port,
//! auto-recovery) and one client: a closed loop of `GET /`, each on a new connection
//! (`Connection: close`), the next sent as soon as the last was answered or failed (1 ms after a
//! failure). For each switch the client runs from 200 ms before it until the new boot has
//! answered and 200 ms more; the **unavailability window** is the longest time between two
//! consecutive answers, and every probe that failed (refused, reset, closed unanswered, timed
//! out) is a **client-visible error**.
//!
//! - **Cold restart** (`--runs` times): SIGTERM to the launcher, wait for its exit, spawn it
//!   again with the same spec.
//! - **Update** (`--runs` times): the spec's image alternates between the built image and a
//!   copy with bytes appended (another file, another digest, the same guest), and `hac-launch
//!   SPEC --update` is run; its exit status must be 0 (done). The launcher's `update_done`
//!   event gives how long it held new connections (`held_ms`).
//!
//! - **Signer update** (`--runs` times): a second spacecore, an operator's (its keystore
//!   imported on its disk, `[spec.avs]`, as the tests' clusters make it), updated the same way
//!   while a closed loop of `POST /task` (each task a new index, on a new connection) runs
//!   instead of `GET /`: its window, and the tasks not answered 200 (**tasks missed**). A signer's
//!   new guest must also have loaded its key before connections are let through.
//!
//! The ratio is the update's median window over the cold restart's. JSON in
//! `target/bench/update.json`.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use spacecore_tests::cluster::{Cluster, NodeSetup, authorize};

use super::serving::{boot_count, free_port, micros};
use super::stats::Summary;
use super::vm::{self, Launcher, Scratch};
use super::{verdict, write_json};
use crate::cmd::progress;
use test_support::log::LogLine;

/// Client-visible errors during an update: none.
const ERRORS_TARGET: u64 = 0;
/// The update's window against the cold restart's: at most this.
const RATIO_TARGET: f64 = 1.0;
const GUEST_PORT: u16 = 80;
const GET_ROOT: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
/// Longest a probe may take (a held one waits the whole switch).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed probe.
const RETRY_PAUSE: Duration = Duration::from_millis(1);
/// The client runs this long before each switch and after the new boot answered.
const AROUND: Duration = Duration::from_millis(200);
/// Longest wait for a launcher line, a launcher's exit, or the new boot to answer.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Switches of each kind (cold restarts, then updates).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// The new image's deadline (boot to healthy), passed as `--update-deadline`.
    #[arg(long, default_value_t = 30_000)]
    deadline_ms: u64,
}

/// One probe of the client.
#[derive(Debug, Clone)]
struct Probe {
    sent: Instant,
    done: Instant,
    /// The boot count of a 200, or why it failed.
    result: Result<u64, String>,
}

/// One switch, as the client saw it.
#[derive(Debug, Clone, Serialize)]
struct Switch {
    /// Longest time between two consecutive answers, in µs.
    window_us: f64,
    /// The longest a single probe waited for its answer or its failure, in µs (a probe held in
    /// the relay during an update waits the whole switch).
    slowest_probe_us: f64,
    /// Probes that failed.
    errors: u64,
    /// Why, the first few.
    error_kinds: Vec<String>,
    probes: u64,
    boot_before: u64,
    boot_after: u64,
    /// For an update: the command's wall time, in µs.
    command_us: Option<f64>,
    /// For an update: the launcher's `held_ms`.
    held_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Kind {
    window_us: Summary,
    errors: u64,
    runs: Vec<Switch>,
}

#[derive(Debug, Serialize)]
struct Report {
    runs: u32,
    published: SocketAddr,
    spec: String,
    deadline_ms: u64,
    cold_restart: Kind,
    update: Kind,
    /// The operator's spacecore, under a stream of tasks; `errors` are tasks missed.
    signer_update: Kind,
    /// The update's median window over the cold restart's.
    update_over_cold: f64,
    targets: Targets,
    pass: Verdicts,
}

#[derive(Debug, Serialize)]
struct Targets {
    update_errors: u64,
    signer_tasks_missed: u64,
    update_over_cold_max: f64,
}

#[derive(Debug, Serialize)]
struct Verdicts {
    update_errors: bool,
    signer_tasks_missed: bool,
    update_over_cold: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let prepared = vm::prepare("update")?;
    let scratch = Scratch::new("update")?;
    let published = free_port()?;
    let images = [prepared.image.clone(), another_build(&prepared.image, scratch.path())?];
    let spec = |image: &Path| write_spec(scratch.path(), image, published.port());
    let spec_path = spec(&images[0])?;
    let launch = |spec: &Path| Launcher::spawn(&prepared.launch, spec, scratch.path(), &[]);

    progress(format_args!(
        "cold restart: {} runs of SIGTERM, exit, spawn, until GET / on {published} answers...",
        args.runs
    ));
    let mut launcher = launch(&spec_path)?;
    launcher.wait_for("`ready` event", LAUNCH_TIMEOUT, |l| l.ready_us())?;
    let mut cold = Vec::new();
    for run in 1..=args.runs {
        let switch = measure(published, |_| {
            launcher.terminate(LAUNCH_TIMEOUT)?;
            launcher = launch(&spec_path)?;
            Ok((None, None))
        })
        .with_context(|| format!("cold restart {run}"))?;
        progress(format_args!(
            "cold restart {run}/{}: {} ms without an answer, {} errors",
            args.runs,
            ms(switch.window_us),
            switch.errors
        ));
        cold.push(switch);
    }

    progress(format_args!("update: {} runs of hac-launch --update with another image...", args.runs));
    let mut updates = Vec::new();
    for run in 1..=args.runs {
        let image = &images[run as usize % 2];
        spec(image)?;
        let switch = measure(published, |_| {
            let began = Instant::now();
            let output = Command::new(&prepared.launch)
                .arg(&spec_path)
                .args(["--update", "--update-deadline", &args.deadline_ms.to_string()])
                .env("SPACECORE_STATE_DIR", scratch.path())
                .output()
                .context("cannot run hac-launch --update")?;
            let took = began.elapsed();
            if !output.status.success() {
                bail!(
                    "hac-launch --update: {}\n{}{}",
                    output.status,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            let held = launcher.wait_for("`update_done` event", LAUNCH_TIMEOUT, held_ms)?;
            Ok((Some(micros(took)), Some(held)))
        })
        .with_context(|| format!("update {run}"))?;
        progress(format_args!(
            "update {run}/{}: {} ms without an answer, {} errors (held {} ms)",
            args.runs,
            ms(switch.window_us),
            switch.errors,
            switch.held_ms.unwrap_or_default()
        ));
        updates.push(switch);
    }
    launcher.terminate(LAUNCH_TIMEOUT)?;
    let signer = signer_updates(args, scratch.path())?;

    let kind = |runs: Vec<Switch>| -> Result<Kind> {
        let windows: Vec<f64> = runs.iter().map(|s| s.window_us).collect();
        Ok(Kind {
            window_us: Summary::of(&windows).context("no run")?,
            errors: runs.iter().map(|s| s.errors).sum(),
            runs,
        })
    };
    let (cold_restart, update, signer_update) = (kind(cold)?, kind(updates)?, kind(signer)?);
    let update_over_cold = update.window_us.median / cold_restart.window_us.median;
    let report = Report {
        runs: args.runs,
        published,
        spec: fs::read_to_string(&spec_path).unwrap_or_default(),
        deadline_ms: args.deadline_ms,
        pass: Verdicts {
            update_errors: update.errors == ERRORS_TARGET,
            signer_tasks_missed: signer_update.errors == ERRORS_TARGET,
            update_over_cold: update_over_cold <= RATIO_TARGET,
        },
        cold_restart,
        update,
        signer_update,
        update_over_cold,
        targets: Targets {
            update_errors: ERRORS_TARGET,
            signer_tasks_missed: ERRORS_TARGET,
            update_over_cold_max: RATIO_TARGET,
        },
    };
    let out = write_json("update", &report)?;
    print_table(&report);
    println!("JSON: {}", out.display());
    Ok(())
}

/// The signer's updates: an operator's spacecore (release tools, a cluster of one without its
/// aggregator), updated `--runs` times under a closed loop of tasks.
fn signer_updates(args: &Args, scratch: &Path) -> Result<Vec<Switch>> {
    let tools = crate::demo::release_tools()?;
    let images = [tools.image.clone(), another_build(&tools.image, scratch)?];
    progress(format_args!("signer: {} runs of hac-launch --update under a stream of tasks...", args.runs));
    let setup = NodeSetup {
        memory: Some("128Mi".into()),
        tables: "[spec.operations]\nupdateStrategy = \"RollingUpdate\"\n".into(),
        ..NodeSetup::default()
    };
    let mut cluster = Cluster::with_setup(tools.clone(), "bench-update", 1, &setup);
    cluster.start(0);
    let addr = cluster.nodes[0].http.context("the signer's published HTTP port")?;
    let mut next_task = 1u32;
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let image = &images[run as usize % 2];
        set_image(&cluster.nodes[0].spec, image)?;
        let stop = Arc::new(AtomicBool::new(false));
        let first = next_task;
        let client = {
            let stop = stop.clone();
            thread::spawn(move || task_client(addr, first, &stop))
        };
        thread::sleep(AROUND);
        let began = Instant::now();
        let output = Command::new(&tools.launcher)
            .arg(&cluster.nodes[0].spec)
            .args(["--update", "--update-deadline", &args.deadline_ms.to_string()])
            .env("SPACECORE_STATE_DIR", cluster.dir())
            .env("SPACECORE_IMAGE_STORE", cluster.dir().join("image-store"))
            .output()
            .context("cannot run hac-launch --update")?;
        let took = began.elapsed();
        thread::sleep(AROUND);
        stop.store(true, Ordering::Relaxed);
        let probes = client.join().map_err(|_| anyhow::anyhow!("the task client panicked"))?;
        if !output.status.success() {
            bail!(
                "signer update {run}: hac-launch --update: {}\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        next_task += probes.len() as u32;
        let held = String::from_utf8_lossy(&output.stdout).lines().find_map(|l| {
            l.split_once("new connections were held for ")?.1.strip_suffix(" ms")?.parse().ok()
        });
        // Tasks carry no boot count (see `task_client`): none in the report.
        let mut switch = judge(&probes, Some(micros(took)), held)?;
        (switch.boot_before, switch.boot_after) = (0, 0);
        progress(format_args!(
            "signer update {run}/{}: {} ms without an answer, {} tasks missed of {} (held {} ms)",
            args.runs,
            ms(switch.window_us),
            switch.errors,
            switch.probes,
            switch.held_ms.unwrap_or_default()
        ));
        runs.push(switch);
    }
    let (code, output) = cluster.stop(0);
    if code != Some(0) {
        bail!("the signer's launcher ended with {code:?}: {output}");
    }
    Ok(runs)
}

/// The closed-loop task client: task `first`, `first + 1`, ... (squaring their index + 2) until
/// `stop`. Tasks carry no boot count: every answer counts as boot 1 but the last, boot 2, so that
/// [`judge`] (which wants the client answered by a new boot at the end) takes it.
fn task_client(addr: SocketAddr, first: u32, stop: &AtomicBool) -> Vec<Probe> {
    let mut probes = Vec::new();
    let mut index = first;
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let result = post_task(addr, index).map(|()| 1);
        let failed = result.is_err();
        probes.push(Probe { sent, done: Instant::now(), result });
        index += 1;
        if failed {
            thread::sleep(RETRY_PAUSE);
        }
    }
    if let Some(Probe { result: Ok(boot), .. }) = probes.iter_mut().rev().find(|p| p.result.is_ok()) {
        *boot = 2;
    }
    probes
}

/// `POST /task` of task `index` on a new connection; Ok for a 200 with a signature.
fn post_task(addr: SocketAddr, index: u32) -> Result<(), String> {
    let task = serde_json::json!({"task_index": index, "task": {"number_to_be_squared": (u64::from(index) + 2).to_string(),
        "task_created_block": 1, "quorum_numbers": "0x00", "quorum_threshold_percentage": 67}});
    let body = authorize(task.to_string().as_bytes());
    let head = format!(
        "POST /task HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let body = exchange(addr, &[head.as_bytes(), &body])?;
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .filter(|v| v["signature"].is_string())
        .map(|_| ())
        .ok_or_else(|| "no signature".to_owned())
}

/// Points the spec at `spec` to `image`.
fn set_image(spec: &Path, image: &Path) -> Result<()> {
    let text = fs::read_to_string(spec).with_context(|| format!("cannot read {}", spec.display()))?;
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("image = ") {
                format!("image = {}\n", vm::toml_string(&image.to_string_lossy()))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(spec, text).with_context(|| format!("cannot write {}", spec.display()))
}

/// The `update_done` event: its `held_ms`.
fn held_ms(line: &LogLine) -> Option<u64> {
    if line.is_event("update_done") { line.u64_field("held_ms") } else { None }
}

/// Runs the client around `switch` (which returns the command's time and the held time, for an
/// update) until the new boot answers, and judges what it saw.
fn measure(
    addr: SocketAddr,
    switch: impl FnOnce(()) -> Result<(Option<f64>, Option<u64>)>,
) -> Result<Switch> {
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        thread::spawn(move || client(addr, &stop))
    };
    thread::sleep(AROUND);
    let outcome = switch(());
    // The new boot must answer; then the client runs a little longer.
    let (command_us, held_ms) = match outcome {
        Ok(figures) => figures,
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            let _ = client.join();
            return Err(e);
        }
    };
    let began = Instant::now();
    while began.elapsed() < LAUNCH_TIMEOUT && probe(addr).result.is_err() {
        thread::sleep(RETRY_PAUSE);
    }
    thread::sleep(AROUND);
    stop.store(true, Ordering::Relaxed);
    let probes = client.join().map_err(|_| anyhow::anyhow!("the client panicked"))?;
    judge(&probes, command_us, held_ms)
}

/// What a run of the client saw: the window, the errors, the boot counts.
fn judge(probes: &[Probe], command_us: Option<f64>, held_ms: Option<u64>) -> Result<Switch> {
    let answers: Vec<(Instant, u64)> =
        probes.iter().filter_map(|p| p.result.as_ref().ok().map(|&boot| (p.done, boot))).collect();
    let (Some(first), Some(last)) = (answers.first(), answers.last()) else { bail!("no probe was answered") };
    if last.1 <= first.1 {
        bail!("the client never saw a new boot (boot count {} throughout)", first.1);
    }
    let window = answers.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap_or_default();
    let errors: Vec<&String> = probes.iter().filter_map(|p| p.result.as_ref().err()).collect();
    let slowest = probes.iter().map(|p| p.done - p.sent).max().unwrap_or_default();
    Ok(Switch {
        window_us: micros(window),
        slowest_probe_us: micros(slowest),
        errors: errors.len() as u64,
        error_kinds: errors.iter().take(5).map(|e| (*e).clone()).collect(),
        probes: probes.len() as u64,
        boot_before: first.1,
        boot_after: last.1,
        command_us,
        held_ms,
    })
}

/// The closed-loop client: probes until `stop`.
fn client(addr: SocketAddr, stop: &AtomicBool) -> Vec<Probe> {
    let mut probes = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let probe = probe(addr);
        let failed = probe.result.is_err();
        probes.push(probe);
        if failed {
            thread::sleep(RETRY_PAUSE);
        }
    }
    probes
}

/// One `GET /` on a new connection.
fn probe(addr: SocketAddr) -> Probe {
    let sent = Instant::now();
    let result = get_root(addr);
    Probe { sent, done: Instant::now(), result }
}

/// One request, its `parts` written in turn, on a fresh connection that the server closes, each
/// step bounded by [`PROBE_TIMEOUT`]: the body of a 200 answer; otherwise the answer's status
/// line, or the kind of the I/O error.
fn exchange(addr: SocketAddr, parts: &[&[u8]]) -> Result<String, String> {
    let kind = |e: std::io::Error| format!("{:?}", e.kind());
    let mut stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).map_err(kind)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).map_err(kind)?;
    stream.set_nodelay(true).map_err(kind)?;
    for part in parts {
        stream.write_all(part).map_err(kind)?;
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(kind)?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("closed unanswered")?;
    if !head.starts_with("HTTP/1.1 200 ") {
        return Err(head.lines().next().unwrap_or_default().to_owned());
    }
    Ok(body.to_owned())
}

fn get_root(addr: SocketAddr) -> Result<u64, String> {
    let body = exchange(addr, &[GET_ROOT])?;
    boot_count(body.as_bytes()).ok_or_else(|| "no boot count".to_owned())
}

/// Writes the bench's spec booting `image`, HTTP published on `port`.
fn write_spec(dir: &Path, image: &Path, port: u16) -> Result<PathBuf> {
    let tables = format!(
        "[spec.networking.inbound_ports]\nHTTP = {GUEST_PORT}\n\n[spec.networking.publish]\nHTTP = {port}\n\n\
         [spec.failover]\nstrategy = \"auto-recovery\"\n\n[spec.operations]\nupdateStrategy = \"RollingUpdate\"\n"
    );
    vm::write_spec(dir, "bench-update", image, "storage = \"64Mi\"\n", &tables)
}

/// A copy of `image` with bytes appended past its segments: another file and digest, the same
/// guest.
fn another_build(image: &Path, dir: &Path) -> Result<PathBuf> {
    let mut bytes = fs::read(image).with_context(|| format!("cannot read {}", image.display()))?;
    bytes.extend_from_slice(b"\0another build of the same guest\0");
    let path = dir.join("spacecore-next.elf");
    fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// µs as milliseconds with two decimals.
fn ms(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}

fn print_table(r: &Report) {
    let held: Vec<String> = r.update.runs.iter().filter_map(|s| s.held_ms).map(|h| h.to_string()).collect();
    println!(
        "\nupdate bench: one spacecore (1 vCPU, 256 MiB, 64 MiB disk, HTTP published on {}), auto-recovery;\n\
         a closed-loop client (GET / on a new connection each) around each switch; the window is the\n\
         longest time between two answers; {} runs of each; then an operator's spacecore (128 MiB, its\n\
         keystore on its disk) updated under a closed loop of POST /task\n",
        r.published, r.runs
    );
    println!("| switch | window median | min | max | client errors |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, kind) in
        [("cold restart (SIGTERM, exit, spawn)", &r.cold_restart), ("hac-launch --update", &r.update)]
    {
        println!(
            "| {name} | {} ms | {} ms | {} ms | {} |",
            ms(kind.window_us.median),
            ms(kind.window_us.min),
            ms(kind.window_us.max),
            kind.errors
        );
    }
    let signer_held: Vec<String> =
        r.signer_update.runs.iter().filter_map(|s| s.held_ms).map(|h| h.to_string()).collect();
    println!(
        "\nupdate held new connections for {} ms; the signer's for {} ms",
        held.join(", "),
        signer_held.join(", ")
    );
    println!(
        "update errors: {} (target {}) {}; signer tasks missed: {} (target {}) {}; update window / cold restart window: {:.2} (target <= {}) {}",
        r.update.errors,
        r.targets.update_errors,
        verdict(r.pass.update_errors),
        r.signer_update.errors,
        r.targets.signer_tasks_missed,
        verdict(r.pass.signer_tasks_missed),
        r.update_over_cold,
        r.targets.update_over_cold_max,
        verdict(r.pass.update_over_cold)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn the_window_is_the_longest_time_between_answers_and_failures_are_errors() {
        let t = Instant::now();
        let answered = |sent, done, boot| Probe { sent: at(t, sent), done: at(t, done), result: Ok(boot) };
        let failed = |sent, done| Probe {
            sent: at(t, sent),
            done: at(t, done),
            result: Err("ConnectionRefused".into()),
        };
        let probes = [
            answered(0, 1, 3),
            answered(1, 2, 3),
            failed(2, 3),
            failed(4, 5),
            answered(6, 40, 4),
            answered(40, 41, 4),
        ];
        let switch = judge(&probes, None, None).unwrap();
        assert_eq!(switch.window_us, 38_000.0);
        assert_eq!(switch.slowest_probe_us, 34_000.0);
        assert_eq!((switch.errors, switch.probes, switch.boot_before, switch.boot_after), (2, 6, 3, 4));
        assert!(judge(&probes[..2], None, None).unwrap_err().to_string().contains("never saw a new boot"));
        assert!(judge(&probes[2..4], None, None).is_err());
    }
}
