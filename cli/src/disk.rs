//! `keys import` and `keys show`: the key records on a spacecore's disk image; the disk's store
//! and its BLS key for `history` too.

use crate::Outcome;
use crate::hex;
use crate::keyfile::{self, KeyFile};
use crate::secret::read_password_file;
use anyhow::{Context, Result, anyhow, bail};
use avs_protocol::bn254;
use avs_protocol::history::History;
use clap::Args;
use eip2335::Keystore;
use spacecore_store::{FileDisk, MAX_VALUE, RecordKey, Store, StoreError};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// A key file checked and ready to be written into its record.
struct Checked {
    record: RecordKey,
    text: String,
    /// What `import` prints about it.
    summary: String,
}

/// `keys import`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("files").required(true).multiple(true).args(["keystore", "ecdsa_keystore"])))]
pub struct ImportArgs {
    /// The BLS key file: an EIP-2335 keystore (bls12-381) or an eigensdk BLS key file (bn254).
    /// Its JSON and public key are checked; the password is not needed.
    #[arg(long, value_name = "FILE")]
    pub keystore: Option<PathBuf>,
    /// An Ethereum v3 keystore (the operator's ECDSA key).
    #[arg(long, value_name = "FILE")]
    pub ecdsa_keystore: Option<PathBuf>,
    /// The spacecore's raw disk image, created by hac-launch at the spacecore's first boot
    /// (by default <state dir>/<name>/disk.img).
    #[arg(long, value_name = "DISK_IMAGE")]
    pub disk: PathBuf,
    /// Also decrypt the files with this password first, to check the password and that the
    /// recorded public key or address is the secret's.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

/// Everything is read and checked (and, with a password, decrypted) before the disk is opened:
/// on any error nothing is written.
pub fn import(args: &ImportArgs) -> Result<Outcome> {
    let password = args.password_file.as_deref().map(read_password_file).transpose()?;
    let mut checked = Vec::new();
    if let Some(path) = &args.keystore {
        checked.push(check_bls_file(path, password.as_ref())?);
    }
    if let Some(path) = &args.ecdsa_keystore {
        checked.push(check_ecdsa_file(path, password.as_ref())?);
    }

    let disk = &args.disk;
    let mut store = open(disk, true)?;
    let had_key = store.get(RecordKey::Keystore).map_err(|e| store_error(&mut store, e, disk))?.is_some();
    let has_history =
        store.get(RecordKey::SigningHistory).map_err(|e| store_error(&mut store, e, disk))?.is_some();
    let imports_key = checked.iter().any(|c| c.record == RecordKey::Keystore);
    for item in &checked {
        let value = item.text.as_bytes();
        store.put(item.record, value).map_err(|e| store_error(&mut store, e, disk))?;
        let stored = store.get(item.record).map_err(|e| store_error(&mut store, e, disk))?;
        if stored.as_deref() != Some(value) {
            bail!("{}: the key file read back differs from the one written", disk.display());
        }
        println!("imported {} into {}", item.summary, disk.display());
    }
    if imports_key && !has_history {
        if had_key {
            // A key without a history: the history was wiped or lost. Starting an empty one is
            // the operator's explicit decision (`history new`), not a side effect.
            eprintln!(
                "warning: {} holds a key but no signing history: the node will not sign until \
                 `spacecore history import` or `spacecore history new`",
                disk.display()
            );
        } else {
            let empty = History::new().encode();
            store.put(RecordKey::SigningHistory, &empty).map_err(|e| store_error(&mut store, e, disk))?;
            eprintln!("note: started an empty signing history on {} (the disk's first key)", disk.display());
        }
    }
    Ok(Outcome::Done)
}

/// The file's text as stored: less surrounding whitespace, within a record's size.
fn record_text(text: &str, what: &dyn Fn() -> String) -> Result<String> {
    let value = text.trim();
    if value.len() > MAX_VALUE {
        bail!("{}: {} bytes; a disk record holds at most {MAX_VALUE}", what(), value.len());
    }
    Ok(value.to_owned())
}

fn check_bls_file(path: &Path, password: Option<&Zeroizing<String>>) -> Result<Checked> {
    let what = || format!("key file {}", path.display());
    let (file, text) = keyfile::read(path)?;
    let summary = match &file {
        KeyFile::Eip2335(keystore) => {
            let pubkey = eip2335_pubkey(keystore).with_context(what)?;
            if let Some(password) = password {
                keyfile::decrypt_eip2335(keystore, password).with_context(what)?;
            }
            format!("bls12-381 keystore {pubkey} (uuid {})", keystore.uuid)
        }
        KeyFile::Bn254(key_file) => {
            let g1 = keyfile::bn254_file_g1(key_file).with_context(what)?;
            if let Some(password) = password {
                keyfile::decrypt_bn254(key_file, password).with_context(what)?;
            }
            format!(
                "bn254 key file {} (operator id {})",
                hex::encode(&g1.to_bytes()),
                hex::encode(&bn254::operator_id(&g1))
            )
        }
        KeyFile::Ecdsa(_) => {
            bail!("{}: {}, not a BLS key file: give it as --ecdsa-keystore", what(), file.kind())
        }
    };
    Ok(Checked { record: RecordKey::Keystore, text: record_text(&text, &what)?, summary })
}

fn check_ecdsa_file(path: &Path, password: Option<&Zeroizing<String>>) -> Result<Checked> {
    let what = || format!("key file {}", path.display());
    let (file, text) = keyfile::read(path)?;
    let KeyFile::Ecdsa(keystore) = &file else {
        bail!("{}: {}, not an Ethereum v3 keystore: give it as --keystore", what(), file.kind());
    };
    let address = match password {
        Some(password) => Some(keyfile::decrypt_ecdsa(keystore, password).with_context(what)?.address()),
        None => keystore.address,
    };
    let summary = match address {
        Some(address) => format!("ecdsa keystore {} (id {})", hex::encode(&address), keystore.id),
        None => format!("ecdsa keystore without address (id {})", keystore.id),
    };
    Ok(Checked { record: RecordKey::EcdsaKeystore, text: record_text(&text, &what)?, summary })
}

pub fn show(disk: &Path) -> Result<Outcome> {
    let mut store = open(disk, false)?;
    let bls = store.get(RecordKey::Keystore).map_err(|e| store_error(&mut store, e, disk))?;
    let ecdsa = store.get(RecordKey::EcdsaKeystore).map_err(|e| store_error(&mut store, e, disk))?;
    if bls.is_none() && ecdsa.is_none() {
        bail!("{}: no keystore stored (put one there with `spacecore keys import`)", disk.display());
    }
    let parse = |value: &[u8], record: &str| -> Result<KeyFile> {
        let what = || format!("{}: the stored {record}", disk.display());
        let text = std::str::from_utf8(value).map_err(|_| anyhow!("not UTF-8")).with_context(what)?;
        KeyFile::parse(text).map_err(anyhow::Error::msg).with_context(what)
    };
    if let Some(value) = bls {
        let what = || format!("{}: the stored keystore", disk.display());
        match parse(&value, "keystore")? {
            KeyFile::Eip2335(keystore) => {
                println!("scheme: bls12-381");
                println!("pubkey: {}", eip2335_pubkey(&keystore).with_context(what)?);
            }
            KeyFile::Bn254(file) => {
                let g1 = keyfile::bn254_file_g1(&file).with_context(what)?;
                println!("scheme: bn254");
                println!("g1: {}", hex::encode(&g1.to_bytes()));
                println!("operator_id: {}", hex::encode(&bn254::operator_id(&g1)));
            }
            other => bail!("{}: {}, not a BLS key", what(), other.kind()),
        }
    }
    if let Some(value) = ecdsa {
        match parse(&value, "ECDSA keystore")? {
            KeyFile::Ecdsa(keystore) => match keystore.address {
                Some(address) => println!("ecdsa_address: {}", hex::encode(&address)),
                None => println!("ecdsa_address: unknown (the keystore records none)"),
            },
            other => bail!("{}: the stored ECDSA keystore is {}", disk.display(), other.kind()),
        }
    }
    Ok(Outcome::Done)
}

/// An EIP-2335 keystore's `pubkey` field as 0x hex, checked to be a valid public key.
fn eip2335_pubkey(keystore: &Keystore) -> Result<String> {
    if keystore.pubkey.is_empty() {
        bail!("it has no pubkey field");
    }
    let key = hex::public_key(&keystore.pubkey, "its pubkey field")?;
    Ok(hex::encode(&key.to_bytes()))
}

/// The scheme and public key (0x hex: BN254 G1 `X ‖ Y`, or the BLS12-381 key) of the BLS key
/// stored on the disk, if any.
pub fn stored_bls_key(store: &mut Store<FileDisk>, disk: &Path) -> Result<Option<(&'static str, String)>> {
    let Some(value) = store.get(RecordKey::Keystore).map_err(|e| store_error(store, e, disk))? else {
        return Ok(None);
    };
    let what = || format!("{}: the stored keystore", disk.display());
    let text = std::str::from_utf8(&value).map_err(|_| anyhow!("not UTF-8")).with_context(what)?;
    match KeyFile::parse(text).map_err(anyhow::Error::msg).with_context(what)? {
        KeyFile::Eip2335(keystore) => Ok(Some(("bls12-381", eip2335_pubkey(&keystore).with_context(what)?))),
        KeyFile::Bn254(file) => {
            let g1 = keyfile::bn254_file_g1(&file).with_context(what)?;
            Ok(Some(("bn254", hex::encode(&g1.to_bytes()))))
        }
        other => bail!("{}: {}, not a BLS key", what(), other.kind()),
    }
}

/// Opens the store on the disk image at `path` under an `flock` of our own: exclusive to
/// write, shared to read. Either fails while a launcher holds the disk.
pub fn open(path: &Path, write: bool) -> Result<Store<FileDisk>> {
    let name = path.display();
    if !path.exists() {
        bail!(
            "{name}: no such disk image. hac-launch creates it at the first boot of a spacecore \
             with storage (by default <state dir>/<name>/disk.img): boot it once, then stop it"
        );
    }
    let file = OpenOptions::new().read(true).write(write).open(path).with_context(|| format!("{name}"))?;
    if !file.metadata().with_context(|| format!("{name}"))?.is_file() {
        bail!("{name}: not a regular file");
    }
    lock(&file, write).with_context(|| format!("{name}"))?;
    let disk = FileDisk::new(file).with_context(|| format!("{name}"))?;
    Store::open(disk).with_context(|| format!("{name}"))
}

fn lock(file: &File, exclusive: bool) -> Result<()> {
    let result = if exclusive { file.try_lock() } else { file.try_lock_shared() };
    match result {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(anyhow!(
            "locked by another process, most likely the hac-launch running this spacecore: stop it first"
        )),
        Err(TryLockError::Error(e)) => Err(anyhow::Error::new(e).context("cannot lock it")),
    }
}

/// A store error, with the file's own error when there is one.
pub fn store_error(store: &mut Store<FileDisk>, e: StoreError, disk: &Path) -> anyhow::Error {
    let err = match store.device().take_error() {
        Some(io) => anyhow::Error::new(io).context(e),
        None => anyhow::Error::new(e),
    };
    err.context(format!("{}", disk.display()))
}
