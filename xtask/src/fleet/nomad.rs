//! The Nomad job of `examples/fleet/`. No registry this project can use offers Nomad (whose `nomad
//! job validate` is the real check) or a jobspec validator, so this is the check instead:
//!
//! 1. the file parses as HCL (the `hcl-rs` crate) and is expanded as Nomad's HCL2 reads it: its
//!    `locals` evaluated and each `dynamic` block replaced by the blocks it makes (see
//!    [`expand`]);
//! 2. every block and attribute is one of the jobspec's, where it may stand (a misspelt
//!    `kill_timout`, a `port` outside `network`), with the type Nomad expects (a number, a
//!    duration, a list of strings, one of a few keywords); the table covers the jobspec keys a
//!    spacecore job has use for, not every key Nomad knows;
//! 3. each group runs `hac-launch` (driver `raw_exec` or `exec`) on a spec written by a
//!    `template`, which `hac` validates; a signer's group has `count = 1` and no canary; the
//!    group's `http` and `metrics` ports are the spec's published HTTP port and metrics address,
//!    the health check calls `/eigen/node/health`, and `kill_timeout` exceeds `--stop-timeout`.

use anyhow::{Context, Result, anyhow, bail, ensure};
use hcl::eval::Evaluate;
use hcl::{Block, BlockLabel, Body, Expression, Identifier, Map, Structure, TemplateExpr, Value};

/// What a jobspec block may hold.
struct Kind {
    block: &'static str,
    /// How many labels it takes (`job "NAME"`: 1).
    labels: usize,
    /// Its attributes; `["*"]`: any (`env`, `meta`).
    attributes: &'static [&'static str],
    /// The blocks it may hold.
    blocks: &'static [&'static str],
}

const ROOT: Kind =
    Kind { block: "(file)", labels: 0, attributes: &[], blocks: &["job", "variable", "locals"] };

const KINDS: &[Kind] = &[
    Kind {
        block: "job",
        labels: 1,
        attributes: &["datacenters", "type", "region", "namespace", "priority", "node_pool", "all_at_once"],
        blocks: &[
            "constraint",
            "affinity",
            "spread",
            "group",
            "update",
            "meta",
            "reschedule",
            "migrate",
            "periodic",
            "parameterized",
        ],
    },
    Kind {
        block: "group",
        labels: 1,
        attributes: &["count", "shutdown_delay", "stop_after_client_disconnect", "max_client_disconnect"],
        blocks: &[
            "constraint",
            "affinity",
            "spread",
            "update",
            "restart",
            "reschedule",
            "migrate",
            "network",
            "service",
            "task",
            "ephemeral_disk",
            "volume",
            "meta",
            "scaling",
            "disconnect",
        ],
    },
    Kind { block: "constraint", labels: 0, attributes: &["attribute", "operator", "value"], blocks: &[] },
    Kind {
        block: "affinity",
        labels: 0,
        attributes: &["attribute", "operator", "value", "weight"],
        blocks: &[],
    },
    Kind {
        block: "update",
        labels: 0,
        attributes: &[
            "max_parallel",
            "canary",
            "health_check",
            "min_healthy_time",
            "healthy_deadline",
            "progress_deadline",
            "auto_revert",
            "auto_promote",
            "stagger",
        ],
        blocks: &[],
    },
    Kind {
        block: "restart",
        labels: 0,
        attributes: &["attempts", "interval", "delay", "mode", "render_templates"],
        blocks: &[],
    },
    Kind {
        block: "reschedule",
        labels: 0,
        attributes: &["attempts", "interval", "delay", "delay_function", "max_delay", "unlimited"],
        blocks: &[],
    },
    Kind { block: "network", labels: 0, attributes: &["mode", "hostname"], blocks: &["port", "dns"] },
    Kind { block: "port", labels: 1, attributes: &["static", "to", "host_network"], blocks: &[] },
    Kind {
        block: "service",
        labels: 0,
        attributes: &[
            "name",
            "provider",
            "port",
            "tags",
            "canary_tags",
            "address_mode",
            "address",
            "task",
            "on_update",
            "enable_tag_override",
        ],
        blocks: &["check", "check_restart", "meta", "canary_meta"],
    },
    Kind {
        block: "check",
        labels: 0,
        attributes: &[
            "type",
            "name",
            "path",
            "interval",
            "timeout",
            "port",
            "protocol",
            "method",
            "initial_status",
            "on_update",
            "address_mode",
            "success_before_passing",
            "failures_before_critical",
            "failures_before_warning",
            "command",
            "args",
            "task",
            "body",
            "tls_skip_verify",
            "tls_server_name",
        ],
        blocks: &["header", "check_restart"],
    },
    Kind {
        block: "task",
        labels: 1,
        attributes: &["driver", "user", "kill_signal", "kill_timeout", "leader", "shutdown_delay", "kind"],
        blocks: &[
            "config",
            "env",
            "template",
            "resources",
            "artifact",
            "logs",
            "meta",
            "constraint",
            "affinity",
            "restart",
            "service",
            "lifecycle",
            "volume_mount",
        ],
    },
    // raw_exec's and exec's; other drivers are refused below.
    Kind {
        block: "config",
        labels: 0,
        attributes: &["command", "args", "pid_mode", "ipc_mode", "cap_add", "cap_drop"],
        blocks: &[],
    },
    Kind { block: "env", labels: 0, attributes: &["*"], blocks: &[] },
    Kind { block: "meta", labels: 0, attributes: &["*"], blocks: &[] },
    Kind {
        block: "template",
        labels: 0,
        attributes: &[
            "data",
            "destination",
            "change_mode",
            "change_signal",
            "source",
            "left_delimiter",
            "right_delimiter",
            "perms",
            "uid",
            "gid",
            "splay",
            "env",
            "error_on_missing_key",
            "once",
        ],
        blocks: &["wait", "change_script"],
    },
    Kind {
        block: "resources",
        labels: 0,
        attributes: &["cpu", "cores", "memory", "memory_max"],
        blocks: &["device"],
    },
    Kind { block: "logs", labels: 0, attributes: &["max_files", "max_file_size", "disabled"], blocks: &[] },
    Kind { block: "ephemeral_disk", labels: 0, attributes: &["size", "sticky", "migrate"], blocks: &[] },
];

/// Attributes of a given type, wherever they stand.
const INTEGERS: &[&str] = &[
    "count",
    "priority",
    "max_parallel",
    "canary",
    "attempts",
    "static",
    "to",
    "cpu",
    "cores",
    "memory",
    "memory_max",
    "max_files",
    "max_file_size",
    "size",
    "weight",
];
const DURATIONS: &[&str] = &[
    "interval",
    "timeout",
    "delay",
    "max_delay",
    "kill_timeout",
    "min_healthy_time",
    "healthy_deadline",
    "progress_deadline",
    "shutdown_delay",
    "stagger",
    "splay",
    "stop_after_client_disconnect",
    "max_client_disconnect",
];
const STRING_LISTS: &[&str] = &["datacenters", "args", "tags", "canary_tags", "cap_add", "cap_drop"];
const BOOLEANS: &[&str] = &[
    "all_at_once",
    "auto_revert",
    "auto_promote",
    "sticky",
    "migrate",
    "unlimited",
    "disabled",
    "once",
    "error_on_missing_key",
    "leader",
    "render_templates",
    "enable_tag_override",
    "tls_skip_verify",
];
/// `(block, attribute, accepted values)`.
const KEYWORDS: &[(&str, &str, &[&str])] = &[
    ("job", "type", &["service", "batch", "system", "sysbatch"]),
    ("restart", "mode", &["fail", "delay"]),
    ("template", "change_mode", &["noop", "restart", "signal", "script"]),
    ("check", "type", &["http", "tcp", "script", "grpc"]),
    ("service", "provider", &["consul", "nomad"]),
    ("update", "health_check", &["checks", "task_states", "manual"]),
    // The drivers that can run hac-launch with /dev/kvm: raw_exec (as root, as systemd would) or
    // exec.
    ("task", "driver", &["raw_exec", "exec"]),
];

/// Checks the job text; returns how many spacecore specs it carries.
pub fn check(text: &str) -> Result<usize> {
    let body = expand(&hcl::parse(text).context("not valid HCL")?)?;
    check_body(&body, &ROOT, "")?;
    let jobs: Vec<&Block> = body.blocks().filter(|b| b.identifier.as_str() == "job").collect();
    ensure!(jobs.len() == 1, "expected one `job` block, found {}", jobs.len());
    let job = jobs[0];
    let job_name = label(job);
    let groups: Vec<&Block> = blocks(&job.body, "group").collect();
    ensure!(!groups.is_empty(), "job {job_name:?} has no group");
    let mut specs = 0;
    for group in groups {
        let at = format!("job {job_name:?} > group {:?}", label(group));
        specs += check_group(group).with_context(|| at)?;
    }
    Ok(specs)
}

/// The file as Nomad's HCL2 reads it: the attributes of its `locals` blocks evaluated in order
/// (each may use those before it, as `local.NAME`) and taken out, and every `dynamic` block, at
/// any depth, replaced by the blocks it makes. A `dynamic "KIND"` block makes one `KIND` block per
/// element of `for_each` (a map's entries, a list's items), labelled by `labels` and holding
/// `content` evaluated with `local` and the iterator (named by `iterator`, else `KIND`: an object
/// with the element's `key` and `value`). Expressions outside a dynamic block's content are kept
/// as written, as Nomad keeps `${attr.*}` and `${meta.*}` for the client to fill in; inside one,
/// `$${` writes such a `${`.
fn expand(body: &Body) -> Result<Body> {
    let mut locals = Map::new();
    for block in blocks(body, "locals") {
        ensure!(block.body.blocks().next().is_none(), "a `locals` block holds attributes only");
        for attr in block.body.attributes() {
            let mut ctx = hcl::eval::Context::new();
            ctx.declare_var("local", Value::Object(locals.clone()));
            let value = attr.expr.evaluate(&ctx).map_err(|e| anyhow!("local.{}: {e}", attr.key))?;
            locals.insert(attr.key.to_string(), value);
        }
    }
    let mut ctx = hcl::eval::Context::new();
    ctx.declare_var("local", Value::Object(locals));
    let rest: Body = body
        .iter()
        .filter(|s| !matches!(s, Structure::Block(b) if b.identifier.as_str() == "locals"))
        .cloned()
        .collect();
    expand_dynamic(&rest, &ctx, "")
}

/// `body` with its `dynamic` blocks, at any depth, replaced by the blocks they make.
fn expand_dynamic(body: &Body, ctx: &hcl::eval::Context, at: &str) -> Result<Body> {
    let mut out = Vec::new();
    for structure in body.iter() {
        match structure {
            Structure::Block(block) if block.identifier.as_str() == "dynamic" => {
                out.extend(dynamic(block, ctx, at)?.into_iter().map(Structure::Block));
            }
            Structure::Block(block) => {
                let body = expand_dynamic(&block.body, ctx, &path(at, block))?;
                out.push(Structure::Block(Block { body, ..block.clone() }));
            }
            attribute => out.push(attribute.clone()),
        }
    }
    Ok(out.into_iter().collect())
}

/// The blocks one `dynamic` block makes (see [`expand`]).
fn dynamic(block: &Block, ctx: &hcl::eval::Context, at: &str) -> Result<Vec<Block>> {
    let kind = label(block);
    let at = path(at, block);
    ensure!(block.labels.len() == 1, "{at}: a `dynamic` block takes one label, the kind of block it makes");
    for attr in block.body.attributes() {
        let name = attr.key.as_str();
        ensure!(
            ["for_each", "labels", "iterator"].contains(&name),
            "{at}: unknown attribute `{name}` in a `dynamic` block; it takes: for_each, labels, iterator"
        );
    }
    let contents: Vec<&Block> = block.body.blocks().collect();
    let [content] = contents[..] else { bail!("{at}: a `dynamic` block holds one `content` block") };
    ensure!(
        content.identifier.as_str() == "content" && content.labels.is_empty(),
        "{at}: a `dynamic` block holds one `content` block, not a `{}` block",
        content.identifier.as_str()
    );
    let iterator = match attribute(&block.body, "iterator") {
        None => kind.to_owned(),
        Some(Expression::Variable(name)) => name.as_str().to_owned(),
        Some(_) => bail!("{at}: `iterator` is a name"),
    };
    let each = attribute(&block.body, "for_each").with_context(|| format!("{at}: no `for_each`"))?;
    let elements: Vec<(Value, Value)> =
        match each.evaluate(ctx).map_err(|e| anyhow!("{at}: `for_each`: {e}"))? {
            Value::Object(entries) => entries.into_iter().map(|(k, v)| (Value::String(k), v)).collect(),
            Value::Array(items) => {
                items.into_iter().enumerate().map(|(i, v)| (Value::from(i as u64), v)).collect()
            }
            other => bail!("{at}: `for_each` is {other}, not a map or a list"),
        };
    let identifier = Identifier::new(kind).map_err(|e| anyhow!("{at}: {e}"))?;
    let mut made = Vec::new();
    for (key, value) in elements {
        let here = format!("{at} [{key}]");
        let mut inner = ctx.clone();
        inner.declare_var(
            iterator.as_str(),
            Value::Object(Map::from_iter([("key".into(), key), ("value".into(), value)])),
        );
        let labels = match attribute(&block.body, "labels") {
            None => Vec::new(),
            Some(expr) => match expr.evaluate(&inner).map_err(|e| anyhow!("{here}: `labels`: {e}"))? {
                Value::Array(items) => items
                    .into_iter()
                    .map(|item| match item {
                        Value::String(text) => Ok(BlockLabel::String(text)),
                        other => bail!("{here}: the label {other} is not a string"),
                    })
                    .collect::<Result<_>>()?,
                other => bail!("{here}: `labels` is {other}, not a list of strings"),
            },
        };
        let body = expand_dynamic(&content.body, &inner, &here)?
            .evaluate(&inner)
            .map_err(|e| anyhow!("{here}: {e}"))?;
        made.push(Block { identifier: identifier.clone(), labels, body });
    }
    Ok(made)
}

/// Where `block` stands, below `at`, in an error: `> group "avs-a"`.
fn path(at: &str, block: &Block) -> String {
    match block.labels.first() {
        Some(label) => format!("{at} > {} {:?}", block.identifier.as_str(), label.as_str()),
        None => format!("{at} > {}", block.identifier.as_str()),
    }
}

fn label(block: &Block) -> &str {
    block.labels.first().map(|l| l.as_str()).unwrap_or_default()
}

fn blocks<'a>(body: &'a Body, name: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
    body.blocks().filter(move |b| b.identifier.as_str() == name)
}

fn attribute<'a>(body: &'a Body, name: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key.as_str() == name).map(|a| &a.expr)
}

/// The text of a string, a quoted template (`"${attr.kernel.name}"`, kept as written) or a
/// heredoc (its indentation already stripped by the parser for `<<-`).
fn string(expr: &Expression) -> Option<&str> {
    match expr {
        Expression::String(s) => Some(s),
        Expression::TemplateExpr(t) => Some(match &**t {
            TemplateExpr::QuotedString(s) => s,
            TemplateExpr::Heredoc(h) => &h.template,
        }),
        _ => None,
    }
}

fn integer(expr: &Expression) -> Option<i64> {
    match expr {
        Expression::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// A Nomad duration (`"10s"`, `"2m"`, `"1h30m"`, `"500ms"`), in milliseconds.
fn duration_ms(text: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut rest = text;
    ensure_nonempty(rest)?;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let factor = match &rest[..unit] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        total = total.checked_add(number.checked_mul(factor)?)?;
        rest = &rest[unit..];
    }
    Some(total)
}

fn ensure_nonempty(text: &str) -> Option<()> {
    (!text.is_empty()).then_some(())
}

/// Every block and attribute of `body` is one `kind` may hold, recursively, with its type.
fn check_body(body: &Body, kind: &Kind, at: &str) -> Result<()> {
    for attr in body.attributes() {
        let name = attr.key.as_str();
        if kind.attributes != ["*"] && !kind.attributes.contains(&name) {
            bail!(
                "{at}: unknown attribute `{name}` in a `{}` block; the jobspec's are: {}",
                kind.block,
                kind.attributes.join(", ")
            );
        }
        check_type(kind.block, name, &attr.expr).with_context(|| format!("{at}: `{name}`"))?;
    }
    for block in body.blocks() {
        let name = block.identifier.as_str();
        let inner = KINDS.iter().find(|k| k.block == name && kind.blocks.contains(&name));
        let Some(inner) = inner else {
            bail!(
                "{at}: a `{name}` block cannot stand in a `{}` block; it may hold: {}",
                kind.block,
                kind.blocks.join(", ")
            );
        };
        let here = path(at, block);
        ensure!(
            block.labels.len() == inner.labels,
            "{here}: a `{name}` block takes {} label(s), found {}",
            inner.labels,
            block.labels.len()
        );
        check_body(&block.body, inner, &here)?;
    }
    Ok(())
}

fn check_type(block: &str, name: &str, expr: &Expression) -> Result<()> {
    if INTEGERS.contains(&name) {
        ensure!(integer(expr).is_some(), "expected a whole number");
    } else if DURATIONS.contains(&name) {
        let text = string(expr).context("expected a duration such as \"10s\"")?;
        ensure!(duration_ms(text).is_some(), "{text:?} is not a duration such as \"10s\" or \"2m\"");
    } else if STRING_LISTS.contains(&name) {
        let Expression::Array(items) = expr else { bail!("expected a list of strings") };
        ensure!(items.iter().all(|i| string(i).is_some()), "expected a list of strings");
    } else if BOOLEANS.contains(&name) {
        ensure!(matches!(expr, Expression::Bool(_)), "expected true or false");
    } else if !matches!(block, "env" | "meta") {
        ensure!(string(expr).is_some(), "expected a string");
    } else {
        ensure!(string(expr).is_some() || integer(expr).is_some(), "expected a string");
    }
    if let Some((_, _, accepted)) = KEYWORDS.iter().find(|(b, a, _)| *b == block && *a == name) {
        let text = string(expr).unwrap_or_default();
        ensure!(accepted.contains(&text), "{text:?}: expected one of {}", accepted.join(", "));
    }
    Ok(())
}

/// One group: one `hac-launch` task and its spec, held against the group around it. Returns 1.
fn check_group(group: &Block) -> Result<usize> {
    let count = attribute(&group.body, "count").and_then(integer).unwrap_or(1);
    ensure!(count >= 1, "count = {count}: a group of a spacecore job runs at least one");
    let tasks: Vec<&Block> = blocks(&group.body, "task").collect();
    ensure!(tasks.len() == 1, "expected one task (hac-launch), found {}", tasks.len());
    let task = tasks[0];
    let at = format!("task {:?}", label(task));

    let config = blocks(&task.body, "config").next().with_context(|| format!("{at}: no `config` block"))?;
    let command = attribute(&config.body, "command").and_then(string).unwrap_or_default();
    ensure!(command.ends_with("/hac-launch"), "{at}: the command is {command:?}, not hac-launch");
    let args: Vec<&str> = match attribute(&config.body, "args") {
        Some(Expression::Array(items)) => items.iter().filter_map(string).collect(),
        _ => Vec::new(),
    };
    let spec_arg = *args.last().with_context(|| format!("{at}: hac-launch is given no spec"))?;

    let templates: Vec<&Block> = blocks(&task.body, "template")
        .filter(|t| attribute(&t.body, "destination").and_then(string) == Some(spec_arg))
        .collect();
    ensure!(
        templates.len() == 1,
        "{at}: no `template` writes the spec {spec_arg:?} that hac-launch is given"
    );
    let data = attribute(&templates[0].body, "data")
        .and_then(string)
        .with_context(|| format!("{at}: the template of {spec_arg:?} has no `data`"))?;
    let plan = super::spec(data, spec_arg).with_context(|| format!("{at}: the spec {spec_arg:?}"))?;

    if plan.signs() {
        ensure!(
            count == 1,
            "count = {count}, but spacecore {:?} signs ([spec.avs]): a signer runs as exactly one \
             instance (one key, one signing history)",
            plan.name
        );
        ensure!(
            blocks(&group.body, "scaling").next().is_none(),
            "a `scaling` block on the group of spacecore {:?}, which signs: a signer is never scaled",
            plan.name
        );
        for update in blocks(&group.body, "update") {
            let canary = attribute(&update.body, "canary").and_then(integer).unwrap_or(0);
            ensure!(
                canary == 0,
                "canary = {canary} on the group of spacecore {:?}, which signs: a canary is a second \
                 instance with the same key",
                plan.name
            );
        }
    }

    // The group's ports are the spec's.
    let port = |name: &str| {
        blocks(&group.body, "network")
            .flat_map(|n| blocks(&n.body, "port"))
            .find(|p| label(p) == name)
            .and_then(|p| attribute(&p.body, "static"))
            .and_then(integer)
    };
    let http = plan.network.inbound_ports.iter().find(|p| p.name.eq_ignore_ascii_case("HTTP"));
    if let Some(http) = http {
        ensure!(
            port("http") == Some(i64::from(http.host_port)),
            "port \"http\" is {:?}, but the spec publishes HTTP on host port {}",
            port("http"),
            http.host_port
        );
    }
    if let Some(metrics) = plan.observability.metrics_address {
        ensure!(
            port("metrics") == Some(i64::from(metrics.port())),
            "port \"metrics\" is {:?}, but the spec's metrics_address is {metrics}",
            port("metrics")
        );
    }
    let health_checked = blocks(&group.body, "service").flat_map(|s| blocks(&s.body, "check")).any(|c| {
        attribute(&c.body, "path").and_then(string) == Some("/eigen/node/health")
            && attribute(&c.body, "type").and_then(string) == Some("http")
    });
    ensure!(health_checked, "no http check of /eigen/node/health on the group's services");

    // Nomad's SIGKILL comes after kill_timeout: later than the launcher's own --stop-timeout.
    let stop_timeout_ms: u64 = match args.iter().position(|a| *a == "--stop-timeout") {
        Some(i) => {
            args.get(i + 1).and_then(|v| v.parse().ok()).context("--stop-timeout takes milliseconds")?
        }
        None => 5_000,
    };
    let kill_timeout_ms =
        attribute(&task.body, "kill_timeout").and_then(string).and_then(duration_ms).unwrap_or(5_000);
    ensure!(
        kill_timeout_ms > stop_timeout_ms,
        "{at}: kill_timeout ({kill_timeout_ms} ms) must exceed hac-launch's --stop-timeout ({stop_timeout_ms} ms)"
    );
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = include_str!("../../../examples/fleet/spacecore.nomad.hcl");

    #[track_caller]
    fn refused(from: &str, to: &str, needle: &str) {
        assert!(JOB.contains(from), "{from:?} is not in the job");
        let Err(error) = check(&JOB.replacen(from, to, 1)) else { panic!("{to:?} passed") };
        let error = format!("{error:#}");
        assert!(error.contains(needle), "{needle:?} not in: {error}");
    }

    #[test]
    fn the_job_parses_and_passes() {
        assert_eq!(check(JOB).unwrap(), 2);
    }

    #[test]
    fn the_groups_come_from_the_locals() {
        let body = expand(&hcl::parse(JOB).unwrap()).unwrap();
        let job = blocks(&body, "job").next().unwrap();
        let groups: Vec<&Block> = blocks(&job.body, "group").collect();
        assert_eq!(groups.iter().map(|g| label(g)).collect::<Vec<_>>(), ["avs-a", "avs-b"]);
        let b = groups[1];
        let disk = blocks(&b.body, "constraint").next().unwrap();
        assert_eq!(attribute(&disk.body, "attribute").and_then(string), Some("${meta.spacecore_disk_avs_b}"));
        let ports: Vec<_> = blocks(&b.body, "network")
            .flat_map(|n| blocks(&n.body, "port"))
            .map(|p| (label(p), attribute(&p.body, "static").and_then(integer)))
            .collect();
        assert_eq!(ports, [("http", Some(18082)), ("metrics", Some(9102))]);
        let task = blocks(&b.body, "task").next().unwrap();
        let data =
            blocks(&task.body, "template").next().and_then(|t| attribute(&t.body, "data")).and_then(string);
        let data = data.unwrap();
        for line in [
            "name = \"avs-b\"",
            "path = \"/var/lib/spacecore/avs-b/disk.img\"",
            "HTTP = 18082",
            "keystore_password_file = \"/etc/spacecore/avs-b.password\"",
            "metrics_address = \"0.0.0.0:9102\"",
        ] {
            assert!(data.lines().any(|l| l == line), "{line:?} not in the spec of avs-b:\n{data}");
        }
        // The job's own constraints are kept as written, for the client to fill in.
        assert_eq!(
            blocks(&job.body, "constraint").filter_map(|c| attribute(&c.body, "attribute")).count(),
            2
        );
    }

    #[test]
    fn what_the_check_refuses() {
        for (from, to, needle) in [
            ("job \"spacecore\" {", "job \"spacecore\" {{", "not valid HCL"),
            ("kill_timeout", "kill_timout", "unknown attribute `kill_timout` in a `task` block"),
            ("kill_timeout = \"10s\"", "kill_timeout = \"10 seconds\"", "is not a duration"),
            ("kill_timeout = \"10s\"", "kill_timeout = \"4s\"", "must exceed hac-launch's --stop-timeout"),
            ("      count = 1\n", "      count = \"1\"\n", "expected a whole number"),
            ("      count = 1\n", "      count = 2\n", "a signer runs as exactly one instance"),
            ("canary           = 0", "canary           = 1", "a canary is a second instance"),
            ("driver = \"raw_exec\"", "driver = \"docker\"", "expected one of raw_exec, exec"),
            ("mode     = \"fail\"", "mode     = \"retry\"", "expected one of fail, delay"),
            ("static = group.value.http", "static = 18080", "the spec publishes HTTP on host port 18081"),
            ("static = group.value.metrics", "static = 9100", "metrics_address is 0.0.0.0:9101"),
            ("\"/eigen/node/health\"", "\"/health\"", "no http check of /eigen/node/health"),
            ("scaling = \"None\"", "scaling = \"HorizontalAutoScaling\"", "but it signs"),
            ("network {", "port \"x\" {}\n      network {", "a `port` block cannot stand in a `group` block"),
            ("memory = \"512Mi\"", "memory = \"512MB\"", "spec.resources.memory"),
            // The locals and the dynamic block.
            ("for_each = local.operators", "for_each = local.operator", "`for_each`"),
            ("for_each =", "for_eachh =", "unknown attribute `for_eachh` in a `dynamic` block"),
            ("labels   = [group.key]", "labels   = [group.value]", "is not a string"),
            ("content {", "contents {", "one `content` block, not a `contents` block"),
            ("http = 18081, ", "http = \"18081\", ", "expected a whole number"),
            ("static = group.value.http", "static = group.value.https", "group.value.https"),
        ] {
            refused(from, to, needle);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms("10s"), Some(10_000));
        assert_eq!(duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(duration_ms("500ms"), Some(500));
        for bad in ["", "10", "s", "10 s", "1d"] {
            assert_eq!(duration_ms(bad), None, "{bad:?}");
        }
    }
}
