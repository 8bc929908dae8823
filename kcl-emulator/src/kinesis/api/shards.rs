//! ListShards, SplitShard, MergeShards, UpdateShardCount.

use serde::{Deserialize, Serialize};

use super::streams::{Empty, ShardOutput};
use crate::kinesis::model::keys::{parse_hash_key, shard_index};
use crate::kinesis::model::{retention_ms, CapacityMode, Shard};
use crate::kinesis::request::validate::{check_shard_id, validate_range};
use crate::kinesis::request::{decode_token, encode_token, StreamRef};
use crate::kinesis::KinesisStore;
use crate::wire::validation;
use crate::wire::{ApiError, ApiResult};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ShardFilter {
    #[serde(rename = "Type")]
    kind: String,
    shard_id: Option<String>,
    timestamp: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListShardsInput {
    #[serde(flatten)]
    stream: StreamRef,
    next_token: Option<String>,
    exclusive_start_shard_id: Option<String>,
    max_results: Option<i64>,
    stream_creation_timestamp: Option<f64>,
    shard_filter: Option<ShardFilter>,
}

/// What a ListShards NextToken remembers.
#[derive(Debug, Serialize, Deserialize)]
struct ListShardsToken {
    stream: String,
    after: u32,
    filter: Option<(String, Option<String>, Option<f64>)>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListShardsOutput {
    shards: Vec<ShardOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

pub(crate) async fn list_shards(
    store: &KinesisStore,
    input: ListShardsInput,
) -> ApiResult<ListShardsOutput> {
    validate_range(input.max_results, 1, 10_000, "maxResults")?;
    if let Some(id) = &input.exclusive_start_shard_id {
        check_shard_id(id, "exclusiveStartShardId")?;
    }
    if let Some(id) = input
        .shard_filter
        .as_ref()
        .and_then(|f| f.shard_id.as_ref())
    {
        check_shard_id(id, "shardFilter.shardId")?;
    }
    let limit = input.max_results.unwrap_or(1000) as usize;
    let (stream_name, mut after, filter) = match input.next_token {
        Some(token) => {
            if input.stream.name.is_some()
                || input.stream.arn.is_some()
                || input.exclusive_start_shard_id.is_some()
                || input.stream_creation_timestamp.is_some()
                || input.shard_filter.is_some()
            {
                return Err(ApiError::invalid_argument(
                    "NextToken and StreamName cannot be provided together.",
                ));
            }
            let token: ListShardsToken = decode_token(&token)?;
            (token.stream, Some(token.after), token.filter)
        }
        None => {
            let name = input.stream.name_in(store)?;
            let after = match &input.exclusive_start_shard_id {
                Some(id) => Some(shard_index(id).ok_or_else(|| {
                    ApiError::invalid_argument(format!("Invalid ExclusiveStartShardId {id}"))
                })?),
                None => None,
            };
            let filter = input
                .shard_filter
                .map(|f| (f.kind, f.shard_id, f.timestamp));
            (name, after, filter)
        }
    };
    let stream = store.stream(&stream_name)?;
    let state = stream.lock();
    let now = store.now_ms();
    let retention_cutoff = now - retention_ms(state.settings.retention_hours);
    if let Some((kind, shard_id, _)) = &filter {
        if kind == "AFTER_SHARD_ID" {
            let id = shard_id.as_deref().ok_or_else(|| {
                ApiError::invalid_argument(
                    "ShardId is required for ShardFilter type AFTER_SHARD_ID",
                )
            })?;
            let index = shard_index(id)
                .ok_or_else(|| ApiError::invalid_argument(format!("Invalid ShardId {id}")))?;
            after = Some(after.map_or(index, |a| a.max(index)));
        }
    }
    let keep = |shard: &Shard| -> ApiResult<bool> {
        let Some((kind, _, timestamp)) = &filter else {
            return Ok(true);
        };
        let log = shard.lock();
        let open = log.ending_counter.is_none();
        let at_ms = timestamp.map(|t| (t * 1000.0) as i64);
        Ok(match kind.as_str() {
            "AFTER_SHARD_ID" | "FROM_TRIM_HORIZON" => true,
            "AT_LATEST" => open,
            // Shards that were open at the trim horizon: still open, or closed with records
            // still retained.
            "AT_TRIM_HORIZON" => {
                shard.parent.is_none()
                    || open
                    || log
                        .records
                        .front()
                        .is_some_and(|r| r.arrival_ms >= retention_cutoff)
            }
            "AT_TIMESTAMP" | "FROM_TIMESTAMP" => {
                let at = at_ms.ok_or_else(|| {
                    ApiError::invalid_argument(format!(
                        "Timestamp is required for ShardFilter type {kind}"
                    ))
                })?;
                let closed_before = !open && log.records.back().is_none_or(|r| r.arrival_ms < at);
                if kind == "AT_TIMESTAMP" {
                    !closed_before
                        && (shard.parent.is_none()
                            || log.records.front().is_none_or(|r| r.arrival_ms <= at)
                            || open)
                } else {
                    !closed_before
                }
            }
            other => {
                return Err(validation::invalid(other, "shardFilter.type", "Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]"))
            }
        })
    };
    let mut selected = Vec::new();
    let mut more = false;
    for shard in state
        .listed_shards(now)
        .filter(|s| after.is_none_or(|a| s.index > a))
    {
        if !keep(shard)? {
            continue;
        }
        if selected.len() == limit {
            more = true;
            break;
        }
        selected.push(shard);
    }
    let next_token = more.then(|| {
        encode_token(&ListShardsToken {
            stream: stream.name.clone(),
            after: selected.last().map_or(0, |s| s.index),
            filter: filter.clone(),
        })
    });
    Ok(ListShardsOutput {
        shards: selected
            .iter()
            .map(|s| ShardOutput::new(&stream, s))
            .collect(),
        next_token,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SplitShardInput {
    #[serde(flatten)]
    stream: StreamRef,
    shard_to_split: String,
    new_starting_hash_key: String,
}

pub(crate) async fn split_shard(store: &KinesisStore, input: SplitShardInput) -> ApiResult<Empty> {
    check_shard_id(&input.shard_to_split, "shardToSplit")?;
    let stream = input.stream.resolve(store)?;
    let at = parse_hash_key(&input.new_starting_hash_key).ok_or_else(|| {
        validation::invalid(
            &input.new_starting_hash_key,
            "newStartingHashKey",
            "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})",
        )
    })?;
    store.split_shard(&stream, &input.shard_to_split, at)?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MergeShardsInput {
    #[serde(flatten)]
    stream: StreamRef,
    shard_to_merge: String,
    adjacent_shard_to_merge: String,
}

pub(crate) async fn merge_shards(
    store: &KinesisStore,
    input: MergeShardsInput,
) -> ApiResult<Empty> {
    check_shard_id(&input.shard_to_merge, "shardToMerge")?;
    check_shard_id(&input.adjacent_shard_to_merge, "adjacentShardToMerge")?;
    let stream = input.stream.resolve(store)?;
    store.merge_shards(
        &stream,
        &input.shard_to_merge,
        &input.adjacent_shard_to_merge,
    )?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateShardCountInput {
    #[serde(flatten)]
    stream: StreamRef,
    target_shard_count: i64,
    scaling_type: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateShardCountOutput {
    stream_name: String,
    current_shard_count: u32,
    target_shard_count: u32,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
}

pub(crate) async fn update_shard_count(
    store: &KinesisStore,
    input: UpdateShardCountInput,
) -> ApiResult<UpdateShardCountOutput> {
    validate_range(
        Some(input.target_shard_count),
        1,
        100_000,
        "targetShardCount",
    )?;
    if input.scaling_type != "UNIFORM_SCALING" {
        return Err(validation::invalid(
            &input.scaling_type,
            "scalingType",
            "Member must satisfy enum value set: [UNIFORM_SCALING]",
        ));
    }
    let stream = input.stream.resolve(store)?;
    let target = input.target_shard_count as u32;
    {
        let state = stream.lock();
        if state.settings.mode == CapacityMode::OnDemand {
            return Err(ApiError::validation(format!(
                "UpdateShardCount is not supported for stream {} in ON_DEMAND mode.",
                stream.name
            )));
        }
        let current = state.open.len() as u32;
        if target > current * 2 || target * 2 < current {
            return Err(ApiError::limit_exceeded(format!(
                "UpdateShardCount cannot scale stream {} from {current} to {target} shards: the \
                 target must be between half and double the current open shard count.",
                stream.name
            )));
        }
    }
    let current = store.update_shard_count(&stream, target)?;
    Ok(UpdateShardCountOutput {
        stream_name: stream.name.clone(),
        current_shard_count: current,
        target_shard_count: target,
        stream_arn: stream.arn.clone(),
    })
}
