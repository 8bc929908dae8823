//! The leader's loop.

use std::sync::Arc;

use crate::coordinator::{LeaseConfig, LeaseFilter};
use crate::error::Result;
use crate::store::LeaseStore;

/// The leader's side of KCL 3 coordination: judges which workers are alive from their
/// heartbeats, runs assignment rounds and carries the plans out.
pub struct LeaseAssignmentManager {
    store: Arc<dyn LeaseStore>,
    worker_id: String,
    config: LeaseConfig,
    filter: LeaseFilter,
}

impl std::fmt::Debug for LeaseAssignmentManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseAssignmentManager")
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

impl LeaseAssignmentManager {
    /// A manager for the worker `worker_id`, assigning the leases `filter` accepts.
    pub fn new(
        store: Arc<dyn LeaseStore>,
        worker_id: impl Into<String>,
        config: LeaseConfig,
        filter: LeaseFilter,
    ) -> LeaseAssignmentManager {
        LeaseAssignmentManager {
            store,
            worker_id: worker_id.into(),
            config,
            filter,
        }
    }

    /// One step while this worker leads, called every `liveness_check_interval`.
    ///
    /// # Errors
    /// Store errors (the caller logs them and calls again at the next step).
    pub async fn tick_as_leader(&mut self) -> Result<()> {
        let _ = (&self.store, &self.filter, &self.config);
        unimplemented!("leader step")
    }

    /// One step while this worker is the leader's successor: keeps watching heartbeats so that
    /// after a takeover it knows at once which workers are dead.
    ///
    /// # Errors
    /// Store errors.
    pub async fn tick_as_successor(&mut self) -> Result<()> {
        unimplemented!("successor step")
    }

    /// The workers judged alive at the last step, for the leader to choose a successor.
    pub fn live_workers(&self) -> Vec<String> {
        unimplemented!("live workers")
    }

    /// Forgets what was observed: this worker stopped leading.
    pub fn reset(&mut self) {
        unimplemented!("reset")
    }
}
