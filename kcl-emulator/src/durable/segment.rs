//! The durable per-shard segment log.
//!
//! Each shard owns a directory of segment files named after the counter of their first record.
//! A segment is a sequence of frames (see [`frame`]), each payload
//! `[counter u64][arrival ms i64][partition key length u16][partition key][data]`
//! (little-endian). Only the newest segment of a shard is ever written to. It is synced before
//! a newer one is started, and a new segment's directory entry is synced before anything is
//! written to it, so a crash can only tear the newest segment: no record is lost from the
//! middle of the log.
//!
//! Durability comes from the group committer ([`commit`](super::commit)): writers hand it
//! encoded frames and wait; it writes everything queued, issues one `fdatasync` per touched
//! shard for the whole batch, then acknowledges. A record is acknowledged to the client, and
//! made visible to readers, only after that sync: whatever a client saw survives `kill -9` and
//! a power cut.
//!
//! Recovery reads every segment; the first frame that is short or fails its CRC marks a torn
//! tail (a write cut off by a crash) and the file is truncated there, or removed if nothing is
//! left. Recovered segments are sealed: appends after a restart start a new one. Retention
//! removes whole segments whose newest record has expired, never rewriting a file. It does not
//! sync the directory: a removal lost in a crash only brings expired records back, and
//! retention removes them again.
//!
//! Files are reached through the storage seam ([`storage`](super::storage)), so the crash test
//! can run this code against a machine that loses power at any operation.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::commit::{self, CommitLog, SharedLog};
use super::frame::{self, Frame};
use super::storage::{Storage, StorageFile};

/// One record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// Global append counter; with the shard index and stream epoch it makes the sequence number.
    pub(crate) counter: u64,
    /// Approximate arrival time, ms since the epoch.
    pub(crate) arrival_ms: i64,
    /// The partition key given by the producer.
    pub(crate) partition_key: Arc<str>,
    /// The record payload.
    pub(crate) data: Bytes,
}

/// Start a new segment once the current one reaches this size.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Fixed part of a frame payload: counter, arrival time, partition key length.
const PAYLOAD_HEADER: usize = 8 + 8 + 2;
/// No valid frame is larger than this (1 MiB data + 256 four-byte characters of key + header).
const MAX_PAYLOAD: usize = 1024 * 1024 + 1024 + PAYLOAD_HEADER;

/// Appends the frame for `record` to `buf`.
pub(crate) fn encode_frame(buf: &mut Vec<u8>, record: &Record) {
    let key = record.partition_key.as_bytes();
    buf.reserve(frame::HEADER_BYTES + PAYLOAD_HEADER + key.len() + record.data.len());
    frame::encode_with(buf, |buf| {
        buf.extend_from_slice(&record.counter.to_le_bytes());
        buf.extend_from_slice(&record.arrival_ms.to_le_bytes());
        buf.extend_from_slice(&(key.len() as u16).to_le_bytes());
        buf.extend_from_slice(key);
        buf.extend_from_slice(&record.data);
    });
}

/// Decodes the frames of one segment. Returns the records and the length of the valid prefix;
/// a shorter valid prefix than the input means the rest is a torn or corrupt tail.
pub(crate) fn decode_frames(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut valid = 0;
    for Frame { payload, end } in frame::frames(bytes, PAYLOAD_HEADER..=MAX_PAYLOAD) {
        let counter = u64::from_le_bytes(payload[0..8].try_into().expect("8 bytes"));
        let arrival_ms = i64::from_le_bytes(payload[8..16].try_into().expect("8 bytes"));
        let key_len = u16::from_le_bytes(payload[16..18].try_into().expect("2 bytes")) as usize;
        if PAYLOAD_HEADER + key_len > payload.len() {
            break;
        }
        let Ok(key) = std::str::from_utf8(&payload[18..18 + key_len]) else {
            break;
        };
        records.push(Record {
            counter,
            arrival_ms,
            partition_key: Arc::from(key),
            data: Bytes::copy_from_slice(&payload[18 + key_len..]),
        });
        valid = end;
    }
    (records, valid)
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// Arrival time of the newest record in the segment (for retention).
    newest_arrival_ms: i64,
    /// Bytes written to the file: its length, as far as this process knows.
    len: u64,
}

/// The segment files of one shard.
#[derive(Debug)]
pub(crate) struct ShardFiles {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    /// Sealed segments, oldest first.
    sealed: Vec<Segment>,
    current: Option<(Box<dyn StorageFile>, Segment)>,
    /// A new segment is started once the current one reaches this size ([`SEGMENT_BYTES`] but
    /// in tests).
    segment_bytes: u64,
}

impl ShardFiles {
    /// Opens (creating if needed) the shard directory `dir` in `storage`, recovering its
    /// records. Torn tails are truncated away.
    pub(crate) fn open(
        storage: Arc<dyn Storage>,
        dir: &Path,
    ) -> io::Result<(ShardFiles, Vec<Record>)> {
        storage.create_dir_all(dir)?;
        let mut names: Vec<PathBuf> = storage
            .list(dir)?
            .into_iter()
            .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
            .collect();
        names.sort();
        let mut records = Vec::new();
        let mut sealed = Vec::new();
        for path in names {
            let bytes = storage.read(&path)?;
            let (mut recovered, valid) = decode_frames(&bytes);
            if valid < bytes.len() {
                tracing::warn!(
                    path = %path.display(),
                    kept = valid,
                    dropped = bytes.len() - valid,
                    "truncating torn tail of segment"
                );
                let mut file = storage.open_append(&path, false)?;
                file.set_len(valid as u64)?;
                file.sync_all()?;
            }
            if recovered.is_empty() && valid == 0 {
                storage.remove(&path)?;
                continue;
            }
            let newest = recovered.last().map_or(0, |r| r.arrival_ms);
            sealed.push(Segment {
                path,
                newest_arrival_ms: newest,
                len: valid as u64,
            });
            records.append(&mut recovered);
        }
        Ok((
            ShardFiles {
                storage,
                dir: dir.to_owned(),
                sealed,
                current: None,
                segment_bytes: SEGMENT_BYTES,
            },
            records,
        ))
    }

    /// Starts a new segment once the current one reaches `bytes` (tests roll over often).
    #[cfg(test)]
    pub(crate) fn roll_over_at(&mut self, bytes: u64) {
        self.segment_bytes = bytes;
    }

    fn append(&mut self, append: &Append) -> io::Result<()> {
        let Append {
            first_counter,
            newest_arrival_ms,
            bytes,
        } = append;
        if self
            .current
            .as_ref()
            .is_some_and(|(_, segment)| segment.len >= self.segment_bytes)
        {
            let (mut file, segment) = self.current.take().expect("checked above");
            file.sync_data()?;
            self.sealed.push(segment);
        }
        if self.current.is_none() {
            let path = self.dir.join(format!("{first_counter:020}.seg"));
            let file = self.storage.open_append(&path, true)?;
            // The new file's directory entry must be durable before any record in it counts.
            self.storage.sync_dir(&self.dir)?;
            // The file is new unless recovery found it: then it goes on from where that left it.
            let len = match self.sealed.iter().position(|s| s.path == path) {
                Some(at) => self.sealed.remove(at).len,
                None => 0,
            };
            self.current = Some((
                file,
                Segment {
                    path,
                    newest_arrival_ms: *newest_arrival_ms,
                    len,
                },
            ));
        }
        let (file, segment) = self.current.as_mut().expect("opened above");
        file.write_all(bytes)?;
        segment.len += bytes.len() as u64;
        segment.newest_arrival_ms = *newest_arrival_ms;
        Ok(())
    }

    /// Deletes sealed segments whose newest record arrived before `cutoff_ms`. A segment stays
    /// listed until its file is gone, so a failed delete is tried again next time.
    pub(crate) fn drop_expired(&mut self, cutoff_ms: i64) -> io::Result<usize> {
        let mut dropped = 0;
        while let Some(segment) = self
            .sealed
            .first()
            .filter(|s| s.newest_arrival_ms < cutoff_ms)
        {
            self.storage.remove(&segment.path)?;
            self.sealed.remove(0);
            dropped += 1;
        }
        Ok(dropped)
    }
}

/// One append to a shard's newest segment.
#[derive(Debug)]
pub(crate) struct Append {
    /// Counter of the first record: names the segment if this append starts one.
    pub(crate) first_counter: u64,
    pub(crate) newest_arrival_ms: i64,
    /// The records' frames.
    pub(crate) bytes: Vec<u8>,
}

impl CommitLog for ShardFiles {
    type Entry = Append;

    fn write(&mut self, append: &Append) -> io::Result<()> {
        self.append(append)
    }

    fn sync(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some((file, _)) => file.sync_data(),
            None => Ok(()),
        }
    }
}

/// The committer of every shard's segments.
pub(crate) type Committer = commit::Committer<ShardFiles>;
/// A shard's segment files, shared with the committer.
pub(crate) type SharedShardFiles = Arc<SharedLog<ShardFiles>>;

#[cfg(test)]
mod crash;
#[cfg(test)]
mod tests {
    use std::fs::{self, OpenOptions};
    use std::io::Write;

    use super::*;
    use crate::durable::storage::disk;

    fn record(counter: u64, key: &str, data: &[u8]) -> Record {
        Record {
            counter,
            arrival_ms: 1_700_000_000_000 + counter as i64,
            partition_key: Arc::from(key),
            data: Bytes::copy_from_slice(data),
        }
    }

    #[test]
    fn frames_round_trip_and_a_torn_tail_is_cut_at_the_last_whole_frame() {
        let mut buf = Vec::new();
        let written: Vec<Record> = (0..5).map(|i| record(i, "pk", &[i as u8; 100])).collect();
        for r in &written {
            encode_frame(&mut buf, r);
        }
        let (read, valid) = decode_frames(&buf);
        assert_eq!(valid, buf.len());
        assert_eq!(read, written);

        for cut in 1..40 {
            let torn = &buf[..buf.len() - cut];
            let (read, valid) = decode_frames(torn);
            assert_eq!(read.len(), 4, "cut {cut}");
            assert!(valid <= torn.len());
        }
        let mut corrupt = buf.clone();
        let last = corrupt.len() - 3;
        corrupt[last] ^= 0xff;
        assert_eq!(decode_frames(&corrupt).0.len(), 4);
    }

    #[test]
    fn after_a_failed_write_the_log_refuses_further_writes() {
        let dir = tempfile::tempdir().unwrap();
        let shard_dir = dir.path().join("shard");
        let (files, _) = ShardFiles::open(disk(), &shard_dir).unwrap();
        let files = SharedLog::new(files);
        let committer = Committer::start("test-commit").unwrap();
        let submit = |counter: u64| {
            let mut bytes = Vec::new();
            encode_frame(&mut bytes, &record(counter, "k", b"x"));
            let append = Append {
                first_counter: counter,
                newest_arrival_ms: 0,
                bytes,
            };
            committer.queue(&files, append).wait().is_ok()
        };
        // The segment cannot be created once its directory is gone.
        fs::remove_dir_all(&shard_dir).unwrap();
        assert!(!submit(1));
        // Even when the directory is back, the log stays closed to writes.
        fs::create_dir_all(&shard_dir).unwrap();
        assert!(!submit(2));
    }

    #[test]
    fn reopening_recovers_records_and_truncates_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let (files, recovered) = ShardFiles::open(disk(), dir.path()).unwrap();
        assert!(recovered.is_empty());
        let files = SharedLog::new(files);
        let committer = Committer::start("test-commit").unwrap();
        let tickets: Vec<_> = (0..3)
            .map(|i| {
                let mut bytes = Vec::new();
                encode_frame(&mut bytes, &record(i, "k", b"hello"));
                let append = Append {
                    first_counter: i,
                    newest_arrival_ms: 0,
                    bytes,
                };
                committer.queue(&files, append)
            })
            .collect();
        for ticket in tickets {
            ticket.wait().unwrap();
        }
        drop(files);
        let segment = fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap()
            .write_all(&[7, 0, 0])
            .unwrap();
        let (_, recovered) = ShardFiles::open(disk(), dir.path()).unwrap();
        assert_eq!(
            recovered.iter().map(|r| r.counter).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        let (_, again) = ShardFiles::open(disk(), dir.path()).unwrap();
        assert_eq!(again.len(), 3);
    }
}
