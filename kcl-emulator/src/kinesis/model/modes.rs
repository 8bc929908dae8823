//! The choices a stream's settings make, as domain values. Their spelling on the wire is the
//! request layer's business (`request::names`); the serde names below are the persisted
//! form, which matches what the metadata held when these were strings.

use serde::{Deserialize, Serialize};

/// How a stream's capacity is managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum CapacityMode {
    /// A fixed number of shards the owner changes.
    #[serde(rename = "PROVISIONED")]
    Provisioned,
    /// Capacity that follows the load; queues and channels read only such streams.
    #[serde(rename = "ON_DEMAND")]
    OnDemand,
}

/// How a stream's records are encrypted at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Encryption {
    #[serde(rename = "NONE")]
    None,
    /// With a KMS key (the key id sits beside it in the settings).
    #[serde(rename = "KMS")]
    Kms,
}

/// How a put chooses the shard for a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RecordDistribution {
    /// By the MD5 of the partition key (or the explicit hash key).
    #[default]
    #[serde(rename = "USER_PARTITION_KEY")]
    UserPartitionKey,
    /// Spread over the open shards whatever the key.
    #[serde(rename = "AUTO")]
    Auto,
}
