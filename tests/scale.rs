//! Horizontal scaling (`spec.operations.scaling = "HorizontalAutoScaling"`, docs/hac-launch.md,
//! Scaling): replicas of a stateless spacecore behind one published port.
//!
//! The stateless AVS is `avs/stateless-echo`, built by `cargo xtask build-image --avs` into an
//! image store of this test run (its manifest says `"stateless": true`). The launcher's JSON log
//! carries the parent's events (`replica_started`, `replica_ready`, `scale`, `replica_replaced`,
//! `replicas_stopped`) and every replica's own lines, under the spacecore `NAME-rN`.

use spacecore_tests::{
    LogLine, Running, Specs, build_image_into, connect, http, kvm_available, log_lines, metrics_address,
    sample, scrape_metrics, workspace,
};
use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The longest any wait here lasts: a limit against a hung test, not a figure checked.
const WAIT: Duration = Duration::from_secs(120);

/// The stateless-echo image store, built once per test binary: (store, registered ELF).
fn echo_store() -> &'static Path {
    static STORE: OnceLock<tempfile::TempDir> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let store = tempfile::Builder::new().prefix("spacecore-scale-store-").tempdir().unwrap();
            build_image_into(store.path(), Some(&workspace().join("avs/stateless-echo")), "stateless-echo");
            let manifest = store.path().join("stateless-echo/latest/manifest.json");
            let text = std::fs::read_to_string(&manifest).expect("the registered manifest");
            let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(manifest["stateless"], true, "build-image records the crate's declaration: {text}");
            store
        })
        .path()
}

/// A scaled spec for `name`: `operations` are the lines of `[spec.operations]` after the
/// scaling key; `resources` those of `[spec.resources]`.
fn scaled_spec(specs: &Specs, name: &str, resources: &str, operations: &str, image: &str) -> PathBuf {
    let tables = format!(
        "[spec.networking.inbound_ports]\nHTTP = 80\n[spec.networking.publish]\nHTTP = 0\n\
         [spec.observability]\nmonitoring = \"Prometheus\"\nmetrics_address = \"127.0.0.1:0\"\n\
         [spec.operations]\nscaling = \"HorizontalAutoScaling\"\n{operations}\n\
         [spec.failover]\nstrategy = \"auto-recovery\"\n"
    );
    specs.spacecore(name, resources, &tables, image)
}

fn start(specs: &Specs, spec: &Path, store: &Path) -> Running {
    specs.start(&["--image-store", store.to_str().unwrap(), spec.to_str().unwrap()])
}

/// The parent's published port (its own `published HTTP:` line, not a replica's).
fn published(running: &mut Running, name: &str) -> SocketAddr {
    running
        .find_where(WAIT, |l| l.spacecore == name && l.published("HTTP").is_some())
        .and_then(|l| l.published("HTTP"))
        .expect("the parent's published port")
}

/// Waits until `name` has logged `count` events `event` in all (seen or to come).
fn wait_count(running: &mut Running, name: &str, event: &str, count: usize) {
    loop {
        let seen = running.log().iter().filter(|l| l.spacecore == name && l.is_event(event)).count();
        if seen >= count {
            return;
        }
        running
            .next_where(WAIT, |l| l.spacecore == name && l.is_event(event))
            .unwrap_or_else(|| panic!("{count} {event} events of {name}: {:#?}", running.seen));
    }
}

/// `GET /whoami` on a new connection: the answering replica's instance.
fn whoami(addr: SocketAddr) -> String {
    let (status, body) = http(&mut connect(addr), "GET", "/whoami", b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    answer["instance"].as_str().expect("instance").to_owned()
}

fn events<'a>(log: &'a [LogLine], name: &'a str, event: &'a str) -> impl Iterator<Item = &'a LogLine> + 'a {
    log.iter().filter(move |l| l.spacecore == name && l.is_event(event))
}

/// The pids of `name`'s replicas, from its `replica_started` events.
fn replica_pids(log: &[LogLine], name: &str) -> Vec<i32> {
    events(log, name, "replica_started").filter_map(|l| l.u64_field("pid")).map(|p| p as i32).collect()
}

fn alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Replicas start at `min_replicas` and serve through the one published port: new connections
/// land on more than one replica; `POST /echo-attest` answers through it; a replica killed is
/// replaced; SIGTERM stops every replica and the parent exits 0.
#[test]
fn replicas_start_at_the_minimum_and_share_one_port() {
    if !kvm_available("replicas_start_at_the_minimum_and_share_one_port") {
        return;
    }
    let store = echo_store();
    let specs = Specs::new();
    let spec = scaled_spec(
        &specs,
        "echo-two",
        "cpu = 1\nmemory = \"64Mi\"",
        "min_replicas = 2\nmax_replicas = 3\ntarget_connections = 50",
        "stateless-echo:latest",
    );
    let mut running = start(&specs, &spec, store);
    let addr = published(&mut running, "echo-two");
    wait_count(&mut running, "echo-two", "replica_ready", 2);
    let log = running.log();
    assert_eq!(events(&log, "echo-two", "replica_started").count(), 2, "{:#?}", running.seen);
    let scaling = events(&log, "echo-two", "scaling").next().expect("the scaling event");
    assert_eq!((scaling.u64_field("min_replicas"), scaling.u64_field("max_replicas")), (Some(2), Some(3)));

    // Sequential connections, none open at once: least connections ties go round robin.
    let instances: BTreeSet<String> = (0..10).map(|_| whoami(addr)).collect();
    assert_eq!(instances.len(), 2, "two replicas answered through one port: {instances:?}");
    let (status, body) = http(&mut connect(addr), "POST", "/echo-attest", b"scaled");
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["echo"], "scaled");
    let digest = spacecore_avs::attestation_digest("stateless-echo", b"scaled");
    assert_eq!(answer["digest"], spacecore_avs::to_hex(&digest));
    assert!(instances.contains(answer["instance"].as_str().unwrap()));

    let metrics = metrics_address(&running.seen).expect("the parent's metrics address");
    let text = scrape_metrics(metrics);
    let (valid, said) = spacecore_tests::promtool_check(text.as_bytes());
    assert!(valid, "promtool check metrics: {said}\n{text}");
    assert_eq!(sample(&text, "spacecore_launcher_replicas"), Some(2.0), "{text}");
    assert_eq!(sample(&text, "spacecore_launcher_replicas_ready"), Some(2.0), "{text}");
    assert_eq!(sample(&text, "spacecore_launcher_scale_events_total{direction=\"up\"}"), Some(0.0), "{text}");

    // A replica that dies is replaced.
    let pids = replica_pids(&log, "echo-two");
    // SAFETY: kill(2) on a replica launcher started for this test.
    assert_eq!(unsafe { libc::kill(pids[0], libc::SIGKILL) }, 0);
    let replaced = running
        .next_where(WAIT, |l| l.spacecore == "echo-two" && l.is_event("replica_replaced"))
        .expect("the killed replica is replaced");
    wait_count(&mut running, "echo-two", "replica_ready", 3);
    let text = scrape_metrics(metrics);
    assert_eq!(sample(&text, "spacecore_launcher_replica_replacements_total"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "spacecore_launcher_replicas"), Some(2.0), "{text}");
    let after: BTreeSet<String> = (0..10).map(|_| whoami(addr)).collect();
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after.intersection(&instances).count(), 1, "one replica is new: {after:?} {instances:?}");
    eprintln!("replaced: {}", replaced.message);

    // SIGTERM: every replica stops, then the parent.
    running.signal(libc::SIGTERM);
    let (status, out) = running.finish(WAIT);
    assert_eq!(status, Some(0), "{out}");
    let log = log_lines(&out);
    assert!(events(&log, "echo-two", "replicas_stopped").next().is_some(), "{out}");
    for pid in replica_pids(&log, "echo-two") {
        assert!(!alive(pid), "replica launcher {pid} still runs");
    }
}

/// A bounded load (connections held open, then released) adds replicas up to `max_replicas`,
/// never more, and its end takes them back to `min_replicas`.
#[test]
fn load_scales_up_to_the_maximum_and_back_down_to_the_minimum() {
    if !kvm_available("load_scales_up_to_the_maximum_and_back_down_to_the_minimum") {
        return;
    }
    let store = echo_store();
    let specs = Specs::new();
    let spec = scaled_spec(
        &specs,
        "echo-load",
        "cpu = 1\nmemory = \"64Mi\"",
        "min_replicas = 1\nmax_replicas = 3\ntarget_connections = 2\nscale_up_after = \"1s\"\nscale_down_after = \"2s\"",
        "stateless-echo:latest",
    );
    let mut running = start(&specs, &spec, store);
    let addr = published(&mut running, "echo-load");
    wait_count(&mut running, "echo-load", "replica_ready", 1);
    let metrics = metrics_address(&running.seen).expect("the parent's metrics address");

    // 12 connections held open, each having been answered once: 12 per replica at first,
    // above the target of 2 until the maximum.
    let loaded = Instant::now();
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..12 {
        let mut conn = connect(addr);
        let (status, _) = http(&mut conn, "GET", "/whoami", b"");
        assert_eq!(status, 200);
        held.push(conn);
    }
    let mut ups = Vec::new();
    while ups.len() < 2 {
        let event = running
            .next_where(WAIT, |l| l.spacecore == "echo-load" && l.is_event("scale"))
            .unwrap_or_else(|| panic!("scaled up to 3: {:#?}", running.seen));
        assert_eq!(event.str_field("direction"), Some("up"), "{event:?}");
        ups.push(event);
    }
    let up_after = loaded.elapsed();
    assert_eq!(ups.iter().map(|e| e.u64_field("to")).collect::<Vec<_>>(), [Some(2), Some(3)]);
    wait_count(&mut running, "echo-load", "replica_ready", 3);
    // Held at the maximum: no further replica while the load stays.
    std::thread::sleep(Duration::from_secs(3));
    let text = scrape_metrics(metrics);
    assert_eq!(sample(&text, "spacecore_launcher_replicas"), Some(3.0), "{text}");
    assert_eq!(sample(&text, "spacecore_launcher_scale_events_total{direction=\"up\"}"), Some(2.0), "{text}");
    assert_eq!(sample(&text, "spacecore_launcher_published_open_connections{port=\"HTTP\"}"), Some(12.0));
    // New connections go to the replicas with the fewest open: the new ones.
    let fresh: BTreeSet<String> = (0..4).map(|_| whoami(addr)).collect();
    assert!(!fresh.is_empty());

    // Released: down to the minimum, one replica at a time.
    drop(held);
    let released = Instant::now();
    let mut downs = Vec::new();
    while downs.len() < 2 {
        let event = running
            .next_where(WAIT, |l| l.spacecore == "echo-load" && l.is_event("scale"))
            .unwrap_or_else(|| panic!("scaled down to 1: {:#?}", running.seen));
        assert_eq!(event.str_field("direction"), Some("down"), "{event:?}");
        downs.push(event);
    }
    let down_after = released.elapsed();
    assert_eq!(downs.iter().map(|e| e.u64_field("to")).collect::<Vec<_>>(), [Some(2), Some(1)]);
    wait_count(&mut running, "echo-load", "replica_stopped", 2);
    std::thread::sleep(Duration::from_secs(3));
    let text = scrape_metrics(metrics);
    assert_eq!(sample(&text, "spacecore_launcher_replicas"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "spacecore_launcher_scale_events_total{direction=\"down\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(whoami(addr).len(), 16, "the last replica serves");
    eprintln!(
        "scale figures: 1 -> 3 replicas {} ms after 12 connections were held (scale_up_after 1s); \
         3 -> 1 {} ms after they were released (scale_down_after 2s)",
        up_after.as_millis(),
        down_after.as_millis()
    );
    let log = running.log();
    assert!(
        events(&log, "echo-load", "scale").all(|e| e.u64_field("to").is_some_and(|to| (1..=3).contains(&to)))
    );
    // The parent killed outright: its replicas stop all the same (their standard input, a pipe
    // from the parent, ends).
    let pids = replica_pids(&log, "echo-load");
    running.signal(libc::SIGKILL);
    let (status, _) = running.finish(WAIT);
    assert_eq!(status, None, "killed");
    let deadline = Instant::now() + WAIT;
    while pids.iter().any(|&pid| alive(pid)) {
        assert!(Instant::now() < deadline, "replica launchers {pids:?} outlive their killed parent");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The refusals happen before anything is set up: exit status 2, the documented message, no
/// replica, no guest, no disk.
fn expect_refused(specs: &Specs, spec: &Path, store: &Path, needle: &str) {
    let out = specs.launch(&["--image-store", store.to_str().unwrap(), spec.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    assert!(stderr.contains("nothing was started"), "{stderr}");
    let log = spacecore_tests::output_lines(&out);
    assert!(log.iter().all(|l| l.is_event("launcher_error")), "only the error: {log:#?}");
    // `--check` refuses it the same way.
    let check = specs.launch(&["--check", "--image-store", store.to_str().unwrap(), spec.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(2), "{}", String::from_utf8_lossy(&check.stderr));
}

/// The default spacecore image (incredible-squaring, a signer's runtime) is not stateless: its
/// manifest says so, and HorizontalAutoScaling is refused before anything boots.
#[test]
fn an_image_not_declared_stateless_is_refused_before_boot() {
    if !kvm_available("an_image_not_declared_stateless_is_refused_before_boot") {
        return;
    }
    let specs = Specs::new();
    let store_dir = specs.dir().join("images");
    let elf = spacecore_tests::image();
    let manifest = image_store::Manifest {
        name: "spacecore".into(),
        version: "0.1.0".into(),
        size_bytes: std::fs::metadata(elf).unwrap().len(),
        sha256: image_store::sha256_file(elf).unwrap(),
        built_at_unix: 0,
        git_commit: None,
        rustc: "test".into(),
        profile: "release".into(),
        target: "x86_64-unknown-none".into(),
        avs: "incredible-squaring".into(),
        features: Vec::new(),
        stateless: false,
    };
    image_store::Store::at(&store_dir).register("spacecore", "latest", elf, &manifest).unwrap();
    let spec = scaled_spec(&specs, "squaring", "cpu = 1\nmemory = \"64Mi\"", "", "spacecore:latest");
    expect_refused(
        &specs,
        &spec,
        &store_dir,
        "the manifest of spacecore:latest does not declare its AVS stateless",
    );
    // An image named by path with no manifest of its bytes beside it: the same refusal.
    let bare = specs.dir().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    std::fs::copy(spacecore_tests::image(), bare.join("image.elf")).unwrap();
    let bare_image = bare.join("image.elf");
    let spec = scaled_spec(&specs, "by-path", "cpu = 1\nmemory = \"64Mi\"", "", bare_image.to_str().unwrap());
    expect_refused(&specs, &spec, &store_dir, "no manifest of these bytes beside it");
    // A manifest of its own, read from beside the file: refused by what it says.
    let beside = specs.dir().join("echo");
    std::fs::create_dir_all(&beside).unwrap();
    std::fs::copy(echo_store().join("stateless-echo/latest/image.elf"), beside.join("image.elf")).unwrap();
    std::fs::copy(echo_store().join("stateless-echo/latest/manifest.json"), beside.join("manifest.json"))
        .unwrap();
    let spec = scaled_spec(&specs, "beside", "cpu = 1\nmemory = \"64Mi\"", "", "./echo/image.elf");
    let check = specs.launch(&["--check", spec.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", String::from_utf8_lossy(&check.stderr));
}

/// Replicas share nothing: a scaled spec with a disk is refused, even for a stateless image,
/// and no disk is created.
#[test]
fn a_scaled_spec_with_a_disk_is_refused_before_boot() {
    if !kvm_available("a_scaled_spec_with_a_disk_is_refused_before_boot") {
        return;
    }
    let store = echo_store();
    let specs = Specs::new();
    let spec = scaled_spec(
        &specs,
        "echo-disk",
        "cpu = 1\nmemory = \"64Mi\"\nstorage = \"64Mi\"",
        "",
        "stateless-echo:latest",
    );
    expect_refused(&specs, &spec, store, "spec.resources.storage gives this spacecore a disk (64Mi)");
    assert!(!specs.dir().join("echo-disk").exists(), "no disk was made");
}

/// Replicas that keep ending before they are ready (here: the host has no room for any) make
/// the parent give up, after a bounded streak with backoff, with status 1.
#[test]
fn replicas_that_never_get_ready_make_the_parent_give_up() {
    if !kvm_available("replicas_that_never_get_ready_make_the_parent_give_up") {
        return;
    }
    let store = echo_store();
    let specs = Specs::new();
    let spec = scaled_spec(&specs, "echo-full", "cpu = 1\nmemory = \"64Mi\"", "", "stateless-echo:latest");
    let running = specs.start(&[
        "--memory-overcommit",
        "0.00001",
        "--image-store",
        store.to_str().unwrap(),
        spec.to_str().unwrap(),
    ]);
    let (status, out) = running.finish(WAIT);
    assert_eq!(status, Some(1), "{out}");
    let log = log_lines(&out);
    let failed = events(&log, "echo-full", "scaling_failed").next().expect(&out);
    assert!(failed.message.contains("6 replicas in a row ended before they were ready"), "{out}");
    let waits: Vec<u64> =
        events(&log, "echo-full", "replica_replaced").filter_map(|l| l.u64_field("backoff_ms")).collect();
    assert_eq!(waits, [100, 200, 400, 800, 1600], "{out}");
    assert!(events(&log, "echo-full", "replica_ready").next().is_none(), "{out}");
}

/// Replicas start from a snapshot saved from the scaled spec: each reads its own name and
/// ports after its snapshot point (two instances answer), and one killed is replaced from the
/// snapshot too.
#[test]
fn replicas_start_from_a_snapshot_of_the_scaled_spec() {
    if !kvm_available("replicas_start_from_a_snapshot_of_the_scaled_spec") {
        return;
    }
    let store = echo_store();
    let specs = Specs::new();
    let spec = scaled_spec(
        &specs,
        "echo-snap",
        "cpu = 1\nmemory = \"64Mi\"",
        "min_replicas = 2\nmax_replicas = 2\ntarget_connections = 50",
        "stateless-echo:latest",
    );
    let (store, spec_path) = (store.to_str().unwrap(), spec.to_str().unwrap());
    let dir = specs.dir().join("snapshot");
    let out = specs.launch(&["--image-store", store, "--save-snapshot", dir.to_str().unwrap(), spec_path]);
    assert_eq!(out.status.code(), Some(0), "{}", spacecore_tests::text(&out));

    let mut running = specs.start(&["--image-store", store, "--snapshot", dir.to_str().unwrap(), spec_path]);
    let addr = published(&mut running, "echo-snap");
    wait_count(&mut running, "echo-snap", "replica_ready", 2);
    let instances: BTreeSet<String> = (0..10).map(|_| whoami(addr)).collect();
    assert_eq!(instances.len(), 2, "each replica has its own name: {instances:?}");
    // Replicas' banners: started from the snapshot, each under its own name.
    let from_snapshot = |log: &[LogLine]| -> Vec<String> {
        log.iter()
            .filter(|l| {
                l.guest("spacecore 0.1.0").is_some_and(|rest| rest.contains("started from a snapshot"))
            })
            .map(|l| l.spacecore.clone())
            .collect()
    };
    let started = from_snapshot(&running.log());
    assert_eq!(started.len(), 2, "{:#?}", running.seen);
    assert_ne!(started[0], started[1]);

    let pids = replica_pids(&running.log(), "echo-snap");
    // SAFETY: kill(2) on a replica launcher started for this test.
    assert_eq!(unsafe { libc::kill(pids[0], libc::SIGKILL) }, 0);
    wait_count(&mut running, "echo-snap", "replica_ready", 3);
    assert_eq!(from_snapshot(&running.log()).len(), 3, "the new replica too: {:#?}", running.seen);
    running.signal(libc::SIGTERM);
    let (status, out) = running.finish(WAIT);
    assert_eq!(status, Some(0), "{out}");
}
