//! The guest's own metrics, re-exposed by the sidecar: the guest's `GET /metrics` text is
//! untrusted, so only lines that are valid in the text format 0.0.4 pass, and none that could
//! pass for the launcher's own families (`spacecore_launcher_*`) or break the scrape of the
//! whole response (a second `# HELP`/`# TYPE` for a family, a `# TYPE` after its samples).

use prom_text::{valid_label_name, valid_name};
use std::collections::HashSet;

/// The prefix of the launcher's families, which the guest may not use.
pub const LAUNCHER_PREFIX: &str = "spacecore_launcher_";
/// Most lines kept from the guest.
pub const MAX_LINES: usize = 10_000;

/// The valid lines of the guest's exposition `text`, each ending in a newline, and the number
/// of lines dropped.
pub fn filter(text: &str) -> (String, usize) {
    let mut kept = String::new();
    let (mut lines, mut dropped) = (0, 0);
    let mut described: HashSet<(String, &'static str)> = HashSet::new();
    let mut sampled: HashSet<String> = HashSet::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let keep = lines < MAX_LINES
            && !line.chars().any(|c| c.is_control() && c != '\t')
            && match line.strip_prefix('#') {
                Some(comment) => descriptor(comment).is_some_and(|(name, kind)| {
                    // A TYPE after samples of its family, or a repeated HELP/TYPE, is refused.
                    !(kind == "TYPE" && sampled.contains(family(name)))
                        && described.insert((name.to_owned(), kind))
                }),
                None => sample_name(line).is_some_and(|name| {
                    sampled.insert(family(name).to_owned());
                    true
                }),
            };
        if keep {
            kept.push_str(line);
            kept.push('\n');
            lines += 1;
        } else {
            dropped += 1;
        }
    }
    (kept, dropped)
}

/// The family of a sample name: histogram and summary samples (`_bucket`, `_sum`, `_count`)
/// belong to the family without the suffix.
fn family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| name.strip_suffix(suffix)).unwrap_or(name)
}

fn allowed(name: &str) -> bool {
    valid_name(name) && !name.starts_with(LAUNCHER_PREFIX)
}

/// `# HELP name text` or `# TYPE name kind` (the part after `#`): the name and which.
fn descriptor(comment: &str) -> Option<(&str, &'static str)> {
    let rest = comment.strip_prefix(' ')?;
    if let Some(rest) = rest.strip_prefix("HELP ") {
        let name = rest.split(' ').next()?;
        return allowed(name).then_some((name, "HELP"));
    }
    let rest = rest.strip_prefix("TYPE ")?;
    let (name, kind) = rest.split_once(' ')?;
    let known = ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind);
    (allowed(name) && known).then_some((name, "TYPE"))
}

/// The metric name of a valid sample line `name{label="value",...} value [timestamp]`.
fn sample_name(line: &str) -> Option<&str> {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    if !allowed(name) {
        return None;
    }
    let mut rest = &line[name_end..];
    if let Some(labels) = rest.strip_prefix('{') {
        rest = label_set(labels)?;
    }
    let mut fields = rest.strip_prefix(' ')?.split(' ');
    let value = fields.next()?;
    let timestamp = fields.next();
    let valid_value =
        matches!(value, "NaN" | "+Inf" | "-Inf") || value.parse::<f64>().is_ok_and(f64::is_finite);
    let valid_timestamp = timestamp.is_none_or(|t| t.parse::<i64>().is_ok());
    (valid_value && valid_timestamp && fields.next().is_none()).then_some(name)
}

/// Checks `name="value",...}` and returns what follows the closing brace.
fn label_set(mut rest: &str) -> Option<&str> {
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some(after);
        }
        let (label, after) = rest.split_once("=\"")?;
        if !valid_label_name(label) {
            return None;
        }
        rest = quoted(after)?;
        // Pairs are separated by commas; one may end the set.
        if !rest.starts_with('}') {
            rest = rest.strip_prefix(',')?;
        }
    }
}

/// Skips a label value up to its closing quote (escapes `\\`, `\"`, `\n` only); what follows.
fn quoted(text: &str) -> Option<&str> {
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some(&text[i + 1..]),
            '\\' => match chars.next() {
                Some((_, '\\' | '"' | 'n')) => {}
                _ => return None,
            },
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_lines_pass_unchanged() {
        let text = "# HELP spacecore_tasks_total Tasks signed.\n# TYPE spacecore_tasks_total counter\n\
                    spacecore_tasks_total 12\nspacecore_tasks_total{result=\"refused\",why=\"a \\\"b\\\" \\\\ \\n\"} 3 1700000000000\n\
                    \n# TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 4\nlat_sum 0.25\nlat_count 4\nup NaN\ndown -Inf\n";
        let (kept, dropped) = filter(text);
        assert_eq!(kept, text.replace("\n\n", "\n"));
        assert_eq!(dropped, 0);
    }

    #[test]
    fn invalid_or_forged_lines_are_dropped() {
        let bad = [
            "spacecore_launcher_boots_total 9",
            "# HELP spacecore_launcher_boots_total forged",
            "# TYPE spacecore_launcher_up gauge",
            "# TYPE x enum",
            "# a plain comment",
            "9bad 1",
            "x{a=\"1\" 2",
            "x{a=1} 2",
            "x{1a=\"1\"} 2",
            "x{a=\"\\q\"} 2",
            "x{a=\"1\"b=\"2\"} 2",
            "x 1 2 3",
            "x one",
            "x 1 1.5",
            "x",
            "x  1",
            "x 1\u{1b}[2J",
            "x{a=\"\u{7}\"} 1",
        ];
        for line in bad {
            let (kept, dropped) = filter(line);
            assert_eq!((kept.as_str(), dropped), ("", 1), "{line:?}");
        }
    }

    #[test]
    fn families_are_described_once_and_before_their_samples() {
        let text = "# TYPE a counter\n# TYPE a gauge\n# HELP a x\n# HELP a y\na_total 1\nb 1\n# TYPE b gauge\n\
                    c_count 1\n# TYPE c summary\n";
        let (kept, dropped) = filter(text);
        assert_eq!(kept, "# TYPE a counter\n# HELP a x\na_total 1\nb 1\nc_count 1\n");
        assert_eq!(dropped, 4);
    }

    #[test]
    fn the_guest_cannot_flood_the_response() {
        let text = "x 1\n".repeat(MAX_LINES + 5);
        let (kept, dropped) = filter(&text);
        assert_eq!(kept.lines().count(), MAX_LINES);
        assert_eq!(dropped, 5);
    }
}
