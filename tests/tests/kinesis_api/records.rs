//! PutRecord, PutRecords, GetShardIterator and GetRecords: routing, limits, iterators, throughput.

use super::*;

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
