//! `spacecore history export | import | new` and the history `keys import` starts: the signing
//! history on a disk image, in the format the node writes (`avs_protocol::history`).

mod common;

use avs_protocol::bn254;
use avs_protocol::history::History;
use common::*;
use spacecore_store::{RecordKey, SECTOR, SLOT_SECTORS};
use std::os::unix::fs::FileExt;
use std::path::Path;

const BN254_SECRET: &str = "0x1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809";
const OTHER_SECRET: &str = "0x0b1c2d3e4f5061728394a5b6c7d8e9f00b1c2d3e4f5061728394a5b6c7d8e9f0";

fn history_of(disk: &Path) -> Option<History> {
    store(disk).get(RecordKey::SigningHistory).unwrap().map(|bytes| History::decode(&bytes).unwrap())
}

/// Signs as the node does: the history with `entries` recorded, written to the disk.
fn sign(disk: &Path, entries: &[(u32, u8)]) {
    let mut history = history_of(disk).unwrap_or_default();
    for &(index, byte) in entries {
        history.record(index, [byte; 32]).unwrap();
    }
    store(disk).put(RecordKey::SigningHistory, &history.encode()).unwrap();
}

/// Zeroes both slots of the history record, as a wiped disk would have them.
fn wipe_history(disk: &Path) {
    let file = std::fs::OpenOptions::new().write(true).open(disk).unwrap();
    let start = RecordKey::SigningHistory.first_sector() * SECTOR as u64;
    file.write_all_at(&vec![0u8; 2 * SLOT_SECTORS as usize * SECTOR], start).unwrap();
    assert_eq!(history_of(disk), None, "the history is gone");
}

fn import_key(dir: &Path, disk: &Path, secret: &str, name: &str) -> Run {
    let file = cheap_bn254_file(dir, name, secret, "pw");
    keys_import(&file, disk, &[])
}

fn disk_arg(disk: &Path) -> &str {
    disk.to_str().unwrap()
}

#[test]
fn the_first_key_starts_a_history_and_a_wiped_one_must_be_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let disk = disk(dir.path());
    assert_eq!(import_key(dir.path(), &disk, BN254_SECRET, "k.json").code, Some(0));
    assert_eq!(history_of(&disk), Some(History::new()), "the first key starts an empty history");
    sign(&disk, &[(1, 0x11), (2, 0x22), (7, 0x77)]);

    // Re-importing the same key keeps the history.
    assert_eq!(import_key(dir.path(), &disk, BN254_SECRET, "k.json").code, Some(0));
    assert_eq!(history_of(&disk).unwrap().len(), 3);

    // Export: the key and every signed task.
    let exported = spacecore(&["history", "export", "--disk", disk_arg(&disk)]).json();
    let g1 = bn254::SecretKey::from_bytes(&secret32(BN254_SECRET)).unwrap().public_key().g1().to_bytes();
    assert_eq!(exported["format"], "spacecore-signing-history");
    assert_eq!(exported["scheme"], "bn254");
    assert_eq!(exported["public_key"], avs_protocol::encoding::to_hex(&g1));
    assert_eq!(exported["floor"], 0);
    assert_eq!(exported["signed_tasks"][2]["task_index"], 7);
    assert_eq!(exported["signed_tasks"][2]["digest"], avs_protocol::encoding::to_hex(&[0x77; 32]));
    let file = dir.path().join("history.json");
    std::fs::write(&file, exported.to_string()).unwrap();

    // Wiped: a key without a history. Importing a key again does not silently start one.
    wipe_history(&disk);
    let run = import_key(dir.path(), &disk, BN254_SECRET, "k.json");
    assert!(run.stderr.contains("no signing history"), "{run:?}");
    assert_eq!(history_of(&disk), None);
    spacecore(&["history", "export", "--disk", disk_arg(&disk)]).fails_with("no signing history");

    // The export gives it back.
    let run = spacecore(&["history", "import", "--disk", disk_arg(&disk), file.to_str().unwrap()]);
    assert!(run.line().contains("3 tasks, floor 0 (the disk had none)"), "{run:?}");
    let restored = history_of(&disk).unwrap();
    assert_eq!(restored.digest(7), Some([0x77; 32]));
    assert_eq!(restored.entries().len(), 3);

    // `history new` only where there is none.
    spacecore(&["history", "new", "--disk", disk_arg(&disk)]).fails_with("already has a signing history");
    wipe_history(&disk);
    assert!(spacecore(&["history", "new", "--disk", disk_arg(&disk)]).line().contains("started an empty"));
    assert_eq!(history_of(&disk), Some(History::new()));
}

#[test]
fn an_import_merges_and_refuses_conflicts_and_other_keys() {
    let dir = tempfile::tempdir().unwrap();
    let disk = disk(dir.path());
    assert_eq!(import_key(dir.path(), &disk, BN254_SECRET, "k.json").code, Some(0));
    sign(&disk, &[(3, 0x33), (5, 0x55)]);
    let exported = spacecore(&["history", "export", "--disk", disk_arg(&disk)]).json();

    // Another node of the same key signed 5 the same way and 9: merged.
    let mut other = exported.clone();
    other["signed_tasks"] = serde_json::json!([
        {"task_index": 5, "digest": avs_protocol::encoding::to_hex(&[0x55; 32])},
        {"task_index": 9, "digest": avs_protocol::encoding::to_hex(&[0x99; 32])},
    ]);
    other["floor"] = serde_json::json!(4);
    let file = dir.path().join("other.json");
    std::fs::write(&file, other.to_string()).unwrap();
    let run = spacecore(&["history", "import", "--disk", disk_arg(&disk), file.to_str().unwrap()]);
    assert!(run.line().contains("2 tasks, floor 4 (merged with the disk's)"), "{run:?}");
    let merged = history_of(&disk).unwrap();
    assert_eq!(merged.entries(), &[(5, [0x55; 32]), (9, [0x99; 32])]);

    // A different digest for task 9: refused, nothing changed.
    other["signed_tasks"][1]["digest"] = serde_json::json!(avs_protocol::encoding::to_hex(&[0x98; 32]));
    std::fs::write(&file, other.to_string()).unwrap();
    spacecore(&["history", "import", "--disk", disk_arg(&disk), file.to_str().unwrap()])
        .fails_with("task 9: the disk and the file record different signed digests");
    assert_eq!(history_of(&disk).unwrap(), merged);

    // A history of another key: refused.
    let dir2 = tempfile::tempdir().unwrap();
    let disk2 = common::disk(dir2.path());
    assert_eq!(import_key(dir2.path(), &disk2, OTHER_SECRET, "o.json").code, Some(0));
    std::fs::write(&file, exported.to_string()).unwrap();
    spacecore(&["history", "import", "--disk", disk_arg(&disk2), file.to_str().unwrap()])
        .fails_with("but the disk holds the bn254 key");

    // Malformed files name the member.
    for (patch, needle) in [
        (serde_json::json!({"format": "eip-3076"}), "format"),
        (serde_json::json!({"floor": -1}), "floor"),
        (
            serde_json::json!({"signed_tasks": [{"task_index": 2, "digest": "0x12"}]}),
            "signed_tasks[0].digest",
        ),
        (
            serde_json::json!({"floor": 3, "signed_tasks": [{"task_index": 2, "digest": avs_protocol::encoding::to_hex(&[1; 32])}]}),
            "BelowFloor",
        ),
    ] {
        let mut bad = exported.clone();
        for (k, v) in patch.as_object().unwrap() {
            bad[k] = v.clone();
        }
        std::fs::write(&file, bad.to_string()).unwrap();
        spacecore(&["history", "import", "--disk", disk_arg(&disk), file.to_str().unwrap()])
            .fails_with(needle);
    }
    assert_eq!(history_of(&disk).unwrap(), merged, "no malformed file changed anything");
}
