//! The supervisor: boots the guest, watches it (exit, crash, health), and with
//! `spec.failover.strategy` other than `none` boots it again when it fails, as [`policy`]
//! decides.
//!
//! A restart replaces only the VM: a new KVM VM and guest memory, the same image, command line
//! and keystore passwords (handed over again: the handover is per boot), and the same devices,
//! stopped and put in the new VM's windows. So the disk file (with its lock), the network
//! namespace, the tap, the published ports, the relay to the aggregator and the metrics server
//! all live on, and a restarted guest finds its durable state (boot counter, signing history)
//! where it left it.
//!
//! A rolling update (`crate::update`) goes through the same loop: when the update thread has
//! stopped the guest to replace its image, the next boot is of the new image, at once; if that
//! one fails before the update thread found it healthy, the previous image boots again.

pub mod health;
pub mod policy;

use crate::devices::VirtioDevice;
use crate::keystore_password::KeystorePassword;
use crate::metrics::Stats;
use crate::network::forward::ForwardCounters;
use crate::output::{Level, Log};
use crate::update::{AfterRun, Updates};
use crate::vmm::{self, ExitCounts, Outcome, RunOptions, StopSignal};
use health::HealthCheck;
use policy::{Cause, Decision, Policy};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What every boot of the spacecore is made of.
#[derive(Debug)]
pub struct Boots<'a> {
    /// The spec's plan.
    pub plan: &'a hac::Plan,
    /// The image file's path, for messages.
    pub image_path: PathBuf,
    /// The open image, read again from its start at each boot (replaced by a rolling update).
    pub image: std::fs::File,
    /// Whether its pages are shared from the file (`vmm::may_share_image`, asked before the
    /// launcher was confined). An image a rolling update brings is copied: the confined
    /// update thread may not ask.
    pub image_shared: bool,
    /// The guest's command line.
    pub cmdline: String,
    /// The operator keystore's password, if any.
    pub keystore_password: Option<Arc<KeystorePassword>>,
    /// The operator's ECDSA keystore's password, if any.
    pub ecdsa_keystore_password: Option<Arc<KeystorePassword>>,
    /// How each boot is watched.
    pub options: RunOptions,
    /// Health checks, if they run.
    pub health: Option<HealthCheck>,
    /// Whether failed guests may be restarted at all (not with `--until-ready`).
    pub restarts: bool,
    /// The counters the metrics read.
    pub stats: Arc<Stats>,
    /// VM exits, counted across boots.
    pub exits: Arc<ExitCounts>,
    /// The relays to and from the guest (published ports, the aggregator path), whose open
    /// connections are closed when a guest run ends: they led to a guest that is gone.
    pub relays: Vec<Arc<ForwardCounters>>,
    /// Rolling updates, when the launcher takes them (`crate::update`).
    pub updates: Option<Arc<Updates>>,
    /// The snapshot every boot starts from (`--snapshot`), checked to fit the spec and the
    /// image; dropped when a rolling update brings another image.
    pub snapshot: Option<vmm::Snapshot>,
    /// Where the first boot saves a snapshot at the guest's snapshot point (`--save-snapshot`);
    /// the run ends there.
    pub save: Option<vmm::SnapshotTarget>,
}

/// How the supervision ended.
#[derive(Debug)]
pub struct Ending {
    /// The last run's outcome; `None` when a stop request came while the launcher waited to
    /// restart a failed guest (no guest was running).
    pub outcome: Option<Outcome>,
    /// Guest memory resident in host RAM at the end of the last run.
    pub guest_resident_bytes: u64,
    /// Bytes of the last run's image shared from its file (see `vmm::BootConfig::share_image`).
    pub image_shared_bytes: u64,
}

/// What a boot that saved a snapshot reports.
fn saved_line(
    log: &Log,
    dir: &std::path::Path,
    saved: Result<vmm::snapshot::Saved, String>,
    took: Duration,
) -> anyhow::Result<()> {
    let saved = saved.map_err(|why| anyhow::anyhow!("snapshot {}: not saved: {why}", dir.display()))?;
    let kib = saved.memory_bytes / 1024;
    log.event(
        Level::Info,
        format_args!(
            "snapshot: saved to {} ({kib} KiB of guest memory in {} extents); the guest reached its snapshot point {} us after the launcher's start",
            dir.display(),
            saved.extents,
            took.as_micros()
        ),
        &[
            ("event", "snapshot_saved".into()),
            ("memory_kib", kib.into()),
            ("dir", dir.display().to_string().into()),
        ],
    );
    Ok(())
}

/// Boots the guest on `first` (a VM made while the devices were set up) and supervises it,
/// restarting it as the spec's `[spec.failover]` says, until a run ends for good.
/// `started` is when the launcher started (the first boot's reference for `ready in`).
pub fn run(
    mut boots: Boots<'_>,
    first: vmm::Shell,
    mut devices: Vec<Box<dyn VirtioDevice>>,
    log: &Log,
    stop: &StopSignal,
    started: (Instant, u64),
) -> anyhow::Result<Ending> {
    let mut policy = Policy::new(&boots.plan.failover);
    let mut shell = Some(first);
    let mut boot_started = started;
    // The failure that ended the previous run, for the recovery time.
    let mut failure: Option<(Instant, Cause)> = None;
    // During a rolling update: the image it replaces, to boot again if the new one fails.
    let mut previous: Option<(std::fs::File, PathBuf, bool)> = None;
    loop {
        let shell = match shell.take() {
            Some(shell) => shell,
            None => vmm::create(boots.plan.memory_bytes)?,
        };
        let config = vmm::BootConfig {
            name: &boots.plan.name,
            vcpus: boots.plan.vcpus,
            memory_bytes: boots.plan.memory_bytes,
            image: &boots.image_path,
            share_image: boots.image_shared,
            cmdline: &boots.cmdline,
            started: boot_started,
            keystore_password: boots.keystore_password.clone(),
            ecdsa_keystore_password: boots.ecdsa_keystore_password.clone(),
            exits: boots.exits.clone(),
        };
        let start = match &boots.snapshot {
            Some(snapshot) => vmm::Start::Snapshot(snapshot),
            None => vmm::Start::Image(&mut boots.image),
        };
        let mut vm = shell.boot(&config, start, devices)?;
        let save = boots.save.take();
        let save_dir = save.as_ref().map(|target| target.dir().to_owned());
        if let Some(target) = save {
            vm.save_snapshot(target);
        }
        boots.stats.boot();
        if let Some(updates) = &boots.updates {
            updates.started(vm.handle());
        }
        if let Some(check) = &boots.health {
            // Not joined: a check in flight when the run ends would delay the restart by up to
            // an interval. The thread sees the end of its run after that check and returns.
            drop(health::watch(check.clone(), vm.handle(), boots.stats.clone(), log.clone())?);
        }
        let stats = &boots.stats;
        let report = vm.run(log, boot_started.0, boots.options, stop, |ready_at| {
            stats.ready(ready_at.duration_since(boot_started.0));
            if let Some((failed_at, cause)) = failure {
                let took = ready_at.duration_since(failed_at);
                stats.recovered(took);
                let us = took.as_micros() as u64;
                log.event(
                    Level::Info,
                    format_args!("recovered in {us} us after {cause}"),
                    &[
                        ("event", "recovered".into()),
                        ("recovery_us", us.into()),
                        ("cause", cause.label().into()),
                    ],
                );
            }
        })?;
        devices = report.devices;
        if let (Some(dir), Some(saved)) = (&save_dir, report.saved) {
            saved_line(log, dir, saved, report.ended_at.duration_since(boot_started.0))?;
        }
        for relay in &boots.relays {
            relay.close_connections();
        }
        let cause = Cause::of(&report.outcome);
        boots.stats.ended(cause);
        let stop_requested = report.stop_requested || stop.is_raised();
        let ending = Ending {
            outcome: Some(report.outcome.clone()),
            guest_resident_bytes: report.guest_resident_bytes,
            image_shared_bytes: report.image_shared_bytes,
        };
        if let Some(updates) = &boots.updates {
            match updates.ended(stop.is_raised(), &report.outcome.describe()) {
                AfterRun::Supervise => {}
                AfterRun::Boot(new) => {
                    log.event(
                        Level::Info,
                        format_args!(
                            "update: the guest stopped ({}); booting {}",
                            report.outcome.describe(),
                            new.path.display()
                        ),
                        &[("event", "update_boot".into()), ("image", new.path.display().to_string().into())],
                    );
                    let file = std::mem::replace(&mut boots.image, new.file);
                    let path = std::mem::replace(&mut boots.image_path, new.path);
                    let shared = std::mem::replace(&mut boots.image_shared, false);
                    previous = Some((file, path, shared));
                    if let Some(snapshot) = boots.snapshot.take() {
                        log.launcher(format_args!(
                            "snapshot: {} is of the previous image; boots start from the image from now on",
                            snapshot.dir().display()
                        ));
                    }
                    (failure, boot_started) = (None, (Instant::now(), vmm::host_tsc()));
                    continue;
                }
                AfterRun::RollBack => {
                    if let Some((file, path, shared)) = previous.take() {
                        log.event(
                            Level::Warn,
                            format_args!(
                                "update: {} failed ({}); booting {} again",
                                boots.image_path.display(),
                                report.outcome.describe(),
                                path.display()
                            ),
                            &[
                                ("event", "update_rollback".into()),
                                ("image", path.display().to_string().into()),
                            ],
                        );
                        boots.image = file;
                        boots.image_path = path;
                        boots.image_shared = shared;
                    }
                    (failure, boot_started) = (None, (Instant::now(), vmm::host_tsc()));
                    continue;
                }
            }
        }
        if !boots.restarts {
            return Ok(ending);
        }
        match policy.decide(&report.outcome, stop_requested, report.ended_at) {
            Decision::End => return Ok(ending),
            Decision::GiveUp { cause, restarts } => {
                let (max, window) = policy.limit();
                log.event(
                    Level::Error,
                    format_args!(
                        "crash loop: {restarts} restarts within {} (spec.failover.max_restarts = {max}); giving up after {cause}",
                        hac::units::format_duration_ms(window.as_millis() as u64)
                    ),
                    &[("event", "crash_loop".into()), ("restarts", restarts.into()), ("cause", cause.label().into())],
                );
                return Ok(ending);
            }
            Decision::Restart { number, cause, backoff } => {
                let ms = backoff.as_millis() as u64;
                log.event(
                    Level::Warn,
                    report.outcome.describe(),
                    &[("event", "guest_failed".into()), ("cause", cause.label().into())],
                );
                log.event(
                    Level::Warn,
                    format_args!("restart {number} after {cause} (backoff {ms} ms)"),
                    &[
                        ("event", "restart".into()),
                        ("restart", number.into()),
                        ("cause", cause.label().into()),
                        ("backoff_ms", ms.into()),
                    ],
                );
                boots.stats.restart(cause);
                if wait_or_stop(stop, backoff) {
                    log.launcher("stop requested while waiting to restart: the guest stays stopped");
                    return Ok(Ending { outcome: None, ..ending });
                }
                failure = Some((report.ended_at, cause));
                boot_started = (Instant::now(), vmm::host_tsc());
            }
        }
    }
}

/// Waits `backoff`; true if a stop was requested before or meanwhile.
fn wait_or_stop(stop: &StopSignal, backoff: Duration) -> bool {
    if backoff.is_zero() { stop.is_raised() } else { stop.wait(backoff) }
}
