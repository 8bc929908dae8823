//! The record processor contract: the application's code, one instance per shard.
//!
//! Calls come in this order: [`RecordProcessor::initialize`], then
//! [`RecordProcessor::process_records`] any number of times, then exactly one of
//! [`RecordProcessor::lease_lost`] (no checkpointing possible), [`RecordProcessor::shard_ended`]
//! (must checkpoint, or the child shards never start) or
//! [`RecordProcessor::shutdown_requested`] (may checkpoint). Calls for one shard never overlap;
//! different shards run concurrently.

use std::sync::Arc;

use async_trait::async_trait;
use kcl_checkpoint::{Checkpointer, ExtendedSequenceNumber};

use crate::record::KinesisClientRecord;

/// What a processor returns when it cannot continue: the shard's consumer is restarted from
/// its last checkpoint (with back-off); nothing is skipped.
pub type ProcessorError = Box<dyn std::error::Error + Send + Sync>;

/// Passed to [`RecordProcessor::initialize`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct InitializationInput {
    /// The shard this processor handles.
    pub shard_id: String,
    /// The lease key (the shard id, or the multi-stream form).
    pub lease_key: String,
    /// Where processing resumes.
    pub checkpoint: ExtendedSequenceNumber,
    /// A prepared checkpoint left by an earlier owner, if any.
    pub pending_checkpoint: Option<ExtendedSequenceNumber>,
    /// Application state stored with the pending checkpoint.
    pub pending_checkpoint_state: Option<Vec<u8>>,
}

/// A child shard named at the end of a closed shard.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildShard {
    /// The child's id.
    pub shard_id: String,
    /// All of its parents (two for a merge).
    pub parent_shards: Vec<String>,
    /// Its hash key range (start, end), decimal, when Kinesis reported it.
    pub hash_key_range: Option<(String, String)>,
}

/// Passed to [`RecordProcessor::process_records`].
#[derive(Debug)]
#[non_exhaustive]
pub struct ProcessRecordsInput<'a> {
    /// The records, in order.
    pub records: Vec<KinesisClientRecord>,
    /// How far the batch is behind the tip of the shard.
    pub millis_behind_latest: Option<i64>,
    /// Whether this batch ends a closed shard.
    pub is_at_shard_end: bool,
    /// The child shards, when at the shard end.
    pub child_shards: Vec<ChildShard>,
    /// Records progress; valid up to the last record of this batch.
    pub checkpointer: &'a Checkpointer,
}

/// Passed to [`RecordProcessor::lease_lost`]: another worker owns the shard now.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LeaseLostInput {
    /// The shard.
    pub shard_id: String,
}

/// Passed to [`RecordProcessor::shard_ended`]: the shard is closed and fully processed.
#[derive(Debug)]
#[non_exhaustive]
pub struct ShardEndedInput<'a> {
    /// Must be used to checkpoint (`checkpointer.checkpoint()` writes SHARD_END).
    pub checkpointer: &'a Checkpointer,
}

/// Passed to [`RecordProcessor::shutdown_requested`]: the worker is shutting down gracefully.
#[derive(Debug)]
#[non_exhaustive]
pub struct ShutdownRequestedInput<'a> {
    /// Checkpoint here to hand the shard over without reprocessing.
    pub checkpointer: &'a Checkpointer,
}

/// The application's per-shard code (the Java KCL's `ShardRecordProcessor`).
#[async_trait]
pub trait RecordProcessor: Send {
    /// Called once before any records. The default does nothing.
    async fn initialize(&mut self, input: InitializationInput) -> Result<(), ProcessorError> {
        let _ = input;
        Ok(())
    }

    /// Called with each batch of records, in order.
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput<'_>,
    ) -> Result<(), ProcessorError>;

    /// Called when the lease went to another worker. Checkpointing is no longer possible.
    /// The default does nothing.
    async fn lease_lost(&mut self, input: LeaseLostInput) -> Result<(), ProcessorError> {
        let _ = input;
        Ok(())
    }

    /// Called at the end of a closed shard. The processor must checkpoint.
    async fn shard_ended(&mut self, input: ShardEndedInput<'_>) -> Result<(), ProcessorError>;

    /// Called when the worker shuts down gracefully; checkpoint to avoid reprocessing.
    async fn shutdown_requested(
        &mut self,
        input: ShutdownRequestedInput<'_>,
    ) -> Result<(), ProcessorError>;
}

/// Creates one processor per shard.
pub trait RecordProcessorFactory: Send + Sync {
    /// A fresh processor for `shard_id`.
    fn create(&self, shard_id: &str) -> Box<dyn RecordProcessor>;
}

impl<F, P> RecordProcessorFactory for F
where
    F: Fn(&str) -> P + Send + Sync,
    P: RecordProcessor + 'static,
{
    fn create(&self, shard_id: &str) -> Box<dyn RecordProcessor> {
        Box::new(self(shard_id))
    }
}

/// Passed to [`DeadLetterHandler::handle`]: a batch the processor failed on every attempt.
#[derive(Debug)]
#[non_exhaustive]
pub struct DeadLetterInput {
    /// The shard.
    pub shard_id: String,
    /// The lease key (the shard id, or the multi-stream form).
    pub lease_key: String,
    /// The records of the batch, in order.
    pub records: Vec<KinesisClientRecord>,
    /// What the last attempt failed with.
    pub error: String,
    /// How many attempts failed.
    pub attempts: u32,
}

/// Receives the batches that [`crate::FailedBatchAction::DeadLetter`] takes out of the stream:
/// store them somewhere to look at later (a queue, a table, a file). Called for one shard at a
/// time per shard; different shards may call it concurrently.
#[async_trait]
pub trait DeadLetterHandler: Send + Sync {
    /// Keeps the failed batch. Return `Ok` only once it is safely kept: the shard is then
    /// checkpointed past it. An error means the batch is tried again later.
    async fn handle(&self, input: DeadLetterInput) -> Result<(), ProcessorError>;
}

/// A shared factory.
pub type SharedFactory = Arc<dyn RecordProcessorFactory>;
