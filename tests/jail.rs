//! The launcher's confinement (`host-launcher/src/jail/`), seen from outside a running
//! launcher: every thread's ids, capabilities, no_new_privs and seccomp mode from
//! `/proc/PID/task/*/status`, its root and mount namespace; the guest booting, serving HTTP and
//! its disk, and restarting after a panic, all confined; a forbidden system call killing the
//! launcher with SIGSYS; the opt-outs and their refusals; `--check` making no jail.

use spacecore_tests::{
    Specs, connect, count_launcher, events, http, kvm_available, log_lines, metrics_address, output_lines,
    published, text,
};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Limit of every wait.
const LIMIT: Duration = Duration::from_secs(30);
/// The ids the confined launchers of these tests run as (`--uid`, `--gid`): no user needs to
/// exist for them.
const UID: u32 = 64_123;
const GID: u32 = 64_124;

/// Whether `test` can run: KVM and root (confinement needs root to drop it).
fn can_run(test: &str) -> bool {
    kvm_available(test) && test_support::root(test)
}

/// A spec with a disk, a published HTTP port, a relay to an endpoint (the aggregator), the
/// metrics server with the sidecar, and auto-recovery (health checks too far apart to restart
/// the keyless guest during the test).
fn full_spec(specs: &Specs, name: &str) -> PathBuf {
    let tables = "[spec.networking.inbound_ports]\nHTTP = 8080\n[spec.networking.publish]\nHTTP = 0\n\
                  [spec.avs]\naggregator = \"127.0.0.1:1\"\n\
                  [spec.observability]\nmonitoring = \"Prometheus\"\nmetrics_address = \"127.0.0.1:0\"\nsidecar = true\n\
                  [spec.failover]\nstrategy = \"auto-recovery\"\nhealth_timeout = \"10m\"\n";
    specs.spacecore(name, "cpu = 2\nmemory = \"128Mi\"\nstorage = \"16Mi\"", tables, "{image}")
}

/// Each thread of process `pid`: its name and its `/proc/PID/task/TID/status`.
fn threads(pid: u32) -> Vec<(String, String)> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the launcher's threads");
    dir.filter_map(|entry| {
        let path = entry.ok()?.path();
        let name = std::fs::read_to_string(path.join("comm")).ok()?.trim().to_owned();
        Some((name, std::fs::read_to_string(path.join("status")).ok()?))
    })
    .collect()
}

/// The value of `key:` in a status text.
fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')).map_or("", str::trim)
}

/// Checks every thread of `pid`: the ids, no capability in any set, no_new_privs, a seccomp
/// filter. Returns the threads' names.
#[track_caller]
fn assert_confined(pid: u32) -> Vec<String> {
    let threads = threads(pid);
    assert!(threads.len() >= 6, "{threads:#?}");
    let (uid, gid) = (UID.to_string(), GID.to_string());
    for (name, status) in &threads {
        let ids = |key| field(status, key).split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(ids("Uid"), [uid.as_str(); 4], "{name}: real, effective, saved, fs uid");
        assert_eq!(ids("Gid"), [gid.as_str(); 4], "{name}: gids");
        assert_eq!(field(status, "Groups"), "", "{name}: no supplementary group");
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert_eq!(field(status, set), "0000000000000000", "{name}: {set}");
        }
        assert_eq!(field(status, "NoNewPrivs"), "1", "{name}");
        assert_eq!(field(status, "Seccomp"), "2", "{name}: seccomp filter mode");
    }
    threads.into_iter().map(|(name, _)| name).collect()
}

/// `GET /` of the guest through the published port: the guest's boot count (kept on its disk).
fn boot_count(addr: std::net::SocketAddr) -> u64 {
    let (code, body) = http(&mut connect(addr), "GET", "/", b"");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    json["boot_count"].as_u64().expect("boot_count")
}

fn same_inode(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

#[test]
fn a_confined_launcher_boots_serves_and_recovers_with_nothing_left() {
    let test = "a_confined_launcher_boots_serves_and_recovers_with_nothing_left";
    if !can_run(test) {
        return;
    }
    let specs = Specs::new();
    let spec = full_spec(&specs, "jail-full");
    let jail_dir = specs.dir().join("jail");
    let (uid, gid) = (UID.to_string(), GID.to_string());
    let args = [
        spec.to_str().unwrap(),
        "--uid",
        &uid,
        "--gid",
        &gid,
        "--jail-dir",
        jail_dir.to_str().unwrap(),
        "--cmdline",
        "spacecore.testhooks=on",
    ];
    let mut run = specs.start(&args);
    assert!(run.wait_ready(LIMIT).is_some(), "{:#?}", run.seen);
    let confined =
        run.log().iter().find_map(|l| l.launcher("confined: ").map(str::to_owned)).unwrap_or_default();
    let root = jail_dir.join("jail-full");
    assert!(
        confined.starts_with(&format!("uid {UID} gid {GID} (--uid/--gid), root {}", root.display())),
        "{:#?}",
        run.seen
    );
    let pid = run.child.id();

    // Every thread: the ids, no capabilities, no_new_privs, seccomp.
    let names = assert_confined(pid);
    for expected in
        ["hac-launch", "vcpu0", "vcpu1", "virtio-blk", "virtio-net", "publish-HTTP", "metrics", "signals"]
    {
        assert!(names.iter().any(|n| n == expected), "no thread {expected}: {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("egress-")), "{names:?}");
    // The root is the empty jail directory, in a mount namespace of the launcher's own that
    // holds that one mount, read-only.
    assert!(same_inode(&PathBuf::from(format!("/proc/{pid}/root")), &root), "root");
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "the jail holds nothing");
    let mode = std::fs::metadata(&root).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let ns = |p: &str| std::fs::read_link(p).unwrap();
    assert_ne!(ns(&format!("/proc/{pid}/ns/mnt")), ns("/proc/self/ns/mnt"), "a mount namespace of its own");
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    assert_eq!(mounts.lines().count(), 1, "{mounts}");
    let options = mounts.split_whitespace().nth(5).unwrap_or_default();
    for option in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(options.split(',').any(|o| o == option), "{mounts}");
    }
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap_or_default();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{limits}");

    // The guest serves HTTP through the published port and its disk: a boot counter there.
    let http_addr = published(&run.seen, "HTTP").expect("published HTTP");
    let boots = boot_count(http_addr);
    assert_eq!(boots, 1);
    let metrics = spacecore_tests::scrape_metrics(metrics_address(&run.seen).expect("metrics address"));
    assert!(metrics.contains("spacecore_launcher_boots_total 1"), "{metrics}");
    // The sidecar reached the guest from inside the namespace, confined.
    assert!(metrics.contains("\nspacecore_launcher_sidecar_scrape_success 1\n"), "{metrics}");
    assert!(metrics.contains("\nspacecore_boots_total 1\n"), "the guest's own metrics: {metrics}");

    // A panic: the confined supervisor makes a new VM on the kept /dev/kvm descriptor, and the
    // restarted guest finds its disk.
    let mut hook = connect(http_addr);
    std::io::Write::write_all(
        &mut hook,
        b"POST /test/panic HTTP/1.1\r\nHost: s\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    let recovered = run.wait_event("recovered", LIMIT);
    assert!(recovered.is_some_and(|r| r.str_field("cause") == Some("panic")), "{:#?}", run.seen);
    assert_eq!(boot_count(http_addr), boots + 1, "the restarted guest read and wrote its disk");
    // The new vCPU threads are confined too.
    let names = assert_confined(pid);
    assert!(names.iter().any(|n| n == "vcpu0"), "{names:?}");

    run.signal(libc::SIGTERM);
    let (code, output) = run.finish(LIMIT);
    assert_eq!(code, Some(0), "{output}");
    let lines = log_lines(&output);
    let ended = events(&lines, "guest_ended").last().cloned().unwrap_or_else(|| panic!("{output}"));
    assert_eq!(
        (ended.message.as_str(), ended.u64_field("status")),
        ("guest exited cleanly", Some(0)),
        "{output}"
    );
    // The end-of-run report still reads the launcher's memory (a descriptor opened before).
    let rss = lines.iter().find_map(|l| l.launcher("memory: launcher rss ")).expect(&output);
    assert!(!rss.starts_with("0 KiB"), "{output}");
}

#[test]
fn a_forbidden_system_call_kills_the_launcher_with_sigsys() {
    let test = "a_forbidden_system_call_kills_the_launcher_with_sigsys";
    if !can_run(test) {
        return;
    }
    if !cfg!(debug_assertions) {
        // The selftest hook exists in debug builds of the launcher only.
        spacecore_tests::skip(test, "SPACECORE_JAIL_SELFTEST is compiled into debug builds only");
        return;
    }
    let specs = Specs::new();
    let spec =
        specs.spacecore("jail-sigsys", "cpu = 1\nmemory = \"64Mi\"\nstorage = \"16Mi\"", "", "{image}");
    let (uid, gid) = (UID.to_string(), GID.to_string());
    // A device worker (the disk's, started when the guest activates it) opens a socket; a vCPU
    // thread does the same as soon as it starts.
    for kind in ["device", "vcpu"] {
        let mut cmd = std::process::Command::new(spacecore_tests::launcher());
        cmd.args(["--until-ready", spec.to_str().unwrap(), "--uid", &uid, "--gid", &gid])
            .env("SPACECORE_STATE_DIR", specs.dir())
            .env("SPACECORE_JAIL_SELFTEST", kind);
        let out = cmd.output().expect("run hac-launch");
        let log = text(&out);
        assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{kind}: {:?}\n{log}", out.status);
        let lines = output_lines(&out);
        assert_eq!(count_launcher(&lines, "confined: "), 1, "{kind}: {log}");
        assert_eq!(events(&lines, "ready").count(), 0, "{kind}: {log}");
    }
}

#[test]
fn opting_out_is_explicit_and_refused_where_the_spec_forbids_it() {
    let test = "opting_out_is_explicit_and_refused_where_the_spec_forbids_it";
    if !can_run(test) {
        return;
    }
    let specs = Specs::new();
    let resources = "cpu = 1\nmemory = \"64Mi\"";
    // --no-jail: the launcher says so and keeps root.
    let spec = specs.spacecore("jail-off", resources, "", "{image}");
    let mut run = specs.start(&[spec.to_str().unwrap(), "--no-jail"]);
    assert!(run.wait_ready(LIMIT).is_some(), "{:#?}", run.seen);
    let off = count_launcher(&run.log(), "confinement: off (--no-jail): the launcher keeps");
    assert_eq!(off, 1, "{:#?}", run.seen);
    let main = threads(run.child.id()).into_iter().find(|(n, _)| n == "hac-launch").unwrap().1;
    assert_eq!(field(&main, "Uid").split_whitespace().next(), Some("0"));
    assert_eq!(field(&main, "Seccomp"), "0");
    run.signal(libc::SIGTERM);
    assert_eq!(run.finish(LIMIT).0, Some(0));

    // isolation = "none" does the same; with security = "high" it is refused at parse time,
    // and so is --no-jail.
    let none = specs.spacecore("jail-none", resources, "[spec.security]\nisolation = \"none\"", "{image}");
    let out = specs.launch(&["--until-ready", none.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let off = count_launcher(&output_lines(&out), "confinement: off (spec.security.isolation = \"none\")");
    assert_eq!(off, 1, "{}", text(&out));
    let high = "[spec.virtualization.criteria]\nsecurity = \"high\"\n";
    let refused = specs.spacecore(
        "jail-high-none",
        resources,
        &format!("{high}[spec.security]\nisolation = \"none\""),
        "{image}",
    );
    let out = specs.launch(&["--until-ready", refused.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("criteria.security = \"high\" forbids"), "{}", text(&out));
    let strict = specs.spacecore("jail-high", resources, high, "{image}");
    let out = specs.launch(&["--until-ready", strict.to_str().unwrap(), "--no-jail"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("--no-jail is refused"), "{}", text(&out));
    // isolation = "jailed" and --no-jail contradict each other.
    let jailed = specs.spacecore("jail-on", resources, "[spec.security]\nisolation = \"jailed\"", "{image}");
    let out = specs.launch(&["--until-ready", jailed.to_str().unwrap(), "--no-jail"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("contradicts"), "{}", text(&out));
}

#[test]
fn the_default_user_is_spacecore_or_a_clear_error() {
    let test = "the_default_user_is_spacecore_or_a_clear_error";
    if !can_run(test) {
        return;
    }
    let specs = Specs::new();
    let spec = specs.spacecore("jail-user", "cpu = 1\nmemory = \"64Mi\"", "", "{image}");
    let jail_dir = specs.dir().join("jail");
    let out =
        specs.launch(&["--until-ready", spec.to_str().unwrap(), "--jail-dir", jail_dir.to_str().unwrap()]);
    let log = text(&out);
    let user = std::process::Command::new("id").args(["-u", "spacecore"]).output().expect("id");
    if user.status.success() {
        let uid = String::from_utf8_lossy(&user.stdout).trim().to_owned();
        assert_eq!(out.status.code(), Some(0), "{log}");
        let lines = output_lines(&out);
        let confined = lines.iter().find_map(|l| l.launcher("confined: ")).expect(&log);
        assert!(confined.starts_with(&format!("uid {uid} gid ")), "{log}");
        assert!(confined.contains("(user spacecore)"), "{log}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{log}");
        assert!(log.contains("no user `spacecore` on this host"), "{log}");
        assert!(log.contains("useradd --system"), "{log}");
        assert!(!jail_dir.exists(), "nothing was made");
    }
}

#[test]
fn check_makes_no_jail() {
    let test = "check_makes_no_jail";
    if !can_run(test) {
        return;
    }
    let specs = Specs::new();
    let spec = specs.spacecore("jail-check", "cpu = 1\nmemory = \"64Mi\"", "", "{image}");
    let jail_dir = specs.dir().join("jail");
    let out = specs.launch(&["--check", spec.to_str().unwrap(), "--jail-dir", jail_dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!jail_dir.exists(), "--check made {}", jail_dir.display());
}
