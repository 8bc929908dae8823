//! Making metadata changes durable: journal records, snapshots, and recovery from them.
//!
//! A change is saved in two steps. Under the metadata lock its record is built from the
//! current state and queued for the journal, so records reach the journal in the order their
//! states were read. Then, outside the lock, the caller waits until a sync covers the record
//! ([`MetaWrite`]); meanwhile other changes queue theirs, and one sync serves them all.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::*;
use crate::durable::commit::{SharedLog, Ticket};

/// A metadata change on its way to disk: the answer to the request that made it waits for it.
#[must_use = "a change counts as saved only once its write is durable"]
#[derive(Debug)]
pub(crate) struct MetaWrite(Option<Ticket>);

impl MetaWrite {
    /// Nothing to wait for: an in-memory store, or a change made durable already.
    fn done() -> MetaWrite {
        MetaWrite(None)
    }

    /// Waits, blocking the thread, until the change is durable.
    ///
    /// # Errors
    /// An internal error when the journal could not be written.
    pub(crate) fn wait(self) -> StoreResult<()> {
        match self.0 {
            Some(ticket) => Ok(ticket.wait()?),
            None => Ok(()),
        }
    }

    /// Waits, without blocking the thread, until the change is durable.
    ///
    /// # Errors
    /// An internal error when the journal could not be written.
    pub(crate) async fn durable(self) -> StoreResult<()> {
        match self.0 {
            Some(ticket) => Ok(ticket.durable().await?),
            None => Ok(()),
        }
    }
}

/// Whether a journal record calls for a sync of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JournalSync {
    /// The change is answered once durable: the record's sync is waited for.
    Wanted,
    /// The change's loss in a crash is harmless: a later record's sync covers it.
    Later,
}

impl<D: StreamDependents> KinesisStore<D> {
    /// Makes `change` durable (durable mode only): call after the change, with no lock of the
    /// store held.
    ///
    /// # Errors
    /// An internal error when the metadata could not be written.
    pub(super) fn save_change(&self, change: MetaChange<'_>) -> StoreResult<()> {
        self.queue_change(change)?.wait()
    }

    /// Queues the record of `change` for the journal (durable mode only) without waiting for
    /// it to be durable: call after the change, with no lock of the store held.
    ///
    /// # Errors
    /// An internal error when a whole snapshot was due and could not be written.
    pub(super) fn queue_change(&self, change: MetaChange<'_>) -> StoreResult<MetaWrite> {
        let Some(durable) = &self.durable else {
            return Ok(MetaWrite::done());
        };
        let streams = self.streams_read();
        self.write_meta(durable, &streams, None, JournalSync::Wanted, || {
            self.describe_changes(&streams, None, &[change])
        })
    }

    /// Queues the record of `change` for the journal (durable mode only) without calling for
    /// a sync: the next change that is waited for makes it durable. For changes whose loss in
    /// a crash is harmless; call after the change, with no lock of the store held.
    ///
    /// # Errors
    /// An internal error when a whole snapshot was due and could not be written.
    pub(super) fn queue_change_unsynced(&self, change: MetaChange<'_>) -> StoreResult<()> {
        let Some(durable) = &self.durable else {
            return Ok(());
        };
        let streams = self.streams_read();
        let written = self.write_meta(durable, &streams, None, JournalSync::Later, || {
            self.describe_changes(&streams, None, &[change])
        })?;
        // Nothing to wait for: an unsynced record has no ticket.
        drop(written);
        Ok(())
    }

    /// Records that the deletion of each stream of `gone` has completed.
    pub(super) fn save_removals(&self, gone: &[Arc<Stream>]) -> StoreResult<()> {
        let Some(durable) = &self.durable else {
            return Ok(());
        };
        let write = {
            let streams = self.streams_read();
            self.write_meta(durable, &streams, None, JournalSync::Wanted, || {
                gone.iter()
                    .map(|stream| meta::Change::StreamRemoved {
                        name: stream.name.clone(),
                        epoch: stream.epoch,
                    })
                    .collect()
            })?
        };
        write.wait()
    }

    /// Saves `changes` while the caller holds the streams' map (`streams`, with `extra`, a
    /// stream about to be inserted into it).
    pub(super) fn save_changes_locked(
        &self,
        streams: &BTreeMap<String, Arc<Stream>>,
        extra: Option<&Arc<Stream>>,
        changes: &[MetaChange<'_>],
    ) -> StoreResult<()> {
        let Some(durable) = &self.durable else {
            return Ok(());
        };
        self.write_meta(durable, streams, extra, JournalSync::Wanted, || {
            self.describe_changes(streams, extra, changes)
        })?
        .wait()
    }

    /// The journal records for `changes`: the current state of what each touched, or what
    /// changed in a dependent since its previous record.
    pub(super) fn describe_changes(
        &self,
        streams: &BTreeMap<String, Arc<Stream>>,
        extra: Option<&Arc<Stream>>,
        changes: &[MetaChange<'_>],
    ) -> Vec<meta::Change<DependentRecord<D>>> {
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
                MetaChange::Dependent(arn) => match self.dependents.record(arn) {
                    Some(record) => meta::Change::Dependent(record),
                    // Removed once its deletion completed: the last record says so.
                    None => continue,
                },
                MetaChange::Clock => meta::Change::Clock,
            });
        }
        entries
    }

    /// Queues the records `changes` builds for the journal, or writes a whole snapshot when the
    /// journal is due for compaction or cannot be trusted after a failure. Records queued with
    /// [`JournalSync::Later`] have nothing to wait for: the write returned is done at once.
    pub(super) fn write_meta(
        &self,
        durable: &Durable,
        streams: &BTreeMap<String, Arc<Stream>>,
        extra: Option<&Arc<Stream>>,
        sync: JournalSync,
        changes: impl FnOnce() -> Vec<meta::Change<DependentRecord<D>>>,
    ) -> StoreResult<MetaWrite> {
        // States, counter and clock are read under the lock, so records reach the journal in
        // the order they were read: a later record never holds an older state.
        let mut files = durable.meta.lock().unwrap_or_else(|p| p.into_inner());
        let entries = || {
            let counter = self.counter.load(Ordering::Relaxed);
            let clock_ms = self.now_ms();
            changes()
                .into_iter()
                .map(|change| meta::JournalEntry {
                    counter,
                    clock_ms,
                    change,
                })
                .collect()
        };
        let synced = sync == JournalSync::Wanted;
        let written = files.save(entries, || self.snapshot(streams, extra), synced)?;
        Ok(MetaWrite(written))
    }

    /// Folds the metadata journal into a new snapshot now, as compaction does once the journal
    /// has grown: tests use it to put journal records on top of a snapshot.
    #[cfg(test)]
    pub(crate) fn compact_metadata(&self) -> StoreResult<()> {
        let Some(durable) = &self.durable else {
            return Ok(());
        };
        let streams = self.streams_read();
        let mut files = durable.meta.lock().unwrap_or_else(|p| p.into_inner());
        Ok(files.write_snapshot(self.snapshot(&streams, None))?)
    }

    /// Everything the metadata holds, as it is now.
    pub(super) fn snapshot(
        &self,
        streams: &BTreeMap<String, Arc<Stream>>,
        extra: Option<&Arc<Stream>>,
    ) -> meta::Snapshot<D::Saved> {
        let all: Vec<&Arc<Stream>> = streams.values().chain(extra).collect();
        // Resources whose deletion has completed are gone for good: they are not saved.
        let now = self.now_ms();
        meta::Snapshot::of(
            &all,
            self.dependents.saved(now),
            self.counter.load(Ordering::Relaxed),
            now,
        )
    }

    pub(super) fn recover(&self, snapshot: meta::Snapshot<D::Saved>) -> std::io::Result<()> {
        let Some(durable) = &self.durable else {
            return Ok(());
        };
        self.clock.resume_from(snapshot.clock_ms);
        self.dependents.recover(snapshot.dependents);
        let mut max_counter = snapshot.counter;
        let mut streams = self.streams_write();
        for saved in snapshot.streams {
            let dir = durable.root.join(format!("{}-{}", saved.name, saved.epoch));
            let mut shards = Vec::new();
            for s in saved.shards {
                let (files, records) =
                    log::ShardFiles::open(Arc::clone(&durable.storage), &dir.join(&s.id))?;
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
                    files: Some(SharedLog::new(files)),
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
        let live: HashSet<&Path> = streams.values().filter_map(|s| s.dir.as_deref()).collect();
        remove_orphaned_stream_dirs(durable.storage.as_ref(), &durable.root, &live);
        tracing::info!(streams = streams.len(), "recovered Kinesis data");
        Ok(())
    }
}

/// Removes the data directories in `root` of streams the metadata no longer holds: a stream
/// whose deletion was saved, but whose directory a crash or a failed removal left behind,
/// would otherwise keep its records on disk for good. A stream's directory is named
/// `<name>-<epoch>`; nothing else in `root` is touched. Housekeeping: a failure is logged
/// and does not keep the store from opening.
fn remove_orphaned_stream_dirs(storage: &dyn Storage, root: &Path, live: &HashSet<&Path>) {
    let listed = match storage.list(root) {
        Ok(listed) => listed,
        Err(err) => {
            tracing::warn!(error = %err, "listing the stream data directories failed");
            return;
        }
    };
    for path in listed {
        let names_a_stream = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.rsplit_once('-'))
            .is_some_and(|(name, epoch)| {
                !name.is_empty() && !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit())
            });
        if names_a_stream && !live.contains(path.as_path()) {
            tracing::warn!(dir = %path.display(), "removing the data of a deleted stream");
            if let Err(err) = storage.remove_dir_all(&path) {
                tracing::warn!(error = %err, dir = %path.display(), "removing it failed");
            }
        }
    }
}
