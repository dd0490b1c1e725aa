//! Reading an OCI image layout (a directory, or a tar of one) into the store. Every blob used
//! is checked against its descriptor (size, then SHA-256) before anything is registered, every
//! read is capped, and a layout archive is unpacked only into a private temporary directory.

use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use oci_spec::image::{
    ANNOTATION_REF_NAME, Arch, Descriptor, DigestAlgorithm, ImageConfiguration, ImageIndex, ImageManifest,
    MediaType, OciLayout, Os,
};
use serde::de::DeserializeOwned;

use super::archive::{self, Kind};
use super::{
    ANNOTATION_REFERENCE, ELF_PATH, Hashing, LABEL_MANIFEST, MAX_ELF_BYTES, MAX_JSON_BYTES, MAX_LAYER_BYTES,
    OciError, SPACECORE_PREFIX, is_over_limit, summary,
};
use crate::{ImageRef, Manifest, Store, is_sha256_hex};

/// What an import found and registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The reference it was registered as.
    pub reference: ImageRef,
    /// `<root>/<repository>/<tag>/image.elf`.
    pub path: PathBuf,
    /// The store manifest recorded in the layout (and now in the store).
    pub manifest: Manifest,
    /// The image's `org.opencontainers.image.ref.name` in `index.json`, if any.
    pub ref_name: Option<String>,
    /// `sha256:…` of the image manifest.
    pub manifest_digest: String,
    /// The blobs read, in order, each verified against its descriptor.
    pub verified: Vec<Verified>,
}

/// A blob that matched its descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `manifest`, `config` or `layer`.
    pub what: &'static str,
    /// `sha256:…`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// Imports the OCI image layout at `source` (a directory, or a tar of one) into `store`.
///
/// * `name` picks the image in `index.json` by its `org.opencontainers.image.ref.name`; without
///   it, `index.json` must list exactly one image.
/// * `reference` is the store reference to register it as; without it, the reference the
///   export recorded ([`ANNOTATION_REFERENCE`]).
///
/// Checked before anything is registered: `oci-layout`'s version; that each blob used (image
/// manifest, config, layer) is a regular file whose size and SHA-256 are its descriptor's, and
/// within the caps; the media types; the config's platform (`amd64`, `linux` or `none`) and the
/// layer's diff ID; the layer holds only [`ELF_PATH`] (and directories), no links, devices or
/// paths leaving it; the ELF's size and SHA-256 are those of the store manifest recorded in the
/// config, and no Spacecore label or annotation (`dev.spacecore.image.*`) contradicts that
/// manifest. The store then registers it
/// (hashing the ELF once more).
pub fn import(
    store: &Store,
    source: &Path,
    name: Option<&str>,
    reference: Option<&ImageRef>,
) -> Result<Imported, OciError> {
    let metadata = fs::metadata(source).map_err(OciError::io("open", source))?;
    let work = tempfile::Builder::new()
        .prefix("spacecore-oci-import-")
        .tempdir()
        .map_err(OciError::io("create a temporary directory in", std::env::temp_dir()))?;
    let root = if metadata.is_dir() {
        source.to_owned()
    } else {
        let unpacked = work.path().join("layout");
        fs::create_dir(&unpacked).map_err(OciError::io("create directory", &unpacked))?;
        archive::unpack_layout(source, &unpacked)?;
        unpacked
    };
    let layout = Layout { root, shown: source.to_owned() };
    let found = layout.read(name, &work.path().join(ELF_PATH))?;
    let reference = match reference {
        Some(r) => r.clone(),
        None => found.recorded.ok_or_else(|| {
            layout.invalid(format!(
                "the image manifest records no reference (annotation {ANNOTATION_REFERENCE}): give one (spacecore image import --tag REF)"
            ))
        })??,
    };
    let path = store.register(&reference.repository, &reference.tag, &found.elf, &found.manifest)?;
    Ok(Imported {
        reference,
        path,
        manifest: found.manifest,
        ref_name: found.ref_name,
        manifest_digest: found.manifest_digest,
        verified: found.verified,
    })
}

/// A layout directory being read.
struct Layout {
    root: PathBuf,
    /// What the user named (the directory, or the archive it was unpacked from).
    shown: PathBuf,
}

/// What [`Layout::read`] found, all verified.
struct Found {
    manifest: Manifest,
    /// The reference recorded in the image manifest, if any (and whether it parses).
    recorded: Option<Result<ImageRef, OciError>>,
    ref_name: Option<String>,
    manifest_digest: String,
    verified: Vec<Verified>,
    /// The ELF, written to the private directory.
    elf: PathBuf,
}

impl Layout {
    fn invalid(&self, reason: impl Into<String>) -> OciError {
        OciError::Layout { layout: self.shown.clone(), reason: reason.into() }
    }

    /// Reads and checks everything; writes the ELF to `elf_out`.
    fn read(&self, name: Option<&str>, elf_out: &Path) -> Result<Found, OciError> {
        let oci_layout: OciLayout = self.json_file("oci-layout")?;
        if oci_layout.image_layout_version() != "1.0.0" {
            return Err(self.invalid(format!(
                "oci-layout: imageLayoutVersion is {:?}; only \"1.0.0\" is known",
                oci_layout.image_layout_version()
            )));
        }
        let index: ImageIndex = self.json_file("index.json")?;
        if index.schema_version() != 2 {
            return Err(
                self.invalid(format!("index.json has schemaVersion {}, not 2", index.schema_version()))
            );
        }
        if let Some(media_type) = index.media_type()
            && *media_type != MediaType::ImageIndex
        {
            return Err(self
                .invalid(format!("index.json's mediaType is {media_type}, not {}", MediaType::ImageIndex)));
        }
        let entry = self.select(&index, name)?;
        let ref_name = entry.annotations().as_ref().and_then(|a| a.get(ANNOTATION_REF_NAME)).cloned();
        let mut verified = Vec::new();

        if *entry.media_type() != MediaType::ImageManifest {
            return Err(self.invalid(format!(
                "index.json: the image's mediaType is {}, not {}{}",
                entry.media_type(),
                MediaType::ImageManifest,
                if *entry.media_type() == MediaType::ImageIndex {
                    " (a nested index): copy the linux/amd64 image alone (skopeo copy without --all)"
                } else {
                    ""
                }
            )));
        }
        let bytes = self.json_blob(entry, "image manifest", &mut verified)?;
        let manifest: ImageManifest = self.parse(&bytes, "the image manifest")?;
        let manifest_digest = entry.digest().to_string();
        if manifest.schema_version() != 2 {
            return Err(self.invalid(format!(
                "the image manifest has schemaVersion {}, not 2",
                manifest.schema_version()
            )));
        }
        if let Some(media_type) = manifest.media_type()
            && *media_type != MediaType::ImageManifest
        {
            return Err(self.invalid(format!(
                "the image manifest's mediaType is {media_type}, not {}",
                MediaType::ImageManifest
            )));
        }

        let config_descriptor = manifest.config();
        if *config_descriptor.media_type() != MediaType::ImageConfig {
            return Err(self.invalid(format!(
                "the config's mediaType is {}, not {}",
                config_descriptor.media_type(),
                MediaType::ImageConfig
            )));
        }
        let bytes = self.json_blob(config_descriptor, "config", &mut verified)?;
        let config: ImageConfiguration = self.parse(&bytes, "the config")?;
        if *config.architecture() != Arch::Amd64 {
            return Err(
                self.invalid(format!("the config's architecture is {}, not amd64", config.architecture()))
            );
        }
        if !matches!(config.os(), Os::Linux) && config.os().to_string() != "none" {
            return Err(self.invalid(format!("the config's os is {}, not linux (or none)", config.os())));
        }
        let labels = config.config().as_ref().and_then(|c| c.labels().as_ref());
        let recorded_json = labels.and_then(|l| l.get(LABEL_MANIFEST)).ok_or_else(|| {
            self.invalid(format!(
                "the config has no {LABEL_MANIFEST} label: not an image exported from a Spacecore image store"
            ))
        })?;
        if recorded_json.len() as u64 > MAX_JSON_BYTES {
            return Err(self.invalid(format!("the config's {LABEL_MANIFEST} label is too long")));
        }
        let store_manifest: Manifest = serde_json::from_str(recorded_json).map_err(|e| {
            self.invalid(format!("the config's {LABEL_MANIFEST} label is not a store manifest: {e}"))
        })?;
        if !is_sha256_hex(&store_manifest.sha256) {
            return Err(self.invalid(format!(
                "the recorded manifest's sha256 {:?} is not 64 lowercase hex digits",
                store_manifest.sha256
            )));
        }
        if store_manifest.size_bytes > MAX_ELF_BYTES {
            return Err(self.invalid(format!(
                "the recorded manifest says the ELF is {} bytes, more than the {MAX_ELF_BYTES} accepted",
                store_manifest.size_bytes
            )));
        }
        // Spacecore's own keys must agree with the recorded manifest; the OCI ones
        // (org.opencontainers.image.*) are descriptive, and tools may rewrite them.
        let expected = summary(&store_manifest);
        for (place, map) in
            [("config label", labels), ("image manifest annotation", manifest.annotations().as_ref())]
        {
            for (key, value) in map.into_iter().flatten() {
                if let Some(want) = expected.get(key)
                    && key.starts_with(SPACECORE_PREFIX)
                    && want != value
                {
                    return Err(self.invalid(format!(
                        "the {place} {key} is {value:?}, but the recorded manifest says {want:?}"
                    )));
                }
            }
        }
        let rootfs = config.rootfs();
        if rootfs.typ() != "layers" || rootfs.diff_ids().len() != 1 {
            return Err(self.invalid(format!(
                "the config's rootfs is of type {:?} with {} diff IDs; expected \"layers\" with one",
                rootfs.typ(),
                rootfs.diff_ids().len()
            )));
        }

        let [layer] = manifest.layers().as_slice() else {
            return Err(
                self.invalid(format!("the image has {} layers; expected one", manifest.layers().len()))
            );
        };
        let gzip = match layer.media_type() {
            MediaType::ImageLayerGzip => true,
            MediaType::ImageLayer => false,
            MediaType::Other(t) if t == "application/vnd.docker.image.rootfs.diff.tar.gzip" => true,
            other => {
                return Err(self.invalid(format!(
                    "the layer's mediaType is {other}, not {} or {}",
                    MediaType::ImageLayerGzip,
                    MediaType::ImageLayer
                )));
            }
        };
        let (elf_size, elf_sha256) =
            self.layer(layer, gzip, &rootfs.diff_ids()[0], elf_out, &mut verified)?;
        if elf_size != store_manifest.size_bytes || elf_sha256 != format!("sha256:{}", store_manifest.sha256)
        {
            return Err(self.invalid(format!(
                "{ELF_PATH} is {elf_size} bytes with {elf_sha256}, but the recorded manifest says {} bytes with sha256:{}",
                store_manifest.size_bytes, store_manifest.sha256
            )));
        }
        let recorded = manifest.annotations().as_ref().and_then(|a| a.get(ANNOTATION_REFERENCE)).map(|r| {
            ImageRef::parse(r).map_err(|e| {
                self.invalid(format!("the image manifest's {ANNOTATION_REFERENCE} annotation: {e}"))
            })
        });
        Ok(Found {
            manifest: store_manifest,
            recorded,
            ref_name,
            manifest_digest,
            verified,
            elf: elf_out.to_owned(),
        })
    }

    /// The image of `index` to import.
    fn select<'a>(&self, index: &'a ImageIndex, name: Option<&str>) -> Result<&'a Descriptor, OciError> {
        let manifests = index.manifests();
        let ref_name =
            |d: &Descriptor| d.annotations().as_ref().and_then(|a| a.get(ANNOTATION_REF_NAME)).cloned();
        let names = || {
            let names: Vec<String> =
                manifests.iter().map(|d| ref_name(d).unwrap_or_else(|| "(no name)".into())).collect();
            names.join(", ")
        };
        match name {
            Some(name) => {
                let mut matching = manifests.iter().filter(|d| ref_name(d).as_deref() == Some(name));
                match (matching.next(), matching.next()) {
                    (Some(d), None) => Ok(d),
                    (None, _) => {
                        Err(self
                            .invalid(format!("index.json has no image named {name:?} (it has: {})", names())))
                    }
                    (Some(_), Some(_)) => {
                        Err(self.invalid(format!("index.json names more than one image {name:?}")))
                    }
                }
            }
            None => match manifests.as_slice() {
                [d] => Ok(d),
                [] => Err(self.invalid("index.json lists no image")),
                _ => Err(self.invalid(format!(
                    "index.json lists {} images ({}): name the one to import",
                    manifests.len(),
                    names()
                ))),
            },
        }
    }

    /// A top-level JSON file, at most [`MAX_JSON_BYTES`].
    fn json_file<T: DeserializeOwned>(&self, name: &str) -> Result<T, OciError> {
        let path = self.root.join(name);
        let file = self.open_regular(&path, name)?;
        let mut bytes = Vec::new();
        file.take(MAX_JSON_BYTES + 1).read_to_end(&mut bytes).map_err(OciError::io("read", &path))?;
        if bytes.len() as u64 > MAX_JSON_BYTES {
            return Err(self.invalid(format!("{name} is larger than {MAX_JSON_BYTES} bytes")));
        }
        self.parse(&bytes, name)
    }

    fn parse<T: DeserializeOwned>(&self, bytes: &[u8], what: &str) -> Result<T, OciError> {
        serde_json::from_slice(bytes).map_err(|e| self.invalid(format!("{what} is not valid: {e}")))
    }

    /// Opens `path`, which must be a regular file (not a symbolic link, device or FIFO).
    fn open_regular(&self, path: &Path, name: &str) -> Result<File, OciError> {
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(self.invalid(format!("{name} is missing")));
            }
            Err(e) => return Err(OciError::io("inspect", path)(e)),
            Ok(m) if !m.is_file() => {
                return Err(self.invalid(format!(
                    "{name} is not a regular file (a symbolic link, device or directory)"
                )));
            }
            Ok(_) => {}
        }
        let file = File::open(path).map_err(OciError::io("open", path))?;
        // It could have been swapped since; what was opened is what counts.
        if !file.metadata().map_err(OciError::io("inspect", path))?.is_file() {
            return Err(self.invalid(format!("{name} is not a regular file")));
        }
        Ok(file)
    }

    /// The blob of `descriptor`, opened after checking its digest's form, its size against the
    /// descriptor's and `cap`. Returns it with its name for messages.
    fn open_blob(&self, descriptor: &Descriptor, what: &str, cap: u64) -> Result<(File, String), OciError> {
        let digest = descriptor.digest();
        if *digest.algorithm() != DigestAlgorithm::Sha256 || !is_sha256_hex(digest.digest()) {
            return Err(self.invalid(format!(
                "the {what}'s digest {digest} is not a sha256 digest (the only algorithm supported)"
            )));
        }
        let name = format!("blobs/sha256/{}", digest.digest());
        if descriptor.size() > cap {
            return Err(self.invalid(format!(
                "the {what}'s descriptor says {} bytes, more than the {cap} accepted for it",
                descriptor.size()
            )));
        }
        let file = self.open_regular(&self.root.join(&name), &format!("the {what} blob {name}"))?;
        let len = file.metadata().map_err(OciError::io("inspect", self.root.join(&name)))?.len();
        if len != descriptor.size() {
            return Err(self.invalid(format!(
                "the {what} blob {name} is {len} bytes, but its descriptor says {}",
                descriptor.size()
            )));
        }
        Ok((file, name))
    }

    /// A JSON blob (image manifest or config), read whole and verified.
    fn json_blob(
        &self,
        descriptor: &Descriptor,
        what: &'static str,
        verified: &mut Vec<Verified>,
    ) -> Result<Vec<u8>, OciError> {
        let (file, name) = self.open_blob(descriptor, what, MAX_JSON_BYTES)?;
        let mut reader = Hashing::new(file, descriptor.size());
        let mut bytes = Vec::new();
        match reader.read_to_end(&mut bytes) {
            Ok(_) => {}
            Err(e) if is_over_limit(&e) => {
                return Err(self.invalid(format!(
                    "the {what} blob {name} grew past its descriptor's size while being read"
                )));
            }
            Err(e) => return Err(OciError::io("read", self.root.join(&name))(e)),
        }
        let (size, digest, _) = reader.finish();
        self.check_digest(descriptor, what, &name, size, &digest)?;
        verified.push(Verified { what, digest, size });
        Ok(bytes)
    }

    fn check_digest(
        &self,
        descriptor: &Descriptor,
        what: &str,
        name: &str,
        size: u64,
        digest: &str,
    ) -> Result<(), OciError> {
        if size != descriptor.size() || digest != descriptor.digest().to_string() {
            return Err(self.invalid(format!(
                "the {what} blob {name} is {size} bytes with {digest}, but its descriptor says {} bytes with {}: it was altered or damaged",
                descriptor.size(),
                descriptor.digest()
            )));
        }
        Ok(())
    }

    /// Reads the layer once: its SHA-256 (the blob, compressed), its diff ID (the tar), and the
    /// ELF into `elf_out`. Returns the ELF's size and `sha256:…`.
    fn layer(
        &self,
        descriptor: &Descriptor,
        gzip: bool,
        diff_id: &str,
        elf_out: &Path,
        verified: &mut Vec<Verified>,
    ) -> Result<(u64, String), OciError> {
        let (mut file, name) = self.open_blob(descriptor, "layer", MAX_LAYER_BYTES)?;
        // First the blob's digest alone, so that damage is reported as such rather than as
        // whatever the decompressor makes of it; then the pass that unpacks, hashed again.
        let mut first = Hashing::new(&mut file, descriptor.size());
        match first.drain() {
            Ok(()) => {}
            Err(e) if is_over_limit(&e) => {
                return Err(self.invalid(format!(
                    "the layer blob {name} grew past its descriptor's size while being read"
                )));
            }
            Err(e) => return Err(OciError::io("read", self.root.join(&name))(e)),
        }
        let (size, digest, _) = first.finish();
        self.check_digest(descriptor, "layer", &name, size, &digest)?;
        file.seek(io::SeekFrom::Start(0)).map_err(OciError::io("read", self.root.join(&name)))?;
        let blob = Hashing::new(file, descriptor.size());
        let stream = if gzip { Stream::Gzip(MultiGzDecoder::new(blob)) } else { Stream::Plain(blob) };
        let mut tar = tar::Archive::new(Hashing::new(stream, MAX_LAYER_BYTES));
        let read_error = |e: io::Error| {
            if is_over_limit(&e) {
                self.invalid(format!(
                    "the layer blob {name} is larger than its descriptor says, or decompresses to more than {MAX_LAYER_BYTES} bytes"
                ))
            } else {
                self.invalid(format!(
                    "the layer blob {name} is not a readable {}: {e}",
                    if gzip { "gzip tar" } else { "tar" }
                ))
            }
        };
        let mut elf = None;
        for entry in tar.entries().map_err(read_error)? {
            let mut entry = entry.map_err(read_error)?;
            let raw = entry.path_bytes().into_owned();
            let bad = |why: String| self.invalid(format!("the layer's entry {} {why}", archive::shown(&raw)));
            let parts = archive::components(&raw).map_err(bad)?;
            match archive::kind(entry.header().entry_type()).map_err(bad)? {
                Kind::Directory | Kind::Metadata => continue,
                Kind::File => {}
            }
            if parts != [ELF_PATH] {
                return Err(bad(format!("is unexpected: the layer holds only {ELF_PATH}")));
            }
            if elf.is_some() {
                return Err(bad("appears twice".into()));
            }
            if entry.size() > MAX_ELF_BYTES {
                return Err(bad(format!(
                    "is {} bytes, more than the {MAX_ELF_BYTES} accepted",
                    entry.size()
                )));
            }
            let mut out = File::create_new(elf_out).map_err(OciError::io("create", elf_out))?;
            let mut hashing = Hashing::new(&mut entry, MAX_ELF_BYTES);
            io::copy(&mut hashing, &mut out).map_err(read_error)?;
            out.sync_all().map_err(OciError::io("sync", elf_out))?;
            let (size, digest, _) = hashing.finish();
            elf = Some((size, digest));
        }
        // The rest of the tar (its end blocks) and of the blob count in the digests.
        let mut tar_stream = tar.into_inner();
        tar_stream.drain().map_err(read_error)?;
        let (_, tar_digest, stream) = tar_stream.finish();
        let mut blob = stream.into_inner();
        blob.drain().map_err(read_error)?;
        let (size, digest, _) = blob.finish();
        self.check_digest(descriptor, "layer", &name, size, &digest)?;
        verified.push(Verified { what: "layer", digest, size });
        if tar_digest != diff_id {
            return Err(self.invalid(format!(
                "the layer's uncompressed digest (diff ID) is {tar_digest}, but the config's rootfs says {diff_id}"
            )));
        }
        elf.ok_or_else(|| self.invalid(format!("the layer holds no {ELF_PATH}")))
    }
}

/// A layer's tar stream: gunzipped, or as stored.
enum Stream<R> {
    Gzip(MultiGzDecoder<R>),
    Plain(R),
}

impl<R: Read> Stream<R> {
    fn into_inner(self) -> R {
        match self {
            Stream::Gzip(d) => d.into_inner(),
            Stream::Plain(r) => r,
        }
    }
}

impl<R: Read> Read for Stream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Gzip(d) => d.read(buf),
            Stream::Plain(r) => r.read(buf),
        }
    }
}
