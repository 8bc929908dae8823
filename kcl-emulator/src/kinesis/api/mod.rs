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
#[cfg(test)]
mod wire_tests;

use crate::kinesis::ext::{channels, queues};

pub(crate) use subscribe::subscription_frames;

use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::kinesis::model::CapacityMode;
use crate::kinesis::request::names::WireName;
use crate::kinesis::KinesisStore;
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

/// The `StreamModeDetails` member.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub(crate) struct StreamModeDetails {
    #[serde(rename = "StreamMode")]
    pub(crate) stream_mode: String,
}

/// The capacity mode a `StreamModeDetails.StreamMode` member names.
///
/// # Errors
/// `ValidationException` for a name the API does not have.
pub(crate) fn stream_mode(name: &str) -> ApiResult<CapacityMode> {
    CapacityMode::from_wire(name).ok_or_else(|| {
        validation::invalid(
            name,
            "streamModeDetails.streamMode",
            "Member must satisfy enum value set: [ON_DEMAND, PROVISIONED]",
        )
    })
}
