//! `cargo xtask bench net`: HTTP round-trip latency and echo throughput of a spacecore through
//! its published port, against a baseline HTTP/1.1 server on the host's loopback (no VM in
//! between), with the same client.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use test_support::log::LogLine;

use super::http::{Baseline, Client};
use super::stats::percentile;
use super::vm::{self, Launcher, Scratch};
use super::{verdict, write_json};
use crate::cmd::progress;

const P50_TARGET_US: f64 = 150.0;
const ONE_WAY_TARGET_MB_S: f64 = 200.0;
/// Untimed `GET /` requests before the timed ones.
const WARMUP: u32 = 100;
/// Untimed echoes before the timed ones.
const BULK_WARMUP: u32 = 2;
/// Bytes of one echo body.
const BODY: usize = 1 << 20;
/// Longest wait for the launcher's lines, and for its exit after SIGTERM.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Timed `GET /` requests per server, after 100 untimed ones.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
    requests: u32,
    /// 1 MiB echoes (`POST /echo`) per server.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    bulk_mib: u32,
}

/// `GET /` round trips, in µs.
#[derive(Debug, Serialize)]
struct Latency {
    p50_us: f64,
    p99_us: f64,
    min_us: f64,
    max_us: f64,
    samples_us: Vec<f64>,
}

/// The echoes, in MB/s (10^6 bytes).
#[derive(Debug, Serialize)]
struct Echo {
    elapsed_us: f64,
    /// `1 MiB * M / elapsed`: the target's definition.
    one_way_mb_s: f64,
    /// `(sent + received) / elapsed`.
    both_ways_mb_s: f64,
    /// Request bodies / the time from sending each request to the first byte of its answer.
    upload_mb_s: f64,
    /// Answer bodies / the time from each answer's first byte to its last.
    download_mb_s: f64,
}

#[derive(Debug, Serialize)]
struct Side {
    address: SocketAddr,
    get: Latency,
    echo: Echo,
}

#[derive(Debug, Serialize)]
struct Verdicts {
    p50: bool,
    one_way: bool,
}

/// Everything the bench measured; written to `target/bench/net.json`.
#[derive(Debug, Serialize)]
struct Report {
    requests: u32,
    warmup_requests: u32,
    bulk_mib: u32,
    guest_ready_us: f64,
    guest: Side,
    baseline: Side,
    target_p50_us: f64,
    target_one_way_mb_s: f64,
    pass: Verdicts,
}

pub fn run(args: &Args) -> Result<()> {
    let prepared = vm::prepare("net")?;
    let scratch = Scratch::new("net")?;
    let tables = "[spec.networking.inbound_ports]\nHTTP = 80\n\n[spec.networking.publish]\nHTTP = 0\n";
    let spec = vm::write_spec(scratch.path(), "bench-net", &prepared.image, "", tables)?;

    progress("booting spacecore (1 vCPU, 256 MiB, HTTP published on a free port)...");
    let mut launcher = Launcher::spawn(&prepared.launch, &spec, scratch.path(), &[])?;
    let addr = launcher.wait_for("`published HTTP:` line", LAUNCH_TIMEOUT, published_http)?;
    let ready_us = launcher.wait_for("`ready` event", LAUNCH_TIMEOUT, ready_us)?;
    progress(format_args!("guest ready in {:.2} ms; measuring it through {addr}...", ready_us / 1000.0));
    let guest = measure(addr, args).context("measuring the guest")?;
    progress("stopping the guest (SIGTERM)...");
    launcher.terminate(LAUNCH_TIMEOUT)?;

    let server = Baseline::start()?;
    progress(format_args!("measuring the baseline server on {}...", server.addr));
    let baseline = measure(server.addr, args).context("measuring the baseline")?;
    server.join()?;

    let report = Report {
        requests: args.requests,
        warmup_requests: WARMUP,
        bulk_mib: args.bulk_mib,
        guest_ready_us: ready_us,
        pass: Verdicts {
            p50: guest.get.p50_us <= P50_TARGET_US,
            one_way: guest.echo.one_way_mb_s >= ONE_WAY_TARGET_MB_S,
        },
        guest,
        baseline,
        target_p50_us: P50_TARGET_US,
        target_one_way_mb_s: ONE_WAY_TARGET_MB_S,
    };
    print!("{}", render(&report));
    let out = write_json("net", &report)?;
    println!("figures written to {}", out.display());
    Ok(())
}

/// The launcher's `published HTTP: ADDR -> guest ...` line (a plain line of the JSON log, from
/// the launcher): ADDR.
pub(super) fn published_http(line: &LogLine) -> Option<SocketAddr> {
    line.published("HTTP")
}

/// The launcher's `ready` event: its `ready_us`.
fn ready_us(line: &LogLine) -> Option<f64> {
    line.ready_us().map(|us| us as f64)
}

/// One connection to `addr`: warm-up, the timed `GET /`s, then the timed echoes.
fn measure(addr: SocketAddr, args: &Args) -> Result<Side> {
    let mut client = Client::connect(addr)?;
    for _ in 0..WARMUP {
        client.get_root()?;
    }
    let mut samples = Vec::with_capacity(args.requests as usize);
    for _ in 0..args.requests {
        let start = Instant::now();
        client.get_root()?;
        samples.push(start.elapsed().as_nanos() as f64 / 1000.0);
    }
    let pick = |p| percentile(&samples, p).unwrap_or(0.0);
    let get = Latency {
        p50_us: pick(50.0),
        p99_us: pick(99.0),
        min_us: pick(0.0),
        max_us: pick(100.0),
        samples_us: samples.clone(),
    };

    let mut body = pattern(BODY);
    for i in 0..BULK_WARMUP {
        body[..4].copy_from_slice(&i.to_le_bytes());
        client.echo(&body)?;
    }
    let (mut up, mut down) = (Duration::ZERO, Duration::ZERO);
    let start = Instant::now();
    for i in 0..args.bulk_mib {
        // Each body differs, so a stale or replayed answer fails the comparison.
        body[..4].copy_from_slice(&(BULK_WARMUP + i).to_le_bytes());
        let (u, d) = client.echo(&body)?;
        up += u;
        down += d;
    }
    let elapsed = start.elapsed();
    let bytes = BODY as f64 * f64::from(args.bulk_mib);
    let mb_s = |t: Duration| bytes / t.as_secs_f64().max(1e-9) / 1e6;
    let echo = Echo {
        elapsed_us: elapsed.as_nanos() as f64 / 1000.0,
        one_way_mb_s: mb_s(elapsed),
        both_ways_mb_s: 2.0 * mb_s(elapsed),
        upload_mb_s: mb_s(up),
        download_mb_s: mb_s(down),
    };
    Ok(Side { address: addr, get, echo })
}

/// `len` bytes of xorshift64 output.
fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The table printed at the end of the bench.
fn render(r: &Report) -> String {
    let (g, b) = (&r.guest, &r.baseline);
    let mut out = format!(
        "\nnet bench: {} x GET / (after {} untimed) then {} x 1 MiB POST /echo, one keep-alive connection \
         per server\nguest: spacecore through its published port {}; baseline: HTTP/1.1 server thread on {}\n",
        r.requests, r.warmup_requests, r.bulk_mib, g.address, b.address
    );
    let mut row = |name: &str, guest: String, base: String, ratio: String, target: &str, result: &str| {
        let line = format!("{name:<24} {guest:>12} {base:>12} {ratio:>14}   {target:<14} {result}");
        out.push_str(line.trim_end());
        out.push('\n');
    };
    row("", "guest".into(), "baseline".into(), "guest/baseline".into(), "target", "result");
    let us = |x: f64| format!("{x:.1} µs");
    let mb = |x: f64| format!("{x:.1} MB/s");
    let ratio = |x: f64, y: f64| format!("{:.2}x", x / y);
    let p50 = verdict(r.pass.p50);
    row("GET / p50", us(g.get.p50_us), us(b.get.p50_us), ratio(g.get.p50_us, b.get.p50_us), "<= 150 µs", p50);
    row("GET / p99", us(g.get.p99_us), us(b.get.p99_us), ratio(g.get.p99_us, b.get.p99_us), "-", "");
    let (ge, be) = (&g.echo, &b.echo);
    let mut echo = |name: &str, x: f64, y: f64, target: &str, result: &str| {
        row(name, mb(x), mb(y), ratio(x, y), target, result);
    };
    let one_way = verdict(r.pass.one_way);
    echo("echo one way", ge.one_way_mb_s, be.one_way_mb_s, ">= 200 MB/s", one_way);
    echo("echo both ways", ge.both_ways_mb_s, be.both_ways_mb_s, "-", "");
    echo("echo upload", ge.upload_mb_s, be.upload_mb_s, "-", "");
    echo("echo download", ge.download_mb_s, be.download_mb_s, "-", "");
    out.push_str(
        "MB = 10^6 bytes. one way = 1 MiB x echoes / elapsed (the target); both ways = (sent + received) \
         / elapsed;\nupload = request bodies / (send to first answer byte); download = answer bodies / \
         (first to last answer byte).\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_launcher_lines_only() {
        use serde_json::json;
        use test_support::log::{Source, json_line};
        let line =
            |source, message: &str, fields| LogLine::parse(&json_line(source, message, fields)).unwrap();
        let published = "published HTTP: 127.0.0.1:40123 -> guest 10.0.0.2:80";
        let event = |port: &str, address: &str| json!({"event": "published", "port": port, "address": address, "guest": "10.0.0.2:80"});
        assert_eq!(
            published_http(&line(Source::Launcher, published, event("HTTP", "127.0.0.1:40123"))),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        // A guest's line, and the words without the event, count for nothing.
        assert_eq!(published_http(&line(Source::Guest, published, event("HTTP", "127.0.0.1:40123"))), None);
        assert_eq!(published_http(&line(Source::Launcher, published, json!({}))), None);
        let https = "published https: 127.0.0.1:1 -> guest 10.0.0.2:443";
        assert_eq!(published_http(&line(Source::Launcher, https, event("https", "127.0.0.1:1"))), None);
        let ready = json!({"event": "ready", "ready_us": 4321});
        assert_eq!(ready_us(&line(Source::Launcher, "ready in 4321 us", ready.clone())), Some(4321.0));
        // The figure is the event's field; the words alone, or a guest's event, count for nothing.
        assert_eq!(ready_us(&line(Source::Guest, "ready in 4321 us", ready)), None);
        assert_eq!(ready_us(&line(Source::Launcher, "ready in 4321 us", json!({}))), None);
    }

    #[test]
    fn pattern_is_deterministic() {
        let p = pattern(1000);
        assert_eq!(p.len(), 1000);
        assert_eq!(p, pattern(1000));
        assert_ne!(p[..8], p[8..16]);
    }

    #[test]
    fn table_shows_targets_and_verdicts() {
        let side = |p50: f64, mb_s: f64| Side {
            address: "127.0.0.1:1".parse().unwrap(),
            get: Latency { p50_us: p50, p99_us: 2.0 * p50, min_us: 1.0, max_us: 9.0, samples_us: vec![] },
            echo: Echo {
                elapsed_us: 1.0,
                one_way_mb_s: mb_s,
                both_ways_mb_s: 2.0 * mb_s,
                upload_mb_s: mb_s,
                download_mb_s: mb_s,
            },
        };
        let report = Report {
            requests: 2000,
            warmup_requests: 100,
            bulk_mib: 64,
            guest_ready_us: 1.0,
            guest: side(100.0, 150.0),
            baseline: side(25.0, 1500.0),
            target_p50_us: P50_TARGET_US,
            target_one_way_mb_s: ONE_WAY_TARGET_MB_S,
            pass: Verdicts { p50: true, one_way: false },
        };
        let table = render(&report);
        let line = |name: &str| table.lines().find(|l| l.starts_with(name)).unwrap().to_owned();
        assert!(line("GET / p50").contains("4.00x") && line("GET / p50").ends_with("PASS"), "{table}");
        assert!(line("echo one way").ends_with("MISS"), "{table}");
        assert!(line("echo both ways").contains("300.0 MB/s"), "{table}");
    }
}
