//! One test per class of bad input. Each edits one line of the sample spec
//! and checks the key named, the line (and where it matters the column) and
//! the gist of the message.

use std::path::Path;

use hac::{HostLimits, SpecError};

const SAMPLE: &str = include_str!("sample.hac.toml");
const LIMITS: HostLimits = HostLimits { max_vcpus: 32, max_memory_bytes: 16 << 30 };

/// The sample with `from` (which must occur exactly once) replaced by `to`.
fn edited(from: &str, to: &str) -> String {
    assert_eq!(SAMPLE.matches(from).count(), 1, "{from:?} must occur once");
    SAMPLE.replace(from, to)
}

fn error_of(source: &str) -> SpecError {
    match hac::parse_str(source, Path::new("hac.toml"), &LIMITS) {
        Ok(plan) => panic!("accepted:\n{source}\n{plan:?}"),
        Err(error) => error,
    }
}

/// Edits the sample, expects an error at `key` on `line` whose message
/// contains `needle`; returns it for further checks.
#[track_caller]
fn expect_error(from: &str, to: &str, key: &str, line: usize, needle: &str) -> SpecError {
    let error = error_of(&edited(from, to));
    assert_eq!(error.key(), key, "{error}");
    assert_eq!(error.line(), Some(line), "{error}");
    assert!(error.message().contains(needle), "{needle:?} not in: {error}");
    error
}

#[test]
fn display_is_file_line_col_key_message() {
    let error = expect_error(
        "memory = \"8Gi\"",
        "memory = \"8GB\"",
        "spec.resources.memory",
        9,
        "binary units are expected, e.g. \"8Gi\"",
    );
    assert_eq!(error.column(), Some(10));
    assert_eq!(error.file(), Path::new("hac.toml"));
    let shown = error.to_string();
    assert!(
        shown.starts_with("hac.toml:9:10: spec.resources.memory: \"8GB\" uses a decimal unit"),
        "{shown}"
    );
    assert!(!shown.contains('\n'));
}

#[test]
fn unknown_top_level_key() {
    let error = expect_error(
        "kind = \"AVSSpaceCore\"",
        "kind = \"AVSSpaceCore\"\nreplicas = 3",
        "replicas",
        3,
        "unknown key `replicas` at the top level",
    );
    assert_eq!(error.column(), Some(1));
    assert!(error.message().contains("apiVersion, kind, metadata, spec"));
}

#[test]
fn unknown_nested_keys() {
    expect_error(
        "cpu = \"4\"",
        "cpu = \"4\"\ngpu = 1",
        "spec.resources.gpu",
        9,
        "unknown key `gpu` in [spec.resources]; expected one of: cpu, memory, storage",
    );
    expect_error(
        "performance = \"standard\"",
        "performance = \"standard\"\nlatency = \"low\"",
        "spec.virtualization.criteria.latency",
        19,
        "unknown key",
    );
    expect_error(
        "name = \"spacecore-sample\"",
        "name = \"spacecore-sample\"\nlabels = { a = \"b\" }",
        "metadata.labels",
        6,
        "unknown key",
    );
    expect_error(
        "strategy = \"auto-recovery\"",
        "strategy = \"auto-recovery\"\n\n[spec.launch]\nkernel = \"x\"",
        "spec.launch",
        49,
        "unknown key `launch` in [spec]",
    );
    expect_error(
        "updateStrategy = ",
        "UpdateStrategy = ",
        "spec.operations.UpdateStrategy",
        43,
        "did you mean `updateStrategy`?",
    );
    expect_error(
        "[spec.networking.inbound_ports]",
        "[spec.networking.ports]",
        "spec.networking.ports",
        26,
        "unknown key `ports`",
    );
}

#[test]
fn wrong_types() {
    expect_error(
        "memory = \"8Gi\"",
        "memory = 8",
        "spec.resources.memory",
        9,
        "expected a binary size such as \"512Mi\" or \"8Gi\" (a string with a unit), found integer 8",
    );
    expect_error("cpu = \"4\"", "cpu = 4.5", "spec.resources.cpu", 8, "found float 4.5");
    expect_error("cpu = \"4\"", "cpu = \"four\"", "spec.resources.cpu", 8, "found string \"four\"");
    expect_error(
        "sidecar = true",
        "sidecar = \"yes\"",
        "spec.observability.sidecar",
        38,
        "expected true or false",
    );
    expect_error(
        "HTTP = 80",
        "HTTP = \"80\"",
        "spec.networking.inbound_ports.HTTP",
        27,
        "expected a port number",
    );
    expect_error(
        "ingress = \"1Gbps\"",
        "ingress = true",
        "spec.networking.ingress",
        22,
        "found boolean true",
    );
    expect_error(
        "[metadata]\nname = \"spacecore-sample\"",
        "metadata = \"spacecore-sample\"",
        "metadata",
        4,
        "expected a table ([metadata])",
    );
    expect_error("kind = \"AVSSpaceCore\"", "kind = 1", "kind", 2, "expected \"AVSSpaceCore\"");
    expect_error(
        "monitoring = \"Prometheus/Grafana\"",
        "monitoring = [\"a\"]",
        "spec.observability.monitoring",
        39,
        "expected a string, found array",
    );
    expect_error("type = \"MicroVM\"", "type = 1979-05-27", "spec.virtualization.type", 13, "found datetime");
}

#[test]
fn bad_units() {
    let key = "spec.resources.memory";
    expect_error("memory = \"8Gi\"", "memory = \"eight\"", key, 9, "expected a binary size");
    expect_error("memory = \"8Gi\"", "memory = \"8GB\"", key, 9, "binary units are expected");
    expect_error("memory = \"8Gi\"", "memory = \"8Xi\"", key, 9, "unknown unit \"Xi\"");
    expect_error("memory = \"8Gi\"", "memory = \"8\"", key, 9, "has no unit");
    expect_error("memory = \"8Gi\"", "memory = \"1.5Gi\"", key, 9, "not a whole number");
    expect_error(
        "ingress = \"1Gbps\"",
        "ingress = \"1Gb\"",
        "spec.networking.ingress",
        22,
        "unknown unit \"Gb\"",
    );
    expect_error(
        "egress = \"1Gbps\"",
        "egress = \"fast\"",
        "spec.networking.egress",
        23,
        "expected a bit rate",
    );
    expect_error("storage = \"100Gi\"", "storage = \"100GB\"", "spec.resources.storage", 10, "\"100Gi\"");
}

#[test]
fn overflow_is_an_error() {
    expect_error(
        "storage = \"100Gi\"",
        "storage = \"99999999999Ti\"",
        "spec.resources.storage",
        10,
        "too large",
    );
    expect_error(
        "memory = \"8Gi\"",
        "memory = \"99999999999999999999999Gi\"",
        "spec.resources.memory",
        9,
        "too large",
    );
    expect_error(
        "bandwidth_limit = 10 ",
        "bandwidth_limit = 99999999999 ",
        "spec.networking.bandwidth_limit",
        21,
        "too large",
    );
    expect_error(
        "ingress = \"1Gbps\"",
        "ingress = \"18446744073709551616Kbps\"",
        "spec.networking.ingress",
        22,
        "too large",
    );
    expect_error(
        "cpu = \"4\"",
        "cpu = \"99999999999999999999999999999999999999999999\"",
        "spec.resources.cpu",
        8,
        "more than this host allows",
    );
    expect_error(
        "cpu = \"4\"",
        "cpu = 9223372036854775807",
        "spec.resources.cpu",
        8,
        "more than this host allows",
    );
}

#[test]
fn cpu_out_of_range() {
    let key = "spec.resources.cpu";
    expect_error("cpu = \"4\"", "cpu = 0", key, 8, "expected at least 1");
    expect_error("cpu = \"4\"", "cpu = \"0\"", key, 8, "expected at least 1");
    expect_error("cpu = \"4\"", "cpu = -2", key, 8, "expected at least 1");
    expect_error("cpu = \"4\"", "cpu = 33", key, 8, "more than this host allows; expected 1 to 32");
    expect_error("cpu = \"4\"", "cpu = \"-4\"", key, 8, "expected a vCPU count from 1 to 32");
}

#[test]
fn memory_out_of_range() {
    let key = "spec.resources.memory";
    expect_error("memory = \"8Gi\"", "memory = \"32Gi\"", key, 9, "above this host's limit of 16Gi");
    expect_error("memory = \"8Gi\"", "memory = \"16386Mi\"", key, 9, "above this host's limit");
    expect_error("memory = \"8Gi\"", "memory = \"1Mi\"", key, 9, "expected at least 4Mi");
    expect_error("memory = \"8Gi\"", "memory = \"2Mi\"", key, 9, "expected at least 4Mi");
    let error = expect_error("memory = \"8Gi\"", "memory = \"5Mi\"", key, 9, "not a multiple of 2Mi");
    assert!(error.message().contains("\"4Mi\" and \"6Mi\""), "{error}");
    expect_error("memory = \"8Gi\"", "memory = \"1025Ki\"", key, 9, "expected at least 4Mi");
    expect_error("memory = \"8Gi\"", "memory = \"4097Ki\"", key, 9, "not a multiple of 2Mi");
}

#[test]
fn storage_out_of_range() {
    let key = "spec.resources.storage";
    expect_error("storage = \"100Gi\"", "storage = \"1023Ki\"", key, 10, "expected at least 1Mi");
    expect_error("storage = \"100Gi\"", "storage = \"65Ti\"", key, 10, "expected at most 64Ti");
}

#[test]
fn rates_must_be_positive() {
    let key = "spec.networking.bandwidth_limit";
    expect_error("bandwidth_limit = 10 ", "bandwidth_limit = 0 ", key, 21, "greater than zero");
    expect_error("bandwidth_limit = 10 ", "bandwidth_limit = -1 ", key, 21, "greater than zero");
    expect_error("bandwidth_limit = 10 ", "bandwidth_limit = 0.0 ", key, 21, "greater than zero");
    expect_error("bandwidth_limit = 10 ", "bandwidth_limit = \"0Mbps\" ", key, 21, "greater than zero");
    expect_error("bandwidth_limit = 10 ", "bandwidth_limit = nan ", key, 21, "expected a bit rate");
    expect_error("bandwidth_limit = 10 ", "bandwidth_limit = inf ", key, 21, "too large");
}

#[test]
fn bad_ports() {
    let http = "spec.networking.inbound_ports.HTTP";
    let https = "spec.networking.inbound_ports.https";
    expect_error(
        "HTTP = 80",
        "HTTP = 0",
        http,
        27,
        "port 0 is out of range; expected a port number from 1 to 65535",
    );
    expect_error("https = 443", "https = 70000", https, 28, "port 70000 is out of range");
    expect_error("https = 443", "https = -443", https, 28, "out of range");
    let error =
        expect_error("https = 443", "https = 80", https, 28, "port 80 is already used by `HTTP` on line 27");
    assert_eq!(error.column(), Some(1), "points at the second key");
    expect_error(
        "https = 443",
        "very-long-port-name = 443",
        "spec.networking.inbound_ports.very-long-port-name",
        28,
        "bad inbound port name",
    );
    expect_error(
        "https = 443",
        "\"my port\" = 443",
        "spec.networking.inbound_ports.\"my port\"",
        28,
        "bad inbound port name",
    );
    let seventeen: String = (1..=17).map(|i| format!("p{i} = {}\n", 1000 + i)).collect();
    expect_error(
        "HTTP = 80\nhttps = 443\n",
        &seventeen,
        "spec.networking.inbound_ports.p17",
        43,
        "too many inbound ports (17); at most 16",
    );
}

#[test]
fn wrong_api_version_and_kind() {
    expect_error(
        "apiVersion = \"vistara.eigenlayer/v1\"",
        "apiVersion = \"vistara.eigenlayer/v2\"",
        "apiVersion",
        1,
        "expected \"vistara.eigenlayer/v1\", found \"vistara.eigenlayer/v2\"",
    );
    expect_error(
        "kind = \"AVSSpaceCore\"",
        "kind = \"Pod\"",
        "kind",
        2,
        "expected \"AVSSpaceCore\", found \"Pod\"",
    );
}

#[test]
fn unsupported_virtualization() {
    let kind = "spec.virtualization.type";
    let provider = "spec.virtualization.provider";
    let error = expect_error(
        "type = \"MicroVM\"",
        "type = \"TEE\"",
        kind,
        13,
        "\"TEE\" is not supported by this launcher",
    );
    assert!(error.message().contains("accepted: \"MicroVM\""), "{error}");
    expect_error("type = \"MicroVM\"", "type = \"Container\"", kind, 13, "not supported by this launcher");
    expect_error("type = \"MicroVM\"", "type = \"microvm\"", kind, 13, "case-sensitive");
    expect_error(
        "type = \"MicroVM\"",
        "type = \"Unikernel\"",
        kind,
        13,
        "unknown value \"Unikernel\"; expected one of \"MicroVM\"",
    );
    for refused in ["SGX", "TDX", "Firecracker"] {
        let error = expect_error(
            "provider = \"KVM\"",
            &format!("provider = \"{refused}\""),
            provider,
            14,
            "not supported by this launcher",
        );
        assert!(error.message().contains("accepted: \"KVM\""), "{error}");
    }
    expect_error(
        "security = \"high\"",
        "security = \"paranoid\"",
        "spec.virtualization.criteria.security",
        17,
        "expected one of \"standard\", \"high\"",
    );
}

#[test]
fn unsupported_attestation() {
    let key = "spec.security.attestation";
    for refused in ["ECDSA", "BN254"] {
        expect_error(
            "attestation = \"BLS\"",
            &format!("attestation = \"{refused}\""),
            key,
            34,
            "is not supported yet; accepted: \"BLS\"",
        );
    }
    expect_error("attestation = \"BLS\"", "attestation = \"bls\"", key, 34, "case-sensitive");
}

#[test]
fn bad_keywords_elsewhere() {
    expect_error(
        "network_type = \"public\"",
        "network_type = \"dmz\"",
        "spec.networking.network_type",
        24,
        "expected one of \"public\", \"private\", \"isolated\"",
    );
    expect_error(
        "updateStrategy = \"RollingUpdate\"",
        "updateStrategy = \"Canary\"",
        "spec.operations.updateStrategy",
        43,
        "not supported by this launcher",
    );
    expect_error(
        "scaling = \"HorizontalAutoScaling\"",
        "scaling = \"Manual\"",
        "spec.operations.scaling",
        44,
        "expected one of \"None\", \"HorizontalAutoScaling\"",
    );
    expect_error(
        "strategy = \"auto-recovery\"",
        "strategy = \"retry\"",
        "spec.failover.strategy",
        47,
        "expected one of \"none\", \"auto-recovery\", \"restart-always\"",
    );
}

#[test]
fn bad_image_references() {
    let key = "spec.deployment.image";
    let image = "image = \"registry/path/avs-spacecore:latest\"";
    expect_error(
        image,
        "image = \"UPPER:tag\"",
        key,
        31,
        "character 'U' is not allowed in an image name (image names are lowercase)",
    );
    expect_error(image, "image = \"a::b\"", key, 31, "character ':' is not allowed in an image name");
    expect_error(image, "image = \"name:\"", key, 31, "the tag after ':' is empty");
    expect_error(image, "image = \"name:bad/tag\"", key, 31, "is not allowed in a tag");
    expect_error(image, "image = \"a//b:tag\"", key, 31, "bad image name part \"\"");
    expect_error(image, "image = \"-a:tag\"", key, 31, "bad image name part \"-a\"");
    expect_error(image, "image = \"a@sha256:abcd\"", key, 31, "digest references");
    expect_error(image, "image = \"app.elf\"", key, 31, "ambiguous: write \"./app.elf\"");
    expect_error(image, "image = \"\"", key, 31, "the image is empty");
    expect_error(image, "image = \"./dir/\"", key, 31, "names a directory");
    let long_tag = format!("image = \"a:{}\"", "t".repeat(129));
    expect_error(image, &long_tag, key, 31, "longer than 128");
}

#[test]
fn bad_names() {
    let key = "metadata.name";
    let name = "name = \"spacecore-sample\"";
    expect_error(name, "name = \"Spacecore\"", key, 5, "contains 'S'");
    expect_error(name, "name = \"space_core\"", key, 5, "contains '_'");
    expect_error(name, "name = \"1core\"", key, 5, "does not start with a letter");
    expect_error(name, "name = \"-core\"", key, 5, "does not start with a letter");
    expect_error(name, "name = \"\"", key, 5, "the name is empty");
    expect_error(name, &format!("name = \"{}\"", "a".repeat(64)), key, 5, "64 characters long");
    let plan = hac::parse_str(
        &edited(name, &format!("name = \"{}\"", "a".repeat(63))),
        Path::new("hac.toml"),
        &LIMITS,
    );
    assert!(plan.is_ok(), "63 characters are accepted");
}

#[test]
fn missing_required_keys() {
    expect_error(
        "name = \"spacecore-sample\"\n",
        "",
        "metadata.name",
        4,
        "missing required key `name` in [metadata]",
    );
    expect_error(
        "[metadata]\nname = \"spacecore-sample\"\n",
        "",
        "metadata",
        1,
        "missing required key `metadata` in the file",
    );
    expect_error(
        "apiVersion = \"vistara.eigenlayer/v1\"\n",
        "",
        "apiVersion",
        1,
        "missing required key `apiVersion`",
    );
    expect_error(
        "cpu = \"4\"\n",
        "",
        "spec.resources.cpu",
        7,
        "missing required key `cpu` in [spec.resources]",
    );
    expect_error("memory = \"8Gi\"\n", "", "spec.resources.memory", 7, "expected a binary size");
    expect_error(
        "image = \"registry/path/avs-spacecore:latest\"\n",
        "",
        "spec.deployment.image",
        30,
        "missing required key `image`",
    );
    expect_error(
        "[spec.deployment]\nimage = \"registry/path/avs-spacecore:latest\"\n",
        "",
        "spec.deployment",
        7,
        "missing required key `deployment` in [spec]",
    );
}

#[test]
fn toml_syntax_errors_have_a_position() {
    let error = error_of(&edited("https = 443", "https = 443\nHTTP = 8080"));
    assert_eq!(error.key(), "");
    assert_eq!(error.line(), Some(29), "{error}");
    assert!(error.message().starts_with("invalid TOML: duplicate key"), "{error}");
    assert!(error.to_string().starts_with("hac.toml:29:1: invalid TOML"), "{error}");

    let error = error_of(&edited("cpu = \"4\"", "cpu = \"4"));
    assert_eq!(error.line(), Some(8), "{error}");
}
