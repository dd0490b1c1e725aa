//! `hac-launch --check`: the resolved plan, as text or JSON.

use hac::Plan;
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;

/// The image a plan resolved to.
#[derive(Debug, Clone, Serialize)]
pub struct ResolvedImage {
    /// File path.
    pub path: PathBuf,
    /// Size in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
}

/// The plan with its image resolved: what `--check --json` prints.
#[derive(Debug, Serialize)]
pub struct Checked<'a> {
    /// The plan from the spec.
    pub plan: &'a Plan,
    /// The resolved image.
    pub resolved_image: &'a ResolvedImage,
}

/// Human-readable plan.
pub fn text(plan: &Plan, image: &ResolvedImage) -> String {
    let mut s = String::new();
    let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
    let net = &plan.network;
    let _ = writeln!(s, "spacecore {} (from {})", plan.name, plan.spec_path.display());
    let _ = writeln!(s, "  vcpus      {}", plan.vcpus);
    let _ = writeln!(s, "  memory     {} bytes ({:.2} GiB)", plan.memory_bytes, gib(plan.memory_bytes));
    let _ = writeln!(s, "  disk       {} bytes ({:.2} GiB)", plan.storage_bytes, gib(plan.storage_bytes));
    if plan.storage_bytes > 0 {
        let d = &plan.disk;
        let _ = writeln!(s, "  disk limit {} requests/s, {} bytes/s", d.iops, d.bandwidth_bytes_per_s);
    }
    let _ = writeln!(
        s,
        "  nic        1 ({:?}): bandwidth {} bit/s, ingress {} bit/s, egress {} bit/s",
        net.network_type, net.bandwidth_limit_bps, net.ingress_bps, net.egress_bps
    );
    let ports: Vec<String> = net.inbound_ports.iter().map(|p| format!("{}={}", p.name, p.port)).collect();
    let _ = writeln!(s, "  ports      {}", if ports.is_empty() { "none".into() } else { ports.join(", ") });
    let _ = writeln!(s, "  image      {} ({})", plan.image, image.path.display());
    let _ = writeln!(s, "  size       {} bytes", image.size_bytes);
    let _ = writeln!(s, "  sha256     {}", image.sha256);
    let _ = writeln!(s, "  attestation {:?}", plan.attestation);
    let _ = writeln!(s, "  isolation  {}", isolation(plan));
    for endpoint in &plan.egress {
        let _ = writeln!(
            s,
            "  {:<10} {} (the guest calls {}:{})",
            endpoint.name, endpoint.address, net.host_address, endpoint.guest_port
        );
    }
    if let Some(avs) = &plan.avs {
        let file = avs.keystore_password_file.as_ref().map_or("none".into(), |p| p.display().to_string());
        let _ = writeln!(s, "  scheme     {}", avs.scheme);
        let _ = writeln!(s, "  keystore password file {file}");
        let file =
            avs.ecdsa_keystore_password_file.as_ref().map_or("none".into(), |p| p.display().to_string());
        let _ = writeln!(s, "  ECDSA keystore password file {file}");
        let hex = |a: &[u8; 20]| a.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let tasks = match (&avs.task_manager, &avs.task_signer) {
            (Some(manager), _) => {
                format!("read from the chain, TaskManager 0x{}; POST /task refused", hex(manager))
            }
            (None, Some(signer)) => format!("pushed (POST /task), signed by 0x{} only", hex(signer)),
            (None, None) => "none: no task_manager or task_signer, POST /task refused".into(),
        };
        let _ = writeln!(s, "  tasks      {tasks}");
    }
    let failover = &plan.failover;
    let ms = hac::units::format_duration_ms;
    if failover.restarts() {
        let health = match net.http_port() {
            Some(_) => format!(
                "; health every {}, restart after {} without an alive answer",
                ms(failover.health_interval_ms),
                ms(failover.health_timeout_ms)
            ),
            None => "; no health checks (no inbound port named HTTP)".into(),
        };
        let _ = writeln!(
            s,
            "  failover   {}: at most {} restarts within {}, backoff {} to {}{health}",
            failover.strategy,
            failover.max_restarts,
            ms(failover.restart_window_ms),
            ms(failover.backoff_initial_ms),
            ms(failover.backoff_max_ms)
        );
    } else {
        let _ = writeln!(s, "  failover   none: a guest that ends is not restarted");
    }
    if plan.operations.scaling == hac::Scaling::HorizontalAutoScaling {
        let a = &plan.operations.autoscaling;
        let _ = writeln!(
            s,
            "  scaling    {} to {} replicas behind the published ports (least connections); one more above {} \
             open connections per replica for {}, one fewer at or below half of it with one fewer for {}",
            a.min_replicas,
            a.max_replicas,
            a.target_connections,
            ms(a.scale_up_after_ms),
            ms(a.scale_down_after_ms)
        );
    }
    let observability = &plan.observability;
    match observability.metrics_address {
        Some(address) => {
            let sidecar = if observability.sidecar { ", with the guest's metrics and health" } else { "" };
            let _ = writeln!(s, "  metrics    http://{address}/metrics{sidecar}");
        }
        None => {
            let _ = writeln!(s, "  metrics    none");
        }
    }
    let to = observability.log_file.as_ref().map_or("stdout".into(), |p| p.display().to_string());
    let _ = writeln!(s, "  logging    {} lines to {to}", observability.log_format);
    if plan.not_enforced.is_empty() {
        let _ = writeln!(s, "  not enforced yet: none");
    } else {
        let _ = writeln!(s, "  not enforced yet:");
        for n in &plan.not_enforced {
            let _ = writeln!(s, "    {} = {} (arrives with {})", n.key, n.value, n.arrives_with);
        }
    }
    s
}

/// How the launcher will confine itself (`spec.security.isolation`,
/// `spec.virtualization.criteria.security`), as `--check` says it; nothing is checked on the
/// host here (the user, root).
fn isolation(plan: &Plan) -> String {
    let high = plan.virtualization.criteria.security == hac::SecurityLevel::High;
    let mandatory = if high { ", mandatory (criteria.security = \"high\")" } else { "" };
    match plan.security_isolation {
        Some(hac::Isolation::Unconfined) => "none: the launcher keeps its privileges (unsafe)".into(),
        Some(hac::Isolation::Jailed) => format!("jailed{mandatory}"),
        None => format!("jailed when started as root (the default){mandatory}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_isolation_line_follows_the_spec() {
        let limits = hac::HostLimits { max_vcpus: 4, max_memory_bytes: 1 << 30 };
        let spec = |tables: &str| {
            let text = format!(
                "apiVersion = \"vistara.eigenlayer/v1\"\nkind = \"AVSSpaceCore\"\n[metadata]\nname = \"c\"\n\
                 [spec.resources]\ncpu = 1\nmemory = \"64Mi\"\n{tables}\n[spec.deployment]\nimage = \"./x.elf\"\n"
            );
            isolation(&hac::parse_str(&text, std::path::Path::new("/s/c.toml"), &limits).unwrap())
        };
        assert_eq!(spec(""), "jailed when started as root (the default)");
        assert_eq!(
            spec("[spec.security]\nisolation = \"none\""),
            "none: the launcher keeps its privileges (unsafe)"
        );
        assert_eq!(
            spec(
                "[spec.virtualization.criteria]\nsecurity = \"high\"\n[spec.security]\nisolation = \"jailed\""
            ),
            "jailed, mandatory (criteria.security = \"high\")"
        );
    }
}
