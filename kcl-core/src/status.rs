//! What a worker is doing right now, for health checks and operators: whether it has started,
//! which shards it holds, how far behind each is, and which processor calls are running long.
//! The scheduler and its shard consumers keep it current; [`crate::admin`] serves it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// A shared, always-current view of one worker. Cloning it is cheap; every clone sees the same
/// worker.
#[derive(Debug, Clone, Default)]
pub struct WorkerStatus {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    worker_id: String,
    started: bool,
    stopped: bool,
    /// Whether this worker leads its fleet (KCL 3 coordination).
    leader: bool,
    shards: BTreeMap<String, Shard>,
}

#[derive(Debug, Clone)]
struct Shard {
    millis_behind_latest: Option<i64>,
    checkpoint: Option<String>,
    /// The processor call running now and since when.
    call: Option<(&'static str, Instant)>,
}

/// One held shard, as [`WorkerStatus::shards`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardStatus {
    /// The lease key.
    pub lease_key: String,
    /// How far the last batch was behind the tip of the shard, if one was read yet.
    pub millis_behind_latest: Option<i64>,
    /// The last checkpoint this worker wrote or started from.
    pub checkpoint: Option<String>,
    /// The processor call running now (`process_records`, ...) and for how long.
    pub running_call: Option<(&'static str, Duration)>,
}

impl WorkerStatus {
    pub(crate) fn new(worker_id: &str) -> WorkerStatus {
        let status = WorkerStatus::default();
        status.with(|s| s.worker_id = worker_id.to_owned());
        status
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The worker's id.
    pub fn worker_id(&self) -> String {
        self.with(|s| s.worker_id.clone())
    }

    /// Whether the worker has started: lease table ready, shards synced, coordinator running.
    pub fn started(&self) -> bool {
        self.with(|s| s.started && !s.stopped)
    }

    /// Whether this worker is its fleet's leader (KCL 3 coordination: it assigns the leases).
    /// Always `false` in KCL 2.x mode.
    pub fn is_leader(&self) -> bool {
        self.with(|s| s.leader && s.started && !s.stopped)
    }

    pub(crate) fn set_leader(&self, leader: bool) {
        self.with(|s| s.leader = leader);
    }

    /// The shards this worker holds.
    pub fn shards(&self) -> Vec<ShardStatus> {
        let now = Instant::now();
        self.with(|s| {
            s.shards
                .iter()
                .map(|(key, shard)| ShardStatus {
                    lease_key: key.clone(),
                    millis_behind_latest: shard.millis_behind_latest,
                    checkpoint: shard.checkpoint.clone(),
                    running_call: shard
                        .call
                        .map(|(name, since)| (name, now.duration_since(since))),
                })
                .collect()
        })
    }

    /// The shards whose processor call has been running for longer than `limit`.
    pub fn stuck_shards(&self, limit: Duration) -> Vec<ShardStatus> {
        self.shards()
            .into_iter()
            .filter(|s| s.running_call.is_some_and(|(_, running)| running > limit))
            .collect()
    }

    pub(crate) fn set_started(&self, started: bool) {
        self.with(|s| {
            s.started = started;
            s.stopped = !started;
        });
    }

    /// Makes the held shards exactly `held`: new ones are added, released ones dropped.
    pub(crate) fn set_held(&self, held: &[String]) {
        self.with(|s| {
            s.shards.retain(|key, _| held.contains(key));
            for key in held {
                s.shards.entry(key.clone()).or_insert(Shard {
                    millis_behind_latest: None,
                    checkpoint: None,
                    call: None,
                });
            }
        });
    }

    pub(crate) fn shard_progress(
        &self,
        lease_key: &str,
        millis_behind_latest: Option<i64>,
        checkpoint: Option<String>,
    ) {
        self.with(|s| {
            if let Some(shard) = s.shards.get_mut(lease_key) {
                if millis_behind_latest.is_some() {
                    shard.millis_behind_latest = millis_behind_latest;
                }
                if checkpoint.is_some() {
                    shard.checkpoint = checkpoint;
                }
            }
        });
    }

    pub(crate) fn call_started(&self, lease_key: &str, call: &'static str) {
        self.with(|s| {
            if let Some(shard) = s.shards.get_mut(lease_key) {
                shard.call = Some((call, Instant::now()));
            }
        });
    }

    pub(crate) fn call_ended(&self, lease_key: &str) {
        self.with(|s| {
            if let Some(shard) = s.shards.get_mut(lease_key) {
                shard.call = None;
            }
        });
    }
}
