//! Queues: CreateQueue, DescribeQueue, ListQueues, UpdateQueue, DeleteQueue, and the record
//! operations ReceiveQueueRecords, AcknowledgeQueueRecords, UpdateQueueRecordsVisibility and
//! their dead-letter counterparts, with RestoreDeadLetterQueueRecords.
//!
//! The delivery rules live in [`crate::store::queues`]; this module validates requests, finds
//! the queue and its stream, waits for records on long polls and shapes the responses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::consumers::MAX_CONSUMERS;
use super::validate::{
    check_count, check_enum, check_length, check_resource_arn, invalid, new_resource_id, null,
    required, with_live, ListByStreamInput,
};
use super::{epoch_seconds, validate_name, validate_range, StreamRef};
use crate::error::{ApiError, ApiResult};
use crate::store::queues::{
    delivers, Delivered, Delivery, EntryError, Path, ReceiptHandle, ReceiveRequest, ShardsSource,
    Start,
};
use crate::store::{KinesisStore, Lifecycle, MetaChange, QueueMeta, Status, Stream};

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
    with_live(store, store.queues(), arn, act)
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
        queue_status: status.as_str(),
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
            return Err(ApiError::validation(
                "1 validation error detected: Value at 'tags' failed to satisfy constraint: \
                 Member must have length between 1 and 200",
            ));
        }
    }
    let tags = input.tags.clone().unwrap_or_default();
    super::tags::validate_tags(&tags, 0)?;
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
    let queue = {
        // The queues' lock, then the stream's, held until the queue is in place: DeleteStream,
        // UpdateStreamMode and RegisterStreamConsumer take them in the same order, so their
        // checks and this one cannot interleave.
        let mut queues = store.queues();
        let now = store.now_ms();
        queues.retain(|q| !q.deleted(now));
        if queues.iter().any(|q| q.name == name) {
            return Err(ApiError::in_use(format!(
                "Queue {name} under account {} already exists.",
                store.config.account_id
            )));
        }
        let state = stream.lock();
        store.require_active(&stream, &state)?;
        if state.settings.mode != "ON_DEMAND" {
            return Err(ApiError::validation(format!(
                "Stream {} is in {} capacity mode; queues are supported only on streams in \
                 ON_DEMAND capacity mode.",
                stream.name, state.settings.mode
            )));
        }
        let consumers = state
            .settings
            .consumers
            .iter()
            .filter(|c| !c.deleted(now))
            .count();
        if consumers + crate::store::queues_reading(&queues, &stream.arn, now) >= MAX_CONSUMERS {
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
        };
        queues.push(queue.clone());
        queue
    };
    store.save_change(MetaChange::Queue(&queue.arn))?;
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
    with_queue(store, arn, |queue, now| {
        // In-flight records are not delivered again and every receipt handle stops working:
        // the queue's delivery state goes with it.
        queue
            .lifecycle
            .begin_delete(now, store.config.delete_delay.as_millis() as i64);
        Ok(())
    })?;
    store.save_change(MetaChange::Queue(arn))?;
    // Receives waiting on the queue look again, and find it deleting.
    store.queues_changed.send_modify(|v| *v += 1);
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
    let description = with_queue(store, arn, |queue, now| {
        let status = queue.status(now);
        if status != Status::Active {
            return Err(ApiError::in_use(format!(
                "Queue {arn} under account {} not ACTIVE, instead in state {}.",
                store.config.account_id,
                status.as_str()
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
    store.save_change(MetaChange::Queue(arn))?;
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
            queue_status: q.status(now).as_str(),
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

// ReceiveQueueRecords and ReceiveDeadLetterQueueRecords.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ReceiveInput {
    #[serde(rename = "QueueARN")]
    queue_arn: Option<String>,
    limit: Option<i64>,
    wait_time_seconds: Option<i64>,
    visibility_timeout_seconds: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct QueueRecord {
    receipt_handle: String,
    record_id: String,
    partition_key: String,
    data: String,
    approximate_arrival_timestamp: f64,
    first_receive_timestamp: f64,
    receive_count: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ReceiveOutput {
    queue_records: Vec<QueueRecord>,
}

pub(crate) async fn receive(store: &KinesisStore, input: ReceiveInput) -> ApiResult<ReceiveOutput> {
    receive_on(store, input, Path::Normal).await
}

pub(crate) async fn receive_dead_letters(
    store: &KinesisStore,
    input: ReceiveInput,
) -> ApiResult<ReceiveOutput> {
    receive_on(store, input, Path::DeadLetter).await
}

async fn receive_on(
    store: &KinesisStore,
    input: ReceiveInput,
    path: Path,
) -> ApiResult<ReceiveOutput> {
    let arn = check_queue_arn(&input.queue_arn)?;
    validate_range(input.limit, 1, 10, "limit")?;
    validate_range(input.wait_time_seconds, 1, 20, "waitTimeSeconds")?;
    validate_range(
        input.visibility_timeout_seconds,
        0,
        43_200,
        "visibilityTimeoutSeconds",
    )?;
    let limit = input.limit.unwrap_or(DEFAULT_RECEIVE_LIMIT) as usize;
    let wait = Duration::from_secs(input.wait_time_seconds.unwrap_or(DEFAULT_WAIT_SECS) as u64);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let stream = queue_stream(store, arn)?;
        // Subscribed before looking, so a record appended (or made visible by another
        // request) between the look and the wait still wakes this receive.
        let mut signals: Vec<watch::Receiver<u64>> = stream
            .lock()
            .shards
            .iter()
            .map(|shard| shard.changed.subscribe())
            .chain(std::iter::once(store.queues_changed.subscribe()))
            .collect();
        let (delivered, next_visible_ms) = receive_once(
            store,
            arn,
            &stream,
            path,
            limit,
            input.visibility_timeout_seconds,
        )?;
        if !delivered.is_empty() {
            return Ok(ReceiveOutput {
                queue_records: delivered
                    .into_iter()
                    .map(|d| queue_record(d, &stream))
                    .collect(),
            });
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(ReceiveOutput {
                queue_records: Vec::new(),
            });
        }
        // Nothing signals a visibility timeout running out: that alone is waited for on the
        // clock.
        let wake_at = next_visible_ms.map_or(deadline, |at| {
            let in_ms = (at - store.now_ms()).max(1) as u64;
            deadline.min(now + Duration::from_millis(in_ms))
        });
        let any_signal =
            futures::future::select_all(signals.iter_mut().map(|s| Box::pin(s.changed())));
        tokio::select! {
            // A sender that is gone (its stream was removed) counts as a change: the next
            // look reports what happened.
            _ = any_signal => {}
            () = tokio::time::sleep_until(wake_at) => {}
        }
    }
}

/// The stream of the queue `arn` names, if the queue delivers records now.
fn queue_stream(store: &KinesisStore, arn: &str) -> ApiResult<Arc<Stream>> {
    let queue = locate_queue(store, arn)?;
    let status = queue.status;
    if !delivers(status) {
        return Err(ApiError::invalid_argument(format!(
            "Queue {arn} is {}; it delivers records only while ACTIVE.",
            status.as_str()
        )));
    }
    // Resolve the stream before taking the queues' lock: the lookup may purge deleted
    // streams, which saves metadata, which takes that lock.
    store.stream(&queue.stream_name)
}

/// One attempt at a receive from `stream`, the queue's stream: the records handed out, and
/// when the next record in flight becomes visible again.
fn receive_once(
    store: &KinesisStore,
    arn: &str,
    stream: &Stream,
    path: Path,
    limit: usize,
    visibility_override: Option<i64>,
) -> ApiResult<(Vec<Delivered>, Option<i64>)> {
    let (delivered, before, next_visible_ms) = with_queue(store, arn, |queue, now| {
        // The shard list is read under the queues' lock, so no receive works from a list
        // older than the delivery state it changes.
        let source = ShardsSource(stream.lock().shards.clone());
        let before = store.is_durable().then(|| queue.delivery.clone());
        let visibility_secs =
            visibility_override.unwrap_or(i64::from(queue.visibility_timeout_secs));
        let request = ReceiveRequest {
            now_ms: now,
            limit,
            visibility_ms: visibility_secs * 1000,
            queue_serial: queue.serial,
        };
        let max = queue.max_receive_count;
        let delivered = match path {
            Path::Normal => queue.delivery.receive(&source, queue.start, max, &request),
            Path::DeadLetter => queue.delivery.receive_dead_letters(&source, max, &request),
        };
        Ok((delivered, before, queue.delivery.next_visible_ms(now)))
    })?;
    if !delivered.is_empty() {
        save_or_undo(store, arn, before)?;
    }
    Ok((delivered, next_visible_ms))
}

fn queue_record(delivered: Delivered, stream: &Stream) -> QueueRecord {
    QueueRecord {
        receipt_handle: delivered.handle.encode(),
        // The record's sequence number: the same in every delivery and in every queue on the
        // stream, as the service's record ids are.
        record_id: stream.sequence_number(delivered.record.counter, delivered.shard),
        partition_key: delivered.record.partition_key.to_string(),
        data: base64::engine::general_purpose::STANDARD.encode(&delivered.record.data),
        approximate_arrival_timestamp: epoch_seconds(delivered.record.arrival_ms),
        first_receive_timestamp: epoch_seconds(delivered.first_receive_ms),
        receive_count: delivered.receive_count,
    }
}

// The batch operations.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchEntry {
    receipt_handle: Option<String>,
    visibility_timeout_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchInput {
    #[serde(rename = "QueueARN")]
    queue_arn: Option<String>,
    entries: Option<Vec<BatchEntry>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Succeeded {
    receipt_handle: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Failed {
    receipt_handle: String,
    error_code: &'static str,
    error_message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BatchOutput {
    successful: Vec<Succeeded>,
    failed: Vec<Failed>,
}

/// What a batch operation does to one record.
#[derive(Debug, Clone, Copy)]
enum BatchAction {
    Acknowledge(Path),
    ChangeVisibility(Path),
    Restore,
}

pub(crate) async fn acknowledge(store: &KinesisStore, input: BatchInput) -> ApiResult<BatchOutput> {
    batch(store, input, BatchAction::Acknowledge(Path::Normal))
}

pub(crate) async fn acknowledge_dead_letters(
    store: &KinesisStore,
    input: BatchInput,
) -> ApiResult<BatchOutput> {
    batch(store, input, BatchAction::Acknowledge(Path::DeadLetter))
}

pub(crate) async fn change_visibility(
    store: &KinesisStore,
    input: BatchInput,
) -> ApiResult<BatchOutput> {
    batch(store, input, BatchAction::ChangeVisibility(Path::Normal))
}

pub(crate) async fn change_dead_letter_visibility(
    store: &KinesisStore,
    input: BatchInput,
) -> ApiResult<BatchOutput> {
    batch(
        store,
        input,
        BatchAction::ChangeVisibility(Path::DeadLetter),
    )
}

pub(crate) async fn restore_dead_letters(
    store: &KinesisStore,
    input: BatchInput,
) -> ApiResult<BatchOutput> {
    batch(store, input, BatchAction::Restore)
}

fn batch(store: &KinesisStore, input: BatchInput, action: BatchAction) -> ApiResult<BatchOutput> {
    let arn = check_queue_arn(&input.queue_arn)?;
    let entries = required(&input.entries, "entries")?;
    check_count(entries, 1, 10, "entries")?;
    for (at, entry) in entries.iter().enumerate() {
        let member = format!("entries.{}.member", at + 1);
        check_length(
            required(&entry.receipt_handle, &format!("{member}.receiptHandle"))?,
            1,
            1024,
            &format!("{member}.receiptHandle"),
        )?;
        if let BatchAction::ChangeVisibility(_) = action {
            let seconds = *required(
                &entry.visibility_timeout_seconds,
                &format!("{member}.visibilityTimeoutSeconds"),
            )?;
            if !(0..=43_200).contains(&seconds) {
                return Err(invalid(
                    seconds,
                    &format!("{member}.visibilityTimeoutSeconds"),
                    "Member must have value between 0 and 43200",
                ));
            }
        }
    }
    let queue = locate_queue(store, arn)?;
    let stream = store.stream(&queue.stream_name)?;
    let mut output = BatchOutput {
        successful: Vec::new(),
        failed: Vec::new(),
    };
    let before = with_queue(store, arn, |queue, now| {
        let source = ShardsSource(stream.lock().shards.clone());
        let before = store.is_durable().then(|| queue.delivery.clone());
        queue.delivery.settle(now, queue.max_receive_count);
        let deleting = queue.status(now) == Status::Deleting;
        for entry in entries {
            let text = entry.receipt_handle.clone().unwrap_or_default();
            let outcome = match ReceiptHandle::decode(&text) {
                _ if deleting => Err(EntryError::Invalid(
                    "The queue is being deleted: its receipt handles are no longer valid."
                        .to_owned(),
                )),
                Some(handle) if handle.queue_serial == queue.serial => match action {
                    BatchAction::Acknowledge(path) => {
                        queue.delivery.acknowledge(&source, &handle, path)
                    }
                    BatchAction::ChangeVisibility(path) => queue.delivery.change_visibility(
                        &source,
                        &handle,
                        path,
                        now,
                        entry.visibility_timeout_seconds.unwrap_or_default() * 1000,
                    ),
                    BatchAction::Restore => queue.delivery.restore(&source, &handle, now),
                },
                Some(_) => Err(EntryError::Invalid(
                    "The receipt handle was issued by another queue.".to_owned(),
                )),
                None => Err(EntryError::Invalid(
                    "The receipt handle is not valid.".to_owned(),
                )),
            };
            match outcome {
                Ok(()) => output.successful.push(Succeeded {
                    receipt_handle: text,
                }),
                Err(EntryError::Invalid(message)) => output.failed.push(Failed {
                    receipt_handle: text,
                    error_code: "InvalidArgumentException",
                    error_message: message,
                }),
                Err(EntryError::NotFound(message)) => output.failed.push(Failed {
                    receipt_handle: text,
                    error_code: "ResourceNotFoundException",
                    error_message: message,
                }),
            }
        }
        Ok(before)
    })?;
    if !output.successful.is_empty() {
        save_or_undo(store, arn, before)?;
        // Records made visible again or restored are there for receives already waiting.
        store.queues_changed.send_modify(|v| *v += 1);
    }
    Ok(output)
}

/// Saves the metadata after a change to `arn`'s delivery state; when the save fails, puts
/// back the state from `before` so nothing is answered as done that was not kept.
fn save_or_undo(store: &KinesisStore, arn: &str, before: Option<Delivery>) -> ApiResult<()> {
    let Err(err) = store.save_change(MetaChange::Queue(arn)) else {
        return Ok(());
    };
    if let Some(before) = before {
        let undone = with_queue(store, arn, |queue, _| {
            queue.delivery = before;
            Ok(())
        });
        if let Err(undo_err) = undone {
            tracing::warn!(queue = arn, error = %undo_err, "undoing a delivery change failed");
        }
    }
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewRecord, StreamSettings};
    use crate::Config;

    /// An in-memory store with an ACTIVE one-shard stream and a queue reading it.
    async fn store_with_queue() -> (Arc<KinesisStore>, String) {
        let mut config = Config::embedded();
        config.create_delay = Duration::ZERO;
        let store = Arc::new(KinesisStore::open(&config).unwrap());
        store
            .create_stream("waits", 1, StreamSettings::new(0, 0, "ON_DEMAND"))
            .unwrap();
        let stream_arn = store.stream("waits").unwrap().arn.clone();
        let input = serde_json::from_value(serde_json::json!({
            "QueueName": "waiter",
            "StreamConfigurationList": [{"StreamARN": stream_arn}],
        }))
        .unwrap();
        let created = create(&store, input).await.unwrap();
        (store, created.queue_description.queue_arn)
    }

    /// A long poll sleeps until a put signals the shard: it is subscribed to the shard's
    /// signal while it waits, and with the clock paused it returns the record without any time
    /// passing (a poll that looked again on a timer would need time to pass to see it).
    #[tokio::test(start_paused = true)]
    async fn a_long_poll_is_woken_by_the_put_not_by_a_timer() {
        let (store, queue_arn) = store_with_queue().await;
        let stream = store.stream("waits").unwrap();
        let shard = Arc::clone(&stream.lock().shards[0]);
        let started = tokio::time::Instant::now();
        let waiting = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let input = serde_json::from_value(serde_json::json!({
                    "QueueARN": queue_arn,
                    "WaitTimeSeconds": 20,
                }))
                .unwrap();
                receive(&store, input).await
            })
        };
        // Yielding keeps the paused clock still: the receive runs until it waits.
        for _ in 0..1000 {
            if shard.changed.receiver_count() > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            shard.changed.receiver_count(),
            1,
            "the waiting receive listens to the shard's signal"
        );
        let record = NewRecord {
            partition_key: Arc::from("key"),
            data: bytes::Bytes::from_static(b"late"),
            hash: crate::store::keys::partition_key_hash("key"),
        };
        store.append(&stream, vec![record]).await.unwrap();
        let got = waiting.await.unwrap().unwrap();
        assert_eq!(got.queue_records.len(), 1);
        assert_eq!(got.queue_records[0].partition_key, "key");
        assert_eq!(
            tokio::time::Instant::now(),
            started,
            "no timer fired: the put woke the receive"
        );
    }

    /// Records made visible by another request wake a waiting receive as a put does: the
    /// record handed out with a long visibility timeout comes back as soon as its timeout is
    /// set to zero, with no time passing.
    #[tokio::test(start_paused = true)]
    async fn a_long_poll_is_woken_when_another_request_makes_a_record_visible() {
        let (store, queue_arn) = store_with_queue().await;
        let stream = store.stream("waits").unwrap();
        let record = NewRecord {
            partition_key: Arc::from("key"),
            data: bytes::Bytes::from_static(b"once"),
            hash: crate::store::keys::partition_key_hash("key"),
        };
        store.append(&stream, vec![record]).await.unwrap();
        let receive_input = |wait: i64| {
            serde_json::from_value::<ReceiveInput>(serde_json::json!({
                "QueueARN": queue_arn,
                "WaitTimeSeconds": wait,
                "VisibilityTimeoutSeconds": 3600,
            }))
            .unwrap()
        };
        let first = receive(&store, receive_input(1)).await.unwrap();
        let handle = first.queue_records[0].receipt_handle.clone();
        let started = tokio::time::Instant::now();
        let waiting = {
            let (store, input) = (Arc::clone(&store), receive_input(20));
            tokio::spawn(async move { receive(&store, input).await })
        };
        for _ in 0..1000 {
            if store.queues_changed.receiver_count() > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(store.queues_changed.receiver_count(), 1);
        let input = serde_json::from_value(serde_json::json!({
            "QueueARN": queue_arn,
            "Entries": [{"ReceiptHandle": handle, "VisibilityTimeoutSeconds": 0}],
        }))
        .unwrap();
        let changed = change_visibility(&store, input).await.unwrap();
        assert_eq!(changed.successful.len(), 1);
        let got = waiting.await.unwrap().unwrap();
        assert_eq!(got.queue_records.len(), 1);
        assert_eq!(got.queue_records[0].receive_count, 2);
        assert_eq!(tokio::time::Instant::now(), started, "no timer fired");
    }
}
