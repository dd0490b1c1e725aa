//! The crate layers of docs/architecture.md, checked against every `Cargo.toml`: a crate may
//! depend (by path) only on crates of lower layers.

use std::collections::BTreeMap;

/// Each crate's directory, package name and layer, as docs/architecture.md's table has them.
const LAYERS: &[(&str, &str, u8)] = &[
    ("abi", "spacecore-abi", 0),
    ("store", "spacecore-store", 0),
    ("prom-text", "prom-text", 0),
    ("keystore", "eip2335", 0),
    ("hac", "hac", 0),
    ("image-store", "image-store", 0),
    ("avs-protocol", "avs-protocol", 0),
    ("test-support", "test-support", 0),
    ("sdk", "spacecore-avs", 1),
    ("avs/metered-api", "metered-api", 2),
    ("avs/stateless-echo", "stateless-echo", 2),
    ("avs/incredible-squaring", "incredible-squaring", 2),
    ("operator", "spacecore-operator", 1),
    ("host-launcher", "host-launcher", 2),
    ("kernel-app", "kernel-app", 2),
    ("aggregator", "aggregator", 2),
    ("cli", "spacecore-cli", 2),
    ("interop", "interop", 3),
    ("tests", "spacecore-tests", 4),
    ("fuzz/checks", "spacecore-fuzz", 4),
    ("fuzz/guest-http", "spacecore-guest-http", 3),
    ("xtask", "xtask", 5),
];

#[derive(serde::Deserialize)]
struct Manifest {
    package: Package,
    #[serde(default)]
    dependencies: BTreeMap<String, toml::Value>,
}

#[derive(serde::Deserialize)]
struct Package {
    name: String,
}

#[test]
fn crates_depend_only_on_lower_layers() {
    let root = crate::cmd::workspace_root();
    let layer: BTreeMap<&str, u8> = LAYERS.iter().map(|&(_, name, layer)| (name, layer)).collect();
    let mut wrong = Vec::new();
    for &(dir, name, own) in LAYERS {
        let path = root.join(dir).join("Cargo.toml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let manifest: Manifest = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(manifest.package.name, name, "{}", path.display());
        for (dep, spec) in &manifest.dependencies {
            if spec.get("path").is_none() {
                continue;
            }
            // A renamed dependency names its package.
            let package = spec.get("package").and_then(toml::Value::as_str).unwrap_or(dep);
            match layer.get(package) {
                Some(&theirs) if theirs < own => {}
                Some(&theirs) => wrong.push(format!("{name} (layer {own}) -> {package} (layer {theirs})")),
                None => {
                    wrong.push(format!("{name} -> {package}, a crate docs/architecture.md does not list"))
                }
            }
        }
    }
    // Every workspace member is in the table.
    #[derive(serde::Deserialize)]
    struct Root {
        workspace: Workspace,
    }
    #[derive(serde::Deserialize)]
    struct Workspace {
        members: Vec<String>,
    }
    let text = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members = toml::from_str::<Root>(&text).unwrap().workspace.members;
    for member in members {
        if !LAYERS.iter().any(|&(dir, ..)| dir == member) {
            wrong.push(format!("workspace member {member} is not in docs/architecture.md's table"));
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the layers of docs/architecture.md:\n{}",
        wrong.join("\n")
    );
}
