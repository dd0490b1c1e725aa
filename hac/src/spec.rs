//! Walks the parsed document section by section and builds the [`Plan`].
//! Each table rejects unknown keys before its values are checked, so a typo
//! is reported as a typo.

use std::net::SocketAddr;
use std::path::Path;

use toml::Spanned;
use toml::de::DeTable;

use crate::HostLimits;
use crate::address::{self, AGGREGATOR_EXPECTED, ETH_RPC_EXPECTED, ETH_WS_EXPECTED};
use crate::error::SpecError;
use crate::image_ref::{ImageSource, parse_image};
use crate::not_enforced;
use crate::plan::{
    Attestation, AvsPlan, Criteria, DEFAULT_DISK_BANDWIDTH, DEFAULT_DISK_IOPS, DiskPlan, InboundPort,
    Isolation, NetworkPlan, NetworkType, Operations, PerformanceLevel, Plan, Provider, Scaling,
    SecurityLevel, SignatureScheme, UpdateStrategy, Virtualization, VirtualizationType,
};
use crate::resources::{self, NETWORK_KEYS, RESOURCE_KEYS};
use crate::supervision::{self, FAILOVER_KEYS, OBSERVABILITY_KEYS};
use crate::tree::{
    Choices, Doc, Item, NOT_BY_THIS_LAUNCHER, Table, file_path, optional_bool, optional_keyword,
};

/// The only accepted `apiVersion`.
pub const API_VERSION: &str = "vistara.eigenlayer/v1";
/// The only accepted `kind`.
pub const KIND: &str = "AVSSpaceCore";
/// Longest accepted `metadata.name`.
pub const MAX_NAME_LEN: usize = 63;

const TOP_KEYS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
const METADATA_KEYS: &[&str] = &["name"];
const SPEC_KEYS: &[&str] = &[
    "resources",
    "storage",
    "virtualization",
    "networking",
    "deployment",
    "avs",
    "security",
    "observability",
    "operations",
    "failover",
];
const VIRTUALIZATION_KEYS: &[&str] = &["type", "provider", "criteria"];
const CRITERIA_KEYS: &[&str] = &["security", "performance"];
const STORAGE_KEYS: &[&str] = &["path", "read_only", "resize", "iops", "bandwidth"];
const DEPLOYMENT_KEYS: &[&str] = &["image"];
const AVS_KEYS: &[&str] = &[
    "aggregator",
    "keystore_password_file",
    "scheme",
    "ecdsa_keystore_password_file",
    "eth_rpc",
    "eth_ws",
    "task_manager",
    "confirmations",
    "task_signer",
];
const TASK_MANAGER_EXPECTED: &str = "the TaskManager contract's address, \"0x\" and 40 hex digits";
const TASK_SIGNER_EXPECTED: &str = "the Ethereum address of the task source's key, \"0x\" and 40 hex digits";
const CONFIRMATIONS_EXPECTED: &str =
    "an integer 0..=10000 (blocks on top of a block before its tasks are read)";
const SECURITY_KEYS: &[&str] = &["attestation", "isolation"];
const OPERATIONS_KEYS: &[&str] = &[
    "updateStrategy",
    "scaling",
    "min_replicas",
    "max_replicas",
    "target_connections",
    "scale_up_after",
    "scale_down_after",
];

const VIRTUALIZATION_TYPES: Choices<VirtualizationType> = Choices {
    accepted: VirtualizationType::ACCEPTED,
    refused: &["TEE", "SGX", "TDX", "SEV", "SEV-SNP", "Firecracker", "Container", "VM", "Process", "WASM"],
    refused_because: NOT_BY_THIS_LAUNCHER,
};

const PROVIDERS: Choices<Provider> = Choices {
    accepted: Provider::ACCEPTED,
    refused: &[
        "SGX",
        "TDX",
        "SEV",
        "SEV-SNP",
        "TEE",
        "Firecracker",
        "QEMU",
        "Xen",
        "Hyper-V",
        "cloud-hypervisor",
        "Docker",
        "containerd",
    ],
    refused_because: NOT_BY_THIS_LAUNCHER,
};

const SECURITY_LEVELS: Choices<SecurityLevel> =
    Choices { accepted: SecurityLevel::ACCEPTED, refused: &[], refused_because: NOT_BY_THIS_LAUNCHER };

const PERFORMANCE_LEVELS: Choices<PerformanceLevel> =
    Choices { accepted: PerformanceLevel::ACCEPTED, refused: &[], refused_because: NOT_BY_THIS_LAUNCHER };

const ATTESTATIONS: Choices<Attestation> = Choices {
    accepted: Attestation::ACCEPTED,
    refused: &["ECDSA", "BN254", "EdDSA", "Ed25519", "secp256k1"],
    refused_because: "is not supported yet",
};

const SIGNATURE_SCHEMES: Choices<SignatureScheme> = Choices {
    accepted: SignatureScheme::ACCEPTED,
    refused: &["BLS", "ECDSA", "secp256k1", "EdDSA", "Ed25519"],
    refused_because: "does not name the curve of the operator's BLS key (task responses are BLS \
                      signatures; an ECDSA key has its own ecdsa_keystore_password_file)",
};

const UPDATE_STRATEGIES: Choices<UpdateStrategy> = Choices {
    accepted: UpdateStrategy::ACCEPTED,
    refused: &["BlueGreen", "Canary", "OnDelete"],
    refused_because: NOT_BY_THIS_LAUNCHER,
};

const SCALINGS: Choices<Scaling> = Choices {
    accepted: Scaling::ACCEPTED,
    refused: &["VerticalAutoScaling"],
    refused_because: NOT_BY_THIS_LAUNCHER,
};

/// Validates the whole document and builds the plan.
pub(crate) fn build(
    doc: Doc<'_>,
    root: &Spanned<DeTable<'_>>,
    limits: &HostLimits,
) -> Result<Plan, SpecError> {
    let top = Table::root(doc, root, TOP_KEYS)?;
    exact(&top.require("apiVersion", &format!("{API_VERSION:?}"))?, API_VERSION)?;
    exact(&top.require("kind", &format!("{KIND:?}"))?, KIND)?;

    let metadata = top.require("metadata", "a [metadata] table")?.table(METADATA_KEYS)?;
    let name = metadata_name(&metadata.require("name", NAME_RULE)?)?;

    let spec = top.require("spec", "a [spec] table")?.table(SPEC_KEYS)?;
    let resources = resources::resources(
        &spec.require("resources", "a [spec.resources] table")?.table(RESOURCE_KEYS)?,
        limits,
    )?;
    let spec_dir = doc.file.parent().unwrap_or(Path::new(""));
    let disk = optional(&spec, "storage", STORAGE_KEYS, |table| disk(table, spec_dir))?;
    if disk.is_some()
        && resources.storage_bytes == 0
        && let Some(item) = spec.get("storage")
    {
        return Err(item.key_error(
            "a disk needs spec.resources.storage (its size); add storage = \"...\" to [spec.resources], \
             or remove [spec.storage]"
                .to_owned(),
        ));
    }
    let virtualization = optional(&spec, "virtualization", VIRTUALIZATION_KEYS, virtualization)?;
    let network = optional(&spec, "networking", NETWORK_KEYS, resources::networking)?.unwrap_or_default();
    let deployment = spec.require("deployment", "a [spec.deployment] table")?.table(DEPLOYMENT_KEYS)?;
    let image = image(&deployment.require("image", IMAGE_EXPECTED)?, spec_dir)?;
    let avs = optional(&spec, "avs", AVS_KEYS, |table| avs(table, spec_dir, &network))?;
    if avs.is_some()
        && resources.storage_bytes == 0
        && let Some(item) = spec.get("avs")
    {
        return Err(item.key_error(
            "an AVS node needs a data disk (its operator keystore and signing history live there); \
             add storage = \"...\" to [spec.resources], such as storage = \"64Mi\""
                .to_owned(),
        ));
    }
    let egress = avs.as_ref().map(AvsPlan::endpoints).unwrap_or_default();
    if network.network_type == NetworkType::Isolated
        && let (Some(first), Some(item)) = (egress.first(), network_type_item(&spec)?)
    {
        let line = spec.get("avs").and_then(|avs| avs.table(AVS_KEYS).ok()?.get(first.name));
        let line = line.map(|item| format!(" on line {}", item.key_line())).unwrap_or_default();
        return Err(item.error(format!(
            "\"isolated\" gives the guest no way out at all, but [spec.avs] names endpoints it must \
             reach ({} {}{line}); write \"private\" (the guest then reaches exactly the endpoints \
             [spec.avs] names), or remove [spec.avs]",
            first.key(),
            first.address
        )));
    }
    let security_level = virtualization.as_ref().map(|v| v.criteria.security).unwrap_or_default();
    let (attestation, security_isolation) =
        optional(&spec, "security", SECURITY_KEYS, |table| security(table, security_level))?
            .unwrap_or_default();
    let observability = optional(&spec, "observability", OBSERVABILITY_KEYS, |table| {
        supervision::observability(table, spec_dir, &network, avs.as_ref())
    })?;
    let signer = spec.get("avs").map(|item| item.key_line());
    let operations = optional(&spec, "operations", OPERATIONS_KEYS, |table| operations(table, signer))?;
    let failover =
        optional(&spec, "failover", FAILOVER_KEYS, |table| supervision::failover(table, &network))?;

    Ok(Plan {
        name,
        spec_path: doc.file.to_path_buf(),
        vcpus: resources.vcpus,
        memory_bytes: resources.memory_bytes,
        storage_bytes: resources.storage_bytes,
        disk: disk.unwrap_or_default(),
        image,
        virtualization: virtualization.unwrap_or_default(),
        network,
        avs,
        egress,
        attestation,
        security_isolation,
        observability: observability.unwrap_or_default(),
        operations: operations.unwrap_or_default(),
        failover: failover.unwrap_or_default(),
        not_enforced: not_enforced::collect(root.get_ref()),
    })
}

/// The item of `spec.networking.network_type`, if written.
fn network_type_item<'r, 's>(spec: &Table<'r, 's>) -> Result<Option<Item<'r, 's>>, SpecError> {
    Ok(match spec.get("networking") {
        Some(networking) => networking.table(NETWORK_KEYS)?.get("network_type"),
        None => None,
    })
}

/// Runs `parse` on the optional table `name` of `parent`, if present.
fn optional<T>(
    parent: &Table<'_, '_>,
    name: &str,
    allowed: &[&str],
    parse: impl FnOnce(&Table<'_, '_>) -> Result<T, SpecError>,
) -> Result<Option<T>, SpecError> {
    match parent.get(name) {
        Some(item) => parse(&item.table(allowed)?).map(Some),
        None => Ok(None),
    }
}

fn exact(item: &Item<'_, '_>, wanted: &str) -> Result<(), SpecError> {
    let expected = format!("{wanted:?}");
    let text = item.string(&expected)?;
    if text == wanted { Ok(()) } else { Err(item.error(format!("expected {expected}, found {text:?}"))) }
}

const NAME_RULE: &str = "a name of 1 to 63 lowercase letters, digits and '-', starting with a letter";

fn metadata_name(item: &Item<'_, '_>) -> Result<String, SpecError> {
    let name = item.string(NAME_RULE)?;
    let problem = if name.is_empty() {
        Some("the name is empty".to_owned())
    } else if name.chars().count() > MAX_NAME_LEN {
        Some(format!("{name:?} is {} characters long", name.chars().count()))
    } else if let Some(bad) =
        name.chars().find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        Some(format!("{name:?} contains {bad:?}"))
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some(format!("{name:?} does not start with a letter"))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(item.error(format!(
            "{problem}; expected {NAME_RULE} (it is used in tap device names, directories and \
             log prefixes)"
        ))),
        None => Ok(name.to_owned()),
    }
}

fn virtualization(table: &Table<'_, '_>) -> Result<Virtualization, SpecError> {
    let kind = optional_keyword(table, "type", &VIRTUALIZATION_TYPES)?;
    let provider = optional_keyword(table, "provider", &PROVIDERS)?;
    let criteria = optional(table, "criteria", CRITERIA_KEYS, |criteria| {
        Ok(Criteria {
            security: optional_keyword(criteria, "security", &SECURITY_LEVELS)?,
            performance: optional_keyword(criteria, "performance", &PERFORMANCE_LEVELS)?,
        })
    })?;
    Ok(Virtualization { kind, provider, criteria: criteria.unwrap_or_default() })
}

const IMAGE_EXPECTED: &str =
    "a path to an ELF file such as \"./app.elf\" or an image reference such as \"name:tag\"";

fn image(item: &Item<'_, '_>, spec_dir: &Path) -> Result<ImageSource, SpecError> {
    let text = item.string(IMAGE_EXPECTED)?;
    parse_image(text, spec_dir).map_err(|message| item.error(message))
}

fn disk(table: &Table<'_, '_>, spec_dir: &Path) -> Result<DiskPlan, SpecError> {
    Ok(DiskPlan {
        path: table.get("path").map(|item| file_path(&item, spec_dir, DISK_PATH_EXPECTED)).transpose()?,
        read_only: optional_bool(table, "read_only")?,
        resize: optional_bool(table, "resize")?,
        iops: match table.get("iops") {
            Some(item) => disk_iops(&item)?,
            None => DEFAULT_DISK_IOPS,
        },
        bandwidth_bytes_per_s: match table.get("bandwidth") {
            Some(item) => disk_bandwidth(&item)?,
            None => DEFAULT_DISK_BANDWIDTH,
        },
    })
}

/// Most requests per second `spec.storage.iops` accepts.
const MAX_DISK_IOPS: i128 = 10_000_000;
const IOPS_EXPECTED: &str = "a number of disk requests per second from 1 to 10000000, such as 10000";

fn disk_iops(item: &Item<'_, '_>) -> Result<u64, SpecError> {
    let count = item.integer().ok_or_else(|| item.wrong_type(IOPS_EXPECTED))??;
    match u64::try_from(count) {
        Ok(iops) if (1..=MAX_DISK_IOPS).contains(&count) => Ok(iops),
        _ => Err(item.error(format!("{count} requests per second: expected 1 to {MAX_DISK_IOPS}"))),
    }
}

/// Least and most bytes per second `spec.storage.bandwidth` accepts: 1 MiB/s (a node
/// must be able to boot and sign) and 64 GiB/s.
const MIN_DISK_BANDWIDTH: u64 = 1 << 20;
const MAX_DISK_BANDWIDTH: u64 = 64 << 30;
const BANDWIDTH_EXPECTED: &str =
    "bytes per second as a binary size from \"1Mi\" to \"64Gi\", such as \"256Mi\" (256 MiB/s)";

fn disk_bandwidth(item: &Item<'_, '_>) -> Result<u64, SpecError> {
    let text = item.string(BANDWIDTH_EXPECTED)?;
    let bytes = crate::units::parse_binary_size(text).map_err(|e| item.error(e.to_string()))?;
    if !(MIN_DISK_BANDWIDTH..=MAX_DISK_BANDWIDTH).contains(&bytes) {
        return Err(item.error(format!("{text:?} per second: expected {BANDWIDTH_EXPECTED}")));
    }
    Ok(bytes)
}

const DISK_PATH_EXPECTED: &str =
    "a path to the raw disk file such as \"./disk.img\" or \"/var/lib/spacecore/my-avs/disk.img\"";

const PASSWORD_FILE_EXPECTED: &str =
    "a path to the file holding the keystore's password such as \"./operator.password\"";

const ECDSA_PASSWORD_FILE_EXPECTED: &str =
    "a path to the file holding the ECDSA keystore's password such as \"./operator.ecdsa.password\"";

/// `[spec.avs]`: where the aggregator and the Ethereum endpoints are, the keystores' password
/// files and the signature scheme.
fn avs(table: &Table<'_, '_>, spec_dir: &Path, network: &NetworkPlan) -> Result<AvsPlan, SpecError> {
    table.require("aggregator", AGGREGATOR_EXPECTED)?;
    let mut endpoints: Vec<(Item<'_, '_>, &str, SocketAddr)> = Vec::new();
    for (name, what, expected) in [
        ("aggregator", "the aggregator", AGGREGATOR_EXPECTED),
        ("eth_rpc", "an Ethereum node", ETH_RPC_EXPECTED),
        ("eth_ws", "an Ethereum node", ETH_WS_EXPECTED),
    ] {
        let Some(item) = table.get(name) else { continue };
        let text = item.string(expected)?;
        let address = address::parse_endpoint(text, what, expected).map_err(|message| item.error(message))?;
        if let Some(port) = own_published_port(address, network) {
            let role = if name == "aggregator" { "an aggregator" } else { "an Ethereum node" };
            return Err(item.error(format!(
                "{address} is where this node's own inbound port `{}` is published, not {role}; \
                 expected {expected}",
                port.name
            )));
        }
        endpoints.push((item, name, address));
    }
    // Each endpoint against those written before it in the file.
    endpoints.sort_by_key(|(item, _, _)| item.key_line());
    for (i, (item, name, address)) in endpoints.iter().enumerate() {
        let earlier = endpoints[..i].iter().find(|(_, _, other)| other.port() == address.port());
        let Some((first, first_name, first_address)) = earlier else { continue };
        let line = first.key_line();
        return Err(item.error(if first_address == address {
            format!(
                "{address} is already named by `{first_name}` on line {line}; name each endpoint \
                 once (a node serving JSON-RPC over HTTP and websockets on one port is named once, \
                 as eth_rpc)"
            )
        } else {
            format!(
                "port {} is already used by `{first_name}` ({first_address}) on line {line}; the \
                 guest reaches each endpoint at spec.networking.host_address on the endpoint's own \
                 port, so no two endpoints of [spec.avs] may share a port (`{name}` cannot be \
                 relayed on it)",
                address.port()
            )
        }));
    }
    let find = |wanted: &str| endpoints.iter().find(|(_, name, _)| *name == wanted).map(|(_, _, a)| *a);
    let aggregator = find("aggregator").expect("aggregator is required above");
    let (eth_rpc, eth_ws) = (find("eth_rpc"), find("eth_ws"));
    let keystore_password_file = table
        .get("keystore_password_file")
        .map(|item| file_path(&item, spec_dir, PASSWORD_FILE_EXPECTED))
        .transpose()?;
    let scheme = optional_keyword(table, "scheme", &SIGNATURE_SCHEMES)?;
    let ecdsa_keystore_password_file = table
        .get("ecdsa_keystore_password_file")
        .map(|item| file_path(&item, spec_dir, ECDSA_PASSWORD_FILE_EXPECTED))
        .transpose()?;
    let task_manager = table
        .get("task_manager")
        .map(|item| {
            let text = item.string(TASK_MANAGER_EXPECTED)?;
            let address = contract_address(text)
                .ok_or_else(|| item.error(format!("{text:?} is not an address; expected {TASK_MANAGER_EXPECTED}")))?;
            if eth_rpc.is_none() {
                return Err(item.key_error(
                    "task_manager needs eth_rpc, the Ethereum node its tasks are read from; add eth_rpc = \"IP:PORT\" \
                     to [spec.avs] or remove task_manager"
                        .to_owned(),
                ));
            }
            Ok(address)
        })
        .transpose()?;
    let confirmations = table
        .get("confirmations")
        .map(|item| {
            let n = item.integer().ok_or_else(|| item.wrong_type(CONFIRMATIONS_EXPECTED))??;
            let n = u32::try_from(n)
                .ok()
                .filter(|n| *n <= 10_000)
                .ok_or_else(|| item.error(format!("{n} is out of range; expected {CONFIRMATIONS_EXPECTED}")))?;
            if task_manager.is_none() {
                return Err(item.key_error(
                    "confirmations only applies to tasks read from the chain: set task_manager (and eth_rpc) or \
                     remove confirmations"
                        .to_owned(),
                ));
            }
            Ok(n)
        })
        .transpose()?;
    let task_signer = table
        .get("task_signer")
        .map(|item| {
            let text = item.string(TASK_SIGNER_EXPECTED)?;
            let address = contract_address(text)
                .ok_or_else(|| item.error(format!("{text:?} is not an address; expected {TASK_SIGNER_EXPECTED}")))?;
            if task_manager.is_some() {
                return Err(item.key_error(
                    "task_signer authorises tasks pushed with POST /task, but a node with task_manager reads its \
                     tasks from the chain and refuses pushed ones: remove one of the two"
                        .to_owned(),
                ));
            }
            Ok(address)
        })
        .transpose()?;
    Ok(AvsPlan {
        aggregator,
        keystore_password_file,
        scheme,
        ecdsa_keystore_password_file,
        eth_rpc,
        eth_ws,
        task_manager,
        confirmations,
        task_signer,
    })
}

/// A contract address: `0x` and exactly 40 hex digits (either case; no checksum is required).
fn contract_address(text: &str) -> Option<[u8; 20]> {
    let digits = text.strip_prefix("0x")?;
    if digits.len() != 40 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The hac.toml format's own sample value of `spec.security.isolation`: read as `"jailed"`, whose
/// seccomp filters it names (this launcher loads no SELinux or AppArmor profile).
pub const SAMPLE_ISOLATION: &str = "enforced via SELinux/AppArmor/seccomp";

const ISOLATIONS: Choices<Isolation> = Choices {
    accepted: &[
        ("jailed", Isolation::Jailed),
        ("none", Isolation::Unconfined),
        (SAMPLE_ISOLATION, Isolation::Jailed),
    ],
    refused: &["SELinux", "AppArmor", "seccomp", "gVisor", "container"],
    refused_because: "is not a confinement this launcher applies; its own (seccomp per thread, no \
                      capabilities, an unprivileged user, an empty root, rlimits, a cgroup) is \"jailed\"",
};

fn security(
    table: &Table<'_, '_>,
    level: SecurityLevel,
) -> Result<(Attestation, Option<Isolation>), SpecError> {
    let attestation = optional_keyword(table, "attestation", &ATTESTATIONS)?;
    let Some(item) = table.get("isolation") else { return Ok((attestation, None)) };
    let isolation = item.keyword(&ISOLATIONS)?;
    if isolation == Isolation::Unconfined && level == SecurityLevel::High {
        return Err(item.error(
            "\"none\" turns the launcher's confinement off, which spec.virtualization.criteria.security \
             = \"high\" forbids; write \"jailed\", or lower the criteria to \"standard\""
                .to_owned(),
        ));
    }
    Ok((attestation, Some(isolation)))
}

/// `[spec.operations]`. `signer` is the line of `[spec.avs]` when the spec has one: such a node
/// signs tasks with the operator's key ([`Plan::signs`]), and a signer never runs as more than
/// one instance.
fn operations(table: &Table<'_, '_>, signer: Option<usize>) -> Result<Operations, SpecError> {
    let update_strategy = optional_keyword(table, "updateStrategy", &UPDATE_STRATEGIES)?;
    let scaling = optional_keyword(table, "scaling", &SCALINGS)?;
    if scaling == Scaling::HorizontalAutoScaling
        && let (Some(avs_line), Some(item)) = (signer, table.get("scaling"))
    {
        return Err(item.error(format!(
            "\"HorizontalAutoScaling\" would run this node as several instances, but it signs: \
             [spec.avs] on line {avs_line} makes it an operator node that signs tasks with the \
             operator's key. Every instance would hold that one key and keep a signing history of \
             its own on a disk of its own, so two instances could sign two different answers to \
             one task with one key, which is slashable; a signer runs as exactly one instance: \
             write \"None\" (or remove scaling); only a node without [spec.avs] may scale"
        )));
    }
    let autoscaling = crate::scaling::autoscaling(table, scaling)?;
    Ok(Operations { update_strategy, scaling, autoscaling })
}

/// The inbound port whose published listener the endpoint at `address` would be: the same host
/// port, on the same address or on a wildcard `publish_address` covering it (`0.0.0.0` listens
/// on every IPv4 address, `::` on every address).
fn own_published_port(address: SocketAddr, network: &NetworkPlan) -> Option<&InboundPort> {
    let publish = network.publish_address;
    let same_host =
        publish == address.ip() || (publish.is_unspecified() && (publish.is_ipv6() || address.is_ipv4()));
    network
        .inbound_ports
        .iter()
        .find(|port| same_host && port.host_port != 0 && port.host_port == address.port())
}
