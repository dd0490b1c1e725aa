//! Rolling updates (`hac-launch --update SPEC`) against the real launcher and image: a signer's
//! image replaced under a stream of tasks with no client-visible error and its signing history
//! intact (the same task gets the same signature, a conflicting one 409), the outcome in the
//! log and the metrics; and a new image that never becomes ready rolled back, the old image
//! serving the same disk again, as is one that crashes at boot, while an image that cannot load
//! is refused before anything is touched; and the update thread under its own seccomp filter.

use serde_json::Value;
use spacecore_tests::cluster::{Cluster, NodeSetup, Tools, post_task, status};
use spacecore_tests::{kvm_available, metrics_address, sample, scrape_metrics};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Limit of every wait: a boot, a key load, an update or a stop takes a few seconds at most.
const LIMIT: Duration = Duration::from_secs(30);

/// A one-node AVS cluster (keystore imported) with auto-recovery and the launcher's metrics.
fn signer(prefix: &str) -> Cluster {
    let tables = "[spec.failover]\nstrategy = \"auto-recovery\"\n\
                  [spec.operations]\nupdateStrategy = \"RollingUpdate\"\n\
                  [spec.observability]\nmonitoring = \"Prometheus\"\nmetrics_address = \"127.0.0.1:0\"\n";
    let setup = NodeSetup { memory: Some("128Mi".into()), tables: tables.into(), args: Vec::new() };
    Cluster::with_setup(Tools::for_tests(), prefix, 1, &setup)
}

/// A `NewTask` for task `index` squaring `number`.
fn task(index: u32, number: u64) -> Vec<u8> {
    spacecore_tests::cluster::pushed_task(index, number).to_string().into_bytes()
}

/// `POST /task` on a new connection (`Connection: close`), as a client would: the status and
/// answer, or why the client saw none (a client-visible error).
fn try_post_task(addr: SocketAddr, body: &[u8]) -> Result<(u16, Value), String> {
    let body = &spacecore_tests::cluster::authorize(body);
    let mut stream = TcpStream::connect_timeout(&addr, LIMIT).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(LIMIT)).map_err(|e| e.to_string())?;
    let head = format!(
        "POST /task HTTP/1.1\r\nHost: spacecore\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).map_err(|e| format!("send: {e}"))?;
    stream.write_all(body).map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| format!("read: {e}"))?;
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or("closed without an answer")?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).ok_or("no status")?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").and_then(|v| v.trim().parse().ok())
        })
        .ok_or("no length")?;
    let body = answer.get(end + 4..end + 4 + length).ok_or("truncated answer")?;
    Ok((code, serde_json::from_slice(body).unwrap_or(Value::Null)))
}

/// What a stream of tasks saw.
#[derive(Debug, Default)]
struct Stream {
    /// Tasks answered 200, with their answers.
    signed: Vec<(u32, Value)>,
    /// Tasks answered otherwise, or not at all: client-visible errors.
    errors: Vec<(u32, String)>,
    /// The slowest answer.
    slowest: Duration,
    /// When each task was sent.
    sent: Vec<Instant>,
}

impl Stream {
    /// Tasks sent between `from` and `to`.
    fn sent_between(&self, from: Instant, to: Instant) -> usize {
        self.sent.iter().filter(|&&at| at >= from && at <= to).count()
    }
}

/// Signs tasks `first..` one after the other, 10 ms apart (task `i` squares `i + 2`), until
/// `stop` is set and at least `min` were sent, at most `max` (the signing history keeps the
/// last 100 tasks, which the checks after the update ask again).
fn stream_tasks(
    addr: SocketAddr,
    first: u32,
    min: u32,
    max: u32,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Stream> {
    std::thread::spawn(move || {
        let mut seen = Stream::default();
        for index in first..first + max {
            if index >= first + min && stop.load(Ordering::Relaxed) {
                break;
            }
            let began = Instant::now();
            seen.sent.push(began);
            match try_post_task(addr, &task(index, u64::from(index) + 2)) {
                Ok((200, answer)) => seen.signed.push((index, answer)),
                Ok((code, answer)) => seen.errors.push((index, format!("{code} {answer}"))),
                Err(why) => seen.errors.push((index, why)),
            }
            seen.slowest = seen.slowest.max(began.elapsed());
            std::thread::sleep(Duration::from_millis(10));
        }
        seen
    })
}

/// Reads `GET /` in a closed loop (a new connection each, `Connection: close`) until `stop`:
/// the answers, and the client-visible errors (no 200).
fn stream_reads(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut answered, mut errors) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            let read = || -> Result<u16, String> {
                let mut stream =
                    TcpStream::connect_timeout(&addr, LIMIT).map_err(|e| format!("connect: {e}"))?;
                stream.set_read_timeout(Some(LIMIT)).map_err(|e| e.to_string())?;
                stream
                    .write_all(b"GET / HTTP/1.1\r\nHost: spacecore\r\nConnection: close\r\n\r\n")
                    .map_err(|e| format!("send: {e}"))?;
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).map_err(|e| format!("read: {e}"))?;
                let head = String::from_utf8_lossy(&answer);
                head.split(' ')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| "closed without an answer".into())
            };
            match read() {
                Ok(200) => answered += 1,
                Ok(code) => errors.push(format!("GET / answered {code}")),
                Err(why) => errors.push(why),
            }
        }
        (answered, errors)
    })
}

/// `hac-launch --update SPEC ARGS` for `cluster`'s node 0: the exit status and the output.
fn update(cluster: &Cluster, args: &[&str]) -> (Option<i32>, String) {
    run_update(update_command(cluster, args))
}

/// The command of [`update`], to run elsewhere.
fn update_command(cluster: &Cluster, args: &[&str]) -> Command {
    let mut command = Command::new(&cluster.tools().launcher);
    command
        .arg(&cluster.nodes[0].spec)
        .arg("--update")
        .args(args)
        .env("SPACECORE_STATE_DIR", cluster.dir())
        .env("SPACECORE_IMAGE_STORE", cluster.dir().join("image-store"));
    command
}

/// Runs an update command: its exit status and output.
fn run_update(mut command: Command) -> (Option<i32>, String) {
    let output = command.output().expect("run hac-launch --update");
    (output.status.code(), spacecore_tests::text(&output))
}

/// When the launcher confined itself (started as root): its update thread, which took the image's
/// descriptor, runs with a seccomp filter, no_new_privs, no capability and not as root.
fn update_thread_is_confined(run: &spacecore_tests::Running) {
    if !run.seen.iter().any(|l| l.contains("confined: uid ")) {
        eprintln!("the launcher is not confined here (not root): its update thread is not checked");
        return;
    }
    let pid = run.child.id();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the launcher's threads");
    let statuses: Vec<String> = tasks
        .filter_map(|t| {
            let path = t.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?;
            (name.trim() == "update").then(|| std::fs::read_to_string(path.join("status")).ok())?
        })
        .collect();
    assert_eq!(statuses.len(), 1, "one thread named update");
    let field = |key: &str| {
        statuses[0]
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    assert_eq!(field("Seccomp"), "2", "{}", statuses[0]);
    assert_eq!(field("NoNewPrivs"), "1");
    assert_eq!(field("CapEff"), "0000000000000000");
    assert_eq!(field("CapPrm"), "0000000000000000");
    assert!(!field("Uid").starts_with("0\t") && !field("Uid").starts_with("0 "), "{}", field("Uid"));
}

/// Points node 0's spec at `image`.
fn set_image(cluster: &Cluster, image: &Path) {
    let spec = &cluster.nodes[0].spec;
    let text = std::fs::read_to_string(spec).expect("read the spec");
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("image = ") {
                format!("image = \"{}\"\n", image.display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(spec, text).expect("write the spec");
}

/// A copy of the test image with bytes appended past its segments: another file and digest,
/// the same guest.
fn another_build(dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(spacecore_tests::image()).expect("read the image");
    bytes.extend_from_slice(b"\0another build of the same guest\0");
    let path = dir.join("spacecore-next.elf");
    std::fs::write(&path, bytes).expect("write the new image");
    path
}

/// A copy of the test image whose entry point jumps to itself: it loads and boots, and never
/// becomes ready (nor makes any hypercall).
fn never_ready(dir: &Path) -> PathBuf {
    patched_entry(dir, "spacecore-hangs.elf", [0xeb, 0xfe]) // jmp $
}

/// A copy of the test image whose first instruction is `ud2`: it loads, and crashes at once.
fn crashes_at_boot(dir: &Path) -> PathBuf {
    patched_entry(dir, "spacecore-crashes.elf", [0x0f, 0x0b]) // ud2
}

/// A copy of the test image, `name` in `dir`, with its entry point's first two bytes `code`.
fn patched_entry(dir: &Path, name: &str, code: [u8; 2]) -> PathBuf {
    let mut elf = std::fs::read(spacecore_tests::image()).expect("read the image");
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) as usize;
    let entry = u64_at(&elf, 24);
    let (phoff, phentsize, phnum) = (u64_at(&elf, 32) as usize, u16_at(&elf, 54), u16_at(&elf, 56));
    let offset = (0..phnum)
        .map(|i| phoff + i * phentsize)
        .find_map(|ph| {
            let (kind, offset, vaddr, filesz) = (
                u32::from_le_bytes(elf[ph..ph + 4].try_into().unwrap()),
                u64_at(&elf, ph + 8),
                u64_at(&elf, ph + 16),
                u64_at(&elf, ph + 32),
            );
            (kind == 1 && (vaddr..vaddr + filesz).contains(&entry)).then(|| (offset + entry - vaddr) as usize)
        })
        .expect("a loaded segment holds the entry point");
    elf[offset..offset + 2].copy_from_slice(&code);
    let path = dir.join(name);
    std::fs::write(&path, elf).expect("write the broken image");
    path
}

/// `boot_count` of `GET /`.
fn boot_count(addr: SocketAddr) -> u64 {
    let (code, answer) = status(addr);
    assert_eq!(code, 200, "{answer}");
    answer["boot_count"].as_u64().unwrap_or_else(|| panic!("no boot count: {answer}"))
}

/// Every task of `signed` keeps its signature: the same task gets the same answer, a
/// different answer to it is refused (409).
fn history_holds(addr: SocketAddr, signed: &[(u32, Value)]) {
    for (index, answer) in signed {
        let number = u64::from(*index) + 2;
        let (code, again) = post_task(addr, &task(*index, number));
        assert_eq!((code, &again), (200, answer), "task {index}: the same task, the same signature");
        let (code, other) = post_task(addr, &task(*index, number + 1));
        assert_eq!(code, 409, "task {index} signed twice with different answers: {other}");
    }
}

#[test]
fn a_signer_is_updated_under_a_stream_of_tasks_with_no_error_and_no_second_signature() {
    if !kvm_available("a_signer_is_updated_under_a_stream_of_tasks_with_no_error_and_no_second_signature") {
        return;
    }
    let mut cluster = signer("up-done");
    cluster.start(0);
    let addr = cluster.nodes[0].http.expect("published");
    let boots = boot_count(addr);
    let (code, before) = post_task(addr, &task(0, 2));
    assert_eq!(code, 200, "{before}");

    let next = another_build(cluster.dir());
    set_image(&cluster, &next);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = stream_tasks(addr, 1, 5, 90, stop.clone());
    let reader = stream_reads(addr, stop.clone());
    // Let the streams run before and after the switch.
    std::thread::sleep(Duration::from_millis(100));
    let began = Instant::now();
    let (code, output) = update(&cluster, &["--update-deadline", "20000"]);
    let took = began.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let stream = writer.join().expect("the task stream");
    let (reads, read_errors) = reader.join().expect("the reader");
    assert_eq!(code, Some(0), "{output}");
    assert!(
        read_errors.is_empty(),
        "client-visible errors of GET / during the update: {read_errors:?}\n{output}"
    );
    assert!(reads > 0);
    assert!(output.contains(&format!("update up-done-1: done: {} serves", next.display())), "{output}");
    assert!(
        stream.errors.is_empty(),
        "client-visible errors during the update: {:?}\n{output}",
        stream.errors
    );
    let during = stream.sent_between(began, began + took);
    assert!(during >= 1, "no task was sent during the update: {stream:?}");

    // Counted by the launcher.
    let run = cluster.nodes[0].run.as_ref().expect("running");
    update_thread_is_confined(run);
    let metrics = scrape_metrics(metrics_address(&run.seen).expect("a metrics line"));
    assert_eq!(
        sample(&metrics, "spacecore_launcher_updates_total{outcome=\"done\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "spacecore_launcher_updates_total{outcome=\"rolled_back\"}"), Some(0.0));
    let held = sample(&metrics, "spacecore_launcher_update_hold_seconds").expect("the hold of the update");
    // The reader's closed loop kept connecting through the hold: some waited in the relay.
    let waited = sample(&metrics, "spacecore_launcher_published_held_total{port=\"HTTP\"}").unwrap_or(0.0);
    assert!(waited >= 1.0, "no connection waited in the relay: {metrics}");
    eprintln!(
        "update: {} tasks signed, {during} of them sent during the update, {reads} GET / answered, 0 errors; the command took {} ms; new connections held {:.1} ms, {waited} of them; slowest task {} ms",
        stream.signed.len(),
        took.as_millis(),
        held * 1e3,
        stream.slowest.as_millis()
    );

    // One new boot of the same disk, the new image's; the history survived the switch.
    assert_eq!(boot_count(addr), boots + 1);
    history_holds(addr, &[(0, before)]);
    history_holds(addr, &stream.signed);
    let (code, output) = cluster.stop(0);
    assert_eq!(code, Some(0), "{output}");
    logged(
        &output,
        &[
            ("update_socket", "update: `hac-launch --update SPEC` reaches this launcher at "),
            ("update_started", &format!("update: {} (sha256:", next.display())),
            ("update_boot", "update: the guest stopped (guest exited with status 0); booting "),
            (
                "update_done",
                &format!("update: done: {} serves; new connections were held for ", next.display()),
            ),
        ],
    );
    assert!(!output.contains("restart 1 after"), "{output}");
}

/// Checks that the launcher's output has each `(event, message start)`: in the JSON log, a
/// launcher line with that event whose message starts so; in the text log, a launcher line with
/// that message.
fn logged(output: &str, expected: &[(&str, &str)]) {
    let json: Vec<Value> = output.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    for (event, start) in expected {
        let found = if json.is_empty() {
            output.lines().any(|l| l.split_once(" launcher] ").is_some_and(|(_, m)| m.starts_with(start)))
        } else {
            json.iter().any(|l| {
                l["source"] == "launcher"
                    && l["fields"]["event"] == *event
                    && l["message"].as_str().is_some_and(|m| m.starts_with(start))
            })
        };
        assert!(found, "no launcher line `{start}...` (event {event}): {output}");
    }
}

#[test]
fn a_new_image_that_never_becomes_ready_is_rolled_back_and_one_that_cannot_load_is_refused() {
    if !kvm_available(
        "a_new_image_that_never_becomes_ready_is_rolled_back_and_one_that_cannot_load_is_refused",
    ) {
        return;
    }
    let mut cluster = signer("up-back");
    cluster.start(0);
    let addr = cluster.nodes[0].http.expect("published");
    let boots = boot_count(addr);
    let (code, before) = post_task(addr, &task(0, 2));
    assert_eq!(code, 200, "{before}");

    // Not an ELF: refused before anything is touched.
    let garbage = cluster.dir().join("garbage.elf");
    std::fs::write(&garbage, b"this is not an image").unwrap();
    set_image(&cluster, &garbage);
    let (code, output) = update(&cluster, &[]);
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("refused: cannot load image ")
            && output.contains("the running guest was not touched"),
        "{output}"
    );
    assert_eq!(boot_count(addr), boots, "the guest was not touched");

    // Boots, never ready: stopped at the deadline, the old image boots again on the same disk.
    let hangs = never_ready(cluster.dir());
    set_image(&cluster, &hangs);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = stream_tasks(addr, 1, 3, 90, stop.clone());
    std::thread::sleep(Duration::from_millis(50));
    let began = Instant::now();
    // A second update asked while the first one runs (it lasts at least its 1.5 s deadline) is
    // refused; whichever of the two the launcher took first, the other is the one refused.
    let first = {
        let command = update_command(&cluster, &["--update-deadline", "1500"]);
        std::thread::spawn(move || run_update(command))
    };
    std::thread::sleep(Duration::from_millis(500));
    let second = update(&cluster, &["--update-deadline", "1500"]);
    let first = first.join().expect("the first update");
    let took = began.elapsed();
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let stream = writer.join().expect("the task stream");
    let ((code, output), (refused_code, refused)) =
        if first.0 == Some(1) { (second, first) } else { (first, second) };
    assert_eq!(refused_code, Some(1), "{refused}");
    assert!(
        refused.contains("refused: another update is in progress; the running guest was not touched"),
        "{refused}"
    );
    assert_eq!(code, Some(3), "{output}");
    assert!(
        output.contains(&format!("{} was not ready within 1500 ms of its boot", hangs.display())),
        "{output}"
    );
    assert!(output.contains("rolled back: "), "{output}");
    assert!(
        stream.errors.is_empty(),
        "client-visible errors during the rollback: {:?}\n{output}",
        stream.errors
    );
    let during = stream.sent_between(began, began + took);
    assert!(during >= 1, "no task was sent during the update: {stream:?}");
    eprintln!(
        "rollback: {during} tasks sent during the update, 0 errors; the command took {} ms; slowest task {} ms",
        took.as_millis(),
        stream.slowest.as_millis()
    );

    let run = cluster.nodes[0].run.as_ref().expect("running");
    let metrics = scrape_metrics(metrics_address(&run.seen).expect("a metrics line"));
    assert_eq!(
        sample(&metrics, "spacecore_launcher_updates_total{outcome=\"rolled_back\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "spacecore_launcher_updates_total{outcome=\"done\"}"),
        Some(0.0),
        "{metrics}"
    );

    // Crashes at its first instruction: rolled back at once, whatever the deadline.
    let crashes = crashes_at_boot(cluster.dir());
    set_image(&cluster, &crashes);
    let (code, crash_output) = update(&cluster, &[]);
    assert_eq!(code, Some(3), "{crash_output}");
    assert!(crash_output.contains("rolled back: "), "{crash_output}");
    eprintln!("crash at boot: {}", crash_output.lines().last().unwrap_or_default());

    // One boot more of the disk per rollback (the broken images never ran far enough to count
    // their own), the same history.
    assert_eq!(boot_count(addr), boots + 2);
    history_holds(addr, &[(0, before)]);
    history_holds(addr, &stream.signed);
    let (code, output) = cluster.stop(0);
    assert_eq!(code, Some(0), "{output}");
    let failed = format!(
        "update: {} failed (guest failed its health checks: update: was not ready within 1500 ms of its boot); booting ",
        hangs.display()
    );
    logged(
        &output,
        &[
            ("update_refused", "update: refused: cannot load image "),
            ("update_refused", "update: refused: another update is in progress"),
            ("update_rollback", &failed),
            ("update_rolled_back", "update: rolled back: "),
            ("update_rollback", &format!("update: {} failed (guest crashed: ", crashes.display())),
        ],
    );
}

#[test]
fn the_update_thread_runs_under_its_seccomp_filter() {
    let test = "the_update_thread_runs_under_its_seccomp_filter";
    if !kvm_available(test) {
        return;
    }
    if !cfg!(debug_assertions) {
        // The selftest hook exists in debug builds of the launcher only.
        spacecore_tests::skip(test, "SPACECORE_JAIL_SELFTEST is compiled into debug builds only");
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        spacecore_tests::skip(test, "the launcher confines itself only when started as root");
        return;
    }
    // The update thread makes a call its filter forbids as soon as the filter is in place: the
    // kernel kills the launcher.
    let specs = spacecore_tests::Specs::new();
    let tables = "[spec.networking.inbound_ports]\nHTTP = 80\n[spec.networking.publish]\nHTTP = 0\n\
                  [spec.operations]\nupdateStrategy = \"RollingUpdate\"\n";
    let spec = specs.spacecore("up-sigsys", "cpu = 1\nmemory = \"64Mi\"", tables, "{image}");
    let mut child = Command::new(spacecore_tests::launcher())
        .args([spec.to_str().unwrap(), "--uid", "64011", "--gid", "64011"])
        .env("SPACECORE_STATE_DIR", specs.dir())
        .env("SPACECORE_JAIL_SELFTEST", "update")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run hac-launch");
    // Were the filter missing, the launcher would run on: it is killed after LIMIT.
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for hac-launch") {
            break status;
        }
        if began.elapsed() > LIMIT {
            let _ = child.kill();
            break child.wait().expect("reap hac-launch");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGSYS), "the launcher was not killed by its filter: {status:?}");
}

/// `--update` follows `spec.operations.updateStrategy`: without `RollingUpdate` (the default is
/// `Recreate`), and for a scaled spacecore, it is refused (status 1) before anything is asked
/// of a launcher, saying what to do instead.
#[test]
fn an_update_is_refused_unless_the_spec_asks_for_rolling_updates() {
    let specs = spacecore_tests::Specs::new();
    for (name, operations, why) in [
        ("up-default", "", "updateStrategy is \"Recreate\" (the default)"),
        (
            "up-recreate",
            "[spec.operations]\nupdateStrategy = \"Recreate\"\n",
            "updateStrategy is \"Recreate\"",
        ),
    ] {
        let spec = specs.spacecore(name, "cpu = 1\nmemory = \"64Mi\"", operations, "{image}");
        let out = specs.launch(&["--update", spec.to_str().unwrap()]);
        let text = spacecore_tests::text(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains(&format!("update {name}: refused: spec.operations.{why}")), "{text}");
        assert!(!text.contains("cannot reach the launcher"), "nothing was asked of a launcher: {text}");
    }
}
