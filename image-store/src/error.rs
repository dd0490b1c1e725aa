//! The one error type of the image store.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while resolving or registering an image.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A repository or tag that is not a safe store path component.
    #[error("invalid image {what} {value:?}: {reason}")]
    InvalidName {
        /// `"repository"`, `"tag"` or `"reference"`.
        what: &'static str,
        /// The rejected text.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// The image has never been registered in this store.
    #[error(
        "image {reference} is not in the image store at {}; build it with: cargo xtask build-image --tag {reference}",
        root.display()
    )]
    NotFound {
        /// `repository:tag`.
        reference: String,
        /// The store root that was searched.
        root: PathBuf,
    },

    /// The entry exists but its files do not agree with each other.
    #[error(
        "the image store entry for {reference} at {} is corrupt: {reason}; rebuild it with: cargo xtask build-image --tag {reference}",
        dir.display()
    )]
    Corrupt {
        /// `repository:tag`.
        reference: String,
        /// The entry's directory.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// `register` was handed a manifest that does not describe the ELF file.
    #[error("refusing to register {reference}: {reason}")]
    Rejected {
        /// `repository:tag`.
        reference: String,
        /// Why.
        reason: String,
    },

    /// A file system operation failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done, e.g. `"read"`.
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io { action, path, source }
    }
}
