//! How the store's errors read on the wire: the one place a [`StoreError`] or a rejected
//! record becomes the AWS error code, message and status a client sees.
//!
//! The wording copies the service's, odd spots included (the missing account in a malformed
//! sequence number's message, the missing full stop after some): SDKs and tests match on it.

use crate::kinesis::model::{Rejection, StoreError};
use crate::kinesis::request::names::WireName;
use crate::wire::{ApiError, ErrorKind};

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::StreamNotFound(stream) => ApiError::not_found(format!(
                "Stream {} under account {} not found.",
                stream.name, stream.account
            )),
            StoreError::StreamExists(stream) => ApiError::in_use(format!(
                "Stream {} under account {} already exists.",
                stream.name, stream.account
            )),
            StoreError::ShardNotFound { stream, shard } => ApiError::not_found(format!(
                "Shard {shard} in stream {} under account {} does not exist",
                stream.name, stream.account
            )),
            StoreError::NotActive { stream, status } => ApiError::in_use(format!(
                "Stream {} under account {} not ACTIVE, instead in state {}",
                stream.name,
                stream.account,
                status.wire_name()
            )),
            StoreError::HasConsumers(stream) => ApiError::in_use(format!(
                "Stream {} under account {} has registered consumers.",
                stream.name, stream.account
            )),
            // Queues are the only dependents that read a stream in a way that blocks its
            // deletion (channels turn FAILED instead).
            StoreError::HasReaders { stream, readers } => ApiError::in_use(format!(
                "Stream {} under account {} has {readers} queue(s); delete them with \
                 DeleteQueue before deleting the stream.",
                stream.name, stream.account
            )),
            StoreError::ShardLimit {
                account,
                region,
                open,
                limit,
                additional,
            } => ApiError::limit_exceeded(format!(
                "This request would exceed the shard limit for the account {account} in \
                 {region}. Current shard count for the account: {open}. Limit: {limit}. Number \
                 of additional shards that would have resulted from this request: {additional}."
            )),
            StoreError::ShardClosed { stream, shard } => ApiError::invalid_argument(format!(
                "Shard {shard} in stream {} under account {} has already been merged or split, \
                 and thus is not eligible for merging or splitting.",
                stream.name, stream.account
            )),
            StoreError::SplitOutsideShard {
                stream,
                shard,
                at,
                start,
                end,
            } => ApiError::invalid_argument(format!(
                "NewStartingHashKey {at} used in SplitShard() on shard {shard} in stream {} \
                 under account {} is not both greater than one plus the shard's \
                 StartingHashKey {start} and less than the shard's EndingHashKey {end}.",
                stream.name, stream.account
            )),
            StoreError::NotAdjacent {
                stream,
                first,
                second,
            } => ApiError::invalid_argument(format!(
                "Shards {first} and {second} in stream {} under account {} are not an adjacent \
                 pair of shards eligible for merging",
                stream.name, stream.account
            )),
            StoreError::MalformedSequenceNumber {
                stream,
                shard,
                text,
            } => ApiError::invalid_argument(format!(
                "StartingSequenceNumber {text} used in GetShardIterator on shard {shard} in \
                 stream {stream} under account is invalid."
            )),
            StoreError::SequenceNumberOfOtherShard { encoded, shard } => {
                ApiError::invalid_argument(format!(
                    "Invalid StartingSequenceNumber. It encodes {encoded}, while it was used in \
                     a call to a shard with {shard}"
                ))
            }
            StoreError::Storage(err) => ApiError::from(err),
            StoreError::Internal(what) => ApiError::internal(what),
        }
    }
}

/// The error one rejected record of an append reports: PutRecords lists its code and message
/// in the record's result entry.
pub(crate) fn rejection(rejected: Rejection) -> ApiError {
    match rejected {
        Rejection::ThroughputExceeded { stream, shard } => ApiError::new(
            ErrorKind::ProvisionedThroughputExceeded,
            format!(
                "Rate exceeded for shard {shard} in stream {} under account {}.",
                stream.name, stream.account
            ),
        ),
        Rejection::ShardUnwritable { shard, reason } => {
            ApiError::internal(format!("Shard {shard} cannot store records: {reason}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinesis::model::{Status, StreamName};

    fn stream() -> StreamName {
        StreamName {
            name: "s".to_owned(),
            account: "123456789012".to_owned(),
        }
    }

    /// The wire form of each error, as the service writes it.
    #[test]
    fn store_errors_read_as_the_service_words_them() {
        let cases: Vec<(StoreError, ErrorKind, &str)> = vec![
            (
                StoreError::StreamNotFound(stream()),
                ErrorKind::ResourceNotFound,
                "Stream s under account 123456789012 not found.",
            ),
            (
                StoreError::NotActive {
                    stream: stream(),
                    status: Status::Updating,
                },
                ErrorKind::ResourceInUse,
                "Stream s under account 123456789012 not ACTIVE, instead in state UPDATING",
            ),
            (
                StoreError::HasReaders {
                    stream: stream(),
                    readers: 2,
                },
                ErrorKind::ResourceInUse,
                "Stream s under account 123456789012 has 2 queue(s); delete them with \
                 DeleteQueue before deleting the stream.",
            ),
            (
                StoreError::ShardLimit {
                    account: "123456789012".to_owned(),
                    region: "us-east-1".to_owned(),
                    open: 3,
                    limit: 4,
                    additional: 2,
                },
                ErrorKind::LimitExceeded,
                "This request would exceed the shard limit for the account 123456789012 in \
                 us-east-1. Current shard count for the account: 3. Limit: 4. Number of \
                 additional shards that would have resulted from this request: 2.",
            ),
            (
                StoreError::ShardClosed {
                    stream: stream(),
                    shard: "shardId-000000000000".to_owned(),
                },
                ErrorKind::InvalidArgument,
                "Shard shardId-000000000000 in stream s under account 123456789012 has already \
                 been merged or split, and thus is not eligible for merging or splitting.",
            ),
            (
                StoreError::MalformedSequenceNumber {
                    stream: "s".to_owned(),
                    shard: "shardId-000000000000".to_owned(),
                    text: "x".to_owned(),
                },
                ErrorKind::InvalidArgument,
                "StartingSequenceNumber x used in GetShardIterator on shard \
                 shardId-000000000000 in stream s under account is invalid.",
            ),
            (
                StoreError::Storage(std::io::Error::other("disk full")),
                ErrorKind::InternalFailure,
                "storage failure: disk full",
            ),
        ];
        for (err, kind, message) in cases {
            let api = ApiError::from(err);
            assert_eq!((api.kind, api.message.as_str()), (kind, message));
        }
        let throttled = rejection(Rejection::ThroughputExceeded {
            stream: stream(),
            shard: "shardId-000000000001".to_owned(),
        });
        assert_eq!(
            (throttled.kind.wire_name(), throttled.message.as_str()),
            (
                "ProvisionedThroughputExceededException",
                "Rate exceeded for shard shardId-000000000001 in stream s under account \
                 123456789012."
            )
        );
    }
}
