//! Slashing protection: the record of what the node has signed, so that it never signs two
//! different responses for the same task index.
//!
//! The record remembers up to [`CAPACITY`] tasks individually, each as its index and the digest
//! signed for it. When it is full, the lowest index is forgotten and the *floor* rises above it:
//! every index below the floor is refused ([`Check::TooOld`]), since it may have been signed and
//! forgotten. The floor only ever rises.
//!
//! The whole record is stored as one value of the crash-safe record store (at most
//! [`MAX_ENCODED`] bytes). Its encoding, all integers little-endian:
//!
//! ```text
//! version   u8         1
//! floor     u32 LE     indices below it are refused
//! count     u16 LE     number of entries, at most CAPACITY
//! entries   count × (index u32 LE, digest 32 bytes)
//!                      indices strictly increasing, each >= floor
//! ```
//!
//! Nothing may follow the last entry. [`History::decode`] accepts exactly the byte strings that
//! [`History::encode`] produces and rejects every other one with a [`HistoryError`].

use alloc::vec::Vec;

/// Most tasks remembered individually.
pub const CAPACITY: usize = 100;

/// Longest value the record store holds (`spacecore_store::MAX_VALUE`): a full history encodes
/// within it.
pub const MAX_ENCODED: usize = 4072;

/// A full history encodes within a store value.
const _: () = assert!(HEADER_LEN + CAPACITY * ENTRY_LEN <= MAX_ENCODED);

/// The encoding's version byte.
const VERSION: u8 = 1;
/// Version, floor and count.
const HEADER_LEN: usize = 1 + 4 + 2;
/// One entry: index and digest.
const ENTRY_LEN: usize = 4 + 32;

/// The record of signed tasks: a floor and up to [`CAPACITY`] entries sorted by index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct History {
    /// Indices below it are [`Check::TooOld`].
    floor: u32,
    /// (index, digest signed), indices strictly increasing and each >= `floor`.
    entries: Vec<(u32, [u8; 32])>,
}

/// What the record says about signing a digest for an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Never signed: may be signed once recorded.
    New,
    /// This very digest was signed for this index before: signing it again is safe (BLS is
    /// deterministic, the same signature results).
    Repeat,
    /// Another digest was signed for this index: refuse.
    Conflict,
    /// The index is below what the record still covers (the floor): refuse, it may have been
    /// signed and forgotten.
    TooOld,
}

/// Why stored bytes are not a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryError {
    /// Fewer bytes than the header or the announced entries need.
    Truncated,
    /// A version byte other than 1.
    BadVersion(u8),
    /// More entries announced than [`CAPACITY`].
    TooMany(usize),
    /// An entry's index is not above the previous one's.
    Unsorted,
    /// An entry's index is below the floor.
    BelowFloor,
    /// Bytes after the last entry.
    TrailingBytes,
}

impl History {
    /// An empty record with floor 0: every index is [`Check::New`].
    pub fn new() -> Self {
        Self::default()
    }

    /// What signing `digest` for `index` would be.
    pub fn check(&self, index: u32, digest: &[u8; 32]) -> Check {
        if index < self.floor {
            return Check::TooOld;
        }
        match self.entries.binary_search_by_key(&index, |&(i, _)| i) {
            Ok(at) if self.entries[at].1 == *digest => Check::Repeat,
            Ok(_) => Check::Conflict,
            Err(_) => Check::New,
        }
    }

    /// Records a signature about to be made. `Ok(())` only when [`History::check`] is
    /// [`Check::New`]; otherwise `Err` with that check and nothing changes.
    ///
    /// When [`CAPACITY`] entries are held: an index lower than every entry is `Err(TooOld)`
    /// (nothing changes); otherwise the lowest entry is evicted, the floor becomes its index + 1
    /// (saturating) and the new entry is inserted in order.
    pub fn record(&mut self, index: u32, digest: [u8; 32]) -> Result<(), Check> {
        let check = self.check(index, &digest);
        if check != Check::New {
            return Err(check);
        }
        if self.entries.len() >= CAPACITY {
            match self.entries.first() {
                Some(&(lowest, _)) if index < lowest => return Err(Check::TooOld),
                Some(&(lowest, _)) => {
                    self.entries.remove(0);
                    self.floor = lowest.saturating_add(1);
                }
                None => {}
            }
        }
        // Not found: check() was New.
        let at = self.entries.partition_point(|&(i, _)| i < index);
        self.entries.insert(at, (index, digest));
        Ok(())
    }

    /// The digest signed for `index`, if it is remembered.
    pub fn digest(&self, index: u32) -> Option<[u8; 32]> {
        let at = self.entries.binary_search_by_key(&index, |&(i, _)| i).ok()?;
        Some(self.entries[at].1)
    }

    /// The lowest index the record still covers: indices below it are [`Check::TooOld`].
    pub fn floor(&self) -> u32 {
        self.floor
    }

    /// The number of tasks remembered individually.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no task is remembered individually.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tasks remembered individually: (index, digest signed), indices increasing.
    pub fn entries(&self) -> &[(u32, [u8; 32])] {
        &self.entries
    }

    /// A history from its floor and entries, which must be what [`History::decode`] accepts:
    /// at most [`CAPACITY`] entries, indices strictly increasing and each at least `floor`.
    pub fn from_parts(floor: u32, entries: Vec<(u32, [u8; 32])>) -> Result<Self, HistoryError> {
        if entries.len() > CAPACITY {
            return Err(HistoryError::TooMany(entries.len()));
        }
        if entries.iter().any(|&(index, _)| index < floor) {
            return Err(HistoryError::BelowFloor);
        }
        if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(HistoryError::Unsorted);
        }
        Ok(History { floor, entries })
    }

    /// This history and `other` together, as an import merges them: the higher floor; every
    /// entry of either at or above it; when more than [`CAPACITY`] remain, the lowest are
    /// forgotten and the floor rises above them, as [`History::record`] does. Whatever either
    /// refuses, the result refuses. `Err(index)` when the two record different digests for one
    /// index: one of them signed something the other did not, and neither is kept.
    pub fn merge(&self, other: &History) -> Result<History, u32> {
        let mut floor = self.floor.max(other.floor);
        let mut entries: Vec<(u32, [u8; 32])> = Vec::with_capacity(self.entries.len() + other.entries.len());
        let (mut a, mut b) = (self.entries.iter().peekable(), other.entries.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x.0 == y.0 => {
                    if x.1 != y.1 {
                        return Err(x.0);
                    }
                    a.next();
                    b.next();
                    x
                }
                (Some(&&x), Some(&&y)) if x.0 < y.0 => {
                    a.next();
                    x
                }
                (_, Some(&&y)) => {
                    b.next();
                    y
                }
                (Some(&&x), None) => {
                    a.next();
                    x
                }
                (None, None) => break,
            };
            if next.0 >= floor {
                entries.push(next);
            }
        }
        if entries.len() > CAPACITY {
            let dropped = entries.len() - CAPACITY;
            floor = entries[dropped - 1].0.saturating_add(1);
            entries.drain(..dropped);
        }
        Ok(History { floor, entries })
    }

    /// The stored form (see the module documentation); at most [`MAX_ENCODED`] bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + ENTRY_LEN * self.entries.len());
        out.push(VERSION);
        out.extend_from_slice(&self.floor.to_le_bytes());
        // At most CAPACITY entries are ever held, which fits in a u16.
        let count = u16::try_from(self.entries.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for (index, digest) in &self.entries {
            out.extend_from_slice(&index.to_le_bytes());
            out.extend_from_slice(digest);
        }
        out
    }

    /// Reads the stored form, accepting exactly what [`History::encode`] produces.
    pub fn decode(bytes: &[u8]) -> Result<Self, HistoryError> {
        let (&version, rest) = bytes.split_first().ok_or(HistoryError::Truncated)?;
        if version != VERSION {
            return Err(HistoryError::BadVersion(version));
        }
        let (floor, rest) = rest.split_first_chunk::<4>().ok_or(HistoryError::Truncated)?;
        let (count, mut rest) = rest.split_first_chunk::<2>().ok_or(HistoryError::Truncated)?;
        let floor = u32::from_le_bytes(*floor);
        let count = usize::from(u16::from_le_bytes(*count));
        if count > CAPACITY {
            return Err(HistoryError::TooMany(count));
        }
        let mut entries: Vec<(u32, [u8; 32])> = Vec::with_capacity(count);
        for _ in 0..count {
            let (index, after) = rest.split_first_chunk::<4>().ok_or(HistoryError::Truncated)?;
            let (digest, after) = after.split_first_chunk::<32>().ok_or(HistoryError::Truncated)?;
            let index = u32::from_le_bytes(*index);
            if index < floor {
                return Err(HistoryError::BelowFloor);
            }
            if entries.last().is_some_and(|&(previous, _)| previous >= index) {
                return Err(HistoryError::Unsorted);
            }
            entries.push((index, *digest));
            rest = after;
        }
        if !rest.is_empty() {
            return Err(HistoryError::TrailingBytes);
        }
        Ok(History { floor, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn d(n: u8) -> [u8; 32] {
        [n; 32]
    }

    use test_support::rng::Rng;

    /// A full history: indices 1000, 1002, ... with digests derived from the index.
    fn full() -> History {
        let mut h = History::new();
        for k in 0..CAPACITY as u32 {
            h.record(1000 + 2 * k, d(k as u8)).unwrap();
        }
        h
    }

    /// The invariants every history keeps.
    fn assert_valid(h: &History) {
        assert!(h.entries.len() <= CAPACITY);
        assert!(h.entries.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(h.entries.iter().all(|&(i, _)| i >= h.floor));
    }

    #[test]
    fn new_is_empty_with_floor_zero() {
        let h = History::new();
        assert_eq!(h, History::default());
        assert!(h.is_empty());
        assert_eq!(h.len(), 0);
        assert_eq!(h.floor(), 0);
        assert_eq!(h.check(0, &d(1)), Check::New);
        assert_eq!(h.check(u32::MAX, &d(1)), Check::New);
    }

    #[test]
    fn record_then_check_gives_repeat_and_conflict() {
        let mut h = History::new();
        assert_eq!(h.record(7, d(1)), Ok(()));
        assert_eq!(h.len(), 1);
        assert!(!h.is_empty());
        assert_eq!(h.check(7, &d(1)), Check::Repeat);
        assert_eq!(h.check(7, &d(2)), Check::Conflict);
        assert_eq!(h.check(6, &d(1)), Check::New);
        assert_eq!(h.check(8, &d(1)), Check::New);
    }

    #[test]
    fn record_refuses_repeat_and_conflict_without_change() {
        let mut h = History::new();
        h.record(7, d(1)).unwrap();
        let before = h.clone();
        assert_eq!(h.record(7, d(1)), Err(Check::Repeat));
        assert_eq!(h, before);
        assert_eq!(h.record(7, d(2)), Err(Check::Conflict));
        assert_eq!(h, before);
    }

    #[test]
    fn entries_stay_sorted_whatever_the_order() {
        let mut h = History::new();
        for index in [50, 10, 30, 20, 40, 0, u32::MAX, 25] {
            h.record(index, d(index as u8)).unwrap();
        }
        let indices: Vec<u32> = h.entries.iter().map(|e| e.0).collect();
        assert_eq!(indices, [0, 10, 20, 25, 30, 40, 50, u32::MAX]);
        for index in [50, 10, 30, 20, 40, 0, u32::MAX, 25] {
            assert_eq!(h.check(index, &d(index as u8)), Check::Repeat);
        }
    }

    #[test]
    fn full_history_evicts_lowest_and_raises_floor() {
        let mut h = full();
        assert_eq!(h.len(), CAPACITY);
        assert_eq!(h.floor(), 0);
        // Between the two lowest entries: the lowest (1000) goes, the floor becomes 1001.
        assert_eq!(h.record(1001, d(200)), Ok(()));
        assert_eq!(h.len(), CAPACITY);
        assert_eq!(h.floor(), 1001);
        assert_eq!(h.check(1000, &d(0)), Check::TooOld);
        assert_eq!(h.check(1001, &d(200)), Check::Repeat);
        assert_eq!(h.entries[0].0, 1001);
        assert_valid(&h);
        // Above every entry: the lowest (1001) goes.
        assert_eq!(h.record(5000, d(201)), Ok(()));
        assert_eq!(h.floor(), 1002);
        assert_eq!(h.check(1001, &d(200)), Check::TooOld);
        assert_eq!(h.check(1002, &d(1)), Check::Repeat);
        assert_eq!(h.entries.last().unwrap().0, 5000);
        assert_valid(&h);
    }

    #[test]
    fn full_history_refuses_index_below_every_entry() {
        let mut h = full();
        let before = h.clone();
        // Above the floor (0) but below the lowest entry (1000).
        assert_eq!(h.check(999, &d(9)), Check::New);
        assert_eq!(h.record(999, d(9)), Err(Check::TooOld));
        assert_eq!(h.record(0, d(9)), Err(Check::TooOld));
        assert_eq!(h, before);
    }

    #[test]
    fn not_full_history_accepts_low_index() {
        let mut h = History::new();
        for k in 0..(CAPACITY as u32 - 1) {
            h.record(1000 + k, d(1)).unwrap();
        }
        assert_eq!(h.record(3, d(1)), Ok(()));
        assert_eq!(h.len(), CAPACITY);
        assert_eq!(h.floor(), 0);
    }

    #[test]
    fn floor_boundary() {
        let mut h = full();
        h.record(5000, d(1)).unwrap();
        assert_eq!(h.floor(), 1001);
        assert_eq!(h.check(1000, &d(1)), Check::TooOld);
        assert_eq!(h.check(1001, &d(1)), Check::New);
        assert_eq!(h.record(1000, d(1)), Err(Check::TooOld));
        // 1001 is at the floor but below every entry (1002): refused while full.
        assert_eq!(h.record(1001, d(1)), Err(Check::TooOld));
    }

    #[test]
    fn too_old_wins_over_an_entry_below_the_floor() {
        // Cannot come from valid data; check() still says TooOld.
        let h = History { floor: 10, entries: alloc::vec![(5, d(1))] };
        assert_eq!(h.check(5, &d(1)), Check::TooOld);
        assert_eq!(h.check(5, &d(2)), Check::TooOld);
    }

    #[test]
    fn index_u32_max_is_usable() {
        // Only possible when every entry is at u32::MAX: build it by hand.
        let mut h = History { floor: u32::MAX, entries: alloc::vec![(u32::MAX, d(1))] };
        assert_eq!(h.check(u32::MAX, &d(1)), Check::Repeat);
        assert_eq!(h.check(u32::MAX - 1, &d(1)), Check::TooOld);
        // A full history whose top entry is u32::MAX, evicting up to it.
        h = History::new();
        for k in 0..CAPACITY as u32 {
            h.record(u32::MAX - (CAPACITY as u32 - 1) + k, d(2)).unwrap();
        }
        assert_eq!(h.entries.last().unwrap().0, u32::MAX);
        assert_eq!(h.record(u32::MAX, d(2)), Err(Check::Repeat));
        assert_eq!(h.record(u32::MAX, d(3)), Err(Check::Conflict));
        assert_valid(&h);
    }

    #[test]
    fn long_run_keeps_invariants_and_never_forgets_within_capacity() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut h = History::new();
        let mut signed: Vec<(u32, [u8; 32])> = Vec::new();
        for step in 0..5000u32 {
            // Mostly increasing indices with some jitter and some repeats.
            let index = step.saturating_sub(rng.below(150) as u32);
            let digest = d(rng.below(3) as u8);
            let check = h.check(index, &digest);
            let before = h.clone();
            match h.record(index, digest) {
                Ok(()) => {
                    assert_eq!(check, Check::New);
                    signed.push((index, digest));
                }
                Err(e) => {
                    assert_eq!(h, before);
                    assert!(e == check || (check == Check::New && e == Check::TooOld));
                }
            }
            assert_valid(&h);
            assert_eq!(History::decode(&h.encode()), Ok(h.clone()));
        }
        // No index was ever recorded with two digests.
        signed.sort();
        assert!(signed.windows(2).all(|w| w[0].0 != w[1].0));
        // Every signed index is either remembered with its digest or below the floor.
        for (index, digest) in signed {
            let c = h.check(index, &digest);
            assert!(c == Check::Repeat || c == Check::TooOld, "{index}: {c:?}");
        }
    }

    #[test]
    fn encode_layout_is_exact() {
        let mut h = History::new();
        h.record(0x0102_0304, d(0xaa)).unwrap();
        h.floor = 0x0a0b_0c0d;
        h.entries[0].0 = 0x0a0b_0c0e;
        let bytes = h.encode();
        let mut expected = alloc::vec![1, 0x0d, 0x0c, 0x0b, 0x0a, 1, 0, 0x0e, 0x0c, 0x0b, 0x0a];
        expected.extend_from_slice(&[0xaa; 32]);
        assert_eq!(bytes, expected);
        assert_eq!(History::new().encode(), [1, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn full_history_fits_in_a_store_value() {
        let mut h = full();
        h.record(u32::MAX, d(9)).unwrap();
        let bytes = h.encode();
        assert_eq!(bytes.len(), HEADER_LEN + CAPACITY * ENTRY_LEN);
        assert!(bytes.len() <= MAX_ENCODED);
        assert_eq!(History::decode(&bytes), Ok(h));
    }

    #[test]
    fn round_trips() {
        assert_eq!(History::decode(&History::new().encode()), Ok(History::new()));
        let mut h = full();
        for k in 0..250u32 {
            h.record(3000 + k, d(k as u8)).unwrap();
            assert_eq!(History::decode(&h.encode()), Ok(h.clone()));
        }
        assert_eq!(h.floor(), 3000 + 250 - CAPACITY as u32);
        // Index u32::MAX and a floor of u32::MAX are valid.
        let h = History { floor: u32::MAX, entries: alloc::vec![(u32::MAX, d(3))] };
        assert_eq!(History::decode(&h.encode()), Ok(h));
    }

    /// A valid encoding built by hand.
    fn raw(version: u8, floor: u32, count: u16, indices: &[u32]) -> Vec<u8> {
        let mut out = alloc::vec![version];
        out.extend_from_slice(&floor.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        for i in indices {
            out.extend_from_slice(&i.to_le_bytes());
            out.extend_from_slice(&d(*i as u8));
        }
        out
    }

    #[test]
    fn decode_errors() {
        assert_eq!(History::decode(&[]), Err(HistoryError::Truncated));
        assert_eq!(History::decode(&[1]), Err(HistoryError::Truncated));
        assert_eq!(History::decode(&[1, 0, 0, 0, 0, 0]), Err(HistoryError::Truncated));
        assert_eq!(History::decode(&[0, 0, 0, 0, 0, 0, 0]), Err(HistoryError::BadVersion(0)));
        assert_eq!(History::decode(&[2]), Err(HistoryError::BadVersion(2)));
        assert_eq!(History::decode(&raw(0xff, 0, 0, &[])), Err(HistoryError::BadVersion(0xff)));
        // Count over capacity, whatever follows.
        assert_eq!(History::decode(&raw(1, 0, 101, &[])), Err(HistoryError::TooMany(101)));
        assert_eq!(History::decode(&raw(1, 0, u16::MAX, &[])), Err(HistoryError::TooMany(65535)));
        let hundred: Vec<u32> = (0..100).collect();
        assert!(History::decode(&raw(1, 0, 100, &hundred)).is_ok());
        let hundred_one: Vec<u32> = (0..101).collect();
        assert_eq!(History::decode(&raw(1, 0, 101, &hundred_one)), Err(HistoryError::TooMany(101)));
        // Entries short.
        assert_eq!(History::decode(&raw(1, 0, 2, &[5])), Err(HistoryError::Truncated));
        let mut cut = raw(1, 0, 1, &[5]);
        cut.pop();
        assert_eq!(History::decode(&cut), Err(HistoryError::Truncated));
        // Order and floor.
        assert_eq!(History::decode(&raw(1, 0, 2, &[5, 5])), Err(HistoryError::Unsorted));
        assert_eq!(History::decode(&raw(1, 0, 2, &[6, 5])), Err(HistoryError::Unsorted));
        assert_eq!(History::decode(&raw(1, 6, 1, &[5])), Err(HistoryError::BelowFloor));
        assert_eq!(History::decode(&raw(1, 6, 2, &[6, 5])), Err(HistoryError::BelowFloor));
        assert!(History::decode(&raw(1, 5, 2, &[5, 6])).is_ok());
        // Trailing bytes.
        assert_eq!(History::decode(&raw(1, 0, 0, &[5])), Err(HistoryError::TrailingBytes));
        let mut extended = History::new().encode();
        extended.push(0);
        assert_eq!(History::decode(&extended), Err(HistoryError::TrailingBytes));
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let mut h = full();
        h.record(4000, d(7)).unwrap();
        let bytes = h.encode();
        for len in 0..bytes.len() {
            assert_eq!(History::decode(&bytes[..len]), Err(HistoryError::Truncated), "length {len}");
        }
        for extra in [&[0u8][..], &[1], &[0; 36], &[0xff; 100]] {
            let mut longer = bytes.clone();
            longer.extend_from_slice(extra);
            assert_eq!(History::decode(&longer), Err(HistoryError::TrailingBytes));
        }
    }

    #[test]
    fn every_bit_flip_is_refused_or_reencodes_identically() {
        let mut h = History::new();
        for index in [3, 9, 10, 200, u32::MAX] {
            h.record(index, d(index as u8)).unwrap();
        }
        h.floor = 2;
        let bytes = h.encode();
        let mut accepted = 0;
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[at] ^= 1 << bit;
                if let Ok(other) = History::decode(&flipped) {
                    accepted += 1;
                    assert_ne!(other, h);
                    assert_eq!(other.encode(), flipped);
                    assert_valid(&other);
                }
            }
        }
        // Digest bits (at least) are accepted: a different but valid record.
        assert!(accepted >= 5 * 32 * 8);
    }

    #[test]
    fn random_bytes_never_panic_and_only_valid_records_decode() {
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        let mut ok = 0;
        for round in 0..20_000 {
            let len = rng.below(300) as usize;
            let mut bytes = rng.bytes(len);
            // Make a fair share of them plausible: version 1, small count, increasing indices.
            if round % 2 == 0 && len >= HEADER_LEN {
                bytes[0] = 1;
                let count = ((len - HEADER_LEN) / ENTRY_LEN) as u16;
                bytes[5..7].copy_from_slice(&count.to_le_bytes());
                if round % 4 == 0 {
                    bytes.truncate(HEADER_LEN + usize::from(count) * ENTRY_LEN);
                    bytes[1..5].copy_from_slice(&0u32.to_le_bytes());
                    for k in 0..usize::from(count) {
                        let at = HEADER_LEN + k * ENTRY_LEN;
                        bytes[at..at + 4].copy_from_slice(&(k as u32 * 3).to_le_bytes());
                    }
                }
            }
            if let Ok(h) = History::decode(&bytes) {
                ok += 1;
                assert_valid(&h);
                assert_eq!(h.encode(), bytes);
            }
        }
        assert!(ok > 4000, "only {ok} plausible inputs decoded");
    }

    #[test]
    fn merge_takes_the_higher_floor_and_the_union() {
        let a = History::from_parts(2, vec![(2, d(2)), (5, d(5))]).unwrap();
        let b = History::from_parts(4, vec![(5, d(5)), (7, d(7))]).unwrap();
        let merged = a.merge(&b).unwrap();
        assert_eq!(merged.floor(), 4);
        assert_eq!(merged.entries(), &[(5, d(5)), (7, d(7))]);
        assert_eq!(merged, b.merge(&a).unwrap(), "merging is symmetric");
        // Whatever either refused, the merge refuses.
        for h in [&a, &b] {
            for &(index, digest) in h.entries() {
                assert_ne!(merged.check(index, &d(0xee)), Check::New, "index {index}");
                assert!(matches!(merged.check(index, &digest), Check::Repeat | Check::TooOld));
            }
        }
        assert_eq!(merged.check(3, &d(3)), Check::TooOld);
    }

    #[test]
    fn merge_refuses_two_digests_for_one_index() {
        let a = History::from_parts(0, vec![(1, d(1)), (9, d(9))]).unwrap();
        let b = History::from_parts(0, vec![(9, d(8))]).unwrap();
        assert_eq!(a.merge(&b), Err(9));
        assert_eq!(b.merge(&a), Err(9));
        // Below the other's floor the conflict cannot be told apart from a forgotten entry:
        // the floor refuses that index anyway.
        let c = History::from_parts(10, vec![]).unwrap();
        assert_eq!(a.merge(&c).unwrap().check(9, &d(9)), Check::TooOld);
    }

    #[test]
    fn merge_beyond_capacity_raises_the_floor() {
        let evens: Vec<_> = (0..CAPACITY as u32).map(|i| (2 * i, d(1))).collect();
        let odds: Vec<_> = (0..CAPACITY as u32).map(|i| (2 * i + 1, d(1))).collect();
        let merged =
            History::from_parts(0, evens).unwrap().merge(&History::from_parts(0, odds).unwrap()).unwrap();
        assert_eq!(merged.len(), CAPACITY);
        assert_eq!(merged.floor(), CAPACITY as u32);
        assert_eq!(merged.entries()[0].0, CAPACITY as u32);
        assert_eq!(History::decode(&merged.encode()).unwrap(), merged);
    }

    #[test]
    fn from_parts_accepts_what_decode_accepts() {
        assert_eq!(History::from_parts(5, vec![(4, d(4))]), Err(HistoryError::BelowFloor));
        assert_eq!(History::from_parts(0, vec![(4, d(4)), (4, d(4))]), Err(HistoryError::Unsorted));
        let many: Vec<_> = (0..=CAPACITY as u32).map(|i| (i, d(1))).collect();
        assert_eq!(History::from_parts(0, many), Err(HistoryError::TooMany(CAPACITY + 1)));
        let h = History::from_parts(3, vec![(3, d(3)), (8, d(8))]).unwrap();
        assert_eq!(History::decode(&h.encode()).unwrap(), h);
    }
}
