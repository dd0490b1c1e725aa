//! The signing history a node reads from its disk (`avs_protocol::history`), on arbitrary
//! bytes: decoding never panics; whatever decodes encodes back to the same bytes; and two
//! histories (the input split in two) merge as an import does: into a history that refuses
//! everything either refuses, or into the index where they signed different digests.

use avs_protocol::history::{Check, History};

/// Whatever `h` refuses to sign anew, `merged` refuses too.
fn refuses_what(merged: &History, h: &History) {
    for (index, digest) in h.entries() {
        let mut other = *digest;
        other[0] ^= 1;
        assert_ne!(merged.check(*index, &other), Check::New, "task {index}: another digest");
        assert!(matches!(merged.check(*index, digest), Check::Repeat | Check::TooOld), "task {index}");
    }
    if h.floor() > 0 {
        assert_eq!(merged.check(h.floor() - 1, &[0; 32]), Check::TooOld, "below the floor");
    }
}

/// Runs the target's checks on one input; a failed check panics.
pub fn run(data: &[u8]) {
    if let Ok(history) = History::decode(data) {
        assert_eq!(history.encode(), data, "decode then encode");
        assert_eq!(history.merge(&history).as_ref(), Ok(&history), "merging with itself");
    }
    let (a, b) = data.split_at(data.len() / 2);
    let (Ok(a), Ok(b)) = (History::decode(a), History::decode(b)) else { return };
    match a.merge(&b) {
        Ok(merged) => {
            refuses_what(&merged, &a);
            refuses_what(&merged, &b);
            assert_eq!(History::decode(&merged.encode()).as_ref(), Ok(&merged));
            assert_eq!(b.merge(&a).as_ref(), Ok(&merged), "merging is symmetric");
        }
        Err(index) => {
            assert!(
                a.digest(index).is_some() && b.digest(index).is_some() && a.digest(index) != b.digest(index)
            );
        }
    }
}
