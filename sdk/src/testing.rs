//! A [`Node`] for an AVS's unit tests on the host: an in-memory record, a clock the test sets,
//! and a stand-in signer.
//!
//! The stand-in's "signatures" are `keccak256(kind ‖ index ‖ digest)`: enough to see what was
//! signed, not a BLS signature. Real signatures come from the runtime, in the image.

use crate::{
    CallError, MAX_CALLS, MAX_RECORD, Node, Operator, SignError, Signature, StoreError, check_call, keccak256,
};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// Decides [`Node::verify_authority`] for a [`MemoryNode`].
pub type Authority = Box<dyn Fn(&[u8], &[u8]) -> bool>;

/// An in-memory node.
pub struct MemoryNode {
    /// What [`Node::now_ms`] returns.
    pub now_ms: u64,
    /// What [`Node::boot_count`] returns.
    pub boot_count: u64,
    /// The saved record.
    pub record: Option<Vec<u8>>,
    /// Saves made.
    pub saves: u64,
    /// When set, [`Node::save`] fails with this.
    pub fail_saves: Option<StoreError>,
    /// Task index → digest signed, as the runtime's slashing protection keeps them.
    pub signed: BTreeMap<u32, [u8; 32]>,
    /// Who [`Node::verify_authority`] accepts; without one, nobody.
    pub authority: Option<Authority>,
    /// What [`Node::authority`] returns.
    pub authority_address: Option<[u8; 20]>,
    /// What [`Node::setting`] returns, by name.
    pub settings: BTreeMap<String, String>,
    /// The endpoints [`Node::call`] knows.
    pub endpoints: Vec<&'static str>,
    /// Calls made and not yet answered by the test: id, endpoint, method, path, body. The test
    /// answers them by calling the AVS's `call_done`.
    pub calls: Vec<(u64, String, String, String, Vec<u8>)>,
    /// Calls made so far (the next id).
    pub calls_made: u64,
    /// Lines written with [`Node::log`], as the console would show them after the AVS's name.
    pub logged: Vec<String>,
}

impl core::fmt::Debug for MemoryNode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemoryNode").field("now_ms", &self.now_ms).field("saves", &self.saves).finish()
    }
}

impl Default for MemoryNode {
    fn default() -> Self {
        MemoryNode {
            now_ms: 0,
            boot_count: 1,
            record: None,
            saves: 0,
            fail_saves: None,
            signed: BTreeMap::new(),
            authority: None,
            authority_address: None,
            settings: BTreeMap::new(),
            endpoints: Vec::new(),
            calls: Vec::new(),
            calls_made: 0,
            logged: Vec::new(),
        }
    }
}

impl MemoryNode {
    /// The same disk and spec after a restart: the record, the signing history, the settings, the
    /// authority's address and the endpoints stay; the rest is new.
    pub fn restarted(&self) -> MemoryNode {
        MemoryNode {
            boot_count: self.boot_count + 1,
            record: self.record.clone(),
            signed: self.signed.clone(),
            authority_address: self.authority_address,
            settings: self.settings.clone(),
            endpoints: self.endpoints.clone(),
            ..MemoryNode::default()
        }
    }

    fn stand_in(kind: u8, index: u32, digest: &[u8; 32]) -> Signature {
        let mut preimage = Vec::with_capacity(37);
        preimage.push(kind);
        preimage.extend_from_slice(&index.to_be_bytes());
        preimage.extend_from_slice(digest);
        Signature { scheme: "test", bytes: keccak256(&preimage).to_vec() }
    }
}

impl Node for MemoryNode {
    fn now_ms(&self) -> u64 {
        self.now_ms
    }

    fn boot_count(&self) -> u64 {
        self.boot_count
    }

    fn load(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.record.clone())
    }

    fn save(&mut self, record: &[u8]) -> Result<(), StoreError> {
        if let Some(e) = &self.fail_saves {
            return Err(e.clone());
        }
        if record.len() > MAX_RECORD {
            return Err(StoreError::TooLarge(record.len()));
        }
        self.record = Some(record.to_vec());
        self.saves += 1;
        Ok(())
    }

    fn operator(&self) -> Option<Operator> {
        Some(Operator { id: [7; 32], scheme: "test", public_key: Vec::new() })
    }

    fn sign_task(&mut self, index: u32, digest: &[u8; 32]) -> Result<Signature, SignError> {
        match self.signed.get(&index) {
            Some(signed) if signed != digest => {
                return Err(SignError::Refused(alloc::format!(
                    "task {index} was signed with another digest"
                )));
            }
            _ => {
                self.signed.insert(index, *digest);
            }
        }
        Ok(Self::stand_in(0, index, digest))
    }

    fn attest(&mut self, message: &[u8]) -> Result<Signature, SignError> {
        Ok(Self::stand_in(1, 0, &keccak256(message)))
    }

    fn verify_authority(&self, message: &[u8], signature: &[u8]) -> bool {
        self.authority.as_ref().is_some_and(|check| check(message, signature))
    }

    fn authority(&self) -> Option<[u8; 20]> {
        self.authority_address
    }

    fn setting(&self, name: &str) -> Option<String> {
        self.settings.get(name).cloned()
    }

    fn has_endpoint(&self, name: &str) -> bool {
        self.endpoints.contains(&name)
    }

    fn log(&mut self, line: &str) {
        self.logged.push(crate::log_line(line));
    }

    fn call(&mut self, endpoint: &str, method: &str, path: &str, body: &[u8]) -> Result<u64, CallError> {
        if !self.endpoints.contains(&endpoint) {
            return Err(CallError::UnknownEndpoint(endpoint.into()));
        }
        check_call(method, path, body)?;
        if self.calls.len() >= MAX_CALLS {
            return Err(CallError::Busy);
        }
        self.calls_made += 1;
        self.calls.push((self.calls_made, endpoint.into(), method.into(), path.into(), body.to_vec()));
        Ok(self.calls_made)
    }
}
