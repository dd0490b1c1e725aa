//! Running the `spacecore` binary, and the py_ecc vectors of `avs-protocol/tests/vectors.rs`.
#![allow(dead_code)] // each test file uses a different part

use avs_protocol::bls::SecretKey;
use avs_protocol::{bn254, ecdsa};
use eip2335::web3::{BlsKeyFile, EcdsaKeystore};
use eip2335::{Kdf, Keystore};
use std::path::{Path, PathBuf};
use std::process::Command;

include!(concat!(env!("CARGO_MANIFEST_DIR"), "/../avs-protocol/tests/bls_vectors.in"));

/// What a run of the binary gave.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The only line of standard output; panics unless the run succeeded with one line.
    pub fn line(&self) -> &str {
        assert_eq!(self.code, Some(0), "{self:?}");
        let mut lines = self.stdout.lines();
        let line = lines.next().unwrap_or_else(|| panic!("no output: {self:?}"));
        assert_eq!(lines.next(), None, "{self:?}");
        line
    }

    /// The lines of standard output; panics unless the run succeeded.
    pub fn lines(&self) -> Vec<String> {
        assert_eq!(self.code, Some(0), "{self:?}");
        self.stdout.lines().map(str::to_owned).collect()
    }

    /// Standard output parsed as one JSON value; panics unless the run succeeded.
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, Some(0), "{self:?}");
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// Checks that the run failed with status 2 and `needle` in its error.
    pub fn fails_with(&self, needle: &str) {
        assert_eq!(self.code, Some(2), "{self:?}");
        assert!(self.stderr.contains(needle), "{needle:?} not in {self:?}");
    }
}

/// Runs `spacecore ARGS`.
pub fn spacecore<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_spacecore")).args(args).output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Writes a password file of mode 0600 holding `password` and a newline.
pub fn password_file(dir: &Path, name: &str, password: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A keystore of `secret_hex` under `password`, with a cheap KDF (PBKDF2, c = 16) so tests
/// stay fast; returns its path.
pub fn cheap_keystore(dir: &Path, name: &str, secret_hex: &str, password: &str) -> PathBuf {
    let secret: [u8; 32] = avs_protocol::encoding::from_hex(secret_hex).unwrap().try_into().unwrap();
    let pubkey = SecretKey::from_bytes(&secret).unwrap().public_key().to_bytes();
    let pubkey_hex: String = pubkey.iter().map(|b| format!("{b:02x}")).collect();
    let (salt, iv) = ([7; 32], [9; 16]);
    let uuid = "4f6b0c4e-9a9b-4c67-8f41-0d5b0c8e1c2a";
    let keystore =
        Keystore::encrypt(&secret, password, &pubkey_hex, "", Kdf::Pbkdf2 { c: 16 }, salt, iv, uuid).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, keystore.to_json()).unwrap();
    path
}

/// 32 bytes of hex.
pub fn secret32(secret_hex: &str) -> [u8; 32] {
    avs_protocol::encoding::from_hex(secret_hex).unwrap().try_into().unwrap()
}

/// An eigensdk BLS key file of the BN254 key `secret_hex` under `password`, PBKDF2 with c = 16;
/// returns its path.
pub fn cheap_bn254_file(dir: &Path, name: &str, secret_hex: &str, password: &str) -> PathBuf {
    let secret = secret32(secret_hex);
    let g1 = bn254::SecretKey::from_bytes(&secret).unwrap().public_key().g1().to_bytes();
    let file =
        BlsKeyFile::encrypt(&secret, password.as_bytes(), &g1, Kdf::Pbkdf2 { c: 16 }, [3; 32], [4; 16])
            .unwrap();
    let path = dir.join(name);
    std::fs::write(&path, file.to_json()).unwrap();
    path
}

/// An Ethereum v3 keystore of the secp256k1 key `secret_hex` under `password`, PBKDF2 with
/// c = 16, with its address; returns its path.
pub fn cheap_ecdsa_keystore(dir: &Path, name: &str, secret_hex: &str, password: &str) -> PathBuf {
    let secret = secret32(secret_hex);
    let address = ecdsa::SecretKey::from_bytes(&secret).unwrap().address();
    let ks = EcdsaKeystore::encrypt(
        &secret,
        password.as_bytes(),
        Some(address),
        Kdf::Pbkdf2 { c: 16 },
        [5; 32],
        [6; 16],
        "0d9c7b4e-52a4-4b0e-9a53-1f0f2d2a8c11",
    )
    .unwrap();
    let path = dir.join(name);
    std::fs::write(&path, ks.to_json()).unwrap();
    path
}

/// A fresh, sparse 1 MiB disk image, `<dir>/disk.img`.
pub fn disk(dir: &Path) -> PathBuf {
    let path = dir.join("disk.img");
    std::fs::File::create(&path).unwrap().set_len(1 << 20).unwrap();
    path
}

/// The record store on the disk image at `path`.
pub fn store(path: &Path) -> spacecore_store::Store<spacecore_store::FileDisk> {
    let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    spacecore_store::Store::open(spacecore_store::FileDisk::new(file).unwrap()).unwrap()
}

/// `spacecore keys sign --scheme SCHEME --secret-hex SECRET --message-hex MESSAGE`, then `extra`.
pub fn keys_sign(scheme: &str, secret: &str, message: &str, extra: &[&str]) -> Run {
    let args = ["keys", "sign", "--scheme", scheme, "--secret-hex", secret, "--message-hex", message];
    spacecore(&[&args[..], extra].concat())
}

/// `spacecore keys verify --scheme SCHEME --pubkey PUBKEY --message-hex MESSAGE --signature
/// SIGNATURE`, then `extra`.
pub fn keys_verify(scheme: &str, pubkey: &str, message: &str, signature: &str, extra: &[&str]) -> Run {
    let args = [
        "keys",
        "verify",
        "--scheme",
        scheme,
        "--pubkey",
        pubkey,
        "--message-hex",
        message,
        "--signature",
        signature,
    ];
    spacecore(&[&args[..], extra].concat())
}

/// `spacecore keys generate --scheme SCHEME --out OUT --password-file PASSWORD`, then `extra`.
pub fn keys_generate(scheme: &str, out: &Path, password: &Path, extra: &[&str]) -> Run {
    let (out, password) = (out.to_str().unwrap(), password.to_str().unwrap());
    let args = ["keys", "generate", "--scheme", scheme, "--out", out, "--password-file", password];
    spacecore(&[&args[..], extra].concat())
}

/// `spacecore ARGS --keystore KEYSTORE --password-file PASSWORD`.
pub fn with_key_file(args: &[&str], keystore: &Path, password: &Path) -> Run {
    let from = ["--keystore", keystore.to_str().unwrap(), "--password-file", password.to_str().unwrap()];
    spacecore(&[args, &from[..]].concat())
}

/// `spacecore keys import --keystore KEYSTORE --disk DISK`, then `extra`.
pub fn keys_import(keystore: &Path, disk: &Path, extra: &[&str]) -> Run {
    let args = ["keys", "import", "--keystore", keystore.to_str().unwrap(), "--disk", disk.to_str().unwrap()];
    spacecore(&[&args[..], extra].concat())
}
