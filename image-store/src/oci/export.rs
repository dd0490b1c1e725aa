//! Writing a store entry as an OCI image layout: a directory, or one tar of it.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use oci_spec::image::{
    ANNOTATION_REF_NAME, Arch, ConfigBuilder, Descriptor, Digest, HistoryBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, OciLayoutBuilder, Os, PlatformBuilder, RootFsBuilder,
};
use serde::Serialize;

use super::{ANNOTATION_REFERENCE, ELF_PATH, LABEL_MANIFEST, MAX_ELF_BYTES, OciError, digest_of, summary};
use crate::{ImageRef, Manifest, Store};

/// What [`export`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A layout directory.
    Directory,
    /// One tar of the layout directory's contents (what `skopeo` calls `oci-archive`).
    Tar,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The entry exported.
    pub reference: ImageRef,
    /// The layout directory or archive written.
    pub path: PathBuf,
    /// The store manifest of the entry (its ELF's `sha256` and `size_bytes`).
    pub manifest: Manifest,
    /// `sha256:…` of the image manifest: the image's digest in a registry.
    pub manifest_digest: String,
    /// `sha256:…` of the config.
    pub config_digest: String,
    /// `sha256:…` and size of the layer (gzip tar).
    pub layer_digest: String,
    /// The layer's size in bytes.
    pub layer_size: u64,
}

/// A layout's files, in the order they are written.
struct Layout {
    files: Vec<(String, Vec<u8>)>,
}

/// Writes the entry `reference` of `store` to `dest` as an OCI image layout. The entry is
/// verified first (its ELF's SHA-256 against its manifest). `dest` must not exist, or be an
/// empty directory (for [`Format::Directory`]); the layout is written beside it and renamed into
/// place, so `dest` is never left half-written.
pub fn export(
    store: &Store,
    reference: &ImageRef,
    dest: &Path,
    format: Format,
) -> Result<Exported, OciError> {
    check_destination(dest, format)?;
    let image = store.verify(&reference.repository, &reference.tag)?;
    let manifest = image.manifest;
    if manifest.size_bytes > MAX_ELF_BYTES {
        return Err(OciError::Destination {
            path: dest.to_owned(),
            reason: format!(
                "the image is {} bytes, more than the {MAX_ELF_BYTES} an import accepts",
                manifest.size_bytes
            ),
        });
    }
    let elf = fs::read(&image.path).map_err(OciError::io("read", &image.path))?;
    // verify() hashed the file; make sure these bytes are the ones it hashed.
    if digest_of(&elf) != format!("sha256:{}", manifest.sha256) {
        return Err(OciError::Destination {
            path: dest.to_owned(),
            reason: format!("{} changed while it was being exported", image.path.display()),
        });
    }
    let (layout, exported) = build(reference, &manifest, &elf, dest)?;
    match format {
        Format::Directory => write_directory(&layout, dest)?,
        Format::Tar => write_tar(&layout, dest, manifest.built_at_unix)?,
    }
    Ok(exported)
}

/// Refuses a destination that exists (other than an empty directory, for a directory export).
fn check_destination(dest: &Path, format: Format) -> Result<(), OciError> {
    let refuse = |reason: &str| Err(OciError::Destination { path: dest.to_owned(), reason: reason.into() });
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(OciError::io("inspect", dest)(e)),
        Ok(m) if format == Format::Directory && m.is_dir() => {
            let mut entries = fs::read_dir(dest).map_err(OciError::io("list", dest))?;
            if entries.next().is_some() {
                return refuse("it exists and is not empty (an export writes a new layout)");
            }
            Ok(())
        }
        Ok(_) => refuse("it exists (an export never overwrites)"),
    }
}

fn json(value: &impl Serialize) -> Result<Vec<u8>, OciError> {
    // Through serde_json's Value, whose maps are sorted: oci-spec keeps labels and annotations
    // in HashMaps, and the digests must not depend on their order.
    let value =
        serde_json::to_value(value).map_err(io::Error::other).map_err(OciError::io("encode", "JSON"))?;
    serde_json::to_vec(&value).map_err(io::Error::other).map_err(OciError::io("encode", "JSON"))
}

fn spec_error(e: oci_spec::OciSpecError) -> OciError {
    OciError::io("build", "an OCI document")(io::Error::other(e))
}

fn digest(text: &str) -> Result<Digest, OciError> {
    text.parse().map_err(spec_error)
}

/// The layout's blobs and top-level files for `elf`.
fn build(
    reference: &ImageRef,
    manifest: &Manifest,
    elf: &[u8],
    dest: &Path,
) -> Result<(Layout, Exported), OciError> {
    let mtime = manifest.built_at_unix;

    // The layer: a tar holding the ELF, gzipped without a timestamp or file name.
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = header(tar::EntryType::Regular, 0o755, elf.len() as u64, mtime);
    tar.append_data(&mut header, ELF_PATH, elf).map_err(OciError::io("archive", ELF_PATH))?;
    let tar = tar.into_inner().map_err(OciError::io("archive", ELF_PATH))?;
    let diff_id = digest_of(&tar);
    let mut gz = GzBuilder::new().write(Vec::new(), Compression::best());
    gz.write_all(&tar).map_err(OciError::io("compress", ELF_PATH))?;
    let layer = gz.finish().map_err(OciError::io("compress", ELF_PATH))?;
    let layer_digest = digest_of(&layer);

    let summary = summary(manifest);
    let mut labels: HashMap<String, String> = summary.clone().into_iter().collect();
    let manifest_json = serde_json::to_string(manifest)
        .map_err(io::Error::other)
        .map_err(OciError::io("encode", "the manifest"))?;
    labels.insert(LABEL_MANIFEST.into(), manifest_json);
    let config = ImageConfigurationBuilder::default()
        .created(super::rfc3339(mtime))
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(ConfigBuilder::default().labels(labels).build().map_err(spec_error)?)
        .rootfs(RootFsBuilder::default().typ("layers").diff_ids(vec![diff_id]).build().map_err(spec_error)?)
        .history(vec![
            HistoryBuilder::default()
                .created(super::rfc3339(mtime))
                .created_by(format!("spacecore image export ({ELF_PATH})"))
                .comment(format!(
                    "{} {} ({} AVS), ELF sha256:{}",
                    manifest.name, manifest.version, manifest.avs, manifest.sha256
                ))
                .build()
                .map_err(spec_error)?,
        ])
        .build()
        .map_err(spec_error)?;
    let config = json(&config)?;
    let config_digest = digest_of(&config);

    let mut annotations: HashMap<String, String> = summary.into_iter().collect();
    annotations.insert(ANNOTATION_REFERENCE.into(), reference.to_string());
    let image_manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(MediaType::ImageConfig, config.len() as u64, digest(&config_digest)?))
        .layers(vec![Descriptor::new(MediaType::ImageLayerGzip, layer.len() as u64, digest(&layer_digest)?)])
        .annotations(annotations)
        .build()
        .map_err(spec_error)?;
    let image_manifest = json(&image_manifest)?;
    let manifest_digest = digest_of(&image_manifest);

    let mut entry =
        Descriptor::new(MediaType::ImageManifest, image_manifest.len() as u64, digest(&manifest_digest)?);
    entry.set_platform(Some(
        PlatformBuilder::default().architecture(Arch::Amd64).os(Os::Linux).build().map_err(spec_error)?,
    ));
    entry.set_annotations(Some(HashMap::from([(ANNOTATION_REF_NAME.to_owned(), reference.tag.clone())])));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![entry])
        .build()
        .map_err(spec_error)?;
    let oci_layout = OciLayoutBuilder::default().image_layout_version("1.0.0").build().map_err(spec_error)?;

    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let exported = Exported {
        reference: reference.clone(),
        path: dest.to_owned(),
        manifest: manifest.clone(),
        manifest_digest: manifest_digest.clone(),
        config_digest: config_digest.clone(),
        layer_digest: layer_digest.clone(),
        layer_size: layer.len() as u64,
    };
    let files = vec![
        ("oci-layout".to_owned(), json(&oci_layout)?),
        (blob(&layer_digest), layer),
        (blob(&config_digest), config),
        (blob(&manifest_digest), image_manifest),
        ("index.json".to_owned(), json(&index)?),
    ];
    Ok((Layout { files }, exported))
}

/// `<parent>/.<name>.partial-<pid>`: where a destination is written before its rename.
fn staging_path(dest: &Path) -> Result<PathBuf, OciError> {
    let name = dest.file_name().ok_or_else(|| OciError::Destination {
        path: dest.to_owned(),
        reason: "it has no file name".into(),
    })?;
    let mut staged = OsString::from(".");
    staged.push(name);
    staged.push(format!(".partial-{}", std::process::id()));
    Ok(dest.with_file_name(staged))
}

fn write_directory(layout: &Layout, dest: &Path) -> Result<(), OciError> {
    let staged = staging_path(dest)?;
    let _ = fs::remove_dir_all(&staged);
    let result = (|| {
        for (name, bytes) in &layout.files {
            let path = staged.join(name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(OciError::io("create directory", parent))?;
            }
            write_synced(&path, bytes).map_err(OciError::io("write", &path))?;
        }
        // An empty directory at dest is replaced by the rename.
        fs::rename(&staged, dest).map_err(OciError::io("rename into", dest))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staged);
    }
    result
}

fn write_tar(layout: &Layout, dest: &Path, mtime: u64) -> Result<(), OciError> {
    let staged = staging_path(dest)?;
    let _ = fs::remove_file(&staged);
    let result = (|| {
        let file = File::create_new(&staged).map_err(OciError::io("create", &staged))?;
        let mut tar = tar::Builder::new(file);
        let mut dirs: Vec<&str> = Vec::new();
        for (name, bytes) in &layout.files {
            // Each directory once, before its first file.
            let mut at = 0;
            while let Some(i) = name[at..].find('/') {
                let dir = &name[..at + i + 1];
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                    let mut header = header(tar::EntryType::Directory, 0o755, 0, mtime);
                    tar.append_data(&mut header, dir, io::empty()).map_err(OciError::io("write", &staged))?;
                }
                at += i + 1;
            }
            let mut header = header(tar::EntryType::Regular, 0o644, bytes.len() as u64, mtime);
            tar.append_data(&mut header, name, bytes.as_slice()).map_err(OciError::io("write", &staged))?;
        }
        let file = tar.into_inner().map_err(OciError::io("write", &staged))?;
        file.sync_all().map_err(OciError::io("sync", &staged))?;
        fs::rename(&staged, dest).map_err(OciError::io("rename into", dest))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&staged);
    }
    result
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create_new(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
