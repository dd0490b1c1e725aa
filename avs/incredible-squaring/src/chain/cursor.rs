//! The chain cursor: where the watcher's reading of the TaskManager stands, kept in the store's
//! `ChainCursor` record so that a restart neither misses a task nor reads one twice.
//!
//! The record is 69 bytes:
//!
//! | bytes  | field |
//! |--------|-------|
//! | 0      | format version, 1 |
//! | 1..9   | the chain id (`eth_chainId`), little-endian |
//! | 9..29  | the TaskManager's address |
//! | 29..37 | the last block processed, little-endian: every task of it and of the blocks before was signed and queued |
//! | 37..69 | that block's hash |

use alloc::vec::Vec;

/// The format version written.
const VERSION: u8 = 1;
/// Bytes in a record.
pub const LEN: usize = 69;

/// Where the reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The chain it was read on.
    pub chain_id: u64,
    /// The contract whose logs were read.
    pub task_manager: [u8; 20],
    /// The last block processed.
    pub block: u64,
    /// That block's hash when it was processed.
    pub hash: [u8; 32],
}

impl Cursor {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.chain_id.to_le_bytes());
        out.extend_from_slice(&self.task_manager);
        out.extend_from_slice(&self.block.to_le_bytes());
        out.extend_from_slice(&self.hash);
        out
    }

    /// Reads a record: exactly [`LEN`] bytes of version 1.
    pub fn decode(bytes: &[u8]) -> Result<Cursor, &'static str> {
        if bytes.len() != LEN {
            return Err("the chain cursor record is not 69 bytes long");
        }
        if bytes[0] != VERSION {
            return Err("the chain cursor record has an unknown format version");
        }
        let u64_at = |at: usize| {
            let mut word = [0; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(word)
        };
        let mut task_manager = [0; 20];
        task_manager.copy_from_slice(&bytes[9..29]);
        let mut hash = [0; 32];
        hash.copy_from_slice(&bytes[37..69]);
        Ok(Cursor { chain_id: u64_at(1), task_manager, block: u64_at(29), hash })
    }
}
