//! BN254 G1 points and signatures (the first 64 bytes) and G2 points (the first 128 bytes) from
//! arbitrary bytes: parsing never panics, and what parses is canonical (coordinates below p, on
//! the curve, in the subgroup, not the identity): `to_bytes` gives back the input.

use avs_protocol::bn254::{G1_LEN, G1Point, G2_LEN, G2Point, Signature};

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    if let Some(bytes) = data.first_chunk::<G1_LEN>() {
        if let Ok(point) = G1Point::from_bytes(bytes) {
            assert_eq!(&point.to_bytes(), bytes, "a G1 point not in canonical form was accepted");
        }
        if let Ok(signature) = Signature::from_bytes(bytes) {
            assert_eq!(&signature.to_bytes(), bytes, "a signature not in canonical form was accepted");
        }
    }
    if let Some(bytes) = data.first_chunk::<G2_LEN>()
        && let Ok(point) = G2Point::from_bytes(bytes)
    {
        assert_eq!(&point.to_bytes(), bytes, "a G2 point not in canonical form was accepted");
    }
}
