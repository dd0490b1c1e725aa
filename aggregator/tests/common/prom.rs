//! A strict little parser of the Prometheus text exposition format (0.0.4), enough to check
//! what the aggregator serves: HELP/TYPE lines, metric and label names, quoted and escaped label
//! values, sample values, families kept together, counters named `_total`, and histograms with
//! cumulative buckets ending in `+Inf` equal to `_count`.

use std::collections::{BTreeMap, BTreeSet};

/// Samples by `name{label="value",...}` (labels sorted), and each family's type.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: BTreeMap<String, f64>,
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    /// The value of a series (`name` or `name{a="b"}` with labels in sorted order).
    pub fn get(&self, series: &str) -> Option<f64> {
        self.samples.get(series).copied()
    }
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    chars.next().is_some_and(ok_first) && chars.all(|c| ok_first(c) || c.is_ascii_digit())
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad sample value {s:?}")),
    }
}

/// Parses `{a="x",b="y"}` (the part after the name), returning the sorted labels and the rest.
fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    s = s.strip_prefix('{').ok_or("expected {")?;
    for _ in 0..64 {
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let (name, rest) = s.split_once("=\"").ok_or("expected label=\"value\"")?;
        if !is_name(name, false) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, '\n') => return Err("newline in label value".into()),
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} repeated"));
        }
        s = &rest[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
    Err("too many labels".into())
}

/// The family a sample belongs to, given the declared types.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).is_some_and(|t| t == "histogram")
        {
            return base;
        }
    }
    name
}

/// Parses and checks `text`.
pub fn parse(text: &str) -> Result<Exposition, String> {
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    let mut out = Exposition::default();
    let mut helps = BTreeSet::new();
    let mut finished = BTreeSet::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let err = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (keyword, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let rest = parts.next().unwrap_or("");
            if !is_name(name, true) {
                return Err(err(format!("bad metric name {name:?}")));
            }
            match keyword {
                "HELP" if !helps.insert(name.to_owned()) => return Err(err("second HELP".into())),
                "TYPE" => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest) {
                        return Err(err(format!("bad type {rest:?}")));
                    }
                    if out.types.insert(name.to_owned(), rest.to_owned()).is_some() {
                        return Err(err("second TYPE".into()));
                    }
                    if rest == "counter" && !name.ends_with("_total") {
                        return Err(err("counter not named _total".into()));
                    }
                }
                _ => {}
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name, true) {
            return Err(err(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(err)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let value =
            rest.strip_prefix(' ').ok_or_else(|| err("expected one space before the value".into()))?;
        let value = parse_value(value.split(' ').next().unwrap_or("")).map_err(err)?;
        let family = family_of(name, &out.types).to_owned();
        if !out.types.contains_key(&family) {
            return Err(err(format!("sample of {family} before its TYPE")));
        }
        if current.as_deref() != Some(family.as_str()) {
            if finished.contains(&family) {
                return Err(err(format!("samples of {family} are not together")));
            }
            if let Some(previous) = current.replace(family.clone()) {
                finished.insert(previous);
            }
        }
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let series =
            if labels.is_empty() { name.to_owned() } else { format!("{name}{{{}}}", labels.join(",")) };
        if out.samples.insert(series, value).is_some() {
            return Err(err("repeated series".into()));
        }
    }
    check_histograms(&out)?;
    Ok(out)
}

fn check_histograms(out: &Exposition) -> Result<(), String> {
    for (name, kind) in &out.types {
        if kind != "histogram" {
            continue;
        }
        let prefix = format!("{name}_bucket{{le=\"");
        let mut buckets: Vec<(f64, f64)> = out
            .samples
            .iter()
            .filter_map(|(k, v)| {
                let le = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                Some((parse_value(le).ok()?, *v))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
            return Err(format!("{name}: no +Inf bucket"));
        }
        if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err(format!("{name}: buckets are not cumulative"));
        }
        let count = out.get(&format!("{name}_count")).ok_or(format!("{name}: no _count"))?;
        out.get(&format!("{name}_sum")).ok_or(format!("{name}: no _sum"))?;
        if buckets.last().map(|b| b.1) != Some(count) {
            return Err(format!("{name}: +Inf bucket differs from _count"));
        }
    }
    Ok(())
}
