//! Channels: an account's deliveries from a stream to Amazon S3 or S3 Tables.
//!
//! The emulator keeps a channel's configuration, tags and lifecycle (CREATING, ACTIVE,
//! UPDATING, DELETING, and FAILED once its source stream is gone) exactly as the API reports
//! them; it has no S3 to deliver to. The configuration types below are both the wire shapes
//! and the persisted form, so a restarted emulator describes a channel byte for byte as before.
//!
//! Every member is optional in the types so that a missing required member is reported as the
//! service reports it (a `ValidationException` naming the member), not as a decode failure; the
//! actions validate and fill in defaults before a channel is stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kinesis::model::{Lifecycle, Status};

/// How a source stream's records are read: `RecordConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RecordConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) record_format_type: Option<String>,
    #[serde(rename = "GSRSchemaARN", skip_serializing_if = "Option::is_none")]
    pub(crate) gsr_schema_arn: Option<String>,
}

/// One source stream of a channel: `ChannelStreamConfiguration` on input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamConfig {
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub(crate) stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) record_configuration: Option<RecordConfig>,
}

/// Where undeliverable records go: `DeadLetterQueueS3Configuration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeadLetterQueue {
    #[serde(rename = "BucketARN", skip_serializing_if = "Option::is_none")]
    pub(crate) bucket_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expected_bucket_owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error_output_prefix: Option<String>,
}

/// A general purpose bucket destination's storage: `S3StorageConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct S3Storage {
    #[serde(rename = "BucketARN", skip_serializing_if = "Option::is_none")]
    pub(crate) bucket_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expected_bucket_owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_key_template: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) storage_class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) compression_type: Option<String>,
}

/// `S3DestinationConfiguration` (input) and `S3DestinationDescription` (output).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct S3Destination {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) data_freshness_in_seconds: Option<i64>,
    #[serde(
        rename = "DeadLetterQueueS3Configuration",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) dead_letter_queue: Option<DeadLetterQueue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) storage_configuration: Option<S3Storage>,
}

/// One Iceberg partition field: `PartitionField`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PartitionField {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) transform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) source_name: Option<String>,
}

/// `PartitionSpec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PartitionSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) partition_fields: Option<Vec<PartitionField>>,
}

/// One streaming table: `S3TablesConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct S3Table {
    #[serde(rename = "TableBucketARN", skip_serializing_if = "Option::is_none")]
    pub(crate) table_bucket_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) table_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) compression_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) partition_spec: Option<PartitionSpec>,
}

/// `S3TablesDestinationConfiguration` (input) and `S3TablesDestinationDescription` (output).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct S3TablesDestination {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) data_freshness_in_seconds: Option<i64>,
    #[serde(
        rename = "DeadLetterQueueS3Configuration",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) dead_letter_queue: Option<DeadLetterQueue>,
    #[serde(
        rename = "S3TablesConfigurationList",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) tables: Option<Vec<S3Table>>,
}

/// `ChannelEncryptionConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ChannelEncryption {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) encryption_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_id: Option<String>,
}

/// `CloudWatchLogs` and `CloudWatchLogsUpdateInput`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CloudWatchLogs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) log_group_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) log_stream_name: Option<String>,
}

/// `ChannelLoggingConfiguration` and `ChannelLoggingUpdateInput`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ChannelLogging {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cloud_watch_logs: Option<CloudWatchLogs>,
}

/// A channel's destination: exactly one of the two kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Destination {
    S3(S3Destination),
    S3Tables(S3TablesDestination),
}

impl Destination {
    /// `ChannelDestinationType` as ListChannels reports it.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Destination::S3(_) => "S3",
            Destination::S3Tables(_) => "S3_TABLES",
        }
    }
}

/// A channel's source stream, pinned to the incarnation that existed when the channel was
/// created: a stream deleted and created again under the same name is not this source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChannelSource {
    pub(crate) stream_arn: String,
    pub(crate) stream_created_ms: i64,
    pub(crate) record_configuration: RecordConfig,
}

/// A channel's state as the API spells it: a resource's lifecycle, plus FAILED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelStatus {
    Creating,
    Active,
    Updating,
    Deleting,
    Failed,
}

impl ChannelStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChannelStatus::Creating => "CREATING",
            ChannelStatus::Active => "ACTIVE",
            ChannelStatus::Updating => "UPDATING",
            ChannelStatus::Deleting => "DELETING",
            ChannelStatus::Failed => "FAILED",
        }
    }
}

/// A channel as stored: validated, with the service's defaults filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ChannelMeta {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) arn: String,
    #[serde(flatten)]
    pub(crate) lifecycle: Lifecycle,
    pub(crate) role_arn: String,
    pub(crate) sources: Vec<ChannelSource>,
    pub(crate) destination: Destination,
    pub(crate) encryption: Option<ChannelEncryption>,
    pub(crate) logging: ChannelLogging,
    pub(crate) tags: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) resource_policy: Option<String>,
}

impl ChannelMeta {
    /// The state at `now`, given whether every source stream still exists.
    pub(crate) fn status(&self, now: i64, sources_exist: bool) -> ChannelStatus {
        match self.lifecycle.status(now) {
            Status::Deleting => ChannelStatus::Deleting,
            _ if !sources_exist => ChannelStatus::Failed,
            Status::Creating => ChannelStatus::Creating,
            Status::Updating => ChannelStatus::Updating,
            Status::Active => ChannelStatus::Active,
        }
    }

    /// Whether the channel's deletion has completed.
    pub(crate) fn deleted(&self, now: i64) -> bool {
        self.lifecycle.deleted(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> ChannelMeta {
        ChannelMeta {
            name: "c".to_owned(),
            id: "id".to_owned(),
            arn: "arn".to_owned(),
            lifecycle: Lifecycle::new(0, 100),
            role_arn: "role".to_owned(),
            sources: Vec::new(),
            destination: Destination::S3(S3Destination::default()),
            encryption: None,
            logging: ChannelLogging::default(),
            tags: BTreeMap::new(),
            resource_policy: None,
        }
    }

    #[test]
    fn lifecycle_follows_the_clock_and_deletion_wins() {
        let mut c = channel();
        assert_eq!(c.status(50, true), ChannelStatus::Creating);
        assert_eq!(c.status(100, true), ChannelStatus::Active);
        assert_eq!(c.status(100, false), ChannelStatus::Failed);
        c.lifecycle.updating_until = Some(200);
        assert_eq!(c.status(150, true), ChannelStatus::Updating);
        assert_eq!(c.status(200, true), ChannelStatus::Active);
        c.lifecycle.deleting_until = Some(300);
        assert_eq!(c.status(250, false), ChannelStatus::Deleting);
        assert!(!c.deleted(299));
        assert!(c.deleted(300));
    }

    #[test]
    fn persisted_form_round_trips() {
        let mut c = channel();
        c.destination = Destination::S3Tables(S3TablesDestination {
            data_freshness_in_seconds: Some(600),
            dead_letter_queue: None,
            tables: Some(vec![S3Table {
                namespace: Some("ns".to_owned()),
                ..S3Table::default()
            }]),
        });
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<ChannelMeta>(&json).unwrap(), c);
    }
}
