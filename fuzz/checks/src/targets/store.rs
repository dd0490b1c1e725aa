//! `spacecore_store::Store` over a disk whose bytes are the input's (format: [`crate::disk`]):
//! opening and reading never panic; a value read is at most `MAX_VALUE` bytes and reads the
//! same twice; and a value written to any key reads back, from a store opened again on the
//! same disk, while the other keys keep theirs.

use crate::disk::MemDisk;
use spacecore_store::{MAX_VALUE, NEEDED_SECTORS, RecordKey, Store, StoreError};

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    let disk = MemDisk::parse(data);
    let sectors = disk.bytes.len() as u64 / 512;
    let mut store = match Store::open(disk) {
        Ok(store) => store,
        Err(e) => {
            assert_eq!(e, StoreError::DeviceTooSmall { needed: NEEDED_SECTORS, sectors });
            return;
        }
    };
    let mut values = Vec::new();
    for key in RecordKey::ALL {
        let value = store.get(key).expect("an in-memory disk does not fail");
        if let Some(v) = &value {
            assert!(v.len() <= MAX_VALUE, "{key:?}: a value of {} bytes", v.len());
        }
        assert_eq!(store.get(key).expect("reading again"), value, "{key:?} reads the same twice");
        values.push(value);
    }
    for (i, key) in RecordKey::ALL.into_iter().enumerate() {
        let new = format!("new value of {key:?}").into_bytes();
        match store.put(key, &new) {
            // Only a crafted record numbered u64::MAX refuses new versions; it keeps its value.
            Err(StoreError::Exhausted) => {}
            result => {
                result.expect("an in-memory disk does not fail");
                values[i] = Some(new);
            }
        }
        let mut again = Store::open(store.into_device()).expect("the disk is large enough");
        for (key, value) in RecordKey::ALL.into_iter().zip(&values) {
            assert_eq!(
                &again.get(key).expect("reading"),
                value,
                "{key:?} after writing {:?}",
                RecordKey::ALL[i]
            );
        }
        store = again;
    }
}
