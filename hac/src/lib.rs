//! `hac`: reads the operator's spec file (`hac.toml`, kind `AVSSpaceCore`),
//! validates every key, and turns it into a [`Plan`] for `hac-launch`.
//!
//! Every key either does something or is rejected: unknown keys, wrong types
//! and out-of-range values are errors that name the dotted key, the line and
//! column, and what was expected ([`SpecError`]). Keys that are validated but
//! not acted on yet are listed in [`Plan::not_enforced`] (see
//! [`NOT_ENFORCED`]). The format is documented in `docs/hac-toml.md`.
//!
//! ```
//! use std::path::Path;
//! let source = r#"
//! apiVersion = "vistara.eigenlayer/v1"
//! kind = "AVSSpaceCore"
//! [metadata]
//! name = "demo"
//! [spec.resources]
//! cpu = 2
//! memory = "512Mi"
//! [spec.deployment]
//! image = "./demo.elf"
//! "#;
//! let limits = hac::HostLimits { max_vcpus: 8, max_memory_bytes: 4 << 30 };
//! let plan = hac::parse_str(source, Path::new("/srv/demo/hac.toml"), &limits).unwrap();
//! assert_eq!(plan.vcpus, 2);
//! assert_eq!(plan.memory_bytes, 512 << 20);
//! assert_eq!(plan.image.to_string(), "/srv/demo/demo.elf");
//! ```
#![forbid(unsafe_code)]

mod address;
mod error;
mod image_ref;
mod not_enforced;
mod plan;
mod resources;
mod scaling;
mod spec;
mod supervision;
mod tree;
pub mod units;

use std::path::Path;

pub use address::{MAX_PREFIX_LEN, MIN_PREFIX_LEN};
pub use error::SpecError;
pub use image_ref::{DEFAULT_TAG, ImageRef, ImageSource, looks_like_path};
pub use not_enforced::{NOT_ENFORCED, STORAGE_AND_NETWORKING, SUPERVISOR};
pub use plan::{
    Attestation, Autoscaling, AvsPlan, Criteria, DEFAULT_DISK_BANDWIDTH, DEFAULT_DISK_IOPS,
    DEFAULT_GUEST_ADDRESS, DEFAULT_HOST_ADDRESS, DEFAULT_METRICS_ADDRESS, DEFAULT_PREFIX_LEN,
    DEFAULT_PUBLISH_ADDRESS, DiskPlan, Endpoint, Failover, FailoverStrategy, InboundPort, Isolation,
    LogFormat, NetworkPlan, NetworkType, NotEnforced, Observability, Operations, PerformanceLevel, Plan,
    Provider, Scaling, SecurityLevel, SignatureScheme, UpdateStrategy, Virtualization, VirtualizationType,
};
pub use resources::{
    MAX_INBOUND_PORTS, MAX_PORT_NAME_LEN, MAX_STORAGE, MEMORY_GRANULE, MIN_MEMORY, MIN_STORAGE,
    STORAGE_SECTOR,
};
pub use spec::{API_VERSION, KIND, MAX_NAME_LEN};
pub use supervision::{BACKOFF_MS, HEALTH_INTERVAL_MS, HEALTH_TIMEOUT_MS, MAX_RESTARTS, RESTART_WINDOW_MS};

/// What this host can give one AVS node; `cpu` and `memory` above these are
/// rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// Most vCPUs one VM may have.
    pub max_vcpus: u32,
    /// Most guest memory one VM may have, in bytes.
    pub max_memory_bytes: u64,
}

/// Reads the spec file at `path` and validates it. Relative image, disk and
/// password-file paths are resolved against the file's directory.
pub fn parse_file(path: &Path, limits: &HostLimits) -> Result<Plan, SpecError> {
    let source = std::fs::read_to_string(path).map_err(|error| {
        SpecError::without_position(path, "", format!("cannot read the spec file: {error}"))
    })?;
    parse_str(&source, path, limits)
}

/// Validates spec text. `path` is used in messages and as the base for
/// relative image, disk and password-file paths; it is not opened.
pub fn parse_str(source: &str, path: &Path, limits: &HostLimits) -> Result<Plan, SpecError> {
    let root = toml::de::DeTable::parse(source).map_err(|error| {
        let mut message = format!("invalid TOML: {}", error.message());
        match error.span() {
            Some(span) => {
                // Quote the offending text when it is short enough to help.
                if let Some(text) = source.get(span.clone())
                    && !text.is_empty()
                    && text.len() <= 40
                    && !text.contains('\n')
                {
                    message.push_str(&format!(" (at `{text}`)"));
                }
                SpecError::at(path, source, span, "", message)
            }
            None => SpecError::without_position(path, "", message),
        }
    })?;
    let doc = tree::Doc { file: path, source };
    spec::build(doc, &root, limits)
}

#[cfg(test)]
mod tests;
