//! The client half of HTTP/1.1, for the node's own calls: the request bytes of one call and an
//! incremental reader for the one response. What an answer means is the caller's (the
//! aggregator's JSON-RPC: `crate::avs::rpc`).
//!
//! Each call uses a connection of its own (`Connection: close`); the TCP side lives elsewhere.
//! The response is framed by `Content-Length` or, without it, by the server closing the
//! connection; `Transfer-Encoding` (chunked) is not supported.

use alloc::format;
use alloc::vec::Vec;

/// Longest response head accepted.
pub const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// Longest response body accepted.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// Most header lines in a response head.
const MAX_HEADERS: usize = 32;

/// The request bytes: `{method} {path} HTTP/1.1`, `Host: {host}`, with a body
/// `Content-Type: application/json` and `Content-Length: N`, `Connection: close`, blank line,
/// the body.
///
/// `method`, `host` and `path` come from the node's configuration or are checked by the caller
/// (`spacecore_avs::check_call`): they must not contain CR or LF.
pub fn request(method: &str, host: &str, path: &str, body: Option<&[u8]>) -> Vec<u8> {
    let body_len = body.map_or(0, <[u8]>::len);
    let mut out = Vec::with_capacity(128 + method.len() + host.len() + path.len() + body_len);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    if let Some(body) = body {
        out.extend_from_slice(b"\r\nContent-Type: application/json\r\nContent-Length: ");
        out.extend_from_slice(format!("{}", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    out.extend_from_slice(body.unwrap_or_default());
    out
}

/// A complete response: its status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code (never 1xx: interim responses are skipped).
    pub status: u16,
    /// The body, at most [`MAX_RESPONSE_BODY`] bytes.
    pub body: Vec<u8>,
}

/// Why a response could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientError {
    /// The head is not a valid HTTP/1.x response head (or has more than 32 headers, or is
    /// `101 Switching Protocols`), or the peer closed before the head was complete.
    MalformedHead,
    /// The head is longer than [`MAX_RESPONSE_HEAD`].
    HeadTooLong,
    /// The body is (or is announced as) longer than the reader's limit ([`MAX_RESPONSE_BODY`]
    /// unless [`ResponseReader::with_limit`] set another).
    BodyTooLong,
    /// The response has a `Transfer-Encoding`, which is not supported.
    Chunked,
    /// A `Content-Length` that is not a plain decimal, or two that differ.
    BadContentLength,
    /// The peer closed before the body announced by `Content-Length` was complete.
    Truncated,
}

/// Where the reader is.
#[derive(Debug, Default)]
enum State {
    /// Gathering the head in `ResponseReader::head`.
    #[default]
    Head,
    /// Gathering the body: `length` bytes, or until the peer closes when `None`.
    Body { status: u16, length: Option<usize>, body: Vec<u8> },
    /// The result has been given.
    Done(Result<HttpResponse, ClientError>),
}

/// Reads one response incrementally.
#[derive(Debug)]
pub struct ResponseReader {
    /// Bytes received while reading the head.
    head: Vec<u8>,
    state: State,
    /// Longest body accepted.
    max_body: usize,
}

impl Default for ResponseReader {
    fn default() -> Self {
        ResponseReader { head: Vec::new(), state: State::Head, max_body: MAX_RESPONSE_BODY }
    }
}

/// What a complete head says.
struct Head {
    status: u16,
    length: Option<usize>,
    chunked: bool,
}

impl ResponseReader {
    /// A reader taking bodies of at most `max_body` bytes (the Ethereum node's answers are
    /// larger than the aggregator's).
    #[cfg_attr(
        test,
        expect(dead_code, reason = "the network side, which only the image has, sets the limit")
    )]
    pub fn with_limit(max_body: usize) -> Self {
        ResponseReader { max_body, ..Self::default() }
    }

    /// Takes bytes from the server; `Some(result)` once the response is complete (or broken).
    /// Responses without `Content-Length` end when the peer closes (see
    /// [`ResponseReader::finish`]). Interim 1xx responses (e.g. `100 Continue`) are skipped.
    /// Bytes after a complete response are ignored, and once a result has been given every
    /// later call returns `None`.
    pub fn receive(&mut self, data: &[u8]) -> Option<Result<HttpResponse, ClientError>> {
        let result = match self.state {
            State::Done(_) => return None,
            State::Head => {
                self.head.extend_from_slice(data);
                self.read_head()?
            }
            State::Body { .. } => self.read_body(data)?,
        };
        self.state = State::Done(result.clone());
        Some(result)
    }

    /// The server closed its side: completes a close-delimited body, or
    /// [`ClientError::Truncated`] (body short of its `Content-Length`) /
    /// [`ClientError::MalformedHead`] (head incomplete). After a result has been given, returns
    /// that result again.
    pub fn finish(&mut self) -> Result<HttpResponse, ClientError> {
        let result = match &mut self.state {
            State::Done(result) => return result.clone(),
            State::Head => Err(ClientError::MalformedHead),
            State::Body { length: Some(_), .. } => Err(ClientError::Truncated),
            State::Body { status, length: None, body } => {
                Ok(HttpResponse { status: *status, body: core::mem::take(body) })
            }
        };
        self.head = Vec::new();
        self.state = State::Done(result.clone());
        result
    }

    /// Parses the head gathered so far: `None` while it is incomplete.
    fn read_head(&mut self) -> Option<Result<HttpResponse, ClientError>> {
        loop {
            let (len, head) = match parse_head(&self.head) {
                Ok(Some(parsed)) => parsed,
                Ok(None) if self.head.len() >= MAX_RESPONSE_HEAD => {
                    return Some(Err(ClientError::HeadTooLong));
                }
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            if (100..200).contains(&head.status) {
                // An interim response (101 was refused by parse_head): the final one follows.
                self.head.drain(..len);
                continue;
            }
            let rest = self.head.split_off(len);
            self.head = Vec::new();
            let length = match framing(&head, self.max_body) {
                Ok(length) => length,
                Err(e) => return Some(Err(e)),
            };
            let capacity = length.unwrap_or(rest.len()).min(self.max_body);
            self.state = State::Body { status: head.status, length, body: Vec::with_capacity(capacity) };
            return self.read_body(&rest);
        }
    }

    /// Adds body bytes: `Some` once the body is complete or too long.
    fn read_body(&mut self, data: &[u8]) -> Option<Result<HttpResponse, ClientError>> {
        let max_body = self.max_body;
        let State::Body { status, length, body } = &mut self.state else { return None };
        match *length {
            Some(length) => {
                let take = length.saturating_sub(body.len()).min(data.len());
                body.extend_from_slice(&data[..take]);
                (body.len() >= length)
                    .then(|| Ok(HttpResponse { status: *status, body: core::mem::take(body) }))
            }
            None if body.len().saturating_add(data.len()) > max_body => Some(Err(ClientError::BodyTooLong)),
            None => {
                body.extend_from_slice(data);
                None
            }
        }
    }
}

/// Parses a response head: its length and contents once complete, `None` while partial.
fn parse_head(bytes: &[u8]) -> Result<Option<(usize, Head)>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ClientError::MalformedHead),
    };
    if len > MAX_RESPONSE_HEAD {
        return Err(ClientError::HeadTooLong);
    }
    let status = response.code.ok_or(ClientError::MalformedHead)?;
    if status == 101 {
        // The node never asks to switch protocols.
        return Err(ClientError::MalformedHead);
    }
    let mut head = Head { status, length: None, chunked: false };
    let mut bad_length = false;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = true;
        } else if header.name.eq_ignore_ascii_case("content-length") {
            match (parse_decimal(header.value), head.length) {
                (None, _) => bad_length = true,
                (Some(n), Some(previous)) if n != previous => bad_length = true,
                (Some(n), _) => head.length = Some(n),
            }
        }
    }
    if bad_length && !head.chunked {
        return Err(ClientError::BadContentLength);
    }
    Ok(Some((len, head)))
}

/// How the body of a final response is delimited: `Some(length)`, or `None` until the peer
/// closes.
fn framing(head: &Head, max_body: usize) -> Result<Option<usize>, ClientError> {
    if head.chunked {
        return Err(ClientError::Chunked);
    }
    if head.status == 204 || head.status == 304 {
        // Never a body, whatever Content-Length says.
        return Ok(Some(0));
    }
    match head.length {
        Some(length) if length > max_body => Err(ClientError::BodyTooLong),
        length => Ok(length),
    }
}

/// A plain decimal number (ASCII digits only, at least one), or `None`, also on overflow.
fn parse_decimal(value: &[u8]) -> Option<usize> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0usize, |n, &b| {
        let digit = char::from(b).to_digit(10)?;
        n.checked_mul(10)?.checked_add(usize::try_from(digit).ok()?)
    })
}

#[cfg(test)]
pub mod tests {
    #[test]
    fn requests_carry_a_body_only_when_given_one() {
        assert_eq!(
            request("DELETE", "10.0.0.1:9", "/x?y=1", None),
            b"DELETE /x?y=1 HTTP/1.1\r\nHost: 10.0.0.1:9\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            request("PUT", "h", "/", Some(b"{}")),
            b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        );
    }

    use super::*;
    use alloc::string::String;
    use alloc::vec;

    /// A response as hyper writes it.
    pub(crate) fn hyper_response(status: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             date: Tue, 03 Jun 2025 10:00:00 GMT\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    pub(crate) const ACCEPTED: &str = r#"{"jsonrpc":"2.0","result":true,"id":3}"#;

    pub(crate) fn whole(bytes: &[u8]) -> Option<Result<HttpResponse, ClientError>> {
        ResponseReader::default().receive(bytes)
    }

    /// Feeds `bytes` one at a time: the result, the number of bytes fed when it came, and the
    /// reader.
    pub(crate) fn bytewise(
        bytes: &[u8],
    ) -> (Option<Result<HttpResponse, ClientError>>, usize, ResponseReader) {
        let mut reader = ResponseReader::default();
        for (i, b) in bytes.iter().enumerate() {
            if let Some(result) = reader.receive(core::slice::from_ref(b)) {
                return (Some(result), i + 1, reader);
            }
        }
        (None, bytes.len(), reader)
    }

    pub(crate) fn ok(status: u16, body: &str) -> Result<HttpResponse, ClientError> {
        Ok(HttpResponse { status, body: body.as_bytes().to_vec() })
    }

    #[test]
    fn get_request_exact_bytes() {
        assert_eq!(
            request("GET", "10.0.2.2:8090", "/", None),
            b"GET / HTTP/1.1\r\nHost: 10.0.2.2:8090\r\nConnection: close\r\n\r\n"
        );
        // The aggregator's answer to it (405 from its JSON-RPC server) is a complete response.
        let answer = hyper_response("405 Method Not Allowed", "use POST\n");
        assert_eq!(whole(&answer).unwrap().unwrap().status, 405);
    }

    #[test]
    fn post_request_exact_bytes() {
        let post = request("POST", "10.0.2.2:8090", "/", Some(b"{\"a\":1}"));
        assert_eq!(
            post,
            b"POST / HTTP/1.1\r\nHost: 10.0.2.2:8090\r\nContent-Type: application/json\r\n\
              Content-Length: 7\r\nConnection: close\r\n\r\n{\"a\":1}"
        );
        let empty = request("POST", "h", "/rpc", Some(b""));
        assert_eq!(
            empty,
            b"POST /rpc HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\
              Connection: close\r\n\r\n"
        );
    }

    #[test]
    fn hyper_response_whole_and_bytewise() {
        let bytes = hyper_response("200 OK", ACCEPTED);
        assert_eq!(whole(&bytes), Some(ok(200, ACCEPTED)));
        let (result, fed, _) = bytewise(&bytes);
        assert_eq!(result, Some(ok(200, ACCEPTED)));
        assert_eq!(fed, bytes.len(), "complete exactly at the last byte");
    }

    #[test]
    fn every_split_gives_the_same_response() {
        let bytes = hyper_response("200 OK", ACCEPTED);
        for at in 0..=bytes.len() {
            let mut reader = ResponseReader::default();
            let first = reader.receive(&bytes[..at]);
            let result = first.or_else(|| reader.receive(&bytes[at..]));
            assert_eq!(result, Some(ok(200, ACCEPTED)), "split at {at}");
        }
    }

    #[test]
    fn bytes_after_the_response_are_ignored() {
        let mut bytes = hyper_response("200 OK", ACCEPTED);
        bytes.extend_from_slice(b"HTTP/1.1 500 Oops\r\n\r\ngarbage");
        let mut reader = ResponseReader::default();
        assert_eq!(reader.receive(&bytes), Some(ok(200, ACCEPTED)));
        assert_eq!(reader.receive(b"more"), None);
        assert_eq!(reader.finish(), ok(200, ACCEPTED));
        assert_eq!(reader.receive(b"more"), None);
    }

    #[test]
    fn zero_length_body_completes_with_the_head() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(whole(bytes), Some(ok(200, "")));
        let (result, fed, _) = bytewise(bytes);
        assert_eq!(result, Some(ok(200, "")));
        assert_eq!(fed, bytes.len());
    }

    #[test]
    fn no_body_statuses_ignore_content_length() {
        for status in ["204 No Content", "304 Not Modified"] {
            let bytes = format!("HTTP/1.1 {status}\r\nContent-Length: 100000\r\n\r\n");
            let code = status[..3].parse().unwrap();
            assert_eq!(whole(bytes.as_bytes()), Some(ok(code, "")));
            // Without Content-Length either.
            assert_eq!(whole(format!("HTTP/1.1 {status}\r\n\r\n").as_bytes()), Some(ok(code, "")));
        }
    }

    #[test]
    fn close_delimited_body() {
        let head = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n";
        let mut reader = ResponseReader::default();
        assert_eq!(reader.receive(head), None);
        assert_eq!(reader.receive(b"{\"jsonrpc\":"), None);
        assert_eq!(reader.receive(b"\"2.0\"}"), None);
        assert_eq!(reader.finish(), ok(200, "{\"jsonrpc\":\"2.0\"}"));
        assert_eq!(reader.receive(b"x"), None);
        assert_eq!(reader.finish(), ok(200, "{\"jsonrpc\":\"2.0\"}"));

        // Body bytes arriving with the head, fed byte by byte.
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(ACCEPTED.as_bytes());
        let (result, _, mut reader) = bytewise(&bytes);
        assert_eq!(result, None);
        assert_eq!(reader.finish(), ok(200, ACCEPTED));

        // Empty close-delimited body.
        let mut reader = ResponseReader::default();
        assert_eq!(reader.receive(b"HTTP/1.1 500 Internal Server Error\r\n\r\n"), None);
        assert_eq!(reader.finish(), ok(500, ""));
    }

    #[test]
    fn close_delimited_body_limit() {
        let mut reader = ResponseReader::default();
        assert_eq!(reader.receive(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(reader.receive(&vec![b'a'; MAX_RESPONSE_BODY - 1]), None);
        assert_eq!(reader.receive(b"b"), None);
        let full = reader.finish().unwrap();
        assert_eq!(full.body.len(), MAX_RESPONSE_BODY);

        let mut reader = ResponseReader::default();
        assert_eq!(reader.receive(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert_eq!(reader.receive(&vec![b'a'; MAX_RESPONSE_BODY]), None);
        assert_eq!(reader.receive(b"b"), Some(Err(ClientError::BodyTooLong)));
        assert_eq!(reader.receive(b"b"), None);
        assert_eq!(reader.finish(), Err(ClientError::BodyTooLong));

        // All in one piece with the head.
        let mut bytes = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        bytes.extend_from_slice(&vec![b'a'; MAX_RESPONSE_BODY + 1]);
        assert_eq!(whole(&bytes), Some(Err(ClientError::BodyTooLong)));
    }

    #[test]
    fn content_length_body_limit() {
        let at_limit = format!("HTTP/1.1 200 OK\r\nContent-Length: {MAX_RESPONSE_BODY}\r\n\r\n");
        let mut reader = ResponseReader::default();
        assert_eq!(reader.receive(at_limit.as_bytes()), None);
        let body = vec![b'z'; MAX_RESPONSE_BODY];
        let result = reader.receive(&body).unwrap().unwrap();
        assert_eq!(result.body, body);

        let over = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_RESPONSE_BODY + 1);
        assert_eq!(whole(over.as_bytes()), Some(Err(ClientError::BodyTooLong)));
        let huge = "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n";
        assert_eq!(whole(huge.as_bytes()), Some(Err(ClientError::BodyTooLong)));
    }

    #[test]
    fn interim_responses_are_skipped() {
        let mut bytes = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
        bytes.extend_from_slice(b"HTTP/1.1 102 Processing\r\nX-Note: hi\r\n\r\n");
        bytes.extend_from_slice(&hyper_response("200 OK", ACCEPTED));
        assert_eq!(whole(&bytes), Some(ok(200, ACCEPTED)));
        let (result, fed, _) = bytewise(&bytes);
        assert_eq!(result, Some(ok(200, ACCEPTED)));
        assert_eq!(fed, bytes.len());
        // A 100 Continue then the peer closes: no final head.
        let mut reader = ResponseReader::default();
        assert_eq!(reader.receive(b"HTTP/1.1 100 Continue\r\n\r\n"), None);
        assert_eq!(reader.finish(), Err(ClientError::MalformedHead));
    }

    #[test]
    fn switching_protocols_is_malformed() {
        assert_eq!(whole(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"), Some(Err(ClientError::MalformedHead)));
    }

    #[test]
    fn malformed_heads() {
        for bytes in [
            &b"HTTP/2 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00",
        ] {
            assert_eq!(whole(bytes), Some(Err(ClientError::MalformedHead)), "{bytes:?}");
            assert_eq!(bytewise(bytes).0, Some(Err(ClientError::MalformedHead)), "{bytes:?}");
        }
    }

    #[test]
    fn header_count_limit() {
        let head = |n: usize| {
            let mut s = String::from("HTTP/1.1 200 OK\r\n");
            for i in 0..n - 1 {
                s.push_str(&format!("X-{i}: v\r\n"));
            }
            s.push_str("Content-Length: 2\r\n\r\nok");
            s
        };
        assert_eq!(whole(head(MAX_HEADERS).as_bytes()), Some(ok(200, "ok")));
        assert_eq!(whole(head(MAX_HEADERS + 1).as_bytes()), Some(Err(ClientError::MalformedHead)));
        assert_eq!(bytewise(head(MAX_HEADERS + 1).as_bytes()).0, Some(Err(ClientError::MalformedHead)));
    }

    #[test]
    fn head_length_limit() {
        // A head of exactly MAX_RESPONSE_HEAD bytes is accepted, one more is not.
        let head = |len: usize| {
            let start = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: ";
            let end = "\r\n\r\n";
            format!("{start}{}{end}", "p".repeat(len - start.len() - end.len()))
        };
        let exact = head(MAX_RESPONSE_HEAD);
        assert_eq!(exact.len(), MAX_RESPONSE_HEAD);
        assert_eq!(whole(exact.as_bytes()), Some(ok(200, "")));
        assert_eq!(bytewise(exact.as_bytes()).0, Some(ok(200, "")));
        let over = head(MAX_RESPONSE_HEAD + 1);
        assert_eq!(whole(over.as_bytes()), Some(Err(ClientError::HeadTooLong)));
        let (result, fed, mut reader) = bytewise(over.as_bytes());
        assert_eq!(result, Some(Err(ClientError::HeadTooLong)));
        assert_eq!(fed, MAX_RESPONSE_HEAD, "refused once the limit is reached without a head");
        assert_eq!(reader.finish(), Err(ClientError::HeadTooLong));
        // Endless blank lines or header bytes are refused at the limit, not buffered forever.
        let mut reader = ResponseReader::default();
        let mut result = None;
        for _ in 0..MAX_RESPONSE_HEAD {
            result = result.or(reader.receive(b"\r\n"));
        }
        assert_eq!(result, Some(Err(ClientError::HeadTooLong)));
    }

    #[test]
    fn transfer_encoding_is_refused() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(whole(chunked), Some(Err(ClientError::Chunked)));
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\ntransfer-encoding: identity\r\n\r\nhello";
        assert_eq!(whole(both), Some(Err(ClientError::Chunked)));
        let with_bad_length = b"HTTP/1.1 200 OK\r\nContent-Length: x\r\nTRANSFER-ENCODING: gzip\r\n\r\n";
        assert_eq!(whole(with_bad_length), Some(Err(ClientError::Chunked)));
        assert_eq!(bytewise(chunked).0, Some(Err(ClientError::Chunked)));
    }

    #[test]
    fn content_length_must_be_plain_decimal() {
        for value in ["", "-1", "+5", "5 5", "0x10", "1e3", "5,5", "five", "99999999999999999999999"] {
            let bytes = format!("HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(whole(bytes.as_bytes()), Some(Err(ClientError::BadContentLength)), "{value:?}");
        }
        // Surrounding whitespace is not part of the value; leading zeros are decimal.
        assert_eq!(whole(b"HTTP/1.1 200 OK\r\nContent-Length:  2 \r\n\r\nok"), Some(ok(200, "ok")));
        assert_eq!(whole(b"HTTP/1.1 200 OK\r\nContent-Length: 002\r\n\r\nok"), Some(ok(200, "ok")));
    }

    #[test]
    fn duplicate_content_lengths() {
        let same = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok";
        assert_eq!(whole(same), Some(ok(200, "ok")));
        let differ = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 3\r\n\r\nok!";
        assert_eq!(whole(differ), Some(Err(ClientError::BadContentLength)));
        let one_bad = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: two\r\n\r\nok";
        assert_eq!(whole(one_bad), Some(Err(ClientError::BadContentLength)));
    }

    #[test]
    fn truncated_body_and_head() {
        let bytes = hyper_response("200 OK", ACCEPTED);
        let head_len = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        for cut_at in 0..bytes.len() {
            let mut reader = ResponseReader::default();
            assert_eq!(reader.receive(&bytes[..cut_at]), None);
            let expected =
                if cut_at < head_len { ClientError::MalformedHead } else { ClientError::Truncated };
            assert_eq!(reader.finish(), Err(expected), "cut at {cut_at}");
            assert_eq!(reader.receive(&bytes[cut_at..]), None, "nothing after finish");
        }
        assert_eq!(ResponseReader::default().finish(), Err(ClientError::MalformedHead));
    }
}
