//! CreateStream, DeleteStream, DescribeStream, DescribeStreamSummary, ListStreams.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{stream_mode, StreamModeDetails};
use crate::kinesis::model::{CapacityMode, Shard, Stream, StreamSettings, StreamState};
use crate::kinesis::request::names::WireName;
use crate::kinesis::request::validate::{
    check_shard_id, validate_range, validate_stream_name, validate_tags,
};
use crate::kinesis::request::{decode_token, encode_token, epoch_seconds, StreamRef};
use crate::kinesis::KinesisStore;
use crate::wire::validation;
use crate::wire::{ApiError, ApiResult};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateStreamInput {
    stream_name: Option<String>,
    shard_count: Option<i64>,
    stream_mode_details: Option<StreamModeDetails>,
    tags: Option<BTreeMap<String, String>>,
    #[serde(rename = "WarmThroughputMiBps")]
    warm_throughput_mibps: Option<i64>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_in_kib: Option<i64>,
}

/// Empty output shared by actions that return nothing.
#[derive(Debug, Serialize)]
pub(crate) struct Empty {}

/// Open shards an ON_DEMAND stream starts with, as on AWS.
const ON_DEMAND_INITIAL_SHARDS: u32 = 4;

pub(crate) async fn create_stream(
    store: &KinesisStore,
    input: CreateStreamInput,
) -> ApiResult<Empty> {
    let name = input
        .stream_name
        .ok_or_else(|| validation::null("streamName"))?;
    validate_stream_name(&name)?;
    validate_range(input.shard_count, 1, 100_000, "shardCount")?;
    validate_range(
        input.max_record_size_in_kib,
        1024,
        10_240,
        "maxRecordSizeInKiB",
    )?;
    let mode = match input.stream_mode_details {
        None if input.shard_count.is_some() => CapacityMode::Provisioned,
        None => CapacityMode::OnDemand,
        Some(details) => stream_mode(&details.stream_mode)?,
    };
    let shard_count = match (mode, input.shard_count) {
        (_, Some(count)) => count as u32,
        (CapacityMode::Provisioned, None) => {
            return Err(ApiError::invalid_argument(
                "ShardCount is required for streams in PROVISIONED mode",
            ))
        }
        (CapacityMode::OnDemand, None) => ON_DEMAND_INITIAL_SHARDS,
    };
    let tags = input.tags.unwrap_or_default();
    validate_tags(&tags, 0)?;
    let now = store.now_ms();
    let mut settings = StreamSettings::new(
        now,
        now + store.config.create_delay.as_millis() as i64,
        mode,
    );
    settings.tags = tags;
    settings.warm_throughput_mibps = input.warm_throughput_mibps.map(|v| v as u32);
    if let Some(kib) = input.max_record_size_in_kib {
        settings.max_record_size_kib = kib as u32;
    }
    store.create_stream(&name, shard_count, settings)?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DeleteStreamInput {
    #[serde(flatten)]
    stream: StreamRef,
    enforce_consumer_deletion: Option<bool>,
}

pub(crate) async fn delete_stream(
    store: &KinesisStore,
    input: DeleteStreamInput,
) -> ApiResult<Empty> {
    let stream = input.stream.resolve(store)?;
    // EnforceConsumerDeletion=true deletes the consumers with the stream; without it, a stream
    // with consumers cannot be deleted.
    store.delete_stream(&stream, !input.enforce_consumer_deletion.unwrap_or(false))?;
    Ok(Empty {})
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HashKeyRange {
    pub(crate) starting_hash_key: String,
    pub(crate) ending_hash_key: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SequenceNumberRange {
    starting_sequence_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ending_sequence_number: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ShardOutput {
    shard_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    adjacent_parent_shard_id: Option<String>,
    hash_key_range: HashKeyRange,
    sequence_number_range: SequenceNumberRange,
}

impl ShardOutput {
    pub(crate) fn new(stream: &Stream, shard: &Shard) -> ShardOutput {
        let ending = shard.lock().ending_counter;
        ShardOutput {
            shard_id: shard.id.clone(),
            parent_shard_id: shard.parent.clone(),
            adjacent_parent_shard_id: shard.adjacent_parent.clone(),
            hash_key_range: HashKeyRange {
                starting_hash_key: shard.start_hash.to_string(),
                ending_hash_key: shard.end_hash.to_string(),
            },
            sequence_number_range: SequenceNumberRange {
                starting_sequence_number: stream
                    .sequence_number(shard.starting_counter, shard.index),
                ending_sequence_number: ending.map(|c| stream.sequence_number(c, shard.index)),
            },
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EnhancedMetrics {
    shard_level_metrics: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescribeStreamInput {
    #[serde(flatten)]
    stream: StreamRef,
    limit: Option<i64>,
    exclusive_start_shard_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamDescription {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_status: &'static str,
    stream_mode_details: StreamModeDetails,
    shards: Vec<ShardOutput>,
    has_more_shards: bool,
    retention_period_hours: u32,
    stream_creation_timestamp: f64,
    enhanced_monitoring: Vec<EnhancedMetrics>,
    encryption_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescribeStreamOutput {
    stream_description: StreamDescription,
}

pub(crate) async fn describe_stream(
    store: &KinesisStore,
    input: DescribeStreamInput,
) -> ApiResult<DescribeStreamOutput> {
    validate_range(input.limit, 1, 10_000, "limit")?;
    if let Some(id) = &input.exclusive_start_shard_id {
        check_shard_id(id, "exclusiveStartShardId")?;
    }
    let stream = input.stream.resolve(store)?;
    let limit = input.limit.unwrap_or(100) as usize;
    let state = stream.lock();
    let now = store.now_ms();
    let after = input
        .exclusive_start_shard_id
        .as_deref()
        .and_then(crate::kinesis::model::keys::shard_index);
    let candidates: Vec<_> = state
        .listed_shards(now)
        .filter(|s| after.is_none_or(|a| s.index > a))
        .collect();
    let shards = candidates
        .iter()
        .take(limit)
        .map(|s| ShardOutput::new(&stream, s))
        .collect();
    Ok(DescribeStreamOutput {
        stream_description: StreamDescription {
            stream_name: stream.name.clone(),
            stream_arn: stream.arn.clone(),
            stream_status: state.status(now).wire_name(),
            stream_mode_details: StreamModeDetails {
                stream_mode: state.settings.mode.wire_name().to_owned(),
            },
            shards,
            has_more_shards: candidates.len() > limit,
            retention_period_hours: state.settings.retention_hours,
            stream_creation_timestamp: epoch_seconds(state.settings.created_ms),
            enhanced_monitoring: vec![EnhancedMetrics {
                shard_level_metrics: state.settings.shard_level_metrics.clone(),
            }],
            encryption_type: state.settings.encryption_type.wire_name().to_owned(),
            key_id: state.settings.key_id.clone(),
        },
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct DescribeStreamSummaryInput {
    #[serde(flatten)]
    stream: StreamRef,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WarmThroughput {
    #[serde(rename = "TargetMiBps")]
    target_mibps: u32,
    #[serde(rename = "CurrentMiBps")]
    current_mibps: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamDescriptionSummary {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_status: &'static str,
    stream_mode_details: StreamModeDetails,
    retention_period_hours: u32,
    stream_creation_timestamp: f64,
    enhanced_monitoring: Vec<EnhancedMetrics>,
    encryption_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    open_shard_count: usize,
    consumer_count: usize,
    /// Queues are counted apart from consumers, though they share the consumer limit.
    queue_count: usize,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_in_kib: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    warm_throughput: Option<WarmThroughput>,
    record_distribution_strategy: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescribeStreamSummaryOutput {
    stream_description_summary: StreamDescriptionSummary,
}

pub(crate) async fn describe_stream_summary(
    store: &KinesisStore,
    input: DescribeStreamSummaryInput,
) -> ApiResult<DescribeStreamSummaryOutput> {
    let stream = input.stream.resolve(store)?;
    let queue_count = store.readers_of(&stream.arn);
    let state = stream.lock();
    Ok(DescribeStreamSummaryOutput {
        stream_description_summary: summary(&stream, &state, queue_count, store.now_ms()),
    })
}

fn summary(
    stream: &Stream,
    state: &StreamState,
    queue_count: usize,
    now: i64,
) -> StreamDescriptionSummary {
    StreamDescriptionSummary {
        stream_name: stream.name.clone(),
        stream_arn: stream.arn.clone(),
        stream_status: state.status(now).wire_name(),
        stream_mode_details: StreamModeDetails {
            stream_mode: state.settings.mode.wire_name().to_owned(),
        },
        retention_period_hours: state.settings.retention_hours,
        stream_creation_timestamp: epoch_seconds(state.settings.created_ms),
        enhanced_monitoring: vec![EnhancedMetrics {
            shard_level_metrics: state.settings.shard_level_metrics.clone(),
        }],
        encryption_type: state.settings.encryption_type.wire_name().to_owned(),
        key_id: state.settings.key_id.clone(),
        open_shard_count: state.open.len(),
        consumer_count: state
            .settings
            .consumers
            .iter()
            .filter(|c| !c.deleted(now))
            .count(),
        queue_count,
        max_record_size_in_kib: state.settings.max_record_size_kib,
        warm_throughput: state
            .settings
            .warm_throughput_mibps
            .map(|mibps| WarmThroughput {
                target_mibps: mibps,
                current_mibps: mibps,
            }),
        record_distribution_strategy: state.settings.record_distribution.wire_name().to_owned(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListStreamsInput {
    limit: Option<i64>,
    exclusive_start_stream_name: Option<String>,
    next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamSummary {
    stream_name: String,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_status: &'static str,
    stream_mode_details: StreamModeDetails,
    stream_creation_timestamp: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListStreamsOutput {
    stream_names: Vec<String>,
    has_more_streams: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
    stream_summaries: Vec<StreamSummary>,
}

pub(crate) async fn list_streams(
    store: &KinesisStore,
    input: ListStreamsInput,
) -> ApiResult<ListStreamsOutput> {
    validate_range(input.limit, 1, 10_000, "limit")?;
    let limit = input.limit.unwrap_or(100) as usize;
    let after = match (&input.next_token, input.exclusive_start_stream_name) {
        (Some(token), None) => Some(decode_token::<String>(token)?),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_argument(
                "NextToken and ExclusiveStartStreamName cannot be provided together.",
            ))
        }
        (None, after) => after,
    };
    let now = store.now_ms();
    let streams: Vec<_> = store
        .streams()
        .into_iter()
        .filter(|s| after.as_ref().is_none_or(|a| s.name > *a))
        .collect();
    let page: Vec<_> = streams.iter().take(limit).collect();
    let has_more = streams.len() > limit;
    Ok(ListStreamsOutput {
        stream_names: page.iter().map(|s| s.name.clone()).collect(),
        has_more_streams: has_more,
        next_token: if has_more {
            page.last().map(|s| encode_token(&s.name))
        } else {
            None
        },
        stream_summaries: page
            .iter()
            .map(|s| {
                let state = s.lock();
                StreamSummary {
                    stream_name: s.name.clone(),
                    stream_arn: s.arn.clone(),
                    stream_status: state.status(now).wire_name(),
                    stream_mode_details: StreamModeDetails {
                        stream_mode: state.settings.mode.wire_name().to_owned(),
                    },
                    stream_creation_timestamp: epoch_seconds(state.settings.created_ms),
                }
            })
            .collect(),
    })
}
