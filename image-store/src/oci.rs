//! Store entries as OCI image layouts, so that images move with the OCI tools operators already
//! use (`skopeo`, `crane`, `oras`, registries). [`export`] writes an entry as a layout
//! directory, or as one tar of that directory; [`import`] reads one back into the store after
//! verifying every blob it uses against its descriptor. The OCI types are `oci-spec`'s. See
//! `docs/image-store.md`, "OCI image layouts".
//!
//! What is written, for `repository:tag`:
//!
//! * `oci-layout` (`{"imageLayoutVersion":"1.0.0"}`) and `index.json`, listing one image
//!   manifest whose `org.opencontainers.image.ref.name` annotation is the tag;
//! * `blobs/sha256/<digest>`: the image manifest, its config and its one layer;
//! * the layer is a gzip tar holding the ELF as [`ELF_PATH`] (mode 0755);
//! * the config is an `application/vnd.oci.image.config.v1+json` for `amd64` / `linux`: the
//!   image is not a Linux program (`hac-launch` boots it on KVM), but `linux` is the GOOS value
//!   that registries, `skopeo`, `containerd` and `docker` select images by; `none` is not one.
//!   Its labels hold the store's manifest ([`LABEL_MANIFEST`], the whole of it, as JSON) and a
//!   summary of it ([`summary`]), which the image manifest repeats as annotations beside the
//!   entry's reference ([`ANNOTATION_REFERENCE`]).
//!
//! The layer's mtime is the build time and the gzip header carries none, so exporting an entry
//! twice gives the same digests.

mod archive;
mod export;
mod import;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

use crate::manifest::to_hex;
use crate::{Manifest, StoreError};

pub use export::{Exported, Format, export};
pub use import::{Imported, Verified, import};

/// Where the layer holds the ELF.
pub const ELF_PATH: &str = "spacecore.elf";
/// The prefix of Spacecore's own labels and annotations.
pub const SPACECORE_PREFIX: &str = "dev.spacecore.image.";
/// The config label holding the store's manifest, as JSON.
pub const LABEL_MANIFEST: &str = "dev.spacecore.image.manifest";
/// The image manifest's annotation holding the entry's `repository:tag`.
pub const ANNOTATION_REFERENCE: &str = "dev.spacecore.image.reference";
/// The label and annotation holding the ELF's SHA-256 (64 lowercase hex digits).
pub const LABEL_ELF_SHA256: &str = "dev.spacecore.image.elf.sha256";
/// The label and annotation holding the ELF's size in bytes.
pub const LABEL_ELF_SIZE: &str = "dev.spacecore.image.elf.size";
/// The label and annotation holding the AVS the image runs.
pub const LABEL_AVS: &str = "dev.spacecore.image.avs";
/// The label and annotation holding the build's target triple.
pub const LABEL_TARGET: &str = "dev.spacecore.image.target";

/// Largest `oci-layout`, `index.json`, image manifest or config an import reads.
pub const MAX_JSON_BYTES: u64 = 1 << 20;
/// Largest ELF an import accepts (and an export writes): a spacecore image is under 1 MiB.
pub const MAX_ELF_BYTES: u64 = 64 << 20;
/// Largest layer blob, and largest layer once decompressed (the ELF, tar headers and padding).
pub const MAX_LAYER_BYTES: u64 = MAX_ELF_BYTES + (1 << 20);
/// Largest layout archive (`--tar`) an import reads, in all.
pub const MAX_ARCHIVE_BYTES: u64 = 4 * MAX_LAYER_BYTES;
/// Most entries a layout archive may have.
pub const MAX_ARCHIVE_ENTRIES: usize = 4096;

/// Everything that can go wrong while exporting or importing a layout.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The store refused or could not find the entry.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The layout (or its archive) is not one an import accepts; nothing was registered.
    #[error("OCI image layout {}: {reason}; nothing was imported", layout.display())]
    Layout {
        /// The directory or archive given.
        layout: PathBuf,
        /// What is wrong, naming the file or blob.
        reason: String,
    },

    /// The export's destination cannot be used.
    #[error("cannot export to {}: {reason}", path.display())]
    Destination {
        /// The directory or archive asked for.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl OciError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let io = StoreError::io(action, path);
        move |source| OciError::Store(io(source))
    }
}

/// What the labels and annotations say about an image, from its store manifest: the OCI
/// annotation keys (`org.opencontainers.image.title`, `.version`, `.created`, `.revision`,
/// `.description`) and Spacecore's ([`LABEL_ELF_SHA256`], [`LABEL_ELF_SIZE`], [`LABEL_AVS`],
/// [`LABEL_TARGET`]). An import refuses a layout whose Spacecore labels or annotations
/// contradict the manifest it records.
pub fn summary(manifest: &Manifest) -> BTreeMap<String, String> {
    use oci_spec::image::{
        ANNOTATION_CREATED, ANNOTATION_DESCRIPTION, ANNOTATION_REVISION, ANNOTATION_TITLE, ANNOTATION_VERSION,
    };
    let mut map = BTreeMap::new();
    let mut put = |k: &str, v: String| map.insert(k.to_owned(), v);
    put(ANNOTATION_TITLE, manifest.name.clone());
    put(ANNOTATION_VERSION, manifest.version.clone());
    put(ANNOTATION_CREATED, rfc3339(manifest.built_at_unix));
    if let Some(commit) = &manifest.git_commit {
        put(ANNOTATION_REVISION, commit.clone());
    }
    put(
        ANNOTATION_DESCRIPTION,
        format!(
            "Spacecore unikernel image ({} AVS) for hac-launch on KVM; not a Linux container",
            manifest.avs
        ),
    );
    put(LABEL_ELF_SHA256, manifest.sha256.clone());
    put(LABEL_ELF_SIZE, manifest.size_bytes.to_string());
    put(LABEL_AVS, manifest.avs.clone());
    put(LABEL_TARGET, manifest.target.clone());
    map
}

/// `seconds` since the Unix epoch as an RFC 3339 UTC time, `2023-11-14T22:13:20Z` (the epoch for
/// a time past what RFC 3339 can write).
pub(crate) fn rfc3339(seconds: u64) -> String {
    let at = i64::try_from(seconds).ok().and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok());
    at.and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", to_hex(&Sha256::digest(bytes)))
}

/// A reader that hashes and counts what passes through it, and fails once more than `limit`
/// bytes have come.
#[derive(Debug)]
pub(crate) struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    limit: u64,
}

impl<R: Read> Hashing<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        Hashing { inner, hasher: Sha256::new(), count: 0, limit }
    }

    /// Reads what is left, to EOF (still within the limit).
    pub(crate) fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(drop)
    }

    /// (bytes read, `sha256:<hex>`), and the inner reader.
    pub(crate) fn finish(self) -> (u64, String, R) {
        (self.count, format!("sha256:{}", to_hex(&self.hasher.finalize())), self.inner)
    }
}

/// The error a [`Hashing`] reader returns past its limit.
pub(crate) const OVER_LIMIT: &str = "more bytes than allowed";

/// Whether `e` (or an error it wraps) is a [`Hashing`] reader's refusal to go past its limit.
pub(crate) fn is_over_limit(e: &io::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.to_string().contains(OVER_LIMIT) {
            return true;
        }
        source = err.source();
    }
    false
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            return Err(io::Error::other(OVER_LIMIT));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
