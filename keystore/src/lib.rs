//! EIP-2335 BLS12-381 keystores: the JSON format in which Ethereum validators and EigenLayer
//! operators keep a 32-byte secret key encrypted under a password. And, in [`web3`], the Web3
//! Secret Storage v3 files EigenLayer operators already have: Ethereum v3 keystores (ECDSA keys)
//! and eigensdk's BN254 BLS key files.
//!
//! * [`Keystore::from_json`] / [`Keystore::to_json`] read and write the JSON.
//! * [`Keystore::decrypt`] turns a keystore and its password back into the secret.
//! * [`Keystore::encrypt`] makes a keystore; the caller supplies the salt, IV and UUID, which
//!   must come from a cryptographically secure RNG (this crate has no RNG of its own).
//!
//! Supported modules: KDF `scrypt` or `pbkdf2` (`prf` `hmac-sha256`), checksum `sha256`, cipher
//! `aes-128-ctr`, `version` 4. Anything else is [`Error::Unsupported`].
//!
//! # Hostile keystores
//! A keystore names its own KDF cost, so decrypting an untrusted one could take minutes or
//! gigabytes. [`Keystore::decrypt`] refuses, before doing any work, parameters above the limits in
//! [`limits`] ([`Error::KdfTooCostly`]); [`Keystore::encrypt`] applies the same limits, so a
//! keystore this crate makes can always be opened by it.
//!
//! # Secrets in memory
//! The decrypted secret, the derived key and the processed password live in [`Zeroizing`]
//! buffers that are wiped on drop, and the AES key schedule is wiped too (`aes`'s `zeroize`
//! feature). The scratch memory inside the `scrypt`/`pbkdf2` crates is not: wiping is
//! best-effort, as in every Rust implementation of these KDFs.
//!
//! The crate is `no_std` + `alloc`; the `std` feature adds `impl std::error::Error` and
//! [`password_file`], the rules every password file is read by.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod kdf;
mod keystore;
mod password;
#[cfg(feature = "std")]
pub mod password_file;
pub mod web3;

use alloc::string::String;
use core::fmt;

pub use kdf::{Kdf, limits};
pub use keystore::{Crypto, Keystore, Module};
pub use password::process_password;
pub use zeroize::Zeroizing;

/// The secret a keystore protects: 32 bytes (a secret key, big-endian).
pub type Secret = Zeroizing<[u8; 32]>;

/// Why a keystore could not be read, decrypted or made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The password check fails (EIP-2335 `crypto.checksum`, Web3 v3 `crypto.mac`): the
    /// password is wrong, or the check value, the ciphertext or the KDF parameters were altered;
    /// the formats cannot tell these apart.
    WrongPassword,
    /// A well-formed value this crate does not implement: a `function` other than those listed
    /// in the crate docs, a `prf` other than `hmac-sha256`, a `dklen` other than 32, or a
    /// `version` other than 4.
    Unsupported {
        /// JSON path of the value, e.g. `crypto.kdf.function`.
        field: &'static str,
        /// The value found (cut to 64 characters).
        value: String,
    },
    /// A field is missing, has the wrong type, is not valid hex, has the wrong length, or the
    /// text is not JSON at all (`field` = `json`).
    Malformed {
        /// JSON path of the value, e.g. `crypto.cipher.params.iv`.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// A KDF parameter is above the limit in [`limits`]; nothing was computed.
    KdfTooCostly {
        /// JSON path of the parameter, e.g. `crypto.kdf.params.n`.
        param: &'static str,
        /// The value found.
        value: u64,
        /// The largest value accepted.
        max: u64,
    },
    /// The allocator could not provide scrypt's working memory (`n * r * 128` bytes).
    OutOfMemory {
        /// The size that could not be allocated.
        bytes: usize,
    },
}

impl Error {
    pub(crate) fn malformed(field: &'static str, why: impl Into<String>) -> Self {
        Error::Malformed { field, why: why.into() }
    }

    pub(crate) fn unsupported(field: &'static str, value: &str) -> Self {
        Error::Unsupported { field, value: value.chars().take(64).collect() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WrongPassword => {
                f.write_str("wrong password (the keystore's checksum or MAC does not match)")
            }
            Error::Unsupported { field, value } => write!(f, "unsupported {field}: {value:?}"),
            Error::Malformed { field, why } => write!(f, "malformed keystore: {field}: {why}"),
            Error::KdfTooCostly { param, value, max } => {
                write!(f, "KDF parameter {param} = {value} is above the limit {max}")
            }
            Error::OutOfMemory { bytes } => write!(f, "cannot allocate {bytes} bytes for scrypt"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
