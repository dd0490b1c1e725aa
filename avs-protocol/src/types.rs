//! The incredible-squaring task, its response and the signed response, with the message that
//! operators sign (EigenLayer's `keccak256(abi.encode(TaskResponse))`).

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::encoding::{hex_array, hex_vec, u256_string};
use crate::keccak::keccak256;
use crate::scheme::{DigestSigner, OperatorPublicKey, OperatorSignature};
use crate::{Error, U256};

/// A task as the `IncredibleSquaringTaskManager` contract stores it (`struct Task`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The number whose square the operators must return.
    #[serde(with = "u256_string")]
    pub number_to_be_squared: U256,
    /// The block at which the task was created; stakes are read at this block.
    pub task_created_block: u32,
    /// The quorums whose operators must answer, one byte per quorum number (`bytes` on chain).
    #[serde(with = "hex_vec")]
    pub quorum_numbers: Vec<u8>,
    /// The percentage (0..=100) of each quorum's stake that must sign for the task to complete.
    pub quorum_threshold_percentage: u32,
}

/// A task with the index the contract gave it (the `NewTaskCreated(taskIndex, task)` event):
/// what the task generator publishes and what an operator's node answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTask {
    /// The task's index in the task manager (`latestTaskNum` at creation).
    pub task_index: u32,
    /// The task itself.
    pub task: Task,
}

/// An operator's answer to a task (`struct TaskResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskResponse {
    /// The index of the task answered.
    pub reference_task_index: u32,
    /// `number_to_be_squared²`.
    #[serde(with = "u256_string")]
    pub number_squared: U256,
}

/// A response with an operator's signature over its [`TaskResponse::digest`]: what the node
/// sends to the aggregator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTaskResponse {
    /// The response signed.
    pub task_response: TaskResponse,
    /// The signature, BN254 (64 bytes) or BLS12-381 (96 bytes), as `0x` hex.
    pub signature: OperatorSignature,
    /// The signer, as [`OperatorPublicKey::operator_id`].
    #[serde(with = "hex_array")]
    pub operator_id: [u8; 32],
}

/// `number²`, with the contract's checked uint256 arithmetic: [`Error::SquareOverflow`] when
/// the square does not fit (any `number` ≥ 2^128), in which case the task is invalid.
pub fn square(number: U256) -> Result<U256, Error> {
    number.checked_mul(number).ok_or(Error::SquareOverflow)
}

impl Task {
    /// `abi.encode(task)`, as the TaskManager hashes it: the struct is dynamic (it holds
    /// `bytes`), so an offset word (32) comes first, then the four head words (the number, the
    /// block, the offset of the quorum bytes within the tuple, 128, the threshold), the bytes'
    /// length and the bytes, zero-padded to a whole word.
    pub fn abi_encode(&self) -> Vec<u8> {
        let word = |value: u64| {
            let mut w = [0u8; 32];
            w[24..].copy_from_slice(&value.to_be_bytes());
            w
        };
        let padded = self.quorum_numbers.len().div_ceil(32) * 32;
        let mut out = Vec::with_capacity(32 * 7 + padded);
        out.extend_from_slice(&word(32));
        out.extend_from_slice(&self.number_to_be_squared.to_be_bytes::<32>());
        out.extend_from_slice(&word(u64::from(self.task_created_block)));
        out.extend_from_slice(&word(128));
        out.extend_from_slice(&word(u64::from(self.quorum_threshold_percentage)));
        out.extend_from_slice(&word(self.quorum_numbers.len() as u64));
        out.extend_from_slice(&self.quorum_numbers);
        out.resize(out.len() + padded - self.quorum_numbers.len(), 0);
        out
    }

    /// `keccak256(abi.encode(task))`: the hash the TaskManager records for a task.
    pub fn hash(&self) -> [u8; 32] {
        keccak256(&self.abi_encode())
    }

    /// This task's correct response, given the index it was published under.
    pub fn respond(&self, task_index: u32) -> Result<TaskResponse, Error> {
        Ok(TaskResponse {
            reference_task_index: task_index,
            number_squared: square(self.number_to_be_squared)?,
        })
    }
}

impl TaskResponse {
    /// `abi.encode(TaskResponse)`: two 32-byte big-endian words, the task index (uint32,
    /// left-padded with zeros) and the square (uint256).
    pub fn abi_encode(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[28..32].copy_from_slice(&self.reference_task_index.to_be_bytes());
        out[32..].copy_from_slice(&self.number_squared.to_be_bytes::<32>());
        out
    }

    /// The message operators sign: `keccak256(abi.encode(TaskResponse))`, as the task manager
    /// contract and EigenLayer's middleware compute it.
    pub fn digest(&self) -> [u8; 32] {
        keccak256(&self.abi_encode())
    }
}

impl SignedTaskResponse {
    /// Signs `task_response`'s digest with `secret_key` (either scheme); the operator id is
    /// derived from the key's public key.
    pub fn sign(task_response: TaskResponse, secret_key: &impl DigestSigner) -> Self {
        SignedTaskResponse {
            task_response,
            signature: secret_key.sign_digest(&task_response.digest()),
            operator_id: secret_key.operator_id(),
        }
    }

    /// Parses the signature (with its group checks) and checks it over the response's digest
    /// with `public_key`, the key registered for [`Self::operator_id`]. Also checks that the
    /// operator id is that key's and the signature of its scheme.
    pub fn verify(&self, public_key: impl Into<OperatorPublicKey>) -> Result<(), Error> {
        let public_key = public_key.into();
        if public_key.operator_id() != self.operator_id {
            return Err(Error::VerificationFailed);
        }
        public_key.verify(&self.task_response.digest(), &self.signature)
    }
}
