//! Web3 Secret Storage version 3: the `crypto` object in which Ethereum tools (geth, eigensdk,
//! `eth-keyfile`) keep a secret encrypted under a password, and the two key files built on it:
//!
//! * [`EcdsaKeystore`]: the Ethereum v3 keystore of a secp256k1 key (`address`, `crypto`, `id`,
//!   `version` 3), as geth and `eigenlayer keys create --key-type ecdsa` write it;
//! * [`BlsKeyFile`]: eigensdk's BN254 key file (`pubKey` `E([X,Y])` in decimal, `crypto`), as
//!   `eigenlayer keys create --key-type bls` writes it.
//!
//! The `crypto` object ([`Crypto`]):
//!
//! | field | value |
//! | --- | --- |
//! | `cipher` | `aes-128-ctr` (key = derived key `[0..16]`, 128-bit big-endian counter) |
//! | `cipherparams.iv` | 16 bytes, hex |
//! | `ciphertext` | the encrypted secret, hex |
//! | `kdf` | `scrypt` (`kdfparams`: `n`, `r`, `p`, `dklen` 32, `salt`) or `pbkdf2` (`c`, `prf` `hmac-sha256`, `dklen` 32, `salt`) |
//! | `mac` | `keccak256(derived key[16..32] ‖ ciphertext)`, 32 bytes, hex |
//!
//! Unlike EIP-2335, the password is used as its raw UTF-8 bytes (no normalisation), as geth and
//! eigensdk-go do. Field names of the JSON objects are matched as Go's `encoding/json` matches
//! them, which is how geth and eigensdk read these files: the exact name, or else the one name
//! that equals it ignoring ASCII case (`Crypto` for `crypto`). The keys of `kdfparams` are
//! matched exactly.
//!
//! Reading checks everything, including the KDF cost against [`crate::limits`], so a file that
//! parses can be decrypted without surprises; decrypting re-checks the cost before any work.

mod bls;
mod ecdsa;
mod json;

use alloc::string::String;
use alloc::vec::Vec;
use serde_json::{Map, Value};
use sha3::{Digest, Keccak256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::kdf::Fields;
use crate::keystore::aes_ctr;
use crate::{Error, Kdf};

pub use bls::BlsKeyFile;
pub use ecdsa::EcdsaKeystore;

/// Longest ciphertext accepted: a key file protects a key of a few dozen bytes.
pub const MAX_CIPHERTEXT: usize = 1024;

/// A Web3 Secret Storage v3 `crypto` object, parsed and checked (module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crypto {
    /// The key-derivation function and its cost (`kdf`, `kdfparams` without the salt).
    pub kdf: Kdf,
    /// `kdfparams.salt`: any length (geth writes 32 bytes, `eth-keyfile` 16).
    pub salt: Vec<u8>,
    /// `cipherparams.iv`: the initial AES-CTR counter block.
    pub iv: [u8; 16],
    /// `ciphertext`: the secret, encrypted; 1 to [`MAX_CIPHERTEXT`] bytes.
    pub ciphertext: Vec<u8>,
    /// `mac`: `keccak256(derived key[16..32] ‖ ciphertext)`.
    pub mac: [u8; 32],
}

impl Crypto {
    /// Recovers the secret with `password`, used as raw bytes.
    ///
    /// The KDF cost is checked against [`crate::limits`] before any work; the MAC is compared
    /// in constant time.
    ///
    /// # Errors
    /// [`Error::WrongPassword`] if the MAC does not match (a wrong password, or an altered
    /// `mac`, `ciphertext` or KDF parameter); [`Error::KdfTooCostly`] or [`Error::Malformed`]
    /// for parameters out of bounds (only possible for a `Crypto` built by hand: parsing
    /// refuses them); [`Error::OutOfMemory`].
    pub fn decrypt(&self, password: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.kdf.check_named(&Fields::WEB3)?;
        check_ciphertext_len(self.ciphertext.len())?;
        let key = self.kdf.derive_named(password, &self.salt, &Fields::WEB3)?;
        let expected = mac(&key, &self.ciphertext);
        if !bool::from(expected.ct_eq(&self.mac)) {
            return Err(Error::WrongPassword);
        }
        let mut secret = Zeroizing::new(self.ciphertext.clone());
        aes_ctr(&key, &self.iv, secret.as_mut_slice());
        Ok(secret)
    }

    /// Encrypts `secret` under `password` (raw bytes) with `kdf`.
    ///
    /// `salt` and `iv` **must come from a cryptographically secure RNG**, fresh for every file:
    /// a repeated salt and IV under the same password repeat the AES key stream.
    ///
    /// # Errors
    /// [`Error::Malformed`] for an empty or too long secret or an invalid `kdf`,
    /// [`Error::KdfTooCostly`] for a `kdf` above [`crate::limits`] (the limits apply both ways,
    /// so this crate can always decrypt what it makes), [`Error::OutOfMemory`].
    pub fn encrypt(
        secret: &[u8],
        password: &[u8],
        kdf: Kdf,
        salt: [u8; 32],
        iv: [u8; 16],
    ) -> Result<Self, Error> {
        kdf.check_named(&Fields::WEB3)?;
        check_ciphertext_len(secret.len())?;
        let key = kdf.derive_named(password, &salt, &Fields::WEB3)?;
        let mut ciphertext = secret.to_vec();
        aes_ctr(&key, &iv, &mut ciphertext);
        let mac = mac(&key, &ciphertext);
        Ok(Crypto { kdf, salt: salt.to_vec(), iv, ciphertext, mac })
    }

    /// Reads and checks a `crypto` object (module docs).
    ///
    /// # Errors
    /// [`Error::Malformed`] (a field missing, of the wrong type, not hex, of the wrong length),
    /// [`Error::Unsupported`] (a cipher other than `aes-128-ctr`, a KDF other than `scrypt` or
    /// `pbkdf2`, a `prf` other than `hmac-sha256`, a `dklen` other than 32),
    /// [`Error::KdfTooCostly`]; each names the field, e.g. `crypto.kdfparams.n`.
    pub fn from_value(value: &Value) -> Result<Self, Error> {
        let object = json::object(value, "crypto")?;
        let cipher = json::str_field(object, "cipher", "crypto.cipher")?;
        if cipher != "aes-128-ctr" {
            return Err(Error::unsupported("crypto.cipher", cipher));
        }
        let cipherparams =
            json::object(json::field(object, "cipherparams", "crypto.cipherparams")?, "crypto.cipherparams")?;
        let iv = json::hex_array(
            json::str_field(cipherparams, "iv", "crypto.cipherparams.iv")?,
            "crypto.cipherparams.iv",
        )?;
        let ciphertext =
            json::hex_vec(json::str_field(object, "ciphertext", "crypto.ciphertext")?, "crypto.ciphertext")?;
        if ciphertext.is_empty() || ciphertext.len() > MAX_CIPHERTEXT {
            return Err(Error::malformed(
                "crypto.ciphertext",
                alloc::format!("{} bytes; expected 1 to {MAX_CIPHERTEXT}", ciphertext.len()),
            ));
        }
        let function = json::str_field(object, "kdf", "crypto.kdf")?;
        let kdfparams =
            json::object(json::field(object, "kdfparams", "crypto.kdfparams")?, "crypto.kdfparams")?;
        let (kdf, salt) = Kdf::from_module(function, kdfparams, &Fields::WEB3)?;
        let mac = json::hex_array(json::str_field(object, "mac", "crypto.mac")?, "crypto.mac")?;
        Ok(Crypto { kdf, salt, iv, ciphertext, mac })
    }

    /// The `crypto` object as a JSON value, with geth's field names. (A value's members are
    /// sorted; serialising the `Crypto` itself keeps geth's order.)
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("strings, integers and maps always serialise")
    }

    /// Decrypts a secret that must be exactly 32 bytes (both key files hold such a key).
    fn decrypt_32(&self, password: &[u8]) -> Result<crate::Secret, Error> {
        if self.ciphertext.len() != 32 {
            return Err(Error::malformed("crypto.ciphertext", "must be 32 bytes (64 hex digits)"));
        }
        let secret = self.decrypt(password)?;
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&secret);
        Ok(out)
    }
}

/// Writes the `crypto` object with geth's member names, in geth's order.
impl serde::Serialize for Crypto {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct CipherParams {
            iv: String,
        }
        #[derive(serde::Serialize)]
        struct Json<'a> {
            cipher: &'a str,
            ciphertext: String,
            cipherparams: CipherParams,
            kdf: &'a str,
            kdfparams: Map<String, Value>,
            mac: String,
        }
        let (kdf, kdfparams) = self.kdf.to_module(&self.salt);
        Json {
            cipher: "aes-128-ctr",
            ciphertext: hex::encode(&self.ciphertext),
            cipherparams: CipherParams { iv: hex::encode(self.iv) },
            kdf,
            kdfparams,
            mac: hex::encode(self.mac),
        }
        .serialize(serializer)
    }
}

fn check_ciphertext_len(len: usize) -> Result<(), Error> {
    if len == 0 || len > MAX_CIPHERTEXT {
        return Err(Error::malformed(
            "crypto.ciphertext",
            alloc::format!("{len} bytes; expected 1 to {MAX_CIPHERTEXT}"),
        ));
    }
    Ok(())
}

/// `keccak256(key[16..32] ‖ ciphertext)`, the v3 MAC.
fn mac(key: &[u8; 32], ciphertext: &[u8]) -> [u8; 32] {
    let mut hash = Keccak256::new();
    hash.update(&key[16..]);
    hash.update(ciphertext);
    hash.finalize().into()
}

/// Parses JSON text into a value, as the key files' `from_json` do.
fn parse(text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|e| Error::malformed("json", alloc::string::ToString::to_string(&e)))
}

/// Serialises a key file compactly, as geth and eigensdk-go write their files.
fn to_text(file: &impl serde::Serialize) -> String {
    // Key files are made of strings, integers and string-keyed maps, which always serialise.
    serde_json::to_string(file).expect("key files always serialise")
}
