//! The operator's ECDSA key (its chain identity) and the identity statement the node shows.
//!
//! The key comes from the Web3 v3 keystore in the disk's `EcdsaKeystore` record, decrypted after
//! ready with the password of `spec.avs.ecdsa_keystore_password_file`. It signs EIP-191 and
//! EIP-712 digests ([`ChainKey::sign_eip191`], [`ChainKey::sign_eip712`]) for the chain client;
//! nothing that reaches the node from outside chooses what it signs. The one signature the node
//! shows is over a fixed text, the [`statement`], which binds the BLS operator id (and scheme) to
//! the ECDSA address: anyone can check it by recovering the address from the EIP-191 hash of the
//! statement.

use alloc::format;
use alloc::string::String;
use avs_protocol::ecdsa;
use avs_protocol::encoding::to_hex;

use super::Operator;

/// The operator's ECDSA key and its address.
pub struct ChainKey {
    key: ecdsa::SecretKey,
    address: [u8; 20],
}

impl core::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChainKey").field("address", &to_hex(&self.address)).finish_non_exhaustive()
    }
}

impl ChainKey {
    /// Decrypts the Web3 v3 keystore `json` with `password` (raw bytes, as geth and eigensdk use
    /// them). When the keystore names an `address`, it must be the decrypted key's (the MAC does
    /// not cover the IV, so a tampered file could decrypt to another key).
    pub fn from_keystore(json: &[u8], password: &[u8]) -> Result<Self, String> {
        let json =
            core::str::from_utf8(json).map_err(|_| String::from("the stored ECDSA keystore is not UTF-8"))?;
        let keystore = eip2335::web3::EcdsaKeystore::from_json(json)
            .map_err(|e| format!("unusable ECDSA keystore: {e}"))?;
        let secret =
            keystore.decrypt(password).map_err(|e| format!("cannot decrypt the ECDSA keystore: {e}"))?;
        let key =
            ecdsa::SecretKey::from_bytes(&secret).map_err(|e| format!("the ECDSA keystore's secret: {e}"))?;
        let address = key.address();
        if let Some(claimed) = keystore.address
            && claimed != address
        {
            return Err(format!(
                "the ECDSA keystore's address {} is not the address of its secret ({}); not using it",
                to_hex(&claimed),
                to_hex(&address)
            ));
        }
        Ok(ChainKey { key, address })
    }

    /// The key's Ethereum address.
    pub fn address(&self) -> [u8; 20] {
        self.address
    }

    /// Signs `message` as an EIP-191 personal message (`personal_sign`): `r ‖ s ‖ v`.
    pub fn sign_eip191(&self, message: &[u8]) -> [u8; ecdsa::SIGNATURE_LEN] {
        self.key.sign_prehash(&ecdsa::eip191_hash(message))
    }

    /// Signs EIP-712 typed data given by its domain separator and struct hash: `r ‖ s ‖ v`.
    /// For the chain client (registration and other typed messages).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the chain client, which calls it, is not in the guest yet")
    )]
    pub fn sign_eip712(
        &self,
        domain_separator: &[u8; 32],
        struct_hash: &[u8; 32],
    ) -> [u8; ecdsa::SIGNATURE_LEN] {
        self.key.sign_prehash(&ecdsa::eip712_hash(domain_separator, struct_hash))
    }
}

/// The identity statement binding `operator` to the ECDSA `address`: fixed text, one
/// `name: value` line each, ending in a newline.
///
/// ```text
/// Spacecore operator identity
/// scheme: bn254
/// operator id: 0x…
/// ECDSA address: 0x…
/// ```
pub fn statement(operator: &Operator, address: &[u8; 20]) -> String {
    format!(
        "Spacecore operator identity\nscheme: {}\noperator id: {}\nECDSA address: {}\n",
        operator.scheme().name(),
        to_hex(&operator.id),
        to_hex(address)
    )
}

/// The node's signed identity: the [`statement`] and the ECDSA key's EIP-191 signature of it,
/// made once when both keys are loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The ECDSA address.
    pub address: [u8; 20],
    /// The statement text.
    pub statement: String,
    /// `r ‖ s ‖ v` over `eip191_hash(statement)`.
    pub signature: [u8; ecdsa::SIGNATURE_LEN],
}

impl Identity {
    /// Signs the statement binding `operator` to `key`.
    pub fn new(operator: &Operator, key: &ChainKey) -> Self {
        let statement = statement(operator, &key.address());
        let signature = key.sign_eip191(statement.as_bytes());
        Identity { address: key.address(), statement, signature }
    }
}
