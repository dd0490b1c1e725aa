//! Secrets: passwords (from a file or the terminal) and secret keys (from hex or a keystore).
//!
//! Every buffer that holds a password or a secret key is wiped when dropped ([`Zeroizing`];
//! [`SecretKey`] wipes itself). Secrets are never printed.

use anyhow::{Context, Result, bail};
use avs_protocol::bls::SecretKey;
use clap::{ArgGroup, Args};
use eip2335::Keystore;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// Largest password file read.
const MAX_PASSWORD_FILE: u64 = 64 << 10;
/// Largest keystore file read (a keystore is about 1 KiB).
pub const MAX_KEYSTORE_FILE: u64 = 64 << 10;

/// Where a command's secret key comes from: `--secret-hex`, or `--keystore` with
/// `--password-file`.
#[derive(Args)]
#[group(skip)]
#[command(group(ArgGroup::new("key").required(true).args(["secret_hex", "keystore"])))]
pub struct KeySource {
    /// The secret key as hex: 32 bytes, big-endian (a scalar in 1..r). Other local users can
    /// read it in the process list: prefer --keystore.
    #[arg(long, value_name = "HEX")]
    secret_hex: Option<String>,
    /// An EIP-2335 keystore holding the secret key (needs --password-file).
    #[arg(long, value_name = "FILE", requires = "password_file")]
    keystore: Option<PathBuf>,
    /// The keystore's password: the file's content, less one trailing newline.
    #[arg(long, value_name = "FILE", requires = "keystore")]
    password_file: Option<PathBuf>,
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySource")
            .field("secret_hex", &self.secret_hex.as_ref().map(|_| "<redacted>"))
            .field("keystore", &self.keystore)
            .field("password_file", &self.password_file)
            .finish()
    }
}

impl KeySource {
    /// The secret key; the hex argument, if any, is wiped from this process's copy.
    pub fn secret_key(mut self) -> Result<SecretKey> {
        if let Some(mut text) = self.secret_hex.take() {
            let secret = crate::hex::secret(&text, "--secret-hex");
            text.zeroize();
            return SecretKey::from_bytes(&*secret?).context("--secret-hex");
        }
        match (&self.keystore, &self.password_file) {
            (Some(keystore), Some(password)) => unlock(keystore, &read_password_file(password)?),
            _ => bail!("give --secret-hex, or --keystore and --password-file"),
        }
    }
}

/// Reads a password file: its content as UTF-8, less one trailing `\n` (or `\r\n`). Warns if
/// other users may read the file.
pub fn read_password_file(path: &Path) -> Result<Zeroizing<String>> {
    let what = || format!("password file {}", path.display());
    let file = File::open(path).with_context(what)?;
    let meta = file.metadata().with_context(what)?;
    if meta.len() > MAX_PASSWORD_FILE {
        bail!("{}: larger than {MAX_PASSWORD_FILE} bytes", what());
    }
    warn_if_readable_by_others(path, &meta);
    // Room for the whole file and the read that finds its end: never reallocated.
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
    file.take(MAX_PASSWORD_FILE).read_to_end(&mut bytes).with_context(what)?;
    let text = match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Zeroizing::new(text),
        Err(e) => {
            e.into_bytes().zeroize();
            bail!("{}: not UTF-8 text", what());
        }
    };
    Ok(strip_newline(text))
}

/// Removes one trailing `\n` or `\r\n`.
fn strip_newline(mut text: Zeroizing<String>) -> Zeroizing<String> {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, meta: &std::fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o044 != 0 {
        eprintln!(
            "warning: password file {} is readable by other users (mode {mode:03o}); `chmod 600` it",
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path, _: &std::fs::Metadata) {}

/// Asks for a new password on the terminal, twice, without echo.
pub fn prompt_new_password() -> Result<Zeroizing<String>> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .context("no --password-file given and no terminal to ask for a password on")
    };
    let first = ask("Password for the new keystore: ")?;
    let second = ask("The same password again: ")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(first)
}

/// Reads and parses a keystore file (structure only: no password needed).
pub fn read_keystore(path: &Path) -> Result<(Keystore, String)> {
    let what = || format!("keystore {}", path.display());
    let file = File::open(path).with_context(what)?;
    let mut text = String::new();
    file.take(MAX_KEYSTORE_FILE + 1).read_to_string(&mut text).with_context(what)?;
    if text.len() as u64 > MAX_KEYSTORE_FILE {
        bail!("{}: larger than {MAX_KEYSTORE_FILE} bytes", what());
    }
    let keystore = Keystore::from_json(&text).map_err(anyhow::Error::msg).with_context(what)?;
    Ok((keystore, text))
}

/// The secret key of the keystore at `path`, checked against the keystore's `pubkey` field.
pub fn unlock(path: &Path, password: &str) -> Result<SecretKey> {
    let (keystore, _) = read_keystore(path)?;
    decrypt(&keystore, password).with_context(|| format!("keystore {}", path.display()))
}

/// The secret key of `keystore`. The `pubkey` field, when present, must be the secret's public
/// key: the checksum does not cover the IV, so a tampered keystore can decrypt to another key.
pub fn decrypt(keystore: &Keystore, password: &str) -> Result<SecretKey> {
    let secret = keystore.decrypt(password).map_err(anyhow::Error::msg)?;
    let key = SecretKey::from_bytes(&secret).context("the keystore holds an invalid secret key")?;
    let pubkey = crate::hex::encode(&key.public_key().to_bytes());
    let stored = keystore.pubkey.trim_start_matches("0x").to_ascii_lowercase();
    if !stored.is_empty() && stored != pubkey[2..] {
        bail!("the keystore's pubkey field 0x{stored} is not the public key of its secret ({pubkey})");
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_newline_is_stripped() {
        let strip = |s: &str| strip_newline(Zeroizing::new(s.to_owned())).to_string();
        assert_eq!(strip("secret\n"), "secret");
        assert_eq!(strip("secret\r\n"), "secret");
        assert_eq!(strip("secret\n\n"), "secret\n");
        assert_eq!(strip("secret"), "secret");
        assert_eq!(strip(""), "");
    }
}
