//! `cargo xtask build-image`: builds an image for `x86_64-unknown-none`, copies
//! the ELF to `images/` with its manifest beside it, and registers it in the
//! image store.
//!
//! With `--avs PATH`, PATH is an AVS crate (it implements `spacecore_avs::Avs`
//! and exports it); the image is a small binary crate written under
//! `kernel-app/target/avs/NAME/` that links the runtime (kernel-app) with it,
//! registered as `NAME:VERSION` and `NAME:latest` from the AVS crate's package.
//! Without `--avs`, or with `--avs incredible-squaring`, the AVS is the
//! repository's `avs/incredible-squaring`, and the image is also the default
//! one: `images/spacecore.elf`, registered as `spacecore:latest` too.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
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
    /// The AVS built into the image: `incredible-squaring` (the runtime's own task path), or
    /// the directory of an AVS crate (one that implements `spacecore_avs::Avs`).
    #[arg(long, value_name = "incredible-squaring|PATH", default_value = DEFAULT_AVS)]
    pub avs: String,
    /// Cargo features to enable (comma separated, repeatable): kernel-app's, or with
    /// `--avs PATH` the AVS crate's.
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
    let source = Source::of(&args.avs, &workspace)?;
    let (built, package) = match &source {
        Source::Default(dir) | Source::Crate(dir) => {
            let package = avs_package(dir)?;
            let image_crate = write_image_crate(&kernel_app, dir, &package)?;
            progress(format_args!(
                "building AVS {} {} from {} into an image ({PROFILE}, {KERNEL_TARGET})...",
                package.name,
                package.version,
                dir.display()
            ));
            let mut cargo = cmd::cargo(&image_crate);
            cargo.args(["build", "--release", "--target", KERNEL_TARGET]);
            // One target directory with kernel-app's own build: the runtime's dependencies are
            // compiled once for every image.
            cargo.env("CARGO_TARGET_DIR", kernel_app.join("target"));
            if !features.is_empty() {
                let features: Vec<String> = features.iter().map(|f| format!("avs/{f}")).collect();
                cargo.arg("--features").arg(features.join(","));
            }
            cmd::run(&mut cargo)?;
            let binary = image_binary(&package.name);
            (kernel_app.join("target").join(KERNEL_TARGET).join(PROFILE).join(binary), package)
        }
    };
    let avs = package.name.clone();
    // The default image keeps the default name (`images/spacecore.elf`, `spacecore:latest`).
    let file_name = if matches!(source, Source::Default(_)) { IMAGE_NAME } else { package.name.as_str() };
    if package.stateless {
        progress(format_args!(
            "{} declares itself stateless ([package.metadata.spacecore] stateless = true): the manifest says so",
            package.name
        ));
    }

    let images = workspace.join("images");
    fs::create_dir_all(&images).with_context(|| format!("cannot create {}", images.display()))?;
    let elf = images.join(format!("{file_name}.elf"));
    progress(format_args!("copying {} to {}...", built.display(), elf.display()));
    fs::copy(&built, &elf)
        .with_context(|| format!("cannot copy {} to {}", built.display(), elf.display()))?;

    let manifest = Manifest {
        name: package.name.clone(),
        version: package.version.clone(),
        size_bytes: fs::metadata(&elf).with_context(|| format!("cannot inspect {}", elf.display()))?.len(),
        sha256: sha256_file(&elf).with_context(|| format!("cannot read {}", elf.display()))?,
        built_at_unix: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        git_commit: git_commit(&workspace),
        rustc: cmd::capture(Command::new("rustc").arg("-V").current_dir(&kernel_app))?,
        profile: PROFILE.to_owned(),
        target: KERNEL_TARGET.to_owned(),
        avs,
        features,
        stateless: package.stateless,
    };
    let manifest_path = images.join(format!("{file_name}.json"));
    let mut json = serde_json::to_string_pretty(&manifest)?;
    json.push('\n');
    fs::write(&manifest_path, json).with_context(|| format!("cannot write {}", manifest_path.display()))?;

    let mut wanted = vec![
        ImageRef::new(&package.name, image_store::DEFAULT_TAG)?,
        ImageRef::new(&package.name, &package.version)?,
    ];
    if matches!(source, Source::Default(_)) {
        wanted.insert(0, ImageRef::new(IMAGE_NAME, image_store::DEFAULT_TAG)?);
    }
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

/// What an image is built from: an AVS crate, by its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// The repository's incredible-squaring: the default image.
    Default(PathBuf),
    /// Any other AVS crate.
    Crate(PathBuf),
}

impl Source {
    /// `incredible-squaring` (the crate in `workspace`'s `avs/`), or the directory of an AVS
    /// crate.
    fn of(avs: &str, workspace: &Path) -> Result<Source> {
        if avs == DEFAULT_AVS {
            return Ok(Source::Default(workspace.join("avs").join(DEFAULT_AVS)));
        }
        let dir = Path::new(avs);
        if !dir.join("Cargo.toml").is_file() {
            bail!(
                "--avs {avs}: neither `{DEFAULT_AVS}` nor the directory of an AVS crate (no {})",
                dir.join("Cargo.toml").display()
            );
        }
        let dir = dir.canonicalize().with_context(|| format!("cannot resolve {}", dir.display()))?;
        if workspace.join("avs").join(DEFAULT_AVS).canonicalize().is_ok_and(|d| d == dir) {
            return Ok(Source::Default(dir));
        }
        Ok(Source::Crate(dir))
    }
}

/// A crate's name and version, and whether it declares itself stateless.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Package {
    name: String,
    version: String,
    /// `[package.metadata.spacecore] stateless` (default false): the AVS keeps nothing on a
    /// disk and signs no tasks, so its spacecore may run as several replicas.
    stateless: bool,
}

/// The AVS crate's package, with a name an image can be registered under.
fn avs_package(dir: &Path) -> Result<Package> {
    let manifest = dir.join("Cargo.toml");
    let package = read_package(&manifest)?;
    if package.name == IMAGE_NAME {
        bail!(
            "{}: an AVS crate may not be named `{}`: the name is the runtime's",
            manifest.display(),
            package.name
        );
    }
    ImageRef::new(&package.name, &package.version).with_context(|| {
        format!(
            "{}: `{}` `{}` is not an image name and tag",
            manifest.display(),
            package.name,
            package.version
        )
    })?;
    Ok(package)
}

/// The binary of the image crate of AVS `name` (not `spacecore`: kernel-app's own binary
/// shares the target directory).
fn image_binary(name: &str) -> String {
    format!("image-{name}")
}

/// Writes the binary crate that links the runtime (kernel-app) with the AVS crate at `avs`,
/// under `kernel-app/target/avs/NAME/` (inside kernel-app, so its `.cargo/config.toml`, the
/// guest target's flags, applies). Its release profile is kernel-app's; its lockfile starts as
/// a copy of kernel-app's, so the runtime's dependencies keep their versions.
fn write_image_crate(kernel_app: &Path, avs: &Path, package: &Package) -> Result<PathBuf> {
    let dir = kernel_app.join("target").join("avs").join(&package.name);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let kernel_toml =
        fs::read_to_string(kernel_app.join("Cargo.toml")).context("cannot read kernel-app's Cargo.toml")?;
    let profile = profile_table(&kernel_toml)?;
    let manifest = image_manifest(kernel_app, avs, package, &profile)?;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write("Cargo.toml", &manifest)?;
    write(
        "main.rs",
        "//! An image: the Spacecore runtime linked with one AVS crate (written by `cargo xtask build-image`).\n\
         #![no_std]\n#![no_main]\n\n// The AVS exports itself (`spacecore_avs::export!`); naming the crate links it.\n\
         extern crate avs;\n\nspacecore_runtime::entry!();\n",
    )?;
    write(
        "build.rs",
        &format!(
            "fn main() {{\n    println!(\"cargo:rustc-link-arg-bins=-T{}\");\n}}\n",
            kernel_app.join("linker.ld").display()
        ),
    )?;
    let lock = dir.join("Cargo.lock");
    if !lock.exists() {
        fs::copy(kernel_app.join("Cargo.lock"), &lock).context("cannot copy kernel-app's Cargo.lock")?;
    }
    Ok(dir)
}

/// kernel-app's `[profile]` table.
fn profile_table(kernel_toml: &str) -> Result<toml::Table> {
    let table: toml::Table = toml::from_str(kernel_toml).context("kernel-app's Cargo.toml")?;
    match table.get("profile") {
        Some(toml::Value::Table(profile)) => Ok(profile.clone()),
        _ => bail!("kernel-app's Cargo.toml has no [profile] table"),
    }
}

/// The image crate's Cargo.toml.
fn image_manifest(kernel_app: &Path, avs: &Path, package: &Package, profile: &toml::Table) -> Result<String> {
    let mut root = toml::Table::new();
    let mut pkg = toml::Table::new();
    pkg.insert("name".into(), format!("spacecore-image-{}", package.name).into());
    pkg.insert("version".into(), package.version.clone().into());
    pkg.insert("edition".into(), "2024".into());
    pkg.insert("publish".into(), false.into());
    root.insert("package".into(), pkg.into());
    let mut bin = toml::Table::new();
    bin.insert("name".into(), image_binary(&package.name).into());
    bin.insert("path".into(), "main.rs".into());
    bin.insert("test".into(), false.into());
    root.insert("bin".into(), toml::Value::Array(vec![bin.into()]));
    let dep = |name: &str, path: &Path| {
        let mut d = toml::Table::new();
        d.insert("package".into(), name.into());
        d.insert("path".into(), path.display().to_string().into());
        toml::Value::Table(d)
    };
    let mut deps = toml::Table::new();
    deps.insert("spacecore-runtime".into(), dep("kernel-app", kernel_app));
    deps.insert("avs".into(), dep(&package.name, avs));
    root.insert("dependencies".into(), deps.into());
    root.insert("workspace".into(), toml::Table::new().into());
    root.insert("profile".into(), profile.clone().into());
    let mut text = String::from("# Written by `cargo xtask build-image --avs`; rewritten on every build.\n");
    text.push_str(&toml::to_string(&root).context("cannot write the image crate's Cargo.toml")?);
    Ok(text)
}

/// The `[package]` of the Cargo.toml at `path` ([`parse_package`]).
fn read_package(path: &Path) -> Result<Package> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_package(&text).with_context(|| format!("{}", path.display()))
}

/// `[package] name` and `version` (literal strings, not inherited from a workspace), and
/// `[package.metadata.spacecore] stateless` (a boolean, default false).
fn parse_package(cargo_toml: &str) -> Result<Package> {
    #[derive(Deserialize)]
    struct CargoToml {
        package: Named,
    }
    #[derive(Deserialize)]
    struct Named {
        name: String,
        version: String,
        #[serde(default)]
        metadata: Option<toml::Table>,
    }
    let package = toml::from_str::<CargoToml>(cargo_toml)
        .context("no [package] with a literal name and version string")?
        .package;
    let declared =
        package.metadata.as_ref().and_then(|m| m.get("spacecore")).and_then(|s| s.get("stateless"));
    let stateless = match declared {
        None => false,
        Some(toml::Value::Boolean(b)) => *b,
        Some(other) => bail!("[package.metadata.spacecore] stateless = {other}: expected true or false"),
    };
    Ok(Package { name: package.name, version: package.version, stateless })
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
        assert_eq!(parse_package(toml).unwrap().version, "0.3.1");
        assert!(parse_package("[package]\nversion.workspace = true\n").is_err());
    }

    #[test]
    fn an_avs_is_the_built_in_one_or_a_crate_directory() {
        let root = cmd::workspace_root();
        let default = root.join("avs").join(DEFAULT_AVS);
        assert_eq!(Source::of(DEFAULT_AVS, &root).unwrap(), Source::Default(default.clone()));
        assert_eq!(
            Source::of(default.to_str().unwrap(), &root).unwrap(),
            Source::Default(default.canonicalize().unwrap()),
            "the default AVS by its path is the default image too"
        );
        let err = Source::of("/nonexistent/avs", &root).unwrap_err().to_string();
        assert!(err.contains("neither `incredible-squaring` nor the directory of an AVS crate"), "{err}");
        let sdk = cmd::workspace_root().join("sdk");
        assert_eq!(
            Source::of(sdk.to_str().unwrap(), &root).unwrap(),
            Source::Crate(sdk.canonicalize().unwrap())
        );
    }

    #[test]
    fn the_image_crate_links_the_runtime_and_the_avs_with_kernel_apps_profile() {
        let kernel_app = cmd::kernel_app_dir();
        let profile = profile_table(&fs::read_to_string(kernel_app.join("Cargo.toml")).unwrap()).unwrap();
        let package = Package { name: "hello-avs".into(), version: "0.2.0".into(), stateless: false };
        let text = image_manifest(&kernel_app, Path::new("/x/hello"), &package, &profile).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(table["package"]["name"].as_str(), Some("spacecore-image-hello-avs"));
        assert_eq!(table["bin"][0]["name"].as_str(), Some("image-hello-avs"));
        assert_eq!(table["dependencies"]["avs"]["package"].as_str(), Some("hello-avs"));
        assert_eq!(table["dependencies"]["avs"]["path"].as_str(), Some("/x/hello"));
        assert_eq!(table["dependencies"]["spacecore-runtime"]["package"].as_str(), Some("kernel-app"));
        assert_eq!(table["profile"]["release"]["panic"].as_str(), Some("abort"));
        assert_eq!(table["profile"]["release"]["package"]["blst"]["opt-level"].as_integer(), Some(3));
        assert!(table.contains_key("workspace"));
    }

    #[test]
    fn an_avs_needs_a_literal_name_and_version_that_are_not_the_runtimes() {
        let package = parse_package("[package]\nname = \"hello-avs\"\nversion = \"0.2.0\"\n").unwrap();
        assert_eq!(package, Package { name: "hello-avs".into(), version: "0.2.0".into(), stateless: false });
        assert!(parse_package("[package]\nname = \"x\"\nversion.workspace = true\n").is_err());
    }

    #[test]
    fn an_avs_declares_itself_stateless_in_its_package_metadata() {
        let head = "[package]\nname = \"echo\"\nversion = \"0.1.0\"\n";
        let stateless = |extra: &str| parse_package(&format!("{head}{extra}")).map(|p| p.stateless);
        assert!(stateless("\n[package.metadata.spacecore]\nstateless = true\n").unwrap());
        assert!(!stateless("\n[package.metadata.spacecore]\nstateless = false\n").unwrap());
        assert!(!stateless("\n[package.metadata.other]\nstateless = true\n").unwrap());
        assert!(!stateless("").unwrap());
        let err = stateless("\n[package.metadata.spacecore]\nstateless = \"yes\"\n").unwrap_err().to_string();
        assert!(err.contains("expected true or false"), "{err}");
    }
}
