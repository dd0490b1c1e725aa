//! `spacecore history`: the signing history on a spacecore's disk (its slashing protection),
//! exported to and imported from a JSON interchange file in the spirit of EIP-3076, or started
//! anew. docs/cli.md describes the file.
//!
//! A node whose disk holds a key but no history signs nothing: the history was wiped or lost,
//! and signing from an empty one could answer a task again differently. The operator then
//! imports the history (from an export, or from the node the key ran on before) or, for a key
//! that never signed elsewhere, starts an empty one.

use crate::Outcome;
use crate::disk::{open, store_error, stored_bls_key};
use crate::hex;
use anyhow::{Context, Result, anyhow, bail};
use avs_protocol::history::{CAPACITY, History};
use clap::Subcommand;
use serde_json::{Value, json};
use spacecore_store::RecordKey;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The `format` member of an interchange file.
pub const FORMAT: &str = "spacecore-signing-history";
/// The interchange format's version.
pub const VERSION: u64 = 1;
/// Largest interchange file read.
const MAX_FILE: u64 = 64 << 10;

#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Print the disk's signing history as an interchange file (JSON) on stdout.
    Export {
        /// The spacecore's disk image (stopped: the launcher holds a lock on it).
        #[arg(long, value_name = "FILE")]
        disk: PathBuf,
    },
    /// Merge an interchange file into the disk's signing history: the higher floor, every task
    /// of either; refused if the two record different digests for one task, or if the file is
    /// for another key than the disk's.
    Import {
        /// The spacecore's disk image.
        #[arg(long, value_name = "FILE")]
        disk: PathBuf,
        /// The interchange file (`history export`).
        file: PathBuf,
    },
    /// Start an empty signing history on a disk that has none (its key never signed anywhere
    /// else: otherwise import that history instead).
    New {
        /// The spacecore's disk image.
        #[arg(long, value_name = "FILE")]
        disk: PathBuf,
    },
}

impl HistoryCommand {
    pub fn run(self) -> Result<Outcome> {
        match self {
            HistoryCommand::Export { disk } => export(&disk),
            HistoryCommand::Import { disk, file } => import(&disk, &file),
            HistoryCommand::New { disk } => new(&disk),
        }
    }
}

/// The interchange form of `history` for the key `(scheme, public_key)`.
pub fn to_json(history: &History, scheme: &str, public_key: &str) -> Value {
    json!({
        "format": FORMAT,
        "version": VERSION,
        "scheme": scheme,
        "public_key": public_key,
        "floor": history.floor(),
        "signed_tasks": history.entries().iter().map(|(index, digest)| json!({
            "task_index": index,
            "digest": hex::encode(digest),
        })).collect::<Vec<_>>(),
    })
}

/// Reads an interchange file: its scheme, public key and history. Every member is checked;
/// errors name the member.
pub fn from_json(value: &Value) -> Result<(String, String, History)> {
    let object = value.as_object().ok_or_else(|| anyhow!("not a JSON object"))?;
    let member = |name: &str| object.get(name).ok_or_else(|| anyhow!("{name}: missing"));
    let text = |name: &str| -> Result<&str> {
        member(name)?.as_str().ok_or_else(|| anyhow!("{name}: not a string"))
    };
    if text("format")? != FORMAT {
        bail!("format: not {FORMAT:?}");
    }
    if member("version")?.as_u64() != Some(VERSION) {
        bail!("version: only {VERSION} is known");
    }
    let scheme = text("scheme")?.to_string();
    let public_key = text("public_key")?.to_ascii_lowercase();
    let floor = member("floor")?
        .as_u64()
        .and_then(|f| u32::try_from(f).ok())
        .ok_or_else(|| anyhow!("floor: not a task index (0..2^32)"))?;
    let tasks = member("signed_tasks")?.as_array().ok_or_else(|| anyhow!("signed_tasks: not an array"))?;
    if tasks.len() > CAPACITY {
        bail!("signed_tasks: {} tasks; a history holds at most {CAPACITY}", tasks.len());
    }
    let mut entries = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.iter().enumerate() {
        let index = task["task_index"]
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| anyhow!("signed_tasks[{i}].task_index: not a task index (0..2^32)"))?;
        let digest =
            task["digest"].as_str().ok_or_else(|| anyhow!("signed_tasks[{i}].digest: not a string"))?;
        entries.push((index, hex::array::<32>(digest, &format!("signed_tasks[{i}].digest"))?));
    }
    let history = History::from_parts(floor, entries)
        .map_err(|e| anyhow!("signed_tasks: {e:?} (task indices must increase and be at least the floor)"))?;
    Ok((scheme, public_key, history))
}

fn read_history(
    store: &mut spacecore_store::Store<spacecore_store::FileDisk>,
    disk: &Path,
) -> Result<Option<History>> {
    match store.get(RecordKey::SigningHistory).map_err(|e| store_error(store, e, disk))? {
        None => Ok(None),
        Some(bytes) => History::decode(&bytes)
            .map(Some)
            .map_err(|e| anyhow!("{}: the stored signing history is corrupt: {e:?}", disk.display())),
    }
}

fn export(disk: &Path) -> Result<Outcome> {
    let mut store = open(disk, false)?;
    let (scheme, public_key) = stored_bls_key(&mut store, disk)?
        .ok_or_else(|| anyhow!("{}: no key stored, so no signing history", disk.display()))?;
    let history = read_history(&mut store, disk)?.ok_or_else(|| {
        anyhow!("{}: holds a key but no signing history (wiped or lost): nothing to export", disk.display())
    })?;
    println!("{}", serde_json::to_string_pretty(&to_json(&history, scheme, &public_key))?);
    Ok(Outcome::Done)
}

fn import(disk: &Path, path: &Path) -> Result<Outcome> {
    let what = || format!("history file {}", path.display());
    let mut text = String::new();
    File::open(path).with_context(what)?.take(MAX_FILE + 1).read_to_string(&mut text).with_context(what)?;
    if text.len() as u64 > MAX_FILE {
        bail!("{}: larger than {MAX_FILE} bytes", what());
    }
    let value: Value = serde_json::from_str(&text).with_context(what)?;
    let (scheme, public_key, imported) = from_json(&value).with_context(what)?;

    let mut store = open(disk, true)?;
    let (disk_scheme, disk_key) = stored_bls_key(&mut store, disk)?.ok_or_else(|| {
        anyhow!("{}: no key stored: import the key first (`spacecore keys import`)", disk.display())
    })?;
    if (scheme.as_str(), public_key.as_str()) != (disk_scheme, disk_key.as_str()) {
        bail!(
            "{}: the history is for the {scheme} key {public_key}, but the disk holds the {disk_scheme} key {disk_key}",
            what()
        );
    }
    let current = read_history(&mut store, disk)?;
    let merged = match &current {
        Some(current) => current.merge(&imported).map_err(|index| {
            anyhow!(
                "task {index}: the disk and the file record different signed digests; nothing changed \
                 (the key signed two answers to one task: find out why before signing again)"
            )
        })?,
        None => imported,
    };
    store.put(RecordKey::SigningHistory, &merged.encode()).map_err(|e| store_error(&mut store, e, disk))?;
    println!(
        "signing history of {}: {} tasks, floor {} ({})",
        disk.display(),
        merged.len(),
        merged.floor(),
        if current.is_some() { "merged with the disk's" } else { "the disk had none" }
    );
    Ok(Outcome::Done)
}

fn new(disk: &Path) -> Result<Outcome> {
    let mut store = open(disk, true)?;
    if let Some(current) = read_history(&mut store, disk)? {
        bail!(
            "{}: already has a signing history ({} tasks, floor {}); nothing changed",
            disk.display(),
            current.len(),
            current.floor()
        );
    }
    store
        .put(RecordKey::SigningHistory, &History::new().encode())
        .map_err(|e| store_error(&mut store, e, disk))?;
    println!("started an empty signing history on {}", disk.display());
    Ok(Outcome::Done)
}
