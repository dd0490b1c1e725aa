//! Rolling updates of a running spacecore's image: `hac-launch --update SPEC`.
//!
//! The running launcher is confined (an empty root, no capabilities, seccomp): it can open no
//! file, so it cannot resolve a new image itself. The update command does that outside, as the
//! launch does: it parses the spec, resolves `spec.deployment.image` in the image store, opens
//! the file with the launch's checks and verifies a pinned digest on that open file; then it
//! connects to the launcher's **control socket**, `<state>/control/NAME.sock` (a Unix socket the
//! launcher bound before it confined itself, in a directory only root may enter), and passes
//! the open image as a descriptor (`SCM_RIGHTS`) with a one-line JSON request. The launcher
//! reads the image through that descriptor only ([`server`]).
//!
//! The switch, in the launcher ([`server`] and the supervisor's hooks, [`Updates`]), is the
//! same for every spacecore, and the only honest one for a signer (a key on one disk, one lock,
//! one signing history): two guests never run at once.
//!
//! 1. the new image is hashed and loaded into scratch memory: an image that cannot boot is
//!    refused before anything is touched;
//! 2. the published ports **hold** new connections: they are accepted and read, but wait in the
//!    relay instead of reaching a guest ([`crate::network::relay`]);
//! 3. connections already relayed to the guest are given until `--stop-timeout` to finish;
//! 4. the guest is stopped gracefully (the `STOP` event, as on SIGTERM: it finishes its task
//!    and flushes its disk, signing history included) and its VM goes;
//! 5. the new image boots on the same devices (disk, lock, tap, ports), and must answer its
//!    health endpoint (and, with `[spec.avs]`, its signer's, `200`: key loaded) within the
//!    deadline, counted from its boot;
//! 6. then the held connections go on to it: **done**. Otherwise the new guest is stopped and
//!    the old image boots again on the same disk (**rolled back**), and the held connections go
//!    to it once it answers. Should the old image fail too, the update **failed** and the
//!    supervisor's own `[spec.failover]` rules take over.
//!
//! Each outcome is logged (text and JSON events `update_*`) and counted
//! (`spacecore_launcher_updates_total{outcome}`, `spacecore_launcher_update_hold_seconds`).

pub mod client;
pub mod server;

use crate::vmm::RunHandle;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The deadline of the new image (boot to a healthy answer) when the command gives none.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
/// The longest deadline a request may give (an hour); a longer one is taken as this.
pub const MAX_DEADLINE_MS: u64 = 3_600_000;
/// Longest request line.
const MAX_REQUEST: usize = 4096;

/// The control socket of the spacecore `name` in the state directory `state`.
pub fn socket_path(state: &Path, name: &str) -> PathBuf {
    state.join("control").join(format!("{name}.sock"))
}

/// What `hac-launch --update` sends, as one JSON line, with the image's descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The image's path, for messages.
    pub image: String,
    /// Its sha256, as the command computed it on the descriptor it passes.
    pub sha256: String,
    /// Boot to healthy, in milliseconds.
    pub deadline_ms: u64,
}

/// One line of the launcher's answer: progress, and last the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// What it says.
    pub message: String,
    /// On the last line: `done`, `rolled_back`, `failed` or `refused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// The image of an update, received by the launcher.
#[derive(Debug)]
pub struct NewImage {
    /// The open image.
    pub file: File,
    /// Its path, for messages.
    pub path: PathBuf,
}

/// A run of the guest in an update's phase, as the update thread watches it.
#[derive(Debug, Clone)]
pub struct Run {
    /// The run's number (runs are counted from 1 by [`Updates::started`]).
    pub number: u64,
    /// Its handle: ready, ended, end it.
    pub handle: RunHandle,
}

/// Where an update is.
#[derive(Debug, Clone, Default)]
pub enum Phase {
    /// No update.
    #[default]
    Idle,
    /// A request claimed the update; its image is being checked.
    Preparing,
    /// The old guest is being stopped; the new image waits in [`Updates`].
    Stopping,
    /// The new image boots and must become healthy (its run, once booted).
    Trial(Option<Run>),
    /// The new image failed; the old one boots again (its run, once booted).
    Rollback(Option<Run>),
    /// The update cannot complete: why.
    Failed(String),
}

/// What the supervisor does after a run ends or a boot fails.
#[derive(Debug)]
pub enum AfterRun {
    /// Nothing to do with an update: the failover rules decide.
    Supervise,
    /// Boot this new image now (an update): no backoff, no restart counted.
    Boot(NewImage),
    /// The new image failed: boot the previous image again now.
    RollBack,
}

#[derive(Debug, Default)]
struct Inner {
    phase: Phase,
    /// The run in progress, if a guest runs.
    run: Option<Run>,
    runs: u64,
    pending: Option<NewImage>,
    /// How the new image's run ended when it failed before it was found healthy.
    trial_ended: Option<String>,
}

/// What the supervisor and the update thread share.
#[derive(Debug, Default)]
pub struct Updates {
    inner: Mutex<Inner>,
    changed: Condvar,
}

impl Updates {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The supervisor booted a guest; its run is watched as the update's phase says.
    pub fn started(&self, handle: RunHandle) {
        let mut inner = self.lock();
        inner.runs += 1;
        let run = Run { number: inner.runs, handle };
        match &mut inner.phase {
            Phase::Trial(slot @ None) | Phase::Rollback(slot @ None) => *slot = Some(run.clone()),
            _ => {}
        }
        inner.run = Some(run);
        self.changed.notify_all();
    }

    /// The supervisor's run ended, as `outcome` says (for messages); `stop_raised` says whether
    /// the launcher was told to stop (SIGTERM, SIGINT), which ends any update in progress.
    pub fn ended(&self, stop_raised: bool, outcome: &str) -> AfterRun {
        let mut inner = self.lock();
        inner.run = None;
        let phase = std::mem::take(&mut inner.phase);
        let (phase, next) = match phase {
            Phase::Idle => (Phase::Idle, AfterRun::Supervise),
            // The claimed update finds no guest to replace when it begins.
            Phase::Preparing => (Phase::Preparing, AfterRun::Supervise),
            Phase::Failed(why) => (Phase::Failed(why), AfterRun::Supervise),
            _ if stop_raised => {
                inner.pending = None;
                (Phase::Failed("the launcher was told to stop".into()), AfterRun::Supervise)
            }
            Phase::Stopping => match inner.pending.take() {
                Some(image) => (Phase::Trial(None), AfterRun::Boot(image)),
                None => (Phase::Failed("no image to boot".into()), AfterRun::Supervise),
            },
            Phase::Trial(_) => {
                inner.trial_ended = Some(outcome.to_owned());
                (Phase::Rollback(None), AfterRun::RollBack)
            }
            Phase::Rollback(_) => {
                (Phase::Failed("the previous image failed too".into()), AfterRun::Supervise)
            }
        };
        inner.phase = phase;
        self.changed.notify_all();
        next
    }

    /// The update thread: claims the update for one request, if none is in progress and a
    /// guest runs. The claimer ends it with [`Self::finish`], whatever happens.
    fn claim(&self) -> Result<(), String> {
        let mut inner = self.lock();
        match (&inner.phase, &inner.run) {
            (Phase::Idle, Some(_)) => {
                inner.phase = Phase::Preparing;
                Ok(())
            }
            (Phase::Idle, None) => Err("no guest is running (the launcher is waiting to restart it)".into()),
            _ => Err("another update is in progress".into()),
        }
    }

    /// The update thread, once it claimed the update: begins it with `image` if a guest still
    /// runs; returns that guest's run, to stop it. The relays are held by the caller first.
    fn begin(&self, image: NewImage) -> Result<Run, String> {
        let mut inner = self.lock();
        if !matches!(inner.phase, Phase::Preparing) {
            return Err("the update was not claimed".into());
        }
        let Some(run) = inner.run.clone() else {
            return Err("the guest ended meanwhile (the launcher is restarting it)".into());
        };
        inner.pending = Some(image);
        inner.phase = Phase::Stopping;
        Ok(run)
    }

    /// The update thread: waits (at most `limit`) until the phase has a run numbered above
    /// `after`, or has failed; returns the phase then.
    fn next_phase(&self, after: u64, limit: Duration) -> Phase {
        let inner = self.lock();
        let (inner, _) = self
            .changed
            .wait_timeout_while(inner, limit, |inner| match &inner.phase {
                Phase::Trial(Some(run)) | Phase::Rollback(Some(run)) => run.number <= after,
                Phase::Failed(_) | Phase::Idle => false,
                Phase::Preparing | Phase::Stopping | Phase::Trial(None) | Phase::Rollback(None) => true,
            })
            .unwrap_or_else(|p| p.into_inner());
        inner.phase.clone()
    }

    /// The update thread: how the new image's run ended, if it failed before it was found
    /// healthy.
    fn trial_ended(&self) -> Option<String> {
        self.lock().trial_ended.clone()
    }

    /// The update thread: the update is over (whatever its outcome); the next may begin.
    fn finish(&self) {
        let mut inner = self.lock();
        inner.phase = Phase::Idle;
        inner.pending = None;
        inner.trial_ended = None;
        self.changed.notify_all();
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.lock().phase.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> NewImage {
        NewImage { file: tempfile::tempfile().unwrap(), path: "new.elf".into() }
    }

    #[test]
    fn an_update_stops_the_guest_boots_the_new_image_and_rolls_back_when_it_fails() {
        let updates = Updates::default();
        assert!(updates.claim().unwrap_err().contains("no guest"), "no guest yet");
        updates.started(RunHandle::for_tests(1));
        assert!(matches!(updates.ended(false, ""), AfterRun::Supervise), "no update: the failover rules");
        updates.started(RunHandle::for_tests(1));
        assert!(updates.begin(image()).unwrap_err().contains("not claimed"));
        updates.claim().unwrap();
        assert!(updates.claim().unwrap_err().contains("in progress"), "one update at a time");
        let old = updates.begin(image()).unwrap();
        assert_eq!(old.number, 2);
        assert!(updates.claim().unwrap_err().contains("in progress"));
        // The old guest stopped: the new image boots.
        assert!(
            matches!(updates.ended(false, ""), AfterRun::Boot(image) if image.path == Path::new("new.elf"))
        );
        assert!(matches!(updates.next_phase(2, Duration::ZERO), Phase::Trial(None)));
        updates.started(RunHandle::for_tests(1));
        assert!(matches!(updates.next_phase(2, Duration::ZERO), Phase::Trial(Some(Run { number: 3, .. }))));
        // It failed: the old one boots again.
        assert!(matches!(updates.ended(false, "guest panicked: p"), AfterRun::RollBack));
        assert_eq!(updates.trial_ended().as_deref(), Some("guest panicked: p"));
        updates.started(RunHandle::for_tests(1));
        assert!(matches!(
            updates.next_phase(3, Duration::ZERO),
            Phase::Rollback(Some(Run { number: 4, .. }))
        ));
        updates.finish();
        assert!(matches!(updates.ended(false, ""), AfterRun::Supervise), "after the update: failover rules");
    }

    #[test]
    fn a_failed_rollback_and_a_stop_request_end_the_update() {
        let updates = Updates::default();
        updates.started(RunHandle::for_tests(1));
        updates.claim().unwrap();
        updates.begin(image()).unwrap();
        assert!(matches!(updates.ended(false, ""), AfterRun::Boot(_)));
        assert!(matches!(updates.ended(false, ""), AfterRun::RollBack), "the new image did not boot");
        assert!(matches!(updates.ended(false, ""), AfterRun::Supervise), "nor did the old one");
        assert!(matches!(updates.phase(), Phase::Failed(why) if why.contains("failed too")));
        updates.finish();

        updates.started(RunHandle::for_tests(1));
        updates.claim().unwrap();
        updates.begin(image()).unwrap();
        assert!(matches!(updates.ended(true, ""), AfterRun::Supervise), "SIGTERM during the update");
        assert!(matches!(updates.phase(), Phase::Failed(why) if why.contains("told to stop")));
        updates.finish();

        // The guest ends while a claimed update checks its image: it begins nothing.
        updates.started(RunHandle::for_tests(1));
        updates.claim().unwrap();
        assert!(matches!(updates.ended(false, "guest panicked: p"), AfterRun::Supervise));
        assert!(updates.begin(image()).unwrap_err().contains("ended meanwhile"));
    }
}
