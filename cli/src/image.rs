//! `spacecore image export | import`: store entries as OCI image layouts, to move images with
//! OCI tools (`skopeo`, `crane`, a registry). The image store is the default one
//! (`$SPACECORE_IMAGE_STORE`, ...; docs/image-store.md); the layout is `image_store::oci`'s.

use crate::Outcome;
use crate::keys::json::print;
use anyhow::Result;
use clap::Subcommand;
use image_store::oci::{self, Format};
use image_store::{ImageRef, Store};
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum Image {
    /// Write a store entry as an OCI image layout directory (or, with --tar, one tar of it), for
    /// `skopeo copy oci:DIR:TAG docker://...` and other OCI tools.
    Export {
        /// The entry, `repository[:tag]` (`:latest` when the tag is left out).
        #[arg(value_name = "REF", value_parser = parse_ref)]
        reference: ImageRef,
        /// The layout directory to create (absent or empty), or with --tar the archive file.
        #[arg(value_name = "DIR")]
        dest: PathBuf,
        /// Write one tar of the layout (skopeo's `oci-archive:`) instead of a directory.
        #[arg(long)]
        tar: bool,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Read an OCI image layout (directory or tar) written by `image export`, or copied from one
    /// by an OCI tool, into the image store, after verifying every blob it uses.
    Import {
        /// The layout directory, or a tar of one.
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// The reference to register it as; without it, the one the export recorded.
        #[arg(long, value_name = "REF", value_parser = parse_ref)]
        tag: Option<ImageRef>,
        /// The image to take from a layout listing several: its
        /// `org.opencontainers.image.ref.name` (what follows `oci:DIR:` in skopeo).
        #[arg(long, value_name = "REF_NAME")]
        name: Option<String>,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn parse_ref(text: &str) -> Result<ImageRef, String> {
    ImageRef::parse(text).map_err(|e| e.to_string())
}

impl Image {
    pub fn run(self) -> Result<Outcome> {
        let store = Store::open_default();
        match self {
            Image::Export { reference, dest, tar, json } => export(&store, &reference, &dest, tar, json),
            Image::Import { path, tag, name, json } => {
                import(&store, &path, tag.as_ref(), name.as_deref(), json)
            }
        }
    }
}

fn export(store: &Store, reference: &ImageRef, dest: &Path, tar: bool, as_json: bool) -> Result<Outcome> {
    let format = if tar { Format::Tar } else { Format::Directory };
    if !as_json {
        eprintln!("exporting {reference} from the image store at {}...", store.root().display());
    }
    let done = oci::export(store, reference, dest, format)?;
    let transport = if tar { "oci-archive" } else { "oci" };
    if as_json {
        print(&json!({
            "reference": done.reference.to_string(),
            "path": done.path,
            "format": if tar { "tar" } else { "directory" },
            "ref_name": done.reference.tag,
            "manifest_digest": done.manifest_digest,
            "config_digest": done.config_digest,
            "layer_digest": done.layer_digest,
            "layer_size": done.layer_size,
            "elf_sha256": done.manifest.sha256,
            "elf_size": done.manifest.size_bytes,
        }));
        return Ok(Outcome::Done);
    }
    let m = &done.manifest;
    println!("wrote OCI image {} {}", if tar { "layout archive" } else { "layout" }, done.path.display());
    println!("  image:     {} {} ({} AVS), {}", m.name, m.version, m.avs, done.reference);
    println!("  ref name:  {}", done.reference.tag);
    println!("  manifest:  {}", done.manifest_digest);
    println!("  config:    {}", done.config_digest);
    println!(
        "  layer:     {} ({} bytes, a gzip tar of {})",
        done.layer_digest,
        done.layer_size,
        oci::ELF_PATH
    );
    println!("  ELF:       sha256:{} ({} bytes)", m.sha256, m.size_bytes);
    println!(
        "copy it with: skopeo copy {transport}:{}:{} docker://REGISTRY/{}:{}",
        done.path.display(),
        done.reference.tag,
        done.reference.repository,
        done.reference.tag
    );
    Ok(Outcome::Done)
}

fn import(
    store: &Store,
    path: &Path,
    tag: Option<&ImageRef>,
    name: Option<&str>,
    as_json: bool,
) -> Result<Outcome> {
    if !as_json {
        eprintln!(
            "importing OCI image layout {} into the image store at {}...",
            path.display(),
            store.root().display()
        );
    }
    let done = oci::import(store, path, name, tag)?;
    let m = &done.manifest;
    if as_json {
        print(&json!({
            "reference": done.reference.to_string(),
            "path": done.path,
            "ref_name": done.ref_name,
            "manifest_digest": done.manifest_digest,
            "verified": done.verified.iter().map(|v| json!({
                "blob": v.what,
                "digest": v.digest,
                "size": v.size,
            })).collect::<Vec<_>>(),
            "elf_sha256": m.sha256,
            "elf_size": m.size_bytes,
            "name": m.name,
            "version": m.version,
            "avs": m.avs,
        }));
        return Ok(Outcome::Done);
    }
    for v in &done.verified {
        println!("verified {} {} ({} bytes)", v.what, v.digest, v.size);
    }
    println!("verified {}: sha256:{} ({} bytes), as recorded", oci::ELF_PATH, m.sha256, m.size_bytes);
    println!(
        "registered {}: {} {} ({} AVS) at {}",
        done.reference,
        m.name,
        m.version,
        m.avs,
        done.path.display()
    );
    println!("pin it in a spec as: {}@sha256:{}", done.reference, m.sha256);
    Ok(Outcome::Done)
}
