//! Secrets: passwords (from a file or the terminal) and secret keys (from hex or a key file).
//!
//! Every buffer that holds a password or a secret key is wiped when dropped ([`Zeroizing`];
//! [`SecretKey`] wipes itself). Secrets are never printed.

use crate::keyfile::{self, KeyFile};
use anyhow::{Context, Result, bail};
use avs_protocol::OperatorSecretKey;
use avs_protocol::{bls, bn254};
use clap::{ArgGroup, Args, ValueEnum};
use eip2335::password_file::PasswordFile;
use std::fmt;
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// The BLS signature scheme of a command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Scheme {
    /// BN254 as EigenLayer signs and its contracts check: G1 keys and signatures (64 bytes,
    /// X ‖ Y), G2 keys (128 bytes, the contracts' order), 32-byte messages. The default, as
    /// for an operator node's spec.
    #[default]
    Bn254,
    /// BLS12-381, Ethereum consensus ciphersuite: min-pk (48-byte public keys, 96-byte
    /// signatures), proof-of-possession DSTs.
    #[value(name = "bls12-381")]
    Bls12381,
}

impl Scheme {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Bn254 => "bn254",
            Scheme::Bls12381 => "bls12-381",
        }
    }
}

/// Where a command's secret key comes from: `--secret-hex`, or `--keystore` with
/// `--password-file`.
#[derive(Args)]
#[group(skip)]
#[command(group(ArgGroup::new("key").required(true).args(["secret_hex", "keystore"])))]
pub struct KeySource {
    /// The secret key as hex: 32 bytes, big-endian (a scalar in 1..r of the scheme). Other
    /// local users can read it in the process list: prefer --keystore.
    #[arg(long, value_name = "HEX")]
    secret_hex: Option<String>,
    /// The key file holding the secret key (needs --password-file): an EIP-2335 keystore
    /// (bls12-381) or an eigensdk BLS key file (bn254); its kind sets the scheme.
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
    /// The secret key, of `scheme` if given, else of the key file's scheme, else BLS12-381.
    /// The hex argument, if any, is wiped from this process's copy.
    pub fn secret_key(mut self, scheme: Option<Scheme>) -> Result<OperatorSecretKey> {
        if let Some(mut text) = self.secret_hex.take() {
            let secret = crate::hex::secret(&text, "--secret-hex");
            text.zeroize();
            let secret = secret?;
            return Ok(match scheme.unwrap_or_default() {
                Scheme::Bls12381 => {
                    OperatorSecretKey::Bls12381(bls::SecretKey::from_bytes(&secret).context("--secret-hex")?)
                }
                Scheme::Bn254 => {
                    OperatorSecretKey::Bn254(bn254::SecretKey::from_bytes(&secret).context("--secret-hex")?)
                }
            });
        }
        let (Some(path), Some(password)) = (&self.keystore, &self.password_file) else {
            bail!("give --secret-hex, or --keystore and --password-file");
        };
        let (file, _) = keyfile::read(path)?;
        let what = || format!("key file {}", path.display());
        let found = match &file {
            KeyFile::Eip2335(_) => Scheme::Bls12381,
            KeyFile::Bn254(_) => Scheme::Bn254,
            KeyFile::Ecdsa(_) => bail!("{}: {}, not a BLS key", what(), file.kind()),
        };
        if let Some(asked) = scheme
            && asked != found
        {
            bail!("{}: {}, but --scheme {} was given", what(), file.kind(), asked.name());
        }
        let password = read_password_file(password)?;
        let key = match &file {
            KeyFile::Eip2335(keystore) => {
                OperatorSecretKey::Bls12381(keyfile::decrypt_eip2335(keystore, &password).with_context(what)?)
            }
            KeyFile::Bn254(file) => {
                OperatorSecretKey::Bn254(keyfile::decrypt_bn254(file, &password).with_context(what)?)
            }
            KeyFile::Ecdsa(_) => bail!("{}: {}, not a BLS key", what(), file.kind()),
        };
        Ok(key)
    }
}

/// Reads a password file by the rules `hac-launch` reads it by ([`PasswordFile`]: a regular
/// file, 1 to 4096 bytes of UTF-8, less one trailing `\n` or `\r\n`), so a key encrypted with it
/// opens at boot with the same file. Warns if other users may read the file.
pub fn read_password_file(path: &Path) -> Result<Zeroizing<String>> {
    let password = PasswordFile::read("password file", path)?;
    if password.readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_or(0, |m| m.permissions().mode() & 0o777);
        eprintln!(
            "warning: password file {} may be read by its group or other users (mode {mode:03o}); \
             `chmod 600` it",
            path.display()
        );
    }
    Ok(Zeroizing::new(password.as_str().to_owned()))
}

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
    // What a spacecore's password file can hold, so the key opens at boot.
    if first.is_empty() || first.len() > eip2335::password_file::MAX_PASSWORD_LEN {
        bail!("a password of 1 to {} bytes is needed", eip2335::password_file::MAX_PASSWORD_LEN);
    }
    Ok(first)
}
