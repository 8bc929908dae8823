//! KCL 3 fleet coordination: a leader, elected through a lock item, assigns leases by load
//! and moves them with graceful handoffs; workers report metrics (their heartbeat) and find
//! the leases given to them through the owner index.
//!
//! - `config`: [`CoordinationConfig`], [`CoordinationMode`], [`AssignmentStrategy`].
//! - `assignment`: the leader's plan for one round, a pure function of the table and the
//!   workers' loads ([`plan_assignment`]).
//! - `leader`: [`LeaderElector`], the election through the lock item (acquire, heartbeat,
//!   takeover of a silent leader's lock, release).
//! - `metrics`: [`WorkerMetricsSampler`] (CPU utilisation for the metrics item) and
//!   [`ThroughputTracker`] (each lease's `throughputKBps`).
//! - `manager`: [`LeaseAssignmentManager`], the leader's loop: judges liveness from
//!   heartbeats, runs assignment rounds and carries the plans out.
//! - `migration`: [`ClientVersion`], the 2.x → 3.x migration states and what each runs, the
//!   deterministic leader of a 2.x fleet and the upgrade check.

mod assignment;
mod config;
mod leader;
mod manager;
mod metrics;
mod migration;

pub use assignment::{plan_assignment, LeaseMove, PlanInput, WorkerLoad};
pub use config::{AssignmentStrategy, CoordinationConfig, CoordinationMode};
pub use leader::{LeaderElector, LeaderRole};
pub use manager::{LeaseAssignmentManager, RoundSummary};
pub use metrics::{ThroughputTracker, WorkerMetricsSampler};
pub use migration::{deterministic_leader, next_migration_state, upgrade_blockers, ClientVersion};
