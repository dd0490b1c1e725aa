//! Export and import against temporary stores, and hostile layouts.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use serde_json::{Value, json};

use super::*;
use crate::{ImageRef, Manifest, Store, StoreError};

const REF: &str = "registry/path/avs-spacecore:v1.2";

/// Bytes that do not compress to nothing: a pretend ELF of `len` bytes.
fn elf_bytes(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    let mut out = b"\x7fELF".to_vec();
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push((x % 7) as u8 + b'a');
    }
    out
}

/// A store in `work` holding `REF` (and its manifest).
fn store_with_image(work: &Path) -> (Store, Manifest) {
    let store = Store::at(work.join("store"));
    let elf = work.join("k.elf");
    fs::write(&elf, elf_bytes(100_000)).unwrap();
    let manifest = Manifest { features: vec!["chain".into()], ..crate::testing::manifest_for(&elf) };
    let r = ImageRef::parse(REF).unwrap();
    store.register(&r.repository, &r.tag, &elf, &manifest).unwrap();
    (store, manifest)
}

fn exported(work: &Path, format: Format) -> (Store, Manifest, PathBuf) {
    let (store, manifest) = store_with_image(work);
    let dest = work.join(if format == Format::Tar { "image.tar" } else { "layout" });
    export(&store, &ImageRef::parse(REF).unwrap(), &dest, format).unwrap();
    (store, manifest, dest)
}

fn blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// Writes `bytes` as a blob; its descriptor's digest and size.
fn put_blob(dir: &Path, bytes: &[u8]) -> (String, u64) {
    let digest = digest_of(bytes);
    fs::write(blob(dir, &digest), bytes).unwrap();
    (digest, bytes.len() as u64)
}

fn manifest_digest(dir: &Path) -> String {
    read_json(&dir.join("index.json"))["manifests"][0]["digest"].as_str().unwrap().to_owned()
}

/// Rewrites the image manifest through `edit`, as a consistent layout (new blob, index updated).
fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let mut manifest = read_json(&blob(dir, &manifest_digest(dir)));
    edit(&mut manifest);
    let (digest, size) = put_blob(dir, &serde_json::to_vec(&manifest).unwrap());
    let mut index = read_json(&dir.join("index.json"));
    index["manifests"][0]["digest"] = json!(digest);
    index["manifests"][0]["size"] = json!(size);
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Rewrites the config through `edit`, as a consistent layout.
fn edit_config(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let manifest = read_json(&blob(dir, &manifest_digest(dir)));
    let mut config = read_json(&blob(dir, manifest["config"]["digest"].as_str().unwrap()));
    edit(&mut config);
    let (digest, size) = put_blob(dir, &serde_json::to_vec(&config).unwrap());
    edit_manifest(dir, |m| {
        m["config"]["digest"] = json!(digest);
        m["config"]["size"] = json!(size);
    });
}

/// Replaces the layer with the gzip of `tar`, as a consistent layout (diff ID and descriptors).
fn replace_layer(dir: &Path, tar: &[u8]) {
    let mut gz = GzBuilder::new().write(Vec::new(), Compression::fast());
    gz.write_all(tar).unwrap();
    let (digest, size) = put_blob(dir, &gz.finish().unwrap());
    let diff_id = digest_of(tar);
    edit_config(dir, |c| c["rootfs"]["diff_ids"] = json!([diff_id]));
    edit_manifest(dir, |m| {
        m["layers"][0]["digest"] = json!(digest);
        m["layers"][0]["size"] = json!(size);
    });
}

/// A tar entry header named `name` byte for byte (no checks on the path).
fn raw_header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    if kind == tar::EntryType::Symlink {
        header.set_link_name("/etc/passwd").unwrap();
    }
    header.set_cksum();
    header
}

fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        builder.append(&raw_header(name, *kind, data.len() as u64), *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn layout_error(result: Result<Imported, OciError>) -> String {
    match result {
        Err(e @ OciError::Layout { .. }) => e.to_string(),
        other => panic!("expected a layout error, got {other:?}"),
    }
}

fn assert_nothing_registered(store: &Store) {
    let r = ImageRef::parse(REF).unwrap();
    let err = store.resolve(&r.repository, &r.tag).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

#[test]
fn round_trip_through_a_directory_and_a_tar() {
    for format in [Format::Directory, Format::Tar] {
        let work = tempfile::tempdir().unwrap();
        let (store, manifest, dest) = exported(work.path(), format);
        let original = store.verify("registry/path/avs-spacecore", "v1.2").unwrap();

        // Under the recorded reference, into another store.
        let other = Store::at(work.path().join("other"));
        let imported = import(&other, &dest, None, None).unwrap();
        assert_eq!(imported.reference.to_string(), REF);
        assert_eq!(imported.ref_name.as_deref(), Some("v1.2"));
        assert_eq!(imported.manifest, manifest);
        let found = other.verify("registry/path/avs-spacecore", "v1.2").unwrap();
        assert_eq!(found.manifest, manifest, "{format:?}");
        assert_eq!(fs::read(found.path).unwrap(), fs::read(&original.path).unwrap());
        let whats: Vec<&str> = imported.verified.iter().map(|v| v.what).collect();
        assert_eq!(whats, ["image manifest", "config", "layer"]);

        // Under another reference: the same ELF, so a spec pinned @sha256 still matches.
        let renamed = ImageRef::parse("mirror/spacecore:pinned").unwrap();
        let imported = import(&other, &dest, Some("v1.2"), Some(&renamed)).unwrap();
        assert_eq!(imported.reference, renamed);
        let found = other.verify("mirror/spacecore", "pinned").unwrap();
        assert_eq!(found.manifest.sha256, manifest.sha256);
    }
}

#[test]
fn exports_are_reproducible_and_refuse_to_overwrite() {
    let work = tempfile::tempdir().unwrap();
    let (store, _) = store_with_image(work.path());
    let r = ImageRef::parse(REF).unwrap();
    let a = export(&store, &r, &work.path().join("a"), Format::Directory).unwrap();
    let b = export(&store, &r, &work.path().join("b"), Format::Directory).unwrap();
    assert_eq!(a.manifest_digest, b.manifest_digest);
    assert_eq!(a.layer_digest, b.layer_digest);
    assert_eq!(
        fs::read(work.path().join("a/index.json")).unwrap(),
        fs::read(work.path().join("b/index.json")).unwrap()
    );
    let t1 = work.path().join("1.tar");
    let t2 = work.path().join("2.tar");
    export(&store, &r, &t1, Format::Tar).unwrap();
    export(&store, &r, &t2, Format::Tar).unwrap();
    assert_eq!(fs::read(&t1).unwrap(), fs::read(&t2).unwrap());

    let err = export(&store, &r, &work.path().join("a"), Format::Directory).unwrap_err();
    assert!(err.to_string().contains("exists and is not empty"), "{err}");
    let err = export(&store, &r, &t1, Format::Tar).unwrap_err();
    assert!(err.to_string().contains("never overwrites"), "{err}");
    // An empty directory is filled.
    fs::create_dir(work.path().join("empty")).unwrap();
    export(&store, &r, &work.path().join("empty"), Format::Directory).unwrap();
    assert!(work.path().join("empty/oci-layout").is_file());
    let leftovers: Vec<_> = fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_layout_is_what_the_docs_say() {
    let work = tempfile::tempdir().unwrap();
    let (store, manifest, dir) = exported(work.path(), Format::Directory);
    assert_eq!(read_json(&dir.join("oci-layout")), json!({"imageLayoutVersion": "1.0.0"}));
    let index = read_json(&dir.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let entry = &index["manifests"][0];
    assert_eq!(entry["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(entry["annotations"]["org.opencontainers.image.ref.name"], "v1.2");
    assert_eq!(entry["platform"], json!({"architecture": "amd64", "os": "linux"}));

    let image = read_json(&blob(&dir, &manifest_digest(&dir)));
    assert_eq!(image["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    assert_eq!(image["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    assert_eq!(image["annotations"][ANNOTATION_REFERENCE], REF);
    assert_eq!(image["annotations"][LABEL_ELF_SHA256], manifest.sha256.as_str());
    assert_eq!(image["annotations"]["org.opencontainers.image.created"], "2023-11-14T22:13:20Z");

    let config = read_json(&blob(&dir, image["config"]["digest"].as_str().unwrap()));
    assert_eq!((config["architecture"].as_str(), config["os"].as_str()), (Some("amd64"), Some("linux")));
    let labels = &config["config"]["Labels"];
    let recorded: Manifest = serde_json::from_str(labels[LABEL_MANIFEST].as_str().unwrap()).unwrap();
    assert_eq!(recorded, manifest);
    assert_eq!(labels[LABEL_AVS], "incredible-squaring");
    assert_eq!(labels[LABEL_ELF_SIZE], "100000");

    // The layer: a gzip tar of exactly spacecore.elf, the stored ELF byte for byte.
    let layer = fs::read(blob(&dir, image["layers"][0]["digest"].as_str().unwrap())).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(layer.as_slice()));
    let mut names = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        names.push(entry.path().unwrap().display().to_string());
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        let stored = store.resolve("registry/path/avs-spacecore", "v1.2").unwrap();
        assert_eq!(bytes, fs::read(stored.path).unwrap());
        assert_eq!(entry.header().mode().unwrap(), 0o755);
    }
    assert_eq!(names, [ELF_PATH]);
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
}

#[test]
fn a_tampered_blob_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let (_, _, dir) = exported(work.path(), Format::Directory);
    let image = read_json(&blob(&dir, &manifest_digest(&dir)));
    let other = Store::at(work.path().join("other"));

    // One byte of the layer changed, same size.
    let layer = blob(&dir, image["layers"][0]["digest"].as_str().unwrap());
    let original = fs::read(&layer).unwrap();
    let mut bytes = original.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    fs::write(&layer, &bytes).unwrap();
    let err = layout_error(import(&other, &dir, None, None));
    assert!(err.contains("the layer blob blobs/sha256/") && err.contains("altered or damaged"), "{err}");
    assert_nothing_registered(&other);
    fs::write(&layer, &original).unwrap();

    // The config changed, same size: its digest no longer matches.
    let config = blob(&dir, image["config"]["digest"].as_str().unwrap());
    let text = fs::read_to_string(&config).unwrap().replace("incredible-squaring", "incredible-squarinG");
    fs::write(&config, text).unwrap();
    let err = layout_error(import(&other, &dir, None, None));
    assert!(err.contains("the config blob") && err.contains("altered or damaged"), "{err}");
    assert_nothing_registered(&other);
}

#[test]
fn a_consistent_layout_with_another_elf_is_refused() {
    // Digests all agree, but the ELF is not the one the recorded manifest names.
    let work = tempfile::tempdir().unwrap();
    let (_, _, dir) = exported(work.path(), Format::Directory);
    replace_layer(&dir, &tar_of(&[(ELF_PATH, tar::EntryType::Regular, b"\x7fELF another kernel")]));
    let other = Store::at(work.path().join("other"));
    let err = layout_error(import(&other, &dir, None, None));
    assert!(err.contains("but the recorded manifest says 100000 bytes"), "{err}");
    assert_nothing_registered(&other);

    // OCI's descriptive annotations may be rewritten by tools; Spacecore's may not.
    let work = tempfile::tempdir().unwrap();
    let (_, manifest, dir) = exported(work.path(), Format::Directory);
    edit_manifest(&dir, |m| m["annotations"]["org.opencontainers.image.description"] = json!("retouched"));
    let imported = import(&other, &dir, None, None).unwrap();
    assert_eq!(imported.manifest, manifest);
    edit_manifest(&dir, |m| m["annotations"][LABEL_ELF_SHA256] = json!("0".repeat(64)));
    let err = layout_error(import(&other, &dir, None, None));
    assert!(err.contains("the image manifest annotation dev.spacecore.image.elf.sha256 is \"000"), "{err}");
    let other = Store::at(work.path().join("other2"));

    // A label contradicting the recorded manifest.
    let work = tempfile::tempdir().unwrap();
    let (_, _, dir) = exported(work.path(), Format::Directory);
    edit_config(&dir, |c| c["config"]["Labels"][LABEL_AVS] = json!("other-avs"));
    let err = layout_error(import(&other, &dir, None, None));
    assert!(err.contains("the config label dev.spacecore.image.avs is \"other-avs\""), "{err}");
}

#[test]
fn oversize_blobs_are_refused_before_reading() {
    let work = tempfile::tempdir().unwrap();
    let (_, _, dir) = exported(work.path(), Format::Directory);
    let other = Store::at(work.path().join("other"));

    // A descriptor claiming more than the cap.
    edit_manifest(&dir, |m| m["layers"][0]["size"] = json!(MAX_LAYER_BYTES + 1));
    let err = layout_error(import(&other, &dir, None, None));
    assert!(
        err.contains(&format!("the layer's descriptor says {} bytes, more than", MAX_LAYER_BYTES + 1)),
        "{err}"
    );

    // A blob larger than its descriptor.
    let work = tempfile::tempdir().unwrap();
    let (_, _, dir) = exported(work.path(), Format::Directory);
    let image = read_json(&blob(&dir, &manifest_digest(&dir)));
    let config = blob(&dir, image["config"]["digest"].as_str().unwrap());
    let mut bytes = fs::read(&config).unwrap();
    bytes.extend_from_slice(b"     ");
    fs::write(&config, bytes).unwrap();
    let err = layout_error(import(&other, &dir, None, None));
    assert!(err.contains("bytes, but its descriptor says"), "{err}");

    // index.json past the JSON cap.
    let mut index = fs::read(dir.join("index.json")).unwrap();
    index.resize(MAX_JSON_BYTES as usize + 1, b' ');
    fs::write(dir.join("index.json"), index).unwrap();
    let err = layout_error(import(&other, &dir, None, None));
    assert!(err.contains("index.json is larger than 1048576 bytes"), "{err}");
    assert_nothing_registered(&other);
}

#[test]
fn a_layer_that_decompresses_past_the_cap_is_refused() {
    let other = Store::at(tempfile::tempdir().unwrap().path().join("other"));
    // An entry declared larger than the ELF cap: refused from its header.
    let work = tempfile::tempdir().unwrap();
    let (_, _, dir) = exported(work.path(), Format::Directory);
    let size = MAX_ELF_BYTES + 1;
    let mut tar = raw_header(ELF_PATH, tar::EntryType::Regular, size).as_bytes().to_vec();
    tar.resize(tar.len() + size as usize, 0);
    replace_layer(&dir, &tar);
    let err = layout_error(import(&other, &dir, None, None));
    assert!(err.contains(&format!("is {size} bytes, more than the {MAX_ELF_BYTES} accepted")), "{err}");

    // A small tar followed by zeros past the cap: a gzip blob of some 70 KiB whose stream is cut
    // off at MAX_LAYER_BYTES.
    let work = tempfile::tempdir().unwrap();
    let (_, _, dir) = exported(work.path(), Format::Directory);
    let mut tar = tar_of(&[(ELF_PATH, tar::EntryType::Regular, b"\x7fELF")]);
    tar.resize((MAX_LAYER_BYTES + (1 << 20)) as usize, 0);
    replace_layer(&dir, &tar);
    let err = layout_error(import(&other, &dir, None, None));
    assert!(err.contains(&format!("decompresses to more than {MAX_LAYER_BYTES} bytes")), "{err}");
    assert_nothing_registered(&other);
}

#[test]
fn path_traversal_links_and_devices_in_a_layout_archive_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let (_, _, dir) = exported(work.path(), Format::Directory);
    let other = Store::at(work.path().join("other"));
    let files: Vec<(String, Vec<u8>)> = ["oci-layout", "index.json"]
        .iter()
        .map(|n| (n.to_string(), fs::read(dir.join(n)).unwrap()))
        .chain(fs::read_dir(dir.join("blobs/sha256")).unwrap().map(|e| {
            let e = e.unwrap();
            (format!("blobs/sha256/{}", e.file_name().into_string().unwrap()), fs::read(e.path()).unwrap())
        }))
        .collect();
    let archive = |extra: (&str, tar::EntryType, &[u8])| {
        let mut entries: Vec<(&str, tar::EntryType, &[u8])> =
            files.iter().map(|(n, b)| (n.as_str(), tar::EntryType::Regular, b.as_slice())).collect();
        entries.insert(1, extra);
        let path = work.path().join("hostile.tar");
        fs::write(&path, tar_of(&entries)).unwrap();
        path
    };
    // The same archive without a hostile entry imports (so the refusals below are theirs).
    let fine = archive(("./blobs/", tar::EntryType::Directory, b""));
    import(&Store::at(work.path().join("fine")), &fine, None, None).unwrap();

    let cases: [(&str, tar::EntryType, &[u8], &str); 6] = [
        ("../escaped", tar::EntryType::Regular, b"x", "has a `..` component"),
        ("blobs/../../escaped", tar::EntryType::Regular, b"x", "has a `..` component"),
        ("/tmp/escaped", tar::EntryType::Regular, b"x", "is an absolute path"),
        ("blobs/sha256/link", tar::EntryType::Symlink, b"", "is a symbolic link"),
        ("blobs/sha256/hard", tar::EntryType::Link, b"", "is a hard link"),
        ("dev", tar::EntryType::Char, b"", "is a device"),
    ];
    for (name, kind, data, why) in cases {
        let err = layout_error(import(&other, &archive((name, kind, data)), None, None));
        assert!(
            err.contains(&format!("archive entry {name:?} {}", "")) && err.contains(why),
            "{name}: {err}"
        );
    }
    assert!(!work.path().join("escaped").exists());
    assert!(!Path::new("/tmp/escaped").exists());
    assert_nothing_registered(&other);

    // In the layer too.
    for (name, kind, why) in [
        ("../spacecore.elf", tar::EntryType::Regular, "has a `..` component"),
        ("/spacecore.elf", tar::EntryType::Regular, "is an absolute path"),
        (ELF_PATH, tar::EntryType::Symlink, "is a symbolic link"),
        ("bin/sh", tar::EntryType::Regular, "is unexpected"),
    ] {
        let work = tempfile::tempdir().unwrap();
        let (_, _, dir) = exported(work.path(), Format::Directory);
        replace_layer(
            &dir,
            &tar_of(&[(name, kind, if kind == tar::EntryType::Regular { b"x" } else { b"" })]),
        );
        let err = layout_error(import(&other, &dir, None, None));
        assert!(err.contains(&format!("the layer's entry {name:?} {why}")), "{name}: {err}");
    }
}

#[test]
fn missing_references_and_blobs_are_named() {
    let work = tempfile::tempdir().unwrap();
    let (store, _, dir) = exported(work.path(), Format::Directory);
    let other = Store::at(work.path().join("other"));

    let err = export(
        &store,
        &ImageRef::parse("spacecore:nope").unwrap(),
        &work.path().join("x"),
        Format::Directory,
    )
    .unwrap_err();
    assert!(matches!(err, OciError::Store(StoreError::NotFound { .. })), "{err:?}");
    assert!(!work.path().join("x").exists());

    let err = layout_error(import(&other, &dir, Some("v9"), None));
    assert!(err.contains("index.json has no image named \"v9\" (it has: v1.2)"), "{err}");

    // Without the recorded reference, a reference must be given.
    edit_manifest(&dir, |m| {
        m["annotations"].as_object_mut().unwrap().remove(ANNOTATION_REFERENCE);
    });
    let err = layout_error(import(&other, &dir, None, None));
    assert!(err.contains("records no reference"), "{err}");
    let given = ImageRef::parse("spacecore:given").unwrap();
    import(&other, &dir, None, Some(&given)).unwrap();
    other.verify("spacecore", "given").unwrap();

    // A blob that is gone.
    let image = read_json(&blob(&dir, &manifest_digest(&dir)));
    fs::remove_file(blob(&dir, image["layers"][0]["digest"].as_str().unwrap())).unwrap();
    let err = layout_error(import(&other, &dir, None, Some(&given)));
    assert!(err.contains("the layer blob blobs/sha256/") && err.contains("is missing"), "{err}");

    let err = import(&other, &work.path().join("nothing-here"), None, None).unwrap_err();
    assert!(matches!(err, OciError::Store(StoreError::Io { .. })), "{err:?}");
}

#[test]
fn layouts_of_other_kinds_are_refused_by_name() {
    let work = tempfile::tempdir().unwrap();
    let other = Store::at(work.path().join("other"));
    let fresh = |name: &str| {
        let dir = work.path().join(name);
        fs::create_dir(&dir).unwrap();
        let (_, _, layout) = exported(&dir, Format::Directory);
        layout
    };

    let dir = fresh("version");
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
    let err = layout_error(import(&other, &dir, None, None));
    assert!(err.contains("oci-layout: imageLayoutVersion is \"2.0.0\""), "{err}");

    let dir = fresh("nested");
    let mut index = read_json(&dir.join("index.json"));
    index["manifests"][0]["mediaType"] = json!("application/vnd.oci.image.index.v1+json");
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let err = layout_error(import(&other, &dir, None, None));
    assert!(err.contains("is application/vnd.oci.image.index.v1+json, not application/vnd.oci.image.manifest.v1+json (a nested index)"), "{err}");

    let dir = fresh("arm");
    edit_config(&dir, |c| c["architecture"] = json!("arm64"));
    let err = layout_error(import(&other, &dir, None, None));
    assert!(err.contains("the config's architecture is arm64, not amd64"), "{err}");

    let dir = fresh("os-none");
    edit_config(&dir, |c| c["os"] = json!("none"));
    import(&other, &dir, None, None).unwrap();
    other.verify("registry/path/avs-spacecore", "v1.2").unwrap();

    let dir = fresh("two-layers");
    edit_manifest(&dir, |m| {
        let layer = m["layers"][0].clone();
        m["layers"].as_array_mut().unwrap().push(layer);
    });
    let err = layout_error(import(&other, &dir, None, None));
    assert!(err.contains("the image has 2 layers; expected one"), "{err}");

    let dir = fresh("symlinked-blob");
    let image = read_json(&blob(&dir, &manifest_digest(&dir)));
    let config = blob(&dir, image["config"]["digest"].as_str().unwrap());
    let moved = work.path().join("config-elsewhere");
    fs::rename(&config, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &config).unwrap();
    let err = layout_error(import(&other, &dir, None, None));
    assert!(err.contains("is not a regular file"), "{err}");
}

#[test]
fn oversize_and_overfull_archives_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let other = Store::at(work.path().join("other"));
    // Sparse: refused from its size, before a byte is read.
    let big = work.path().join("big.tar");
    fs::File::create(&big).unwrap().set_len(MAX_ARCHIVE_BYTES + 1).unwrap();
    let err = layout_error(import(&other, &big, None, None));
    assert!(err.contains(&format!("the archive is {} bytes, more than", MAX_ARCHIVE_BYTES + 1)), "{err}");

    let names: Vec<String> = (0..=MAX_ARCHIVE_ENTRIES).map(|i| format!("junk/{i}")).collect();
    let entries: Vec<(&str, tar::EntryType, &[u8])> =
        names.iter().map(|n| (n.as_str(), tar::EntryType::Regular, &b""[..])).collect();
    let full = work.path().join("full.tar");
    fs::write(&full, tar_of(&entries)).unwrap();
    let err = layout_error(import(&other, &full, None, None));
    assert!(err.contains(&format!("the archive has more than {MAX_ARCHIVE_ENTRIES} entries")), "{err}");

    // Not a tar at all.
    let text = work.path().join("notes.txt");
    fs::write(&text, "not an archive\n".repeat(100)).unwrap();
    let err = layout_error(import(&other, &text, None, None));
    assert!(err.contains("notes.txt: not a readable tar archive"), "{err}");
}
