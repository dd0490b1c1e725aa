//! `eip2335::web3::{BlsKeyFile, EcdsaKeystore}::from_json` on arbitrary text (never `decrypt`:
//! key derivation is slow on purpose): they never panic, a file that parses is written and read
//! back unchanged, and a BLS key file's `pubKey` either parses or is refused, never panics.

use eip2335::web3::{BlsKeyFile, EcdsaKeystore};

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(file) = BlsKeyFile::from_json(text) {
        let _ = file.pub_key();
        let json = file.to_json();
        assert_eq!(BlsKeyFile::from_json(&json), Ok(file), "{json}");
    }
    if let Ok(keystore) = EcdsaKeystore::from_json(text) {
        let json = keystore.to_json();
        assert_eq!(EcdsaKeystore::from_json(&json), Ok(keystore), "{json}");
    }
}
