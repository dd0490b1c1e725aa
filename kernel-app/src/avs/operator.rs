//! The operator's BLS key: loaded from the key file on the disk (the `Keystore` record) as the
//! scheme of the spec says, and used through `avs_protocol::OperatorSecretKey`, one signing path
//! for both schemes.
//!
//! | scheme | key file on the disk | operator id |
//! | --- | --- | --- |
//! | `bn254` (default) | eigensdk's BLS key file, `{"pubKey": "E([X,Y])", "crypto": {...}}` (Web3 v3 crypto, raw password bytes) | `keccak256(X ‖ Y)` of the G1 key (EigenLayer's) |
//! | `bls12-381` | an EIP-2335 keystore (password normalised as EIP-2335 says) | `keccak256` of the compressed key |
//!
//! A key file of the other scheme (or an ECDSA keystore stored as the BLS key) is refused with
//! a reason naming what the file is and what the spec asks for. A BN254 key file's `pubKey` must
//! be the G1 key of the secret it decrypts to: its MAC does not cover the IV, so a tampered file
//! could otherwise decrypt to another key than the one it claims.

use alloc::format;
use alloc::string::{String, ToString};
use avs_protocol::encoding::to_hex;
use avs_protocol::{OperatorPublicKey, OperatorSecretKey, OperatorSignature, Scheme};

/// What a key file is, judged by its shape alone (nothing is decrypted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFileKind {
    /// eigensdk's BN254 key file.
    Bn254,
    /// An EIP-2335 (BLS12-381) keystore.
    Bls12381,
    /// A Web3 v3 keystore of an ECDSA (secp256k1) key.
    Ecdsa,
}

impl KeyFileKind {
    /// The kind of `json`, if it parses as one of the three formats.
    pub fn of(json: &str) -> Option<Self> {
        if eip2335::web3::BlsKeyFile::from_json(json).is_ok() {
            Some(KeyFileKind::Bn254)
        } else if eip2335::Keystore::from_json(json).is_ok() {
            Some(KeyFileKind::Bls12381)
        } else if eip2335::web3::EcdsaKeystore::from_json(json).is_ok() {
            Some(KeyFileKind::Ecdsa)
        } else {
            None
        }
    }

    /// What the file is, for messages.
    fn describe(self) -> &'static str {
        match self {
            KeyFileKind::Bn254 => "an eigensdk BN254 key file (scheme bn254)",
            KeyFileKind::Bls12381 => "an EIP-2335 keystore (scheme bls12-381)",
            KeyFileKind::Ecdsa => "an ECDSA (Web3 v3) keystore, not a BLS key",
        }
    }
}

/// The key file `scheme` needs, for messages.
fn expected(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Bn254 => "an eigensdk BN254 key file",
        Scheme::Bls12381 => "an EIP-2335 keystore",
    }
}

/// The operator's signing key and what it is known by.
pub struct Operator {
    key: OperatorSecretKey,
    public: OperatorPublicKey,
    /// The operator id the aggregator knows ([`OperatorPublicKey::operator_id`]): for BN254,
    /// EigenLayer's `keccak256(X ‖ Y)` of the G1 key.
    pub id: [u8; 32],
}

impl core::fmt::Debug for Operator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Operator")
            .field("scheme", &self.scheme().name())
            .field("id", &to_hex(&self.id))
            .finish_non_exhaustive()
    }
}

impl Operator {
    /// Decrypts the key file `json` (the `Keystore` record) of `scheme` with `password` (the
    /// launcher's bytes, UTF-8). A file of another kind is refused, saying what it is.
    pub fn from_key_file(scheme: Scheme, json: &[u8], password: &[u8]) -> Result<Self, String> {
        let json = core::str::from_utf8(json).map_err(|_| "the stored key file is not UTF-8".to_string())?;
        let parsed = match scheme {
            Scheme::Bn254 => eip2335::web3::BlsKeyFile::from_json(json).map(Parsed::Bn254),
            Scheme::Bls12381 => eip2335::Keystore::from_json(json).map(Parsed::Bls12381),
        };
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(e) => {
                let want = expected(scheme);
                return Err(match KeyFileKind::of(json) {
                    Some(KeyFileKind::Ecdsa) => format!(
                        "the key file on the disk is {}; the operator key (scheme {}) must be {want} \
                         (an ECDSA keystore is imported with --ecdsa-keystore)",
                        KeyFileKind::Ecdsa.describe(),
                        scheme.name(),
                    ),
                    Some(kind) => {
                        let other = if kind == KeyFileKind::Bls12381 { "bls12-381" } else { "bn254" };
                        format!(
                            "the key file on the disk is {}, but spec.avs.scheme is {}, which needs \
                             {want}; import {want} or set scheme = \"{other}\"",
                            kind.describe(),
                            scheme.name(),
                        )
                    }
                    None => format!("unusable key file (expected {want}): {e}"),
                });
            }
        };
        let operator = match parsed {
            Parsed::Bn254(file) => Self::from_bn254(&file, password)?,
            Parsed::Bls12381(keystore) => {
                let password =
                    core::str::from_utf8(password).map_err(|_| "the password is not UTF-8".to_string())?;
                let secret =
                    keystore.decrypt(password).map_err(|e| format!("cannot decrypt the keystore: {e}"))?;
                let bytes: &[u8; 32] = secret
                    .as_slice()
                    .try_into()
                    .map_err(|_| "the keystore's secret is not 32 bytes".to_string())?;
                let key = OperatorSecretKey::from_bytes(Scheme::Bls12381, bytes)
                    .map_err(|e| format!("the keystore's secret: {e}"))?;
                Self::new(key)
            }
        };
        Ok(operator)
    }

    /// Decrypts eigensdk's BN254 key file and checks that its `pubKey` is the secret's G1 key.
    fn from_bn254(file: &eip2335::web3::BlsKeyFile, password: &[u8]) -> Result<Self, String> {
        let claimed = file.pub_key().map_err(|e| format!("unusable key file: {e}"))?;
        let secret = file.decrypt(password).map_err(|e| format!("cannot decrypt the key file: {e}"))?;
        let key = OperatorSecretKey::from_bytes(Scheme::Bn254, &secret)
            .map_err(|e| format!("the key file's secret: {e}"))?;
        let operator = Self::new(key);
        let OperatorPublicKey::Bn254(public) = operator.public else {
            return Err("a BN254 secret gave a key of another scheme".into());
        };
        if public.g1().to_bytes() != claimed {
            return Err("the key file's pubKey is not the G1 key of its secret (a tampered or mismatched \
                        file); not signing with it"
                .into());
        }
        Ok(operator)
    }

    /// The operator of `key`.
    pub fn new(key: OperatorSecretKey) -> Self {
        let public = key.public_key();
        Operator { id: public.operator_id(), public, key }
    }

    /// The key's scheme.
    pub fn scheme(&self) -> Scheme {
        self.public.scheme()
    }

    /// The public key.
    pub fn public_key(&self) -> &OperatorPublicKey {
        &self.public
    }

    /// The public key as the node shows it: `G1 0x… G2 0x…` for BN254 (the contracts' encodings),
    /// `0x…` (compressed) for BLS12-381.
    pub fn describe_public_key(&self) -> String {
        match &self.public {
            OperatorPublicKey::Bn254(key) => {
                format!("G1 {} G2 {}", to_hex(&key.g1().to_bytes()), to_hex(&key.g2().to_bytes()))
            }
            OperatorPublicKey::Bls12381(key) => to_hex(&key.to_bytes()),
        }
    }

    /// Signs a 32-byte digest (a task response's, as recorded in the signing history).
    pub fn sign(&self, digest: &[u8; 32]) -> OperatorSignature {
        self.key.sign(digest)
    }
}

/// A key file parsed as the scheme needs.
enum Parsed {
    Bn254(eip2335::web3::BlsKeyFile),
    Bls12381(eip2335::Keystore),
}
