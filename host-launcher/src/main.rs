//! `hac-launch SPEC`: validates a spacecore spec, boots its unikernel on KVM, and supervises it.
//! See `docs/hac-launch.md`.

use anyhow::Context;
use clap::Parser;
use host_launcher::launch::Launch;
use host_launcher::output::{Level, Log};
use host_launcher::{attach, capacity, check, host, image, jail, scale, update, vmm};
use image_store::Store;
use spacecore_abi::exit;
use std::path::PathBuf;
use std::process::ExitCode;
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
    /// vCPUs the host's spacecores may have together per host CPU.
    #[arg(long, value_name = "RATIO", default_value_t = capacity::Overcommit::DEFAULT_CPU, value_parser = ratio)]
    cpu_overcommit: f64,
    /// Guest memory the host's spacecores may have together per byte of host memory.
    #[arg(long, value_name = "RATIO", default_value_t = capacity::Overcommit::DEFAULT_MEMORY, value_parser = ratio)]
    memory_overcommit: f64,
    /// Where the confined launcher's empty root directory is made, as DIR/NAME.
    #[arg(long, value_name = "DIR", default_value = jail::DEFAULT_JAIL_DIR)]
    jail_dir: PathBuf,
    /// Rolling update: resolve the spec's image now and hand it to the launcher running this
    /// spacecore, which replaces its guest's image (rolling back if the new one is not healthy
    /// in time); prints the progress and exits 0 done, 1 refused, 3 rolled back, 4 failed.
    #[arg(long, conflicts_with_all = ["check", "until_ready"])]
    update: bool,
    /// With --update: milliseconds the new image has from its boot to a healthy answer.
    #[arg(long, value_name = "MS", requires = "update", default_value_t = update::DEFAULT_DEADLINE.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..=update::MAX_DEADLINE_MS))]
    update_deadline: u64,
    /// Boot the spacecore once, save a snapshot of it into DIR at its snapshot point (devices
    /// set up, nothing of its disk read, no key loaded), stop it there and exit 0. Start from
    /// it with --snapshot.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["check", "update", "until_ready", "snapshot"])]
    save_snapshot: Option<PathBuf>,
    /// Start the spacecore from the snapshot in DIR (saved by --save-snapshot from the same
    /// spec and image file) instead of booting its image: the first boot and every restart.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["check", "update"])]
    snapshot: Option<PathBuf>,
    /// Internal: run as replica N of a scaled spacecore (`NAME-rN`), started by the launcher
    /// that balances between the replicas.
    #[arg(long, hide = true, value_name = "N", conflicts_with_all = ["check", "update"])]
    replica: Option<u32>,
    /// Internal: with --replica, the loopback port of the inbound port NAME.
    #[arg(long, hide = true, value_name = "NAME=PORT", requires = "replica", value_parser = scale::replica_port)]
    replica_port: Vec<(String, u16)>,
}

/// An overcommit ratio: a number above 0, at most 1000.
fn ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 1000.0 => Ok(r),
        _ => Err(format!("{text:?}: expected a ratio above 0 and at most 1000, such as 4 or 1.5")),
    }
}

fn main() -> ExitCode {
    let started = (Instant::now(), vmm::host_tsc());
    // One malloc arena for all threads: each further arena (glibc makes one per thread that
    // allocates, up to 8 per CPU) keeps tens of KiB resident, about 180 KiB in all per
    // launcher, multiplied by every spacecore on the host. The threads allocate little, and
    // off their hot paths; small blocks still come from each thread's own cache.
    // SAFETY: mallopt only sets an allocator parameter; no thread has started yet.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let cli = Cli::parse();
    let plan = match hac::parse_file(&cli.spec, &host::limits()) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("hac-launch: {e}");
            return ExitCode::from(exit::BAD_SPEC);
        }
    };
    // A replica of a scaled spacecore: the same spec as one instance of its own (docs/hac-launch.md, Scaling).
    let plan = match cli.replica {
        Some(number) => match scale::replica_plan(plan, number, &cli.replica_port) {
            Ok(plan) => plan,
            Err(e) => {
                eprintln!("hac-launch: {e}");
                return ExitCode::from(exit::BAD_SPEC);
            }
        },
        None => plan,
    };
    let observability = &plan.observability;
    // `--check` only reads: it prints to stdout and leaves the log file alone (not even created).
    // Nor does `--update`: the running launcher logs the update.
    let log_file = observability.log_file.as_deref().filter(|_| !cli.check && !cli.update);
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
            // A spacecore that may not be replicated: the spec asks for what the image or the
            // spec itself forbids; nothing was started.
            if e.downcast_ref::<scale::Refused>().is_some() {
                return ExitCode::from(exit::BAD_SPEC);
            }
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
    if scale::scaled(plan) {
        // Before anything boots (and with --check): no disk, and a stateless AVS.
        scale::check(plan, &store, &image_path, &image)?;
    }
    if cli.check {
        print_plan(cli, plan, image_path, &image)?;
        return Ok(0);
    }
    if cli.update {
        if let Some(why) = update_refusal(plan) {
            println!("hac-launch: update {}: refused: {why}", plan.name);
            return Ok(update::client::exit_status("refused"));
        }
        return request_update(cli, plan, &image_path, &image);
    }
    if scale::scaled(plan) && !cli.until_ready && cli.save_snapshot.is_none() {
        return scale::run(plan, log, &replica_parent(cli, &store)?);
    }
    let launch = Launch {
        extra_cmdline: cli.cmdline.clone(),
        options: vmm::RunOptions {
            // A boot that saves a snapshot ends at its snapshot point, or at ready if the image
            // has none.
            until_ready: cli.until_ready || cli.save_snapshot.is_some(),
            ready_timeout: cli.ready_timeout.or(cli.until_ready.then_some(10_000)).map(Duration::from_millis),
            stop_timeout: Duration::from_millis(cli.stop_timeout),
        },
        jail: jail::Options { no_jail: cli.no_jail, uid: cli.uid, gid: cli.gid },
        jail_dir: cli.jail_dir.clone(),
        overcommit: capacity::Overcommit { cpu: cli.cpu_overcommit, memory: cli.memory_overcommit },
        watch_parent: cli.replica.is_some(),
        snapshot: cli.snapshot.clone(),
        save_snapshot: cli.save_snapshot.clone(),
    };
    launch.run(plan, log, started, image_path, image)
}

/// How a scaled spacecore's launcher starts its replicas: this executable, on the same spec,
/// with the options that concern a launch.
fn replica_parent(cli: &Cli, store: &Store) -> anyhow::Result<scale::Parent> {
    let mut args: Vec<std::ffi::OsString> = vec!["--image-store".into(), store.root().into()];
    let mut option = |name: &str, value: String| {
        args.push(name.into());
        args.push(value.into());
    };
    option("--stop-timeout", cli.stop_timeout.to_string());
    if let Some(ms) = cli.ready_timeout {
        option("--ready-timeout", ms.to_string());
    }
    if !cli.cmdline.is_empty() {
        option("--cmdline", cli.cmdline.clone());
    }
    if let (Some(uid), Some(gid)) = (cli.uid, cli.gid) {
        option("--uid", uid.to_string());
        option("--gid", gid.to_string());
    }
    option("--cpu-overcommit", cli.cpu_overcommit.to_string());
    option("--memory-overcommit", cli.memory_overcommit.to_string());
    option("--jail-dir", cli.jail_dir.display().to_string());
    if cli.no_jail {
        args.push("--no-jail".into());
    }
    if let Some(dir) = &cli.snapshot {
        args.extend(["--snapshot".into(), dir.clone().into_os_string()]);
    }
    Ok(scale::Parent {
        exe: std::env::current_exe().context("cannot find the hac-launch executable")?,
        spec: cli.spec.clone(),
        args,
        // The replica's own stop timeout, and room for its launcher to end.
        stop_timeout: Duration::from_millis(cli.stop_timeout) + Duration::from_secs(5),
    })
}

/// Why the spec does not let `--update` switch its running spacecore's image, if it does not:
/// `spec.operations.updateStrategy` decides (`RollingUpdate` switches in place; `Recreate`, the
/// default, means a restart), and a scaled spacecore's image changes with its parent's restart.
fn update_refusal(plan: &hac::Plan) -> Option<String> {
    if scale::scaled(plan) {
        return Some(
            "a scaled spacecore (HorizontalAutoScaling) takes a new image when its launcher restarts; \
             its replicas are not updated one by one"
                .into(),
        );
    }
    (plan.operations.update_strategy != hac::UpdateStrategy::RollingUpdate).then(|| {
        "spec.operations.updateStrategy is \"Recreate\" (the default): restart the launcher to run the new \
         image, or set updateStrategy = \"RollingUpdate\" to switch it in place"
            .into()
    })
}

/// `--update`: hands the image, opened and checked here (outside the confined launcher), to the
/// running launcher of the spec's spacecore, and prints its answer; the exit status is the
/// outcome's ([`update::client::exit_status`]).
fn request_update(
    cli: &Cli,
    plan: &hac::Plan,
    image_path: &std::path::Path,
    image: &std::fs::File,
) -> anyhow::Result<u8> {
    let sha256 = image_store::sha256_reader(image)
        .with_context(|| format!("cannot read image {}", image_path.display()))?;
    let request =
        update::Request { image: image_path.display().to_string(), sha256, deadline_ms: cli.update_deadline };
    let socket = update::socket_path(&attach::state_dir(), &plan.name);
    println!(
        "hac-launch: update {}: {} (sha256:{}) via {}",
        plan.name,
        request.image,
        request.sha256,
        socket.display()
    );
    let outcome = update::client::run(&socket, &request, image, |reply| {
        println!("hac-launch: update {}: {}", plan.name, reply.message);
    })
    .map_err(anyhow::Error::msg)?;
    Ok(update::client::exit_status(&outcome))
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
