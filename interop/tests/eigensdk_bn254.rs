//! `avs_protocol::bn254` against eigensdk-rs (`eigen-crypto-bls`, `eigen-crypto-bn254`,
//! `eigen-types`), on keys and messages drawn from a fixed seed and on edge-case messages:
//! public keys in G1 and G2 (in the contracts' coordinate order, as eigensdk-rs converts them
//! for its contract calls), operator ids, hash to G1, signatures, and verification both ways.

use ark_bn254::{G1Affine, G1Projective, G2Affine, G2Projective};
use ark_ec::CurveGroup;
use avs_protocol::bn254::{self, G1Point, G2Point, SecretKey};
use avs_protocol::keccak256;
use eigen_crypto_bls::{BlsG1Point, BlsKeyPair, convert_to_g1_point, convert_to_g2_point};
use eigen_crypto_bn254::utils::{map_to_curve, verify_message};
use eigen_types::operator::operator_id_from_g1_pub_key;
use ruint::aliases::U256;

/// How many random keys and messages each test draws.
const DRAWS: u32 = 24;

/// The base field modulus p, big-endian.
const P: &str = "30644e72e131a029b85045b68181585d97816a916871ca8d3c208c16d87cfd47";

/// 32 pseudo-random bytes: keccak256(label ‖ i).
fn draw(label: &str, i: u32) -> [u8; 32] {
    let mut data = label.as_bytes().to_vec();
    data.extend_from_slice(&i.to_be_bytes());
    keccak256(&data)
}

/// A secret key from the stream (skipping the rare draw at or above r), with eigensdk-rs's key
/// pair for the same scalar, which it takes as a decimal string.
fn key_pair(i: u32) -> (SecretKey, BlsKeyPair) {
    (0..)
        .find_map(|j| {
            let bytes = draw(&format!("key {i}"), j);
            let ours = SecretKey::from_bytes(&bytes).ok()?;
            let decimal = U256::from_be_bytes(bytes).to_string();
            Some((ours, BlsKeyPair::new(decimal).expect("eigensdk-rs takes the scalar")))
        })
        .expect("some draw is below r")
}

fn g1_bytes(point: G1Affine) -> [u8; 64] {
    let converted = convert_to_g1_point(point).expect("affine point");
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&converted.X.to_be_bytes::<32>());
    out[32..].copy_from_slice(&converted.Y.to_be_bytes::<32>());
    out
}

fn g2_bytes(point: G2Affine) -> [u8; 128] {
    let converted = convert_to_g2_point(point).expect("affine point");
    let mut out = [0u8; 128];
    for (i, word) in [converted.X[0], converted.X[1], converted.Y[0], converted.Y[1]].iter().enumerate() {
        out[32 * i..32 * (i + 1)].copy_from_slice(&word.to_be_bytes::<32>());
    }
    out
}

/// Messages: random digests, and the edges of `x = msg mod p` (0, p − 1, p, all ones).
fn messages() -> Vec<[u8; 32]> {
    let p: [u8; 32] = U256::from_str_radix(P, 16).unwrap().to_be_bytes();
    let p_minus_1: [u8; 32] = (U256::from_be_bytes(p) - U256::from(1u8)).to_be_bytes();
    let mut out = vec![[0u8; 32], p_minus_1, p, [0xff; 32]];
    out.extend((0..DRAWS).map(|i| draw("message", i)));
    out
}

#[test]
fn public_keys_and_operator_ids_match_eigensdk() {
    for i in 0..DRAWS {
        let (ours, theirs) = key_pair(i);
        let public = ours.public_key();
        assert_eq!(public.g1().to_bytes(), g1_bytes(theirs.public_key().g1()), "G1 key {i}");
        assert_eq!(public.g2().to_bytes(), g2_bytes(theirs.public_key_g2().g2()), "G2 key {i}");
        let id = operator_id_from_g1_pub_key(theirs.public_key()).expect("operator id");
        assert_eq!(public.operator_id(), id.0, "operator id {i}");
    }
}

#[test]
fn hash_to_g1_matches_eigensdk() {
    for msg in messages() {
        assert_eq!(bn254::hash_to_g1(&msg).to_bytes(), g1_bytes(map_to_curve(&msg)), "message {msg:02x?}");
    }
}

#[test]
fn signatures_match_and_verify_both_ways() {
    for (i, msg) in messages().into_iter().enumerate() {
        let (ours, theirs) = key_pair(1000 + i as u32);
        let our_signature = ours.sign(&msg);
        let their_signature = theirs.sign_message(&msg).g1_point().g1();
        assert_eq!(our_signature.to_bytes(), g1_bytes(their_signature), "signature {i}");

        // eigensdk-rs accepts ours; we accept theirs (parsed from its contract encoding).
        let their_g2 = theirs.public_key_g2().g2();
        assert!(verify_message(their_g2, &msg, their_signature));
        let parsed = bn254::Signature::from_bytes(&g1_bytes(their_signature)).unwrap();
        let g2 = G2Point::from_bytes(&g2_bytes(their_g2)).unwrap();
        bn254::verify(&g2, &msg, &parsed).unwrap();

        // Each refuses a signature over another message.
        let mut other = msg;
        other[0] ^= 0x80;
        assert!(!verify_message(their_g2, &other, their_signature));
        assert!(bn254::verify(&g2, &other, &parsed).is_err());
    }
}

#[test]
fn aggregates_verify_with_eigensdk() {
    let msg = draw("aggregate", 0);
    let pairs: Vec<_> = (0..5).map(|i| key_pair(2000 + i)).collect();
    let signatures: Vec<_> = pairs.iter().map(|(sk, _)| sk.sign(&msg)).collect();
    let g1s: Vec<G1Point> = pairs.iter().map(|(sk, _)| sk.public_key().g1()).collect();
    let g2s: Vec<G2Point> = pairs.iter().map(|(sk, _)| sk.public_key().g2()).collect();
    let aggregate = bn254::aggregate_signatures(&signatures.iter().collect::<Vec<_>>()).unwrap();
    let apk_g1 = bn254::aggregate_g1(&g1s.iter().collect::<Vec<_>>()).unwrap();
    let apk_g2 = bn254::aggregate_g2(&g2s.iter().collect::<Vec<_>>()).unwrap();

    // The same sums from eigensdk-rs's points.
    let their_sig: G1Projective = pairs.iter().map(|(_, kp)| kp.sign_message(&msg).g1_point().g1()).sum();
    let their_g1: G1Projective = pairs.iter().map(|(_, kp)| kp.public_key().g1()).sum();
    let their_g2: G2Projective = pairs.iter().map(|(_, kp)| kp.public_key_g2().g2()).sum();
    assert_eq!(aggregate.to_bytes(), g1_bytes(their_sig.into_affine()));
    assert_eq!(apk_g1.to_bytes(), g1_bytes(their_g1.into_affine()));
    assert_eq!(apk_g2.to_bytes(), g2_bytes(their_g2.into_affine()));
    assert!(verify_message(their_g2.into_affine(), &msg, their_sig.into_affine()));
    bn254::verify(&apk_g2, &msg, &aggregate).unwrap();
    // The aggregate G1 key is eigensdk-rs's operator-id input for the sum, as for any G1 key.
    let id = operator_id_from_g1_pub_key(BlsG1Point::new(their_g1.into_affine())).unwrap();
    assert_eq!(bn254::operator_id(&apk_g1), id.0);
}
