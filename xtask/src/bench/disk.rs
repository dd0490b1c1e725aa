//! `cargo xtask bench disk`: random 4 KiB writes each made durable, and a sequential read, done
//! by the guest on its virtio-blk disk (`spacecore.selftest=disk-bench:N:M`, see
//! `kernel-app/src/diskbench.rs`), then by the host on the same file at the same offsets.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde::Serialize;

use test_support::log::LogLine;

use super::boot::number_after;
use super::stats::percentile;
use super::vm::{self, Launcher, Scratch};
use super::write_json;
use crate::cmd::progress;

/// Bytes of one write; bytes of one read request.
const BLOCK: u64 = 4096;
const READ_CHUNK: usize = 64 * 1024;
/// The guest's generator seed (`diskbench::SEED`).
const SEED: u64 = 0x5ca1_ab1e_d15c_0001;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const MIB: u64 = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Random 4 KiB writes, each followed by a flush.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    ops: u32,
    /// MiB read sequentially, in 64 KiB requests.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    read_mib: u32,
}

/// One side's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Side {
    write_ops_per_s: f64,
    write_p50_us: f64,
    write_p99_us: f64,
    write_total_us: f64,
    read_mb_s: f64,
    read_total_us: f64,
}

/// What the guest printed.
#[derive(Debug, Clone, PartialEq)]
struct GuestReport {
    first_sector: u64,
    blocks: u64,
    offsets_hash: u64,
    ops: u32,
    read_mib: u32,
    side: Side,
}

/// Everything the bench measured; written to `target/bench/disk.json`.
#[derive(Debug, Serialize)]
struct Report {
    ops: u32,
    read_mib: u32,
    disk_bytes: u64,
    disk_path: String,
    region_first_byte: u64,
    guest: Side,
    host: Side,
    host_write_samples_us: Vec<f64>,
}

pub fn run(args: &Args) -> Result<()> {
    let prepared = vm::prepare("disk")?;
    let scratch = Scratch::new("disk")?;
    let disk_bytes = 2 * MIB * u64::from(args.read_mib).max(128);
    let disk = scratch.path().join("disk.img");
    progress(format_args!(
        "writing the {} MiB disk {} (second half filled)...",
        disk_bytes / MIB,
        disk.display()
    ));
    create_disk(&disk, disk_bytes)?;

    let resources = format!("storage = \"{}Mi\"\n", disk_bytes / MIB);
    let tables = format!("[spec.storage]\npath = {}\n", vm::toml_string(&disk.to_string_lossy()));
    let spec = vm::write_spec(scratch.path(), "bench-disk", &prepared.image, &resources, &tables)?;
    let selftest = format!("spacecore.selftest=disk-bench:{}:{}", args.ops, args.read_mib);
    progress(format_args!("guest: booting with --cmdline {selftest}..."));
    let mut launcher = Launcher::spawn(&prepared.launch, &spec, scratch.path(), &["--cmdline", &selftest])?;
    // Generous and bounded: 60 s, plus 50 ms a write and 1 s a MiB read.
    let limit = Duration::from_secs(60 + u64::from(args.read_mib)) + Duration::from_millis(50) * args.ops;
    let status = launcher.wait(limit)?;
    if !status.success() {
        return Err(launcher.failure(status));
    }
    let guest = parse_guest(&launcher.lines()?).context("reading the guest's disk-bench lines")?;
    ensure!(
        (guest.ops, guest.read_mib, guest.first_sector * 512) == (args.ops, args.read_mib, disk_bytes / 2),
        "the guest ran another bench: {guest:?}"
    );
    let offsets = offsets(guest.first_sector * 512, guest.blocks, args.ops);
    ensure!(
        hash(&offsets) == guest.offsets_hash,
        "the guest wrote at other offsets than the host computes (offsets_hash {:#x})",
        guest.offsets_hash
    );

    progress("host: the same writes and read on the same file...");
    let (host, samples) = host_io(&disk, &offsets, guest.first_sector * 512, args.read_mib)?;
    let report = Report {
        ops: args.ops,
        read_mib: args.read_mib,
        disk_bytes,
        disk_path: disk.display().to_string(),
        region_first_byte: guest.first_sector * 512,
        guest: guest.side,
        host,
        host_write_samples_us: samples,
    };
    print!("{}", render(&report));
    let out = write_json("disk", &report)?;
    println!("figures written to {}", out.display());
    Ok(())
}

/// Creates `path` with `bytes` bytes: the first half sparse, the second half written with a
/// pattern (so reads hit real blocks), synced and dropped from the page cache.
fn create_disk(path: &Path, bytes: u64) -> Result<()> {
    let mut file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.set_len(bytes)?;
    let mut chunk: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();
    let mut at = bytes / 2;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(at))?;
    while at < bytes {
        chunk[..8].copy_from_slice(&at.to_le_bytes());
        file.write_all(&chunk)?;
        at += MIB;
    }
    file.sync_all()?;
    drop_cache(&file)
}

/// `posix_fadvise(POSIX_FADV_DONTNEED)` on the whole file (its clean pages leave the cache).
fn drop_cache(file: &File) -> Result<()> {
    rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed).context("posix_fadvise(DONTNEED)")
}

/// The byte offsets of the guest's writes: xorshift64 from `SEED`, block `next % blocks` of the
/// region at `first_byte` (as `kernel-app/src/diskbench.rs`).
fn offsets(first_byte: u64, blocks: u64, ops: u32) -> Vec<u64> {
    let mut x = SEED;
    (0..ops)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            first_byte + x % blocks.max(1) * BLOCK
        })
        .collect()
}

/// The guest's `offsets_hash`: FNV-1a over the sector numbers.
fn hash(offsets: &[u64]) -> u64 {
    offsets.iter().fold(FNV_OFFSET, |h, &at| (h ^ (at / 512)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The host's run: a 4 KiB `pwrite` + `fdatasync` at each offset, then (after dropping the
/// file from the page cache) a sequential read of `read_mib` MiB from `first_byte`.
fn host_io(path: &Path, offsets: &[u64], first_byte: u64, read_mib: u32) -> Result<(Side, Vec<f64>)> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut block = vec![0u8; BLOCK as usize];
    let mut samples = Vec::with_capacity(offsets.len());
    let start = Instant::now();
    for (i, &at) in offsets.iter().enumerate() {
        block.fill(i as u8);
        let t = Instant::now();
        file.write_all_at(&block, at)?;
        file.sync_data()?;
        samples.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    let write_total = start.elapsed();

    drop_cache(&file)?;
    let read_bytes = u64::from(read_mib) * MIB;
    let mut chunk = vec![0u8; READ_CHUNK];
    let start = Instant::now();
    for at in (0..read_bytes).step_by(READ_CHUNK) {
        let len = (read_bytes - at).min(READ_CHUNK as u64) as usize;
        file.read_exact_at(&mut chunk[..len], first_byte + at)?;
    }
    let read_total = start.elapsed();
    let side = Side {
        write_ops_per_s: offsets.len() as f64 / write_total.as_secs_f64().max(1e-9),
        write_p50_us: percentile(&samples, 50.0).unwrap_or(0.0),
        write_p99_us: percentile(&samples, 99.0).unwrap_or(0.0),
        write_total_us: write_total.as_nanos() as f64 / 1000.0,
        read_mb_s: read_bytes as f64 / read_total.as_secs_f64().max(1e-9) / 1e6,
        read_total_us: read_total.as_nanos() as f64 / 1000.0,
    };
    Ok((side, samples))
}

/// Reads the guest's three `disk-bench:` lines (lines of the JSON log whose source is the guest
/// only).
fn parse_guest(log: &[LogLine]) -> Result<GuestReport> {
    let line = |key: &str| {
        log.iter().find_map(|l| l.guest(key)).with_context(|| format!("no `{key}` line from the guest"))
    };
    let num = |line: &str, key: &str| -> Result<f64> {
        number_after(line, key)
            .map(|(n, _)| n)
            .with_context(|| format!("no number after `{key}` in {line:?}"))
    };
    let region = line("disk-bench: region ")?;
    let hex = region.split("offsets_hash=0x").nth(1).context("no offsets_hash")?;
    let writes = line("disk-bench: write4k+flush ")?;
    let read = line("disk-bench: seqread ")?;
    let (ops, write_total_us) = (num(writes, "ops=")?, num(writes, "total_us=")?);
    Ok(GuestReport {
        first_sector: num(region, "first_sector=")? as u64,
        blocks: num(region, "blocks4k=")? as u64,
        offsets_hash: u64::from_str_radix(hex.trim(), 16).context("bad offsets_hash")?,
        ops: ops as u32,
        read_mib: num(read, "mib=")? as u32,
        side: Side {
            write_ops_per_s: ops / (write_total_us / 1e6).max(1e-9),
            write_p50_us: num(writes, "p50_us=")?,
            write_p99_us: num(writes, "p99_us=")?,
            write_total_us,
            read_mb_s: num(read, "mb_per_s=")?,
            read_total_us: num(read, "total_us=")?,
        },
    })
}

/// The table printed at the end of the bench.
fn render(r: &Report) -> String {
    let mut out = format!(
        "\ndisk bench: {} random 4 KiB writes each + flush, then a {} MiB sequential read in 64 KiB \
         requests,\non a {} MiB raw file ({}), in its second half; guest first, then the host\n",
        r.ops,
        r.read_mib,
        r.disk_bytes / MIB,
        r.disk_path
    );
    out.push_str(&format!("{:<22} {:>13} {:>13} {:>11}   target\n", "", "guest", "host", "guest/host"));
    let mut row = |name: &str, guest: f64, host: f64, show: &dyn Fn(f64) -> String| {
        let ratio = format!("{:.2}x", guest / host);
        out.push_str(&format!("{name:<22} {:>13} {:>13} {ratio:>11}   -\n", show(guest), show(host)));
    };
    let (g, h) = (&r.guest, &r.host);
    let us = |x: f64| format!("{x:.1} µs");
    row("write4k+flush ops/s", g.write_ops_per_s, h.write_ops_per_s, &|x| format!("{x:.0}"));
    row("write4k+flush p50", g.write_p50_us, h.write_p50_us, &us);
    row("write4k+flush p99", g.write_p99_us, h.write_p99_us, &us);
    row("seq read", g.read_mb_s, h.read_mb_s, &|x| format!("{x:.1} MB/s"));
    out.push_str(
        "MB = 10^6 bytes; no targets yet, so no PASS/MISS. The guest's figures are its own (TSC), the host's\n\
         pwrite+fdatasync and pread. The launcher uses buffered I/O: the file was dropped from the page\n\
         cache (posix_fadvise DONTNEED) before the boot and again before the host's read, but blocks\n\
         written by the write phase (and readahead) may still be served from the page cache on both sides.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guest's `offsets_hash` for 1000 writes in the second half of a 256 MiB disk: the same
    /// constant is checked in `kernel-app/src/diskbench.rs`.
    const HASH_1000_OPS_256_MIB: u64 = 0x2f1b_7821_4079_606d;

    #[test]
    fn offsets_follow_the_guests_generator() {
        let offsets = offsets(128 * MIB, 32768, 1000);
        assert!(offsets.iter().all(|&at| at >= 128 * MIB && at + BLOCK <= 256 * MIB && at % BLOCK == 0));
        assert_eq!(hash(&offsets), HASH_1000_OPS_256_MIB);
        assert_eq!(hash(&[]), FNV_OFFSET);
    }

    const LOG: &str = "\
[bench-disk launcher] disk: /tmp/x/disk.img (268435456 bytes)
[bench-disk launcher] disk-bench: write4k+flush ops=9 total_us=9 p50_us=1 p99_us=1
[bench-disk guest] disk-bench: 1000 random 4 KiB writes + flush, then a sequential read of 64 MiB
[bench-disk guest] disk-bench: region first_sector=262144 blocks4k=32768 offsets_hash=0x00000000000000ab
[bench-disk guest] disk-bench: write4k+flush ops=1000 total_us=500000 p50_us=480.5 p99_us=900.0
[bench-disk guest] disk-bench: seqread mib=64 total_us=67108 mb_per_s=1000.0
[bench-disk launcher] guest exited cleanly
";

    fn log(text: &str) -> Vec<LogLine> {
        crate::bench::vm::plain_lines(text)
    }

    #[test]
    fn reads_the_guests_lines_only() {
        let report = parse_guest(&log(LOG)).unwrap();
        let side = Side {
            write_ops_per_s: 2000.0,
            write_p50_us: 480.5,
            write_p99_us: 900.0,
            write_total_us: 500000.0,
            read_mb_s: 1000.0,
            read_total_us: 67108.0,
        };
        let expected = GuestReport {
            first_sector: 262144,
            blocks: 32768,
            offsets_hash: 0xab,
            ops: 1000,
            read_mib: 64,
            side,
        };
        assert_eq!(report, expected);
        let launcher_only = LOG.replace("guest] disk-bench: write4k", "launcher] disk-bench: write4k");
        assert!(parse_guest(&log(&launcher_only)).is_err());
        assert!(parse_guest(&log(&LOG.replace("offsets_hash=0x", "offsets_hash="))).is_err());
        assert!(parse_guest(&log(&LOG.replace("mb_per_s=1000.0", "mb_per_s=x"))).is_err());
    }

    #[test]
    fn table_shows_both_sides_and_ratios() {
        let side = |x: f64| Side {
            write_ops_per_s: 1000.0 * x,
            write_p50_us: 100.0 / x,
            write_p99_us: 200.0 / x,
            write_total_us: 1.0,
            read_mb_s: 500.0 * x,
            read_total_us: 1.0,
        };
        let report = Report {
            ops: 1000,
            read_mib: 64,
            disk_bytes: 256 * MIB,
            disk_path: "/tmp/d.img".into(),
            region_first_byte: 128 * MIB,
            guest: side(1.0),
            host: side(4.0),
            host_write_samples_us: vec![],
        };
        let table = render(&report);
        let line = |name: &str| table.lines().find(|l| l.starts_with(name)).unwrap().to_owned();
        assert!(line("write4k+flush ops/s").contains("0.25x"), "{table}");
        assert!(line("write4k+flush p50").contains("4.00x"), "{table}");
        assert!(line("seq read").contains("2000.0 MB/s"), "{table}");
    }
}
