//! The launcher's own HTTP client towards its guest: one `GET` per connection, for the health
//! checks and the metrics sidecar. The caller's thread must be in the spacecore's network
//! namespace (see [`super::netns::Netns::enter`]), where the guest's address is reachable.
//!
//! The guest is untrusted: the whole exchange has one deadline, the answer is read up to a
//! size limit, and anything that is not a well-formed HTTP/1.x answer is an error.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Longest answer head (status line and headers) read.
const MAX_HEAD: usize = 8 * 1024;

/// A guest's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body (framed by `Content-Length`, or read to the end of the connection).
    pub body: Vec<u8>,
}

/// `GET path` from `target`, all within `timeout`; the body may be at most `max_body` bytes.
pub fn get(target: SocketAddr, path: &str, timeout: Duration, max_body: usize) -> std::io::Result<Answer> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    let _ = stream.set_nodelay(true);
    stream.set_write_timeout(Some(left(deadline)?))?;
    stream.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(answer) = complete(&received, max_body)? {
            return Ok(answer);
        }
        stream.set_read_timeout(Some(left(deadline)?))?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Err(ErrorKind::TimedOut.into()),
            Err(e) => return Err(e),
        };
        if n == 0 {
            return at_end(&received, max_body);
        }
        received.extend_from_slice(&chunk[..n]);
    }
}

fn left(deadline: Instant) -> std::io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() { Err(ErrorKind::TimedOut.into()) } else { Ok(left) }
}

fn bad(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(ErrorKind::InvalidData, what.into())
}

/// Most headers an answer may have.
const MAX_HEADERS: usize = 64;

/// The status and `Content-Length` (if any) of a head, and where the body starts (`httparse`:
/// an HTTP/1.x status line and well-formed headers).
fn head(received: &[u8]) -> std::io::Result<Option<(u16, Option<usize>, usize)>> {
    let too_long = || bad(format!("answer head longer than {MAX_HEAD} bytes"));
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let end = match response.parse(received) {
        Ok(httparse::Status::Complete(end)) if end > MAX_HEAD + 4 => return Err(too_long()),
        Ok(httparse::Status::Complete(end)) => end,
        Ok(httparse::Status::Partial) if received.len() > MAX_HEAD => return Err(too_long()),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(bad(format!("not an HTTP/1.x answer: {e}"))),
    };
    let status = response.code.ok_or_else(|| bad("no status code"))?;
    let mut length = None;
    for header in response.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("content-length")) {
        let value = std::str::from_utf8(header.value).ok().and_then(|v| v.trim().parse::<usize>().ok());
        length = Some(value.ok_or_else(|| bad("bad Content-Length"))?);
    }
    Ok(Some((status, length, end)))
}

/// The answer, if all of it has arrived.
fn complete(received: &[u8], max_body: usize) -> std::io::Result<Option<Answer>> {
    let Some((status, length, start)) = head(received)? else { return Ok(None) };
    let body = &received[start..];
    if length.unwrap_or(0) > max_body || body.len() > max_body {
        return Err(bad(format!("answer body larger than {max_body} bytes")));
    }
    match length {
        Some(length) if body.len() >= length => Ok(Some(Answer { status, body: body[..length].to_vec() })),
        _ => Ok(None),
    }
}

/// The answer once the guest closed the connection.
fn at_end(received: &[u8], max_body: usize) -> std::io::Result<Answer> {
    match head(received)? {
        Some((_, Some(_), _)) => Err(bad("answer cut short")),
        Some((status, None, start)) => {
            let body = &received[start..];
            if body.len() > max_body {
                return Err(bad(format!("answer body larger than {max_body} bytes")));
            }
            Ok(Answer { status, body: body.to_vec() })
        }
        None => Err(bad("connection closed before an answer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-connection server that answers `answer` (after `delay`) and returns the request.
    fn server(answer: Vec<u8>, delay: Duration) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = vec![0u8; 1024];
            let n = conn.read(&mut request).unwrap();
            std::thread::sleep(delay);
            let _ = conn.write_all(&answer);
            String::from_utf8_lossy(&request[..n]).into_owned()
        });
        (addr, thread)
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn reads_an_answer_framed_by_content_length_or_by_the_end() {
        let (addr, request) =
            server(b"HTTP/1.1 206 Partial\r\nContent-Length: 5\r\n\r\nhello extra".to_vec(), Duration::ZERO);
        let answer = get(addr, "/eigen/node/health", SECOND, 100).unwrap();
        assert_eq!(answer, Answer { status: 206, body: b"hello".to_vec() });
        let request = request.join().unwrap();
        assert!(request.starts_with("GET /eigen/node/health HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("Connection: close\r\n"), "{request}");

        let (addr, _) = server(b"HTTP/1.0 503 Unavailable\r\n\r\ndown".to_vec(), Duration::ZERO);
        assert_eq!(get(addr, "/", SECOND, 100).unwrap(), Answer { status: 503, body: b"down".to_vec() });
    }

    #[test]
    fn hostile_or_slow_answers_are_errors() {
        let cases: [&[u8]; 6] = [
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"",
        ];
        for answer in cases {
            let (addr, _) = server(answer.to_vec(), Duration::ZERO);
            assert!(get(addr, "/", SECOND, 100).is_err(), "{:?}", String::from_utf8_lossy(answer));
        }
        let endless = [b"HTTP/1.1 200 OK\r\n".as_slice(), &[b'x'; 20_000]].concat();
        let (addr, _) = server(endless, Duration::ZERO);
        assert!(get(addr, "/", SECOND, 100).is_err(), "a head without end");
        let (addr, _) =
            server(b"HTTP/1.1 200 OK\r\n\r\n".iter().chain(&[b'y'; 500]).copied().collect(), Duration::ZERO);
        assert!(get(addr, "/", SECOND, 100).is_err(), "a body past the limit");

        // An answer that comes after the timeout is not waited for: the call ends timed out
        // (waiting for the answer would have returned it), and not before the timeout.
        let (addr, _) =
            server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(), Duration::from_millis(500));
        let began = Instant::now();
        let error = get(addr, "/", Duration::from_millis(100), 100).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::TimedOut);
        assert!(began.elapsed() >= Duration::from_millis(100), "{:?}", began.elapsed());

        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert_eq!(get(closed, "/", SECOND, 100).unwrap_err().kind(), ErrorKind::ConnectionRefused);
    }
}
