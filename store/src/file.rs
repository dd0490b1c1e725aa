//! [`FileDisk`]: a disk image file as a [`BlockIo`], for host tools (feature `std`).

use crate::{BlockIo, IoError, SECTOR};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// A raw disk image file (such as the one `hac-launch` gives a spacecore) as a [`BlockIo`]:
/// sector `n` is bytes `n * SECTOR..(n + 1) * SECTOR` of the file, and a flush is
/// [`File::sync_data`].
///
/// The capacity is the file's length when the disk was made, in whole sectors; requests past it
/// are [`IoError::OutOfRange`] and the file is never grown. A request whose buffer is not whole
/// sectors is [`IoError::Unsupported`]. When the file itself fails the request is
/// [`IoError::Device`] and the [`io::Error`] is kept for [`FileDisk::take_error`].
///
/// Locking is the caller's business: take a lock on the file (`hac-launch` holds an exclusive
/// `flock` on its disk) before making the disk.
#[derive(Debug)]
pub struct FileDisk {
    file: File,
    sectors: u64,
    error: Option<io::Error>,
}

impl FileDisk {
    /// The disk held in `file`, opened for reading (and writing, to write records).
    pub fn new(file: File) -> io::Result<Self> {
        let sectors = file.metadata()?.len() / SECTOR as u64;
        Ok(FileDisk { file, sectors, error: None })
    }

    /// The file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The file, closing the disk.
    pub fn into_file(self) -> File {
        self.file
    }

    /// The error of the file behind the last [`IoError::Device`], if any; clears it.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// Checks a request of `len` bytes at `sector` and seeks to it.
    fn seek(&mut self, sector: u64, len: usize) -> Result<(), IoError> {
        if !len.is_multiple_of(SECTOR) {
            return Err(IoError::Unsupported);
        }
        let end = sector.checked_add((len / SECTOR) as u64).ok_or(IoError::OutOfRange)?;
        if end > self.sectors {
            return Err(IoError::OutOfRange);
        }
        let at = self.file.seek(SeekFrom::Start(sector * SECTOR as u64));
        self.check(at.map(drop))
    }

    /// The result of a file operation, keeping its error.
    fn check(&mut self, result: io::Result<()>) -> Result<(), IoError> {
        result.map_err(|e| {
            self.error = Some(e);
            IoError::Device
        })
    }
}

impl BlockIo for FileDisk {
    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), IoError> {
        self.seek(sector, buf.len())?;
        let result = self.file.read_exact(buf);
        self.check(result)
    }

    fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), IoError> {
        self.seek(sector, data.len())?;
        let result = self.file.write_all(data);
        self.check(result)
    }

    fn flush(&mut self) -> Result<(), IoError> {
        let result = self.file.sync_data();
        self.check(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NEEDED_SECTORS, RecordKey, Store};
    use std::fs::OpenOptions;

    fn disk(bytes: u64) -> (tempfile::NamedTempFile, FileDisk) {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.as_file().set_len(bytes).unwrap();
        let file = OpenOptions::new().read(true).write(true).open(tmp.path()).unwrap();
        (tmp, FileDisk::new(file).unwrap())
    }

    #[test]
    fn records_persist_in_the_file_at_their_offsets() {
        let (tmp, disk) = disk(1 << 20);
        assert_eq!(disk.sectors(), 2048);
        let mut store = Store::open(disk).unwrap();
        store.put(RecordKey::Keystore, b"{\"version\": 4}").unwrap();
        assert_eq!(store.increment(RecordKey::BootCount), Ok(1));
        drop(store);

        let bytes = std::fs::read(tmp.path()).unwrap();
        assert_eq!(bytes.len(), 1 << 20, "the file keeps its size");
        let slot = &bytes[RecordKey::Keystore.first_sector() as usize * SECTOR..];
        assert_eq!((&slot[..4], &slot[4..6]), (&b"SCR1"[..], &[1, 0][..]));
        assert_eq!(&slot[24..38], b"{\"version\": 4}");

        let file = OpenOptions::new().read(true).open(tmp.path()).unwrap();
        let mut store = Store::open(FileDisk::new(file).unwrap()).unwrap();
        assert_eq!(store.get(RecordKey::Keystore).unwrap().as_deref(), Some(&b"{\"version\": 4}"[..]));
        assert_eq!(store.get(RecordKey::BootCount).unwrap(), Some(1u64.to_le_bytes().to_vec()));
        assert_eq!(store.get(RecordKey::SigningHistory), Ok(None));
    }

    #[test]
    fn requests_are_checked_and_file_errors_kept() {
        let (_tmp, mut disk) = disk(NEEDED_SECTORS * SECTOR as u64 + 100);
        assert_eq!(disk.sectors(), NEEDED_SECTORS, "a partial last sector is not used");
        let mut buf = [0u8; SECTOR];
        assert_eq!(disk.read(NEEDED_SECTORS, &mut buf), Err(IoError::OutOfRange));
        assert_eq!(disk.read(u64::MAX, &mut buf), Err(IoError::OutOfRange));
        assert_eq!(disk.write(0, &buf[..100]), Err(IoError::Unsupported));
        assert_eq!(disk.read(NEEDED_SECTORS - 1, &mut buf), Ok(()));
        assert!(disk.take_error().is_none());

        // A read-only file: writing fails in the file, and the error is kept.
        let (tmp, _) = self::disk(1 << 16);
        let mut disk = FileDisk::new(File::open(tmp.path()).unwrap()).unwrap();
        assert_eq!(disk.write(0, &buf), Err(IoError::Device));
        assert!(disk.take_error().is_some());
        assert!(disk.take_error().is_none());
    }

    #[test]
    fn a_file_too_small_for_the_layout_is_refused() {
        let (_tmp, disk) = disk(24 * SECTOR as u64);
        let err = Store::open(disk).err().unwrap();
        assert_eq!(err, crate::StoreError::DeviceTooSmall { needed: crate::NEEDED_SECTORS, sectors: 24 });
    }
}
