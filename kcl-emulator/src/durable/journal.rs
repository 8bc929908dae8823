//! A log of frames written in place over zeros laid down ahead of it.
//!
//! Appending to a file changes its size, so every `fdatasync` of an appended log must also
//! commit the new size (file system metadata): on the disks measured here that made a sync
//! of a small record cost about half again as much as one that overwrites data already in
//! the file. A [`JournalFile`] therefore lays down zeros a chunk ahead of its end, synced with
//! the file's size, and writes each frame over them: the syncs that acknowledge records then
//! commit data alone, until the next chunk is laid down.
//!
//! Zeros end a read of frames as a torn tail does (no frame has an empty payload), so the
//! valid prefix is found as before. Recovery zeroes whatever lies past it: a torn frame, or
//! frames a crash let reach the disk out of order behind one that did not. Were they left,
//! a later, shorter frame could end just where one of them starts and bring a stale record
//! back to life.

use std::io;
use std::path::Path;

use super::storage::{Storage, StorageFile};

/// How far ahead of the end zeros are laid down. Small in tests, so that they grow a log past
/// its first chunk.
const CHUNK_BYTES: u64 = if cfg!(test) { 4096 } else { 1024 * 1024 };

/// One log file; see the module documentation.
#[derive(Debug)]
pub(crate) struct JournalFile {
    file: Box<dyn StorageFile>,
    /// Where the next frame goes: the end of the valid frames.
    end: u64,
    /// Length of the file: zeros from `end` to here.
    laid_down: u64,
}

impl JournalFile {
    /// Creates an empty log at `path` (emptying one that exists), its first chunk of zeros
    /// laid down, and makes it and its entry in `dir` durable.
    pub(crate) fn create(storage: &dyn Storage, dir: &Path, path: &Path) -> io::Result<Self> {
        let mut file = storage.open_in_place(path, true)?;
        file.set_len(0)?;
        let mut log = JournalFile {
            file,
            end: 0,
            laid_down: 0,
        };
        log.lay_down(CHUNK_BYTES)?;
        log.file.sync_all()?;
        storage.sync_dir(dir)?;
        Ok(log)
    }

    /// Opens the existing log at `path`, whose contents are `bytes` and whose frames a reader
    /// accepted up to `valid`: new frames go at `valid`, and what lies past it is zeroed
    /// durably first.
    pub(crate) fn reopen(
        storage: &dyn Storage,
        path: &Path,
        bytes: &[u8],
        valid: usize,
    ) -> io::Result<Self> {
        let mut file = storage.open_in_place(path, false)?;
        let tail = &bytes[valid..];
        if tail.iter().any(|&byte| byte != 0) {
            tracing::warn!(
                path = %path.display(),
                kept = valid,
                dropped = tail.len(),
                "zeroing the torn tail of a log"
            );
            file.write_all_at(valid as u64, &vec![0; tail.len()])?;
            file.sync_all()?;
        }
        Ok(JournalFile {
            file,
            end: valid as u64,
            laid_down: bytes.len() as u64,
        })
    }

    /// Writes `frames` after the last ones (not yet durable: see [`JournalFile::sync`]),
    /// laying down the next chunk first when they do not fit in what is laid down.
    pub(crate) fn append(&mut self, frames: &[u8]) -> io::Result<()> {
        let end = self.end + frames.len() as u64;
        if end > self.laid_down {
            // Grown unsynced: the sync that acknowledges these frames commits the new size.
            self.lay_down(end - self.laid_down + CHUNK_BYTES)?;
        }
        self.file.write_all_at(self.end, frames)?;
        self.end = end;
        Ok(())
    }

    /// Makes every frame written durable.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Bytes of valid frames in the log.
    pub(crate) fn len(&self) -> u64 {
        self.end
    }

    fn lay_down(&mut self, bytes: u64) -> io::Result<()> {
        let zeros = vec![0; usize::try_from(bytes).expect("a chunk fits in memory")];
        // Real zeros, not a hole that `set_len` would leave: writing into a hole allocates
        // blocks, and a sync would then have metadata to commit after all.
        self.file.write_all_at(self.laid_down, &zeros)?;
        self.laid_down += bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::durable::frame;
    use crate::durable::memory::MemoryStorage;

    fn dir() -> PathBuf {
        PathBuf::from("/data")
    }

    fn path() -> PathBuf {
        dir().join("log")
    }

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for payload in payloads {
            frame::encode(&mut bytes, payload);
        }
        bytes
    }

    /// The payloads of the valid frames of the log, and the length of their prefix.
    fn read(storage: &MemoryStorage) -> (Vec<Vec<u8>>, usize, Vec<u8>) {
        let bytes = storage.read(&path()).unwrap();
        let mut payloads = Vec::new();
        let mut valid = 0;
        for frame in frame::frames(&bytes, 1..=usize::MAX) {
            payloads.push(frame.payload.to_vec());
            valid = frame.end;
        }
        (payloads, valid, bytes)
    }

    fn storage() -> MemoryStorage {
        let storage = MemoryStorage::new(3);
        storage.create_dir_all(&dir()).unwrap();
        storage
    }

    #[test]
    fn frames_are_written_over_zeros_and_the_log_grows_a_chunk_at_a_time() {
        let storage = storage();
        let mut log = JournalFile::create(&storage, &dir(), &path()).unwrap();
        assert_eq!(
            storage.read(&path()).unwrap(),
            vec![0; CHUNK_BYTES as usize]
        );
        let big = vec![7; CHUNK_BYTES as usize];
        log.append(&framed(&[b"one", b"two"])).unwrap();
        log.append(&framed(&[&big])).unwrap();
        log.sync().unwrap();
        let (payloads, valid, bytes) = read(&storage);
        assert_eq!(payloads, vec![b"one".to_vec(), b"two".to_vec(), big]);
        assert_eq!(valid as u64, log.len());
        assert!(bytes.len() as u64 >= log.len() + CHUNK_BYTES);
        assert!(bytes[valid..].iter().all(|&b| b == 0));
    }

    #[test]
    fn reopening_zeroes_what_lies_past_the_valid_frames() {
        let storage = storage();
        let mut log = JournalFile::create(&storage, &dir(), &path()).unwrap();
        log.append(&framed(&[b"kept"])).unwrap();
        let kept = log.len() as usize;
        // A torn frame, and a whole one behind it, as a crash may leave them.
        let mut file = storage.open_in_place(&path(), false).unwrap();
        let behind = framed(&[b"stale"]);
        file.write_all_at(kept as u64, &[9, 0, 0, 0, 1, 2]).unwrap();
        file.write_all_at(kept as u64 + 100, &behind).unwrap();
        let (_, valid, bytes) = read(&storage);
        assert_eq!(valid, kept);
        let mut log = JournalFile::reopen(&storage, &path(), &bytes, valid).unwrap();
        // A frame ending just where the stale one starts must not bring it back.
        let filler = vec![1; 100 - frame::HEADER_BYTES];
        log.append(&framed(&[&filler])).unwrap();
        log.sync().unwrap();
        let (payloads, _, _) = read(&storage);
        assert_eq!(payloads, vec![b"kept".to_vec(), filler]);
    }
}
