//! The usage of every purchase token, kept as the AVS's record on the disk.
//!
//! # Record format (version 1), little-endian
//! | bytes | field |
//! | --- | --- |
//! | 0..4 | magic `MAPI` |
//! | 4 | version, 1 |
//! | 5..7 | number of entries, at most [`MAX_TOKENS`] |
//! | 7.. | the entries, [`ENTRY`] bytes each: token id (32), calls used (u32), nonce of the last call (u64), the first 8 bytes of keccak-256 of the last call's input |
//!
//! A record that does not decode is never replaced by an empty ledger: the node refuses calls
//! until an operator looks (forgetting usage would let every token be spent again).

use alloc::vec::Vec;

/// Bytes of one entry.
pub const ENTRY: usize = 32 + 4 + 8 + 8;
const HEADER: usize = 7;
const MAGIC: &[u8; 4] = b"MAPI";
const VERSION: u8 = 1;
/// Tokens the ledger holds: as many entries as fit in one record.
pub const MAX_TOKENS: usize = (spacecore_avs::MAX_RECORD - HEADER) / ENTRY;

/// One token's usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The token's id.
    pub id: [u8; 32],
    /// Calls served with it.
    pub used: u32,
    /// The nonce of its last call (nonces start at 1).
    pub nonce: u64,
    /// The first 8 bytes of keccak-256 of its last call's input.
    pub input: [u8; 8],
}

/// Why a record is not a ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt(pub &'static str);

/// Every token seen, in the order first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    entries: Vec<Entry>,
}

impl Ledger {
    /// The ledger of `record` (`None`: never saved, an empty ledger).
    pub fn decode(record: Option<&[u8]>) -> Result<Ledger, Corrupt> {
        let Some(bytes) = record else { return Ok(Ledger::default()) };
        if bytes.len() < HEADER || &bytes[..4] != MAGIC {
            return Err(Corrupt("not a ledger record"));
        }
        if bytes[4] != VERSION {
            return Err(Corrupt("a ledger version this AVS does not know"));
        }
        let count = usize::from(u16::from_le_bytes([bytes[5], bytes[6]]));
        if count > MAX_TOKENS || bytes.len() != HEADER + count * ENTRY {
            return Err(Corrupt("the entry count does not match the record's length"));
        }
        let entries: Vec<Entry> = bytes[HEADER..]
            .chunks_exact(ENTRY)
            .map(|e| Entry {
                id: e[..32].try_into().expect("32 bytes"),
                used: u32::from_le_bytes(e[32..36].try_into().expect("4 bytes")),
                nonce: u64::from_le_bytes(e[36..44].try_into().expect("8 bytes")),
                input: e[44..52].try_into().expect("8 bytes"),
            })
            .collect();
        let mut ids: Vec<&[u8; 32]> = entries.iter().map(|e| &e.id).collect();
        ids.sort();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(Corrupt("a token appears twice"));
        }
        Ok(Ledger { entries })
    }

    /// The record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.entries.len() * ENTRY);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&(self.entries.len() as u16).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.id);
            out.extend_from_slice(&e.used.to_le_bytes());
            out.extend_from_slice(&e.nonce.to_le_bytes());
            out.extend_from_slice(&e.input);
        }
        out
    }

    /// Token `id`'s usage, if it was ever used.
    pub fn get(&self, id: &[u8; 32]) -> Option<&Entry> {
        self.entries.iter().find(|e| &e.id == id)
    }

    /// The ledger with `entry` set (added or replaced); `None` when a new token finds the
    /// ledger full.
    pub fn with(&self, entry: Entry) -> Option<Ledger> {
        let mut next = self.clone();
        match next.entries.iter().position(|e| e.id == entry.id) {
            Some(i) => next.entries[i] = entry,
            None if next.entries.len() < MAX_TOKENS => next.entries.push(entry),
            None => return None,
        }
        Some(next)
    }

    /// Tokens in the ledger.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no token was ever used.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> Entry {
        Entry { id: [n; 32], used: u32::from(n), nonce: u64::from(n) * 3, input: [n; 8] }
    }

    #[test]
    fn round_trips_and_fills_one_record() {
        let mut ledger = Ledger::default();
        for n in 0..MAX_TOKENS as u8 {
            ledger = ledger.with(entry(n)).unwrap();
        }
        assert_eq!(MAX_TOKENS, 78);
        let record = ledger.encode();
        assert!(record.len() <= spacecore_avs::MAX_RECORD);
        assert_eq!(Ledger::decode(Some(&record)).unwrap(), ledger);
        assert!(ledger.with(entry(200)).is_none(), "full");
        let updated = ledger.with(Entry { used: 9, ..entry(5) }).unwrap();
        assert_eq!(updated.get(&[5; 32]).unwrap().used, 9);
        assert_eq!(Ledger::decode(None).unwrap(), Ledger::default());
    }

    #[test]
    fn a_damaged_record_is_never_an_empty_ledger() {
        let record = Ledger::default().with(entry(1)).unwrap().with(entry(2)).unwrap().encode();
        for cut in 0..record.len() {
            assert!(Ledger::decode(Some(&record[..cut])).is_err(), "cut at {cut}");
        }
        let mut bad = record.clone();
        bad[4] = 2;
        assert!(Ledger::decode(Some(&bad)).is_err());
        let mut twice = record.clone();
        twice[HEADER + ENTRY..HEADER + ENTRY + 32].copy_from_slice(&[1; 32]);
        assert_eq!(Ledger::decode(Some(&twice)), Err(Corrupt("a token appears twice")));
        let mut extra = record;
        extra.push(0);
        assert!(Ledger::decode(Some(&extra)).is_err());
    }
}
