//! The signed responses on their way to the aggregator ([`Outbox`]): one call each, retried
//! with backoff while the aggregator may still accept them, and the probe that tells whether the
//! aggregator answers at all ([`Reach`]). The node makes its calls through [`Calls`], which the
//! network side drives.

use super::AvsNode;
use super::rpc::{self, Outcome};
use crate::http::calls::{CallRequest, Calls};
use crate::http::client::HttpResponse;
use crate::status::Status;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use avs_protocol::SignedTaskResponse;

impl Calls for AvsNode {
    fn next_call(&mut self, now_ms: u64) -> Option<(u64, CallRequest)> {
        if !self.outbox.sends {
            return None;
        }
        if self.reach.probe_due().is_some_and(|due| due <= now_ms) {
            let id = self.outbox.new_id();
            self.reach.probe = Some(id);
            self.reach.last_probe_ms = Some(now_ms);
            self.stats.probes = self.stats.probes.saturating_add(1);
            return Some((id, CallRequest::Probe));
        }
        self.outbox.next_call(now_ms).map(|(id, body)| (id, CallRequest::Rpc(body)))
    }

    fn next_due(&self) -> Option<u64> {
        if !self.outbox.sends {
            return None;
        }
        match (self.outbox.next_due(), self.reach.probe_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn call_done(
        &mut self,
        id: u64,
        result: Result<HttpResponse, String>,
        now_ms: u64,
        elapsed_us: u64,
    ) -> Option<String> {
        let answered = result.is_ok();
        if self.reach.probe == Some(id) {
            self.reach.probe = None;
            self.reach.settle(answered, now_ms);
            return None;
        }
        let (done, line) = self.outbox.done(id, result, now_ms)?;
        self.reach.settle(answered, now_ms);
        self.stats.rpc.observe(elapsed_us.saturating_mul(1000));
        let counter = match done {
            Some(Done::Accepted) => &mut self.stats.accepted,
            Some(Done::Refused) => &mut self.stats.refused,
            Some(Done::Undelivered) => &mut self.stats.undelivered,
            None => return line,
        };
        *counter = counter.saturating_add(1);
        line
    }
}

/// Time without an answer from the aggregator after which it is probed, and the shortest time
/// between two probes.
pub const PROBE_INTERVAL_MS: u64 = 5000;

/// What the node knows of the aggregator's reachability.
#[derive(Debug)]
pub(super) struct Reach {
    pub(super) status: Status,
    /// When a call or probe last got an HTTP answer.
    last_answer_ms: Option<u64>,
    /// When the last probe started.
    last_probe_ms: Option<u64>,
    /// The probe in flight, if any.
    probe: Option<u64>,
}

impl Default for Reach {
    fn default() -> Self {
        Reach { status: Status::Initializing, last_answer_ms: None, last_probe_ms: None, probe: None }
    }
}

impl Reach {
    /// When the next probe is due: [`PROBE_INTERVAL_MS`] after both the last answer and the
    /// last probe (at once before either); `None` while one is in flight.
    fn probe_due(&self) -> Option<u64> {
        if self.probe.is_some() {
            return None;
        }
        let after = |t: Option<u64>| t.map_or(0, |t| t.saturating_add(PROBE_INTERVAL_MS));
        Some(after(self.last_answer_ms).max(after(self.last_probe_ms)))
    }

    /// A call or probe finished: `answered` if an HTTP answer came.
    fn settle(&mut self, answered: bool, now_ms: u64) {
        if answered {
            self.status = Status::Up;
            self.last_answer_ms = Some(now_ms);
        } else {
            self.status = Status::Down;
        }
    }
}

/// Most responses waiting to be sent; beyond, the oldest is dropped.
pub const MAX_QUEUED: usize = 256;
/// Tries per response before giving up.
pub const MAX_ATTEMPTS: u32 = 8;
/// Wait before the first retry; it doubles at each, up to [`MAX_BACKOFF_MS`].
pub const FIRST_BACKOFF_MS: u64 = 100;
/// Longest wait between two tries.
pub const MAX_BACKOFF_MS: u64 = 3200;

/// A signed response on its way to the aggregator.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) signed: SignedTaskResponse,
    attempts: u32,
    pub(super) due_ms: u64,
    /// The id of the call carrying it, while one is in flight.
    call: Option<u64>,
}

/// Signed responses to send, with their retries.
#[derive(Debug)]
pub(super) struct Outbox {
    /// Whether there is an aggregator to send to at all.
    pub(super) sends: bool,
    pub(super) queue: VecDeque<Pending>,
    next_id: u64,
}

impl Outbox {
    pub(super) fn new(sends: bool) -> Self {
        Outbox { sends, queue: VecDeque::new(), next_id: 1 }
    }

    /// Queues `signed` unless it is queued already; returns whether the oldest response was
    /// dropped to make room.
    pub(super) fn push(&mut self, signed: SignedTaskResponse, now_ms: u64) -> bool {
        let index = signed.task_response.reference_task_index;
        if !self.sends || self.queue.iter().any(|p| p.signed.task_response.reference_task_index == index) {
            return false;
        }
        let full = self.queue.len() == MAX_QUEUED;
        if full {
            self.queue.pop_front();
        }
        self.queue.push_back(Pending { signed, attempts: 0, due_ms: now_ms, call: None });
        full
    }

    /// A call id never given before.
    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn next_call(&mut self, now_ms: u64) -> Option<(u64, Vec<u8>)> {
        let at = self.queue.iter().position(|p| p.call.is_none() && p.due_ms <= now_ms)?;
        let id = self.new_id();
        let pending = &mut self.queue[at];
        pending.call = Some(id);
        pending.attempts += 1;
        Some((id, rpc::rpc_body(id, &pending.signed)))
    }

    pub(super) fn next_due(&self) -> Option<u64> {
        self.queue.iter().filter(|p| p.call.is_none()).map(|p| p.due_ms).min()
    }

    /// Settles call `id`: `(how the response is done with, if it is; a line to log)`; `None`
    /// for an unknown id.
    fn done(
        &mut self,
        id: u64,
        result: Result<HttpResponse, String>,
        now_ms: u64,
    ) -> Option<(Option<Done>, Option<String>)> {
        let at = self.queue.iter().position(|p| p.call == Some(id))?;
        let pending = &mut self.queue[at];
        pending.call = None;
        let index = pending.signed.task_response.reference_task_index;
        let (retry, why) = match result {
            Ok(response) => match rpc::outcome(&response, id) {
                Outcome::Accepted => {
                    self.queue.remove(at);
                    return Some((Some(Done::Accepted), None));
                }
                outcome => (rpc::should_retry(&outcome), describe(&outcome)),
            },
            Err(transport) => (true, transport),
        };
        if retry && pending.attempts < MAX_ATTEMPTS {
            let backoff = (FIRST_BACKOFF_MS << (pending.attempts - 1).min(16)).min(MAX_BACKOFF_MS);
            pending.due_ms = now_ms + backoff;
            return Some((None, None));
        }
        self.queue.remove(at);
        Some(if retry {
            let line =
                format!("avs: task {index}: response not delivered after {MAX_ATTEMPTS} attempts: {why}");
            (Some(Done::Undelivered), Some(line))
        } else {
            (
                Some(Done::Refused),
                Some(format!("avs: task {index}: response refused by the aggregator: {why}")),
            )
        })
    }
}

/// How a response left the queue after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Accepted,
    Refused,
    Undelivered,
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Accepted => "accepted".into(),
        Outcome::Refused { code, message } => format!("code {code}: {message}"),
        Outcome::Unusable(why) => why.clone(),
    }
}
