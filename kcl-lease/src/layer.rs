//! Lease stores that wrap another: [`LeaseStoreLayer`].

use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::entities::{LeaderLock, MigrationState, TableSnapshot, WorkerMetrics};
use crate::error::Result;
use crate::lease::Lease;
use crate::store::{CheckpointUpdate, LeaseStore};

/// A lease store that wraps another to change some of its calls: to meter them, log them,
/// or inject faults. Implement [`inner`](LeaseStoreLayer::inner) and the calls to change (or
/// [`gate`](LeaseStoreLayer::gate), which every call passes); every other call goes to the
/// inner store as it is. Every layer is a [`LeaseStore`].
///
/// Both traits name the same calls: use a layer as a `dyn LeaseStore`, as the coordinator
/// does, or call through `LeaseStore::`.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use kcl_lease::{InMemoryLeaseStore, Lease, LeaseStore, LeaseStoreLayer};
///
/// /// Counts the leases read one by one.
/// #[derive(Debug)]
/// struct CountingReads {
///     inner: InMemoryLeaseStore,
///     reads: Arc<AtomicUsize>,
/// }
///
/// #[async_trait::async_trait]
/// impl LeaseStoreLayer for CountingReads {
///     fn inner(&self) -> &dyn LeaseStore {
///         &self.inner
///     }
///
///     async fn get_lease(&self, lease_key: &str) -> kcl_lease::Result<Option<Lease>> {
///         self.reads.fetch_add(1, Ordering::Relaxed);
///         self.inner.get_lease(lease_key).await
///     }
/// }
///
/// # futures::executor::block_on(async {
/// let reads = Arc::new(AtomicUsize::new(0));
/// let inner = InMemoryLeaseStore::new();
/// let store: Arc<dyn LeaseStore> = Arc::new(CountingReads { inner, reads: Arc::clone(&reads) });
/// assert!(store.get_lease("shardId-000000000000").await.unwrap().is_none());
/// assert!(store.list_leases().await.unwrap().is_empty());
/// assert_eq!(reads.load(Ordering::Relaxed), 1);
/// # });
/// ```
#[async_trait]
pub trait LeaseStoreLayer: Send + Sync + std::fmt::Debug {
    /// The store this one wraps.
    fn inner(&self) -> &dyn LeaseStore;

    /// Runs before every call this layer does not override, with the call's name: a layer
    /// that injects faults (a failure, a hang, a delay) needs only this. By default it lets
    /// every call through.
    ///
    /// # Errors
    /// The error the call is to fail with.
    async fn gate(&self, _operation: &'static str) -> Result<()> {
        Ok(())
    }

    /// [`LeaseStore::initialize`]; by default gated, then the inner store's.
    async fn initialize(&self) -> Result<()> {
        self.gate("initialize").await?;
        self.inner().initialize().await
    }

    /// [`LeaseStore::create_lease_if_absent`]; by default gated, then the inner store's.
    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool> {
        self.gate("create_lease_if_absent").await?;
        self.inner().create_lease_if_absent(lease).await
    }

    /// [`LeaseStore::list_leases`]; by default gated, then the inner store's.
    async fn list_leases(&self) -> Result<Vec<Lease>> {
        self.gate("list_leases").await?;
        self.inner().list_leases().await
    }

    /// [`LeaseStore::get_lease`]; by default gated, then the inner store's.
    async fn get_lease(&self, lease_key: &str) -> Result<Option<Lease>> {
        self.gate("get_lease").await?;
        self.inner().get_lease(lease_key).await
    }

    /// [`LeaseStore::renew_lease`]; by default gated, then the inner store's.
    async fn renew_lease(&self, lease: &Lease) -> Result<bool> {
        self.gate("renew_lease").await?;
        self.inner().renew_lease(lease).await
    }

    /// [`LeaseStore::take_lease`]; by default gated, then the inner store's.
    async fn take_lease(&self, lease: &Lease, new_owner: &str) -> Result<bool> {
        self.gate("take_lease").await?;
        self.inner().take_lease(lease, new_owner).await
    }

    /// [`LeaseStore::evict_lease`]; by default gated, then the inner store's.
    async fn evict_lease(&self, lease: &Lease) -> Result<bool> {
        self.gate("evict_lease").await?;
        self.inner().evict_lease(lease).await
    }

    /// [`LeaseStore::start_handoff`]; by default gated, then the inner store's.
    async fn start_handoff(&self, lease: &Lease, new_owner: &str) -> Result<bool> {
        self.gate("start_handoff").await?;
        self.inner().start_handoff(lease, new_owner).await
    }

    /// [`LeaseStore::complete_handoff`]; by default gated, then the inner store's.
    async fn complete_handoff(&self, lease: &Lease) -> Result<bool> {
        self.gate("complete_handoff").await?;
        self.inner().complete_handoff(lease).await
    }

    /// [`LeaseStore::update_checkpoint`]; by default gated, then the inner store's.
    async fn update_checkpoint(&self, lease: &Lease, update: &CheckpointUpdate) -> Result<bool> {
        self.gate("update_checkpoint").await?;
        self.inner().update_checkpoint(lease, update).await
    }

    /// [`LeaseStore::update_child_shards`]; by default gated, then the inner store's.
    async fn update_child_shards(
        &self,
        lease_key: &str,
        child_shard_ids: &BTreeSet<String>,
    ) -> Result<bool> {
        self.gate("update_child_shards").await?;
        self.inner()
            .update_child_shards(lease_key, child_shard_ids)
            .await
    }

    /// [`LeaseStore::delete_lease`]; by default gated, then the inner store's.
    async fn delete_lease(&self, lease_key: &str) -> Result<()> {
        self.gate("delete_lease").await?;
        self.inner().delete_lease(lease_key).await
    }

    /// [`LeaseStore::scan_table`]; by default gated, then the inner store's.
    async fn scan_table(&self) -> Result<TableSnapshot> {
        self.gate("scan_table").await?;
        self.inner().scan_table().await
    }

    /// [`LeaseStore::lease_keys_of_owner`]; by default gated, then the inner store's.
    async fn lease_keys_of_owner(&self, owner: &str) -> Result<Vec<String>> {
        self.gate("lease_keys_of_owner").await?;
        self.inner().lease_keys_of_owner(owner).await
    }

    /// [`LeaseStore::owner_index_ready`]; by default gated, then the inner store's.
    async fn owner_index_ready(&self) -> Result<bool> {
        self.gate("owner_index_ready").await?;
        self.inner().owner_index_ready().await
    }

    /// [`LeaseStore::assign_lease`]; by default gated, then the inner store's.
    async fn assign_lease(&self, lease: &Lease, new_owner: &str) -> Result<bool> {
        self.gate("assign_lease").await?;
        self.inner().assign_lease(lease, new_owner).await
    }

    /// [`LeaseStore::unassign_lease`]; by default gated, then the inner store's.
    async fn unassign_lease(&self, lease: &Lease) -> Result<bool> {
        self.gate("unassign_lease").await?;
        self.inner().unassign_lease(lease).await
    }

    /// [`LeaseStore::report_worker_metrics`]; by default gated, then the inner store's.
    async fn report_worker_metrics(&self, metrics: &WorkerMetrics) -> Result<WorkerMetrics> {
        self.gate("report_worker_metrics").await?;
        self.inner().report_worker_metrics(metrics).await
    }

    /// [`LeaseStore::get_worker_metrics`]; by default gated, then the inner store's.
    async fn get_worker_metrics(&self, worker_ids: &[String]) -> Result<Vec<WorkerMetrics>> {
        self.gate("get_worker_metrics").await?;
        self.inner().get_worker_metrics(worker_ids).await
    }

    /// [`LeaseStore::notify_assignment`]; by default gated, then the inner store's.
    async fn notify_assignment(&self, worker_id: &str) -> Result<()> {
        self.gate("notify_assignment").await?;
        self.inner().notify_assignment(worker_id).await
    }

    /// [`LeaseStore::set_worker_draining`]; by default gated, then the inner store's.
    async fn set_worker_draining(&self, worker_id: &str, draining: bool) -> Result<bool> {
        self.gate("set_worker_draining").await?;
        self.inner().set_worker_draining(worker_id, draining).await
    }

    /// [`LeaseStore::delete_worker_metrics`]; by default gated, then the inner store's.
    async fn delete_worker_metrics(&self, worker_id: &str, last_update_secs: u64) -> Result<bool> {
        self.gate("delete_worker_metrics").await?;
        self.inner()
            .delete_worker_metrics(worker_id, last_update_secs)
            .await
    }

    /// [`LeaseStore::get_leader_lock`]; by default gated, then the inner store's.
    async fn get_leader_lock(&self) -> Result<Option<LeaderLock>> {
        self.gate("get_leader_lock").await?;
        self.inner().get_leader_lock().await
    }

    /// [`LeaseStore::acquire_leader_lock`]; by default gated, then the inner store's.
    async fn acquire_leader_lock(
        &self,
        lock: &LeaderLock,
        replacing: Option<&str>,
    ) -> Result<bool> {
        self.gate("acquire_leader_lock").await?;
        self.inner().acquire_leader_lock(lock, replacing).await
    }

    /// [`LeaseStore::renew_leader_lock`]; by default gated, then the inner store's.
    async fn renew_leader_lock(&self, lock: &LeaderLock, previous_version: &str) -> Result<bool> {
        self.gate("renew_leader_lock").await?;
        self.inner().renew_leader_lock(lock, previous_version).await
    }

    /// [`LeaseStore::release_leader_lock`]; by default gated, then the inner store's.
    async fn release_leader_lock(&self, lock: &LeaderLock) -> Result<bool> {
        self.gate("release_leader_lock").await?;
        self.inner().release_leader_lock(lock).await
    }

    /// [`LeaseStore::get_migration_state`]; by default gated, then the inner store's.
    async fn get_migration_state(&self) -> Result<Option<MigrationState>> {
        self.gate("get_migration_state").await?;
        self.inner().get_migration_state().await
    }

    /// [`LeaseStore::put_migration_state`]; by default gated, then the inner store's.
    async fn put_migration_state(
        &self,
        state: &MigrationState,
        expected_version: Option<&str>,
    ) -> Result<bool> {
        self.gate("put_migration_state").await?;
        self.inner()
            .put_migration_state(state, expected_version)
            .await
    }
}

#[async_trait]
impl<T: LeaseStoreLayer> LeaseStore for T {
    async fn initialize(&self) -> Result<()> {
        LeaseStoreLayer::initialize(self).await
    }

    async fn create_lease_if_absent(&self, lease: &Lease) -> Result<bool> {
        LeaseStoreLayer::create_lease_if_absent(self, lease).await
    }

    async fn list_leases(&self) -> Result<Vec<Lease>> {
        LeaseStoreLayer::list_leases(self).await
    }

    async fn get_lease(&self, lease_key: &str) -> Result<Option<Lease>> {
        LeaseStoreLayer::get_lease(self, lease_key).await
    }

    async fn renew_lease(&self, lease: &Lease) -> Result<bool> {
        LeaseStoreLayer::renew_lease(self, lease).await
    }

    async fn take_lease(&self, lease: &Lease, new_owner: &str) -> Result<bool> {
        LeaseStoreLayer::take_lease(self, lease, new_owner).await
    }

    async fn evict_lease(&self, lease: &Lease) -> Result<bool> {
        LeaseStoreLayer::evict_lease(self, lease).await
    }

    async fn start_handoff(&self, lease: &Lease, new_owner: &str) -> Result<bool> {
        LeaseStoreLayer::start_handoff(self, lease, new_owner).await
    }

    async fn complete_handoff(&self, lease: &Lease) -> Result<bool> {
        LeaseStoreLayer::complete_handoff(self, lease).await
    }

    async fn update_checkpoint(&self, lease: &Lease, update: &CheckpointUpdate) -> Result<bool> {
        LeaseStoreLayer::update_checkpoint(self, lease, update).await
    }

    async fn update_child_shards(
        &self,
        lease_key: &str,
        child_shard_ids: &BTreeSet<String>,
    ) -> Result<bool> {
        LeaseStoreLayer::update_child_shards(self, lease_key, child_shard_ids).await
    }

    async fn delete_lease(&self, lease_key: &str) -> Result<()> {
        LeaseStoreLayer::delete_lease(self, lease_key).await
    }

    async fn scan_table(&self) -> Result<TableSnapshot> {
        LeaseStoreLayer::scan_table(self).await
    }

    async fn lease_keys_of_owner(&self, owner: &str) -> Result<Vec<String>> {
        LeaseStoreLayer::lease_keys_of_owner(self, owner).await
    }

    async fn owner_index_ready(&self) -> Result<bool> {
        LeaseStoreLayer::owner_index_ready(self).await
    }

    async fn assign_lease(&self, lease: &Lease, new_owner: &str) -> Result<bool> {
        LeaseStoreLayer::assign_lease(self, lease, new_owner).await
    }

    async fn unassign_lease(&self, lease: &Lease) -> Result<bool> {
        LeaseStoreLayer::unassign_lease(self, lease).await
    }

    async fn report_worker_metrics(&self, metrics: &WorkerMetrics) -> Result<WorkerMetrics> {
        LeaseStoreLayer::report_worker_metrics(self, metrics).await
    }

    async fn get_worker_metrics(&self, worker_ids: &[String]) -> Result<Vec<WorkerMetrics>> {
        LeaseStoreLayer::get_worker_metrics(self, worker_ids).await
    }

    async fn notify_assignment(&self, worker_id: &str) -> Result<()> {
        LeaseStoreLayer::notify_assignment(self, worker_id).await
    }

    async fn set_worker_draining(&self, worker_id: &str, draining: bool) -> Result<bool> {
        LeaseStoreLayer::set_worker_draining(self, worker_id, draining).await
    }

    async fn delete_worker_metrics(&self, worker_id: &str, last_update_secs: u64) -> Result<bool> {
        LeaseStoreLayer::delete_worker_metrics(self, worker_id, last_update_secs).await
    }

    async fn get_leader_lock(&self) -> Result<Option<LeaderLock>> {
        LeaseStoreLayer::get_leader_lock(self).await
    }

    async fn acquire_leader_lock(
        &self,
        lock: &LeaderLock,
        replacing: Option<&str>,
    ) -> Result<bool> {
        LeaseStoreLayer::acquire_leader_lock(self, lock, replacing).await
    }

    async fn renew_leader_lock(&self, lock: &LeaderLock, previous_version: &str) -> Result<bool> {
        LeaseStoreLayer::renew_leader_lock(self, lock, previous_version).await
    }

    async fn release_leader_lock(&self, lock: &LeaderLock) -> Result<bool> {
        LeaseStoreLayer::release_leader_lock(self, lock).await
    }

    async fn get_migration_state(&self) -> Result<Option<MigrationState>> {
        LeaseStoreLayer::get_migration_state(self).await
    }

    async fn put_migration_state(
        &self,
        state: &MigrationState,
        expected_version: Option<&str>,
    ) -> Result<bool> {
        LeaseStoreLayer::put_migration_state(self, state, expected_version).await
    }
}
