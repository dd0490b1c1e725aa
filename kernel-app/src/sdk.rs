//! The runtime's side of the AVS SDK (`spacecore_avs`): the [`Node`] services an AVS gets, over
//! the node's disk records, its signing path and its clock.

use crate::api;
use crate::avs::{AvsNode, Records, TaskError};
use crate::http::calls::CallRequest;
use crate::status::Status;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use avs_protocol::{OperatorPublicKey, ecdsa};
use spacecore_avs::{
    Avs, CallError, Health, MAX_CALLS, Node, Operator, Request, Response, SignError, Signature, StoreError,
};
use spacecore_store::RecordKey;

/// An AVS with no routes, no timers and no metrics: what an image without an AVS crate runs.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAvs;

impl Avs for NoAvs {
    fn routes(&self) -> &'static [&'static str] {
        &[]
    }

    fn handle(&mut self, _request: &Request<'_>, _node: &mut dyn Node) -> Option<Response> {
        None
    }
}

/// The AVS linked into the image, with its name and version.
pub struct Linked {
    /// Its crate's package name (the domain of its attestations).
    pub name: &'static str,
    /// Its version.
    pub version: &'static str,
    /// The AVS.
    pub avs: Box<dyn Avs>,
    /// When [`Avs::tick`] is due next (ms since boot); `Some(0)`: at once.
    pub due_ms: Option<u64>,
    /// Its outbound calls.
    pub outbound: Outbound,
}

impl core::fmt::Debug for Linked {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Linked").field("name", &self.name).field("version", &self.version).finish()
    }
}

impl Linked {
    /// `avs`, known as `name` `version`.
    pub fn new(name: &'static str, version: &'static str, avs: Box<dyn Avs>) -> Self {
        Linked { name, version, avs, due_ms: Some(0), outbound: Outbound::default() }
    }

    /// No AVS of its own.
    pub fn none() -> Self {
        Linked::new("none", "0", Box::new(NoAvs))
    }

    /// The AVS's services for the node API, as the runtime's own (never essential: an AVS's
    /// service that is down makes the node partially healthy); ids a path cannot carry are left
    /// out.
    pub fn services(&self) -> Vec<api::Service> {
        self.avs
            .services()
            .into_iter()
            .filter(|s| valid_id(&s.id))
            .map(|s| api::Service {
                id: s.id.into(),
                name: s.name.into(),
                description: s.description.into(),
                status: match s.status {
                    Health::Up => Status::Up,
                    Health::Down => Status::Down,
                    Health::Initializing => Status::Initializing,
                },
                essential: false,
            })
            .collect()
    }
}

/// The AVS's outbound calls: queued until a socket to their endpoint is free, then in flight
/// until their outcome reaches the AVS. At most [`MAX_CALLS`] at once.
#[derive(Debug, Default)]
pub struct Outbound {
    /// The endpoints the spec names and the network reaches.
    endpoints: Vec<&'static str>,
    queue: VecDeque<Pending>,
    in_flight: usize,
    made: u64,
}

#[derive(Debug)]
struct Pending {
    id: u64,
    endpoint: &'static str,
    method: String,
    path: String,
    body: Option<Vec<u8>>,
}

impl Outbound {
    /// Calls may go to `endpoints`.
    pub fn set_endpoints(&mut self, endpoints: Vec<&'static str>) {
        self.endpoints = endpoints;
    }

    fn push(&mut self, endpoint: &str, method: &str, path: &str, body: &[u8]) -> Result<u64, CallError> {
        let Some(endpoint) = self.endpoint(endpoint) else {
            return Err(CallError::UnknownEndpoint(endpoint.into()));
        };
        spacecore_avs::check_call(method, path, body)?;
        if self.queue.len() + self.in_flight >= MAX_CALLS {
            return Err(CallError::Busy);
        }
        self.made += 1;
        let body = (!body.is_empty() || method != "GET").then(|| body.to_vec());
        self.queue.push_back(Pending {
            id: self.made,
            endpoint,
            method: method.into(),
            path: path.into(),
            body,
        });
        Ok(self.made)
    }

    /// The endpoint named `name`, if the spec names it and the network reaches it.
    pub fn endpoint(&self, name: &str) -> Option<&'static str> {
        self.endpoints.iter().find(|&&e| e == name).copied()
    }

    /// The next queued call to `endpoint`, now in flight.
    pub fn next(&mut self, endpoint: &str) -> Option<(u64, CallRequest)> {
        let i = self.queue.iter().position(|p| p.endpoint == endpoint)?;
        let p = self.queue.remove(i)?;
        self.in_flight += 1;
        Some((p.id, CallRequest { method: p.method, path: p.path, body: p.body }))
    }

    /// A call in flight is over.
    pub fn finished(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}

/// A service id the node API can carry in a path: 1 to 64 of `[a-z0-9-]`.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

// The SDK's record is one slot of the store.
const _: () = assert!(spacecore_avs::MAX_RECORD == spacecore_store::MAX_VALUE);

/// The services of the node, lent to the AVS for one call.
pub struct Services<'a> {
    /// The node's signing side.
    pub avs: &'a mut AvsNode,
    /// The disk's records, if there is a disk.
    pub records: Option<&'a mut dyn Records>,
    /// Nanoseconds since boot.
    pub clock: &'a dyn Fn() -> u64,
    /// This boot's number (0 without a disk).
    pub boot_count: u64,
    /// The AVS's name: the domain of its attestations.
    pub avs_name: &'a str,
    /// The AVS's outbound calls.
    pub outbound: &'a mut Outbound,
    /// The AVS's settings from the spec.
    pub settings: &'a Settings,
    /// Writes a line of the AVS to the console: `(AVS name, line)`.
    pub log: fn(&str, &str),
}

/// The AVS's settings the spec gives ([`Node::setting`]).
#[derive(Debug, Default, Clone)]
pub struct Settings {
    /// `spec.avs.task_manager` (`spacecore.task_manager`), as `0x` hex.
    pub task_manager: Option<String>,
    /// `spec.avs.confirmations` (`spacecore.confirmations`).
    pub confirmations: Option<String>,
}

fn sign_error(e: TaskError) -> SignError {
    match e {
        TaskError::NotSigning(why) => SignError::NoKey(why),
        TaskError::Storage(why) => SignError::Storage(why),
        TaskError::Refused(why) => SignError::Refused(why),
    }
}

fn signature(s: avs_protocol::OperatorSignature) -> Signature {
    Signature { scheme: s.scheme().name(), bytes: s.as_bytes().to_vec() }
}

impl Node for Services<'_> {
    fn now_ms(&self) -> u64 {
        (self.clock)() / 1_000_000
    }

    fn boot_count(&self) -> u64 {
        self.boot_count
    }

    fn load(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        let records = self.records.as_mut().ok_or(StoreError::NoDisk)?;
        records.get(RecordKey::AvsRecord).map_err(StoreError::Io)
    }

    fn save(&mut self, record: &[u8]) -> Result<(), StoreError> {
        if record.len() > spacecore_avs::MAX_RECORD {
            return Err(StoreError::TooLarge(record.len()));
        }
        let records = self.records.as_mut().ok_or(StoreError::NoDisk)?;
        records.put(RecordKey::AvsRecord, record).map_err(StoreError::Io)
    }

    fn operator(&self) -> Option<Operator> {
        let op = self.avs.operator()?;
        let public_key = match op.public_key() {
            OperatorPublicKey::Bn254(key) => [&key.g1().to_bytes()[..], &key.g2().to_bytes()[..]].concat(),
            OperatorPublicKey::Bls12381(key) => key.to_bytes().to_vec(),
        };
        Some(Operator { id: op.id, scheme: op.scheme().name(), public_key })
    }

    fn sign_task(&mut self, index: u32, digest: &[u8; 32]) -> Result<Signature, SignError> {
        let records: Option<&mut dyn Records> = match &mut self.records {
            Some(r) => Some(&mut **r),
            None => None,
        };
        self.avs
            .sign_digest(index, digest, records, self.clock)
            .map(|(s, _)| signature(s))
            .map_err(sign_error)
    }

    fn attest(&mut self, message: &[u8]) -> Result<Signature, SignError> {
        let digest = spacecore_avs::attestation_digest(self.avs_name, message);
        self.avs.sign_attestation(&digest, self.clock).map(signature).map_err(sign_error)
    }

    fn call(&mut self, endpoint: &str, method: &str, path: &str, body: &[u8]) -> Result<u64, CallError> {
        self.outbound.push(endpoint, method, path, body)
    }

    fn authority(&self) -> Option<[u8; 20]> {
        self.avs.task_source().copied()
    }

    fn setting(&self, name: &str) -> Option<String> {
        match name {
            "task_manager" => self.settings.task_manager.clone(),
            "confirmations" => self.settings.confirmations.clone(),
            _ => None,
        }
    }

    fn has_endpoint(&self, name: &str) -> bool {
        self.outbound.endpoint(name).is_some()
    }

    fn log(&mut self, line: &str) {
        (self.log)(self.avs_name, &spacecore_avs::log_line(line));
    }

    fn verify_authority(&self, message: &[u8], signature: &[u8]) -> bool {
        let (Some(authority), Ok(signature)) = (self.avs.task_source(), signature.try_into()) else {
            return false;
        };
        ecdsa::recover_address(&ecdsa::eip191_hash(message), signature).is_ok_and(|a| &a == authority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_go_to_named_endpoints_in_order_and_within_the_limit() {
        let mut out = Outbound::default();
        out.set_endpoints(alloc::vec!["aggregator", "eth_rpc"]);
        assert_eq!(out.push("oracle", "GET", "/", b""), Err(CallError::UnknownEndpoint("oracle".into())));
        assert!(matches!(out.push("aggregator", "GET", "/\r\nX: 1", b""), Err(CallError::BadRequest(_))));
        assert_eq!(out.push("aggregator", "POST", "/a", b"{}"), Ok(1));
        assert_eq!(out.push("eth_rpc", "GET", "/b", b""), Ok(2));
        assert_eq!(out.push("aggregator", "GET", "/c", b""), Ok(3));
        assert!(out.next("eth_ws").is_none());
        let (id, request) = out.next("aggregator").unwrap();
        assert_eq!(id, 1);
        let CallRequest { method, path, body } = request;
        assert_eq!((method.as_str(), path.as_str(), body.as_deref()), ("POST", "/a", Some(&b"{}"[..])));
        let (id, request) = out.next("aggregator").unwrap();
        assert_eq!(id, 3);
        assert_eq!(request.body, None, "a GET without a body has none");
        // Queued and in flight together are limited.
        for _ in 3..MAX_CALLS {
            out.push("eth_rpc", "GET", "/", b"").unwrap();
        }
        assert_eq!(out.push("eth_rpc", "GET", "/", b""), Err(CallError::Busy));
        out.finished();
        assert!(out.push("eth_rpc", "GET", "/", b"").is_ok());
    }
}
