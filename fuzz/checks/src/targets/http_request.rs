//! The guest's HTTP server core (kernel-app's `http::Conn` and its request-head parser, compiled
//! from the guest's sources: [`crate::http`]) on the bytes a client sends (the input as it is):
//!
//! * neither the parser nor the connection ever panics;
//! * a head the parser accepts is at most `MAX_HEAD` bytes, ends inside the input, has at most
//!   `MAX_HEADERS` header lines and announces at most `MAX_BODY` bytes of body; it parses the
//!   same from its own bytes alone, and every shorter prefix of it is "not complete yet" (so the
//!   connection cannot answer differently when the head arrives in pieces); more header lines
//!   than `MAX_HEADERS` in a complete head are refused with 431; a head still incomplete is at
//!   most `MAX_HEAD` bytes;
//! * the input given to a connection in one piece, or cut into pieces of 1 (inputs up to 2 KiB),
//!   2, 3, 7, 64 or 1460 bytes, gives the handler the same requests (method, target, body) in the
//!   same order and the client the same bytes back, but for the interim `100 Continue`, which is
//!   sent only when a head that asked for it came without its body, and the connection ends up
//!   closing or not alike; no body handed over exceeds `MAX_BODY`.

use crate::http::request;
use crate::http::{Conn, Handler, MAX_BODY, MAX_HEAD, MAX_HEADERS, Response};

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Answers every request; refuses some from their request line, as the node's routes do.
#[derive(Debug, Default)]
struct Recorder {
    /// Every request handled: method, target, body.
    handled: Vec<(String, String, Vec<u8>)>,
}

impl Handler for Recorder {
    fn accept(&mut self, method: &str, target: &str) -> Result<(), Response> {
        if target.starts_with("/x") {
            Err(Response::error(404))
        } else if method == "PUT" {
            Err(Response::method_not_allowed("GET, POST"))
        } else {
            Ok(())
        }
    }

    fn handle(&mut self, method: &str, target: &str, body: Vec<u8>) -> Response {
        assert!(body.len() <= MAX_BODY, "a body of {} bytes", body.len());
        let answer = format!("{method} {target} {} bytes\n", body.len());
        self.handled.push((method.to_owned(), target.to_owned(), body));
        Response::new(200, "text/plain", answer.into_bytes())
    }
}

/// What one connection did with the input: the requests handled, the response bytes (without
/// interim responses), how many `100 Continue`s, and whether it is closing.
#[derive(Debug, PartialEq, Eq)]
struct Session {
    handled: Vec<(String, String, Vec<u8>)>,
    answer: Vec<u8>,
    continues: usize,
    closing: bool,
}

/// Gives `data` to a new connection in pieces of `piece` bytes.
fn session(data: &[u8], piece: usize) -> Session {
    let mut conn = Conn::new();
    let mut handler = Recorder::default();
    let (mut answer, mut continues) = (Vec::new(), 0);
    for chunk in data.chunks(piece.max(1)) {
        conn.receive(chunk, &mut handler);
        // The connection's output, a chunk (a head, a body, an interim response) at a time.
        loop {
            let out = conn.output();
            if out.is_empty() {
                break;
            }
            if out == CONTINUE {
                continues += 1;
            } else {
                answer.extend_from_slice(out);
            }
            let n = out.len();
            conn.consume(n);
        }
    }
    assert_eq!(conn.pending_output(), 0);
    Session { handled: handler.handled, answer, continues, closing: conn.is_closing() }
}

/// Header lines of a complete head, counted without a limit; `None` if not complete or invalid.
fn header_lines(data: &[u8]) -> Option<usize> {
    let mut headers = vec![httparse::EMPTY_HEADER; 16 * MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(data) {
        Ok(httparse::Status::Complete(_)) => Some(req.headers.len()),
        _ => None,
    }
}

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    match request::parse(data) {
        Ok(Some((head, len))) => {
            assert!(len <= MAX_HEAD && len <= data.len(), "a head of {len} bytes");
            assert!(head.content_length <= MAX_BODY, "a body of {} bytes accepted", head.content_length);
            assert!(header_lines(&data[..len]).is_some_and(|n| n <= MAX_HEADERS), "too many header lines");
            assert_eq!(request::parse(&data[..len]), Ok(Some((head, len))), "the head alone");
            let step = if len <= 512 { 1 } else { len / 97 + 1 };
            for cut in (0..len).step_by(step) {
                assert_eq!(request::parse(&data[..cut]), Ok(None), "the head's first {cut} bytes");
            }
        }
        Ok(None) => assert!(data.len() <= MAX_HEAD, "an incomplete head of {} bytes", data.len()),
        Err(status) => {
            assert!([400, 413, 431, 501].contains(&status), "refused with {status}");
            if header_lines(data).is_some_and(|n| n > MAX_HEADERS) {
                assert_eq!(status, 431, "more than {MAX_HEADERS} header lines");
            }
        }
    }

    let whole = session(data, data.len());
    assert!(whole.continues <= whole.handled.len() + 1, "{} interim responses", whole.continues);
    let pieces: &[usize] = if data.len() <= 2048 { &[1, 2, 3, 7, 64, 1460] } else { &[2, 3, 7, 64, 1460] };
    for &piece in pieces {
        let split = session(data, piece);
        assert!(split.handled == whole.handled, "other requests in pieces of {piece}");
        assert!(split.answer == whole.answer, "another answer in pieces of {piece}");
        assert_eq!(split.closing, whole.closing, "closing in pieces of {piece}");
    }
}
