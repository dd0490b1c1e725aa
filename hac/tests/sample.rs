//! The sample spec from the format reference, and the defaults of a minimal
//! spec.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use hac::{
    Attestation, AvsPlan, Criteria, DiskPlan, Endpoint, Failover, FailoverStrategy, HostLimits, ImageRef,
    ImageSource, InboundPort, Isolation, LogFormat, NetworkPlan, NetworkType, NotEnforced, Observability,
    Operations, PerformanceLevel, Plan, Provider, Scaling, SecurityLevel, SignatureScheme, UpdateStrategy,
    Virtualization, VirtualizationType,
};

const SAMPLE: &str = include_str!("sample.hac.toml");
const GIB: u64 = 1 << 30;
const LIMITS: HostLimits = HostLimits { max_vcpus: 32, max_memory_bytes: 16 * GIB };

fn expected_sample_plan(spec_path: &Path) -> Plan {
    let not_enforced =
        |key, value: &str, arrives_with| NotEnforced { key, value: value.to_owned(), arrives_with };
    Plan {
        name: "spacecore-sample".to_owned(),
        spec_path: spec_path.to_path_buf(),
        vcpus: 4,
        memory_bytes: 8 * GIB,
        storage_bytes: 100 * GIB,
        disk: DiskPlan::default(),
        image: ImageSource::Reference(ImageRef {
            repository: "registry/path/avs-spacecore".to_owned(),
            tag: "latest".to_owned(),
            digest: None,
        }),
        virtualization: Virtualization {
            kind: VirtualizationType::MicroVm,
            provider: Provider::Kvm,
            criteria: Criteria { security: SecurityLevel::High, performance: PerformanceLevel::Standard },
        },
        network: NetworkPlan {
            bandwidth_limit_bps: 10_000_000_000,
            ingress_bps: 1_000_000_000,
            egress_bps: 1_000_000_000,
            network_type: NetworkType::Private,
            inbound_ports: vec![
                InboundPort { name: "HTTP".to_owned(), port: 80, host_port: 80 },
                InboundPort { name: "https".to_owned(), port: 443, host_port: 443 },
            ],
            guest_address: Ipv4Addr::new(10, 0, 0, 2),
            prefix_len: 30,
            host_address: Ipv4Addr::new(10, 0, 0, 1),
            publish_address: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
        },
        avs: None,
        egress: Vec::new(),
        attestation: Attestation::Bls,
        security_isolation: Some(Isolation::Jailed),
        observability: Observability {
            sidecar: true,
            monitoring: Some("Prometheus/Grafana".to_owned()),
            logging: Some("Loki/Fluentd/ELK".to_owned()),
            metrics_address: Some(hac::DEFAULT_METRICS_ADDRESS),
            log_format: LogFormat::Json,
            log_file: None,
        },
        operations: Operations {
            update_strategy: UpdateStrategy::RollingUpdate,
            scaling: Scaling::HorizontalAutoScaling,
            autoscaling: hac::Autoscaling::default(),
        },
        failover: Failover { strategy: FailoverStrategy::AutoRecovery, ..Failover::default() },
        not_enforced: vec![not_enforced(
            "spec.virtualization.criteria.performance",
            "standard",
            "supervisor",
        )],
    }
}

#[test]
fn sample_parses_to_the_expected_plan() {
    let path = Path::new("/etc/spacecore/hac.toml");
    let plan = hac::parse_str(SAMPLE, path, &LIMITS).expect("the sample is valid");
    assert_eq!(plan, expected_sample_plan(path));
    assert_eq!(plan.image.to_string(), "registry/path/avs-spacecore:latest");
}

#[test]
fn sample_file_parses_from_disk() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sample.hac.toml");
    let plan = hac::parse_file(&path, &LIMITS).expect("the sample file is valid");
    assert_eq!(plan, expected_sample_plan(&path));
}

#[test]
fn missing_file_is_an_error_naming_the_file() {
    let path = Path::new("/nonexistent/dir/hac.toml");
    let error = hac::parse_file(path, &LIMITS).unwrap_err();
    assert_eq!(error.file(), path);
    assert_eq!(error.line(), None);
    assert_eq!(error.key(), "");
    assert!(error.to_string().starts_with("/nonexistent/dir/hac.toml: cannot read"), "{error}");
}

/// The sample plus every optional key it leaves out: `[spec.storage]`, the
/// addresses and `[spec.networking.publish]`.
fn full_spec() -> String {
    let addresses = "network_type = \"private\"\nguest_address = \"172.16.5.10/24\"\n\
                     host_address = \"172.16.5.1\"\npublish_address = \"::\"\n";
    let source = SAMPLE.replace("network_type = \"private\"\n", addresses).replace(
        "[spec.deployment]",
        "[spec.networking.publish]\nHTTP = 8080\nhttps = 0\n\n[spec.deployment]",
    );
    format!(
        "{source}\n[spec.storage]\npath = \"disks/node.img\"\nread_only = true\nresize = true\n\
         iops = 500\nbandwidth = \"8Mi\"\n"
    )
}

#[test]
fn every_not_enforced_key_of_the_table_is_reported_in_table_order() {
    // The sample sets every key the table lists; the plan reports all, in table order.
    let table: Vec<&str> = hac::NOT_ENFORCED.iter().map(|(key, _)| *key).collect();
    let plan = hac::parse_str(&full_spec(), Path::new("hac.toml"), &LIMITS).unwrap();
    let keys: Vec<&str> = plan.not_enforced.iter().map(|entry| entry.key).collect();
    assert_eq!(keys, table);
    // Keys the launcher enforces are not reported.
    assert!(plan.not_enforced.iter().all(|e| e.arrives_with != hac::STORAGE_AND_NETWORKING));
}

#[test]
fn network_type_is_enforced_and_never_reported() {
    for (text, expected) in [("private", NetworkType::Private), ("isolated", NetworkType::Isolated)] {
        let source = SAMPLE.replace("network_type = \"private\"", &format!("network_type = {text:?}"));
        let plan = hac::parse_str(&source, Path::new("hac.toml"), &LIMITS).unwrap();
        assert_eq!(plan.network.network_type, expected);
        assert!(plan.not_enforced.iter().all(|e| e.key != "spec.networking.network_type"));
        assert!(plan.egress.is_empty(), "no [spec.avs], no endpoint");
    }
    // Absent: private, which keeps a spec with an aggregator relayed as before.
    let source = SAMPLE.replace("network_type = \"private\"\n", "");
    let plan = hac::parse_str(&source, Path::new("hac.toml"), &LIMITS).unwrap();
    assert_eq!(plan.network.network_type, NetworkType::Private);
    assert!(hac::NOT_ENFORCED.iter().all(|(key, _)| *key != "spec.networking.network_type"));
}

#[test]
fn full_spec_plan() {
    let plan = hac::parse_str(&full_spec(), Path::new("/srv/avs/hac.toml"), &LIMITS).unwrap();
    assert_eq!(
        plan.disk,
        DiskPlan {
            path: Some(PathBuf::from("/srv/avs/disks/node.img")),
            read_only: true,
            resize: true,
            iops: 500,
            bandwidth_bytes_per_s: 8 << 20,
        }
    );
    let net = &plan.network;
    assert_eq!((net.guest_address, net.prefix_len), (Ipv4Addr::new(172, 16, 5, 10), 24));
    assert_eq!(net.host_address, Ipv4Addr::new(172, 16, 5, 1));
    assert_eq!(net.publish_address, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    assert_eq!(
        net.inbound_ports,
        [
            InboundPort { name: "HTTP".to_owned(), port: 80, host_port: 8080 },
            InboundPort { name: "https".to_owned(), port: 443, host_port: 0 },
        ]
    );
}

const MINIMAL: &str = r#"
apiVersion = "vistara.eigenlayer/v1"
kind = "AVSSpaceCore"
[metadata]
name = "m"
[spec.resources]
cpu = 1
memory = "4Mi"
[spec.deployment]
image = "./build/app.elf"
"#;

#[test]
fn minimal_spec_gets_documented_defaults() {
    let plan = hac::parse_str(MINIMAL, Path::new("/srv/avs/hac.toml"), &LIMITS).unwrap();
    assert_eq!(plan.vcpus, 1);
    assert_eq!(plan.memory_bytes, 4 << 20);
    assert_eq!(plan.storage_bytes, 0);
    assert_eq!(plan.disk, DiskPlan::default());
    assert_eq!(
        plan.disk,
        DiskPlan {
            path: None,
            read_only: false,
            resize: false,
            iops: hac::DEFAULT_DISK_IOPS,
            bandwidth_bytes_per_s: hac::DEFAULT_DISK_BANDWIDTH,
        }
    );
    assert_eq!((hac::DEFAULT_DISK_IOPS, hac::DEFAULT_DISK_BANDWIDTH), (20_000, 512 << 20));
    assert_eq!(plan.image, ImageSource::Path(PathBuf::from("/srv/avs/build/app.elf")));
    assert_eq!(plan.virtualization.kind, VirtualizationType::MicroVm);
    assert_eq!(plan.virtualization.provider, Provider::Kvm);
    assert_eq!(plan.virtualization.criteria.security, SecurityLevel::Standard);
    assert_eq!(plan.virtualization.criteria.performance, PerformanceLevel::Standard);
    assert_eq!(
        plan.network,
        NetworkPlan {
            bandwidth_limit_bps: 0,
            ingress_bps: 0,
            egress_bps: 0,
            network_type: NetworkType::Private,
            inbound_ports: vec![],
            guest_address: Ipv4Addr::new(10, 0, 0, 2),
            prefix_len: 30,
            host_address: Ipv4Addr::new(10, 0, 0, 1),
            publish_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    );
    assert_eq!(plan.network, NetworkPlan::default());
    assert_eq!(
        (hac::DEFAULT_GUEST_ADDRESS, hac::DEFAULT_PREFIX_LEN, hac::DEFAULT_HOST_ADDRESS),
        (Ipv4Addr::new(10, 0, 0, 2), 30, Ipv4Addr::new(10, 0, 0, 1))
    );
    assert_eq!(hac::DEFAULT_PUBLISH_ADDRESS, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(plan.avs, None);
    assert!(plan.egress.is_empty(), "no endpoint named, none reachable");
    assert_eq!(plan.attestation, Attestation::Bls);
    assert_eq!(plan.security_isolation, None);
    assert_eq!(plan.observability, Observability::default());
    assert!(!plan.observability.sidecar);
    assert_eq!(plan.operations.update_strategy, UpdateStrategy::Recreate);
    assert_eq!(plan.operations.scaling, Scaling::None);
    assert_eq!(plan.failover, Failover::default());
    assert_eq!(plan.failover.strategy, FailoverStrategy::None);
    assert!(!plan.failover.restarts());
    assert!(plan.not_enforced.is_empty(), "{:?}", plan.not_enforced);
}

#[test]
fn only_present_keys_are_reported_as_not_enforced() {
    // scaling and updateStrategy are enforced (hac-launch runs replicas; --update follows the
    // strategy): present, they are not reported.
    let source = format!(
        "{MINIMAL}\n[spec.operations]\nscaling = \"None\"\nupdateStrategy = \"Recreate\"\n\
         [spec.virtualization.criteria]\nperformance = \"standard\"\n"
    );
    let plan = hac::parse_str(&source, Path::new("hac.toml"), &LIMITS).unwrap();
    assert_eq!(
        plan.not_enforced,
        vec![NotEnforced {
            key: "spec.virtualization.criteria.performance",
            value: "standard".to_owned(),
            arrives_with: "supervisor",
        }]
    );
}

#[test]
fn relative_image_path_is_joined_to_the_spec_directory() {
    let cases = [
        ("./app.elf", "hac.toml", "app.elf"),
        ("./app.elf", "conf/hac.toml", "conf/app.elf"),
        ("../out/app.elf", "/srv/avs/hac.toml", "/srv/avs/../out/app.elf"),
        ("/opt/app.elf", "/srv/avs/hac.toml", "/opt/app.elf"),
        ("build/app.elf", "/srv/hac.toml", "/srv/build/app.elf"),
        ("./kernel", "/srv/hac.toml", "/srv/kernel"),
    ];
    for (image, spec, expected) in cases {
        let source = MINIMAL.replace("./build/app.elf", image);
        let plan = hac::parse_str(&source, Path::new(spec), &LIMITS).unwrap();
        assert_eq!(plan.image, ImageSource::Path(PathBuf::from(expected)), "{image} in {spec}");
    }
}

#[test]
fn plan_serialises_with_file_spellings() {
    let plan = hac::parse_str(SAMPLE, Path::new("hac.toml"), &LIMITS).unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["virtualization"]["type"], "MicroVM");
    assert_eq!(json["virtualization"]["provider"], "KVM");
    assert_eq!(json["virtualization"]["criteria"]["security"], "high");
    assert_eq!(json["network"]["network_type"], "private");
    assert_eq!(json["attestation"], "BLS");
    assert_eq!(json["operations"]["update_strategy"], "RollingUpdate");
    assert_eq!(json["operations"]["scaling"], "HorizontalAutoScaling");
    assert_eq!(json["failover"]["strategy"], "auto-recovery");
    assert_eq!(json["image"]["reference"]["repository"], "registry/path/avs-spacecore");
    assert_eq!(json["network"]["inbound_ports"][0]["name"], "HTTP");
    assert_eq!(json["network"]["inbound_ports"][0]["host_port"], 80);
    assert_eq!(json["network"]["guest_address"], "10.0.0.2");
    assert_eq!(json["network"]["prefix_len"], 30);
    assert_eq!(json["network"]["host_address"], "10.0.0.1");
    assert_eq!(json["network"]["publish_address"], "127.0.0.1");
    assert_eq!(
        json["disk"],
        serde_json::json!({
            "path": null, "read_only": false, "resize": false,
            "iops": 20_000, "bandwidth_bytes_per_s": 512u64 << 20,
        })
    );
    assert_eq!(json["not_enforced"][0]["key"], "spec.virtualization.criteria.performance");

    let plan = hac::parse_str(&full_spec(), Path::new("/srv/hac.toml"), &LIMITS).unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["disk"]["path"], "/srv/disks/node.img");
    assert_eq!(json["network"]["publish_address"], "::");
    assert_eq!(json["network"]["inbound_ports"][1]["host_port"], 0);
}

#[test]
fn alternative_spellings_of_valid_values() {
    type Check = fn(&Plan) -> bool;
    let cases: &[(&str, &str, Check)] = &[
        ("cpu = 1", "cpu = \"32\"", |p| p.vcpus == 32),
        ("memory = \"4Mi\"", "memory = \"16GiB\"", |p| p.memory_bytes == 16 << 30),
        ("memory = \"4Mi\"", "memory = \"16Gi\"", |p| p.memory_bytes == 16 << 30),
        ("memory = \"4Mi\"", "memory = \"4Mi\"\nstorage = \"64Ti\"", |p| p.storage_bytes == 64 << 40),
        ("memory = \"4Mi\"", "memory = \"4096Ki\"", |p| p.memory_bytes == 4 << 20),
        ("memory = \"4Mi\"", "memory = \"4Mi\"\nstorage = \"1Ti\"", |p| p.storage_bytes == 1 << 40),
        ("memory = \"4Mi\"", "memory = \"4Mi\"\nstorage = \"1MiB\"", |p| p.storage_bytes == 1 << 20),
        ("image = \"./build/app.elf\"", "image = \"avs\"", |p| p.image.to_string() == "avs:latest"),
        ("image = \"./build/app.elf\"", "image = \"ghcr.io/org/avs_node-x:v1.2.3-rc_1\"", |p| {
            p.image.to_string() == "ghcr.io/org/avs_node-x:v1.2.3-rc_1"
        }),
    ];
    for (from, to, check) in cases {
        let source = MINIMAL.replace(from, to);
        let plan =
            hac::parse_str(&source, Path::new("hac.toml"), &LIMITS).unwrap_or_else(|e| panic!("{to}: {e}"));
        assert!(check(&plan), "{to}: {plan:?}");
    }
}

#[test]
fn networking_values_in_all_accepted_forms() {
    let networking = |body: &str| {
        let source = format!("{MINIMAL}\n[spec.networking]\n{body}\n");
        hac::parse_str(&source, Path::new("hac.toml"), &LIMITS)
            .unwrap_or_else(|e| panic!("{body}: {e}"))
            .network
    };
    assert_eq!(networking("bandwidth_limit = 2.5").bandwidth_limit_bps, 2_500_000_000);
    assert_eq!(networking("bandwidth_limit = \"100Mbps\"").bandwidth_limit_bps, 100_000_000);
    assert_eq!(networking("ingress = 1").ingress_bps, 1_000_000_000);
    assert_eq!(networking("egress = \"1.5Kbps\"").egress_bps, 1_500);
    assert_eq!(networking("network_type = \"private\"").network_type, NetworkType::Private);
    assert_eq!(networking("network_type = \"isolated\"").network_type, NetworkType::Isolated);
    let ports = networking("inbound_ports = { p2p = 9000, metrics_1 = 9090, rpc-ws = 8546 }").inbound_ports;
    let names: Vec<(&str, u16)> = ports.iter().map(|p| (p.name.as_str(), p.port)).collect();
    assert_eq!(names, [("p2p", 9000), ("metrics_1", 9090), ("rpc-ws", 8546)]);
    let sixteen: Vec<String> = (1..=16).map(|i| format!("p{i} = {i}")).collect();
    assert_eq!(networking(&format!("inbound_ports = {{ {} }}", sixteen.join(", "))).inbound_ports.len(), 16);
}

#[test]
fn every_toml_example_in_the_format_reference_is_valid() {
    let reference = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/hac-toml.md");
    let text = std::fs::read_to_string(&reference).expect("docs/hac-toml.md exists");
    let blocks: Vec<&str> =
        text.split("```toml\n").skip(1).map(|rest| rest.split("```").next().unwrap_or_default()).collect();
    assert_eq!(blocks.len(), 4, "the sample, the smallest file, disk and published ports, and an AVS node");
    assert_eq!(blocks[0], SAMPLE, "the documented sample is the tested one");
    for block in blocks {
        hac::parse_str(block, Path::new("hac.toml"), &LIMITS)
            .unwrap_or_else(|e| panic!("documented example rejected: {e}\n{block}"));
    }
}

#[test]
fn storage_values_in_all_accepted_forms() {
    let with_size = MINIMAL.replace("memory = \"4Mi\"", "memory = \"4Mi\"\nstorage = \"1Gi\"");
    let disk = |spec: &str, table: &str| {
        let source = format!("{with_size}\n{table}\n");
        hac::parse_str(&source, Path::new(spec), &LIMITS).unwrap_or_else(|e| panic!("{table}: {e}")).disk
    };
    let path = |spec: &str, text: &str| {
        disk(spec, &format!("[spec.storage]\npath = {text:?}")).path.expect("a path").display().to_string()
    };
    assert_eq!(disk("hac.toml", "[spec.storage]"), DiskPlan::default());
    assert_eq!(path("/srv/avs/hac.toml", "/var/lib/spacecore/x/disk.img"), "/var/lib/spacecore/x/disk.img");
    assert_eq!(path("/srv/avs/hac.toml", "./disk.img"), "/srv/avs/disk.img");
    assert_eq!(path("/srv/avs/hac.toml", "disk.img"), "/srv/avs/disk.img");
    assert_eq!(path("/srv/avs/hac.toml", "../shared/./x.img"), "/srv/avs/../shared/x.img");
    assert_eq!(path("hac.toml", "./d.img"), "d.img");
    assert_eq!(path("conf/hac.toml", "data/d"), "conf/data/d");
    let flags = |body: &str| {
        let plan = disk("hac.toml", &format!("[spec.storage]\n{body}"));
        (plan.read_only, plan.resize)
    };
    assert_eq!(flags("read_only = true"), (true, false));
    assert_eq!(flags("read_only = false"), (false, false));
    assert_eq!(flags("resize = true"), (false, true));
    assert_eq!(flags("resize = false\nread_only = true"), (true, false));
    // As an inline table of [spec].
    assert_eq!(
        disk("/srv/hac.toml", "[spec]\nstorage = { path = \"/d.img\", read_only = true, resize = true }"),
        DiskPlan {
            path: Some(PathBuf::from("/d.img")),
            read_only: true,
            resize: true,
            ..DiskPlan::default()
        }
    );
}

#[test]
fn addresses_in_all_accepted_forms() {
    let networking = |body: &str| {
        let source = format!("{MINIMAL}\n[spec.networking]\n{body}\n");
        hac::parse_str(&source, Path::new("hac.toml"), &LIMITS)
            .unwrap_or_else(|e| panic!("{body}: {e}"))
            .network
    };
    let tap = |body: &str| {
        let net = networking(body);
        (net.guest_address.to_string(), net.prefix_len, net.host_address.to_string())
    };
    let tap_of = |guest: &str, prefix, host: &str| (guest.to_owned(), prefix, host.to_owned());
    assert_eq!(tap(""), tap_of("10.0.0.2", 30, "10.0.0.1"));
    assert_eq!(tap("guest_address = \"10.0.0.2/30\""), tap_of("10.0.0.2", 30, "10.0.0.1"));
    // The default host address fits any subnet of 10.0.0.0/8 that holds it.
    assert_eq!(tap("guest_address = \"10.1.2.3/8\""), tap_of("10.1.2.3", 8, "10.0.0.1"));
    assert_eq!(tap("guest_address = \"10.0.0.200/24\""), tap_of("10.0.0.200", 24, "10.0.0.1"));
    assert_eq!(
        tap("guest_address = \"10.0.0.1/30\"\nhost_address = \"10.0.0.2\""),
        tap_of("10.0.0.1", 30, "10.0.0.2")
    );
    assert_eq!(
        tap("guest_address = \"192.168.100.2/24\"\nhost_address = \"192.168.100.254\""),
        tap_of("192.168.100.2", 24, "192.168.100.254")
    );
    assert_eq!(
        tap("host_address = \"172.16.255.254\"\nguest_address = \"172.17.0.0/15\""),
        tap_of("172.17.0.0", 15, "172.16.255.254")
    );
    assert_eq!(tap("host_address = \"10.0.0.1\""), tap_of("10.0.0.2", 30, "10.0.0.1"));

    let publish = |text: &str| networking(&format!("publish_address = {text:?}")).publish_address;
    assert_eq!(publish("127.0.0.1"), IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(publish("0.0.0.0"), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(publish("192.168.1.5"), IpAddr::V4(Ipv4Addr::new(192, 168, 1, 5)));
    assert_eq!(publish("::1"), IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(publish("::"), IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    assert_eq!(publish("fd00::1:2"), IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 1, 2)));
    assert_eq!(publish("::ffff:10.1.2.3"), "::ffff:10.1.2.3".parse::<IpAddr>().unwrap());
}

#[test]
fn published_ports_in_all_accepted_forms() {
    let ports = |publish: &str| {
        let source = format!(
            "{MINIMAL}\n[spec.networking.inbound_ports]\nHTTP = 80\nhttps = 443\np2p = 9000\n\n\
             [spec.networking.publish]\n{publish}\n"
        );
        let plan = hac::parse_str(&source, Path::new("hac.toml"), &LIMITS)
            .unwrap_or_else(|e| panic!("{publish}: {e}"));
        plan.network.inbound_ports.iter().map(|p| (p.port, p.host_port)).collect::<Vec<_>>()
    };
    assert_eq!(ports(""), [(80, 80), (443, 443), (9000, 9000)]);
    assert_eq!(ports("HTTP = 8080"), [(80, 8080), (443, 443), (9000, 9000)]);
    assert_eq!(ports("HTTP = 0x1F90\np2p = 0o23420"), [(80, 8080), (443, 443), (9000, 10000)]);
    assert_eq!(ports("HTTP = 0\nhttps = 0"), [(80, 0), (443, 0), (9000, 9000)]);
    assert_eq!(ports("https = 65535\nHTTP = 1"), [(80, 1), (443, 65535), (9000, 9000)]);
    assert_eq!(ports("HTTP = 80"), [(80, 80), (443, 443), (9000, 9000)]);
    // Swapping is fine: each host port is used once.
    assert_eq!(ports("HTTP = 443\nhttps = 80"), [(80, 443), (443, 80), (9000, 9000)]);
    assert_eq!(ports("HTTP = 9000\np2p = 0"), [(80, 9000), (443, 443), (9000, 0)]);

    // As an inline table.
    let source = format!(
        "{MINIMAL}\n[spec.networking]\ninbound_ports = {{ rpc = 8545 }}\npublish = {{ rpc = 18545 }}\n"
    );
    let plan = hac::parse_str(&source, Path::new("hac.toml"), &LIMITS).unwrap();
    assert_eq!(
        plan.network.inbound_ports,
        [InboundPort { name: "rpc".to_owned(), port: 8545, host_port: 18545 }]
    );
}

#[test]
fn attestation_is_enforced_now() {
    // The guest signs with BLS, the only accepted value: nothing to report.
    assert!(hac::NOT_ENFORCED.iter().all(|(key, _)| *key != "spec.security.attestation"));
    let plan = hac::parse_str(SAMPLE, Path::new("hac.toml"), &LIMITS).unwrap();
    assert!(plan.not_enforced.iter().all(|e| e.key != "spec.security.attestation"), "{plan:?}");
}

/// `MINIMAL` with a data disk and `body` as its `[spec.avs]` table.
fn avs(spec: &str, body: &str) -> Option<AvsPlan> {
    let source = MINIMAL.replace("memory = \"4Mi\"", "memory = \"4Mi\"\nstorage = \"64Mi\"");
    let source = format!("{source}\n[spec.avs]\n{body}\n");
    hac::parse_str(&source, Path::new(spec), &LIMITS).unwrap_or_else(|e| panic!("{body}: {e}")).avs
}

#[test]
fn avs_values_in_all_accepted_forms() {
    let aggregator = |text: &str| avs("hac.toml", &format!("aggregator = {text:?}")).unwrap().aggregator;
    let socket = |text: &str| text.parse::<SocketAddr>().unwrap();
    assert_eq!(aggregator("127.0.0.1:8090"), socket("127.0.0.1:8090"));
    assert_eq!(aggregator("[::1]:8090"), socket("[::1]:8090"));
    assert_eq!(aggregator("192.168.1.20:1"), socket("192.168.1.20:1"));
    assert_eq!(aggregator("10.0.0.1:65535"), socket("10.0.0.1:65535"));
    assert_eq!(aggregator("[fd00::1:2]:443"), socket("[fd00::1:2]:443"));
    assert_eq!(aggregator("[::ffff:127.0.0.1]:8090"), socket("[::ffff:127.0.0.1]:8090"));

    let plan = avs("/srv/avs/hac.toml", "aggregator = \"127.0.0.1:8090\"").unwrap();
    assert_eq!(plan.keystore_password_file, None);
    let password = |spec: &str, text: &str| {
        avs(spec, &format!("aggregator = \"127.0.0.1:8090\"\nkeystore_password_file = {text:?}"))
            .unwrap()
            .keystore_password_file
            .expect("a path")
            .display()
            .to_string()
    };
    assert_eq!(password("/srv/avs/hac.toml", "operator.password"), "/srv/avs/operator.password");
    assert_eq!(password("/srv/avs/hac.toml", "./secrets/./pw"), "/srv/avs/secrets/pw");
    assert_eq!(password("/srv/avs/hac.toml", "../pw"), "/srv/avs/../pw");
    assert_eq!(password("/srv/avs/hac.toml", "/etc/spacecore/pw"), "/etc/spacecore/pw");
    assert_eq!(password("hac.toml", "./pw"), "pw");
    assert_eq!(password("conf/hac.toml", "pw"), "conf/pw");

    // As an inline table of [spec].
    let source = MINIMAL.replace("memory = \"4Mi\"", "memory = \"4Mi\"\nstorage = \"1Mi\"");
    let source = format!("{source}\n[spec]\navs = {{ aggregator = \"127.0.0.1:9\" }}\n");
    let plan = hac::parse_str(&source, Path::new("hac.toml"), &LIMITS).unwrap();
    assert_eq!(
        plan.avs,
        Some(AvsPlan {
            aggregator: socket("127.0.0.1:9"),
            keystore_password_file: None,
            scheme: SignatureScheme::Bn254,
            ecdsa_keystore_password_file: None,
            eth_rpc: None,
            eth_ws: None,
            task_manager: None,
            confirmations: None,
            task_signer: None,
        })
    );
    assert!(plan.not_enforced.is_empty(), "[spec.avs] is enforced: {:?}", plan.not_enforced);
    assert_eq!(
        plan.egress,
        [Endpoint { name: "aggregator", address: socket("127.0.0.1:9"), guest_port: 9 }],
        "the aggregator alone is relayed"
    );
}

/// `MINIMAL` with a data disk, `networking` as its `[spec.networking]` table and `body` as its
/// `[spec.avs]` table: the whole plan.
fn avs_plan(networking: &str, body: &str) -> Result<Plan, hac::SpecError> {
    let source = MINIMAL.replace("memory = \"4Mi\"", "memory = \"4Mi\"\nstorage = \"64Mi\"");
    let source = format!("{source}\n[spec.networking]\n{networking}\n[spec.avs]\n{body}\n");
    hac::parse_str(&source, Path::new("hac.toml"), &LIMITS)
}

#[test]
fn named_endpoints_are_the_plans_egress_in_a_fixed_order() {
    let socket = |text: &str| text.parse::<SocketAddr>().unwrap();
    // Written in any order; planned aggregator, eth_rpc, eth_ws.
    let plan = avs_plan(
        "",
        "eth_ws = \"[::1]:8546\"\neth_rpc = \"127.0.0.1:8545\"\naggregator = \"192.168.7.3:8090\"",
    )
    .unwrap();
    assert_eq!(plan.network.network_type, NetworkType::Private, "the default");
    let avs = plan.avs.as_ref().unwrap();
    assert_eq!((avs.eth_rpc, avs.eth_ws), (Some(socket("127.0.0.1:8545")), Some(socket("[::1]:8546"))));
    assert_eq!(
        plan.egress,
        [
            Endpoint { name: "aggregator", address: socket("192.168.7.3:8090"), guest_port: 8090 },
            Endpoint { name: "eth_rpc", address: socket("127.0.0.1:8545"), guest_port: 8545 },
            Endpoint { name: "eth_ws", address: socket("[::1]:8546"), guest_port: 8546 },
        ]
    );
    assert_eq!(plan.egress[1].key(), "spec.avs.eth_rpc");
    assert_eq!(Endpoint::NAMES, ["aggregator", "eth_rpc", "eth_ws"]);
    // Explicitly private: the same.
    let private = avs_plan(
        "network_type = \"private\"",
        "aggregator = \"127.0.0.1:8090\"\neth_rpc = \"127.0.0.1:8545\"",
    )
    .unwrap();
    assert_eq!(private.egress.len(), 2);
    assert!(private.not_enforced.is_empty(), "{:?}", private.not_enforced);
    // Serialised with the plan.
    let json = serde_json::to_value(&private).unwrap();
    assert_eq!(
        json["egress"],
        serde_json::json!([
            { "name": "aggregator", "address": "127.0.0.1:8090", "guest_port": 8090 },
            { "name": "eth_rpc", "address": "127.0.0.1:8545", "guest_port": 8545 },
        ])
    );
    assert_eq!(json["network"]["network_type"], "private");
}

#[test]
fn avs_scheme_and_ecdsa_password_file() {
    let plan = avs("/srv/avs/hac.toml", "aggregator = \"127.0.0.1:8090\"").unwrap();
    assert_eq!(plan.scheme, SignatureScheme::Bn254, "EigenLayer's scheme is the default");
    assert_eq!(plan.ecdsa_keystore_password_file, None);
    let scheme = |text: &str| {
        avs("hac.toml", &format!("aggregator = \"127.0.0.1:8090\"\nscheme = {text:?}")).unwrap().scheme
    };
    assert_eq!(scheme("bn254"), SignatureScheme::Bn254);
    assert_eq!(scheme("bls12-381"), SignatureScheme::Bls12381);
    assert_eq!(SignatureScheme::Bls12381.to_string(), "bls12-381");
    let ecdsa = |spec: &str, text: &str| {
        avs(spec, &format!("aggregator = \"127.0.0.1:8090\"\necdsa_keystore_password_file = {text:?}"))
            .unwrap()
            .ecdsa_keystore_password_file
            .expect("a path")
            .display()
            .to_string()
    };
    assert_eq!(ecdsa("/srv/avs/hac.toml", "ecdsa.password"), "/srv/avs/ecdsa.password");
    assert_eq!(ecdsa("/srv/avs/hac.toml", "./secrets/./ecdsa"), "/srv/avs/secrets/ecdsa");
    assert_eq!(ecdsa("/srv/avs/hac.toml", "/etc/spacecore/ecdsa"), "/etc/spacecore/ecdsa");
    assert_eq!(ecdsa("conf/hac.toml", "ecdsa"), "conf/ecdsa");
    // Both password files side by side, each its own.
    let plan = avs(
        "/srv/hac.toml",
        "aggregator = \"127.0.0.1:8090\"\nkeystore_password_file = \"bls\"\necdsa_keystore_password_file = \"ecdsa\"\nscheme = \"bn254\"",
    )
    .unwrap();
    assert_eq!(plan.keystore_password_file, Some(PathBuf::from("/srv/bls")));
    assert_eq!(plan.ecdsa_keystore_password_file, Some(PathBuf::from("/srv/ecdsa")));
}

#[test]
fn avs_plan_serialises_as_text() {
    let source = MINIMAL.replace("memory = \"4Mi\"", "memory = \"4Mi\"\nstorage = \"64Mi\"");
    let source = format!(
        "{source}\n[spec.avs]\naggregator = \"[::1]:8090\"\nkeystore_password_file = \"op.password\"\n"
    );
    let plan = hac::parse_str(&source, Path::new("/srv/hac.toml"), &LIMITS).unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(
        json["avs"],
        serde_json::json!({
            "aggregator": "[::1]:8090",
            "keystore_password_file": "/srv/op.password",
            "scheme": "bn254",
            "task_manager": null,
            "confirmations": null,
            "ecdsa_keystore_password_file": null,
            "eth_rpc": null,
            "eth_ws": null,
            "task_signer": null,
        })
    );
    let json =
        serde_json::to_value(hac::parse_str(MINIMAL, Path::new("hac.toml"), &LIMITS).unwrap()).unwrap();
    assert_eq!(json["avs"], serde_json::Value::Null);
    assert_eq!(json["egress"], serde_json::json!([]));
}

#[test]
fn the_examples_are_valid() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for name in ["spacecore.toml", "operator.toml"] {
        let path = examples.join(name);
        let plan = hac::parse_file(&path, &LIMITS).unwrap_or_else(|e| panic!("{e}"));
        if name == "operator.toml" {
            let avs = plan.avs.expect("the operator example has [spec.avs]");
            assert_eq!(avs.aggregator, "127.0.0.1:8090".parse::<SocketAddr>().unwrap());
            assert_eq!(avs.eth_rpc, Some("127.0.0.1:8545".parse::<SocketAddr>().unwrap()));
            let names: Vec<&str> = plan.egress.iter().map(|e| e.name).collect();
            assert_eq!(names, ["aggregator", "eth_rpc"]);
            assert_eq!(avs.keystore_password_file, Some(examples.join("operator.password")));
            assert_eq!(avs.scheme, SignatureScheme::Bn254);
            assert_eq!(avs.ecdsa_keystore_password_file, Some(examples.join("operator.ecdsa.password")));
            assert!(plan.storage_bytes > 0);
        }
    }
}

#[test]
fn failover_and_observability_keys_are_read_with_units_and_defaults() {
    let source = SAMPLE
        .replace(
            "strategy = \"auto-recovery\"",
            "strategy = \"restart-always\"\nmax_restarts = 3\nrestart_window = \"2m\"\n\
             backoff_initial = \"0ms\"\nbackoff_max = \"1h\"\nhealth_interval = \"250ms\"\nhealth_timeout = \"3s\"",
        )
        .replace(
            "logging = \"Loki/Fluentd/ELK\"",
            "logging = \"text\"\nmetrics_address = \"[::1]:0\"\nlog_file = \"logs/node.log\"",
        );
    let plan = hac::parse_str(&source, Path::new("/etc/spacecore/hac.toml"), &LIMITS).unwrap();
    assert_eq!(
        plan.failover,
        Failover {
            strategy: FailoverStrategy::RestartAlways,
            max_restarts: 3,
            restart_window_ms: 120_000,
            backoff_initial_ms: 0,
            backoff_max_ms: 3_600_000,
            health_interval_ms: 250,
            health_timeout_ms: 3_000,
        }
    );
    assert_eq!(plan.observability.metrics_address, Some("[::1]:0".parse().unwrap()));
    assert_eq!(plan.observability.log_format, LogFormat::Text);
    assert_eq!(plan.observability.log_file, Some(PathBuf::from("/etc/spacecore/logs/node.log")));
    assert!(plan.not_enforced.iter().all(|e| !e.key.starts_with("spec.failover")));
    assert!(plan.not_enforced.iter().all(|e| !e.key.starts_with("spec.observability")));

    // The documented defaults.
    let defaults = Failover::default();
    assert_eq!(
        (
            defaults.max_restarts,
            defaults.restart_window_ms,
            defaults.backoff_initial_ms,
            defaults.backoff_max_ms
        ),
        (5, 60_000, 10, 5_000)
    );
    assert_eq!((defaults.health_interval_ms, defaults.health_timeout_ms), (1_000, 10_000));
    assert_eq!(hac::DEFAULT_METRICS_ADDRESS, "127.0.0.1:9101".parse::<SocketAddr>().unwrap());
    let plan = hac::parse_str(MINIMAL, Path::new("hac.toml"), &LIMITS).unwrap();
    assert_eq!(plan.observability.metrics_address, None, "no metrics without monitoring");
    assert_eq!(plan.observability.log_format, LogFormat::Text);

    // "Prometheus" anywhere, any case; JSON from any of Loki, Fluentd, ELK or "json".
    for (monitoring, logging) in
        [("prometheus", "ELK"), ("Grafana + PROMETHEUS", "fluentd"), ("Prometheus", "json")]
    {
        let source = SAMPLE.replace("Prometheus/Grafana", monitoring).replace("Loki/Fluentd/ELK", logging);
        let plan = hac::parse_str(&source, Path::new("hac.toml"), &LIMITS).unwrap();
        assert_eq!(plan.observability.metrics_address, Some(hac::DEFAULT_METRICS_ADDRESS));
        assert_eq!(plan.observability.log_format, LogFormat::Json, "{logging}");
    }
    let json = serde_json::to_value(hac::parse_str(SAMPLE, Path::new("hac.toml"), &LIMITS).unwrap()).unwrap();
    assert_eq!(json["observability"]["metrics_address"], "127.0.0.1:9101");
    assert_eq!(json["observability"]["log_format"], "json");
    assert_eq!(json["failover"]["health_timeout_ms"], 10_000);
}
