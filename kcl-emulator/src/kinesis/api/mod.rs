//! The Kinesis Data Streams actions: parse, validate, apply.
//!
//! Each module holds a family of actions; each action is an async function from its input
//! shape to its output shape. [`dispatch`] routes an operation name to its action and handles
//! the wire format on both sides.

pub(crate) mod consumers;
pub(crate) mod records;
mod settings;
mod shards;
mod streams;
mod subscribe;
pub(crate) mod tags;
pub(crate) mod validate;
#[cfg(test)]
mod wire_tests;

use crate::kinesis::ext::{channels, queues};

pub(crate) use subscribe::subscription_frames;

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::kinesis::model::{KinesisStore, Stream};
use crate::wire::codec::{self, Format};
use crate::wire::validation;
use crate::wire::{ApiError, ApiResult, ErrorKind};

/// Invokes `$callback! { "Operation" => action, ... }` with every Kinesis operation that has a
/// whole (non-streamed) response, so dispatch and request decoding share one table.
macro_rules! kinesis_actions {
    ($callback:ident) => {
        $callback! {
            "CreateStream" => streams::create_stream,
            "DeleteStream" => streams::delete_stream,
            "DescribeStream" => streams::describe_stream,
            "DescribeStreamSummary" => streams::describe_stream_summary,
            "ListStreams" => streams::list_streams,
            "ListShards" => shards::list_shards,
            "SplitShard" => shards::split_shard,
            "MergeShards" => shards::merge_shards,
            "UpdateShardCount" => shards::update_shard_count,
            "PutRecord" => records::put_record,
            "PutRecords" => records::put_records,
            "GetShardIterator" => records::get_shard_iterator,
            "GetRecords" => records::get_records,
            "IncreaseStreamRetentionPeriod" => settings::increase_retention,
            "DecreaseStreamRetentionPeriod" => settings::decrease_retention,
            "StartStreamEncryption" => settings::start_encryption,
            "StopStreamEncryption" => settings::stop_encryption,
            "EnableEnhancedMonitoring" => settings::enable_monitoring,
            "DisableEnhancedMonitoring" => settings::disable_monitoring,
            "UpdateStreamMode" => settings::update_stream_mode,
            "UpdateMaxRecordSize" => settings::update_max_record_size,
            "UpdateStreamWarmThroughput" => settings::update_warm_throughput,
            "UpdateStreamRecordDistributionStrategy" => settings::update_record_distribution,
            "DescribeLimits" => settings::describe_limits,
            "DescribeAccountSettings" => settings::describe_account_settings,
            "UpdateAccountSettings" => settings::update_account_settings,
            "PutResourcePolicy" => settings::put_resource_policy,
            "GetResourcePolicy" => settings::get_resource_policy,
            "DeleteResourcePolicy" => settings::delete_resource_policy,
            "AddTagsToStream" => tags::add_tags_to_stream,
            "RemoveTagsFromStream" => tags::remove_tags_from_stream,
            "ListTagsForStream" => tags::list_tags_for_stream,
            "TagResource" => tags::tag_resource,
            "UntagResource" => tags::untag_resource,
            "ListTagsForResource" => tags::list_tags_for_resource,
            "RegisterStreamConsumer" => consumers::register,
            "DescribeStreamConsumer" => consumers::describe,
            "ListStreamConsumers" => consumers::list,
            "DeregisterStreamConsumer" => consumers::deregister,
            "CreateChannel" => channels::create,
            "DescribeChannel" => channels::describe,
            "ListChannels" => channels::list,
            "UpdateChannel" => channels::update,
            "DeleteChannel" => channels::delete,
            "CreateQueue" => queues::create,
            "DescribeQueue" => queues::describe,
            "ListQueues" => queues::list,
            "UpdateQueue" => queues::update,
            "DeleteQueue" => queues::delete,
            "ReceiveQueueRecords" => queues::receive,
            "AcknowledgeQueueRecords" => queues::acknowledge,
            "UpdateQueueRecordsVisibility" => queues::change_visibility,
            "ReceiveDeadLetterQueueRecords" => queues::receive_dead_letters,
            "AcknowledgeDeadLetterQueueRecords" => queues::acknowledge_dead_letters,
            "UpdateDeadLetterQueueRecordsVisibility" => queues::change_dead_letter_visibility,
            "RestoreDeadLetterQueueRecords" => queues::restore_dead_letters,
        }
    };
}

/// What an action answers.
#[derive(Debug)]
pub(crate) enum Reply {
    /// A whole encoded response body.
    Whole(Vec<u8>),
    /// Event-stream frames, sent as they come (SubscribeToShard). Errors found before the
    /// stream opens are ordinary error responses instead.
    EventStream(mpsc::Receiver<Bytes>),
}

/// Runs Kinesis operation `operation` on `body` and returns its reply.
///
/// # Errors
/// The operation's error, or `UnknownOperationException` for a name Kinesis does not have.
pub(crate) async fn dispatch(
    store: &KinesisStore,
    operation: &str,
    format: Format,
    body: &[u8],
) -> ApiResult<Reply> {
    macro_rules! route {
        ($($name:literal => $action:path),* $(,)?) => {
            match operation {
                "SubscribeToShard" => {
                    subscribe::subscribe(store, format, body).map(Reply::EventStream)
                }
                $($name => {
                    let input = codec::decode(format, body)?;
                    let output = $action(store, input).await?;
                    Ok(Reply::Whole(codec::encode(format, &output)))
                })*
                _ => Err(unknown_operation(operation)),
            }
        };
    }
    kinesis_actions!(route)
}

/// Decodes `body` as the input of `operation`, exactly as [`dispatch`] does before it runs the
/// action, without touching any stream. For fuzzing the request decoders.
///
/// # Errors
/// The `SerializationException` dispatch would answer, or `UnknownOperationException`.
pub(crate) fn decode_request(operation: &str, format: Format, body: &[u8]) -> ApiResult<()> {
    /// Decodes into the input type of `_action`, which the compiler infers from its signature.
    fn decode_for<'a, Input, Output>(
        _action: impl FnOnce(&'a KinesisStore, Input) -> Output,
        format: Format,
        body: &[u8],
    ) -> ApiResult<Input>
    where
        Input: serde::de::DeserializeOwned,
    {
        codec::decode(format, body)
    }
    macro_rules! decode {
        ($($name:literal => $action:path),* $(,)?) => {
            match operation {
                // Streamed, so not in the table; `dispatch` routes it to `subscribe`.
                "SubscribeToShard" => {
                    codec::decode::<subscribe::SubscribeInput>(format, body).map(drop)
                }
                $($name => decode_for($action, format, body).map(drop),)*
                _ => Err(unknown_operation(operation)),
            }
        };
    }
    kinesis_actions!(decode)
}

/// Decodes a CBOR `body` as the input of `operation` with the direct decoder and through the
/// generic path. `None` when the direct decoder leaves the body to the generic path or both
/// give the same input; otherwise both results, for a fuzzer or test to report.
pub(crate) fn cbor_decoders_disagree(operation: &str, body: &[u8]) -> Option<String> {
    /// Compares for the input type of `_action`, inferred as in [`decode_request`].
    fn compare_for<'a, Input, Output>(
        _action: impl FnOnce(&'a KinesisStore, Input) -> Output,
        body: &[u8],
    ) -> Option<String>
    where
        Input: serde::de::DeserializeOwned + std::fmt::Debug,
    {
        crate::wire::cbor::disagreement::<Input>(body)
    }
    macro_rules! compare {
        ($($name:literal => $action:path),* $(,)?) => {
            match operation {
                "SubscribeToShard" => {
                    crate::wire::cbor::disagreement::<subscribe::SubscribeInput>(body)
                }
                $($name => compare_for($action, body),)*
                _ => None,
            }
        };
    }
    kinesis_actions!(compare)
}

/// The names of the operations [`decode_request`] knows.
pub(crate) fn operation_names() -> &'static [&'static str] {
    macro_rules! names {
        ($($name:literal => $action:path),* $(,)?) => {
            &["SubscribeToShard", $($name),*]
        };
    }
    kinesis_actions!(names)
}

fn unknown_operation(operation: &str) -> ApiError {
    ApiError::new(
        ErrorKind::UnknownOperation,
        format!("Unknown operation Kinesis_20131202.{operation}"),
    )
}

/// The `StreamName` / `StreamARN` pair most inputs carry.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamRef {
    #[serde(rename = "StreamName")]
    pub(crate) name: Option<String>,
    #[serde(rename = "StreamARN")]
    pub(crate) arn: Option<String>,
}

impl StreamRef {
    /// Resolves the stream, by name or by ARN.
    ///
    /// # Errors
    /// `ValidationException` when neither is given or they disagree, `ResourceNotFoundException`
    /// when the stream does not exist.
    pub(crate) fn resolve(&self, store: &KinesisStore) -> ApiResult<Arc<Stream>> {
        let name = self.name_in(store)?;
        store.stream(&name)
    }

    /// The stream name given directly or through the ARN, validated.
    pub(crate) fn name_in(&self, store: &KinesisStore) -> ApiResult<String> {
        let from_arn = match &self.arn {
            Some(arn) => Some(stream_name_from_arn(store, arn)?),
            None => None,
        };
        match (&self.name, from_arn) {
            (Some(name), Some(arn_name)) if *name != arn_name => {
                Err(ApiError::invalid_argument(format!(
                    "StreamARN {} does not match StreamName {name}",
                    self.arn.as_deref().unwrap_or("")
                )))
            }
            (Some(name), _) => {
                validate_stream_name(name)?;
                Ok(name.clone())
            }
            (None, Some(arn_name)) => Ok(arn_name),
            (None, None) => Err(ApiError::validation(
                "Either StreamName or StreamARN should be provided.",
            )),
        }
    }
}

/// The stream name inside a stream ARN of this emulator's region and account.
pub(crate) fn stream_name_from_arn(store: &KinesisStore, arn: &str) -> ApiResult<String> {
    let prefix = format!(
        "arn:aws:kinesis:{}:{}:stream/",
        store.config.region, store.config.account_id
    );
    let invalid = || {
        validation::invalid(arn, "streamARN", "Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+")
    };
    let rest = arn.strip_prefix(&prefix).ok_or_else(|| {
        if arn.starts_with("arn:aws") && arn.contains(":kinesis:") {
            store.stream_not_found(arn)
        } else {
            invalid()
        }
    })?;
    let name = rest.split('/').next().unwrap_or_default();
    validate_stream_name(name).map_err(|_| invalid())?;
    Ok(name.to_owned())
}

/// Checks a stream or consumer name: 1-128 characters of `[a-zA-Z0-9_.-]`.
pub(crate) fn validate_stream_name(name: &str) -> ApiResult<()> {
    validate_name(name, "streamName")
}

pub(crate) fn validate_name(name: &str, member: &str) -> ApiResult<()> {
    if name.is_empty() || name.len() > 128 {
        return Err(validation::invalid(
            name,
            member,
            "Member must have length between 1 and 128",
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(validation::invalid(
            name,
            member,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ));
    }
    Ok(())
}

/// Checks that an optional integer parameter lies in `min..=max`.
pub(crate) fn validate_range(
    value: Option<i64>,
    min: i64,
    max: i64,
    member: &str,
) -> ApiResult<()> {
    match value {
        Some(v) if v < min => Err(validation::invalid(
            v,
            member,
            &format!("Member must have value greater than or equal to {min}"),
        )),
        Some(v) if v > max => Err(validation::invalid(
            v,
            member,
            &format!("Member must have value less than or equal to {max}"),
        )),
        _ => Ok(()),
    }
}

/// Seconds since the epoch, as Kinesis JSON timestamps are written.
pub(crate) fn epoch_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// The `StreamModeDetails` member.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub(crate) struct StreamModeDetails {
    #[serde(rename = "StreamMode")]
    pub(crate) stream_mode: String,
}

/// An opaque paging token: base64 of a small JSON document.
pub(crate) fn encode_token<T: serde::Serialize>(value: &T) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(value).expect("tokens always serialize"))
}

/// Decodes a token made by [`encode_token`].
///
/// # Errors
/// `InvalidArgumentException` when the token was not made here.
pub(crate) fn decode_token<T: serde::de::DeserializeOwned>(token: &str) -> ApiResult<T> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| ApiError::invalid_argument(format!("Invalid NextToken: {token}")))
}
