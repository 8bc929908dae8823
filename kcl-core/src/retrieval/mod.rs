//! Getting records from Kinesis into a bounded prefetch queue.
//!
//! - `polling`: GetRecords with prefetch (shared throughput).
//! - `fanout`: SubscribeToShard event streams of a registered consumer (enhanced fan-out).
//!
//! Both run one task per shard that feeds a [`Fetcher`]; the shard consumer cannot tell them
//! apart, which is why a fleet can switch modes without touching its lease table.

pub(crate) mod fanout;
pub(crate) mod polling;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use kcl_checkpoint::{ExtendedSequenceNumber, SequenceNumber};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::InitialPosition;
use crate::processor::ChildShard;
use crate::record::KinesisClientRecord;

/// Records fetched by one call, with what the call said about the shard.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) records: Vec<KinesisClientRecord>,
    pub(crate) millis_behind_latest: Option<i64>,
    /// `Some` when this batch ends a closed shard.
    pub(crate) child_shards: Option<Vec<ChildShard>>,
}

impl Batch {
    /// The batch that tells the consumer a shard checkpointed at SHARD_END is finished.
    fn already_ended() -> Batch {
        Batch {
            records: Vec::new(),
            millis_behind_latest: Some(0),
            child_shards: Some(Vec::new()),
        }
    }
}

/// Where reading starts for a checkpoint: always AT the checkpointed record (and the consumer
/// skips everything at or before the checkpoint), so a checkpoint in the middle of a KPL
/// aggregate resumes at the next sub-record.
#[derive(Debug, Clone)]
pub(crate) enum StartingPoint {
    TrimHorizon,
    Latest,
    AtTimestamp(std::time::SystemTime),
    AtSequence(String),
    /// Just after a record already fetched (used to renew an expired iterator).
    AfterSequence(String),
    /// The shard was already processed to its end.
    Done,
}

impl StartingPoint {
    pub(crate) fn from_checkpoint(
        checkpoint: &ExtendedSequenceNumber,
        initial: InitialPosition,
    ) -> StartingPoint {
        match &checkpoint.sequence_number {
            SequenceNumber::TrimHorizon => StartingPoint::TrimHorizon,
            SequenceNumber::Latest => StartingPoint::Latest,
            SequenceNumber::AtTimestamp => match initial {
                InitialPosition::AtTimestamp(at) => StartingPoint::AtTimestamp(at),
                // A lease created AT_TIMESTAMP by another application configuration: the
                // closest safe reading is from the oldest record.
                _ => StartingPoint::TrimHorizon,
            },
            SequenceNumber::Number(n) => StartingPoint::AtSequence(n.clone()),
            SequenceNumber::ShardEnd => StartingPoint::Done,
            _ => StartingPoint::TrimHorizon,
        }
    }
}

/// Which stream: by name or ARN.
#[derive(Debug, Clone)]
pub(crate) struct StreamTarget {
    pub(crate) name: Option<String>,
    pub(crate) arn: Option<String>,
    /// In a multi-stream application, `<account>:<stream>:<creationEpoch>:`, which starts the
    /// lease key of each of the stream's shards (the Java KCL's form); `None` when the
    /// application reads one stream and lease keys are plain shard ids.
    pub(crate) lease_prefix: Option<String>,
}

impl StreamTarget {
    /// The stream named `stream`: an ARN when it starts with `arn:`, else a name.
    pub(crate) fn parse(stream: String) -> StreamTarget {
        let (name, arn) = if stream.starts_with("arn:") {
            (None, Some(stream))
        } else {
            (Some(stream), None)
        };
        StreamTarget {
            name,
            arn,
            lease_prefix: None,
        }
    }

    /// The lease key of this stream's shard `shard_id`.
    pub(crate) fn lease_key(&self, shard_id: &str) -> String {
        match &self.lease_prefix {
            Some(prefix) => format!("{prefix}{shard_id}"),
            None => shard_id.to_owned(),
        }
    }

    /// Whether `lease_key` names a shard of this stream: a key with this stream's prefix in a
    /// multi-stream application, a plain shard id otherwise.
    pub(crate) fn owns(&self, lease_key: &str) -> bool {
        match &self.lease_prefix {
            Some(prefix) => lease_key
                .strip_prefix(prefix.as_str())
                .is_some_and(|shard| !shard.is_empty()),
            None => kcl_lease::MultiStreamKey::parse(lease_key).is_none(),
        }
    }
}

/// A batch and the prefetch budget it holds until dropped.
#[derive(Debug)]
pub(crate) struct PrefetchedBatch {
    pub(crate) batch: Batch,
    _records: Option<OwnedSemaphorePermit>,
    _bytes: Option<OwnedSemaphorePermit>,
}

/// A fetch that cannot go on (the stream, shard or consumer is gone; bad arguments; no access).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub(crate) struct FetchError {
    pub(crate) message: String,
    /// Kinesis answered ResourceNotFoundException: the stream, the shard (trimmed past
    /// retention) or the fan-out consumer no longer exists. The consumer finds out which.
    pub(crate) not_found: bool,
}

/// The consumer's end of a shard's prefetch queue; dropping it stops the fetch task.
#[derive(Debug)]
pub(crate) struct Fetcher {
    batches: mpsc::Receiver<Result<PrefetchedBatch, FetchError>>,
    cancel: CancellationToken,
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

type BatchSender = mpsc::Sender<Result<PrefetchedBatch, FetchError>>;

impl Fetcher {
    /// A fetcher holding at most `batches` batches, with the sending end and the token that
    /// stops the task feeding it.
    fn channel(batches: usize) -> (Fetcher, BatchSender, CancellationToken) {
        let (sender, receiver) = mpsc::channel(batches.max(1));
        let cancel = CancellationToken::new();
        let fetcher = Fetcher {
            batches: receiver,
            cancel: cancel.clone(),
        };
        (fetcher, sender, cancel)
    }

    /// The next batch; `None` once the fetch task has stopped.
    pub(crate) async fn next(&mut self) -> Option<Result<PrefetchedBatch, FetchError>> {
        self.batches.recv().await
    }
}

/// The record and byte budgets of one shard's prefetch queue (the batch budget is the
/// channel's capacity). A batch carries its permits until the processor is done with it.
struct Prefetch {
    records: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_records: usize,
    max_bytes: usize,
}

impl Prefetch {
    fn new(records: usize, bytes: usize) -> Prefetch {
        Prefetch {
            records: Arc::new(Semaphore::new(records.max(1))),
            bytes: Arc::new(Semaphore::new(bytes.max(1))),
            max_records: records.max(1),
            max_bytes: bytes.max(1),
        }
    }

    /// Waits until the queue has room for `batch` (`bytes` of payload), then wraps it with
    /// its permits. A batch larger than the whole budget takes all of it, so it still passes.
    async fn wrap(&self, batch: Batch, bytes: usize) -> PrefetchedBatch {
        let records = batch.records.len().clamp(1, self.max_records) as u32;
        let bytes = bytes.clamp(1, self.max_bytes) as u32;
        let records = Arc::clone(&self.records)
            .acquire_many_owned(records)
            .await
            .ok();
        let bytes = Arc::clone(&self.bytes).acquire_many_owned(bytes).await.ok();
        PrefetchedBatch {
            batch,
            _records: records,
            _bytes: bytes,
        }
    }
}

/// How a Kinesis call failed, sorted for the retry decision.
enum Failure {
    /// The shard iterator expired: get a new one.
    Expired,
    Throttled,
    /// Another reader holds what this one needs (a subscription of the same consumer to the
    /// same shard): wait it out with back-off.
    InUse(String),
    /// The stream, shard or consumer does not exist.
    NotFound(String),
    /// Retrying cannot help (bad arguments; no access).
    Fatal(String),
    /// Anything else: retry with back-off.
    Transient(String),
}

fn sort<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: aws_sdk_kinesis::error::SdkError<E, R>,
) -> Failure {
    use aws_sdk_kinesis::error::SdkError;
    match &err {
        SdkError::ServiceError(service) => match service.err().code() {
            Some("ExpiredIteratorException") => Failure::Expired,
            Some(
                "ProvisionedThroughputExceededException"
                | "LimitExceededException"
                | "ThrottlingException",
            ) => Failure::Throttled,
            Some("ResourceNotFoundException") => Failure::NotFound(describe(service.err())),
            Some("InvalidArgumentException" | "AccessDeniedException") => Failure::Fatal(format!(
                "{}: {}",
                service.err().code().unwrap_or_default(),
                service.err().message().unwrap_or_default()
            )),
            _ => Failure::Transient(describe(service.err())),
        },
        other => Failure::Transient(format!("{other:?}")),
    }
}

/// "Code: message" of a service error, or its debug form when it has neither.
fn describe<E: ProvideErrorMetadata + std::fmt::Debug>(err: &E) -> String {
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => format!("{err:?}"),
    }
}

/// What a failed SDK call said, for logs and errors: "Code: message" for service errors.
fn sdk_error_message<E, R>(err: &aws_sdk_kinesis::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err.as_service_error() {
        Some(service) => describe(service),
        None => aws_sdk_kinesis::error::DisplayErrorContext(err).to_string(),
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Sleeps `delay`; `false` if `cancel` fired first.
async fn sleep_unless_cancelled(cancel: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}

/// Waits before a retry, doubling `backoff`; `false` when the task should stop (cancelled, or
/// a fatal failure, which is passed on to the consumer first).
async fn retry_or_stop(
    shard_id: &str,
    sender: &BatchSender,
    cancel: &CancellationToken,
    failure: Failure,
    backoff: &mut Duration,
) -> bool {
    let delay = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    match failure {
        Failure::Fatal(message) => {
            tracing::error!(shard = %shard_id, error = %message, "cannot read the shard");
            let _ = sender
                .send(Err(FetchError {
                    message,
                    not_found: false,
                }))
                .await;
            false
        }
        Failure::NotFound(message) => {
            tracing::warn!(shard = %shard_id, error = %message, "the shard cannot be found");
            let _ = sender
                .send(Err(FetchError {
                    message,
                    not_found: true,
                }))
                .await;
            false
        }
        Failure::Expired => true,
        Failure::Throttled => {
            tracing::debug!(shard = %shard_id, "throttled; backing off");
            sleep_unless_cancelled(cancel, delay).await
        }
        Failure::InUse(message) => {
            tracing::info!(shard = %shard_id, reason = %message, "waiting for the previous reader to let go");
            sleep_unless_cancelled(cancel, delay).await
        }
        Failure::Transient(message) => {
            tracing::warn!(shard = %shard_id, error = %message, "reading the shard failed; retrying");
            sleep_unless_cancelled(cancel, delay).await
        }
    }
}

/// A child shard as Kinesis reports it at the end of its parent.
fn child_shard(child: &aws_sdk_kinesis::types::ChildShard) -> ChildShard {
    ChildShard {
        shard_id: child.shard_id().to_owned(),
        parent_shards: child.parent_shards().to_vec(),
        hash_key_range: child.hash_key_range().map(|r| {
            (
                r.starting_hash_key().to_owned(),
                r.ending_hash_key().to_owned(),
            )
        }),
    }
}
