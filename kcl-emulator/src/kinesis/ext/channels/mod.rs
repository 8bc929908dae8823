//! CreateChannel, DescribeChannel, ListChannels, UpdateChannel, DeleteChannel.
//!
//! A channel delivers one on-demand stream to a general purpose S3 bucket or to an S3 Tables
//! (Iceberg) table. The emulator validates and keeps the configuration and runs the lifecycle
//! the service runs; see [`model`] for what it does not do.

mod checks;
pub(crate) mod model;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lookup::{new_resource_id, source_is_live, with_live, ListByStreamInput};
use super::resources::change_registered;
use crate::kinesis::model::{CapacityMode, Lifecycle};
use crate::kinesis::request::names::WireName;
use crate::kinesis::request::validate::{
    alnum_or, arn_fields, check_count, check_enum, check_length, check_string, is_account_id,
    lower_digit_or, null, only, required, validate_name, validate_tags,
};
use crate::kinesis::request::{epoch_seconds, StreamRef};
use crate::kinesis::KinesisStore;
use crate::wire::validation;
use crate::wire::{ApiError, ApiResult};
use checks::*;
use model::{
    ChannelEncryption, ChannelLogging, ChannelMeta, ChannelSource, ChannelStatus, CloudWatchLogs,
    DeadLetterQueue, Destination, RecordConfig, S3Destination, S3Table, S3TablesDestination,
    StreamConfig,
};

/// Most channel summaries one ListChannels page holds, whatever `MaxResults` asks for.
const LIST_PAGE_LIMIT: usize = 100;

// Output shapes.

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamDescription {
    #[serde(rename = "StreamARN")]
    stream_arn: String,
    stream_creation_timestamp: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    record_configuration: Option<RecordConfig>,
}

impl StreamDescription {
    fn of(source: &ChannelSource, with_record_configuration: bool) -> StreamDescription {
        StreamDescription {
            stream_arn: source.stream_arn.clone(),
            stream_creation_timestamp: epoch_seconds(source.stream_created_ms),
            record_configuration: with_record_configuration
                .then(|| source.record_configuration.clone()),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ChannelDescription {
    channel_name: String,
    #[serde(rename = "ChannelARN")]
    channel_arn: String,
    channel_id: String,
    channel_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_status_reason: Option<String>,
    channel_creation_timestamp: f64,
    #[serde(rename = "ServiceExecutionRoleARN")]
    service_execution_role_arn: String,
    stream_configuration_list: Vec<StreamDescription>,
    #[serde(skip_serializing_if = "Option::is_none")]
    s3_destination_configuration: Option<S3Destination>,
    #[serde(skip_serializing_if = "Option::is_none")]
    s3_tables_destination_configuration: Option<S3TablesDestination>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_configuration: Option<ChannelEncryption>,
    logging_configuration: ChannelLogging,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ChannelSummary {
    channel_name: String,
    #[serde(rename = "ChannelARN")]
    channel_arn: String,
    channel_id: String,
    channel_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_status_reason: Option<String>,
    channel_creation_timestamp: f64,
    channel_destination_type: &'static str,
    streams: Vec<StreamDescription>,
}

/// The first source stream of `channel` that no longer exists, if any.
fn missing_source<'a>(store: &KinesisStore, channel: &'a ChannelMeta) -> Option<&'a str> {
    channel
        .sources
        .iter()
        .find(|source| !source_is_live(store, &source.stream_arn, source.stream_created_ms))
        .map(|source| source.stream_arn.as_str())
}

fn status_of(store: &KinesisStore, channel: &ChannelMeta) -> (ChannelStatus, Option<String>) {
    let missing = missing_source(store, channel);
    let status = channel.status(store.now_ms(), missing.is_none());
    let reason = (status == ChannelStatus::Failed).then(|| {
        format!(
            "Source stream {} no longer exists.",
            missing.unwrap_or_default()
        )
    });
    (status, reason)
}

fn describe_channel_meta(store: &KinesisStore, channel: &ChannelMeta) -> ChannelDescription {
    let (status, reason) = status_of(store, channel);
    let (s3, s3_tables) = match &channel.destination {
        Destination::S3(s3) => (Some(s3.clone()), None),
        Destination::S3Tables(tables) => (None, Some(tables.clone())),
    };
    ChannelDescription {
        channel_name: channel.name.clone(),
        channel_arn: channel.arn.clone(),
        channel_id: channel.id.clone(),
        channel_status: status.as_str(),
        channel_status_reason: reason,
        channel_creation_timestamp: epoch_seconds(channel.lifecycle.created_ms),
        service_execution_role_arn: channel.role_arn.clone(),
        stream_configuration_list: channel
            .sources
            .iter()
            .map(|s| StreamDescription::of(s, true))
            .collect(),
        s3_destination_configuration: s3,
        s3_tables_destination_configuration: s3_tables,
        encryption_configuration: channel.encryption.clone(),
        logging_configuration: channel.logging.clone(),
    }
}

fn summarize(store: &KinesisStore, channel: &ChannelMeta) -> ChannelSummary {
    let (status, reason) = status_of(store, channel);
    ChannelSummary {
        channel_name: channel.name.clone(),
        channel_arn: channel.arn.clone(),
        channel_id: channel.id.clone(),
        channel_status: status.as_str(),
        channel_status_reason: reason,
        channel_creation_timestamp: epoch_seconds(channel.lifecycle.created_ms),
        channel_destination_type: channel.destination.type_name(),
        streams: channel
            .sources
            .iter()
            .map(|s| StreamDescription::of(s, false))
            .collect(),
    }
}

/// Runs `act` on the channel `arn` names under the channels' lock (see [`with_live`]).
pub(crate) fn with_channel<T>(
    store: &KinesisStore,
    arn: &str,
    act: impl FnOnce(&mut ChannelMeta, i64) -> ApiResult<T>,
) -> ApiResult<T> {
    with_live(store, &mut store.dependents().channels(), arn, act)
}

/// Runs `act` on the channel `arn` names, as [`with_channel`] does, and keeps the change
/// through the store, which saves it or undoes it.
pub(crate) fn change_channel<T>(
    store: &KinesisStore,
    arn: &str,
    act: impl FnOnce(&mut ChannelMeta, i64) -> ApiResult<T>,
) -> ApiResult<T> {
    change_registered(store, |channels: &mut Vec<ChannelMeta>, _| {
        with_live(store, channels, arn, act).map(|result| (result, arn.to_owned()))
    })
}

/// A copy of the channel `arn` names, for reading without its lock (its status looks the
/// source stream up).
fn find_channel(store: &KinesisStore, arn: &str) -> ApiResult<ChannelMeta> {
    with_channel(store, arn, |channel, _| Ok(channel.clone()))
}

// CreateChannel.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CreateInput {
    channel_name: Option<String>,
    #[serde(rename = "ServiceExecutionRoleARN")]
    service_execution_role_arn: Option<String>,
    stream_configuration_list: Option<Vec<StreamConfig>>,
    s3_destination_configuration: Option<S3Destination>,
    s3_tables_destination_configuration: Option<S3TablesDestination>,
    encryption_configuration: Option<ChannelEncryption>,
    tags: Option<BTreeMap<String, String>>,
    logging_configuration: Option<ChannelLogging>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DescriptionOutput {
    channel_description: ChannelDescription,
}

pub(crate) async fn create(
    store: &KinesisStore,
    input: CreateInput,
) -> ApiResult<DescriptionOutput> {
    let name = required(&input.channel_name, "channelName")?.clone();
    validate_name(&name, "channelName")?;
    let role_arn = required(&input.service_execution_role_arn, "serviceExecutionRoleARN")?;
    check_string(
        role_arn,
        (1, 512),
        is_role_arn,
        ROLE_ARN_PATTERN,
        "serviceExecutionRoleARN",
    )?;
    let streams = required(&input.stream_configuration_list, "streamConfigurationList")?;
    check_count(streams, 1, 10_000, "streamConfigurationList")?;
    for (at, config) in streams.iter().enumerate() {
        let member = format!("streamConfigurationList.{}.member", at + 1);
        required(&config.stream_arn, &format!("{member}.streamARN"))?;
        check_record_configuration(
            required(
                &config.record_configuration,
                &format!("{member}.recordConfiguration"),
            )?,
            &format!("{member}.recordConfiguration"),
        )?;
    }
    let destination =
        match (
            input.s3_destination_configuration,
            input.s3_tables_destination_configuration,
        ) {
            (Some(s3), None) => Destination::S3(s3_destination(s3)?),
            (None, Some(tables)) => Destination::S3Tables(s3_tables_destination(tables)?),
            _ => return Err(ApiError::invalid_argument(
                "Exactly one of S3DestinationConfiguration and S3TablesDestinationConfiguration \
                 must be specified.",
            )),
        };
    if let Some(encryption) = &input.encryption_configuration {
        check_encryption(encryption)?;
    }
    if let Some(tags) = &input.tags {
        if tags.is_empty() || tags.len() > 200 {
            return Err(validation::invalid_unshown(
                "tags",
                "Member must have length between 1 and 200",
            ));
        }
    }
    let tags = input.tags.unwrap_or_default();
    validate_tags(&tags, 0)?;
    if streams.len() > 1 {
        return Err(ApiError::invalid_argument(
            "A channel reads one stream: StreamConfigurationList must hold exactly one entry.",
        ));
    }
    let config = &streams[0];
    let record_configuration = config.record_configuration.clone().unwrap_or_default();
    check_format_for(&record_configuration, &destination)?;

    let stream_arn = config.stream_arn.clone().unwrap_or_default();
    let stream = StreamRef {
        name: None,
        arn: Some(stream_arn.clone()),
    }
    .resolve(store)?;
    let stream_created_ms = {
        let state = stream.lock();
        store.require_active(&stream, &state)?;
        if state.settings.mode != CapacityMode::OnDemand {
            return Err(ApiError::invalid_argument(format!(
                "Stream {} is in {} capacity mode; channels read only ON_DEMAND streams.",
                stream.name,
                state.settings.mode.wire_name()
            )));
        }
        state.settings.created_ms
    };

    let id = new_resource_id();
    let logging = logging(
        input.logging_configuration,
        "loggingConfiguration",
        &name,
        &id,
    )?;
    let now = store.now_ms();
    let channel = ChannelMeta {
        arn: format!(
            "arn:aws:kinesis:{}:{}:channel/{id}",
            store.config.region, store.config.account_id
        ),
        name,
        id,
        lifecycle: Lifecycle::new(now, store.config.create_delay.as_millis() as i64),
        role_arn: role_arn.clone(),
        sources: vec![ChannelSource {
            stream_arn: stream.arn.clone(),
            stream_created_ms,
            record_configuration,
        }],
        destination,
        encryption: input.encryption_configuration,
        logging,
        tags,
        resource_policy: None,
    };
    change_registered(store, |channels: &mut Vec<ChannelMeta>, _| {
        channels.retain(|c| !c.deleted(now));
        if channels.iter().any(|c| c.name == channel.name) {
            return Err(ApiError::in_use(format!(
                "Channel {} under account {} already exists.",
                channel.name, store.config.account_id
            )));
        }
        channels.push(channel.clone());
        Ok(((), channel.arn.clone()))
    })?;
    Ok(DescriptionOutput {
        channel_description: describe_channel_meta(store, &channel),
    })
}

// DescribeChannel and DeleteChannel.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ChannelRef {
    #[serde(rename = "ChannelARN")]
    channel_arn: Option<String>,
}

pub(crate) async fn describe(
    store: &KinesisStore,
    input: ChannelRef,
) -> ApiResult<DescriptionOutput> {
    let channel = find_channel(store, required(&input.channel_arn, "channelARN")?)?;
    Ok(DescriptionOutput {
        channel_description: describe_channel_meta(store, &channel),
    })
}

#[derive(Debug, Serialize)]
pub(crate) struct DeleteOutput {}

pub(crate) async fn delete(store: &KinesisStore, input: ChannelRef) -> ApiResult<DeleteOutput> {
    let arn = required(&input.channel_arn, "channelARN")?;
    change_channel(store, arn, |channel, now| {
        channel
            .lifecycle
            .begin_delete(now, store.config.delete_delay.as_millis() as i64);
        Ok(())
    })?;
    Ok(DeleteOutput {})
}

// UpdateChannel.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct FreshnessUpdate {
    data_freshness_in_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct UpdateInput {
    #[serde(rename = "ChannelARN")]
    channel_arn: Option<String>,
    s3_destination_configuration: Option<FreshnessUpdate>,
    s3_tables_destination_configuration: Option<FreshnessUpdate>,
    logging_configuration: Option<ChannelLogging>,
}

pub(crate) async fn update(
    store: &KinesisStore,
    input: UpdateInput,
) -> ApiResult<DescriptionOutput> {
    let arn = required(&input.channel_arn, "channelARN")?;
    let channel = find_channel(store, arn)?;
    if input.s3_destination_configuration.is_none()
        && input.s3_tables_destination_configuration.is_none()
        && input.logging_configuration.is_none()
    {
        return Err(ApiError::invalid_argument(
            "Specify at least one of S3DestinationConfiguration, \
             S3TablesDestinationConfiguration and LoggingConfiguration.",
        ));
    }
    let mut updated = channel.clone();
    for (update, member, applies) in [
        (
            &input.s3_destination_configuration,
            "s3DestinationConfiguration",
            matches!(channel.destination, Destination::S3(_)),
        ),
        (
            &input.s3_tables_destination_configuration,
            "s3TablesDestinationConfiguration",
            matches!(channel.destination, Destination::S3Tables(_)),
        ),
    ] {
        let Some(update) = update else { continue };
        let seconds = *required(
            &update.data_freshness_in_seconds,
            &format!("{member}.dataFreshnessInSeconds"),
        )?;
        if !applies {
            return Err(ApiError::invalid_argument(format!(
                "Channel {arn} delivers to {}; {member} does not apply to it.",
                channel.destination.type_name()
            )));
        }
        check_freshness(Some(seconds), &format!("{member}.DataFreshnessInSeconds"))?;
        match &mut updated.destination {
            Destination::S3(s3) => s3.data_freshness_in_seconds = Some(seconds),
            Destination::S3Tables(tables) => tables.data_freshness_in_seconds = Some(seconds),
        }
    }
    if let Some(requested) = input.logging_configuration {
        updated.logging = logging(
            Some(requested),
            "loggingConfiguration",
            &channel.name,
            &channel.id,
        )?;
    }
    let (status, _) = status_of(store, &channel);
    if status != ChannelStatus::Active {
        return Err(ApiError::in_use(format!(
            "Channel {arn} under account {} not ACTIVE, instead in state {}.",
            store.config.account_id,
            status.as_str()
        )));
    }
    updated
        .lifecycle
        .begin_update(store.now_ms(), store.config.update_delay.as_millis() as i64);
    change_channel(store, arn, |entry, _| {
        // Another request changed the channel since it was read: that request won, and this
        // one is refused as the service refuses a change to a busy channel.
        if *entry != channel {
            return Err(ApiError::in_use(format!(
                "Channel {arn} under account {} is being changed by another request.",
                store.config.account_id
            )));
        }
        *entry = updated.clone();
        Ok(())
    })?;
    Ok(DescriptionOutput {
        channel_description: describe_channel_meta(store, &updated),
    })
}

// ListChannels.

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListOutput {
    channel_summaries: Vec<ChannelSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

pub(crate) async fn list(store: &KinesisStore, input: ListByStreamInput) -> ApiResult<ListOutput> {
    let request = input.check(LIST_PAGE_LIMIT)?;
    let now = store.now_ms();
    let admitted: Vec<ChannelMeta> = store
        .dependents()
        .channels()
        .iter()
        .filter(|c| !c.deleted(now))
        .filter(|c| {
            request.admits(
                &c.arn,
                c.sources
                    .iter()
                    .map(|s| (s.stream_arn.as_str(), s.stream_created_ms)),
            )
        })
        .cloned()
        .collect();
    let (page, next_token) = request.page(admitted, |c| &c.arn);
    Ok(ListOutput {
        channel_summaries: page.iter().map(|c| summarize(store, c)).collect(),
        next_token,
    })
}
