//! `GET /metrics` on `spec.observability.metrics_address`: a small HTTP/1.1 server on std
//! threads. One request per connection (the answer says `Connection: close`), at most
//! [`MAX_CONNECTIONS`] at once (more are closed at once), a request head of at most
//! [`MAX_REQUEST`] bytes read within [`REQUEST_TIMEOUT`].
//!
//! The listener is bound in the launcher's network namespace, where scrapers reach it; with
//! the sidecar, the serving threads enter the spacecore's namespace, where the guest is.

use super::{GuestScrape, Sources, render};
use crate::network::netns::Netns;
use prom_text::CONTENT_TYPE;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// Longest request head read.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Time a client has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the metrics could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address cannot be listened on.
    #[error("spec.observability.metrics_address: cannot listen on {addr}: {source}{hint}", hint = if source.kind() == ErrorKind::AddrInUse { " (another program, or another spacecore, listens there; give each spacecore its own port)" } else { "" })]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The serving thread could not start.
    #[error("cannot start the metrics server: {0}")]
    Thread(std::io::Error),
}

/// Serves the metrics of `sources` on `addr`; returns the bound address (the real port when
/// asked for 0). With the sidecar, `netns` is the spacecore's namespace.
pub fn start(
    addr: SocketAddr,
    sources: Sources,
    netns: Option<Arc<Netns>>,
) -> Result<SocketAddr, MetricsError> {
    let listener = TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let sources = Arc::new(sources);
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            // Without the namespace the sidecar cannot reach the guest; the launcher's own
            // metrics are still served (and say the scrape failed).
            let in_namespace = netns.is_none_or(|ns| ns.enter().is_ok());
            crate::jail::enter(crate::jail::Kind::Control);
            serve(&listener, &sources, in_namespace);
        })
        .map_err(MetricsError::Thread)?;
    Ok(bound)
}

/// Serves on `addr` the exposition `render` writes at each scrape (the scaling launcher's
/// metrics, [`crate::scale`]), with the same limits as [`start`]; returns the bound address.
pub fn start_rendered(
    addr: SocketAddr,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) -> Result<SocketAddr, MetricsError> {
    let listener = TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let active = Arc::new(AtomicUsize::new(0));
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    active.fetch_sub(1, Ordering::AcqRel);
                    continue;
                }
                let (slot, render) = (active.clone(), render.clone());
                let spawned = std::thread::Builder::new().name("metrics-conn".into()).spawn(move || {
                    let answer = match read_request(&mut conn) {
                        Ok((method, path)) => respond(&method, &path, || render()),
                        Err(status) => response(status, "text/plain", format!("{}\n", reason(status)), &[]),
                    };
                    let _ = conn.set_write_timeout(Some(REQUEST_TIMEOUT));
                    let _ = conn.write_all(&answer);
                    slot.fetch_sub(1, Ordering::AcqRel);
                });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })
        .map_err(MetricsError::Thread)?;
    Ok(bound)
}

fn serve(listener: &TcpListener, sources: &Arc<Sources>, in_namespace: bool) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let Ok(conn) = conn else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            continue; // dropping it closes it
        }
        let (slot, sources) = (active.clone(), sources.clone());
        let spawned = std::thread::Builder::new().name("metrics-conn".into()).spawn(move || {
            answer(conn, &sources, in_namespace);
            slot.fetch_sub(1, Ordering::AcqRel);
        });
        if spawned.is_err() {
            // The connection went with the closure; give its slot back.
            active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Reads one request and answers it.
fn answer(mut conn: TcpStream, sources: &Sources, in_namespace: bool) {
    let response = match read_request(&mut conn) {
        Ok((method, path)) => respond(&method, &path, || {
            let guest = sources
                .sidecar
                .map(|target| if in_namespace { GuestScrape::read(target) } else { GuestScrape::default() });
            let rss = crate::host::rss_kib().unwrap_or(0) * 1024;
            render(sources, rss, guest.as_ref())
        }),
        Err(status) => response(status, "text/plain", format!("{}\n", reason(status)), &[]),
    };
    let _ = conn.set_write_timeout(Some(REQUEST_TIMEOUT));
    let _ = conn.write_all(&response);
}

/// The answer to `method path`; `metrics` renders the exposition.
fn respond(method: &str, path: &str, metrics: impl FnOnce() -> String) -> Vec<u8> {
    let path = path.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", "/metrics") => response(200, CONTENT_TYPE, metrics(), &[]),
        (_, "/metrics") => response(405, "text/plain", "only GET\n".into(), &[("Allow", "GET")]),
        _ => response(404, "text/plain", "not found; the metrics are at /metrics\n".into(), &[]),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

fn response(status: u16, content_type: &str, body: String, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

/// The method and target of the request on `conn`, or the status to refuse it with.
fn read_request(conn: &mut TcpStream) -> Result<(String, String), u16> {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut received = Vec::new();
    let mut chunk = [0u8; 1024];
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        if received.len() > MAX_REQUEST {
            return Err(431);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
            return Err(408);
        }
        match conn.read(&mut chunk) {
            Ok(0) => return Err(400),
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return Err(408),
            Err(_) => return Err(400),
        }
    }
    let line_end = received.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
    let line = std::str::from_utf8(&received[..line_end]).map_err(|_| 400u16)?;
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version), None)
            if version.starts_with("HTTP/1.") && !method.is_empty() =>
        {
            Ok((method.to_owned(), target.to_owned()))
        }
        _ => Err(400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Stats;

    fn sources() -> Sources {
        Sources {
            name: "node-a".into(),
            stats: Arc::new(Stats::new()),
            exits: Arc::default(),
            devices: Vec::new(),
            published: Vec::new(),
            egress: Vec::new(),
            sidecar: None,
        }
    }

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(request).unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn serves_metrics_and_refuses_everything_else() {
        let addr = start("127.0.0.1:0".parse().unwrap(), sources(), None).unwrap();
        assert_ne!(addr.port(), 0, "the bound port is returned");
        let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{ok}");
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())), "{head}");
        assert!(body.contains("spacecore_launcher_info{spacecore=\"node-a\""), "{body}");

        let post = exchange(addr, b"POST /metrics HTTP/1.1\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405 ") && post.contains("Allow: GET\r\n"), "{post}");
        assert!(exchange(addr, b"GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(exchange(addr, b"GET /metrics\r\n\r\n").starts_with("HTTP/1.1 400 "));
        assert!(exchange(addr, b"\xff\xfe /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 400 "));
        let huge = [b"GET /metrics HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_REQUEST + 10]].concat();
        assert!(exchange(addr, &huge).starts_with("HTTP/1.1 431 "));
        // Still serving.
        assert!(exchange(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200 "));
    }

    #[test]
    fn a_busy_address_is_an_error_naming_the_key() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let error = start(taken.local_addr().unwrap(), sources(), None).unwrap_err().to_string();
        assert!(
            error.starts_with("spec.observability.metrics_address: cannot listen on 127.0.0.1:"),
            "{error}"
        );
        assert!(error.contains("give each spacecore its own port"), "{error}");
    }
}
