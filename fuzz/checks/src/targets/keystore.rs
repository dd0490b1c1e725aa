//! `eip2335::Keystore::from_json` on arbitrary text (never `decrypt`: key derivation is slow on
//! purpose): it never panics, and a keystore that parses, and whose module parameters hold no
//! number but integers, is written and read back unchanged.
//!
//! A parameter that is a float (which no EIP-2335 keystore has, and which `decrypt` refuses
//! where it reads a number) may read back one unit in the last place off: serde_json, built
//! without its `float_roundtrip` feature as the project builds it, does not read every float it
//! writes exactly (`fuzz/corpus/keystore/float-param`, found by the bounded run). Such a
//! keystore is still written and parsed again, without the comparison.

use eip2335::Keystore;
use serde_json::Value;

/// Whether `value` holds no number but integers.
fn integers_only(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_i64() || n.is_u64(),
        Value::Array(items) => items.iter().all(integers_only),
        Value::Object(map) => map.values().all(integers_only),
        _ => true,
    }
}

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(keystore) = Keystore::from_json(text) else { return };
    let json = keystore.to_json();
    let again = Keystore::from_json(&json);
    let modules = [&keystore.crypto.kdf, &keystore.crypto.checksum, &keystore.crypto.cipher];
    if modules.iter().all(|m| m.params.values().all(integers_only)) {
        assert_eq!(again, Ok(keystore), "{json}");
    } else {
        assert!(again.is_ok(), "a keystore written did not parse: {json}");
    }
}
