//! Queues: per-record delivery from a stream, with visibility timeouts, acknowledgements and
//! built-in dead-letter handling.
//!
//! # Model
//! A queue reads one stream. Its [`Delivery`] state has two parts:
//! - a cursor per shard: every record below it has been handed out at least once (or skipped
//!   by the starting position); every record at or above it is new to the queue;
//! - the pending records: handed out and not yet acknowledged, each with its receive count,
//!   when it becomes visible again, and which receive its current receipt handle belongs to.
//!
//! A pending record that becomes visible again is received again, unless it has already been
//! received `MaxReceiveCount` times: then it becomes a dead-letter record, seen only by the
//! dead-letter operations until it is acknowledged there or restored. Acknowledging removes a
//! record from the pending set; the cursor already lies beyond it, so it is never delivered
//! again. Records the stream trims (retention) drop out of the pending set when next met.
//!
//! A receipt handle names the queue, the record and the receive it came from. Receiving the
//! record again issues a new handle and makes the old one stale.
//!
//! # Durability
//! The whole state is part of the metadata snapshot. Between snapshots, the journal holds what
//! receives and batch operations changed in it ([`delta`]), and the whole queue when anything
//! else changed; the changes reach the journal in the order they were made. Acknowledgements,
//! visibility changes and restores are answered only once a sync covers them, so a durable
//! emulator never redelivers a record whose acknowledgement was answered, even after a crash
//! or power loss. A receive is answered without waiting for a sync, and its record calls for
//! none: the sync of the next change that is waited for covers it, and losing it in a power
//! loss only makes its records visible again, with the receive count they had before, which
//! at-least-once delivery allows. That is what lets a durable queue drain at close to
//! in-memory speed: only the acknowledgements wait for the disk, concurrent ones share one
//! sync, and none waits behind a sync that only a receive would have called for.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::kinesis::model::{Lifecycle, Record, Shard, Status};

mod delta;
pub(crate) use delta::{DeliveryDelta, Unjournaled};

/// Most records a queue holds in flight; past it, receives return only redeliveries.
pub(crate) const MAX_IN_FLIGHT: usize = 120_000;

/// Whether a queue in `status` delivers records (the service keeps delivering while a queue's
/// attributes are being updated).
pub(crate) fn delivers(status: Status) -> bool {
    matches!(status, Status::Active | Status::Updating)
}

/// Where in the stream a queue starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Start {
    /// Records appended after this counter (LATEST, TRIM_HORIZON with 0).
    AfterCounter(u64),
    /// Records that arrived at or after this time, in ms (AT_TIMESTAMP).
    ArrivedFrom(i64),
}

impl Start {
    fn admits(self, record: &Record) -> bool {
        match self {
            Start::AfterCounter(counter) => record.counter > counter,
            Start::ArrivedFrom(ms) => record.arrival_ms >= ms,
        }
    }

    fn first_cursor(self) -> u64 {
        match self {
            Start::AfterCounter(counter) => counter + 1,
            Start::ArrivedFrom(_) => 0,
        }
    }
}

/// Dead-letter handling: `None` when the queue's TargetType is NONE.
pub(crate) type MaxReceiveCount = Option<u32>;

/// Which path a receipt handle was issued on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Path {
    Normal,
    DeadLetter,
}

/// A queue as stored: its configuration, lifecycle and delivery state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct QueueMeta {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) arn: String,
    /// Distinguishes this queue's receipt handles from those of any other queue, including
    /// an earlier queue of the same name.
    pub(crate) serial: u64,
    #[serde(flatten)]
    pub(crate) lifecycle: Lifecycle,
    pub(crate) stream_name: String,
    pub(crate) stream_arn: String,
    pub(crate) stream_created_ms: i64,
    /// `TRIM_HORIZON`, `LATEST` or `AT_TIMESTAMP`.
    pub(crate) starting_position: String,
    /// The time delivery starts from, as DescribeQueue reports it once the queue is ACTIVE.
    pub(crate) starting_timestamp_ms: i64,
    /// Whether the request named that time (AT_TIMESTAMP): it is reported even while CREATING.
    pub(crate) timestamp_requested: bool,
    pub(crate) start: Start,
    pub(crate) visibility_timeout_secs: u32,
    pub(crate) max_receive_count: MaxReceiveCount,
    pub(crate) tags: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) resource_policy: Option<String>,
    pub(crate) delivery: Delivery,
    /// What the metadata journal does not hold of the queue yet (durable stores only).
    #[serde(skip)]
    pub(crate) unjournaled: Unjournaled,
}

impl QueueMeta {
    pub(crate) fn status(&self, now: i64) -> Status {
        self.lifecycle.status(now)
    }

    /// Whether the queue's deletion has completed.
    pub(crate) fn deleted(&self, now: i64) -> bool {
        self.lifecycle.deleted(now)
    }
}

/// A record handed out and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub(crate) shard: u32,
    pub(crate) counter: u64,
    pub(crate) receive_count: u32,
    pub(crate) first_receive_ms: i64,
    /// Until when the record is in flight (invisible); visible again from then on.
    pub(crate) visible_at_ms: i64,
    /// The receive the current receipt handle belongs to; `None` once a restore has spent
    /// the dead-letter handle and before the next receive.
    pub(crate) receive_id: Option<u64>,
    /// The path of the current receipt handle.
    pub(crate) issued_on: Path,
    /// Set once the record has become a dead-letter record.
    pub(crate) dead: bool,
}

/// One delivery made by a receive.
#[derive(Debug, Clone)]
pub(crate) struct Delivered {
    pub(crate) shard: u32,
    pub(crate) record: Record,
    pub(crate) receive_count: u32,
    pub(crate) first_receive_ms: i64,
    pub(crate) handle: ReceiptHandle,
}

/// Why one entry of a batch call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryError {
    /// The handle is malformed, stale, of another queue, or used on the wrong path.
    Invalid(String),
    /// The record was acknowledged, or has left the stream.
    NotFound(String),
}

/// The parts of a receipt handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReceiptHandle {
    pub(crate) queue_serial: u64,
    pub(crate) shard: u32,
    pub(crate) counter: u64,
    pub(crate) receive_id: u64,
}

impl ReceiptHandle {
    /// The opaque text clients carry.
    pub(crate) fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{}:{}:{}:{}",
            self.queue_serial, self.shard, self.counter, self.receive_id
        ))
    }

    /// Parses a handle made by [`ReceiptHandle::encode`].
    pub(crate) fn decode(text: &str) -> Option<ReceiptHandle> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.split(':');
        let handle = ReceiptHandle {
            queue_serial: parts.next()?.parse().ok()?,
            shard: parts.next()?.parse().ok()?,
            counter: parts.next()?.parse().ok()?,
            receive_id: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(handle)
    }
}

/// Read access to a stream's records, as delivery needs it.
pub(crate) trait RecordSource {
    /// How many shards the stream has had (shard indexes are `0..count`).
    fn shard_count(&self) -> u32;
    /// The readable record `counter` of shard `shard`, unless it was trimmed.
    fn record(&self, shard: u32, counter: u64) -> Option<Record>;
    /// Up to `limit` readable records of shard `shard` from counter `from` on, in order.
    fn records_from(&self, shard: u32, from: u64, limit: usize) -> Vec<Record>;
}

/// A stream's shards as a [`RecordSource`]: each read takes the shard's lock briefly.
#[derive(Debug)]
pub(crate) struct ShardsSource(pub(crate) Vec<Arc<Shard>>);

impl RecordSource for ShardsSource {
    fn shard_count(&self) -> u32 {
        self.0.len() as u32
    }

    fn record(&self, shard: u32, counter: u64) -> Option<Record> {
        let log = self.0.get(shard as usize)?.lock();
        let record = log.records.get(log.position_of(counter))?;
        (record.counter == counter && counter <= log.visible_counter).then(|| record.clone())
    }

    fn records_from(&self, shard: u32, from: u64, limit: usize) -> Vec<Record> {
        let Some(shard) = self.0.get(shard as usize) else {
            return Vec::new();
        };
        let log = shard.lock();
        log.records
            .range(log.position_of(from)..)
            .take_while(|r| r.counter <= log.visible_counter)
            .take(limit)
            .cloned()
            .collect()
    }
}

/// A queue's delivery state. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "DeliverySnapshot", into = "DeliverySnapshot")]
pub(crate) struct Delivery {
    /// Per shard index, the first counter not yet examined.
    cursors: BTreeMap<u32, u64>,
    pending: BTreeMap<(u32, u64), Pending>,
    next_receive_id: u64,
    /// The shard a receive looks at first, rotated so no shard starves the others.
    next_shard: u32,
}

/// [`Delivery`] as stored: JSON maps need string keys, so the maps become lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeliverySnapshot {
    cursors: Vec<(u32, u64)>,
    pending: Vec<Pending>,
    next_receive_id: u64,
    next_shard: u32,
}

impl From<DeliverySnapshot> for Delivery {
    fn from(s: DeliverySnapshot) -> Delivery {
        Delivery {
            cursors: s.cursors.into_iter().collect(),
            pending: s
                .pending
                .into_iter()
                .map(|p| ((p.shard, p.counter), p))
                .collect(),
            next_receive_id: s.next_receive_id,
            next_shard: s.next_shard,
        }
    }
}

impl From<Delivery> for DeliverySnapshot {
    fn from(d: Delivery) -> DeliverySnapshot {
        DeliverySnapshot {
            cursors: d.cursors.into_iter().collect(),
            pending: d.pending.into_values().collect(),
            next_receive_id: d.next_receive_id,
            next_shard: d.next_shard,
        }
    }
}

/// What a receive is asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReceiveRequest {
    pub(crate) now_ms: i64,
    pub(crate) limit: usize,
    pub(crate) visibility_ms: i64,
    pub(crate) queue_serial: u64,
}

impl Delivery {
    /// Records in flight: received, not acknowledged, not yet visible again.
    pub(crate) fn in_flight(&self, now_ms: i64) -> usize {
        self.pending
            .values()
            .filter(|p| !p.dead && p.visible_at_ms > now_ms)
            .count()
    }

    /// When the next record in flight becomes visible again (or a dead letter) after `now_ms`:
    /// the one change to what a receive finds that no request or append brings about.
    pub(crate) fn next_visible_ms(&self, now_ms: i64) -> Option<i64> {
        self.pending
            .values()
            .map(|p| p.visible_at_ms)
            .filter(|&at| at > now_ms)
            .min()
    }

    /// Turns records whose visibility lapsed after their last allowed receive into dead-letter
    /// records. Every operation on the delivery state settles first, so whether a record is a
    /// dead letter depends only on the clock.
    pub(crate) fn settle(&mut self, now_ms: i64, max_receive_count: MaxReceiveCount) {
        let Some(max) = max_receive_count else {
            return;
        };
        for pending in self.pending.values_mut() {
            if !pending.dead && pending.visible_at_ms <= now_ms && pending.receive_count >= max {
                pending.dead = true;
                pending.visible_at_ms = now_ms;
            }
        }
    }

    fn issue(
        &mut self,
        pending_key: (u32, u64),
        request: &ReceiveRequest,
        path: Path,
    ) -> Option<(u32, i64, ReceiptHandle)> {
        self.next_receive_id += 1;
        let receive_id = self.next_receive_id;
        let pending = self.pending.get_mut(&pending_key)?;
        pending.receive_count += 1;
        pending.visible_at_ms = request.now_ms + request.visibility_ms;
        pending.receive_id = Some(receive_id);
        pending.issued_on = path;
        Some((
            pending.receive_count,
            pending.first_receive_ms,
            ReceiptHandle {
                queue_serial: request.queue_serial,
                shard: pending_key.0,
                counter: pending_key.1,
                receive_id,
            },
        ))
    }

    /// Hands out up to `request.limit` visible records: redeliveries first (oldest visibility
    /// first), then records new to the queue, shard by shard.
    pub(crate) fn receive(
        &mut self,
        source: &dyn RecordSource,
        start: Start,
        max_receive_count: MaxReceiveCount,
        request: &ReceiveRequest,
    ) -> Vec<Delivered> {
        self.settle(request.now_ms, max_receive_count);
        let mut delivered = self.redeliver_visible(source, request, Path::Normal);
        if self.in_flight(request.now_ms) >= MAX_IN_FLIGHT {
            return delivered;
        }
        let shards = source.shard_count();
        for step in 0..shards {
            if delivered.len() == request.limit {
                break;
            }
            let shard = (self.next_shard + step) % shards;
            let cursor = *self
                .cursors
                .entry(shard)
                .or_insert_with(|| start.first_cursor());
            let wanted = request.limit - delivered.len();
            let mut next_cursor = cursor;
            // Records the starting position excludes are skipped; read on past them.
            'scan: loop {
                let batch = source.records_from(shard, next_cursor, wanted.max(64));
                if batch.is_empty() {
                    break;
                }
                for record in batch {
                    next_cursor = record.counter + 1;
                    if !start.admits(&record) {
                        continue;
                    }
                    let key = (shard, record.counter);
                    self.pending.insert(
                        key,
                        Pending {
                            shard,
                            counter: record.counter,
                            receive_count: 0,
                            first_receive_ms: request.now_ms,
                            visible_at_ms: request.now_ms,
                            receive_id: None,
                            issued_on: Path::Normal,
                            dead: false,
                        },
                    );
                    if let Some((receive_count, first_receive_ms, handle)) =
                        self.issue(key, request, Path::Normal)
                    {
                        delivered.push(Delivered {
                            shard,
                            record,
                            receive_count,
                            first_receive_ms,
                            handle,
                        });
                    }
                    if delivered.len() == request.limit {
                        break 'scan;
                    }
                }
            }
            self.cursors.insert(shard, next_cursor);
        }
        if shards > 0 {
            self.next_shard = (self.next_shard + 1) % shards;
        }
        delivered
    }

    /// Hands out up to `request.limit` visible dead-letter records.
    pub(crate) fn receive_dead_letters(
        &mut self,
        source: &dyn RecordSource,
        max_receive_count: MaxReceiveCount,
        request: &ReceiveRequest,
    ) -> Vec<Delivered> {
        self.settle(request.now_ms, max_receive_count);
        self.redeliver_visible(source, request, Path::DeadLetter)
    }

    /// Hands out again up to `request.limit` pending records of `path` (dead letters or not)
    /// that are visible, those visible longest first.
    fn redeliver_visible(
        &mut self,
        source: &dyn RecordSource,
        request: &ReceiveRequest,
        path: Path,
    ) -> Vec<Delivered> {
        let dead = path == Path::DeadLetter;
        let mut visible: Vec<(i64, (u32, u64))> = self
            .pending
            .iter()
            .filter(|(_, p)| p.dead == dead && p.visible_at_ms <= request.now_ms)
            .map(|(key, p)| (p.visible_at_ms, *key))
            .collect();
        visible.sort_unstable();
        let mut delivered = Vec::new();
        for (_, key) in visible {
            if delivered.len() == request.limit {
                break;
            }
            self.redeliver(source, key, request, path, &mut delivered);
        }
        delivered
    }

    fn redeliver(
        &mut self,
        source: &dyn RecordSource,
        key: (u32, u64),
        request: &ReceiveRequest,
        path: Path,
        delivered: &mut Vec<Delivered>,
    ) {
        let Some(record) = source.record(key.0, key.1) else {
            // Trimmed by retention: the queue stops delivering it.
            self.pending.remove(&key);
            return;
        };
        if let Some((receive_count, first_receive_ms, handle)) = self.issue(key, request, path) {
            delivered.push(Delivered {
                shard: key.0,
                record,
                receive_count,
                first_receive_ms,
                handle,
            });
        }
    }

    /// The pending record a current handle of `path` names.
    fn current(
        &mut self,
        source: &dyn RecordSource,
        handle: &ReceiptHandle,
        path: Path,
    ) -> Result<&mut Pending, EntryError> {
        let key = (handle.shard, handle.counter);
        if self.pending.contains_key(&key) && source.record(key.0, key.1).is_none() {
            self.pending.remove(&key);
        }
        let pending = self.pending.get_mut(&key).ok_or_else(|| {
            EntryError::NotFound(
                "The record was already acknowledged or has left the stream.".to_owned(),
            )
        })?;
        if pending.receive_id != Some(handle.receive_id) || pending.issued_on != path {
            return Err(EntryError::Invalid(match path {
                Path::Normal if pending.issued_on == Path::DeadLetter => {
                    "The record is a dead-letter record: use the dead-letter operations with \
                     the handle ReceiveDeadLetterQueueRecords returned."
                        .to_owned()
                }
                Path::DeadLetter if pending.issued_on == Path::Normal => {
                    "The receipt handle was not issued by ReceiveDeadLetterQueueRecords.".to_owned()
                }
                _ => "The receipt handle is stale: the record was received again since.".to_owned(),
            }));
        }
        if path == Path::Normal && pending.dead {
            return Err(EntryError::Invalid(
                "The record has become a dead-letter record: use the dead-letter operations \
                 with the handle ReceiveDeadLetterQueueRecords returns."
                    .to_owned(),
            ));
        }
        Ok(pending)
    }

    /// Acknowledges the record a handle of `path` names: it is not delivered again.
    pub(crate) fn acknowledge(
        &mut self,
        source: &dyn RecordSource,
        handle: &ReceiptHandle,
        path: Path,
    ) -> Result<(), EntryError> {
        self.current(source, handle, path)?;
        self.pending.remove(&(handle.shard, handle.counter));
        Ok(())
    }

    /// Makes the record a handle of `path` names visible again `visibility_ms` from now.
    pub(crate) fn change_visibility(
        &mut self,
        source: &dyn RecordSource,
        handle: &ReceiptHandle,
        path: Path,
        now_ms: i64,
        visibility_ms: i64,
    ) -> Result<(), EntryError> {
        let pending = self.current(source, handle, path)?;
        pending.visible_at_ms = now_ms + visibility_ms;
        Ok(())
    }

    /// Returns a dead-letter record to the normal path with its receive count reset.
    pub(crate) fn restore(
        &mut self,
        source: &dyn RecordSource,
        handle: &ReceiptHandle,
        now_ms: i64,
    ) -> Result<(), EntryError> {
        let pending = self.current(source, handle, Path::DeadLetter)?;
        pending.dead = false;
        pending.receive_count = 0;
        pending.visible_at_ms = now_ms;
        // The dead-letter handle is spent: the next receive issues a fresh one.
        pending.issued_on = Path::Normal;
        pending.receive_id = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
