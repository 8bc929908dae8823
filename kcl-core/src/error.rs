//! kcl-core errors.

use kcl_lease::LeaseError;

/// What stops a scheduler from running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder setting is missing or invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The lease table could not be used.
    #[error("lease table")]
    Lease(#[from] LeaseError),
    /// A Kinesis call failed for good.
    #[error("Kinesis {operation} failed: {message}")]
    Kinesis {
        /// The operation.
        operation: &'static str,
        /// What the service or transport said.
        message: String,
    },
}

impl Error {
    /// Whether Kinesis answered that the stream (or shard) does not exist.
    pub fn is_resource_not_found(&self) -> bool {
        matches!(self, Error::Kinesis { message, .. } if message.starts_with("ResourceNotFoundException"))
    }

    /// Whether trying again may help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Lease(err) => err.is_retryable(),
            Error::Kinesis { .. } => true,
            Error::Config(_) => false,
        }
    }
}

/// Result of kcl-core operations.
pub type Result<T> = std::result::Result<T, Error>;
