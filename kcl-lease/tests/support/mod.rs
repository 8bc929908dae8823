//! What the coordinator tests on the in-memory store share: a table of leases and a running
//! worker.

#![allow(dead_code)] // each test binary uses its own part

use std::sync::Arc;

use kcl_lease::{
    InMemoryLeaseStore, Lease, LeaseConfig, LeaseCoordinator, LeaseEvent, LeaseStore,
    StoredCheckpoint,
};
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

/// An in-memory table with `leases` unowned leases `shardId-000000000000`, ... at
/// TRIM_HORIZON.
pub async fn store_with(leases: usize) -> Arc<InMemoryLeaseStore> {
    let store = Arc::new(InMemoryLeaseStore::new());
    for i in 0..leases {
        let lease = Lease::new(
            format!("shardId-{i:012}"),
            StoredCheckpoint::new("TRIM_HORIZON"),
        );
        assert!(store.create_lease_if_absent(&lease).await.unwrap());
    }
    store
}

/// A worker's coordinator running its loop.
pub struct Running {
    pub coordinator: Arc<LeaseCoordinator>,
    pub events: Receiver<LeaseEvent>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Starts the coordinator of worker `id` on `store` with `config`.
pub fn start(store: &Arc<InMemoryLeaseStore>, id: &str, config: LeaseConfig) -> Running {
    start_on(Arc::clone(store) as Arc<dyn LeaseStore>, id, config)
}

/// [`start`] on any store (a layer over the in-memory table, say).
pub fn start_on(store: Arc<dyn LeaseStore>, id: &str, config: LeaseConfig) -> Running {
    let (coordinator, events) = LeaseCoordinator::new(store, id, config);
    let stop = CancellationToken::new();
    let task = tokio::spawn(Arc::clone(&coordinator).run(stop.clone()));
    Running {
        coordinator,
        events,
        stop,
        task,
    }
}

impl Running {
    /// Stops the loop and releases the leases, as a graceful shutdown does.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
        self.coordinator.release_all().await;
    }

    /// The events sent since the last look.
    pub fn drain(&mut self) -> Vec<LeaseEvent> {
        let mut events = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            events.push(event);
        }
        events
    }
}
