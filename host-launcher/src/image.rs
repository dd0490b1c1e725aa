//! Finding the image a plan names: a path, or a reference resolved in the local image store.

use hac::ImageSource;
use image_store::{Store, StoreError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why the image could not be found or read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The reference is not in the store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file cannot be opened.
    #[error("cannot read image {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    /// The spec pins a digest the image does not have.
    #[error(
        "spec.deployment.image pins sha256:{pinned}, but {what} is sha256:{found}; nothing was booted \
         (register the pinned image, or pin the digest `hac-launch --check` shows)"
    )]
    DigestMismatch { what: String, pinned: String, found: String },
}

/// Resolves the image of a plan to a file path. A reference pinned to a digest must name a
/// store entry whose manifest records that digest (the file itself is checked by [`pinned`]).
pub fn resolve(source: &ImageSource, store: &Store) -> Result<PathBuf, ImageError> {
    match source {
        ImageSource::Path(path) => Ok(path.clone()),
        ImageSource::Reference(r) => {
            let stored = store.resolve(&r.repository, &r.tag)?;
            pinned(source, &stored.manifest.sha256, || format!("{}:{} (its manifest)", r.repository, r.tag))?;
            Ok(stored.path)
        }
    }
}

/// Checks `sha256`, the digest of what is about to be booted, against the digest `source`
/// pins, if any.
pub fn pinned(source: &ImageSource, sha256: &str, what: impl FnOnce() -> String) -> Result<(), ImageError> {
    match source {
        ImageSource::Reference(r) if !r.admits(sha256) => Err(ImageError::DigestMismatch {
            what: what(),
            pinned: r.digest.clone().unwrap_or_default(),
            found: sha256.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Largest image accepted: 64 MiB. A spacecore image is about 1 MiB; the cap keeps a wrong
/// path (a disk image, a log) from being hashed and loaded at length.
pub const MAX_IMAGE_BYTES: u64 = 64 << 20;

/// Opens the image for reading and checks it is something to load, turning the usual failures
/// into one clear line. The last path component is not followed if it is a symbolic link, and
/// the open does not block (a FIFO would otherwise wait for a writer); then the file must be a
/// regular, non-empty file of at most [`MAX_IMAGE_BYTES`]. The caller hashes and loads this
/// one open file, never the path again.
pub fn open(path: &Path) -> Result<std::fs::File, ImageError> {
    let unreadable = |reason: String| ImageError::Unreadable { path: path.to_owned(), reason };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            unreadable(match e.raw_os_error() {
                Some(libc::ENOENT) => "no such file (build one with `cargo xtask build-image`)".into(),
                Some(libc::EACCES) => "permission denied".into(),
                Some(libc::ETXTBSY) | Some(libc::EBUSY) => "the file is busy (being written?)".into(),
                Some(libc::EISDIR) => "it is a directory, not an ELF image".into(),
                Some(libc::ELOOP) => "it is a symbolic link: name the file itself".into(),
                _ => e.to_string(),
            })
        })?;
    let meta = file.metadata().map_err(|e| unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(unreadable("not a regular file".into()));
    }
    match meta.len() {
        0 => Err(unreadable("the file is empty".into())),
        len if len > MAX_IMAGE_BYTES => {
            Err(unreadable(format!("{len} bytes; an image is at most {MAX_IMAGE_BYTES} bytes (64 MiB)")))
        }
        _ => Ok(file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(path: &Path) -> String {
        match open(path) {
            Err(ImageError::Unreadable { reason, .. }) => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_regular_files_of_a_sane_size_are_opened() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("spacecore.elf");
        std::fs::write(&image, b"\x7fELF").unwrap();
        assert!(open(&image).is_ok());

        let link = dir.path().join("link.elf");
        std::os::unix::fs::symlink(&image, &link).unwrap();
        assert!(reason(&link).contains("symbolic link"), "{}", reason(&link));
        assert!(reason(Path::new("/dev/zero")).contains("not a regular file"));
        // A FIFO with no writer: refused at once instead of waiting for one.
        let fifo = dir.path().join("fifo");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `name` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        assert!(reason(&fifo).contains("not a regular file"));
        assert!(
            reason(dir.path()).contains("directory") || reason(dir.path()).contains("not a regular file")
        );

        let empty = dir.path().join("empty.elf");
        std::fs::write(&empty, b"").unwrap();
        assert!(reason(&empty).contains("empty"));
        let huge = dir.path().join("huge.elf");
        std::fs::File::create(&huge).unwrap().set_len(MAX_IMAGE_BYTES + 1).unwrap();
        assert!(reason(&huge).contains("at most"), "{}", reason(&huge));
    }
}
