//! A thin, span-aware view of the parsed TOML document: tables that reject
//! unknown keys, items that know their dotted key and where they are, and
//! typed accessors whose errors say what was expected and what was found.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{SpecError, line_column};
use crate::image_ref::lexically_tidy;

/// The spec file being read: its name (for messages) and its text (for
/// turning spans into line and column).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Doc<'r> {
    pub(crate) file: &'r Path,
    pub(crate) source: &'r str,
}

impl Doc<'_> {
    pub(crate) fn error(&self, span: Range<usize>, key: &str, message: String) -> SpecError {
        SpecError::at(self.file, self.source, span, key, message)
    }
}

/// A TOML table whose keys have been checked against an allow-list.
#[derive(Debug, Clone)]
pub(crate) struct Table<'r, 's> {
    doc: Doc<'r>,
    path: String,
    span: Range<usize>,
    entries: &'r DeTable<'s>,
}

/// One key = value of a table.
#[derive(Debug, Clone)]
pub(crate) struct Item<'r, 's> {
    doc: Doc<'r>,
    /// The dotted key, e.g. `spec.resources.memory`.
    pub(crate) path: String,
    /// The last part of the key as written, e.g. `memory`.
    pub(crate) name: &'r str,
    pub(crate) key_span: Range<usize>,
    pub(crate) value: &'r Spanned<DeValue<'s>>,
}

/// The accepted spellings of a keyword-valued key, and the values people may
/// try that are known but refused.
#[derive(Debug)]
pub(crate) struct Choices<T: 'static> {
    pub(crate) accepted: &'static [(&'static str, T)],
    pub(crate) refused: &'static [&'static str],
    /// Why a refused value is refused, e.g. "is not supported by this launcher".
    pub(crate) refused_because: &'static str,
}

impl<'r, 's> Table<'r, 's> {
    /// The document root; `allowed` lists its keys.
    pub(crate) fn root(
        doc: Doc<'r>,
        root: &'r Spanned<DeTable<'s>>,
        allowed: &[&str],
    ) -> Result<Self, SpecError> {
        let table = Self { doc, path: String::new(), span: root.span(), entries: root.get_ref() };
        table.check_keys(allowed)?;
        Ok(table)
    }

    /// The value of `name`, if present.
    pub(crate) fn get(&self, name: &str) -> Option<Item<'r, 's>> {
        self.entries.iter().find(|(key, _)| key.get_ref() == name).map(|(key, value)| self.item(key, value))
    }

    /// The value of `name`; its absence is an error that names the key and
    /// says what `expected` value is missing.
    pub(crate) fn require(&self, name: &str, expected: &str) -> Result<Item<'r, 's>, SpecError> {
        self.get(name).ok_or_else(|| {
            let path = join_key(&self.path, name);
            let place = if self.path.is_empty() { "the file".to_owned() } else { format!("[{}]", self.path) };
            self.doc.error(
                self.span.clone(),
                &path,
                format!("missing required key `{name}` in {place}; expected {expected}"),
            )
        })
    }

    /// Every entry, in the order it appears in the file.
    pub(crate) fn entries(&self) -> Vec<Item<'r, 's>> {
        let mut items: Vec<_> = self.entries.iter().map(|(key, value)| self.item(key, value)).collect();
        items.sort_by_key(|item| item.key_span.start);
        items
    }

    /// How many entries the table has.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The dotted key of this table (`""` for the root).
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    fn item(
        &self,
        key: &'r Spanned<toml::de::DeString<'s>>,
        value: &'r Spanned<DeValue<'s>>,
    ) -> Item<'r, 's> {
        Item {
            doc: self.doc,
            path: join_key(&self.path, key.get_ref()),
            name: key.get_ref(),
            key_span: key.span(),
            value,
        }
    }

    /// Rejects the first key (in file order) that is not in `allowed`.
    fn check_keys(&self, allowed: &[&str]) -> Result<(), SpecError> {
        let Some(unknown) = self.entries().into_iter().find(|item| !allowed.contains(&item.name)) else {
            return Ok(());
        };
        let place =
            if self.path.is_empty() { "at the top level".to_owned() } else { format!("in [{}]", self.path) };
        let hint = allowed
            .iter()
            .find(|known| known.eq_ignore_ascii_case(unknown.name))
            .map(|known| format!(" (keys are case-sensitive: did you mean `{known}`?)"))
            .unwrap_or_default();
        Err(unknown.key_error(format!(
            "unknown key `{}` {place}{hint}; expected one of: {}",
            unknown.name,
            allowed.join(", ")
        )))
    }
}

impl<'r, 's> Item<'r, 's> {
    /// An error about the value, pointing at the value.
    pub(crate) fn error(&self, message: String) -> SpecError {
        self.doc.error(self.value.span(), &self.path, message)
    }

    /// An error about the key itself, pointing at the key.
    pub(crate) fn key_error(&self, message: String) -> SpecError {
        self.doc.error(self.key_span.clone(), &self.path, message)
    }

    /// The 1-based line of the key.
    pub(crate) fn key_line(&self) -> usize {
        line_column(self.doc.source, self.key_span.start).0
    }

    /// "expected X, found integer 8".
    pub(crate) fn wrong_type(&self, expected: &str) -> SpecError {
        self.error(format!("expected {expected}, found {}", describe(self.value.get_ref())))
    }

    /// The value as a string.
    pub(crate) fn string(&self, expected: &str) -> Result<&'r str, SpecError> {
        match self.value.get_ref() {
            DeValue::String(text) => Ok(text.as_ref()),
            _ => Err(self.wrong_type(expected)),
        }
    }

    /// The value as a boolean.
    pub(crate) fn boolean(&self) -> Result<bool, SpecError> {
        match self.value.get_ref() {
            DeValue::Boolean(value) => Ok(*value),
            _ => Err(self.wrong_type("true or false")),
        }
    }

    /// The value as an integer, if it is one; `Err` if it is an integer too
    /// large for any key of this format.
    pub(crate) fn integer(&self) -> Option<Result<i128, SpecError>> {
        match self.value.get_ref() {
            DeValue::Integer(integer) => Some(
                i128::from_str_radix(integer.as_str(), integer.radix())
                    .map_err(|_| self.error("integer is out of range".to_owned())),
            ),
            _ => None,
        }
    }

    /// The value as a table whose keys must all be in `allowed`.
    pub(crate) fn table(&self, allowed: &[&str]) -> Result<Table<'r, 's>, SpecError> {
        let table = self.any_table()?;
        table.check_keys(allowed)?;
        Ok(table)
    }

    /// The value as a table with free-form keys (the caller checks them).
    pub(crate) fn any_table(&self) -> Result<Table<'r, 's>, SpecError> {
        match self.value.get_ref() {
            DeValue::Table(entries) => {
                Ok(Table { doc: self.doc, path: self.path.clone(), span: self.value.span(), entries })
            }
            _ => Err(self.wrong_type(&format!("a table ([{}])", self.path))),
        }
    }

    /// The value as one of the keywords in `choices`.
    pub(crate) fn keyword<T: Copy>(&self, choices: &Choices<T>) -> Result<T, SpecError> {
        let accepted =
            choices.accepted.iter().map(|(text, _)| format!("{text:?}")).collect::<Vec<_>>().join(", ");
        let expected = format!("one of {accepted}");
        let text = self.string(&expected)?;
        if let Some((_, value)) = choices.accepted.iter().find(|(known, _)| *known == text) {
            return Ok(*value);
        }
        let message = if choices.accepted.iter().any(|(known, _)| known.eq_ignore_ascii_case(text)) {
            format!("{text:?} is not accepted: values are case-sensitive; expected {expected}")
        } else if choices.refused.iter().any(|refused| refused.eq_ignore_ascii_case(text)) {
            format!("{text:?} {}; accepted: {accepted}", choices.refused_because)
        } else {
            format!("unknown value {text:?}; expected {expected}")
        };
        Err(self.error(message))
    }
}

/// `spec` + `resources` -> `spec.resources`; parts that are not bare TOML
/// keys are quoted.
pub(crate) fn join_key(parent: &str, name: &str) -> String {
    let bare = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let part = if bare { name.to_owned() } else { format!("{name:?}") };
    if parent.is_empty() { part } else { format!("{parent}.{part}") }
}

/// "integer 8", "string \"8GB\"", "table" — for "found ..." in messages.
pub(crate) fn describe(value: &DeValue<'_>) -> String {
    let shown = render(value);
    let kind = value.type_str();
    match value {
        DeValue::Table(_) | DeValue::Array(_) => kind.to_owned(),
        DeValue::String(_) => format!("{kind} {:?}", shorten(&shown)),
        _ => format!("{kind} {}", shorten(&shown)),
    }
}

/// The value as the operator would read it: strings without quotes, tables
/// as `a = 1, b = 2` in file order.
pub(crate) fn render(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(text) => text.to_string(),
        DeValue::Integer(integer) => integer.to_string(),
        DeValue::Float(float) => float.to_string(),
        DeValue::Boolean(flag) => flag.to_string(),
        DeValue::Datetime(datetime) => datetime.to_string(),
        DeValue::Array(items) => {
            let items: Vec<String> = items.iter().map(|item| render(item.get_ref())).collect();
            format!("[{}]", items.join(", "))
        }
        DeValue::Table(entries) => {
            let mut pairs: Vec<_> = entries.iter().collect();
            pairs.sort_by_key(|(key, _)| key.span().start);
            pairs
                .into_iter()
                .map(|(key, value)| format!("{} = {}", join_key("", key.get_ref()), render(value.get_ref())))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(MAX).collect();
        short.push_str("...");
        short
    }
}

/// Why a value the format knows is refused: this launcher does not run it.
pub(crate) const NOT_BY_THIS_LAUNCHER: &str = "is not supported by this launcher";

pub(crate) fn optional_keyword<T: Copy + Default>(
    table: &Table<'_, '_>,
    name: &str,
    choices: &Choices<T>,
) -> Result<T, SpecError> {
    match table.get(name) {
        Some(item) => item.keyword(choices),
        None => Ok(T::default()),
    }
}

pub(crate) fn optional_bool(table: &Table<'_, '_>, name: &str) -> Result<bool, SpecError> {
    Ok(table.get(name).map(|item| item.boolean()).transpose()?.unwrap_or(false))
}

pub(crate) fn optional_string(table: &Table<'_, '_>, name: &str) -> Result<Option<String>, SpecError> {
    table.get(name).map(|item| item.string("a string").map(str::to_owned)).transpose()
}

/// A path to a file (`spec.storage.path`, `spec.avs.keystore_password_file`,
/// `spec.avs.ecdsa_keystore_password_file`,
/// `spec.observability.log_file`):
/// joined to the spec file's directory when relative, like image paths.
/// `expected` describes the file, for messages.
pub(crate) fn file_path(item: &Item<'_, '_>, spec_dir: &Path, expected: &str) -> Result<PathBuf, SpecError> {
    let text = item.string(expected)?;
    let problem = if text.is_empty() {
        "the path is empty".to_owned()
    } else if text.contains('\0') {
        format!("{text:?} contains a NUL character")
    } else if text.ends_with('/') || matches!(text.rsplit('/').next(), Some("." | "..")) {
        format!("{text:?} names a directory")
    } else {
        return Ok(lexically_tidy(&spec_dir.join(text)));
    };
    Err(item.error(format!("{problem}; expected {expected}")))
}
