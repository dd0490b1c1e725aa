//! Hex arguments: `0x`-prefixed or bare, either case; keys and signatures with their group checks.

use anyhow::{Context, Result, anyhow, bail};
use avs_protocol::bls::{PUBLIC_KEY_LEN, PublicKey, SIGNATURE_LEN, Signature};
use avs_protocol::bn254;
use zeroize::Zeroizing;

/// Decodes hex with or without `0x`; surrounding whitespace is ignored. The result has exactly
/// the capacity it needs, so a secret decoded into it is never copied by a reallocation.
pub fn decode(text: &str) -> Result<Vec<u8>, &'static str> {
    let text = text.trim();
    let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
    if !digits.len().is_multiple_of(2) {
        return Err("odd number of hex digits");
    }
    let mut out = vec![0u8; digits.len() / 2];
    ::hex::decode_to_slice(digits, &mut out).map_err(|_| "not a hex digit")?;
    Ok(out)
}

/// `N` bytes of hex; `what` names the argument in errors.
pub fn array<const N: usize>(text: &str, what: &str) -> Result<[u8; N]> {
    let bytes = decode(text).map_err(|e| anyhow!("{what}: {e}"))?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| anyhow!("{what}: {len} bytes, expected {N}"))
}

/// A 32-byte secret from hex, in a buffer wiped on drop.
pub fn secret(text: &str, what: &str) -> Result<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(decode(text).map_err(|e| anyhow!("{what}: {e}"))?);
    let mut out = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        bail!("{what}: {} bytes, expected 32", bytes.len());
    }
    out.copy_from_slice(&bytes);
    Ok(out)
}

/// Arbitrary bytes (a message) from hex; `0x` or nothing is the empty message.
pub fn bytes(text: &str, what: &str) -> Result<Vec<u8>> {
    decode(text).map_err(|e| anyhow!("{what}: {e}"))
}

/// A compressed public key, group-checked.
pub fn public_key(text: &str, what: &str) -> Result<PublicKey> {
    let bytes = array::<PUBLIC_KEY_LEN>(text, what)?;
    PublicKey::from_bytes(&bytes).with_context(|| format!("{what}: not a valid BLS12-381 public key"))
}

/// A compressed signature, group-checked.
pub fn signature(text: &str, what: &str) -> Result<Signature> {
    let bytes = array::<SIGNATURE_LEN>(text, what)?;
    Signature::from_bytes(&bytes).with_context(|| format!("{what}: not a valid BLS12-381 signature"))
}

/// A BN254 G1 point (`X ‖ Y`, 64 bytes), fully checked.
pub fn bn254_g1(text: &str, what: &str) -> Result<bn254::G1Point> {
    let bytes = array::<{ bn254::G1_LEN }>(text, what)?;
    bn254::G1Point::from_bytes(&bytes).with_context(|| format!("{what}: not a valid BN254 G1 point"))
}

/// A BN254 G2 point (contracts' order, 128 bytes), fully checked.
pub fn bn254_g2(text: &str, what: &str) -> Result<bn254::G2Point> {
    let bytes = array::<{ bn254::G2_LEN }>(text, what)?;
    bn254::G2Point::from_bytes(&bytes).with_context(|| format!("{what}: not a valid BN254 G2 point"))
}

/// A BN254 signature (a G1 point, 64 bytes), fully checked.
pub fn bn254_signature(text: &str, what: &str) -> Result<bn254::Signature> {
    let bytes = array::<{ bn254::SIGNATURE_LEN }>(text, what)?;
    bn254::Signature::from_bytes(&bytes).with_context(|| format!("{what}: not a valid BN254 signature"))
}

/// Lower-case `0x` hex.
pub fn encode(bytes: &[u8]) -> String {
    avs_protocol::encoding::to_hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_with_or_without_prefix_in_either_case() {
        assert_eq!(decode("0xAbcd"), Ok(vec![0xab, 0xcd]));
        assert_eq!(decode(" ABcd\n"), Ok(vec![0xab, 0xcd]));
        assert_eq!(decode("0X00"), Ok(vec![0]));
        assert_eq!(decode("0x"), Ok(vec![]));
        assert_eq!(decode(""), Ok(vec![]));
        assert_eq!(decode("0xabc"), Err("odd number of hex digits"));
        assert_eq!(decode("0xzz"), Err("not a hex digit"));
        assert_eq!(decode("+1"), Err("not a hex digit"));
    }

    #[test]
    fn fixed_lengths_are_enforced() {
        assert_eq!(array::<2>("0x0102", "x").unwrap(), [1, 2]);
        let err = array::<2>("0x010203", "--pubkey").unwrap_err().to_string();
        assert_eq!(err, "--pubkey: 3 bytes, expected 2");
        assert!(secret(&"11".repeat(31), "--secret-hex").is_err());
        assert_eq!(*secret(&"11".repeat(32), "--secret-hex").unwrap(), [0x11; 32]);
        assert_eq!(encode(&[0xab, 1]), "0xab01");
    }
}
