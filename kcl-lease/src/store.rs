//! Where leases live: the [`LeaseStore`] trait and its in-memory implementation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::entities::{LeaderLock, MigrationState, TableSnapshot, WorkerMetrics};
use crate::error::Result;
use crate::lease::{Lease, StoredCheckpoint};

/// A checkpoint write: the new checkpoint and, for two-phase checkpoints, the prepared one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointUpdate {
    /// The checkpoint to store.
    pub checkpoint: StoredCheckpoint,
    /// A prepared (pending) checkpoint, or `None` to clear it.
    pub pending_checkpoint: Option<StoredCheckpoint>,
    /// Application state stored with the pending checkpoint.
    pub pending_checkpoint_state: Option<Vec<u8>>,
}

/// The lease table. Every write that depends on the table's current state is conditional; a
/// condition that fails (someone else changed the lease) returns `Ok(false)`.
///
/// `lease` arguments are the caller's last known copy: its `lease_counter` and `lease_owner` are
/// what the condition checks.
#[async_trait]
pub trait LeaseStore: Send + Sync + std::fmt::Debug {
    /// Creates the table if it does not exist and waits until it can be used.
    async fn initialize(&self) -> Result<()>;

    /// Writes `lease` unless a lease with its key exists. `Ok(false)` if one did.
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool>;

    /// Every lease, read consistently.
    async fn list_leases(&self) -> Result<Vec<Lease>>;

    /// One lease, read consistently.
    async fn get_lease(&self, lease_key: &str) -> Result<Option<Lease>>;

    /// Bumps the counter if counter and owner are still as in `lease`, and writes
    /// `lease.throughput_kbps` (KCL 3's `throughputKBps`) when it is set.
    async fn renew_lease(&self, lease: &Lease) -> Result<bool>;

    /// Makes `new_owner` the owner if the counter is still as in `lease`; bumps the counter, and
    /// the owner-switch count when the owner changes. Ends any handoff under way (removes
    /// `checkpointOwner`): a handoff that stalled for a whole failover time is over.
    async fn take_lease(&self, lease: &Lease, new_owner: &str) -> Result<bool>;

    /// Removes the owner if it is still the one in `lease`; bumps the counter.
    async fn evict_lease(&self, lease: &Lease) -> Result<bool>;

    /// Starts a graceful handoff of a lease its owner is processing: if `lease.lease_owner`
    /// still owns it and no handoff is under way, `new_owner` becomes `leaseOwner` and the old
    /// owner `checkpointOwner` (the KCL 3 form). The counter is not bumped: the old owner sees
    /// the change at its next renewal, checkpoints, then completes the handoff.
    async fn start_handoff(&self, lease: &Lease, new_owner: &str) -> Result<bool>;

    /// Completes a handoff: if the counter is still as in `lease` and `lease.checkpoint_owner`
    /// is still the checkpoint owner, removes `checkpointOwner` (the lease is then wholly the
    /// new owner's) and bumps the counter and the owner-switch count.
    async fn complete_handoff(&self, lease: &Lease) -> Result<bool>;

    /// Writes a checkpoint if counter and owner are still as in `lease`; bumps the counter and
    /// resets the owner-switch count. Writes `lease.throughput_kbps` when it is set (workers
    /// that keep their leases by heartbeat report throughput with their checkpoints).
    async fn update_checkpoint(&self, lease: &Lease, update: &CheckpointUpdate) -> Result<bool>;

    /// Adds `child_shard_ids` to the lease's children. `Ok(false)` if the lease is gone.
    async fn update_child_shards(
        &self,
        lease_key: &str,
        child_shard_ids: &BTreeSet<String>,
    ) -> Result<bool>;

    /// Deletes the lease (no condition).
    async fn delete_lease(&self, lease_key: &str) -> Result<()>;

    // ---- KCL 3 coordination (see the `entities` module) ----

    /// Every item of the table, sorted by kind: the leader's one scan per assignment round.
    async fn scan_table(&self) -> Result<TableSnapshot>;

    /// Keys of the leases whose `leaseOwner` is `owner`, from the `LeaseOwnerToLeaseKeyIndex`
    /// index (eventually consistent; a lease handed to `owner` may show up a moment late).
    async fn lease_keys_of_owner(&self, owner: &str) -> Result<Vec<String>>;

    /// Whether the `LeaseOwnerToLeaseKeyIndex` index exists and is ACTIVE (its backfill done):
    /// the upgrade from 2.x waits for it, as workers on KCL 3 find their leases through it.
    async fn owner_index_ready(&self) -> Result<bool>;

    /// The leader gives a lease to `new_owner`: if `leaseOwner` and `checkpointOwner` are still
    /// as in `lease` (absent where `lease` has none) and the lease exists, sets `leaseOwner`,
    /// removes `checkpointOwner`, bumps the counter, and the owner-switch count when the owner
    /// changes (or the checkpoint owner was `new_owner`). Not fenced by the counter, as in Java:
    /// the leader decides from a scan, and a renewal must not defeat its decision.
    async fn assign_lease(&self, lease: &Lease, new_owner: &str) -> Result<bool>;

    /// The leader removes a lease's owner (owners as in [`LeaseStore::assign_lease`]): removes
    /// `leaseOwner` (unless a handoff is under way) and `checkpointOwner`, bumps the counter.
    async fn unassign_lease(&self, lease: &Lease) -> Result<bool>;

    /// A worker reports its metrics: writes the attributes of `metrics` it owns (not `ag` nor
    /// `drn`, which others set), bumps `hbc`, and returns the item as stored, so the worker
    /// sees what the leader and operators set. A new item's `hbc` starts at
    /// [`heartbeat_base`], so that a worker restarted under the same id (its old item deleted
    /// when it left) carries on with a greater counter, which the leader reads as the same
    /// worker alive rather than as a stale read of the old one.
    async fn report_worker_metrics(&self, metrics: &WorkerMetrics) -> Result<WorkerMetrics>;

    /// The metrics items of the given workers (those that exist, each once however often it
    /// is named), read eventually consistent.
    async fn get_worker_metrics(&self, worker_ids: &[String]) -> Result<Vec<WorkerMetrics>>;

    /// Bumps the worker's assignment generation (`ag`): the leader has given it leases. Does
    /// nothing when the worker has no metrics item.
    async fn notify_assignment(&self, worker_id: &str) -> Result<()>;

    /// Sets or clears a worker's `drn` (drain) flag. `Ok(false)` when it has no metrics item.
    async fn set_worker_draining(&self, worker_id: &str, draining: bool) -> Result<bool>;

    /// Deletes a worker's metrics item if its `lut` is still `last_update_secs` (a stale
    /// worker's item, removed by the leader).
    async fn delete_worker_metrics(&self, worker_id: &str, last_update_secs: u64) -> Result<bool>;

    /// The leader lock, read consistently.
    async fn get_leader_lock(&self) -> Result<Option<LeaderLock>>;

    /// Writes `lock`: when `replacing` is `None`, only if no lock exists; otherwise only if the
    /// lock's `recordVersionNumber` is still `replacing` (taking over a silent leader's lock).
    async fn acquire_leader_lock(&self, lock: &LeaderLock, replacing: Option<&str>)
        -> Result<bool>;

    /// The leader's heartbeat: writes `lock` (a new version, maybe a new successor) if the lock
    /// is still owned by `lock.owner` at version `previous_version`.
    async fn renew_leader_lock(&self, lock: &LeaderLock, previous_version: &str) -> Result<bool>;

    /// Deletes the lock if it is still `lock` (owner and version).
    async fn release_leader_lock(&self, lock: &LeaderLock) -> Result<bool>;

    /// The migration state, read consistently.
    async fn get_migration_state(&self) -> Result<Option<MigrationState>>;

    /// Writes the migration state: when `expected_version` is `None`, only if none exists;
    /// otherwise only if its `cv` is still `expected_version`.
    async fn put_migration_state(
        &self,
        state: &MigrationState,
        expected_version: Option<&str>,
    ) -> Result<bool>;
}

/// Where a new worker metrics item's heartbeat counter starts: the wall clock in epoch
/// milliseconds. A counter grows by a few per second and the clock by a thousand, so a new
/// item of a restarted worker starts above the counter its previous item reached (unless the
/// clock went back by more than that previous run's length in milliseconds).
pub fn heartbeat_base() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A lease table in memory, with the same conditional semantics as the DynamoDB one. For unit
/// tests and simulations; it is not shared between processes.
#[derive(Debug, Default)]
pub struct InMemoryLeaseStore {
    leases: Mutex<BTreeMap<String, Lease>>,
    others: Mutex<OtherItems>,
}

/// The KCL 3 items of an in-memory table.
#[derive(Debug, Default)]
struct OtherItems {
    workers: BTreeMap<String, WorkerMetrics>,
    leader: Option<LeaderLock>,
    migration: Option<MigrationState>,
}

impl InMemoryLeaseStore {
    /// An empty store.
    pub fn new() -> InMemoryLeaseStore {
        InMemoryLeaseStore::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Lease>) -> T) -> T {
        f(&mut self.leases.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn with_others<T>(&self, f: impl FnOnce(&mut OtherItems) -> T) -> T {
        f(&mut self.others.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait]
impl LeaseStore for InMemoryLeaseStore {
    async fn initialize(&self) -> Result<()> {
        Ok(())
    }

    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool> {
        Ok(self.with(|leases| {
            if leases.contains_key(&lease.lease_key) {
                return false;
            }
            leases.insert(lease.lease_key.clone(), lease.clone());
            true
        }))
    }

    async fn list_leases(&self) -> Result<Vec<Lease>> {
        Ok(self.with(|leases| leases.values().cloned().collect()))
    }

    async fn get_lease(&self, lease_key: &str) -> Result<Option<Lease>> {
        Ok(self.with(|leases| leases.get(lease_key).cloned()))
    }

    async fn renew_lease(&self, lease: &Lease) -> Result<bool> {
        Ok(self.with(|leases| match leases.get_mut(&lease.lease_key) {
            Some(stored)
                if stored.lease_counter == lease.lease_counter
                    && stored.lease_owner == lease.lease_owner =>
            {
                stored.lease_counter += 1;
                if lease.throughput_kbps.is_some() {
                    stored.throughput_kbps = lease.throughput_kbps;
                }
                true
            }
            _ => false,
        }))
    }

    async fn take_lease(&self, lease: &Lease, new_owner: &str) -> Result<bool> {
        Ok(self.with(|leases| match leases.get_mut(&lease.lease_key) {
            Some(stored) if stored.lease_counter == lease.lease_counter => {
                if stored.lease_owner.as_deref() != Some(new_owner) {
                    stored.owner_switches_since_checkpoint += 1;
                }
                stored.lease_owner = Some(new_owner.to_owned());
                stored.checkpoint_owner = None;
                stored.lease_counter += 1;
                true
            }
            _ => false,
        }))
    }

    async fn evict_lease(&self, lease: &Lease) -> Result<bool> {
        Ok(self.with(|leases| match leases.get_mut(&lease.lease_key) {
            Some(stored) if stored.lease_owner == lease.lease_owner => {
                stored.lease_owner = None;
                stored.lease_counter += 1;
                true
            }
            _ => false,
        }))
    }

    async fn start_handoff(&self, lease: &Lease, new_owner: &str) -> Result<bool> {
        Ok(self.with(|leases| match leases.get_mut(&lease.lease_key) {
            Some(stored)
                if stored.lease_owner.is_some()
                    && stored.lease_owner == lease.lease_owner
                    && stored.checkpoint_owner.is_none() =>
            {
                stored.checkpoint_owner = stored.lease_owner.take();
                stored.lease_owner = Some(new_owner.to_owned());
                true
            }
            _ => false,
        }))
    }

    async fn complete_handoff(&self, lease: &Lease) -> Result<bool> {
        Ok(self.with(|leases| match leases.get_mut(&lease.lease_key) {
            Some(stored)
                if stored.lease_counter == lease.lease_counter
                    && stored.checkpoint_owner.is_some()
                    && stored.checkpoint_owner == lease.checkpoint_owner =>
            {
                stored.checkpoint_owner = None;
                stored.lease_counter += 1;
                stored.owner_switches_since_checkpoint += 1;
                true
            }
            _ => false,
        }))
    }

    async fn update_checkpoint(&self, lease: &Lease, update: &CheckpointUpdate) -> Result<bool> {
        Ok(self.with(|leases| match leases.get_mut(&lease.lease_key) {
            Some(stored)
                if stored.lease_counter == lease.lease_counter
                    && stored.lease_owner == lease.lease_owner =>
            {
                stored.checkpoint = Some(update.checkpoint.clone());
                stored.pending_checkpoint = update.pending_checkpoint.clone();
                stored.pending_checkpoint_state = update.pending_checkpoint_state.clone();
                if lease.throughput_kbps.is_some() {
                    stored.throughput_kbps = lease.throughput_kbps;
                }
                stored.owner_switches_since_checkpoint = 0;
                stored.lease_counter += 1;
                true
            }
            _ => false,
        }))
    }

    async fn update_child_shards(
        &self,
        lease_key: &str,
        child_shard_ids: &BTreeSet<String>,
    ) -> Result<bool> {
        Ok(self.with(|leases| match leases.get_mut(lease_key) {
            Some(stored) => {
                stored
                    .child_shard_ids
                    .extend(child_shard_ids.iter().cloned());
                true
            }
            None => false,
        }))
    }

    async fn delete_lease(&self, lease_key: &str) -> Result<()> {
        self.with(|leases| leases.remove(lease_key));
        Ok(())
    }

    async fn scan_table(&self) -> Result<TableSnapshot> {
        let leases = self.with(|leases| leases.values().cloned().collect());
        Ok(self.with_others(|others| TableSnapshot {
            leases,
            workers: others.workers.values().cloned().collect(),
            leader: others.leader.clone(),
            migration: others.migration.clone(),
        }))
    }

    async fn owner_index_ready(&self) -> Result<bool> {
        Ok(true)
    }

    async fn lease_keys_of_owner(&self, owner: &str) -> Result<Vec<String>> {
        Ok(self.with(|leases| {
            leases
                .values()
                .filter(|l| l.lease_owner.as_deref() == Some(owner))
                .map(|l| l.lease_key.clone())
                .collect()
        }))
    }

    async fn assign_lease(&self, lease: &Lease, new_owner: &str) -> Result<bool> {
        Ok(self.with(|leases| match leases.get_mut(&lease.lease_key) {
            Some(stored)
                if stored.lease_owner == lease.lease_owner
                    && stored.checkpoint_owner == lease.checkpoint_owner =>
            {
                if stored.lease_owner.as_deref() != Some(new_owner)
                    || stored.checkpoint_owner.as_deref() == Some(new_owner)
                {
                    stored.owner_switches_since_checkpoint += 1;
                }
                stored.lease_owner = Some(new_owner.to_owned());
                stored.checkpoint_owner = None;
                stored.lease_counter += 1;
                true
            }
            _ => false,
        }))
    }

    async fn unassign_lease(&self, lease: &Lease) -> Result<bool> {
        Ok(self.with(|leases| match leases.get_mut(&lease.lease_key) {
            Some(stored)
                if stored.lease_owner == lease.lease_owner
                    && stored.checkpoint_owner == lease.checkpoint_owner =>
            {
                if stored.checkpoint_owner.is_none() {
                    stored.lease_owner = None;
                }
                stored.checkpoint_owner = None;
                stored.lease_counter += 1;
                true
            }
            _ => false,
        }))
    }

    async fn report_worker_metrics(&self, metrics: &WorkerMetrics) -> Result<WorkerMetrics> {
        Ok(self.with_others(|others| {
            let stored = others
                .workers
                .entry(metrics.worker_id.clone())
                .or_insert_with(|| WorkerMetrics::new(metrics.worker_id.clone()));
            stored.last_update_secs = metrics.last_update_secs;
            stored.stats = metrics.stats.clone();
            stored.operating_range = metrics.operating_range.clone();
            stored.heartbeat = Some(stored.heartbeat.unwrap_or_else(heartbeat_base) + 1);
            stored.clone()
        }))
    }

    async fn get_worker_metrics(&self, worker_ids: &[String]) -> Result<Vec<WorkerMetrics>> {
        let unique: BTreeSet<&String> = worker_ids.iter().collect();
        Ok(self.with_others(|others| {
            unique
                .into_iter()
                .filter_map(|id| others.workers.get(id).cloned())
                .collect()
        }))
    }

    async fn notify_assignment(&self, worker_id: &str) -> Result<()> {
        self.with_others(|others| {
            if let Some(worker) = others.workers.get_mut(worker_id) {
                worker.assignment_generation += 1;
            }
        });
        Ok(())
    }

    async fn set_worker_draining(&self, worker_id: &str, draining: bool) -> Result<bool> {
        Ok(
            self.with_others(|others| match others.workers.get_mut(worker_id) {
                Some(worker) => {
                    worker.draining = draining;
                    true
                }
                None => false,
            }),
        )
    }

    async fn delete_worker_metrics(&self, worker_id: &str, last_update_secs: u64) -> Result<bool> {
        Ok(
            self.with_others(|others| match others.workers.get(worker_id) {
                Some(worker) if worker.last_update_secs == last_update_secs => {
                    others.workers.remove(worker_id);
                    true
                }
                _ => false,
            }),
        )
    }

    async fn get_leader_lock(&self) -> Result<Option<LeaderLock>> {
        Ok(self.with_others(|others| others.leader.clone()))
    }

    async fn acquire_leader_lock(
        &self,
        lock: &LeaderLock,
        replacing: Option<&str>,
    ) -> Result<bool> {
        Ok(self.with_others(|others| {
            let current = others.leader.as_ref().map(|l| l.record_version.as_str());
            if current != replacing {
                return false;
            }
            others.leader = Some(lock.clone());
            true
        }))
    }

    async fn renew_leader_lock(&self, lock: &LeaderLock, previous_version: &str) -> Result<bool> {
        Ok(self.with_others(|others| match &others.leader {
            Some(current)
                if current.owner == lock.owner && current.record_version == previous_version =>
            {
                others.leader = Some(lock.clone());
                true
            }
            _ => false,
        }))
    }

    async fn release_leader_lock(&self, lock: &LeaderLock) -> Result<bool> {
        Ok(self.with_others(|others| match &others.leader {
            Some(current)
                if current.owner == lock.owner && current.record_version == lock.record_version =>
            {
                others.leader = None;
                true
            }
            _ => false,
        }))
    }

    async fn get_migration_state(&self) -> Result<Option<MigrationState>> {
        Ok(self.with_others(|others| others.migration.clone()))
    }

    async fn put_migration_state(
        &self,
        state: &MigrationState,
        expected_version: Option<&str>,
    ) -> Result<bool> {
        Ok(self.with_others(|others| {
            let current = others.migration.as_ref().map(|m| m.client_version.as_str());
            if current != expected_version {
                return false;
            }
            others.migration = Some(state.clone());
            true
        }))
    }
}
