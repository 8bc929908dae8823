//! The file operations durable files are kept with, behind a seam.
//!
//! The durable code asks for nothing beyond these operations, so a backend that models a
//! machine crash (see `memory`, in tests) can stand in for the file system and show what a
//! power loss at any chosen operation leaves behind. The real backend, [`Disk`], is a thin
//! pass-through: each operation is the one system call sequence the code made before the seam
//! existed, in the same order.

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where durable files live: a file system, or a model of one.
///
/// A file's new contents survive a crash only once the file is synced; a directory entry made
/// by creating, renaming or removing a file survives only once its directory is synced.
pub(crate) trait Storage: Debug + Send + Sync + 'static {
    /// Creates `dir` and any missing parents, durably: the entry of each directory created is
    /// synced into its parent.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The whole contents of the file at `path` (`NotFound` when there is none).
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The paths of the entries of `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Creates the file at `path` for writing, emptying it if it exists.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens the file at `path` for appending; with `create`, creates it if it is missing.
    fn open_append(&self, path: &Path, create: bool) -> io::Result<Box<dyn StorageFile>>;
    /// Opens the file at `path` for writing in place with [`StorageFile::write_all_at`],
    /// keeping its contents; with `create`, creates it if it is missing.
    fn open_in_place(&self, path: &Path, create: bool) -> io::Result<Box<dyn StorageFile>>;
    /// Renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file at `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Removes the directory `dir` with everything in it.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (files created, renamed or removed in it) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// A file open for writing.
pub(crate) trait StorageFile: Debug + Send + 'static {
    /// Writes all of `bytes` at the file's end (not yet durable). Only for files created or
    /// opened for appending.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Writes all of `bytes` at `offset`, over what is there and growing the file if it ends
    /// before them (not yet durable). Only for files opened with [`Storage::open_in_place`]:
    /// on a file opened for appending the system would put them at the end.
    fn write_all_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Makes the contents written so far durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// Makes the contents and the file's metadata durable (`fsync`).
    fn sync_all(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes (not yet durable).
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// Creates `dir` and any missing parents on the real file system, and syncs each new
/// directory's entry into its parent: a directory whose entry was lost in a power cut would
/// take every acknowledged file in it along.
fn create_dirs_durably(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|path| !path.as_os_str().is_empty() && !path.exists())
        .collect();
    fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        // A relative path's first component lives in the working directory.
        let parent = match created.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// The storage every durable store uses outside tests: the real file system.
pub(crate) fn disk() -> Arc<dyn Storage> {
    Arc::new(Disk)
}

/// The real file system.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Disk;

impl Storage for Disk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        create_dirs_durably(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.path()))
            .collect()
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        Ok(Box::new(DiskFile(File::create(path)?)))
    }

    fn open_append(&self, path: &Path, create: bool) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new().create(create).append(true).open(path)?;
        Ok(Box::new(DiskFile(file)))
    }

    fn open_in_place(&self, path: &Path, create: bool) -> io::Result<Box<dyn StorageFile>> {
        let file = OpenOptions::new()
            .create(create)
            .truncate(false)
            .write(true)
            .open(path)?;
        Ok(Box::new(DiskFile(file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// A file of the real file system.
#[derive(Debug)]
struct DiskFile(File);

impl StorageFile for DiskFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn write_all_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.0.seek(SeekFrom::Start(offset))?;
        self.0.write_all(bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_created_with_their_missing_parents() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a").join("b").join("c");
        create_dirs_durably(&dir).unwrap();
        assert!(dir.is_dir());
        // Existing directories are fine, and nothing is created twice.
        create_dirs_durably(&dir).unwrap();
        create_dirs_durably(base.path()).unwrap();
    }
}
