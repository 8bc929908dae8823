//! Streams, shards, consumers and their records.
//!
//! # Model
//! The store holds streams by name. A stream holds its shards (open and closed, in creation
//! order), tags, settings and enhanced fan-out consumers. A shard holds its records in memory
//! in sequence order (the read path is a binary search), and, with a data directory, a
//! [`log::ShardFiles`] that makes them durable. Stream, shard, consumer, channel and queue
//! metadata is made durable on every change, before the change is answered: a journal record
//! of what the change touched, folded into a snapshot now and then (see [`meta`]). Channels and
//! queues belong to the account, not to a stream, and sit beside the streams; a queue's
//! delivery state is part of its metadata too.
//!
//! # Locking
//! `streams` (the map) is read-locked on every request and write-locked only to add or remove a
//! stream. Each stream's settings sit behind their own mutex; each shard's log behind its own,
//! so puts to different shards do not contend. A shard's lock is never held across an `.await`:
//! writers assign sequence numbers and queue their commit under it, then wait outside it.
//!
//! The queues' mutex comes before any stream's or shard's: a check that involves queues and a
//! stream (the consumer limit they share, DeleteStream, a switch to PROVISIONED) holds it across
//! the stream's check and change. The channels' and queues' mutexes are taken by a metadata
//! save, so neither is held when saving or when looking a stream up (which may purge deleted
//! streams and save).
//!
//! # Status transitions
//! CREATING, UPDATING and DELETING are real but lazy: a stream records until when it stays in a
//! state, and every read computes the state from the clock. No timer task is needed, and a
//! restarted emulator finds every transition already complete.

pub(crate) mod channels;
mod clock;
pub(crate) mod keys;
pub(crate) mod log;
mod meta;
pub(crate) mod queues;
mod reshard;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::Config;
pub(crate) use channels::ChannelMeta;
use keys::SequenceParts;
pub(crate) use meta::{ConsumerMeta, Lifecycle, StreamSettings};
pub(crate) use queues::QueueMeta;

pub(crate) use clock::Clock;

/// Milliseconds since the Unix epoch, from the wall clock. DynamoDB reads it directly; the
/// Kinesis side reads time only through its store's [`Clock`], which tests can move forward.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

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

/// The lifecycle state of a stream, consumer, channel or queue, as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Creating,
    Active,
    Updating,
    Deleting,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "CREATING",
            Status::Active => "ACTIVE",
            Status::Updating => "UPDATING",
            Status::Deleting => "DELETING",
        }
    }
}

/// The mutable part of a shard: its records and whether it is closed.
#[derive(Debug, Default)]
pub(crate) struct ShardLog {
    /// Records in counter order, including ones whose commit is still in flight.
    pub(crate) records: VecDeque<Record>,
    /// Records with a counter at or below this are durable and readable.
    pub(crate) visible_counter: u64,
    /// Set when the shard was closed by a split, merge or scaling: the ending counter.
    pub(crate) ending_counter: Option<u64>,
    /// When the shard was closed (store clock, ms). Unknown for shards closed by versions that
    /// did not record it: those are kept, never expired.
    pub(crate) closed_ms: Option<i64>,
    /// Per-second throughput window, used only when throughput enforcement is on.
    pub(crate) window: ThroughputWindow,
    /// Why the shard's log can no longer be written, after a failed write or sync.
    pub(crate) write_failed: Option<String>,
}

impl ShardLog {
    /// Index of the first record with a counter at or above `counter`.
    pub(crate) fn position_of(&self, counter: u64) -> usize {
        self.records.partition_point(|r| r.counter < counter)
    }

    /// Whether every record the shard will ever hold is durable.
    pub(crate) fn fully_visible(&self) -> bool {
        self.records
            .back()
            .is_none_or(|r| r.counter <= self.visible_counter)
    }
}

/// Counts of one second of traffic on a shard.
#[derive(Debug, Default)]
pub(crate) struct ThroughputWindow {
    pub(crate) second: i64,
    pub(crate) bytes_in: u64,
    pub(crate) records_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) reads: u64,
}

impl ThroughputWindow {
    pub(crate) fn roll(&mut self, now_ms: i64) {
        let second = now_ms / 1000;
        if second != self.second {
            *self = ThroughputWindow {
                second,
                ..ThroughputWindow::default()
            };
        }
    }
}

/// A shard: identity, lineage and hash range are fixed; the log changes.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) index: u32,
    pub(crate) id: String,
    pub(crate) parent: Option<String>,
    pub(crate) adjacent_parent: Option<String>,
    pub(crate) start_hash: u128,
    pub(crate) end_hash: u128,
    /// Counter value when the shard was created (its starting sequence number).
    pub(crate) starting_counter: u64,
    pub(crate) log: Mutex<ShardLog>,
    pub(crate) files: Option<Arc<Mutex<log::ShardFiles>>>,
    /// Bumped whenever records become visible or the shard closes, to wake fan-out subscribers.
    pub(crate) changed: watch::Sender<u64>,
}

impl Shard {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ShardLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_open(&self) -> bool {
        self.lock().ending_counter.is_none()
    }

    /// Whether the shard has expired at `now`: closed longer ago than the retention period.
    /// AWS then no longer lists it nor serves it, though its children still name it as parent.
    pub(crate) fn expired(&self, now: i64, retention_hours: u32) -> bool {
        self.lock()
            .closed_ms
            .is_some_and(|closed| closed + retention_ms(retention_hours) < now)
    }
}

/// A retention period in milliseconds.
pub(crate) fn retention_ms(retention_hours: u32) -> i64 {
    i64::from(retention_hours) * 3_600_000
}

/// The mutable state of a stream.
#[derive(Debug)]
pub(crate) struct StreamState {
    pub(crate) settings: StreamSettings,
    /// Every shard ever created, in creation (index) order.
    pub(crate) shards: Vec<Arc<Shard>>,
    /// The open shards sorted by starting hash key, shared with writers for routing.
    pub(crate) open: Arc<Vec<Arc<Shard>>>,
}

impl StreamState {
    pub(crate) fn status(&self, now: i64) -> Status {
        self.settings.status(now)
    }

    fn rebuild_open(&mut self) {
        let mut open: Vec<Arc<Shard>> = self
            .shards
            .iter()
            .filter(|s| s.is_open())
            .map(Arc::clone)
            .collect();
        open.sort_by_key(|s| s.start_hash);
        self.open = Arc::new(open);
    }

    /// The shard `shard_id`, unless it never existed or has expired by `now`.
    pub(crate) fn shard(&self, shard_id: &str, now: i64) -> Option<&Arc<Shard>> {
        let index = keys::shard_index(shard_id)?;
        self.shards
            .get(index as usize)
            .filter(|s| s.index == index && !s.expired(now, self.settings.retention_hours))
    }

    /// The shards AWS would list at `now`: every one created, except those that have expired.
    pub(crate) fn listed_shards(&self, now: i64) -> impl Iterator<Item = &Arc<Shard>> {
        let retention_hours = self.settings.retention_hours;
        self.shards
            .iter()
            .filter(move |s| !s.expired(now, retention_hours))
    }
}

/// A stream: fixed identity plus locked state.
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) name: String,
    pub(crate) arn: String,
    /// Creation time in ms; part of every sequence number and of the data directory name.
    pub(crate) epoch: u64,
    pub(crate) state: Mutex<StreamState>,
    dir: Option<PathBuf>,
}

impl Stream {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, StreamState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sequence number of `counter` in shard `shard_index` of this stream.
    pub(crate) fn sequence_number(&self, counter: u64, shard_index: u32) -> String {
        SequenceParts {
            counter,
            shard_index,
            stream_epoch: self.epoch,
        }
        .format()
    }

    /// Parses `text` as a sequence number of this stream's shard `shard`.
    ///
    /// # Errors
    /// `InvalidArgumentException` worded as AWS words it when the number is malformed or belongs
    /// to another shard or stream.
    pub(crate) fn parse_sequence(&self, text: &str, shard: &Shard) -> ApiResult<u64> {
        let parts = SequenceParts::parse(text).ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "StartingSequenceNumber {text} used in GetShardIterator on shard {} in stream {} \
                 under account is invalid.",
                shard.id, self.name
            ))
        })?;
        if parts.shard_index != shard.index || parts.stream_epoch != self.epoch {
            return Err(ApiError::invalid_argument(format!(
                "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a \
                 shard with {}",
                keys::shard_id(parts.shard_index),
                shard.id
            )));
        }
        Ok(parts.counter)
    }
}

/// What a durable store keeps beside the records.
#[derive(Debug)]
struct Durable {
    root: PathBuf,
    committer: log::Committer,
    /// The metadata files. Their lock serializes metadata writes, so records reach the journal
    /// in the order their states were read, and an older snapshot never replaces a newer one.
    meta: Mutex<meta::MetaFiles>,
}

/// What a metadata change touched: the journal records the new state of that and nothing else.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MetaChange<'a> {
    /// A stream's settings, consumers, tags or shards.
    Stream(&'a Stream),
    /// The channel with this ARN.
    Channel(&'a str),
    /// The queue with this ARN, its delivery state included.
    Queue(&'a str),
    /// Only the clock (moved forward for testing).
    Clock,
}

/// The Kinesis side of the emulator.
#[derive(Debug)]
pub(crate) struct KinesisStore {
    pub(crate) config: Config,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    counter: AtomicU64,
    /// This emulator's time; shared with fan-out subscriber tasks.
    pub(crate) clock: Arc<Clock>,
    durable: Option<Durable>,
    /// The account's minimum throughput billing commitment: status and when it started (ms).
    pub(crate) billing_commitment: Mutex<Option<(String, i64)>>,
    /// Live enhanced fan-out subscriptions.
    pub(crate) subscriptions: Arc<crate::actions::Subscriptions>,
    /// The account's channels, including ones whose deletion has not completed.
    channels: Mutex<Vec<ChannelMeta>>,
    /// The account's queues, including ones whose deletion has not completed.
    queues: Mutex<Vec<QueueMeta>>,
    /// Bumped when a request changes a queue in a way a waiting receive must see (records made
    /// visible again or restored, the queue deleted). Appends wake receives through their
    /// shards' `changed` instead.
    pub(crate) queues_changed: watch::Sender<u64>,
}

/// Outcome of appending one record.
#[derive(Debug, Clone)]
pub(crate) enum PutOutcome {
    /// Stored under this shard id and sequence number.
    Stored {
        shard_id: String,
        sequence_number: String,
    },
    /// Rejected, with the per-record error code and message PutRecords reports.
    Rejected { code: &'static str, message: String },
}

/// A record to append: partition key, payload and the hash key it routes by.
#[derive(Debug)]
pub(crate) struct NewRecord {
    pub(crate) partition_key: Arc<str>,
    pub(crate) data: Bytes,
    pub(crate) hash: u128,
}

impl KinesisStore {
    /// Opens the store: in memory, or recovered from `config.data_dir`.
    pub(crate) fn open(config: &Config) -> std::io::Result<KinesisStore> {
        let mut recovered = None;
        let durable = match &config.data_dir {
            Some(dir) => {
                let root = dir.join("kinesis");
                std::fs::create_dir_all(&root)?;
                let (meta, snapshot) = meta::MetaFiles::open(&root)?;
                recovered = snapshot;
                Some(Durable {
                    root,
                    committer: log::Committer::start()?,
                    meta: Mutex::new(meta),
                })
            }
            None => None,
        };
        let store = KinesisStore {
            config: config.clone(),
            streams: RwLock::new(BTreeMap::new()),
            counter: AtomicU64::new(1),
            clock: Arc::default(),
            durable,
            billing_commitment: Mutex::new(None),
            subscriptions: Arc::default(),
            channels: Mutex::new(Vec::new()),
            queues: Mutex::new(Vec::new()),
            queues_changed: watch::channel(0).0,
        };
        if let Some(snapshot) = recovered {
            store.recover(snapshot)?;
        }
        Ok(store)
    }

    /// Milliseconds since the Unix epoch on this store's clock.
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Moves this store's clock forward by `by` and applies retention at once: records and
    /// closed shards older than the retention period are gone when this returns.
    pub(crate) fn advance_clock(&self, by: std::time::Duration) {
        self.clock.advance(by);
        self.enforce_retention();
        self.purge_deleted();
        // Visibility timeouts may have run out on the new clock: waiting receives look again.
        self.queues_changed.send_modify(|v| *v += 1);
        // The metadata records the clock, so a restart resumes from the advanced time.
        if let Err(err) = self.save_change(MetaChange::Clock) {
            tracing::error!(error = %err, "saving metadata after advancing the clock failed");
        }
    }

    fn next_counter(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// The highest counter handed out so far: every record appended from now on lies above it.
    pub(crate) fn last_assigned_counter(&self) -> u64 {
        self.counter.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// A number no other resource of this store has had or will have, across restarts (it is
    /// drawn from the counter the snapshot records).
    pub(crate) fn next_serial(&self) -> u64 {
        self.next_counter()
    }

    fn streams_read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Stream>>> {
        self.streams.read().unwrap_or_else(|p| p.into_inner())
    }

    fn streams_write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Stream>>> {
        self.streams.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The stream named `name`, unless it does not exist or its deletion has completed.
    ///
    /// # Errors
    /// `ResourceNotFoundException` worded as AWS words it.
    pub(crate) fn stream(&self, name: &str) -> ApiResult<Arc<Stream>> {
        let found = self.streams_read().get(name).cloned();
        match found {
            Some(stream) if !stream.lock().settings.deleted(self.now_ms()) => Ok(stream),
            Some(_) => {
                self.purge_deleted();
                Err(self.stream_not_found(name))
            }
            None => Err(self.stream_not_found(name)),
        }
    }

    pub(crate) fn stream_not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(format!(
            "Stream {name} under account {} not found.",
            self.config.account_id
        ))
    }

    /// The stream ARN for `name`.
    pub(crate) fn stream_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{name}",
            self.config.region, self.config.account_id
        )
    }

    /// Every stream whose deletion has not completed, by name.
    pub(crate) fn streams(&self) -> Vec<Arc<Stream>> {
        let now = self.now_ms();
        self.streams_read()
            .values()
            .filter(|s| !s.lock().settings.deleted(now))
            .cloned()
            .collect()
    }

    /// Number of open shards across all live streams (the account shard limit counts these).
    pub(crate) fn open_shard_count(&self) -> usize {
        self.streams().iter().map(|s| s.lock().open.len()).sum()
    }

    /// Creates a stream with `shard_count` evenly split shards.
    pub(crate) fn create_stream(
        &self,
        name: &str,
        shard_count: u32,
        settings: StreamSettings,
    ) -> ApiResult<()> {
        self.purge_deleted();
        if self.open_shard_count() + shard_count as usize > self.config.shard_limit as usize {
            return Err(ApiError::limit_exceeded(format!(
                "This request would exceed the shard limit for the account {} in {}. Current \
                 shard count for the account: {}. Limit: {}. Number of additional shards that \
                 would have resulted from this request: {shard_count}.",
                self.config.account_id,
                self.config.region,
                self.open_shard_count(),
                self.config.shard_limit
            )));
        }
        let mut streams = self.streams_write();
        if streams.contains_key(name) {
            return Err(ApiError::in_use(format!(
                "Stream {name} under account {} already exists.",
                self.config.account_id
            )));
        }
        // Epochs must differ between incarnations of a name, so a retired stream's sequence
        // numbers never validate against the new one.
        let epoch = (self.now_ms().max(0) as u64).max(self.next_counter());
        let dir = self
            .durable
            .as_ref()
            .map(|d| d.root.join(format!("{name}-{epoch}")));
        let stream = Arc::new(Stream {
            name: name.to_owned(),
            arn: self.stream_arn(name),
            epoch,
            state: Mutex::new(StreamState {
                settings,
                shards: Vec::new(),
                open: Arc::new(Vec::new()),
            }),
            dir,
        });
        {
            let mut state = stream.lock();
            for (start, end) in keys::even_hash_ranges(shard_count) {
                self.add_shard(&stream, &mut state, start, end, None, None)?;
            }
            state.rebuild_open();
        }
        self.save_changes_locked(&streams, Some(&stream), &[MetaChange::Stream(&stream)])?;
        streams.insert(name.to_owned(), stream);
        Ok(())
    }

    /// Appends a new open shard to `state` (the caller rebuilds the open list).
    fn add_shard(
        &self,
        stream: &Stream,
        state: &mut StreamState,
        start_hash: u128,
        end_hash: u128,
        parent: Option<String>,
        adjacent_parent: Option<String>,
    ) -> ApiResult<Arc<Shard>> {
        let index = state.shards.len() as u32;
        let id = keys::shard_id(index);
        let files = match &stream.dir {
            Some(dir) => {
                let (files, _) = log::ShardFiles::open(&dir.join(&id))?;
                Some(Arc::new(Mutex::new(files)))
            }
            None => None,
        };
        let starting_counter = self.next_counter();
        let shard = Arc::new(Shard {
            index,
            id,
            parent,
            adjacent_parent,
            start_hash,
            end_hash,
            starting_counter,
            log: Mutex::new(ShardLog {
                visible_counter: starting_counter,
                ..ShardLog::default()
            }),
            files,
            changed: watch::channel(0).0,
        });
        state.shards.push(Arc::clone(&shard));
        Ok(shard)
    }

    /// Closes `shard`: no record is appended after this. Returns the ending counter.
    fn close_shard(&self, shard: &Shard) -> u64 {
        let mut log = shard.lock();
        let ending = self.next_counter();
        log.ending_counter = Some(ending);
        log.closed_ms = Some(self.now_ms());
        drop(log);
        shard.changed.send_modify(|v| *v += 1);
        ending
    }

    /// Marks the stream DELETING; it disappears once the delete delay has passed.
    pub(crate) fn delete_stream(
        &self,
        stream: &Stream,
        enforce_no_consumers: bool,
    ) -> ApiResult<()> {
        let now = self.now_ms();
        // Queues must be deleted one by one first, whatever EnforceConsumerDeletion says. The
        // queues' lock is held until the stream is marked, so a queue being created at the
        // same moment either is counted here or finds the stream DELETING.
        let queues = self.queues();
        let reading = queues_reading(&queues, &stream.arn, now);
        if reading > 0 {
            return Err(ApiError::in_use(format!(
                "Stream {} under account {} has {reading} queue(s); delete them with \
                 DeleteQueue before deleting the stream.",
                stream.name, self.config.account_id
            )));
        }
        let mut state = stream.lock();
        if state.status(now) == Status::Creating {
            return Err(ApiError::in_use(format!(
                "Stream {} under account {} not ACTIVE, instead in state CREATING",
                stream.name, self.config.account_id
            )));
        }
        if enforce_no_consumers && !state.settings.consumers.is_empty() {
            return Err(ApiError::in_use(format!(
                "Stream {} under account {} has registered consumers.",
                stream.name, self.config.account_id
            )));
        }
        state.settings.deleting_until = Some(now + self.config.delete_delay.as_millis() as i64);
        drop(state);
        drop(queues);
        self.save_change(MetaChange::Stream(stream))?;
        Ok(())
    }

    /// Removes streams whose deletion has completed, with their data.
    pub(crate) fn purge_deleted(&self) {
        let now = self.now_ms();
        let gone: Vec<Arc<Stream>> = {
            let mut streams = self.streams_write();
            let names: Vec<String> = streams
                .iter()
                .filter(|(_, s)| s.lock().settings.deleted(now))
                .map(|(n, _)| n.clone())
                .collect();
            names.iter().filter_map(|n| streams.remove(n)).collect()
        };
        if gone.is_empty() {
            return;
        }
        if let Err(err) = self.save_removals(&gone) {
            tracing::error!(error = %err, "saving metadata after stream deletion failed");
        }
        for stream in gone {
            for shard in &stream.lock().shards {
                shard.changed.send_modify(|v| *v += 1);
            }
            if let Some(dir) = &stream.dir {
                if let Err(err) = std::fs::remove_dir_all(dir) {
                    tracing::warn!(error = %err, dir = %dir.display(), "removing stream data failed");
                }
            }
        }
    }

    /// Appends `records` to `stream`, in order per shard. Resolves when each record is
    /// durable (immediately in memory). The outcomes are in the order of `records`.
    pub(crate) async fn append(
        &self,
        stream: &Stream,
        records: Vec<NewRecord>,
    ) -> ApiResult<Vec<PutOutcome>> {
        let now = self.now_ms();
        let mut outcomes: Vec<Option<PutOutcome>> = vec![None; records.len()];
        let mut waits: Vec<oneshot::Receiver<std::io::Result<()>>> = Vec::new();
        let mut pending: Vec<(usize, NewRecord)> = records.into_iter().enumerate().collect();
        // A record routed to a shard that a concurrent reshard closes is routed again.
        for _attempt in 0..8 {
            if pending.is_empty() {
                break;
            }
            let open = Arc::clone(&stream.lock().open);
            let mut by_shard: Vec<(usize, Vec<(usize, NewRecord)>)> = Vec::new();
            for (at, record) in pending.drain(..) {
                let shard_at = open.partition_point(|s| s.end_hash < record.hash);
                match by_shard.iter_mut().find(|(s, _)| *s == shard_at) {
                    Some((_, group)) => group.push((at, record)),
                    None => by_shard.push((shard_at, vec![(at, record)])),
                }
            }
            for (shard_at, group) in by_shard {
                let Some(shard) = open.get(shard_at) else {
                    return Err(ApiError::internal("no open shard covers the hash key"));
                };
                let mut retry =
                    self.append_to_shard(stream, shard, group, now, &mut outcomes, &mut waits);
                pending.append(&mut retry);
            }
        }
        if !pending.is_empty() {
            return Err(ApiError::internal(
                "the stream kept resharding while appending",
            ));
        }
        for wait in waits {
            match wait.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return Err(err.into()),
                Err(_) => return Err(ApiError::internal("the commit thread stopped")),
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every record has an outcome"))
            .collect())
    }

    /// Appends a group of records to one shard under its lock. Returns the records that must be
    /// routed again because the shard closed.
    fn append_to_shard(
        &self,
        stream: &Stream,
        shard: &Arc<Shard>,
        group: Vec<(usize, NewRecord)>,
        now: i64,
        outcomes: &mut [Option<PutOutcome>],
        waits: &mut Vec<oneshot::Receiver<std::io::Result<()>>>,
    ) -> Vec<(usize, NewRecord)> {
        let mut log = shard.lock();
        if log.ending_counter.is_some() {
            return group;
        }
        if let Some(reason) = &log.write_failed {
            for (at, _) in group {
                outcomes[at] = Some(PutOutcome::Rejected {
                    code: "InternalFailure",
                    message: format!("Shard {} cannot store records: {reason}", shard.id),
                });
            }
            return Vec::new();
        }
        let enforce = self.config.enforce_throughput;
        if enforce {
            log.window.roll(now);
        }
        let mut frames = Vec::new();
        let mut first_counter = None;
        let mut last_counter = 0;
        for (at, record) in group {
            if enforce {
                let bytes = (record.data.len() + record.partition_key.len()) as u64;
                if log.window.records_in + 1 > 1000 || log.window.bytes_in + bytes > 1024 * 1024 {
                    outcomes[at] = Some(PutOutcome::Rejected {
                        code: "ProvisionedThroughputExceededException",
                        message: format!(
                            "Rate exceeded for shard {} in stream {} under account {}.",
                            shard.id, stream.name, self.config.account_id
                        ),
                    });
                    continue;
                }
                log.window.records_in += 1;
                log.window.bytes_in += bytes;
            }
            let counter = self.next_counter();
            let stored = Record {
                counter,
                arrival_ms: now,
                partition_key: record.partition_key,
                data: record.data,
            };
            if shard.files.is_some() {
                log::encode_frame(&mut frames, &stored);
            }
            log.records.push_back(stored);
            first_counter.get_or_insert(counter);
            last_counter = counter;
            outcomes[at] = Some(PutOutcome::Stored {
                shard_id: shard.id.clone(),
                sequence_number: stream.sequence_number(counter, shard.index),
            });
        }
        let Some(first_counter) = first_counter else {
            return Vec::new();
        };
        match &shard.files {
            None => {
                log.visible_counter = log.visible_counter.max(last_counter);
                drop(log);
                shard.changed.send_modify(|v| *v += 1);
            }
            Some(files) => {
                let (tx, rx) = oneshot::channel();
                let visible_shard = Arc::clone(shard);
                let committer = &self
                    .durable
                    .as_ref()
                    .expect("files imply a durable store")
                    .committer;
                // Queued under the shard lock, so the committer writes this shard's records in
                // counter order.
                committer.submit(log::CommitJob {
                    files: Arc::clone(files),
                    first_counter,
                    newest_arrival_ms: now,
                    bytes: frames,
                    on_durable: Box::new(move |result| {
                        let mut log = visible_shard.lock();
                        match &result {
                            Ok(()) => log.visible_counter = log.visible_counter.max(last_counter),
                            Err(err) => {
                                // Never acknowledged, never readable: drop them, and refuse
                                // further writes to a log whose tail is unknown.
                                log.records.retain(|r| r.counter < first_counter || r.counter > last_counter);
                                log.write_failed = Some(err.to_string());
                                tracing::error!(shard = %visible_shard.id, error = %err, "shard log write failed");
                            }
                        }
                        drop(log);
                        visible_shard.changed.send_modify(|v| *v += 1);
                        let _ = tx.send(result);
                    }),
                });
                waits.push(rx);
            }
        }
        Vec::new()
    }

    /// Drops records older than each stream's retention period, in memory and on disk.
    pub(crate) fn enforce_retention(&self) {
        let now = self.now_ms();
        for stream in self.streams() {
            let (retention_hours, shards) = {
                let state = stream.lock();
                (state.settings.retention_hours, state.shards.clone())
            };
            let cutoff = now - retention_ms(retention_hours);
            for shard in shards {
                let mut log = shard.lock();
                while log
                    .records
                    .front()
                    .is_some_and(|r| r.arrival_ms < cutoff && r.counter <= log.visible_counter)
                {
                    log.records.pop_front();
                }
                drop(log);
                if let Some(files) = &shard.files {
                    let mut files = files.lock().unwrap_or_else(|p| p.into_inner());
                    if let Err(err) = files.drop_expired(cutoff) {
                        tracing::warn!(error = %err, shard = %shard.id, "retention delete failed");
                    }
                }
            }
        }
    }

    /// Makes `change` durable (durable mode only): call after the change, with no lock of the
    /// store held.
    ///
    /// # Errors
    /// An internal error when the metadata could not be written.
    pub(crate) fn save_change(&self, change: MetaChange<'_>) -> ApiResult<()> {
        let streams = self.streams_read();
        self.save_changes_locked(&streams, None, &[change])
    }

    /// Records that the deletion of each stream of `gone` has completed.
    fn save_removals(&self, gone: &[Arc<Stream>]) -> ApiResult<()> {
        let Some(durable) = &self.durable else {
            return Ok(());
        };
        let streams = self.streams_read();
        self.write_meta(durable, &streams, None, || {
            gone.iter()
                .map(|stream| meta::Change::StreamRemoved {
                    name: stream.name.clone(),
                    epoch: stream.epoch,
                })
                .collect()
        })
    }

    /// Saves `changes` while the caller holds the streams' map (`streams`, with `extra`, a
    /// stream about to be inserted into it).
    fn save_changes_locked(
        &self,
        streams: &BTreeMap<String, Arc<Stream>>,
        extra: Option<&Arc<Stream>>,
        changes: &[MetaChange<'_>],
    ) -> ApiResult<()> {
        let Some(durable) = &self.durable else {
            return Ok(());
        };
        self.write_meta(durable, streams, extra, || {
            self.describe_changes(streams, extra, changes)
        })
    }

    /// The journal records for `changes`: the current state of what each touched.
    fn describe_changes(
        &self,
        streams: &BTreeMap<String, Arc<Stream>>,
        extra: Option<&Arc<Stream>>,
        changes: &[MetaChange<'_>],
    ) -> Vec<meta::Change> {
        let mut entries = Vec::with_capacity(changes.len());
        for change in changes {
            entries.push(match *change {
                MetaChange::Stream(stream) => {
                    // A stream whose deletion completed (and was recorded) while this change
                    // waited must not come back, nor replace a new stream of the same name.
                    let current = streams
                        .get(&stream.name)
                        .or(extra.filter(|e| e.name == stream.name))
                        .is_some_and(|s| s.epoch == stream.epoch);
                    if !current {
                        continue;
                    }
                    meta::Change::Stream(meta::SavedStream::of(stream))
                }
                MetaChange::Channel(arn) => {
                    match self.channels().iter().find(|c| c.arn == arn) {
                        Some(channel) => meta::Change::Channel(channel.clone()),
                        // Removed once its deletion completed: the last record says so.
                        None => continue,
                    }
                }
                MetaChange::Queue(arn) => match self.queues().iter().find(|q| q.arn == arn) {
                    Some(queue) => meta::Change::Queue(queue.clone()),
                    None => continue,
                },
                MetaChange::Clock => meta::Change::Clock,
            });
        }
        entries
    }

    /// Appends the records `changes` builds to the journal, or writes a whole snapshot when the
    /// journal is due for compaction or cannot be trusted after a failure.
    fn write_meta(
        &self,
        durable: &Durable,
        streams: &BTreeMap<String, Arc<Stream>>,
        extra: Option<&Arc<Stream>>,
        changes: impl FnOnce() -> Vec<meta::Change>,
    ) -> ApiResult<()> {
        // States, counter and clock are read under the lock, so records reach the journal in
        // the order they were read: a later record never holds an older state.
        let mut files = durable.meta.lock().unwrap_or_else(|p| p.into_inner());
        if files.needs_snapshot() {
            // The snapshot is read after the changes were made, so it holds them.
            files.write_snapshot(self.snapshot(streams, extra))?;
            return Ok(());
        }
        let counter = self.counter.load(Ordering::Relaxed);
        let clock_ms = self.now_ms();
        let entries: Vec<meta::JournalEntry> = changes()
            .into_iter()
            .map(|change| meta::JournalEntry {
                counter,
                clock_ms,
                change,
            })
            .collect();
        files.append(&entries)?;
        if files.should_compact() {
            // The change is durable in the journal already: a failed compaction is retried
            // with the next change rather than failing this one.
            if let Err(err) = files.write_snapshot(self.snapshot(streams, extra)) {
                tracing::error!(error = %err, "compacting the metadata journal failed");
            }
        }
        Ok(())
    }

    /// Everything the metadata holds, as it is now.
    fn snapshot(
        &self,
        streams: &BTreeMap<String, Arc<Stream>>,
        extra: Option<&Arc<Stream>>,
    ) -> meta::Snapshot {
        let all: Vec<&Arc<Stream>> = streams.values().chain(extra).collect();
        // Resources whose deletion has completed are gone for good: they are not saved.
        let now = self.now_ms();
        let channels: Vec<ChannelMeta> = self
            .channels()
            .iter()
            .filter(|c| !c.deleted(now))
            .cloned()
            .collect();
        let queues: Vec<QueueMeta> = self
            .queues()
            .iter()
            .filter(|q| !q.deleted(now))
            .cloned()
            .collect();
        meta::Snapshot::of(
            &all,
            &channels,
            &queues,
            self.counter.load(Ordering::Relaxed),
            now,
        )
    }

    fn recover(&self, snapshot: meta::Snapshot) -> std::io::Result<()> {
        let Some(durable) = &self.durable else {
            return Ok(());
        };
        self.clock.resume_from(snapshot.clock_ms);
        *self.channels() = snapshot.channels;
        *self.queues() = snapshot.queues;
        let mut max_counter = snapshot.counter;
        let mut streams = self.streams_write();
        for saved in snapshot.streams {
            let dir = durable.root.join(format!("{}-{}", saved.name, saved.epoch));
            let mut shards = Vec::new();
            for s in saved.shards {
                let (files, records) = log::ShardFiles::open(&dir.join(&s.id))?;
                let last = records.last().map_or(s.starting_counter, |r| r.counter);
                max_counter = max_counter.max(last).max(s.ending_counter.unwrap_or(0));
                shards.push(Arc::new(Shard {
                    index: s.index,
                    id: s.id,
                    parent: s.parent,
                    adjacent_parent: s.adjacent_parent,
                    start_hash: s.start_hash.parse().map_err(std::io::Error::other)?,
                    end_hash: s.end_hash.parse().map_err(std::io::Error::other)?,
                    starting_counter: s.starting_counter,
                    log: Mutex::new(ShardLog {
                        records: records.into(),
                        visible_counter: last,
                        ending_counter: s.ending_counter,
                        closed_ms: s.closed_ms,
                        window: ThroughputWindow::default(),
                        write_failed: None,
                    }),
                    files: Some(Arc::new(Mutex::new(files))),
                    changed: watch::channel(0).0,
                }));
            }
            let mut state = StreamState {
                settings: saved.settings,
                shards,
                open: Arc::new(Vec::new()),
            };
            state.rebuild_open();
            let stream = Arc::new(Stream {
                arn: self.stream_arn(&saved.name),
                name: saved.name.clone(),
                epoch: saved.epoch,
                state: Mutex::new(state),
                dir: Some(dir),
            });
            streams.insert(saved.name, stream);
        }
        self.counter.store(max_counter + 1, Ordering::Relaxed);
        tracing::info!(streams = streams.len(), "recovered Kinesis data");
        Ok(())
    }

    /// The account's channels, locked. Callers change them and then call [`Self::save_change`]
    /// after releasing the guard.
    pub(crate) fn channels(&self) -> std::sync::MutexGuard<'_, Vec<ChannelMeta>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The account's queues, locked. The lock comes before any stream's or shard's, and the
    /// guard must be released before [`Self::save_change`] or [`Self::stream`] is called.
    pub(crate) fn queues(&self) -> std::sync::MutexGuard<'_, Vec<QueueMeta>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Live queues reading the stream `stream_arn`.
    pub(crate) fn queue_count(&self, stream_arn: &str) -> usize {
        queues_reading(&self.queues(), stream_arn, self.now_ms())
    }

    /// Whether the store keeps its data on disk (metadata saves can then fail).
    pub(crate) fn is_durable(&self) -> bool {
        self.durable.is_some()
    }

    /// Fails with `ResourceInUseException` unless the stream is ACTIVE (resharding and settings
    /// changes need that).
    pub(crate) fn require_active(&self, stream: &Stream, state: &StreamState) -> ApiResult<()> {
        let status = state.status(self.now_ms());
        if status != Status::Active {
            return Err(ApiError::in_use(format!(
                "Stream {} under account {} not ACTIVE, instead in state {}",
                stream.name,
                self.config.account_id,
                status.as_str()
            )));
        }
        Ok(())
    }

    /// Puts the stream into UPDATING for the configured delay.
    pub(crate) fn start_update(&self, state: &mut StreamState) {
        state.settings.updating_until =
            Some(self.now_ms() + self.config.update_delay.as_millis() as i64);
    }
}

/// Live queues in `queues` (the guard of [`KinesisStore::queues`]) reading `stream_arn`.
pub(crate) fn queues_reading(queues: &[QueueMeta], stream_arn: &str, now: i64) -> usize {
    queues
        .iter()
        .filter(|q| q.stream_arn == stream_arn && !q.deleted(now))
        .count()
}

/// Error for an unknown shard of a known stream, worded as AWS words it.
pub(crate) fn shard_not_found(store: &KinesisStore, stream: &str, shard_id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ResourceNotFound,
        format!(
            "Shard {shard_id} in stream {stream} under account {} does not exist",
            store.config.account_id
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Append { key: u8, size: usize },
        Split,
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (any::<u8>(), 0usize..64).prop_map(|(key, size)| Op::Append { key, size }),
            1 => Just(Op::Split),
            2 => Just(Op::Reopen),
        ]
    }

    fn durable_config(dir: &std::path::Path) -> Config {
        let mut config = Config::embedded();
        config.data_dir = Some(dir.to_owned());
        config.create_delay = std::time::Duration::ZERO;
        config.update_delay = std::time::Duration::ZERO;
        config
    }

    /// Every record of every shard, as (shard id, counter, key, data).
    fn contents(store: &KinesisStore) -> Vec<(String, u64, String, Vec<u8>)> {
        let stream = store.stream("model").unwrap();
        let state = stream.lock();
        let mut all = Vec::new();
        for shard in &state.shards {
            let log = shard.lock();
            for r in &log.records {
                all.push((
                    shard.id.clone(),
                    r.counter,
                    r.partition_key.to_string(),
                    r.data.to_vec(),
                ));
            }
        }
        all
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// The durable store read back after any number of reopens equals a plain model of
        /// what was appended, and sequence numbers keep growing across restarts and reshards.
        #[test]
        fn durable_store_matches_the_model_across_reopens(ops in proptest::collection::vec(op(), 1..40)) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let config = durable_config(dir.path());
            let mut store = KinesisStore::open(&config).unwrap();
            store.create_stream("model", 2, StreamSettings::new(0, 0, "PROVISIONED")).unwrap();
            let mut model: Vec<(String, u64, String, Vec<u8>)> = Vec::new();
            let mut highest = 0;
            for op in ops {
                match op {
                    Op::Append { key, size } => {
                        let stream = store.stream("model").unwrap();
                        let key = format!("key-{key}");
                        let data = vec![size as u8; size];
                        let record = NewRecord { hash: keys::partition_key_hash(&key), partition_key: Arc::from(key.as_str()), data: Bytes::from(data.clone()) };
                        let outcome = runtime.block_on(store.append(&stream, vec![record])).unwrap();
                        let PutOutcome::Stored { shard_id, sequence_number } = &outcome[0] else { panic!("rejected") };
                        let counter = SequenceParts::parse(sequence_number).unwrap().counter;
                        prop_assert!(counter > highest, "sequence numbers only grow");
                        highest = counter;
                        model.push((shard_id.clone(), counter, key, data));
                    }
                    Op::Split => {
                        let stream = store.stream("model").unwrap();
                        let target = stream.lock().open.first().map(|s| (s.id.clone(), s.start_hash, s.end_hash));
                        if let Some((id, start, end)) = target {
                            if end > start + 1 {
                                stream.lock().settings.updating_until = None;
                                store.split_shard(&stream, &id, start + (end - start) / 2).unwrap();
                                stream.lock().settings.updating_until = None;
                            }
                        }
                    }
                    Op::Reopen => {
                        drop(store);
                        store = KinesisStore::open(&config).unwrap();
                    }
                }
            }
            drop(store);
            let store = KinesisStore::open(&config).unwrap();
            let mut expected = model;
            expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            let mut actual = contents(&store);
            actual.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            prop_assert_eq!(actual, expected);
        }
    }
}
