//! What can go wrong in the store, in the store's terms.
//!
//! The store says which rule a request broke and about what; how a client sees that (the
//! AWS error code, the exact message, the HTTP status) is decided in one place above it,
//! `request::errors`, so the model holds no wire wording and the wording has one home.

use super::Status;

/// A stream as errors name it: by name, under the account that owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamName {
    pub(crate) name: String,
    pub(crate) account: String,
}

/// Why a store operation did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The stream does not exist, or its deletion has completed.
    #[error("stream {} not found", .0.name)]
    StreamNotFound(StreamName),
    /// A stream of that name exists already (perhaps still being deleted).
    #[error("stream {} exists", .0.name)]
    StreamExists(StreamName),
    /// The stream exists; the shard does not, or it has expired.
    #[error("shard {shard} of stream {} not found", .stream.name)]
    ShardNotFound { stream: StreamName, shard: String },
    /// The operation needs the stream ACTIVE.
    #[error("stream {} is {status:?}", .stream.name)]
    NotActive { stream: StreamName, status: Status },
    /// DeleteStream was asked to refuse while consumers are registered, and some are.
    #[error("stream {} has registered consumers", .0.name)]
    HasConsumers(StreamName),
    /// Dependents still read the stream and must be deleted first.
    #[error("{readers} dependents read stream {}", .stream.name)]
    HasReaders { stream: StreamName, readers: usize },
    /// The account's open shards would exceed its limit.
    #[error("shard limit {limit} exceeded")]
    ShardLimit {
        account: String,
        region: String,
        open: usize,
        limit: u32,
        additional: usize,
    },
    /// The shard to split or merge has been split or merged already.
    #[error("shard {shard} of stream {} is closed", .stream.name)]
    ShardClosed { stream: StreamName, shard: String },
    /// A split point outside the shard's hash key range (or at its start).
    #[error("split point {at} outside shard {shard}")]
    SplitOutsideShard {
        stream: StreamName,
        shard: String,
        at: u128,
        start: u128,
        end: u128,
    },
    /// Two shards to merge whose hash key ranges do not touch.
    #[error("shards {first} and {second} are not adjacent")]
    NotAdjacent {
        stream: StreamName,
        first: String,
        second: String,
    },
    /// A sequence number that is not one this emulator writes.
    #[error("malformed sequence number {text}")]
    MalformedSequenceNumber {
        stream: String,
        shard: String,
        text: String,
    },
    /// A sequence number of another shard, or of an earlier stream of the same name.
    #[error("sequence number of shard {encoded} used on shard {shard}")]
    SequenceNumberOfOtherShard { encoded: String, shard: String },
    /// Reading or writing the data directory failed.
    #[error("storage failure: {0}")]
    Storage(#[from] std::io::Error),
    /// The store broke one of its own rules (a bug), or its commit thread stopped.
    #[error("{0}")]
    Internal(&'static str),
}

/// The result of a store operation.
pub(crate) type StoreResult<T> = Result<T, StoreError>;

/// Why one record of an append was not stored (the others may have been).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// The shard took all the records and bytes it accepts this second.
    ThroughputExceeded { stream: StreamName, shard: String },
    /// A write to the shard's log failed earlier: its tail is unknown, so it takes no more.
    ShardUnwritable { shard: String, reason: String },
}
