//! # kcl-lease
//!
//! Who processes which shard: leases in a table shared by every worker of an application, in
//! the Java KCL's schema, renewed and taken with conditional writes fenced by a counter.
//!
//! # Layout
//! - `lease`: the [`Lease`] model and its DynamoDB item form; multi-stream lease keys.
//! - `store`: the [`LeaseStore`] trait and [`InMemoryLeaseStore`].
//! - `dynamodb`: [`DynamoDbLeaseStore`] on `aws-sdk-dynamodb`.
//! - `coordinator`: [`LeaseCoordinator`]: renewer, taker and balancer, expiry judged on the
//!   local monotonic clock, lease gained/lost events, graceful release.
//! - `backoff`: the retry policy of every table request.
//! - `error`: [`LeaseError`].
#![warn(missing_docs)]

mod backoff;
mod coordinator;
mod dynamodb;
mod error;
mod lease;
mod store;

pub use backoff::{retry, BackoffConfig};
pub use coordinator::{LeaseConfig, LeaseCoordinator, LeaseEvent, LeaseFilter};
pub use dynamodb::{BillingModeConfig, DynamoDbLeaseStore, TableConfig, OWNER_INDEX};
pub use error::{LeaseError, Result};
pub use lease::{Lease, MultiStreamKey, StoredCheckpoint};
pub use store::{CheckpointUpdate, InMemoryLeaseStore, LeaseStore};
