//! # kcl-lease
//!
//! Who processes which shard: leases in a table shared by every worker of an application, in
//! the Java KCL's schema, renewed and taken with conditional writes fenced by a counter.
//!
//! # Layout
//! - `lease`: the [`Lease`] model and its DynamoDB item form; multi-stream lease keys.
//! - `store`: the [`LeaseStore`] trait and [`InMemoryLeaseStore`].
//! - `entities`: the table's other items in the Java KCL 3.5 layout: [`WorkerMetrics`],
//!   [`LeaderLock`], [`MigrationState`], and [`TableSnapshot`] (everything one scan finds).
//! - `dynamodb`: [`DynamoDbLeaseStore`] on `aws-sdk-dynamodb`.
//! - `coordinator`: [`LeaseCoordinator`]: renewer, taker and balancer, expiry judged on the
//!   local monotonic clock, lease gained/lost events, graceful release.
//! - `kcl3`: KCL 3 coordination: [`CoordinationConfig`], the leader's
//!   [`LeaseAssignmentManager`] and its planner.
//! - `backoff`: the retry policy of every table request.
//! - `error`: [`LeaseError`].
#![warn(missing_docs)]

mod backoff;
mod coordinator;
mod dynamodb;
mod entities;
mod error;
mod kcl3;
mod layer;
mod lease;
mod store;

pub use backoff::{retry, BackoffConfig};
pub use coordinator::{LeaseConfig, LeaseCoordinator, LeaseEvent, LeaseFilter};
pub use dynamodb::{BillingModeConfig, DynamoDbLeaseStore, TableConfig, OWNER_INDEX};
pub use entities::{
    LeaderLock, MigrationHistoryEntry, MigrationState, TableSnapshot, WorkerMetrics,
    ENTITY_CLIENT_VERSION_MIGRATION, ENTITY_LEADER, ENTITY_LEASE, ENTITY_WORKER_METRICS,
    LEADER_KEY, METRIC_CPU, MIGRATION_KEY, PERSISTED_METRIC_VALUES,
};
pub use error::{LeaseError, Result};
pub use kcl3::{
    deterministic_leader, next_migration_state, plan_assignment, upgrade_blockers,
    AssignmentStrategy, ClientVersion, CoordinationConfig, CoordinationMode, LeaderElector,
    LeaderRole, LeaseAssignmentManager, LeaseMove, PlanInput, RoundSummary, ThroughputTracker,
    WorkerLoad, WorkerMetricsSampler,
};
pub use layer::LeaseStoreLayer;
pub use lease::{Lease, MultiStreamKey, StoredCheckpoint};
pub use store::{heartbeat_base, CheckpointUpdate, InMemoryLeaseStore, LeaseStore};
