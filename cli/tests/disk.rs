//! `spacecore keys import` and `show`: the keystore record on a disk image.

mod common;

use common::*;
use spacecore_store::RecordKey;
use std::fs::{File, OpenOptions};
use std::path::Path;

fn show(disk: &Path) -> Run {
    spacecore(&["keys", "show", "--disk", disk.to_str().unwrap()])
}

#[test]
fn an_imported_keystore_is_shown_and_leaves_other_records_alone() {
    let dir = tempfile::tempdir().unwrap();
    let disk = disk(dir.path());
    assert_eq!(store(&disk).increment(RecordKey::BootCount), Ok(1));
    show(&disk).fails_with("no keystore stored");

    let keystore = cheap_keystore(dir.path(), "k0.json", KEYS[0].0, "pw0");
    let password = password_file(dir.path(), "pw0", "pw0");
    let run = keys_import(&keystore, &disk, &["--password-file", password.to_str().unwrap()]);
    assert!(run.line().starts_with(&format!("imported bls12-381 keystore {} (uuid ", KEYS[0].1)), "{run:?}");
    assert_eq!(show(&disk).lines(), ["scheme: bls12-381".to_owned(), format!("pubkey: {}", KEYS[0].1)]);

    let mut store = store(&disk);
    let text = std::fs::read_to_string(&keystore).unwrap();
    assert_eq!(store.get(RecordKey::Keystore).unwrap(), Some(text.trim().as_bytes().to_vec()));
    assert_eq!(store.increment(RecordKey::BootCount), Ok(2), "the boot count is kept");
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), 1 << 20, "the disk keeps its size");

    // Importing another keystore replaces the first.
    let other = cheap_keystore(dir.path(), "k1.json", KEYS[1].0, "pw1");
    assert_eq!(keys_import(&other, &disk, &[]).code, Some(0));
    assert_eq!(show(&disk).lines()[1], format!("pubkey: {}", KEYS[1].1));
}

#[test]
fn import_is_refused_while_another_process_holds_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let disk = disk(dir.path());
    let keystore = cheap_keystore(dir.path(), "k.json", KEYS[0].0, "pw");
    // Locked the way hac-launch locks its disk: an exclusive flock.
    let held = OpenOptions::new().read(true).write(true).open(&disk).unwrap();
    held.try_lock().unwrap();
    keys_import(&keystore, &disk, &[]).fails_with("locked by another process");
    show(&disk).fails_with("locked by another process");
    drop(held);
    assert_eq!(show(&disk).code, Some(2), "nothing was written");
    assert_eq!(keys_import(&keystore, &disk, &[]).code, Some(0));
    assert_eq!(show(&disk).lines()[1], format!("pubkey: {}", KEYS[0].1));
}

#[test]
fn bad_disks_and_keystores_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let keystore = cheap_keystore(dir.path(), "k.json", KEYS[0].0, "pw");
    keys_import(&keystore, &dir.path().join("absent.img"), &[]).fails_with("no such disk image");
    assert!(!dir.path().join("absent.img").exists(), "never created");
    let small = dir.path().join("small.img");
    File::create(&small).unwrap().set_len(24 * 512).unwrap();
    let needed = format!("the store needs at least {}", spacecore_store::NEEDED_SECTORS);
    keys_import(&keystore, &small, &[]).fails_with(&needed);

    let disk = disk(dir.path());
    let wrong = password_file(dir.path(), "wrong", "not pw");
    keys_import(&keystore, &disk, &["--password-file", wrong.to_str().unwrap()]).fails_with("wrong password");
    let json = std::fs::read_to_string(&keystore).unwrap();
    let bad = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    keys_import(&bad("notjson", "{"), &disk, &[]).fails_with("malformed keystore");
    let no_pubkey = json.replace(&KEYS[0].1[2..], "");
    keys_import(&bad("nopk", &no_pubkey), &disk, &[]).fails_with("it has no pubkey field");
    let off_curve = json.replace(&KEYS[0].1[2..], &format!("c0{}", "00".repeat(47)));
    keys_import(&bad("inf", &off_curve), &disk, &[]).fails_with("not a valid BLS12-381 public key");
    let huge = json.replacen('{', &format!("{{\"note\": \"{}\",", "x".repeat(5000)), 1);
    keys_import(&bad("huge", &huge), &disk, &[]).fails_with("a disk record holds at most 4072");
    assert_eq!(store(&disk).get(RecordKey::Keystore), Ok(None));
}
