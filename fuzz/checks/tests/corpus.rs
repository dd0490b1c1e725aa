//! Every committed seed of `fuzz/corpus/TARGET/` through its target's checks, on stable: the
//! inputs libFuzzer starts from (and the minimised crashes kept there) are checked on every
//! `cargo xtask test`, not only when someone fuzzes. One test per target; a failing input is
//! named by its file.

use std::path::{Path, PathBuf};

use spacecore_fuzz::targets;

/// `fuzz/`.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("checks/ is inside fuzz/").to_path_buf()
}

/// `fuzz/corpus/NAME/`.
fn corpus(name: &str) -> PathBuf {
    fuzz_dir().join("corpus").join(name)
}

/// Runs every file of `dir` through `run`: how many there are, or the files whose checks failed.
fn replay_dir(dir: &Path, run: targets::Body) -> Result<usize, Vec<String>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    let failed: Vec<String> = files
        .iter()
        .filter(|file| {
            let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            std::panic::catch_unwind(|| run(&data)).is_err()
        })
        .map(|file| file.display().to_string())
        .collect();
    if failed.is_empty() { Ok(files.len()) } else { Err(failed) }
}

/// Replays `corpus/NAME/` through the target `NAME`; panics naming the files whose checks
/// failed. A target without seeds fails too: it would replay nothing.
fn replay(name: &str) {
    let (_, run) = targets::ALL.iter().find(|(n, _)| *n == name).expect("a target of targets::ALL");
    match replay_dir(&corpus(name), *run) {
        Ok(0) => panic!("{} holds no seeds", corpus(name).display()),
        Ok(n) => eprintln!("{name}: {n} seeds pass"),
        Err(failed) => panic!("{name}: these seeds fail its checks: {failed:#?}"),
    }
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        /// The targets replayed above, in order.
        const REPLAYED: &[&str] = &[$(stringify!($name)),*];
    };
}

replay_tests!(
    spec,
    block_request,
    net_tx,
    mmio,
    store,
    avs_json,
    keystore,
    bls,
    bn254,
    web3_keyfile,
    history,
    intake,
    hypercall,
    net_rx,
    http_request
);

/// The `name`s of the `[[bin]]` tables of `fuzz/Cargo.toml`: the fuzz targets.
fn manifest_targets() -> Vec<String> {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(value) = line.strip_prefix("name = ") {
            names.push(value.trim_matches('"').to_owned());
        }
    }
    names
}

#[test]
fn every_fuzz_target_has_a_body_here_and_is_replayed() {
    let mut manifest = manifest_targets();
    let mut bodies: Vec<String> = targets::ALL.iter().map(|(n, _)| (*n).to_owned()).collect();
    let mut replayed: Vec<String> = REPLAYED.iter().map(|n| (*n).to_owned()).collect();
    manifest.sort();
    bodies.sort();
    replayed.sort();
    assert!(!manifest.is_empty(), "no [[bin]] in fuzz/Cargo.toml");
    assert_eq!(bodies, manifest, "targets::ALL and the fuzz targets of fuzz/Cargo.toml");
    assert_eq!(replayed, manifest, "the targets replayed here and those of fuzz/Cargo.toml");
}

#[test]
fn a_seed_whose_checks_fail_is_named() {
    // The replay must be able to fail: a body that panics fails every seed, each by its file.
    let every = replay_dir(&corpus("spec"), |_| panic!("a failed check")).unwrap_err();
    assert_eq!(every.len(), replay_dir(&corpus("spec"), |_| {}).unwrap(), "{every:?}");
    assert!(every.iter().all(|f| f.contains("/fuzz/corpus/spec/")), "{every:?}");
}
