//! The Ethereum tools of the on-chain tests: Foundry's Anvil (a local EVM node) and solc-js (the
//! Solidity compiler built for Node), both npm packages at pinned versions. Each is installed
//! with `npm install --prefix target/tools/npm/<tool>-<version>` (into a scratch directory
//! first, renamed when complete, so a run cut short leaves no half install), checked by its
//! version output, and reused from there on later runs. Nothing on `PATH` is used: the tests
//! must run the pinned versions.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::cmd::{self, progress};

/// Where the on-chain tests find Anvil (an executable).
pub const ANVIL_ENV: &str = "SPACECORE_ANVIL";
/// Where the on-chain tests find solc-js's command-line script (`solc.js`, run with `node`).
pub const SOLCJS_ENV: &str = "SPACECORE_SOLCJS";

/// One pinned npm package and where its tool lies inside it.
struct Tool {
    /// For messages.
    name: &'static str,
    package: &'static str,
    version: &'static str,
    /// The tool's path inside the installed package.
    file: &'static str,
}

const ANVIL: Tool =
    Tool { name: "Anvil", package: "@foundry-rs/anvil-linux-amd64", version: "1.7.1", file: "bin/anvil" };

const SOLCJS: Tool = Tool { name: "solc-js", package: "solc", version: "0.8.30", file: "solc.js" };

/// The provided tools' paths.
#[derive(Debug)]
pub struct ChainTools {
    /// The Anvil executable.
    pub anvil: PathBuf,
    /// solc-js's `solc.js`.
    pub solcjs: PathBuf,
}

/// Anvil and solc-js at their pinned versions: installed before, or installed now.
pub fn provide() -> Result<ChainTools> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        bail!("{} is published for Linux on x86-64 only; the on-chain tests cannot run here", ANVIL.package);
    }
    let anvil = install(&ANVIL, |path| {
        let out = cmd::capture(Command::new(path).arg("--version"))?;
        // `anvil Version: 1.7.1` (then the commit and build lines).
        let first = out.lines().next().unwrap_or_default().trim();
        let version = first.strip_prefix("anvil Version: ").unwrap_or(first);
        Ok((version == ANVIL.version, version.to_owned()))
    })?;
    let solcjs = install(&SOLCJS, |path| {
        let out = cmd::capture(Command::new("node").arg(path).arg("--version"))?;
        // `0.8.30+commit.73712a01.Emscripten.clang`
        Ok((out.starts_with(&format!("{}+", SOLCJS.version)), out))
    })?;
    Ok(ChainTools { anvil, solcjs })
}

/// `cargo xtask chain-tools`: provides the tools and prints `export` lines for a shell, so the
/// on-chain tests can run alone (`eval "$(cargo xtask chain-tools)"`).
pub fn print_exports() -> Result<()> {
    let tools = provide()?;
    for (name, path) in [(ANVIL_ENV, &tools.anvil), (SOLCJS_ENV, &tools.solcjs)] {
        let text = path.to_str().with_context(|| format!("{} is not UTF-8", path.display()))?;
        if text.contains('\'') {
            bail!("{text} contains a quote; set {name} by hand");
        }
        println!("export {name}='{text}'");
    }
    Ok(())
}

/// Makes sure `node` and `npm` run, installing Debian's `nodejs` and `npm` packages with
/// apt-get when they do not (a fresh machine of this project's kind has them; this keeps the
/// test command self-sufficient where it does not).
fn ensure_node() -> Result<()> {
    let runs =
        |program: &str| Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success());
    if runs("node") && runs("npm") {
        return Ok(());
    }
    progress("node or npm is missing: installing Debian's nodejs and npm packages (apt-get)...");
    cmd::run(Command::new("apt-get").args(["update", "-qq"]))?;
    cmd::run(Command::new("apt-get").args([
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "nodejs",
        "npm",
    ]))
    .context("cannot install nodejs and npm with apt-get (run as root, or install them)")
}

/// Installs `tool` unless a checked install is there; `check` runs the tool and says whether
/// its version output names the pinned version (with that output, for messages).
fn install(tool: &Tool, check: impl Fn(&Path) -> Result<(bool, String)>) -> Result<PathBuf> {
    let base = cmd::target_dir().join("tools/npm");
    let short = tool.package.rsplit('/').next().unwrap_or(tool.package);
    let prefix = base.join(format!("{short}-{}", tool.version));
    let path = prefix.join("node_modules").join(tool.package).join(tool.file);
    if path.exists() {
        match check(&path) {
            Ok((true, version)) => {
                progress(format_args!("{} {} (cached): {}", tool.name, version, path.display()));
                return Ok(path);
            }
            Ok((false, version)) => progress(format_args!(
                "{} reports `{version}`, not {}: installing again",
                path.display(),
                tool.version
            )),
            Err(e) => progress(format_args!("{} does not run ({e:#}): installing again", path.display())),
        }
    }
    let scratch = base.join(format!("{short}-{}.partial", tool.version));
    for dir in [&scratch, &prefix] {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
    }
    fs::create_dir_all(&scratch).with_context(|| format!("cannot create {}", scratch.display()))?;
    ensure_node()?;
    let spec = format!("{}@{}", tool.package, tool.version);
    progress(format_args!("installing {} ({spec}) with npm into {}...", tool.name, prefix.display()));
    let started = Instant::now();
    // No install scripts: both packages ship their tool in the tarball. npm's report goes to
    // stderr: stdout may be a shell's `eval` input (`print_exports`).
    cmd::run(
        Command::new("npm")
            .stdout(Stdio::from(io::stderr()))
            .arg("install")
            .arg("--prefix")
            .arg(&scratch)
            .args([
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--loglevel=error",
                spec.as_str(),
            ]),
    )
    .with_context(|| format!("cannot install {spec} (are node and npm installed?)"))?;
    fs::rename(&scratch, &prefix)
        .with_context(|| format!("cannot rename {} to {}", scratch.display(), prefix.display()))?;
    let (ok, version) =
        check(&path).with_context(|| format!("{} does not run after installing {spec}", path.display()))?;
    if !ok {
        bail!("{} reports `{version}` after installing {spec}", path.display());
    }
    progress(format_args!(
        "{} {version} installed in {:.1} s: {}",
        tool.name,
        started.elapsed().as_secs_f64(),
        path.display()
    ));
    Ok(path)
}
