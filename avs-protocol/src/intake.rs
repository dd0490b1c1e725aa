//! Authenticated task intake: a task pushed to a node over HTTP (`POST /task`) carries the
//! ECDSA signature of the task source the node's spec names (`spec.avs.task_signer`, an
//! Ethereum address), so that nobody else can make the node sign, or fill its signing history
//! with indices of their choosing.
//!
//! The signed message binds the task index and the whole task:
//!
//! ```text
//! digest = keccak256("SPACECORE_TASK_AUTHORIZATION_V1" ‖ task_index (4 bytes, big-endian)
//!                    ‖ keccak256(abi.encode(task)))
//! ```
//!
//! signed as a 32-byte digest (no EIP-191 prefix), `r ‖ s ‖ v` with `v` 27 or 28, low `s`
//! ([`crate::ecdsa`]). The request body is a [`NewTask`] with one more member,
//! `"authorization": "0x…"` (65 bytes).

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::ecdsa::{self, SIGNATURE_LEN};
use crate::encoding::hex_array;
use crate::keccak::keccak256;
use crate::{NewTask, Task};

/// The domain tag of the authorization digest.
pub const DOMAIN: &[u8] = b"SPACECORE_TASK_AUTHORIZATION_V1";

/// The body of `POST /task`: a task and the task source's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizedTask {
    /// The task's index.
    pub task_index: u32,
    /// The task.
    pub task: Task,
    /// The task source's signature over [`digest`]; absent in an unauthenticated request.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_signature")]
    pub authorization: Option<[u8; SIGNATURE_LEN]>,
}

/// Why a pushed task is not accepted as the source's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntakeError {
    /// The request carries no `authorization`.
    Missing,
    /// The signature is malformed or recovers to no key.
    Invalid,
    /// The signature is another key's than the task source's.
    WrongSigner([u8; 20]),
}

impl core::fmt::Display for IntakeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            IntakeError::Missing => f.write_str("the task carries no authorization from the task source"),
            IntakeError::Invalid => f.write_str("the task's authorization is not a valid signature"),
            IntakeError::WrongSigner(_) => f.write_str("the task's authorization is not the task source's"),
        }
    }
}

/// The message the task source signs for `task`.
pub fn digest(task: &NewTask) -> [u8; 32] {
    let mut message = Vec::with_capacity(DOMAIN.len() + 4 + 32);
    message.extend_from_slice(DOMAIN);
    message.extend_from_slice(&task.task_index.to_be_bytes());
    message.extend_from_slice(&task.task.hash());
    keccak256(&message)
}

impl AuthorizedTask {
    /// `task` signed by the task source's `key`.
    pub fn sign(task: NewTask, key: &ecdsa::SecretKey) -> Self {
        let authorization = Some(key.sign_prehash(&digest(&task)));
        AuthorizedTask { task_index: task.task_index, task: task.task, authorization }
    }

    /// `task` without authorization.
    pub fn unsigned(task: NewTask) -> Self {
        AuthorizedTask { task_index: task.task_index, task: task.task, authorization: None }
    }

    /// The task, if its authorization is the signature of `source` (an Ethereum address).
    pub fn verify(self, source: &[u8; 20]) -> Result<NewTask, IntakeError> {
        let signature = self.authorization.ok_or(IntakeError::Missing)?;
        let task = NewTask { task_index: self.task_index, task: self.task };
        let signer = ecdsa::recover_address(&digest(&task), &signature).map_err(|_| IntakeError::Invalid)?;
        if signer != *source {
            return Err(IntakeError::WrongSigner(signer));
        }
        Ok(task)
    }
}

/// `Option<[u8; 65]>` as an optional `0x` hex string.
mod optional_signature {
    use super::{SIGNATURE_LEN, hex_array};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<[u8; SIGNATURE_LEN]>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => hex_array::serialize(bytes, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; SIGNATURE_LEN]>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "hex_array")] [u8; SIGNATURE_LEN]);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(bytes)| bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::U256;
    use alloc::vec;

    fn task(index: u32, number: u64) -> NewTask {
        NewTask {
            task_index: index,
            task: Task {
                number_to_be_squared: U256::from(number),
                task_created_block: 9,
                quorum_numbers: vec![0],
                quorum_threshold_percentage: 67,
            },
        }
    }

    fn key(byte: u8) -> ecdsa::SecretKey {
        ecdsa::SecretKey::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn the_source_signature_is_accepted_and_nothing_else() {
        let source = key(7);
        let signed = AuthorizedTask::sign(task(3, 5), &source);
        assert_eq!(signed.clone().verify(&source.address()), Ok(task(3, 5)));
        assert_eq!(
            signed.clone().verify(&key(8).address()),
            Err(IntakeError::WrongSigner(source.address())),
            "another source"
        );
        assert_eq!(AuthorizedTask::unsigned(task(3, 5)).verify(&source.address()), Err(IntakeError::Missing));
        // The signature covers the index and every member of the task.
        let mut moved = signed.clone();
        moved.task_index = 4;
        assert!(moved.verify(&source.address()).is_err(), "another index");
        let mut changed = signed.clone();
        changed.task.number_to_be_squared = U256::from(6u8);
        assert!(changed.verify(&source.address()).is_err(), "another number");
        let mut quorums = signed.clone();
        quorums.task.quorum_numbers = vec![0, 1];
        assert!(quorums.verify(&source.address()).is_err(), "other quorums");
        let mut garbage = signed;
        garbage.authorization = Some([0xff; SIGNATURE_LEN]);
        assert_eq!(garbage.verify(&source.address()), Err(IntakeError::Invalid));
    }

    #[test]
    fn json_round_trip_with_and_without_authorization() {
        let signed = AuthorizedTask::sign(task(3, 5), &key(7));
        let text = serde_json::to_string(&signed).unwrap();
        assert!(text.contains("\"authorization\":\"0x"), "{text}");
        assert_eq!(serde_json::from_str::<AuthorizedTask>(&text).unwrap(), signed);
        let plain = serde_json::to_string(&task(3, 5)).unwrap();
        assert_eq!(
            serde_json::from_str::<AuthorizedTask>(&plain).unwrap(),
            AuthorizedTask::unsigned(task(3, 5))
        );
        let bad = text.replace("\"authorization\":\"0x", "\"authorization\":\"0x00");
        assert!(serde_json::from_str::<AuthorizedTask>(&bad).is_err(), "a signature of 65 bytes only");
    }

    #[test]
    fn task_abi_encoding_has_the_solidity_layout() {
        let t = task(0, 0x1234).task;
        let encoded = t.abi_encode();
        assert_eq!(encoded.len(), 32 * 7);
        assert_eq!(encoded[31], 0x20, "offset of the dynamic struct");
        assert_eq!(&encoded[62..64], &[0x12, 0x34]);
        assert_eq!(encoded[95], 9, "the block");
        assert_eq!(encoded[127], 0x80, "the bytes' offset within the tuple");
        assert_eq!(encoded[159], 67, "the threshold");
        assert_eq!(encoded[191], 1, "one quorum byte");
        assert_eq!(&encoded[192..], &[0u8; 32], "quorum 0, zero-padded");
    }
}
