//! Unit tests of the store against temporary directories.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use super::*;
use crate::testing::manifest_for;

fn write_elf(dir: &Path, name: &str, contents: &[u8]) -> (PathBuf, Manifest) {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap();
    let manifest = manifest_for(&path);
    (path, manifest)
}

/// Every file and symlink under `dir` (not following symlinks), relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The version directories of `spacecore:latest`.
fn versions(store: &Store) -> Vec<String> {
    let Ok(entries) = fs::read_dir(store.root().join("spacecore/.latest.versions")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries.map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn register_then_resolve_round_trips() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::at(work.path().join("store"));
    let (elf, manifest) = write_elf(work.path(), "k.elf", b"\x7fELF pretend kernel");

    let stored = store.register("registry/path/avs-spacecore", "v1.2-rc_3", &elf, &manifest).unwrap();
    assert_eq!(stored, work.path().join("store/registry/path/avs-spacecore/v1.2-rc_3/image.elf"));
    assert_eq!(fs::read(&stored).unwrap(), b"\x7fELF pretend kernel");
    // Read-only, never rewritten: launchers share its pages copy-on-write.
    let mode = std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&stored).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o444);

    let found = store.resolve("registry/path/avs-spacecore", "v1.2-rc_3").unwrap();
    let versions_dir = work.path().join("store/registry/path/avs-spacecore/.v1.2-rc_3.versions");
    assert!(found.path.starts_with(&versions_dir), "{}", found.path.display());
    assert_eq!(fs::canonicalize(&found.path).unwrap(), fs::canonicalize(&stored).unwrap());
    assert_eq!(found.manifest, manifest);
    assert_eq!(store.verify("registry/path/avs-spacecore", "v1.2-rc_3").unwrap(), found);

    let on_disk: Manifest =
        serde_json::from_str(&fs::read_to_string(stored.with_file_name(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(on_disk, manifest);
}

#[test]
fn missing_image_says_how_to_build_it() {
    let store = Store::at("/root/.local/share/spacecore/images-test-nonexistent");
    let err = store.resolve("registry/path/avs-spacecore", "latest").unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "image registry/path/avs-spacecore:latest is not in the image store at \
         /root/.local/share/spacecore/images-test-nonexistent; build it with: \
         cargo xtask build-image --tag registry/path/avs-spacecore:latest"
    );
}

#[test]
fn traversal_and_bad_names_are_rejected() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::at(work.path().join("store"));
    let (elf, manifest) = write_elf(work.path(), "k.elf", b"kernel");

    let bad_repositories = [
        "",
        "..",
        ".",
        "../escape",
        "a/../../escape",
        "a//b",
        "/abs",
        "a/",
        "Upper",
        "a b",
        "a\\b",
        "a:b",
        ".hidden",
        "-opt",
        "a/./b",
    ];
    for repo in bad_repositories {
        let err = store.register(repo, "latest", &elf, &manifest).unwrap_err();
        assert!(matches!(err, StoreError::InvalidName { .. }), "{repo:?}: {err:?}");
        let err = store.resolve(repo, "latest").unwrap_err();
        assert!(matches!(err, StoreError::InvalidName { .. }), "{repo:?}: {err:?}");
    }
    for tag in ["", ".", "..", "../x", "a/b", "a:b", ".tmp", "-x", "é"] {
        let err = store.register("spacecore", tag, &elf, &manifest).unwrap_err();
        assert!(matches!(err, StoreError::InvalidName { .. }), "{tag:?}: {err:?}");
    }
    assert!(!work.path().join("store").exists());
    assert!(!work.path().join("escape").exists());
    // Upper case is fine in a tag.
    store.register("spacecore", "RC1", &elf, &manifest).unwrap();
}

#[test]
fn overwrite_replaces_both_files_and_keeps_one_previous_version() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::at(work.path().join("store"));
    let (old, old_manifest) = write_elf(work.path(), "old.elf", b"old kernel");
    let (new, new_manifest) = write_elf(work.path(), "new.elf", b"the new, longer kernel");

    store.register("spacecore", "latest", &old, &old_manifest).unwrap();
    let first = store.resolve("spacecore", "latest").unwrap();
    store.register("spacecore", "latest", &new, &new_manifest).unwrap();

    let found = store.verify("spacecore", "latest").unwrap();
    assert_eq!(found.manifest, new_manifest);
    assert_eq!(fs::read(&found.path).unwrap(), b"the new, longer kernel");
    let through_link = store.root().join("spacecore/latest/image.elf");
    assert_eq!(fs::read(through_link).unwrap(), b"the new, longer kernel");
    // A reader still holding the previous version can finish with it.
    assert_eq!(fs::read(&first.path).unwrap(), b"old kernel");
    assert_eq!(versions(&store).len(), 2);

    store.register("spacecore", "latest", &old, &old_manifest).unwrap();
    assert_eq!(versions(&store).len(), 2);
    assert!(!first.path.exists(), "the oldest version is removed");
    let files = files_under(&store.root().join("spacecore"));
    // Two versions of two files, the tag's symlink and its lock file.
    assert_eq!(files.len(), 2 * 2 + 2, "{files:?}");
    assert!(files.contains(&"latest".to_owned()), "{files:?}");
    assert!(files.contains(&".latest.lock".to_owned()), "{files:?}");
}

#[test]
fn a_plain_directory_entry_is_read_and_replaced() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::at(work.path().join("store"));
    let (elf, manifest) = write_elf(work.path(), "k.elf", b"kernel");
    let dir = store.root().join("spacecore/latest");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(&elf, dir.join(IMAGE_FILE)).unwrap();
    fs::write(dir.join(MANIFEST_FILE), serde_json::to_vec(&manifest).unwrap()).unwrap();
    assert_eq!(store.resolve("spacecore", "latest").unwrap().path, dir.join(IMAGE_FILE));

    let (new, new_manifest) = write_elf(work.path(), "new.elf", b"new kernel");
    store.register("spacecore", "latest", &new, &new_manifest).unwrap();
    assert_eq!(store.verify("spacecore", "latest").unwrap().manifest, new_manifest);
}

#[test]
fn a_tag_and_a_repository_cannot_share_a_path() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::at(work.path().join("store"));
    let (elf, manifest) = write_elf(work.path(), "k.elf", b"kernel");
    store.register("a", "b", &elf, &manifest).unwrap();
    let err = store.register("a/b", "latest", &elf, &manifest).unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
    let err = store.resolve("a/b", "latest").unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");

    store.register("c/d", "latest", &elf, &manifest).unwrap();
    let err = store.register("c", "d", &elf, &manifest).unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
    store.verify("c/d", "latest").unwrap();
}

#[test]
fn readers_never_see_a_partial_or_mismatched_image_during_overwrites() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::at(work.path().join("store"));
    let a = vec![b'a'; 300 * 1024];
    let b = vec![b'b'; 200 * 1024 + 7];
    let (a_path, a_manifest) = write_elf(work.path(), "a.elf", &a);
    let (b_path, b_manifest) = write_elf(work.path(), "b.elf", &b);
    store.register("spacecore", "latest", &a_path, &a_manifest).unwrap();

    let done = AtomicBool::new(false);
    thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut reads = 0u32;
            while !done.load(Ordering::Relaxed) || reads == 0 {
                let found = store.resolve("spacecore", "latest").unwrap();
                let expected = if found.manifest == a_manifest {
                    &a
                } else {
                    assert_eq!(found.manifest, b_manifest);
                    &b
                };
                // A version is retired once two newer ones exist; a reader
                // this slow just finds it gone.
                let Ok(bytes) = fs::read(&found.path) else {
                    continue;
                };
                assert!(bytes == *expected, "read {} bytes that do not match the manifest", bytes.len());
                reads += 1;
            }
            reads
        });
        for i in 0..40 {
            let (path, manifest) = if i % 2 == 0 { (&b_path, &b_manifest) } else { (&a_path, &a_manifest) };
            store.register("spacecore", "latest", path, manifest).unwrap();
        }
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
}

#[test]
fn register_refuses_a_manifest_that_does_not_match() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::at(work.path().join("store"));
    let (elf, mut manifest) = write_elf(work.path(), "k.elf", b"kernel");
    manifest.sha256 = "0".repeat(64);
    let err = store.register("spacecore", "latest", &elf, &manifest).unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
    manifest.sha256 = "XYZ".into();
    let err = store.register("spacecore", "latest", &elf, &manifest).unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
    assert!(!store.root().join("spacecore/latest").exists());
    assert!(versions(&store).is_empty(), "the staged version is removed");
}

#[test]
fn corruption_is_reported() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::at(work.path().join("store"));
    let (elf, manifest) = write_elf(work.path(), "k.elf", b"kernel");
    let stored = store.register("spacecore", "latest", &elf, &manifest).unwrap();

    // Same size, different bytes: resolve (size only) passes, verify does not.
    fs::write(&stored, b"KERNEL").unwrap();
    store.resolve("spacecore", "latest").unwrap();
    let err = store.verify("spacecore", "latest").unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("is corrupt"), "{err}");

    // Different size: resolve notices.
    fs::write(&stored, b"truncated").unwrap();
    let err = store.resolve("spacecore", "latest").unwrap_err();
    assert!(err.to_string().contains("is corrupt"), "{err}");

    fs::remove_file(&stored).unwrap();
    let err = store.resolve("spacecore", "latest").unwrap_err();
    assert!(err.to_string().contains("image.elf is missing"), "{err}");
}

#[test]
fn image_refs_parse() {
    let r = ImageRef::parse("registry/path/avs-spacecore:latest").unwrap();
    assert_eq!((r.repository.as_str(), r.tag.as_str()), ("registry/path/avs-spacecore", "latest"));
    assert_eq!(r.to_string(), "registry/path/avs-spacecore:latest");
    let r: ImageRef = "spacecore".parse().unwrap();
    assert_eq!((r.repository.as_str(), r.tag.as_str()), ("spacecore", DEFAULT_TAG));
    assert!(ImageRef::parse("spacecore:").is_err());
    assert!(ImageRef::parse("localhost:5000/x").is_err());
    assert!(ImageRef::parse("x@sha256:abcd").is_err());
}

#[test]
fn default_root_follows_the_documented_order() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| OsString::from(v))
    };
    assert_eq!(
        default_root(env(&[(STORE_ENV, "/s"), ("XDG_DATA_HOME", "/x"), ("HOME", "/h")])),
        PathBuf::from("/s")
    );
    assert_eq!(
        default_root(env(&[(STORE_ENV, ""), ("XDG_DATA_HOME", "/x"), ("HOME", "/h")])),
        PathBuf::from("/x/spacecore/images")
    );
    assert_eq!(
        default_root(env(&[("XDG_DATA_HOME", "rel"), ("HOME", "/h")])),
        PathBuf::from("/h/.local/share/spacecore/images")
    );
    assert_eq!(default_root(env(&[])), PathBuf::from("/var/lib/spacecore/images"));
}
