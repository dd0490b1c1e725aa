//! Boots the real image on `/dev/kvm` with `hac-launch` and checks what an operator sees:
//! banner, ready, clean stops, exit statuses, crash reports, and the launcher's refusals.

use spacecore_abi::exit;
use spacecore_tests::{
    LogLine, Running, Specs, count_launcher, events, kvm_available, launch, log_lines, output_lines, sample,
    scrape_metrics, text,
};
use std::process::Output;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

/// The launcher's one `guest_ended` event among `lines` (how the last run ended: its message
/// and the exit `status`).
fn ended(lines: &[LogLine]) -> LogLine {
    let ended: Vec<&LogLine> = events(lines, "guest_ended").collect();
    assert_eq!(ended.len(), 1, "one guest_ended event: {lines:#?}");
    ended[0].clone()
}

/// Boots a minimal spacecore `name` with `spacecore.selftest=SELFTEST`, which must end the
/// launcher with exit code `status`, its `guest_ended` event saying so too: that event and the
/// launcher's whole output, as text and as it ran.
fn selftest_ending(name: &str, selftest: &str, status: u8) -> (LogLine, String, Output) {
    let specs = Specs::new();
    let spec = specs.minimal(name, 1, "16Mi");
    let out = launch(&["--cmdline", &format!("spacecore.selftest={selftest}"), spec.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(i32::from(status)), "{log}");
    let end = ended(&output_lines(&out));
    assert_eq!(end.u64_field("status"), Some(u64::from(status)), "{log}");
    (end, log, out)
}

#[test]
fn boots_prints_the_banner_signals_ready_and_stops_cleanly() {
    if !kvm_available("boots_prints_the_banner_signals_ready_and_stops_cleanly") {
        return;
    }
    let specs = Specs::new();
    let spec = specs.minimal("boot-basic", 1, "16Mi");
    let out = launch(&["--until-ready", spec.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let lines = output_lines(&out);
    assert!(lines.iter().all(|l| l.spacecore == "boot-basic"), "{log}");
    let banner = "spacecore 0.1.0 (abi 1): 1 vCPUs, 16 MiB memory";
    assert!(lines.iter().any(|l| l.guest(banner).is_some()), "{log}");
    let us = lines.iter().find_map(LogLine::ready_us).expect(&log);
    assert!(us > 0, "{log}");
    assert!(lines.iter().any(|l| l.guest("stop requested").is_some()), "{log}");
    let end = ended(&lines);
    assert_eq!((end.message.as_str(), end.u64_field("status")), ("guest exited cleanly", Some(0)), "{log}");
}

#[test]
fn a_read_only_image_is_shared_from_its_file_and_a_writable_one_copied() {
    if !kvm_available("a_read_only_image_is_shared_from_its_file_and_a_writable_one_copied") {
        return;
    }
    let specs = Specs::new();
    // The image store writes its images read-only; a copy of one made writable is copied in.
    let stored = spacecore_tests::image();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(stored).unwrap().permissions()) & 0o222,
        0
    );
    let writable = specs.dir().join("writable.elf");
    std::fs::copy(stored, &writable).unwrap();
    std::fs::set_permissions(&writable, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    for (name, image, shared) in [("image-ro", stored, true), ("image-rw", writable.as_path(), false)] {
        let spec = specs.spacecore(name, "cpu = 1\nmemory = \"16Mi\"", "", &image.display().to_string());
        let out = launch(&["--until-ready", spec.to_str().unwrap()]);
        let log = text(&out);
        assert_eq!(out.status.code(), Some(0), "{log}");
        let lines = output_lines(&out);
        let memory = lines.iter().find_map(|l| l.launcher("memory: launcher rss")).expect(&log);
        let image = memory.split("; image ").nth(1).expect(&log);
        if shared {
            // Nearly all of the image: its text and read-only data are whole pages.
            let kib: u64 = image.strip_suffix(" KiB shared from its file").expect(&log).parse().unwrap();
            let size = std::fs::metadata(stored).unwrap().len() / 1024;
            assert!(kib > size * 3 / 4 && kib <= size, "{kib} KiB of {size} KiB shared: {memory}");
        } else {
            assert_eq!(image, "copied", "{log}");
        }
    }
}

#[test]
fn sigterm_and_sigint_stop_the_guest_cleanly_and_exit_0() {
    if !kvm_available("sigterm_and_sigint_stop_the_guest_cleanly_and_exit_0") {
        return;
    }
    let specs = Specs::new();
    let spec = specs.minimal("boot-signal", 2, "32Mi");
    for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        let mut run = Running::start(&[spec.to_str().unwrap()]);
        assert!(run.wait_ready(LIMIT).is_some(), "never ready: {:?}", run.seen);
        run.signal(signal);
        let (code, log) = run.finish(LIMIT);
        assert_eq!(code, Some(0), "{name}: {log}");
        let lines = log_lines(&log);
        let received = format!("{name} received: stopping the guest");
        assert_eq!(count_launcher(&lines, &received), 1, "{log}");
        let stopped = lines.iter().any(|l| l.guest("stop requested after").is_some());
        assert!(stopped, "the guest did not see the stop: {log}");
        let end = ended(&lines);
        assert_eq!(
            (end.message.as_str(), end.u64_field("status")),
            ("guest exited cleanly", Some(0)),
            "{log}"
        );
    }
}

/// The state letter (`R` running or runnable, `S` sleeping, ...) of each of the launcher's vCPU
/// threads (named `vcpuN`), by vCPU index.
fn vcpu_thread_states(pid: u32) -> Vec<(u32, char)> {
    let mut states = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("the launcher's threads").flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let Some(index) = comm.trim().strip_prefix("vcpu").and_then(|i| i.parse().ok()) else { continue };
        // A thread that ended between the listing and here has no stat any more.
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()).expect(&stat);
        states.push((index, state));
    }
    states.sort_unstable();
    states
}

/// VM exits the launcher has handled so far (every kind), from its metrics.
fn vm_exits(metrics: std::net::SocketAddr) -> f64 {
    let text = scrape_metrics(metrics);
    ["hypercall", "mmio"]
        .iter()
        .map(|kind| {
            let series = format!("spacecore_launcher_vcpu_exits_total{{kind=\"{kind}\"}}");
            sample(&text, &series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
        })
        .sum()
}

#[test]
fn every_vcpu_runs_and_idle_vcpus_do_not_spin() {
    if !kvm_available("every_vcpu_runs_and_idle_vcpus_do_not_spin") {
        return;
    }
    let specs = Specs::new();
    // No disk and no network: once ready, the guest has nothing to do. The launcher's metrics
    // count its VM exits.
    let observability =
        "[spec.observability]\nmonitoring = \"Prometheus\"\nmetrics_address = \"127.0.0.1:0\"";
    let spec = specs.spacecore("boot-smp", "cpu = 4\nmemory = \"64Mi\"", observability, "{image}");
    let mut run = Running::start(&[spec.to_str().unwrap()]);
    assert!(run.wait_ready(LIMIT).is_some(), "never ready: {:?}", run.seen);
    // Every vCPU ran guest code: the first prints the banner; each other one, entered with its
    // own index, says so from its entry before it blocks.
    assert!(run.find_guest("spacecore 0.1.0 (abi 1): 4 vCPUs", LIMIT).is_some(), "{:?}", run.seen);
    for vcpu in 1..4 {
        let line = format!("vCPU {vcpu} running; idle");
        assert!(run.find_guest(&line, LIMIT).is_some(), "vCPU {vcpu} never ran: {:#?}", run.seen);
    }
    let metrics = spacecore_tests::metrics_address(&run.seen).expect("the launcher's metrics line");
    let pid = run.child.id();
    assert_eq!(vcpu_thread_states(pid).len(), 4, "four vCPU threads");

    // Idle, the guest makes no VM exit (no vCPU polls) and no vCPU thread is runnable (none
    // spins in guest code). First the exits settle: the boot's last lines are written after
    // the ready; an exit count that never stops moving fails here.
    let deadline = std::time::Instant::now() + LIMIT;
    let mut exits = vm_exits(metrics);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = vm_exits(metrics);
        if now == exits {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "VM exits still rising after {LIMIT:?}: {now}");
        exits = now;
    }
    // Then a window of 20 looks at the vCPU threads, 50 ms apart: each must be asleep (blocked
    // in its `Wait`) every time, and no exit may happen in between.
    for look in 0..20 {
        let states = vcpu_thread_states(pid);
        assert!(states.iter().all(|&(_, state)| state == 'S'), "look {look}: vCPU threads {states:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(vm_exits(metrics), exits, "an idle guest made VM exits");
    run.signal(libc::SIGTERM);
    let (code, log) = run.finish(LIMIT);
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn the_guest_exit_status_becomes_the_launchers() {
    if !kvm_available("the_guest_exit_status_becomes_the_launchers") {
        return;
    }
    let specs = Specs::new();
    let spec = specs.minimal("boot-exit", 1, "16Mi");
    let out = launch(&["--cmdline", "spacecore.selftest=exit:7", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let end = ended(&output_lines(&out));
    assert_eq!(
        (end.message.as_str(), end.u64_field("status")),
        ("guest exited with status 7", Some(7)),
        "{end:?}"
    );
}

#[test]
fn a_guest_panic_is_reported_with_its_message() {
    if !kvm_available("a_guest_panic_is_reported_with_its_message") {
        return;
    }
    let (end, log, _) = selftest_ending("boot-panic", "panic", exit::GUEST_PANIC);
    // The location is the runtime's source file, as the image crate that links it names it.
    let message = "guest panicked: self-test panic requested on the command line at ";
    assert!(end.message.starts_with(message), "{log}");
    assert!(end.message.contains("src/selftest.rs:"), "{log}");
}

#[test]
fn a_guest_page_fault_gets_a_crash_report() {
    if !kvm_available("a_guest_page_fault_gets_a_crash_report") {
        return;
    }
    let (end, log, _) = selftest_ending("boot-fault", "fault", exit::GUEST_FAULT);
    let report = &end.message;
    assert!(report.starts_with("guest crashed: vCPU 0: #PF page fault (vector 14) at RIP 0x2"), "{log}");
    assert!(report.contains("CR2 0x10 (read, page not present)"), "{log}");
    assert!(report.contains("CPL3"), "{log}");
}

#[test]
fn a_port_outside_the_hypercall_range_faults() {
    if !kvm_available("a_port_outside_the_hypercall_range_faults") {
        return;
    }
    let (end, log, _) = selftest_ending("boot-port", "bad-port", exit::GUEST_FAULT);
    assert!(
        end.message.starts_with("guest crashed: ")
            && end.message.contains("#GP general protection (vector 13)"),
        "{log}"
    );
}

#[test]
fn a_hostile_hypercall_buffer_ends_only_that_guest() {
    if !kvm_available("a_hostile_hypercall_buffer_ends_only_that_guest") {
        return;
    }
    let (end, log, out) = selftest_ending("boot-hostile", "bad-buffer", exit::GUEST_ABI_VIOLATION);
    assert!(end.message.starts_with("guest broke the hypercall ABI: vCPU 0: console write: buffer"), "{log}");
    // The launcher's own panic would be on stderr, outside its log.
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked at"),
        "the launcher itself panicked: {log}"
    );
}

#[test]
fn a_guest_flooding_its_console_is_cut_to_its_budget() {
    if !kvm_available("a_guest_flooding_its_console_is_cut_to_its_budget") {
        return;
    }
    let specs = Specs::new();
    let spec = specs.minimal("boot-flood", 1, "16Mi");
    let started = std::time::Instant::now();
    let out = launch(&["--cmdline", "spacecore.selftest=console-flood:16", spec.to_str().unwrap()]);
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let lines = output_lines(&out);
    // 16 MiB written in 4 KiB writes (4095 x and a newline each): what reached the log is at
    // most the burst and the rate over the run, and every other byte is reported dropped.
    let logged_writes = lines.iter().filter(|l| l.guest("xxx").is_some()).count();
    let logged = logged_writes * 4096;
    let budget = (256 << 10) + (64 << 10) * (elapsed.as_millis() as usize / 1000 + 1);
    assert!(logged <= budget, "{logged} bytes of guest text logged in {elapsed:?}, budget {budget}");
    assert!(logged >= 256 << 10, "the burst goes through: {logged} bytes");
    // The launcher's `console: N bytes ... dropped` lines carry no event fields: N is read from
    // the message of these launcher lines.
    let dropped: usize = lines
        .iter()
        .filter_map(|l| l.launcher("console: "))
        .filter_map(|t| t.strip_suffix(" bytes of guest output dropped (over 64 KiB/s)"))
        .map(|n| n.parse::<usize>().unwrap())
        .sum();
    assert_eq!(logged + dropped, 16 << 20, "every byte is logged or reported dropped");
    let done = lines.iter().any(|l| l.guest("console-flood: done").is_some());
    assert!(done, "the guest's last line, once its budget allows");
}

#[test]
fn a_bad_guest_command_line_word_stops_the_boot() {
    if !kvm_available("a_bad_guest_command_line_word_stops_the_boot") {
        return;
    }
    let specs = Specs::new();
    let spec = specs.minimal("boot-cmdline", 1, "16Mi");
    let out = launch(&["--cmdline", "spacecore.selftest=nonsense", spec.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(4), "{log}");
    let lines = output_lines(&out);
    let said = lines.iter().any(|l| {
        l.guest("").is_some_and(|m| m.contains("bad command-line word \"spacecore.selftest=nonsense\""))
    });
    assert!(said, "{log}");
    assert_eq!(ended(&lines).u64_field("status"), Some(4), "{log}");
}

/// The sample spec, image aside: 4 vCPUs and 8 GiB must boot on this host, and the
/// untouched memory must cost nothing.
#[test]
fn the_sample_spec_boots_with_8_gib_and_a_small_footprint() {
    if !kvm_available("the_sample_spec_boots_with_8_gib_and_a_small_footprint") {
        return;
    }
    let specs = Specs::new();
    let sample =
        std::fs::read_to_string(spacecore_tests::workspace().join("hac/tests/sample.hac.toml")).unwrap();
    // Published on free host ports: 80 and 443 may be taken on the host running the tests.
    let body = sample
        .replace("registry/path/avs-spacecore:latest", "{image}")
        // One instance: the sample has a disk, and the test image's AVS is not stateless, so
        // hac-launch refuses its HorizontalAutoScaling (docs/hac-launch.md, Scaling).
        .replace("scaling = \"HorizontalAutoScaling\"", "scaling = \"None\"")
        .replace("[spec.deployment]", "[spec.networking.publish]\nHTTP = 0\nhttps = 0\n\n[spec.deployment]")
        // Its logging (Loki/Fluentd/ELK) is the JSON log the checks below read; metrics on a
        // free port.
        .replace(
            "logging = \"Loki/Fluentd/ELK\"",
            "logging = \"Loki/Fluentd/ELK\"\nmetrics_address = \"127.0.0.1:0\"",
        );
    let spec = specs.write("sample", &body);
    let out = specs.launch(&["--until-ready", spec.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let lines = output_lines(&out);
    let banner = lines.iter().find_map(|l| l.guest("spacecore ")).expect(&log);
    assert!(banner.contains("4 vCPUs, 8192 MiB memory"), "{log}");
    let metrics =
        events(&lines, "metrics").find_map(|l| l.str_field("address")?.parse::<std::net::SocketAddr>().ok());
    assert!(metrics.is_some_and(|a| a.ip().is_loopback() && a.port() != 0), "{log}");
    assert_eq!(count_launcher(&lines, "not enforced yet: spec.security.attestation"), 0, "{log}");
    assert_eq!(count_launcher(&lines, "not enforced yet: spec.resources.storage"), 0, "{log}");
    // The check above can see such lines: others are printed.
    assert!(count_launcher(&lines, "not enforced yet: ") > 0, "{log}");
    // The 100 GiB disk is created sparse: it costs almost nothing on the host.
    let disk = std::fs::metadata(specs.dir().join("spacecore-sample/disk.img")).expect("disk created");
    assert_eq!(disk.len(), 100 << 30);
    assert!(std::os::unix::fs::MetadataExt::blocks(&disk) * 512 < 64 << 20, "disk not sparse");
    let memory = lines.iter().find_map(|l| l.launcher("memory: launcher rss")).expect(&log);
    let guest_kib: u64 =
        memory.split("guest resident ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(guest_kib < 8 * 1024, "an idle 8 GiB guest has {guest_kib} KiB resident: {memory}");
}

#[test]
fn a_bad_spec_exits_2_naming_the_key_and_line() {
    let specs = Specs::new();
    let spec = specs.minimal("bad", 0, "16Mi");
    let out = launch(&[spec.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(i32::from(exit::BAD_SPEC)), "{log}");
    assert!(log.contains(":6:") && log.contains("spec.resources.cpu"), "{log}");
    // A spec refused: no log at all (its format is the spec's), so nothing booted.
    assert_eq!(output_lines(&out), Vec::new(), "{log}");
}

#[test]
fn a_missing_image_says_how_to_build_it() {
    let specs = Specs::new();
    let spec = specs.spacecore("noimage", "cpu = 1\nmemory = \"16Mi\"", "", "nothing/here:v9");
    let out = launch(&[spec.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(i32::from(exit::LAUNCHER_ERROR)), "{log}");
    assert!(log.contains("nothing/here:v9") && log.contains("cargo xtask build-image"), "{log}");
    // One clear line: on stderr, and as the log's one line, the `launcher_error` event.
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1, "one clear line: {log}");
    let lines = output_lines(&out);
    assert_eq!(lines.len(), 1, "one clear line: {log}");
    assert!(lines[0].is_event("launcher_error") && lines[0].message.contains("nothing/here:v9"), "{log}");
}

#[test]
fn a_file_that_is_not_an_image_is_one_clear_line() {
    if !kvm_available("a_file_that_is_not_an_image_is_one_clear_line") {
        return;
    }
    let specs = Specs::new();
    let junk = specs.write("junk", "not an elf");
    let spec = specs.spacecore("junkimage", "cpu = 1\nmemory = \"16Mi\"", "", &junk.display().to_string());
    let out = launch(&[spec.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(i32::from(exit::LAUNCHER_ERROR)), "{log}");
    assert!(log.contains("cannot load image") && log.contains("junk.toml"), "{log}");
}

#[test]
fn an_image_pinned_to_another_digest_is_refused_before_boot() {
    let specs = Specs::new();
    let store_dir = specs.dir().join("images");
    let store = image_store::Store::at(&store_dir);
    let register = |content: &str| {
        let file = specs.dir().join("candidate.elf");
        std::fs::write(&file, content).unwrap();
        let sha256 = image_store::sha256_file(&file).unwrap();
        let manifest = image_store::Manifest {
            name: "pinned".into(),
            version: "1".into(),
            size_bytes: content.len() as u64,
            sha256: sha256.clone(),
            built_at_unix: 0,
            git_commit: None,
            rustc: "test".into(),
            profile: "test".into(),
            target: "test".into(),
            avs: "incredible-squaring".into(),
            features: Vec::new(),
            stateless: false,
        };
        store.register("pinned", "v1", &file, &manifest).unwrap();
        sha256
    };
    let first = register("the first image");
    let check = |image: &str| {
        let spec = specs.spacecore("pin", "cpu = 1\nmemory = \"16Mi\"", "", image);
        launch(&["--check", "--image-store", store_dir.to_str().unwrap(), spec.to_str().unwrap()])
    };
    let out = check(&format!("pinned:v1@sha256:{first}"));
    assert_eq!(out.status.code(), Some(0), "the pinned digest: {}", text(&out));
    assert!(text(&out).contains(&format!("sha256     {first}")), "{}", text(&out));
    let other = "0".repeat(64);
    let out = check(&format!("pinned:v1@sha256:{other}"));
    assert_eq!(out.status.code(), Some(i32::from(exit::LAUNCHER_ERROR)), "{}", text(&out));
    assert!(text(&out).contains(&format!("pins sha256:{other}, but pinned:v1")), "{}", text(&out));
    // The tag moves to another image: the spec pinned to the first one no longer boots.
    let second = register("the second image");
    assert_ne!(first, second);
    let out = check(&format!("pinned:v1@sha256:{first}"));
    assert_eq!(out.status.code(), Some(i32::from(exit::LAUNCHER_ERROR)), "{}", text(&out));
    assert!(text(&out).contains("nothing was booted"), "{}", text(&out));
    assert_eq!(check("pinned:v1").status.code(), Some(0), "unpinned, the tag names the second image");
}

#[test]
fn check_prints_the_resolved_plan_as_text_and_json() {
    let specs = Specs::new();
    let spec = specs.minimal("check-me", 2, "64Mi");
    let out = launch(&["--check", spec.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    for needle in ["vcpus      2", "memory     67108864 bytes", "sha256     ", "not enforced yet"] {
        assert!(log.contains(needle), "missing {needle:?}: {log}");
    }
    let out = launch(&["--check", "--json", spec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["plan"]["vcpus"], 2);
    assert_eq!(json["plan"]["memory_bytes"], 64 << 20);
    assert_eq!(json["resolved_image"]["sha256"].as_str().unwrap().len(), 64);

    // --check only reads: a spec's log file and disk are not created by it.
    let log_file = specs.dir().join("check-me.log");
    let disk = specs.dir().join("check-me.img");
    let tables = format!(
        "[spec.storage]\npath = \"{}\"\n[spec.observability]\nlog_file = \"{}\"\n",
        disk.display(),
        log_file.display()
    );
    let with_files =
        specs.spacecore("check-files", "cpu = 1\nmemory = \"64Mi\"\nstorage = \"1Mi\"", &tables, "{image}");
    let out = launch(&["--check", with_files.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!log_file.exists() && !disk.exists(), "--check created a file: {}", text(&out));
}

#[test]
fn a_host_without_room_refuses_the_next_spacecore_at_start() {
    if !kvm_available("a_host_without_room_refuses_the_next_spacecore_at_start") {
        return;
    }
    let specs = Specs::new();
    let first = specs.minimal("room-a", 1, "64Mi");
    let second = specs.minimal("room-b", 1, "64Mi");
    // A host offering 100 MiB of guest memory: the first fits, the second does not while the
    // first runs, and does once it has stopped.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let total_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    let ratio = format!("{:.6}", 100.0 * 1024.0 / total_kib);
    let mut running = specs.start(&["--memory-overcommit", &ratio, first.to_str().unwrap()]);
    assert!(running.wait_ready(LIMIT).is_some(), "{:?}", running.seen);
    let out = specs.launch(&["--memory-overcommit", &ratio, "--until-ready", second.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(
            "this host cannot take spacecore room-b: guest memory (1 running spacecore(s) reserve 64 MiB"
        ),
        "{log}"
    );
    let lines = output_lines(&out);
    assert_eq!(events(&lines, "ready").count(), 0, "refused before anything booted: {log}");
    assert_eq!(events(&lines, "launcher_error").count(), 1, "{log}");
    running.signal(libc::SIGTERM);
    assert_eq!(running.finish(LIMIT).0, Some(0));
    // The first's reservation lapsed with its process (a confined launcher cannot remove it).
    let out = specs.launch(&["--memory-overcommit", &ratio, "--until-ready", second.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Many spacecores on one host as `spacecore@.service` runs them (docs/operations.md): one
/// launcher per spec file of one directory, side by side, each serving on its own published
/// port, each stopping cleanly.
#[test]
fn spacecores_start_from_the_specs_in_one_directory() {
    if !kvm_available("spacecores_start_from_the_specs_in_one_directory") {
        return;
    }
    const N: usize = 4;
    let specs = Specs::new();
    let tables = "[spec.networking.inbound_ports]\nHTTP = 80\n[spec.networking.publish]\nHTTP = 0\n";
    for i in 1..=N {
        specs.spacecore(&format!("many-{i}"), "cpu = 1\nmemory = \"64Mi\"", tables, "{image}");
    }
    let mut files: Vec<_> = std::fs::read_dir(specs.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), N);
    let mut running: Vec<Running> = files.iter().map(|f| specs.start(&[f.to_str().unwrap()])).collect();
    for (i, run) in running.iter_mut().enumerate() {
        assert!(run.wait_ready(LIMIT).is_some(), "many-{} never ready: {:#?}", i + 1, run.seen);
    }
    let mut ports = Vec::new();
    for (i, run) in running.iter().enumerate() {
        let addr = spacecore_tests::published(&run.seen, "HTTP").expect("a published HTTP port");
        let (status, body) = spacecore_tests::http(&mut spacecore_tests::connect(addr), "GET", "/", b"");
        assert_eq!(status, 200);
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status["name"], format!("many-{}", i + 1), "each port reaches its own spacecore");
        ports.push(addr.port());
    }
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), N, "one published port each");
    for run in &running {
        run.signal(libc::SIGTERM);
    }
    for run in running {
        assert_eq!(run.finish(LIMIT).0, Some(0));
    }
}
