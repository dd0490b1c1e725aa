//! Serde helpers for the JSON wire format: byte strings as `0x`-prefixed hex and uint256 values
//! as decimal strings (see `docs/protocol.md`).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::de::Visitor;
use serde::{Deserializer, Serializer};

use crate::U256;

/// Lower-case `0x`-prefixed hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("0x");
    out.push_str(&hex::encode(bytes));
    out
}

/// Decodes `0x`-prefixed hex (either case, even length), or `None`.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    hex::decode(s.strip_prefix("0x")?).ok()
}

/// `0x` and exactly `2N` hex digits (either case) as `N` bytes, allocating nothing.
pub fn from_hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s.strip_prefix("0x")?, &mut out).ok()?;
    Some(out)
}

/// A visitor for a string, handed to `parse`; `what` names the expected value in errors.
pub(crate) struct StrVisitor<F> {
    pub(crate) what: &'static str,
    pub(crate) parse: F,
}

impl<'de, T, F: FnOnce(&str) -> Option<T>> Visitor<'de> for StrVisitor<F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        let what = self.what;
        (self.parse)(v).ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &what))
    }
}

/// `#[serde(with = "hex_array")]` for `[u8; N]`: exactly `N` bytes of `0x` hex.
pub mod hex_array {
    use super::*;

    /// Serializes as `0x` hex.
    pub fn serialize<S: Serializer, const N: usize>(bytes: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(bytes))
    }

    /// Deserializes `0x` hex of exactly `N` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
        let parse = |s: &str| from_hex(s).and_then(|v| <[u8; N]>::try_from(v).ok());
        d.deserialize_str(StrVisitor { what: "0x-prefixed hex of a fixed-length byte string", parse })
    }
}

/// `#[serde(with = "hex_vec")]` for `Vec<u8>`: `0x` hex of any even length (`"0x"` is empty).
pub mod hex_vec {
    use super::*;

    /// Serializes as `0x` hex.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(bytes))
    }

    /// Deserializes `0x` hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_str(StrVisitor { what: "0x-prefixed hex bytes", parse: from_hex })
    }
}

/// `#[serde(with = "u256_string")]` for [`U256`]: written as a decimal string; read from a
/// decimal string or a `0x`-prefixed hex string. Signs, spaces, `_` separators and empty digit
/// strings are refused, as are values of 2^256 or more.
pub mod u256_string {
    use super::*;
    use alloc::string::ToString;

    /// Serializes as a decimal string.
    pub fn serialize<S: Serializer>(value: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    /// Deserializes a decimal or `0x`-hex string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        d.deserialize_str(StrVisitor { what: "a uint256 as a decimal or 0x-hex string", parse: parse_u256 })
    }

    /// Parses a uint256 written in decimal or `0x`-prefixed hex.
    pub fn parse_u256(s: &str) -> Option<U256> {
        let (digits, radix) = match s.strip_prefix("0x") {
            Some(hex) => (hex, 16),
            None => (s, 10),
        };
        let valid = |c: char| c.is_digit(radix);
        if digits.is_empty() || !digits.chars().all(valid) {
            return None;
        }
        U256::from_str_radix(digits, u64::from(radix)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::u256_string::parse_u256;
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        assert_eq!(to_hex(&[0x00, 0xab, 0xff]), "0x00abff");
        assert_eq!(from_hex("0x00ABff"), Some(alloc::vec![0x00, 0xab, 0xff]));
        assert_eq!(from_hex("0x"), Some(Vec::new()));
        for bad in ["00ab", "0xabc", "0xzz", "0x+1", "0X00"] {
            assert_eq!(from_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn u256_strings() {
        assert_eq!(parse_u256("81"), Some(U256::from(81u32)));
        assert_eq!(parse_u256("0x51"), Some(U256::from(81u32)));
        assert_eq!(parse_u256(&U256::MAX.to_string()), Some(U256::MAX));
        // 2^256 is one too many.
        let too_big = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        for bad in ["", "0x", "-1", "+1", "1_000", " 1", "1.0", "0x1g", too_big] {
            assert_eq!(parse_u256(bad), None, "{bad:?}");
        }
    }
}
