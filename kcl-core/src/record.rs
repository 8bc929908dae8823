//! The records handed to processors.

use bytes::Bytes;

/// One user record: a Kinesis record, or one sub-record of a KPL aggregated record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KinesisClientRecord {
    /// The Kinesis record's sequence number (shared by all sub-records of an aggregate).
    pub sequence_number: String,
    /// The index of the sub-record in its aggregate; 0 for records that were not aggregated.
    pub sub_sequence_number: u64,
    /// The partition key (of the sub-record, for aggregates).
    pub partition_key: String,
    /// The explicit hash key the sub-record was written with, if any.
    pub explicit_hash_key: Option<String>,
    /// The payload.
    pub data: Bytes,
    /// When Kinesis received the record, in milliseconds since the epoch.
    pub approximate_arrival_timestamp_ms: Option<i64>,
    /// Whether this record came out of a KPL aggregated record.
    pub aggregated: bool,
}

impl From<&aws_sdk_kinesis::types::Record> for KinesisClientRecord {
    /// The record as Kinesis returned it, before any de-aggregation.
    fn from(record: &aws_sdk_kinesis::types::Record) -> Self {
        KinesisClientRecord {
            sequence_number: record.sequence_number().to_owned(),
            sub_sequence_number: 0,
            partition_key: record.partition_key().unwrap_or_default().to_owned(),
            explicit_hash_key: None,
            data: Bytes::copy_from_slice(record.data().as_ref()),
            approximate_arrival_timestamp_ms: record
                .approximate_arrival_timestamp()
                .and_then(|t| t.to_millis().ok()),
            aggregated: false,
        }
    }
}
