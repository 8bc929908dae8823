//! Checkpoint errors.

use kcl_lease::LeaseError;

/// Why a checkpoint was not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The text is not a sequence number (or names a sentinel that cannot be checkpointed now).
    #[error("{0:?} cannot be checkpointed")]
    InvalidSequenceNumber(String),
    /// The position is before the last checkpoint or after the last record delivered.
    #[error("checkpoint {requested} is outside [{last_checkpoint}, {largest_permitted}]")]
    OutOfRange {
        /// The position asked for.
        requested: String,
        /// The last checkpoint.
        last_checkpoint: String,
        /// The last record delivered.
        largest_permitted: String,
    },
    /// Another worker holds the lease now; this worker may not write its checkpoint.
    #[error("lease {0} was lost: another worker owns the shard")]
    LeaseLost(String),
    /// The shard's processing has ended on this worker.
    #[error("the checkpointer of {0} is shut down")]
    Shutdown(String),
    /// The lease table could not be written.
    #[error("writing the checkpoint")]
    Store(#[source] LeaseError),
}

impl CheckpointError {
    /// Whether the same checkpoint may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CheckpointError::Store(err) if err.is_retryable())
    }

    /// The Java KCL exception a MultiLangDaemon child sees for this error.
    pub fn java_exception_name(&self) -> &'static str {
        match self {
            CheckpointError::InvalidSequenceNumber(_) | CheckpointError::OutOfRange { .. } => {
                "IllegalArgumentException"
            }
            CheckpointError::LeaseLost(_) => "ShutdownException",
            CheckpointError::Shutdown(_) => "ShutdownException",
            CheckpointError::Store(err) if err.is_retryable() => "ThrottlingException",
            CheckpointError::Store(_) => "KinesisClientLibDependencyException",
        }
    }
}
