//! The launch sequence, from a validated plan and its opened image to the end of the supervised
//! guest: confinement decided, the keystore passwords read, signals watched, the VM and the
//! devices set up side by side, metrics and health checks started, the process confined, the
//! supervisor run, the final report. `hac-launch`'s `main.rs` keeps the command line, the spec,
//! the log, `--check` and the exit statuses.

use crate::keystore_password::KeystorePassword;
use crate::metrics::{self, Sources, Stats};
use crate::output::{Level, Log};
use crate::supervisor::{self, Boots, health::HealthCheck};
use crate::{attach, capacity, host, jail, update, vmm};
use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the command line adds to a plan for a launch.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Extra kernel command line for the guest, after the launcher's own.
    pub extra_cmdline: String,
    /// Boot, ready, stop (`--until-ready`), the ready and stop timeouts.
    pub options: vmm::RunOptions,
    /// Whether and as whom the launcher is confined.
    pub jail: jail::Options,
    /// Where the confined launcher's empty root is made, as DIR/NAME.
    pub jail_dir: PathBuf,
    /// How far the host's CPUs and memory may be promised to its spacecores.
    pub overcommit: capacity::Overcommit,
    /// A replica of a scaled spacecore (`--replica`): its standard input is a pipe from the
    /// launcher that balances between the replicas, and its end (that launcher gone, even
    /// killed) stops the guest as SIGTERM does ([`crate::scale`]).
    pub watch_parent: bool,
    /// Start every boot from the snapshot in this directory (`--snapshot`).
    pub snapshot: Option<PathBuf>,
    /// Boot once, save a snapshot into this directory at the guest's snapshot point and end
    /// (`--save-snapshot`).
    pub save_snapshot: Option<PathBuf>,
}

impl Launch {
    /// Boots the spacecore of `plan` from `image` (the file at `image_path`, opened and checked)
    /// and supervises it until it ends; returns the exit status. `started` is when the process
    /// started (instant and TSC), for the boot-to-ready figure.
    pub fn run(
        &self,
        plan: &hac::Plan,
        log: &Log,
        started: (Instant, u64),
        image_path: PathBuf,
        image: std::fs::File,
    ) -> anyhow::Result<u8> {
        // While the launcher may still `stat`: whether the image's pages can be shared.
        let image_shared = vmm::may_share_image(&image);
        let (snapshot, save) = self.snapshots(plan, log, &image)?;
        // The NIC's MAC address is the spacecore's own, or the one a snapshot's guest already
        // knows: alone in the spacecore's namespace, it clashes with nothing.
        let guest_mac =
            snapshot.as_ref().and_then(vmm::Snapshot::nic_mac).unwrap_or_else(|| attach::mac(&plan.name));
        // First: a spacecore the host has no room for sets nothing up.
        let running = attach::state_dir().join("running");
        capacity::reserve(&running, &plan.name, plan.vcpus, plan.memory_bytes, self.overcommit)?;
        for n in &plan.not_enforced {
            log.launcher(format_args!(
                "not enforced yet: {} = {} (arrives with {})",
                n.key, n.value, n.arrives_with
            ));
        }
        // Before any thread starts: every thread started from here on is confined.
        let jail = match jail::decide(plan, &self.jail)? {
            jail::Decision::Off(why) => {
                log.launcher(format_args!(
                    "confinement: off ({why}): the launcher keeps the privileges it was started with (unsafe; docs/security.md)"
                ));
                None
            }
            jail::Decision::Jail(identity) => Some(jail::prepare(identity, &plan.name, &self.jail_dir)?),
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
        if self.watch_parent {
            watch_parent(stop.clone(), log.clone())?;
        }

        // The VM and its memory (KVM's slowest step) and the devices (namespace, tap, disk,
        // published ports) do not depend on each other: set them up side by side.
        let (shell, attached) = std::thread::scope(|s| {
            let attaching = s.spawn(|| attach::attach(plan, guest_mac));
            let shell = vmm::create(plan.memory_bytes);
            let attached = attaching.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (shell, attached)
        });
        let (shell, attached) = (shell?, attached?);
        if let Some(disk) = &attached.disk {
            log.launcher(format_args!("disk: {} ({} bytes)", disk.display(), plan.storage_bytes));
        }
        for p in &attached.published {
            log.event(
                Level::Info,
                format_args!("published {}: {} -> guest {}", p.name, p.host, p.guest),
                &[
                    ("event", "published".into()),
                    ("port", p.name.clone().into()),
                    ("address", p.host.to_string().into()),
                    ("guest", p.guest.to_string().into()),
                ],
            );
        }
        log.launcher(egress_line(plan));
        for relay in &attached.egress {
            log.launcher(format_args!(
                "{}: guest calls {} -> {}",
                relay.name, relay.guest_side, relay.target
            ));
        }
        let mut cmdline = attached.cmdline.join(" ");
        if !self.extra_cmdline.is_empty() {
            cmdline = format!("{cmdline} {}", self.extra_cmdline);
        }
        let (stats, exits) = (Arc::new(Stats::new()), Arc::new(vmm::ExitCounts::default()));
        serve_metrics(plan, log, &attached, &stats, &exits)?;
        let health = health_check(self.options.until_ready, plan, log, &attached);
        let updates = if self.options.until_ready {
            None
        } else {
            serve_updates(plan, log, &attached, &stats, self.options)
        };
        let boots = Boots {
            plan,
            image_path,
            image_shared,
            image,
            cmdline,
            keystore_password,
            ecdsa_keystore_password,
            options: self.options,
            health,
            restarts: !self.options.until_ready,
            stats,
            exits: exits.clone(),
            relays: attached
                .published
                .iter()
                .map(|p| p.counters.clone())
                .chain(attached.egress.iter().map(|relay| relay.counters.clone()))
                .collect(),
            updates,
            snapshot,
            save,
        };
        let confined = jail.is_some();
        if let Some(prepared) = jail {
            // Everything a boot needs is open: the rest runs confined, restarts included.
            let budget = jail::Budget {
                vcpus: plan.vcpus,
                memory_bytes: plan.memory_bytes,
                connections: crate::network::forward::MAX_CONNECTIONS as u64
                    * attached.published.len() as u64
                    + crate::network::outbound::MAX_CONNECTIONS as u64 * attached.egress.len() as u64
                    + if plan.observability.metrics_address.is_some() {
                        crate::metrics::server::MAX_CONNECTIONS as u64
                    } else {
                        0
                    },
                disk_bytes: plan.storage_bytes,
                // A snapshot's memory file holds at most the guest's memory.
                snapshot_bytes: if self.save_snapshot.is_some() {
                    plan.memory_bytes.saturating_add(vmm::snapshot::MAX_STATE_BYTES)
                } else {
                    0
                },
                log_file: plan.observability.log_file.is_some(),
            };
            jail::confine(prepared, &plan.name, &budget, log)?;
        }
        let ending = supervisor::run(boots, shell, attached.devices, log, &stop, started)?;
        if !confined {
            // A confined launcher can remove no file: its reservation lapses with its process.
            capacity::release(&running);
        }
        Ok(final_report(log, ending, &exits))
    }

    /// The snapshot to start from, checked to fit the spec and its image, and the snapshot to
    /// save, its files opened: both before the launcher is confined.
    fn snapshots(
        &self,
        plan: &hac::Plan,
        log: &Log,
        image: &std::fs::File,
    ) -> anyhow::Result<(Option<vmm::Snapshot>, Option<vmm::SnapshotTarget>)> {
        let snapshot = match &self.snapshot {
            None => None,
            Some(dir) => {
                let snapshot = vmm::Snapshot::open(dir)?;
                let image = vmm::ImageId::of(image).context("cannot read the image's metadata")?;
                snapshot.fits(plan.memory_bytes, plan.vcpus, &image)?;
                log.launcher(format_args!("snapshot: every boot starts from {}", dir.display()));
                Some(snapshot)
            }
        };
        let save =
            self.save_snapshot.as_deref().map(|dir| vmm::SnapshotTarget::create(dir, image)).transpose()?;
        Ok((snapshot, save))
    }
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

/// Rolling updates (`hac-launch --update`): binds the control socket and starts the update
/// thread in the spacecore's namespace, before the launcher confines itself. Without them (the
/// socket cannot be bound) the spacecore runs all the same, and a line says why.
fn serve_updates(
    plan: &hac::Plan,
    log: &Log,
    attached: &attach::Attached,
    stats: &Arc<Stats>,
    options: vmm::RunOptions,
) -> Option<Arc<update::Updates>> {
    let path = update::socket_path(&attach::state_dir(), &plan.name);
    let listener = match update::server::listen(&path) {
        Ok(listener) => listener,
        Err(why) => {
            log.launcher(format_args!(
                "update: no control socket ({why}); `hac-launch --update` cannot reach this spacecore"
            ));
            return None;
        }
    };
    let updates = Arc::new(update::Updates::default());
    let context = update::server::Context {
        updates: updates.clone(),
        log: log.clone(),
        stats: stats.clone(),
        published: attached.published.iter().map(|p| p.counters.clone()).collect(),
        guest_http: attach::http_port(plan)
            .map(|port| std::net::SocketAddr::new(plan.network.guest_address.into(), port)),
        signer: plan.avs.is_some(),
        memory_bytes: plan.memory_bytes,
        drain: options.stop_timeout,
    };
    if let Err(e) = update::server::start(listener, context, attached.netns.clone()) {
        log.launcher(format_args!(
            "update: cannot start the update thread ({e}); `hac-launch --update` cannot reach this spacecore"
        ));
        return None;
    }
    log.event(
        Level::Info,
        format_args!("update: `hac-launch --update SPEC` reaches this launcher at {}", path.display()),
        &[("event", "update_socket".into()), ("path", path.display().to_string().into())],
    );
    Some(updates)
}

/// With a restarting `spec.failover.strategy` and an HTTP port: the health checks, and the
/// line saying how the guest is supervised.
fn health_check(
    until_ready: bool,
    plan: &hac::Plan,
    log: &Log,
    attached: &attach::Attached,
) -> Option<HealthCheck> {
    let failover = &plan.failover;
    if !failover.restarts() || until_ready {
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
        relay: Some(http.counters.clone()),
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
        "memory: launcher rss {rss} KiB, guest resident {guest} KiB, overhead {} KiB; image {}",
        rss.saturating_sub(guest),
        match ending.image_shared_bytes / 1024 {
            0 => "copied".to_string(),
            kib => format!("{kib} KiB shared from its file"),
        }
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
        vmm::Outcome::Stopped | vmm::Outcome::Saved => log.event(Level::Info, outcome.describe(), &fields),
        outcome => log.event(Level::Error, outcome.describe(), &fields),
    }
    status
}

/// A replica's standard input ends when the launcher that started it is gone: the guest is
/// then stopped as on SIGTERM. (The parent-death signal the replica is started with does not
/// survive the change of user when the launcher confines itself; this read does.)
fn watch_parent(stop: Arc<vmm::StopSignal>, log: Log) -> anyhow::Result<()> {
    std::thread::Builder::new().name("parent".into()).spawn(move || {
        jail::enter(jail::Kind::Control);
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: read(2) into a buffer of this thread of the length given.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 || (n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted) {
                continue;
            }
            log.launcher("the scaling launcher is gone: stopping the guest");
            stop.raise();
            return;
        }
    })?;
    Ok(())
}

/// SIGTERM and SIGINT ask the guest to stop cleanly.
fn watch_signals(stop: Arc<vmm::StopSignal>, log: Log) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT]).context("cannot install signal handlers")?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        jail::enter(jail::Kind::Control);
        for signal in signals.forever() {
            let name = if signal == SIGTERM { "SIGTERM" } else { "SIGINT" };
            log.launcher(format_args!("{name} received: stopping the guest"));
            stop.raise();
        }
    })?;
    Ok(())
}
