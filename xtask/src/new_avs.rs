//! `cargo xtask new-avs NAME [--dir DIR]`: writes an AVS crate, from the template in
//! `xtask/templates/avs/`, that builds into an image with `build-image --avs DIR`, boots, and
//! passes its own unit tests (`cargo test` in DIR). Its SDK dependency is this repository's
//! `sdk/`, by absolute path.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cmd::{self, progress};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The AVS's crate name: lowercase letters, digits and `-`, starting with a letter; also its
    /// image's name.
    pub name: String,
    /// Where to write the crate (default: ./NAME); must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// The template's files: path in the new crate, text with `{{name}}`, `{{ident}}`, `{{dir}}`
/// and `{{sdk}}` to fill in.
const FILES: [(&str, &str); 4] = [
    ("Cargo.toml", include_str!("../templates/avs/Cargo.toml.in")),
    ("src/lib.rs", include_str!("../templates/avs/src/lib.rs.in")),
    ("spacecore.toml", include_str!("../templates/avs/spacecore.toml.in")),
    ("README.md", include_str!("../templates/avs/README.md.in")),
];

pub fn run(args: &Args) -> Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    let written = write(&args.name, &dir)?;
    println!("wrote the AVS crate {} in {}", args.name, written.display());
    println!("next: cd {} && cargo test", written.display());
    println!("      cargo xtask build-image --avs {}   (in this repository)", written.display());
    println!("      hac-launch {}/spacecore.toml", written.display());
    Ok(())
}

/// Writes AVS `name` in `dir`; returns `dir`, absolute.
pub fn write(name: &str, dir: &Path) -> Result<PathBuf> {
    check_name(name)?;
    if dir.exists()
        && fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?.next().is_some()
    {
        bail!("{} exists and is not empty: choose another --dir", dir.display());
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize().with_context(|| format!("cannot resolve {}", dir.display()))?;
    let sdk = cmd::workspace_root().join("sdk");
    for (path, template) in FILES {
        let text = fill(template, name, &dir, &sdk);
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        progress(format_args!("writing {}", path.display()));
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(dir)
}

/// A crate name that is also an image name and a metric prefix once `-` becomes `_`.
fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!("`{name}`: an AVS name is 1 to 64 lowercase letters, digits and `-`, starting with a letter");
    }
    if matches!(name, "spacecore" | "incredible-squaring" | "spacecore-avs" | "kernel-app") {
        bail!("`{name}` is taken by the runtime");
    }
    Ok(())
}

fn fill(template: &str, name: &str, dir: &Path, sdk: &Path) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{ident}}", &name.replace('-', "_"))
        .replace("{{dir}}", &dir.display().to_string())
        .replace("{{sdk}}", &sdk.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_crate_image_and_metric_names() {
        for good in ["hello", "my-avs2", "a"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Hello", "2avs", "my_avs", "avs-", "a/b", "spacecore", "incredible-squaring"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_template_is_filled_everywhere() {
        let dir = std::env::temp_dir().join(format!("xtask-new-avs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let written = write("my-avs", &dir).unwrap();
        for (path, _) in FILES {
            let text = fs::read_to_string(written.join(path)).unwrap();
            assert!(!text.contains("{{"), "{path} keeps a placeholder");
        }
        let lib = fs::read_to_string(written.join("src/lib.rs")).unwrap();
        assert!(lib.contains("my_avs_calls_total") && lib.contains("hello from my-avs"));
        assert!(write("my-avs", &dir).unwrap_err().to_string().contains("not empty"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
