//! `cargo xtask build-image`: builds kernel-app for `x86_64-unknown-none`,
//! copies the ELF to `images/spacecore.elf` with its manifest beside it, and
//! registers it in the image store.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use image_store::{ImageRef, Manifest, Store, sha256_file};
use serde::Deserialize;

use crate::cmd::{self, KERNEL_TARGET, kib, progress};

/// The image's name, its binary's name, and the repository it is always
/// registered under (as `spacecore:latest`).
pub const IMAGE_NAME: &str = "spacecore";
/// Images above this size get a warning (the budget is 1 MiB).
pub const SIZE_BUDGET_BYTES: u64 = 1024 * 1024;
const PROFILE: &str = "release";
const DEFAULT_AVS: &str = "incredible-squaring";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Also register the image as REF (`repo:tag`, or `repo` for `repo:latest`). Repeatable.
    #[arg(long = "tag", value_name = "REF", value_parser = ImageRef::parse)]
    pub tags: Vec<ImageRef>,
    /// The AVS built into the image.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_AVS,
          value_parser = clap::builder::PossibleValuesParser::new([DEFAULT_AVS]))]
    pub avs: String,
    /// Cargo features of kernel-app to enable (comma separated, repeatable).
    #[arg(long, value_name = "F,...", value_delimiter = ',')]
    pub features: Vec<String>,
}

impl Default for Args {
    fn default() -> Self {
        Args { tags: Vec::new(), avs: DEFAULT_AVS.to_owned(), features: Vec::new() }
    }
}

/// A built and registered image.
#[derive(Debug)]
pub struct Built {
    /// `images/spacecore.elf`.
    pub elf: PathBuf,
    /// `images/spacecore.json`.
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
    pub store_root: PathBuf,
    /// Each reference it was registered as, with the stored ELF's path.
    pub refs: Vec<(ImageRef, PathBuf)>,
}

pub fn run(args: &Args) -> Result<()> {
    let built = build(args, &Store::open_default())?;
    print_summary(&built);
    Ok(())
}

/// Builds the image and registers it in `store`, announcing each step.
pub fn build(args: &Args, store: &Store) -> Result<Built> {
    let workspace = cmd::workspace_root();
    let kernel_app = cmd::kernel_app_dir();
    let mut features = args.features.clone();
    features.retain(|f| !f.trim().is_empty());
    features.sort();
    features.dedup();

    cmd::ensure_kernel_target()?;
    progress(format_args!("building kernel-app ({PROFILE}, {KERNEL_TARGET})..."));
    let mut cargo = cmd::cargo(&kernel_app);
    cargo.args(["build", "--release", "--target", KERNEL_TARGET]);
    if !features.is_empty() {
        cargo.arg("--features").arg(features.join(","));
    }
    cmd::run(&mut cargo)?;

    let built = kernel_app.join("target").join(KERNEL_TARGET).join(PROFILE).join(IMAGE_NAME);
    let images = workspace.join("images");
    fs::create_dir_all(&images).with_context(|| format!("cannot create {}", images.display()))?;
    let elf = images.join(format!("{IMAGE_NAME}.elf"));
    progress(format_args!("copying {} to {}...", built.display(), elf.display()));
    fs::copy(&built, &elf)
        .with_context(|| format!("cannot copy {} to {}", built.display(), elf.display()))?;

    let manifest = Manifest {
        name: IMAGE_NAME.to_owned(),
        version: kernel_app_version(&kernel_app.join("Cargo.toml"))?,
        size_bytes: fs::metadata(&elf).with_context(|| format!("cannot inspect {}", elf.display()))?.len(),
        sha256: sha256_file(&elf).with_context(|| format!("cannot read {}", elf.display()))?,
        built_at_unix: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        git_commit: git_commit(&workspace),
        rustc: cmd::capture(Command::new("rustc").arg("-V").current_dir(&kernel_app))?,
        profile: PROFILE.to_owned(),
        target: KERNEL_TARGET.to_owned(),
        avs: args.avs.clone(),
        features,
    };
    let manifest_path = images.join(format!("{IMAGE_NAME}.json"));
    let mut json = serde_json::to_string_pretty(&manifest)?;
    json.push('\n');
    fs::write(&manifest_path, json).with_context(|| format!("cannot write {}", manifest_path.display()))?;

    let mut wanted = vec![ImageRef::new(IMAGE_NAME, image_store::DEFAULT_TAG)?];
    for tag in &args.tags {
        if !wanted.contains(tag) {
            wanted.push(tag.clone());
        }
    }
    progress(format_args!("registering in the image store at {}...", store.root().display()));
    let mut refs = Vec::new();
    for image in wanted {
        let path = store
            .register(&image.repository, &image.tag, &elf, &manifest)
            .with_context(|| format!("cannot register {image}"))?;
        refs.push((image, path));
    }
    if manifest.size_bytes > SIZE_BUDGET_BYTES {
        progress(format_args!(
            "WARNING: the image is {} ({} bytes), over the 1 MiB budget",
            kib(manifest.size_bytes),
            manifest.size_bytes
        ));
    }
    Ok(Built { elf, manifest_path, manifest, store_root: store.root().to_owned(), refs })
}

/// Prints where the image is and what it is, on stdout.
pub fn print_summary(built: &Built) {
    let m = &built.manifest;
    println!("image:    {}", built.elf.display());
    println!("manifest: {}", built.manifest_path.display());
    println!("size:     {} bytes ({}; budget 1024.0 KiB)", m.size_bytes, kib(m.size_bytes));
    println!("sha256:   {}", m.sha256);
    println!("version:  {} (avs {}, git {})", m.version, m.avs, m.git_commit.as_deref().unwrap_or("unknown"));
    println!("store:    {}", built.store_root.display());
    for (image, path) in &built.refs {
        println!("  {image} -> {}", path.display());
    }
}

/// `[package] version` of kernel-app's Cargo.toml.
fn kernel_app_version(cargo_toml: &Path) -> Result<String> {
    let text =
        fs::read_to_string(cargo_toml).with_context(|| format!("cannot read {}", cargo_toml.display()))?;
    parse_version(&text).with_context(|| format!("no [package] version string in {}", cargo_toml.display()))
}

fn parse_version(cargo_toml: &str) -> Result<String> {
    #[derive(Deserialize)]
    struct CargoToml {
        package: Package,
    }
    #[derive(Deserialize)]
    struct Package {
        version: String,
    }
    Ok(toml::from_str::<CargoToml>(cargo_toml)?.package.version)
}

/// `git rev-parse HEAD`, or `None` outside a git checkout or before the first commit.
fn git_commit(workspace: &Path) -> Option<String> {
    cmd::capture(Command::new("git").args(["rev-parse", "HEAD"]).current_dir(workspace))
        .ok()
        .filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_comes_from_the_package_table() {
        let toml = "[package]\nname = \"spacecore\"\nversion = \"0.3.1\"\n\n[dependencies]\n";
        assert_eq!(parse_version(toml).unwrap(), "0.3.1");
        assert!(parse_version("[package]\nversion.workspace = true\n").is_err());
    }
}
