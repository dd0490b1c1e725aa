//! The operator's keystore passwords: read once at start from `spec.avs.keystore_password_file`
//! (the BLS key file's) and `spec.avs.ecdsa_keystore_password_file` (the ECDSA keystore's),
//! held in memory that is wiped when dropped, and handed to the guest by the
//! `KeystorePassword` and `EcdsaKeystorePassword` hypercalls (see `vmm::hypercall`). They are
//! never printed, nor are their lengths.
//!
//! The file is read by [`eip2335::password_file`], the rules the operator's CLI reads its
//! password files by too, so a key the CLI encrypted with a password file opens with the same
//! file here.

use eip2335::password_file::{PasswordFile, Problem};
use spacecore_abi::hypercall::MAX_KEYSTORE_PASSWORD;
use std::path::Path;
use zeroize::Zeroizing;

pub use eip2335::password_file::PasswordFileError as PasswordError;

// Every password a file may hold can be handed to the guest.
const _: () = assert!(eip2335::password_file::MAX_PASSWORD_LEN == MAX_KEYSTORE_PASSWORD);

/// The operator keystore's password: 1 to [`MAX_KEYSTORE_PASSWORD`] bytes of UTF-8, without the
/// file's trailing newline. Wiped when dropped; `Debug` does not show it.
#[derive(Debug)]
pub struct KeystorePassword(PasswordFile);

impl KeystorePassword {
    /// The spec key of the BLS key file's password.
    pub const KEY: &'static str = "spec.avs.keystore_password_file";
    /// The spec key of the ECDSA keystore's password.
    pub const ECDSA_KEY: &'static str = "spec.avs.ecdsa_keystore_password_file";

    /// Reads the password from `path` (named by `spec.avs.keystore_password_file`).
    pub fn read(path: &Path) -> Result<Self, PasswordError> {
        Self::read_as(Self::KEY, path)
    }

    /// Reads the password from `path`, the file the spec key `key` names (see
    /// [`eip2335::password_file`]). Errors name `key` and the file.
    pub fn read_as(key: &'static str, path: &Path) -> Result<Self, PasswordError> {
        PasswordFile::read(key, path).map(KeystorePassword)
    }

    /// The password from the bytes of a password file.
    pub fn from_file_bytes(bytes: Zeroizing<Vec<u8>>, shared: bool) -> Result<Self, Problem> {
        PasswordFile::from_file_bytes(bytes, shared).map(KeystorePassword)
    }

    /// The password's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Whether the file's group or other users may read it (worth a warning).
    pub fn readable_by_others(&self) -> bool {
        self.0.readable_by_others()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn each_password_file_is_named_by_its_own_spec_key() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let text = KeystorePassword::read(file.path()).unwrap_err().to_string();
        assert!(text.starts_with("spec.avs.keystore_password_file: "), "{text}");
        assert!(text.contains(&file.path().display().to_string()), "{text}");
        let text =
            KeystorePassword::read_as(KeystorePassword::ECDSA_KEY, file.path()).unwrap_err().to_string();
        assert!(text.starts_with("spec.avs.ecdsa_keystore_password_file: "), "{text}");
        file.write_all(b"ecdsa secret\n").unwrap();
        let password = KeystorePassword::read_as(KeystorePassword::ECDSA_KEY, file.path()).unwrap();
        assert_eq!(password.as_bytes(), b"ecdsa secret");
        assert!(!format!("{password:?}").contains("ecdsa secret"));
    }
}
