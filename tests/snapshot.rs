//! Snapshots with the real launcher and image (`hac-launch --save-snapshot DIR`, `--snapshot
//! DIR`): a spacecore saved at its snapshot point starts from there, reads its disk afresh
//! (boot count, signing history, operator key: nothing of them is in the snapshot), serves,
//! and restarts from the snapshot after a failure; a snapshot that does not fit the spec is
//! refused before anything boots.

use serde_json::Value;
use spacecore_abi::exit;
use spacecore_tests::cluster::{Cluster, NodeSetup, Tools, post_task, status};
use spacecore_tests::{Specs, events, kvm_available, output_lines, text};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `boot_count` of `GET /`.
fn boot_count(addr: SocketAddr) -> u64 {
    let (code, answer) = status(addr);
    assert_eq!(code, 200, "{answer}");
    answer["boot_count"].as_u64().unwrap_or_else(|| panic!("no boot count: {answer}"))
}

/// Whether `haystack` holds `needle` anywhere.
fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_node_starts_and_recovers_from_its_snapshot_with_its_disk_as_the_truth() {
    if !kvm_available("a_node_starts_and_recovers_from_its_snapshot_with_its_disk_as_the_truth") {
        return;
    }
    let setup = NodeSetup {
        memory: Some("128Mi".into()),
        tables: "[spec.failover]\nstrategy = \"auto-recovery\"\n".into(),
        args: vec!["--cmdline".into(), "spacecore.testhooks=on".into()],
    };
    let mut cluster = Cluster::with_setup(Tools::for_tests(), "snap", 1, &setup);
    let dir = cluster.dir().join("snapshot");

    // Saved: the guest stops at its snapshot point, before its disk and its key.
    let out = cluster.launcher(0, &["--save-snapshot", path(&dir)]).output().unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let lines = output_lines(&out);
    let saved: Vec<_> = events(&lines, "snapshot_saved").collect();
    assert_eq!(saved.len(), 1, "{log}");
    assert!(saved[0].u64_field("memory_kib").is_some_and(|kib| kib > 0), "{log}");
    for never in ["avs: operator", "spacecore 0.1.0", "avs: not signing"] {
        assert!(!lines.iter().any(|l| l.guest(never).is_some()), "{never}: {log}");
    }
    assert!(!lines.iter().any(|l| l.is_event("ready")), "{log}");
    let memory = std::fs::read(dir.join("memory")).unwrap();
    let operator = &cluster.nodes[0].operator;
    let password = std::fs::read_to_string(&operator.password_file).unwrap();
    assert!(!holds(&memory, password.trim().as_bytes()), "the keystore password is in the snapshot");
    let keystore = std::fs::read(&operator.keystore).unwrap();
    assert!(!holds(&memory, &keystore[keystore.len() / 2..][..32]), "the key file is in the snapshot");

    // Started from it: the same node, its boot counted on its disk, its key loaded.
    cluster.nodes[0].args.extend(["--snapshot".into(), dir.display().to_string()]);
    cluster.start(0);
    let addr = cluster.nodes[0].http.expect("published");
    let loaded = format!("avs: operator {} ready", cluster.nodes[0].operator.key.id_hex());
    let run = cluster.nodes[0].run.as_mut().unwrap();
    let seen = run.log();
    let every = format!("snapshot: every boot starts from {}", dir.display());
    assert!(seen.iter().any(|l| l.launcher(&every) == Some("")), "{seen:#?}");
    let started = |l: &spacecore_tests::LogLine| {
        l.guest("spacecore 0.1.0 (abi 1): 1 vCPUs, 128 MiB memory")
            .is_some_and(|rest| rest.contains("started from a snapshot in"))
    };
    assert_eq!(seen.iter().filter(|l| started(l)).count(), 1, "{seen:#?}");
    let boots = boot_count(addr);
    assert!(boots >= 2, "the provisioning boot counted before: {boots}");
    let task = spacecore_tests::cluster::pushed_task(3, 9).to_string().into_bytes();
    let (code, signed) = post_task(addr, &task);
    assert_eq!(code, 200, "{signed}");
    assert!(signed["signature"].is_string(), "{signed}");

    // A panic: the restart starts from the snapshot again, and reads the disk again.
    let mut hook = spacecore_tests::connect(addr);
    hook.write_all(b"POST /test/panic HTTP/1.1\r\nHost: spacecore\r\nContent-Length: 0\r\n\r\n").unwrap();
    assert!(run.wait_event("restart", LIMIT).is_some(), "{:#?}", run.seen);
    assert!(run.wait_event("recovered", LIMIT).is_some(), "{:#?}", run.seen);
    assert!(run.find_guest(&loaded, LIMIT).is_some(), "{:#?}", run.seen);
    assert_eq!(run.log().iter().filter(|l| started(l)).count(), 2, "{:#?}", run.seen);
    assert_eq!(boot_count(addr), boots + 1);
    // The signing history is the disk's: the task signed before the panic gets the same answer.
    let (code, again) = post_task(addr, &task);
    assert_eq!((code, &again), (200, &signed));
    let (code, output) = cluster.stop(0);
    assert_eq!(code, Some(0), "{output}");
}

/// `hac-launch ARGS SPEC` in `specs`' state directory: exit code and output (stdout and stderr).
fn launch(specs: &Specs, args: &[&str], spec: &Path) -> (Option<i32>, String) {
    let mut all: Vec<&str> = args.to_vec();
    all.push(path(spec));
    let out = specs.launch(&all);
    (out.status.code(), format!("{}{}", text(&out), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn a_snapshot_restarts_every_vcpu_and_is_refused_where_it_does_not_fit() {
    if !kvm_available("a_snapshot_restarts_every_vcpu_and_is_refused_where_it_does_not_fit") {
        return;
    }
    let specs = Specs::new();
    let spec = specs.minimal("snap-fit", 2, "32Mi");
    let dir = specs.dir().join("snapshot");
    let (code, log) = launch(&specs, &["--save-snapshot", path(&dir)], &spec);
    assert_eq!(code, Some(0), "{log}");

    // Both vCPUs run after the start: the second starts again from the entry point.
    let mut run = specs.start(&["--snapshot", path(&dir), path(&spec)]);
    let banner = "spacecore 0.1.0 (abi 1): 2 vCPUs, 32 MiB memory";
    let banner = run.find_guest(banner, LIMIT).unwrap_or_else(|| panic!("{:#?}", run.seen));
    assert!(banner.message.contains("started from a snapshot in"), "{banner:?}");
    assert!(run.find_guest("vCPU 1 running; idle", LIMIT).is_some(), "{:#?}", run.seen);
    run.stop(LIMIT);
    // Another spacecore of the same shape and image starts from it too: it gets the snapshot's
    // MAC address, alone in its namespace.
    let other = specs.minimal("snap-other", 2, "32Mi");
    let (code, log) = launch(&specs, &["--until-ready", "--snapshot", path(&dir)], &other);
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("started from a snapshot in"), "{log}");

    let refused = |spec: &Path, dir: &Path, expected: &str| {
        let (code, log) = launch(&specs, &["--until-ready", "--snapshot", path(dir)], spec);
        assert_eq!(code, Some(i32::from(exit::LAUNCHER_ERROR)), "{log}");
        assert!(log.contains(expected), "expected {expected:?}: {log}");
        assert!(!log.contains("\"ready\""), "{log}");
    };
    refused(
        &specs.minimal("snap-fit", 2, "64Mi"),
        &dir,
        "saved with 32 MiB of memory, the spec asks for 64 MiB",
    );
    refused(&specs.minimal("snap-fit", 1, "32Mi"), &dir, "saved with 2 vCPUs, the spec asks for 1");
    // Another image file (a copy of the same bytes included): the snapshot is of another image.
    let copy = specs.dir().join("copy.elf");
    std::fs::copy(spacecore_tests::image(), &copy).unwrap();
    let other = specs.spacecore("snap-fit", "cpu = 2\nmemory = \"32Mi\"", "", path(&copy));
    refused(&other, &dir, "saved from another image file");
    // A damaged snapshot: an extent over the launcher's page tables.
    let state_path = dir.join("snapshot.json");
    let mut state: Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    state["extents"][0]["addr"] = 0xa000.into();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&state_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    refused(&spec, &dir, "lies below GUEST_BASE");
    // None at all.
    refused(&spec, &specs.dir().join("none"), "cannot open it: No such file or directory");
}

#[test]
fn an_image_without_a_snapshot_point_saves_nothing() {
    if !kvm_available("an_image_without_a_snapshot_point_saves_nothing") {
        return;
    }
    // A guest that exits before its snapshot point (its self-test runs before it).
    let specs = Specs::new();
    let spec = specs.minimal("snap-none", 1, "16Mi");
    let dir = specs.dir().join("snapshot");
    let (code, log) =
        launch(&specs, &["--cmdline", "spacecore.selftest=panic", "--save-snapshot", path(&dir)], &spec);
    assert_eq!(code, Some(i32::from(exit::LAUNCHER_ERROR)), "{log}");
    assert!(log.contains("not saved: the guest never reached its snapshot point"), "{log}");
    let (code, log) = launch(&specs, &["--until-ready", "--snapshot", path(&dir)], &spec);
    assert_eq!(code, Some(i32::from(exit::LAUNCHER_ERROR)), "{log}");
    assert!(log.contains("is not a snapshot's state"), "{log}");
}
