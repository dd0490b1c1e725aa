//! Helpers for the tests that boot the real Spacecore image on `/dev/kvm`.
//!
//! They build what they need (the image with the kernel-app's own cargo workspace, the launcher
//! with this workspace's cargo) if it is missing, write spec files into a temporary directory,
//! and run `hac-launch` as an operator would. [`cluster`] runs whole AVS clusters (spacecores
//! and the aggregator), and [`independent`] checks BLS signatures without `blst`.

pub mod cluster;
pub mod independent;

/// The launcher's JSON log, which every spec written here turns on and the tests read.
pub use test_support::log::{LogLine, Source};
/// Skips that `cargo xtask test` reports, and promtool: shared with the other crates' tests.
pub use test_support::{promtool_check, skip};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

/// Whether `/dev/kvm` can be used by `test`. When it cannot, the test is recorded as skipped
/// ([`test_support::kvm`]: `cargo xtask test` counts and names it, and without that record the
/// test fails) and the caller returns at once.
pub fn kvm_available(test: &str) -> bool {
    test_support::kvm(test)
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `cargo xtask ARGS`, run from the workspace as a developer runs it (builds land in the
/// workspace's own target directories).
pub fn xtask<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Command {
    let mut cmd = cargo();
    cmd.args(["run", "--quiet", "-p", "xtask", "--"])
        .args(args)
        .current_dir(workspace())
        .env_remove("CARGO_TARGET_DIR");
    cmd
}

/// Builds an image with `cargo xtask build-image` (`--avs AVS`, a crate's directory, if given;
/// the default image, incredible-squaring's, otherwise) into the image store `store`, and returns the ELF
/// registered as `NAME:latest`.
pub fn build_image_into(store: &Path, avs: Option<&Path>, name: &str) -> PathBuf {
    let mut cmd = xtask(["build-image"]);
    if let Some(avs) = avs {
        cmd.arg("--avs").arg(avs);
    }
    let status = cmd.env("SPACECORE_IMAGE_STORE", store).status().expect("run cargo xtask build-image");
    assert!(status.success(), "cargo xtask build-image {avs:?} failed: {status}");
    let elf = store.join(name).join("latest").join("image.elf");
    assert!(elf.is_file(), "{} was not registered", elf.display());
    elf
}

/// Runs the `cargo build` of `cmd` and returns the path of the executable `bin` it built (from
/// cargo's JSON messages, so wherever the target directory is, `CARGO_TARGET_DIR` included).
fn build(mut cmd: Command, bin: &str) -> PathBuf {
    cmd.arg("--message-format=json-render-diagnostics").stdout(Stdio::piped());
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run cargo to build {bin}: {e}"));
    assert!(output.status.success(), "building {bin} failed: {}", output.status);
    let executable = String::from_utf8_lossy(&output.stdout).lines().find_map(|line| {
        let message: serde_json::Value = serde_json::from_str(line).ok()?;
        (message["reason"] == "compiler-artifact" && message["target"]["name"] == bin)
            .then(|| message["executable"].as_str().map(PathBuf::from))?
    });
    executable.unwrap_or_else(|| panic!("cargo built no executable named {bin}"))
}

/// The default unikernel image (the runtime with `avs/incredible-squaring`), built by `cargo
/// xtask build-image` into an image store of the tests' own under `target/` if it is not up to
/// date.
pub fn image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| build_image_into(&workspace().join("target").join("test-images"), None, "spacecore"))
}

/// The binary `bin` of the workspace package `package`, in this build profile, brought up to
/// date first (a no-op when `cargo test --workspace` has just built it).
fn host_binary(package: &str, bin: &str) -> PathBuf {
    // Test binaries live in <target>/<profile>/deps.
    let exe = std::env::current_exe().expect("test executable path");
    let release = exe.parent().and_then(Path::parent).is_some_and(|profile| profile.ends_with("release"));
    let mut cmd = cargo();
    cmd.args(["build", "--quiet", "-p", package, "--bin", bin]).current_dir(workspace());
    if release {
        cmd.arg("--release");
    }
    build(cmd, bin)
}

/// The `hac-launch` binary of this build profile.
pub fn launcher() -> &'static Path {
    static LAUNCHER: OnceLock<PathBuf> = OnceLock::new();
    LAUNCHER.get_or_init(|| host_binary("host-launcher", "hac-launch"))
}

/// The operator's CLI, `spacecore`, of this build profile.
pub fn cli() -> &'static Path {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| host_binary("spacecore-cli", "spacecore"))
}

/// The `aggregator` binary of this build profile.
pub fn aggregator() -> &'static Path {
    static AGGREGATOR: OnceLock<PathBuf> = OnceLock::new();
    AGGREGATOR.get_or_init(|| host_binary("aggregator", "aggregator"))
}

/// A temporary directory holding spec files; it is also the launcher's state directory
/// (`SPACECORE_STATE_DIR`), so disks created by default land there.
#[derive(Debug)]
pub struct Specs {
    dir: tempfile::TempDir,
}

impl Specs {
    /// A new, empty directory.
    pub fn new() -> Self {
        Specs { dir: tempfile::tempdir().expect("temporary directory") }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `hac-launch ARGS` with this directory as the state directory, run to completion.
    pub fn launch(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run hac-launch")
    }

    /// Starts `hac-launch ARGS` with this directory as the state directory.
    pub fn start(&self, args: &[&str]) -> Running {
        Running::spawn(self.command(args))
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = command(args);
        cmd.env("SPACECORE_STATE_DIR", self.dir.path());
        cmd
    }

    /// Writes `name.toml` with `body`, where `{image}` stands for the image path.
    pub fn write(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, body.replace("{image}", &image().display().to_string())).expect("write spec");
        path
    }

    /// A minimal spec for `name` with `cpu` vCPUs and `memory`.
    pub fn minimal(&self, name: &str, cpu: u32, memory: &str) -> PathBuf {
        self.spacecore(name, &format!("cpu = {cpu}\nmemory = \"{memory}\""), "", "{image}")
    }

    /// Writes `name.toml` for the spacecore `name`: `resources` are the lines of
    /// `[spec.resources]` (its first line is the file's line 6), `tables` follow it, and `image`
    /// is the deployment image (`{image}` for the test image).
    pub fn spacecore(&self, name: &str, resources: &str, tables: &str, image: &str) -> PathBuf {
        self.write(name, &spec_text(name, resources, tables, image))
    }
}

impl Default for Specs {
    fn default() -> Self {
        Self::new()
    }
}

/// The text of a spec for the spacecore `name`: `resources` are the lines of `[spec.resources]`
/// (its first line is the file's line 6), `tables` follow it, and `image` is the deployment
/// image, written as it is between quotes. The launcher's JSON log is on (`logging = "json"`
/// added to `[spec.observability]`, unless `tables` name a `logging`): the tests read its
/// events and lines ([`LogLine`]), not the human lines.
pub fn spec_text(name: &str, resources: &str, tables: &str, image: &str) -> String {
    let tables = test_support::log::with_json_logging(tables);
    format!(
        "apiVersion = \"vistara.eigenlayer/v1\"\nkind = \"AVSSpaceCore\"\n[metadata]\nname = \"{name}\"\n\
         [spec.resources]\n{resources}\n{tables}\n[spec.deployment]\nimage = \"{image}\"\n"
    )
}

/// Every line of a launcher's stdout in the JSON format, parsed; panics at a line that is not a
/// JSON log line.
pub fn log_lines(text: &str) -> Vec<LogLine> {
    test_support::log::lines(text)
}

/// The JSON log lines of a finished launcher's stdout (its stderr, `hac-launch: ...`, is not
/// part of the log).
pub fn output_lines(output: &Output) -> Vec<LogLine> {
    log_lines(&String::from_utf8_lossy(&output.stdout))
}

/// Launcher lines of `lines` whose message starts with `start`.
pub fn count_launcher(lines: &[LogLine], start: &str) -> usize {
    lines.iter().filter(|l| l.launcher(start).is_some()).count()
}

/// The launcher's events `event` among `lines`.
pub fn events<'a>(lines: &'a [LogLine], event: &'a str) -> impl Iterator<Item = &'a LogLine> + 'a {
    lines.iter().filter(move |l| l.is_event(event))
}

/// `hac-launch ARGS`, run to completion with an isolated image store.
pub fn launch(args: &[&str]) -> Output {
    command(args).output().expect("run hac-launch")
}

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(launcher());
    cmd.args(args).env("SPACECORE_IMAGE_STORE", workspace().join("target/test-image-store"));
    cmd
}

/// A running `hac-launch` whose stdout lines arrive on a channel.
#[derive(Debug)]
pub struct Running {
    /// The launcher process.
    pub child: Child,
    lines: Receiver<String>,
    /// Every line seen so far.
    pub seen: Vec<String>,
}

impl Running {
    /// Starts `hac-launch ARGS`.
    pub fn start(args: &[&str]) -> Self {
        Self::spawn(command(args))
    }

    /// Starts `cmd`, a `hac-launch` command line, with its standard output read line by line.
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start hac-launch");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines, seen: Vec::new() }
    }

    /// Waits (at most `limit`) for the next JSON log line to come for which `hit` holds; `None`
    /// if none came in time (or the launcher's output ended). Panics at a line that is not a
    /// JSON log line.
    pub fn next_where(&mut self, limit: Duration, mut hit: impl FnMut(&LogLine) -> bool) -> Option<LogLine> {
        let deadline = std::time::Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let parsed =
                        LogLine::parse(&line).unwrap_or_else(|e| panic!("{e}\nafter {:#?}", self.seen));
                    self.seen.push(line);
                    if hit(&parsed) {
                        return Some(parsed);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// The first JSON log line for which `hit` holds, among the lines seen so far or, waiting at
    /// most `limit`, the lines to come.
    pub fn find_where(&mut self, limit: Duration, mut hit: impl FnMut(&LogLine) -> bool) -> Option<LogLine> {
        if let Some(line) = self.log().into_iter().find(|l| hit(l)) {
            return Some(line);
        }
        self.next_where(limit, hit)
    }

    /// The next line, whatever it says (at most `limit`).
    pub fn next_line(&mut self, limit: Duration) -> Option<LogLine> {
        self.next_where(limit, |_| true)
    }

    /// Waits (at most `limit`) for the launcher's next `ready` event: its `ready_us`.
    pub fn wait_ready(&mut self, limit: Duration) -> Option<u64> {
        self.next_where(limit, |l| l.ready_us().is_some()).and_then(|l| l.ready_us())
    }

    /// Waits (at most `limit`) for the launcher's next event `event`.
    pub fn wait_event(&mut self, event: &str, limit: Duration) -> Option<LogLine> {
        self.next_where(limit, |l| l.is_event(event))
    }

    /// The first launcher line whose message starts with `start`, seen or to come (at most
    /// `limit`).
    pub fn find_launcher(&mut self, start: &str, limit: Duration) -> Option<LogLine> {
        self.find_where(limit, |l| l.launcher(start).is_some())
    }

    /// The first guest line whose message starts with `start`, seen or to come (at most
    /// `limit`).
    pub fn find_guest(&mut self, start: &str, limit: Duration) -> Option<LogLine> {
        self.find_where(limit, |l| l.guest(start).is_some())
    }

    /// Every line seen so far, parsed.
    pub fn log(&self) -> Vec<LogLine> {
        log_lines(&self.seen.join("\n"))
    }

    /// Sends `signal` to the launcher.
    pub fn signal(&self, signal: i32) {
        let pid = self.child.id() as i32;
        // SAFETY: kill(2) on the pid of a child this test owns and has not reaped yet.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({pid}, {signal})");
    }

    /// SIGTERM, then [`Running::finish`], which must end with exit code 0 (panics with the
    /// output otherwise); all its output lines.
    pub fn stop(self, limit: Duration) -> String {
        self.signal(libc::SIGTERM);
        let (code, output) = self.finish(limit);
        assert_eq!(code, Some(0), "{output}");
        output
    }

    /// Waits for exit (killing the launcher after `limit`) and returns its status code and
    /// all its output lines.
    pub fn finish(mut self, limit: Duration) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for hac-launch") {
                break status;
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                break self.child.wait().expect("reap hac-launch");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        (status.code(), self.seen.join("\n"))
    }
}

impl Drop for Running {
    /// A test that fails midway must not leave its launcher running; if it is failing, the
    /// launcher's output is printed, to tell why.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line);
            }
            eprintln!("--- output of launcher {} ---\n{}\n---", self.child.id(), self.seen.join("\n"));
        }
    }
}

/// The network namespace of a running launcher's spacecore: the one of its threads that is not
/// in the test's own namespace.
pub fn spacecore_netns(pid: u32) -> std::fs::File {
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let ns = task.path().join("ns/net");
        if std::fs::read_link(&ns).is_ok_and(|link| link != own) {
            return std::fs::File::open(ns).unwrap();
        }
    }
    panic!("no thread of launcher {pid} is in a namespace of its own");
}

/// Runs `f` on a thread moved into the namespace `ns`: the sockets it opens belong there (and
/// can be used from any thread afterwards).
pub fn inside<T: Send>(ns: &std::fs::File, f: impl FnOnce() -> T + Send) -> T {
    use std::os::fd::AsRawFd;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on an open namespace descriptor; it moves only this thread.
            assert_eq!(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
            f()
        })
        .join()
        .unwrap()
    })
}

/// Everything a finished launcher printed, stdout then stderr.
pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The host address of the published port `name`, from the launcher's
/// `published NAME: ADDR -> guest ...` line of the JSON log (launcher lines only: a guest cannot
/// fake it; no event carries the address, so it is read from the message).
pub fn published(lines: &[String], name: &str) -> Option<std::net::SocketAddr> {
    log_lines(&lines.join("\n")).iter().find_map(|l| l.published(name))
}

/// The address of the launcher's metrics server, from its `metrics` event's `address`.
pub fn metrics_address(lines: &[String]) -> Option<std::net::SocketAddr> {
    log_lines(&lines.join("\n")).iter().find(|l| l.is_event("metrics"))?.str_field("address")?.parse().ok()
}

/// `GET /metrics` of a Prometheus endpoint at `addr` (the server closes the connection): the
/// body, after checking the status is 200 and the content type the text format's.
pub fn scrape_metrics(addr: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut stream = connect(addr);
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n").expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the metrics (the server closes the connection)");
    let text = String::from_utf8(answer).expect("UTF-8 metrics");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_owned()));
    assert!(content_type.is_some_and(|t| t.starts_with("text/plain; version=0.0.4")), "{head}");
    body.to_owned()
}

/// The value of the sample `series` (name and labels as written) in the exposition `text`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

/// One HTTP/1.1 exchange on `stream` (keep-alive): returns the status and the body.
pub fn http(stream: &mut std::net::TcpStream, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    exchange(stream, method, path, "", body)
}

/// [`http`] with a JSON body (`Content-Type: application/json`).
pub fn http_json(stream: &mut std::net::TcpStream, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    exchange(stream, method, path, "Content-Type: application/json\r\n", body)
}

fn exchange(
    stream: &mut std::net::TcpStream,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: spacecore\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send head");
    stream.write_all(body).expect("send body");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).expect("read response head");
        assert!(n > 0, "connection closed before a response: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).expect("read response body");
        assert!(n > 0, "connection closed in the middle of a body");
        buf.extend_from_slice(&chunk[..n]);
    }
    (status, buf[head_end..head_end + length].to_vec())
}

/// A connection to `addr` with read/write timeouts, so a broken server fails the test rather
/// than hanging it.
pub fn connect(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}
