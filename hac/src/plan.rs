//! The launch plan: what a valid spec file asks for, in launcher units
//! (vCPUs, bytes, bit/s, enums). Keyword enums serialise as the spelling used
//! in the spec file.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::image_ref::ImageSource;

/// Declares a keyword enum: its spellings in the spec file (`ACCEPTED`),
/// `as_str`, `Display`, and a `Serialize` that writes the spelling.
macro_rules! keyword_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every accepted spelling, with its value, in documentation order.
            pub const ACCEPTED: &'static [(&'static str, Self)] = &[$(($text, Self::$variant)),+];

            /// The spelling used in the spec file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

keyword_enum! {
    /// `spec.virtualization.type`.
    VirtualizationType {
        /// A KVM micro-VM running the unikernel.
        #[default]
        MicroVm = "MicroVM",
    }
}

keyword_enum! {
    /// `spec.virtualization.provider`.
    Provider {
        /// Linux KVM (`/dev/kvm`).
        #[default]
        Kvm = "KVM",
    }
}

keyword_enum! {
    /// `spec.virtualization.criteria.security`: whether the launcher's confinement may be
    /// turned off.
    SecurityLevel {
        /// The default: the launcher confines itself as `spec.security.isolation` says
        /// (by default, whenever it runs as root).
        #[default]
        Standard = "standard",
        /// Confinement is mandatory: `isolation = "none"` is refused here, and the launcher
        /// refuses to start unconfined (`--no-jail`, not root).
        High = "high",
    }
}

keyword_enum! {
    /// `spec.security.isolation`: the launcher's confinement of itself once the guest's devices
    /// are set up (seccomp per thread, no capabilities, an unprivileged user, an empty root in
    /// a private mount namespace, rlimits, a cgroup where the host has cgroup v2).
    Isolation {
        /// Confined (the default when the launcher runs as root).
        #[default]
        Jailed = "jailed",
        /// Not confined: the launcher keeps the privileges it was started with (unsafe).
        Unconfined = "none",
    }
}

keyword_enum! {
    /// `spec.virtualization.criteria.performance`.
    PerformanceLevel {
        /// The default.
        #[default]
        Standard = "standard",
        /// Tuned for latency (enforced from capability "supervisor").
        High = "high",
    }
}

keyword_enum! {
    /// `spec.networking.network_type`: what the guest may reach beyond its own tap. (`"public"`,
    /// routing to arbitrary addresses, is refused: this launcher never routes a guest.)
    NetworkType {
        /// Exactly the endpoints the spec names ([`Plan::egress`]), each through a relay of the
        /// launcher; nothing when it names none (the default).
        #[default]
        Private = "private",
        /// Nothing at all: no relay, no listener in the spacecore's namespace. A spec that names
        /// endpoints cannot be isolated.
        Isolated = "isolated",
    }
}

keyword_enum! {
    /// `spec.avs.scheme`: the curve the operator's BLS key and its task signatures are on.
    SignatureScheme {
        /// BN254 (alt_bn128), EigenLayer's own scheme: what its contracts check (the default).
        /// The key lives on the disk as eigensdk's BLS key file.
        #[default]
        Bn254 = "bn254",
        /// BLS12-381 (Ethereum consensus ciphersuite); the key lives on the disk as an
        /// EIP-2335 keystore.
        Bls12381 = "bls12-381",
    }
}

keyword_enum! {
    /// `spec.security.attestation`.
    Attestation {
        /// BLS signatures (the only scheme, and the default).
        #[default]
        Bls = "BLS",
    }
}

keyword_enum! {
    /// `spec.operations.updateStrategy`.
    UpdateStrategy {
        /// Start the new instance before stopping the old one.
        RollingUpdate = "RollingUpdate",
        /// Stop the old instance, then start the new one (the default).
        #[default]
        Recreate = "Recreate",
    }
}

keyword_enum! {
    /// `spec.operations.scaling`.
    Scaling {
        /// Exactly one instance (the default).
        #[default]
        None = "None",
        /// Replicas of a stateless spacecore behind one published port, more under load
        /// ([`Autoscaling`]).
        HorizontalAutoScaling = "HorizontalAutoScaling",
    }
}

keyword_enum! {
    /// `spec.failover.strategy`.
    FailoverStrategy {
        /// An instance that stops stays stopped (the default).
        #[default]
        None = "none",
        /// Restart an instance that fails (exits with an error, crashes or
        /// stops answering its health checks), not one that exits cleanly.
        AutoRecovery = "auto-recovery",
        /// Restart an instance whenever it stops, however it stopped, unless
        /// the operator asked it to stop.
        RestartAlways = "restart-always",
    }
}

/// `[spec.virtualization]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Virtualization {
    /// `type`.
    #[serde(rename = "type")]
    pub kind: VirtualizationType,
    /// `provider`.
    pub provider: Provider,
    /// `[spec.virtualization.criteria]`.
    pub criteria: Criteria,
}

/// `[spec.virtualization.criteria]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Criteria {
    /// `security`.
    pub security: SecurityLevel,
    /// `performance`.
    pub performance: PerformanceLevel,
}

/// `[spec.networking]`. A rate of 0 means the key was absent: no limit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NetworkPlan {
    /// `bandwidth_limit` in bit/s (0: no limit).
    pub bandwidth_limit_bps: u64,
    /// `ingress` in bit/s (0: no limit).
    pub ingress_bps: u64,
    /// `egress` in bit/s (0: no limit).
    pub egress_bps: u64,
    /// `network_type`.
    pub network_type: NetworkType,
    /// `[spec.networking.inbound_ports]`, in file order, each with its host
    /// port from `[spec.networking.publish]`.
    pub inbound_ports: Vec<InboundPort>,
    /// The address part of `guest_address` (default 10.0.0.2).
    pub guest_address: Ipv4Addr,
    /// The prefix length of `guest_address`, 8..=30 (default 30).
    pub prefix_len: u8,
    /// `host_address`: the host side of the tap, in the guest's subnet
    /// (default 10.0.0.1).
    pub host_address: Ipv4Addr,
    /// `publish_address`: where the published ports listen on the host
    /// (default 127.0.0.1).
    pub publish_address: IpAddr,
}

impl Default for NetworkPlan {
    /// No limits, `private` (with no endpoint named, the guest reaches nothing), no ports, and
    /// the default addresses.
    fn default() -> Self {
        Self {
            bandwidth_limit_bps: 0,
            ingress_bps: 0,
            egress_bps: 0,
            network_type: NetworkType::default(),
            inbound_ports: Vec::new(),
            guest_address: DEFAULT_GUEST_ADDRESS,
            prefix_len: DEFAULT_PREFIX_LEN,
            host_address: DEFAULT_HOST_ADDRESS,
            publish_address: DEFAULT_PUBLISH_ADDRESS,
        }
    }
}

/// Default address of the guest (`guest_address = "10.0.0.2/30"`).
pub const DEFAULT_GUEST_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Default prefix length of the guest's subnet.
pub const DEFAULT_PREFIX_LEN: u8 = 30;
/// Default host side of the tap (`host_address`).
pub const DEFAULT_HOST_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
impl NetworkPlan {
    /// The guest port served over HTTP: the inbound port named `HTTP` (any
    /// case), if any. The launcher checks the guest's health there.
    pub fn http_port(&self) -> Option<u16> {
        self.inbound_ports.iter().find(|p| p.name.eq_ignore_ascii_case("http")).map(|p| p.port)
    }
}

/// Default address the published ports listen on (`publish_address`).
pub const DEFAULT_PUBLISH_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// One entry of `[spec.networking.inbound_ports]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InboundPort {
    /// The key, case preserved (`HTTP`).
    pub name: String,
    /// The guest port, 1..=65535.
    pub port: u16,
    /// The host port it is published on: the `[spec.networking.publish]`
    /// entry of the same name, else `port`. 0: any free port, chosen by the
    /// launcher.
    pub host_port: u16,
}

/// `[spec.storage]`: the data disk behind `spec.resources.storage`. All
/// defaults when the table is absent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiskPlan {
    /// `path`: the raw disk file, relative paths already joined to the spec
    /// file's directory. `None`: the launcher's default
    /// (`<state>/<name>/disk.img`).
    pub path: Option<PathBuf>,
    /// `read_only` (default false).
    pub read_only: bool,
    /// `resize` (default false): grow an existing smaller file to
    /// `storage_bytes`; never shrink.
    pub resize: bool,
    /// `iops`: requests per second the guest may make of its disk (default
    /// [`DEFAULT_DISK_IOPS`]).
    pub iops: u64,
    /// `bandwidth`: bytes per second the guest may read and write together
    /// (default [`DEFAULT_DISK_BANDWIDTH`]).
    pub bandwidth_bytes_per_s: u64,
}

/// Default of `spec.storage.iops`: far above what a signer needs (two requests
/// per task), low enough that one guest cannot take a host disk's every request.
pub const DEFAULT_DISK_IOPS: u64 = 20_000;
/// Default of `spec.storage.bandwidth`, in bytes per second (512 MiB/s).
pub const DEFAULT_DISK_BANDWIDTH: u64 = 512 << 20;

impl Default for DiskPlan {
    fn default() -> Self {
        DiskPlan {
            path: None,
            read_only: false,
            resize: false,
            iops: DEFAULT_DISK_IOPS,
            bandwidth_bytes_per_s: DEFAULT_DISK_BANDWIDTH,
        }
    }
}

/// `[spec.avs]`: the AVS node's link to its aggregator and its operator key.
/// Only present with a data disk (`storage_bytes` > 0), where the keystore and
/// the signing history live.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AvsPlan {
    /// `aggregator`: the aggregator's JSON-RPC address as the launcher's host
    /// reaches it (an IP address and a port 1..=65535).
    pub aggregator: SocketAddr,
    /// `keystore_password_file`: the file holding the operator keystore's
    /// password, relative paths already joined to the spec file's directory.
    /// `None`: no password is handed to the guest. Not opened by the parser.
    pub keystore_password_file: Option<PathBuf>,
    /// `scheme`: the signature scheme of the operator key (default BN254).
    pub scheme: SignatureScheme,
    /// `ecdsa_keystore_password_file`: the file holding the password of the operator's ECDSA
    /// keystore (its chain identity), relative paths joined to the spec file's directory like
    /// `keystore_password_file`. `None`: the guest gets no ECDSA password and holds no ECDSA
    /// key. Not opened by the parser.
    pub ecdsa_keystore_password_file: Option<PathBuf>,
    /// `eth_rpc`: an Ethereum JSON-RPC endpoint (HTTP) as the launcher's host reaches it.
    /// `None`: the guest reaches no Ethereum node.
    pub eth_rpc: Option<SocketAddr>,
    /// `eth_ws`: an Ethereum JSON-RPC endpoint over websockets, on a port of its own, as the
    /// launcher's host reaches it. `None`: none.
    pub eth_ws: Option<SocketAddr>,
    /// `task_manager`: the AVS's TaskManager contract, whose `NewTaskCreated` logs the guest
    /// reads over `eth_rpc` (which it requires). `None`: tasks are not read from the chain.
    /// Serialised as `0x` and lower-case hex.
    #[serde(serialize_with = "address_hex")]
    pub task_manager: Option<[u8; 20]>,
    /// `confirmations`: blocks on top of a block before the guest reads its tasks, 0..=10000;
    /// `None`: the guest's default, 2.
    pub confirmations: Option<u32>,
    /// `task_signer`: the task source, the Ethereum address whose signature a task pushed with
    /// `POST /task` must carry. `None`: the node refuses every pushed task (401). Serialised as
    /// `0x` and lower-case hex.
    #[serde(serialize_with = "address_hex")]
    pub task_signer: Option<[u8; 20]>,
}

/// A contract address as `0x` and 40 lower-case hex digits (`null` for none).
fn address_hex<S: serde::Serializer>(address: &Option<[u8; 20]>, serializer: S) -> Result<S::Ok, S::Error> {
    match address {
        Some(bytes) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            serializer.serialize_str(&format!("0x{hex}"))
        }
        None => serializer.serialize_none(),
    }
}

impl AvsPlan {
    /// The endpoints this table names, in the fixed order of [`Endpoint::NAMES`]: the
    /// aggregator, then `eth_rpc` and `eth_ws` when set.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let named =
            [("aggregator", Some(self.aggregator)), ("eth_rpc", self.eth_rpc), ("eth_ws", self.eth_ws)];
        named
            .into_iter()
            .filter_map(|(name, address)| {
                address.map(|address| Endpoint { name, address, guest_port: address.port() })
            })
            .collect()
    }
}

/// A named endpoint the guest may reach (`spec.avs.aggregator`, `spec.avs.eth_rpc`,
/// `spec.avs.eth_ws`): the launcher listens on `guest_port` of the tap's host-side address,
/// inside the spacecore's namespace, and relays each connection to `address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    /// The key naming it in `[spec.avs]`: one of [`Endpoint::NAMES`].
    pub name: &'static str,
    /// Where it is, as the launcher's host reaches it.
    pub address: SocketAddr,
    /// The port the guest calls it on, at `spec.networking.host_address`: the endpoint's own
    /// port (so two endpoints never share a port).
    pub guest_port: u16,
}

impl Endpoint {
    /// Every endpoint name a spec can give, in plan order.
    pub const NAMES: &'static [&'static str] = &["aggregator", "eth_rpc", "eth_ws"];

    /// The spec key naming it, e.g. `spec.avs.eth_rpc`.
    pub fn key(&self) -> String {
        format!("spec.avs.{}", self.name)
    }
}

keyword_enum! {
    /// The format of the launcher's output lines, from
    /// `spec.observability.logging`.
    LogFormat {
        /// `[NAME launcher] message` lines (the default).
        #[default]
        Text = "text",
        /// One JSON object per line, for Loki, Fluentd or ELK.
        Json = "json",
    }
}

/// `[spec.observability]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Observability {
    /// `sidecar` (default false): the launcher's `/metrics` also carries the
    /// guest's own metrics and health. Only with `metrics_address`.
    pub sidecar: bool,
    /// `monitoring`, carried as written.
    pub monitoring: Option<String>,
    /// `logging`, carried as written.
    pub logging: Option<String>,
    /// Where the launcher serves `GET /metrics` (Prometheus text format):
    /// `metrics_address`, default [`DEFAULT_METRICS_ADDRESS`]. `None` unless
    /// `monitoring` names Prometheus. Port 0: any free port.
    pub metrics_address: Option<SocketAddr>,
    /// The format of the launcher's output, from `logging`.
    pub log_format: LogFormat,
    /// `log_file`: where the output lines go instead of stdout (appended),
    /// relative paths already joined to the spec file's directory.
    pub log_file: Option<PathBuf>,
}

/// Default `spec.observability.metrics_address`.
pub const DEFAULT_METRICS_ADDRESS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9101);

/// `[spec.operations]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Operations {
    /// `updateStrategy`.
    pub update_strategy: UpdateStrategy,
    /// `scaling`.
    pub scaling: Scaling,
    /// The replica keys of `[spec.operations]` (`min_replicas`, `max_replicas`,
    /// `target_connections`, `scale_up_after`, `scale_down_after`): only with
    /// `scaling = "HorizontalAutoScaling"`, defaults otherwise.
    pub autoscaling: Autoscaling,
}

/// How `hac-launch` scales a stateless spacecore (`scaling = "HorizontalAutoScaling"`):
/// between `min_replicas` and `max_replicas` replicas behind one published port, one replica
/// more when the open connections per replica stay above `target_connections` for
/// `scale_up_after`, one fewer when they stay at or below half of it for `scale_down_after`.
/// Durations in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Autoscaling {
    /// `min_replicas` (default 1): replicas started, and never fewer.
    pub min_replicas: u32,
    /// `max_replicas` (default 4): never more.
    pub max_replicas: u32,
    /// `target_connections` (default 8): open connections per replica the controller aims at.
    pub target_connections: u32,
    /// `scale_up_after` (default 2 s): how long the load must stay above the target before a
    /// replica is added (and between two additions).
    pub scale_up_after_ms: u64,
    /// `scale_down_after` (default 30 s): how long the load must stay at or below half the
    /// target before a replica is stopped (and between two removals).
    pub scale_down_after_ms: u64,
}

impl Autoscaling {
    /// Default `min_replicas`.
    pub const DEFAULT_MIN_REPLICAS: u32 = 1;
    /// Default `max_replicas`.
    pub const DEFAULT_MAX_REPLICAS: u32 = 4;
    /// Most replicas a spec may ask for.
    pub const MAX_REPLICAS: u32 = 32;
    /// Default `target_connections`.
    pub const DEFAULT_TARGET_CONNECTIONS: u32 = 8;
    /// Default `scale_up_after`.
    pub const DEFAULT_SCALE_UP_AFTER_MS: u64 = 2_000;
    /// Default `scale_down_after`.
    pub const DEFAULT_SCALE_DOWN_AFTER_MS: u64 = 30_000;
}

impl Default for Autoscaling {
    fn default() -> Self {
        Self {
            min_replicas: Self::DEFAULT_MIN_REPLICAS,
            max_replicas: Self::DEFAULT_MAX_REPLICAS,
            target_connections: Self::DEFAULT_TARGET_CONNECTIONS,
            scale_up_after_ms: Self::DEFAULT_SCALE_UP_AFTER_MS,
            scale_down_after_ms: Self::DEFAULT_SCALE_DOWN_AFTER_MS,
        }
    }
}

/// `[spec.failover]`: whether and how the launcher restarts a failed guest.
/// Durations are in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failover {
    /// `strategy` (default `none`).
    pub strategy: FailoverStrategy,
    /// `max_restarts` (default 5): more restarts than this within
    /// `restart_window` and the launcher gives up.
    pub max_restarts: u32,
    /// `restart_window` (default 60 s).
    pub restart_window_ms: u64,
    /// `backoff_initial` (default 10 ms): the wait before the first restart
    /// in a window; each further restart in the window waits twice as long.
    pub backoff_initial_ms: u64,
    /// `backoff_max` (default 5 s): the longest wait before a restart.
    pub backoff_max_ms: u64,
    /// `health_interval` (default 1 s): how often the guest's health is
    /// checked, and how long one check may take.
    pub health_interval_ms: u64,
    /// `health_timeout` (default 10 s): a guest whose checks fail for this
    /// long is restarted.
    pub health_timeout_ms: u64,
}

impl Failover {
    /// Default `max_restarts`.
    pub const DEFAULT_MAX_RESTARTS: u32 = 5;
    /// Default `restart_window`.
    pub const DEFAULT_RESTART_WINDOW_MS: u64 = 60_000;
    /// Default `backoff_initial`.
    pub const DEFAULT_BACKOFF_INITIAL_MS: u64 = 10;
    /// Default `backoff_max`.
    pub const DEFAULT_BACKOFF_MAX_MS: u64 = 5_000;
    /// Default `health_interval`.
    pub const DEFAULT_HEALTH_INTERVAL_MS: u64 = 1_000;
    /// Default `health_timeout`.
    pub const DEFAULT_HEALTH_TIMEOUT_MS: u64 = 10_000;

    /// Whether the launcher restarts guests at all.
    pub fn restarts(&self) -> bool {
        self.strategy != FailoverStrategy::None
    }
}

impl Default for Failover {
    /// `strategy = "none"` and the default limits.
    fn default() -> Self {
        Self {
            strategy: FailoverStrategy::None,
            max_restarts: Self::DEFAULT_MAX_RESTARTS,
            restart_window_ms: Self::DEFAULT_RESTART_WINDOW_MS,
            backoff_initial_ms: Self::DEFAULT_BACKOFF_INITIAL_MS,
            backoff_max_ms: Self::DEFAULT_BACKOFF_MAX_MS,
            health_interval_ms: Self::DEFAULT_HEALTH_INTERVAL_MS,
            health_timeout_ms: Self::DEFAULT_HEALTH_TIMEOUT_MS,
        }
    }
}

/// A key present in the spec whose behaviour the launcher does not implement
/// yet. The launcher should say so (once, at start) rather than pretend.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NotEnforced {
    /// The dotted key, e.g. `spec.resources.storage`.
    pub key: &'static str,
    /// The value as written (strings unquoted; tables as `a = 1, b = 2`).
    pub value: String,
    /// The capability that will make it take effect.
    pub arrives_with: &'static str,
}

/// Everything the launcher needs to start the AVS node the spec describes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Plan {
    /// `metadata.name`: 1-63 of `[a-z0-9-]`, starting with a letter.
    pub name: String,
    /// The spec file, as given to the parser.
    pub spec_path: PathBuf,
    /// `spec.resources.cpu`.
    pub vcpus: u32,
    /// `spec.resources.memory` in bytes (a multiple of 2 MiB).
    pub memory_bytes: u64,
    /// `spec.resources.storage` in bytes (0: key absent, no data disk).
    pub storage_bytes: u64,
    /// `[spec.storage]`: where the data disk lives and how it is opened
    /// (all defaults when absent; only set when `storage_bytes` > 0).
    pub disk: DiskPlan,
    /// `spec.deployment.image`.
    pub image: ImageSource,
    /// `[spec.virtualization]`.
    pub virtualization: Virtualization,
    /// `[spec.networking]`.
    pub network: NetworkPlan,
    /// `[spec.avs]`, if present.
    pub avs: Option<AvsPlan>,
    /// The endpoints the guest may reach, each relayed by the launcher ([`AvsPlan::endpoints`]);
    /// empty without `[spec.avs]`. With `network_type = "private"` (the default) these and
    /// nothing else; `"isolated"` has none.
    pub egress: Vec<Endpoint>,
    /// `spec.security.attestation`.
    pub attestation: Attestation,
    /// `spec.security.isolation`; `None` when absent (the launcher then confines itself when
    /// it runs as root).
    pub security_isolation: Option<Isolation>,
    /// `[spec.observability]`.
    pub observability: Observability,
    /// `[spec.operations]`.
    pub operations: Operations,
    /// `[spec.failover]`.
    pub failover: Failover,
    /// Keys present in the file that are validated but not acted on yet.
    pub not_enforced: Vec<NotEnforced>,
}

impl Plan {
    /// Whether this spacecore is a **signer**: a node that signs tasks with an operator's key.
    /// That is a node with `[spec.avs]`: the table names the aggregator its signed answers go
    /// to and the password of the operator's key file on its disk, where its signing history
    /// lives too; without it the launcher hands the guest no password and no way out, and the
    /// node is not expected to sign (its health does not count a missing key). `attestation`
    /// does not decide it: it has a default, `"BLS"`, for every node.
    ///
    /// A signer runs as exactly one instance (one key, one signing history), so
    /// `spec.operations.scaling = "HorizontalAutoScaling"` is refused on it.
    pub fn signs(&self) -> bool {
        self.avs.is_some()
    }
}
