//! What the metadata journal holds of a queue's receives and batch operations: the changes to
//! its delivery state, not the state.
//!
//! A receive or an acknowledgement touches a handful of pending records, while the delivery
//! state holds every record in flight. A journal record carrying the whole state grows with the
//! records in flight, and so do the bytes every sync writes and how often the journal is
//! compacted into a new snapshot; on a drain that cost bounds a durable queue. A
//! [`DeliveryDelta`] holds only what changed, each change as an absolute value (a pending
//! record's new state, or its removal, a cursor's new position): applying deltas in journal
//! order over the snapshot they continue rebuilds the state, and two deltas in a row compose by
//! letting the later value win.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Delivery, Pending};

/// The changes from one delivery state to a later one. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredDelta", into = "StoredDelta")]
pub(crate) struct DeliveryDelta {
    /// Per pending record touched, its new state, or `None` once it left the pending set.
    pending: BTreeMap<(u32, u64), Option<Pending>>,
    /// Per shard whose cursor moved, its new position (cursors never go away).
    cursors: BTreeMap<u32, u64>,
    next_receive_id: u64,
    next_shard: u32,
}

/// [`DeliveryDelta`] as stored: JSON maps need string keys, so the maps become lists.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredDelta {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    set: Vec<Pending>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    removed: Vec<(u32, u64)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cursors: Vec<(u32, u64)>,
    next_receive_id: u64,
    next_shard: u32,
}

impl From<StoredDelta> for DeliveryDelta {
    fn from(s: StoredDelta) -> DeliveryDelta {
        // A key both set and removed cannot come from one delta; were it there, the removal
        // is kept, as the conservative reading of an acknowledgement.
        let mut pending: BTreeMap<_, _> = s
            .set
            .into_iter()
            .map(|p| ((p.shard, p.counter), Some(p)))
            .collect();
        pending.extend(s.removed.into_iter().map(|key| (key, None)));
        DeliveryDelta {
            pending,
            cursors: s.cursors.into_iter().collect(),
            next_receive_id: s.next_receive_id,
            next_shard: s.next_shard,
        }
    }
}

impl From<DeliveryDelta> for StoredDelta {
    fn from(d: DeliveryDelta) -> StoredDelta {
        let mut set = Vec::new();
        let mut removed = Vec::new();
        for (key, pending) in d.pending {
            match pending {
                Some(pending) => set.push(pending),
                None => removed.push(key),
            }
        }
        StoredDelta {
            set,
            removed,
            cursors: d.cursors.into_iter().collect(),
            next_receive_id: d.next_receive_id,
            next_shard: d.next_shard,
        }
    }
}

impl DeliveryDelta {
    /// Folds `later`, a delta that follows this one, into it: applying the result is applying
    /// both in order.
    pub(crate) fn then(&mut self, later: DeliveryDelta) {
        self.pending.extend(later.pending);
        self.cursors.extend(later.cursors);
        self.next_receive_id = later.next_receive_id;
        self.next_shard = later.next_shard;
    }
}

impl Delivery {
    /// What changed from `before` (an earlier copy of this state) to this state.
    pub(crate) fn delta_since(&self, before: &Delivery) -> DeliveryDelta {
        let mut pending: BTreeMap<_, _> = self
            .pending
            .iter()
            .filter(|(key, now)| before.pending.get(key) != Some(now))
            .map(|(key, now)| (*key, Some(now.clone())))
            .collect();
        pending.extend(
            before
                .pending
                .keys()
                .filter(|key| !self.pending.contains_key(key))
                .map(|key| (*key, None)),
        );
        DeliveryDelta {
            pending,
            cursors: self
                .cursors
                .iter()
                .filter(|(shard, cursor)| before.cursors.get(shard) != Some(cursor))
                .map(|(shard, cursor)| (*shard, *cursor))
                .collect(),
            next_receive_id: self.next_receive_id,
            next_shard: self.next_shard,
        }
    }

    /// Applies `delta`, the changes that followed this state.
    pub(crate) fn apply(&mut self, delta: DeliveryDelta) {
        for (key, pending) in delta.pending {
            match pending {
                Some(pending) => {
                    self.pending.insert(key, pending);
                }
                None => {
                    self.pending.remove(&key);
                }
            }
        }
        self.cursors.extend(delta.cursors);
        self.next_receive_id = delta.next_receive_id;
        self.next_shard = delta.next_shard;
    }
}

/// What of a queue its journal records do not hold yet. Changed under the queues' lock with
/// the queue itself, and taken when the next record of the queue is built, under the metadata
/// lock: the records reach the journal in the order the changes were made, whichever request
/// ends up writing them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Unjournaled {
    /// The journal (or the snapshot) holds the queue as it is.
    #[default]
    Nothing,
    /// Only the delivery state changed since, by this much.
    Delivery(DeliveryDelta),
    /// Anything else changed, or a change was undone: the next record holds the whole queue.
    Whole,
}

impl Unjournaled {
    /// Notes `delta`, a change to the delivery state made after everything noted so far.
    pub(crate) fn add_delivery(&mut self, delta: DeliveryDelta) {
        match self {
            Unjournaled::Nothing => *self = Unjournaled::Delivery(delta),
            Unjournaled::Delivery(earlier) => earlier.then(delta),
            // The whole queue, read when the record is built, holds this change too.
            Unjournaled::Whole => {}
        }
    }
}
