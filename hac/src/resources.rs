//! `[spec.resources]` and `[spec.networking]`: the quantitative keys.

use crate::HostLimits;
use crate::error::SpecError;
use crate::plan::{InboundPort, NetworkPlan, NetworkType};
use crate::tree::{self, Choices, Item, Table};
use crate::units::{self, MIB, RATE_EXPECTED, SIZE_EXPECTED, TIB, UnitError, format_binary_size};

/// Smallest accepted `memory`, and the granularity it must be a multiple of.
pub const MEMORY_GRANULE: u64 = 2 * MIB;
/// Least guest memory: the launcher's fixed regions, stacks, image and a heap need 4 MiB.
pub const MIN_MEMORY: u64 = 4 * MIB;
/// Smallest accepted `storage`.
pub const MIN_STORAGE: u64 = MIB;
/// Largest accepted `storage`.
pub const MAX_STORAGE: u64 = 64 * TIB;
/// `storage` must be a multiple of this (one disk sector).
pub const STORAGE_SECTOR: u64 = 512;
/// Most entries accepted in `inbound_ports`.
pub const MAX_INBOUND_PORTS: usize = 16;
/// Longest accepted `inbound_ports` name.
pub const MAX_PORT_NAME_LEN: usize = 15;

/// The keys of `[spec.resources]`.
pub(crate) const RESOURCE_KEYS: &[&str] = &["cpu", "memory", "storage"];
/// The keys of `[spec.networking]`.
pub(crate) const NETWORK_KEYS: &[&str] =
    &["bandwidth_limit", "ingress", "egress", "network_type", "inbound_ports"];

/// What `[spec.resources]` yields.
#[derive(Debug)]
pub(crate) struct Resources {
    pub(crate) vcpus: u32,
    pub(crate) memory_bytes: u64,
    pub(crate) storage_bytes: u64,
}

pub(crate) fn resources(table: &Table<'_, '_>, limits: &HostLimits) -> Result<Resources, SpecError> {
    let cpu_expected = format!("a vCPU count from 1 to {} such as 4 or \"4\"", limits.max_vcpus);
    let vcpus = cpu(&table.require("cpu", &cpu_expected)?, limits, &cpu_expected)?;
    let memory_item = table.require("memory", SIZE_EXPECTED)?;
    let memory_bytes = memory(&memory_item, limits)?;
    let storage_bytes = match table.get("storage") {
        Some(item) => storage(&item)?,
        None => 0,
    };
    Ok(Resources { vcpus, memory_bytes, storage_bytes })
}

fn cpu(item: &Item<'_, '_>, limits: &HostLimits, expected: &str) -> Result<u32, SpecError> {
    // `None`: a decimal string too long for any integer type.
    let count: Option<i128> = if let Some(integer) = item.integer() {
        Some(integer?)
    } else {
        let text = item.string(expected)?;
        if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit()) {
            return Err(item.wrong_type(expected));
        }
        text.parse().ok()
    };
    if let Some(count) = count.filter(|&count| count < 1) {
        return Err(item.error(format!("{count} vCPUs: expected at least 1")));
    }
    match count.and_then(|count| u32::try_from(count).ok()) {
        Some(vcpus) if vcpus <= limits.max_vcpus => Ok(vcpus),
        _ => Err(item.error(format!(
            "{} vCPUs is more than this host allows; expected 1 to {}",
            tree::render(item.value.get_ref()),
            limits.max_vcpus
        ))),
    }
}

/// The value as a binary size string; a bare number is refused because the
/// unit is required.
fn binary_size<'r>(item: &Item<'r, '_>) -> Result<(u64, &'r str), SpecError> {
    let expected = format!("{SIZE_EXPECTED} (a string with a unit)");
    let text = item.string(&expected)?;
    let bytes = units::parse_binary_size(text).map_err(|e| item.error(e.to_string()))?;
    Ok((bytes, text))
}

fn memory(item: &Item<'_, '_>, limits: &HostLimits) -> Result<u64, SpecError> {
    let (bytes, text) = binary_size(item)?;
    if bytes < MIN_MEMORY {
        return Err(item
            .error(format!("{text:?} is too small; expected at least {}", format_binary_size(MIN_MEMORY))));
    }
    if bytes > limits.max_memory_bytes {
        return Err(item.error(format!(
            "{text:?} is above this host's limit of {}",
            format_binary_size(limits.max_memory_bytes)
        )));
    }
    if !bytes.is_multiple_of(MEMORY_GRANULE) {
        let below = bytes - bytes % MEMORY_GRANULE;
        return Err(item.error(format!(
            "{text:?} is not a multiple of 2Mi (guest memory is mapped in 2 MiB pages); \
             nearest accepted values: {:?} and {:?}",
            format_binary_size(below),
            format_binary_size(below + MEMORY_GRANULE)
        )));
    }
    Ok(bytes)
}

fn storage(item: &Item<'_, '_>) -> Result<u64, SpecError> {
    let (bytes, text) = binary_size(item)?;
    if bytes < MIN_STORAGE {
        return Err(item.error(format!("{text:?} is too small; expected at least 1Mi")));
    }
    if bytes > MAX_STORAGE {
        return Err(item.error(format!("{text:?} is too large; expected at most 64Ti")));
    }
    if !bytes.is_multiple_of(STORAGE_SECTOR) {
        return Err(
            item.error(format!("{text:?} is not a multiple of {STORAGE_SECTOR} bytes (one disk sector)"))
        );
    }
    Ok(bytes)
}

const NETWORK_TYPES: Choices<NetworkType> = Choices {
    accepted: NetworkType::ACCEPTED,
    refused: &["host", "bridge", "none"],
    refused_because: "is not supported by this launcher",
};

pub(crate) fn networking(table: &Table<'_, '_>) -> Result<NetworkPlan, SpecError> {
    let optional_rate = |name: &str| table.get(name).map_or(Ok(0), |item| rate(&item));
    let bandwidth_limit_bps = optional_rate("bandwidth_limit")?;
    let ingress_bps = optional_rate("ingress")?;
    let egress_bps = optional_rate("egress")?;
    let network_type = match table.get("network_type") {
        Some(item) => item.keyword(&NETWORK_TYPES)?,
        None => NetworkType::default(),
    };
    let inbound_ports = match table.get("inbound_ports") {
        Some(item) => inbound_ports(&item.any_table()?)?,
        None => Vec::new(),
    };
    Ok(NetworkPlan { bandwidth_limit_bps, ingress_bps, egress_bps, network_type, inbound_ports })
}

/// A rate: a string with a unit, or a bare integer or float of Gbps.
fn rate(item: &Item<'_, '_>) -> Result<u64, SpecError> {
    use toml::de::DeValue;
    let result: Result<u64, UnitError> = match item.value.get_ref() {
        DeValue::Integer(_) => {
            let value = item.integer().transpose()?.unwrap_or_default();
            units::gbps_from_integer(value)
        }
        DeValue::Float(float) => units::gbps_from_float(float.as_str()),
        DeValue::String(text) => units::parse_bit_rate(text),
        _ => return Err(item.wrong_type(RATE_EXPECTED)),
    };
    result.map_err(|e| item.error(e.to_string()))
}

fn inbound_ports(table: &Table<'_, '_>) -> Result<Vec<InboundPort>, SpecError> {
    let entries = table.entries();
    if let Some(extra) = entries.get(MAX_INBOUND_PORTS) {
        return Err(extra.key_error(format!(
            "too many inbound ports ({}); at most {MAX_INBOUND_PORTS} are accepted in [{}]",
            table.len(),
            table.path()
        )));
    }
    let mut ports: Vec<(InboundPort, usize)> = Vec::with_capacity(entries.len());
    for item in &entries {
        check_port_name(item)?;
        let expected = "a port number from 1 to 65535";
        let Some(number) = item.integer() else {
            return Err(item.wrong_type(expected));
        };
        let number = number?;
        let port = u16::try_from(number)
            .ok()
            .filter(|&port| port != 0)
            .ok_or_else(|| item.error(format!("port {number} is out of range; expected {expected}")))?;
        if let Some((first, line)) = ports.iter().find(|(known, _)| known.port == port) {
            return Err(item.key_error(format!(
                "port {port} is already used by `{}` on line {line}; each port may appear once",
                first.name
            )));
        }
        let line = item.key_line();
        ports.push((InboundPort { name: item.name.to_owned(), port }, line));
    }
    Ok(ports.into_iter().map(|(port, _)| port).collect())
}

fn check_port_name(item: &Item<'_, '_>) -> Result<(), SpecError> {
    let name = item.name;
    let length = name.chars().count();
    let good_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if length == 0 || length > MAX_PORT_NAME_LEN || !good_chars {
        return Err(item.key_error(format!(
            "bad inbound port name {name:?}; expected 1 to {MAX_PORT_NAME_LEN} of letters, \
             digits, '-' and '_'"
        )));
    }
    Ok(())
}
