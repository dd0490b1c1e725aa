//! What the recovery and idle benches share: waiting for a spacecore to serve again (`GET /`
//! probes on fresh connections), reading a boot count, and the launcher's `ready` event.

use std::collections::BTreeMap;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use test_support::log::LogLine;

use super::http::read_head;

const GET_ROOT: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

/// A new probe starts this long after the one before, whatever became of it: the resolution of
/// the client's figures.
pub(super) const PROBE_STAGGER: Duration = Duration::from_millis(1);
/// Longest a probe may take (connect, request, answer); then it counts as timed out.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_millis(200);
/// Most probes in flight at once.
const MAX_PROBES: usize = 64;

/// Longest wait for a spacecore to serve (cold or after a crash).
pub(super) const SERVE_LIMIT: Duration = Duration::from_secs(10);

/// Longest wait for a launcher line, and for a launcher's exit after SIGTERM.
pub(super) const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two crashes, between two cold starts, and after a launcher's exit: longer
/// than a probe may live, so no probe of one measurement lands in the next, and time for the
/// kernel's deferred teardown of a VM and its namespace.
pub(super) const SETTLE: Duration = Duration::from_millis(300);

/// What a `GET /` answered with a boot count means to the caller.
#[derive(Debug, PartialEq)]
pub(super) enum Probe {
    /// What was waited for.
    Done,
    /// The guest from before the crash; go on.
    Stale,
    /// A failure of the run.
    Wrong(String),
}

/// How one probe ended.
#[derive(Debug)]
enum Outcome {
    /// 200 with a boot count.
    Answered(u64),
    /// Anything else: refused, closed, timed out, another status.
    Failed(String),
}

/// The first probe answered by what was waited for.
#[derive(Debug)]
pub(super) struct Served {
    /// When its answer arrived.
    pub(super) at: Instant,
    /// The boot count it answered with.
    pub(super) boot: u64,
    /// Probes sent.
    pub(super) probes: u32,
    /// Answers from the guest before the crash.
    pub(super) stale: u32,
}

/// Probes `GET /` through `addr` on fresh connections, a new one every [`PROBE_STAGGER`]
/// whatever became of the ones before (a probe sent while the guest is down may wait for a TCP
/// retransmission), each bounded by [`PROBE_TIMEOUT`], until one answers 200 with a boot count
/// that `judge` takes as [`Probe::Done`]. An error after [`SERVE_LIMIT`] from `start`.
pub(super) fn wait_serving(addr: SocketAddr, start: Instant, judge: impl Fn(u64) -> Probe) -> Result<Served> {
    let (tx, rx) = mpsc::channel();
    let deadline = start + SERVE_LIMIT;
    let (mut in_flight, mut probes, mut stale) = (0usize, 0u32, 0u32);
    let mut failures: BTreeMap<String, u32> = BTreeMap::new();
    let mut next = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline {
            bail!(
                "nothing answered GET / on {addr} with 200 within {SERVE_LIMIT:?} ({probes} probes: {failures:?})"
            );
        }
        if now >= next && in_flight < MAX_PROBES {
            let tx = tx.clone();
            thread::Builder::new().name("probe".into()).spawn(move || {
                let outcome = probe(addr);
                // The receiver is gone once a probe before this one succeeded.
                let _ = tx.send((Instant::now(), outcome));
            })?;
            in_flight += 1;
            probes += 1;
            next = now + PROBE_STAGGER;
        }
        let wait = next.saturating_duration_since(Instant::now()).max(Duration::from_micros(50));
        match rx.recv_timeout(wait) {
            Ok((at, Outcome::Answered(boot))) => {
                in_flight -= 1;
                match judge(boot) {
                    Probe::Done => return Ok(Served { at, boot, probes, stale }),
                    Probe::Stale => stale += 1,
                    Probe::Wrong(why) => bail!(why),
                }
            }
            Ok((_, Outcome::Failed(why))) => {
                in_flight -= 1;
                *failures.entry(why).or_default() += 1;
            }
            Err(_) => {}
        }
    }
}

/// One `GET /` on a fresh connection, bounded by [`PROBE_TIMEOUT`].
fn probe(addr: SocketAddr) -> Outcome {
    let result = Conn::open(addr, PROBE_TIMEOUT).and_then(|mut conn| conn.get_root());
    match result {
        Ok((200, Some(boot))) => Outcome::Answered(boot),
        Ok((status, _)) => Outcome::Failed(format!("answered {status}")),
        Err(e) => Outcome::Failed(failure_kind(&e)),
    }
}

/// A short name for why a probe failed.
fn failure_kind(e: &anyhow::Error) -> String {
    match e.downcast_ref::<std::io::Error>().map(std::io::Error::kind) {
        Some(ErrorKind::ConnectionRefused) => "refused".into(),
        Some(ErrorKind::WouldBlock | ErrorKind::TimedOut) => "timed out".into(),
        Some(ErrorKind::ConnectionReset) => "reset".into(),
        Some(kind) => format!("{kind:?}"),
        None => e.to_string(),
    }
}

/// A connection that asks `GET /` and reads the boot count of its answer.
pub(super) struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    line: String,
}

impl Conn {
    pub(super) fn open(addr: SocketAddr, timeout: Duration) -> Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Conn { stream, reader, line: String::new() })
    }

    /// Sends `request` as it is, and reads no answer.
    pub(super) fn send(&mut self, request: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(request)
    }

    /// `GET /`: the status and, for a 200 with a JSON object, its `boot_count`.
    pub(super) fn get_root(&mut self) -> Result<(u16, Option<u64>)> {
        self.stream.write_all(GET_ROOT)?;
        let head = read_head(&mut self.reader, &mut self.line)?.context("closed")?;
        let status = status_code(&head.first).with_context(|| format!("bad status line {:?}", head.first))?;
        ensure!(head.content_length <= 64 * 1024, "answer of {} bytes", head.content_length);
        let mut body = vec![0; head.content_length];
        self.reader.read_exact(&mut body)?;
        Ok((status, if status == 200 { boot_count(&body) } else { None }))
    }
}

/// `HTTP/1.1 200 OK`: 200.
pub(super) fn status_code(line: &str) -> Option<u16> {
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// `boot_count` of the guest's `GET /` answer.
pub(super) fn boot_count(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(body).ok()?.get("boot_count")?.as_u64()
}

/// The launcher's `ready` event: its `ready_us`.
pub(super) fn ready_us(line: &LogLine) -> Option<f64> {
    line.ready_us().map(|us| us as f64)
}

/// A free port on `127.0.0.1` (free when this returns; the launcher binds it later).
pub(super) fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot bind 127.0.0.1")?;
    Ok(listener.local_addr()?)
}

/// `d` in µs.
pub(super) fn micros(d: Duration) -> f64 {
    d.as_nanos() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_answers() {
        assert_eq!(status_code("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_code("HTTP/1.1 503 Service Unavailable"), Some(503));
        assert_eq!(status_code("HTTP/1.0 200 OK"), None);
        let body = br#"{"name":"rx","version":"0.1.0","boot_count":14,"uptime_ms":999,"operator_id":null}"#;
        assert_eq!(boot_count(body), Some(14));
        assert_eq!(boot_count(br#"{"boot_count":null}"#), None);
        assert_eq!(boot_count(b"not json"), None);
    }

    #[test]
    fn probes_find_a_server_that_starts_late_and_skip_stale_answers() {
        // A server that refuses for a while (not listening yet), then answers boot 7 twice
        // (the old guest), then boot 8.
        let addr = free_port().unwrap();
        let start = Instant::now();
        let server = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            let listener = TcpListener::bind(addr).unwrap();
            for (i, conn) in listener.incoming().enumerate() {
                let mut conn = conn.unwrap();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if read_head(&mut reader, &mut line).unwrap().is_none() {
                    continue;
                }
                let boot = if i < 2 { 7 } else { 8 };
                let body = format!("{{\"boot_count\":{boot}}}");
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                conn.write_all(answer.as_bytes()).unwrap();
                if boot == 8 {
                    break;
                }
            }
        });
        let judge = |boot| match boot {
            7 => Probe::Stale,
            8 => Probe::Done,
            b => Probe::Wrong(format!("boot {b}")),
        };
        let served = wait_serving(addr, start, judge).unwrap();
        assert_eq!((served.boot, served.stale), (8, 2));
        assert!(served.at - start >= Duration::from_millis(20));
        assert!(served.probes >= 3);
        server.join().unwrap();
    }
}
