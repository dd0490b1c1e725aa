//! The runtime's side of the AVS SDK (`spacecore_avs`): the [`Node`] services an AVS gets, over
//! the node's disk records, its signing path and its clock.

use crate::avs::{AvsNode, Records, TaskError};
use crate::status::Status;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use avs_protocol::{OperatorPublicKey, ecdsa};
use spacecore_avs::{Avs, Health, Node, Operator, Request, Response, SignError, Signature, StoreError};
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
}

impl core::fmt::Debug for Linked {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Linked").field("name", &self.name).field("version", &self.version).finish()
    }
}

impl Linked {
    /// `avs`, known as `name` `version`.
    pub fn new(name: &'static str, version: &'static str, avs: Box<dyn Avs>) -> Self {
        Linked { name, version, avs, due_ms: Some(0) }
    }

    /// No AVS of its own.
    pub fn none() -> Self {
        Linked::new("none", "0", Box::new(NoAvs))
    }

    /// The AVS's services for the node API, as the runtime's own statuses.
    pub fn services(&self) -> Vec<(String, String, String, Status)> {
        self.avs
            .services()
            .into_iter()
            .filter(|s| valid_id(&s.id))
            .map(|s| {
                let status = match s.status {
                    Health::Up => Status::Up,
                    Health::Down => Status::Down,
                    Health::Initializing => Status::Initializing,
                };
                (s.id, s.name, s.description, status)
            })
            .collect()
    }
}

/// A service id the node API can carry in a path: 1 to 64 of `[a-z0-9-]`.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

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
}

fn sign_error(e: TaskError) -> SignError {
    match e {
        TaskError::NotSigning(why) => SignError::NoKey(why),
        TaskError::Storage(why) => SignError::Storage(why),
        other => SignError::Refused(other.message().into()),
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

    fn verify_authority(&self, message: &[u8], signature: &[u8]) -> bool {
        let (Some(authority), Ok(signature)) = (self.avs.task_source(), signature.try_into()) else {
            return false;
        };
        ecdsa::recover_address(&ecdsa::eip191_hash(message), signature).is_ok_and(|a| &a == authority)
    }
}
