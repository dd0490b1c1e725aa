//! Responses and their heads.

use alloc::vec::Vec;
use core::fmt::Write;

/// A response to one request; the body is sent with a `Content-Length`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
    /// `Allow` header, for 405.
    pub allow: Option<&'static str>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a body of type `content_type`.
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Response { status, content_type, allow: None, body }
    }

    /// An error response whose body is its reason phrase and a newline.
    pub fn error(status: u16) -> Self {
        let mut body = Vec::from(reason(status).as_bytes());
        body.push(b'\n');
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    /// 405 with the methods the resource allows.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Response { allow: Some(allow), ..Response::error(405) }
    }

    /// The status line and headers, for a connection that stays open if `keep_alive`.
    pub fn head(&self, keep_alive: bool) -> Vec<u8> {
        let mut head = Head(Vec::with_capacity(160));
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\nServer: spacecore\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        if let Some(allow) = self.allow {
            let _ = write!(head, "Allow: {allow}\r\n");
        }
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let _ = write!(head, "Connection: {connection}\r\n\r\n");
        head.0
    }
}

/// The interim response to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The reason phrase of `status`.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

struct Head(Vec<u8>);

impl Write for Head {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}
