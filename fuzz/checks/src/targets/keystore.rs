//! `eip2335::Keystore::from_json` on arbitrary text (never `decrypt`: key derivation is slow on
//! purpose): it never panics, and a keystore that parses is written and read back unchanged.

use eip2335::Keystore;

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(keystore) = Keystore::from_json(text) else { return };
    let json = keystore.to_json();
    assert_eq!(Keystore::from_json(&json), Ok(keystore), "{json}");
}
