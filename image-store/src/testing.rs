//! For tests of the store and of its users (the `testing` feature): a manifest as the build
//! writes one.

use std::fs;
use std::path::Path;

use crate::{Manifest, sha256_file};

/// The manifest of the ELF at `path`, as the build would write it (no features).
pub fn manifest_for(path: &Path) -> Manifest {
    Manifest {
        name: "spacecore".into(),
        version: "0.1.0".into(),
        size_bytes: fs::metadata(path).unwrap().len(),
        sha256: sha256_file(path).unwrap(),
        built_at_unix: 1_700_000_000,
        git_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        rustc: "rustc 1.95.0".into(),
        profile: "release".into(),
        target: "x86_64-unknown-none".into(),
        avs: "incredible-squaring".into(),
        features: vec![],
        stateless: false,
    }
}
