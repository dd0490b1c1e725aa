//! The chain watcher: reads the AVS's tasks from an Ethereum node (JSON-RPC over HTTP), the
//! `NewTaskCreated` logs of the configured TaskManager, and hands each task to the AVS's signing
//! path (the same as `POST /task`: compute, slashing protection, sign, queue for the aggregator).
//!
//! # A poll
//! Every [`POLL_INTERVAL_MS`] (the AVS's timer, no busy loop), one call at a time to the spec's
//! `eth_rpc` endpoint (`Node::call`):
//! 1. `eth_chainId`, once per boot (a cursor of another chain or TaskManager is not used);
//! 2. `eth_blockNumber`: the head. Only blocks with at least `confirmations` blocks on top are
//!    processed: up to `head - confirmations`;
//! 3. without a cursor on the disk (the node's first contact with this chain and TaskManager),
//!    the hash of that confirmed block is read and recorded as the cursor: tasks from the next
//!    block on are read, those before are not the node's;
//! 4. with a cursor behind the confirmed block: once per poll the cursor's block is read again
//!    (`eth_getBlockByNumber`); a hash other than the one recorded means a reorganisation
//!    deeper than `confirmations` replaced it: the cursor moves back [`REWIND`] blocks and
//!    those are read again (a task signed before gets the same signature again; one whose
//!    content changed is refused by the slashing protection);
//! 5. the hash of the range's last block, then `eth_getLogs` over at most [`MAX_RANGE`] blocks
//!    after the cursor (`address` = the TaskManager, `topics[0]` = [`event::TOPIC0`]). Logs of
//!    another address or topic, and logs marked `removed`, are ignored and counted; a log of the
//!    last block with another hash than the one read means the block changed during the read:
//!    the range is read again later. An answer too large for [`rpc::MAX_BODY`] halves the range;
//! 6. the range's tasks are signed in block and log order through the node
//!    ([`Watcher::settle`]), then the cursor (the range's last block and hash) is written to the
//!    disk, as the AVS's record (`Node::save`). A crash before the write reads the range again: repeats get the identical signature
//!    from the signing history, nothing is missed. Ranges follow each other at once until the
//!    confirmed block is reached.
//!
//! A failed call (no connection, timeout, HTTP error, JSON-RPC error, an answer that does not
//! read) ends the poll: the `ethereum` service is `Down` with the reason, and the next poll comes
//! after a backoff of [`FIRST_BACKOFF_MS`] doubling to [`MAX_BACKOFF_MS`]. The node keeps serving
//! HTTP meanwhile. A task the node cannot sign yet (the key loading, the signing history not
//! writable) holds the range back until it can; a task refused by the slashing protection or
//! unanswerable (its square overflows) is skipped with a console line.

pub mod cursor;
pub mod event;
pub mod rpc;

use crate::TaskError;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use avs_protocol::NewTask;
use cursor::Cursor;
use rpc::RpcError;
use spacecore_avs::{Health as Status, Node, REPLY_TOO_LONG, Reply, StoreError};

/// Time between two polls of the head once caught up.
pub const POLL_INTERVAL_MS: u64 = 1000;
/// Wait before the poll after a failure; it doubles at each further failure.
pub const FIRST_BACKOFF_MS: u64 = 1000;
/// Longest wait after failures.
pub const MAX_BACKOFF_MS: u64 = 30_000;
/// Most blocks one `eth_getLogs` covers.
pub const MAX_RANGE: u64 = 100;
/// Blocks read again when a reorganisation deeper than the confirmations is seen.
pub const REWIND: u64 = 64;
/// Confirmations when the spec gives none.
pub const DEFAULT_CONFIRMATIONS: u32 = 2;
/// Most confirmations accepted.
pub const MAX_CONFIRMATIONS: u32 = 10_000;

/// What the watcher reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The TaskManager contract's address.
    pub task_manager: [u8; 20],
    /// Blocks on top of a block before it is processed.
    pub confirmations: u32,
}

/// Counters of the watcher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChainStats {
    /// JSON-RPC calls made to the Ethereum node, each counted when it ends.
    pub requests: u64,
    /// Calls that failed (transport, HTTP, JSON-RPC error, unusable answer).
    pub errors: u64,
    /// Blocks whose tasks were all handled and recorded.
    pub blocks_processed: u64,
    /// `NewTaskCreated` logs of the TaskManager read and handed to the node.
    pub tasks: u64,
    /// Logs of another address or topic, or marked removed, ignored.
    pub ignored_logs: u64,
    /// Reorganisations deeper than the confirmations seen at the cursor.
    pub reorgs: u64,
}

/// One call of a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    ChainId,
    Head,
    /// The hash of the confirmed block, to start from (no cursor, or after a rewind).
    Anchor(u64),
    /// The cursor's block again, to see whether it was replaced.
    Verify(u64),
    /// The hash of the range's last block.
    RangeEnd(u64),
    Logs {
        from: u64,
        to: u64,
        hash: [u8; 32],
    },
}

/// Tasks read from a range, waiting to be signed.
#[derive(Debug)]
struct Batch {
    to: u64,
    hash: [u8; 32],
    /// `(block, task)` in block and log order.
    tasks: Vec<(u64, NewTask)>,
    /// Tasks already handled.
    done: usize,
}

/// What the watcher waits for before its next call.
#[derive(Debug)]
enum Pending {
    /// Nothing: the next call is due at `due_ms`.
    None,
    /// A cursor to write (an anchor), then the poll goes on.
    Cursor(Cursor),
    /// Tasks to sign, then the cursor to write.
    Batch(Batch),
}

/// The watcher.
#[derive(Debug)]
pub struct Watcher {
    config: Config,
    chain_id: Option<u64>,
    /// The cursor on the disk (as last written or read).
    cursor: Option<Cursor>,
    /// Why the watcher cannot work at all (an unreadable cursor, no disk).
    broken: Option<String>,
    head: Option<u64>,
    /// Whether the cursor's block was seen unchanged (or set) during this poll.
    verified: bool,
    /// The next call of the poll under way, if one is.
    step: Option<Step>,
    in_flight: Option<(u64, Step)>,
    pending: Pending,
    due_ms: u64,
    failures: u32,
    range: u64,
    next_id: u64,
    signer_ready: bool,
    status: Status,
    reason: String,
    /// The counters.
    pub stats: ChainStats,
}

impl Watcher {
    /// A watcher of `config`, with the cursor as the AVS's record holds it (`Node::load`; no
    /// disk: the watcher stays down).
    pub fn new(config: Config, saved: Result<Option<Vec<u8>>, StoreError>) -> Self {
        let mut watcher = Watcher {
            config,
            chain_id: None,
            cursor: None,
            broken: None,
            head: None,
            verified: false,
            step: None,
            in_flight: None,
            pending: Pending::None,
            due_ms: 0,
            failures: 0,
            range: MAX_RANGE,
            next_id: 1,
            signer_ready: false,
            status: Status::Initializing,
            reason: "no answer from the Ethereum node yet".into(),
            stats: ChainStats::default(),
        };
        match saved {
            Err(StoreError::NoDisk) => {
                watcher.broken = Some("no disk: the chain cursor has nowhere to live".into())
            }
            Err(e) => watcher.broken = Some(format!("cannot read the chain cursor: {e}")),
            Ok(None) => {}
            Ok(Some(bytes)) => match Cursor::decode(&bytes) {
                Ok(cursor) => watcher.cursor = Some(cursor),
                Err(why) => watcher.broken = Some(format!("{why}: not reading tasks")),
            },
        }
        if let Some(why) = &watcher.broken {
            watcher.status = Status::Down;
            watcher.reason = why.clone();
        }
        watcher
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The `ethereum` service's status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Why the status is what it is.
    pub fn reason(&self) -> String {
        if self.status != Status::Up {
            return self.reason.clone();
        }
        let head = self.head.unwrap_or(0);
        let Some(at) = self.cursor.map(|c| c.block) else {
            return format!(
                "waiting for a block with {} confirmations to start from (head {head})",
                self.config.confirmations
            );
        };
        let waiting = if self.signer_ready { "" } else { "; waiting for the operator key to read tasks" };
        format!(
            "reading chain {} at block {at} (head {head}, {} confirmations){waiting}",
            self.chain_id.unwrap_or(0),
            self.config.confirmations
        )
    }

    /// The chain id, once the node told it.
    pub fn chain_id(&self) -> Option<u64> {
        self.chain_id
    }

    /// The head last seen.
    pub fn head(&self) -> Option<u64> {
        self.head
    }

    /// The cursor: the last block processed, with its hash.
    pub fn cursor(&self) -> Option<&Cursor> {
        self.cursor.as_ref()
    }

    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// A call failed: the poll ends, the service is down, the next poll waits a backoff.
    fn fail(&mut self, why: String, now_ms: u64) -> Option<String> {
        self.stats.errors = self.stats.errors.saturating_add(1);
        self.failures = self.failures.saturating_add(1);
        let backoff = (FIRST_BACKOFF_MS << (self.failures - 1).min(16)).min(MAX_BACKOFF_MS);
        self.step = None;
        self.due_ms = now_ms.saturating_add(backoff);
        let line = (self.status != Status::Down || self.reason != why)
            .then(|| format!("chain: ethereum down: {why} (next try in {backoff} ms)"));
        self.status = Status::Down;
        self.reason = why;
        line
    }

    /// The poll goes on from the head: the next call, or the poll's end.
    fn next_step(&mut self, now_ms: u64) {
        self.due_ms = now_ms;
        let (Some(head), Some(chain_id)) = (self.head, self.chain_id) else {
            self.step = Some(Step::ChainId);
            return;
        };
        let Some(confirmed) = head.checked_sub(u64::from(self.config.confirmations)) else {
            return self.end_poll(now_ms);
        };
        self.step = match self.cursor {
            None => Some(Step::Anchor(confirmed)),
            Some(c) if c.chain_id != chain_id => Some(Step::Anchor(confirmed)),
            Some(c) if c.block >= confirmed || !self.signer_ready => None,
            Some(c) if !self.verified => Some(Step::Verify(c.block)),
            Some(c) => Some(Step::RangeEnd(confirmed.min(c.block.saturating_add(self.range)))),
        };
        if self.step.is_none() {
            self.end_poll(now_ms);
        }
    }

    fn end_poll(&mut self, now_ms: u64) {
        self.step = None;
        self.due_ms = now_ms.saturating_add(POLL_INTERVAL_MS);
    }

    /// A step's answer arrived and read well.
    fn advance(&mut self, step: Step, body: &[u8], id: u64, now_ms: u64) -> Result<Option<String>, RpcError> {
        let mut line = None;
        match step {
            Step::ChainId => {
                let chain_id = rpc::read_quantity(body, id)?;
                if let Some(c) = self.cursor
                    && (c.chain_id != chain_id || c.task_manager != self.config.task_manager)
                {
                    line = Some(format!(
                        "chain: the cursor on the disk is for chain {} and TaskManager {}, not chain {chain_id} \
                         and TaskManager {}: reading from the confirmed head",
                        c.chain_id,
                        rpc::hex(&c.task_manager),
                        rpc::hex(&self.config.task_manager)
                    ));
                    self.cursor = None;
                }
                self.chain_id = Some(chain_id);
                self.step = Some(Step::Head);
            }
            Step::Head => {
                let head = rpc::read_quantity(body, id)?;
                self.head = Some(head);
                self.failures = 0;
                if self.status == Status::Down {
                    line = Some(format!("chain: ethereum up again: head {head}"));
                }
                self.status = Status::Up;
                self.next_step(now_ms);
            }
            Step::Anchor(block) => {
                let hash = rpc::read_block_hash(body, id, block)?
                    .ok_or_else(|| RpcError::Malformed(format!("the node does not have block {block}")))?;
                let chain_id = self.chain_id.unwrap_or(0);
                let cursor = Cursor { chain_id, task_manager: self.config.task_manager, block, hash };
                self.pending = Pending::Cursor(cursor);
            }
            Step::Verify(block) => {
                let hash = rpc::read_block_hash(body, id, block)?;
                let recorded = self.cursor.map(|c| c.hash);
                if hash.is_some() && hash == recorded {
                    self.verified = true;
                    self.next_step(now_ms);
                } else {
                    self.stats.reorgs = self.stats.reorgs.saturating_add(1);
                    let back = block.saturating_sub(REWIND);
                    line = Some(format!(
                        "chain: block {block} is no longer the one processed (a reorganisation deeper than {} \
                         confirmations): reading again from block {}",
                        self.config.confirmations,
                        back + 1
                    ));
                    self.step = Some(Step::Anchor(back));
                }
            }
            Step::RangeEnd(to) => {
                let hash = rpc::read_block_hash(body, id, to)?
                    .ok_or_else(|| RpcError::Malformed(format!("the node does not have block {to}")))?;
                let from = self.cursor.map_or(to, |c| c.block + 1);
                self.step = Some(Step::Logs { from, to, hash });
            }
            Step::Logs { from, to, hash } => {
                let logs = rpc::read_logs(body, id, from, to)?;
                let mut tasks = Vec::new();
                for log in logs {
                    if log.removed
                        || log.address != self.config.task_manager
                        || log.topics.first() != Some(&event::TOPIC0)
                    {
                        self.stats.ignored_logs = self.stats.ignored_logs.saturating_add(1);
                        continue;
                    }
                    if log.block == to && log.block_hash != hash {
                        return Err(RpcError::Malformed(format!(
                            "block {to} changed while it was read (a reorganisation): reading it again"
                        )));
                    }
                    let task = event::decode(&log.topics, &log.data).map_err(|why| {
                        RpcError::Malformed(format!("log {} of block {}: {why}", log.index, log.block))
                    })?;
                    tasks.push((log.block, log.index, task));
                }
                tasks.sort_by_key(|(block, index, _)| (*block, *index));
                let tasks = tasks.into_iter().map(|(block, _, task)| (block, task)).collect();
                self.range = (self.range.saturating_mul(2)).min(MAX_RANGE);
                self.pending = Pending::Batch(Batch { to, hash, tasks, done: 0 });
            }
        }
        Ok(line)
    }

    /// Does what needs the node and the disk: signs the tasks read (`sign`: the AVS's signing
    /// path) and writes the cursor. Returns console lines.
    pub fn settle(
        &mut self,
        node: &mut dyn Node,
        sign: &mut dyn FnMut(&mut dyn Node, &NewTask) -> Result<(), TaskError>,
    ) -> Vec<String> {
        self.signer_ready = node.operator().is_some();
        let mut lines = Vec::new();
        let now_ms = node.now_ms();
        if now_ms < self.due_ms {
            // A retry after a failure waits its backoff.
            return lines;
        }
        match core::mem::replace(&mut self.pending, Pending::None) {
            Pending::None => {}
            Pending::Cursor(cursor) => match self.write(node, &cursor) {
                Ok(()) => {
                    self.verified = true;
                    self.next_step(now_ms);
                }
                Err(why) => {
                    lines.extend(self.fail(why, now_ms));
                    self.pending = Pending::Cursor(cursor);
                }
            },
            Pending::Batch(mut batch) => {
                while let Some((block, task)) = batch.tasks.get(batch.done) {
                    match sign(&mut *node, task) {
                        Ok(_) => {}
                        Err(e @ (TaskError::Refused(_) | TaskError::Unanswerable(_))) => {
                            lines.push(format!(
                                "chain: task {} of block {block} not signed: {}",
                                task.task_index,
                                e.message()
                            ));
                        }
                        Err(e) => {
                            // Not signing yet, or the history cannot be written: later.
                            let why = format!(
                                "cannot sign task {} of block {block} yet: {}",
                                task.task_index,
                                e.message()
                            );
                            self.due_ms = now_ms.saturating_add(FIRST_BACKOFF_MS);
                            if self.reason != why {
                                lines.push(format!("chain: {why}"));
                            }
                            self.reason = why;
                            self.pending = Pending::Batch(batch);
                            return lines;
                        }
                    }
                    batch.done += 1;
                }
                let chain_id = self.chain_id.unwrap_or(0);
                let cursor = Cursor {
                    chain_id,
                    task_manager: self.config.task_manager,
                    block: batch.to,
                    hash: batch.hash,
                };
                let before = self.cursor.map_or(batch.to, |c| c.block);
                match self.write(node, &cursor) {
                    Ok(()) => {
                        self.stats.blocks_processed =
                            self.stats.blocks_processed.saturating_add(batch.to.saturating_sub(before));
                        self.stats.tasks = self.stats.tasks.saturating_add(batch.tasks.len() as u64);
                        self.cursor = Some(cursor);
                        self.next_step(now_ms);
                    }
                    Err(why) => {
                        // Signed and queued, but not recorded: the range is read again later
                        // (repeats sign the same).
                        lines.extend(self.fail(why, now_ms));
                    }
                }
            }
        }
        lines
    }

    fn write(&mut self, node: &mut dyn Node, cursor: &Cursor) -> Result<(), String> {
        node.save(&cursor.encode()).map_err(|e| format!("cannot record the chain cursor: {e}"))?;
        self.cursor = Some(*cursor);
        Ok(())
    }

    /// Whether [`Watcher::settle`] has work.
    pub fn has_pending(&self) -> bool {
        !matches!(self.pending, Pending::None)
    }
}

impl Watcher {
    /// The next JSON-RPC call due at `now_ms`: its id and body (a `POST /` to `eth_rpc`). It is
    /// in flight until [`Watcher::call_done`] reports on it.
    pub fn next_call(&mut self, now_ms: u64) -> Option<(u64, Vec<u8>)> {
        if self.broken.is_some() || self.in_flight.is_some() || self.has_pending() || now_ms < self.due_ms {
            return None;
        }
        let step = match self.step {
            Some(step) => step,
            None => {
                // A new poll.
                self.verified = false;
                if self.chain_id.is_some() { Step::Head } else { Step::ChainId }
            }
        };
        self.step = Some(step);
        let id = self.new_id();
        let tm = self.config.task_manager;
        let body = match step {
            Step::ChainId => rpc::chain_id(id),
            Step::Head => rpc::block_number(id),
            Step::Anchor(block) | Step::Verify(block) | Step::RangeEnd(block) => {
                rpc::block_by_number(id, block)
            }
            Step::Logs { from, to, .. } => rpc::get_logs(id, &tm, &event::TOPIC0, from, to),
        };
        self.in_flight = Some((id, step));
        Some((id, body))
    }

    /// When the next call, or the retry of work held back (tasks that could not be signed yet,
    /// a cursor that could not be written), is due.
    pub fn next_due(&self) -> Option<u64> {
        (self.broken.is_none() && self.in_flight.is_none()).then_some(self.due_ms)
    }

    /// The result of call `id`: the answer, or why there is none. Returns a line worth logging,
    /// if any.
    pub fn call_done(&mut self, id: u64, result: Result<Reply, String>, now_ms: u64) -> Option<String> {
        let (expected, step) = self.in_flight?;
        if expected != id {
            return None;
        }
        self.in_flight = None;
        self.stats.requests = self.stats.requests.saturating_add(1);
        let response = match result {
            Ok(response) if response.status == 200 => response,
            Ok(response) => {
                return self.fail(format!("the Ethereum node answered HTTP {}", response.status), now_ms);
            }
            Err(why) if why == REPLY_TOO_LONG => {
                if let Step::Logs { from, .. } = step
                    && self.range > 1
                {
                    self.range /= 2;
                    self.stats.errors = self.stats.errors.saturating_add(1);
                    let to = from.saturating_sub(1).saturating_add(self.range);
                    self.step = Some(Step::RangeEnd(to));
                    return Some(format!(
                        "chain: the logs of blocks from {from} do not fit in {} bytes: reading {} blocks at a time",
                        rpc::MAX_BODY,
                        self.range
                    ));
                }
                return self.fail(format!("an answer longer than {} bytes", rpc::MAX_BODY), now_ms);
            }
            Err(why) => return self.fail(format!("no answer from the Ethereum node: {why}"), now_ms),
        };
        match self.advance(step, &response.body, id, now_ms) {
            Ok(line) => line,
            Err(e) => self.fail(format!("{e}"), now_ms),
        }
    }
}

#[cfg(test)]
mod tests;
