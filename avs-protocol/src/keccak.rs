//! Ethereum's hash, for every module that needs it (digests, operator ids, addresses).

use sha3::{Digest, Keccak256};

/// Ethereum's keccak-256 (the original Keccak padding, not NIST SHA3-256).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}
