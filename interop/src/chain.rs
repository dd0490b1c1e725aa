//! A local chain for tests: the pinned Anvil and solc-js that `cargo xtask test` installs
//! (`SPACECORE_ANVIL`, `SPACECORE_SOLCJS`; see `docs/chain.md`), an Anvil node on a free
//! loopback port that is killed when dropped, and solc-js compiling Solidity sources.
//!
//! A test that needs a tool and finds its variable unset fails (it never skips): the message
//! says to run it through `cargo xtask test` or after `eval "$(cargo xtask chain-tools)"`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The variable naming the Anvil executable.
pub const ANVIL_ENV: &str = "SPACECORE_ANVIL";
/// The variable naming solc-js's `solc.js` (run with `node`).
pub const SOLCJS_ENV: &str = "SPACECORE_SOLCJS";
/// How long Anvil may take to listen before the start counts as failed.
const ANVIL_START_LIMIT: Duration = Duration::from_secs(30);
/// Anvil's chain id here (its default).
pub const CHAIN_ID: u64 = 31337;

/// Why a tool could not be used.
#[derive(Debug)]
pub struct ChainError(pub String);

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ChainError {}

fn fail<T>(message: impl Into<String>) -> Result<T, ChainError> {
    Err(ChainError(message.into()))
}

/// The path in `var`, or an error saying how to get it set.
pub fn tool_path(var: &str) -> Result<PathBuf, ChainError> {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return fail(format!("{var}={} is not a file", path.display()));
            }
            Ok(path)
        }
        _ => fail(format!(
            "{var} is not set: this test needs the pinned tool that `cargo xtask test` installs. \
             Run it through `cargo xtask test`, or first `eval \"$(cargo xtask chain-tools)\"`"
        )),
    }
}

/// An Anvil node on `127.0.0.1`, killed (and reaped) when dropped.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    port: u16,
    /// How long the start took, from spawning to listening.
    pub start_time: Duration,
}

impl Anvil {
    /// Starts the pinned Anvil on a free loopback port and waits until it listens.
    pub fn start() -> Result<Self, ChainError> {
        let path = tool_path(ANVIL_ENV)?;
        // A port the kernel just gave out; another process could take it before Anvil binds
        // it, so a start that fails is retried on a fresh port.
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            match Self::start_on(&path, port) {
                Ok(anvil) => return Ok(anvil),
                Err(e) => last = e.0,
            }
        }
        fail(format!("Anvil did not start in three attempts; last: {last}"))
    }

    fn start_on(path: &PathBuf, port: u16) -> Result<Self, ChainError> {
        let started = Instant::now();
        let mut child = Command::new(path)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--chain-id", &CHAIN_ID.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ChainError(format!("cannot run {} ({ANVIL_ENV}): {e}", path.display())))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        // Reads stdout until Anvil says it listens, then drains it so Anvil never blocks.
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if line.starts_with("Listening on ") {
                    let _ = tx.send(line);
                    break;
                }
            }
            for _ in lines {}
        });
        let mut anvil = Anvil { child, port, start_time: Duration::ZERO };
        match rx.recv_timeout(ANVIL_START_LIMIT) {
            Ok(line) if line.ends_with(&format!(":{port}")) => {
                anvil.start_time = started.elapsed();
                Ok(anvil)
            }
            Ok(line) => fail(format!("Anvil says `{line}`, not port {port}")),
            Err(_) => {
                let _ = anvil.child.kill();
                let mut stderr = String::new();
                if let Some(mut e) = anvil.child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                fail(format!(
                    "Anvil on port {port} did not listen within {ANVIL_START_LIMIT:?}: {}",
                    stderr.trim()
                ))
            }
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, ChainError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| ChainError(format!("cannot bind a loopback port: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| ChainError(format!("no local address: {e}")))
}

/// A compiled contract: its ABI (JSON) and creation bytecode.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The ABI, as solc writes it.
    pub abi: Value,
    /// The creation bytecode.
    pub bytecode: Vec<u8>,
}

/// Compiles `sources` (file name, text) with the pinned solc-js (optimizer on, 200 runs) and
/// returns every contract with bytecode, keyed `file:Contract`. Any error of the compiler
/// fails, with its messages.
pub fn compile(sources: &[(&str, &str)]) -> Result<BTreeMap<String, Compiled>, ChainError> {
    let solcjs = tool_path(SOLCJS_ENV)?;
    let mut files = serde_json::Map::new();
    for (name, text) in sources {
        files.insert((*name).to_owned(), json!({ "content": text }));
    }
    let input = json!({
        "language": "Solidity",
        "sources": files,
        "settings": {
            "optimizer": { "enabled": true, "runs": 200 },
            "outputSelection": { "*": { "*": ["abi", "evm.bytecode.object"] } },
        },
    });
    let mut child = Command::new(node())
        .arg(&solcjs)
        .arg("--standard-json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ChainError(format!("cannot run node {} ({SOLCJS_ENV}): {e}", solcjs.display())))?;
    let mut stdin = child.stdin.take().expect("piped");
    let text = input.to_string();
    let writer = thread::spawn(move || stdin.write_all(text.as_bytes()));
    let output = child.wait_with_output().map_err(|e| ChainError(format!("solc-js: {e}")))?;
    let _ = writer.join();
    if !output.status.success() {
        return fail(format!(
            "solc-js failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // solc-js may print notes (e.g. about SMT solvers) before the JSON document.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let start = stdout
        .find("\n{")
        .map(|i| i + 1)
        .or_else(|| stdout.starts_with('{').then_some(0))
        .ok_or_else(|| ChainError(format!("solc-js wrote no JSON: {}", stdout.trim())))?;
    let out: Value = serde_json::from_str(&stdout[start..])
        .map_err(|e| ChainError(format!("solc-js output is not JSON: {e}")))?;
    let errors: Vec<String> = out["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["severity"] == "error")
        .map(|e| e["formattedMessage"].as_str().unwrap_or("(no message)").to_owned())
        .collect();
    if !errors.is_empty() {
        return fail(format!("solc-js: {}", errors.join("\n")));
    }
    let mut contracts = BTreeMap::new();
    for (file, list) in out["contracts"].as_object().into_iter().flatten() {
        for (name, contract) in list.as_object().into_iter().flatten() {
            let hex = contract["evm"]["bytecode"]["object"].as_str().unwrap_or_default();
            if hex.is_empty() {
                continue; // an interface or abstract contract
            }
            let bytecode =
                decode_hex(hex).ok_or_else(|| ChainError(format!("{file}:{name}: bytecode is not hex")))?;
            contracts.insert(format!("{file}:{name}"), Compiled { abi: contract["abi"].clone(), bytecode });
        }
    }
    Ok(contracts)
}

/// `node`, or `$NODE` when set.
fn node() -> OsString {
    std::env::var_os("NODE").filter(|n| !n.is_empty()).unwrap_or_else(|| "node".into())
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_tool_variable_says_how_to_set_it() {
        let error = tool_path("SPACECORE_INTEROP_NEVER_SET").unwrap_err().0;
        assert!(error.contains("SPACECORE_INTEROP_NEVER_SET is not set"), "{error}");
        assert!(error.contains("cargo xtask test"), "{error}");
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex("0x00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
