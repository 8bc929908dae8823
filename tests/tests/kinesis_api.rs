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

#[tokio::test]
async fn stream_lifecycle_goes_through_creating_active_and_deleting() {
    let emulator = start_emulator_with({
        let mut c = Config::embedded();
        c.create_delay = Duration::from_millis(300);
        c
    })
    .await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("lifecycle");
    client
        .create_stream()
        .stream_name(&name)
        .shard_count(3)
        .send()
        .await
        .unwrap();
    let described = client
        .describe_stream()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    let description = described.stream_description().unwrap();
    assert_eq!(description.stream_status(), &StreamStatus::Creating);
    assert_eq!(description.shards().len(), 3);
    assert!(description
        .stream_arn()
        .ends_with(&format!(":stream/{name}")));
    // Writes are refused until the stream is ACTIVE.
    let early = client
        .put_record()
        .stream_name(&name)
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await;
    assert_eq!(
        code(&early.unwrap_err().into_service_error()),
        "ResourceNotFoundException"
    );
    wait_for_active(&client, &name).await;

    let listed = client.list_streams().send().await.unwrap();
    assert!(listed.stream_names().contains(&name));
    assert_eq!(listed.stream_summaries().len(), listed.stream_names().len());

    let dup = client
        .create_stream()
        .stream_name(&name)
        .shard_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&dup.into_service_error()), "ResourceInUseException");

    client
        .delete_stream()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    kcl_integration_tests::eventually("stream to disappear", || async {
        let r = client
            .describe_stream_summary()
            .stream_name(&name)
            .send()
            .await;
        match r {
            Err(err) => {
                (code(&err.into_service_error()) == "ResourceNotFoundException").then_some(())
            }
            Ok(_) => None,
        }
    })
    .await;
}

#[tokio::test]
async fn create_stream_validates_its_input() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let bad_name = client
        .create_stream()
        .stream_name("has space")
        .shard_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad_name.into_service_error()), "ValidationException");
    let zero = client
        .create_stream()
        .stream_name(unique_name("zero"))
        .shard_count(0)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&zero.into_service_error()), "ValidationException");
    let too_many = client
        .create_stream()
        .stream_name(unique_name("huge"))
        .shard_count(100_000)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&too_many.into_service_error()),
        "LimitExceededException"
    );

    let on_demand = unique_name("ondemand");
    client
        .create_stream()
        .stream_name(&on_demand)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let summary = client
        .describe_stream_summary()
        .stream_name(&on_demand)
        .send()
        .await
        .unwrap();
    let summary = summary.stream_description_summary().unwrap();
    assert_eq!(summary.open_shard_count(), 4);
    assert_eq!(
        summary.stream_mode_details().unwrap().stream_mode(),
        &StreamMode::OnDemand
    );
}

#[tokio::test]
async fn unknown_streams_and_shards_are_resource_not_found() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let err = client
        .describe_stream()
        .stream_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&err), "ResourceNotFoundException");
    assert!(err.message().unwrap().contains("nope"), "{err:?}");
    let err = client
        .put_record()
        .stream_name("nope")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await;
    assert_eq!(
        code(&err.unwrap_err().into_service_error()),
        "ResourceNotFoundException"
    );

    let name = unique_name("shards");
    create_active_stream(&client, &name, 1).await;
    let err = client
        .get_shard_iterator()
        .stream_name(&name)
        .shard_id("shardId-000000000009")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&err), "ResourceNotFoundException");
}

#[tokio::test]
async fn records_round_trip_in_order_by_name_and_by_arn() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("roundtrip");
    create_active_stream(&client, &name, 2).await;
    let arn = client
        .describe_stream_summary()
        .stream_name(&name)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_arn()
        .to_owned();

    let mut sent: HashMap<String, Vec<(String, Vec<u8>)>> = HashMap::new();
    for i in 0..50u32 {
        let data = format!("record-{i}").into_bytes();
        let key = format!("key-{}", i % 7);
        let out = client
            .put_record()
            .stream_arn(&arn)
            .partition_key(&key)
            .data(Blob::new(data.clone()))
            .send()
            .await
            .unwrap();
        sent.entry(out.shard_id().to_owned())
            .or_default()
            .push((out.sequence_number().to_owned(), data));
    }
    assert_eq!(sent.len(), 2, "md5 routing spreads 7 keys over both shards");
    for (shard, expected) in &sent {
        let mut it = iterator(&client, &name, shard, ShardIteratorType::TrimHorizon, None).await;
        let mut got = Vec::new();
        while got.len() < expected.len() {
            let out = client
                .get_records()
                .shard_iterator(&it)
                .limit(7)
                .send()
                .await
                .unwrap();
            assert!(out.records().len() <= 7);
            got.extend(
                out.records()
                    .iter()
                    .map(|r| (r.sequence_number().to_owned(), r.data().as_ref().to_vec())),
            );
            it = out.next_shard_iterator().unwrap().to_owned();
        }
        assert_eq!(&got, expected);
        // Sequence numbers are 56-digit decimals, strictly increasing in a shard.
        for pair in got.windows(2) {
            assert_eq!(pair[0].0.len(), 56);
            assert!(pair[0].0 < pair[1].0);
        }
        let tail = client
            .get_records()
            .shard_iterator(&it)
            .send()
            .await
            .unwrap();
        assert!(tail.records().is_empty());
        assert_eq!(tail.millis_behind_latest(), Some(0));
    }
}

#[tokio::test]
async fn explicit_hash_keys_route_and_are_validated() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("ehk");
    create_active_stream(&client, &name, 2).await;
    let low = client
        .put_record()
        .stream_name(&name)
        .partition_key("a")
        .explicit_hash_key("0")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(low.shard_id(), "shardId-000000000000");
    let high = client
        .put_record()
        .stream_name(&name)
        .partition_key("a")
        .explicit_hash_key(u128::MAX.to_string())
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(high.shard_id(), "shardId-000000000001");
    let bad = client
        .put_record()
        .stream_name(&name)
        .partition_key("a")
        .explicit_hash_key("340282366920938463463374607431768211456")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad.into_service_error()), "InvalidArgumentException");
}

#[tokio::test]
async fn put_records_enforces_limits_and_reports_per_record_results() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("batch");
    create_active_stream(&client, &name, 4).await;
    let entry = |i: usize, size: usize| {
        PutRecordsRequestEntry::builder()
            .partition_key(format!("pk-{i}"))
            .data(Blob::new(vec![b'x'; size]))
            .build()
            .unwrap()
    };
    let out = client
        .put_records()
        .stream_name(&name)
        .set_records(Some((0..500).map(|i| entry(i, 100)).collect()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(0));
    assert_eq!(out.records().len(), 500);
    assert!(out
        .records()
        .iter()
        .all(|r| r.sequence_number().is_some() && r.shard_id().is_some()));

    let too_many = client
        .put_records()
        .stream_name(&name)
        .set_records(Some((0..501).map(|i| entry(i, 1)).collect()))
        .send()
        .await;
    assert_eq!(
        code(&too_many.unwrap_err().into_service_error()),
        "ValidationException"
    );

    let oversize = client
        .put_record()
        .stream_name(&name)
        .partition_key("k")
        .data(Blob::new(vec![0u8; 1024 * 1024 + 1]))
        .send()
        .await;
    assert_eq!(
        code(&oversize.unwrap_err().into_service_error()),
        "ValidationException"
    );
    // The 1 MiB record limit counts the partition key too: 1 MiB of data is one byte too many
    // with a one-byte key, one byte less fits exactly.
    let with_key = client
        .put_record()
        .stream_name(&name)
        .partition_key("k")
        .data(Blob::new(vec![0u8; 1024 * 1024]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&with_key), "ValidationException");
    assert_eq!(
        with_key.message(),
        Some(
            "1 validation error detected: Value at 'data' failed to satisfy constraint: Member \
             must have length less than or equal to 1048576"
        )
    );
    client
        .put_record()
        .stream_name(&name)
        .partition_key("k")
        .data(Blob::new(vec![0u8; 1024 * 1024 - 1]))
        .send()
        .await
        .unwrap();
    let entry_with_key = client
        .put_records()
        .stream_name(&name)
        .records(entry(0, 10))
        // "pk-1" is four bytes.
        .records(entry(1, 1024 * 1024 - 3))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&entry_with_key), "ValidationException");
    assert_eq!(
        entry_with_key.message(),
        Some(
            "1 validation error detected: Value at 'records.2.member.data' failed to satisfy \
             constraint: Member must have length less than or equal to 1048576"
        )
    );
    client
        .put_records()
        .stream_name(&name)
        .records(entry(1, 1024 * 1024 - 4))
        .send()
        .await
        .unwrap();

    let over_5mib = client
        .put_records()
        .stream_name(&name)
        .set_records(Some((0..6).map(|i| entry(i, 1024 * 1024 - 10)).collect()))
        .send()
        .await;
    assert_eq!(
        code(&over_5mib.unwrap_err().into_service_error()),
        "InvalidArgumentException"
    );

    let long_key = client
        .put_record()
        .stream_name(&name)
        .partition_key("k".repeat(257))
        .data(Blob::new("x"))
        .send()
        .await;
    assert_eq!(
        code(&long_key.unwrap_err().into_service_error()),
        "ValidationException"
    );
}

#[tokio::test]
async fn iterator_types_start_where_they_should() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("iters");
    create_active_stream(&client, &name, 1).await;
    let shard = "shardId-000000000000";
    let mut seqs = Vec::new();
    for i in 0..5 {
        seqs.push(put(&client, &name, "k", format!("r{i}").as_bytes()).await.1);
    }
    let latest = iterator(&client, &name, shard, ShardIteratorType::Latest, None).await;
    let at = iterator(
        &client,
        &name,
        shard,
        ShardIteratorType::AtSequenceNumber,
        Some(&seqs[2]),
    )
    .await;
    let after = iterator(
        &client,
        &name,
        shard,
        ShardIteratorType::AfterSequenceNumber,
        Some(&seqs[2]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cut = DateTime::from(std::time::SystemTime::now());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let newest = put(&client, &name, "k", b"r5").await.1;

    let first = |it: String| {
        let client = client.clone();
        async move {
            let out = client
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap();
            out.records()
                .first()
                .map(|r| r.sequence_number().to_owned())
        }
    };
    assert_eq!(first(latest).await.as_deref(), Some(newest.as_str()));
    assert_eq!(first(at).await.as_deref(), Some(seqs[2].as_str()));
    assert_eq!(first(after).await.as_deref(), Some(seqs[3].as_str()));
    let by_time = client
        .get_shard_iterator()
        .stream_name(&name)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(cut)
        .send()
        .await
        .unwrap();
    assert_eq!(
        first(by_time.shard_iterator().unwrap().to_owned())
            .await
            .as_deref(),
        Some(newest.as_str())
    );

    // A sequence number from another shard or garbage is rejected, not misread.
    let other = unique_name("other");
    create_active_stream(&client, &other, 1).await;
    let foreign = put(&client, &other, "k", b"x").await.1;
    for bad in [foreign.as_str(), "12345", "not-a-number"] {
        let err = client
            .get_shard_iterator()
            .stream_name(&name)
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(bad)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert_eq!(code(&err), "InvalidArgumentException", "{bad}");
    }
}

#[tokio::test]
async fn bad_and_expired_iterators_are_rejected() {
    let emulator = start_emulator_with({
        let mut c = Config::embedded();
        c.iterator_ttl = Duration::from_millis(300);
        c
    })
    .await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("expiry");
    create_active_stream(&client, &name, 1).await;
    let bad = client
        .get_records()
        .shard_iterator("bm90LWFuLWl0ZXJhdG9y")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad.into_service_error()), "InvalidArgumentException");
    let it = iterator(
        &client,
        &name,
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(expired.is_expired_iterator_exception(), "{expired:?}");
}

#[tokio::test]
async fn split_and_merge_record_lineage_and_close_parents() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("reshard");
    create_active_stream(&client, &name, 2).await;
    let (_, before_seq) = put(&client, &name, "k", b"before").await;
    let shards = client
        .list_shards()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    let s0 = &shards.shards()[0];
    let start: u128 = s0
        .hash_key_range()
        .unwrap()
        .starting_hash_key()
        .parse()
        .unwrap();
    let end: u128 = s0
        .hash_key_range()
        .unwrap()
        .ending_hash_key()
        .parse()
        .unwrap();
    let mid = start + (end - start) / 2;

    // Merging non-adjacent shards is refused.
    client
        .split_shard()
        .stream_name(&name)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(mid.to_string())
        .send()
        .await
        .unwrap();
    let busy = client
        .split_shard()
        .stream_name(&name)
        .shard_to_split("shardId-000000000001")
        .new_starting_hash_key((u128::MAX - 5).to_string())
        .send()
        .await;
    assert_eq!(
        code(&busy.unwrap_err().into_service_error()),
        "ResourceInUseException",
        "UPDATING stream refuses reshards"
    );
    wait_for_active(&client, &name).await;

    let listed = client
        .list_shards()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = listed
        .shards()
        .iter()
        .map(|s| s.shard_id().to_owned())
        .collect();
    assert_eq!(
        ids,
        [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002",
            "shardId-000000000003"
        ]
    );
    let parent = &listed.shards()[0];
    assert!(parent
        .sequence_number_range()
        .unwrap()
        .ending_sequence_number()
        .is_some());
    for child in &listed.shards()[2..] {
        assert_eq!(child.parent_shard_id(), Some("shardId-000000000000"));
        let child_start = child
            .sequence_number_range()
            .unwrap()
            .starting_sequence_number();
        assert!(
            child_start > before_seq.as_str(),
            "children sort after their parent's records"
        );
    }
    // shard 3 (upper half of old shard 0) and shard 1 are adjacent; 2 and 1 are not.
    let not_adjacent = client
        .merge_shards()
        .stream_name(&name)
        .shard_to_merge("shardId-000000000002")
        .adjacent_shard_to_merge("shardId-000000000001")
        .send()
        .await;
    assert_eq!(
        code(&not_adjacent.unwrap_err().into_service_error()),
        "InvalidArgumentException"
    );
    let closed = client
        .merge_shards()
        .stream_name(&name)
        .shard_to_merge("shardId-000000000000")
        .adjacent_shard_to_merge("shardId-000000000001")
        .send()
        .await;
    let closed = closed.unwrap_err().into_service_error();
    assert_eq!(code(&closed), "InvalidArgumentException");
    assert_eq!(
        closed.message(),
        Some(
            format!(
                "Shard shardId-000000000000 in stream {name} under account 000000000000 has \
                 already been merged or split, and thus is not eligible for merging or splitting."
            )
            .as_str()
        )
    );
    let split_closed = client
        .split_shard()
        .stream_name(&name)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("1")
        .send()
        .await;
    assert_eq!(
        code(&split_closed.unwrap_err().into_service_error()),
        "InvalidArgumentException"
    );
    client
        .merge_shards()
        .stream_name(&name)
        .shard_to_merge("shardId-000000000003")
        .adjacent_shard_to_merge("shardId-000000000001")
        .send()
        .await
        .unwrap();
    wait_for_active(&client, &name).await;
    let merged = client
        .list_shards()
        .stream_name(&name)
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let open: Vec<_> = merged
        .shards()
        .iter()
        .map(|s| s.shard_id().to_owned())
        .collect();
    assert_eq!(open, ["shardId-000000000002", "shardId-000000000004"]);
    let child = &merged.shards()[1];
    assert_eq!(child.parent_shard_id(), Some("shardId-000000000003"));
    assert_eq!(
        child.adjacent_parent_shard_id(),
        Some("shardId-000000000001")
    );

    // Reading a closed parent to its end yields the children and no next iterator.
    let mut it = iterator(
        &client,
        &name,
        "shardId-000000000000",
        ShardIteratorType::TrimHorizon,
        None,
    )
    .await;
    let mut seen = Vec::new();
    loop {
        let out = client
            .get_records()
            .shard_iterator(&it)
            .send()
            .await
            .unwrap();
        seen.extend(out.records().iter().map(|r| r.sequence_number().to_owned()));
        match out.next_shard_iterator() {
            Some(next) => it = next.to_owned(),
            None => {
                let children: Vec<_> = out
                    .child_shards()
                    .iter()
                    .map(|c| c.shard_id().to_owned())
                    .collect();
                assert_eq!(children, ["shardId-000000000002", "shardId-000000000003"]);
                break;
            }
        }
    }
    if put(&client, &name, "probe", b"x").await.0 == "shardId-000000000000" {
        panic!("records must never go to a closed shard");
    }
    let _ = seen;
}

/// The retention period of a new stream, plus an hour: long enough for a shard closed now, and
/// every record put now, to have expired.
const PAST_RETENTION: Duration = Duration::from_secs(25 * 3600);

/// Splits the only shard of `name` in two at the middle of its range and waits for ACTIVE.
async fn split_first_shard(client: &aws_sdk_kinesis::Client, name: &str) {
    client
        .split_shard()
        .stream_name(name)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((u128::MAX / 2).to_string())
        .send()
        .await
        .expect("split_shard");
    wait_for_active(client, name).await;
}

/// ListShards of `name`: each shard id with its parent.
async fn listed_lineage(
    client: &aws_sdk_kinesis::Client,
    name: &str,
) -> Vec<(String, Option<String>)> {
    client
        .list_shards()
        .stream_name(name)
        .send()
        .await
        .expect("list_shards")
        .shards()
        .iter()
        .map(|s| {
            (
                s.shard_id().to_owned(),
                s.parent_shard_id().map(str::to_owned),
            )
        })
        .collect()
}

/// Every record readable from TRIM_HORIZON of each listed shard of `name`.
async fn readable_data(client: &aws_sdk_kinesis::Client, name: &str) -> Vec<Vec<u8>> {
    let mut data = Vec::new();
    for (shard, _) in listed_lineage(client, name).await {
        let it = iterator(client, name, &shard, ShardIteratorType::TrimHorizon, None).await;
        let out = client
            .get_records()
            .shard_iterator(it)
            .send()
            .await
            .unwrap();
        data.extend(out.records().iter().map(|r| r.data().as_ref().to_vec()));
    }
    data.sort();
    data
}

/// The children of a split, each naming `shardId-000000000000` as parent.
fn split_children() -> Vec<(String, Option<String>)> {
    ["shardId-000000000001", "shardId-000000000002"]
        .map(|id| (id.to_owned(), Some("shardId-000000000000".to_owned())))
        .to_vec()
}

#[tokio::test]
async fn closed_shards_expire_once_the_retention_period_has_passed() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("expiry");
    create_active_stream(&client, &name, 1).await;
    put(&client, &name, "k", b"in the parent").await;
    split_first_shard(&client, &name).await;
    put(&client, &name, "k", b"in a child, before").await;
    let parent = ("shardId-000000000000".to_owned(), None);
    let mut all = vec![parent];
    all.extend(split_children());
    assert_eq!(listed_lineage(&client, &name).await, all);

    emulator.advance_clock(PAST_RETENTION);

    // Gone from every listing; its children still name it as their parent.
    assert_eq!(listed_lineage(&client, &name).await, split_children());
    let described = client
        .describe_stream()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    let described: Vec<_> = described
        .stream_description()
        .unwrap()
        .shards()
        .iter()
        .map(|s| s.shard_id().to_owned())
        .collect();
    assert_eq!(described, ["shardId-000000000001", "shardId-000000000002"]);
    let summary = client
        .describe_stream_summary()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary()
            .unwrap()
            .open_shard_count(),
        2
    );

    // Not served either, as a shard that does not exist.
    let missing = client
        .get_shard_iterator()
        .stream_name(&name)
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&missing), "ResourceNotFoundException");
    assert_eq!(
        missing.message(),
        Some(
            format!(
                "Shard shardId-000000000000 in stream {name} under account 000000000000 \
                 does not exist"
            )
            .as_str()
        )
    );
    let split = client
        .split_shard()
        .stream_name(&name)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&split), "ResourceNotFoundException");

    // The records put before the advance are trimmed; new ones are read as usual.
    assert!(readable_data(&client, &name).await.is_empty());
    put(&client, &name, "k", b"after").await;
    assert_eq!(readable_data(&client, &name).await, [b"after".to_vec()]);
}

#[tokio::test]
async fn shard_expiry_survives_restarts_of_a_durable_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = Config::embedded();
        c.data_dir = Some(dir.path().to_owned());
        c
    };
    let emulator = start_emulator_with(config()).await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("durable-expiry");
    create_active_stream(&client, &name, 1).await;
    split_first_shard(&client, &name).await;
    emulator.shutdown().await;

    // When the parent closed was saved: it expires once retention has passed since then.
    let emulator = start_emulator_with(config()).await;
    let client = kinesis_client(&emulator.endpoint_url());
    assert_eq!(listed_lineage(&client, &name).await.len(), 3);
    emulator.advance_clock(PAST_RETENTION);
    assert_eq!(listed_lineage(&client, &name).await, split_children());
    emulator.shutdown().await;

    // The advanced clock was saved too: the parent does not come back after a restart.
    let emulator = start_emulator_with(config()).await;
    let client = kinesis_client(&emulator.endpoint_url());
    assert_eq!(listed_lineage(&client, &name).await, split_children());
}

#[tokio::test]
async fn update_shard_count_scales_up_and_down_with_valid_lineage() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("scale");
    create_active_stream(&client, &name, 3).await;
    for target in [5, 4, 2] {
        let out = client
            .update_shard_count()
            .stream_name(&name)
            .target_shard_count(target)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .unwrap();
        assert_eq!(out.target_shard_count(), Some(target));
        wait_for_active(&client, &name).await;
        let all = client
            .list_shards()
            .stream_name(&name)
            .send()
            .await
            .unwrap();
        let open: Vec<_> = all
            .shards()
            .iter()
            .filter(|s| {
                s.sequence_number_range()
                    .unwrap()
                    .ending_sequence_number()
                    .is_none()
            })
            .collect();
        assert_eq!(open.len(), target as usize);
        // Open shards tile the hash space exactly.
        let mut ranges: Vec<(u128, u128)> = open
            .iter()
            .map(|s| {
                let r = s.hash_key_range().unwrap();
                (
                    r.starting_hash_key().parse().unwrap(),
                    r.ending_hash_key().parse().unwrap(),
                )
            })
            .collect();
        ranges.sort();
        assert_eq!(ranges[0].0, 0);
        assert_eq!(ranges.last().unwrap().1, u128::MAX);
        for w in ranges.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0);
        }
        // Every non-root shard names parents that exist.
        let ids: Vec<_> = all.shards().iter().map(|s| s.shard_id()).collect();
        for s in all.shards() {
            for p in s
                .parent_shard_id()
                .into_iter()
                .chain(s.adjacent_parent_shard_id())
            {
                assert!(ids.contains(&p));
            }
        }
    }
    let too_far = client
        .update_shard_count()
        .stream_name(&name)
        .target_shard_count(9)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await;
    assert_eq!(
        code(&too_far.unwrap_err().into_service_error()),
        "LimitExceededException"
    );
}

#[tokio::test]
async fn list_shards_pages_with_next_token() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("paging");
    create_active_stream(&client, &name, 5).await;
    let mut token = None;
    let mut ids = Vec::new();
    loop {
        let req = match &token {
            Some(t) => client.list_shards().next_token(t).max_results(2),
            None => client.list_shards().stream_name(&name).max_results(2),
        };
        let out = req.send().await.unwrap();
        ids.extend(out.shards().iter().map(|s| s.shard_id().to_owned()));
        match out.next_token() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(ids.len(), 5);
    let both = client
        .list_shards()
        .stream_name(&name)
        .next_token("x")
        .send()
        .await;
    assert_eq!(
        code(&both.unwrap_err().into_service_error()),
        "InvalidArgumentException"
    );
    let after = client
        .list_shards()
        .stream_name(&name)
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AfterShardId)
                .shard_id("shardId-000000000002")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(after.shards().len(), 2);
}

#[tokio::test]
async fn retention_changes_are_validated() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("retention");
    create_active_stream(&client, &name, 1).await;
    client
        .increase_stream_retention_period()
        .stream_name(&name)
        .retention_period_hours(48)
        .send()
        .await
        .unwrap();
    wait_for_active(&client, &name).await;
    let summary = client
        .describe_stream_summary()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary()
            .unwrap()
            .retention_period_hours(),
        48
    );
    for (hours, increase) in [(23, true), (8761, true), (24, true), (72, false)] {
        let result = if increase {
            client
                .increase_stream_retention_period()
                .stream_name(&name)
                .retention_period_hours(hours)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| code(&e.into_service_error()))
        } else {
            client
                .decrease_stream_retention_period()
                .stream_name(&name)
                .retention_period_hours(hours)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| code(&e.into_service_error()))
        };
        assert_eq!(
            result,
            Err("InvalidArgumentException".to_owned()),
            "{hours} h"
        );
    }
    client
        .decrease_stream_retention_period()
        .stream_name(&name)
        .retention_period_hours(24)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn tags_encryption_monitoring_mode_and_limits() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("settings");
    create_active_stream(&client, &name, 2).await;
    let arn = format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}");
    client
        .add_tags_to_stream()
        .stream_name(&name)
        .tags("team", "data")
        .tags("env", "test")
        .send()
        .await
        .unwrap();
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags("owner", "me")
        .send()
        .await
        .unwrap();
    client
        .remove_tags_from_stream()
        .stream_name(&name)
        .tag_keys("env")
        .send()
        .await
        .unwrap();
    let tags = client
        .list_tags_for_stream()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = tags.tags().iter().map(|t| t.key()).collect();
    assert_eq!(keys, ["owner", "team"]);
    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("owner")
        .send()
        .await
        .unwrap();
    assert_eq!(
        client
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .unwrap()
            .tags()
            .len(),
        1
    );

    client
        .start_stream_encryption()
        .stream_name(&name)
        .encryption_type(aws_sdk_kinesis::types::EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .unwrap();
    wait_for_active(&client, &name).await;
    let put = client
        .put_record()
        .stream_name(&name)
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.encryption_type(),
        Some(&aws_sdk_kinesis::types::EncryptionType::Kms)
    );

    let monitoring = client
        .enable_enhanced_monitoring()
        .stream_name(&name)
        .shard_level_metrics(aws_sdk_kinesis::types::MetricsName::All)
        .send()
        .await
        .unwrap();
    assert_eq!(monitoring.desired_shard_level_metrics().len(), 7);
    let off = client
        .disable_enhanced_monitoring()
        .stream_name(&name)
        .shard_level_metrics(aws_sdk_kinesis::types::MetricsName::IncomingBytes)
        .send()
        .await
        .unwrap();
    assert_eq!(off.desired_shard_level_metrics().len(), 6);

    client
        .update_stream_mode()
        .stream_arn(&arn)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    wait_for_active(&client, &name).await;
    let limits = client.describe_limits().send().await.unwrap();
    assert_eq!(limits.shard_limit(), 500);
    assert_eq!(limits.open_shard_count(), 2);
    assert_eq!(limits.on_demand_stream_count(), 1);

    client
        .put_resource_policy()
        .resource_arn(&arn)
        .policy(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();
    let policy = client
        .get_resource_policy()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert!(policy.policy().contains("2012-10-17"));
    client
        .delete_resource_policy()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn consumers_register_describe_list_and_deregister() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("consumers");
    create_active_stream(&client, &name, 1).await;
    let arn = format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}");
    let registered = client
        .register_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("app")
        .send()
        .await
        .unwrap();
    let consumer = registered.consumer().unwrap();
    assert_eq!(
        consumer.consumer_status(),
        &aws_sdk_kinesis::types::ConsumerStatus::Creating
    );
    let consumer_arn = consumer.consumer_arn().to_owned();
    let dup = client
        .register_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("app")
        .send()
        .await;
    assert_eq!(
        code(&dup.unwrap_err().into_service_error()),
        "ResourceInUseException"
    );
    kcl_integration_tests::eventually("consumer ACTIVE", || async {
        let d = client
            .describe_stream_consumer()
            .consumer_arn(&consumer_arn)
            .send()
            .await
            .ok()?;
        (d.consumer_description()?.consumer_status()
            == &aws_sdk_kinesis::types::ConsumerStatus::Active)
            .then_some(())
    })
    .await;
    let by_name = client
        .describe_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_name.consumer_description().unwrap().consumer_arn(),
        consumer_arn
    );
    for i in 1..20 {
        client
            .register_stream_consumer()
            .stream_arn(&arn)
            .consumer_name(format!("c{i}"))
            .send()
            .await
            .unwrap();
    }
    let over = client
        .register_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("c20")
        .send()
        .await;
    assert_eq!(
        code(&over.unwrap_err().into_service_error()),
        "LimitExceededException"
    );
    let page = client
        .list_stream_consumers()
        .stream_arn(&arn)
        .max_results(15)
        .send()
        .await
        .unwrap();
    assert_eq!(page.consumers().len(), 15);
    let rest = client
        .list_stream_consumers()
        .stream_arn(&arn)
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.consumers().len(), 5);

    let with_consumers = client.delete_stream().stream_name(&name).send().await;
    assert_eq!(
        code(&with_consumers.unwrap_err().into_service_error()),
        "ResourceInUseException"
    );
    client
        .deregister_stream_consumer()
        .consumer_arn(&consumer_arn)
        .send()
        .await
        .unwrap();
    kcl_integration_tests::eventually("consumer gone", || async {
        client
            .describe_stream_consumer()
            .consumer_arn(&consumer_arn)
            .send()
            .await
            .err()
            .map(|_| ())
    })
    .await;
    client
        .delete_stream()
        .stream_name(&name)
        .enforce_consumer_deletion(true)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn auto_record_distribution_spreads_one_partition_key_over_every_shard() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("auto");
    create_active_stream(&client, &name, 4).await;
    let arn = format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}");
    let shards_for_one_key = |client: aws_sdk_kinesis::Client, name: String| async move {
        let entries = (0..200)
            .map(|_| {
                PutRecordsRequestEntry::builder()
                    .partition_key("same")
                    .data(Blob::new("x"))
                    .build()
                    .unwrap()
            })
            .collect();
        let out = client
            .put_records()
            .stream_name(&name)
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        out.records()
            .iter()
            .map(|r| r.shard_id().unwrap().to_owned())
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    assert_eq!(shards_for_one_key(client.clone(), name.clone()).await, 1);
    client
        .update_stream_record_distribution_strategy()
        .stream_arn(&arn)
        .record_distribution_strategy(aws_sdk_kinesis::types::RecordDistributionStrategy::Auto)
        .send()
        .await
        .unwrap();
    wait_for_active(&client, &name).await;
    assert_eq!(shards_for_one_key(client.clone(), name.clone()).await, 4);
    let summary = client
        .describe_stream_summary()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary()
            .unwrap()
            .record_distribution_strategy(),
        Some(&aws_sdk_kinesis::types::RecordDistributionStrategy::Auto)
    );
}

#[tokio::test]
async fn throughput_limits_are_enforced_when_enabled() {
    let emulator = start_emulator_with({
        let mut c = Config::embedded();
        c.enforce_throughput = true;
        c
    })
    .await;
    // Throttling errors are retryable; without retries the test sees each refusal.
    let client = aws_sdk_kinesis::Client::from_conf(
        kinesis_client(&emulator.endpoint_url())
            .config()
            .to_builder()
            .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
            .build(),
    );
    let name = unique_name("throttled");
    create_active_stream(&client, &name, 1).await;
    // 1,000 records per second per shard: batches of 500 soon exceed it within one second.
    let mut failures = Vec::new();
    for _ in 0..6 {
        let entries = (0..500)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("k{i}"))
                    .data(Blob::new("x"))
                    .build()
                    .unwrap()
            })
            .collect();
        let out = client
            .put_records()
            .stream_name(&name)
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        failures.extend(
            out.records()
                .iter()
                .filter_map(|r| r.error_code().map(str::to_owned)),
        );
        if !failures.is_empty() {
            break;
        }
    }
    assert!(!failures.is_empty(), "some records are throttled");
    assert!(failures
        .iter()
        .all(|c| c == "ProvisionedThroughputExceededException"));
    // Five GetRecords calls per second per shard.
    let it = iterator(
        &client,
        &name,
        "shardId-000000000000",
        ShardIteratorType::Latest,
        None,
    )
    .await;
    let mut throttled = false;
    for _ in 0..12 {
        if let Err(err) = client.get_records().shard_iterator(&it).send().await {
            let err = err.into_service_error();
            assert!(
                err.is_provisioned_throughput_exceeded_exception(),
                "{err:?}"
            );
            throttled = true;
            break;
        }
    }
    assert!(throttled, "a sixth read within one second is refused");
}

// Channels: delivery from an on-demand stream to S3 or S3 Tables. The emulator keeps the
// configuration and runs the lifecycle; these tests drive it with the SDK's own types.

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/channel-delivery";
const BUCKET_ARN: &str = "arn:aws:s3:::delivery-bucket";
const BUCKET_OWNER: &str = "123456789012";

/// Creates an ACTIVE on-demand stream and returns its ARN.
async fn on_demand_stream(client: &aws_sdk_kinesis::Client, name: &str) -> String {
    client
        .create_stream()
        .stream_name(name)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    wait_for_active(client, name).await;
    stream_arn(client, name).await
}

async fn stream_arn(client: &aws_sdk_kinesis::Client, name: &str) -> String {
    client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_arn()
        .to_owned()
}

fn source(stream_arn: &str, format: RecordFormatType) -> ChannelStreamConfiguration {
    ChannelStreamConfiguration::builder()
        .stream_arn(stream_arn)
        .record_configuration(
            RecordConfiguration::builder()
                .record_format_type(format)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn s3_destination() -> S3DestinationConfiguration {
    s3_destination_with_freshness(None)
}

fn s3_destination_with_freshness(seconds: Option<i32>) -> S3DestinationConfiguration {
    S3DestinationConfiguration::builder()
        .set_data_freshness_in_seconds(seconds)
        .storage_configuration(
            S3StorageConfiguration::builder()
                .bucket_arn(BUCKET_ARN)
                .expected_bucket_owner(BUCKET_OWNER)
                .compression_type(S3CompressionType::Gzip)
                .build()
                .unwrap(),
        )
        .build()
}

async fn create_s3_channel(
    client: &aws_sdk_kinesis::Client,
    name: &str,
    stream_arn: &str,
) -> ChannelDescription {
    client
        .create_channel()
        .channel_name(name)
        .service_execution_role_arn(ROLE_ARN)
        .stream_configuration_list(source(stream_arn, RecordFormatType::Json))
        .s3_destination_configuration(s3_destination())
        .send()
        .await
        .unwrap()
        .channel_description()
        .unwrap()
        .clone()
}

async fn describe_channel(client: &aws_sdk_kinesis::Client, arn: &str) -> ChannelDescription {
    client
        .describe_channel()
        .channel_arn(arn)
        .send()
        .await
        .unwrap()
        .channel_description()
        .unwrap()
        .clone()
}

async fn wait_for_channel(
    client: &aws_sdk_kinesis::Client,
    arn: &str,
    status: ChannelStatus,
) -> ChannelDescription {
    kcl_integration_tests::eventually("channel to reach the expected status", || async {
        let described = describe_channel(client, arn).await;
        (described.channel_status() == &status).then_some(described)
    })
    .await
}

#[tokio::test]
async fn channel_lifecycle_defaults_updates_tags_and_deletion() {
    let emulator = start_emulator_with({
        let mut c = Config::embedded();
        c.create_delay = Duration::from_millis(300);
        c.update_delay = Duration::from_millis(300);
        c
    })
    .await;
    let client = kinesis_client(&emulator.endpoint_url());
    let stream = on_demand_stream(&client, &unique_name("channel-src")).await;
    let name = unique_name("to-s3");

    let created = client
        .create_channel()
        .channel_name(&name)
        .service_execution_role_arn(ROLE_ARN)
        .stream_configuration_list(source(&stream, RecordFormatType::Json))
        .s3_destination_configuration(s3_destination())
        .tags("team", "data")
        .send()
        .await
        .unwrap()
        .channel_description()
        .unwrap()
        .clone();
    assert_eq!(created.channel_name(), name);
    assert_eq!(created.channel_status(), &ChannelStatus::Creating);
    assert_eq!(
        created.channel_arn(),
        format!(
            "arn:aws:kinesis:us-east-1:000000000000:channel/{}",
            created.channel_id()
        )
    );
    assert_eq!(created.service_execution_role_arn(), ROLE_ARN);
    let sources = created.stream_configuration_list();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].stream_arn(), stream);
    assert_eq!(
        sources[0]
            .record_configuration()
            .unwrap()
            .record_format_type(),
        &RecordFormatType::Json
    );
    // The service's defaults: five-minute freshness, STANDARD storage, the destination bucket
    // as dead-letter queue, logging off with the documented log group and stream names.
    let s3 = created.s3_destination_configuration().unwrap();
    assert_eq!(s3.data_freshness_in_seconds(), 300);
    assert_eq!(
        s3.storage_configuration().unwrap().storage_class(),
        Some(&S3StorageClass::Standard)
    );
    assert_eq!(
        s3.dead_letter_queue_s3_configuration()
            .unwrap()
            .bucket_arn(),
        BUCKET_ARN
    );
    let logs = created
        .logging_configuration()
        .unwrap()
        .cloud_watch_logs()
        .unwrap();
    assert!(!logs.enabled());
    assert_eq!(
        logs.log_group_name(),
        Some(format!("/aws/kinesis/{name}/{}", created.channel_id()).as_str())
    );
    assert_eq!(logs.log_stream_name(), Some("DestinationDelivery"));
    assert!(created.s3_tables_destination_configuration().is_none());

    let arn = created.channel_arn().to_owned();
    let active = wait_for_channel(&client, &arn, ChannelStatus::Active).await;
    assert_eq!(
        active.channel_creation_timestamp(),
        created.channel_creation_timestamp()
    );

    // Tags through the ARN-based tagging calls.
    let tags = client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(tags.tags()[0].key(), "team");
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags("env", "test")
        .send()
        .await
        .unwrap();
    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let tags = client
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = tags.tags().iter().map(|t| t.key()).collect();
    assert_eq!(keys, ["env"]);

    // An update goes through UPDATING; a second one meanwhile is refused.
    let updated = client
        .update_channel()
        .channel_arn(&arn)
        .s3_destination_configuration(
            S3DestinationUpdateInput::builder()
                .data_freshness_in_seconds(600)
                .build()
                .unwrap(),
        )
        .logging_configuration(
            ChannelLoggingUpdateInput::builder()
                .cloud_watch_logs(
                    CloudWatchLogsUpdateInput::builder()
                        .enabled(true)
                        .log_group_name("/delivery/errors")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .channel_description()
        .unwrap()
        .clone();
    assert_eq!(updated.channel_status(), &ChannelStatus::Updating);
    let busy = client
        .update_channel()
        .channel_arn(&arn)
        .s3_destination_configuration(
            S3DestinationUpdateInput::builder()
                .data_freshness_in_seconds(60)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(busy.is_resource_in_use_exception(), "{busy:?}");
    let after = wait_for_channel(&client, &arn, ChannelStatus::Active).await;
    assert_eq!(
        after
            .s3_destination_configuration()
            .unwrap()
            .data_freshness_in_seconds(),
        600
    );
    let logs = after
        .logging_configuration()
        .unwrap()
        .cloud_watch_logs()
        .unwrap();
    assert!(logs.enabled());
    assert_eq!(logs.log_group_name(), Some("/delivery/errors"));
    // A table destination's setting does not apply to an S3 channel.
    let wrong = client
        .update_channel()
        .channel_arn(&arn)
        .s3_tables_destination_configuration(
            S3TablesDestinationUpdateInput::builder()
                .data_freshness_in_seconds(600)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(wrong.is_invalid_argument_exception(), "{wrong:?}");

    // The name is taken while the channel lives, and free again once it is deleted.
    let duplicate = client
        .create_channel()
        .channel_name(&name)
        .service_execution_role_arn(ROLE_ARN)
        .stream_configuration_list(source(&stream, RecordFormatType::Json))
        .s3_destination_configuration(s3_destination())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(duplicate.is_resource_in_use_exception(), "{duplicate:?}");
    client
        .delete_channel()
        .channel_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe_channel(&client, &arn).await.channel_status(),
        &ChannelStatus::Deleting
    );
    kcl_integration_tests::eventually("the deleted channel to disappear", || async {
        let err = client
            .describe_channel()
            .channel_arn(&arn)
            .send()
            .await
            .err()?;
        err.into_service_error()
            .is_resource_not_found_exception()
            .then_some(())
    })
    .await;
    let again = create_s3_channel(&client, &name, &stream).await;
    assert_ne!(again.channel_arn(), arn, "a new incarnation has a new ARN");
}

#[tokio::test]
async fn channel_requests_are_validated_as_the_service_validates_them() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let stream = on_demand_stream(&client, &unique_name("channel-src")).await;
    let create = |name: &str| {
        client
            .create_channel()
            .channel_name(name)
            .service_execution_role_arn(ROLE_ARN)
    };

    // Provisioned streams cannot feed a channel; unknown streams are not found.
    let provisioned = unique_name("provisioned");
    create_active_stream(&client, &provisioned, 1).await;
    let err = create("from-provisioned")
        .stream_configuration_list(source(
            &stream_arn(&client, &provisioned).await,
            RecordFormatType::Json,
        ))
        .s3_destination_configuration(s3_destination())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_argument_exception(), "{err:?}");
    let err = create("from-nowhere")
        .stream_configuration_list(source(
            "arn:aws:kinesis:us-east-1:000000000000:stream/missing",
            RecordFormatType::Json,
        ))
        .s3_destination_configuration(s3_destination())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");

    // Exactly one destination.
    let err = create("no-destination")
        .stream_configuration_list(source(&stream, RecordFormatType::Json))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_argument_exception(), "{err:?}");

    // Patterns and enums of the model.
    let err = client
        .create_channel()
        .channel_name("bad-role")
        .service_execution_role_arn("arn:aws:iam::123:user/someone")
        .stream_configuration_list(source(&stream, RecordFormatType::Json))
        .s3_destination_configuration(s3_destination())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    assert!(
        err.message()
            .unwrap_or_default()
            .contains("serviceExecutionRoleARN"),
        "{err:?}"
    );
    let err = create("bad/name")
        .stream_configuration_list(source(&stream, RecordFormatType::Json))
        .s3_destination_configuration(s3_destination())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");

    // Record formats must suit the destination: no GSR_JSON into a plain bucket, and a table
    // destination needs a schema.
    let err = create("gsr-to-s3")
        .stream_configuration_list(source(&stream, RecordFormatType::GsrJson))
        .s3_destination_configuration(s3_destination())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_argument_exception(), "{err:?}");
    let err = create("table-without-schema")
        .stream_configuration_list(source(&stream, RecordFormatType::Json))
        .s3_tables_destination_configuration(s3_tables_destination())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_argument_exception(), "{err:?}");
    let err = create("freshness")
        .stream_configuration_list(source(&stream, RecordFormatType::Json))
        .s3_destination_configuration(s3_destination_with_freshness(Some(0)))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_argument_exception(), "{err:?}");

    // Unknown and malformed channel ARNs.
    let err = client
        .describe_channel()
        .channel_arn("arn:aws:kinesis:us-east-1:000000000000:channel/nosuchchannel")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let err = client
        .delete_channel()
        .channel_arn("not-an-arn")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationException");
    let err = client
        .update_channel()
        .channel_arn("arn:aws:kinesis:us-east-1:000000000000:channel/nosuchchannel")
        .s3_destination_configuration(
            S3DestinationUpdateInput::builder()
                .data_freshness_in_seconds(60)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let listed = client.list_channels().send().await.unwrap();
    assert!(listed.channel_summaries().is_empty(), "nothing was created");
}

fn s3_tables_destination() -> S3TablesDestinationConfiguration {
    S3TablesDestinationConfiguration::builder()
        .dead_letter_queue_s3_configuration(
            DeadLetterQueueS3Configuration::builder()
                .bucket_arn(BUCKET_ARN)
                .expected_bucket_owner(BUCKET_OWNER)
                .error_output_prefix("dlq/")
                .build()
                .unwrap(),
        )
        .s3_tables_configuration_list(
            S3TablesConfiguration::builder()
                .table_bucket_arn("arn:aws:s3tables:us-east-1:123456789012:bucket/analytics")
                .namespace("events")
                .table_name("orders")
                .compression_type(S3TablesCompressionType::Zstd)
                .partition_spec(
                    PartitionSpec::builder()
                        .partition_fields(
                            PartitionField::builder()
                                .transform(PartitionTransform::TimeHour)
                                .source_name("created_at")
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn channels_list_by_stream_page_and_fail_when_their_stream_is_deleted() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let first_name = unique_name("orders");
    let first = on_demand_stream(&client, &first_name).await;
    let second = on_demand_stream(&client, &unique_name("clicks")).await;

    let table = client
        .create_channel()
        .channel_name("orders-to-table")
        .service_execution_role_arn(ROLE_ARN)
        .stream_configuration_list(
            ChannelStreamConfiguration::builder()
                .stream_arn(&first)
                .record_configuration(
                    RecordConfiguration::builder()
                        .record_format_type(RecordFormatType::GsrJson)
                        .gsr_schema_arn(
                            "arn:aws:glue:us-east-1:123456789012:schema/registry/orders",
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .s3_tables_destination_configuration(s3_tables_destination())
        .encryption_configuration(
            ChannelEncryptionConfiguration::builder()
                .encryption_type(ChannelEncryptionType::Kms)
                .key_id("alias/delivery")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .channel_description()
        .unwrap()
        .clone();
    let tables = table.s3_tables_destination_configuration().unwrap();
    assert_eq!(tables.data_freshness_in_seconds(), 300);
    assert_eq!(
        tables.s3_tables_configuration_list()[0].table_name(),
        "orders"
    );
    assert_eq!(
        tables.s3_tables_configuration_list()[0]
            .partition_spec()
            .unwrap()
            .partition_fields()[0]
            .source_name(),
        "created_at"
    );
    assert_eq!(
        tables
            .dead_letter_queue_s3_configuration()
            .unwrap()
            .error_output_prefix(),
        Some("dlq/")
    );
    assert_eq!(
        table.encryption_configuration().unwrap().key_id(),
        "alias/delivery"
    );
    let to_s3 = create_s3_channel(&client, "orders-to-bucket", &first).await;
    let clicks = create_s3_channel(&client, "clicks-to-bucket", &second).await;

    // All channels, two to a page, each once.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = client
            .list_channels()
            .max_results(2)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert!(page.channel_summaries().len() <= 2);
        seen.extend(
            page.channel_summaries()
                .iter()
                .map(|c| c.channel_arn().to_owned()),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let mut expected = vec![
        table.channel_arn().to_owned(),
        to_s3.channel_arn().to_owned(),
        clicks.channel_arn().to_owned(),
    ];
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);

    // Filtered by source stream, with and without its creation time.
    let first_created = client
        .describe_stream_summary()
        .stream_name(&first_name)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_creation_timestamp()
        .to_owned();
    let by_stream = client
        .list_channels()
        .stream_filter(StreamFilter::builder().stream_arn(&first).build().unwrap())
        .send()
        .await
        .unwrap();
    let mut names: Vec<&str> = by_stream
        .channel_summaries()
        .iter()
        .map(|c| c.channel_name())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["orders-to-bucket", "orders-to-table"]);
    let summary = by_stream
        .channel_summaries()
        .iter()
        .find(|c| c.channel_name() == "orders-to-table")
        .unwrap();
    assert_eq!(
        summary.channel_destination_type(),
        &ChannelDestinationType::S3Tables
    );
    assert_eq!(summary.streams()[0].stream_arn(), first);
    let exact = client
        .list_channels()
        .stream_filter(
            StreamFilter::builder()
                .stream_arn(&first)
                .stream_creation_timestamp(first_created)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(exact.channel_summaries().len(), 2);
    let stale = client
        .list_channels()
        .stream_filter(
            StreamFilter::builder()
                .stream_arn(&first)
                .stream_creation_timestamp(DateTime::from_secs(1))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(stale.channel_summaries().is_empty());

    // A channel whose source stream is deleted has failed, and says why.
    client
        .delete_stream()
        .stream_name(&first_name)
        .send()
        .await
        .unwrap();
    let failed = wait_for_channel(&client, table.channel_arn(), ChannelStatus::Failed).await;
    assert!(
        failed
            .channel_status_reason()
            .unwrap_or_default()
            .contains(&first),
        "{failed:?}"
    );
    let err = client
        .update_channel()
        .channel_arn(table.channel_arn())
        .s3_tables_destination_configuration(
            S3TablesDestinationUpdateInput::builder()
                .data_freshness_in_seconds(600)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_in_use_exception(), "{err:?}");
    assert_eq!(
        describe_channel(&client, clicks.channel_arn())
            .await
            .channel_status(),
        &ChannelStatus::Active
    );
}

#[tokio::test]
async fn channels_survive_a_restart_of_a_durable_emulator() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = Config::embedded();
        c.data_dir = Some(dir.path().to_owned());
        c
    };
    let emulator = start_emulator_with(config()).await;
    let client = kinesis_client(&emulator.endpoint_url());
    let stream = on_demand_stream(&client, &unique_name("durable-src")).await;
    let created = create_s3_channel(&client, "durable-channel", &stream).await;
    client
        .tag_resource()
        .resource_arn(created.channel_arn())
        .tags("kept", "yes")
        .send()
        .await
        .unwrap();
    let before = wait_for_channel(&client, created.channel_arn(), ChannelStatus::Active).await;
    emulator.shutdown().await;

    let emulator = start_emulator_with(config()).await;
    let client = kinesis_client(&emulator.endpoint_url());
    let after = describe_channel(&client, created.channel_arn()).await;
    assert_eq!(after, before);
    let tags = client
        .list_tags_for_resource()
        .resource_arn(created.channel_arn())
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags()[0].key(), "kept");
}

#[tokio::test]
async fn resource_policies_belong_to_the_resource_they_name() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("policies");
    let stream = on_demand_stream(&client, &name).await;
    let consumer = client
        .register_stream_consumer()
        .stream_arn(&stream)
        .consumer_name("reader")
        .send()
        .await
        .unwrap()
        .consumer()
        .unwrap()
        .consumer_arn()
        .to_owned();
    let channel = create_s3_channel(&client, &unique_name("policy-channel"), &stream)
        .await
        .channel_arn()
        .to_owned();
    let policy_for =
        |who: &str| format!(r#"{{"Version":"2012-10-17","Statement":[],"Id":"{who}"}}"#);
    for (arn, who) in [
        (&stream, "stream"),
        (&consumer, "consumer"),
        (&channel, "channel"),
    ] {
        client
            .put_resource_policy()
            .resource_arn(arn)
            .policy(policy_for(who))
            .send()
            .await
            .unwrap();
    }
    let policy_of = |arn: String| {
        let client = client.clone();
        async move {
            client
                .get_resource_policy()
                .resource_arn(arn)
                .send()
                .await
                .unwrap()
                .policy()
                .to_owned()
        }
    };
    assert_eq!(policy_of(stream.clone()).await, policy_for("stream"));
    assert_eq!(policy_of(consumer.clone()).await, policy_for("consumer"));
    assert_eq!(policy_of(channel.clone()).await, policy_for("channel"));
    client
        .delete_resource_policy()
        .resource_arn(&consumer)
        .send()
        .await
        .unwrap();
    assert_eq!(policy_of(consumer.clone()).await, "{}");
    assert_eq!(policy_of(stream.clone()).await, policy_for("stream"));
    let again = client
        .delete_resource_policy()
        .resource_arn(&consumer)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(again.is_resource_not_found_exception(), "{again:?}");
}

#[tokio::test]
async fn shard_id_members_must_match_the_model_pattern() {
    let emulator = start_emulator().await;
    let client = kinesis_client(&emulator.endpoint_url());
    let name = unique_name("shard-ids");
    create_active_stream(&client, &name, 2).await;
    let pattern = |value: &str, member: &str| {
        format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
        )
    };
    let refused = |result: Result<(), aws_sdk_kinesis::Error>| {
        let err = result.unwrap_err();
        assert_eq!(code(&err), "ValidationException", "{err:?}");
        err.message().unwrap_or_default().to_owned()
    };

    let split = client
        .split_shard()
        .stream_name(&name)
        .shard_to_split("shardId/000000000000")
        .new_starting_hash_key("1")
        .send()
        .await
        .map(drop)
        .map_err(Into::into);
    assert_eq!(
        refused(split),
        pattern("shardId/000000000000", "shardToSplit")
    );
    let merge = client
        .merge_shards()
        .stream_name(&name)
        .shard_to_merge("shardId-000000000000")
        .adjacent_shard_to_merge("shardId 000000000001")
        .send()
        .await
        .map(drop)
        .map_err(Into::into);
    assert_eq!(
        refused(merge),
        pattern("shardId 000000000001", "adjacentShardToMerge")
    );
    let long = "s".repeat(129);
    let iterator = client
        .get_shard_iterator()
        .stream_name(&name)
        .shard_id(&long)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .map(drop)
        .map_err(Into::into);
    assert_eq!(
        refused(iterator),
        format!(
            "1 validation error detected: Value '{long}' at 'shardId' failed to satisfy \
             constraint: Member must have length between 1 and 128"
        )
    );
    let listed = client
        .list_shards()
        .stream_name(&name)
        .exclusive_start_shard_id("shardId:0")
        .send()
        .await
        .map(drop)
        .map_err(Into::into);
    assert_eq!(
        refused(listed),
        pattern("shardId:0", "exclusiveStartShardId")
    );
    let described = client
        .describe_stream()
        .stream_name(&name)
        .exclusive_start_shard_id("shardId*")
        .send()
        .await
        .map(drop)
        .map_err(Into::into);
    assert_eq!(
        refused(described),
        pattern("shardId*", "exclusiveStartShardId")
    );

    // Well-formed ids that name no shard are still ResourceNotFoundException.
    let unknown = client
        .get_shard_iterator()
        .stream_name(&name)
        .shard_id("shardId-000000000009")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&unknown), "ResourceNotFoundException");
    // Nothing was resharded by the refused calls.
    let shards = client
        .list_shards()
        .stream_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(shards.shards().len(), 2);
}
