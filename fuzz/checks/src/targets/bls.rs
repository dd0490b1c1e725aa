//! BLS12-381 public keys (the first 48 bytes) and signatures (the first 96 bytes) from
//! arbitrary bytes: parsing never panics, and what parses is a canonical encoding: `to_bytes`
//! gives back the input, which parses again to the same point.

use avs_protocol::bls::{PUBLIC_KEY_LEN, PublicKey, SIGNATURE_LEN, Signature};

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    if let Some(bytes) = data.first_chunk::<PUBLIC_KEY_LEN>()
        && let Ok(key) = PublicKey::from_bytes(bytes)
    {
        assert_eq!(&key.to_bytes(), bytes, "a public key that is not in canonical form was accepted");
        let again = PublicKey::from_bytes(&key.to_bytes()).expect("a key's own encoding parses");
        assert_eq!(again.operator_id(), key.operator_id());
    }
    if let Some(bytes) = data.first_chunk::<SIGNATURE_LEN>()
        && let Ok(signature) = Signature::from_bytes(bytes)
    {
        assert_eq!(&signature.to_bytes(), bytes, "a signature that is not in canonical form was accepted");
        let again = Signature::from_bytes(&signature.to_bytes()).expect("a signature's own encoding parses");
        assert_eq!(again.to_bytes(), signature.to_bytes());
    }
}
