//! Ethereum ECDSA on secp256k1, for the operator's ECDSA key (the key that registers the
//! operator and signs its transactions and EIP-712 messages). The curve arithmetic and RFC 6979
//! nonces are RustCrypto's [`k256`]; hashing is this crate's keccak256.
//!
//! | what | Ethereum's definition |
//! | --- | --- |
//! | secret key | a scalar in `1..n`, 32 bytes big-endian |
//! | address | the last 20 bytes of `keccak256(X ‖ Y)` of the public key (uncompressed, without the `0x04` prefix) |
//! | signature | `r ‖ s ‖ v`, 65 bytes: `s` in the lower half (`s ≤ n/2`, EIP-2), `v` = 27 + the parity of the nonce point's `y` |
//! | nonce | deterministic, RFC 6979 with HMAC-SHA256 (as geth, ethers and eth-keys) |
//! | personal message | [`eip191_hash`]: `keccak256("\x19Ethereum Signed Message:\n" ‖ decimal length ‖ message)` |
//! | typed data | [`eip712_hash`]: `keccak256("\x19\x01" ‖ domain separator ‖ struct hash)` |
//!
//! [`recover_address`] accepts `v` as 27/28 or 0/1 and refuses `r` or `s` of zero or not below
//! `n`, and `s` in the upper half (a malleated copy of a valid signature).

use core::fmt;

use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::keccak::keccak256;

/// Length of a signature `r ‖ s ‖ v`.
pub const SIGNATURE_LEN: usize = 65;

/// Why an ECDSA key or signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A secret key that is not 32 big-endian bytes of a scalar in `1..n`.
    #[error("invalid secp256k1 secret key: not a non-zero scalar below the group order")]
    InvalidSecretKey,
    /// `r` or `s` is zero or not below the group order.
    #[error("invalid ECDSA signature: r or s is zero or not below the group order")]
    InvalidSignature,
    /// `s` is in the upper half of the group order (EIP-2 forbids these malleable signatures).
    #[error("invalid ECDSA signature: s is not in the lower half of the group order (EIP-2)")]
    HighS,
    /// `v` is not 27, 28, 0 or 1.
    #[error("invalid ECDSA signature: v = {0}, expected 27 or 28 (or 0 or 1)")]
    InvalidRecoveryId(u8),
    /// No public key recovers from this signature and digest.
    #[error("no public key can be recovered from this signature and digest")]
    RecoveryFailed,
}

/// A secp256k1 secret key. Wiped on drop (by `k256`); its `Debug` shows no key.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A key from its 32-byte big-endian encoding; zero and values not below `n` are refused.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        SigningKey::from_bytes(bytes.into()).map(SecretKey).map_err(|_| Error::InvalidSecretKey)
    }

    /// The 32-byte big-endian encoding (to store the key), wiped when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut bytes = self.0.to_bytes();
        let out = Zeroizing::new(bytes.into());
        zeroize::Zeroize::zeroize(&mut bytes[..]);
        out
    }

    /// The public key `X ‖ Y` (uncompressed, without the `0x04` prefix), 32 bytes big-endian each.
    pub fn public_key(&self) -> [u8; 64] {
        public_key_bytes(self.0.verifying_key())
    }

    /// The key's Ethereum address.
    pub fn address(&self) -> [u8; 20] {
        address_of(&self.public_key())
    }

    /// Signs a 32-byte digest: `r ‖ s ‖ v`, low `s`, `v` = 27 or 28, RFC 6979 nonce.
    pub fn sign_prehash(&self, digest: &[u8; 32]) -> [u8; SIGNATURE_LEN] {
        // k256 fails only for a digest that makes the nonce search exhaust, which RFC 6979
        // makes practically impossible, and returns `s` already normalised to the lower half.
        let (signature, recovery) =
            self.0.sign_prehash_recoverable(digest).expect("RFC 6979 signing of a 32-byte digest");
        let mut out = [0u8; SIGNATURE_LEN];
        out[..64].copy_from_slice(&signature.to_bytes());
        out[64] = 27 + recovery.to_byte();
        out
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// The Ethereum address of the public key `X ‖ Y`: the last 20 bytes of its keccak256.
pub fn address_of(public_key: &[u8; 64]) -> [u8; 20] {
    let hash = keccak256(public_key);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
    out
}

fn public_key_bytes(key: &VerifyingKey) -> [u8; 64] {
    let point = key.to_encoded_point(false);
    let mut out = [0u8; 64];
    // An uncompressed SEC1 point is 0x04 ‖ X ‖ Y.
    out.copy_from_slice(&point.as_bytes()[1..]);
    out
}

/// The address that signed `digest` with `signature` (`r ‖ s ‖ v`; module docs for what is
/// refused).
pub fn recover_address(digest: &[u8; 32], signature: &[u8; SIGNATURE_LEN]) -> Result<[u8; 20], Error> {
    let v = signature[64];
    let parity = match v {
        27 | 28 => v - 27,
        0 | 1 => v,
        other => return Err(Error::InvalidRecoveryId(other)),
    };
    let sig = Signature::from_slice(&signature[..64]).map_err(|_| Error::InvalidSignature)?;
    if sig.normalize_s().is_some() {
        return Err(Error::HighS);
    }
    let recovery = RecoveryId::from_byte(parity).ok_or(Error::InvalidRecoveryId(v))?;
    let key =
        VerifyingKey::recover_from_prehash(digest, &sig, recovery).map_err(|_| Error::RecoveryFailed)?;
    Ok(address_of(&public_key_bytes(&key)))
}

/// EIP-191 "personal message" digest: `keccak256("\x19Ethereum Signed Message:\n" ‖ decimal
/// length of message ‖ message)`, what `eth_sign`/`personal_sign` sign.
pub fn eip191_hash(message: &[u8]) -> [u8; 32] {
    use sha3::{Digest, Keccak256};
    const PREFIX: &[u8] = b"\x19Ethereum Signed Message:\n";
    // The length in decimal: a usize has at most 20 digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut len = message.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (len % 10) as u8;
        len /= 10;
        if len == 0 {
            break;
        }
    }
    let mut hash = Keccak256::new();
    hash.update(PREFIX);
    hash.update(&digits[start..]);
    hash.update(message);
    hash.finalize().into()
}

/// EIP-712 typed-data digest: `keccak256("\x19\x01" ‖ domain_separator ‖ struct_hash)`.
pub fn eip712_hash(domain_separator: &[u8; 32], struct_hash: &[u8; 32]) -> [u8; 32] {
    let mut data = [0u8; 66];
    data[..2].copy_from_slice(b"\x19\x01");
    data[2..34].copy_from_slice(domain_separator);
    data[34..].copy_from_slice(struct_hash);
    keccak256(&data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{from_hex, to_hex};
    use k256::elliptic_curve::PrimeField;

    fn h<const N: usize>(text: &str) -> [u8; N] {
        from_hex(text).unwrap().try_into().unwrap()
    }

    /// The key of the Web3 Secret Storage test vectors.
    const WEB3_KEY: &str = "0x7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";

    #[test]
    fn address_of_known_keys() {
        let key = SecretKey::from_bytes(&h(WEB3_KEY)).unwrap();
        assert_eq!(to_hex(&key.address()), "0x008aeeda4d805471df9b2a5b0f38a0c3bcba786b");
        assert_eq!(
            to_hex(&key.public_key()),
            "0x32d87c5cd4b31d81c5b010af42a2e413af253dc3a91bd3d53c6b2c45291c3de7\
             1633bf7793447a0d3ddde601f8d21668fca5b33324f14ebe7516eab0da8bab8f"
        );
        assert_eq!(*key.to_bytes(), h::<32>(WEB3_KEY));
        // The EIP-712 example's key, keccak256("cow").
        let cow = SecretKey::from_bytes(&keccak256(b"cow")).unwrap();
        assert_eq!(to_hex(&cow.address()), "0xcd2a3d9f938e13cd947ec05abc7fe734df8dd826");
        // eigensdk-go's test key 1 and the address its keystore records.
        let key = h("0x64540125e6bf2ade614af37e7c644eb0c75ad1e64e54f84843bce49cd164dcbb");
        let address = SecretKey::from_bytes(&key).unwrap().address();
        assert_eq!(to_hex(&address), "0x36cacfc85697f462fd755995d2b689f458a0db64");
    }

    #[test]
    fn secret_key_range() {
        assert_eq!(SecretKey::from_bytes(&[0; 32]).err(), Some(Error::InvalidSecretKey));
        let n: [u8; 32] = h("0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");
        assert_eq!(SecretKey::from_bytes(&n).err(), Some(Error::InvalidSecretKey));
        assert_eq!(SecretKey::from_bytes(&[0xff; 32]).err(), Some(Error::InvalidSecretKey));
        let mut n_minus_1 = n;
        n_minus_1[31] -= 1;
        assert_eq!(*SecretKey::from_bytes(&n_minus_1).unwrap().to_bytes(), n_minus_1);
        let key = SecretKey::from_bytes(&[1; 32]).unwrap();
        assert_eq!(alloc::format!("{key:?}"), "SecretKey(<redacted>)");
    }

    /// EIP-712's "Mail" example: the published domain separator, struct hash, digest and the
    /// signature by keccak256("cow").
    #[test]
    fn eip712_mail_example() {
        let domain = h("0xf2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f");
        let mail = h("0xc52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e");
        let digest = eip712_hash(&domain, &mail);
        assert_eq!(to_hex(&digest), "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2");
        let cow = SecretKey::from_bytes(&keccak256(b"cow")).unwrap();
        let signature = cow.sign_prehash(&digest);
        assert_eq!(
            to_hex(&signature),
            "0x4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d\
             07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562\
             1c"
        );
        assert_eq!(recover_address(&digest, &signature), Ok(cow.address()));
    }

    /// `personal_sign` of "hello" by the Web3 test key, as the Python eth-keys package signs it.
    #[test]
    fn eip191_known_vector() {
        let digest = eip191_hash(b"hello");
        assert_eq!(to_hex(&digest), "0x50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750");
        let key = SecretKey::from_bytes(&h(WEB3_KEY)).unwrap();
        assert_eq!(
            to_hex(&key.sign_prehash(&digest)),
            "0x360868b1309dbc03fc1330fac1259c538231bf3fbc7c94639b092118e0efb2d3\
             5c812a53c9dae5ccf1cdbd4a1424490c79a6ca1624c21d68d2ca88e33c510fbc\
             1b"
        );
        // The length is written in decimal: 0, 9, 10 and 123 bytes.
        for len in [0usize, 9, 10, 123] {
            let message = alloc::vec![b'a'; len];
            let mut data = b"\x19Ethereum Signed Message:\n".to_vec();
            data.extend_from_slice(alloc::format!("{len}").as_bytes());
            data.extend_from_slice(&message);
            assert_eq!(eip191_hash(&message), keccak256(&data), "{len}");
        }
    }

    #[test]
    fn sign_recover_round_trips() {
        // Secp256k1's order n, to check s <= n/2.
        let half_n: [u8; 32] = h("0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0");
        for i in 1u8..=24 {
            let key = SecretKey::from_bytes(&keccak256(&[i])).unwrap();
            let digest = keccak256(&[i, i]);
            let signature = key.sign_prehash(&digest);
            assert_eq!(signature, key.sign_prehash(&digest), "deterministic");
            assert!(signature[64] == 27 || signature[64] == 28);
            assert!(signature[32..64] <= half_n[..], "low s");
            assert_eq!(recover_address(&digest, &signature), Ok(key.address()));
            // v as 0/1 is accepted too.
            let mut raw_v = signature;
            raw_v[64] -= 27;
            assert_eq!(recover_address(&digest, &raw_v), Ok(key.address()));
            // Another digest or the other v recovers another address (or none).
            let other = recover_address(&keccak256(&[i]), &signature);
            assert_ne!(other, Ok(key.address()));
            let mut flipped = signature;
            flipped[64] = 55 - flipped[64]; // 27 <-> 28
            assert_ne!(recover_address(&digest, &flipped), Ok(key.address()));
        }
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let key = SecretKey::from_bytes(&[7; 32]).unwrap();
        let digest = [9u8; 32];
        let good = key.sign_prehash(&digest);
        for v in [2u8, 26, 29, 255] {
            let mut bad = good;
            bad[64] = v;
            assert_eq!(recover_address(&digest, &bad), Err(Error::InvalidRecoveryId(v)));
        }
        let n: [u8; 32] = h("0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");
        for (range, value) in
            [(0..32, [0u8; 32]), (32..64, [0u8; 32]), (0..32, n), (32..64, n), (0..32, [0xff; 32])]
        {
            let mut bad = good;
            bad[range].copy_from_slice(&value);
            assert_eq!(recover_address(&digest, &bad), Err(Error::InvalidSignature));
        }
        // The malleated twin (n - s, other v) of a valid signature is refused (EIP-2).
        let s = k256::Scalar::from_repr(<[u8; 32]>::try_from(&good[32..64]).unwrap().into()).unwrap();
        let mut high = good;
        high[32..64].copy_from_slice(&(-s).to_bytes());
        high[64] = 55 - high[64];
        assert_eq!(recover_address(&digest, &high), Err(Error::HighS));
        // An r that is no point's x coordinate (x^3 + 7 is not a square for x = 5) recovers
        // nothing.
        let mut no_point = good;
        no_point[..32].copy_from_slice(&[0; 32]);
        no_point[31] = 5;
        assert_eq!(recover_address(&digest, &no_point), Err(Error::RecoveryFailed));
    }
}
