//! The AVS SDK of Spacecore.
//!
//! An AVS team writes its node logic as a `no_std` crate that implements [`Avs`] and exports it
//! with [`export!`]; `cargo xtask build-image --avs PATH` links it into the Spacecore unikernel,
//! which boots on KVM with `hac-launch`. The runtime owns the devices, the network stack, the
//! HTTP server, the operator's keys and the disk; the AVS sees them only through [`Node`]:
//!
//! | service | how |
//! | --- | --- |
//! | HTTP routes under the node's port | [`Avs::handle`] gets every request the runtime does not serve itself (see [`RESERVED_PATHS`]) |
//! | a crash-safe record on the disk | [`Node::load`], [`Node::save`] (flushed before `save` returns) |
//! | signing with the operator's key, with slashing protection | [`Node::sign_task`] (one digest per task index, ever), [`Node::attest`] (domain-separated messages) |
//! | the AVS's authority | [`Node::verify_authority`]: was this signed by the address the spec names (`spec.avs.task_signer`)? |
//! | time and timers | [`Node::now_ms`], [`Avs::tick`] and its next due time |
//! | metrics | [`Avs::metrics`], appended to the node's `GET /metrics` |
//! | health | [`Avs::services`], listed in the EigenLayer node API (`/eigen/node/services`) |
//! | outbound calls | [`Node::call`] to an endpoint the spec names (`aggregator`, `eth_rpc`, `eth_ws`), answered later in [`Avs::call_done`] |
//!
//! The key never reaches the AVS: it asks for signatures.
//!
//! ```
//! use spacecore_avs::{Avs, Node, Request, Response};
//!
//! #[derive(Default)]
//! struct Hello { calls: u64 }
//!
//! impl Avs for Hello {
//!     fn routes(&self) -> &'static [&'static str] {
//!         &["/hello"]
//!     }
//!
//!     fn handle(&mut self, request: &Request<'_>, _node: &mut dyn Node) -> Option<Response> {
//!         (request.path == "/hello").then(|| {
//!             self.calls += 1;
//!             Response::text(200, "hello\n")
//!         })
//!     }
//! }
//! // In the AVS crate: spacecore_avs::export!(Hello::default);
//! # let mut node = spacecore_avs::testing::MemoryNode::default();
//! # let mut avs = Hello::default();
//! # let r = avs.handle(&Request::new("GET", "/hello", b""), &mut node).unwrap();
//! # assert_eq!(r.status, 200);
//! ```
#![no_std]

extern crate alloc;

pub mod metrics;
pub mod testing;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use metrics::Metrics;

/// Paths the runtime serves itself (an entry ending in `/` is a prefix): an AVS never sees
/// requests for them, whatever its [`Avs::routes`] say.
pub const RESERVED_PATHS: [&str; 6] = ["/", "/metrics", "/echo", "/eigen/", "/spacecore/", "/test/"];

#[cfg(test)]
mod tests {
    #[test]
    fn calls_carry_only_what_a_request_line_can() {
        use super::{CallError, check_call};
        assert_eq!(check_call("POST", "/rpc?x=1", b"{}"), Ok(()));
        assert!(matches!(check_call("CONNECT", "/", b""), Err(CallError::BadRequest(_))));
        assert!(matches!(check_call("GET", "x", b""), Err(CallError::BadRequest(_))));
        assert!(matches!(check_call("GET", "/a b", b""), Err(CallError::BadRequest(_))));
        assert!(matches!(check_call("GET", "/a\r\nX: y", b""), Err(CallError::BadRequest(_))));
        assert_eq!(check_call("POST", "/", &[0; 65537]), Err(CallError::TooLarge(65537)));
    }

    #[test]
    fn log_lines_are_one_line_and_bounded() {
        assert_eq!(super::log_line("a\nb\r\x1b[2Jc"), "a b  [2Jc");
        let long = "é".repeat(1000);
        assert_eq!(super::log_line(&long).len(), super::MAX_LOG_LINE);
    }

    #[test]
    fn routes_are_exact_or_prefixes_and_never_the_runtimes() {
        let routes = ["/call", "/api/", "/metrics", "/spacecore/x"];
        assert!(super::routed(&routes, "/call"));
        assert!(super::routed(&routes, "/api/v1/x"));
        assert!(!super::routed(&routes, "/call/x"));
        assert!(!super::routed(&routes, "/api"));
        for runtime in ["/metrics", "/spacecore/x", "/", "/eigen", "/eigen/node", "/echo", "/test/panic"] {
            assert!(!super::routed(&routes, runtime), "{runtime}");
            assert!(!super::routed(&["/", "/eigen/", "/test/", "/spacecore/"], runtime), "{runtime}");
        }
        // "/" is every path the runtime does not keep.
        assert!(super::routed(&["/"], "/anything/at/all"));
    }
}

/// Whether `path` is one of `routes` (an entry ending in `/` is a prefix) and not reserved.
pub fn routed(routes: &[&str], path: &str) -> bool {
    let matches = |route: &str| if route.ends_with('/') { path.starts_with(route) } else { path == route };
    let reserved =
        |route: &str| route == path || (route.ends_with('/') && route != "/" && path.starts_with(route));
    routes.iter().any(|r| matches(r)) && !RESERVED_PATHS.iter().any(|r| reserved(r)) && path != "/eigen"
}

/// Most bytes [`Node::save`] takes: the AVS's record is one slot of the disk's record store.
pub const MAX_RECORD: usize = 4072;

/// The node logic of an AVS.
///
/// The runtime calls it from its single main loop, one call at a time: no locking is needed.
/// A call should return quickly (a slow call delays every connection of the node).
pub trait Avs {
    /// Called once, after the disk and the operator key are loaded and before the first request.
    fn start(&mut self, node: &mut dyn Node) {
        let _ = node;
    }

    /// The paths the AVS serves: an entry ending in `/` is a prefix, any other an exact path. A
    /// request for another path is answered 404 by the runtime from its request line, before
    /// its body is read; paths the runtime keeps ([`RESERVED_PATHS`], `/spacecore/`, `/test/`)
    /// never reach the AVS.
    fn routes(&self) -> &'static [&'static str];

    /// Refuses a request for one of [`Avs::routes`] from its request line alone, before its body
    /// is read (a wrong method, a route closed in this configuration): the answer, or `None` to
    /// read the body and call [`Avs::handle`].
    fn refuse(&self, method: &str, path: &str) -> Option<Response> {
        let _ = (method, path);
        None
    }

    /// Answers a request for one of [`Avs::routes`], or `None` for 404.
    fn handle(&mut self, request: &Request<'_>, node: &mut dyn Node) -> Option<Response>;

    /// Periodic work. Returns when (in [`Node::now_ms`] time) it wants to run next; `None`: only
    /// after the next request.
    fn tick(&mut self, node: &mut dyn Node) -> Option<u64> {
        let _ = node;
        None
    }

    /// Writes the AVS's own metrics (appended to `GET /metrics`).
    fn metrics(&self, out: &mut Metrics) {
        let _ = out;
    }

    /// The AVS's services and their health, shown in the node API next to the runtime's.
    fn services(&self) -> Vec<Service> {
        Vec::new()
    }

    /// The outcome of call `id` made with [`Node::call`]: the endpoint's answer, or why there is
    /// none (refused, reset, no answer within [`CALL_TIMEOUT_MS`], a malformed or oversized
    /// answer). Every call gets exactly one outcome, unless the node stops first.
    fn call_done(&mut self, id: u64, outcome: Result<Reply, String>, node: &mut dyn Node) {
        let _ = (id, outcome, node);
    }
}

/// Longest body of an outbound call's request.
pub const MAX_CALL_BODY: usize = 64 * 1024;
/// Outbound calls queued or in flight at once; one more is refused ([`CallError::Busy`]).
pub const MAX_CALLS: usize = 16;
/// Longest time a call may take, from connecting to the complete answer.
pub const CALL_TIMEOUT_MS: u64 = 10_000;
/// Longest line [`Node::log`] writes.
pub const MAX_LOG_LINE: usize = 1024;

/// `line` as [`Node::log`] writes it after the AVS's name: control characters as spaces, cut to
/// [`MAX_LOG_LINE`] bytes at a character boundary.
pub fn log_line(line: &str) -> String {
    let mut end = line.len().min(MAX_LOG_LINE);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Longest body of an endpoint's answer; a longer one is the error [`REPLY_TOO_LONG`].
pub const MAX_REPLY: usize = 1024 * 1024;
/// The error [`Avs::call_done`] gets for an answer whose body is over [`MAX_REPLY`].
pub const REPLY_TOO_LONG: &str = "the answer is longer than MAX_REPLY";

/// An endpoint's answer to an outbound call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body (at most [`MAX_REPLY`]; a longer one is an error, not a truncated reply).
    pub body: Vec<u8>,
}

/// Why [`Node::call`] did not queue a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The spec names no such endpoint (or the node has no network).
    UnknownEndpoint(String),
    /// [`MAX_CALLS`] calls are queued or in flight.
    Busy,
    /// The body is over [`MAX_CALL_BODY`].
    TooLarge(usize),
    /// The method or the path is not one an HTTP request line can carry (`GET`, `POST`, `PUT`,
    /// `DELETE`, `PATCH`; a path of printable ASCII starting with `/`).
    BadRequest(&'static str),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::UnknownEndpoint(name) => write!(f, "the spec names no endpoint `{name}`"),
            CallError::Busy => write!(f, "{MAX_CALLS} calls are already queued or in flight"),
            CallError::TooLarge(n) => write!(f, "a body of {n} bytes is over {MAX_CALL_BODY}"),
            CallError::BadRequest(why) => f.write_str(why),
        }
    }
}

/// Checks an outbound call's method, path and body as [`Node::call`] does.
pub fn check_call(method: &str, path: &str, body: &[u8]) -> Result<(), CallError> {
    if !matches!(method, "GET" | "POST" | "PUT" | "DELETE" | "PATCH") {
        return Err(CallError::BadRequest("the method is not GET, POST, PUT, DELETE or PATCH"));
    }
    if !path.starts_with('/') || path.len() > 2048 || !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CallError::BadRequest(
            "the path is not printable ASCII starting with `/` (at most 2 KiB)",
        ));
    }
    if body.len() > MAX_CALL_BODY {
        return Err(CallError::TooLarge(body.len()));
    }
    Ok(())
}

/// Exports the AVS of this crate to the runtime: `export!(constructor)`, where `constructor`
/// is a path to a function (or `Type::default`) returning a type that implements [`Avs`]. The
/// AVS is known by its crate's package name and version (in attestations, metrics and the image
/// manifest). One crate per image exports one AVS (a second export does not link).
#[macro_export]
macro_rules! export {
    ($constructor:path) => {
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub fn __spacecore_avs() -> $crate::Exported {
            $crate::Exported {
                name: env!("CARGO_PKG_NAME"),
                version: env!("CARGO_PKG_VERSION"),
                avs: $crate::__private::Box::new($constructor()),
            }
        }
    };
}

/// What [`export!`] hands the runtime.
#[allow(missing_debug_implementations)]
pub struct Exported {
    /// The AVS crate's package name.
    pub name: &'static str,
    /// Its version.
    pub version: &'static str,
    /// The AVS.
    pub avs: alloc::boxed::Box<dyn Avs>,
}

#[doc(hidden)]
pub mod __private {
    pub use alloc::boxed::Box;
}

/// An HTTP request the runtime passes on: the whole body has arrived (at most 4 MiB).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// What follows `?`, if anything.
    pub query: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// A request for `target` (a path, then `?` and a query if any).
    pub fn new(method: &'a str, target: &'a str, body: &'a [u8]) -> Self {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        Request { method, path, query, body }
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// `value` as JSON.
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Response { status, content_type: "application/json", body },
            Err(_) => Response::error(500, "the response cannot be encoded"),
        }
    }

    /// `{"error": why}` with `status`, the runtime's own error shape.
    pub fn error(status: u16, why: &str) -> Self {
        #[derive(serde::Serialize)]
        struct Error<'a> {
            error: &'a str,
        }
        let body = serde_json::to_vec(&Error { error: why }).unwrap_or_default();
        Response { status, content_type: "application/json", body }
    }

    /// Plain text.
    pub fn text(status: u16, text: &str) -> Self {
        Response { status, content_type: "text/plain; charset=utf-8", body: text.as_bytes().to_vec() }
    }
}

/// A service of the AVS and its health, as the EigenLayer node API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its id in `/eigen/node/services/{id}/health`: lowercase letters, digits and `-`.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// What it does.
    pub description: String,
    /// How it is.
    pub status: Health,
}

/// A service's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Working.
    Up,
    /// Not working.
    Down,
    /// Not known yet.
    Initializing,
}

/// What the runtime gives the AVS. Every call is synchronous.
pub trait Node {
    /// Milliseconds since the guest started.
    fn now_ms(&self) -> u64;

    /// This boot's number on this disk (1 on the first boot; 0 without a disk).
    fn boot_count(&self) -> u64;

    /// The AVS's record on the disk, as last saved; `None` if it was never saved.
    fn load(&mut self) -> Result<Option<Vec<u8>>, StoreError>;

    /// Replaces the AVS's record (at most [`MAX_RECORD`] bytes). When it returns `Ok` the
    /// record is on the disk: after a crash or a power cut [`Node::load`] returns it or, if the
    /// call did not return, either it or the record before (never a mix).
    fn save(&mut self, record: &[u8]) -> Result<(), StoreError>;

    /// The operator: its id and public key, once its key is loaded.
    fn operator(&self) -> Option<Operator>;

    /// Signs `digest` as this operator's answer to task `index`, under the node's slashing
    /// protection: a task index is signed with one digest only, ever (the same digest again is
    /// signed again; another is refused), and the signing history reaches the disk before the
    /// signature exists. Indices far below the newest signed one are refused too.
    fn sign_task(&mut self, index: u32, digest: &[u8; 32]) -> Result<Signature, SignError>;

    /// Signs `message` for this AVS: the key signs `keccak256("spacecore.attest" ‖ AVS ‖
    /// keccak256(message))` where AVS is the image's AVS name, so an attestation can never pass
    /// as a task response or as another AVS's attestation ([`attestation_digest`]). No slashing
    /// protection: use it for receipts, not for anything a contract slashes.
    fn attest(&mut self, message: &[u8]) -> Result<Signature, SignError>;

    /// Whether `signature` (65 bytes `r ‖ s ‖ v`, EIP-191 `personal_sign` over `message`) is the
    /// AVS authority's: the Ethereum address the spec names in `spec.avs.task_signer`. `false`
    /// when the spec names none.
    fn verify_authority(&self, message: &[u8], signature: &[u8]) -> bool;

    /// The AVS authority's Ethereum address (`spec.avs.task_signer`), for messages signed in
    /// another form than EIP-191's; `None` when the spec names none.
    fn authority(&self) -> Option<[u8; 20]>;

    /// A setting of the AVS from its spec, as text: `"task_manager"` (`spec.avs.task_manager`,
    /// `0x` and 40 hex digits) and `"confirmations"` (`spec.avs.confirmations`); `None` when the
    /// spec does not set it.
    fn setting(&self, name: &str) -> Option<String>;

    /// Whether the spec names endpoint `name` and the network reaches it ([`Node::call`]).
    fn has_endpoint(&self, name: &str) -> bool;

    /// Writes `line` to the node's console (the launcher's log), after the AVS's name and `: `
    /// so that it can never pass for a line of the runtime's. Control characters become spaces;
    /// a line is cut to [`MAX_LOG_LINE`] bytes.
    fn log(&mut self, line: &str);

    /// Queues an HTTP request (`Content-Type: application/json` when there is a body) to the
    /// endpoint the spec names `endpoint` (`"aggregator"`, `"eth_rpc"`, `"eth_ws"`); returns the
    /// call's id. The outcome comes later, to [`Avs::call_done`]. The spacecore reaches nothing
    /// else: its network namespace relays only the named endpoints.
    fn call(&mut self, endpoint: &str, method: &str, path: &str, body: &[u8]) -> Result<u64, CallError>;
}

/// The operator, as the AVS may know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// Its operator id (32 bytes).
    pub id: [u8; 32],
    /// `"bn254"` or `"bls12-381"`.
    pub scheme: &'static str,
    /// Its public key's encoding.
    pub public_key: Vec<u8>,
}

/// A signature by the operator's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `"bn254"` (64 bytes, G1 `X ‖ Y`) or `"bls12-381"` (96 bytes, compressed G2).
    pub scheme: &'static str,
    /// The signature's encoding.
    pub bytes: Vec<u8>,
}

/// Why [`Node::save`] or [`Node::load`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The node has no disk.
    NoDisk,
    /// More than [`MAX_RECORD`] bytes.
    TooLarge(usize),
    /// The disk failed; the text says how.
    Io(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NoDisk => f.write_str("the node has no disk"),
            StoreError::TooLarge(n) => write!(f, "a record of {n} bytes is over {MAX_RECORD}"),
            StoreError::Io(why) => write!(f, "disk: {why}"),
        }
    }
}

/// Why a signature was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    /// The operator key is not loaded (yet, or it cannot be).
    NoKey(String),
    /// The slashing protection refuses it (a conflicting or too old task index).
    Refused(String),
    /// The signing history could not be written: nothing was signed.
    Storage(String),
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::NoKey(why) | SignError::Refused(why) | SignError::Storage(why) => f.write_str(why),
        }
    }
}

impl SignError {
    /// The HTTP status that fits: 503 without a key, 409 when refused, 500 on a disk failure.
    pub fn status(&self) -> u16 {
        match self {
            SignError::NoKey(_) => 503,
            SignError::Refused(_) => 409,
            SignError::Storage(_) => 500,
        }
    }
}

/// Ethereum's keccak-256.
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    use sha3::{Digest, Keccak256};
    Keccak256::digest(data).into()
}

/// The digest [`Node::attest`] signs for AVS `avs` and `message`.
pub fn attestation_digest(avs: &str, message: &[u8]) -> [u8; 32] {
    let mut preimage = Vec::with_capacity(16 + avs.len() + 32);
    preimage.extend_from_slice(b"spacecore.attest");
    preimage.extend_from_slice(avs.as_bytes());
    preimage.extend_from_slice(&keccak256(message));
    keccak256(&preimage)
}

/// `0x` and lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    alloc::format!("0x{}", hex::encode(bytes))
}

/// The bytes of `0x`-prefixed (or bare) hex; `None` if it is not hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    hex::decode(text.strip_prefix("0x").unwrap_or(text)).ok()
}
