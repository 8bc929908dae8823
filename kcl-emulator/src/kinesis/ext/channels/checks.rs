//! Checks of a channel's configuration (destinations, record format, logging, encryption),
//! worded as the service words them.

use super::*;

/// `DataFreshnessInSeconds` when the request leaves it out.
pub(super) const DEFAULT_DATA_FRESHNESS_SECONDS: i64 = 300;
/// The log stream a channel logs to unless told otherwise.
pub(super) const DEFAULT_LOG_STREAM: &str = "DestinationDelivery";
/// The prefix undeliverable records get in the destination bucket when an S3 channel names no
/// dead-letter queue of its own.
pub(super) const DEFAULT_ERROR_OUTPUT_PREFIX: &str = "errors/";

pub(super) const RECORD_FORMATS: &[&str] = &["GSR_JSON", "JSON", "STRING", "BYTE_ARRAY"];
pub(super) const S3_COMPRESSION: &[&str] = &["NONE", "GZIP", "ZSTD"];
pub(super) const S3_STORAGE_CLASSES: &[&str] = &["STANDARD", "INTELLIGENT_TIERING", "GLACIER_IR"];
pub(super) const S3_TABLES_COMPRESSION: &[&str] = &["NONE", "ZSTD", "SNAPPY"];
pub(super) const PARTITION_TRANSFORMS: &[&str] = &["TIME_HOUR"];
pub(super) const ENCRYPTION_TYPES: &[&str] = &["KMS"];

pub(super) fn is_role_arn(arn: &str) -> bool {
    arn_fields(arn, "iam").is_some_and(|(region, account, resource)| {
        region.is_empty()
            && is_account_id(account)
            && resource
                .strip_prefix("role/")
                .is_some_and(|name| only(name, alnum_or(b"_+=,.@-/")))
    })
}

pub(super) fn is_bucket_arn(arn: &str) -> bool {
    arn_fields(arn, "s3").is_some_and(|(region, account, bucket)| {
        region.is_empty()
            && account.is_empty()
            && (3..=63).contains(&bucket.len())
            && only(bucket, lower_digit_or(b"._-"))
    })
}

pub(super) fn is_table_bucket_arn(arn: &str) -> bool {
    arn_fields(arn, "s3tables").is_some_and(|(region, account, resource)| {
        only(region, lower_digit_or(b"-"))
            && is_account_id(account)
            && resource.strip_prefix("bucket/").is_some_and(|bucket| {
                (3..=63).contains(&bucket.len()) && only(bucket, lower_digit_or(b"_-"))
            })
    })
}

pub(super) fn is_schema_arn(arn: &str) -> bool {
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

pub(super) const ROLE_ARN_PATTERN: &str =
    r"arn:aws[-a-z0-9]*:iam::\d{12}:role/[a-zA-Z_0-9+=,.@\-_/]+";
pub(super) const BUCKET_ARN_PATTERN: &str = r"arn:aws[-a-z0-9]*:s3:::[a-z0-9._-]{3,63}";
pub(super) const TABLE_BUCKET_ARN_PATTERN: &str =
    r"arn:aws[-a-z0-9]*:s3tables:[-a-z0-9]+:\d{12}:bucket/[a-z0-9_-]{3,63}";
pub(super) const SCHEMA_ARN_PATTERN: &str =
    r"arn:aws[-a-z0-9]*:glue:[-a-z0-9]+:\d{12}:schema/[-a-zA-Z0-9_$#.]+/[-a-zA-Z0-9_$#.]+";
pub(super) fn check_freshness(seconds: Option<i64>, member: &str) -> ApiResult<()> {
    match seconds {
        Some(s) if s <= 0 => Err(ApiError::invalid_argument(format!(
            "{member} must be a positive number of seconds, not {s}."
        ))),
        _ => Ok(()),
    }
}

pub(super) fn check_dead_letter_queue(dlq: &DeadLetterQueue, member: &str) -> ApiResult<()> {
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

pub(super) fn check_owner(owner: &str, member: &str) -> ApiResult<()> {
    check_string(owner, (12, 12), is_account_id, r"\d{12}", member)
}

/// Validates an S3 destination and fills in the service's defaults.
pub(super) fn s3_destination(mut s3: S3Destination) -> ApiResult<S3Destination> {
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
pub(super) fn s3_tables_destination(
    mut dest: S3TablesDestination,
) -> ApiResult<S3TablesDestination> {
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

pub(super) fn check_table(table: &S3Table, member: &str) -> ApiResult<()> {
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

pub(super) fn check_record_configuration(record: &RecordConfig, member: &str) -> ApiResult<()> {
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
pub(super) fn check_format_for(record: &RecordConfig, destination: &Destination) -> ApiResult<()> {
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
pub(super) fn logging(
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

pub(super) fn default_logs(enabled: bool, channel_name: &str, channel_id: &str) -> CloudWatchLogs {
    CloudWatchLogs {
        enabled: Some(enabled),
        log_group_name: Some(format!("/aws/kinesis/{channel_name}/{channel_id}")),
        log_stream_name: Some(DEFAULT_LOG_STREAM.to_owned()),
    }
}

pub(super) fn check_encryption(encryption: &ChannelEncryption) -> ApiResult<()> {
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
