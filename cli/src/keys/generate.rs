//! `keys generate`: a new random key in a new key file.

use super::KdfChoice;
use crate::Outcome;
use crate::hex;
use crate::secret::{prompt_new_password, read_password_file};
use anyhow::{Context, Result, bail};
use avs_protocol::{bls, bn254, ecdsa};
use clap::{Args, ValueEnum};
use eip2335::web3::{BlsKeyFile, EcdsaKeystore};
use eip2335::{Kdf, Keystore};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The kind of key `keys generate` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyKind {
    /// A BN254 key in an eigensdk BLS key file.
    Bn254,
    /// A secp256k1 key in an Ethereum v3 keystore.
    Ecdsa,
    /// A BLS12-381 key in an EIP-2335 keystore.
    #[value(name = "bls12-381")]
    Bls12381,
}

/// `keys generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The key to make and the file it goes in.
    #[arg(long, value_enum, default_value = "bn254")]
    scheme: KeyKind,
    /// The key file to create; an existing file is never overwritten.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The new keystore's password: the file's content, less one trailing newline. Without it
    /// the password is asked for twice on the terminal.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// The key-derivation function protecting the keystore.
    #[arg(long, value_enum, default_value = "scrypt")]
    kdf: KdfChoice,
    /// bls12-381 only: the EIP-2334 path recorded in the keystore, e.g. m/12381/3600/0/0/0. The
    /// key is random, not derived from a seed along a path, so by default the path is empty.
    #[arg(long, value_name = "PATH", default_value = "")]
    path: String,
}

pub fn run(args: GenerateArgs) -> Result<Outcome> {
    check_path(&args.path)?;
    if !args.path.is_empty() && args.scheme != KeyKind::Bls12381 {
        bail!("--path is recorded in EIP-2335 keystores only (--scheme bls12-381)");
    }
    if args.out.exists() {
        bail!("{} already exists: not overwriting it", args.out.display());
    }
    // Both refuse an empty password, which no spacecore's password file can hold.
    let password = match &args.password_file {
        Some(file) => read_password_file(file)?,
        None => prompt_new_password()?,
    };
    let kdf = match args.kdf {
        KdfChoice::Scrypt => Kdf::SCRYPT_DEFAULT,
        KdfChoice::Pbkdf2 => Kdf::PBKDF2_DEFAULT,
    };
    let (mut salt, mut iv, mut uuid) = ([0u8; 32], [0u8; 16], [0u8; 16]);
    random(&mut salt)?;
    random(&mut iv)?;
    random(&mut uuid)?;
    let uuid = uuid_v4(uuid);

    let (text, lines) = match args.scheme {
        KeyKind::Bls12381 => {
            let mut ikm = Zeroizing::new([0u8; 32]);
            random(ikm.as_mut_slice())?;
            let key = bls::SecretKey::key_gen(ikm.as_slice())?;
            let pubkey = key.public_key();
            let pubkey_hex = hex::encode(&pubkey.to_bytes());
            let secret = key.to_bytes();
            let keystore = sealed(Keystore::encrypt(
                &secret,
                &password,
                &pubkey_hex[2..],
                &args.path,
                kdf,
                salt,
                iv,
                &uuid,
            ))?;
            let lines = vec![
                format!("pubkey: {pubkey_hex}"),
                format!("operator_id: {}", hex::encode(&pubkey.operator_id())),
            ];
            (format!("{}\n", keystore.to_json()), lines)
        }
        KeyKind::Bn254 => {
            let key = random_key(|bytes| {
                // BN254's r is just below 2^254: with the top two bits cleared, three draws in
                // four are in range.
                bytes[0] &= 0x3f;
                bn254::SecretKey::from_bytes(bytes).ok()
            })?;
            let public = key.public_key();
            let g1 = public.g1().to_bytes();
            let file = sealed(BlsKeyFile::encrypt(&key.to_bytes(), password.as_bytes(), &g1, kdf, salt, iv))?;
            let lines = vec![
                format!("g1: {}", hex::encode(&g1)),
                format!("g2: {}", hex::encode(&public.g2().to_bytes())),
                format!("operator_id: {}", hex::encode(&public.operator_id())),
            ];
            (file.to_json(), lines)
        }
        KeyKind::Ecdsa => {
            // secp256k1's n is just below 2^256: a draw is out of range with probability 2^-128.
            let key = random_key(|bytes| ecdsa::SecretKey::from_bytes(bytes).ok())?;
            let address = key.address();
            let (secret, password) = (key.to_bytes(), password.as_bytes());
            let keystore =
                sealed(EcdsaKeystore::encrypt(&secret, password, Some(address), kdf, salt, iv, &uuid))?;
            (keystore.to_json(), vec![format!("address: {}", hex::encode(&address))])
        }
    };
    write_new(&args.out, text.as_bytes())?;
    for line in lines {
        println!("{line}");
    }
    eprintln!("wrote key file {}", args.out.display());
    Ok(Outcome::Done)
}

/// The key file an `encrypt` made, or its error as the command's.
fn sealed<T, E>(made: std::result::Result<T, E>) -> Result<T>
where
    E: std::fmt::Display + std::fmt::Debug + Send + Sync + 'static,
{
    made.map_err(anyhow::Error::msg).context("cannot make the key file")
}

/// A secret key drawn uniformly: 32 bytes from the CSPRNG, passed to `accept` (which may mask
/// high bits first), drawn again until it accepts them (rejection sampling).
fn random_key<K>(accept: impl Fn(&mut [u8; 32]) -> Option<K>) -> Result<K> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    // Each draw is accepted with probability above 3/4; 128 failures in a row mean a broken RNG.
    for _ in 0..128 {
        random(bytes.as_mut_slice())?;
        if let Some(key) = accept(&mut bytes) {
            return Ok(key);
        }
    }
    bail!("the system random number generator gave 128 out-of-range keys in a row")
}

/// Fills `buf` from the operating system's CSPRNG.
fn random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| anyhow::anyhow!("the system random number generator failed: {e}"))
}

/// An RFC 4122 version 4 UUID from 16 random bytes.
fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(&b);
    format!("{}-{}-{}-{}-{}", &h[2..10], &h[10..14], &h[14..18], &h[18..22], &h[22..34])
}

/// Accepts `` or `m` followed by `/N` components.
fn check_path(path: &str) -> Result<()> {
    let valid = path.is_empty()
        || path.strip_prefix('m').is_some_and(|rest| {
            rest.split('/').skip(1).all(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
                && (rest.is_empty() || rest.starts_with('/'))
        });
    if !valid {
        bail!("--path {path:?}: expected an EIP-2334 path such as m/12381/3600/0/0/0");
    }
    Ok(())
}

/// Creates `path` (mode 0600 on Unix), writes `data` and syncs it.
fn write_new(path: &Path, data: &[u8]) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let what = || format!("cannot create {}", path.display());
    let mut file = options.open(path).with_context(what)?;
    file.write_all(data).and_then(|()| file.sync_all()).with_context(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4() {
        let uuid = uuid_v4([0xff; 16]);
        assert_eq!(uuid, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn paths() {
        for ok in ["", "m", "m/12381/3600/0/0/0", "m/0"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in ["m/", "m//1", "12381/3600", "m/12a", "n/1", "m1"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }
}
