//! The signed responses on their way to the aggregator ([`Outbox`]): one call each, retried
//! with backoff while the aggregator may still accept them, and the probe that tells whether the
//! aggregator answers at all ([`Reach`]). [`Aggregator`] says which call is due; the AVS makes
//! it with `Node::call` and reports how it ended.

use super::Stats;
use super::rpc::{self, Outcome};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use avs_protocol::SignedTaskResponse;
use spacecore_avs::{Health, Reply};

/// What a call to the aggregator sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A JSON-RPC call: this body, in a `POST /`.
    Rpc(Vec<u8>),
    /// A probe: `GET /`, to learn whether the aggregator answers at all.
    Probe,
}

/// The aggregator, as the AVS sees it: the responses to send and whether it answers. The
/// default sends nothing (no aggregator).
#[derive(Debug)]
pub struct Aggregator {
    pub(crate) outbox: Outbox,
    pub(crate) reach: Reach,
}

impl Default for Aggregator {
    fn default() -> Self {
        Aggregator::new(false)
    }
}

impl Aggregator {
    /// `sends`: whether the spec names an aggregator at all.
    pub fn new(sends: bool) -> Self {
        Aggregator { outbox: Outbox::new(sends), reach: Reach::default() }
    }

    /// Whether signed responses go to an aggregator.
    pub fn sends(&self) -> bool {
        self.outbox.sends
    }

    /// The `aggregator` service, if responses go to one: initializing until a call or probe
    /// finishes, then up if the last one got an HTTP answer, down if it did not.
    pub fn status(&self) -> Option<Health> {
        self.outbox.sends.then_some(self.reach.status)
    }

    /// Signed responses waiting to be sent or in flight.
    pub fn queued(&self) -> usize {
        self.outbox.queue.len()
    }

    /// Queues `signed` (at `now_ms`), counting it in `stats` if the queue was full.
    pub fn push(&mut self, signed: SignedTaskResponse, now_ms: u64, stats: &mut Stats) {
        if self.outbox.push(signed, now_ms) {
            stats.dropped = stats.dropped.saturating_add(1);
        }
    }

    /// The next call due at `now_ms`: its id and what it sends. It is in flight until
    /// [`Aggregator::call_done`] reports on it.
    pub fn next_call(&mut self, now_ms: u64, stats: &mut Stats) -> Option<(u64, Call)> {
        if !self.outbox.sends {
            return None;
        }
        if self.reach.probe_due().is_some_and(|due| due <= now_ms) {
            let id = self.outbox.new_id();
            self.reach.probe = Some(id);
            self.reach.last_probe_ms = Some(now_ms);
            stats.probes = stats.probes.saturating_add(1);
            return Some((id, Call::Probe));
        }
        self.outbox.next_call(now_ms).map(|(id, body)| (id, Call::Rpc(body)))
    }

    /// When the next call (a queued response or a probe) becomes due, if any (calls in flight
    /// excluded).
    pub fn next_due(&self) -> Option<u64> {
        if !self.outbox.sends {
            return None;
        }
        match (self.outbox.next_due(), self.reach.probe_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The result of call `id`, which took `elapsed_us`: the answer, or why there is none.
    /// Returns a line worth logging, if any.
    pub fn call_done(
        &mut self,
        id: u64,
        result: Result<Reply, String>,
        now_ms: u64,
        elapsed_us: u64,
        stats: &mut Stats,
    ) -> Option<String> {
        let answered = result.is_ok();
        if self.reach.probe == Some(id) {
            self.reach.probe = None;
            self.reach.settle(answered, now_ms);
            return None;
        }
        let (done, line) = self.outbox.done(id, result, now_ms)?;
        self.reach.settle(answered, now_ms);
        stats.rpc.observe(elapsed_us.saturating_mul(1000));
        let counter = match done {
            Some(Done::Accepted) => &mut stats.accepted,
            Some(Done::Refused) => &mut stats.refused,
            Some(Done::Undelivered) => &mut stats.undelivered,
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
pub(crate) struct Reach {
    pub(crate) status: Health,
    /// When a call or probe last got an HTTP answer.
    last_answer_ms: Option<u64>,
    /// When the last probe started.
    last_probe_ms: Option<u64>,
    /// The probe in flight, if any.
    probe: Option<u64>,
}

impl Default for Reach {
    fn default() -> Self {
        Reach { status: Health::Initializing, last_answer_ms: None, last_probe_ms: None, probe: None }
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
            self.status = Health::Up;
            self.last_answer_ms = Some(now_ms);
        } else {
            self.status = Health::Down;
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
pub(crate) struct Pending {
    pub(crate) signed: SignedTaskResponse,
    attempts: u32,
    pub(crate) due_ms: u64,
    /// The id of the call carrying it, while one is in flight.
    call: Option<u64>,
}

/// Signed responses to send, with their retries.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// Whether there is an aggregator to send to at all.
    pub(crate) sends: bool,
    pub(crate) queue: VecDeque<Pending>,
    next_id: u64,
}

impl Outbox {
    pub(crate) fn new(sends: bool) -> Self {
        Outbox { sends, queue: VecDeque::new(), next_id: 1 }
    }

    /// Queues `signed` unless it is queued already; returns whether the oldest response was
    /// dropped to make room.
    pub(crate) fn push(&mut self, signed: SignedTaskResponse, now_ms: u64) -> bool {
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

    pub(crate) fn next_due(&self) -> Option<u64> {
        self.queue.iter().filter(|p| p.call.is_none()).map(|p| p.due_ms).min()
    }

    /// Settles call `id`: `(how the response is done with, if it is; a line to log)`; `None`
    /// for an unknown id.
    fn done(
        &mut self,
        id: u64,
        result: Result<Reply, String>,
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
            let line = format!("task {index}: response not delivered after {MAX_ATTEMPTS} attempts: {why}");
            (Some(Done::Undelivered), Some(line))
        } else {
            (Some(Done::Refused), Some(format!("task {index}: response refused by the aggregator: {why}")))
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
