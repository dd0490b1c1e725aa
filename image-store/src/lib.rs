//! The local Spacecore image store.
//!
//! `cargo xtask build-image` registers every image it builds here, and
//! `hac-launch` resolves the `repository:tag` named by an operator's spec to
//! an ELF file here. On disk an image is
//! `<root>/<repository>/<tag>/image.elf` plus `manifest.json` beside it; a
//! repository containing `/` becomes nested directories. `<tag>` is a
//! symlink to a hidden version directory, `.<tag>.versions/<id>`, which is
//! filled completely before the symlink is swapped to it, so readers never
//! see a half-written image. [`oci`] writes an entry as an OCI image layout
//! and reads one back. See `docs/image-store.md`.
#![forbid(unsafe_code)]

mod error;
mod manifest;
mod name;
pub mod oci;
mod register;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use error::StoreError;
pub use manifest::{Manifest, is_sha256_hex, sha256_file, sha256_reader};
pub use name::{DEFAULT_TAG, ImageRef};

/// Environment variable that overrides the store root when set and non-empty.
pub const STORE_ENV: &str = "SPACECORE_IMAGE_STORE";
/// File name of the ELF image inside an entry.
pub const IMAGE_FILE: &str = "image.elf";
/// File name of the manifest inside an entry.
pub const MANIFEST_FILE: &str = "manifest.json";

/// How often `resolve` follows a tag that moved while it was being read.
const RESOLVE_ATTEMPTS: u32 = 3;

/// A directory of images addressed by `repository:tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    root: PathBuf,
}

/// An image found in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    /// The `image.elf` of the version the tag named when it was resolved:
    /// `<root>/<repository>/.<tag>.versions/<id>/image.elf` (or
    /// `<root>/<repository>/<tag>/image.elf` for an entry that is a plain
    /// directory).
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

impl Store {
    /// The store at the default root: `$SPACECORE_IMAGE_STORE` if set and
    /// non-empty, else `$XDG_DATA_HOME/spacecore/images`, else
    /// `$HOME/.local/share/spacecore/images`, else
    /// `/var/lib/spacecore/images`.
    pub fn open_default() -> Store {
        Store::at(default_root(|key| std::env::var_os(key)))
    }

    /// The store rooted at `root` (which need not exist yet).
    pub fn at(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the entry `repository:tag`, after validating both.
    pub fn entry_dir(&self, repository: &str, tag: &str) -> Result<PathBuf, StoreError> {
        let image = ImageRef::new(repository, tag)?;
        let mut dir = self.root.clone();
        dir.extend(image.repository.split('/'));
        dir.push(&image.tag);
        Ok(dir)
    }

    /// Finds `repository:tag`. Cheap enough for the boot path: reads the
    /// manifest and checks the ELF's size against it, but does not hash the
    /// ELF (see [`Store::verify`]). The returned path is inside the version
    /// directory the tag named when it was read, so it keeps matching the
    /// manifest even if the tag is registered again meanwhile.
    pub fn resolve(&self, repository: &str, tag: &str) -> Result<StoredImage, StoreError> {
        let link = self.entry_dir(repository, tag)?;
        let mut dir = self.follow(&link, repository, tag)?;
        let mut attempt = 1;
        loop {
            match self.read_entry(&dir, &link, repository, tag) {
                Err(e) if attempt < RESOLVE_ATTEMPTS => {
                    // A version only disappears after the tag has moved on
                    // twice; if it has moved, read the new one.
                    let now = self.follow(&link, repository, tag)?;
                    if now == dir {
                        return Err(e);
                    }
                    dir = now;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// [`Store::resolve`] followed by a full SHA-256 check of the ELF
    /// against its manifest.
    pub fn verify(&self, repository: &str, tag: &str) -> Result<StoredImage, StoreError> {
        let image = self.resolve(repository, tag)?;
        let actual = sha256_file(&image.path).map_err(StoreError::io("read", &image.path))?;
        if actual != image.manifest.sha256 {
            return Err(StoreError::Corrupt {
                reference: format!("{repository}:{tag}"),
                dir: image.path.parent().unwrap_or(&image.path).to_owned(),
                reason: format!(
                    "{IMAGE_FILE} has sha256 {actual} but {MANIFEST_FILE} records {}",
                    image.manifest.sha256
                ),
            });
        }
        Ok(image)
    }

    /// Copies `elf` into the store as `repository:tag` with `manifest`,
    /// replacing any previous entry atomically: a reader sees either the old
    /// image and manifest or the new ones. The manifest must match the
    /// file's size and SHA-256. Returns `<root>/<repository>/<tag>/image.elf`.
    pub fn register(
        &self,
        repository: &str,
        tag: &str,
        elf: &Path,
        manifest: &Manifest,
    ) -> Result<PathBuf, StoreError> {
        register::register(self, repository, tag, elf, manifest)
    }

    /// The directory `link` (an entry's `<tag>`) stands for: its symlink
    /// target, or itself if it is a plain directory.
    fn follow(&self, link: &Path, repository: &str, tag: &str) -> Result<PathBuf, StoreError> {
        match fs::read_link(link) {
            Ok(target) => Ok(link.parent().unwrap_or(&self.root).join(target)),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(link.to_owned()),
            Err(e) if is_absent(&e) => Err(StoreError::NotFound {
                reference: format!("{repository}:{tag}"),
                root: self.root.clone(),
            }),
            Err(e) => Err(StoreError::io("read", link)(e)),
        }
    }

    fn read_entry(
        &self,
        dir: &Path,
        link: &Path,
        repository: &str,
        tag: &str,
    ) -> Result<StoredImage, StoreError> {
        let reference = format!("{repository}:{tag}");
        let corrupt = |reason: String| StoreError::Corrupt {
            reference: reference.clone(),
            dir: dir.to_owned(),
            reason,
        };
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = match fs::read_to_string(&manifest_path) {
            Ok(text) => text,
            // A plain directory without a manifest is not an image; a tag
            // pointing at a missing version is a broken one.
            Err(e) if is_absent(&e) && dir == link => {
                return Err(StoreError::NotFound { reference, root: self.root.clone() });
            }
            Err(e) if is_absent(&e) => {
                return Err(corrupt(format!("{} is missing", manifest_path.display())));
            }
            Err(e) => return Err(StoreError::io("read", manifest_path)(e)),
        };
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| corrupt(format!("{MANIFEST_FILE} is not a valid manifest: {e}")))?;
        if !is_sha256_hex(&manifest.sha256) {
            return Err(corrupt(format!(
                "{MANIFEST_FILE} has sha256 {:?}, not 64 lowercase hex digits",
                manifest.sha256
            )));
        }
        let path = dir.join(IMAGE_FILE);
        let metadata = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if is_absent(&e) => {
                return Err(corrupt(format!("{MANIFEST_FILE} is present but {IMAGE_FILE} is missing")));
            }
            Err(e) => return Err(StoreError::io("inspect", path)(e)),
        };
        if !metadata.is_file() {
            return Err(corrupt(format!("{IMAGE_FILE} is not a regular file")));
        }
        if metadata.len() != manifest.size_bytes {
            return Err(corrupt(format!(
                "{IMAGE_FILE} is {} bytes but {MANIFEST_FILE} records {} bytes",
                metadata.len(),
                manifest.size_bytes
            )));
        }
        Ok(StoredImage { path, manifest })
    }
}

fn is_absent(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// The default root, reading the environment through `var`.
fn default_root(var: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    let set = |key: &str| var(key).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(root) = set(STORE_ENV) {
        return root;
    }
    // The XDG spec says relative values are to be ignored.
    if let Some(data) = set("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        return data.join("spacecore").join("images");
    }
    if let Some(home) = set("HOME") {
        return home.join(".local/share/spacecore/images");
    }
    PathBuf::from("/var/lib/spacecore/images")
}
