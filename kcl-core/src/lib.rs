//! # kcl-core
//!
//! The worker of a Kinesis Client Library application: it shares a stream's shards with the
//! other workers through leases, runs one [`RecordProcessor`] per held shard, checkpoints, and
//! follows splits and merges (parents before children).
//!
//! # Layout
//! - `scheduler`: [`Scheduler`], [`SchedulerBuilder`], [`SchedulerHandle`].
//! - `processor`: the [`RecordProcessor`] contract and its inputs.
//! - `lifecycle`: the per-shard consumer state machine.
//! - `retrieval`: polling (GetRecords) or enhanced fan-out (SubscribeToShard) retrieval into a
//!   bounded prefetch queue.
//! - `shard_sync`: leases for new shards.
//! - `status`: [`WorkerStatus`], what the worker is doing now (for health checks).
//! - `kpl`: KPL de-aggregation.
//! - `record`: [`KinesisClientRecord`].
//! - `config`: settings per area.
//! - `multilang`: the MultiLangDaemon protocol, for processors in other languages.
//! - `prometheus` (feature `prometheus`): a metrics endpoint to scrape.
//! - `admin` (feature `admin`): `/healthz`, `/ready`, `/leases` and `/metrics` for probes.
#![warn(missing_docs)]

#[cfg(feature = "admin")]
pub mod admin;
mod config;
mod error;
pub mod kpl;
mod lifecycle;
pub mod multilang;
mod processor;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod record;
mod retrieval;
mod scheduler;
mod shard_sync;
mod status;

pub use config::{
    FailedBatchAction, FailedBatchPolicy, FanOutConfig, FormerStreamsPolicy, InitialPosition,
    LifecycleConfig, PollingConfig, RetrievalMode,
};
pub use error::{Error, Result};
pub use kcl_checkpoint::{
    CheckpointError, Checkpointer, ExtendedSequenceNumber, PreparedCheckpoint, SequenceNumber,
};
pub use kcl_lease::{
    AssignmentStrategy, CoordinationConfig, CoordinationMode, DynamoDbLeaseStore,
    InMemoryLeaseStore, LeaseConfig, LeaseStore,
};
pub use processor::{
    ChildShard, DeadLetterHandler, DeadLetterInput, InitializationInput, LeaseLostInput,
    ProcessRecordsInput, ProcessorError, RecordProcessor, RecordProcessorFactory, ShardEndedInput,
    ShutdownRequestedInput,
};
pub use record::KinesisClientRecord;
pub use scheduler::{shutdown_on_signal, Scheduler, SchedulerBuilder, SchedulerHandle};
pub use status::{ShardStatus, WorkerStatus};
