//! The calls the network side makes on others' behalf: the node's calls to the aggregator
//! (`crate::avs`), the watcher's to the Ethereum node (`crate::chain`) and those of the image's
//! AVS (`crate::sdk`). Each is one HTTP request over a connection of its own ([`super::client`]);
//! the socket side (`crate::netstack`) asks for the calls that are due and reports how each
//! ended.

use super::client::HttpResponse;
use alloc::string::String;
use alloc::vec::Vec;

/// What a call sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallRequest {
    /// A JSON-RPC call: this body, in a `POST /`.
    Rpc(Vec<u8>),
    /// A probe: `GET /`, to learn whether the aggregator answers at all.
    Probe,
    /// A request of the image's AVS (`crate::sdk`): checked with `spacecore_avs::check_call`.
    Http {
        /// `GET`, `POST`, ...
        method: String,
        /// The path and query.
        path: String,
        /// The JSON body, if any.
        body: Option<Vec<u8>>,
    },
}

/// Calls to the aggregator (or the Ethereum node), as the network side makes them: one HTTP
/// request each, over its own connection. Times are milliseconds since boot.
pub trait Calls {
    /// The next call due at `now_ms`: its id and request. It is in flight until
    /// [`Calls::call_done`] reports on it.
    fn next_call(&mut self, now_ms: u64) -> Option<(u64, CallRequest)>;
    /// When the next call (a queued response or a probe) becomes due, if any (calls in flight
    /// excluded).
    fn next_due(&self) -> Option<u64>;
    /// The result of call `id`, which took `elapsed_us`: the HTTP response, or why there is
    /// none. Returns a line worth logging, if any.
    fn call_done(
        &mut self,
        id: u64,
        result: Result<HttpResponse, String>,
        now_ms: u64,
        elapsed_us: u64,
    ) -> Option<String>;
}

/// The network side's view of the calls of the image's AVS (`crate::sdk`), to its named
/// endpoints.
pub trait AvsCalls {
    /// The next call to `endpoint`, if one is queued.
    fn next_call(&mut self, endpoint: &str) -> Option<(u64, CallRequest)>;
    /// Call `id` is over: the answer, or why there is none.
    fn call_done(&mut self, id: u64, result: Result<HttpResponse, String>);
}
