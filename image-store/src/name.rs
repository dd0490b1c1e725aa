//! Image references (`repository:tag`) and the rules that keep them from
//! escaping the store root.

use std::fmt;
use std::str::FromStr;

use crate::StoreError;

/// The tag used when a reference names only a repository.
pub const DEFAULT_TAG: &str = "latest";

const MAX_TAG_LEN: usize = 128;
const MAX_REPOSITORY_LEN: usize = 255;

/// A parsed `repository[:tag]` reference with both parts validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Slash-separated repository path, e.g. `registry/path/avs-spacecore`.
    pub repository: String,
    /// Tag, e.g. `latest`.
    pub tag: String,
}

impl ImageRef {
    /// A reference from already separated parts.
    pub fn new(repository: &str, tag: &str) -> Result<Self, StoreError> {
        check_repository(repository)?;
        check_tag(tag)?;
        Ok(ImageRef { repository: repository.to_owned(), tag: tag.to_owned() })
    }

    /// Parses `repository:tag`, or `repository` meaning `repository:latest`.
    ///
    /// A colon only separates the tag when it comes after the last `/`.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        if text.contains('@') {
            return Err(invalid("reference", text, "digest references (`@sha256:...`) are not supported"));
        }
        let after_slash = text.rfind('/').map_or(0, |i| i + 1);
        match text[after_slash..].rfind(':') {
            Some(i) => Self::new(&text[..after_slash + i], &text[after_slash + i + 1..]),
            None => Self::new(text, DEFAULT_TAG),
        }
    }
}

impl FromStr for ImageRef {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

fn invalid(what: &'static str, value: &str, reason: &'static str) -> StoreError {
    StoreError::InvalidName { what, value: value.to_owned(), reason }
}

/// Checks a repository: one or more `/`-separated components of `[a-z0-9._-]`.
pub(crate) fn check_repository(repository: &str) -> Result<(), StoreError> {
    if repository.len() > MAX_REPOSITORY_LEN {
        return Err(invalid("repository", repository, "is longer than 255 bytes"));
    }
    for component in repository.split('/') {
        check_component("repository", repository, component, false)?;
    }
    Ok(())
}

/// Checks a tag: a single component of `[A-Za-z0-9._-]`.
pub(crate) fn check_tag(tag: &str) -> Result<(), StoreError> {
    if tag.len() > MAX_TAG_LEN {
        return Err(invalid("tag", tag, "is longer than 128 bytes"));
    }
    check_component("tag", tag, tag, true)
}

fn check_component(
    what: &'static str,
    whole: &str,
    component: &str,
    allow_upper: bool,
) -> Result<(), StoreError> {
    if component.is_empty() {
        return Err(invalid(what, whole, "is empty or has an empty path component"));
    }
    if component == "." || component == ".." {
        return Err(invalid(what, whole, "has a `.` or `..` path component"));
    }
    let allowed = |c: char| {
        c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || matches!(c, '.' | '_' | '-')
            || (allow_upper && c.is_ascii_uppercase())
    };
    if !component.chars().all(allowed) {
        return Err(invalid(
            what,
            whole,
            if allow_upper {
                "may only contain A-Z, a-z, 0-9, `.`, `_` and `-`"
            } else {
                "may only contain a-z, 0-9, `.`, `_`, `-` and `/` between components"
            },
        ));
    }
    // Names starting with `.` are the store's own temporary files; names
    // starting with `-` read like command-line options.
    if component.starts_with(['.', '-']) {
        return Err(invalid(what, whole, "has a path component starting with `.` or `-`"));
    }
    Ok(())
}
