//! EIP-2335 password processing: NFKD, then drop control codes, then UTF-8.

use alloc::vec::Vec;
use unicode_normalization::UnicodeNormalization;
use zeroize::{Zeroize, Zeroizing};

/// True for the code points EIP-2335 strips: C0 (U+0000..=U+001F), DEL (U+007F) and C1
/// (U+0080..=U+009F). Space (U+0020) is kept.
fn is_stripped(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// The bytes a password contributes to the KDF, per EIP-2335: the password in Unicode
/// normalisation form NFKD, with the C0 and C1 control codes and DEL removed, encoded as UTF-8.
///
/// The result is wiped on drop. The buffer is sized exactly before it is filled, so it is never
/// reallocated (which would leave an unwiped copy behind).
pub fn process_password(password: &str) -> Zeroizing<Vec<u8>> {
    let len: usize = password.nfkd().filter(|&c| !is_stripped(c)).map(char::len_utf8).sum();
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    let mut buf = [0u8; 4];
    for c in password.nfkd().filter(|&c| !is_stripped(c)) {
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    buf.zeroize();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processed(s: &str) -> Vec<u8> {
        process_password(s).to_vec()
    }

    #[test]
    fn control_codes_are_stripped() {
        assert_eq!(processed("\u{7}"), b"");
        assert_eq!(processed("\u{8}"), b"");
        assert_eq!(processed("\t"), b"");
        assert_eq!(processed("a\u{8}c"), b"ac");
        assert_eq!(processed("\u{0}p\u{1f}w\u{7f}d\n\r"), b"pwd");
        // C1 controls are stripped; the first code points after them are kept.
        assert_eq!(processed("x\u{80}\u{85}\u{9f}y"), b"xy");
        assert_eq!(processed("\u{a0}"), " ".as_bytes(), "NBSP is NFKD-mapped to a space");
        assert_eq!(processed("\u{a1}"), "\u{a1}".as_bytes());
    }

    #[test]
    fn space_is_kept() {
        assert_eq!(processed(" a b "), b" a b ");
    }

    #[test]
    fn ascii_is_unchanged() {
        assert_eq!(processed("abc"), b"abc");
        assert_eq!(processed(""), b"");
    }

    #[test]
    fn nfkd_is_applied() {
        // Compatibility ligature -> letters; precomposed e-acute -> e + combining acute.
        assert_eq!(processed("\u{fb01}"), b"fi");
        assert_eq!(processed("\u{e9}"), "e\u{301}".as_bytes());
    }

    #[test]
    fn eip2335_vector_password() {
        // The EIP-2335 test vectors give the encoded form of their password as
        // 0x7465737470617373776f7264f09f9491 ("testpassword" followed by U+1F511).
        let pw = "\u{1d531}\u{1d522}\u{1d530}\u{1d531}\u{1d52d}\u{1d51e}\u{1d530}\u{1d530}\u{1d534}\
                  \u{1d52c}\u{1d52f}\u{1d521}\u{1f511}";
        assert_eq!(pw, "𝔱𝔢𝔰𝔱𝔭𝔞𝔰𝔰𝔴𝔬𝔯𝔡🔑");
        assert_eq!(hex::encode(processed(pw)), "7465737470617373776f7264f09f9491");
    }

    #[test]
    fn capacity_is_exact() {
        let out = process_password("\u{fdfa}x\u{1}");
        assert_eq!(out.len(), out.capacity());
    }
}
