//! The two official EIP-2335 test vectors.
//!
//! Provenance: the JSON below is the "Test Cases" section of the EIP-2335 text, read from
//! ethereum/ERCs `ERCS/erc-2335.md` (commit 000d8147da236a0025d1082433a7cda9f1adc6f7) when this
//! crate was written. Before use, both keystores were decrypted with an independent
//! implementation, the Python `ethstaker-deposit` 1.3.1 package from PyPI
//! (`ethstaker_deposit.key_handling.keystore.Keystore.decrypt`), which returned the secret below
//! for both, and whose `_process_password` gave the encoded password below.

use eip2335::{Error, Kdf, Keystore};

pub const PASSWORD: &str = "𝔱𝔢𝔰𝔱𝔭𝔞𝔰𝔰𝔴𝔬𝔯𝔡🔑";
pub const ENCODED_PASSWORD: &str = "7465737470617373776f7264f09f9491";
pub const SECRET: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";

pub const SCRYPT_VECTOR: &str = r#"{
    "crypto": {
        "kdf": {
            "function": "scrypt",
            "params": {
                "dklen": 32,
                "n": 262144,
                "p": 1,
                "r": 8,
                "salt": "d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"
            },
            "message": ""
        },
        "checksum": {
            "function": "sha256",
            "params": {},
            "message": "d2217fe5f3e9a1e34581ef8a78f7c9928e436d36dacc5e846690a5581e8ea484"
        },
        "cipher": {
            "function": "aes-128-ctr",
            "params": {
                "iv": "264daa3f303d7259501c93d997d84fe6"
            },
            "message": "06ae90d55fe0a6e9c5c3bc5b170827b2e5cce3929ed3f116c2811e6366dfe20f"
        }
    },
    "description": "This is a test keystore that uses scrypt to secure the secret.",
    "pubkey": "9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07",
    "path": "m/12381/60/3141592653/589793238",
    "uuid": "1d85ae20-35c5-4611-98e8-aa14a633906f",
    "version": 4
}"#;

pub const PBKDF2_VECTOR: &str = r#"{
    "crypto": {
        "kdf": {
            "function": "pbkdf2",
            "params": {
                "dklen": 32,
                "c": 262144,
                "prf": "hmac-sha256",
                "salt": "d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"
            },
            "message": ""
        },
        "checksum": {
            "function": "sha256",
            "params": {},
            "message": "8a9f5d9912ed7e75ea794bc5a89bca5f193721d30868ade6f73043c6ea6febf1"
        },
        "cipher": {
            "function": "aes-128-ctr",
            "params": {
                "iv": "264daa3f303d7259501c93d997d84fe6"
            },
            "message": "cee03fde2af33149775b7223e7845e4fb2c8ae1792e5f99fe9ecf474cc8c16ad"
        }
    },
    "description": "This is a test keystore that uses PBKDF2 to secure the secret.",
    "pubkey": "9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07",
    "path": "m/12381/60/0/0",
    "uuid": "64625def-3331-4eea-ab6f-782f3ed16a83",
    "version": 4
}"#;

fn secret() -> [u8; 32] {
    let mut s = [0u8; 32];
    hex::decode_to_slice(SECRET, &mut s).unwrap();
    s
}

#[test]
fn vector_password_encoding() {
    assert_eq!(hex::encode(&*eip2335::process_password(PASSWORD)), ENCODED_PASSWORD);
}

#[test]
fn scrypt_vector_decrypts() {
    let ks = Keystore::from_json(SCRYPT_VECTOR).unwrap();
    assert_eq!(hex::encode(*ks.decrypt(PASSWORD).unwrap()), SECRET);
}

#[test]
fn pbkdf2_vector_decrypts() {
    let ks = Keystore::from_json(PBKDF2_VECTOR).unwrap();
    assert_eq!(hex::encode(*ks.decrypt(PASSWORD).unwrap()), SECRET);
}

#[test]
fn pbkdf2_vector_wrong_password() {
    let ks = Keystore::from_json(PBKDF2_VECTOR).unwrap();
    assert_eq!(ks.decrypt("testpassword").unwrap_err(), Error::WrongPassword);
    // The same password without NFKD would not match either: the raw UTF-8 differs.
    assert_eq!(ks.decrypt("").unwrap_err(), Error::WrongPassword);
}

/// Encrypting the vector secret with the vector's salt, IV, KDF and metadata reproduces the
/// vector exactly, field for field.
#[test]
fn encrypt_reproduces_vectors() {
    for (json, kdf) in [(PBKDF2_VECTOR, Kdf::PBKDF2_DEFAULT), (SCRYPT_VECTOR, Kdf::SCRYPT_DEFAULT)] {
        let vector = Keystore::from_json(json).unwrap();
        let mut salt = [0u8; 32];
        hex::decode_to_slice(vector.crypto.kdf.params["salt"].as_str().unwrap(), &mut salt).unwrap();
        let mut iv = [0u8; 16];
        hex::decode_to_slice(vector.crypto.cipher.params["iv"].as_str().unwrap(), &mut iv).unwrap();
        let mut made =
            Keystore::encrypt(&secret(), PASSWORD, &vector.pubkey, &vector.path, kdf, salt, iv, &vector.uuid)
                .unwrap();
        made.description = vector.description.clone();
        assert_eq!(made, vector);
    }
}

#[test]
fn json_round_trip() {
    for json in [SCRYPT_VECTOR, PBKDF2_VECTOR] {
        let ks = Keystore::from_json(json).unwrap();
        let again = Keystore::from_json(&ks.to_json()).unwrap();
        assert_eq!(again, ks);
        let original: serde_json::Value = serde_json::from_str(json).unwrap();
        let written: serde_json::Value = serde_json::from_str(&ks.to_json()).unwrap();
        assert_eq!(written, original, "to_json keeps every field and value");
    }
}
