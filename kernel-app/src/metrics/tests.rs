use super::*;
use crate::avs::SIGNING_BUCKETS_NS;
use crate::avs::tests::{MemRecords, TaskPath, at, operator, task_json};
use std::collections::{BTreeMap, BTreeSet};

/// One sample line: metric name, labels (sorted by name), value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A family: its type, help and samples, in order.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_label_name(name: &str) -> bool {
    valid_metric_name(name) && !name.starts_with("__")
}

/// Parses `name{a="x",b="y"} value` strictly: quoted values with `\\`, `\"` and `\n` escapes only.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or_else(|| format!("no value: {line}"))?;
    let name = &line[..name_end];
    if !valid_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let consumed;
        loop {
            let start = chars.peek().map(|&(i, _)| i).ok_or("unterminated labels")?;
            if after[start..].starts_with('}') {
                if !labels.is_empty() {
                    return Err(format!("trailing comma in {line}"));
                }
                consumed = start + 1;
                break;
            }
            let eq = after[start..].find('=').ok_or("label without =")? + start;
            let label = &after[start..eq];
            if !valid_label_name(label) {
                return Err(format!("bad label name {label:?}"));
            }
            while chars.peek().is_some_and(|&(i, _)| i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("unquoted label value in {line}"));
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")?.1 {
                    '"' => break,
                    '\\' => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    '\n' => return Err("newline in a label value".into()),
                    c => value.push(c),
                }
            }
            if labels.insert(label.to_string(), value).is_some() {
                return Err(format!("label {label} twice in {line}"));
            }
            match chars.next().ok_or("unterminated labels")? {
                (_, ',') => {}
                (i, '}') => {
                    consumed = i + 1;
                    break;
                }
                (_, c) => return Err(format!("unexpected {c:?} after a label value")),
            }
        }
        rest = &after[consumed..];
    }
    let value = rest.strip_prefix(' ').ok_or_else(|| format!("no space before the value: {line}"))?;
    if value.contains(' ') {
        return Err(format!("timestamps or extra fields are not expected: {line}"));
    }
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse::<f64>().map_err(|_| format!("bad value {v:?}"))?,
    };
    if value.is_nan() {
        return Err("NaN".into());
    }
    Ok(Sample { name: name.to_string(), labels, value })
}

/// Checks the exposition strictly and returns its families in order. Checks: UTF-8, ends with a
/// newline, no blank lines; `# HELP` then `# TYPE` once per family, before any of its samples,
/// and families not interleaved; names and label names valid; sample names belong to the
/// current family (`_bucket`, `_sum`, `_count` for histograms only); no series twice; counters
/// end in `_total` and are finite and non-negative; other types do not end in `_total`, `_count`,
/// `_sum` or `_bucket`; no unit abbreviations; `le` only on buckets; histograms as promtool
/// wants them (see [`check_histogram`]).
fn parse_strict(text: &str) -> Result<Vec<(String, Family)>, String> {
    if !text.ends_with('\n') {
        return Err("no final newline".into());
    }
    let mut families: Vec<(String, Family)> = Vec::new();
    let mut seen_families = BTreeSet::new();
    let mut series = BTreeSet::new();
    let mut pending_help: Option<(String, String)> = None;
    for line in text.lines() {
        if line.is_empty() {
            return Err("blank line".into());
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').ok_or("HELP without text")?;
            if !valid_metric_name(name) || help.is_empty() || help.contains('\\') {
                return Err(format!("bad HELP line {line:?}"));
            }
            if pending_help.is_some() {
                return Err(format!("HELP without TYPE before {line:?}"));
            }
            if !seen_families.insert(name.to_string()) {
                return Err(format!("family {name} declared twice"));
            }
            pending_help = Some((name.to_string(), help.to_string()));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or("TYPE without type")?;
            let (help_name, help) = pending_help.take().ok_or_else(|| format!("TYPE before HELP: {line}"))?;
            if help_name != name {
                return Err(format!("TYPE {name} after HELP {help_name}"));
            }
            if !["counter", "gauge", "histogram"].contains(&kind) {
                return Err(format!("unexpected type {kind}"));
            }
            lint_name(name, kind)?;
            families.push((name.into(), Family { kind: kind.into(), help, samples: Vec::new() }));
        } else if line.starts_with('#') {
            return Err(format!("unexpected comment {line:?}"));
        } else {
            if pending_help.is_some() {
                return Err(format!("sample between HELP and TYPE: {line}"));
            }
            let sample = parse_sample(line)?;
            let (family_name, family) = families.last_mut().ok_or("sample before any family")?;
            let belongs = match family.kind.as_str() {
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| sample.name.strip_suffix(suffix) == Some(family_name.as_str())),
                _ => sample.name == *family_name,
            };
            if !belongs {
                return Err(format!("sample {} outside its family (in {family_name})", sample.name));
            }
            if sample.labels.contains_key("le") != sample.name.ends_with("_bucket") {
                return Err(format!("le misplaced in {line}"));
            }
            if family.kind == "counter" && !(sample.value.is_finite() && sample.value >= 0.0) {
                return Err(format!("bad counter value in {line}"));
            }
            if !series.insert(format!("{}{:?}", sample.name, sample.labels)) {
                return Err(format!("series twice: {line}"));
            }
            family.samples.push(sample);
        }
    }
    if pending_help.is_some() {
        return Err("HELP without TYPE at the end".into());
    }
    for (name, family) in &families {
        if family.kind == "histogram" {
            check_histogram(name, &family.samples)?;
        }
    }
    Ok(families)
}

/// The naming rules `promtool check metrics` applies.
fn lint_name(name: &str, kind: &str) -> Result<(), String> {
    let reserved = ["_total", "_count", "_sum", "_bucket"];
    match kind {
        "counter" if !name.ends_with("_total") => return Err(format!("counter {name} without _total")),
        "counter" => {}
        _ if reserved.iter().any(|s| name.ends_with(s)) => {
            return Err(format!("{kind} {name} with a reserved suffix"));
        }
        _ => {}
    }
    for bad in
        ["_ms", "_milliseconds", "_us", "_microseconds", "_ns", "_nanoseconds", "_sec", "_secs", "_minutes"]
    {
        if name.contains(&format!("{bad}_")) || name.ends_with(bad) {
            return Err(format!("{name}: not a base unit ({bad})"));
        }
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) || name.contains(':') {
        return Err(format!("{name}: camel case or colon"));
    }
    if ["_counter", "_gauge", "_histogram"].iter().any(|t| name.contains(t)) {
        return Err(format!("{name}: type in the name"));
    }
    Ok(())
}

/// Per label set: buckets with strictly increasing `le`, ending with `+Inf`, cumulative counts,
/// `+Inf` equal to `_count`, one `_sum` (non-negative) and one `_count`.
fn check_histogram(name: &str, samples: &[Sample]) -> Result<(), String> {
    type Series = (Vec<(f64, f64)>, Option<f64>, Option<f64>);
    let mut by_labels: BTreeMap<String, Series> = BTreeMap::new();
    for s in samples {
        let mut labels = s.labels.clone();
        let le = labels.remove("le");
        let entry = by_labels.entry(format!("{labels:?}")).or_default();
        match s.name.strip_prefix(name).unwrap() {
            "_bucket" => {
                let le = le.unwrap();
                let bound =
                    if le == "+Inf" { f64::INFINITY } else { le.parse().map_err(|_| format!("le {le}"))? };
                entry.0.push((bound, s.value));
            }
            "_sum" => entry.1 = Some(s.value),
            "_count" => entry.2 = Some(s.value),
            other => return Err(format!("{name}: unexpected {other}")),
        }
    }
    for (labels, (buckets, sum, count)) in by_labels {
        let count = count.ok_or_else(|| format!("{name}{labels}: no _count"))?;
        let sum = sum.ok_or_else(|| format!("{name}{labels}: no _sum"))?;
        if sum < 0.0 || count < 0.0 || count.fract() != 0.0 {
            return Err(format!("{name}{labels}: bad sum or count"));
        }
        let last = buckets.last().ok_or_else(|| format!("{name}{labels}: no buckets"))?;
        if last.0 != f64::INFINITY || last.1 != count {
            return Err(format!("{name}{labels}: +Inf bucket missing or not equal to _count"));
        }
        for pair in buckets.windows(2) {
            if pair[0].0 >= pair[1].0 || pair[0].1 > pair[1].1 {
                return Err(format!("{name}{labels}: buckets not increasing or not cumulative: {pair:?}"));
            }
        }
    }
    Ok(())
}

fn render_text(avs: &AvsNode, health: Health, boot_count: Option<u64>, uptime_ns: u64) -> String {
    String::from_utf8(render(&Inputs { avs, avs_name: "incredible-squaring", health, boot_count, uptime_ns }))
        .expect("UTF-8")
}

fn families(text: &str) -> BTreeMap<String, Family> {
    parse_strict(text).unwrap_or_else(|e| panic!("{e}\n{text}")).into_iter().collect()
}

/// The value of the sample `name{labels}`.
fn value(families: &BTreeMap<String, Family>, family: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: BTreeMap<String, String> = labels.iter().map(|&(k, v)| (k.into(), v.into())).collect();
    families[family]
        .samples
        .iter()
        .find(|s| s.name == name && s.labels == wanted)
        .unwrap_or_else(|| panic!("no {name}{wanted:?}"))
        .value
}

/// A node that signed a few responses and refused one: every family the runtime writes has
/// samples.
fn busy_node() -> AvsNode {
    let mut records = MemRecords::default();
    let mut node = crate::avs::tests::node_with_source(Some(&mut records), true);
    node.set_operator(Ok(operator(1))).unwrap();
    for i in 1..=3 {
        node.task(&task_json(i, 2), Some(&mut records), &at(10)).unwrap();
    }
    node.task(&task_json(1, 3), Some(&mut records), &at(10)).unwrap_err();
    node
}

#[test]
fn the_exposition_is_strictly_valid_in_every_state() {
    let mut records = MemRecords::default();
    let fresh = AvsNode::new(Some(&mut records), false);
    let sending = AvsNode::new(Some(&mut records), true);
    let busy = busy_node();
    for (avs, health, boots) in [
        (&fresh, Health::PartiallyHealthy, None),
        (&sending, Health::Unhealthy, Some(1)),
        (&busy, Health::Healthy, Some(u64::MAX)),
    ] {
        let text = render_text(avs, health, boots, 123_456_789_012);
        let families = families(&text);
        for (name, family) in &families {
            assert!(!family.help.is_empty(), "{name}");
        }
    }
}

#[test]
fn the_eigen_families_follow_the_node_spec() {
    let text = render_text(&busy_node(), Health::Healthy, Some(3), 0);
    let f = families(&text);
    let expected = [
        ("eigen_performance_score", "gauge"),
        ("eigen_fees_earned_total", "counter"),
        ("eigen_registered_stakes", "gauge"),
    ];
    for (name, kind) in expected {
        assert_eq!(f.get(name).map(|f| f.kind.as_str()), Some(kind), "{name}");
    }
    let avs = [("avs_name", "incredible-squaring")];
    assert_eq!(value(&f, "eigen_performance_score", "eigen_performance_score", &avs), 100.0);
    // No chain access: declared, never a made-up value.
    assert!(f["eigen_fees_earned_total"].samples.is_empty());
    assert!(f["eigen_registered_stakes"].samples.is_empty());
    // Health drives the score.
    for (health, score) in [(Health::PartiallyHealthy, 50.0), (Health::Unhealthy, 0.0)] {
        let f = families(&render_text(&busy_node(), health, None, 0));
        assert_eq!(value(&f, "eigen_performance_score", "eigen_performance_score", &avs), score);
    }
}

#[test]
fn the_spacecore_families_count_what_happened() {
    let text = render_text(&busy_node(), Health::Healthy, Some(3), 90_500_000_000);
    let f = families(&text);
    let v = |name: &str, labels: &[(&str, &str)]| value(&f, name, name, labels);
    assert_eq!(v("spacecore_uptime_seconds", &[]), 90.5);
    assert_eq!(v("spacecore_boots_total", &[]), 3.0);
    let signing = "spacecore_signing_duration_seconds";
    assert_eq!(f[signing].kind, "histogram");
    assert_eq!(value(&f, signing, &format!("{signing}_count"), &[]), 3.0);
    assert_eq!(value(&f, signing, &format!("{signing}_sum"), &[]), 0.0, "the test clock stands still");
    assert_eq!(value(&f, signing, &format!("{signing}_bucket"), &[("le", "0.0001")]), 3.0);
}

#[test]
fn without_an_aggregator_or_a_disk_some_families_have_no_samples() {
    let mut records = MemRecords::default();
    let avs = AvsNode::new(Some(&mut records), false);
    let f = families(&render_text(&avs, Health::PartiallyHealthy, None, 0));
    assert!(f["spacecore_boots_total"].samples.is_empty());
    assert!(f["spacecore_signing_duration_seconds"].samples.iter().all(|s| s.value == 0.0));
}

#[test]
fn the_output_does_not_grow_with_traffic() {
    let mut node = busy_node();
    let before = render_text(&node, Health::Healthy, Some(1), 0).lines().count();
    for i in 0..10_000u64 {
        node.stats.signing.observe(i * 997_000);
    }
    let text = render_text(&node, Health::Healthy, Some(1), u64::MAX);
    assert_eq!(text.lines().count(), before);
    families(&text);
}

#[test]
fn bucket_bounds_ascend() {
    assert!(SIGNING_BUCKETS_NS.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn label_values_are_escaped() {
    // The writer is `prom_text`'s (its own tests cover `le` and histograms); what matters here
    // is that this crate's strict parser reads its escapes back.
    let mut e = Exposition::default();
    e.family("x_total", Kind::Counter, "help");
    e.sample("x_total", &[("a", "q\"b\\s\nn"), ("b", "")], 1);
    e.sample("z", &[], 3);
    let text = e.finish();
    assert_eq!(
        text,
        "# HELP x_total help\n# TYPE x_total counter\nx_total{a=\"q\\\"b\\\\s\\nn\",b=\"\"} 1\nz 3\n"
    );
    let sample = parse_sample(text.lines().nth(2).unwrap()).unwrap();
    assert_eq!(sample.labels["a"], "q\"b\\s\nn");
}

#[test]
fn the_strict_parser_catches_what_promtool_would() {
    let good = "# HELP a_total h\n# TYPE a_total counter\na_total 1\n";
    assert!(parse_strict(good).is_ok());
    let histogram = |buckets: &str, sum: &str, count: &str| {
        format!(
            "# HELP h_seconds h\n# TYPE h_seconds histogram\n{buckets}h_seconds_sum {sum}\nh_seconds_count {count}\n"
        )
    };
    let ok = histogram("h_seconds_bucket{le=\"1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 2\n", "3", "2");
    assert!(parse_strict(&ok).is_ok(), "{:?}", parse_strict(&ok));
    for bad in [
        "a_total 1\n".to_string(),
        "# TYPE a_total counter\na_total 1\n".into(),
        "# HELP a_total h\na_total 1\n".into(),
        "# HELP a_total h\n# TYPE a_total counter\na_total 1".into(),
        "# HELP a h\n# TYPE a counter\na 1\n".into(),
        "# HELP a_total h\n# TYPE a_total gauge\na_total 1\n".into(),
        "# HELP a_count h\n# TYPE a_count gauge\na_count 1\n".into(),
        "# HELP a_ms h\n# TYPE a_ms gauge\na_ms 1\n".into(),
        "# HELP a_total h\n# TYPE a_total counter\na_total 1\na_total 2\n".into(),
        "# HELP a_total h\n# TYPE a_total counter\na_total{x=\"1\"} 1\na_total{x=\"1\"} 2\n".into(),
        "# HELP a_total h\n# TYPE a_total counter\nb_total 1\n".into(),
        "# HELP a_total h\n# TYPE a_total counter\na_total -1\n".into(),
        "# HELP a_total h\n# TYPE a_total counter\na_total{x=1} 1\n".into(),
        "# HELP a_total h\n# TYPE a_total counter\na_total{__x=\"1\"} 1\n".into(),
        "# HELP a_total h\n# TYPE a_total counter\na_total{x=\"\\t\"} 1\n".into(),
        "# HELP a_total h\n# TYPE a_total counter\na_total{le=\"1\"} 1\n".into(),
        "# HELP a_total h\n# TYPE a_total counter\n\na_total 1\n".into(),
        "# HELP a_total h\n# TYPE a_total counter\na_total 1 1700000000\n".into(),
        "# HELP a_total h\n# TYPE a_total counter\n# HELP a_total h\n# TYPE a_total counter\n".into(),
        histogram("h_seconds_bucket{le=\"1\"} 1\n", "3", "1"),
        histogram("h_seconds_bucket{le=\"1\"} 2\nh_seconds_bucket{le=\"+Inf\"} 1\n", "3", "1"),
        histogram("h_seconds_bucket{le=\"2\"} 1\nh_seconds_bucket{le=\"1\"} 1\nh_seconds_bucket{le=\"+Inf\"} 1\n", "3", "1"),
        histogram("h_seconds_bucket{le=\"+Inf\"} 2\n", "3", "1"),
        "# HELP h_seconds h\n# TYPE h_seconds histogram\nh_seconds_bucket{le=\"+Inf\"} 1\nh_seconds_count 1\n".into(),
    ] {
        assert!(parse_strict(&bad).is_err(), "accepted:\n{bad}");
    }
}
