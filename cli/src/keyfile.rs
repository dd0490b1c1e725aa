//! The three key files an operator has, told apart by their JSON, read, checked and decrypted:
//! EIP-2335 keystores (BLS12-381), eigensdk BLS key files (BN254) and Ethereum v3 keystores
//! (ECDSA). Every error names the file and, from the `eip2335` crate, the JSON field.

use anyhow::{Context, Result, anyhow, bail};
use avs_protocol::{bls, bn254, ecdsa};
use eip2335::web3::{BlsKeyFile, EcdsaKeystore};
use eip2335::{Error, Keystore};
use serde_json::Value;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Largest key file read (each kind is about 0.5 to 1 KiB).
pub const MAX_KEY_FILE: u64 = 64 << 10;

/// A key file, parsed (and, for the Web3 kinds, fully checked).
#[derive(Debug)]
pub enum KeyFile {
    /// An EIP-2335 keystore (`version` 4): a BLS12-381 key.
    Eip2335(Keystore),
    /// An eigensdk BLS key file (`pubKey` and `crypto`, no `version`): a BN254 key.
    Bn254(BlsKeyFile),
    /// An Ethereum v3 keystore (`version` 3): a secp256k1 key.
    Ecdsa(EcdsaKeystore),
}

impl KeyFile {
    /// Tells the kind from the JSON: `version` 4 is EIP-2335, `version` 3 an Ethereum v3
    /// keystore, no `version` but a `pubKey` an eigensdk BLS key file.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| Error::Malformed { field: "json", why: e.to_string() })?;
        let object = value
            .as_object()
            .ok_or(Error::Malformed { field: "json", why: "must be a JSON object".into() })?;
        let member = |name: &str| object.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        match member("version").map(Value::as_u64) {
            Some(Some(4)) => Keystore::from_json(text).map(KeyFile::Eip2335),
            Some(Some(3)) => EcdsaKeystore::from_json(text).map(KeyFile::Ecdsa),
            Some(_) => Err(Error::Unsupported {
                field: "version",
                value: member("version").map(Value::to_string).unwrap_or_default(),
            }),
            None if member("pubKey").is_some() => BlsKeyFile::from_json(text).map(KeyFile::Bn254),
            None => Err(Error::Malformed {
                field: "version",
                why: "missing: not an EIP-2335 keystore (version 4), an Ethereum v3 keystore \
                      (version 3) or an eigensdk BLS key file (pubKey)"
                    .into(),
            }),
        }
    }

    /// What the file holds, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            KeyFile::Eip2335(_) => "an EIP-2335 keystore (bls12-381)",
            KeyFile::Bn254(_) => "an eigensdk BLS key file (bn254)",
            KeyFile::Ecdsa(_) => "an Ethereum v3 keystore (ecdsa)",
        }
    }
}

/// Reads a key file: its kind and its text.
pub fn read(path: &Path) -> Result<(KeyFile, String)> {
    let what = || format!("key file {}", path.display());
    let file = File::open(path).with_context(what)?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE + 1).read_to_string(&mut text).with_context(what)?;
    if text.len() as u64 > MAX_KEY_FILE {
        bail!("{}: larger than {MAX_KEY_FILE} bytes", what());
    }
    let key = KeyFile::parse(&text).map_err(anyhow::Error::msg).with_context(what)?;
    Ok((key, text))
}

/// A Web3 decryption error, naming `crypto.mac` for a failed password check.
fn web3_error(e: Error) -> anyhow::Error {
    match e {
        Error::WrongPassword => anyhow!(
            "crypto.mac: wrong password (the MAC does not match: a wrong password, or an altered file)"
        ),
        other => anyhow::Error::msg(other),
    }
}

/// The BLS12-381 key of an EIP-2335 keystore. The `pubkey` field, when present, must be the
/// secret's public key: the checksum does not cover the IV, so a tampered keystore can decrypt
/// to another key.
pub fn decrypt_eip2335(keystore: &Keystore, password: &str) -> Result<bls::SecretKey> {
    let secret = keystore.decrypt(password).map_err(anyhow::Error::msg)?;
    let key = bls::SecretKey::from_bytes(&secret).context("the keystore holds an invalid secret key")?;
    let pubkey = crate::hex::encode(&key.public_key().to_bytes());
    let stored = keystore.pubkey.trim_start_matches("0x").to_ascii_lowercase();
    if !stored.is_empty() && stored != pubkey[2..] {
        bail!("pubkey: 0x{stored} is not the public key of the keystore's secret ({pubkey})");
    }
    Ok(key)
}

/// The G1 key a BN254 key file records, checked to be a point of G1.
pub fn bn254_file_g1(file: &BlsKeyFile) -> Result<bn254::G1Point> {
    let xy = file.pub_key().map_err(anyhow::Error::msg)?;
    bn254::G1Point::from_bytes(&xy).map_err(|e| anyhow!("pubKey: not a BN254 G1 point: {e}"))
}

/// The BN254 key of an eigensdk key file; its `pubKey` must be the secret's G1 key.
pub fn decrypt_bn254(file: &BlsKeyFile, password: &str) -> Result<bn254::SecretKey> {
    let recorded = bn254_file_g1(file)?;
    let secret = file.decrypt(password.as_bytes()).map_err(web3_error)?;
    let key = bn254::SecretKey::from_bytes(&secret)
        .map_err(|_| anyhow!("crypto.ciphertext: the file holds an invalid BN254 secret key"))?;
    if key.public_key().g1() != recorded {
        bail!(
            "pubKey: {} is not the G1 public key of the file's secret ({})",
            file.pub_key,
            crate::hex::encode(&key.public_key().g1().to_bytes())
        );
    }
    Ok(key)
}

/// The secp256k1 key of an Ethereum v3 keystore; its `address`, when present, must be the
/// secret's address.
pub fn decrypt_ecdsa(keystore: &EcdsaKeystore, password: &str) -> Result<ecdsa::SecretKey> {
    let secret = keystore.decrypt(password.as_bytes()).map_err(web3_error)?;
    let key = ecdsa::SecretKey::from_bytes(&secret)
        .map_err(|_| anyhow!("crypto.ciphertext: the keystore holds an invalid secp256k1 secret key"))?;
    if let Some(address) = keystore.address
        && address != key.address()
    {
        bail!(
            "address: {} is not the address of the keystore's secret ({})",
            crate::hex::encode(&address),
            crate::hex::encode(&key.address())
        );
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_apart() {
        let e = |text: &str| KeyFile::parse(text).unwrap_err();
        assert!(matches!(e("{}"), Error::Malformed { field: "version", .. }));
        assert!(matches!(e("[]"), Error::Malformed { field: "json", .. }));
        assert!(matches!(e("{\"version\": 5}"), Error::Unsupported { field: "version", .. }));
        assert!(matches!(e("{\"version\": 3}"), Error::Malformed { field: "crypto", .. }));
        assert!(matches!(e("{\"pubKey\": \"E([1,2])\"}"), Error::Malformed { field: "crypto", .. }));
        assert!(matches!(e("{\"version\": 4}"), Error::Malformed { field: "json", .. }));
    }
}
