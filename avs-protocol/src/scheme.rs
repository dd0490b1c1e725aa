//! The two signature schemes an operator's node can sign with, chosen at run time: BN254,
//! EigenLayer's own (the default), and BLS12-381 ([`Scheme`]). One key, signature and public
//! key type each for both ([`OperatorSecretKey`], [`OperatorSignature`], [`OperatorPublicKey`]),
//! so the node and the aggregator handle either through one interface.

use core::fmt;
use core::str::FromStr;

use serde::de::Deserializer;
use serde::{Deserialize, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::encoding::{StrVisitor, from_hex, to_hex};
use crate::{Error, bls, bn254};

/// A signature scheme.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// BN254 as EigenLayer signs and its contracts check ([`crate::bn254`]).
    #[default]
    Bn254,
    /// BLS12-381, Ethereum consensus ciphersuite ([`crate::bls`]).
    Bls12381,
}

impl Scheme {
    /// Both schemes, the default first.
    pub const ALL: [Scheme; 2] = [Scheme::Bn254, Scheme::Bls12381];

    /// The name used in configuration and logs: `bn254` or `bls12-381`.
    pub const fn name(self) -> &'static str {
        match self {
            Scheme::Bn254 => "bn254",
            Scheme::Bls12381 => "bls12-381",
        }
    }

    /// Length of a signature's encoding: 64 (BN254 G1 `X ‖ Y`) or 96 (BLS12-381 compressed G2).
    pub const fn signature_len(self) -> usize {
        match self {
            Scheme::Bn254 => bn254::SIGNATURE_LEN,
            Scheme::Bls12381 => bls::SIGNATURE_LEN,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name was neither `bn254` nor `bls12-381`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownScheme;

impl fmt::Display for UnknownScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown signature scheme: expected \"bn254\" or \"bls12-381\"")
    }
}

impl core::error::Error for UnknownScheme {}

impl FromStr for Scheme {
    type Err = UnknownScheme;

    fn from_str(s: &str) -> Result<Self, UnknownScheme> {
        Scheme::ALL.into_iter().find(|scheme| scheme.name() == s).ok_or(UnknownScheme)
    }
}

/// An operator's secret key in either scheme. Both wipe themselves on drop.
#[derive(Debug)]
pub enum OperatorSecretKey {
    /// A BN254 key.
    Bn254(bn254::SecretKey),
    /// A BLS12-381 key.
    Bls12381(bls::SecretKey),
}

impl OperatorSecretKey {
    /// The key of `scheme` whose 32-byte big-endian encoding is `bytes` (zero and values not
    /// below the scheme's group order are refused).
    pub fn from_bytes(scheme: Scheme, bytes: &[u8; 32]) -> Result<Self, Error> {
        Ok(match scheme {
            Scheme::Bn254 => OperatorSecretKey::Bn254(bn254::SecretKey::from_bytes(bytes)?),
            Scheme::Bls12381 => OperatorSecretKey::Bls12381(bls::SecretKey::from_bytes(bytes)?),
        })
    }

    /// The key's scheme.
    pub fn scheme(&self) -> Scheme {
        match self {
            OperatorSecretKey::Bn254(_) => Scheme::Bn254,
            OperatorSecretKey::Bls12381(_) => Scheme::Bls12381,
        }
    }

    /// The 32-byte big-endian encoding, wiped when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        match self {
            OperatorSecretKey::Bn254(key) => key.to_bytes(),
            OperatorSecretKey::Bls12381(key) => key.to_bytes(),
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> OperatorPublicKey {
        match self {
            OperatorSecretKey::Bn254(key) => OperatorPublicKey::Bn254(key.public_key()),
            OperatorSecretKey::Bls12381(key) => OperatorPublicKey::Bls12381(key.public_key()),
        }
    }

    /// Signs a 32-byte digest.
    pub fn sign(&self, digest: &[u8; 32]) -> OperatorSignature {
        match self {
            OperatorSecretKey::Bn254(key) => OperatorSignature::Bn254(key.sign(digest).to_bytes()),
            OperatorSecretKey::Bls12381(key) => OperatorSignature::Bls12381(key.sign(digest).to_bytes()),
        }
    }
}

/// An operator's public key in either scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorPublicKey {
    /// A BN254 key (G1 and G2).
    Bn254(bn254::PublicKey),
    /// A BLS12-381 key (G1).
    Bls12381(bls::PublicKey),
}

impl OperatorPublicKey {
    /// The key's scheme.
    pub fn scheme(&self) -> Scheme {
        match self {
            OperatorPublicKey::Bn254(_) => Scheme::Bn254,
            OperatorPublicKey::Bls12381(_) => Scheme::Bls12381,
        }
    }

    /// The operator id: `keccak256(G1 X ‖ G1 Y)` for BN254 (EigenLayer's), `keccak256` of the
    /// compressed key for BLS12-381.
    pub fn operator_id(&self) -> [u8; 32] {
        match self {
            OperatorPublicKey::Bn254(key) => key.operator_id(),
            OperatorPublicKey::Bls12381(key) => key.operator_id(),
        }
    }

    /// Checks `signature` over `digest`: the scheme must be the key's, the signature a valid
    /// point (every check of its scheme), and the pairing must hold.
    pub fn verify(&self, digest: &[u8; 32], signature: &OperatorSignature) -> Result<(), Error> {
        match (self, signature) {
            (OperatorPublicKey::Bn254(key), OperatorSignature::Bn254(bytes)) => {
                bn254::verify(&key.g2(), digest, &bn254::Signature::from_bytes(bytes)?)
            }
            (OperatorPublicKey::Bls12381(key), OperatorSignature::Bls12381(bytes)) => {
                bls::verify(key, digest, &bls::Signature::from_bytes(bytes)?)
            }
            _ => Err(Error::SchemeMismatch),
        }
    }
}

/// What can sign a digest as an operator: either scheme's secret key, or [`OperatorSecretKey`].
pub trait DigestSigner {
    /// Signs a 32-byte digest.
    fn sign_digest(&self, digest: &[u8; 32]) -> OperatorSignature;
    /// The operator id of the key ([`OperatorPublicKey::operator_id`]).
    fn operator_id(&self) -> [u8; 32];
}

impl DigestSigner for OperatorSecretKey {
    fn sign_digest(&self, digest: &[u8; 32]) -> OperatorSignature {
        self.sign(digest)
    }

    fn operator_id(&self) -> [u8; 32] {
        self.public_key().operator_id()
    }
}

impl DigestSigner for bn254::SecretKey {
    fn sign_digest(&self, digest: &[u8; 32]) -> OperatorSignature {
        OperatorSignature::Bn254(self.sign(digest).to_bytes())
    }

    fn operator_id(&self) -> [u8; 32] {
        self.public_key().operator_id()
    }
}

impl DigestSigner for bls::SecretKey {
    fn sign_digest(&self, digest: &[u8; 32]) -> OperatorSignature {
        OperatorSignature::Bls12381(self.sign(digest).to_bytes())
    }

    fn operator_id(&self) -> [u8; 32] {
        self.public_key().operator_id()
    }
}

impl From<&bn254::PublicKey> for OperatorPublicKey {
    fn from(key: &bn254::PublicKey) -> Self {
        OperatorPublicKey::Bn254(*key)
    }
}

impl From<&bls::PublicKey> for OperatorPublicKey {
    fn from(key: &bls::PublicKey) -> Self {
        OperatorPublicKey::Bls12381(*key)
    }
}

impl From<&OperatorPublicKey> for OperatorPublicKey {
    fn from(key: &OperatorPublicKey) -> Self {
        *key
    }
}

impl From<bn254::PublicKey> for OperatorPublicKey {
    fn from(key: bn254::PublicKey) -> Self {
        OperatorPublicKey::Bn254(key)
    }
}

impl From<bls::PublicKey> for OperatorPublicKey {
    fn from(key: bls::PublicKey) -> Self {
        OperatorPublicKey::Bls12381(key)
    }
}

/// A signature's encoding as it travels, not yet checked to be a valid point: 64 bytes for
/// BN254, 96 for BLS12-381. On the wire it is `0x` hex, and its length tells the scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorSignature {
    /// A BN254 signature: the G1 point `X ‖ Y`.
    Bn254([u8; bn254::SIGNATURE_LEN]),
    /// A BLS12-381 signature: a compressed G2 point.
    Bls12381([u8; bls::SIGNATURE_LEN]),
}

impl OperatorSignature {
    /// The signature's scheme.
    pub fn scheme(&self) -> Scheme {
        match self {
            OperatorSignature::Bn254(_) => Scheme::Bn254,
            OperatorSignature::Bls12381(_) => Scheme::Bls12381,
        }
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            OperatorSignature::Bn254(bytes) => bytes,
            OperatorSignature::Bls12381(bytes) => bytes,
        }
    }

    /// The signature whose encoding is `bytes`: 64 bytes are BN254, 96 BLS12-381.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if let Ok(bn) = bytes.try_into() {
            Some(OperatorSignature::Bn254(bn))
        } else {
            bytes.try_into().ok().map(OperatorSignature::Bls12381)
        }
    }
}

impl Serialize for OperatorSignature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(self.as_bytes()))
    }
}

impl<'de> Deserialize<'de> for OperatorSignature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor, not `<&str>::deserialize`: the text may be owned (`serde_json::Value`) or
        // escaped, where no borrowed string exists.
        d.deserialize_str(StrVisitor {
            what: "0x hex of a 64-byte (bn254) or 96-byte (bls12-381) signature",
            parse: |text: &str| from_hex(text).and_then(|bytes| OperatorSignature::from_slice(&bytes)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for scheme in Scheme::ALL {
            assert_eq!(scheme.name().parse::<Scheme>(), Ok(scheme));
        }
        assert_eq!("BN254".parse::<Scheme>(), Err(UnknownScheme));
        assert_eq!(Scheme::default(), Scheme::Bn254);
    }

    #[test]
    fn both_schemes_sign_and_verify_through_one_interface() {
        let digest = [3u8; 32];
        for scheme in Scheme::ALL {
            let key = OperatorSecretKey::from_bytes(scheme, &[5u8; 32]).unwrap();
            let signature = key.sign(&digest);
            assert_eq!(signature.scheme(), scheme);
            assert_eq!(signature.as_bytes().len(), scheme.signature_len());
            let public = key.public_key();
            assert_eq!(public.verify(&digest, &signature), Ok(()));
            assert_eq!(public.verify(&[4u8; 32], &signature), Err(Error::VerificationFailed));
            let other = Scheme::ALL.into_iter().find(|s| *s != scheme).unwrap();
            let foreign = OperatorSecretKey::from_bytes(other, &[5u8; 32]).unwrap().sign(&digest);
            assert_eq!(public.verify(&digest, &foreign), Err(Error::SchemeMismatch));
        }
    }

    #[test]
    fn signatures_deserialize_from_owned_and_escaped_text() {
        let signature = OperatorSignature::Bn254([0xab; 64]);
        let json = serde_json::to_value(signature).unwrap();
        assert_eq!(serde_json::from_value::<OperatorSignature>(json).unwrap(), signature);
        let escaped = alloc::format!("\"\\u0030x{}\"", "ab".repeat(64));
        assert_eq!(serde_json::from_str::<OperatorSignature>(&escaped).unwrap(), signature);
        assert!(serde_json::from_str::<OperatorSignature>("\"0xabcd\"").is_err());
    }

    #[test]
    fn signature_length_tells_the_scheme() {
        assert!(matches!(OperatorSignature::from_slice(&[0; 64]), Some(OperatorSignature::Bn254(_))));
        assert!(matches!(OperatorSignature::from_slice(&[0; 96]), Some(OperatorSignature::Bls12381(_))));
        assert_eq!(OperatorSignature::from_slice(&[0; 65]), None);
    }
}
