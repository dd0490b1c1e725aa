//! The sample spec from the format reference, and the defaults of a minimal
//! spec.

use std::path::{Path, PathBuf};

use hac::{
    Attestation, Criteria, Failover, FailoverStrategy, HostLimits, ImageRef, ImageSource, InboundPort,
    NetworkPlan, NetworkType, NotEnforced, Observability, Operations, PerformanceLevel, Plan, Provider,
    Scaling, SecurityLevel, UpdateStrategy, Virtualization, VirtualizationType,
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
        image: ImageSource::Reference(ImageRef {
            repository: "registry/path/avs-spacecore".to_owned(),
            tag: "latest".to_owned(),
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
            network_type: NetworkType::Public,
            inbound_ports: vec![
                InboundPort { name: "HTTP".to_owned(), port: 80 },
                InboundPort { name: "https".to_owned(), port: 443 },
            ],
        },
        attestation: Attestation::Bls,
        security_isolation: Some("enforced via SELinux/AppArmor/seccomp".to_owned()),
        observability: Observability {
            sidecar: true,
            monitoring: Some("Prometheus/Grafana".to_owned()),
            logging: Some("Loki/Fluentd/ELK".to_owned()),
        },
        operations: Operations {
            update_strategy: UpdateStrategy::RollingUpdate,
            scaling: Scaling::HorizontalAutoScaling,
        },
        failover: Failover { strategy: FailoverStrategy::AutoRecovery },
        not_enforced: vec![
            not_enforced("spec.resources.storage", "100Gi", "storage and networking"),
            not_enforced("spec.virtualization.criteria.security", "high", "supervisor"),
            not_enforced("spec.virtualization.criteria.performance", "standard", "supervisor"),
            not_enforced("spec.networking.bandwidth_limit", "10", "storage and networking"),
            not_enforced("spec.networking.ingress", "1Gbps", "storage and networking"),
            not_enforced("spec.networking.egress", "1Gbps", "storage and networking"),
            not_enforced("spec.networking.network_type", "public", "storage and networking"),
            not_enforced("spec.networking.inbound_ports", "HTTP = 80, https = 443", "storage and networking"),
            not_enforced("spec.security.attestation", "BLS", "AVS signing"),
            not_enforced("spec.security.isolation", "enforced via SELinux/AppArmor/seccomp", "supervisor"),
            not_enforced("spec.observability.sidecar", "true", "operations"),
            not_enforced("spec.observability.monitoring", "Prometheus/Grafana", "operations"),
            not_enforced("spec.observability.logging", "Loki/Fluentd/ELK", "operations"),
            not_enforced("spec.operations.updateStrategy", "RollingUpdate", "operations"),
            not_enforced("spec.operations.scaling", "HorizontalAutoScaling", "operations"),
            not_enforced("spec.failover.strategy", "auto-recovery", "operations"),
        ],
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

#[test]
fn every_not_enforced_key_of_the_table_is_in_the_sample() {
    // The sample sets every key the table lists, so the plan reports all of
    // them, in table order.
    let plan = hac::parse_str(SAMPLE, Path::new("hac.toml"), &LIMITS).unwrap();
    let keys: Vec<&str> = plan.not_enforced.iter().map(|entry| entry.key).collect();
    let table: Vec<&str> = hac::NOT_ENFORCED.iter().map(|(key, _)| *key).collect();
    assert_eq!(keys, table);
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
            network_type: NetworkType::Isolated,
            inbound_ports: vec![],
        }
    );
    assert_eq!(plan.attestation, Attestation::Bls);
    assert_eq!(plan.security_isolation, None);
    assert_eq!(plan.observability, Observability::default());
    assert!(!plan.observability.sidecar);
    assert_eq!(plan.operations.update_strategy, UpdateStrategy::Recreate);
    assert_eq!(plan.operations.scaling, Scaling::None);
    assert_eq!(plan.failover.strategy, FailoverStrategy::None);
    assert!(plan.not_enforced.is_empty(), "{:?}", plan.not_enforced);
}

#[test]
fn only_present_keys_are_reported_as_not_enforced() {
    let source = format!("{MINIMAL}\n[spec.failover]\nstrategy = \"none\"\n");
    let plan = hac::parse_str(&source, Path::new("hac.toml"), &LIMITS).unwrap();
    assert_eq!(
        plan.not_enforced,
        vec![NotEnforced {
            key: "spec.failover.strategy",
            value: "none".to_owned(),
            arrives_with: "operations",
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
    assert_eq!(json["network"]["network_type"], "public");
    assert_eq!(json["attestation"], "BLS");
    assert_eq!(json["operations"]["update_strategy"], "RollingUpdate");
    assert_eq!(json["operations"]["scaling"], "HorizontalAutoScaling");
    assert_eq!(json["failover"]["strategy"], "auto-recovery");
    assert_eq!(json["image"]["reference"]["repository"], "registry/path/avs-spacecore");
    assert_eq!(json["network"]["inbound_ports"][0]["name"], "HTTP");
    assert_eq!(json["not_enforced"][0]["key"], "spec.resources.storage");
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
    assert_eq!(blocks.len(), 2, "the sample and the smallest file");
    assert_eq!(blocks[0], SAMPLE, "the documented sample is the tested one");
    for block in blocks {
        hac::parse_str(block, Path::new("hac.toml"), &LIMITS)
            .unwrap_or_else(|e| panic!("documented example rejected: {e}\n{block}"));
    }
}
