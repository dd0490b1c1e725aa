//! `hac-launch SPEC`: validates a spacecore spec, boots its unikernel on KVM, and supervises it.
//! See `docs/hac-launch.md`.

use anyhow::Context;
use clap::Parser;
use host_launcher::keystore_password::KeystorePassword;
use host_launcher::{attach, check, host, image, output::Log, vmm};
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
    let log = Log::new(&plan.name);
    match run(&cli, &plan, &log, started) {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("hac-launch: {}", one_line(&e));
            ExitCode::from(exit::LAUNCHER_ERROR)
        }
    }
}

fn run(cli: &Cli, plan: &hac::Plan, log: &Log, started: (Instant, u64)) -> anyhow::Result<u8> {
    let store = cli.image_store.clone().map_or_else(Store::open_default, Store::at);
    let image_path = image::resolve(&plan.image, &store)?;
    if cli.check {
        print_plan(cli, plan, image_path)?;
        return Ok(0);
    }
    launch(cli, plan, log, started, image_path)
}

/// `--check`: the plan with its image resolved, as text or JSON.
fn print_plan(cli: &Cli, plan: &hac::Plan, image_path: PathBuf) -> anyhow::Result<()> {
    let resolved = check::ResolvedImage {
        size_bytes: std::fs::metadata(&image_path).map(|m| m.len()).unwrap_or(0),
        sha256: image_store::sha256_file(&image_path)
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
    image_path: PathBuf,
) -> anyhow::Result<u8> {
    for n in &plan.not_enforced {
        log.launcher(format_args!(
            "not enforced yet: {} = {} (arrives with {})",
            n.key, n.value, n.arrives_with
        ));
    }
    let keystore_password = keystore_password(plan, log)?;
    let image = image::open(&image_path)?;
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
    if let Some(path) = &attached.aggregator {
        log.launcher(format_args!("aggregator: guest calls {} -> {}", path.guest_side, path.aggregator));
    }
    let mut cmdline = attached.cmdline.join(" ");
    if !cli.cmdline.is_empty() {
        cmdline = format!("{cmdline} {}", cli.cmdline);
    }
    let config = vmm::BootConfig {
        name: &plan.name,
        vcpus: plan.vcpus,
        memory_bytes: plan.memory_bytes,
        image: &image_path,
        cmdline: &cmdline,
        started,
        keystore_password,
    };
    let vm = shell.boot(&config, image, attached.devices)?;
    let options = vmm::RunOptions {
        until_ready: cli.until_ready,
        ready_timeout: cli.ready_timeout.or(cli.until_ready.then_some(10_000)).map(Duration::from_millis),
        stop_timeout: Duration::from_millis(cli.stop_timeout),
    };
    let report = vm.run(log, started.0, options, &stop)?;
    Ok(final_report(log, report))
}

/// Reads `spec.avs.keystore_password_file`, if set, once, before anything boots. The password
/// is never printed, nor is its length.
fn keystore_password(plan: &hac::Plan, log: &Log) -> anyhow::Result<Option<Arc<KeystorePassword>>> {
    let Some(path) = plan.avs.as_ref().and_then(|avs| avs.keystore_password_file.as_deref()) else {
        return Ok(None);
    };
    let password = KeystorePassword::read(path)?;
    log.launcher(format_args!("keystore password: from {}", path.display()));
    if password.readable_by_others() {
        log.launcher(format_args!(
            "keystore password: {} may be read by its group or other users; chmod 600 it",
            path.display()
        ));
    }
    Ok(Some(Arc::new(password)))
}

/// The end-of-run lines: memory, exits, outcome; returns the exit status.
fn final_report(log: &Log, report: vmm::RunReport) -> u8 {
    let rss = host::rss_kib().unwrap_or(0);
    let guest = report.guest_resident_bytes / 1024;
    log.launcher(format_args!(
        "memory: launcher rss {rss} KiB, guest resident {guest} KiB, overhead {} KiB",
        rss.saturating_sub(guest)
    ));
    let (hypercalls, mmio) = report.exits;
    log.launcher(format_args!("exits: {hypercalls} hypercalls, {mmio} device register accesses"));
    let status = report.outcome.exit_status();
    match report.outcome {
        vmm::Outcome::Exited(0) => log.launcher("guest exited cleanly"),
        outcome => log.launcher(outcome.describe()),
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
        for signal in signals.forever() {
            let name = if signal == SIGTERM { "SIGTERM" } else { "SIGINT" };
            log.launcher(format_args!("{name} received: stopping the guest"));
            stop.raise();
        }
    })?;
    Ok(())
}
