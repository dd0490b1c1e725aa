//! The calls the network side makes on the image's AVS's behalf (`crate::sdk`): each is one
//! HTTP request over a connection of its own ([`super::client`]); the socket side
//! (`crate::netstack`) asks for the calls that are queued and reports how each ended.

use super::client::HttpResponse;
use alloc::string::String;
use alloc::vec::Vec;

/// What a call sends, checked with `spacecore_avs::check_call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The JSON body, if any.
    pub body: Option<Vec<u8>>,
}

/// Calls to one endpoint, as the network side makes them: one HTTP request each, over its own
/// connection. Times are milliseconds since boot.
#[cfg_attr(test, expect(dead_code, reason = "driven by the network side, which only the image has"))]
pub trait Calls {
    /// The next call due at `now_ms`: its id and request. It is in flight until
    /// [`Calls::call_done`] reports on it.
    fn next_call(&mut self, now_ms: u64) -> Option<(u64, CallRequest)>;
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
#[cfg_attr(test, expect(dead_code, reason = "driven by the network side, which only the image has"))]
pub trait AvsCalls {
    /// The next call to `endpoint`, if one is queued.
    fn next_call(&mut self, endpoint: &str) -> Option<(u64, CallRequest)>;
    /// Call `id` is over: the answer, or why there is none.
    fn call_done(&mut self, id: u64, result: Result<HttpResponse, String>);
}
