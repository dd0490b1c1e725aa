//! `hac-launch SPEC`: validates a spacecore spec, boots its unikernel on KVM, and supervises it.
//! See `docs/hac-launch.md`.

use anyhow::Context;
use clap::Parser;
use host_launcher::keystore_password::KeystorePassword;
use host_launcher::metrics::{self, Sources, Stats};
use host_launcher::output::{Level, Log};
use host_launcher::supervisor::{self, Boots, health::HealthCheck};
use host_launcher::{attach, check, host, image, jail, vmm};
use image_store::Store;
use spacecore_abi::exit;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Boot a Spacecore unikernel on KVM as a hac.toml spec says.
#[derive(Debug, Parser)]
#[command(name = "hac-launch", version)]
struct Cli {
    /// The spec file (hac.toml format, kind AVSSpaceCore).
    spec: PathBuf,
    /// Validate the spec, resolve the image, print the plan and exit.
    #[arg(long)]
    check: bool,
    /// With --check: print the plan as JSON.
    #[arg(long, requires = "check")]
    json: bool,
    /// Boot, wait for the guest to signal ready, print `ready in N us`, stop it and exit 0.
    #[arg(long)]
    until_ready: bool,
    /// Extra kernel command line for the guest (e.g. `spacecore.selftest=panic`).
    #[arg(long, default_value = "")]
    cmdline: String,
    /// Milliseconds a stopping guest gets to exit before it is stopped.
    #[arg(long, default_value_t = 5000, value_name = "MS")]
    stop_timeout: u64,
    /// Milliseconds to wait for ready before giving up (default: 10000 with --until-ready,
    /// no limit otherwise).
    #[arg(long, value_name = "MS")]
    ready_timeout: Option<u64>,
    /// The local image store (default: $SPACECORE_IMAGE_STORE or ~/.local/share/spacecore/images).
    #[arg(long, value_name = "DIR")]
    image_store: Option<PathBuf>,
    /// Do not confine the launcher (unsafe: it keeps the privileges it was started with, root,
    /// for the life of the guest). Refused with spec.virtualization.criteria.security = "high".
    #[arg(long)]
    no_jail: bool,
    /// The user id the confined launcher runs as (default: the `spacecore` user's).
    #[arg(long, value_name = "UID", requires = "gid")]
    uid: Option<u32>,
    /// The group id the confined launcher runs as (default: the `spacecore` user's group).
    #[arg(long, value_name = "GID", requires = "uid")]
    gid: Option<u32>,
    /// Where the confined launcher's empty root directory is made, as DIR/NAME.
    #[arg(long, value_name = "DIR", default_value = jail::DEFAULT_JAIL_DIR)]
    jail_dir: PathBuf,
}

fn main() -> ExitCode {
    let started = (Instant::now(), vmm::host_tsc());
    let cli = Cli::parse();
    let plan = match hac::parse_file(&cli.spec, &host::limits()) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("hac-launch: {e}");
            return ExitCode::from(exit::BAD_SPEC);
        }
    };
    let observability = &plan.observability;
    // `--check` only reads: it prints to stdout and leaves the log file alone (not even created).
    let log_file = observability.log_file.as_deref().filter(|_| !cli.check);
    let log = match Log::open(&plan.name, observability.log_format, log_file) {
        Ok(log) => log,
        Err(e) => {
            let file = observability.log_file.as_deref().unwrap_or(std::path::Path::new("")).display();
            eprintln!("hac-launch: spec.observability.log_file: cannot open {file}: {e}");
            return ExitCode::from(exit::LAUNCHER_ERROR);
        }
    };
    match run(&cli, &plan, &log, started) {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            let line = one_line(&e);
            if log.format() == hac::LogFormat::Json {
                log.event(Level::Error, &line, &[("event", "launcher_error".into())]);
            }
            eprintln!("hac-launch: {line}");
            ExitCode::from(exit::LAUNCHER_ERROR)
        }
    }
}

fn run(cli: &Cli, plan: &hac::Plan, log: &Log, started: (Instant, u64)) -> anyhow::Result<u8> {
    let store = cli.image_store.clone().map_or_else(Store::open_default, Store::at);
    let image_path = image::resolve(&plan.image, &store)?;
    // Checked once, then hashed and loaded from this open file only.
    let image = image::open(&image_path)?;
    if let hac::ImageSource::Reference(r) = &plan.image
        && r.digest.is_some()
    {
        // A pinned digest is checked against the bytes of the very file every boot reads.
        let sha256 = image_store::sha256_reader(&image)
            .with_context(|| format!("cannot read image {}", image_path.display()))?;
        image::pinned(&plan.image, &sha256, || image_path.display().to_string())?;
        std::io::Seek::rewind(&mut &image)
            .with_context(|| format!("cannot read image {}", image_path.display()))?;
    }
    if cli.check {
        print_plan(cli, plan, image_path, &image)?;
        return Ok(0);
    }
    launch(cli, plan, log, started, (image_path, image))
}

/// `--check`: the plan with its image resolved, as text or JSON.
fn print_plan(cli: &Cli, plan: &hac::Plan, image_path: PathBuf, image: &std::fs::File) -> anyhow::Result<()> {
    let resolved = check::ResolvedImage {
        size_bytes: image.metadata().map(|m| m.len()).unwrap_or(0),
        sha256: image_store::sha256_reader(image)
            .with_context(|| format!("cannot read image {}", image_path.display()))?,
        path: image_path,
    };
    if cli.json {
        let checked = check::Checked { plan, resolved_image: &resolved };
        println!("{}", serde_json::to_string_pretty(&checked)?);
    } else {
        print!("{}", check::text(plan, &resolved));
    }
    Ok(())
}

/// Boots the spacecore and supervises it until it ends; returns the exit status.
fn launch(
    cli: &Cli,
    plan: &hac::Plan,
    log: &Log,
    started: (Instant, u64),
    (image_path, image): (PathBuf, std::fs::File),
) -> anyhow::Result<u8> {
    for n in &plan.not_enforced {
        log.launcher(format_args!(
            "not enforced yet: {} = {} (arrives with {})",
            n.key, n.value, n.arrives_with
        ));
    }
    // Before any thread starts: every thread started from here on is confined.
    let options = jail::Options { no_jail: cli.no_jail, uid: cli.uid, gid: cli.gid };
    let jail = match jail::decide(plan, &options)? {
        jail::Decision::Off(why) => {
            log.launcher(format_args!(
                "confinement: off ({why}): the launcher keeps the privileges it was started with (unsafe; docs/security.md)"
            ));
            None
        }
        jail::Decision::Jail(identity) => Some(jail::prepare(identity, &plan.name, &cli.jail_dir)?),
    };
    let avs = plan.avs.as_ref();
    let keystore_password = read_password(
        avs.and_then(|avs| avs.keystore_password_file.as_deref()),
        KeystorePassword::KEY,
        "keystore password",
        log,
    )?;
    let ecdsa_keystore_password = read_password(
        avs.and_then(|avs| avs.ecdsa_keystore_password_file.as_deref()),
        KeystorePassword::ECDSA_KEY,
        "ECDSA keystore password",
        log,
    )?;
    let stop = Arc::new(vmm::StopSignal::default());
    watch_signals(stop.clone(), log.clone())?;

    // The VM and its memory (KVM's slowest step) and the devices (namespace, tap, disk,
    // published ports) do not depend on each other: set them up side by side.
    let (shell, attached) = std::thread::scope(|s| {
        let attaching = s.spawn(|| attach::attach(plan));
        let shell = vmm::create(plan.memory_bytes);
        let attached = attaching.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (shell, attached)
    });
    let (shell, attached) = (shell?, attached?);
    if let Some(disk) = &attached.disk {
        log.launcher(format_args!("disk: {} ({} bytes)", disk.display(), plan.storage_bytes));
    }
    for p in &attached.published {
        log.launcher(format_args!("published {}: {} -> guest {}", p.name, p.host, p.guest));
    }
    log.launcher(egress_line(plan));
    for relay in &attached.egress {
        log.launcher(format_args!("{}: guest calls {} -> {}", relay.name, relay.guest_side, relay.target));
    }
    let mut cmdline = attached.cmdline.join(" ");
    if !cli.cmdline.is_empty() {
        cmdline = format!("{cmdline} {}", cli.cmdline);
    }
    let (stats, exits) = (Arc::new(Stats::new()), Arc::new(vmm::ExitCounts::default()));
    serve_metrics(plan, log, &attached, &stats, &exits)?;
    let health = health_check(cli, plan, log, &attached);
    let boots = Boots {
        plan,
        image_path: &image_path,
        image,
        cmdline,
        keystore_password,
        ecdsa_keystore_password,
        options: vmm::RunOptions {
            until_ready: cli.until_ready,
            ready_timeout: cli.ready_timeout.or(cli.until_ready.then_some(10_000)).map(Duration::from_millis),
            stop_timeout: Duration::from_millis(cli.stop_timeout),
        },
        health,
        restarts: !cli.until_ready,
        stats,
        exits: exits.clone(),
        relays: attached
            .published
            .iter()
            .map(|p| p.counters.clone())
            .chain(attached.egress.iter().map(|relay| relay.counters.clone()))
            .collect(),
    };
    if let Some(prepared) = jail {
        // Everything a boot needs is open: the rest runs confined, restarts included.
        let budget = jail::Budget {
            vcpus: plan.vcpus,
            memory_bytes: plan.memory_bytes,
            connections: host_launcher::network::forward::MAX_CONNECTIONS as u64
                * attached.published.len() as u64
                + host_launcher::network::outbound::MAX_CONNECTIONS as u64 * attached.egress.len() as u64
                + if plan.observability.metrics_address.is_some() {
                    host_launcher::metrics::server::MAX_CONNECTIONS as u64
                } else {
                    0
                },
            disk_bytes: plan.storage_bytes,
            log_file: plan.observability.log_file.is_some(),
        };
        jail::confine(prepared, &plan.name, &budget, log)?;
    }
    let ending = supervisor::run(boots, shell, attached.devices, log, &stop, started)?;
    Ok(final_report(log, ending, &exits))
}

/// The start-up line saying what the guest may reach beyond its tap (`spec.networking.network_type`
/// and the named endpoints).
fn egress_line(plan: &hac::Plan) -> String {
    let names: Vec<&str> = plan.egress.iter().map(|endpoint| endpoint.name).collect();
    match (plan.network.network_type, names.as_slice()) {
        (hac::NetworkType::Isolated, _) => "egress: isolated: no relay; the guest reaches nothing".into(),
        (_, []) => "egress: private: no endpoint named; the guest reaches nothing".into(),
        (_, names) => format!("egress: private: the guest reaches {} and nothing else", names.join(", ")),
    }
}

/// With Prometheus monitoring: serves `GET /metrics` and prints where.
fn serve_metrics(
    plan: &hac::Plan,
    log: &Log,
    attached: &attach::Attached,
    stats: &Arc<Stats>,
    exits: &Arc<vmm::ExitCounts>,
) -> anyhow::Result<()> {
    let Some(address) = plan.observability.metrics_address else { return Ok(()) };
    let sidecar = plan.observability.sidecar;
    let guest = attach::http_port(plan)
        .map(|port| std::net::SocketAddr::new(plan.network.guest_address.into(), port));
    let sources = Sources {
        name: plan.name.clone(),
        stats: stats.clone(),
        exits: exits.clone(),
        devices: attached.devices.iter().map(|d| (d.device_type(), d.counters())).collect(),
        published: attached.published.iter().map(|p| (p.name.clone(), p.counters.clone())).collect(),
        egress: attached.egress.iter().map(|relay| (relay.name.clone(), relay.counters.clone())).collect(),
        sidecar: guest.filter(|_| sidecar),
    };
    let netns = attached.netns.clone().filter(|_| sidecar);
    let bound = metrics::server::start(address, sources, netns)?;
    let with = if sidecar { " (with the guest's metrics and health)" } else { "" };
    let fields = [("event", "metrics".into()), ("address", bound.to_string().into())];
    log.event(Level::Info, format_args!("metrics: http://{bound}/metrics{with}"), &fields);
    Ok(())
}

/// With a restarting `spec.failover.strategy` and an HTTP port: the health checks, and the
/// line saying how the guest is supervised.
fn health_check(cli: &Cli, plan: &hac::Plan, log: &Log, attached: &attach::Attached) -> Option<HealthCheck> {
    let failover = &plan.failover;
    if !failover.restarts() || cli.until_ready {
        return None;
    }
    log.launcher(format_args!(
        "failover: {}, at most {} restarts within {}, backoff {} to {}",
        failover.strategy,
        failover.max_restarts,
        hac::units::format_duration_ms(failover.restart_window_ms),
        hac::units::format_duration_ms(failover.backoff_initial_ms),
        hac::units::format_duration_ms(failover.backoff_max_ms),
    ));
    let Some(http) = attached.published.iter().find(|p| p.name.eq_ignore_ascii_case("http")) else {
        log.launcher("health: no inbound port named HTTP, so no health checks");
        return None;
    };
    // Through the published port, as clients come: a guest they cannot reach is not healthy.
    let check = HealthCheck {
        target: http.local_address(),
        interval: Duration::from_millis(failover.health_interval_ms),
        timeout: Duration::from_millis(failover.health_timeout_ms),
    };
    log.launcher(format_args!(
        "health: GET {} through the published port {} (guest {}) every {} ms; restart after {} ms without an alive answer",
        metrics::HEALTH_PATH,
        check.target,
        http.guest,
        check.interval.as_millis(),
        check.timeout.as_millis()
    ));
    Some(check)
}

/// Reads a password file of `[spec.avs]` (the spec key `key`, at `path`), if set, once, before
/// anything boots; `what` names it in the start-up lines. The password is never printed, nor is
/// its length.
fn read_password(
    path: Option<&std::path::Path>,
    key: &'static str,
    what: &str,
    log: &Log,
) -> anyhow::Result<Option<Arc<KeystorePassword>>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let password = KeystorePassword::read_as(key, path)?;
    log.launcher(format_args!("{what}: from {}", path.display()));
    if password.readable_by_others() {
        log.launcher(format_args!(
            "{what}: {} may be read by its group or other users; chmod 600 it",
            path.display()
        ));
    }
    Ok(Some(Arc::new(password)))
}

/// The end-of-run lines: memory, exits (of every boot), outcome; returns the exit status.
fn final_report(log: &Log, ending: supervisor::Ending, exits: &vmm::ExitCounts) -> u8 {
    let rss = host::rss_kib().unwrap_or(0);
    let guest = ending.guest_resident_bytes / 1024;
    log.launcher(format_args!(
        "memory: launcher rss {rss} KiB, guest resident {guest} KiB, overhead {} KiB",
        rss.saturating_sub(guest)
    ));
    let (hypercalls, mmio) = exits.get();
    log.launcher(format_args!("exits: {hypercalls} hypercalls, {mmio} device register accesses"));
    let Some(outcome) = ending.outcome else {
        log.launcher("stopped (no guest was running)");
        return 0;
    };
    let status = outcome.exit_status();
    let fields = [("event", "guest_ended".into()), ("status", status.into())];
    match outcome {
        vmm::Outcome::Exited(0) => log.event(Level::Info, "guest exited cleanly", &fields),
        vmm::Outcome::Stopped => log.event(Level::Info, outcome.describe(), &fields),
        outcome => log.event(Level::Error, outcome.describe(), &fields),
    }
    status
}

/// The error and its causes on one line, each cause once: most of the launcher's errors
/// already quote their cause in their own message.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain().map(ToString::to_string) {
        if !line.contains(&cause) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&cause);
        }
    }
    line
}

/// SIGTERM and SIGINT ask the guest to stop cleanly.
fn watch_signals(stop: Arc<vmm::StopSignal>, log: Log) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).context("cannot install signal handlers")?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        host_launcher::jail::enter(host_launcher::jail::Kind::Control);
        for signal in signals.forever() {
            let name = if signal == SIGTERM { "SIGTERM" } else { "SIGINT" };
            log.launcher(format_args!("{name} received: stopping the guest"));
            stop.raise();
        }
    })?;
    Ok(())
}
