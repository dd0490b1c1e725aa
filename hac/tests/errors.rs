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

/// `source` with the sample's `scaling = "HorizontalAutoScaling"` turned to `"None"`: a spec
/// with `[spec.avs]` signs, and a signer runs as exactly one instance.
fn one_instance(source: &str) -> String {
    assert_eq!(source.matches(SCALED).count(), 1, "{SCALED:?} must occur once");
    source.replace(SCALED, "scaling = \"None\"")
}

const SCALED: &str = "scaling = \"HorizontalAutoScaling\"";

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
        "network_type = \"private\"",
        "network_type = \"dmz\"",
        "spec.networking.network_type",
        24,
        "expected one of \"private\", \"isolated\"",
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
    expect_error(image, "image = \"a@sha256:abcd\"", key, 31, "is not a sha256 digest");
    expect_error(image, "image = \"a@md5:abcd\"", key, 31, "only sha256 digests");
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

/// The sample with `body` added as a `[spec.storage]` table after
/// `[spec.resources]`: the header is line 12, `body` starts on line 13.
fn with_disk(body: &str) -> (&'static str, String) {
    ("storage = \"100Gi\"\n", format!("storage = \"100Gi\"\n\n[spec.storage]\n{body}\n"))
}

#[test]
fn disk_without_storage() {
    let error = expect_error(
        "storage = \"100Gi\"\n",
        "\n[spec.storage]\npath = \"/var/lib/d.img\"\n",
        "spec.storage",
        11,
        "a disk needs spec.resources.storage",
    );
    assert_eq!(error.column(), Some(7), "points at `storage` in the header");
    // An empty table is a disk too.
    expect_error("storage = \"100Gi\"\n", "\n[spec.storage]\n", "spec.storage", 11, "a disk needs");
}

#[test]
fn bad_disk_paths() {
    let key = "spec.storage.path";
    for (path, needle) in [
        ("\"\"", "the path is empty; expected a path to the raw disk file"),
        ("\"/var/lib/spacecore/\"", "\"/var/lib/spacecore/\" names a directory"),
        ("\"./\"", "names a directory"),
        ("\".\"", "names a directory"),
        ("\"disks/..\"", "names a directory"),
        ("\"a\\u0000b\"", "contains a NUL character"),
        ("42", "expected a path to the raw disk file such as \"./disk.img\""),
    ] {
        let (from, to) = with_disk(&format!("path = {path}"));
        let error = expect_error(from, &to, key, 13, needle);
        assert_eq!(error.column(), Some(8), "points at the value");
    }
}

#[test]
fn bad_disk_flags_and_keys() {
    let (from, to) = with_disk("read_only = \"yes\"");
    expect_error(from, &to, "spec.storage.read_only", 13, "expected true or false, found string \"yes\"");
    let (from, to) = with_disk("path = \"/d.img\"\nresize = 1");
    expect_error(from, &to, "spec.storage.resize", 14, "expected true or false, found integer 1");
    let (from, to) = with_disk("size = \"1Gi\"");
    expect_error(
        from,
        &to,
        "spec.storage.size",
        13,
        "unknown key `size` in [spec.storage]; expected one of: path, read_only, resize, iops, bandwidth",
    );
    for (line, key, message) in [
        ("iops = 0", "iops", "0 requests per second: expected 1 to 10000000"),
        ("iops = 10000001", "iops", "10000001 requests per second: expected 1 to 10000000"),
        ("iops = \"100\"", "iops", "expected a number of disk requests per second"),
        ("bandwidth = 100", "bandwidth", "expected bytes per second as a binary size"),
        ("bandwidth = \"512Ki\"", "bandwidth", "\"512Ki\" per second: expected bytes per second"),
        ("bandwidth = \"65Gi\"", "bandwidth", "\"65Gi\" per second: expected"),
        ("bandwidth = \"100MB\"", "bandwidth", "decimal"),
    ] {
        let (from, to) = with_disk(line);
        expect_error(from, &to, &format!("spec.storage.{key}"), 13, message);
    }
    let (from, to) = with_disk("readOnly = true");
    expect_error(from, &to, "spec.storage.readOnly", 13, "unknown key `readOnly`");
    expect_error(
        "[spec.deployment]",
        "[spec]\nstorage = \"/d.img\"\n\n[spec.deployment]",
        "spec.storage",
        31,
        "expected a table ([spec.storage])",
    );
}

/// `network_type` is line 24 of the sample; `line` goes on line 25.
#[track_caller]
fn expect_network_error(line: &str, key: &str, needle: &str) -> SpecError {
    let network_type = "network_type = \"private\"\n";
    expect_error(network_type, &format!("{network_type}{line}\n"), key, 25, needle)
}

#[test]
fn bad_guest_addresses() {
    let key = "spec.networking.guest_address";
    let bad =
        |text: &str, needle: &str| expect_network_error(&format!("guest_address = {text}"), key, needle);
    let error = bad(
        "\"10.0.0.2\"",
        "\"10.0.0.2\" has no prefix length; expected an IPv4 address with a prefix length",
    );
    assert_eq!(error.column(), Some(17));
    bad("\"10.0.0.256/30\"", "\"10.0.0.256/30\" is not an IPv4 address with a prefix length");
    bad("\"guest\"", "is not an IPv4 address with a prefix length");
    bad("\"010.0.0.2/30\"", "is not an IPv4 address");
    bad("\"fd00::2/64\"", "(IPv6 is not supported here)");
    bad("\"10.0.0.2/\"", "bad prefix length \"\"");
    bad("\"10.0.0.2/+30\"", "bad prefix length \"+30\"");
    bad("\"10.0.0.2/31\"", "prefix length /31 is out of range; expected 8 to 30");
    bad("\"10.0.0.2/7\"", "prefix length /7 is out of range");
    bad("\"10.0.0.2/300\"", "bad prefix length");
    bad(
        "\"10.0.0.0/30\"",
        "10.0.0.0 is the network address of 10.0.0.0/30; expected another address of 10.0.0.0/30, such as \"10.0.0.1/30\"",
    );
    bad("\"10.0.0.3/30\"", "10.0.0.3 is the broadcast address of 10.0.0.0/30");
    bad("\"192.168.0.255/24\"", "the broadcast address of 192.168.0.0/24");
    bad("\"127.0.0.2/8\"", "127.0.0.2 is a loopback address");
    bad("\"224.0.0.2/30\"", "a multicast address");
    bad("\"0.0.0.2/30\"", "in 0.0.0.0/8");
    bad("\"250.0.0.2/30\"", "in the reserved range 240.0.0.0/4");
    bad(
        "30",
        "expected an IPv4 address with a prefix length from 8 to 30 such as \"10.0.0.2/30\", found integer 30",
    );
    // The default host address must fit the guest's subnet when host_address is absent.
    bad(
        "\"192.168.5.2/24\"",
        "host_address is not set and its default 10.0.0.1 does not fit: 10.0.0.1 is not in the guest's subnet \
         192.168.5.0/24",
    );
    bad("\"10.0.0.1/30\"", "its default 10.0.0.1 does not fit: 10.0.0.1 is the guest's address");
    bad("\"10.0.0.6/30\"", "is not in the guest's subnet 10.0.0.4/30");
}

#[test]
fn bad_host_addresses() {
    let key = "spec.networking.host_address";
    let bad = |text: &str, needle: &str| expect_network_error(&format!("host_address = {text}"), key, needle);
    let error = bad(
        "\"10.0.1.1\"",
        "10.0.1.1 is not in the guest's subnet 10.0.0.0/30; expected another address of 10.0.0.0/30, such as \"10.0.0.1\"",
    );
    assert_eq!(error.column(), Some(16));
    bad("\"10.0.0.2\"", "10.0.0.2 is the guest's address");
    bad("\"10.0.0.0\"", "10.0.0.0 is the network address of 10.0.0.0/30");
    bad("\"10.0.0.3\"", "10.0.0.3 is the broadcast address of 10.0.0.0/30");
    bad(
        "\"10.0.0.1/30\"",
        "\"10.0.0.1/30\" has a prefix length; write the address only, such as \"10.0.0.1\"",
    );
    bad(
        "\"localhost\"",
        "\"localhost\" is not an IPv4 address; expected an IPv4 address such as \"10.0.0.1\"",
    );
    bad("\"fe80::1\"", "(IPv6 is not supported here)");
    bad("true", "expected an IPv4 address such as \"10.0.0.1\", found boolean true");
    // Checked against the guest's subnet wherever guest_address is written.
    let error = expect_network_error(
        "host_address = \"192.168.0.1\"\nguest_address = \"192.168.1.2/24\"",
        key,
        "192.168.0.1 is not in the guest's subnet 192.168.1.0/24",
    );
    assert_eq!(error.line(), Some(25));
}

#[test]
fn bad_publish_addresses() {
    let key = "spec.networking.publish_address";
    let bad =
        |text: &str, needle: &str| expect_network_error(&format!("publish_address = {text}"), key, needle);
    bad(
        "\"localhost\"",
        "\"localhost\" is not an IP address; expected an IPv4 or IPv6 address such as \"127.0.0.1\"",
    );
    bad("\"[::1]\"", "write IPv6 addresses without brackets: \"::1\"");
    bad("\"127.0.0.1:8080\"", "\"127.0.0.1:8080\" has a port; write the address only, such as \"127.0.0.1\"");
    bad("\"[::1]:8080\"", "has a port; write the address only, such as \"::1\"");
    bad("\"10.0.0.0/8\"", "is not an IP address");
    bad("\"224.0.0.1\"", "224.0.0.1 is a multicast or broadcast address");
    bad("\"255.255.255.255\"", "cannot be listened on");
    bad("\"ff02::1\"", "multicast");
    let error = bad(
        "127",
        "expected an IPv4 or IPv6 address such as \"127.0.0.1\", \"0.0.0.0\" or \"::1\", found integer 127",
    );
    assert_eq!(error.column(), Some(19));
}

/// `[spec.networking.publish]` with `body` before `[spec.deployment]`: the
/// header is line 30, `body` starts on line 31.
#[track_caller]
fn expect_publish_error(body: &str, key: &str, line: usize, needle: &str) -> SpecError {
    let deployment = "[spec.deployment]";
    expect_error(deployment, &format!("[spec.networking.publish]\n{body}\n\n{deployment}"), key, line, needle)
}

#[test]
fn publish_names_an_inbound_port() {
    let error = expect_publish_error(
        "HTTP = 8080\nssh = 2222",
        "spec.networking.publish.ssh",
        32,
        "no inbound port named `ssh`; inbound ports are: HTTP, https",
    );
    assert_eq!(error.column(), Some(1), "points at the key");
    expect_publish_error(
        "http = 8080",
        "spec.networking.publish.http",
        31,
        "no inbound port named `http` (names are case-sensitive: did you mean `HTTP`?); inbound ports are",
    );
    expect_error(
        "[spec.networking.inbound_ports]\nHTTP = 80\nhttps = 443\n",
        "[spec.networking.publish]\nHTTP = 80\n",
        "spec.networking.publish.HTTP",
        27,
        "no inbound port named `HTTP`; there are no inbound ports",
    );
}

#[test]
fn publish_values_are_host_ports() {
    let key = "spec.networking.publish.HTTP";
    expect_publish_error(
        "HTTP = 65536",
        key,
        31,
        "port 65536 is out of range; expected a host port number from 0 to 65535 (0: any free port)",
    );
    expect_publish_error("HTTP = -1", key, 31, "port -1 is out of range");
    let error = expect_publish_error(
        "HTTP = \"8080\"",
        key,
        31,
        "expected a host port number from 0 to 65535 (0: any free port), found string \"8080\"",
    );
    assert_eq!(error.column(), Some(8), "points at the value");
    expect_publish_error("HTTP = 8080.0", key, 31, "found float 8080.0");
    expect_error(
        "network_type = \"private\"\n",
        "network_type = \"private\"\npublish = 8080\n",
        "spec.networking.publish",
        25,
        "expected a table ([spec.networking.publish]), found integer 8080",
    );
}

#[test]
fn published_host_ports_are_unique() {
    let error = expect_publish_error(
        "HTTP = 8080\nhttps = 8080",
        "spec.networking.publish.https",
        32,
        "host port 8080 is already used by `HTTP` on line 31; each host port may be published once",
    );
    assert_eq!(error.column(), Some(1), "points at the second key");
    // A published port may not take the host port another keeps by default.
    expect_publish_error(
        "HTTP = 443",
        "spec.networking.publish.HTTP",
        31,
        "host port 443 is already used by `https`, which is published on its guest port 443 by default",
    );
    expect_publish_error("https = 0\nHTTP = 0\nhttps = 1", "", 33, "invalid TOML: duplicate key");
}

/// The sample with `[spec.avs]` and `body` before `[spec.security]`: the
/// header is line 33, `body` starts on line 34.
#[track_caller]
fn expect_avs_error(body: &str, key: &str, line: usize, needle: &str) -> SpecError {
    let security = "[spec.security]";
    expect_error(security, &format!("[spec.avs]\n{body}\n\n{security}"), key, line, needle)
}

#[test]
fn bad_aggregators() {
    let key = "spec.avs.aggregator";
    let bad = |text: &str, needle: &str| expect_avs_error(&format!("aggregator = {text}"), key, 34, needle);
    let error = bad(
        "\"localhost:8090\"",
        "\"localhost:8090\" names a host; write its IP address (host names are not resolved: the guest has \
         no DNS, and a name the host resolved once could later point elsewhere than the relay goes); \
         expected an IP address and port such as \"127.0.0.1:8090\" or \"[::1]:8090\"",
    );
    assert_eq!(error.column(), Some(14), "points at the value");
    assert_eq!(
        error.to_string(),
        "hac.toml:34:14: spec.avs.aggregator: \"localhost:8090\" names a host; write its IP address (host \
         names are not resolved: the guest has no DNS, and a name the host resolved once could later \
         point elsewhere than the relay goes); expected an IP address and port such as \"127.0.0.1:8090\" \
         or \"[::1]:8090\""
    );
    bad("\"aggregator.example.com:443\"", "names a host");
    bad(
        "\"http://127.0.0.1:8090\"",
        "\"http://127.0.0.1:8090\" has a scheme (http://); write the address and port only",
    );
    bad("\"127.0.0.1\"", "\"127.0.0.1\" has no port; add \":PORT\"; expected an IP address and port");
    bad("\"::1\"", "has no port; add \":PORT\", and an IPv6 address goes in brackets before it");
    bad("\"[::1]\"", "\"[::1]\" has no port; add \":PORT\" after the brackets");
    bad("\"::1:8090\"", "has no port");
    bad(
        "\"fe80::1:99999\"",
        "an IPv6 address with a port is written in brackets, such as \"[fe80::1]:99999\"",
    );
    bad("\"127.0.0.1:0\"", "\"127.0.0.1:0\": port 0 cannot be connected to");
    bad("\"[::1]:0\"", "port 0 cannot be connected to");
    bad(
        "\"127.0.0.1:65536\"",
        "\"127.0.0.1:65536\" has a bad port \"65536\"; the port is a number from 1 to 65535",
    );
    bad("\"127.0.0.1:-1\"", "has a bad port \"-1\"");
    bad("\"127.0.0.1:\"", "has a bad port \"\"");
    bad("\"127.0.0.1:http\"", "has a bad port \"http\"");
    bad("\"010.0.0.1:8090\"", "\"010.0.0.1:8090\" names a host");
    bad("\"0.0.0.0:8090\"", "0.0.0.0 is the unspecified address, not an address of the aggregator");
    bad("\"[::]:8090\"", ":: is the unspecified address");
    bad("\"224.0.0.1:8090\"", "224.0.0.1 is a multicast or broadcast address");
    bad("\"255.255.255.255:8090\"", "multicast or broadcast");
    bad("\"[ff02::1]:8090\"", "multicast or broadcast");
    bad("\"\"", "the address is empty; expected an IP address and port");
    bad("\"127.0.0.1:8090/rpc\"", "\"127.0.0.1:8090/rpc\" has a path; write the address and port only");
    bad("\" 127.0.0.1:8090\"", "is not an IP address and port");
    bad(
        "8090",
        "expected an IP address and port such as \"127.0.0.1:8090\" or \"[::1]:8090\", found integer 8090",
    );
    bad("[\"127.0.0.1:8090\"]", "found array");
}

#[test]
fn avs_needs_an_aggregator() {
    let error = expect_avs_error(
        "keystore_password_file = \"pw\"",
        "spec.avs.aggregator",
        33,
        "missing required key `aggregator` in [spec.avs]; expected an IP address and port such as \"127.0.0.1:8090\"",
    );
    assert_eq!(error.column(), Some(1), "points at the table's header");
    expect_avs_error("", "spec.avs.aggregator", 33, "missing required key `aggregator`");
}

#[test]
fn bad_avs_keys() {
    expect_avs_error(
        "aggregator = \"127.0.0.1:8090\"\nkeystore = \"k.json\"",
        "spec.avs.keystore",
        35,
        "unknown key `keystore` in [spec.avs]; expected one of: aggregator, keystore_password_file, scheme, \
         ecdsa_keystore_password_file, eth_rpc, eth_ws, task_manager, confirmations, task_signer",
    );
    expect_avs_error(
        "Aggregator = \"127.0.0.1:8090\"",
        "spec.avs.Aggregator",
        34,
        "(keys are case-sensitive: did you mean `aggregator`?)",
    );
    // Unknown keys are reported before bad values.
    expect_avs_error(
        "aggregator = \"x\"\npassword = \"pw\"",
        "spec.avs.password",
        35,
        "unknown key `password`",
    );
    expect_error(
        "[spec.security]",
        "[spec]\navs = \"127.0.0.1:8090\"\n\n[spec.security]",
        "spec.avs",
        34,
        "expected a table ([spec.avs]), found string \"127.0.0.1:8090\"",
    );
}

#[test]
fn bad_keystore_password_files() {
    let key = "spec.avs.keystore_password_file";
    for (path, needle) in [
        ("\"\"", "the path is empty; expected a path to the file holding the keystore's password"),
        ("\"/etc/spacecore/\"", "\"/etc/spacecore/\" names a directory"),
        ("\".\"", "names a directory"),
        ("\"secrets/..\"", "names a directory"),
        ("\"pw\\u0000\"", "contains a NUL character"),
        (
            "true",
            "expected a path to the file holding the keystore's password such as \"./operator.password\", found boolean true",
        ),
    ] {
        let body = format!("aggregator = \"127.0.0.1:8090\"\nkeystore_password_file = {path}");
        let error = expect_avs_error(&body, key, 35, needle);
        assert_eq!(error.column(), Some(26), "points at the value");
    }
}

#[test]
fn bad_schemes() {
    let key = "spec.avs.scheme";
    let bad = |text: &str, needle: &str| {
        let body = format!("aggregator = \"127.0.0.1:8090\"\nscheme = {text}");
        let error = expect_avs_error(&body, key, 35, needle);
        assert_eq!(error.column(), Some(10), "points at the value: {error}");
        error
    };
    let error = bad("\"bn128\"", "unknown value \"bn128\"; expected one of \"bn254\", \"bls12-381\"");
    assert_eq!(
        error.to_string(),
        "hac.toml:35:10: spec.avs.scheme: unknown value \"bn128\"; expected one of \"bn254\", \"bls12-381\""
    );
    bad(
        "\"BN254\"",
        "\"BN254\" is not accepted: values are case-sensitive; expected one of \"bn254\", \"bls12-381\"",
    );
    bad("\"Bls12-381\"", "values are case-sensitive");
    bad("\"bls12381\"", "unknown value \"bls12381\"");
    bad("\"\"", "unknown value \"\"");
    bad(
        "\"ECDSA\"",
        "\"ECDSA\" does not name the curve of the operator's BLS key (task responses are BLS signatures; an \
         ECDSA key has its own ecdsa_keystore_password_file); accepted: \"bn254\", \"bls12-381\"",
    );
    bad("\"BLS\"", "does not name the curve of the operator's BLS key");
    bad("254", "expected one of \"bn254\", \"bls12-381\", found integer 254");
    bad("[\"bn254\"]", "found array");
}

#[test]
fn bad_ecdsa_keystore_password_files() {
    let key = "spec.avs.ecdsa_keystore_password_file";
    for (path, needle) in [
        ("\"\"", "the path is empty; expected a path to the file holding the ECDSA keystore's password"),
        ("\"/etc/spacecore/\"", "\"/etc/spacecore/\" names a directory"),
        ("\"..\"", "names a directory"),
        ("\"pw\\u0000\"", "contains a NUL character"),
        (
            "1",
            "expected a path to the file holding the ECDSA keystore's password such as \
             \"./operator.ecdsa.password\", found integer 1",
        ),
    ] {
        let body = format!("aggregator = \"127.0.0.1:8090\"\necdsa_keystore_password_file = {path}");
        let error = expect_avs_error(&body, key, 35, needle);
        assert_eq!(error.column(), Some(32), "points at the value: {error}");
    }
    // A typo is an unknown key, reported before any value.
    expect_avs_error(
        "aggregator = \"x\"\necdsa_password_file = \"pw\"",
        "spec.avs.ecdsa_password_file",
        35,
        "unknown key `ecdsa_password_file` in [spec.avs]",
    );
}

#[test]
fn avs_without_storage() {
    let without_storage = edited("storage = \"100Gi\"\n", "");
    let source = without_storage
        .replace("[spec.security]", "[spec.avs]\naggregator = \"127.0.0.1:8090\"\n\n[spec.security]");
    let error = error_of(&source);
    assert_eq!(error.key(), "spec.avs", "{error}");
    assert_eq!((error.line(), error.column()), (Some(32), Some(7)), "points at `avs` in the header: {error}");
    assert!(
        error.message().contains(
            "an AVS node needs a data disk (its operator keystore and signing history live there); add \
             storage = \"...\" to [spec.resources]"
        ),
        "{error}"
    );
    // The table's own errors come first.
    let source =
        without_storage.replace("[spec.security]", "[spec.avs]\naggregator = \"x\"\n\n[spec.security]");
    assert_eq!(error_of(&source).key(), "spec.avs.aggregator");
}

#[test]
fn the_aggregator_is_not_the_nodes_own_published_port() {
    // The sample publishes HTTP (80) and https (443) on 127.0.0.1.
    let error = expect_avs_error(
        "aggregator = \"127.0.0.1:443\"",
        "spec.avs.aggregator",
        34,
        "127.0.0.1:443 is where this node's own inbound port `https` is published, not an aggregator",
    );
    assert_eq!(error.column(), Some(14));
    let published = edited("https = 443\n", "https = 443\n\n[spec.networking.publish]\nHTTP = 8080\n");
    let with_avs = |aggregator: &str, publish_address: &str| {
        let source = published
            .replace(
                "network_type = \"private\"",
                &format!("network_type = \"private\"\npublish_address = {publish_address:?}"),
            )
            .replace(
                "[spec.security]",
                &format!("[spec.avs]\naggregator = {aggregator:?}\n\n[spec.security]"),
            );
        hac::parse_str(&one_instance(&source), Path::new("hac.toml"), &LIMITS)
    };
    let own = |result: Result<hac::Plan, SpecError>| {
        result.is_err_and(|e| e.key() == "spec.avs.aggregator" && e.message().contains("own inbound port"))
    };
    assert!(own(with_avs("127.0.0.1:8080", "127.0.0.1")), "published HTTP = 8080");
    assert!(own(with_avs("192.168.1.5:8080", "0.0.0.0")), "0.0.0.0 listens on every IPv4 address");
    assert!(own(with_avs("[::1]:443", "::")), ":: listens on every address");
    assert!(own(with_avs("127.0.0.1:443", "::")));
    assert!(with_avs("127.0.0.1:80", "127.0.0.1").is_ok(), "HTTP is published on 8080, not 80");
    assert!(with_avs("[::1]:8080", "0.0.0.0").is_ok(), "0.0.0.0 does not listen on IPv6");
    assert!(with_avs("127.0.0.1:8080", "192.168.1.5").is_ok(), "another address");
    assert!(with_avs("127.0.0.1:8090", "127.0.0.1").is_ok());
}

/// The sample with `body` added to `[spec.failover]` after its strategy
/// (line 47): `body` starts on line 48.
#[track_caller]
fn expect_failover_error(body: &str, key: &str, line: usize, needle: &str) -> SpecError {
    let strategy = "strategy = \"auto-recovery\"";
    expect_error(strategy, &format!("{strategy}\n{body}"), key, line, needle)
}

#[test]
fn bad_failover_durations() {
    let key = "spec.failover.restart_window";
    let bad = |value: &str, needle: &str| {
        expect_failover_error(&format!("restart_window = {value}"), key, 48, needle);
    };
    bad("60", "expected a duration such as \"10ms\", \"5s\", \"2m\" or \"1h\", found integer 60");
    bad("\"60\"", "\"60\" has no unit; expected a duration such as");
    bad("\"1.5m\"", "\"1.5m\" is not a whole number; write it with a smaller unit (e.g. \"1500ms\"");
    bad("\"60 s\"", "has a space before the unit; write it without one, e.g. \"60s\"");
    bad("\"60sec\"", "unknown unit \"sec\" in \"60sec\"; accepted units: ms, s, m, h");
    bad("\"60S\"", "unknown unit \"S\"");
    bad("\"-1s\"", "\"-1s\" must be greater than zero");
    bad("\"soon\"", "expected a duration such as");
    bad("\"99999999999999999999h\"", "is too large");
    bad("\"999999999999999h\"", "is too large");
    let error = expect_failover_error(
        "restart_window = \"500ms\"",
        key,
        48,
        "\"500ms\" is out of range; expected a duration from 1s to 24h",
    );
    assert_eq!(error.column(), Some(18), "points at the value");
    bad("\"25h\"", "\"25h\" is out of range; expected a duration from 1s to 24h");
    expect_failover_error(
        "backoff_initial = \"2h\"",
        "spec.failover.backoff_initial",
        48,
        "\"2h\" is out of range; expected a duration from 0ms to 1h",
    );
    expect_failover_error(
        "health_interval = \"5ms\"",
        "spec.failover.health_interval",
        48,
        "expected a duration from 10ms to 1h",
    );
    expect_failover_error(
        "health_timeout = \"2d\"",
        "spec.failover.health_timeout",
        48,
        "unknown unit \"d\"",
    );
}

#[test]
fn bad_max_restarts() {
    let key = "spec.failover.max_restarts";
    for (value, needle) in [
        ("0", "0 is out of range; expected a whole number from 1 to 1000"),
        ("1001", "1001 is out of range"),
        ("-3", "-3 is out of range"),
        ("99999999999999999999", "out of range"),
        ("\"5\"", "expected a whole number from 1 to 1000, found string \"5\""),
        ("2.5", "found float 2.5"),
    ] {
        expect_failover_error(&format!("max_restarts = {value}"), key, 48, needle);
    }
}

#[test]
fn backoff_and_health_limits_are_ordered() {
    let error = expect_failover_error(
        "backoff_initial = \"1s\"\nbackoff_max = \"100ms\"",
        "spec.failover.backoff_max",
        49,
        "100ms is less than backoff_initial (1s)",
    );
    assert_eq!(error.column(), Some(15));
    expect_failover_error(
        "backoff_initial = \"10s\"",
        "spec.failover.backoff_initial",
        48,
        "10s is more than backoff_max (5s, its default); lower it or set backoff_max",
    );
    expect_failover_error(
        "health_interval = \"2s\"\nhealth_timeout = \"1s\"",
        "spec.failover.health_timeout",
        49,
        "1s is less than health_interval (2s)",
    );
    expect_failover_error(
        "health_interval = \"20s\"",
        "spec.failover.health_interval",
        48,
        "20s is more than health_timeout (10s, its default)",
    );
}

#[test]
fn failover_keys_need_a_restarting_strategy() {
    let error = expect_error(
        "strategy = \"auto-recovery\"",
        "strategy = \"none\"\nmax_restarts = 3",
        "spec.failover.max_restarts",
        48,
        "`max_restarts` has no effect with strategy = \"none\"; set strategy = \"auto-recovery\" or \
         \"restart-always\", or remove it",
    );
    assert_eq!(error.column(), Some(1), "points at the key");
    expect_error(
        "strategy = \"auto-recovery\"",
        "health_timeout = \"30s\"",
        "spec.failover.health_timeout",
        47,
        "has no effect with strategy = \"none\"",
    );
}

#[test]
fn health_keys_need_an_http_port() {
    let source = edited("HTTP = 80\n", "")
        .replace("strategy = \"auto-recovery\"", "strategy = \"auto-recovery\"\nhealth_interval = \"2s\"");
    // The sidecar also needs the port: turn it off to reach the failover table.
    let source = source.replace("sidecar = true", "sidecar = false");
    let error = error_of(&source);
    assert_eq!(error.key(), "spec.failover.health_interval", "{error}");
    assert!(
        error.message().contains(
            "`health_interval` has no effect: health checks call GET /eigen/node/health on the inbound port \
             named HTTP, and there is none"
        ),
        "{error}"
    );
    // Restarts alone work without it.
    let source = edited("HTTP = 80\n", "").replace("sidecar = true", "sidecar = false");
    let plan = hac::parse_str(&source, Path::new("hac.toml"), &LIMITS).unwrap();
    assert!(plan.failover.restarts());
}

#[test]
fn bad_monitoring_and_logging() {
    expect_error(
        "monitoring = \"Prometheus/Grafana\"",
        "monitoring = \"Datadog\"",
        "spec.observability.monitoring",
        39,
        "\"Datadog\" is not supported by this launcher; expected a value naming Prometheus, such as \
         \"Prometheus\" or \"Prometheus/Grafana\"",
    );
    expect_error(
        "monitoring = \"Prometheus/Grafana\"",
        "monitoring = \"\"",
        "spec.observability.monitoring",
        39,
        "\"\" is not supported",
    );
    expect_error(
        "logging = \"Loki/Fluentd/ELK\"",
        "logging = \"Splunk\"",
        "spec.observability.logging",
        40,
        "unknown logging system \"Splunk\"; expected a value naming Loki, Fluentd or ELK (JSON lines)",
    );
    expect_error(
        "logging = \"Loki/Fluentd/ELK\"",
        "logging = true",
        "spec.observability.logging",
        40,
        "expected a string, found boolean true",
    );
}

/// The sample with `line` added to `[spec.observability]` (line 41).
#[track_caller]
fn expect_observability_error(line: &str, key: &str, needle: &str) -> SpecError {
    let logging = "logging = \"Loki/Fluentd/ELK\"";
    expect_error(logging, &format!("{logging}\n{line}"), key, 41, needle)
}

#[test]
fn bad_metrics_addresses() {
    let key = "spec.observability.metrics_address";
    for (value, needle) in [
        ("\"localhost:9101\"", "\"localhost:9101\" names a host; write its IP address"),
        ("\"127.0.0.1\"", "\"127.0.0.1\" has no port; add \":PORT\""),
        ("\"::1:9101\"", "\"::1:9101\" has no port; add \":PORT\", and an IPv6 address goes in brackets"),
        ("\"http://127.0.0.1:9101\"", "has a scheme (http://)"),
        ("\"127.0.0.1:70000\"", "has a bad port \"70000\""),
        ("\"224.0.0.1:9101\"", "224.0.0.1 is a multicast or broadcast address, which cannot be listened on"),
        ("9101", "expected an IP address and port to listen on, such as \"127.0.0.1:9101\""),
        ("\"127.0.0.1:80\"", "127.0.0.1:80 is where inbound port `HTTP` is published; expected another"),
        ("\"0.0.0.0:443\"", "0.0.0.0:443 is where inbound port `https` is published"),
    ] {
        expect_observability_error(&format!("metrics_address = {value}"), key, needle);
    }
    // Port 0 and the wildcard addresses are fine.
    for good in ["127.0.0.1:0", "0.0.0.0:9101", "[::1]:9200", "[::]:0"] {
        let source = edited("logging = \"Loki/Fluentd/ELK\"", &format!("metrics_address = \"{good}\""));
        let plan = hac::parse_str(&source, Path::new("hac.toml"), &LIMITS).unwrap();
        assert_eq!(plan.observability.metrics_address, Some(good.parse().unwrap()));
    }
}

#[test]
fn metrics_keys_need_prometheus() {
    let without = edited("monitoring = \"Prometheus/Grafana\"\n", "");
    let error = error_of(&without);
    assert_eq!(error.key(), "spec.observability.sidecar", "{error}");
    assert_eq!(error.line(), Some(38));
    assert!(error.message().contains("which needs Prometheus monitoring; add monitoring = \"Prometheus\""));
    let source = without.replace("sidecar = true", "metrics_address = \"127.0.0.1:9200\"");
    let error = error_of(&source);
    assert_eq!(error.key(), "spec.observability.metrics_address", "{error}");
    assert!(error.message().contains("`metrics_address` has no effect without Prometheus monitoring"));
    let source = edited("HTTP = 80\n", "");
    let error = error_of(&source);
    assert_eq!(error.key(), "spec.observability.sidecar", "{error}");
    assert!(error.message().contains("on the inbound port named HTTP, and there is none"), "{error}");
}

#[test]
fn bad_log_files() {
    let key = "spec.observability.log_file";
    expect_observability_error(
        "log_file = \"\"",
        key,
        "the path is empty; expected a path to the file the launcher appends its output to",
    );
    expect_observability_error("log_file = \"logs/\"", key, "\"logs/\" names a directory");
    expect_observability_error("log_file = 1", key, "found integer 1");
    expect_observability_error(
        "logfile = \"x\"",
        "spec.observability.logfile",
        "expected one of: sidecar, monitoring, logging, metrics_address, log_file",
    );
}

#[test]
fn public_is_refused_with_what_it_would_need() {
    let key = "spec.networking.network_type";
    for text in ["public", "Public", "PUBLIC"] {
        let error = expect_error(
            "network_type = \"private\"",
            &format!("network_type = {text:?}"),
            key,
            24,
            "\"public\" would route the guest to addresses the spec does not name (through the host's \
             NAT), which needs a route and address translation out of the spacecore's namespace; this \
             launcher never routes a guest: it relays only the endpoints the spec names. Write \
             \"private\" (the default) and name each endpoint in [spec.avs] (aggregator, eth_rpc, eth_ws)",
        );
        assert_eq!(error.column(), Some(16), "points at the value");
    }
}

#[test]
fn an_isolated_spacecore_cannot_name_endpoints() {
    let source = edited("network_type = \"private\"", "network_type = \"isolated\"").replace(
        "[spec.security]",
        "[spec.avs]\naggregator = \"127.0.0.1:8090\"\neth_rpc = \"127.0.0.1:8545\"\n\n[spec.security]",
    );
    let error = error_of(&source);
    assert_eq!(error.key(), "spec.networking.network_type", "{error}");
    assert_eq!((error.line(), error.column()), (Some(24), Some(16)), "{error}");
    assert!(
        error.message().contains(
            "\"isolated\" gives the guest no way out at all, but [spec.avs] names endpoints it must reach \
             (spec.avs.aggregator 127.0.0.1:8090 on line 34); write \"private\""
        ),
        "{error}"
    );
    // Without [spec.avs], isolated is fine; and the table's own errors come first.
    let isolated = edited("network_type = \"private\"", "network_type = \"isolated\"");
    assert!(hac::parse_str(&isolated, Path::new("hac.toml"), &LIMITS).is_ok());
    let bad_avs = isolated.replace("[spec.security]", "[spec.avs]\naggregator = \"x\"\n\n[spec.security]");
    assert_eq!(error_of(&bad_avs).key(), "spec.avs.aggregator");
}

#[test]
fn bad_ethereum_endpoints() {
    for (key, example) in [("eth_rpc", "8545"), ("eth_ws", "8546")] {
        let bad = |text: &str, needle: &str| {
            let body = format!("aggregator = \"127.0.0.1:8090\"\n{key} = {text}");
            expect_avs_error(&body, &format!("spec.avs.{key}"), 35, needle)
        };
        let expected =
            format!("expected an IP address and port such as \"127.0.0.1:{example}\" or \"[::1]:{example}\"");
        let error = bad(
            "\"localhost:8545\"",
            "\"localhost:8545\" names a host; write its IP address (host names are not resolved: the guest has no DNS",
        );
        assert!(error.message().ends_with(&expected), "{error}");
        bad("\"node.example.com:8545\"", "names a host");
        bad("\"http://127.0.0.1:8545\"", "has a scheme (http://); write the address and port only");
        bad("\"ws://127.0.0.1:8546\"", "has a scheme (ws://)");
        bad("\"127.0.0.1:8545/\"", "has a path");
        bad("\"127.0.0.1\"", "has no port");
        bad("\"127.0.0.1:0\"", "port 0 cannot be connected to");
        bad("\"[::1]:0\"", "port 0 cannot be connected to");
        bad("\"127.0.0.1:70000\"", "has a bad port \"70000\"");
        bad("\"0.0.0.0:8545\"", "0.0.0.0 is the unspecified address, not an address of an Ethereum node");
        bad("\"239.1.1.1:8545\"", "multicast or broadcast");
        bad("\"\"", "the address is empty");
        bad("8545", &format!("{expected}, found integer 8545"));
        bad(
            "\"127.0.0.1:443\"",
            "127.0.0.1:443 is where this node's own inbound port `https` is published, not an Ethereum node",
        );
    }
}

#[test]
fn endpoints_are_named_once_and_each_has_a_port_of_its_own() {
    // The same address twice: reported at the later key, naming the first and its line.
    let error = expect_avs_error(
        "aggregator = \"127.0.0.1:8090\"\neth_rpc = \"127.0.0.1:8545\"\neth_ws = \"127.0.0.1:8545\"",
        "spec.avs.eth_ws",
        36,
        "127.0.0.1:8545 is already named by `eth_rpc` on line 35; name each endpoint once (a node serving \
         JSON-RPC over HTTP and websockets on one port is named once, as eth_rpc)",
    );
    assert_eq!(error.column(), Some(10), "points at the value");
    // Later in the file, whatever the key: here eth_rpc comes after eth_ws.
    expect_avs_error(
        "eth_ws = \"[::1]:8546\"\naggregator = \"127.0.0.1:8090\"\neth_rpc = \"[::1]:8546\"",
        "spec.avs.eth_rpc",
        36,
        "[::1]:8546 is already named by `eth_ws` on line 34",
    );
    // The same port on two hosts: the guest would reach both at host_address:PORT.
    expect_avs_error(
        "aggregator = \"127.0.0.1:8545\"\neth_rpc = \"192.168.1.9:8545\"",
        "spec.avs.eth_rpc",
        35,
        "port 8545 is already used by `aggregator` (127.0.0.1:8545) on line 34; the guest reaches each \
         endpoint at spec.networking.host_address on the endpoint's own port, so no two endpoints of \
         [spec.avs] may share a port",
    );
}

#[test]
fn the_metrics_address_is_no_endpoints_address() {
    let with = |metrics: &str| {
        one_instance(
            &edited(
                "monitoring = \"Prometheus/Grafana\"",
                &format!("monitoring = \"Prometheus/Grafana\"\nmetrics_address = {metrics:?}"),
            )
            .replace(
                "[spec.security]",
                "[spec.avs]\naggregator = \"127.0.0.1:8090\"\neth_rpc = \"127.0.0.1:8545\"\n\n[spec.security]",
            ),
        )
    };
    let error = error_of(&with("127.0.0.1:8545"));
    assert_eq!(error.key(), "spec.observability.metrics_address", "{error}");
    assert!(
        error.message().contains("127.0.0.1:8545 is an Ethereum endpoint's address (spec.avs.eth_rpc)"),
        "{error}"
    );
    let error = error_of(&with("0.0.0.0:8090"));
    assert!(
        error.message().contains("0.0.0.0:8090 is the aggregator's address (spec.avs.aggregator)"),
        "{error}"
    );
    assert!(hac::parse_str(&with("127.0.0.1:9101"), Path::new("hac.toml"), &LIMITS).is_ok());
}

#[test]
fn task_manager_and_confirmations() {
    let chain = "aggregator = \"127.0.0.1:8090\"\neth_rpc = \"127.0.0.1:8545\"";
    let address = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let source = |extra: &str| {
        one_instance(SAMPLE)
            .replace("[spec.security]", &format!("[spec.avs]\n{chain}\n{extra}\n\n[spec.security]"))
    };
    let plan = hac::parse_str(
        &source(&format!("task_manager = \"{address}\"\nconfirmations = 0")),
        Path::new("hac.toml"),
        &LIMITS,
    )
    .unwrap();
    let avs = plan.avs.unwrap();
    assert_eq!(avs.task_manager.map(|a| (a[0], a[19])), Some((0x5f, 0xa3)));
    assert_eq!(avs.confirmations, Some(0));
    let plan =
        hac::parse_str(&source(&format!("task_manager = \"{address}\"")), Path::new("hac.toml"), &LIMITS)
            .unwrap();
    assert_eq!(plan.avs.unwrap().confirmations, None, "the guest's default");
    for (extra, key, needle) in [
        (
            "task_manager = \"0x5fbdb2315678afecb367f032d93f642f64180aa\"",
            "spec.avs.task_manager",
            "is not an address",
        ),
        (
            "task_manager = \"5fbdb2315678afecb367f032d93f642f64180aa3\"",
            "spec.avs.task_manager",
            "\"0x\" and 40 hex digits",
        ),
        (
            "task_manager = \"0x5fbdb2315678afecb367f032d93f642f64180ag3\"",
            "spec.avs.task_manager",
            "is not an address",
        ),
        ("task_manager = 5", "spec.avs.task_manager", "40 hex digits"),
        ("confirmations = 2", "spec.avs.confirmations", "set task_manager"),
    ] {
        let error = error_of(&source(extra));
        assert_eq!(error.key(), key, "{error}");
        assert!(error.message().contains(needle), "{needle:?} not in {error}");
    }
    for bad in ["-1", "10001", "\"2\"", "1.5"] {
        let error = error_of(&source(&format!("task_manager = \"{address}\"\nconfirmations = {bad}")));
        assert_eq!(error.key(), "spec.avs.confirmations", "{bad}: {error}");
    }
    // Without eth_rpc there is nothing to read tasks from.
    let no_rpc = one_instance(SAMPLE).replace(
        "[spec.security]",
        &format!(
            "[spec.avs]\naggregator = \"127.0.0.1:8090\"\ntask_manager = \"{address}\"\n\n[spec.security]"
        ),
    );
    let error = error_of(&no_rpc);
    assert_eq!(error.key(), "spec.avs.task_manager", "{error}");
    assert!(error.message().contains("task_manager needs eth_rpc"), "{error}");
}

#[test]
fn task_signer() {
    let address = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let source = |extra: &str| {
        one_instance(SAMPLE).replace(
            "[spec.security]",
            &format!("[spec.avs]\naggregator = \"127.0.0.1:8090\"\neth_rpc = \"127.0.0.1:8545\"\n{extra}\n\n[spec.security]"),
        )
    };
    let plan =
        hac::parse_str(&source(&format!("task_signer = \"{address}\"")), Path::new("hac.toml"), &LIMITS)
            .unwrap();
    assert_eq!(plan.avs.unwrap().task_signer.map(|a| (a[0], a[19])), Some((0x5f, 0xa3)));
    for (extra, needle) in [
        ("task_signer = \"0x5fbdb2315678afecb367f032d93f642f64180aa\"", "is not an address"),
        ("task_signer = 7", "40 hex digits"),
        (&format!("task_signer = \"{address}\"\ntask_manager = \"{address}\""), "remove one of the two"),
    ] {
        let error = error_of(&source(extra));
        assert_eq!(error.key(), "spec.avs.task_signer", "{error}");
        assert!(error.message().contains(needle), "{needle:?} not in {error}");
    }
}

#[test]
fn isolation_is_jailed_or_none_and_high_security_refuses_none() {
    let from = "isolation = \"enforced via SELinux/AppArmor/seccomp\"";
    let line = SAMPLE.lines().position(|l| l.starts_with("isolation")).unwrap() + 1;
    let key = "spec.security.isolation";
    let error = expect_error(
        from,
        "isolation = \"AppArmor\"",
        key,
        line,
        "is not a confinement this launcher applies",
    );
    assert!(error.message().contains("\"jailed\""), "{error}");
    expect_error(
        from,
        "isolation = \"chroot\"",
        key,
        line,
        "unknown value \"chroot\"; expected one of \"jailed\", \"none\"",
    );
    expect_error(from, "isolation = \"Jailed\"", key, line, "case-sensitive");
    // The sample asks for security = "high": confinement cannot be turned off.
    let error = expect_error(from, "isolation = \"none\"", key, line, "criteria.security = \"high\" forbids");
    assert!(error.message().contains("write \"jailed\""), "{error}");
    let standard =
        edited(from, "isolation = \"none\"").replace("security = \"high\"", "security = \"standard\"");
    let plan = hac::parse_str(&standard, Path::new("hac.toml"), &LIMITS).unwrap();
    assert_eq!(plan.security_isolation, Some(hac::Isolation::Unconfined));
    let jailed =
        hac::parse_str(&edited(from, "isolation = \"jailed\""), Path::new("hac.toml"), &LIMITS).unwrap();
    assert_eq!(jailed.security_isolation, Some(hac::Isolation::Jailed));
    assert!(
        jailed
            .not_enforced
            .iter()
            .all(|n| !n.key.contains("isolation") && !n.key.contains("criteria.security"))
    );
}

/// A signer (a node with `[spec.avs]`: it signs tasks with the operator's key) is never scaled:
/// two instances would hold one key with two signing histories.
#[test]
fn a_signer_is_never_scaled() {
    // [spec.avs] lands on line 33, the sample's scaling on line 44 + 3.
    let error =
        expect_avs_error("aggregator = \"127.0.0.1:8090\"", "spec.operations.scaling", 47, "but it signs");
    assert_eq!(error.column(), Some(11), "{error}");
    for needle in [
        "\"HorizontalAutoScaling\" would run this node as several instances",
        "[spec.avs] on line 33",
        "hold that one key",
        "signing history of its own",
        "two different answers to one task with one key",
        "a signer runs as exactly one instance",
        "write \"None\"",
    ] {
        assert!(error.message().contains(needle), "{needle:?} not in: {error}");
    }

    // The same node with one instance is valid, and is a signer.
    let avs = "[spec.avs]\naggregator = \"127.0.0.1:8090\"\n\n[spec.security]";
    let one = edited("[spec.security]", avs).replace("\"HorizontalAutoScaling\"", "\"None\"");
    let plan =
        hac::parse_str(&one, Path::new("hac.toml"), &LIMITS).expect("a signer with scaling = \"None\"");
    assert!(plan.signs());
    assert_eq!(plan.operations.scaling, hac::Scaling::None);
    let without_scaling = edited("[spec.security]", avs).replace("scaling = \"HorizontalAutoScaling\"\n", "");
    assert!(hac::parse_str(&without_scaling, Path::new("hac.toml"), &LIMITS).unwrap().signs());

    // Wherever [spec.avs] stands in the file: here after [spec.operations].
    let after = format!("{SAMPLE}\n[spec.avs]\naggregator = \"127.0.0.1:8090\"\n");
    let error = error_of(&after);
    assert_eq!((error.key(), error.line()), ("spec.operations.scaling", Some(44)), "{error}");
    assert!(error.message().contains("[spec.avs] on line 49"), "{error}");
    // Written as a dotted key or an inline table, scaling is refused the same way.
    let inline = edited(
        "[spec.operations]\nupdateStrategy = \"RollingUpdate\"\nscaling = \"HorizontalAutoScaling\"\n",
        "",
    ) + "\n[spec.avs]\naggregator = \"127.0.0.1:8090\"\n[spec.operations]\nscaling = \"HorizontalAutoScaling\"\n";
    assert_eq!(error_of(&inline).key(), "spec.operations.scaling");
}

/// A node without `[spec.avs]` signs nothing: it may ask for scaling, which the launcher
/// enforces (it is no longer reported as not enforced), with the replica keys' defaults.
#[test]
fn a_node_that_does_not_sign_may_ask_for_scaling() {
    let plan = hac::parse_str(SAMPLE, Path::new("hac.toml"), &LIMITS).expect("the sample is valid");
    assert!(!plan.signs());
    assert_eq!(plan.operations.scaling, hac::Scaling::HorizontalAutoScaling);
    assert!(!plan.not_enforced.iter().any(|n| n.key == "spec.operations.scaling"), "{:?}", plan.not_enforced);
    let autoscaling = plan.operations.autoscaling;
    assert_eq!((autoscaling.min_replicas, autoscaling.max_replicas), (1, 4));
    assert_eq!(autoscaling.target_connections, 8);
    assert_eq!((autoscaling.scale_up_after_ms, autoscaling.scale_down_after_ms), (2_000, 30_000));
}

/// The replica keys: read with HorizontalAutoScaling, refused without it, in range, and
/// `max_replicas` not below `min_replicas`.
#[test]
fn replica_keys() {
    let with = |keys: &str| edited(SCALED, &format!("{SCALED}\n{keys}"));
    let plan = hac::parse_str(
        &with("min_replicas = 2\nmax_replicas = 6\ntarget_connections = 3\nscale_up_after = \"500ms\"\nscale_down_after = \"4s\""),
        Path::new("hac.toml"),
        &LIMITS,
    )
    .expect("replica keys");
    let autoscaling = plan.operations.autoscaling;
    assert_eq!(
        (autoscaling.min_replicas, autoscaling.max_replicas, autoscaling.target_connections),
        (2, 6, 3)
    );
    assert_eq!((autoscaling.scale_up_after_ms, autoscaling.scale_down_after_ms), (500, 4_000));

    let error = |keys: &str| error_of(&with(keys));
    let e = error("max_replicas = 0");
    assert_eq!((e.key(), e.line()), ("spec.operations.max_replicas", Some(45)), "{e}");
    assert!(e.message().contains("0 is out of range; expected a whole number from 1 to 32"), "{e}");
    let e = error("min_replicas = 3\nmax_replicas = 2");
    assert_eq!(e.key(), "spec.operations.max_replicas", "{e}");
    assert!(e.message().contains("2 is less than min_replicas (3)"), "{e}");
    let e = error("min_replicas = 5");
    assert_eq!(e.key(), "spec.operations.min_replicas", "{e}");
    assert!(e.message().contains("5 is more than max_replicas (4, its default)"), "{e}");
    let e = error("target_connections = \"8\"");
    assert_eq!(e.key(), "spec.operations.target_connections", "{e}");
    let e = error("scale_down_after = \"10ms\"");
    assert_eq!(e.key(), "spec.operations.scale_down_after", "{e}");
    assert!(e.message().contains("out of range"), "{e}");

    let e = error_of(&one_instance(&with("max_replicas = 3")));
    assert_eq!(e.key(), "spec.operations.max_replicas", "{e}");
    assert!(e.message().contains("has no effect without scaling = \"HorizontalAutoScaling\""), "{e}");
}
