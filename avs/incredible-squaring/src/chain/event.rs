//! The incredible-squaring TaskManager's `NewTaskCreated` event, decoded into the node's
//! [`NewTask`] with `alloy-sol-types` (strict ABI decoding).
//!
//! ```solidity
//! struct Task { uint256 numberToBeSquared; uint32 taskCreatedBlock; bytes quorumNumbers; uint32 quorumThresholdPercentage; }
//! event NewTaskCreated(uint32 indexed taskIndex, Task task);
//! ```
//!
//! `topics[0]` is `keccak256("NewTaskCreated(uint32,(uint256,uint32,bytes,uint32))")`
//! ([`TOPIC0`]), `topics[1]` the task index as a 32-byte word, and the data `abi.encode(task)`.
//! Decoding is strict: exactly two topics, the index's word zero above its 32 bits, canonical
//! offsets, zero padding, no trailing bytes; the quorum numbers at most [`MAX_QUORUMS`] bytes.

use alloc::format;
use alloc::string::String;
use alloy_sol_types::abi::AbiDecoderConfig;
use alloy_sol_types::{SolEvent, sol};
use avs_protocol::{NewTask, Task, U256};

sol! {
    /// The incredible-squaring task, as the TaskManager emits it.
    struct SolTask {
        uint256 numberToBeSquared;
        uint32 taskCreatedBlock;
        bytes quorumNumbers;
        uint32 quorumThresholdPercentage;
    }

    /// Emitted by `createNewTask`.
    event NewTaskCreated(uint32 indexed taskIndex, SolTask task);
}

/// Most quorum numbers a task may list: EigenLayer's quorum bitmap has 192 bits, and a quorum
/// number is one byte.
pub const MAX_QUORUMS: usize = 192;

/// Memory the decoder may allocate for one log: the quorum numbers and some slack.
const DECODE_MEMORY: usize = 4096;

/// `topics[0]` of `NewTaskCreated`: keccak256 of its signature.
pub const TOPIC0: [u8; 32] = NewTaskCreated::SIGNATURE_HASH.0;

/// The event's signature (the struct is encoded as a tuple, whatever its Solidity name).
pub const SIGNATURE: &str = NewTaskCreated::SIGNATURE;

/// Decodes a `NewTaskCreated` log's topics and data into the task it announces.
pub fn decode(topics: &[[u8; 32]], data: &[u8]) -> Result<NewTask, String> {
    let config = AbiDecoderConfig::new().strict(true).memory_limit(DECODE_MEMORY);
    let words = topics.iter().map(|t| alloy_primitives::B256::from(*t));
    let event = NewTaskCreated::decode_raw_log_with_config(words, data, config)
        .map_err(|e| format!("not a NewTaskCreated log: {e}"))?;
    let quorums = event.task.quorumNumbers;
    if quorums.len() > MAX_QUORUMS {
        return Err(format!("{} quorum numbers, more than {MAX_QUORUMS}", quorums.len()));
    }
    let number = U256::from_be_bytes(event.task.numberToBeSquared.to_be_bytes::<32>());
    Ok(NewTask {
        task_index: event.taskIndex,
        task: Task {
            number_to_be_squared: number,
            task_created_block: event.task.taskCreatedBlock,
            quorum_numbers: quorums.to_vec(),
            quorum_threshold_percentage: event.task.quorumThresholdPercentage,
        },
    })
}
