//! The account's channels and queues as the stream store's dependents: their registries, the
//! hook the store calls them through, their persisted form, and the one way a request changes
//! one of them.

use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::channels::model::ChannelMeta;
use super::queues::model::{DeliveryDelta, QueueMeta, Unjournaled};
use crate::kinesis::model::{SavedDependents, StreamDependents};
use crate::kinesis::KinesisStore;
use crate::wire::ApiResult;

/// The account's channels and queues, including ones whose deletion has not completed.
#[derive(Debug)]
pub(crate) struct AccountResources {
    channels: Mutex<Vec<ChannelMeta>>,
    queues: Mutex<Vec<QueueMeta>>,
    /// Bumped when a request changes a queue in a way a waiting receive must see (records made
    /// visible again or restored, the queue deleted). Appends wake receives through their
    /// shards' `changed` instead.
    pub(crate) queues_changed: watch::Sender<u64>,
}

impl Default for AccountResources {
    fn default() -> Self {
        AccountResources {
            channels: Mutex::default(),
            queues: Mutex::default(),
            queues_changed: watch::channel(0).0,
        }
    }
}

impl AccountResources {
    /// The account's channels, locked. A change goes through [`change_registered`].
    pub(crate) fn channels(&self) -> MutexGuard<'_, Vec<ChannelMeta>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The account's queues, locked. The lock comes before any stream's or shard's, and the
    /// guard must be released before the store saves or looks a stream up.
    pub(crate) fn queues(&self) -> MutexGuard<'_, Vec<QueueMeta>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells receives waiting on a queue to look again.
    pub(crate) fn wake_receives(&self) {
        self.queues_changed.send_modify(|v| *v += 1);
    }
}

/// Live queues in `queues` (the guard of [`AccountResources::queues`]) reading `stream_arn`.
/// Channels read streams too, but neither share the consumer limit nor block a deletion.
pub(crate) fn queues_reading(queues: &[QueueMeta], stream_arn: &str, now: i64) -> usize {
    queues
        .iter()
        .filter(|q| q.stream_arn == stream_arn && !q.deleted(now))
        .count()
}

impl StreamDependents for AccountResources {
    type Saved = SavedResources;

    fn with_readers<T>(&self, stream_arn: &str, now: i64, f: impl FnOnce(usize) -> T) -> T {
        let queues = self.queues();
        f(queues_reading(&queues, stream_arn, now))
    }

    fn record(&self, arn: &str) -> Option<ResourceRecord> {
        if let Some(channel) = self.channels().iter().find(|c| c.arn == arn) {
            return Some(ResourceRecord::Channel(channel.clone()));
        }
        let mut queues = self.queues();
        let queue = queues.iter_mut().find(|q| q.arn == arn)?;
        match std::mem::take(&mut queue.unjournaled) {
            // An earlier record (built for a later change that got to the journal first) holds
            // this change already.
            Unjournaled::Nothing => None,
            Unjournaled::Delivery(delivery) => {
                Some(ResourceRecord::QueueDelivery(DeliveryRecord {
                    arn: arn.to_owned(),
                    delivery,
                }))
            }
            Unjournaled::Whole => Some(ResourceRecord::Queue(queue.clone())),
        }
    }

    fn saved(&self, now: i64) -> SavedResources {
        // Resources whose deletion has completed are gone for good: they are not saved. One
        // registry is locked at a time, so the save imposes no order between their locks.
        let channels = live(&self.channels(), now);
        let queues = {
            let mut queues = self.queues();
            let saved = live(&queues, now);
            // The snapshot holds every change noted so far; the journal that continues it
            // must not apply them a second time.
            for queue in queues.iter_mut() {
                queue.unjournaled = Unjournaled::Nothing;
            }
            saved
        };
        SavedResources { channels, queues }
    }

    fn recover(&self, saved: SavedResources) {
        *self.channels() = saved.channels;
        *self.queues() = saved.queues;
    }

    fn clock_advanced(&self) {
        // Visibility timeouts may have run out on the new clock.
        self.wake_receives();
    }
}

fn live<R: AccountResource>(registry: &[R], now: i64) -> Vec<R> {
    registry
        .iter()
        .filter(|r| !r.deleted(now))
        .cloned()
        .collect()
}

/// Channels and queues as the metadata snapshot holds them: its `channels` and `queues`
/// fields.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct SavedResources {
    /// Absent from snapshots written before channels existed.
    #[serde(default)]
    channels: Vec<ChannelMeta>,
    /// Absent from snapshots written before queues existed.
    #[serde(default)]
    queues: Vec<QueueMeta>,
}

/// What changed in one channel or queue, as a journal record holds it: the new state of the
/// channel or queue (a queue's delivery state included), `{"Channel": ...}` or
/// `{"Queue": ...}`, or only what receives and batch operations changed in a queue's delivery
/// state since its previous record, `{"QueueDelivery": ...}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ResourceRecord {
    Channel(ChannelMeta),
    Queue(QueueMeta),
    /// Absent from journals written before delivery changes were journaled alone.
    QueueDelivery(DeliveryRecord),
}

/// The changes to the delivery state of the queue `arn` since its previous journal record.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DeliveryRecord {
    arn: String,
    delivery: DeliveryDelta,
}

impl SavedDependents for SavedResources {
    type Record = ResourceRecord;

    fn apply(&mut self, record: ResourceRecord) {
        match record {
            ResourceRecord::Channel(channel) => replace_or_add(&mut self.channels, channel),
            ResourceRecord::Queue(queue) => replace_or_add(&mut self.queues, queue),
            ResourceRecord::QueueDelivery(record) => {
                // The queue's first record holds it whole, so it is there unless the journal
                // was cut before that record, which then cut this one too.
                if let Some(queue) = self.queues.iter_mut().find(|q| q.arn == record.arn) {
                    queue.delivery.apply(record.delivery);
                }
            }
        }
    }
}

fn replace_or_add<R: AccountResource>(registry: &mut Vec<R>, resource: R) {
    match registry.iter_mut().find(|r| r.arn() == resource.arn()) {
        Some(slot) => *slot = resource,
        None => registry.push(resource),
    }
}

/// A resource the account holds beside its streams (a channel or a queue), found by ARN.
pub(crate) trait AccountResource: Clone {
    /// `channel` or `queue`: the ARN's resource type and the member name's stem.
    const KIND: &'static str;
    /// The resource's ARN, which names it in requests and in the metadata journal.
    fn arn(&self) -> &str;
    /// Whether the resource's deletion has completed by `now`.
    fn deleted(&self, now: i64) -> bool;
    /// The registry of this kind of resource, locked.
    fn registry(resources: &AccountResources) -> MutexGuard<'_, Vec<Self>>;
    /// Makes the next journal record of the resource hold its whole state, for a change (or
    /// an undone change) a smaller record does not describe.
    fn journal_whole(&mut self);
}

impl AccountResource for ChannelMeta {
    const KIND: &'static str = "channel";
    fn arn(&self) -> &str {
        &self.arn
    }
    fn deleted(&self, now: i64) -> bool {
        self.lifecycle.deleted(now)
    }
    fn registry(resources: &AccountResources) -> MutexGuard<'_, Vec<Self>> {
        resources.channels()
    }
    fn journal_whole(&mut self) {
        // A channel's records always hold it whole.
    }
}

impl AccountResource for QueueMeta {
    const KIND: &'static str = "queue";
    fn arn(&self) -> &str {
        &self.arn
    }
    fn deleted(&self, now: i64) -> bool {
        self.lifecycle.deleted(now)
    }
    fn registry(resources: &AccountResources) -> MutexGuard<'_, Vec<Self>> {
        resources.queues()
    }
    fn journal_whole(&mut self) {
        self.unjournaled = Unjournaled::Whole;
    }
}

/// Runs `change` on the registry of `R` (queues or channels) under its lock, then makes the
/// change to the resource whose ARN `change` returns beside its result durable. `change` gets
/// the store's time, and may lock a stream (registries come before streams in the lock order).
///
/// # Errors
/// What `change` returns (nothing is saved then), or an internal error when the save failed
/// (the resource is then as it was before, or gone again if `change` added it).
pub(crate) fn change_registered<R: AccountResource, T>(
    store: &KinesisStore,
    change: impl FnOnce(&mut Vec<R>, i64) -> ApiResult<(T, String)>,
) -> ApiResult<T> {
    let (result, arn, before) = {
        let mut registry = R::registry(store.dependents());
        let before = store.is_durable().then(|| registry.clone());
        let (result, arn) = change(&mut registry, store.now_ms())?;
        if let Some(changed) = registry.iter_mut().find(|r| r.arn() == arn) {
            changed.journal_whole();
        }
        let before = before.map(|all| all.into_iter().find(|r| r.arn() == arn));
        (result, arn, before)
    };
    store.keep_dependent_or_undo(&arn, || {
        let Some(before) = before else {
            return;
        };
        let mut registry = R::registry(store.dependents());
        let at = registry.iter().position(|r| r.arn() == arn);
        match (at, before) {
            (Some(at), Some(mut before)) => {
                before.journal_whole();
                registry[at] = before;
            }
            (Some(at), None) => {
                registry.remove(at);
            }
            (None, _) => {}
        }
    })?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinesis::model::Lifecycle;

    /// Journal records and snapshots read as they did when the store named channels and
    /// queues itself, so existing data directories load.
    #[test]
    fn the_persisted_form_is_the_one_existing_data_directories_hold() {
        let queue = serde_json::json!({
            "name": "q", "id": "abc", "arn": "arn:aws:kinesis:us-east-1:123456789012:queue/abc",
            "serial": 3, "created_ms": 1, "creating_until": 2, "updating_until": null,
            "deleting_until": null, "stream_name": "s",
            "stream_arn": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
            "stream_created_ms": 0, "starting_position": "LATEST", "starting_timestamp_ms": 1,
            "timestamp_requested": false, "start": {"AfterCounter": 5},
            "visibility_timeout_secs": 30, "max_receive_count": 6, "tags": {},
            "resource_policy": null,
            "delivery": {"cursors": [], "pending": [], "next_receive_id": 0, "next_shard": 0},
        });
        let record: ResourceRecord =
            serde_json::from_value(serde_json::json!({ "Queue": queue.clone() })).unwrap();
        let ResourceRecord::Queue(parsed) = &record else {
            panic!("a queue record reads as a queue: {record:?}");
        };
        assert_eq!(parsed.lifecycle, Lifecycle::new(1, 1));
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            serde_json::json!({ "Queue": queue.clone() })
        );
        let mut saved: SavedResources = serde_json::from_value(serde_json::json!({})).unwrap();
        saved.apply(record);
        assert_eq!(
            serde_json::to_value(&saved).unwrap(),
            serde_json::json!({ "channels": [], "queues": [queue] })
        );
    }
}
