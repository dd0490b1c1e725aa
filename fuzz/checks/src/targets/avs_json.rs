//! The AVS protocol's JSON on arbitrary bytes: the signed response, the JSON-RPC request that
//! carries it, the JSON-RPC response and the published task. Parsing never panics, and whatever
//! parses serialises, parses back to the same value and serialises to the same text.

use avs_protocol::rpc::{Request, Response};
use avs_protocol::{NewTask, SignedTaskResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<T>(data) else { return };
    let text = serde_json::to_vec(&value).expect("a parsed value serialises");
    let again: T = serde_json::from_slice(&text).expect("what was written parses");
    assert_eq!(again, value, "{}", String::from_utf8_lossy(&text));
    assert_eq!(serde_json::to_vec(&again).expect("serialising again"), text);
}

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    round_trip::<SignedTaskResponse>(data);
    round_trip::<Request<SignedTaskResponse>>(data);
    round_trip::<Response<bool>>(data);
    round_trip::<NewTask>(data);
}
