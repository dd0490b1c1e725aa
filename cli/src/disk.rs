//! `keys import` and `keys show`: the keystore record on a spacecore's disk image.

use crate::Outcome;
use crate::hex;
use crate::secret::{decrypt, read_keystore, read_password_file};
use anyhow::{Context, Result, anyhow, bail};
use eip2335::Keystore;
use spacecore_store::{FileDisk, MAX_VALUE, RecordKey, Store, StoreError};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

pub fn import(keystore_path: &Path, disk: &Path, password_file: Option<&Path>) -> Result<Outcome> {
    let (keystore, text) = read_keystore(keystore_path)?;
    let what = || format!("keystore {}", keystore_path.display());
    let pubkey = pubkey_of(&keystore).with_context(what)?;
    if let Some(file) = password_file {
        decrypt(&keystore, &read_password_file(file)?).with_context(what)?;
    }
    let value = text.trim().as_bytes();
    if value.len() > MAX_VALUE {
        bail!("{}: {} bytes; a disk record holds at most {MAX_VALUE}", what(), value.len());
    }

    let mut store = open(disk, true)?;
    store.put(RecordKey::Keystore, value).map_err(|e| store_error(&mut store, e, disk))?;
    let stored = store.get(RecordKey::Keystore).map_err(|e| store_error(&mut store, e, disk))?;
    if stored.as_deref() != Some(value) {
        bail!("{}: the keystore read back differs from the one written", disk.display());
    }
    println!("imported keystore {pubkey} (uuid {}) into {}", keystore.uuid, disk.display());
    Ok(Outcome::Done)
}

pub fn show(disk: &Path) -> Result<Outcome> {
    let mut store = open(disk, false)?;
    let value = store.get(RecordKey::Keystore).map_err(|e| store_error(&mut store, e, disk))?;
    let value = value.ok_or_else(|| {
        anyhow!("{}: no keystore stored (put one there with `spacecore keys import`)", disk.display())
    })?;
    let what = || format!("{}: the stored keystore", disk.display());
    let text = std::str::from_utf8(&value).map_err(|_| anyhow!("not UTF-8")).with_context(what)?;
    let keystore = Keystore::from_json(text).map_err(anyhow::Error::msg).with_context(what)?;
    println!("{}", pubkey_of(&keystore).with_context(what)?);
    Ok(Outcome::Done)
}

/// The keystore's `pubkey` field as 0x hex, checked to be a valid public key.
fn pubkey_of(keystore: &Keystore) -> Result<String> {
    if keystore.version != 4 {
        bail!("version {} (only EIP-2335 version 4 is supported)", keystore.version);
    }
    if keystore.pubkey.is_empty() {
        bail!("it has no pubkey field");
    }
    let key = hex::public_key(&keystore.pubkey, "its pubkey field")?;
    Ok(hex::encode(&key.to_bytes()))
}

/// Opens the store on the disk image at `path` under an `flock` of our own: exclusive to
/// write, shared to read. Either fails while a launcher holds the disk.
fn open(path: &Path, write: bool) -> Result<Store<FileDisk>> {
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
fn store_error(store: &mut Store<FileDisk>, e: StoreError, disk: &Path) -> anyhow::Error {
    let err = match store.device().take_error() {
        Some(io) => anyhow::Error::new(io).context(e),
        None => anyhow::Error::new(e),
    };
    err.context(format!("{}", disk.display()))
}
