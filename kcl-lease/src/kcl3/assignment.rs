//! The leader's plan for one assignment round.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;

use crate::coordinator::LeaseConfig;
use crate::lease::Lease;

/// A worker as the leader sees it when planning.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerLoad {
    /// The worker id.
    pub worker_id: String,
    /// Moving average of each reported metric (`C` → CPU percent); empty when the worker
    /// reports none (it is then balanced by lease throughput).
    pub utilisation: BTreeMap<String, f64>,
    /// Highest acceptable utilisation per metric (`opr[0]`).
    pub max_utilisation: BTreeMap<String, f64>,
    /// Whether it may be given leases (a valid metrics item, no failing metric, not draining).
    pub accepts_leases: bool,
    /// Whether every lease it holds must move off (an operator drains it).
    pub draining: bool,
}

/// One change the leader makes to the table.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseMove {
    /// Give the lease to `to` outright (it was unowned, expired, or its owner is dead).
    Assign {
        /// The lease as the leader read it (its owners are the write's condition).
        lease: Lease,
        /// The new owner.
        to: String,
    },
    /// Move a lease a live worker is processing: a graceful handoff to `to`.
    Handoff {
        /// The lease as the leader read it.
        lease: Lease,
        /// The new owner.
        to: String,
    },
}

/// What one round plans from.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The application's leases, as scanned.
    pub leases: &'a [Lease],
    /// The active workers (dead and stale ones are left out).
    pub workers: &'a [WorkerLoad],
    /// Keys of leases that need an owner: unowned, expired, or owned by a worker that is not
    /// active, and handoffs that stalled.
    pub orphaned: &'a BTreeSet<String>,
    /// Whether this round also rebalances live leases.
    pub rebalance: bool,
}

/// The moves of one round: orphaned leases to the workers with the most room, then, when
/// `input.rebalance`, live leases off overloaded and draining workers.
pub fn plan_assignment(
    input: &PlanInput<'_>,
    lease_config: &LeaseConfig,
    rng: &mut StdRng,
) -> Vec<LeaseMove> {
    let _ = (input, lease_config, rng);
    unimplemented!("assignment planner")
}
