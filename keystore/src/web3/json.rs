//! Reading the fields of Web3 key files, with errors that name them.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde_json::{Map, Value};

use crate::Error;

/// `value` as a JSON object.
pub(crate) fn object<'a>(value: &'a Value, path: &'static str) -> Result<&'a Map<String, Value>, Error> {
    value.as_object().ok_or_else(|| Error::malformed(path, "must be a JSON object"))
}

/// The member `name` of `object`, matched as Go's `encoding/json` matches a struct field: the
/// exact name, or a name equal to it ignoring ASCII case. Two members that both match are
/// refused: which one Go would take depends on their order in the text.
pub(crate) fn lookup<'a>(
    object: &'a Map<String, Value>,
    name: &str,
    path: &'static str,
) -> Result<Option<&'a Value>, Error> {
    let mut found = None;
    for (key, value) in object {
        if key.eq_ignore_ascii_case(name) {
            if let Some((other, _)) = found {
                return Err(Error::malformed(path, format!("given twice, as {other:?} and {key:?}")));
            }
            found = Some((key, value));
        }
    }
    Ok(found.map(|(_, value)| value))
}

/// [`lookup`], the member being required.
pub(crate) fn field<'a>(
    object: &'a Map<String, Value>,
    name: &str,
    path: &'static str,
) -> Result<&'a Value, Error> {
    lookup(object, name, path)?.ok_or_else(|| Error::malformed(path, "missing"))
}

/// A required string member.
pub(crate) fn str_field<'a>(
    object: &'a Map<String, Value>,
    name: &str,
    path: &'static str,
) -> Result<&'a str, Error> {
    field(object, name, path)?.as_str().ok_or_else(|| Error::malformed(path, "must be a string"))
}

/// Hex text (no `0x`) of exactly `N` bytes.
pub(crate) fn hex_array<const N: usize>(text: &str, path: &'static str) -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|e| match e {
        hex::FromHexError::InvalidStringLength | hex::FromHexError::OddLength => {
            Error::malformed(path, format!("must be {N} bytes ({} hex digits)", 2 * N))
        }
        other => Error::malformed(path, other.to_string()),
    })?;
    Ok(out)
}

/// Hex text (no `0x`) of any length.
pub(crate) fn hex_vec(text: &str, path: &'static str) -> Result<Vec<u8>, Error> {
    hex::decode(text).map_err(|e| Error::malformed(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_match_as_go_matches_them() {
        let v = json!({"Crypto": 1, "other": 2});
        let o = v.as_object().unwrap();
        assert_eq!(lookup(o, "crypto", "crypto").unwrap(), Some(&json!(1)));
        assert_eq!(lookup(o, "missing", "missing").unwrap(), None);
        let v = json!({"crypto": 1, "CRYPTO": 2});
        let err = lookup(v.as_object().unwrap(), "crypto", "crypto").unwrap_err();
        assert!(matches!(err, Error::Malformed { field: "crypto", .. }), "{err:?}");
    }
}
