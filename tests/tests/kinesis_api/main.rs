//! The Kinesis Data Streams API of the emulator, driven by `aws-sdk-kinesis` over HTTP.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{
    ChannelDescription, ChannelDestinationType, ChannelEncryptionConfiguration,
    ChannelEncryptionType, ChannelLoggingUpdateInput, ChannelStatus, ChannelStreamConfiguration,
    CloudWatchLogsUpdateInput, DeadLetterQueueS3Configuration, PartitionField, PartitionSpec,
    PartitionTransform, PutRecordsRequestEntry, RecordConfiguration, RecordFormatType,
    S3CompressionType, S3DestinationConfiguration, S3DestinationUpdateInput, S3StorageClass,
    S3StorageConfiguration, S3TablesCompressionType, S3TablesConfiguration,
    S3TablesDestinationConfiguration, S3TablesDestinationUpdateInput, ScalingType, ShardFilter,
    ShardFilterType, ShardIteratorType, StreamFilter, StreamMode, StreamModeDetails, StreamStatus,
};
use kcl_emulator::Config;
use kcl_integration_tests::{
    create_active_stream, kinesis_client, start_emulator, start_emulator_with, unique_name,
    wait_for_active,
};

fn code<E: ProvideErrorMetadata>(err: &E) -> String {
    err.code().unwrap_or("<none>").to_owned()
}

async fn put(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    key: &str,
    data: &[u8],
) -> (String, String) {
    let out = client
        .put_record()
        .stream_name(stream)
        .partition_key(key)
        .data(Blob::new(data))
        .send()
        .await
        .expect("put_record");
    (out.shard_id().to_owned(), out.sequence_number().to_owned())
}

async fn iterator(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    shard: &str,
    kind: ShardIteratorType,
    seq: Option<&str>,
) -> String {
    client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(kind)
        .set_starting_sequence_number(seq.map(str::to_owned))
        .send()
        .await
        .expect("get_shard_iterator")
        .shard_iterator()
        .expect("iterator")
        .to_owned()
}

mod channels;
mod consumers;
mod records;
mod settings;
mod shards;
mod streams;
