//! The shard consumer: one task per held lease, running the processor through
//! WaitingOnParents -> Initializing -> Processing -> ShardEnded | LeaseLost | ShutdownRequested.
//!
//! A processor that fails (returns an error or panics) costs only its own shard a restart:
//! the consumer starts over from the last checkpoint with a fresh processor, after a growing
//! delay. The lease-lost and shutdown signals are only looked at between processor calls,
//! never in the middle of one (and so never in the middle of a checkpoint write).

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kcl_checkpoint::{Checkpointer, ExtendedSequenceNumber};
use kcl_lease::{Lease, LeaseCoordinator, LeaseStore, StoredCheckpoint};
use tokio_util::sync::CancellationToken;

use crate::config::{
    FailedBatchAction, FailedBatchPolicy, FanOutConfig, InitialPosition, LifecycleConfig,
    PollingConfig,
};
use crate::kpl;
use crate::processor::{
    DeadLetterInput, InitializationInput, LeaseLostInput, ProcessRecordsInput, ProcessorError,
    RecordProcessor, ShardEndedInput, SharedFactory, ShutdownRequestedInput,
};
use crate::record::KinesisClientRecord;
use crate::retrieval::{fanout, polling, StartingPoint, StreamTarget};
use crate::shard_sync::new_lease;

/// What a worker shares with all of its shard consumers.
pub(crate) struct ConsumerContext {
    pub(crate) kinesis: aws_sdk_kinesis::Client,
    /// Every stream the application reads (one, unless it is a multi-stream application).
    pub(crate) streams: Vec<StreamTarget>,
    pub(crate) store: Arc<dyn LeaseStore>,
    pub(crate) coordinator: Arc<LeaseCoordinator>,
    pub(crate) factory: SharedFactory,
    pub(crate) retrieval: Retrieval,
    pub(crate) lifecycle: LifecycleConfig,
    pub(crate) initial_position: InitialPosition,
    pub(crate) status: crate::status::WorkerStatus,
}

/// How this worker reads records, resolved at start (the fan-out consumer registered).
#[derive(Debug, Clone)]
pub(crate) enum Retrieval {
    Polling(PollingConfig),
    FanOut {
        /// The registered consumer of each stream, in the order of `ConsumerContext::streams`.
        consumer_arns: Vec<String>,
        config: FanOutConfig,
    },
}

impl ConsumerContext {
    /// The index in `streams` of the stream a lease belongs to; `None` for a lease of a stream
    /// this application does not read (the coordinator never takes those).
    fn stream_of(&self, lease_key: &str) -> Option<usize> {
        self.streams.iter().position(|s| s.owns(lease_key))
    }
}

/// How a shard consumer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The shard was processed to its end and SHARD_END checkpointed.
    ShardEnded,
    /// Another worker took the lease.
    LeaseLost,
    /// The worker shut down; the processor was told.
    Shutdown,
    /// The stream was deleted: the processor was told to shut down, and the lease is kept
    /// (renewed, not read) so that no other worker picks it up only to find the same.
    StreamGone,
}

/// The signals a consumer watches between processor calls.
#[derive(Debug, Clone)]
pub(crate) struct Signals {
    pub(crate) lease_lost: CancellationToken,
    pub(crate) shutdown: CancellationToken,
}

/// Runs one processor call, turning a panic into an error.
async fn guarded<F>(call: F) -> Result<(), ProcessorError>
where
    F: std::future::Future<Output = Result<(), ProcessorError>>,
{
    match AssertUnwindSafe(call).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(format!("the record processor panicked: {message}").into())
        }
    }
}

/// A batch the processor failed on (returned an error, panicked, or hung and was abandoned).
/// Its first record identifies it across restarts, to count attempts of the same batch; its
/// last bounds what a policy may take out of the stream, so records that arrived after it
/// and were never tried are not taken with it.
#[derive(Debug)]
struct BatchFailed {
    first: ExtendedSequenceNumber,
    last: ExtendedSequenceNumber,
    source: ProcessorError,
}

impl std::fmt::Display for BatchFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the batch starting at {}: {}", self.first, self.source)
    }
}

impl std::error::Error for BatchFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// A batch that failed every attempt the policy allows: the next run acts on it instead of
/// giving it to the processor again.
#[derive(Debug, Clone)]
struct GivenUp {
    first: ExtendedSequenceNumber,
    last: ExtendedSequenceNumber,
    attempts: u32,
    error: String,
}

/// Consecutive failures of the same batch.
#[derive(Debug, Default)]
struct FailedAttempts {
    first: Option<ExtendedSequenceNumber>,
    attempts: u32,
}

impl FailedAttempts {
    /// Counts a failure; returns the batch to give up on once `policy` says so.
    fn record(&mut self, err: &ProcessorError, policy: &FailedBatchPolicy) -> Option<GivenUp> {
        let Some(failed) = err.downcast_ref::<BatchFailed>() else {
            *self = FailedAttempts::default();
            return None;
        };
        if self.first.as_ref() == Some(&failed.first) {
            self.attempts += 1;
        } else {
            self.first = Some(failed.first.clone());
            self.attempts = 1;
        }
        let gives_up = !matches!(policy.action, FailedBatchAction::Stall)
            && self.attempts >= policy.max_attempts;
        gives_up.then(|| GivenUp {
            first: failed.first.clone(),
            last: failed.last.clone(),
            attempts: self.attempts,
            error: failed.source.to_string(),
        })
    }
}

/// Runs the consumer for `lease_key` until it ends, restarting a failed processor.
pub(crate) async fn run(ctx: Arc<ConsumerContext>, lease_key: String, signals: Signals) -> Outcome {
    let mut delay = ctx.lifecycle.restart_backoff;
    let span = tracing::info_span!("shard", shard = %lease_key);
    let mut failures = FailedAttempts::default();
    let mut given_up: Option<GivenUp> = None;
    loop {
        let attempt = run_once(&ctx, &lease_key, &signals, given_up.take());
        match tracing::Instrument::instrument(attempt, span.clone()).await {
            Ok(outcome) => return outcome,
            // Failing once the lease is gone (its processor told, if it had one) is the
            // lease-lost ending, not a failure to retry.
            Err(_) if ctx.coordinator.held_lease(&lease_key).await.is_none() => {
                return Outcome::LeaseLost;
            }
            Err(err) => {
                metrics::counter!("kcl_processor_failures_total").increment(1);
                given_up = failures.record(&err, &ctx.lifecycle.failed_batch);
                tracing::error!(shard = %lease_key, error = %err, attempts = failures.attempts, ?delay, "shard consumer failed; restarting from the last checkpoint");
                tokio::select! {
                    () = signals.lease_lost.cancelled() => return Outcome::LeaseLost,
                    () = signals.shutdown.cancelled() => return Outcome::Shutdown,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

async fn wait_for_parents(
    ctx: &ConsumerContext,
    lease: &Lease,
    signals: &Signals,
) -> Result<Option<Outcome>, ProcessorError> {
    for parent in &lease.parent_shard_ids {
        let parent = lease.sibling_key(parent);
        loop {
            match ctx.store.get_lease(&parent).await? {
                // Gone (cleaned up after completion) or finished: this parent is done.
                None => break,
                Some(p) if p.is_shard_end() => break,
                Some(_) => {}
            }
            tracing::debug!(shard = %lease.lease_key, parent, "waiting for the parent shard to end");
            tokio::select! {
                () = signals.lease_lost.cancelled() => return Ok(Some(Outcome::LeaseLost)),
                () = signals.shutdown.cancelled() => return Ok(Some(Outcome::Shutdown)),
                () = tokio::time::sleep(ctx.lifecycle.parent_poll_interval) => {}
            }
        }
    }
    Ok(None)
}

/// Sleeps until `at`, or for ever when there is no `at`.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn parse_range(range: &Option<(String, String)>) -> Option<(u128, u128)> {
    let (start, end) = range.as_ref()?;
    Some((start.parse().ok()?, end.parse().ok()?))
}

async fn run_once(
    ctx: &ConsumerContext,
    lease_key: &str,
    signals: &Signals,
    given_up: Option<GivenUp>,
) -> Result<Outcome, ProcessorError> {
    let Some(stream) = ctx.stream_of(lease_key) else {
        // Reading it from another stream would checkpoint foreign positions into this row.
        return Err(
            format!("lease {lease_key} belongs to no stream this application reads").into(),
        );
    };
    let Some(lease) = ctx.coordinator.held_lease(lease_key).await else {
        return Ok(Outcome::LeaseLost);
    };
    if let Some(outcome) = wait_for_parents(ctx, &lease, signals).await? {
        return Ok(outcome);
    }
    // The copy may have moved on while we waited; the checkpoint is what counts now.
    let Some(lease) = ctx.coordinator.held_lease(lease_key).await else {
        return Ok(Outcome::LeaseLost);
    };
    if lease.is_shard_end() {
        return Ok(Outcome::ShardEnded);
    }
    let stored = lease
        .checkpoint
        .clone()
        .unwrap_or_else(|| StoredCheckpoint::new("TRIM_HORIZON"));
    let checkpoint = ExtendedSequenceNumber::from_stored(&stored)?;
    let checkpointer = Checkpointer::new(
        lease_key,
        Arc::clone(&ctx.coordinator) as _,
        checkpoint.clone(),
    );
    let shard_id = lease.shard_id().to_owned();
    let mut processor = ctx.factory.create(&shard_id);
    let shard = ShardRun {
        ctx,
        stream,
        lease: &lease,
        checkpointer: &checkpointer,
        signals,
        given_up,
    };
    let result = match process(&shard, checkpoint, processor.as_mut()).await {
        // A checkpoint that found the lease taken is how a processor often learns it lost the
        // shard: it is told so, as after a loss noticed between its calls.
        Err(err) if ctx.coordinator.held_lease(lease_key).await.is_none() => {
            tracing::info!(shard = %lease_key, error = %err, "lease lost while processing");
            checkpointer.lease_lost();
            let input = LeaseLostInput { shard_id };
            shard
                .call("lease_lost", processor.lease_lost(input))
                .await
                .map(|()| Outcome::LeaseLost)
        }
        other => other,
    };
    checkpointer.shut_down();
    result
}

/// One run of a shard's processor, from `initialize` to its end or failure.
struct ShardRun<'a> {
    ctx: &'a ConsumerContext,
    /// Index of the lease's stream in `ctx.streams`.
    stream: usize,
    lease: &'a Lease,
    checkpointer: &'a Checkpointer,
    signals: &'a Signals,
    given_up: Option<GivenUp>,
}

impl ShardRun<'_> {
    /// Runs one processor call: a panic becomes an error, and a call still running after the
    /// configured time is reported (and, if configured, abandoned so the shard restarts).
    async fn call<F>(&self, name: &'static str, call: F) -> Result<(), ProcessorError>
    where
        F: std::future::Future<Output = Result<(), ProcessorError>>,
    {
        let key = &self.lease.lease_key;
        self.ctx.status.call_started(key, name);
        let result = self.call_watched(name, call).await;
        self.ctx.status.call_ended(key);
        result
    }

    async fn call_watched<F>(&self, name: &'static str, call: F) -> Result<(), ProcessorError>
    where
        F: std::future::Future<Output = Result<(), ProcessorError>>,
    {
        let call = guarded(call);
        let Some(limit) = self.ctx.lifecycle.processor_call_timeout else {
            return call.await;
        };
        tokio::pin!(call);
        let started = tokio::time::Instant::now();
        loop {
            tokio::select! {
                result = &mut call => return result,
                () = tokio::time::sleep(limit) => {
                    metrics::counter!("kcl_processor_calls_hung_total", "call" => name).increment(1);
                    tracing::warn!(
                        shard = %self.lease.lease_key,
                        call = name,
                        running = ?started.elapsed(),
                        "a record processor call has not returned"
                    );
                    if self.ctx.lifecycle.restart_hung_processors {
                        return Err(format!(
                            "{name} did not return within {limit:?}; abandoned to restart the shard"
                        )
                        .into());
                    }
                }
            }
        }
    }

    /// Takes the records of a batch that failed every attempt out of the stream, as the
    /// policy says, and checkpoints past them. An error (a dead-letter handler that failed)
    /// leaves them to be tried again.
    async fn give_up_on(
        &self,
        given_up: &GivenUp,
        records: Vec<KinesisClientRecord>,
    ) -> Result<(), ProcessorError> {
        let (first, last, last_sub) = match (records.first(), records.last()) {
            (Some(first), Some(last)) => (
                first.sequence_number.clone(),
                last.sequence_number.clone(),
                last.sub_sequence_number,
            ),
            _ => return Ok(()),
        };
        let count = records.len() as u64;
        match &self.ctx.lifecycle.failed_batch.action {
            FailedBatchAction::Stall => return Ok(()),
            FailedBatchAction::SkipBatch => {
                tracing::error!(
                    shard = %self.lease.lease_key,
                    first = %first,
                    last = %last,
                    count,
                    attempts = given_up.attempts,
                    error = %given_up.error,
                    "skipping a batch the processor failed on every attempt"
                );
                metrics::counter!("kcl_records_skipped_total").increment(count);
            }
            FailedBatchAction::DeadLetter(handler) => {
                handler
                    .handle(DeadLetterInput {
                        shard_id: self.lease.shard_id().to_owned(),
                        lease_key: self.lease.lease_key.clone(),
                        records,
                        error: given_up.error.clone(),
                        attempts: given_up.attempts,
                    })
                    .await?;
                tracing::warn!(
                    shard = %self.lease.lease_key,
                    first = %first,
                    last = %last,
                    count,
                    "a batch the processor failed on every attempt went to the dead-letter handler"
                );
                metrics::counter!("kcl_records_dead_lettered_total").increment(count);
            }
        }
        self.checkpointer.checkpoint_at(&last, last_sub).await?;
        Ok(())
    }
}

async fn process(
    run: &ShardRun<'_>,
    checkpoint: ExtendedSequenceNumber,
    processor: &mut dyn RecordProcessor,
) -> Result<Outcome, ProcessorError> {
    let ShardRun {
        ctx,
        stream,
        lease,
        checkpointer,
        signals,
        ..
    } = *run;
    let shard_id = lease.shard_id();
    run.call(
        "initialize",
        processor.initialize(InitializationInput {
            shard_id: shard_id.to_owned(),
            lease_key: lease.lease_key.clone(),
            checkpoint: checkpoint.clone(),
            pending_checkpoint: lease
                .pending_checkpoint
                .as_ref()
                .and_then(|p| ExtendedSequenceNumber::from_stored(p).ok()),
            pending_checkpoint_state: lease.pending_checkpoint_state.clone(),
        }),
    )
    .await?;
    let start = StartingPoint::from_checkpoint(&checkpoint, ctx.initial_position);
    let mut fetcher = match &ctx.retrieval {
        Retrieval::Polling(config) => polling::start(
            ctx.kinesis.clone(),
            ctx.streams[stream].clone(),
            shard_id.to_owned(),
            start,
            config.clone(),
        ),
        Retrieval::FanOut {
            consumer_arns,
            config,
        } => fanout::start(
            ctx.kinesis.clone(),
            consumer_arns[stream].clone(),
            shard_id.to_owned(),
            start,
            config.clone(),
        ),
    };
    let hash_range = parse_range(&lease.hash_key_range);
    let empty_batch_interval = ctx.lifecycle.empty_batch_interval;
    let mut last_call = tokio::time::Instant::now();
    loop {
        let tick_at = empty_batch_interval.map(|every| last_call + every);
        // Only here, between processor calls, do the lifecycle signals interrupt processing.
        let next = tokio::select! {
            biased;
            () = signals.lease_lost.cancelled() => {
                checkpointer.lease_lost();
                run.call("lease_lost", processor.lease_lost(LeaseLostInput { shard_id: shard_id.to_owned() })).await?;
                return Ok(Outcome::LeaseLost);
            }
            () = signals.shutdown.cancelled() => {
                run.call("shutdown_requested", processor.shutdown_requested(ShutdownRequestedInput { checkpointer })).await?;
                return Ok(Outcome::Shutdown);
            }
            next = fetcher.next() => next,
            () = sleep_until_some(tick_at) => {
                run.call("process_records", processor.process_records(ProcessRecordsInput {
                    records: Vec::new(),
                    millis_behind_latest: None,
                    is_at_shard_end: false,
                    child_shards: Vec::new(),
                    checkpointer,
                }))
                .await?;
                last_call = tokio::time::Instant::now();
                continue;
            }
        };
        let prefetched = match next {
            Some(Ok(batch)) => batch,
            Some(Err(err)) if err.not_found => match vanished(ctx, stream, shard_id).await? {
                Some(Vanished::Stream) => {
                    tracing::warn!(shard = %lease.lease_key, "the stream was deleted; this shard is no longer read");
                    run.call(
                        "shutdown_requested",
                        processor.shutdown_requested(ShutdownRequestedInput { checkpointer }),
                    )
                    .await?;
                    return Ok(Outcome::StreamGone);
                }
                Some(Vanished::Shard(children)) => {
                    tracing::warn!(
                        shard = %lease.lease_key,
                        checkpoint = %checkpointer.last_checkpoint(),
                        "the shard no longer exists (closed and trimmed past the stream's retention); it counts as ended"
                    );
                    return shard_end(run, &children, processor).await;
                }
                None => return Err(Box::new(err)),
            },
            Some(Err(err)) => return Err(Box::new(err)),
            None => return Err("the record fetcher stopped".into()),
        };
        // Records fetched while the lease ran out (a pause, or renewals hanging in a partition)
        // may be another worker's to process by now: stop before handing them over.
        if !ctx.coordinator.holds_unexpired(&lease.lease_key) {
            checkpointer.lease_lost();
            run.call(
                "lease_lost",
                processor.lease_lost(LeaseLostInput {
                    shard_id: shard_id.to_owned(),
                }),
            )
            .await?;
            return Ok(Outcome::LeaseLost);
        }
        let batch = &prefetched.batch;
        let mut records = Vec::with_capacity(batch.records.len());
        let mut bytes = 0;
        for record in batch.records.iter().cloned() {
            for user_record in kpl::deaggregate(record, hash_range) {
                // Reading restarts AT the checkpointed record: skip what was already done.
                let position = ExtendedSequenceNumber::new(
                    &user_record.sequence_number,
                    user_record.sub_sequence_number,
                )?;
                if position <= checkpoint {
                    continue;
                }
                bytes += user_record.data.len();
                records.push(user_record);
            }
        }
        if let Some(last) = records.last() {
            checkpointer.set_largest_permitted(ExtendedSequenceNumber::new(
                &last.sequence_number,
                last.sub_sequence_number,
            )?);
        }
        let at_end = batch.child_shards.is_some();
        if let Some(behind) = batch.millis_behind_latest {
            metrics::gauge!("kcl_millis_behind_latest", "shard" => shard_id.to_owned())
                .set(behind as f64);
        }
        let position = |r: &KinesisClientRecord| {
            ExtendedSequenceNumber::new(&r.sequence_number, r.sub_sequence_number)
        };
        let first = records.first().map(position).transpose()?;
        if let Some(given_up) = run
            .given_up
            .as_ref()
            .filter(|g| first.as_ref() == Some(&g.first))
        {
            let mut failed = records;
            let mut rest = Vec::new();
            if let Some(split) = failed
                .iter()
                .position(|r| position(r).is_ok_and(|p| p > given_up.last))
            {
                rest = failed.split_off(split);
            }
            run.give_up_on(given_up, failed).await?;
            last_call = tokio::time::Instant::now();
            records = rest;
        }
        let first = records.first().map(position).transpose()?;
        let last = records.last().map(position).transpose()?;
        if !records.is_empty() || at_end {
            let count = records.len() as u64;
            let result = run
                .call(
                    "process_records",
                    processor.process_records(ProcessRecordsInput {
                        records,
                        millis_behind_latest: batch.millis_behind_latest,
                        is_at_shard_end: at_end,
                        child_shards: batch.child_shards.clone().unwrap_or_default(),
                        checkpointer,
                    }),
                )
                .await;
            if let Err(source) = result {
                return Err(match (first, last) {
                    (Some(first), Some(last)) => Box::new(BatchFailed {
                        first,
                        last,
                        source,
                    }),
                    _ => source,
                });
            }
            last_call = tokio::time::Instant::now();
            ctx.status.shard_progress(
                &lease.lease_key,
                batch.millis_behind_latest,
                Some(checkpointer.last_checkpoint().to_string()),
            );
            metrics::counter!("kcl_records_processed_total").increment(count);
            metrics::counter!("kcl_bytes_processed_total").increment(bytes as u64);
            ctx.coordinator
                .record_delivered(&lease.lease_key, bytes as u64);
        }
        if let Some(children) = &batch.child_shards {
            return shard_end(run, children, processor).await;
        }
    }
}

/// What is gone when Kinesis answers ResourceNotFoundException for a shard.
enum Vanished {
    /// The whole stream.
    Stream,
    /// The shard alone: closed, and trimmed once the retention period passed. Its children
    /// (from the listing, where they still name it as parent) take over.
    Shard(Vec<crate::processor::ChildShard>),
}

/// Finds out what a ResourceNotFoundException for `shard_id` meant; `None` when the stream and
/// the shard both still exist (a fan-out consumer was deregistered, say).
async fn vanished(
    ctx: &ConsumerContext,
    stream: usize,
    shard_id: &str,
) -> Result<Option<Vanished>, ProcessorError> {
    let shards = match crate::shard_sync::list_shards(&ctx.kinesis, &ctx.streams[stream]).await {
        Ok(shards) => shards,
        Err(err) if err.is_resource_not_found() => return Ok(Some(Vanished::Stream)),
        Err(err) => return Err(Box::new(err)),
    };
    if shards.iter().any(|s| s.shard_id() == shard_id) {
        return Ok(None);
    }
    let children = shards
        .iter()
        .filter(|s| crate::shard_sync::parents_of(s).any(|p| p == shard_id))
        .map(|s| crate::processor::ChildShard {
            shard_id: s.shard_id().to_owned(),
            parent_shards: crate::shard_sync::parents_of(s)
                .map(str::to_owned)
                .collect(),
            hash_key_range: crate::shard_sync::hash_range(s),
        })
        .collect();
    Ok(Some(Vanished::Shard(children)))
}

/// At the end of a closed shard: child leases first, then the children on the parent lease,
/// then the processor's SHARD_END checkpoint, which is what lets the children start.
async fn shard_end(
    run: &ShardRun<'_>,
    children: &[crate::processor::ChildShard],
    processor: &mut dyn RecordProcessor,
) -> Result<Outcome, ProcessorError> {
    let ShardRun {
        ctx,
        lease,
        checkpointer,
        ..
    } = *run;
    for child in children {
        let parents: BTreeSet<String> = child.parent_shards.iter().cloned().collect();
        let child_lease = new_lease(
            &lease.sibling_key(&child.shard_id),
            "TRIM_HORIZON",
            parents,
            child.hash_key_range.clone(),
        );
        ctx.store.create_lease_if_absent(&child_lease).await?;
    }
    let ids: BTreeSet<String> = children.iter().map(|c| c.shard_id.clone()).collect();
    ctx.store
        .update_child_shards(&lease.lease_key, &ids)
        .await?;
    checkpointer.set_shard_end();
    run.call(
        "shard_ended",
        processor.shard_ended(ShardEndedInput { checkpointer }),
    )
    .await?;
    if checkpointer.last_checkpoint() != ExtendedSequenceNumber::SHARD_END {
        return Err(format!(
            "the processor of {} did not checkpoint in shard_ended; the child shards cannot start until it does",
            lease.lease_key
        )
        .into());
    }
    tracing::info!(shard = %lease.lease_key, children = ?ids, "shard ended");
    Ok(Outcome::ShardEnded)
}
