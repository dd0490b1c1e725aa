//! eigensdk's BLS (BN254) key file.

use alloc::format;
use alloc::string::String;

use super::{Crypto, json};
use crate::{Error, Kdf, Secret};

/// Longest decimal coordinate accepted: 2^256 - 1 has 78 digits.
const MAX_DIGITS: usize = 78;

/// eigensdk's BLS key file, as eigensdk-go writes it (`eigenlayer keys create --key-type bls`):
/// `{"pubKey": "E([X,Y])", "crypto": {...}}`, where `X` and `Y` are the coordinates of the BN254
/// G1 public key in decimal and the ciphertext is the 32-byte big-endian secret scalar. Unknown
/// members are ignored.
///
/// This crate does no curve arithmetic: [`BlsKeyFile::pub_key`] only parses the two numbers.
/// Whether they are a point of G1, and the public key of the decrypted secret (the MAC does not
/// cover the IV), is for the caller to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlsKeyFile {
    /// `pubKey` as written, e.g. `E([1,2])`.
    pub pub_key: String,
    /// `crypto` (or `Crypto`).
    pub crypto: Crypto,
}

impl BlsKeyFile {
    /// Parses and checks a key file: `pubKey` must be `E([X,Y])` with two decimal numbers below
    /// 2^256, and the ciphertext 32 bytes.
    ///
    /// # Errors
    /// The errors of [`Crypto::from_value`]; [`Error::Malformed`] for text that is not a JSON
    /// object (`json`), a missing or malformed `pubKey`, a ciphertext that is not 32 bytes.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let value = super::parse(text)?;
        let object = json::object(&value, "json")?;
        let pub_key = json::str_field(object, "pubKey", "pubKey")?;
        parse_g1(pub_key)?;
        let crypto = Crypto::from_value(json::field(object, "crypto", "crypto")?)?;
        if crypto.ciphertext.len() != 32 {
            return Err(Error::malformed("crypto.ciphertext", "must be 32 bytes (64 hex digits)"));
        }
        Ok(BlsKeyFile { pub_key: pub_key.into(), crypto })
    }

    /// The key file as compact JSON, as eigensdk-go writes it (`pubKey` first).
    pub fn to_json(&self) -> String {
        // A struct keeps eigensdk's member order, which a map would sort.
        #[derive(serde::Serialize)]
        struct File<'a> {
            #[serde(rename = "pubKey")]
            pub_key: &'a str,
            crypto: &'a Crypto,
        }
        super::to_text(&File { pub_key: &self.pub_key, crypto: &self.crypto })
    }

    /// The G1 public key of `pubKey`: `X ‖ Y`, 32 bytes big-endian each.
    ///
    /// # Errors
    /// [`Error::Malformed`] (field `pubKey`) unless it is `E([X,Y])` with `X` and `Y` decimal
    /// numbers (digits only) below 2^256.
    pub fn pub_key(&self) -> Result<[u8; 64], Error> {
        parse_g1(&self.pub_key)
    }

    /// Recovers the 32-byte big-endian secret scalar with `password` (raw bytes).
    ///
    /// # Errors
    /// Those of [`Crypto::decrypt`]; [`Error::Malformed`] if the ciphertext is not 32 bytes.
    pub fn decrypt(&self, password: &[u8]) -> Result<Secret, Error> {
        self.crypto.decrypt_32(password)
    }

    /// Makes a key file of `secret` (the 32-byte big-endian scalar) under `password` (raw
    /// bytes). `g1_xy` is the secret's G1 public key `X ‖ Y` (big-endian), written in decimal as
    /// `pubKey`; this crate cannot compute it. `salt` and `iv` **must come from a
    /// cryptographically secure RNG** ([`Crypto::encrypt`]).
    ///
    /// # Errors
    /// Those of [`Crypto::encrypt`].
    pub fn encrypt(
        secret: &[u8; 32],
        password: &[u8],
        g1_xy: &[u8; 64],
        kdf: Kdf,
        salt: [u8; 32],
        iv: [u8; 16],
    ) -> Result<Self, Error> {
        let crypto = Crypto::encrypt(secret, password, kdf, salt, iv)?;
        let (x, y) = g1_xy.split_at(32);
        let pub_key = format!("E([{},{}])", decimal(x), decimal(y));
        Ok(BlsKeyFile { pub_key, crypto })
    }
}

/// Parses `E([X,Y])` into `X ‖ Y`.
fn parse_g1(text: &str) -> Result<[u8; 64], Error> {
    let inner = text
        .strip_prefix("E([")
        .and_then(|rest| rest.strip_suffix("])"))
        .ok_or_else(|| Error::malformed("pubKey", "must be E([X,Y]) with X and Y in decimal"))?;
    let (x, y) = inner
        .split_once(',')
        .ok_or_else(|| Error::malformed("pubKey", "must be E([X,Y]) with X and Y in decimal"))?;
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&parse_decimal(x, "X")?);
    out[32..].copy_from_slice(&parse_decimal(y, "Y")?);
    Ok(out)
}

/// A decimal number below 2^256 as 32 bytes big-endian.
fn parse_decimal(text: &str, which: &str) -> Result<[u8; 32], Error> {
    if text.is_empty() || text.len() > MAX_DIGITS || !text.bytes().all(|c| c.is_ascii_digit()) {
        return Err(Error::malformed(
            "pubKey",
            format!("{which} must be a decimal number of 1 to {MAX_DIGITS} digits"),
        ));
    }
    let mut out = [0u8; 32];
    for digit in text.bytes() {
        // out = out * 10 + digit, from the least significant byte up.
        let mut carry = u32::from(digit - b'0');
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
        if carry != 0 {
            return Err(Error::malformed("pubKey", format!("{which} is not below 2^256")));
        }
    }
    Ok(out)
}

/// A 32-byte big-endian number in decimal, without leading zeros.
fn decimal(bytes: &[u8]) -> String {
    let mut n = [0u8; 32];
    n.copy_from_slice(bytes);
    let mut digits = alloc::vec::Vec::new();
    while n.iter().any(|&b| b != 0) {
        // n = n / 10, remainder into digits, from the most significant byte down.
        let mut rem = 0u32;
        for byte in n.iter_mut() {
            let v = (rem << 8) | u32::from(*byte);
            *byte = (v / 10) as u8;
            rem = v % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_round_trip() {
        let mut max = [0xffu8; 32];
        assert_eq!(
            decimal(&max),
            "115792089237316195423570985008687907853269984665640564039457584007913129639935"
        );
        assert_eq!(parse_decimal(&decimal(&max), "X").unwrap(), max);
        max[0] = 0;
        assert_eq!(parse_decimal(&decimal(&max), "X").unwrap(), max);
        assert_eq!(decimal(&[0; 32]), "0");
        assert_eq!(parse_decimal("0", "X").unwrap(), [0; 32]);
        let mut two = [0u8; 32];
        two[31] = 2;
        assert_eq!(parse_decimal("0002", "X").unwrap(), two);
        assert_eq!(decimal(&two), "2");
    }

    #[test]
    fn bad_numbers_are_refused() {
        // 2^256 exactly, one past the largest value.
        let two_256 = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        for bad in ["", "-1", "+1", "1 ", "0x10", "1.5", two_256, &"9".repeat(79)] {
            let err = parse_decimal(bad, "X").unwrap_err();
            assert!(matches!(err, Error::Malformed { field: "pubKey", .. }), "{bad:?}: {err:?}");
        }
        for bad in ["E([1,2]", "E(1,2)", "([1,2])", "E([1;2])", "E([1,2,3])", "E([1, 2])", "e([1,2])", "O"] {
            let err = parse_g1(bad).unwrap_err();
            assert!(matches!(err, Error::Malformed { field: "pubKey", .. }), "{bad:?}: {err:?}");
        }
        let mut xy = [0u8; 64];
        xy[31] = 1;
        xy[63] = 2;
        assert_eq!(parse_g1("E([1,2])").unwrap(), xy);
    }
}
