//! Chain mode's inputs, without a chain: the keystores and password files
//! (`chain::keys::load_signer`), the Ethereum endpoint check, and the binary's options (every
//! chain option required with `--eth-rpc`, none with `--operators`, errors naming the file).
//! The chain itself is exercised in `interop/tests/onchain_task_manager.rs`, against Anvil.

use std::path::{Path, PathBuf};
use std::process::Command;

use aggregator::chain::keys::load_signer;
use avs_protocol::keccak256;
use eip2335::Kdf;
use eip2335::web3::EcdsaKeystore;

/// The secp256k1 key 0x01…01 and its address (checked against avs_protocol's ECDSA).
const SECRET: [u8; 32] = [1; 32];

fn address() -> [u8; 20] {
    avs_protocol::ecdsa::SecretKey::from_bytes(&SECRET).unwrap().address()
}

fn keystore(dir: &Path, address: Option<[u8; 20]>, password: &str) -> PathBuf {
    let file = EcdsaKeystore::encrypt(
        &SECRET,
        password.as_bytes(),
        address,
        Kdf::Pbkdf2 { c: 16 },
        keccak256(b"salt"),
        [7; 16],
        "5a3e0c52-3a4c-4b1e-8d2f-1d2c3b4a5f60",
    )
    .unwrap();
    let path = dir.join("key.json");
    std::fs::write(&path, file.to_json()).unwrap();
    path
}

fn password(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("password");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn keystores_load_and_their_errors_name_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = keystore(dir.path(), Some(address()), "secret");
    // One trailing newline (either style) is not part of the password.
    for text in ["secret", "secret\n", "secret\r\n"] {
        let signer = load_signer(&path, &password(dir.path(), text)).expect("the keystore opens");
        assert_eq!(signer.address().0.0, address(), "{text:?}");
    }
    let shown = |e: anyhow::Error| format!("{e:#}");

    let e = shown(load_signer(&path, &password(dir.path(), "other")).unwrap_err());
    assert!(e.contains("key.json") && e.contains("crypto.mac: wrong password"), "{e}");
    assert!(!e.contains("0101010101"), "the secret never appears: {e}");

    let other = [9u8; 20];
    let path = keystore(dir.path(), Some(other), "secret");
    let e = shown(load_signer(&path, &password(dir.path(), "secret")).unwrap_err());
    assert!(e.contains("address: 0x0909") && e.contains("is not the address of the keystore's key"), "{e}");

    // No address recorded: the key is taken as it is.
    let path = keystore(dir.path(), None, "secret");
    assert_eq!(load_signer(&path, &password(dir.path(), "secret")).unwrap().address().0.0, address());

    std::fs::write(&path, "{\"version\": 4}").unwrap();
    let e = shown(load_signer(&path, &password(dir.path(), "secret")).unwrap_err());
    assert!(e.contains("key.json") && e.contains("version"), "{e}");
    std::fs::write(&path, vec![b' '; 70_000]).unwrap();
    let e = shown(load_signer(&path, &password(dir.path(), "secret")).unwrap_err());
    assert!(e.contains("larger than"), "{e}");
    let e = shown(load_signer(&dir.path().join("absent.json"), &password(dir.path(), "x")).unwrap_err());
    assert!(e.contains("absent.json"), "{e}");
    let path = keystore(dir.path(), None, "secret");
    std::fs::write(dir.path().join("password"), [0xff, 0xfe]).unwrap();
    let e = shown(load_signer(&path, &dir.path().join("password")).unwrap_err());
    assert!(e.contains("not UTF-8"), "{e}");
}

fn aggregator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aggregator"))
}

#[test]
fn the_binary_wants_every_chain_option_and_a_loopback_endpoint() {
    // --eth-rpc alone: clap names the missing options (usage error, status 2).
    let out = aggregator().args(["--eth-rpc", "http://127.0.0.1:1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--task-manager") && stderr.contains("--aggregator-keystore"), "{stderr}");

    // Both modes at once.
    let out =
        aggregator().args(["--operators", "x.toml", "--eth-rpc", "http://127.0.0.1:1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    let dir = tempfile::tempdir().unwrap();
    let key = keystore(dir.path(), Some(address()), "secret");
    let pass = password(dir.path(), "secret\n");
    let run = |url: &str, task_manager: &str| {
        let a = "0x00000000000000000000000000000000000000aa";
        aggregator()
            .args(["--eth-rpc", url, "--task-manager", task_manager])
            .args(["--operator-state-retriever", a, "--registry-coordinator", a])
            .arg("--task-generator-keystore")
            .arg(&key)
            .arg("--task-generator-password")
            .arg(&pass)
            .arg("--aggregator-keystore")
            .arg(&key)
            .arg("--aggregator-password")
            .arg(&pass)
            .arg("--check")
            .output()
            .unwrap()
    };
    let a = "0x00000000000000000000000000000000000000aa";
    let out = run("https://127.0.0.1:1", a);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--eth-rpc") && stderr.contains("http://"), "{stderr}");
    let out = run("http://192.0.2.1:8545", a);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not on loopback"), "{stderr}");
    let out = run("http://127.0.0.1:8545", "0x1234");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("0x and 40 hex digits"), "{stderr}");
    // Nothing listens on port 1: the first call fails, naming the endpoint.
    let out = run("http://127.0.0.1:1", a);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--eth-rpc http://127.0.0.1:1") && stderr.contains("eth_chainId"), "{stderr}");
}
