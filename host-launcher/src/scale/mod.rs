//! Horizontal scaling (`spec.operations.scaling = "HorizontalAutoScaling"`): replicas of a
//! stateless spacecore behind one published port. See `docs/hac-launch.md`, Scaling.
//!
//! The launcher started on such a spec is the **parent**: it runs no guest. It checks, before
//! anything boots, that the spacecore may be replicated ([`check`]: no disk, an image whose
//! manifest declares its AVS stateless); it listens on the spec's published ports and balances
//! each new connection between the replicas ([`balancer`]); it runs each replica as a child
//! `hac-launch` of the same spec (`--replica N`: the spacecore `NAME-rN`, its own network
//! namespace, tap, guest and confinement, published on a loopback port of its own), replaces a
//! replica that ends unasked, and adds or stops replicas on load ([`controller`]). SIGTERM or
//! SIGINT stops every replica, then the parent.

pub mod balancer;
pub mod controller;

use crate::output::{Level, Log};
use anyhow::Context;
use balancer::{Backend, Pool, PortCounters};
use controller::{Change, Controller};
use image_store::{Manifest, Store};
use prom_text::{Exposition, Kind};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::BufRead;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A spec that asks for replicas the launcher will not run; nothing was started.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Whether `plan` asks for replicas.
pub fn scaled(plan: &hac::Plan) -> bool {
    plan.operations.scaling == hac::Scaling::HorizontalAutoScaling
}

/// Before anything boots: a scaled spacecore has no disk, and its image's manifest declares its
/// AVS stateless. `image_path` is the resolved image, `image` the same file, open.
pub fn check(
    plan: &hac::Plan,
    store: &Store,
    image_path: &Path,
    image: &std::fs::File,
) -> Result<(), Refused> {
    if plan.storage_bytes > 0 {
        return Err(Refused(format!(
            "spec.operations.scaling = \"HorizontalAutoScaling\" runs replicas that share nothing, but \
             spec.resources.storage gives this spacecore a disk ({}); replicas cannot share one disk, \
             and a disk of each would keep state apart: remove storage from [spec.resources] (and \
             [spec.storage]), or write scaling = \"None\"; nothing was started",
            hac::units::format_binary_size(plan.storage_bytes)
        )));
    }
    let (what, stateless) = declaration(&plan.image, store, image_path, image)?;
    if !stateless {
        return Err(Refused(format!(
            "spec.operations.scaling = \"HorizontalAutoScaling\" runs replicas of this spacecore, but \
             {what} does not declare its AVS stateless; only an image built by `cargo xtask build-image \
             --avs PATH` from an AVS crate with [package.metadata.spacecore] stateless = true (it keeps \
             nothing on a disk and signs no tasks) may be replicated: write scaling = \"None\", or \
             build a stateless AVS; nothing was started"
        )));
    }
    Ok(())
}

/// Where the image's declaration was read (for messages), and whether it says stateless.
fn declaration(
    source: &hac::ImageSource,
    store: &Store,
    image_path: &Path,
    image: &std::fs::File,
) -> Result<(String, bool), Refused> {
    match source {
        hac::ImageSource::Reference(r) => {
            let stored = store.resolve(&r.repository, &r.tag).map_err(|e| Refused(e.to_string()))?;
            Ok((format!("the manifest of {}:{}", r.repository, r.tag), stored.manifest.stateless))
        }
        hac::ImageSource::Path(_) => {
            // A path: the manifest beside it (the store's `manifest.json`, or `images/NAME.json`
            // next to `images/NAME.elf`), if it describes these very bytes.
            let sha256 = image_store::sha256_reader(image)
                .map_err(|e| Refused(format!("cannot read image {}: {e}", image_path.display())))?;
            let _ = std::io::Seek::rewind(&mut &*image);
            let beside = [
                image_path.parent().map(|dir| dir.join("manifest.json")),
                Some(image_path.with_extension("json")),
            ];
            for path in beside.into_iter().flatten() {
                let Ok(text) = std::fs::read_to_string(&path) else { continue };
                let Ok(manifest) = serde_json::from_str::<Manifest>(&text) else { continue };
                if manifest.sha256 == sha256 {
                    return Ok((format!("the manifest {}", path.display()), manifest.stateless));
                }
            }
            Ok((format!("the image {} (no manifest of these bytes beside it)", image_path.display()), false))
        }
    }
}

/// The plan of replica `number` of a scaled spacecore: the spacecore `NAME-rN`, one instance,
/// its ports published on loopback at `ports` (by inbound port name), no metrics server of its
/// own and its log lines on stdout, for the parent to pass on.
pub fn replica_plan(mut plan: hac::Plan, number: u32, ports: &[(String, u16)]) -> anyhow::Result<hac::Plan> {
    plan.name = format!("{}-r{number}", plan.name);
    plan.operations.scaling = hac::Scaling::None;
    plan.observability.metrics_address = None;
    plan.observability.sidecar = false;
    plan.observability.log_file = None;
    plan.network.publish_address = Ipv4Addr::LOCALHOST.into();
    for port in &mut plan.network.inbound_ports {
        port.host_port = ports
            .iter()
            .find(|(name, _)| *name == port.name)
            .map(|(_, p)| *p)
            .with_context(|| format!("--replica-port: no port given for {}", port.name))?;
    }
    Ok(plan)
}

/// `NAME=PORT`, a `--replica-port`.
pub fn replica_port(text: &str) -> Result<(String, u16), String> {
    let (name, port) = text.split_once('=').ok_or_else(|| format!("{text:?}: expected NAME=PORT"))?;
    let port = port.parse().map_err(|_| format!("{text:?}: expected NAME=PORT"))?;
    Ok((name.to_owned(), port))
}

/// How the parent starts its replicas.
#[derive(Debug, Clone)]
pub struct Parent {
    /// The `hac-launch` executable.
    pub exe: PathBuf,
    /// The spec file.
    pub spec: PathBuf,
    /// The command line options every replica gets (image store, confinement, timeouts, ...).
    pub args: Vec<OsString>,
    /// How long a replica gets to stop (the replica's `--stop-timeout`, plus a margin).
    pub stop_timeout: Duration,
}

/// What the metrics and the controller read.
#[derive(Debug, Default)]
struct State {
    replicas: AtomicU64,
    ups: AtomicU64,
    downs: AtomicU64,
    replacements: AtomicU64,
}

/// A replica the parent runs.
#[derive(Debug)]
struct Replica {
    child: Child,
    backend: Arc<Backend>,
    /// Asked to stop (scaled down, or the parent stops).
    stopping: bool,
    /// Ready at least once.
    ever_ready: Arc<AtomicBool>,
    /// Its readiness has reset the count of replicas that ended before they were ready.
    counted: bool,
}

/// A step between replicas in a row that end before they are ready.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait before a replica is replaced.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Replicas in a row that may end before one is ready, while none serves, before the parent
/// gives up.
const GIVE_UP_AFTER: u32 = 5;
/// How often the controller looks at the load and the parent at its replicas.
const TICK: Duration = Duration::from_millis(100);

/// Runs the scaled spacecore of `plan` until SIGTERM or SIGINT; returns the exit status.
pub fn run(plan: &hac::Plan, log: &Log, parent: &Parent) -> anyhow::Result<u8> {
    let autoscaling = plan.operations.autoscaling;
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone(), log.clone())?;
    let pool = Arc::new(Pool::default());
    let mut published = Vec::new();
    for port in &plan.network.inbound_ports {
        let addr = SocketAddr::new(plan.network.publish_address, port.host_port);
        let listener = TcpListener::bind(addr).with_context(|| {
            format!("spec.networking.inbound_ports.{}: cannot listen on {addr}", port.name)
        })?;
        let bound = listener.local_addr().unwrap_or(addr);
        let counters = Arc::new(PortCounters::default());
        balancer::start(port.name.clone(), listener, pool.clone(), counters.clone())?;
        log.event(
            Level::Info,
            format_args!(
                "published {}: {bound} -> guest port {} of each replica (least connections)",
                port.name, port.port
            ),
            &[
                ("event", "published".into()),
                ("port", port.name.clone().into()),
                ("address", bound.to_string().into()),
                ("guest", format!("port {} of each replica", port.port).into()),
            ],
        );
        published.push((port.name.clone(), counters));
    }
    let published = Arc::new(published);
    log.event(
        Level::Info,
        format_args!(
            "scaling: {} to {} replicas; one more when open connections per replica stay above {} for {} ms, \
             one fewer when they would stay at or below {} per replica with one fewer for {} ms",
            autoscaling.min_replicas,
            autoscaling.max_replicas,
            autoscaling.target_connections,
            autoscaling.scale_up_after_ms,
            f64::from(autoscaling.target_connections) / 2.0,
            autoscaling.scale_down_after_ms
        ),
        &[
            ("event", "scaling".into()),
            ("min_replicas", autoscaling.min_replicas.into()),
            ("max_replicas", autoscaling.max_replicas.into()),
            ("target_connections", autoscaling.target_connections.into()),
            ("scale_up_after_ms", autoscaling.scale_up_after_ms.into()),
            ("scale_down_after_ms", autoscaling.scale_down_after_ms.into()),
        ],
    );
    let state = Arc::new(State::default());
    if let Some(address) = plan.observability.metrics_address {
        let render = {
            let (name, state, pool, published) =
                (plan.name.clone(), state.clone(), pool.clone(), published.clone());
            Arc::new(move || render(&name, &autoscaling, &state, &pool, &published))
        };
        let bound = crate::metrics::server::start_rendered(address, render)?;
        let fields = [("event", "metrics".into()), ("address", bound.to_string().into())];
        log.event(Level::Info, format_args!("metrics: http://{bound}/metrics"), &fields);
    }

    let mut replicas: BTreeMap<u32, Replica> = BTreeMap::new();
    // Replicas to start (again) and when.
    let mut pending: Vec<(u32, Instant)> =
        (1..=autoscaling.min_replicas).map(|n| (n, Instant::now())).collect();
    let mut controller = Controller::new(&autoscaling);
    let mut failures_in_row = 0u32;
    let mut outcome = 0u8;
    'run: while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        // Start what is due.
        let (due, later): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(_, at)| *at <= now);
        pending = later;
        for (number, _) in due {
            match spawn(plan, parent, number, log) {
                Ok(replica) => {
                    pool.add(replica.backend.clone());
                    replicas.insert(number, replica);
                }
                Err(e) => {
                    log.event(
                        Level::Error,
                        format_args!("replica {number}: cannot start: {e:#}"),
                        &[("event", "replica_failed".into()), ("replica", number.into())],
                    );
                    failures_in_row += 1;
                    let serving =
                        replicas.values().any(|r| r.ever_ready.load(Ordering::Acquire) && !r.stopping);
                    if failures_in_row > GIVE_UP_AFTER && !serving {
                        log.event(
                            Level::Error,
                            format_args!(
                                "scaling: giving up: {failures_in_row} replicas in a row could not start or \
                                 ended before they were ready, and none serves"
                            ),
                            &[("event", "scaling_failed".into()), ("replica", number.into())],
                        );
                        outcome = spacecore_abi::exit::LAUNCHER_ERROR;
                        break 'run;
                    }
                    pending.push((number, now + backoff(failures_in_row)));
                }
            }
        }
        // Reap what ended.
        let mut ended = Vec::new();
        for (number, replica) in &mut replicas {
            if let Ok(Some(status)) = replica.child.try_wait() {
                ended.push((*number, status));
            }
        }
        for (number, status) in ended {
            let Some(replica) = replicas.remove(&number) else { continue };
            pool.remove(number);
            let how = status.code().map_or_else(|| format!("{status}"), |c| format!("exit status {c}"));
            if replica.stopping {
                log.event(
                    Level::Info,
                    format_args!("replica {number}: stopped ({how})"),
                    &[("event", "replica_stopped".into()), ("replica", number.into())],
                );
                continue;
            }
            if !replica.ever_ready.load(Ordering::Acquire) {
                failures_in_row += 1;
            }
            let serving = replicas.values().any(|r| r.ever_ready.load(Ordering::Acquire) && !r.stopping);
            if failures_in_row > GIVE_UP_AFTER && !serving {
                log.event(
                    Level::Error,
                    format_args!(
                        "scaling: giving up: {failures_in_row} replicas in a row ended before they were ready \
                         (replica {number}: {how}), and none serves"
                    ),
                    &[("event", "scaling_failed".into()), ("replica", number.into())],
                );
                outcome = spacecore_abi::exit::LAUNCHER_ERROR;
                break 'run;
            }
            let wait = if failures_in_row == 0 { Duration::ZERO } else { backoff(failures_in_row) };
            state.replacements.fetch_add(1, Ordering::Relaxed);
            log.event(
                Level::Warn,
                format_args!(
                    "replica {number}: ended unasked ({how}); replacing it in {} ms",
                    wait.as_millis()
                ),
                &[
                    ("event", "replica_replaced".into()),
                    ("replica", number.into()),
                    ("backoff_ms", (wait.as_millis() as u64).into()),
                ],
            );
            pending.push((number, now + wait));
        }
        // A replica newly ready ends a streak of replicas that were not.
        for replica in replicas.values_mut() {
            if !replica.counted && replica.ever_ready.load(Ordering::Acquire) {
                replica.counted = true;
                failures_in_row = 0;
            }
        }
        // Scale.
        let running: Vec<u32> = replicas.iter().filter(|(_, r)| !r.stopping).map(|(n, _)| *n).collect();
        let count = (running.len() + pending.len()) as u32;
        let open: u64 = published.iter().map(|(_, c)| c.open.load(Ordering::Acquire)).sum();
        state.replicas.store(u64::from(count), Ordering::Relaxed);
        match controller.observe(now, open, count) {
            Some(Change::Up) => {
                let number =
                    (1..).find(|n| !replicas.contains_key(n) && !pending.iter().any(|(p, _)| p == n));
                let number = number.unwrap_or(count + 1);
                state.ups.fetch_add(1, Ordering::Relaxed);
                scale_event(log, Change::Up, count, open, &autoscaling, number);
                pending.push((number, now));
                // Started at once, at the top of the loop.
                continue;
            }
            Some(Change::Down) => {
                // The newest number goes first; a replica waiting to start goes before any.
                let number =
                    if let Some((n, _)) = pending.pop() { Some(n) } else { running.iter().max().copied() };
                if let Some(number) = number {
                    state.downs.fetch_add(1, Ordering::Relaxed);
                    scale_event(log, Change::Down, count, open, &autoscaling, number);
                    if let Some(replica) = replicas.get_mut(&number) {
                        // No new connection goes to it; those open end with it.
                        pool.remove(number);
                        replica.stopping = true;
                        terminate(&replica.child);
                    }
                }
            }
            None => {}
        }
        std::thread::sleep(TICK);
    }
    stop_all(replicas, parent.stop_timeout, log);
    Ok(outcome)
}

/// The wait before the next replica after `failures` in a row: 100 ms doubling to 5 s.
fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(10)).min(MAX_BACKOFF)
}

fn scale_event(log: &Log, change: Change, from: u32, open: u64, a: &hac::Autoscaling, replica: u32) {
    let to = match change {
        Change::Up => from + 1,
        Change::Down => from - 1,
    };
    let per = open as f64 / f64::from(from.max(1));
    let why = match change {
        Change::Up => format!(
            "{open} open connections, {per:.1} per replica, above the target {} for {} ms; starting replica {replica}",
            a.target_connections, a.scale_up_after_ms
        ),
        Change::Down => format!(
            "{open} open connections, at most {} per replica with one fewer for {} ms; stopping replica {replica}",
            f64::from(a.target_connections) / 2.0,
            a.scale_down_after_ms
        ),
    };
    log.event(
        Level::Info,
        format_args!("scale {}: {from} -> {to} replicas: {why}", change.as_str()),
        &[
            ("event", "scale".into()),
            ("direction", change.as_str().into()),
            ("from", from.into()),
            ("to", to.into()),
            ("open_connections", open.into()),
            ("replica", replica.into()),
        ],
    );
}

/// A free port on loopback, for a replica's published port.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot find a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts replica `number`: a child `hac-launch --replica N` whose lines the parent passes on.
fn spawn(plan: &hac::Plan, parent: &Parent, number: u32, log: &Log) -> anyhow::Result<Replica> {
    let mut ports = Vec::new();
    for port in &plan.network.inbound_ports {
        ports.push((port.name.clone(), free_port()?));
    }
    let mut cmd = Command::new(&parent.exe);
    cmd.args(&parent.args).arg("--replica").arg(number.to_string());
    for (name, port) in &ports {
        cmd.arg("--replica-port").arg(format!("{name}={port}"));
    }
    // Its standard input is a pipe whose end tells it the parent is gone (even killed).
    cmd.arg(&parent.spec).stdin(Stdio::piped()).stdout(Stdio::piped());
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2),
    // which is async-signal-safe and touches no memory of the parent's.
    unsafe {
        cmd.pre_exec(|| {
            // The replica stops when the parent dies, even by SIGKILL (until it confines
            // itself; then its standard input's end tells it).
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().with_context(|| format!("cannot run {}", parent.exe.display()))?;
    let backend = Arc::new(Backend::new(
        number,
        ports
            .iter()
            .map(|(name, port)| (name.clone(), SocketAddr::from((Ipv4Addr::LOCALHOST, *port))))
            .collect(),
    ));
    let ever_ready = Arc::new(AtomicBool::new(false));
    let stdout = child.stdout.take().context("the replica's stdout")?;
    {
        let (log, backend, ever_ready) = (log.clone(), backend.clone(), ever_ready.clone());
        let name = format!("{}-r{number}", plan.name);
        std::thread::Builder::new().name(format!("replica-{number}")).spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                log.forward(&line);
                match readiness(&line, &name) {
                    // Between a failed guest and its restart's ready, no new connection goes to it.
                    Some(false) => backend.serving.store(false, Ordering::Release),
                    Some(true) => {
                        backend.serving.store(true, Ordering::Release);
                        if !ever_ready.swap(true, Ordering::AcqRel) {
                            log.event(
                                Level::Info,
                                format_args!("replica {number}: ready; new connections go to it"),
                                &[("event", "replica_ready".into()), ("replica", number.into())],
                            );
                        }
                    }
                    None => {}
                }
            }
        })?;
    }
    log.event(
        Level::Info,
        format_args!(
            "replica {number}: starting {}-r{number} (pid {}), published on {}",
            plan.name,
            child.id(),
            ports.iter().map(|(n, p)| format!("{n} 127.0.0.1:{p}")).collect::<Vec<_>>().join(", ")
        ),
        &[("event", "replica_started".into()), ("replica", number.into()), ("pid", child.id().into())],
    );
    Ok(Replica { child, backend, stopping: false, ever_ready, counted: false })
}

/// What `line`, from the replica `name`, says of its guest (JSON or text lines; its launcher's
/// lines only): `Some(true)` at its launcher's `ready` (a boot or a restart), `Some(false)` when
/// its guest failed and waits for a restart, `None` otherwise.
fn readiness(line: &str, name: &str) -> Option<bool> {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
        if value["spacecore"] != name || value["source"] != "launcher" {
            return None;
        }
        return match value["fields"]["event"].as_str()? {
            "ready" => Some(true),
            "guest_failed" | "restart" => Some(false),
            _ => None,
        };
    }
    let message = line.strip_prefix(&format!("[{name} launcher] "))?;
    if message.starts_with("ready in ") {
        Some(true)
    } else if message.starts_with("restart ") {
        Some(false)
    } else {
        None
    }
}

/// SIGTERM to a replica: it stops its guest as on SIGTERM.
fn terminate(child: &Child) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) on the pid of a child this process has not reaped.
    unsafe { libc::kill(pid, libc::SIGTERM) };
}

/// Stops every replica: SIGTERM, then after `timeout` SIGKILL.
fn stop_all(mut replicas: BTreeMap<u32, Replica>, timeout: Duration, log: &Log) {
    if replicas.is_empty() {
        log.launcher("stopped (no replica was running)");
        return;
    }
    log.launcher(format_args!("stopping {} replicas", replicas.len()));
    for replica in replicas.values() {
        terminate(&replica.child);
    }
    let deadline = Instant::now() + timeout;
    while !replicas.is_empty() {
        let mut done = Vec::new();
        for (number, replica) in &mut replicas {
            if let Ok(Some(_)) = replica.child.try_wait() {
                done.push(*number);
            }
        }
        for number in done {
            replicas.remove(&number);
        }
        if Instant::now() >= deadline {
            for (number, mut replica) in std::mem::take(&mut replicas) {
                log.launcher(format_args!("replica {number}: did not stop in time; killed"));
                let _ = replica.child.kill();
                let _ = replica.child.wait();
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    log.event(Level::Info, "every replica stopped", &[("event", "replicas_stopped".into())]);
}

/// SIGTERM and SIGINT stop the replicas, then the parent.
fn watch_signals(stop: Arc<AtomicBool>, log: Log) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).context("cannot install signal handlers")?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            let name = if signal == SIGTERM { "SIGTERM" } else { "SIGINT" };
            log.launcher(format_args!("{name} received: stopping every replica"));
            stop.store(true, Ordering::Release);
        }
    })?;
    Ok(())
}

/// The parent's metrics.
fn render(
    name: &str,
    a: &hac::Autoscaling,
    state: &State,
    pool: &Pool,
    published: &[(String, Arc<PortCounters>)],
) -> String {
    let mut e = Exposition::default();
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
    e.family("spacecore_launcher_info", Kind::Gauge, "The spacecore this launcher runs; always 1.")
        .sample_f64(
            "spacecore_launcher_info",
            &[("spacecore", name), ("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
    e.family(
        "spacecore_launcher_replicas",
        Kind::Gauge,
        "Replicas running or starting (not those stopping).",
    )
    .sample_f64("spacecore_launcher_replicas", &[], n(&state.replicas));
    e.family("spacecore_launcher_replicas_ready", Kind::Gauge, "Replicas that take new connections.")
        .sample_f64(
            "spacecore_launcher_replicas_ready",
            &[],
            // Read at the scrape: a replica is ready from its launcher's line on.
            pool.all().iter().filter(|b| b.serving.load(Ordering::Acquire)).count() as f64,
        );
    e.family("spacecore_launcher_replicas_min", Kind::Gauge, "spec.operations.min_replicas.").sample_f64(
        "spacecore_launcher_replicas_min",
        &[],
        f64::from(a.min_replicas),
    );
    e.family("spacecore_launcher_replicas_max", Kind::Gauge, "spec.operations.max_replicas.").sample_f64(
        "spacecore_launcher_replicas_max",
        &[],
        f64::from(a.max_replicas),
    );
    e.family(
        "spacecore_launcher_scale_events_total",
        Kind::Counter,
        "Replicas added (up) or stopped (down) on load.",
    );
    e.sample_f64("spacecore_launcher_scale_events_total", &[("direction", "up")], n(&state.ups));
    e.sample_f64("spacecore_launcher_scale_events_total", &[("direction", "down")], n(&state.downs));
    e.family(
        "spacecore_launcher_replica_replacements_total",
        Kind::Counter,
        "Replicas that ended unasked and were replaced.",
    )
    .sample_f64("spacecore_launcher_replica_replacements_total", &[], n(&state.replacements));
    e.family(
        "spacecore_launcher_published_connections_total",
        Kind::Counter,
        "Connections accepted on each published port.",
    );
    for (port, c) in published {
        e.sample_f64("spacecore_launcher_published_connections_total", &[("port", port)], n(&c.accepted));
    }
    e.family(
        "spacecore_launcher_published_refused_total",
        Kind::Counter,
        "Connections closed unrelayed: over the limit, or no replica took them.",
    );
    for (port, c) in published {
        e.sample_f64("spacecore_launcher_published_refused_total", &[("port", port)], n(&c.refused));
    }
    e.family(
        "spacecore_launcher_published_refused_per_source_total",
        Kind::Counter,
        "Of the connections refused, those whose client address had its share of the port.",
    );
    for (port, c) in published {
        e.sample_f64(
            "spacecore_launcher_published_refused_per_source_total",
            &[("port", port)],
            n(&c.refused_per_source),
        );
    }
    e.family("spacecore_launcher_published_open_connections", Kind::Gauge, "Connections being relayed now.");
    for (port, c) in published {
        e.sample_f64("spacecore_launcher_published_open_connections", &[("port", port)], n(&c.open));
    }
    e.family(
        "spacecore_launcher_replica_open_connections",
        Kind::Gauge,
        "Connections open through the balancer to each replica.",
    );
    for backend in pool.all() {
        let replica = backend.replica.to_string();
        e.sample_f64(
            "spacecore_launcher_replica_open_connections",
            &[("replica", &replica)],
            n(&backend.open),
        );
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_is_named_after_the_spacecore_and_published_on_loopback() {
        let plan = hac::parse_str(
            "apiVersion = \"vistara.eigenlayer/v1\"\nkind = \"AVSSpaceCore\"\n[metadata]\nname = \"echo\"\n\
             [spec.resources]\ncpu = 1\nmemory = \"64Mi\"\n[spec.networking]\npublish_address = \"0.0.0.0\"\n\
             [spec.networking.inbound_ports]\nHTTP = 80\n[spec.observability]\nmonitoring = \"Prometheus\"\n\
             [spec.operations]\nscaling = \"HorizontalAutoScaling\"\n[spec.deployment]\nimage = \"./x.elf\"\n",
            Path::new("hac.toml"),
            &hac::HostLimits { max_vcpus: 4, max_memory_bytes: 1 << 30 },
        )
        .unwrap();
        assert!(scaled(&plan));
        let replica = replica_plan(plan.clone(), 3, &[("HTTP".into(), 40123)]).unwrap();
        assert_eq!(replica.name, "echo-r3");
        assert!(!scaled(&replica));
        assert_eq!(replica.observability.metrics_address, None);
        assert_eq!(replica.network.publish_address, std::net::IpAddr::from(Ipv4Addr::LOCALHOST));
        assert_eq!(replica.network.inbound_ports[0].host_port, 40123);
        assert_eq!(replica.network.inbound_ports[0].port, 80);
        assert!(replica_plan(plan, 1, &[]).is_err());
        assert_eq!(replica_port("HTTP=8080"), Ok(("HTTP".into(), 8080)));
        assert!(replica_port("HTTP").is_err());
    }

    #[test]
    fn a_replica_serves_from_its_launchers_ready_line_to_a_failure() {
        let json = r#"{"timestamp":"t","level":"info","spacecore":"echo-r2","source":"launcher","message":"ready in 5 us","fields":{"event":"ready","ready_us":5}}"#;
        assert_eq!(readiness(json, "echo-r2"), Some(true));
        assert_eq!(readiness(json, "echo-r1"), None);
        let guest = json.replace("\"source\":\"launcher\"", "\"source\":\"guest\"");
        assert_eq!(readiness(&guest, "echo-r2"), None, "a guest cannot make its replica ready");
        let failed = json.replace("\"event\":\"ready\"", "\"event\":\"guest_failed\"");
        assert_eq!(readiness(&failed, "echo-r2"), Some(false));
        assert_eq!(readiness("[echo-r2 launcher] ready in 4882 us", "echo-r2"), Some(true));
        assert_eq!(
            readiness("[echo-r2 launcher] restart 1 after guest panic (backoff 10 ms)", "echo-r2"),
            Some(false)
        );
        assert_eq!(readiness("[echo-r2 guest] ready in 4882 us", "echo-r2"), None);
        assert_eq!(readiness("[echo-r2 launcher] metrics: x", "echo-r2"), None);
    }

    #[test]
    fn replacements_back_off_to_five_seconds() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(7), Duration::from_secs(5));
        assert_eq!(backoff(40), Duration::from_secs(5));
    }

    #[test]
    fn the_metrics_count_replicas_and_scale_events() {
        let state = State::default();
        state.replicas.store(3, Ordering::Relaxed);
        state.ups.store(2, Ordering::Relaxed);
        let pool = Pool::default();
        pool.add(Arc::new(Backend::new(1, Vec::new())));
        let text =
            render("echo", &hac::Autoscaling::default(), &state, &pool, &[("HTTP".into(), Arc::default())]);
        assert!(text.contains("spacecore_launcher_replicas 3\n"), "{text}");
        assert!(text.contains("spacecore_launcher_scale_events_total{direction=\"up\"} 2\n"), "{text}");
        assert!(text.contains("spacecore_launcher_scale_events_total{direction=\"down\"} 0\n"), "{text}");
        assert!(text.contains("spacecore_launcher_replica_open_connections{replica=\"1\"} 0\n"), "{text}");
        assert!(text.contains("spacecore_launcher_published_open_connections{port=\"HTTP\"} 0\n"), "{text}");
    }
}
