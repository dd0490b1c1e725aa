//! The `disk-bench` self-test (`spacecore.selftest=disk-bench:OPS:MIB`): the raw speed of the
//! block device as the guest sees it, for `cargo xtask bench disk`.
//!
//! It works in the second half of the disk, from sector [`Region::first_sector`] (half the disk,
//! rounded up to 4 KiB, and never before the end of the store's records), so the store's records
//! at the start of the disk are never touched:
//! 1. `OPS` writes of 4 KiB, each followed by a flush, at 4 KiB-aligned offsets drawn from a
//!    xorshift64 generator seeded with [`SEED`]: write `i` (from 0) goes to block
//!    `next() % blocks` of the region and holds 4096 bytes of value `i as u8`;
//! 2. a sequential read of the first `MIB` MiB of the region in [`READ_CHUNK`] requests.
//!
//! Each phase is timed with the caller's clock. The report is three lines (see [`Report`]); the
//! host repeats the same I/O on the same file and checks `offsets_hash`, an FNV-1a hash of the
//! written sector numbers, to be sure it wrote at the same places. The offsets and the hash are
//! part of the interface with `xtask/src/bench/disk.rs`: change both together.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use spacecore_store::{BlockIo, IoError, SECTOR};

/// Bytes of one random write.
pub const BLOCK: usize = 4096;
/// Bytes of one sequential read request.
pub const READ_CHUNK: usize = 64 * 1024;
/// The generator's seed.
pub const SEED: u64 = 0x5ca1_ab1e_d15c_0001;
/// Sectors in a [`BLOCK`].
const BLOCK_SECTORS: u64 = (BLOCK / SECTOR) as u64;
/// Sectors the store's records use, from sector 0.
const STORE_SECTORS: u64 = spacecore_store::NEEDED_SECTORS;

/// Where the bench works: the second half of the disk, in whole blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First sector, a multiple of [`BLOCK_SECTORS`].
    pub first_sector: u64,
    /// Whole [`BLOCK`]s in the region.
    pub blocks: u64,
}

/// Why the bench did not run to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The second half of the disk cannot hold the read (or a single block).
    TooSmall {
        /// Sectors of the disk.
        sectors: u64,
        /// Bytes the second half must hold.
        needed_bytes: u64,
    },
    /// A request failed.
    Io(IoError),
}

impl From<IoError> for Error {
    fn from(e: IoError) -> Self {
        Error::Io(e)
    }
}

/// The region of a disk of `sectors` sectors for a read of `read_bytes`.
pub fn region(sectors: u64, read_bytes: u64) -> Result<Region, Error> {
    let first_sector = (sectors / 2).max(STORE_SECTORS).next_multiple_of(BLOCK_SECTORS);
    let blocks = sectors.saturating_sub(first_sector) / BLOCK_SECTORS;
    let needed_bytes = read_bytes.next_multiple_of(BLOCK as u64).max(BLOCK as u64);
    if blocks * (BLOCK as u64) < needed_bytes {
        return Err(Error::TooSmall { sectors, needed_bytes });
    }
    Ok(Region { first_sector, blocks })
}

/// xorshift64 (13, 7, 17).
#[derive(Debug, Clone)]
pub struct Xorshift(u64);

impl Xorshift {
    /// The generator at [`SEED`].
    pub fn new() -> Self {
        Xorshift(SEED)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// FNV-1a over 64-bit words, for `offsets_hash`.
fn fnv(hash: u64, word: u64) -> u64 {
    (hash ^ word).wrapping_mul(0x0000_0100_0000_01b3)
}

/// What the bench measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Where it ran.
    pub region: Region,
    /// Hash of the sectors written, in order.
    pub offsets_hash: u64,
    /// Time of each write and its flush, in ns, in order.
    pub write_ns: Vec<u64>,
    /// Time of the whole write phase, in ns.
    pub write_total_ns: u64,
    /// MiB read.
    pub read_mib: u32,
    /// Time of the whole read phase, in ns.
    pub read_total_ns: u64,
}

/// Runs the bench on `dev`; `now_ns` is a monotonic clock in ns.
pub fn run<D: BlockIo>(
    dev: &mut D,
    ops: u32,
    read_mib: u32,
    now_ns: &mut dyn FnMut() -> u64,
) -> Result<Report, Error> {
    let read_bytes = u64::from(read_mib) << 20;
    let region = region(dev.sectors(), read_bytes)?;
    let mut rng = Xorshift::new();
    let mut offsets_hash = 0xcbf2_9ce4_8422_2325;
    let mut block = vec![0u8; BLOCK];
    let mut write_ns = Vec::with_capacity(ops as usize);
    let start = now_ns();
    for i in 0..ops {
        let sector = region.first_sector + rng.next_u64() % region.blocks * BLOCK_SECTORS;
        offsets_hash = fnv(offsets_hash, sector);
        block.fill(i as u8);
        let t = now_ns();
        dev.write(sector, &block)?;
        dev.flush()?;
        write_ns.push(now_ns().wrapping_sub(t));
    }
    let write_total_ns = now_ns().wrapping_sub(start);

    let mut chunk = vec![0u8; READ_CHUNK];
    let start = now_ns();
    let mut done = 0;
    while done < read_bytes {
        let len = (read_bytes - done).min(READ_CHUNK as u64) as usize;
        dev.read(region.first_sector + done / SECTOR as u64, &mut chunk[..len])?;
        done += len as u64;
    }
    let read_total_ns = now_ns().wrapping_sub(start);
    Ok(Report { region, offsets_hash, write_ns, write_total_ns, read_mib, read_total_ns })
}

/// The `p`-th percentile (0..=100) of `samples`, interpolating linearly between the two nearest
/// ranks (as `xtask`'s `bench/stats.rs`); 0 for no samples.
pub fn percentile(samples: &[u64], p: u64) -> u64 {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let Some(last) = sorted.len().checked_sub(1) else { return 0 };
    let rank = p.min(100) as usize * last;
    let (below, fraction) = (rank / 100, (rank % 100) as u64);
    let above = (below + 1).min(last);
    sorted[below] + (sorted[above] - sorted[below]) * fraction / 100
}

/// ns as µs with one decimal.
struct Micros(u64);

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 / 1000, self.0 % 1000 / 100)
    }
}

/// The three lines the self-test prints (each ends with a newline).
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.region;
        writeln!(
            f,
            "disk-bench: region first_sector={} blocks4k={} offsets_hash={:#018x}",
            r.first_sector, r.blocks, self.offsets_hash
        )?;
        writeln!(
            f,
            "disk-bench: write4k+flush ops={} total_us={} p50_us={} p99_us={}",
            self.write_ns.len(),
            self.write_total_ns / 1000,
            Micros(percentile(&self.write_ns, 50)),
            Micros(percentile(&self.write_ns, 99)),
        )?;
        // MB/s = bytes per µs; one decimal.
        let tenths = (u64::from(self.read_mib) << 20) * 10_000 / self.read_total_ns.max(1);
        writeln!(
            f,
            "disk-bench: seqread mib={} total_us={} mb_per_s={}.{}",
            self.read_mib,
            self.read_total_ns / 1000,
            tenths / 10,
            tenths % 10
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    /// A disk in memory that logs its requests as `(kind, sector, bytes)`.
    struct LogDisk {
        sectors: u64,
        log: Vec<(char, u64, usize)>,
    }

    impl BlockIo for LogDisk {
        fn sectors(&self) -> u64 {
            self.sectors
        }
        fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
            self.log.push(('r', sector, buf.len()));
            Ok(())
        }
        fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), IoError> {
            assert!(data.iter().all(|&b| b == data[0]));
            self.log.push(('w', sector, data.len()));
            Ok(())
        }
        fn flush(&mut self) -> Result<(), IoError> {
            self.log.push(('f', 0, 0));
            Ok(())
        }
    }

    #[test]
    fn region_is_the_second_half_and_must_hold_the_read() {
        let mib = |n: u64| n << 20;
        assert_eq!(
            region(mib(256) / 512, mib(64)),
            Ok(Region { first_sector: mib(128) / 512, blocks: 32768 })
        );
        // An odd half is rounded up to a block; the store's first sectors stay out of reach.
        assert_eq!(region(1001, 4096), Ok(Region { first_sector: 504, blocks: 62 }));
        assert_eq!(region(mib(128) / 512, mib(64)).map(|r| r.blocks), Ok(16384));
        let too_small = region(mib(128) / 512 - 8, mib(64));
        assert_eq!(too_small, Err(Error::TooSmall { sectors: mib(128) / 512 - 8, needed_bytes: mib(64) }));
        assert!(matches!(region(15, 1), Err(Error::TooSmall { needed_bytes: 4096, .. })));
        assert!(matches!(region(16, 1), Err(Error::TooSmall { .. })), "would overlap the store");
        assert!(matches!(region(60, 1), Err(Error::TooSmall { .. })), "would overlap the store");
        assert!(matches!(region(88, 1), Err(Error::TooSmall { .. })), "would overlap the store");
        assert_eq!(region(200, 1), Ok(Region { first_sector: 104, blocks: 12 }));
        assert_eq!(region(128, 1), Ok(Region { first_sector: STORE_SECTORS, blocks: 3 }));
        assert_eq!(region(112, 1), Ok(Region { first_sector: STORE_SECTORS, blocks: 1 }));
        assert!(matches!(region(104, 1), Err(Error::TooSmall { .. })), "would overlap the store");
        assert_eq!(STORE_SECTORS, spacecore_store::Store::<LogDisk>::NEEDED_SECTORS);
    }

    #[test]
    fn writes_flushes_then_reads_in_order() {
        let mut disk = LogDisk { sectors: 4096, log: Vec::new() };
        let mut t = 0;
        let mut clock = || {
            t += 1000;
            t
        };
        let report = run(&mut disk, 3, 1, &mut clock).unwrap();
        let region = Region { first_sector: 2048, blocks: 256 };
        assert_eq!(report.region, region);
        let mut rng = Xorshift::new();
        let mut hash = 0xcbf2_9ce4_8422_2325;
        for op in disk.log[..6].chunks(2) {
            let sector = 2048 + rng.next_u64() % 256 * 8;
            hash = fnv(hash, sector);
            assert_eq!(op, [('w', sector, 4096), ('f', 0, 0)]);
        }
        assert_eq!(report.offsets_hash, hash);
        let reads: Vec<_> = (0..16).map(|i| ('r', 2048 + i * 128, READ_CHUNK)).collect();
        assert_eq!(disk.log[6..], reads[..]);
        assert_eq!(report.write_ns, [1000, 1000, 1000]);
        assert_eq!((report.write_total_ns, report.read_total_ns), (7000, 1000));
    }

    /// The offsets are part of the interface with `xtask/src/bench/disk.rs`, whose test checks
    /// the same hash for the same bench.
    #[test]
    fn offsets_hash_of_the_default_bench_is_pinned() {
        let mut disk = LogDisk { sectors: (256 << 20) / 512, log: Vec::new() };
        let report = run(&mut disk, 1000, 1, &mut || 0).unwrap();
        assert_eq!(report.region, Region { first_sector: (128 << 20) / 512, blocks: 32768 });
        assert_eq!(report.offsets_hash, 0x2f1b_7821_4079_606d);
    }

    #[test]
    fn xorshift_matches_its_definition() {
        let mut rng = Xorshift(1);
        assert_eq!(rng.next_u64(), 1082269761);
        assert_ne!(Xorshift::new().next_u64(), 0);
    }

    #[test]
    fn percentiles_interpolate() {
        let xs: Vec<u64> = (1..=11).map(|x| x * 100).collect();
        assert_eq!((percentile(&xs, 50), percentile(&xs, 90), percentile(&xs, 100)), (600, 1000, 1100));
        assert_eq!(percentile(&[100, 200], 25), 125);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 50), 0);
    }

    #[test]
    fn prints_the_three_lines() {
        let report = Report {
            region: Region { first_sector: 262144, blocks: 32768 },
            offsets_hash: 0xab,
            write_ns: vec![1500, 2500, 100_000],
            write_total_ns: 104_000,
            read_mib: 64,
            read_total_ns: 67_108_864, // 1 byte/ns = 1000 MB/s
        };
        assert_eq!(
            report.to_string(),
            "disk-bench: region first_sector=262144 blocks4k=32768 offsets_hash=0x00000000000000ab\n\
             disk-bench: write4k+flush ops=3 total_us=104 p50_us=2.5 p99_us=98.0\n\
             disk-bench: seqread mib=64 total_us=67108 mb_per_s=1000.0\n"
        );
    }
}
