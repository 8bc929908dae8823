//! Errors of the lease layer.
//!
//! A lost conditional write is not an error: store methods return `Ok(false)` for it, as the
//! Java KCL's `renewLease` does. Errors are for what the caller cannot take as an answer.

/// What went wrong talking to the lease table.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// The table or an item could not be reached; `retryable` says whether trying again may help
    /// (throttling, timeouts, 5xx).
    #[error("lease table request {operation} failed: {message}")]
    Store {
        /// The store operation (e.g. `renew`).
        operation: &'static str,
        /// What the store said.
        message: String,
        /// Whether a retry may succeed.
        retryable: bool,
    },
    /// An item in the table does not have the lease schema.
    #[error("lease {lease_key} in the table is malformed: {reason}")]
    Malformed {
        /// The item's key.
        lease_key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The lease table does not exist and was not to be created.
    #[error("lease table {0} does not exist")]
    TableMissing(String),
    /// The lease is not held by this worker.
    #[error("lease {0} is not held by this worker")]
    NotHeld(String),
}

impl LeaseError {
    /// Whether trying the same operation again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LeaseError::Store {
                retryable: true,
                ..
            }
        )
    }
}

/// Result of a lease operation.
pub type Result<T> = std::result::Result<T, LeaseError>;
