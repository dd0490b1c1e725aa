//! `spacecore image export | import`: OCI image layouts through the binary, and an OCI tool of
//! someone else's, Debian's `umoci`, reading what export writes (and export's import reading what
//! umoci rewrites).

mod common;

use common::Run;
use image_store::testing::manifest_for;
use image_store::{Manifest, STORE_ENV, Store, sha256_file};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the test finds umoci; `cargo xtask test` sets it.
const UMOCI_ENV: &str = "SPACECORE_UMOCI";

/// `spacecore ARGS` with the image store at `store`.
fn spacecore_with(store: &Path, args: &[&str]) -> Run {
    let out =
        Command::new(env!("CARGO_BIN_EXE_spacecore")).env(STORE_ENV, store).args(args).output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A store under `dir` holding `registry/path/avs-spacecore:v1` (a pretend ELF of 200 kB).
fn store_with_image(dir: &Path) -> (PathBuf, Manifest) {
    let root = dir.join("store");
    let elf = dir.join("k.elf");
    let mut bytes = b"\x7fELF\x02\x01\x01".to_vec();
    bytes.extend((0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    fs::write(&elf, &bytes).unwrap();
    let manifest = manifest_for(&elf);
    Store::at(&root).register("registry/path/avs-spacecore", "v1", &elf, &manifest).unwrap();
    (root, manifest)
}

fn stored_elf(store: &Path, repository: &str, tag: &str) -> (Vec<u8>, Manifest) {
    let image = Store::at(store).verify(repository, tag).unwrap();
    (fs::read(&image.path).unwrap(), image.manifest)
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn export_and_import_round_trip_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (store, manifest) = store_with_image(dir.path());
    let (original, _) = stored_elf(&store, "registry/path/avs-spacecore", "v1");
    let layout = dir.path().join("layout");
    let archive = dir.path().join("image.tar");

    let run = spacecore_with(&store, &["image", "export", "registry/path/avs-spacecore:v1", arg(&layout)]);
    let lines = run.lines();
    assert_eq!(lines[0], format!("wrote OCI image layout {}", layout.display()));
    assert!(
        lines.contains(&format!(
            "copy it with: skopeo copy oci:{}:v1 docker://REGISTRY/registry/path/avs-spacecore:v1",
            layout.display()
        )),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("exporting registry/path/avs-spacecore:v1 from the image store at"),
        "{run:?}"
    );
    let exported = spacecore_with(
        &store,
        &["image", "export", "registry/path/avs-spacecore:v1", arg(&archive), "--tar", "--json"],
    )
    .json();
    assert_eq!(exported["format"], "tar");
    assert_eq!(exported["ref_name"], "v1");
    assert_eq!(exported["elf_sha256"], manifest.sha256.as_str());
    assert!(layout.join("oci-layout").is_file() && archive.is_file());

    // Into another store, under the recorded reference and under a given one.
    let other = dir.path().join("other");
    let run = spacecore_with(&other, &["image", "import", arg(&layout)]);
    let lines = run.lines();
    assert!(lines[0].starts_with("verified image manifest sha256:"), "{run:?}");
    assert!(
        lines[2].starts_with(&format!("verified layer {}", exported["layer_digest"].as_str().unwrap())),
        "{run:?}"
    );
    assert_eq!(
        lines.last().unwrap(),
        &format!("pin it in a spec as: registry/path/avs-spacecore:v1@sha256:{}", manifest.sha256)
    );
    let (elf, imported) = stored_elf(&other, "registry/path/avs-spacecore", "v1");
    assert_eq!((elf, imported), (original.clone(), manifest.clone()));

    let imported = spacecore_with(
        &other,
        &["image", "import", arg(&archive), "--tag", "mirror/spacecore:pinned", "--json"],
    )
    .json();
    assert_eq!(imported["reference"], "mirror/spacecore:pinned");
    assert_eq!(imported["manifest_digest"], exported["manifest_digest"]);
    assert_eq!(imported["verified"].as_array().unwrap().len(), 3);
    let (elf, pinned) = stored_elf(&other, "mirror/spacecore", "pinned");
    assert_eq!(elf, original);
    assert_eq!(pinned.sha256, manifest.sha256, "a spec pinned @sha256 still matches");

    // Errors: exit status 2, the reason on stderr, nothing registered.
    spacecore_with(&store, &["image", "export", "registry/path/avs-spacecore:v1", arg(&layout)])
        .fails_with("exists and is not empty");
    spacecore_with(&store, &["image", "export", "spacecore:nope", arg(&dir.path().join("x"))])
        .fails_with("image spacecore:nope is not in the image store");
    spacecore_with(&other, &["image", "import", arg(&layout), "--tag", "../x"])
        .fails_with("invalid image repository");
    let layer = layout
        .join("blobs/sha256")
        .join(exported["layer_digest"].as_str().unwrap().trim_start_matches("sha256:"));
    let mut bytes = fs::read(&layer).unwrap();
    let last = bytes.len() - 9;
    bytes[last] ^= 0xff;
    fs::write(&layer, bytes).unwrap();
    let third = dir.path().join("third");
    spacecore_with(&third, &["image", "import", arg(&layout)])
        .fails_with("altered or damaged; nothing was imported");
    assert!(Store::at(&third).resolve("registry/path/avs-spacecore", "v1").is_err());
}

/// umoci: `$SPACECORE_UMOCI`, else `umoci` on `PATH`; the test fails without one.
fn umoci() -> PathBuf {
    if let Some(path) = std::env::var_os(UMOCI_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if Command::new("umoci").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return PathBuf::from("umoci");
    }
    panic!(
        "this test needs umoci: run it through `cargo xtask test`, which provides Debian's umoci \
         (0.4.7+ds-3+b7) and sets {UMOCI_ENV}, or set {UMOCI_ENV}=/path/to/umoci"
    );
}

fn run_umoci(args: &[&str]) -> String {
    let umoci = umoci();
    let out = Command::new(&umoci)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", umoci.display()));
    assert!(
        out.status.success(),
        "umoci {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn umoci_reads_an_exported_layout_and_import_reads_what_umoci_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let (store, manifest) = store_with_image(dir.path());
    let (original, _) = stored_elf(&store, "registry/path/avs-spacecore", "v1");
    let layout = dir.path().join("layout");
    let exported = spacecore_with(
        &store,
        &["image", "export", "registry/path/avs-spacecore:v1", arg(&layout), "--json"],
    )
    .json();
    let image = format!("{}:v1", layout.display());

    // umoci stat: the layer and its history entry, as written.
    let stat: serde_json::Value =
        serde_json::from_str(&run_umoci(&["stat", "--json", "--image", &image])).unwrap();
    let history = stat["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{stat}");
    assert_eq!(history[0]["layer"]["digest"], exported["layer_digest"]);
    assert_eq!(history[0]["created_by"], "spacecore image export (spacecore.elf)");

    // umoci unpack: a bundle whose rootfs holds the ELF, byte for byte.
    let bundle = dir.path().join("bundle");
    run_umoci(&["unpack", "--rootless", "--image", &image, arg(&bundle)]);
    let unpacked = bundle.join("rootfs/spacecore.elf");
    assert_eq!(fs::read(&unpacked).unwrap(), original);
    assert_eq!(sha256_file(&unpacked).unwrap(), manifest.sha256);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&unpacked).unwrap().permissions().mode() & 0o777, 0o755);
    let entries: Vec<_> =
        fs::read_dir(bundle.join("rootfs")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, ["spacecore.elf"]);

    // umoci rewrites index.json (a second tag) and the manifest and config (a label): import
    // takes the image umoci wrote, with the same ELF.
    run_umoci(&["tag", "--image", &image, "v2"]);
    run_umoci(&[
        "config",
        "--image",
        &format!("{}:v2", layout.display()),
        "--config.label",
        "site=eu-1",
        "--tag",
        "v3",
    ]);
    let tags = run_umoci(&["ls", "--layout", arg(&layout)]);
    assert_eq!(tags.lines().collect::<Vec<_>>(), ["v1", "v2", "v3"]);
    let other = dir.path().join("other");
    spacecore_with(&other, &["image", "import", arg(&layout)])
        .fails_with("index.json lists 3 images (v1, v2, v3)");
    let imported = spacecore_with(
        &other,
        &["image", "import", arg(&layout), "--name", "v3", "--tag", "spacecore:eu-1", "--json"],
    )
    .json();
    assert_ne!(imported["manifest_digest"], exported["manifest_digest"], "umoci wrote a new manifest");
    assert_eq!(imported["ref_name"], "v3");
    let (elf, recorded) = stored_elf(&other, "spacecore", "eu-1");
    assert_eq!((elf, recorded), (original, manifest));
}
