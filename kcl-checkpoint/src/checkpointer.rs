//! The per-shard checkpointer handed to record processors.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kcl_lease::{CheckpointUpdate, LeaseCoordinator, LeaseError};

use crate::error::CheckpointError;
use crate::sentinel::ExtendedSequenceNumber;

/// Where checkpoints are written. Implemented by the lease coordinator, whose write is fenced
/// by the lease counter and owner; `Ok(false)` means the lease was lost.
#[async_trait]
pub trait CheckpointWriter: Send + Sync + std::fmt::Debug {
    /// Writes `update` to the lease `lease_key`.
    async fn write_checkpoint(
        &self,
        lease_key: &str,
        update: &CheckpointUpdate,
    ) -> Result<bool, LeaseError>;
}

#[async_trait]
impl CheckpointWriter for LeaseCoordinator {
    async fn write_checkpoint(
        &self,
        lease_key: &str,
        update: &CheckpointUpdate,
    ) -> Result<bool, LeaseError> {
        match self.checkpoint(lease_key, update).await {
            Err(LeaseError::NotHeld(_)) => Ok(false),
            other => other,
        }
    }
}

#[derive(Debug)]
struct State {
    last_checkpoint: ExtendedSequenceNumber,
    /// The largest position the processor may checkpoint: the last record delivered, or
    /// SHARD_END once the shard has been read to its end.
    largest_permitted: ExtendedSequenceNumber,
    pending: Option<ExtendedSequenceNumber>,
    /// Set when the lease is lost or the consumer stopped: no write may happen any more.
    closed: Option<Closed>,
}

#[derive(Debug, Clone, Copy)]
enum Closed {
    LeaseLost,
    Shutdown,
}

/// Records how far one shard has been processed. Cloning shares the same state.
///
/// A checkpoint must lie between the last checkpoint and the largest record delivered to the
/// processor; every write is fenced by the lease, so a worker that lost the lease cannot
/// overwrite the new owner's progress.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    lease_key: Arc<str>,
    writer: Arc<dyn CheckpointWriter>,
    state: Arc<Mutex<State>>,
}

/// A checkpoint written as pending (two-phase): [`PreparedCheckpoint::commit`] makes it the
/// checkpoint.
#[derive(Debug)]
#[must_use = "a prepared checkpoint does nothing until committed"]
pub struct PreparedCheckpoint {
    checkpointer: Checkpointer,
    target: ExtendedSequenceNumber,
}

impl PreparedCheckpoint {
    /// The prepared position.
    pub fn pending_checkpoint(&self) -> &ExtendedSequenceNumber {
        &self.target
    }

    /// Makes the prepared position the checkpoint and clears the pending one.
    ///
    /// # Errors
    /// As [`Checkpointer::checkpoint_at`].
    pub async fn commit(self) -> Result<(), CheckpointError> {
        self.checkpointer.write(self.target, None, None).await
    }
}

impl Checkpointer {
    /// A checkpointer for `lease_key`, whose stored checkpoint is `last_checkpoint`.
    pub fn new(
        lease_key: &str,
        writer: Arc<dyn CheckpointWriter>,
        last_checkpoint: ExtendedSequenceNumber,
    ) -> Checkpointer {
        Checkpointer {
            lease_key: Arc::from(lease_key),
            writer,
            state: Arc::new(Mutex::new(State {
                largest_permitted: last_checkpoint.clone(),
                last_checkpoint,
                pending: None,
                closed: None,
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lease this checkpointer writes.
    pub fn lease_key(&self) -> &str {
        &self.lease_key
    }

    /// The last checkpoint written (or found when the shard was picked up).
    pub fn last_checkpoint(&self) -> ExtendedSequenceNumber {
        self.state().last_checkpoint.clone()
    }

    /// The prepared checkpoint, if any.
    pub fn pending_checkpoint(&self) -> Option<ExtendedSequenceNumber> {
        self.state().pending.clone()
    }

    /// The largest position a checkpoint may name now.
    pub fn largest_permitted(&self) -> ExtendedSequenceNumber {
        self.state().largest_permitted.clone()
    }

    /// Called by the worker after delivering records up to `position`.
    pub fn set_largest_permitted(&self, position: ExtendedSequenceNumber) {
        let mut state = self.state();
        if position > state.largest_permitted {
            state.largest_permitted = position;
        }
    }

    /// Called by the worker when the shard has been read to its end: `checkpoint()` then
    /// writes SHARD_END, which lets the child shards start.
    pub fn set_shard_end(&self) {
        self.state().largest_permitted = ExtendedSequenceNumber::SHARD_END;
    }

    /// Called by the worker when the lease is lost: every later call fails with
    /// [`CheckpointError::LeaseLost`].
    pub fn lease_lost(&self) {
        self.state().closed = Some(Closed::LeaseLost);
    }

    /// Called by the worker once the processor has shut down: later calls fail with
    /// [`CheckpointError::Shutdown`].
    pub fn shut_down(&self) {
        let mut state = self.state();
        if state.closed.is_none() {
            state.closed = Some(Closed::Shutdown);
        }
    }

    /// Checkpoints at the last record delivered (SHARD_END at the end of a closed shard).
    ///
    /// # Errors
    /// [`CheckpointError`]: the lease was lost, the checkpointer is shut down, or the store failed.
    pub async fn checkpoint(&self) -> Result<(), CheckpointError> {
        let target = self.largest_permitted();
        self.write(target, None, None).await
    }

    /// Checkpoints at a record: `sequence_number` (and `sub_sequence_number` for a KPL
    /// sub-record), which must lie between the last checkpoint and the last record delivered.
    ///
    /// # Errors
    /// [`CheckpointError::InvalidSequenceNumber`], [`CheckpointError::OutOfRange`], and the
    /// errors of [`Checkpointer::checkpoint`].
    pub async fn checkpoint_at(
        &self,
        sequence_number: &str,
        sub_sequence_number: u64,
    ) -> Result<(), CheckpointError> {
        let target = self.validated(sequence_number, sub_sequence_number)?;
        self.write(target, None, None).await
    }

    /// Stores `sequence_number` as the pending checkpoint, with optional application state,
    /// without moving the checkpoint; commit the returned handle to move it.
    ///
    /// # Errors
    /// As [`Checkpointer::checkpoint_at`].
    pub async fn prepare_checkpoint(
        &self,
        sequence_number: &str,
        sub_sequence_number: u64,
        state: Option<Vec<u8>>,
    ) -> Result<PreparedCheckpoint, CheckpointError> {
        let target = self.validated(sequence_number, sub_sequence_number)?;
        let current = self.last_checkpoint();
        self.write(current, Some(target.clone()), state).await?;
        Ok(PreparedCheckpoint {
            checkpointer: self.clone(),
            target,
        })
    }

    fn validated(
        &self,
        sequence_number: &str,
        sub_sequence_number: u64,
    ) -> Result<ExtendedSequenceNumber, CheckpointError> {
        let target = ExtendedSequenceNumber::new(sequence_number, sub_sequence_number)
            .map_err(|err| CheckpointError::InvalidSequenceNumber(err.0))?;
        let state = self.state();
        let allowed_sentinel =
            target == ExtendedSequenceNumber::SHARD_END && state.largest_permitted == target;
        if target.sequence_number.is_sentinel() && !allowed_sentinel {
            return Err(CheckpointError::InvalidSequenceNumber(
                sequence_number.to_owned(),
            ));
        }
        if target < state.last_checkpoint || target > state.largest_permitted {
            return Err(CheckpointError::OutOfRange {
                requested: target.to_string(),
                last_checkpoint: state.last_checkpoint.to_string(),
                largest_permitted: state.largest_permitted.to_string(),
            });
        }
        Ok(target)
    }

    async fn write(
        &self,
        target: ExtendedSequenceNumber,
        pending: Option<ExtendedSequenceNumber>,
        pending_state: Option<Vec<u8>>,
    ) -> Result<(), CheckpointError> {
        match self.state().closed {
            Some(Closed::LeaseLost) => {
                return Err(CheckpointError::LeaseLost(self.lease_key.to_string()))
            }
            Some(Closed::Shutdown) => {
                return Err(CheckpointError::Shutdown(self.lease_key.to_string()))
            }
            None => {}
        }
        let update = CheckpointUpdate {
            checkpoint: target.to_stored(),
            pending_checkpoint: pending.as_ref().map(ExtendedSequenceNumber::to_stored),
            pending_checkpoint_state: pending_state,
        };
        match self.writer.write_checkpoint(&self.lease_key, &update).await {
            Ok(true) => {
                let mut state = self.state();
                if target > state.last_checkpoint {
                    state.last_checkpoint = target;
                }
                state.pending = pending;
                Ok(())
            }
            Ok(false) => {
                self.lease_lost();
                Err(CheckpointError::LeaseLost(self.lease_key.to_string()))
            }
            Err(err) => Err(CheckpointError::Store(err)),
        }
    }
}
