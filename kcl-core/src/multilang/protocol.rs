//! The MultiLangDaemon's line protocol, as the Java daemon speaks it and amazon_kclpy reads it.
//!
//! Daemon -> child, one JSON object per line on the child's stdin; child -> daemon on its stdout.
//! Field names, `null`s and the `action` member on every record are part of the contract:
//! amazon_kclpy indexes them directly (`json_dict["subSequenceNumber"]`), so a missing member
//! is a crash in the child, not a default.

use serde::{Deserialize, Serialize};

/// One record as the child receives it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecordMessage {
    /// Always `"record"`.
    pub action: &'static str,
    /// The payload, base64.
    pub data: String,
    /// The partition key.
    pub partition_key: String,
    /// The record's sequence number.
    pub sequence_number: String,
    /// The sub-record index of a KPL aggregated record, else 0.
    pub sub_sequence_number: u64,
    /// Approximate arrival time, epoch milliseconds.
    pub approximate_arrival_timestamp: i64,
}

/// What the daemon sends.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "action", rename_all = "camelCase")]
#[non_exhaustive]
pub enum DaemonMessage {
    /// Before any records: the shard and where processing resumes.
    #[serde(rename_all = "camelCase")]
    Initialize {
        /// The shard this child processes.
        shard_id: String,
        /// The stored checkpoint's sequence number (or a sentinel such as `TRIM_HORIZON`).
        sequence_number: Option<String>,
        /// The stored checkpoint's sub-sequence number.
        sub_sequence_number: Option<u64>,
    },
    /// A batch of records.
    #[serde(rename_all = "camelCase")]
    ProcessRecords {
        /// How far behind the tip of the shard the batch is.
        millis_behind_latest: i64,
        /// The records, in order.
        records: Vec<RecordMessage>,
    },
    /// The lease went to another worker: no checkpointing is possible any more.
    LeaseLost,
    /// The shard is closed and fully read: the child must checkpoint.
    ShardEnded,
    /// The worker is shutting down: the child may checkpoint.
    ShutdownRequested,
    /// The answer to a child's checkpoint request.
    #[serde(rename_all = "camelCase")]
    Checkpoint {
        /// The sequence number checkpointed (or requested).
        sequence_number: Option<String>,
        /// The sub-sequence number checkpointed (or requested).
        sub_sequence_number: Option<u64>,
        /// `null` on success, else the Java exception name.
        error: Option<String>,
    },
}

impl DaemonMessage {
    /// The `action` name, which the child echoes in `responseFor`.
    pub fn action(&self) -> &'static str {
        match self {
            DaemonMessage::Initialize { .. } => "initialize",
            DaemonMessage::ProcessRecords { .. } => "processRecords",
            DaemonMessage::LeaseLost => "leaseLost",
            DaemonMessage::ShardEnded => "shardEnded",
            DaemonMessage::ShutdownRequested => "shutdownRequested",
            DaemonMessage::Checkpoint { .. } => "checkpoint",
        }
    }

    /// The message as one line of JSON (without the newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("daemon messages always serialize")
    }
}

/// What the child sends.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "action", rename_all = "camelCase")]
#[non_exhaustive]
pub enum ChildMessage {
    /// The child finished handling the action named by `response_for`.
    #[serde(rename_all = "camelCase")]
    Status {
        /// The action this status ends.
        response_for: String,
    },
    /// The child asks for a checkpoint; `null` sequence number means "the last record delivered".
    #[serde(rename_all = "camelCase")]
    Checkpoint {
        /// Where to checkpoint.
        #[serde(default)]
        sequence_number: Option<String>,
        /// The sub-record to checkpoint at.
        #[serde(default)]
        sub_sequence_number: Option<u64>,
    },
}

/// Parses one line from the child. Blank lines are `None` (amazon_kclpy surrounds every message
/// with newlines so stray output cannot run into it).
///
/// # Errors
/// The line is neither blank nor a message this protocol knows.
pub fn parse_child_line(line: &str) -> Result<Option<ChildMessage>, serde_json::Error> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(line).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn daemon_messages_use_the_java_field_names_and_nulls() {
        let init = DaemonMessage::Initialize {
            shard_id: "shardId-000000000001".into(),
            sequence_number: Some("TRIM_HORIZON".into()),
            sub_sequence_number: None,
        };
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&init.to_line()).unwrap(),
            json!({"action": "initialize", "shardId": "shardId-000000000001", "sequenceNumber": "TRIM_HORIZON", "subSequenceNumber": null})
        );
        let batch = DaemonMessage::ProcessRecords {
            millis_behind_latest: 5,
            records: vec![RecordMessage {
                action: "record",
                data: "aGk=".into(),
                partition_key: "k".into(),
                sequence_number: "49".into(),
                sub_sequence_number: 0,
                approximate_arrival_timestamp: 1_700_000_000_000,
            }],
        };
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&batch.to_line()).unwrap(),
            json!({"action": "processRecords", "millisBehindLatest": 5, "records": [{"action": "record", "data": "aGk=", "partitionKey": "k", "sequenceNumber": "49", "subSequenceNumber": 0, "approximateArrivalTimestamp": 1_700_000_000_000_i64}]})
        );
        assert_eq!(
            DaemonMessage::ShardEnded.to_line(),
            r#"{"action":"shardEnded"}"#
        );
        let answer = DaemonMessage::Checkpoint {
            sequence_number: Some("49".into()),
            sub_sequence_number: Some(0),
            error: None,
        };
        assert_eq!(
            answer.to_line(),
            r#"{"action":"checkpoint","sequenceNumber":"49","subSequenceNumber":0,"error":null}"#
        );
    }

    #[test]
    fn child_lines_parse_and_blank_lines_are_skipped() {
        assert_eq!(parse_child_line("  ").unwrap(), None);
        assert_eq!(
            parse_child_line(r#"{"action": "status", "responseFor": "initialize"}"#).unwrap(),
            Some(ChildMessage::Status {
                response_for: "initialize".into()
            })
        );
        assert_eq!(
            parse_child_line(
                r#"{"action": "checkpoint", "sequenceNumber": null, "subSequenceNumber": null}"#
            )
            .unwrap(),
            Some(ChildMessage::Checkpoint {
                sequence_number: None,
                sub_sequence_number: None
            })
        );
        assert!(parse_child_line("not json").is_err());
        assert!(parse_child_line(r#"{"action": "dance"}"#).is_err());
    }
}
