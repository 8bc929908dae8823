//! A [`RecordProcessor`] that runs the shard's processing in a child process.
//!
//! Each processor owns one child for its shard's lifetime. A child that crashes, exits, hangs
//! past the timeout or breaks the protocol makes the processor fail: the child is killed (on
//! drop) and the worker restarts that shard alone, from its last checkpoint, with a fresh
//! child. Checkpoint requests are served by the shard's [`Checkpointer`], so they are fenced by
//! the lease exactly like a Rust processor's.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use kcl_checkpoint::Checkpointer;

use super::child::{CheckpointRequests, ChildProcess, NoCheckpoints};
use super::protocol::{DaemonMessage, RecordMessage};
use crate::processor::{
    InitializationInput, LeaseLostInput, ProcessRecordsInput, ProcessorError, RecordProcessor,
    RecordProcessorFactory, ShardEndedInput, ShutdownRequestedInput,
};

/// Creates a [`MultiLangProcessor`] per shard.
#[derive(Debug, Clone)]
pub struct MultiLangFactory {
    settings: Arc<ChildSettings>,
}

#[derive(Debug)]
struct ChildSettings {
    command: Vec<String>,
    timeout: Option<Duration>,
    shutdown_grace: Duration,
}

impl MultiLangFactory {
    /// Children run `command` (program and arguments, no shell); one action may take at most
    /// `timeout` (`None`: no limit); a child gets `shutdown_grace` to exit after its last
    /// action before it is killed.
    pub fn new(
        command: Vec<String>,
        timeout: Option<Duration>,
        shutdown_grace: Duration,
    ) -> MultiLangFactory {
        MultiLangFactory {
            settings: Arc::new(ChildSettings {
                command,
                timeout,
                shutdown_grace,
            }),
        }
    }
}

impl RecordProcessorFactory for MultiLangFactory {
    fn create(&self, shard_id: &str) -> Box<dyn RecordProcessor> {
        Box::new(MultiLangProcessor {
            shard_id: shard_id.to_owned(),
            settings: Arc::clone(&self.settings),
            child: None,
        })
    }
}

/// Runs one shard's processing in a child process; see the module documentation.
#[derive(Debug)]
pub struct MultiLangProcessor {
    shard_id: String,
    settings: Arc<ChildSettings>,
    child: Option<ChildProcess>,
}

/// The Java daemon's answer to a checkpoint asked for where none is allowed.
fn not_now() -> NoCheckpoints {
    NoCheckpoints("InvalidStateException")
}

/// Serves a child's checkpoint requests with the shard's checkpointer.
struct ViaCheckpointer<'a>(&'a Checkpointer);

#[async_trait]
impl CheckpointRequests for ViaCheckpointer<'_> {
    async fn checkpoint(
        &mut self,
        sequence_number: Option<String>,
        sub_sequence_number: Option<u64>,
    ) -> Result<(Option<String>, Option<u64>), String> {
        let written = match &sequence_number {
            None => self.0.checkpoint().await,
            Some(seq) => {
                self.0
                    .checkpoint_at(seq, sub_sequence_number.unwrap_or(0))
                    .await
            }
        };
        match written {
            Ok(()) => {
                let at = self.0.last_checkpoint();
                Ok((
                    Some(at.sequence_number.to_string()),
                    Some(at.sub_sequence_number),
                ))
            }
            Err(err) => {
                tracing::warn!(error = %err, "checkpoint requested by a child failed");
                Err(err.java_exception_name().to_owned())
            }
        }
    }
}

impl MultiLangProcessor {
    fn child(&mut self) -> Result<&mut ChildProcess, ProcessorError> {
        self.child
            .as_mut()
            .ok_or_else(|| "the child process was not started".into())
    }

    /// Sends a final action, then lets the child exit (closing its stdin) within the grace.
    async fn last_call(
        &mut self,
        message: DaemonMessage,
        checkpoints: &mut dyn CheckpointRequests,
    ) -> Result<(), ProcessorError> {
        let result = self.child()?.call(&message, checkpoints).await;
        if let Some(child) = self.child.take() {
            child.stop(self.settings.shutdown_grace).await;
        }
        result.map_err(Into::into)
    }
}

#[async_trait]
impl RecordProcessor for MultiLangProcessor {
    async fn initialize(&mut self, input: InitializationInput) -> Result<(), ProcessorError> {
        let child = ChildProcess::spawn(
            &self.settings.command,
            &self.shard_id,
            self.settings.timeout,
        )?;
        let child = self.child.insert(child);
        let message = DaemonMessage::Initialize {
            shard_id: input.shard_id,
            sequence_number: Some(input.checkpoint.sequence_number.to_string()),
            sub_sequence_number: Some(input.checkpoint.sub_sequence_number),
        };
        child.call(&message, &mut not_now()).await?;
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput<'_>,
    ) -> Result<(), ProcessorError> {
        let base64 = base64::engine::general_purpose::STANDARD;
        let records = input
            .records
            .iter()
            .map(|r| RecordMessage {
                action: "record",
                data: base64.encode(&r.data),
                partition_key: r.partition_key.clone(),
                sequence_number: r.sequence_number.clone(),
                sub_sequence_number: r.sub_sequence_number,
                approximate_arrival_timestamp: r.approximate_arrival_timestamp_ms.unwrap_or(0),
            })
            .collect();
        let message = DaemonMessage::ProcessRecords {
            millis_behind_latest: input.millis_behind_latest.unwrap_or(0),
            records,
        };
        let mut checkpoints = ViaCheckpointer(input.checkpointer);
        self.child()?.call(&message, &mut checkpoints).await?;
        Ok(())
    }

    async fn lease_lost(&mut self, _input: LeaseLostInput) -> Result<(), ProcessorError> {
        self.last_call(DaemonMessage::LeaseLost, &mut not_now())
            .await
    }

    async fn shard_ended(&mut self, input: ShardEndedInput<'_>) -> Result<(), ProcessorError> {
        let mut checkpoints = ViaCheckpointer(input.checkpointer);
        self.last_call(DaemonMessage::ShardEnded, &mut checkpoints)
            .await
    }

    async fn shutdown_requested(
        &mut self,
        input: ShutdownRequestedInput<'_>,
    ) -> Result<(), ProcessorError> {
        let mut checkpoints = ViaCheckpointer(input.checkpointer);
        self.last_call(DaemonMessage::ShutdownRequested, &mut checkpoints)
            .await
    }
}
