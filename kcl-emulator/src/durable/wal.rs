//! Durability of the DynamoDB tables: a write-ahead log with group commit, folded into a
//! snapshot at every start.
//!
//! Every change is a JSON record in a CRC-checked frame (see [`frame`], as in the Kinesis
//! segment log). Writers queue their record while holding the tables' lock, so the log's order
//! is the order in which changes were applied, and wait outside the lock until one
//! `fdatasync` covers everything queued so far; the log is written in place over zeros laid
//! down ahead (see [`journal`](super::journal)). Recovery reads the snapshot, replays the log up
//! to the first torn or corrupt frame, writes a fresh snapshot and starts an empty log.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value as Json;
use tokio::sync::oneshot;

use super::commit::{CommitLog, Committer, SharedLog};
use super::frame;
use super::journal::JournalFile;
use super::storage::Storage;

const WAL: &str = "wal.log";
const SNAPSHOT: &str = "snapshot.json";

/// The log file, appended to by the committer.
#[derive(Debug)]
pub(crate) struct WalFile(JournalFile);

impl CommitLog for WalFile {
    type Entry = Vec<u8>;

    fn write(&mut self, frame: &Vec<u8>) -> io::Result<()> {
        self.0.append(frame)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync()
    }
}

/// The open log: appends go through its group committer.
#[derive(Debug)]
pub(crate) struct Wal {
    committer: Committer<WalFile>,
    log: Arc<SharedLog<WalFile>>,
    dir: PathBuf,
}

fn encode_record(record: &Json) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode_with(&mut out, |buf| {
        serde_json::to_writer(buf, record).expect("records serialize");
    });
    out
}

/// The records of the whole frames at the start of `log`, up to the first torn or corrupt one.
fn read_frames(log: &[u8]) -> Vec<Json> {
    frame::frames(log, 1..=usize::MAX)
        .map_while(|frame| serde_json::from_slice(frame.payload).ok())
        .collect()
}

impl Wal {
    /// Recovers `(snapshot, log records)` from `dir` in `storage` and starts a fresh log there.
    pub(crate) fn open(
        storage: &dyn Storage,
        dir: &Path,
        snapshot_of: impl FnOnce(Option<Json>, Vec<Json>) -> io::Result<Json>,
    ) -> io::Result<Wal> {
        storage.create_dir_all(dir)?;
        let snapshot = match storage.read(&dir.join(SNAPSHOT)) {
            Ok(bytes) => Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            ),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(err),
        };
        // A log that exists but cannot be read must not be emptied below: its records would
        // be lost.
        let log = match storage.read(&dir.join(WAL)) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err),
        };
        let records = read_frames(&log);
        let merged = snapshot_of(snapshot, records)?;
        // Fold everything into a new snapshot, then start an empty log.
        let tmp = dir.join("snapshot.json.tmp");
        let mut file = storage.create(&tmp)?;
        file.write_all(&serde_json::to_vec(&merged).map_err(io::Error::other)?)?;
        file.sync_all()?;
        storage.rename(&tmp, &dir.join(SNAPSHOT))?;
        // The rename must be durable before the log is emptied: a crash between the two would
        // otherwise leave the old snapshot beside an empty log, and lose every record folded.
        storage.sync_dir(dir)?;
        let log = JournalFile::create(storage, dir, &dir.join(WAL))?;
        Ok(Wal {
            committer: Committer::start("dynamodb-wal")?,
            log: SharedLog::new(WalFile(log)),
            dir: dir.to_owned(),
        })
    }

    /// Queues `record`; the receiver resolves once it is on disk.
    pub(crate) fn append(&self, record: &Json) -> oneshot::Receiver<io::Result<()>> {
        let (ack, done) = oneshot::channel();
        self.committer.submit(
            &self.log,
            encode_record(record),
            Box::new(move |result| {
                let _ = ack.send(result);
            }),
        );
        done
    }

    /// The log's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_before_a_torn_or_corrupt_frame_are_read_back() {
        let mut bytes = encode_record(&serde_json::json!({"a": 1}));
        bytes.extend(encode_record(&serde_json::json!({"b": 2})));
        let whole = read_frames(&bytes);
        assert_eq!(whole.len(), 2);
        let mut corrupt = bytes.clone();
        let in_second_payload = corrupt.len() - 2;
        corrupt[in_second_payload] ^= 0x20;
        assert_eq!(read_frames(&corrupt), vec![serde_json::json!({"a": 1})]);
        bytes.truncate(bytes.len() - 3);
        assert_eq!(read_frames(&bytes), vec![serde_json::json!({"a": 1})]);
    }

    #[test]
    fn the_log_format_is_unchanged() {
        // A frame as earlier versions wrote it: length, CRC-32, then the JSON itself.
        let record = serde_json::json!({"t": "del", "table": "t", "key": "k"});
        let payload = &serde_json::to_vec(&record).unwrap();
        let mut old = (payload.len() as u32).to_le_bytes().to_vec();
        old.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        old.extend_from_slice(payload);
        assert_eq!(read_frames(&old), vec![record.clone()]);
        assert_eq!(encode_record(&record), old);
    }

    /// Seeded crashes and injected failures around a session of writes: after every restart,
    /// the tables are what some prefix of the attempted writes made them, and that prefix holds
    /// every write that was acknowledged.
    mod crashes {
        use std::collections::BTreeMap;

        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};

        use super::*;
        use crate::durable::memory::{self, History, MemoryStorage, OpKind};

        type Tables = BTreeMap<String, u64>;

        fn dir() -> PathBuf {
            PathBuf::from("/data/dynamodb")
        }

        fn apply(tables: &mut Tables, record: &Json) {
            let key = record["k"].as_str().expect("a key").to_owned();
            match record["v"].as_u64() {
                Some(value) => tables.insert(key, value),
                None => tables.remove(&key),
            };
        }

        fn recover(storage: &MemoryStorage) -> io::Result<(Wal, Tables)> {
            let mut tables = Tables::new();
            let wal = Wal::open(storage, &dir(), |snapshot, records| {
                if let Some(snapshot) = snapshot {
                    tables = serde_json::from_value(snapshot).map_err(io::Error::other)?;
                }
                for record in &records {
                    apply(&mut tables, record);
                }
                serde_json::to_value(&tables).map_err(io::Error::other)
            })?;
            Ok((wal, tables))
        }

        fn run(seed: u64) {
            let storage = MemoryStorage::new(seed);
            let mut rng = StdRng::seed_from_u64(seed);
            let mut history = History::new(Tables::new());
            let mut next_value = 0;
            for _ in 0..rng.gen_range(2..6) {
                let injected = rng.gen_bool(0.3);
                if injected {
                    let kind = [OpKind::Write, OpKind::Sync, OpKind::Rename, OpKind::Create]
                        [rng.gen_range(0..4)];
                    storage.fail(kind, rng.gen_range(0..12));
                } else if rng.gen_bool(0.8) {
                    storage.power_off_after(rng.gen_range(1..=70));
                }
                match recover(&storage) {
                    Ok((wal, tables)) => {
                        history.recovered(tables, seed);
                        let mut tables = history.states[0].clone();
                        for _ in 0..rng.gen_range(1..30) {
                            let key = format!("k{}", rng.gen_range(0..5));
                            next_value += 1;
                            let record = if rng.gen_bool(0.8) {
                                serde_json::json!({"k": key, "v": next_value})
                            } else {
                                serde_json::json!({"k": key})
                            };
                            apply(&mut tables, &record);
                            history.states.push(tables.clone());
                            let outcome = wal.append(&record).blocking_recv().expect("answered");
                            if outcome.is_ok() {
                                history.acknowledged = history.states.len() - 1;
                            }
                        }
                    }
                    Err(err) => assert!(
                        injected || storage.is_down(),
                        "seed {seed}: recovery failed: {err}"
                    ),
                }
                storage.restart(rng.gen_bool(0.7));
            }
            let (_, tables) = recover(&storage).expect("recovery");
            history.recovered(tables, seed);
        }

        #[test]
        fn acknowledged_writes_survive_any_crash_and_recovery_never_fails() {
            for seed in memory::seeds(300) {
                run(seed);
            }
        }
    }
}
