//! The protocol of the incredible-squaring AVS, shared by the `no_std` unikernel that runs an
//! operator's node and the host-side aggregator and CLI:
//!
//! - [`Task`], [`NewTask`], [`TaskResponse`] and [`SignedTaskResponse`], and the squaring rule
//!   ([`square`]: overflow past uint256 makes the task invalid);
//! - the signed message, EigenLayer's `keccak256(abi.encode(TaskResponse))`
//!   ([`TaskResponse::digest`]);
//! - BN254 signatures exactly as EigenLayer makes and checks them ([`bn254`], the default), and
//!   BLS12-381 signatures, Ethereum consensus ciphersuite ([`bls`]), behind one run-time
//!   interface ([`scheme`]);
//! - the JSON wire format (serde derives) and the JSON-RPC 2.0 call to the aggregator ([`rpc`]);
//! - the task source's signature over a task pushed to a node ([`intake`]);
//! - the signing history a node keeps as slashing protection, its stored form and how two
//!   histories merge ([`history`]);
//! - the [`Avs`] and [`SignatureScheme`] seams, implemented by [`IncredibleSquaring`] and
//!   [`Bn254`] and [`Bls12381`].
//!
//! `docs/protocol.md` in the repository describes the protocol itself.
//!
//! The crate is `no_std` with `alloc` and has no `unsafe` code of its own.
//!
//! ```
//! use avs_protocol::{bls::SecretKey, Avs, IncredibleSquaring, NewTask, SignedTaskResponse, Task, U256};
//!
//! let task = NewTask {
//!     task_index: 7,
//!     task: Task {
//!         number_to_be_squared: U256::from(9u32),
//!         task_created_block: 100,
//!         quorum_numbers: vec![0],
//!         quorum_threshold_percentage: 100,
//!     },
//! };
//! let response = IncredibleSquaring.respond(&task)?;
//! assert_eq!(response.number_squared, U256::from(81u32));
//!
//! let operator_key = SecretKey::key_gen(&[1; 32])?;
//! let signed = SignedTaskResponse::sign(response, &operator_key);
//! signed.verify(&operator_key.public_key())?;
//! # Ok::<(), avs_protocol::Error>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod avs;
pub mod bls;
pub mod bn254;
pub mod ecdsa;
pub mod encoding;
mod error;
pub mod history;
pub mod intake;
mod keccak;
pub mod rpc;
pub mod scheme;
mod types;

pub use avs::{Avs, Bls12381, Bn254, IncredibleSquaring, SignatureScheme};
pub use error::Error;
pub use keccak::keccak256;
pub use scheme::{OperatorPublicKey, OperatorSecretKey, OperatorSignature, Scheme};
pub use types::{NewTask, SignedTaskResponse, Task, TaskResponse, square};

/// The uint256 of the contracts.
///
/// From [`ruint`]: `no_std`, const-generic and maintained as the integer type of the Alloy
/// Ethereum libraries, with checked arithmetic ([`U256::checked_mul`]) and big-endian byte
/// conversion ([`U256::to_be_bytes`]) built in. (`primitive-types`/`uint` would also do, but
/// are macro-generated and move more slowly.)
pub type U256 = ruint::aliases::U256;
