//! Password files, read by one set of rules wherever they are read: the operator's CLI when it
//! encrypts or imports a key, and `hac-launch` when it hands the password to the guest that
//! decrypts the key at boot. Two readers that disagreed (on a trailing newline, an empty file,
//! the longest password) would make keys that one accepts and the other cannot open.
//!
//! A password file is a regular file holding the password, followed by at most one newline
//! (`\n` or `\r\n`), which is removed. The password is 1 to [`MAX_PASSWORD_LEN`] bytes of UTF-8.
//! It is held in memory wiped on drop, read into a buffer sized once so that no copy is left
//! behind, and never printed, nor is its length.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The longest password a password file may hold, in bytes: what a spacecore can be handed
/// (`spacecore_abi::hypercall::MAX_KEYSTORE_PASSWORD`).
pub const MAX_PASSWORD_LEN: usize = 4096;

/// A password read from a file. `Debug` does not show it.
pub struct PasswordFile {
    bytes: Zeroizing<Vec<u8>>,
    /// Whether the file's group or other users may read it.
    shared: bool,
}

impl fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordFile(<hidden>)")
    }
}

/// What is wrong with a password file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Nothing but at most one newline.
    Empty,
    /// More than [`MAX_PASSWORD_LEN`] bytes.
    TooLong,
    /// Not UTF-8 text.
    NotUtf8,
}

/// Why a password file cannot be used. Each message names the file and what it is for, never
/// the password or its length.
#[derive(Debug)]
pub enum PasswordFileError {
    /// The file cannot be opened or read.
    Read {
        /// What the file is for (a flag or a spec key), first in the message.
        what: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The path names a directory, a device, a pipe...
    NotAFile {
        /// What the file is for.
        what: String,
        /// The file.
        path: PathBuf,
    },
    /// The content is not a password.
    Content {
        /// What the file is for.
        what: String,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: Problem,
    },
}

impl fmt::Display for PasswordFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordFileError::Read { what, path, source } => {
                write!(f, "{what}: cannot read {}: {source}", path.display())
            }
            PasswordFileError::NotAFile { what, path } => write!(
                f,
                "{what}: {} is not a regular file; expected a file holding the keystore's password",
                path.display()
            ),
            PasswordFileError::Content { what, path, problem } => {
                let path = path.display();
                match problem {
                    Problem::Empty => write!(
                        f,
                        "{what}: {path} is empty; expected the keystore's password (one trailing newline \
                         is ignored)"
                    ),
                    Problem::TooLong => write!(
                        f,
                        "{what}: {path} holds more than {MAX_PASSWORD_LEN} bytes; expected the keystore's \
                         password of at most {MAX_PASSWORD_LEN} bytes"
                    ),
                    Problem::NotUtf8 => {
                        write!(f, "{what}: {path} is not UTF-8 text; expected the keystore's password")
                    }
                }
            }
        }
    }
}

impl std::error::Error for PasswordFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PasswordFileError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl PasswordFile {
    /// Reads the password file at `path`; `what` (a flag such as `--password-file`, or a spec
    /// key) names it in errors.
    pub fn read(what: &str, path: &Path) -> Result<Self, PasswordFileError> {
        let fail = |source| PasswordFileError::Read { what: what.into(), path: path.to_path_buf(), source };
        let mut file = File::open(path).map_err(fail)?;
        let metadata = file.metadata().map_err(fail)?;
        if !metadata.is_file() {
            return Err(PasswordFileError::NotAFile { what: what.into(), path: path.to_path_buf() });
        }
        // Room for the longest password, its newline, and one byte more to tell a longer file.
        // Allocated once and never grown, so no copy of the password is left behind.
        let mut bytes = Zeroizing::new(vec![0u8; MAX_PASSWORD_LEN + 3]);
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
        Self::from_file_bytes(bytes, shared).map_err(|problem| PasswordFileError::Content {
            what: what.into(),
            path: path.to_path_buf(),
            problem,
        })
    }

    /// The password from the bytes of a password file (see [`PasswordFile::read`]); `shared`:
    /// whether the file's group or other users may read it.
    pub fn from_file_bytes(mut bytes: Zeroizing<Vec<u8>>, shared: bool) -> Result<Self, Problem> {
        let newline = if bytes.ends_with(b"\r\n") { 2 } else { usize::from(bytes.ends_with(b"\n")) };
        let len = bytes.len() - newline;
        bytes.truncate(len);
        if bytes.is_empty() {
            Err(Problem::Empty)
        } else if bytes.len() > MAX_PASSWORD_LEN {
            Err(Problem::TooLong)
        } else if core::str::from_utf8(&bytes).is_err() {
            Err(Problem::NotUtf8)
        } else {
            Ok(PasswordFile { bytes, shared })
        }
    }

    /// The password's bytes (UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The password.
    pub fn as_str(&self) -> &str {
        // Checked to be UTF-8 when read.
        core::str::from_utf8(&self.bytes).unwrap_or_default()
    }

    /// Whether the file's group or other users may read it (worth a warning).
    pub fn readable_by_others(&self) -> bool {
        self.shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    fn read(bytes: &[u8]) -> Result<Vec<u8>, PasswordFileError> {
        let file = file_with(bytes);
        PasswordFile::read("--password-file", file.path()).map(|p| p.as_bytes().to_vec())
    }

    fn problem(bytes: &[u8]) -> Option<Problem> {
        match read(bytes) {
            Err(PasswordFileError::Content { problem, .. }) => Some(problem),
            _ => None,
        }
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
        let longest = vec![b'p'; MAX_PASSWORD_LEN];
        assert_eq!(read(&longest).unwrap(), longest);
        assert_eq!(read(&[longest.as_slice(), b"\r\n"].concat()).unwrap(), longest);
        let too_long = vec![b'p'; MAX_PASSWORD_LEN + 1];
        assert_eq!(problem(&too_long), Some(Problem::TooLong));
        assert_eq!(problem(&[too_long.as_slice(), b"\n"].concat()), Some(Problem::TooLong));
        assert_eq!(problem(&vec![b'p'; 1 << 20]), Some(Problem::TooLong));
        // A longer file whose cut happens to end in a newline is still too long.
        let mut tricky = vec![b'p'; MAX_PASSWORD_LEN + 1];
        tricky.extend_from_slice(b"\r\nmore");
        assert_eq!(problem(&tricky), Some(Problem::TooLong));
    }

    #[test]
    fn bad_files_are_errors_naming_the_file_but_not_the_password() {
        let file = file_with(b"");
        let text =
            PasswordFile::read("spec.avs.keystore_password_file", file.path()).unwrap_err().to_string();
        assert!(text.starts_with("spec.avs.keystore_password_file: "), "{text}");
        assert!(text.contains(&file.path().display().to_string()), "{text}");
        assert!(text.contains("is empty"), "{text}");
        assert_eq!(problem(b"\n"), Some(Problem::Empty));
        assert_eq!(problem(b"\r\n"), Some(Problem::Empty));
        let error = read(b"secret\xff\n").unwrap_err();
        assert!(matches!(error, PasswordFileError::Content { problem: Problem::NotUtf8, .. }));
        assert!(!error.to_string().contains("secret"), "{error}");
        let error = read(&vec![b'x'; MAX_PASSWORD_LEN + 7]).unwrap_err();
        assert!(!error.to_string().contains(&(MAX_PASSWORD_LEN + 7).to_string()), "{error}");

        let missing = Path::new("/nonexistent/spacecore/operator.password");
        let text = PasswordFile::read("--password-file", missing).unwrap_err().to_string();
        assert!(
            text.starts_with("--password-file: cannot read /nonexistent/spacecore/operator.password: "),
            "{text}"
        );
        let dir = tempfile::tempdir().unwrap();
        let error = PasswordFile::read("--password-file", dir.path()).unwrap_err();
        assert!(matches!(error, PasswordFileError::NotAFile { .. }), "{error}");
    }

    #[test]
    fn debug_hides_the_password_and_modes_are_reported() {
        let file = file_with(b"hunter2\n");
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let password = PasswordFile::read("p", file.path()).unwrap();
        assert!(!alloc::format!("{password:?}").contains("hunter2"));
        assert_eq!(password.as_str(), "hunter2");
        assert!(!password.readable_by_others());
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(PasswordFile::read("p", file.path()).unwrap().readable_by_others());
    }
}
