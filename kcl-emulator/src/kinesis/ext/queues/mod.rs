//! Queues: CreateQueue, DescribeQueue, ListQueues, UpdateQueue, DeleteQueue, and the record
//! operations ReceiveQueueRecords, AcknowledgeQueueRecords, UpdateQueueRecordsVisibility and
//! their dead-letter counterparts, with RestoreDeadLetterQueueRecords.
//!
//! The delivery rules live in [`model`]; this module validates requests, finds
//! the queue and its stream, waits for records on long polls and shapes the responses.

mod delivery;
pub(crate) mod model;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::lookup::{new_resource_id, with_live, ListByStreamInput};
use super::resources::{change_registered, queues_reading};
use crate::kinesis::model::{CapacityMode, Lifecycle, Status, Stream};
use crate::kinesis::request::names::WireName;
use crate::kinesis::request::validate::{
    check_count, check_enum, check_length, check_resource_arn, invalid, null, required,
    validate_name, validate_range, validate_tags,
};
use crate::kinesis::request::{epoch_seconds, StreamRef, MAX_CONSUMERS};
use crate::kinesis::KinesisStore;
use crate::wire::validation;
use crate::wire::{ApiError, ApiResult};
pub(crate) use delivery::*;
use model::{
    delivers, Delivered, EntryError, Path, QueueMeta, ReceiptHandle, ReceiveRequest, ShardsSource,
    Start,
};

/// A queue's visibility timeout unless its attributes name one.
const DEFAULT_VISIBILITY_TIMEOUT_SECS: u32 = 30;
/// Receives before a record becomes a dead-letter record, unless the attributes say otherwise.
const DEFAULT_MAX_RECEIVE_COUNT: u32 = 6;
/// Records a receive returns unless `Limit` says fewer.
const DEFAULT_RECEIVE_LIMIT: i64 = 10;
/// How long a receive waits for a visible record unless `WaitTimeSeconds` says otherwise.
const DEFAULT_WAIT_SECS: i64 = 9;
/// Most queue summaries one ListQueues page holds.
const LIST_PAGE_LIMIT: usize = 100;

const STARTING_POSITIONS: &[&str] = &["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"];
const TARGET_TYPES: &[&str] = &["BUILT_IN", "NONE"];

// Shapes shared by input and output.

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StartingPosition {
    #[serde(rename = "Type", skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QueueStreamConfig {
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    stream_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_position: Option<StartingPosition>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeadLetterConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    target_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_receive_count: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QueueAttributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    visibility_timeout_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dead_letter_configuration: Option<DeadLetterConfiguration>,
}

/// Validated attributes: the visibility timeout and dead-letter setting to apply, each `None`
/// when the request left it out.
struct AttributeChange {
    visibility_timeout_secs: Option<u32>,
    max_receive_count: Option<Option<u32>>,
}

fn check_attributes(attributes: &QueueAttributes) -> ApiResult<AttributeChange> {
    validate_range(
        attributes.visibility_timeout_seconds,
        0,
        43_200,
        "queueAttributes.visibilityTimeoutSeconds",
    )?;
    let max_receive_count = match &attributes.dead_letter_configuration {
        None => None,
        Some(config) => {
            const MEMBER: &str = "queueAttributes.deadLetterConfiguration";
            let target = required(&config.target_type, &format!("{MEMBER}.targetType"))?;
            check_enum(target, TARGET_TYPES, &format!("{MEMBER}.targetType"))?;
            validate_range(
                config.max_receive_count,
                1,
                1_000,
                &format!("{MEMBER}.maxReceiveCount"),
            )?;
            Some(match (target.as_str(), config.max_receive_count) {
                ("BUILT_IN", Some(count)) => Some(count as u32),
                ("BUILT_IN", None) => {
                    return Err(ApiError::validation(
                        "MaxReceiveCount is required when TargetType is BUILT_IN.",
                    ))
                }
                (_, None) => None,
                (_, Some(_)) => {
                    return Err(ApiError::validation(
                        "MaxReceiveCount applies only when TargetType is BUILT_IN.",
                    ))
                }
            })
        }
    };
    Ok(AttributeChange {
        visibility_timeout_secs: attributes.visibility_timeout_seconds.map(|s| s as u32),
        max_receive_count,
    })
}

fn check_queue_arn(arn: &Option<String>) -> ApiResult<&str> {
    let arn = required(arn, "queueARN")?;
    check_resource_arn(arn, "queue", "queueARN")?;
    Ok(arn)
}

/// Runs `act` on the queue `arn` names under the queues' lock (see [`with_live`]).
pub(crate) fn with_queue<T>(
    store: &KinesisStore,
    arn: &str,
    act: impl FnOnce(&mut QueueMeta, i64) -> ApiResult<T>,
) -> ApiResult<T> {
    with_live(store, &mut store.dependents().queues(), arn, act)
}

/// Runs `act` on the queue `arn` names, as [`with_queue`] does, and keeps the change through
/// the store, which saves it or undoes it.
pub(crate) fn change_queue<T>(
    store: &KinesisStore,
    arn: &str,
    act: impl FnOnce(&mut QueueMeta, i64) -> ApiResult<T>,
) -> ApiResult<T> {
    change_registered(store, |queues: &mut Vec<QueueMeta>, _| {
        with_live(store, queues, arn, act).map(|result| (result, arn.to_owned()))
    })
}

/// What most calls need of a queue, without copying its delivery state.
pub(crate) struct Located {
    pub(crate) status: Status,
    pub(crate) stream_name: String,
}

/// The status and stream of the queue `arn` names (see [`with_queue`]).
pub(crate) fn locate_queue(store: &KinesisStore, arn: &str) -> ApiResult<Located> {
    with_queue(store, arn, |q, now| {
        Ok(Located {
            status: q.status(now),
            stream_name: q.stream_name.clone(),
        })
    })
}

// Descriptions.

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QueueDescription {
    queue_name: String,
    #[serde(rename = "QueueARN")]
    queue_arn: String,
    queue_status: &'static str,
    queue_creation_timestamp: f64,
    stream_configuration_list: Vec<QueueStreamConfig>,
    queue_attributes: QueueAttributes,
}

fn describe_queue_meta(queue: &QueueMeta, now: i64) -> QueueDescription {
    let status = queue.status(now);
    // The resolved start time is reported once the queue is ACTIVE; before that, only a time
    // the request named.
    let timestamp = (queue.timestamp_requested || status != Status::Creating)
        .then(|| epoch_seconds(queue.starting_timestamp_ms));
    QueueDescription {
        queue_name: queue.name.clone(),
        queue_arn: queue.arn.clone(),
        queue_status: status.wire_name(),
        queue_creation_timestamp: epoch_seconds(queue.lifecycle.created_ms),
        stream_configuration_list: vec![QueueStreamConfig {
            stream_arn: Some(queue.stream_arn.clone()),
            starting_position: Some(StartingPosition {
                kind: Some(queue.starting_position.clone()),
                timestamp,
            }),
        }],
        queue_attributes: QueueAttributes {
            visibility_timeout_seconds: Some(i64::from(queue.visibility_timeout_secs)),
            dead_letter_configuration: Some(match queue.max_receive_count {
                Some(count) => DeadLetterConfiguration {
                    target_type: Some("BUILT_IN".to_owned()),
                    max_receive_count: Some(i64::from(count)),
                },
                None => DeadLetterConfiguration {
                    target_type: Some("NONE".to_owned()),
                    max_receive_count: None,
                },
            }),
        },
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescriptionOutput {
    queue_description: QueueDescription,
}

// CreateQueue.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateInput {
    queue_name: Option<String>,
    stream_configuration_list: Option<Vec<QueueStreamConfig>>,
    #[serde(default)]
    queue_attributes: QueueAttributes,
    tags: Option<BTreeMap<String, String>>,
}

pub(crate) async fn create(
    store: &KinesisStore,
    input: CreateInput,
) -> ApiResult<DescriptionOutput> {
    let name = required(&input.queue_name, "queueName")?.clone();
    validate_name(&name, "queueName")?;
    let streams = required(&input.stream_configuration_list, "streamConfigurationList")?;
    check_count(streams, 1, 10_000, "streamConfigurationList")?;
    for (at, config) in streams.iter().enumerate() {
        let member = format!("streamConfigurationList.{}.member", at + 1);
        required(&config.stream_arn, &format!("{member}.streamARN"))?;
        if let Some(position) = &config.starting_position {
            let kind = required(&position.kind, &format!("{member}.startingPosition.type"))?;
            check_enum(
                kind,
                STARTING_POSITIONS,
                &format!("{member}.startingPosition.type"),
            )?;
            match (kind.as_str(), position.timestamp) {
                ("AT_TIMESTAMP", None) => {
                    return Err(null(&format!("{member}.startingPosition.timestamp")))
                }
                ("AT_TIMESTAMP", Some(_)) | (_, None) => {}
                (_, Some(_)) => {
                    return Err(ApiError::validation(format!(
                        "Timestamp can be specified only when the starting position Type is \
                         AT_TIMESTAMP, not {kind}."
                    )))
                }
            }
        }
    }
    let attributes = check_attributes(&input.queue_attributes)?;
    if let Some(tags) = &input.tags {
        if tags.is_empty() || tags.len() > 200 {
            return Err(validation::invalid_unshown(
                "tags",
                "Member must have length between 1 and 200",
            ));
        }
    }
    let tags = input.tags.clone().unwrap_or_default();
    validate_tags(&tags, 0)?;
    if streams.len() > 1 {
        return Err(ApiError::invalid_argument(
            "A queue delivers records from a single data stream: StreamConfigurationList must \
             hold exactly one entry.",
        ));
    }
    let config = &streams[0];
    let stream = StreamRef {
        name: None,
        arn: config.stream_arn.clone(),
    }
    .resolve(store)?;
    let position = config.starting_position.clone().unwrap_or_default();
    let kind = position.kind.unwrap_or_else(|| "LATEST".to_owned());
    let id = new_resource_id();
    let queue = change_registered(store, |queues: &mut Vec<QueueMeta>, now| {
        // The queues' lock, then the stream's, held until the queue is in place: DeleteStream,
        // UpdateStreamMode and RegisterStreamConsumer take them in the same order, so their
        // checks and this one cannot interleave.
        queues.retain(|q| !q.deleted(now));
        if queues.iter().any(|q| q.name == name) {
            return Err(ApiError::in_use(format!(
                "Queue {name} under account {} already exists.",
                store.config.account_id
            )));
        }
        let state = stream.lock();
        store.require_active(&stream, &state)?;
        if state.settings.mode != CapacityMode::OnDemand {
            return Err(ApiError::validation(format!(
                "Stream {} is in {} capacity mode; queues are supported only on streams in \
                 ON_DEMAND capacity mode.",
                stream.name,
                state.settings.mode.wire_name()
            )));
        }
        let consumers = state
            .settings
            .consumers
            .iter()
            .filter(|c| !c.deleted(now))
            .count();
        if consumers + queues_reading(queues, &stream.arn, now) >= MAX_CONSUMERS {
            return Err(ApiError::limit_exceeded(format!(
                "Stream {} already has {MAX_CONSUMERS} registered consumers and queues, \
                 the most it may have.",
                stream.name
            )));
        }
        let stream_created_ms = state.settings.created_ms;
        let retention_ms = i64::from(state.settings.retention_hours) * 3_600_000;
        let earliest_readable_ms = stream_created_ms.max(now - retention_ms);
        drop(state);
        let (start, starting_timestamp_ms) = match kind.as_str() {
            "TRIM_HORIZON" => (Start::AfterCounter(0), earliest_readable_ms),
            "AT_TIMESTAMP" => {
                let requested = (position.timestamp.unwrap_or_default() * 1000.0).round() as i64;
                (
                    Start::ArrivedFrom(requested),
                    requested.max(earliest_readable_ms),
                )
            }
            _ => (Start::AfterCounter(store.last_assigned_counter()), now),
        };
        let queue = QueueMeta {
            arn: format!(
                "arn:aws:kinesis:{}:{}:queue/{id}",
                store.config.region, store.config.account_id
            ),
            name,
            id,
            serial: store.next_serial(),
            lifecycle: Lifecycle::new(now, store.config.create_delay.as_millis() as i64),
            stream_name: stream.name.clone(),
            stream_arn: stream.arn.clone(),
            stream_created_ms,
            timestamp_requested: kind == "AT_TIMESTAMP",
            starting_position: kind,
            starting_timestamp_ms,
            start,
            visibility_timeout_secs: attributes
                .visibility_timeout_secs
                .unwrap_or(DEFAULT_VISIBILITY_TIMEOUT_SECS),
            max_receive_count: attributes
                .max_receive_count
                .unwrap_or(Some(DEFAULT_MAX_RECEIVE_COUNT)),
            tags,
            resource_policy: None,
            delivery: Default::default(),
            unjournaled: Default::default(),
        };
        queues.push(queue.clone());
        let arn = queue.arn.clone();
        Ok((queue, arn))
    })?;
    Ok(DescriptionOutput {
        queue_description: describe_queue_meta(&queue, store.now_ms()),
    })
}

// DescribeQueue, DeleteQueue, UpdateQueue.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QueueRef {
    #[serde(rename = "QueueARN")]
    queue_arn: Option<String>,
}

pub(crate) async fn describe(
    store: &KinesisStore,
    input: QueueRef,
) -> ApiResult<DescriptionOutput> {
    let arn = check_queue_arn(&input.queue_arn)?;
    Ok(DescriptionOutput {
        queue_description: with_queue(store, arn, |queue, now| {
            Ok(describe_queue_meta(queue, now))
        })?,
    })
}

#[derive(Debug, Serialize)]
pub(crate) struct DeleteOutput {}

pub(crate) async fn delete(store: &KinesisStore, input: QueueRef) -> ApiResult<DeleteOutput> {
    let arn = check_queue_arn(&input.queue_arn)?;
    change_queue(store, arn, |queue, now| {
        // In-flight records are not delivered again and every receipt handle stops working:
        // the queue's delivery state goes with it.
        queue
            .lifecycle
            .begin_delete(now, store.config.delete_delay.as_millis() as i64);
        Ok(())
    })?;
    // Receives waiting on the queue look again, and find it deleting.
    store.dependents().wake_receives();
    Ok(DeleteOutput {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateInput {
    #[serde(rename = "QueueARN")]
    queue_arn: Option<String>,
    queue_attributes: Option<QueueAttributes>,
}

pub(crate) async fn update(
    store: &KinesisStore,
    input: UpdateInput,
) -> ApiResult<DescriptionOutput> {
    let arn = check_queue_arn(&input.queue_arn)?;
    let change = check_attributes(required(&input.queue_attributes, "queueAttributes")?)?;
    let description = change_queue(store, arn, |queue, now| {
        let status = queue.status(now);
        if status != Status::Active {
            return Err(ApiError::in_use(format!(
                "Queue {arn} under account {} not ACTIVE, instead in state {}.",
                store.config.account_id,
                status.wire_name()
            )));
        }
        // A new visibility timeout applies to later receives; records in flight keep theirs.
        if let Some(secs) = change.visibility_timeout_secs {
            queue.visibility_timeout_secs = secs;
        }
        if let Some(max) = change.max_receive_count {
            queue.max_receive_count = max;
        }
        queue
            .lifecycle
            .begin_update(now, store.config.update_delay.as_millis() as i64);
        Ok(describe_queue_meta(queue, now))
    })?;
    Ok(DescriptionOutput {
        queue_description: description,
    })
}

// ListQueues.

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamIdentifier {
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_creation_timestamp: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QueueSummary {
    queue_name: String,
    #[serde(rename = "QueueARN")]
    queue_arn: String,
    queue_status: &'static str,
    queue_creation_timestamp: f64,
    streams: Vec<StreamIdentifier>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListOutput {
    queue_summaries: Vec<QueueSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

pub(crate) async fn list(store: &KinesisStore, input: ListByStreamInput) -> ApiResult<ListOutput> {
    let request = input.check(LIST_PAGE_LIMIT)?;
    let now = store.now_ms();
    let admitted: Vec<QueueSummary> = store
        .dependents()
        .queues()
        .iter()
        .filter(|q| !q.deleted(now))
        .filter(|q| {
            request.admits(
                &q.arn,
                std::iter::once((q.stream_arn.as_str(), q.stream_created_ms)),
            )
        })
        .map(|q| QueueSummary {
            queue_name: q.name.clone(),
            queue_arn: q.arn.clone(),
            queue_status: q.status(now).wire_name(),
            queue_creation_timestamp: epoch_seconds(q.lifecycle.created_ms),
            streams: vec![StreamIdentifier {
                stream_arn: q.stream_arn.clone(),
                stream_creation_timestamp: epoch_seconds(q.stream_created_ms),
            }],
        })
        .collect();
    let (queue_summaries, next_token) = request.page(admitted, |q| &q.queue_arn);
    Ok(ListOutput {
        queue_summaries,
        next_token,
    })
}
