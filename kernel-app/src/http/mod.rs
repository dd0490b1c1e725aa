//! HTTP/1.1 without sockets: the server core ([`Conn`] takes the bytes a client sent and gives
//! back the bytes to answer, so it is unit-tested with byte strings on the host), the client half
//! the node's own calls use ([`client`]: request bytes and a reader for one response), and the
//! calls the socket side makes on the other modules' behalf ([`calls`]). It imports nothing of
//! the rest of the guest.
//!
//! What the server core does:
//! - request heads are parsed by `httparse`; bodies are framed by `Content-Length` only
//!   (`Transfer-Encoding` is answered with 501 and the connection closes);
//! - keep-alive by default for HTTP/1.1, opt-in (`Connection: keep-alive`) for HTTP/1.0;
//!   `Connection: close` closes after the response; pipelined requests are answered in order;
//! - `Expect: 100-continue` is answered with `100 Continue` once the head is accepted;
//! - a malformed request gets 400, an over-limit one 413 or 431, and the connection closes after
//!   that response (the server itself goes on);
//! - the [`Handler`] decides routes: it may refuse a request from its head alone (404, 405), in
//!   which case a body it announced is not read and the connection closes after the answer.
//!
//! # Limits
//! - [`MAX_HEAD`]: request line plus headers, 8 KiB (431 beyond);
//! - [`MAX_HEADERS`]: header lines, 64 (431 beyond);
//! - [`MAX_BODY`]: request body, 4 MiB (413 beyond), buffered whole before the handler runs; a
//!   body the heap has no room for at the moment also gets 413;
//! - [`OUTPUT_HIGH_WATER`]: while more response bytes than this wait to be sent, no more input is
//!   read from the client (backpressure for pipelining clients that do not read).
//!
//! # Timeouts and eviction
//! [`deadline`] holds the rules, as pure functions of time: a request head must be complete
//! within [`deadline::HEADER_TIMEOUT_MS`] (10 s) of its start, a kept-alive connection may wait
//! [`deadline::KEEPALIVE_TIMEOUT_MS`] (20 s) for its next request, and a body or an answer may
//! stall for [`deadline::STALL_TIMEOUT_MS`] (30 s); when the server is full, the connection
//! [`deadline::Timer::rank`] puts first makes room for a new one. The socket side
//! (`crate::netstack`) applies them, and holds the number of connections (at most 64, fewer on
//! a small heap).

pub mod calls;
pub mod client;
mod conn;
pub mod deadline;
pub mod request;
mod response;

#[cfg(test)]
mod tests;

pub use conn::Conn;
pub use response::Response;

/// Longest request head (request line, headers, blank line).
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header lines in a request.
pub const MAX_HEADERS: usize = 64;
/// Longest request body.
pub const MAX_BODY: usize = 4 * 1024 * 1024;
/// Pending output above which a connection stops reading requests.
pub const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// The application behind the server. `target` is the request target as sent: the path and,
/// after a `?`, the query.
pub trait Handler {
    /// Decides from the request line alone whether the request is served: `Err` carries the
    /// answer (404, 405, ...) and the body, if any, is not read.
    fn accept(&mut self, method: &str, target: &str) -> Result<(), Response>;
    /// Answers an accepted request once its whole body has arrived.
    fn handle(&mut self, method: &str, target: &str, body: alloc::vec::Vec<u8>) -> Response;
}
