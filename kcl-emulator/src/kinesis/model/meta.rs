//! Stream, shard and consumer metadata, the stream dependents' state, and how they are kept on
//! disk.
//!
//! Two files hold it: a snapshot of everything (`meta.json`) and a journal of the changes made
//! since (`meta-journal-<generation>.log`). A change appends one record to the journal, the
//! new state of the one stream or dependent it touched (or, for a dependent, what changed in
//! it: a queue's receives and acknowledgements touch a few of its records), through the group
//! committer (`durable::commit`): concurrent changes share one sync, and the cost of a change
//! does not grow with the number of streams. When the journal has grown past the snapshot's
//! size (and a floor), the snapshot is written again (to a temporary file, synced, renamed
//! over `meta.json`, the directory synced) under the next generation, and the old journal is
//! deleted; rewriting the snapshot that rarely keeps the cost per change bounded on average.
//!
//! The snapshot names its generation, and recovery replays only that generation's journal: a
//! crash between the rename and the old journal's deletion leaves a journal that is ignored
//! (and removed). Journal records are frames of the one durable frame codec, written in place
//! over zeros laid down ahead (`durable::journal`, so that a sync commits no change of size);
//! the first torn or corrupt frame ends the replay, and what lies past it is zeroed. Data
//! directories written before the journal existed hold a snapshot alone (generation 0, no
//! journal) and load as they are.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{CapacityMode, Encryption, RecordDistribution, SavedDependents, Status, Stream};
use crate::durable::commit::{CommitLog, Committer, SharedLog, Ticket};
use crate::durable::frame::{self, Frame};
use crate::durable::journal::JournalFile;
use crate::durable::storage::Storage;

/// A registered enhanced fan-out consumer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConsumerMeta {
    pub(crate) name: String,
    pub(crate) arn: String,
    pub(crate) created_ms: i64,
    pub(crate) creating_until: i64,
    pub(crate) deleting_until: Option<i64>,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, String>,
    /// The consumer's own resource policy (JSON), apart from its stream's.
    #[serde(default)]
    pub(crate) resource_policy: Option<String>,
}

/// The state at `now` of a resource that is CREATING until `creating_until`, UPDATING until
/// `updating_until` and DELETING from the moment `deleting_until` is set: the one rule every
/// resource's lifecycle follows.
fn status_at(
    now: i64,
    creating_until: i64,
    updating_until: Option<i64>,
    deleting_until: Option<i64>,
) -> Status {
    if deleting_until.is_some() {
        Status::Deleting
    } else if now < creating_until {
        Status::Creating
    } else if updating_until.is_some_and(|until| now < until) {
        Status::Updating
    } else {
        Status::Active
    }
}

/// Whether a deletion that ends at `deleting_until` has completed by `now`.
fn deleted_at(now: i64, deleting_until: Option<i64>) -> bool {
    deleting_until.is_some_and(|until| now >= until)
}

/// When an account-level resource (a channel or a queue) was created and until when it is
/// CREATING, UPDATING and DELETING. Stored flattened, as the fields of the resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lifecycle {
    pub(crate) created_ms: i64,
    pub(crate) creating_until: i64,
    pub(crate) updating_until: Option<i64>,
    pub(crate) deleting_until: Option<i64>,
}

impl Lifecycle {
    /// A resource created at `now`, CREATING for `create_delay_ms`.
    pub(crate) fn new(now: i64, create_delay_ms: i64) -> Lifecycle {
        Lifecycle {
            created_ms: now,
            creating_until: now + create_delay_ms,
            updating_until: None,
            deleting_until: None,
        }
    }

    pub(crate) fn status(&self, now: i64) -> Status {
        status_at(
            now,
            self.creating_until,
            self.updating_until,
            self.deleting_until,
        )
    }

    pub(crate) fn deleted(&self, now: i64) -> bool {
        deleted_at(now, self.deleting_until)
    }

    /// UPDATING for `delay_ms` from `now`.
    pub(crate) fn begin_update(&mut self, now: i64, delay_ms: i64) {
        self.updating_until = Some(now + delay_ms);
    }

    /// DELETING from `now`, gone `delay_ms` later; a deletion already under way keeps its end.
    pub(crate) fn begin_delete(&mut self, now: i64, delay_ms: i64) {
        self.deleting_until.get_or_insert(now + delay_ms);
    }
}

impl ConsumerMeta {
    pub(crate) fn status(&self, now: i64) -> Status {
        status_at(now, self.creating_until, None, self.deleting_until)
    }

    pub(crate) fn deleted(&self, now: i64) -> bool {
        deleted_at(now, self.deleting_until)
    }
}

/// Everything about a stream except its shards.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StreamSettings {
    pub(crate) created_ms: i64,
    pub(crate) creating_until: i64,
    pub(crate) updating_until: Option<i64>,
    pub(crate) deleting_until: Option<i64>,
    pub(crate) retention_hours: u32,
    pub(crate) mode: CapacityMode,
    pub(crate) encryption_type: Encryption,
    pub(crate) key_id: Option<String>,
    pub(crate) shard_level_metrics: Vec<String>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) consumers: Vec<ConsumerMeta>,
    pub(crate) resource_policy: Option<String>,
    pub(crate) max_record_size_kib: u32,
    pub(crate) warm_throughput_mibps: Option<u32>,
    /// Absent from metadata written before streams could spread records (by key, then).
    #[serde(default)]
    pub(crate) record_distribution: RecordDistribution,
}

impl StreamSettings {
    /// Settings of a stream created now, CREATING until `creating_until`.
    pub(crate) fn new(now: i64, creating_until: i64, mode: CapacityMode) -> StreamSettings {
        StreamSettings {
            created_ms: now,
            creating_until,
            updating_until: None,
            deleting_until: None,
            retention_hours: 24,
            mode,
            encryption_type: Encryption::None,
            key_id: None,
            shard_level_metrics: Vec::new(),
            tags: BTreeMap::new(),
            consumers: Vec::new(),
            resource_policy: None,
            max_record_size_kib: 1024,
            warm_throughput_mibps: None,
            record_distribution: RecordDistribution::default(),
        }
    }

    pub(crate) fn status(&self, now: i64) -> Status {
        status_at(
            now,
            self.creating_until,
            self.updating_until,
            self.deleting_until,
        )
    }

    pub(crate) fn deleted(&self, now: i64) -> bool {
        deleted_at(now, self.deleting_until)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SavedShard {
    pub(crate) index: u32,
    pub(crate) id: String,
    pub(crate) parent: Option<String>,
    pub(crate) adjacent_parent: Option<String>,
    /// Decimal strings: JSON numbers cannot carry 128 bits.
    pub(crate) start_hash: String,
    pub(crate) end_hash: String,
    pub(crate) starting_counter: u64,
    pub(crate) ending_counter: Option<u64>,
    /// When the shard closed (store clock, ms); absent from snapshots written before shards
    /// expired.
    #[serde(default)]
    pub(crate) closed_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SavedStream {
    pub(crate) name: String,
    pub(crate) epoch: u64,
    pub(crate) settings: StreamSettings,
    pub(crate) shards: Vec<SavedShard>,
}

/// Everything the metadata holds; `S` is the stream dependents' part.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Snapshot<S> {
    pub(crate) version: u32,
    /// The append counter when the snapshot was taken; recovery resumes above it.
    pub(crate) counter: u64,
    /// The store clock when the snapshot was taken; the clock resumes from at least this, so
    /// time moved forward for testing does not run back on restart. Absent (0) from snapshots
    /// written before the clock could be moved.
    #[serde(default)]
    pub(crate) clock_ms: i64,
    pub(crate) streams: Vec<SavedStream>,
    /// The stream dependents, as fields of the snapshot object (`channels`, `queues`): the
    /// layout snapshots had when the store named them itself.
    #[serde(flatten)]
    pub(crate) dependents: S,
    /// Which journal continues this snapshot. Absent (0) from snapshots written before the
    /// journal existed, which no journal continues.
    #[serde(default)]
    pub(crate) generation: u64,
}

const META_FILE: &str = "meta.json";
/// The journal is compacted into a new snapshot once it is larger than both the snapshot and
/// this: small stores are not rewritten every few changes.
const MIN_COMPACT_BYTES: u64 = 1024 * 1024;
/// No journal record is larger than this; a length beyond it is garbage, not a record.
const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;

impl SavedStream {
    /// The metadata of `stream` as it is now (takes its lock and its shards').
    pub(crate) fn of(stream: &Stream) -> SavedStream {
        let state = stream.lock();
        SavedStream {
            name: stream.name.clone(),
            epoch: stream.epoch,
            settings: state.settings.clone(),
            shards: state
                .shards
                .iter()
                .map(|s| {
                    let log = s.lock();
                    SavedShard {
                        index: s.index,
                        id: s.id.clone(),
                        parent: s.parent.clone(),
                        adjacent_parent: s.adjacent_parent.clone(),
                        start_hash: s.start_hash.to_string(),
                        end_hash: s.end_hash.to_string(),
                        starting_counter: s.starting_counter,
                        ending_counter: log.ending_counter,
                        closed_ms: log.closed_ms,
                    }
                })
                .collect(),
        }
    }
}

impl<S: SavedDependents> Snapshot<S> {
    /// A snapshot of `streams` and `dependents` (generation set when it is written).
    pub(crate) fn of(
        streams: &[&Arc<Stream>],
        dependents: S,
        counter: u64,
        clock_ms: i64,
    ) -> Snapshot<S> {
        Snapshot {
            version: 1,
            counter,
            clock_ms,
            streams: streams.iter().map(|s| SavedStream::of(s)).collect(),
            dependents,
            generation: 0,
        }
    }

    /// Applies one journal record: the new state of what it names, or (for a dependent) what
    /// changed in it since its previous record.
    fn apply(&mut self, entry: JournalEntry<S::Record>) {
        self.counter = self.counter.max(entry.counter);
        self.clock_ms = self.clock_ms.max(entry.clock_ms);
        match entry.change {
            Change::Stream(saved) => match self.streams.iter_mut().find(|s| s.name == saved.name) {
                Some(slot) => *slot = saved,
                None => self.streams.push(saved),
            },
            Change::StreamRemoved { name, epoch } => {
                self.streams
                    .retain(|s| !(s.name == name && s.epoch == epoch));
            }
            Change::Clock => {}
            Change::Dependent(record) => self.dependents.apply(record),
        }
    }
}

/// What one journal record changes; `R` is a stream dependent's record.
// Records are built a handful at a time and written at once: their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Change<R> {
    /// A stream was created or changed (settings, consumers, tags, shards): its new state.
    Stream(SavedStream),
    /// A stream's deletion completed. The epoch tells it from a later stream of the same name.
    StreamRemoved { name: String, epoch: u64 },
    /// Only the clock and counter moved (the store's clock was advanced).
    Clock,
    /// A stream dependent was created or changed: its new state or what changed in it,
    /// written as the dependent's record type writes it (a tagged object of its own, such as
    /// `{"Queue": ...}`).
    #[serde(untagged)]
    Dependent(R),
}

/// One journal record: a change, and the counter and clock when it was made.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JournalEntry<R> {
    pub(crate) counter: u64,
    pub(crate) clock_ms: i64,
    pub(crate) change: Change<R>,
}

/// The metadata files of a durable store: the snapshot and its journal, open for appending.
#[derive(Debug)]
pub(crate) struct MetaFiles {
    storage: Arc<dyn Storage>,
    root: PathBuf,
    /// The generation of the snapshot on disk, which the journal continues.
    generation: u64,
    /// This generation's journal, written by `committer`.
    journal: Arc<SharedLog<Journal>>,
    committer: Committer<Journal>,
    /// Bytes of whole records queued for the journal.
    journal_bytes: u64,
    /// Size of the snapshot on disk.
    snapshot_bytes: u64,
    /// The journal is not compacted below this size ([`MIN_COMPACT_BYTES`] but in tests).
    min_compact_bytes: u64,
    /// Set when a compaction failed: which snapshot is on disk is then unknown, so the next
    /// change writes a whole snapshot instead. A failed journal write says the same through
    /// `journal`.
    needs_snapshot: bool,
}

/// One generation's journal file, created when its first record is written.
#[derive(Debug)]
pub(crate) struct Journal {
    storage: Arc<dyn Storage>,
    root: PathBuf,
    path: PathBuf,
    file: Option<JournalFile>,
}

impl CommitLog for Journal {
    type Entry = Vec<u8>;

    fn write(&mut self, frames: &Vec<u8>) -> io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(JournalFile::create(
                self.storage.as_ref(),
                &self.root,
                &self.path,
            )?),
        };
        file.append(frames)
    }

    fn sync(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.sync(),
            None => Ok(()),
        }
    }
}

fn journal_path(root: &Path, generation: u64) -> PathBuf {
    root.join(format!("meta-journal-{generation:020}.log"))
}

fn is_journal(name: &str) -> bool {
    name.starts_with("meta-journal-") && name.ends_with(".log")
}

impl MetaFiles {
    /// Opens the metadata in `root` and recovers it: the snapshot with its journal replayed.
    /// `None` when there is none (a new store). A torn journal tail is cut off, and journals
    /// of other generations (left by a crash during compaction) are removed.
    pub(crate) fn open<S: SavedDependents>(
        storage: Arc<dyn Storage>,
        root: &Path,
    ) -> io::Result<(MetaFiles, Option<Snapshot<S>>)> {
        let (mut snapshot, snapshot_bytes) = match storage.read(&root.join(META_FILE)) {
            Ok(bytes) => {
                let snapshot: Snapshot<S> = serde_json::from_slice(&bytes).map_err(|err| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("corrupt {META_FILE}: {err}"),
                    )
                })?;
                (Some(snapshot), bytes.len() as u64)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => (None, 0),
            Err(err) => return Err(err),
        };
        let generation = snapshot.as_ref().map_or(0, |s| s.generation);
        let current = journal_path(root, generation);
        for path in storage.list(root)? {
            let stray = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_journal)
                && path != current;
            if stray {
                storage.remove(&path)?;
            }
        }
        let mut journal_bytes = 0;
        let journal = match storage.read(&current) {
            Ok(bytes) => {
                let mut valid = 0;
                for Frame { payload, end } in frame::frames(&bytes, 1..=MAX_RECORD_BYTES) {
                    let Ok(entry) = serde_json::from_slice::<JournalEntry<S::Record>>(payload)
                    else {
                        break;
                    };
                    snapshot
                        .get_or_insert_with(|| Snapshot::of(&[], S::default(), 0, 0))
                        .apply(entry);
                    valid = end;
                }
                let file = JournalFile::reopen(storage.as_ref(), &current, &bytes, valid)?;
                journal_bytes = file.len();
                Some(file)
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(err),
        };
        let files = MetaFiles {
            storage: Arc::clone(&storage),
            root: root.to_owned(),
            generation,
            journal: SharedLog::new(Journal {
                storage,
                root: root.to_owned(),
                path: current,
                file: journal,
            }),
            committer: Committer::start("kinesis-meta-commit")?,
            journal_bytes,
            snapshot_bytes,
            min_compact_bytes: MIN_COMPACT_BYTES,
            needs_snapshot: false,
        };
        Ok((files, snapshot))
    }

    /// Saves one change: queues the records `entries` builds for the journal (with a ticket
    /// to wait on when `synced`; otherwise a later synced record covers them), or writes the
    /// whole `snapshot` when the journal cannot be trusted after a failure (then there is
    /// nothing to wait for), and compacts the journal once it is due. The snapshot is built
    /// after the change was made, so it holds the change.
    ///
    /// # Errors
    /// When the records could not be encoded or the snapshot that was due could not be
    /// written: the change is not saved.
    pub(crate) fn save<R: Serialize, S: Serialize>(
        &mut self,
        entries: impl FnOnce() -> Vec<JournalEntry<R>>,
        snapshot: impl Fn() -> Snapshot<S>,
        synced: bool,
    ) -> io::Result<Option<Ticket>> {
        if self.needs_snapshot() {
            self.write_snapshot(snapshot())?;
            return Ok(None);
        }
        let entries = entries();
        let written = if synced {
            Some(self.append(&entries)?)
        } else {
            self.append_unsynced(&entries)?;
            None
        };
        if self.should_compact() {
            // The change will be durable in the journal: a failed compaction is retried with
            // the next change rather than failing this one.
            if let Err(err) = self.write_snapshot(snapshot()) {
                tracing::error!(error = %err, "compacting the metadata journal failed");
            }
        }
        Ok(written)
    }

    /// Compacts the journal once it outgrows `bytes` rather than [`MIN_COMPACT_BYTES`], so
    /// tests reach compaction after a few changes.
    #[cfg(test)]
    pub(crate) fn compact_above(&mut self, bytes: u64) {
        self.min_compact_bytes = bytes;
    }

    /// Whether the next change must write a whole snapshot rather than a journal record: a
    /// compaction or a journal write failed, so the journal's tail (or which snapshot is on
    /// disk) is unknown.
    pub(crate) fn needs_snapshot(&self) -> bool {
        self.needs_snapshot || self.journal.has_failed()
    }

    /// Whether the journal has grown enough to be folded into a new snapshot.
    pub(crate) fn should_compact(&self) -> bool {
        self.journal_bytes > self.snapshot_bytes.max(self.min_compact_bytes)
    }

    /// Queues `entries` for the journal, after every record queued before: once the ticket
    /// resolves Ok, they survive a crash. Concurrent appends share one sync.
    pub(crate) fn append<R: Serialize>(
        &mut self,
        entries: &[JournalEntry<R>],
    ) -> io::Result<Ticket> {
        let bytes = self.frames(entries)?;
        Ok(self.committer.queue(&self.journal, bytes))
    }

    /// Queues `entries` for the journal, after every record queued before, without calling
    /// for a sync: they survive a crash once a later append's ticket resolves Ok.
    pub(crate) fn append_unsynced<R: Serialize>(
        &mut self,
        entries: &[JournalEntry<R>],
    ) -> io::Result<()> {
        let bytes = self.frames(entries)?;
        self.committer.queue_unsynced(&self.journal, bytes);
        Ok(())
    }

    /// `entries` framed for the journal, counted towards its size.
    fn frames<R: Serialize>(&mut self, entries: &[JournalEntry<R>]) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        for entry in entries {
            let payload = serde_json::to_vec(entry).map_err(io::Error::other)?;
            frame::encode(&mut bytes, &payload);
        }
        self.journal_bytes += bytes.len() as u64;
        Ok(bytes)
    }

    /// Writes `snapshot` as the next generation and starts its (empty) journal; the previous
    /// journal is deleted once the new snapshot is durable.
    pub(crate) fn write_snapshot<S: Serialize>(
        &mut self,
        mut snapshot: Snapshot<S>,
    ) -> io::Result<()> {
        let result = self.write_snapshot_unchecked(&mut snapshot);
        self.needs_snapshot = result.is_err();
        result
    }

    fn write_snapshot_unchecked<S: Serialize>(
        &mut self,
        snapshot: &mut Snapshot<S>,
    ) -> io::Result<()> {
        let next = self.generation + 1;
        snapshot.generation = next;
        let bytes = serde_json::to_vec_pretty(&snapshot).map_err(io::Error::other)?;
        let tmp = self.root.join("meta.json.tmp");
        let mut file = self.storage.create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        self.storage.rename(&tmp, &self.root.join(META_FILE))?;
        // From the rename on, the old journal no longer continues the snapshot that may be on
        // disk: later changes go to the new generation's journal.
        let previous = std::mem::replace(&mut self.generation, next);
        self.journal = SharedLog::new(Journal {
            storage: Arc::clone(&self.storage),
            root: self.root.clone(),
            path: journal_path(&self.root, next),
            file: None,
        });
        self.journal_bytes = 0;
        self.snapshot_bytes = bytes.len() as u64;
        self.storage.sync_dir(&self.root)?;
        // Records still queued for the old journal are in the snapshot already; once they are
        // written, nothing creates or appends to the old file again, and it can go.
        self.committer.barrier().wait()?;
        match self.storage.remove(&journal_path(&self.root, previous)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
