//! The checks on received keys and signatures, and failures of verification. The points outside
//! the prime-order subgroups and the x coordinate with no G1 point come from the py_ecc script
//! in `vectors.rs`.

use avs_protocol::bls::{self, PublicKey, SecretKey, Signature};
use avs_protocol::encoding::from_hex;
use avs_protocol::{Error, SignedTaskResponse, TaskResponse, U256};

fn bytes<const N: usize>(hex: &str) -> [u8; N] {
    from_hex(hex).expect("hex").try_into().expect("length")
}

/// A G1 point on the curve (x = 4) outside the prime-order subgroup.
const G1_OUTSIDE_SUBGROUP: &str =
    "0x800000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000004";
/// A G2 point on the curve (x = 1 + u) outside the prime-order subgroup.
const G2_OUTSIDE_SUBGROUP: &str = "0xa00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001";

/// r, the order of the subgroups.
const GROUP_ORDER: &str = "0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001";

fn identity<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    b[0] = 0xc0;
    b
}

fn key(seed: u8) -> SecretKey {
    SecretKey::key_gen(&[seed; 32]).unwrap()
}

#[test]
fn public_key_group_checks() {
    assert_eq!(PublicKey::from_bytes(&bytes(G1_OUTSIDE_SUBGROUP)), Err(Error::NotInSubgroup));
    assert_eq!(PublicKey::from_bytes(&identity()), Err(Error::PointAtInfinity));
    // x = 1: 1 + 4 has no square root mod p.
    let mut no_point = [0u8; 48];
    no_point[0] = 0x80;
    no_point[47] = 1;
    assert_eq!(PublicKey::from_bytes(&no_point), Err(Error::NotOnCurve));
    // Uncompressed flag, and an x coordinate ≥ p.
    let mut uncompressed = key(1).public_key().to_bytes();
    uncompressed[0] &= 0x7f;
    assert_eq!(PublicKey::from_bytes(&uncompressed), Err(Error::BadEncoding));
    let mut too_big = [0xffu8; 48];
    too_big[0] = 0x9f;
    assert_eq!(PublicKey::from_bytes(&too_big), Err(Error::BadEncoding));
}

#[test]
fn signature_group_checks() {
    assert_eq!(Signature::from_bytes(&bytes(G2_OUTSIDE_SUBGROUP)), Err(Error::NotInSubgroup));
    assert_eq!(Signature::from_bytes(&identity()), Err(Error::PointAtInfinity));
    let mut uncompressed = key(1).sign(b"m").to_bytes();
    uncompressed[0] &= 0x7f;
    assert_eq!(Signature::from_bytes(&uncompressed), Err(Error::BadEncoding));
    // A G2 x coordinate with no point: flip one bit of a valid one until the curve check fails.
    let valid = key(1).sign(b"m").to_bytes();
    let off_curve = (0u8..=255).find_map(|last| {
        let mut b = valid;
        b[95] = last;
        (Signature::from_bytes(&b) == Err(Error::NotOnCurve)).then_some(b)
    });
    assert!(off_curve.is_some(), "no off-curve x among 256 candidates");
}

#[test]
fn secret_key_checks() {
    assert_eq!(SecretKey::from_bytes(&[0; 32]).unwrap_err(), Error::InvalidSecretKey);
    // r, the group order, is one too many.
    assert_eq!(SecretKey::from_bytes(&bytes(GROUP_ORDER)).unwrap_err(), Error::InvalidSecretKey);
    assert_eq!(SecretKey::key_gen(&[1; 31]).unwrap_err(), Error::KeyMaterialTooShort);
    assert_eq!(format!("{:?}", key(1)), "SecretKey(<redacted>)");
}

#[test]
fn wrong_message_key_or_domain_fails() {
    let (sk, other) = (key(1), key(2));
    let sig = sk.sign(b"message");
    assert_eq!(bls::verify(&sk.public_key(), b"message", &sig), Ok(()));
    assert_eq!(bls::verify(&sk.public_key(), b"massage", &sig), Err(Error::VerificationFailed));
    assert_eq!(bls::verify(&other.public_key(), b"message", &sig), Err(Error::VerificationFailed));
    // A proof of possession is not a signature over the key bytes, nor the other way round.
    let pk_bytes = sk.public_key().to_bytes();
    assert!(bls::verify(&sk.public_key(), &pk_bytes, &bls::pop_prove(&sk)).is_err());
    assert!(bls::pop_verify(&sk.public_key(), &sk.sign(&pk_bytes)).is_err());
    assert!(bls::pop_verify(&other.public_key(), &bls::pop_prove(&sk)).is_err());
}

#[test]
fn aggregation_refuses_empty_and_identity() {
    assert_eq!(bls::aggregate_signatures(&[]), Err(Error::EmptyAggregate));
    assert_eq!(bls::aggregate_public_keys(&[]), Err(Error::EmptyAggregate));
    assert_eq!(bls::fast_aggregate_verify(&[], b"m", &key(1).sign(b"m")), Err(Error::EmptyAggregate));
    // sk and r - sk have opposite public keys and signatures: their sums are the identity.
    let sk = *key(1).to_bytes();
    let neg = (U256::from_be_bytes(bytes::<32>(GROUP_ORDER)) - U256::from_be_bytes(sk)).to_be_bytes::<32>();
    let (a, b) = (SecretKey::from_bytes(&sk).unwrap(), SecretKey::from_bytes(&neg).unwrap());
    let (pa, pb) = (a.public_key(), b.public_key());
    assert_eq!(bls::aggregate_public_keys(&[&pa, &pb]), Err(Error::PointAtInfinity));
    let (sa, sb) = (a.sign(b"m"), b.sign(b"m"));
    assert_eq!(bls::aggregate_signatures(&[&sa, &sb]), Err(Error::PointAtInfinity));
}

#[test]
fn signed_task_response_round_trip_and_tampering() {
    let sk = key(7);
    let response = TaskResponse { reference_task_index: 1, number_squared: U256::from(4u32) };
    let signed = SignedTaskResponse::sign(response, &sk);
    assert_eq!(signed.operator_id, sk.public_key().operator_id());
    assert_eq!(signed.verify(sk.public_key()), Ok(()));

    let mut wrong_answer = signed;
    wrong_answer.task_response.number_squared = U256::from(5u32);
    assert_eq!(wrong_answer.verify(sk.public_key()), Err(Error::VerificationFailed));
    let mut wrong_task = signed;
    wrong_task.task_response.reference_task_index = 2;
    assert_eq!(wrong_task.verify(sk.public_key()), Err(Error::VerificationFailed));
    // The key registered for another operator id.
    assert_eq!(signed.verify(key(8).public_key()), Err(Error::VerificationFailed));
    let mut garbage = signed;
    garbage.signature = avs_protocol::OperatorSignature::Bls12381(identity());
    assert_eq!(garbage.verify(sk.public_key()), Err(Error::PointAtInfinity));
}
