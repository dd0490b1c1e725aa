//! The minimal HTTP/1.1 client of `bench net`, and its baseline server: keep-alive connections,
//! bodies framed by `Content-Length` only, `GET /` and `POST /echo` as the guest serves them.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// Longest body either side accepts (the guest's limit too).
pub const MAX_BODY: usize = 4 << 20;
/// Longest a read, a write or the baseline's wait for its client may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest head line.
const MAX_LINE: u64 = 8192;
/// Most header lines in a head.
const MAX_HEADERS: usize = 64;
/// Read buffer of each side.
const BUFFER: usize = 256 * 1024;
/// Most requests the baseline serves on its connection.
const MAX_REQUESTS: u64 = 100_000_000;

const GET_ROOT: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

/// The first line of a head, and what the framing needs of its headers.
#[derive(Debug, PartialEq)]
pub struct Head {
    pub first: String,
    /// `Content-Length`, 0 when absent.
    pub content_length: usize,
    /// `Connection: close` was given.
    pub close: bool,
}

/// Reads one head; `None` when the input ends before its first byte.
pub fn read_head(reader: &mut impl BufRead, line: &mut String) -> Result<Option<Head>> {
    let mut head: Option<Head> = None;
    for _ in 0..MAX_HEADERS + 2 {
        line.clear();
        let n = reader.by_ref().take(MAX_LINE).read_line(line)?;
        match (n, &head) {
            (0, None) => return Ok(None),
            (0, Some(_)) => bail!("the connection closed in the middle of a head"),
            _ if !line.ends_with('\n') => bail!("head line too long: {:?}...", &line[..line.len().min(80)]),
            _ => {}
        }
        let text = line.trim_end_matches(['\r', '\n']);
        let Some(h) = &mut head else {
            head = Some(Head { first: text.to_owned(), content_length: 0, close: false });
            continue;
        };
        if text.is_empty() {
            return Ok(head);
        }
        let (name, value) = text.split_once(':').with_context(|| format!("bad header line {text:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            h.content_length = value.parse().with_context(|| format!("bad Content-Length {value:?}"))?;
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            h.close = true;
        }
    }
    bail!("more than {MAX_HEADERS} header lines")
}

/// One keep-alive connection, `TCP_NODELAY`, with bounded reads and writes.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    line: String,
    /// The body of the last answer.
    pub body: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let reader = BufReader::with_capacity(BUFFER, stream.try_clone()?);
        Ok(Client { reader, writer: stream, line: String::new(), body: Vec::new() })
    }

    /// `GET /`: an error unless the answer is 200 with a JSON object.
    pub fn get_root(&mut self) -> Result<()> {
        self.writer.write_all(GET_ROOT)?;
        let (status, _) = self.answer()?;
        if status != 200 || !self.body.starts_with(b"{") {
            bail!("GET / answered {status} with {:?}", String::from_utf8_lossy(&self.body));
        }
        Ok(())
    }

    /// `POST /echo` of `body`: an error unless the answer is 200 with the same bytes. Returns
    /// the time to send the request until the first byte of the answer, and the time from then
    /// to the last byte (the server reads the whole body before it answers).
    pub fn echo(&mut self, body: &[u8]) -> Result<(Duration, Duration)> {
        let head = format!(
            "POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        let start = Instant::now();
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(body)?;
        let (status, first_byte) = self.answer()?;
        let end = Instant::now();
        if status != 200 || self.body != body {
            bail!("POST /echo answered {status} with {} bytes that differ from the request", self.body.len());
        }
        Ok((first_byte - start, end - first_byte))
    }

    /// Reads an answer into `self.body`: its status and when its first byte arrived.
    fn answer(&mut self) -> Result<(u16, Instant)> {
        if self.reader.fill_buf()?.is_empty() {
            bail!("the server closed the connection");
        }
        let first_byte = Instant::now();
        let head = read_head(&mut self.reader, &mut self.line)?.context("no answer")?;
        let status = head.first.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)?.parse().ok());
        let status = status.with_context(|| format!("bad status line {:?}", head.first))?;
        if head.content_length > MAX_BODY {
            bail!("answer of {} bytes, over {MAX_BODY}", head.content_length);
        }
        self.body.resize(head.content_length, 0);
        self.reader.read_exact(&mut self.body)?;
        if head.close {
            bail!(
                "the server closes the connection after {status} {:?}",
                String::from_utf8_lossy(&self.body)
            );
        }
        Ok((status, first_byte))
    }
}

/// The baseline: a server on a thread, on `127.0.0.1` and a free port, for one connection.
pub struct Baseline {
    pub addr: SocketAddr,
    thread: JoinHandle<Result<u64>>,
}

impl Baseline {
    pub fn start() -> Result<Baseline> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot bind 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let thread = thread::Builder::new().name("baseline-http".into()).spawn(move || serve(&listener))?;
        Ok(Baseline { addr, thread })
    }

    /// Waits until the client has closed its connection; the number of requests served.
    pub fn join(self) -> Result<u64> {
        self.thread.join().map_err(|_| anyhow!("the baseline server panicked"))?
    }
}

/// Accepts one connection (waiting at most [`IO_TIMEOUT`]) and serves it until it closes.
fn serve(listener: &TcpListener) -> Result<u64> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + IO_TIMEOUT;
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e).context("baseline: no connection"),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::with_capacity(BUFFER, stream.try_clone()?);
    let mut writer = stream;
    let (mut line, mut body, mut out) = (String::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    for served in 0..MAX_REQUESTS {
        let Some(head) = read_head(&mut reader, &mut line)? else { return Ok(served) };
        if head.content_length > MAX_BODY {
            writer.write_all(
                b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return Ok(served + 1);
        }
        body.resize(head.content_length, 0);
        reader.read_exact(&mut body)?;
        let mut words = head.first.split(' ');
        let json;
        let (status, content_type, payload): (&str, &str, &[u8]) = match (words.next(), words.next()) {
            (Some("GET"), Some("/")) => {
                json = format!(
                    "{{\"name\":\"baseline\",\"version\":\"0\",\"boot_count\":0,\"uptime_ms\":{}}}\n",
                    started.elapsed().as_millis()
                );
                ("200 OK", "application/json", json.as_bytes())
            }
            (Some("POST"), Some("/echo")) => ("200 OK", "application/octet-stream", &body),
            _ => ("404 Not Found", "text/plain; charset=utf-8", b"Not Found\n"),
        };
        out.clear();
        write!(
            out,
            "HTTP/1.1 {status}\r\nServer: baseline\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             Connection: keep-alive\r\n\r\n",
            payload.len()
        )?;
        out.extend_from_slice(payload);
        writer.write_all(&out)?;
    }
    Ok(MAX_REQUESTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_heads() {
        let mut input: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-LENGTH: 12\r\nConnection: close\r\n\r\nrest";
        let mut line = String::new();
        let head = read_head(&mut input, &mut line).unwrap().unwrap();
        assert_eq!(head, Head { first: "HTTP/1.1 200 OK".into(), content_length: 12, close: true });
        assert_eq!(input, b"rest");
        assert_eq!(read_head(&mut &b""[..], &mut line).unwrap(), None);
        assert!(read_head(&mut &b"GET / HTTP/1.1\r\nHost: x\r\n"[..], &mut line).is_err());
        assert!(read_head(&mut &b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"[..], &mut line).is_err());
        assert!(read_head(&mut &b"GET / HTTP/1.1\r\nnocolon\r\n\r\n"[..], &mut line).is_err());
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
        assert!(read_head(&mut long.as_bytes(), &mut line).is_err());
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(65));
        assert!(read_head(&mut many.as_bytes(), &mut line).is_err());
    }

    #[test]
    fn client_and_baseline_speak_to_each_other() {
        let server = Baseline::start().unwrap();
        let mut client = Client::connect(server.addr).unwrap();
        client.get_root().unwrap();
        assert!(client.body.starts_with(b"{\"name\":\"baseline\""));
        let body: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        client.echo(&body).unwrap();
        client.echo(b"").unwrap();
        drop(client);
        assert_eq!(server.join().unwrap(), 3);
    }
}
