//! BLS12-381 signatures, Ethereum consensus style: the IETF "minimal-pubkey-size" proof-of-
//! possession ciphersuite (public keys in G1, 48 bytes compressed; signatures in G2, 96 bytes
//! compressed), implemented by [`blst`], whose types never appear in this API.
//!
//! # Group checks
//!
//! Every [`PublicKey`] and [`Signature`] value is a point of the prime-order subgroup other
//! than the identity: [`PublicKey::from_bytes`] and [`Signature::from_bytes`] check that the
//! encoding is canonical, the point is on the curve and in the subgroup, and is not infinity;
//! the aggregation functions refuse an identity result. [`verify`], [`fast_aggregate_verify`]
//! and [`pop_verify`] ask blst to check the signature's subgroup and the key again anyway.
//!
//! # Secret keys
//!
//! blst's secret key type derives `Zeroize` with `#[zeroize(drop)]`, so the scalar is wiped when
//! a [`SecretKey`] is dropped; [`SecretKey`] is not `Clone` and its `Debug` prints no key.
//!
//! # Guest builds
//!
//! blst is C and assembly built by the `cc` crate. It is used with its `portable` feature: by
//! default its build script enables the ADX/MULX code paths when the *build* machine has them,
//! which would make the image depend on where it was built. With `portable` both paths are
//! compiled and chosen at run time from CPUID by a C constructor; where no constructor runs (the
//! `x86_64-unknown-none` unikernel does not run `.init_array`) the baseline x86-64 path is used,
//! which runs on any x86-64 CPU.

use core::fmt;

use blst::BLST_ERROR;
use blst::min_pk as imp;
use zeroize::Zeroizing;

use crate::Error;
use crate::keccak::keccak256;

/// The domain separation tag of signatures (`Sign`, `Verify`, `FastAggregateVerify`).
pub const DST_SIGNATURE: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// The domain separation tag of proofs of possession (`PopProve`, `PopVerify`).
pub const DST_POP: &[u8] = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// Length of a compressed public key (G1).
pub const PUBLIC_KEY_LEN: usize = 48;
/// Length of a compressed signature (G2).
pub const SIGNATURE_LEN: usize = 96;

/// A BLS secret key: a scalar in `1..r`. Wiped on drop.
pub struct SecretKey(imp::SecretKey);

/// A BLS public key: a G1 point in the prime-order subgroup, never the identity.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(imp::PublicKey);

/// A BLS signature: a G2 point in the prime-order subgroup, never the identity.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(imp::Signature);

fn check(result: BLST_ERROR) -> Result<(), Error> {
    match result {
        BLST_ERROR::BLST_SUCCESS => Ok(()),
        e => Err(e.into()),
    }
}

impl SecretKey {
    /// A key from its 32-byte big-endian encoding; zero and values ≥ r are refused.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        imp::SecretKey::from_bytes(bytes).map(SecretKey).map_err(|_| Error::InvalidSecretKey)
    }

    /// The IETF `KeyGen` (HKDF-based, empty `key_info`) from at least 32 bytes of secret input
    /// key material.
    pub fn key_gen(ikm: &[u8]) -> Result<Self, Error> {
        if ikm.len() < 32 {
            return Err(Error::KeyMaterialTooShort);
        }
        imp::SecretKey::key_gen(ikm, &[]).map(SecretKey).map_err(|_| Error::KeyMaterialTooShort)
    }

    /// The 32-byte big-endian encoding (to store the key), wiped when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.sk_to_pk())
    }

    /// Signs `msg` with [`DST_SIGNATURE`].
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg, DST_SIGNATURE, &[]))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl PublicKey {
    /// Parses a compressed G1 point with all the group checks (module docs).
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self, Error> {
        Ok(PublicKey(imp::PublicKey::key_validate(bytes)?))
    }

    /// The compressed encoding.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.to_bytes()
    }

    /// The operator id this project gives the key: `keccak256` of its compressed encoding (the
    /// BLS12-381 counterpart of EigenLayer's `keccak256(abi.encodePacked(G1 X, G1 Y))` for
    /// BN254 keys).
    pub fn operator_id(&self) -> [u8; 32] {
        keccak256(&self.to_bytes())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", crate::encoding::to_hex(&self.to_bytes()))
    }
}

impl Signature {
    /// Parses a compressed G2 point with all the group checks (module docs).
    pub fn from_bytes(bytes: &[u8; SIGNATURE_LEN]) -> Result<Self, Error> {
        Ok(Signature(imp::Signature::sig_validate(bytes, true)?))
    }

    /// The compressed encoding.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0.to_bytes()
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", crate::encoding::to_hex(&self.to_bytes()))
    }
}

/// Whether a compressed encoding is the identity's (`0xc0` then zeros).
fn is_identity(compressed: &[u8]) -> bool {
    compressed.split_first().is_some_and(|(first, rest)| *first == 0xc0 && rest.iter().all(|b| *b == 0))
}

/// `Verify`: checks `signature` over `msg` by `public_key` ([`DST_SIGNATURE`]).
pub fn verify(public_key: &PublicKey, msg: &[u8], signature: &Signature) -> Result<(), Error> {
    check(signature.0.verify(true, msg, DST_SIGNATURE, &[], &public_key.0, true))
}

/// `Aggregate`: the sum of `signatures`. Refuses an empty list and an identity sum.
pub fn aggregate_signatures(signatures: &[&Signature]) -> Result<Signature, Error> {
    let inner: alloc::vec::Vec<&imp::Signature> = signatures.iter().map(|s| &s.0).collect();
    // Every `Signature` is already group-checked (module docs).
    let sum = imp::AggregateSignature::aggregate(&inner, false)?.to_signature();
    if is_identity(&sum.to_bytes()) {
        return Err(Error::PointAtInfinity);
    }
    Ok(Signature(sum))
}

/// The sum of `public_keys`, as the aggregator reports the signers' aggregate key. Refuses an
/// empty list and an identity sum.
pub fn aggregate_public_keys(public_keys: &[&PublicKey]) -> Result<PublicKey, Error> {
    let inner: alloc::vec::Vec<&imp::PublicKey> = public_keys.iter().map(|k| &k.0).collect();
    // Every `PublicKey` is already group-checked (module docs).
    let sum = imp::AggregatePublicKey::aggregate(&inner, false)?.to_public_key();
    if is_identity(&sum.to_bytes()) {
        return Err(Error::PointAtInfinity);
    }
    Ok(PublicKey(sum))
}

/// `FastAggregateVerify`: checks an aggregate `signature` over one `msg` by all of
/// `public_keys`. Sound only for keys whose proof of possession was checked ([`pop_verify`]),
/// which is what protects against rogue-key attacks.
pub fn fast_aggregate_verify(
    public_keys: &[&PublicKey],
    msg: &[u8],
    signature: &Signature,
) -> Result<(), Error> {
    verify(&aggregate_public_keys(public_keys)?, msg, signature)
}

/// `PopProve`: a proof of possession of `secret_key`, a signature over its compressed public
/// key with [`DST_POP`].
pub fn pop_prove(secret_key: &SecretKey) -> Signature {
    let public_key = secret_key.public_key().to_bytes();
    Signature(secret_key.0.sign(&public_key, DST_POP, &[]))
}

/// `PopVerify`: checks a proof of possession for `public_key`.
pub fn pop_verify(public_key: &PublicKey, proof: &Signature) -> Result<(), Error> {
    check(proof.0.verify(true, &public_key.to_bytes(), DST_POP, &[], &public_key.0, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blst_secret_keys_are_wiped_on_drop() {
        // blst's key is a plain byte array: only its zeroizing `Drop` makes it need dropping.
        assert!(core::mem::needs_drop::<imp::SecretKey>());
    }

    #[test]
    fn identity_encodings() {
        let mut inf = [0u8; SIGNATURE_LEN];
        inf[0] = 0xc0;
        assert!(is_identity(&inf));
        inf[95] = 1;
        assert!(!is_identity(&inf));
        assert!(!is_identity(&[]));
    }
}
