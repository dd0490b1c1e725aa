//! The manifest stored beside every image, and SHA-256 helpers.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What was built, from what, and how: written as `manifest.json` next to
/// every `image.elf` in the store (and as `images/spacecore.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Image name, e.g. `spacecore`.
    pub name: String,
    /// The kernel-app package version.
    pub version: String,
    /// Size of the ELF file in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the ELF file, 64 lowercase hex digits.
    pub sha256: String,
    /// Build time, seconds since the Unix epoch.
    pub built_at_unix: u64,
    /// `git rev-parse HEAD` of the tree it was built from, if known.
    pub git_commit: Option<String>,
    /// `rustc -V` of the compiler that built it.
    pub rustc: String,
    /// Cargo profile, e.g. `release`.
    pub profile: String,
    /// Target triple, e.g. `x86_64-unknown-none`.
    pub target: String,
    /// The AVS the image runs, e.g. `incredible-squaring`.
    pub avs: String,
    /// Cargo features the kernel-app was built with.
    pub features: Vec<String>,
    /// Whether the AVS declares itself stateless (`[package.metadata.spacecore] stateless =
    /// true` in its crate): it keeps nothing on a disk and signs no tasks, so `hac-launch` may
    /// run several replicas of it (`spec.operations.scaling = "HorizontalAutoScaling"`).
    /// Absent in older manifests: false.
    #[serde(default)]
    pub stateless: bool,
}

/// Lowercase hex of a byte string.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Whether `text` is a SHA-256 digest in the store's form: 64 lowercase hex digits.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Hashes everything `reader` yields, also handing each chunk to `sink`.
/// Returns (bytes read, lowercase hex SHA-256).
pub(crate) fn hash_stream(
    mut reader: impl Read,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        sink(&buf[..n])?;
        total += n as u64;
    }
    Ok((total, to_hex(&hasher.finalize())))
}

/// SHA-256 of a file's contents, as 64 lowercase hex digits.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    sha256_reader(File::open(path)?)
}

/// The SHA-256 of everything `reader` yields, as lower-case hex: for a file already opened
/// (and checked) by the caller.
pub fn sha256_reader(reader: impl Read) -> io::Result<String> {
    hash_stream(reader, |_| Ok(())).map(|(_, hex)| hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sha256_hex_form() {
        assert!(is_sha256_hex(&"0a".repeat(32)));
        assert!(!is_sha256_hex(&"0A".repeat(32)));
        assert!(!is_sha256_hex("abc"));
    }
}
