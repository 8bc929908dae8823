//! Streams, shards, consumers and their records.
//!
//! # Model
//! The store holds streams by name. A stream holds its shards (open and closed, in creation
//! order), tags, settings and enhanced fan-out consumers. A shard holds its records in memory
//! in sequence order (the read path is a binary search), and, with a data directory, a
//! [`log::ShardFiles`] that makes them durable. Stream, shard and consumer metadata, and the
//! state of the stream dependents, is made durable on every change, before the change is
//! answered: a journal record of what the change touched, folded into a snapshot now and then
//! (see [`meta`]). Dependents (channels and queues, defined by `ext`) belong to the account,
//! not to a stream, and sit beside the streams; the store keeps them without knowing their
//! types (see [`dependents`]).
//!
//! # Locking
//! `streams` (the map) is read-locked on every request and write-locked only to add or remove a
//! stream. Each stream's settings sit behind their own mutex; each shard's log behind its own,
//! so puts to different shards do not contend. A shard's lock is never held across an `.await`:
//! writers assign sequence numbers and queue their commit under it, then wait outside it.
//!
//! The dependents' locks come before any stream's or shard's: a check that involves dependents
//! and a stream (the consumer limit they share, DeleteStream, a switch to PROVISIONED) holds
//! them across the stream's check and change ([`StreamDependents::with_readers`]). A metadata
//! save reads the dependents, so none of their locks is held when saving or when looking a
//! stream up (which may purge deleted streams and save).
//!
//! # Changing metadata
//! Requests change metadata only through the intent-level methods of `change`
//! (`change_stream`, `change_stream_counting_readers`, `keep_dependent_or_undo`) and the stream
//! lifecycle and resharding methods here: each takes the locks above in order, saves once they
//! are released, and undoes the change when the save fails. Saving is private to this module.
//!
//! # Errors
//! Store operations fail with a [`StoreError`] that says what went wrong in the store's terms
//! (which stream, which shard, which rule); the AWS code, message and status a client sees are
//! decided in one place above the model, `request::errors`.
//!
//! # Status transitions
//! CREATING, UPDATING and DELETING are real but lazy: a stream records until when it stays in a
//! state, and every read computes the state from the clock. No timer task is needed, and a
//! restarted emulator finds every transition already complete.

mod append;
mod change;
mod dependents;
mod error;
pub(crate) mod keys;
mod meta;
#[cfg(test)]
mod meta_crash;
mod modes;
mod persist;
mod reshard;
mod stream;
mod subscriptions;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use tokio::sync::watch;

pub(crate) use crate::clock::Clock;
use crate::durable::segment as log;
pub(crate) use crate::durable::segment::Record;
use crate::durable::storage::Storage;
use crate::Config;
#[cfg(test)]
pub(crate) use dependents::NoDependents;
pub(crate) use dependents::{DependentRecord, SavedDependents, StreamDependents};
pub(crate) use error::{Rejection, StoreError, StoreResult, StreamName};
use keys::SequenceParts;
pub(crate) use meta::{ConsumerMeta, Lifecycle, StreamSettings};
pub(crate) use modes::{CapacityMode, Encryption, RecordDistribution};
pub(crate) use stream::*;
pub(crate) use subscriptions::Subscriptions;

/// What a durable store keeps beside the records.
#[derive(Debug)]
struct Durable {
    root: PathBuf,
    /// Where the metadata and every shard's segments are kept.
    storage: Arc<dyn Storage>,
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
    /// The stream dependent with this ARN.
    Dependent(&'a str),
    /// Only the clock (moved forward for testing).
    Clock,
}

/// The Kinesis side of the emulator: the streams, and beside them the dependents `D`.
#[derive(Debug)]
pub(crate) struct KinesisStore<D> {
    pub(crate) config: Config,
    streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    counter: AtomicU64,
    /// This emulator's time; shared with fan-out subscriber tasks.
    pub(crate) clock: Arc<Clock>,
    durable: Option<Durable>,
    /// The account's minimum throughput billing commitment: status and when it started (ms).
    pub(crate) billing_commitment: Mutex<Option<(String, i64)>>,
    /// Live enhanced fan-out subscriptions.
    pub(crate) subscriptions: Arc<Subscriptions>,
    /// The resources that read from the streams, kept here for the lock order and the journal.
    dependents: D,
}

/// Outcome of appending one record.
#[derive(Debug, Clone)]
pub(crate) enum PutOutcome {
    /// Stored under this shard id and sequence number.
    Stored {
        shard_id: String,
        sequence_number: String,
    },
    /// Not stored, for this reason.
    Rejected(Rejection),
}

/// A record to append: partition key, payload and the hash key it routes by.
#[derive(Debug)]
pub(crate) struct NewRecord {
    pub(crate) partition_key: Arc<str>,
    pub(crate) data: Bytes,
    pub(crate) hash: u128,
}

impl<D: StreamDependents> KinesisStore<D> {
    /// Opens the store: in memory, or recovered from `config.data_dir`.
    pub(crate) fn open(config: &Config) -> std::io::Result<KinesisStore<D>> {
        let mut recovered = None;
        let durable = match &config.data_dir {
            Some(dir) => {
                let root = dir.join("kinesis");
                let storage = crate::durable::storage::disk();
                storage.create_dir_all(&root)?;
                let (meta, snapshot) = meta::MetaFiles::open(Arc::clone(&storage), &root)?;
                recovered = snapshot;
                Some(Durable {
                    root,
                    storage,
                    committer: log::Committer::start("kinesis-commit")?,
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
            dependents: D::default(),
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
        self.dependents.clock_advanced();
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
    /// [`StoreError::StreamNotFound`].
    pub(crate) fn stream(&self, name: &str) -> StoreResult<Arc<Stream>> {
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

    /// The stream `name` as errors name it: under this store's account.
    pub(crate) fn stream_name(&self, name: &str) -> StreamName {
        StreamName {
            name: name.to_owned(),
            account: self.config.account_id.clone(),
        }
    }

    /// The error for a stream `name` that does not exist.
    pub(crate) fn stream_not_found(&self, name: &str) -> StoreError {
        StoreError::StreamNotFound(self.stream_name(name))
    }

    /// The error for a shard `shard_id` the stream `stream` does not have.
    pub(crate) fn shard_not_found(&self, stream: &str, shard_id: &str) -> StoreError {
        StoreError::ShardNotFound {
            stream: self.stream_name(stream),
            shard: shard_id.to_owned(),
        }
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
    ) -> StoreResult<()> {
        self.purge_deleted();
        self.check_shard_limit(shard_count as usize)?;
        let mut streams = self.streams_write();
        if streams.contains_key(name) {
            return Err(StoreError::StreamExists(self.stream_name(name)));
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
    ) -> StoreResult<Arc<Shard>> {
        let index = state.shards.len() as u32;
        let id = keys::shard_id(index);
        let files = match (&stream.dir, &self.durable) {
            (Some(dir), Some(durable)) => {
                let (files, _) =
                    log::ShardFiles::open(Arc::clone(&durable.storage), &dir.join(&id))?;
                Some(crate::durable::commit::SharedLog::new(files))
            }
            _ => None,
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
    ) -> StoreResult<()> {
        let now = self.now_ms();
        // Dependents reading the stream must be deleted one by one first, whatever
        // EnforceConsumerDeletion says. They are held still until the stream is marked, so
        // one being created at the same moment either is counted here or finds the stream
        // DELETING.
        self.dependents.with_readers(&stream.arn, now, |readers| {
            if readers > 0 {
                return Err(StoreError::HasReaders {
                    stream: self.stream_name(&stream.name),
                    readers,
                });
            }
            let mut state = stream.lock();
            if state.status(now) == Status::Creating {
                return Err(StoreError::NotActive {
                    stream: self.stream_name(&stream.name),
                    status: Status::Creating,
                });
            }
            if enforce_no_consumers && !state.settings.consumers.is_empty() {
                return Err(StoreError::HasConsumers(self.stream_name(&stream.name)));
            }
            state.settings.deleting_until = Some(now + self.config.delete_delay.as_millis() as i64);
            Ok(())
        })?;
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
            if let (Some(dir), Some(durable)) = (&stream.dir, &self.durable) {
                // A crash before this removal leaves the directory to the next start's sweep.
                if let Err(err) = durable.storage.remove_dir_all(dir) {
                    tracing::warn!(error = %err, dir = %dir.display(), "removing stream data failed");
                }
            }
        }
    }

    /// The stream dependents. Their locks come before any stream's, and none may be held when
    /// the store saves metadata or looks a stream up.
    pub(crate) fn dependents(&self) -> &D {
        &self.dependents
    }

    /// Live dependents reading the stream `stream_arn`.
    pub(crate) fn readers_of(&self, stream_arn: &str) -> usize {
        self.dependents
            .with_readers(stream_arn, self.now_ms(), |reading| reading)
    }

    /// Whether the store keeps its data on disk (metadata saves can then fail).
    pub(crate) fn is_durable(&self) -> bool {
        self.durable.is_some()
    }

    /// Fails with [`StoreError::NotActive`] unless the stream is ACTIVE (resharding and
    /// settings changes need that).
    pub(crate) fn require_active(&self, stream: &Stream, state: &StreamState) -> StoreResult<()> {
        let status = state.status(self.now_ms());
        if status != Status::Active {
            return Err(StoreError::NotActive {
                stream: self.stream_name(&stream.name),
                status,
            });
        }
        Ok(())
    }

    /// Puts the stream into UPDATING for the configured delay.
    pub(crate) fn start_update(&self, state: &mut StreamState) {
        state.settings.updating_until =
            Some(self.now_ms() + self.config.update_delay.as_millis() as i64);
    }
}
