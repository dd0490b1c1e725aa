//! The records the store holds.

use crate::{BASE_SECTOR, SLOT_SECTORS};

/// The records the store holds. The numbering is part of the disk layout: never reuse or
/// renumber a key, only add new ones at the end (see the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum RecordKey {
    /// How many times the unikernel booted with this disk: a `u64`, little-endian.
    BootCount = 0,
    /// The operator's BLS key, its JSON text as UTF-8 (about 1 KiB), written by `spacecore keys
    /// import`: eigensdk's BN254 key file (scheme `bn254`) or an EIP-2335 keystore (scheme
    /// `bls12-381`).
    Keystore = 1,
    /// The node's slashing protection: the signing history (the last task indices signed with
    /// their digests, and a floor), written and flushed by the guest before each signature; its
    /// format is the guest's (`kernel-app/src/avs/history.rs`).
    SigningHistory = 2,
    /// The operator's ECDSA key (its chain identity): a Web3 Secret Storage v3 keystore, its JSON
    /// text as UTF-8 (about 500 bytes), written by `spacecore keys import --ecdsa-keystore`.
    EcdsaKeystore = 3,
    /// Where an older image's reading of the AVS's TaskManager on chain stood (the chain
    /// cursor). Kept so that older disks still read: the runtime no longer writes it, since
    /// incredible-squaring keeps its cursor in its own record ([`RecordKey::AvsRecord`]).
    ChainCursor = 4,
    /// The record of the AVS linked into the image (`spacecore_avs::Node::save`): its own bytes,
    /// at most [`crate::MAX_VALUE`]; the runtime neither reads nor checks them.
    AvsRecord = 5,
}

impl RecordKey {
    /// Every key, in number order.
    pub const ALL: [RecordKey; 6] = [
        RecordKey::BootCount,
        RecordKey::Keystore,
        RecordKey::SigningHistory,
        RecordKey::EcdsaKeystore,
        RecordKey::ChainCursor,
        RecordKey::AvsRecord,
    ];
    /// Number of keys (the highest number plus one).
    pub const COUNT: usize = Self::ALL.len();

    /// The key's number, as written in its slots.
    pub fn number(self) -> u16 {
        self as u16
    }

    /// The first sector of the key's slot A (slot B follows it).
    pub fn first_sector(self) -> u64 {
        BASE_SECTOR + 2 * self as u64 * SLOT_SECTORS
    }
}
