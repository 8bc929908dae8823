//! Retention, encryption, enhanced monitoring, stream mode, record size, warm throughput,
//! limits, account settings and resource policies.

use serde::{Deserialize, Serialize};

use super::streams::Empty;
use super::tags::with_resource;
use super::{stream_mode, StreamModeDetails};
use crate::kinesis::model::{CapacityMode, Encryption, RecordDistribution, StreamState};
use crate::kinesis::request::names::WireName;
use crate::kinesis::request::validate::validate_range;
use crate::kinesis::request::{epoch_seconds, StreamRef};
use crate::kinesis::KinesisStore;
use crate::wire::validation;
use crate::wire::{ApiError, ApiResult};

/// Retention bounds in hours: one day to one year.
const MIN_RETENTION_HOURS: i64 = 24;
const MAX_RETENTION_HOURS: i64 = 8760;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RetentionInput {
    #[serde(flatten)]
    stream: StreamRef,
    retention_period_hours: i64,
}

fn change_retention(
    store: &KinesisStore,
    input: RetentionInput,
    increase: bool,
) -> ApiResult<Empty> {
    let hours = input.retention_period_hours;
    if hours < MIN_RETENTION_HOURS {
        return Err(ApiError::invalid_argument(format!(
            "Minimum allowed retention period is {MIN_RETENTION_HOURS} hours. Requested retention \
             period ({hours} hours) is too short."
        )));
    }
    if hours > MAX_RETENTION_HOURS {
        return Err(ApiError::invalid_argument(format!(
            "Maximum allowed retention period is {MAX_RETENTION_HOURS} hours. Requested retention \
             period ({hours} hours) is too long."
        )));
    }
    let stream = input.stream.resolve(store)?;
    store.change_stream(&stream, |state| {
        store.require_active(&stream, state)?;
        let current = i64::from(state.settings.retention_hours);
        if increase && hours < current {
            return Err(ApiError::invalid_argument(format!(
                "Requested retention period ({hours} hours) for stream {} can not be shorter than \
                 existing retention period ({current} hours). Use DecreaseRetentionPeriod API.",
                stream.name
            )));
        }
        if !increase && hours > current {
            return Err(ApiError::invalid_argument(format!(
                "Requested retention period ({hours} hours) for stream {} can not be longer than \
                 existing retention period ({current} hours). Use IncreaseRetentionPeriod API.",
                stream.name
            )));
        }
        state.settings.retention_hours = hours as u32;
        Ok(())
    })?;
    if !increase {
        store.enforce_retention();
    }
    Ok(Empty {})
}

pub(crate) async fn increase_retention(
    store: &KinesisStore,
    input: RetentionInput,
) -> ApiResult<Empty> {
    change_retention(store, input, true)
}

pub(crate) async fn decrease_retention(
    store: &KinesisStore,
    input: RetentionInput,
) -> ApiResult<Empty> {
    change_retention(store, input, false)
}

/// Applies `change` to an ACTIVE stream's state, puts it in UPDATING if `updates`, and saves.
fn update_settings<T>(
    store: &KinesisStore,
    stream: &StreamRef,
    updates: bool,
    change: impl FnOnce(&mut StreamState) -> ApiResult<T>,
) -> ApiResult<T> {
    let stream = stream.resolve(store)?;
    store.change_stream(&stream, |state| {
        store.require_active(&stream, state)?;
        let result = change(state)?;
        if updates {
            store.start_update(state);
        }
        Ok(result)
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EncryptionInput {
    #[serde(flatten)]
    stream: StreamRef,
    encryption_type: String,
    key_id: String,
}

fn validate_encryption(input: &EncryptionInput) -> ApiResult<()> {
    if input.encryption_type != "KMS" {
        return Err(ApiError::invalid_argument(format!(
            "Invalid EncryptionType {}. Only KMS is supported.",
            input.encryption_type
        )));
    }
    if input.key_id.is_empty() || input.key_id.len() > 2048 {
        return Err(validation::invalid_unshown(
            "keyId",
            "Member must have length between 1 and 2048",
        ));
    }
    Ok(())
}

pub(crate) async fn start_encryption(
    store: &KinesisStore,
    input: EncryptionInput,
) -> ApiResult<Empty> {
    validate_encryption(&input)?;
    update_settings(store, &input.stream, true, |state| {
        state.settings.encryption_type = Encryption::Kms;
        state.settings.key_id = Some(input.key_id.clone());
        Ok(Empty {})
    })
}

pub(crate) async fn stop_encryption(
    store: &KinesisStore,
    input: EncryptionInput,
) -> ApiResult<Empty> {
    validate_encryption(&input)?;
    update_settings(store, &input.stream, true, |state| {
        state.settings.encryption_type = Encryption::None;
        state.settings.key_id = None;
        Ok(Empty {})
    })
}

const SHARD_LEVEL_METRICS: &[&str] = &[
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MonitoringInput {
    #[serde(flatten)]
    stream: StreamRef,
    shard_level_metrics: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MonitoringOutput {
    stream_name: String,
    current_shard_level_metrics: Vec<String>,
    desired_shard_level_metrics: Vec<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: String,
}

fn change_monitoring(
    store: &KinesisStore,
    input: MonitoringInput,
    enable: bool,
) -> ApiResult<MonitoringOutput> {
    if input.shard_level_metrics.is_empty() {
        return Err(validation::invalid(
            "[]",
            "shardLevelMetrics",
            "Member must have length greater than or equal to 1",
        ));
    }
    let mut requested = Vec::new();
    for metric in &input.shard_level_metrics {
        if metric == "ALL" {
            requested.extend(SHARD_LEVEL_METRICS.iter().map(|m| (*m).to_owned()));
        } else if SHARD_LEVEL_METRICS.contains(&metric.as_str()) {
            requested.push(metric.clone());
        } else {
            return Err(validation::invalid(format!("[{metric}]"), "shardLevelMetrics", "Member must satisfy enum value set: [IncomingBytes, OutgoingRecords, IteratorAgeMilliseconds, IncomingRecords, ReadProvisionedThroughputExceeded, WriteProvisionedThroughputExceeded, OutgoingBytes, ALL]"));
        }
    }
    let stream = input.stream.resolve(store)?;
    let (current, desired) = update_settings(store, &input.stream, false, |state| {
        let current = state.settings.shard_level_metrics.clone();
        let mut desired: Vec<String> = if enable {
            current.iter().chain(&requested).cloned().collect()
        } else {
            current
                .iter()
                .filter(|m| !requested.contains(m))
                .cloned()
                .collect()
        };
        desired.sort();
        desired.dedup();
        state.settings.shard_level_metrics = desired.clone();
        Ok((current, desired))
    })?;
    Ok(MonitoringOutput {
        stream_name: stream.name.clone(),
        current_shard_level_metrics: current,
        desired_shard_level_metrics: desired,
        stream_arn: stream.arn.clone(),
    })
}

pub(crate) async fn enable_monitoring(
    store: &KinesisStore,
    input: MonitoringInput,
) -> ApiResult<MonitoringOutput> {
    change_monitoring(store, input, true)
}

pub(crate) async fn disable_monitoring(
    store: &KinesisStore,
    input: MonitoringInput,
) -> ApiResult<MonitoringOutput> {
    change_monitoring(store, input, false)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateStreamModeInput {
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_mode_details: StreamModeDetails,
}

pub(crate) async fn update_stream_mode(
    store: &KinesisStore,
    input: UpdateStreamModeInput,
) -> ApiResult<Empty> {
    let mode = stream_mode(&input.stream_mode_details.stream_mode)?;
    let stream = StreamRef {
        name: None,
        arn: Some(input.stream_arn),
    };
    if mode == CapacityMode::OnDemand {
        return update_settings(store, &stream, true, |state| {
            state.settings.mode = mode;
            Ok(Empty {})
        });
    }
    // Queues need ON_DEMAND. Their lock is held until the mode changes, so a queue being
    // created at the same moment is either counted here or finds the stream PROVISIONED.
    let stream = stream.resolve(store)?;
    store.change_stream_counting_readers(&stream, |state, queues| {
        if queues > 0 {
            return Err(ApiError::in_use(format!(
                "Stream {} has {queues} queue(s), which need ON_DEMAND capacity mode; delete \
                 them with DeleteQueue before switching to PROVISIONED.",
                stream.name
            )));
        }
        store.require_active(&stream, state)?;
        state.settings.mode = mode;
        store.start_update(state);
        Ok(Empty {})
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateMaxRecordSizeInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_in_kib: i64,
}

pub(crate) async fn update_max_record_size(
    store: &KinesisStore,
    input: UpdateMaxRecordSizeInput,
) -> ApiResult<Empty> {
    validate_range(
        Some(input.max_record_size_in_kib),
        1024,
        10_240,
        "maxRecordSizeInKiB",
    )?;
    let stream = StreamRef {
        name: None,
        arn: input.stream_arn,
    };
    update_settings(store, &stream, true, |state| {
        state.settings.max_record_size_kib = input.max_record_size_in_kib as u32;
        Ok(Empty {})
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateWarmThroughputInput {
    #[serde(flatten)]
    stream: StreamRef,
    #[serde(rename = "WarmThroughputMiBps")]
    warm_throughput_mibps: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct WarmThroughputObject {
    #[serde(rename = "TargetMiBps")]
    target_mibps: i64,
    #[serde(rename = "CurrentMiBps")]
    current_mibps: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateWarmThroughputOutput {
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_name: String,
    warm_throughput: WarmThroughputObject,
}

pub(crate) async fn update_warm_throughput(
    store: &KinesisStore,
    input: UpdateWarmThroughputInput,
) -> ApiResult<UpdateWarmThroughputOutput> {
    validate_range(
        Some(input.warm_throughput_mibps),
        0,
        10_240,
        "warmThroughputMiBps",
    )?;
    let stream = input.stream.resolve(store)?;
    let mibps = input.warm_throughput_mibps;
    update_settings(store, &input.stream, true, |state| {
        if state.settings.mode != CapacityMode::OnDemand {
            return Err(ApiError::validation(
                "Warm throughput can only be set on streams in ON_DEMAND mode.",
            ));
        }
        state.settings.warm_throughput_mibps = Some(mibps as u32);
        Ok(())
    })?;
    Ok(UpdateWarmThroughputOutput {
        stream_arn: stream.arn.clone(),
        stream_name: stream.name.clone(),
        warm_throughput: WarmThroughputObject {
            target_mibps: mibps,
            current_mibps: mibps,
        },
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct NoInput {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescribeLimitsOutput {
    shard_limit: u32,
    open_shard_count: usize,
    on_demand_stream_count: usize,
    on_demand_stream_count_limit: u32,
}

pub(crate) async fn describe_limits(
    store: &KinesisStore,
    _input: NoInput,
) -> ApiResult<DescribeLimitsOutput> {
    let on_demand = store
        .streams()
        .iter()
        .filter(|s| s.lock().settings.mode == CapacityMode::OnDemand)
        .count();
    Ok(DescribeLimitsOutput {
        shard_limit: store.config.shard_limit,
        open_shard_count: store.open_shard_count(),
        on_demand_stream_count: on_demand,
        on_demand_stream_count_limit: 50,
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BillingCommitmentOutput {
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AccountSettingsOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    minimum_throughput_billing_commitment: Option<BillingCommitmentOutput>,
}

fn account_settings(store: &KinesisStore) -> AccountSettingsOutput {
    let commitment = store
        .billing_commitment
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    AccountSettingsOutput {
        minimum_throughput_billing_commitment: commitment.map(|(status, started)| {
            BillingCommitmentOutput {
                status,
                started_at: Some(epoch_seconds(started)),
            }
        }),
    }
}

pub(crate) async fn describe_account_settings(
    store: &KinesisStore,
    _input: NoInput,
) -> ApiResult<AccountSettingsOutput> {
    Ok(account_settings(store))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BillingCommitmentInput {
    status: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateAccountSettingsInput {
    minimum_throughput_billing_commitment: BillingCommitmentInput,
}

pub(crate) async fn update_account_settings(
    store: &KinesisStore,
    input: UpdateAccountSettingsInput,
) -> ApiResult<AccountSettingsOutput> {
    let status = match input.minimum_throughput_billing_commitment.status.as_str() {
        "ENABLED" => "ENABLED",
        "DISABLED" => "DISABLED",
        other => {
            return Err(validation::invalid(
                other,
                "minimumThroughputBillingCommitment.status",
                "Member must satisfy enum value set: [ENABLED, DISABLED]",
            ))
        }
    };
    *store
        .billing_commitment
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some((status.to_owned(), store.now_ms()));
    Ok(account_settings(store))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ResourcePolicyInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: String,
    policy: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GetResourcePolicyOutput {
    policy: String,
}

pub(crate) async fn put_resource_policy(
    store: &KinesisStore,
    input: ResourcePolicyInput,
) -> ApiResult<Empty> {
    let policy = input
        .policy
        .clone()
        .ok_or_else(|| validation::null("policy"))?;
    if serde_json::from_str::<serde_json::Value>(&policy).is_err() {
        return Err(ApiError::invalid_argument(
            "Policy is not a valid JSON document.",
        ));
    }
    with_resource(store, &input.resource_arn, true, |resource| {
        *resource.policy = Some(policy);
        Ok(Empty {})
    })
}

pub(crate) async fn get_resource_policy(
    store: &KinesisStore,
    input: ResourcePolicyInput,
) -> ApiResult<GetResourcePolicyOutput> {
    with_resource(store, &input.resource_arn, false, |resource| {
        Ok(GetResourcePolicyOutput {
            policy: resource.policy.clone().unwrap_or_else(|| "{}".to_owned()),
        })
    })
}

pub(crate) async fn delete_resource_policy(
    store: &KinesisStore,
    input: ResourcePolicyInput,
) -> ApiResult<Empty> {
    with_resource(store, &input.resource_arn, true, |resource| {
        if resource.policy.take().is_none() {
            return Err(ApiError::not_found(format!(
                "No resource policy found for resource ARN {}.",
                input.resource_arn
            )));
        }
        Ok(Empty {})
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateDistributionInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    record_distribution_strategy: String,
}

pub(crate) async fn update_record_distribution(
    store: &KinesisStore,
    input: UpdateDistributionInput,
) -> ApiResult<Empty> {
    let strategy =
        RecordDistribution::from_wire(&input.record_distribution_strategy).ok_or_else(|| {
            validation::invalid(
                &input.record_distribution_strategy,
                "recordDistributionStrategy",
                "Member must satisfy enum value set: [AUTO, USER_PARTITION_KEY]",
            )
        })?;
    let stream = StreamRef {
        name: None,
        arn: input.stream_arn,
    };
    update_settings(store, &stream, true, |state| {
        state.settings.record_distribution = strategy;
        Ok(Empty {})
    })
}
