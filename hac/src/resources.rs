//! `[spec.resources]` and `[spec.networking]`: the quantitative keys, the
//! tap addresses and the published ports.

use std::net::{IpAddr, Ipv4Addr};

use crate::HostLimits;
use crate::address::{self, GUEST_EXPECTED, HOST_EXPECTED, PUBLISH_EXPECTED};
use crate::error::SpecError;
use crate::plan::{
    DEFAULT_GUEST_ADDRESS, DEFAULT_HOST_ADDRESS, DEFAULT_PREFIX_LEN, DEFAULT_PUBLISH_ADDRESS, InboundPort,
    NetworkPlan, NetworkType,
};
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
pub(crate) const NETWORK_KEYS: &[&str] = &[
    "bandwidth_limit",
    "ingress",
    "egress",
    "network_type",
    "inbound_ports",
    "guest_address",
    "host_address",
    "publish_address",
    "publish",
];

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
        Some(item) => network_type(&item)?,
        None => NetworkType::default(),
    };
    let mut inbound_ports = match table.get("inbound_ports") {
        Some(item) => inbound_ports(&item.any_table()?)?,
        None => Vec::new(),
    };
    let (guest_address, prefix_len) = match table.get("guest_address") {
        Some(item) => guest_address(&item)?,
        None => (DEFAULT_GUEST_ADDRESS, DEFAULT_PREFIX_LEN),
    };
    let host_address = host_address(table, guest_address, prefix_len)?;
    let publish_address = match table.get("publish_address") {
        Some(item) => publish_address(&item)?,
        None => DEFAULT_PUBLISH_ADDRESS,
    };
    if let Some(item) = table.get("publish") {
        publish(&item.any_table()?, &mut inbound_ports)?;
    }
    Ok(NetworkPlan {
        bandwidth_limit_bps,
        ingress_bps,
        egress_bps,
        network_type,
        inbound_ports,
        guest_address,
        prefix_len,
        host_address,
        publish_address,
    })
}

/// Why `"public"` is refused: what it would take, and what to write instead.
pub(crate) const PUBLIC_REFUSED: &str = "\"public\" would route the guest to addresses the spec \
     does not name (through the host's NAT), which needs a route and address translation out of \
     the spacecore's namespace; this launcher never routes a guest: it relays only the endpoints \
     the spec names. Write \"private\" (the default) and name each endpoint in [spec.avs] \
     (aggregator, eth_rpc, eth_ws)";

/// `network_type`: `"private"` or `"isolated"`; `"public"` is refused with the reason.
fn network_type(item: &Item<'_, '_>) -> Result<NetworkType, SpecError> {
    if item.string("").is_ok_and(|text| text.eq_ignore_ascii_case("public")) {
        return Err(item.error(PUBLIC_REFUSED.to_owned()));
    }
    item.keyword(&NETWORK_TYPES)
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
        ports.push((InboundPort { name: item.name.to_owned(), port, host_port: port }, line));
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

/// `guest_address`: `"a.b.c.d/len"`.
fn guest_address(item: &Item<'_, '_>) -> Result<(Ipv4Addr, u8), SpecError> {
    let text = item.string(GUEST_EXPECTED)?;
    address::parse_guest(text).map_err(|message| item.error(message))
}

/// `host_address`, checked against the guest's subnet. When it is absent the
/// default must fit the subnet too; if it does not, the error is about
/// `guest_address` (the only key written).
fn host_address(table: &Table<'_, '_>, guest: Ipv4Addr, prefix_len: u8) -> Result<Ipv4Addr, SpecError> {
    if let Some(item) = table.get("host_address") {
        let host = address::parse_host(item.string(HOST_EXPECTED)?).map_err(|message| item.error(message))?;
        address::check_host(host, guest, prefix_len)
            .map_err(|bad| item.error(format!("{}; expected {}", bad.problem, bad.instead)))?;
        return Ok(host);
    }
    match (address::check_host(DEFAULT_HOST_ADDRESS, guest, prefix_len), table.get("guest_address")) {
        (Err(bad), Some(guest_item)) => Err(guest_item.error(format!(
            "host_address is not set and its default {DEFAULT_HOST_ADDRESS} does not fit: {}; set \
             spec.networking.host_address to {}",
            bad.problem, bad.instead
        ))),
        _ => Ok(DEFAULT_HOST_ADDRESS),
    }
}

fn publish_address(item: &Item<'_, '_>) -> Result<IpAddr, SpecError> {
    let text = item.string(PUBLISH_EXPECTED)?;
    address::parse_publish(text).map_err(|message| item.error(message))
}

/// `[spec.networking.publish]`: sets `host_port` of the inbound ports it
/// names. Host ports other than 0 must be unique, counting the ports left at
/// their default (the guest port).
fn publish(table: &Table<'_, '_>, ports: &mut [InboundPort]) -> Result<(), SpecError> {
    const EXPECTED: &str = "a host port number from 0 to 65535 (0: any free port)";
    let entries = table.entries();
    // (index in `ports`, line of the publish key), in file order.
    let mut published: Vec<(usize, usize)> = Vec::with_capacity(entries.len());
    for item in &entries {
        let Some(index) = ports.iter().position(|port| port.name == item.name) else {
            return Err(item.key_error(unknown_port_message(item.name, ports)));
        };
        let Some(number) = item.integer() else {
            return Err(item.wrong_type(EXPECTED));
        };
        let number = number?;
        let host_port = u16::try_from(number)
            .map_err(|_| item.error(format!("port {number} is out of range; expected {EXPECTED}")))?;
        if host_port != 0
            && let Some(&(first, line)) = published.iter().find(|&&(i, _)| ports[i].host_port == host_port)
        {
            return Err(item.key_error(format!(
                "host port {host_port} is already used by `{}` on line {line}; each host port may \
                 be published once",
                ports[first].name
            )));
        }
        ports[index].host_port = host_port;
        published.push((index, item.key_line()));
    }
    // A published port may also collide with a port left at its default
    // (`i != index` holds for those: `index` is published).
    let defaulted = |i: usize| !published.iter().any(|&(p, _)| p == i);
    for (item, &(index, _)) in entries.iter().zip(&published) {
        let host_port = ports[index].host_port;
        let Some(other) =
            (0..ports.len()).find(|&i| host_port != 0 && defaulted(i) && ports[i].host_port == host_port)
        else {
            continue;
        };
        let other = &ports[other];
        return Err(item.key_error(format!(
            "host port {host_port} is already used by `{}`, which is published on its guest port {} \
             by default; each host port may be published once (give `{}` its own entry in [{}])",
            other.name,
            other.port,
            other.name,
            table.path()
        )));
    }
    Ok(())
}

fn unknown_port_message(name: &str, ports: &[InboundPort]) -> String {
    if ports.is_empty() {
        return format!(
            "no inbound port named `{name}`; there are no inbound ports (publish names entries of \
             [spec.networking.inbound_ports])"
        );
    }
    let names: Vec<&str> = ports.iter().map(|port| port.name.as_str()).collect();
    let hint = names
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
        .map(|known| format!(" (names are case-sensitive: did you mean `{known}`?)"))
        .unwrap_or_default();
    format!("no inbound port named `{name}`{hint}; inbound ports are: {}", names.join(", "))
}
