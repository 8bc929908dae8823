//! CreateChannel, DescribeChannel, ListChannels, UpdateChannel, DeleteChannel.
//!
//! A channel delivers one on-demand stream to a general purpose S3 bucket or to an S3 Tables
//! (Iceberg) table. The emulator validates and keeps the configuration and runs the lifecycle
//! the service runs; see [`crate::store::channels`] for what it does not do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validate::{
    alnum_or, arn_fields, check_count, check_enum, check_length, check_string, is_account_id,
    lower_digit_or, new_resource_id, null, only, required, source_is_live, with_live,
    ListByStreamInput,
};
use super::{epoch_seconds, validate_name, StreamRef};
use crate::error::{ApiError, ApiResult};
use crate::store::channels::{
    ChannelEncryption, ChannelLogging, ChannelSource, ChannelStatus, CloudWatchLogs,
    DeadLetterQueue, Destination, RecordConfig, S3Destination, S3Table, S3TablesDestination,
    StreamConfig,
};
use crate::store::{ChannelMeta, KinesisStore, Lifecycle, MetaChange};

/// `DataFreshnessInSeconds` when the request leaves it out.
const DEFAULT_DATA_FRESHNESS_SECONDS: i64 = 300;
/// The log stream a channel logs to unless told otherwise.
const DEFAULT_LOG_STREAM: &str = "DestinationDelivery";
/// The prefix undeliverable records get in the destination bucket when an S3 channel names no
/// dead-letter queue of its own.
const DEFAULT_ERROR_OUTPUT_PREFIX: &str = "errors/";
/// Most channel summaries one ListChannels page holds, whatever `MaxResults` asks for.
const LIST_PAGE_LIMIT: usize = 100;

const RECORD_FORMATS: &[&str] = &["GSR_JSON", "JSON", "STRING", "BYTE_ARRAY"];
const S3_COMPRESSION: &[&str] = &["NONE", "GZIP", "ZSTD"];
const S3_STORAGE_CLASSES: &[&str] = &["STANDARD", "INTELLIGENT_TIERING", "GLACIER_IR"];
const S3_TABLES_COMPRESSION: &[&str] = &["NONE", "ZSTD", "SNAPPY"];
const PARTITION_TRANSFORMS: &[&str] = &["TIME_HOUR"];
const ENCRYPTION_TYPES: &[&str] = &["KMS"];

fn is_role_arn(arn: &str) -> bool {
    arn_fields(arn, "iam").is_some_and(|(region, account, resource)| {
        region.is_empty()
            && is_account_id(account)
            && resource
                .strip_prefix("role/")
                .is_some_and(|name| only(name, alnum_or(b"_+=,.@-/")))
    })
}

fn is_bucket_arn(arn: &str) -> bool {
    arn_fields(arn, "s3").is_some_and(|(region, account, bucket)| {
        region.is_empty()
            && account.is_empty()
            && (3..=63).contains(&bucket.len())
            && only(bucket, lower_digit_or(b"._-"))
    })
}

fn is_table_bucket_arn(arn: &str) -> bool {
    arn_fields(arn, "s3tables").is_some_and(|(region, account, resource)| {
        only(region, lower_digit_or(b"-"))
            && is_account_id(account)
            && resource.strip_prefix("bucket/").is_some_and(|bucket| {
                (3..=63).contains(&bucket.len()) && only(bucket, lower_digit_or(b"_-"))
            })
    })
}

fn is_schema_arn(arn: &str) -> bool {
    arn_fields(arn, "glue").is_some_and(|(region, account, resource)| {
        only(region, lower_digit_or(b"-"))
            && is_account_id(account)
            && resource
                .strip_prefix("schema/")
                .and_then(|rest| rest.split_once('/'))
                .is_some_and(|(registry, schema)| {
                    only(registry, alnum_or(b"-_$#.")) && only(schema, alnum_or(b"-_$#."))
                })
    })
}

const ROLE_ARN_PATTERN: &str = r"arn:aws[-a-z0-9]*:iam::\d{12}:role/[a-zA-Z_0-9+=,.@\-_/]+";
const BUCKET_ARN_PATTERN: &str = r"arn:aws[-a-z0-9]*:s3:::[a-z0-9._-]{3,63}";
const TABLE_BUCKET_ARN_PATTERN: &str =
    r"arn:aws[-a-z0-9]*:s3tables:[-a-z0-9]+:\d{12}:bucket/[a-z0-9_-]{3,63}";
const SCHEMA_ARN_PATTERN: &str =
    r"arn:aws[-a-z0-9]*:glue:[-a-z0-9]+:\d{12}:schema/[-a-zA-Z0-9_$#.]+/[-a-zA-Z0-9_$#.]+";
fn check_freshness(seconds: Option<i64>, member: &str) -> ApiResult<()> {
    match seconds {
        Some(s) if s <= 0 => Err(ApiError::invalid_argument(format!(
            "{member} must be a positive number of seconds, not {s}."
        ))),
        _ => Ok(()),
    }
}

fn check_dead_letter_queue(dlq: &DeadLetterQueue, member: &str) -> ApiResult<()> {
    let bucket = required(&dlq.bucket_arn, &format!("{member}.bucketARN"))?;
    check_string(
        bucket,
        (1, 2048),
        is_bucket_arn,
        BUCKET_ARN_PATTERN,
        &format!("{member}.bucketARN"),
    )?;
    check_owner(
        required(
            &dlq.expected_bucket_owner,
            &format!("{member}.expectedBucketOwner"),
        )?,
        &format!("{member}.expectedBucketOwner"),
    )?;
    if let Some(prefix) = &dlq.error_output_prefix {
        check_string(
            prefix,
            (1, 512),
            |p| only(p, alnum_or(b"!-_'.*()/")),
            r"[0-9A-Za-z!\-_'.*()\/]+",
            &format!("{member}.errorOutputPrefix"),
        )?;
    }
    Ok(())
}

fn check_owner(owner: &str, member: &str) -> ApiResult<()> {
    check_string(owner, (12, 12), is_account_id, r"\d{12}", member)
}

/// Validates an S3 destination and fills in the service's defaults.
fn s3_destination(mut s3: S3Destination) -> ApiResult<S3Destination> {
    const MEMBER: &str = "s3DestinationConfiguration";
    check_freshness(
        s3.data_freshness_in_seconds,
        "S3DestinationConfiguration.DataFreshnessInSeconds",
    )?;
    let storage_member = format!("{MEMBER}.storageConfiguration");
    let mut storage = s3
        .storage_configuration
        .take()
        .ok_or_else(|| null(&storage_member))?;
    check_string(
        required(&storage.bucket_arn, &format!("{storage_member}.bucketARN"))?,
        (1, 2048),
        is_bucket_arn,
        BUCKET_ARN_PATTERN,
        &format!("{storage_member}.bucketARN"),
    )?;
    check_owner(
        required(
            &storage.expected_bucket_owner,
            &format!("{storage_member}.expectedBucketOwner"),
        )?,
        &format!("{storage_member}.expectedBucketOwner"),
    )?;
    check_enum(
        required(
            &storage.compression_type,
            &format!("{storage_member}.compressionType"),
        )?,
        S3_COMPRESSION,
        &format!("{storage_member}.compressionType"),
    )?;
    if let Some(class) = &storage.storage_class {
        check_enum(
            class,
            S3_STORAGE_CLASSES,
            &format!("{storage_member}.storageClass"),
        )?;
    }
    if let Some(template) = &storage.output_key_template {
        check_string(
            template,
            (1, 1024),
            |t| only(t, alnum_or(b"!-_'.*()/=:{}")),
            r"[0-9A-Za-z!\-_'.*()\/=:{}]+",
            &format!("{storage_member}.outputKeyTemplate"),
        )?;
    }
    storage
        .storage_class
        .get_or_insert_with(|| "STANDARD".to_owned());
    let default_dlq = DeadLetterQueue {
        bucket_arn: storage.bucket_arn.clone(),
        expected_bucket_owner: storage.expected_bucket_owner.clone(),
        error_output_prefix: Some(DEFAULT_ERROR_OUTPUT_PREFIX.to_owned()),
    };
    match &s3.dead_letter_queue {
        Some(dlq) => {
            check_dead_letter_queue(dlq, &format!("{MEMBER}.deadLetterQueueS3Configuration"))?;
        }
        None => s3.dead_letter_queue = Some(default_dlq),
    }
    s3.storage_configuration = Some(storage);
    s3.data_freshness_in_seconds
        .get_or_insert(DEFAULT_DATA_FRESHNESS_SECONDS);
    Ok(s3)
}

/// Validates an S3 Tables destination and fills in the service's defaults.
fn s3_tables_destination(mut dest: S3TablesDestination) -> ApiResult<S3TablesDestination> {
    const MEMBER: &str = "s3TablesDestinationConfiguration";
    check_freshness(
        dest.data_freshness_in_seconds,
        "S3TablesDestinationConfiguration.DataFreshnessInSeconds",
    )?;
    check_dead_letter_queue(
        required(
            &dest.dead_letter_queue,
            &format!("{MEMBER}.deadLetterQueueS3Configuration"),
        )?,
        &format!("{MEMBER}.deadLetterQueueS3Configuration"),
    )?;
    let tables_member = format!("{MEMBER}.s3TablesConfigurationList");
    let tables = required(&dest.tables, &tables_member)?;
    check_count(tables, 1, 10_000, &tables_member)?;
    for (at, table) in tables.iter().enumerate() {
        check_table(table, &format!("{tables_member}.{}.member", at + 1))?;
    }
    if tables.len() > 1 {
        return Err(ApiError::invalid_argument(
            "A channel delivers to one table: S3TablesConfigurationList must hold exactly one \
             entry.",
        ));
    }
    dest.data_freshness_in_seconds
        .get_or_insert(DEFAULT_DATA_FRESHNESS_SECONDS);
    Ok(dest)
}

fn check_table(table: &S3Table, member: &str) -> ApiResult<()> {
    check_string(
        required(&table.table_bucket_arn, &format!("{member}.tableBucketARN"))?,
        (1, 2048),
        is_table_bucket_arn,
        TABLE_BUCKET_ARN_PATTERN,
        &format!("{member}.tableBucketARN"),
    )?;
    for (value, name) in [
        (&table.namespace, "namespace"),
        (&table.table_name, "tableName"),
    ] {
        check_string(
            required(value, &format!("{member}.{name}"))?,
            (1, 255),
            |v| only(v, lower_digit_or(b"_")),
            "[0-9a-z_]+",
            &format!("{member}.{name}"),
        )?;
    }
    check_enum(
        required(
            &table.compression_type,
            &format!("{member}.compressionType"),
        )?,
        S3_TABLES_COMPRESSION,
        &format!("{member}.compressionType"),
    )?;
    if let Some(spec) = &table.partition_spec {
        let fields_member = format!("{member}.partitionSpec.partitionFields");
        let fields = required(&spec.partition_fields, &fields_member)?;
        check_count(fields, 1, 10, &fields_member)?;
        for (at, field) in fields.iter().enumerate() {
            let field_member = format!("{fields_member}.{}.member", at + 1);
            check_enum(
                required(&field.transform, &format!("{field_member}.transform"))?,
                PARTITION_TRANSFORMS,
                &format!("{field_member}.transform"),
            )?;
            check_string(
                required(&field.source_name, &format!("{field_member}.sourceName"))?,
                (1, 255),
                |v| only(v, alnum_or(b"._")),
                r"[a-zA-Z0-9\.\_]+",
                &format!("{field_member}.sourceName"),
            )?;
        }
    }
    Ok(())
}

fn check_record_configuration(record: &RecordConfig, member: &str) -> ApiResult<()> {
    check_enum(
        required(
            &record.record_format_type,
            &format!("{member}.recordFormatType"),
        )?,
        RECORD_FORMATS,
        &format!("{member}.recordFormatType"),
    )?;
    if let Some(schema) = &record.gsr_schema_arn {
        check_string(
            schema,
            (1, 512),
            is_schema_arn,
            SCHEMA_ARN_PATTERN,
            &format!("{member}.gSRSchemaARN"),
        )?;
    }
    Ok(())
}

/// Checks that a record format suits the destination, as the service documents it: `STRING`
/// and `BYTE_ARRAY` only for S3, `GSR_JSON` only for S3 Tables, which also needs a schema.
fn check_format_for(record: &RecordConfig, destination: &Destination) -> ApiResult<()> {
    let format = record.record_format_type.as_deref().unwrap_or_default();
    let suits = match destination {
        Destination::S3(_) => matches!(format, "JSON" | "STRING" | "BYTE_ARRAY"),
        Destination::S3Tables(_) => matches!(format, "JSON" | "GSR_JSON"),
    };
    if !suits {
        return Err(ApiError::invalid_argument(format!(
            "RecordFormatType {format} is not supported for {} destinations.",
            destination.type_name()
        )));
    }
    if matches!(destination, Destination::S3Tables(_)) && record.gsr_schema_arn.is_none() {
        return Err(ApiError::invalid_argument(
            "GSRSchemaARN is required when the channel destination is a streaming table.",
        ));
    }
    Ok(())
}

/// Validates a logging configuration and fills in the default log group and stream.
fn logging(
    logging: Option<ChannelLogging>,
    member: &str,
    channel_name: &str,
    channel_id: &str,
) -> ApiResult<ChannelLogging> {
    let Some(logging) = logging else {
        return Ok(ChannelLogging {
            cloud_watch_logs: Some(default_logs(false, channel_name, channel_id)),
        });
    };
    let logs = required(
        &logging.cloud_watch_logs,
        &format!("{member}.cloudWatchLogs"),
    )?;
    let enabled = *required(&logs.enabled, &format!("{member}.cloudWatchLogs.enabled"))?;
    let mut filled = default_logs(enabled, channel_name, channel_id);
    if let Some(group) = &logs.log_group_name {
        check_string(
            group,
            (1, 512),
            |g| only(g, alnum_or(b".-_/#")),
            r"[\.\-_/#A-Za-z0-9]+",
            &format!("{member}.cloudWatchLogs.logGroupName"),
        )?;
        filled.log_group_name = Some(group.clone());
    }
    if let Some(stream) = &logs.log_stream_name {
        check_string(
            stream,
            (1, 512),
            |s| !s.contains([':', '*']),
            "[^:*]*",
            &format!("{member}.cloudWatchLogs.logStreamName"),
        )?;
        filled.log_stream_name = Some(stream.clone());
    }
    Ok(ChannelLogging {
        cloud_watch_logs: Some(filled),
    })
}

fn default_logs(enabled: bool, channel_name: &str, channel_id: &str) -> CloudWatchLogs {
    CloudWatchLogs {
        enabled: Some(enabled),
        log_group_name: Some(format!("/aws/kinesis/{channel_name}/{channel_id}")),
        log_stream_name: Some(DEFAULT_LOG_STREAM.to_owned()),
    }
}

fn check_encryption(encryption: &ChannelEncryption) -> ApiResult<()> {
    const MEMBER: &str = "encryptionConfiguration";
    check_enum(
        required(
            &encryption.encryption_type,
            &format!("{MEMBER}.encryptionType"),
        )?,
        ENCRYPTION_TYPES,
        &format!("{MEMBER}.encryptionType"),
    )?;
    check_length(
        required(&encryption.key_id, &format!("{MEMBER}.keyId"))?,
        1,
        2048,
        &format!("{MEMBER}.keyId"),
    )
}

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
    with_live(store, store.channels(), arn, act)
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
            return Err(ApiError::validation(
                "1 validation error detected: Value at 'tags' failed to satisfy constraint: \
                 Member must have length between 1 and 200",
            ));
        }
    }
    let tags = input.tags.unwrap_or_default();
    super::tags::validate_tags(&tags, 0)?;
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
        if state.settings.mode != "ON_DEMAND" {
            return Err(ApiError::invalid_argument(format!(
                "Stream {} is in {} capacity mode; channels read only ON_DEMAND streams.",
                stream.name, state.settings.mode
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
    {
        let mut channels = store.channels();
        channels.retain(|c| !c.deleted(now));
        if channels.iter().any(|c| c.name == channel.name) {
            return Err(ApiError::in_use(format!(
                "Channel {} under account {} already exists.",
                channel.name, store.config.account_id
            )));
        }
        channels.push(channel.clone());
    }
    store.save_change(MetaChange::Channel(&channel.arn))?;
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
    with_channel(store, arn, |channel, now| {
        channel
            .lifecycle
            .begin_delete(now, store.config.delete_delay.as_millis() as i64);
        Ok(())
    })?;
    store.save_change(MetaChange::Channel(arn))?;
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
    with_channel(store, arn, |entry, _| {
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
    store.save_change(MetaChange::Channel(arn))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::channels::S3Storage;

    #[test]
    fn arns_are_checked_against_the_service_patterns() {
        assert!(is_role_arn("arn:aws:iam::123456789012:role/delivery-role"));
        assert!(is_role_arn(
            "arn:aws-cn:iam::123456789012:role/path/to/role"
        ));
        assert!(!is_role_arn("arn:aws:iam::12345:role/r"));
        assert!(!is_role_arn("arn:aws:iam:us-east-1:123456789012:role/r"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:user/r"));
        assert!(is_bucket_arn("arn:aws:s3:::my.bucket-1"));
        assert!(!is_bucket_arn("arn:aws:s3:::ab"));
        assert!(!is_bucket_arn("arn:aws:s3:::UPPER"));
        assert!(is_table_bucket_arn(
            "arn:aws:s3tables:us-east-1:123456789012:bucket/tables_1"
        ));
        assert!(!is_table_bucket_arn(
            "arn:aws:s3tables::123456789012:bucket/tables"
        ));
        assert!(is_schema_arn(
            "arn:aws:glue:us-east-1:123456789012:schema/registry/orders.v1"
        ));
        assert!(!is_schema_arn(
            "arn:aws:glue:us-east-1:123456789012:schema/only-one"
        ));
    }

    #[test]
    fn s3_defaults_are_filled_in() {
        let s3 = s3_destination(S3Destination {
            storage_configuration: Some(S3Storage {
                bucket_arn: Some("arn:aws:s3:::dest".to_owned()),
                expected_bucket_owner: Some("123456789012".to_owned()),
                compression_type: Some("GZIP".to_owned()),
                ..S3Storage::default()
            }),
            ..S3Destination::default()
        })
        .unwrap();
        assert_eq!(s3.data_freshness_in_seconds, Some(300));
        let storage = s3.storage_configuration.unwrap();
        assert_eq!(storage.storage_class.as_deref(), Some("STANDARD"));
        let dlq = s3.dead_letter_queue.unwrap();
        assert_eq!(dlq.bucket_arn.as_deref(), Some("arn:aws:s3:::dest"));
        assert_eq!(dlq.expected_bucket_owner.as_deref(), Some("123456789012"));
    }

    #[test]
    fn record_formats_must_suit_the_destination() {
        let s3 = Destination::S3(S3Destination::default());
        let tables = Destination::S3Tables(S3TablesDestination::default());
        let format = |f: &str, schema: bool| RecordConfig {
            record_format_type: Some(f.to_owned()),
            gsr_schema_arn: schema.then(|| "arn".to_owned()),
        };
        assert!(check_format_for(&format("BYTE_ARRAY", false), &s3).is_ok());
        assert!(check_format_for(&format("GSR_JSON", true), &s3).is_err());
        assert!(check_format_for(&format("GSR_JSON", true), &tables).is_ok());
        assert!(check_format_for(&format("JSON", false), &tables).is_err());
        assert!(check_format_for(&format("STRING", true), &tables).is_err());
    }
}
