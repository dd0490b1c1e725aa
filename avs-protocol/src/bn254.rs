//! BLS signatures on BN254 (alt_bn128) exactly as EigenLayer makes and checks them: the
//! middleware's `BN254.sol` and `BLSSignatureChecker`, eigensdk-go's `crypto/bls` and
//! eigensdk-rs's `eigen-crypto-bls`. The arithmetic is arkworks' ([`ark_bn254`]), whose types
//! never appear in this API.
//!
//! | what | EigenLayer's definition |
//! | --- | --- |
//! | secret key | a scalar in `1..r`, 32 bytes big-endian |
//! | public keys | `sk·G1` and `sk·G2` (the G1 key identifies the operator, the G2 key is what signatures are checked against) |
//! | message | 32 bytes (a keccak256 digest) |
//! | hash to G1 | try-and-increment: `x = msg mod p`, `y = (x³ + 3)^((p+1)/4)`; if `y² ≠ x³ + 3`, `x += 1` and again. No domain tag |
//! | signature | `sk·H(m)`, a G1 point |
//! | check | `e(σ, G2) = e(H(m), pk_G2)` |
//! | G1 encoding | `X ‖ Y`, each 32 bytes big-endian (the contracts' `G1Point`) |
//! | G2 encoding | `X.c1 ‖ X.c0 ‖ Y.c1 ‖ Y.c0`, each 32 bytes big-endian (the contracts' `G2Point`, imaginary part first) |
//! | operator id | `keccak256(X ‖ Y)` of the G1 key |
//!
//! # Checks on points from outside
//! [`G1Point::from_bytes`] and [`G2Point::from_bytes`] refuse coordinates that are not below
//! the field modulus, points off the curve, G2 points outside the prime-order subgroup (G1 has
//! cofactor 1), and the identity (`(0, 0)` in the contracts' encoding). [`PublicKey::new`] also
//! checks by a pairing that the G1 and G2 keys have the same secret. Aggregates that sum to the
//! identity are refused.
//!
//! # Proof of possession
//! Aggregating keys is only sound for keys whose owner proved knowledge of the secret (rogue-key
//! attacks). EigenLayer's registry gets that proof from the registration signature of
//! `BLSApkRegistry`; for operator sets given in a file, this crate defines [`pop_prove`]: a
//! signature over `keccak256("SPACECORE_BN254_POP" ‖ X ‖ Y)` of the G1 key.
//!
//! # Secret keys and timing
//! [`SecretKey`] wipes its scalar when dropped and prints no key. The scalar multiplications
//! are arkworks' double-and-add, whose time depends on the scalar's bits, as in eigensdk-rs.

use core::fmt;

use ark_bn254::{Bn254, Fq, Fq2, Fr, G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::pairing::Pairing;
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::{BigInt, BigInteger, Field, PrimeField, Zero};
use zeroize::{Zeroize, Zeroizing};

use crate::Error;
use crate::keccak::keccak256;

/// Length of an encoded G1 point (`X ‖ Y`), and so of a signature.
pub const G1_LEN: usize = 64;
/// Length of an encoded G2 point (`X.c1 ‖ X.c0 ‖ Y.c1 ‖ Y.c0`).
pub const G2_LEN: usize = 128;
/// Length of an encoded signature (a G1 point).
pub const SIGNATURE_LEN: usize = G1_LEN;
/// The prefix of the message a proof of possession signs (module docs).
pub const POP_TAG: &[u8] = b"SPACECORE_BN254_POP";

/// A secret key: a scalar in `1..r`. Wiped on drop.
pub struct SecretKey(Fr);

/// A point of G1 other than the identity, on the curve (G1 has cofactor 1).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct G1Point(G1Affine);

/// A point of G2's prime-order subgroup other than the identity.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct G2Point(G2Affine);

/// An operator's public key: the same secret times the G1 and the G2 generator.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    g1: G1Point,
    g2: G2Point,
}

/// A signature: a G1 point other than the identity.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(G1Point);

/// A 32-byte big-endian integer as arkworks' little-endian limbs.
fn bigint(bytes: &[u8; 32]) -> BigInt<4> {
    let mut limbs = [0u64; 4];
    for (i, limb) in limbs.iter_mut().enumerate() {
        let start = 32 - 8 * (i + 1);
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[start..start + 8]);
        *limb = u64::from_be_bytes(word);
    }
    BigInt::new(limbs)
}

/// A base-field element from 32 big-endian bytes; values ≥ p are refused (not reduced).
fn fq(bytes: &[u8]) -> Result<Fq, Error> {
    let bytes: &[u8; 32] = bytes.try_into().map_err(|_| Error::BadEncoding)?;
    Fq::from_bigint(bigint(bytes)).ok_or(Error::BadEncoding)
}

/// 32 big-endian bytes of a base-field element.
fn fq_bytes(value: Fq, out: &mut [u8]) {
    out.copy_from_slice(&value.into_bigint().to_bytes_be());
}

impl SecretKey {
    /// A key from its 32-byte big-endian encoding; zero and values ≥ r are refused.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        let mut limbs = bigint(bytes);
        let scalar = Fr::from_bigint(limbs).filter(|s| !s.is_zero());
        limbs.0.zeroize();
        scalar.map(SecretKey).ok_or(Error::InvalidSecretKey)
    }

    /// The 32-byte big-endian encoding (to store the key), wiped when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        let mut limbs = self.0.into_bigint();
        for (i, limb) in limbs.0.iter().enumerate() {
            out[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&limb.to_be_bytes());
        }
        limbs.0.zeroize();
        out
    }

    /// The matching public key (G1 and G2).
    pub fn public_key(&self) -> PublicKey {
        let g1 = (G1Projective::from(G1Affine::generator()) * self.0).into_affine();
        let g2 = (G2Projective::from(G2Affine::generator()) * self.0).into_affine();
        PublicKey { g1: G1Point(g1), g2: G2Point(g2) }
    }

    /// Signs a 32-byte message: `sk·H(msg)`.
    pub fn sign(&self, msg: &[u8; 32]) -> Signature {
        Signature(G1Point((G1Projective::from(hash_to_g1(msg).0) * self.0).into_affine()))
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl G1Point {
    /// Parses `X ‖ Y` with the checks of the module docs.
    pub fn from_bytes(bytes: &[u8; G1_LEN]) -> Result<Self, Error> {
        let (x, y) = (fq(&bytes[..32])?, fq(&bytes[32..])?);
        if x.is_zero() && y.is_zero() {
            return Err(Error::PointAtInfinity);
        }
        let point = G1Affine::new_unchecked(x, y);
        if !point.is_on_curve() {
            return Err(Error::NotOnCurve);
        }
        // BN254's G1 is the whole curve group (cofactor 1); asked anyway, it costs nothing.
        if !point.is_in_correct_subgroup_assuming_on_curve() {
            return Err(Error::NotInSubgroup);
        }
        Ok(G1Point(point))
    }

    /// `X ‖ Y`, 32 bytes big-endian each.
    pub fn to_bytes(&self) -> [u8; G1_LEN] {
        let mut out = [0u8; G1_LEN];
        let (x, y) = self.0.xy().expect("never the identity");
        fq_bytes(x, &mut out[..32]);
        fq_bytes(y, &mut out[32..]);
        out
    }

    /// The point as an affine value, or an error for the identity.
    fn checked(point: G1Affine) -> Result<Self, Error> {
        if point.is_zero() { Err(Error::PointAtInfinity) } else { Ok(G1Point(point)) }
    }
}

impl G2Point {
    /// Parses `X.c1 ‖ X.c0 ‖ Y.c1 ‖ Y.c0` with the checks of the module docs.
    pub fn from_bytes(bytes: &[u8; G2_LEN]) -> Result<Self, Error> {
        let x = Fq2::new(fq(&bytes[32..64])?, fq(&bytes[..32])?);
        let y = Fq2::new(fq(&bytes[96..])?, fq(&bytes[64..96])?);
        if x.is_zero() && y.is_zero() {
            return Err(Error::PointAtInfinity);
        }
        let point = G2Affine::new_unchecked(x, y);
        if !point.is_on_curve() {
            return Err(Error::NotOnCurve);
        }
        if !point.is_in_correct_subgroup_assuming_on_curve() {
            return Err(Error::NotInSubgroup);
        }
        Ok(G2Point(point))
    }

    /// `X.c1 ‖ X.c0 ‖ Y.c1 ‖ Y.c0`, 32 bytes big-endian each (the contracts' order).
    pub fn to_bytes(&self) -> [u8; G2_LEN] {
        let mut out = [0u8; G2_LEN];
        let (x, y) = self.0.xy().expect("never the identity");
        fq_bytes(x.c1, &mut out[..32]);
        fq_bytes(x.c0, &mut out[32..64]);
        fq_bytes(y.c1, &mut out[64..96]);
        fq_bytes(y.c0, &mut out[96..]);
        out
    }

    fn checked(point: G2Affine) -> Result<Self, Error> {
        if point.is_zero() { Err(Error::PointAtInfinity) } else { Ok(G2Point(point)) }
    }
}

impl PublicKey {
    /// A key from its two halves; refused unless they have the same secret
    /// (`e(g1, G2) = e(G1, g2)`).
    pub fn new(g1: G1Point, g2: G2Point) -> Result<Self, Error> {
        let lhs = Bn254::pairing(g1.0, G2Affine::generator());
        let rhs = Bn254::pairing(G1Affine::generator(), g2.0);
        if lhs != rhs {
            return Err(Error::VerificationFailed);
        }
        Ok(PublicKey { g1, g2 })
    }

    /// The G1 key.
    pub fn g1(&self) -> G1Point {
        self.g1
    }

    /// The G2 key.
    pub fn g2(&self) -> G2Point {
        self.g2
    }

    /// EigenLayer's operator id: `keccak256(X ‖ Y)` of the G1 key.
    pub fn operator_id(&self) -> [u8; 32] {
        operator_id(&self.g1)
    }
}

/// EigenLayer's operator id of a G1 key: `keccak256(X ‖ Y)`.
pub fn operator_id(g1: &G1Point) -> [u8; 32] {
    keccak256(&g1.to_bytes())
}

impl Signature {
    /// Parses a signature (a G1 point, `X ‖ Y`) with the checks of the module docs.
    pub fn from_bytes(bytes: &[u8; SIGNATURE_LEN]) -> Result<Self, Error> {
        G1Point::from_bytes(bytes).map(Signature)
    }

    /// `X ‖ Y`.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0.to_bytes()
    }

    /// The signature as a G1 point.
    pub fn point(&self) -> G1Point {
        self.0
    }
}

/// EigenLayer's hash to G1 (module docs): try-and-increment from `x = msg mod p`, taking the
/// root `(x³ + 3)^((p+1)/4)` as the contracts' `findYFromX` does.
pub fn hash_to_g1(msg: &[u8; 32]) -> G1Point {
    // (p + 1) / 4, the exponent of the square root for p ≡ 3 (mod 4).
    let mut exponent = Fq::MODULUS;
    exponent.add_with_carry(&BigInt::from(1u64));
    exponent >>= 2;
    let mut x = Fq::from_be_bytes_mod_order(msg);
    loop {
        let beta = x.square() * x + Fq::from(3u64);
        let y = beta.pow(exponent);
        if y.square() == beta {
            // y = 0 would need x³ = -3, which has no solution in this field.
            return G1Point(G1Affine::new_unchecked(x, y));
        }
        x += Fq::ONE;
    }
}

/// Checks `signature` over `msg` against the signer's G2 key: `e(σ, G2) = e(H(m), pk_G2)`.
pub fn verify(public_key: &G2Point, msg: &[u8; 32], signature: &Signature) -> Result<(), Error> {
    let h = hash_to_g1(msg);
    let product = Bn254::multi_pairing(
        [signature.0.0, h.0],
        [(-G2Projective::from(G2Affine::generator())).into_affine(), public_key.0],
    );
    if product.is_zero() { Ok(()) } else { Err(Error::VerificationFailed) }
}

/// Sums G1 points (signatures' points or G1 keys); refuses an empty list and an identity sum.
pub fn aggregate_g1(points: &[&G1Point]) -> Result<G1Point, Error> {
    if points.is_empty() {
        return Err(Error::EmptyAggregate);
    }
    let sum: G1Projective = points.iter().map(|p| p.0).sum();
    G1Point::checked(sum.into_affine())
}

/// Sums G2 keys; refuses an empty list and an identity sum.
pub fn aggregate_g2(points: &[&G2Point]) -> Result<G2Point, Error> {
    if points.is_empty() {
        return Err(Error::EmptyAggregate);
    }
    let sum: G2Projective = points.iter().map(|p| p.0).sum();
    G2Point::checked(sum.into_affine())
}

/// Sums signatures over one message; refuses an empty list and an identity sum.
pub fn aggregate_signatures(signatures: &[&Signature]) -> Result<Signature, Error> {
    let points: alloc::vec::Vec<&G1Point> = signatures.iter().map(|s| &s.0).collect();
    aggregate_g1(&points).map(Signature)
}

/// The message a proof of possession for `g1` signs: `keccak256(POP_TAG ‖ X ‖ Y)`.
fn pop_message(g1: &G1Point) -> [u8; 32] {
    let mut data = [0u8; POP_TAG.len() + G1_LEN];
    data[..POP_TAG.len()].copy_from_slice(POP_TAG);
    data[POP_TAG.len()..].copy_from_slice(&g1.to_bytes());
    keccak256(&data)
}

/// A proof of possession of `secret_key` (module docs).
pub fn pop_prove(secret_key: &SecretKey) -> Signature {
    secret_key.sign(&pop_message(&secret_key.public_key().g1))
}

/// Checks a proof of possession for `public_key`.
pub fn pop_verify(public_key: &PublicKey, proof: &Signature) -> Result<(), Error> {
    verify(&public_key.g2, &pop_message(&public_key.g1), proof)
}

impl fmt::Debug for G1Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "G1Point({})", crate::encoding::to_hex(&self.to_bytes()))
    }
}

impl fmt::Debug for G2Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "G2Point({})", crate::encoding::to_hex(&self.to_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey").field("g1", &self.g1).field("g2", &self.g2).finish()
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", crate::encoding::to_hex(&self.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SecretKey {
        let mut bytes = [0u8; 32];
        bytes[31] = n;
        SecretKey::from_bytes(&bytes).unwrap()
    }

    #[test]
    fn secret_key_range() {
        assert_eq!(SecretKey::from_bytes(&[0; 32]).err(), Some(Error::InvalidSecretKey));
        let r = Fr::MODULUS.to_bytes_be();
        assert_eq!(
            SecretKey::from_bytes(&r.clone().try_into().unwrap()).err(),
            Some(Error::InvalidSecretKey)
        );
        assert_eq!(SecretKey::from_bytes(&[0xff; 32]).err(), Some(Error::InvalidSecretKey));
        let mut r_minus_1: [u8; 32] = r.try_into().unwrap();
        r_minus_1[31] -= 1;
        assert_eq!(*SecretKey::from_bytes(&r_minus_1).unwrap().to_bytes(), r_minus_1);
    }

    #[test]
    fn generator_encodings() {
        // sk = 1: the G1 generator (1, 2) and the contracts' G2 generator constants.
        let pk = key(1).public_key();
        let mut g1 = [0u8; 64];
        g1[31] = 1;
        g1[63] = 2;
        assert_eq!(pk.g1().to_bytes(), g1);
        let g2 = pk.g2().to_bytes();
        // BN254.sol: G2x1 (imaginary part of X) comes first.
        assert_eq!(
            crate::encoding::to_hex(&g2[..32]),
            "0x198e9393920d483a7260bfb731fb5d25f1aa493335a9e71297e485b7aef312c2"
        );
        assert_eq!(
            crate::encoding::to_hex(&g2[32..64]),
            "0x1800deef121f1e76426a00665e5c4479674322d4f75edadd46debd5cd992f6ed"
        );
    }

    #[test]
    fn sign_verify_aggregate() {
        let msg = [7u8; 32];
        let (a, b) = (key(3), key(5));
        let (sa, sb) = (a.sign(&msg), b.sign(&msg));
        verify(&a.public_key().g2(), &msg, &sa).unwrap();
        assert_eq!(verify(&a.public_key().g2(), &[8u8; 32], &sa), Err(Error::VerificationFailed));
        assert_eq!(verify(&b.public_key().g2(), &msg, &sa), Err(Error::VerificationFailed));
        let agg = aggregate_signatures(&[&sa, &sb]).unwrap();
        let apk = aggregate_g2(&[&a.public_key().g2(), &b.public_key().g2()]).unwrap();
        verify(&apk, &msg, &agg).unwrap();
        assert_eq!(key(8).sign(&msg), agg);
        assert_eq!(aggregate_g1(&[]).err(), Some(Error::EmptyAggregate));
    }

    #[test]
    fn public_key_halves_must_match() {
        let (a, b) = (key(3).public_key(), key(4).public_key());
        assert!(PublicKey::new(a.g1(), a.g2()).is_ok());
        assert_eq!(PublicKey::new(a.g1(), b.g2()).err(), Some(Error::VerificationFailed));
    }

    #[test]
    fn encodings_round_trip_and_reject() {
        let pk = key(9).public_key();
        assert_eq!(G1Point::from_bytes(&pk.g1().to_bytes()), Ok(pk.g1()));
        assert_eq!(G2Point::from_bytes(&pk.g2().to_bytes()), Ok(pk.g2()));
        assert_eq!(G1Point::from_bytes(&[0; 64]).err(), Some(Error::PointAtInfinity));
        assert_eq!(G2Point::from_bytes(&[0; 128]).err(), Some(Error::PointAtInfinity));
        let mut off = pk.g1().to_bytes();
        off[63] ^= 1;
        assert_eq!(G1Point::from_bytes(&off).err(), Some(Error::NotOnCurve));
        let mut big = pk.g1().to_bytes();
        big[..32].copy_from_slice(&Fq::MODULUS.to_bytes_be());
        assert_eq!(G1Point::from_bytes(&big).err(), Some(Error::BadEncoding));
        // Swapping the G2 coordinates' halves (the wrong order) leaves the curve.
        let g2 = pk.g2().to_bytes();
        let mut swapped = g2;
        swapped[..32].copy_from_slice(&g2[32..64]);
        swapped[32..64].copy_from_slice(&g2[..32]);
        assert!(G2Point::from_bytes(&swapped).is_err());
    }

    #[test]
    fn g2_points_outside_the_subgroup_are_refused() {
        // Most points of the twist are outside the order-r subgroup (its cofactor is large).
        let point = (1u64..)
            .find_map(|i| G2Affine::get_point_from_x_unchecked(Fq2::new(Fq::from(i), Fq::ONE), true))
            .unwrap();
        assert!(point.is_on_curve() && !point.is_in_correct_subgroup_assuming_on_curve());
        let bytes = G2Point(point).to_bytes();
        assert_eq!(G2Point::from_bytes(&bytes).err(), Some(Error::NotInSubgroup));
    }

    #[test]
    fn pop() {
        let sk = key(11);
        let proof = pop_prove(&sk);
        pop_verify(&sk.public_key(), &proof).unwrap();
        assert_eq!(pop_verify(&key(12).public_key(), &proof), Err(Error::VerificationFailed));
    }
}
