//! Settings, one struct per area, each with documented defaults.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::processor::DeadLetterHandler;

/// Where a shard's processing starts when its lease is created. A stored checkpoint always
/// wins over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InitialPosition {
    /// Records written after the lease is created.
    Latest,
    /// The oldest retained record.
    TrimHorizon,
    /// The first record at or after this time.
    AtTimestamp(SystemTime),
}

/// GetRecords polling settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PollingConfig {
    /// Most records per GetRecords call. Default 10,000.
    pub max_records: i32,
    /// Pause after a GetRecords call that found nothing new. Default 1.5 s.
    pub idle_time_between_reads: Duration,
    /// Most batches fetched ahead of the processor. Default 3.
    pub max_prefetch_batches: usize,
    /// Most bytes fetched ahead of the processor. Default 8 MiB.
    pub max_prefetch_bytes: usize,
    /// Most records fetched ahead of the processor. Default 30,000.
    pub max_prefetch_records: usize,
}

impl Default for PollingConfig {
    fn default() -> Self {
        PollingConfig {
            max_records: 10_000,
            idle_time_between_reads: Duration::from_millis(1500),
            max_prefetch_batches: 3,
            max_prefetch_bytes: 8 * 1024 * 1024,
            max_prefetch_records: 30_000,
        }
    }
}

/// Enhanced fan-out settings: records pushed over one SubscribeToShard event stream per
/// shard, with a dedicated 2 MiB/s per shard for this application.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FanOutConfig {
    /// The registered stream consumer to use (created if missing). Default: the application
    /// name.
    pub consumer_name: Option<String>,
    /// The ARN of an already registered consumer; when set, nothing is registered.
    pub consumer_arn: Option<String>,
    /// A subscription that delivers no event for this long is considered dead and replaced.
    /// Kinesis sends an event at least every few seconds, even on an idle shard. Default 30 s.
    pub silent_subscription_timeout: Duration,
    /// Most events received ahead of the processor before the stream stops being read (which
    /// slows the sender through HTTP flow control). Default 8.
    pub max_prefetch_batches: usize,
    /// Most bytes received ahead of the processor. Default 8 MiB.
    pub max_prefetch_bytes: usize,
    /// Most records received ahead of the processor. Default 30,000.
    pub max_prefetch_records: usize,
}

impl Default for FanOutConfig {
    fn default() -> Self {
        FanOutConfig {
            consumer_name: None,
            consumer_arn: None,
            silent_subscription_timeout: Duration::from_secs(30),
            max_prefetch_batches: 8,
            max_prefetch_bytes: 8 * 1024 * 1024,
            max_prefetch_records: 30_000,
        }
    }
}

impl FanOutConfig {
    /// Settings that use the consumer named `name`.
    pub fn with_consumer_name(name: impl Into<String>) -> FanOutConfig {
        FanOutConfig {
            consumer_name: Some(name.into()),
            ..FanOutConfig::default()
        }
    }
}

/// How a worker reads its shards.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RetrievalMode {
    /// GetRecords polling: shares each shard's 2 MiB/s read limit (and its five reads a
    /// second) with every other application reading the stream.
    Polling(PollingConfig),
    /// Enhanced fan-out: records pushed over SubscribeToShard, with this application's own
    /// read throughput and lower latency.
    FanOut(FanOutConfig),
}

impl Default for RetrievalMode {
    fn default() -> Self {
        RetrievalMode::Polling(PollingConfig::default())
    }
}

/// Shard consumer lifecycle settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LifecycleConfig {
    /// How often a shard waiting for its parents checks them. Default 1 s.
    pub parent_poll_interval: Duration,
    /// How long a graceful shutdown waits for processors to finish. Default 30 s.
    pub shutdown_timeout: Duration,
    /// First delay before restarting a shard whose processor failed; doubles up to 30 s.
    /// Default 200 ms.
    pub restart_backoff: Duration,
    /// How often the fleet's leader lists shards to find new ones (the KCL 3 leader, or under
    /// the 2.x protocol the deterministic leader of the lease owners, as Java's; any worker
    /// while no lease has an owner). Every worker syncs once at start. Default 60 s.
    pub shard_sync_interval: Duration,
    /// What happens to a batch of records the processor keeps failing on. Default
    /// [`FailedBatchPolicy::default`]: retry for ever ([`FailedBatchAction::Stall`]).
    pub failed_batch: FailedBatchPolicy,
    /// A processor call (`initialize`, `process_records`, `shard_ended`, ...) still running
    /// after this long is reported: logged with the shard id and counted in
    /// `kcl_processor_calls_hung_total`, again each time this much more has passed. `None`
    /// turns the check off. Default 5 minutes.
    pub processor_call_timeout: Option<Duration>,
    /// Whether a call found hung is abandoned and its shard restarted from the last checkpoint,
    /// with a fresh processor; the lease is kept. Checkpoint writes the call started still
    /// complete. Default `false` (report only).
    pub restart_hung_processors: bool,
    /// When set, `process_records` is also called with an empty batch after this long without
    /// records, so that processors can flush time-based work on a quiet shard (the Java KCL's
    /// `callProcessRecordsEvenForEmptyRecordList`, on a timer). Default `None`.
    pub empty_batch_interval: Option<Duration>,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            parent_poll_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(30),
            restart_backoff: Duration::from_millis(200),
            shard_sync_interval: Duration::from_secs(60),
            failed_batch: FailedBatchPolicy::default(),
            processor_call_timeout: Some(Duration::from_secs(300)),
            restart_hung_processors: false,
            empty_batch_interval: None,
        }
    }
}

/// What to do once a batch of records has failed `max_attempts` times in a row (the processor
/// returned an error or panicked on it). Between attempts the shard restarts from its last
/// checkpoint with a fresh processor, after [`LifecycleConfig::restart_backoff`], doubling up
/// to 30 s.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FailedBatchPolicy {
    /// Attempts of one batch before `action` is taken. Default 3.
    pub max_attempts: u32,
    /// Default [`FailedBatchAction::Stall`].
    pub action: FailedBatchAction,
}

impl Default for FailedBatchPolicy {
    fn default() -> Self {
        FailedBatchPolicy {
            max_attempts: 3,
            action: FailedBatchAction::Stall,
        }
    }
}

impl FailedBatchPolicy {
    /// `action` after `max_attempts` attempts.
    pub fn new(max_attempts: u32, action: FailedBatchAction) -> FailedBatchPolicy {
        FailedBatchPolicy {
            max_attempts: max_attempts.max(1),
            action,
        }
    }
}

/// What happens to a batch that failed every attempt.
#[derive(Clone)]
#[non_exhaustive]
pub enum FailedBatchAction {
    /// Keep retrying: the shard makes no progress until the processor succeeds. Nothing is
    /// skipped. The default.
    Stall,
    /// Skip the batch, as the Java KCL does: it is logged (shard, sequence range, count, the
    /// error) and counted in `kcl_records_skipped_total`, and the shard is checkpointed past it.
    SkipBatch,
    /// Hand the batch and the error to the application's handler; once it returns `Ok`, the
    /// shard is checkpointed past the batch and processing goes on. A handler that fails is
    /// tried again, like a failed batch, so records are never dropped.
    DeadLetter(Arc<dyn DeadLetterHandler>),
}

impl std::fmt::Debug for FailedBatchAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailedBatchAction::Stall => f.write_str("Stall"),
            FailedBatchAction::SkipBatch => f.write_str("SkipBatch"),
            FailedBatchAction::DeadLetter(_) => f.write_str("DeadLetter(..)"),
        }
    }
}

/// What a multi-stream application does with the leases of streams it no longer reads: streams
/// removed from its configuration, and configured streams that were deleted. Such leases are
/// never taken (reading them from another stream would be wrong); this decides whether they
/// stay in the table. The Java KCL's `FormerStreamsLeasesDeletionStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FormerStreamsPolicy {
    /// Leave them in the table, untouched (Java's `NoLeaseDeletionStrategy`). The default.
    #[default]
    Keep,
    /// Delete them once this worker has seen them unread for this long, which leaves time for
    /// a rolling configuration change to reach every worker (Java's
    /// `AutoDetectionAndDeferredDeletionStrategy`).
    DeleteAfter(Duration),
}
