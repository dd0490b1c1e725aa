//! Writing an entry. Each registration fills a fresh, hidden version
//! directory, then publishes it by renaming a new symlink over
//! `<repository>/<tag>`: one atomic step, so a reader sees the old image and
//! manifest or the new ones, never a mixture or a partial file. Writers of
//! one tag take turns on a lock file; readers never lock.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::manifest::hash_stream;
use crate::{IMAGE_FILE, MANIFEST_FILE, Manifest, Store, StoreError, is_sha256_hex};

/// `<repository>/.<tag>.versions`: the version directories of a tag.
pub(crate) fn versions_dir_name(tag: &str) -> String {
    format!(".{tag}.versions")
}

pub(crate) fn register(
    store: &Store,
    repository: &str,
    tag: &str,
    elf: &Path,
    manifest: &Manifest,
) -> Result<PathBuf, StoreError> {
    let link = store.entry_dir(repository, tag)?;
    let reference = format!("{repository}:{tag}");
    let rejected = |reason: String| StoreError::Rejected { reference: reference.clone(), reason };
    if !is_sha256_hex(&manifest.sha256) {
        return Err(rejected(format!(
            "manifest sha256 {:?} is not 64 lowercase hex digits",
            manifest.sha256
        )));
    }
    let repo_dir = link.parent().unwrap_or(store.root()).to_owned();
    if let Some(tag_path) = tag_on_the_way(store.root(), repository) {
        return Err(rejected(format!(
            "{} is an image tag, so it cannot also hold a repository",
            tag_path.display()
        )));
    }
    fs::create_dir_all(&repo_dir).map_err(StoreError::io("create directory", &repo_dir))?;

    let lock_path = repo_dir.join(format!(".{tag}.lock"));
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(StoreError::io("open", &lock_path))?;
    lock.lock().map_err(StoreError::io("lock", &lock_path))?;

    // What is there now: nothing, a symlink to a version, or a directory in
    // the plain layout (replaced) or a nested repository (refused).
    let mut previous = None;
    let mut plain_dir = false;
    match fs::symlink_metadata(&link) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("inspect", &link)(e)),
        Ok(m) if m.file_type().is_symlink() => {
            let target = fs::read_link(&link).map_err(StoreError::io("read", &link))?;
            previous = target.file_name().map(ToOwned::to_owned);
        }
        Ok(m) if m.is_dir() && !has_subdirectory(&link)? => plain_dir = true,
        Ok(_) => {
            return Err(rejected(format!(
                "{} exists and is not an image entry (a repository of that name?)",
                link.display()
            )));
        }
    }

    let versions_name = versions_dir_name(tag);
    let versions = repo_dir.join(&versions_name);
    fs::create_dir_all(&versions).map_err(StoreError::io("create directory", &versions))?;
    let staged = Staged::create(&versions, &manifest.sha256)?;

    // Copy the ELF, hashing it on the way, then write the manifest.
    let source = File::open(elf).map_err(StoreError::io("open", elf))?;
    let image_path = staged.dir.join(IMAGE_FILE);
    let mut copy = File::create_new(&image_path).map_err(StoreError::io("create", &image_path))?;
    let (size, sha256) = hash_stream(source, |chunk| io::Write::write_all(&mut copy, chunk))
        .map_err(StoreError::io("copy", elf))?;
    // Read-only: an image is never rewritten in place, so a launcher may map its pages
    // copy-on-write and share them between the spacecores booted from it.
    copy.set_permissions(fs::Permissions::from_mode(0o444))
        .map_err(StoreError::io("make read-only", &image_path))?;
    copy.sync_all().map_err(StoreError::io("sync", &image_path))?;
    if size != manifest.size_bytes || sha256 != manifest.sha256 {
        return Err(rejected(format!(
            "{} is {size} bytes with sha256 {sha256}, but the manifest says {} bytes with sha256 {}",
            elf.display(),
            manifest.size_bytes,
            manifest.sha256
        )));
    }
    let mut json = serde_json::to_vec_pretty(manifest).map_err(|e| rejected(e.to_string()))?;
    json.push(b'\n');
    let manifest_path = staged.dir.join(MANIFEST_FILE);
    write_synced(&manifest_path, &json).map_err(StoreError::io("write", &manifest_path))?;
    sync_dir(&staged.dir);

    // Publish: a new symlink renamed over the tag.
    let new_link = repo_dir.join(format!(".{tag}.link"));
    match fs::remove_file(&new_link) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(StoreError::io("remove", &new_link)(e));
        }
        _ => {}
    }
    let target = Path::new(&versions_name).join(&staged.id);
    symlink(&target, &new_link).map_err(StoreError::io("create symlink", &new_link))?;
    if plain_dir {
        fs::remove_dir_all(&link).map_err(StoreError::io("replace", &link))?;
    }
    fs::rename(&new_link, &link).map_err(StoreError::io("rename into", &link))?;
    let id = staged.publish();
    sync_dir(&repo_dir);

    // Keep the new version and the one just replaced (a reader may be using
    // it); anything else is an older version or a crashed writer's leftover.
    if let Ok(entries) = fs::read_dir(&versions) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name != *id && Some(&name) != previous.as_ref() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    drop(lock);
    Ok(link.join(IMAGE_FILE))
}

/// The first prefix of `repository` under `root` that is an image tag (a
/// symlink), if any: `a/b:latest` cannot live inside the entry `a:b`.
fn tag_on_the_way(root: &Path, repository: &str) -> Option<PathBuf> {
    let mut path = root.to_owned();
    for component in repository.split('/') {
        path.push(component);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => return Some(path),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

fn has_subdirectory(dir: &Path) -> Result<bool, StoreError> {
    let entries = fs::read_dir(dir).map_err(StoreError::io("list", dir))?;
    Ok(entries.flatten().any(|e| e.file_type().is_ok_and(|t| t.is_dir())))
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create_new(path)?;
    io::Write::write_all(&mut file, bytes)?;
    file.sync_all()
}

/// Makes completed renames in `dir` durable. Best effort: some file systems
/// cannot sync a directory.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A version directory being filled; removed on drop unless published.
#[derive(Debug)]
struct Staged {
    dir: PathBuf,
    id: std::ffi::OsString,
    published: bool,
}

impl Staged {
    /// `<versions>/<first 16 hex of sha256>-<unique suffix>`.
    fn create(versions: &Path, sha256: &str) -> Result<Staged, StoreError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let id = format!("{}-{nanos:x}-{}-{n}", &sha256[..16], std::process::id());
            let dir = versions.join(&id);
            match fs::create_dir(&dir) {
                Ok(()) => {
                    return Ok(Staged { dir, id: id.into(), published: false });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io("create directory", &dir)(e)),
            }
        }
    }

    fn publish(mut self) -> std::ffi::OsString {
        self.published = true;
        std::mem::take(&mut self.id)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
