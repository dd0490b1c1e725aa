//! The Ethereum v3 keystore of a secp256k1 key.

use alloc::string::{String, ToString};
use serde_json::Value;

use super::{Crypto, json};
use crate::{Error, Kdf, Secret};

/// An Ethereum v3 keystore: `address` (optional), `crypto`, `id`, `version` 3. Unknown members
/// are ignored.
///
/// This crate does no elliptic-curve arithmetic: [`EcdsaKeystore::decrypt`] does not check
/// that `address` belongs to the secret (the MAC does not cover the IV, so a tampered file can
/// decrypt to another key). A caller that can should derive the address and compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcdsaKeystore {
    /// `address`: the key's Ethereum address, 20 bytes (written as hex without `0x`; read with
    /// or without it, in any case). `None` if absent or `null`.
    pub address: Option<[u8; 20]>,
    /// `crypto` (or `Crypto`).
    pub crypto: Crypto,
    /// `id`: a UUID naming the file, kept as text (empty if absent).
    pub id: String,
}

impl EcdsaKeystore {
    /// Parses and checks a v3 keystore: `version` must be 3 and the ciphertext 32 bytes.
    ///
    /// # Errors
    /// The errors of [`Crypto::from_value`]; [`Error::Malformed`] for text that is not a JSON
    /// object (`json`), an `address` that is not 20 bytes of hex, a non-string `id`, a
    /// ciphertext that is not 32 bytes; [`Error::Unsupported`] for a `version` other than 3.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let value = super::parse(text)?;
        let object = json::object(&value, "json")?;
        let version = json::field(object, "version", "version")?;
        if version.as_u64() != Some(3) {
            return Err(Error::unsupported("version", &version.to_string()));
        }
        let crypto = Crypto::from_value(json::field(object, "crypto", "crypto")?)?;
        if crypto.ciphertext.len() != 32 {
            return Err(Error::malformed("crypto.ciphertext", "must be 32 bytes (64 hex digits)"));
        }
        let address = match json::lookup(object, "address", "address")? {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
                Some(json::hex_array(digits, "address")?)
            }
            Some(_) => return Err(Error::malformed("address", "must be a string")),
        };
        let id = match json::lookup(object, "id", "id")? {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(id)) => id.clone(),
            Some(_) => return Err(Error::malformed("id", "must be a string")),
        };
        Ok(EcdsaKeystore { address, crypto, id })
    }

    /// The keystore as compact JSON, as geth writes it (`address` without `0x`, lower case).
    pub fn to_json(&self) -> String {
        #[derive(serde::Serialize)]
        struct File<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            address: Option<String>,
            crypto: &'a Crypto,
            id: &'a str,
            version: u64,
        }
        super::to_text(&File {
            address: self.address.map(hex::encode),
            crypto: &self.crypto,
            id: &self.id,
            version: 3,
        })
    }

    /// Recovers the 32-byte secret key with `password` (raw bytes).
    ///
    /// # Errors
    /// Those of [`Crypto::decrypt`]; [`Error::Malformed`] if the ciphertext is not 32 bytes.
    pub fn decrypt(&self, password: &[u8]) -> Result<Secret, Error> {
        self.crypto.decrypt_32(password)
    }

    /// Makes a keystore of `secret` under `password` (raw bytes). `address` is the key's
    /// address, which this crate cannot compute; `id` a fresh RFC 4122 v4 UUID. `salt`, `iv`
    /// and `id` **must come from a cryptographically secure RNG** ([`Crypto::encrypt`]).
    ///
    /// # Errors
    /// Those of [`Crypto::encrypt`].
    pub fn encrypt(
        secret: &[u8; 32],
        password: &[u8],
        address: Option<[u8; 20]>,
        kdf: Kdf,
        salt: [u8; 32],
        iv: [u8; 16],
        id: &str,
    ) -> Result<Self, Error> {
        let crypto = Crypto::encrypt(secret, password, kdf, salt, iv)?;
        Ok(EcdsaKeystore { address, crypto, id: id.into() })
    }
}
