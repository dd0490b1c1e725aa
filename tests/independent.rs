//! BLS12-381 verification by a second, independent implementation: the pure-Rust `bls12_381`
//! crate, which shares no code with `blst` (what `avs-protocol`, the guest, the CLI and the
//! aggregator use). The AVS tests check the aggregator's output with it, so a bug common to
//! everything built on `blst` cannot make them pass.
//!
//! The scheme is the Ethereum one: minimal-pubkey-size (keys in G1, signatures in G2),
//! proof-of-possession ciphersuite, hash_to_curve to G2 with expand_message_xmd over SHA-256.

use bls12_381::hash_to_curve::{ExpandMsgXmd, HashToCurve};
use bls12_381::{G1Affine, G1Projective, G2Affine, G2Prepared, G2Projective, Gt, multi_miller_loop};
use sha2::Sha256;

/// The signature ciphersuite's domain separation tag.
pub const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// A public key: a canonical compressed G1 point in the prime-order subgroup, not the identity.
fn public_key(bytes: &[u8; 48]) -> Option<G1Affine> {
    // `from_compressed` refuses non-canonical encodings (flags, x >= p), points off the curve
    // and points outside the subgroup; the identity it accepts, so it is refused here.
    let point = Option::<G1Affine>::from(G1Affine::from_compressed(bytes))?;
    (!bool::from(point.is_identity())).then_some(point)
}

/// A signature: the same checks in G2.
fn signature(bytes: &[u8; 96]) -> Option<G2Affine> {
    let point = Option::<G2Affine>::from(G2Affine::from_compressed(bytes))?;
    (!bool::from(point.is_identity())).then_some(point)
}

/// Whether `signature` is a valid signature of `msg` under `pubkey` (the IETF `CoreVerify` with
/// [`DST`]): both points decode and pass their group checks, and e(pk, H(msg)) = e(g1, sig).
pub fn verify(pubkey: &[u8; 48], msg: &[u8], signature_bytes: &[u8; 96]) -> bool {
    let (Some(pk), Some(sig)) = (public_key(pubkey), signature(signature_bytes)) else {
        return false;
    };
    let hash = G2Affine::from(<G2Projective as HashToCurve<ExpandMsgXmd<Sha256>>>::hash_to_curve([msg], DST));
    // e(pk, H(m)) · e(-g1, sig) = 1, with one final exponentiation for both pairings.
    let minus_g1 = -G1Affine::generator();
    let product = multi_miller_loop(&[(&pk, &G2Prepared::from(hash)), (&minus_g1, &G2Prepared::from(sig))])
        .final_exponentiation();
    product == Gt::identity()
}

/// The sum of `pubkeys`, compressed: the key under which an aggregate signature of one message
/// by all of them verifies.
///
/// # Panics
/// If the list is empty, a key does not pass [`verify`]'s checks, or the sum is the identity:
/// it is a test helper, and each of those is a failed test.
pub fn aggregate_pubkeys(pubkeys: &[[u8; 48]]) -> [u8; 48] {
    assert!(!pubkeys.is_empty(), "no public keys to aggregate");
    let sum = pubkeys.iter().enumerate().fold(G1Projective::identity(), |sum, (i, bytes)| {
        let key = public_key(bytes).unwrap_or_else(|| panic!("public key #{i} is not a valid G1 key"));
        sum + G1Projective::from(key)
    });
    let sum = G1Affine::from(sum);
    assert!(!bool::from(sum.is_identity()), "the public keys sum to the identity");
    sum.to_compressed()
}

#[cfg(test)]
mod tests {
    use super::*;

    include!(concat!(env!("CARGO_MANIFEST_DIR"), "/../avs-protocol/tests/bls_vectors.in"));

    /// A G1 and a G2 point on the curve but outside the prime-order subgroup (from the
    /// project's py_ecc script, see `avs-protocol/tests/bls_checks.rs`).
    const G1_OUTSIDE_SUBGROUP: &str =
        "0x800000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000004";
    const G2_OUTSIDE_SUBGROUP: &str = "0xa00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001";

    fn bytes<const N: usize>(hex: &str) -> [u8; N] {
        avs_protocol::encoding::from_hex(hex).expect("hex").try_into().expect("length")
    }

    fn identity<const N: usize>() -> [u8; N] {
        let mut b = [0; N];
        b[0] = 0xc0;
        b
    }

    #[test]
    fn the_vectors_verify() {
        let msg = bytes::<32>(DIGEST_7_81);
        for (_, pk, sig, _) in KEYS {
            assert!(verify(&bytes(pk), &msg, &bytes(sig)), "{pk}");
        }
    }

    #[test]
    fn tampered_vectors_do_not_verify() {
        let msg = bytes::<32>(DIGEST_7_81);
        for (i, (_, pk, sig, pop)) in KEYS.iter().enumerate() {
            let (pk, sig) = (bytes::<48>(pk), bytes::<96>(sig));
            // Another message: one bit flipped, a byte more, the empty message.
            let mut flipped = msg;
            flipped[31] ^= 1;
            assert!(!verify(&pk, &flipped, &sig));
            assert!(!verify(&pk, &[msg.as_slice(), &[0]].concat(), &sig));
            assert!(!verify(&pk, b"", &sig));
            // Another key's signature, another signer's key.
            let other = &KEYS[(i + 1) % KEYS.len()];
            assert!(!verify(&pk, &msg, &bytes(other.2)));
            assert!(!verify(&bytes(other.1), &msg, &sig));
            // The proof of possession is a signature under the other tag: not valid here.
            assert!(!verify(&pk, &pk, &bytes(pop)));
            // A signature with its sign bit flipped is the negated point.
            let mut negated = sig;
            negated[0] ^= 0x20;
            assert!(!verify(&pk, &msg, &negated));
        }
    }

    #[test]
    fn invalid_points_are_refused() {
        let msg = bytes::<32>(DIGEST_7_81);
        let (pk, sig) = (bytes::<48>(KEYS[0].1), bytes::<96>(KEYS[0].2));
        assert!(!verify(&bytes(G1_OUTSIDE_SUBGROUP), &msg, &sig));
        assert!(!verify(&pk, &msg, &bytes(G2_OUTSIDE_SUBGROUP)));
        assert!(!verify(&identity(), &msg, &sig));
        assert!(!verify(&pk, &msg, &identity()));
        // The identity with stray bits, the uncompressed flag, an x coordinate >= p.
        let mut stray = identity::<48>();
        stray[47] = 1;
        assert!(!verify(&stray, &msg, &sig));
        let mut uncompressed = pk;
        uncompressed[0] &= 0x7f;
        assert!(!verify(&uncompressed, &msg, &sig));
        let mut too_big = [0xff; 48];
        too_big[0] = 0x9f;
        assert!(!verify(&too_big, &msg, &sig));
        let mut sig_uncompressed = sig;
        sig_uncompressed[0] &= 0x7f;
        assert!(!verify(&pk, &msg, &sig_uncompressed));
    }

    #[test]
    fn aggregates_match_the_vectors() {
        let msg = bytes::<32>(DIGEST_7_81);
        let pks: Vec<[u8; 48]> = KEYS.iter().map(|k| bytes(k.1)).collect();
        let aggregate = aggregate_pubkeys(&pks);
        assert_eq!(aggregate, bytes::<48>(AGGREGATE_PUBLIC_KEY));
        assert!(verify(&aggregate, &msg, &bytes(AGGREGATE_SIGNATURE)));
        // Two of the three keys do not carry the three signatures.
        assert!(!verify(&aggregate_pubkeys(&pks[..2]), &msg, &bytes(AGGREGATE_SIGNATURE)));
        assert_eq!(aggregate_pubkeys(&pks[..1]), pks[0]);
    }

    #[test]
    #[should_panic(expected = "public key #1")]
    fn aggregating_an_invalid_key_panics() {
        aggregate_pubkeys(&[bytes(KEYS[0].1), bytes(G1_OUTSIDE_SUBGROUP)]);
    }
}
