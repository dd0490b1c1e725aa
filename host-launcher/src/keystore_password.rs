//! The operator's keystore passwords: read once at start from `spec.avs.keystore_password_file`
//! (the BLS key file's) and `spec.avs.ecdsa_keystore_password_file` (the ECDSA keystore's),
//! held in memory that is wiped when dropped, and handed to the guest by the
//! `KeystorePassword` and `EcdsaKeystorePassword` hypercalls (see `vmm::hypercall`). They are
//! never printed, nor are their lengths.

use spacecore_abi::hypercall::MAX_KEYSTORE_PASSWORD;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Why the password file cannot be used. Each message names the spec key and the file, never
/// the password or its length.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The file cannot be opened or read.
    #[error("{key}: cannot read {}: {source}", path.display())]
    Read {
        /// The spec key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The path names a directory, a device, a pipe...
    #[error("{key}: {} is not a regular file; expected a file holding the keystore's password", path.display())]
    NotAFile {
        /// The spec key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The file holds nothing but at most one newline.
    #[error("{key}: {} is empty; expected the keystore's password (one trailing newline is ignored)", path.display())]
    Empty {
        /// The spec key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The password is longer than the ABI allows.
    #[error("{key}: {} holds more than {MAX_KEYSTORE_PASSWORD} bytes; expected the keystore's password of at most {MAX_KEYSTORE_PASSWORD} bytes", path.display())]
    TooLong {
        /// The spec key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The password is not UTF-8 text.
    #[error("{key}: {} is not UTF-8 text; expected the keystore's password", path.display())]
    NotUtf8 {
        /// The spec key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
}

/// The operator keystore's password: 1 to [`MAX_KEYSTORE_PASSWORD`] bytes of UTF-8, without the
/// file's trailing newline. Wiped when dropped; `Debug` does not show it.
pub struct KeystorePassword {
    bytes: Zeroizing<Vec<u8>>,
    /// Whether the file's group or other users may read it.
    shared: bool,
}

impl std::fmt::Debug for KeystorePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeystorePassword(<hidden>)")
    }
}

impl KeystorePassword {
    /// The spec key of the BLS key file's password.
    pub const KEY: &'static str = "spec.avs.keystore_password_file";
    /// The spec key of the ECDSA keystore's password.
    pub const ECDSA_KEY: &'static str = "spec.avs.ecdsa_keystore_password_file";

    /// Reads the password from `path` (named by `spec.avs.keystore_password_file`): see
    /// [`KeystorePassword::read_as`].
    pub fn read(path: &Path) -> Result<Self, PasswordError> {
        Self::read_as(Self::KEY, path)
    }

    /// Reads the password from `path`, the file the spec key `key` names: a regular file holding
    /// the password, followed by at most one newline (`\n` or `\r\n`), which is removed. Errors
    /// name `key` and the file.
    pub fn read_as(key: &'static str, path: &Path) -> Result<Self, PasswordError> {
        let fail = |source| PasswordError::Read { key, path: path.to_path_buf(), source };
        let mut file = File::open(path).map_err(fail)?;
        let metadata = file.metadata().map_err(fail)?;
        if !metadata.is_file() {
            return Err(PasswordError::NotAFile { key, path: path.to_path_buf() });
        }
        // Room for the longest password, its newline, and one byte more to tell a longer file.
        // Allocated once and never grown, so no copy of the password is left behind.
        let mut bytes = Zeroizing::new(vec![0u8; MAX_KEYSTORE_PASSWORD + 3]);
        let mut len = 0;
        while len < bytes.len() {
            match file.read(&mut bytes[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(fail(e)),
            }
        }
        bytes.truncate(len);
        let shared = metadata.permissions().mode() & 0o077 != 0;
        Self::from_file_bytes(bytes, shared).map_err(|problem| problem.at(key, path))
    }

    /// The password from the bytes of a password file (see [`KeystorePassword::read`]).
    pub fn from_file_bytes(mut bytes: Zeroizing<Vec<u8>>, shared: bool) -> Result<Self, Problem> {
        let newline = if bytes.ends_with(b"\r\n") { 2 } else { usize::from(bytes.ends_with(b"\n")) };
        let len = bytes.len() - newline;
        bytes.truncate(len);
        if bytes.is_empty() {
            Err(Problem::Empty)
        } else if bytes.len() > MAX_KEYSTORE_PASSWORD {
            Err(Problem::TooLong)
        } else if std::str::from_utf8(&bytes).is_err() {
            Err(Problem::NotUtf8)
        } else {
            Ok(KeystorePassword { bytes, shared })
        }
    }

    /// The password's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether the file's group or other users may read it (worth a warning).
    pub fn readable_by_others(&self) -> bool {
        self.shared
    }
}

/// What is wrong with the bytes of a password file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Nothing but at most one newline.
    Empty,
    /// More than [`MAX_KEYSTORE_PASSWORD`] bytes.
    TooLong,
    /// Not UTF-8.
    NotUtf8,
}

impl Problem {
    fn at(self, key: &'static str, path: &Path) -> PasswordError {
        let path = path.to_path_buf();
        match self {
            Problem::Empty => PasswordError::Empty { key, path },
            Problem::TooLong => PasswordError::TooLong { key, path },
            Problem::NotUtf8 => PasswordError::NotUtf8 { key, path },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    fn read(bytes: &[u8]) -> Result<Vec<u8>, PasswordError> {
        let file = file_with(bytes);
        KeystorePassword::read(file.path()).map(|p| p.as_bytes().to_vec())
    }

    #[test]
    fn exactly_one_trailing_newline_is_removed() {
        assert_eq!(read(b"hunter2").unwrap(), b"hunter2");
        assert_eq!(read(b"hunter2\n").unwrap(), b"hunter2");
        assert_eq!(read(b"hunter2\r\n").unwrap(), b"hunter2");
        assert_eq!(read(b"hunter2\n\n").unwrap(), b"hunter2\n");
        assert_eq!(read(b"hunter2\r\n\r\n").unwrap(), b"hunter2\r\n");
        assert_eq!(read(b"hunter2\r").unwrap(), b"hunter2\r");
        assert_eq!(read(b" spaces kept ").unwrap(), b" spaces kept ");
        assert_eq!(read("pässwörd\n".as_bytes()).unwrap(), "pässwörd".as_bytes());
        assert_eq!(read(b"\n\n").unwrap(), b"\n");
    }

    #[test]
    fn lengths_up_to_the_limit_are_accepted() {
        let longest = vec![b'p'; MAX_KEYSTORE_PASSWORD];
        assert_eq!(read(&longest).unwrap(), longest);
        assert_eq!(read(&[longest.as_slice(), b"\r\n"].concat()).unwrap(), longest);
        let too_long = vec![b'p'; MAX_KEYSTORE_PASSWORD + 1];
        assert!(matches!(read(&too_long), Err(PasswordError::TooLong { .. })));
        assert!(matches!(read(&[too_long.as_slice(), b"\n"].concat()), Err(PasswordError::TooLong { .. })));
        let huge = vec![b'p'; 1 << 20];
        assert!(matches!(read(&huge), Err(PasswordError::TooLong { .. })));
        // A longer file whose cut happens to end in a newline is still too long.
        let mut tricky = vec![b'p'; MAX_KEYSTORE_PASSWORD + 1];
        tricky.extend_from_slice(b"\r\nmore");
        assert!(matches!(read(&tricky), Err(PasswordError::TooLong { .. })));
    }

    #[test]
    fn bad_files_are_errors_naming_the_key_and_the_file_but_not_the_password() {
        let file = file_with(b"");
        let error = KeystorePassword::read(file.path()).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, PasswordError::Empty { .. }));
        assert!(text.starts_with("spec.avs.keystore_password_file: "), "{text}");
        assert!(text.contains(&file.path().display().to_string()), "{text}");
        assert!(matches!(read(b"\n"), Err(PasswordError::Empty { .. })));
        assert!(matches!(read(b"\r\n"), Err(PasswordError::Empty { .. })));
        let error = read(b"secret\xff\n").unwrap_err();
        assert!(matches!(error, PasswordError::NotUtf8 { .. }));
        assert!(!error.to_string().contains("secret"), "{error}");
        let error = read(&vec![b'x'; MAX_KEYSTORE_PASSWORD + 7]).unwrap_err();
        assert!(!error.to_string().contains(&(MAX_KEYSTORE_PASSWORD + 7).to_string()), "{error}");

        let missing = Path::new("/nonexistent/spacecore/operator.password");
        let text = KeystorePassword::read(missing).unwrap_err().to_string();
        assert!(
            text.starts_with(
                "spec.avs.keystore_password_file: cannot read /nonexistent/spacecore/operator.password: "
            ),
            "{text}"
        );
        let dir = tempfile::tempdir().unwrap();
        let error = KeystorePassword::read(dir.path()).unwrap_err();
        assert!(matches!(error, PasswordError::NotAFile { .. }), "{error}");
    }

    #[test]
    fn the_ecdsa_password_file_is_named_as_its_own_key() {
        let file = file_with(b"");
        let text =
            KeystorePassword::read_as(KeystorePassword::ECDSA_KEY, file.path()).unwrap_err().to_string();
        assert!(text.starts_with("spec.avs.ecdsa_keystore_password_file: "), "{text}");
        assert!(text.contains(&file.path().display().to_string()), "{text}");
        let missing = Path::new("/nonexistent/ecdsa.password");
        let text = KeystorePassword::read_as(KeystorePassword::ECDSA_KEY, missing).unwrap_err().to_string();
        assert!(
            text.starts_with(
                "spec.avs.ecdsa_keystore_password_file: cannot read /nonexistent/ecdsa.password"
            ),
            "{text}"
        );
        let file = file_with(b"ecdsa secret\n");
        let password = KeystorePassword::read_as(KeystorePassword::ECDSA_KEY, file.path()).unwrap();
        assert_eq!(password.as_bytes(), b"ecdsa secret");
    }

    #[test]
    fn debug_hides_the_password_and_modes_are_reported() {
        let file = file_with(b"hunter2\n");
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let password = KeystorePassword::read(file.path()).unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
        assert!(!password.readable_by_others());
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(KeystorePassword::read(file.path()).unwrap().readable_by_others());
    }
}
