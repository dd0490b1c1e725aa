//! Tars from outside: a layout archive, unpacked into a private directory, and the entries of a
//! layer. Nothing in them may name a path outside where it is put: every entry's path must be
//! relative and free of `..`, and every entry must be a regular file or a directory (symbolic
//! and hard links, devices and FIFOs are refused); sizes and counts are capped.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::{Hashing, MAX_ARCHIVE_BYTES, MAX_ARCHIVE_ENTRIES, MAX_LAYER_BYTES, OciError, is_over_limit};

/// What an acceptable tar entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Directory,
    /// A pax global header: metadata for the archive, nothing to unpack.
    Metadata,
}

/// The entry's kind, or why it is refused.
pub(crate) fn kind(entry_type: tar::EntryType) -> Result<Kind, String> {
    use tar::EntryType as T;
    match entry_type {
        T::Regular | T::Continuous => Ok(Kind::File),
        T::Directory => Ok(Kind::Directory),
        T::XGlobalHeader => Ok(Kind::Metadata),
        T::Symlink => Err("is a symbolic link".into()),
        T::Link => Err("is a hard link".into()),
        T::Char | T::Block => Err("is a device".into()),
        T::Fifo => Err("is a FIFO".into()),
        other => {
            Err(format!("has the entry type {:?}, not a regular file or directory", other.as_byte() as char))
        }
    }
}

/// The components of a tar entry's path (`.` components and a trailing `/` dropped), or why
/// it is refused: not UTF-8, absolute, or with a `..` component.
pub(crate) fn components(raw: &[u8]) -> Result<Vec<&str>, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "is not a UTF-8 path".to_owned())?;
    if text.starts_with('/') {
        return Err("is an absolute path".into());
    }
    if text.contains('\0') || text.contains('\\') {
        return Err("has a NUL or a backslash in its path".into());
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("has a `..` component".into()),
            part => parts.push(part),
        }
    }
    Ok(parts)
}

/// How an entry's path is shown in messages.
pub(crate) fn shown(raw: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(raw))
}

/// Whether `parts` is a file of a layout: `oci-layout`, `index.json` or
/// `blobs/<algorithm>/<encoded>` (other files, such as the `manifest.json` of `docker save`,
/// are not unpacked).
fn is_layout_file(parts: &[&str]) -> bool {
    let safe = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'+' | b'.'))
    };
    match parts {
        ["oci-layout"] | ["index.json"] => true,
        ["blobs", algorithm, encoded] => safe(algorithm) && safe(encoded),
        _ => false,
    }
}

/// Unpacks the layout archive `archive` into `into` (an empty private directory): its
/// `oci-layout`, `index.json` and blobs; everything else is checked and skipped.
pub(crate) fn unpack_layout(archive: &Path, into: &Path) -> Result<(), OciError> {
    let refuse = |reason: String| OciError::Layout { layout: archive.to_owned(), reason };
    let file = File::open(archive).map_err(OciError::io("open", archive))?;
    let metadata = file.metadata().map_err(OciError::io("inspect", archive))?;
    if !metadata.is_file() {
        return Err(refuse("not a directory or a regular file (a layout archive)".into()));
    }
    if metadata.len() > MAX_ARCHIVE_BYTES {
        return Err(refuse(format!(
            "the archive is {} bytes, more than the {MAX_ARCHIVE_BYTES} an import reads",
            metadata.len()
        )));
    }
    let mut tar = tar::Archive::new(Hashing::new(file, MAX_ARCHIVE_BYTES));
    let read_error = |e: io::Error| {
        if is_over_limit(&e) {
            refuse(format!("the archive grew past {MAX_ARCHIVE_BYTES} bytes while being read"))
        } else {
            refuse(format!("not a readable tar archive: {e}"))
        }
    };
    let entries = tar.entries().map_err(read_error)?;
    for (n, entry) in entries.enumerate() {
        if n >= MAX_ARCHIVE_ENTRIES {
            return Err(refuse(format!("the archive has more than {MAX_ARCHIVE_ENTRIES} entries")));
        }
        let mut entry = entry.map_err(read_error)?;
        let raw = entry.path_bytes().into_owned();
        let bad = |why: String| refuse(format!("archive entry {} {why}", shown(&raw)));
        let parts = components(&raw).map_err(bad)?;
        let kind = kind(entry.header().entry_type()).map_err(bad)?;
        if kind != Kind::File || !is_layout_file(&parts) {
            continue;
        }
        let size = entry.size();
        if size > MAX_LAYER_BYTES {
            return Err(bad(format!(
                "is {size} bytes, more than the {MAX_LAYER_BYTES} of the largest blob an import accepts"
            )));
        }
        let path: PathBuf = parts.iter().fold(into.to_owned(), |p, c| p.join(c));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(OciError::io("create directory", parent))?;
        }
        let mut out = match File::create_new(&path) {
            Ok(out) => out,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(bad("appears twice".into()));
            }
            Err(e) => return Err(OciError::io("create", &path)(e)),
        };
        let copied = io::copy(&mut entry, &mut out).map_err(read_error)?;
        if copied != size {
            return Err(bad(format!("is cut short: {copied} of {size} bytes")));
        }
    }
    Ok(())
}
