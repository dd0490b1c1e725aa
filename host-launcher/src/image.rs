//! Finding the image a plan names: a path, or a reference resolved in the local image store.

use hac::ImageSource;
use image_store::{Store, StoreError};
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
}

/// Resolves the image of a plan to a file path.
pub fn resolve(source: &ImageSource, store: &Store) -> Result<PathBuf, ImageError> {
    match source {
        ImageSource::Path(path) => Ok(path.clone()),
        ImageSource::Reference(r) => Ok(store.resolve(&r.repository, &r.tag)?.path),
    }
}

/// Opens the image for reading, turning the usual failures into one clear line.
pub fn open(path: &Path) -> Result<std::fs::File, ImageError> {
    std::fs::File::open(path).map_err(|e| {
        let reason = match e.raw_os_error() {
            Some(libc::ENOENT) => "no such file (build one with `cargo xtask build-image`)".into(),
            Some(libc::EACCES) => "permission denied".into(),
            Some(libc::ETXTBSY) | Some(libc::EBUSY) => "the file is busy (being written?)".into(),
            Some(libc::EISDIR) => "it is a directory, not an ELF image".into(),
            _ => e.to_string(),
        };
        ImageError::Unreadable { path: path.to_owned(), reason }
    })
}
