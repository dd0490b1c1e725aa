//! `spec.deployment.image`: a path to an ELF image, or an image reference
//! `[registry/path/]name[:tag][@sha256:DIGEST]`. Nothing here touches the
//! filesystem; the launcher resolves the result.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Longest accepted repository part of a reference, in characters.
pub const MAX_REPOSITORY_LEN: usize = 255;
/// Longest accepted tag, in characters.
pub const MAX_TAG_LEN: usize = 128;
/// The tag used when a reference has none.
pub const DEFAULT_TAG: &str = "latest";

/// Where the unikernel image comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageSource {
    /// A local ELF file. Relative paths in the spec are already joined to the
    /// spec file's directory; the file is not checked to exist.
    Path(PathBuf),
    /// An image reference for the launcher's image store.
    Reference(ImageRef),
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(path) => write!(f, "{}", path.display()),
            Self::Reference(reference) => reference.fmt(f),
        }
    }
}

/// An image reference `repository:tag`, for example
/// `registry/path/avs-spacecore:latest`, optionally pinned to the image's
/// SHA-256 digest (`…:latest@sha256:…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ImageRef {
    /// `/`-separated components of lowercase letters, digits, `.`, `-`, `_`,
    /// each starting and ending with a letter or digit.
    pub repository: String,
    /// 1 to 128 of `[A-Za-z0-9_.-]`; `latest` when the spec gives none.
    pub tag: String,
    /// The pinned SHA-256 of the image file, 64 lowercase hex digits: the
    /// launcher refuses to boot an image whose digest differs. `None`: the tag
    /// alone names the image.
    pub digest: Option<String>,
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)?;
        match &self.digest {
            Some(digest) => write!(f, "@sha256:{digest}"),
            None => Ok(()),
        }
    }
}

impl ImageRef {
    /// Parses `[registry/path/]name[:tag][@sha256:DIGEST]`; the error is the
    /// operator-facing message.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, digest) = match text.split_once('@') {
            Some((name, pinned)) => (name, Some(check_digest(text, pinned)?)),
            None => (text, None),
        };
        let (repository, tag) = match name.rsplit_once(':') {
            Some((repository, tag)) => (repository, tag),
            None => (name, DEFAULT_TAG),
        };
        check_repository(text, repository)?;
        check_tag(text, tag)?;
        Ok(Self { repository: repository.to_owned(), tag: tag.to_owned(), digest })
    }
}

/// `sha256:` and 64 lowercase hex digits; returns the hex digits.
fn check_digest(text: &str, pinned: &str) -> Result<String, String> {
    const RULE: &str = "a pinned digest is `sha256:` and 64 lowercase hex digits, as \
                        `hac-launch --check` prints the image's sha256";
    let Some(hex) = pinned.strip_prefix("sha256:") else {
        return Err(format!("{text:?}: only sha256 digests are supported after '@'; {RULE}"));
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(format!("{text:?}: {hex:?} is not a sha256 digest; {RULE}"));
    }
    Ok(hex.to_owned())
}

impl ImageRef {
    /// Whether `sha256` (lowercase hex) is what the reference pins, or it pins nothing.
    pub fn admits(&self, sha256: &str) -> bool {
        self.digest.as_deref().is_none_or(|pinned| pinned == sha256)
    }
}

fn check_repository(text: &str, repository: &str) -> Result<(), String> {
    const RULE: &str = "the name must be `/`-separated parts of lowercase letters, digits, \
                        `.`, `-` and `_`, each starting and ending with a letter or digit";
    if repository.is_empty() {
        return Err(format!("{text:?}: the image name is empty"));
    }
    if repository.chars().count() > MAX_REPOSITORY_LEN {
        return Err(format!("{text:?}: the image name is longer than {MAX_REPOSITORY_LEN} characters"));
    }
    if let Some(bad) = repository.chars().find(|&c| !is_repository_char(c)) {
        let hint = if bad.is_ascii_uppercase() { " (image names are lowercase)" } else { "" };
        return Err(format!("{text:?}: character {bad:?} is not allowed in an image name{hint}; {RULE}"));
    }
    for part in repository.split('/') {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        if part.is_empty() || !part.starts_with(alnum) || !part.ends_with(alnum) {
            return Err(format!("{text:?}: bad image name part {part:?}; {RULE}"));
        }
    }
    Ok(())
}

fn is_repository_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_' | '/')
}

fn check_tag(text: &str, tag: &str) -> Result<(), String> {
    const RULE: &str = "a tag is 1 to 128 of letters, digits, `_`, `.` and `-`";
    if tag.is_empty() {
        return Err(format!("{text:?}: the tag after ':' is empty; {RULE}"));
    }
    if tag.chars().count() > MAX_TAG_LEN {
        return Err(format!("{text:?}: the tag is longer than {MAX_TAG_LEN} characters"));
    }
    if let Some(bad) = tag.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(format!("{text:?}: character {bad:?} is not allowed in a tag; {RULE}"));
    }
    Ok(())
}

/// True when `text` names a file rather than an image reference: it starts
/// with `./`, `../` or `/`, or contains a `/` and ends in `.elf`.
pub fn looks_like_path(text: &str) -> bool {
    text.starts_with("./")
        || text.starts_with("../")
        || text.starts_with('/')
        || (text.contains('/') && text.ends_with(".elf"))
}

/// Classifies and checks an image string. `spec_dir` is the directory of the
/// spec file; relative paths are joined to it (lexically: `.` parts are
/// dropped, `..` parts are kept). The error is the operator-facing message.
pub fn parse_image(text: &str, spec_dir: &Path) -> Result<ImageSource, String> {
    if text.is_empty() {
        return Err("the image is empty; expected a path such as \"./app.elf\" or a \
                    reference such as \"registry/path/name:tag\""
            .to_owned());
    }
    if looks_like_path(text) {
        if text.ends_with('/') {
            return Err(format!("{text:?} names a directory; expected a path to an ELF file"));
        }
        let joined = spec_dir.join(text);
        return Ok(ImageSource::Path(lexically_tidy(&joined)));
    }
    if text.ends_with(".elf") {
        return Err(format!(
            "{text:?} is ambiguous: write \"./{text}\" for a file beside the spec, or use a \
             reference such as \"name:tag\""
        ));
    }
    ImageRef::parse(text).map(ImageSource::Reference)
}

/// Drops `.` components without touching the filesystem (`..` is kept: it
/// cannot be resolved lexically when symlinks are involved).
pub(crate) fn lexically_tidy(path: &Path) -> PathBuf {
    let tidy: PathBuf = path.components().filter(|c| !matches!(c, Component::CurDir)).collect();
    if tidy.as_os_str().is_empty() { PathBuf::from(".") } else { tidy }
}
