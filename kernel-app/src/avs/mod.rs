//! The operator side of the node: its keys, the signing history and the one signing path.
//!
//! The image's AVS (`crate::sdk`) asks for signatures: [`AvsNode::sign_digest`] checks the
//! slashing protection ([`history`]: a task index is signed with one digest only, ever), writes
//! the updated signing history to the disk **before** signing, then signs the digest with the
//! operator's BLS key (BN254 or BLS12-381, as the spec's scheme says; [`operator`]).
//!
//! The operator key comes from the key file stored on the disk
//! ([`Operator::from_key_file`]); the secret never leaves this module and is never printed.
//! Without a key, or with a signing history that cannot be read, the node signs nothing.
//!
//! The node itself, with its keys and the signing path, is in [`node`]; this module holds what
//! it and the rest of the guest share (the disk's [`Records`], [`TaskError`], the counters).

/// The signing history's format and rules, shared with the operator's CLI.
pub use avs_protocol::history;
pub mod identity;
mod node;
pub mod operator;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
pub use identity::{ChainKey, Identity};
pub use node::AvsNode;
pub use operator::Operator;
use prom_text::Histogram;
use spacecore_store::{BlockIo, RecordKey, Store};

/// Upper bounds (ns) of the buckets of `spacecore_signing_duration_seconds`: 100 µs to 1 s (a
/// BLS signature takes about a millisecond).
pub const SIGNING_BUCKETS_NS: [u64; 13] = prom_text::series(100_000);

/// The records the node keeps on its disk.
pub trait Records {
    /// The value of `key`, if written.
    fn get(&mut self, key: RecordKey) -> Result<Option<Vec<u8>>, String>;
    /// Writes `value` as `key`; `Ok` only once it is on stable storage.
    fn put(&mut self, key: RecordKey, value: &[u8]) -> Result<(), String>;
}

impl<B: BlockIo> Records for Store<B> {
    fn get(&mut self, key: RecordKey) -> Result<Option<Vec<u8>>, String> {
        Store::get(self, key).map_err(|e| format!("{e:?}"))
    }

    fn put(&mut self, key: RecordKey, value: &[u8]) -> Result<(), String> {
        Store::put(self, key, value).map_err(|e| format!("{e:?}"))
    }
}

/// Why a digest was not signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// Slashing protection: another digest was signed for this task, or the task is older
    /// than the signing history covers.
    Refused(String),
    /// No operator key is loaded, or the signing history is unusable.
    NotSigning(String),
    /// The signing history could not be written: nothing was signed.
    Storage(String),
}

/// Counters of the signing path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Time of each BLS signature.
    pub signing: Histogram<{ SIGNING_BUCKETS_NS.len() }>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats { signing: Histogram::new(SIGNING_BUCKETS_NS) }
    }
}

#[cfg(test)]
mod power_cut;
#[cfg(test)]
pub mod tests;
