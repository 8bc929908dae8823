//! Where leases live: the [`LeaseStore`] trait and its in-memory implementation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;

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

    /// Bumps the counter if counter and owner are still as in `lease`.
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
    /// resets the owner-switch count.
    async fn update_checkpoint(&self, lease: &Lease, update: &CheckpointUpdate) -> Result<bool>;

    /// Adds `child_shard_ids` to the lease's children. `Ok(false)` if the lease is gone.
    async fn update_child_shards(
        &self,
        lease_key: &str,
        child_shard_ids: &BTreeSet<String>,
    ) -> Result<bool>;

    /// Deletes the lease (no condition).
    async fn delete_lease(&self, lease_key: &str) -> Result<()>;
}

/// A lease table in memory, with the same conditional semantics as the DynamoDB one. For unit
/// tests and simulations; it is not shared between processes.
#[derive(Debug, Default)]
pub struct InMemoryLeaseStore {
    leases: Mutex<BTreeMap<String, Lease>>,
}

impl InMemoryLeaseStore {
    /// An empty store.
    pub fn new() -> InMemoryLeaseStore {
        InMemoryLeaseStore::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Lease>) -> T) -> T {
        f(&mut self.leases.lock().unwrap_or_else(|p| p.into_inner()))
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
}
