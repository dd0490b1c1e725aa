//! Request heads: `httparse` plus the framing and connection rules of HTTP/1.1.

use super::{MAX_BODY, MAX_HEAD, MAX_HEADERS};
use alloc::string::String;

/// What the server needs from a request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method, as sent.
    pub method: String,
    /// The request target, as sent (origin form, query included).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Bytes of body that follow the head.
    pub content_length: usize,
    /// Whether the client allows the connection to stay open after the response.
    pub keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub expect_continue: bool,
}

/// Parses the head at the start of `buf`: `Ok(None)` if it is not complete yet (and may still
/// fit the limits), `Ok(Some((head, len)))` once it is, `Err(status)` for a request to refuse.
pub fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, u16> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // Only the first MAX_HEAD bytes may hold the head: what lies past them never decides the
    // answer, so a request gets the same one however its bytes arrive.
    let len = match req.parse(&buf[..buf.len().min(MAX_HEAD)]) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Ok(None),
        Ok(_) | Err(httparse::Error::TooManyHeaders) => return Err(431),
        Err(_) => return Err(400),
    };
    let minor_version = req.version.ok_or(400u16)?;
    let mut head = Head {
        method: req.method.ok_or(400u16)?.into(),
        target: req.path.ok_or(400u16)?.into(),
        minor_version,
        content_length: 0,
        keep_alive: minor_version >= 1,
        expect_continue: false,
    };
    let mut content_length = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value)?;
            if content_length.is_some_and(|m| m != n) {
                return Err(400);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(501);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && minor_version == 0 {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue |= h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
    }
    head.content_length = content_length.unwrap_or(0);
    if head.content_length > MAX_BODY {
        return Err(413);
    }
    Ok(Some((head, len)))
}

/// A `Content-Length` value: decimal digits only (400 otherwise), 413 past the body limit.
fn parse_length(value: &[u8]) -> Result<usize, u16> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(400);
    }
    let mut n: usize = 0;
    for &d in digits {
        n = n.saturating_mul(10).saturating_add(usize::from(d - b'0'));
    }
    if n > MAX_BODY { Err(413) } else { Ok(n) }
}
