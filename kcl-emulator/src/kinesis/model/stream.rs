//! Streams and shards: their state, their records in memory, and their sequence numbers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::*;

/// The lifecycle state of a stream, consumer, channel or queue (spelled for the API in
/// `request::names`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Creating,
    Active,
    Updating,
    Deleting,
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
    pub(crate) files: Option<log::SharedShardFiles>,
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

    pub(crate) fn rebuild_open(&mut self) {
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
    pub(crate) dir: Option<PathBuf>,
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
    pub(crate) fn parse_sequence(&self, text: &str, shard: &Shard) -> StoreResult<u64> {
        let parts =
            SequenceParts::parse(text).ok_or_else(|| StoreError::MalformedSequenceNumber {
                stream: self.name.clone(),
                shard: shard.id.clone(),
                text: text.to_owned(),
            })?;
        if parts.shard_index != shard.index || parts.stream_epoch != self.epoch {
            return Err(StoreError::SequenceNumberOfOtherShard {
                encoded: keys::shard_id(parts.shard_index),
                shard: shard.id.clone(),
            });
        }
        Ok(parts.counter)
    }
}
