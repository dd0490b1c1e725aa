//! The store against an in-memory disk that can lose power in the middle of a write.

use super::*;
use alloc::vec;
use alloc::vec::Vec;

/// How the next write goes wrong; after it the disk is off until [`MemDisk::power_on`].
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Only the first `n` bytes of the write reach the disk.
    Cut(usize),
    /// Only the sectors of the write whose bit is set in the mask reach the disk.
    Sectors(u64),
    /// The write reaches the disk, the flush after it fails.
    Flush,
}

#[derive(Clone)]
struct MemDisk {
    bytes: Vec<u8>,
    fault: Option<Fault>,
    off: bool,
    writes: usize,
    flushes: usize,
}

impl MemDisk {
    fn new(sectors: u64) -> Self {
        MemDisk { bytes: vec![0; sectors as usize * SECTOR], fault: None, off: false, writes: 0, flushes: 0 }
    }

    fn power_on(mut self) -> Self {
        self.off = false;
        self.fault = None;
        self
    }

    fn range(&self, sector: u64, len: usize) -> Result<core::ops::Range<usize>, IoError> {
        assert_eq!(len % SECTOR, 0, "partial sector");
        let start = sector as usize * SECTOR;
        if start + len > self.bytes.len() {
            return Err(IoError::OutOfRange);
        }
        Ok(start..start + len)
    }
}

impl BlockIo for MemDisk {
    fn sectors(&self) -> u64 {
        (self.bytes.len() / SECTOR) as u64
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        if self.off {
            return Err(IoError::Device);
        }
        let range = self.range(sector, buf.len())?;
        buf.copy_from_slice(&self.bytes[range]);
        Ok(())
    }

    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), IoError> {
        if self.off {
            return Err(IoError::Device);
        }
        let range = self.range(sector, data.len())?;
        self.writes += 1;
        let target = &mut self.bytes[range];
        match self.fault {
            None | Some(Fault::Flush) => target.copy_from_slice(data),
            Some(Fault::Cut(n)) => {
                target[..n].copy_from_slice(&data[..n]);
                self.off = true;
                return Err(IoError::Device);
            }
            Some(Fault::Sectors(mask)) => {
                for (i, (to, from)) in target.chunks_mut(SECTOR).zip(data.chunks(SECTOR)).enumerate() {
                    if mask & (1 << i) != 0 {
                        to.copy_from_slice(from);
                    }
                }
                self.off = true;
                return Err(IoError::Device);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        if self.off || matches!(self.fault, Some(Fault::Flush)) {
            self.off = true;
            return Err(IoError::Device);
        }
        self.flushes += 1;
        Ok(())
    }
}

const KEY: RecordKey = RecordKey::BootCount;

fn disk() -> MemDisk {
    MemDisk::new(Store::<MemDisk>::NEEDED_SECTORS)
}

fn value(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Value of the record after the disk is powered on again and the store reopened.
fn reopen(disk: MemDisk) -> (Option<Vec<u8>>, MemDisk) {
    let mut store = Store::open(disk.power_on()).unwrap();
    let got = store.get(KEY).unwrap();
    (got, store.dev)
}

/// A disk holding the given versions of the record, written in order.
fn with_history(history: &[&[u8]]) -> MemDisk {
    let mut store = Store::open(disk()).unwrap();
    for v in history {
        store.put(KEY, v).unwrap();
    }
    store.dev
}

/// Puts `new` on a disk holding `history` with `fault`; checks that the record then reads as its
/// last value or as `new`, that the store keeps working, and returns whether `new` won.
fn put_with_fault(history: &[&[u8]], new: &[u8], fault: Fault) -> bool {
    let mut disk = with_history(history);
    disk.fault = Some(fault);
    let mut store = Store::open(disk).unwrap();
    assert!(store.put(KEY, new).is_err(), "{fault:?}: a failed put reported success");
    let (got, disk) = reopen(store.dev);
    let old = history.last().map(|v| v.to_vec());
    let got_new = got.as_deref() == Some(new);
    assert!(got_new || got == old, "{fault:?}: neither old nor new: {got:?}");

    // After the crash the store goes on: the next puts land and survive a reopen.
    let mut store = Store::open(disk).unwrap();
    for seed in [200u8, 201, 202] {
        let v = value(seed, 10 + seed as usize);
        store.put(KEY, &v).unwrap();
        assert_eq!(reopen(store.dev.clone()).0, Some(v));
    }
    got_new
}

#[test]
fn an_empty_or_garbage_disk_has_no_record() {
    let mut store = Store::open(disk()).unwrap();
    assert_eq!(store.get(KEY), Ok(None));
    let mut junk = disk();
    junk.bytes.iter_mut().enumerate().for_each(|(i, b)| *b = (i * 7 + 3) as u8);
    let mut store = Store::open(junk).unwrap();
    assert_eq!(store.get(KEY), Ok(None));
    store.put(KEY, b"x").unwrap();
    assert_eq!(reopen(store.dev).0.as_deref(), Some(&b"x"[..]));
}

#[test]
fn round_trips_values_of_every_size_and_alternates_slots() {
    let mut store = Store::open(disk()).unwrap();
    for (i, len) in [0, 1, 487, 488, 489, 1000, MAX_VALUE, 3].into_iter().enumerate() {
        let v = value(i as u8, len);
        store.put(KEY, &v).unwrap();
        assert_eq!(store.get(KEY).unwrap(), Some(v.clone()));
        let (got, disk) = reopen(store.dev);
        assert_eq!(got, Some(v));
        store = Store::open(disk).unwrap();
    }
    // Each put was one write and one flush.
    assert_eq!((store.dev.writes, store.dev.flushes), (8, 8));
    // Slot A holds sequence 7, slot B sequence 8.
    let seq = |slot: usize| {
        let at = (KEY.first_sector() as usize + slot * SLOT_SECTORS as usize) * SECTOR + 8;
        u64::from_le_bytes(store.dev.bytes[at..at + 8].try_into().unwrap())
    };
    assert_eq!((seq(0), seq(1)), (7, 8));
}

#[test]
fn refuses_oversized_values_and_small_devices() {
    let mut store = Store::open(disk()).unwrap();
    assert_eq!(store.put(KEY, &vec![0; MAX_VALUE + 1]), Err(StoreError::TooLarge(MAX_VALUE + 1)));
    assert_eq!(store.dev.writes, 0);
    let needed = Store::<MemDisk>::NEEDED_SECTORS;
    let err = Store::open(MemDisk::new(needed - 1)).err().unwrap();
    assert_eq!(err, StoreError::DeviceTooSmall { needed, sectors: needed - 1 });
}

/// Found by the `store` fuzz target: a valid record numbered `u64::MAX` (possible only on a
/// foreign or crafted disk) must make `put` fail, not wrap to 0 and lose the write.
#[test]
fn a_record_with_the_last_version_number_refuses_new_versions() {
    let mut store = Store::open(disk()).unwrap();
    store.put(KEY, b"old").unwrap(); // slot A, version 1
    let mut dev = store.dev;
    let mut slot = vec![0u8; SECTOR];
    dev.read(KEY.first_sector(), &mut slot).unwrap();
    slot[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let crc = crate::record_crc(&slot[..20], b"old");
    slot[20..24].copy_from_slice(&crc.to_le_bytes());
    dev.write(KEY.first_sector(), &slot).unwrap();

    let mut store = Store::open(dev).unwrap();
    assert_eq!(store.get(KEY), Ok(Some(b"old".to_vec())), "the crafted record is valid");
    assert_eq!(store.put(KEY, b"new"), Err(StoreError::Exhausted));
    assert_eq!(store.increment(KEY), Err(StoreError::Exhausted));
    assert_eq!(reopen(store.dev).0, Some(b"old".to_vec()), "nothing was written");
}

#[test]
fn counts_boots() {
    let mut store = Store::open(disk()).unwrap();
    assert_eq!(store.increment(KEY), Ok(1));
    assert_eq!(store.increment(KEY), Ok(2));
    let mut store = Store::open(reopen(store.dev).1).unwrap();
    assert_eq!(store.increment(KEY), Ok(3));
    // A value of the wrong length counts as zero.
    store.put(KEY, b"odd").unwrap();
    assert_eq!(store.increment(KEY), Ok(1));
}

#[test]
fn a_read_error_is_reported_and_nothing_is_written() {
    let mut d = with_history(&[b"old"]);
    d.off = true;
    let mut store = Store::open(d).unwrap();
    assert_eq!(store.get(KEY), Err(StoreError::Io(IoError::Device)));
    assert_eq!(store.put(KEY, b"new"), Err(StoreError::Io(IoError::Device)));
    assert_eq!(reopen(store.dev).0.as_deref(), Some(&b"old"[..]));
}

#[test]
fn a_write_torn_at_any_byte_leaves_the_old_or_the_new_value() {
    let old_short = value(1, 40);
    let old_long = value(2, 1500);
    let new_short = value(3, 100);
    let new_long = value(4, 1200);
    let histories: [&[&[u8]]; 4] =
        [&[], &[&old_short], &[&old_long, &old_short], &[&old_short, &old_long, &old_short]];
    for history in histories {
        for new in [&new_short, &new_long] {
            let write_len = (HEADER + new.len()).div_ceil(SECTOR) * SECTOR;
            for cut in 0..=write_len {
                let got_new = put_with_fault(history, new, Fault::Cut(cut));
                // Nothing written: the old value. The whole record written: the new one. In
                // between either, as the bytes not yet written may already hold the new ones.
                if cut == 0 {
                    assert!(!got_new, "history {}: nothing was written", history.len());
                }
                if cut >= HEADER + new.len() {
                    assert!(got_new, "history {}, cut at {cut}: the record was whole", history.len());
                }
            }
        }
    }
}

#[test]
fn a_write_reaching_any_subset_of_its_sectors_leaves_the_old_or_the_new_value() {
    let new = value(9, 1600); // 4 sectors
    for mask in 0..16u64 {
        let got_new = put_with_fault(&[&value(8, 2000), &value(7, 30)], &new, Fault::Sectors(mask));
        assert_eq!(got_new, mask == 0b1111, "mask {mask:#b}");
    }
}

#[test]
fn a_failed_flush_is_reported_and_leaves_the_old_or_the_new_value() {
    assert!(put_with_fault(&[b"old"], b"new", Fault::Flush));
}

#[test]
fn a_long_run_of_crashes_never_loses_the_record() {
    // A deterministic pseudo-random sequence of puts, each cut at some byte.
    let mut seed = 0x2545_f491_u64;
    let mut rand = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut committed = value(0, 64);
    let mut disk = with_history(&[&committed]);
    for round in 0..300 {
        let new = value(round as u8, 1 + rand(1300));
        let write_len = (HEADER + new.len()).div_ceil(SECTOR) * SECTOR;
        disk.fault = Some(Fault::Cut(rand(write_len + 1)));
        let mut store = Store::open(disk).unwrap();
        assert!(store.put(KEY, &new).is_err());
        let (got, d) = reopen(store.dev);
        let got = got.expect("the record vanished");
        assert!(got == committed || got == new, "round {round}");
        committed = got;
        disk = d;
    }
}

#[test]
fn key_numbers_and_places_are_fixed() {
    let numbers: Vec<u16> = RecordKey::ALL.iter().map(|k| k.number()).collect();
    assert_eq!(numbers, [0, 1, 2, 3, 4, 5]);
    let firsts: Vec<u64> = RecordKey::ALL.iter().map(|k| k.first_sector()).collect();
    assert_eq!(firsts, [8, 24, 40, 56, 72, 88]);
    assert_eq!((NEEDED_SECTORS, Store::<MemDisk>::NEEDED_SECTORS), (104, 104));
    assert_eq!(MAX_VALUE, 4072);
}

#[test]
fn a_boot_count_written_by_the_first_version_still_reads() {
    // Slot B of BootCount as the first version of the store wrote it: sequence 3, count 41. The
    // checksum is zlib's crc32 of the header's first 20 bytes and the value.
    let mut disk = MemDisk::new(NEEDED_SECTORS);
    let at = 16 * SECTOR;
    disk.bytes[at..at + 4].copy_from_slice(b"SCR1");
    disk.bytes[at + 8] = 3;
    disk.bytes[at + 16] = 8;
    disk.bytes[at + 20..at + 24].copy_from_slice(&0x9c55_ac49_u32.to_le_bytes());
    disk.bytes[at + 24] = 41;
    let mut store = Store::open(disk).unwrap();
    assert_eq!(store.increment(RecordKey::BootCount), Ok(42));
    assert_eq!(store.get(RecordKey::Keystore), Ok(None));
    assert_eq!(store.get(RecordKey::SigningHistory), Ok(None));
    assert_eq!(store.get(RecordKey::EcdsaKeystore), Ok(None));
    // The next version went to slot A.
    assert_eq!(&store.dev.bytes[8 * SECTOR..][..4], b"SCR1");
}

#[test]
fn keys_are_independent_and_a_slot_of_another_key_is_not_accepted() {
    let mut store = Store::open(disk()).unwrap();
    let keystore = value(5, 1100); // about the size of an EIP-2335 keystore
    store.put(RecordKey::Keystore, &keystore).unwrap();
    assert_eq!(store.increment(RecordKey::BootCount), Ok(1));
    store.put(RecordKey::SigningHistory, b"history").unwrap();
    let (_, mut disk) = reopen(store.dev);
    let mut store = Store::open(disk.clone()).unwrap();
    assert_eq!(store.get(RecordKey::Keystore).unwrap(), Some(keystore));
    assert_eq!(store.get(RecordKey::BootCount).unwrap(), Some(1u64.to_le_bytes().to_vec()));
    assert_eq!(store.get(RecordKey::SigningHistory).unwrap().as_deref(), Some(&b"history"[..]));

    // The keystore's slots copied over the signing history's: their key number gives them away.
    let from = RecordKey::Keystore.first_sector() as usize * SECTOR;
    let to = RecordKey::SigningHistory.first_sector() as usize * SECTOR;
    disk.bytes.copy_within(from..from + 2 * SLOT_BYTES, to);
    let mut store = Store::open(disk).unwrap();
    assert_eq!(store.get(RecordKey::SigningHistory), Ok(None));
    assert!(store.get(RecordKey::Keystore).unwrap().is_some());
}

/// A disk holding only the records `old`, as one from before the record `new` existed: nothing
/// is written from `new`'s first sector on, `new` reads as absent and then takes `value`, and
/// every record reads back, `new` first.
fn an_older_disk_takes(old: &[(RecordKey, &[u8])], new: RecordKey, value: &[u8]) {
    let mut store = Store::open(MemDisk::new(NEEDED_SECTORS)).unwrap();
    for (key, bytes) in old {
        store.put(*key, bytes).unwrap();
    }
    let (_, disk) = reopen(store.dev);
    let old_area = new.first_sector() as usize * SECTOR;
    assert!(disk.bytes[old_area..].iter().all(|&b| b == 0), "nothing was written past the old layout");
    let mut store = Store::open(disk).unwrap();
    assert_eq!(store.get(new), Ok(None));
    store.put(new, value).unwrap();
    let (_, disk) = reopen(store.dev);
    let mut store = Store::open(disk).unwrap();
    assert_eq!(store.get(new).unwrap().as_deref(), Some(value));
    for (key, bytes) in old {
        assert_eq!(store.get(*key).unwrap().as_deref(), Some(*bytes));
    }
}

#[test]
fn a_disk_written_before_the_ecdsa_record_reads_the_same_and_takes_one() {
    // Only the three older records written, as a disk from before `EcdsaKeystore` holds them.
    let old: [(RecordKey, &[u8]); 2] =
        [(RecordKey::Keystore, b"bls key file"), (RecordKey::SigningHistory, b"history")];
    an_older_disk_takes(&old, RecordKey::EcdsaKeystore, b"ecdsa keystore");
}

#[test]
fn a_disk_written_before_the_chain_cursor_reads_the_same_and_takes_one() {
    // The four older records written, as a disk from before `ChainCursor` holds them.
    let old: [(RecordKey, &[u8]); 2] =
        [(RecordKey::EcdsaKeystore, b"ecdsa keystore"), (RecordKey::SigningHistory, b"history")];
    an_older_disk_takes(&old, RecordKey::ChainCursor, b"cursor");
}

#[test]
fn record_checksums_are_zlibs_crc32() {
    // The standard check values of CRC-32/ISO-HDLC, split anywhere between header and value.
    assert_eq!(crate::record_crc(b"", b""), 0);
    assert_eq!(crate::record_crc(b"1234", b"56789"), 0xCBF4_3926);
    assert_eq!(crate::record_crc(b"The quick brown ", b"fox jumps over the lazy dog"), 0x414F_A339);
}
