//! SubscribeToShard (enhanced fan-out) in the emulator, through `aws-sdk-kinesis`.

use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEvent,
    SubscribeToShardEventStream,
};
use kcl_emulator::Config;
use kcl_integration_tests::{
    create_active_stream, eventually, kinesis_client, start_emulator_with, unique_name,
    wait_for_active,
};

async fn active_consumer(client: &aws_sdk_kinesis::Client, stream: &str, name: &str) -> String {
    let arn = format!("arn:aws:kinesis:us-east-1:000000000000:stream/{stream}");
    let consumer = client
        .register_stream_consumer()
        .stream_arn(arn)
        .consumer_name(name)
        .send()
        .await
        .unwrap();
    let consumer_arn = consumer.consumer().unwrap().consumer_arn().to_owned();
    eventually("consumer ACTIVE", || async {
        let d = client
            .describe_stream_consumer()
            .consumer_arn(&consumer_arn)
            .send()
            .await
            .ok()?;
        (d.consumer_description()?.consumer_status() == &ConsumerStatus::Active).then_some(())
    })
    .await;
    consumer_arn
}

fn position(kind: ShardIteratorType) -> StartingPosition {
    StartingPosition::builder().r#type(kind).build().unwrap()
}

type Events = aws_sdk_kinesis::primitives::event_stream::EventReceiver<
    SubscribeToShardEventStream,
    aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError,
>;

async fn next_event(events: &mut Events) -> Option<SubscribeToShardEvent> {
    let received = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event within 10 s");
    match received.expect("no stream error") {
        Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)) => Some(event),
        Some(other) => panic!("unexpected event {other:?}"),
        None => None,
    }
}

fn config(subscription: Duration) -> Config {
    let mut config = Config::embedded();
    config.subscription_lifetime = subscription;
    config
}

#[tokio::test]
async fn records_put_after_subscribing_are_pushed_in_order() {
    let emulator = start_emulator_with(config(Duration::from_secs(60))).await;
    let client = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("efo");
    create_active_stream(&client, &stream, 1).await;
    let consumer = active_consumer(&client, &stream, "app").await;
    let mut events = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::Latest))
        .send()
        .await
        .unwrap()
        .event_stream;

    // One live subscription per consumer and shard.
    let second = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::Latest))
        .send()
        .await;
    let err = second.unwrap_err().into_service_error();
    assert!(err.is_resource_in_use_exception(), "{err:?}");

    let mut sent = Vec::new();
    for i in 0..30 {
        let out = client
            .put_record()
            .stream_name(&stream)
            .partition_key("k")
            .data(Blob::new(format!("r{i}")))
            .send()
            .await
            .unwrap();
        sent.push(out.sequence_number().to_owned());
    }
    let mut received = Vec::new();
    while received.len() < sent.len() {
        let event = next_event(&mut events).await.expect("stream still open");
        assert!(
            !event.continuation_sequence_number().is_empty(),
            "never null before shard end"
        );
        received.extend(
            event
                .records()
                .iter()
                .map(|r| r.sequence_number().to_owned()),
        );
    }
    assert_eq!(received, sent);
}

#[tokio::test]
async fn subscriptions_expire_and_resume_from_the_continuation_sequence_number() {
    let emulator = start_emulator_with(config(Duration::from_millis(700))).await;
    let client = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("expiry");
    create_active_stream(&client, &stream, 1).await;
    let consumer = active_consumer(&client, &stream, "app").await;
    for i in 0..5 {
        client
            .put_record()
            .stream_name(&stream)
            .partition_key("k")
            .data(Blob::new(format!("a{i}")))
            .send()
            .await
            .unwrap();
    }
    let subscribe = |start: StartingPosition| {
        client
            .subscribe_to_shard()
            .consumer_arn(&consumer)
            .shard_id("shardId-000000000000")
            .starting_position(start)
            .send()
    };
    let mut events = subscribe(position(ShardIteratorType::TrimHorizon))
        .await
        .unwrap()
        .event_stream;
    let mut got = Vec::new();
    let mut continuation = None;
    while let Some(event) = next_event(&mut events).await {
        got.extend(
            event
                .records()
                .iter()
                .map(|r| String::from_utf8(r.data().as_ref().to_vec()).unwrap()),
        );
        continuation = Some(event.continuation_sequence_number().to_owned());
    }
    assert_eq!(got, ["a0", "a1", "a2", "a3", "a4"]);
    // The lifetime ended the stream; the slot is free again and resumes after the last record.
    client
        .put_record()
        .stream_name(&stream)
        .partition_key("k")
        .data(Blob::new("b0"))
        .send()
        .await
        .unwrap();
    let resume = StartingPosition::builder()
        .r#type(ShardIteratorType::AfterSequenceNumber)
        .sequence_number(continuation.unwrap())
        .build()
        .unwrap();
    let mut events = subscribe(resume).await.unwrap().event_stream;
    let event = next_event(&mut events).await.unwrap();
    let data: Vec<_> = event
        .records()
        .iter()
        .map(|r| String::from_utf8(r.data().as_ref().to_vec()).unwrap())
        .collect();
    assert_eq!(data, ["b0"]);
}

#[tokio::test]
async fn the_final_event_of_a_closed_shard_names_the_children() {
    let emulator = start_emulator_with(config(Duration::from_secs(60))).await;
    let client = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("efo-split");
    create_active_stream(&client, &stream, 1).await;
    let consumer = active_consumer(&client, &stream, "app").await;
    client
        .put_record()
        .stream_name(&stream)
        .partition_key("k")
        .data(Blob::new("before"))
        .send()
        .await
        .unwrap();
    client
        .split_shard()
        .stream_name(&stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    wait_for_active(&client, &stream).await;
    let mut events = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::TrimHorizon))
        .send()
        .await
        .unwrap()
        .event_stream;
    let mut last = None;
    while let Some(event) = next_event(&mut events).await {
        last = Some(event);
    }
    let last = last.expect("at least one event");
    // Absent on the wire; the SDK reads a missing required member as empty.
    assert_eq!(last.continuation_sequence_number(), "");
    let children: Vec<_> = last
        .child_shards()
        .iter()
        .map(|c| c.shard_id().to_owned())
        .collect();
    assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"]);
}

#[tokio::test]
async fn deregistering_the_consumer_ends_its_subscriptions() {
    let emulator = start_emulator_with(config(Duration::from_secs(60))).await;
    let client = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("efo-dereg");
    create_active_stream(&client, &stream, 1).await;
    let consumer = active_consumer(&client, &stream, "app").await;
    let mut events = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::Latest))
        .send()
        .await
        .unwrap()
        .event_stream;
    client
        .deregister_stream_consumer()
        .consumer_arn(&consumer)
        .send()
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(Some(_)) => continue,
                Ok(None) => return "closed".to_owned(),
                Err(err) => return format!("{:?}", err.into_service_error()),
            }
        }
    })
    .await
    .expect("the subscription ends");
    assert!(
        ended.contains("ResourceNotFound") || ended == "closed",
        "{ended}"
    );
}

/// As in AWS: a second SubscribeToShard for the same consumer and shard is refused within
/// 5 seconds of the first, and takes the subscription over after that; the first connection
/// ends with a ResourceInUseException. A consumer whose old owner went silent (a crashed or
/// partitioned host) is not kept from its shard until that connection dies.
#[tokio::test]
async fn a_subscription_older_than_five_seconds_is_taken_over() {
    let emulator = start_emulator_with(config(Duration::from_secs(60))).await;
    let client = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("efo-takeover");
    create_active_stream(&client, &stream, 1).await;
    let consumer = active_consumer(&client, &stream, "app").await;
    let subscribe = || {
        client
            .subscribe_to_shard()
            .consumer_arn(&consumer)
            .shard_id("shardId-000000000000")
            .starting_position(position(ShardIteratorType::Latest))
            .send()
    };
    let mut first = subscribe().await.unwrap().event_stream;
    let too_soon = subscribe().await.unwrap_err().into_service_error();
    assert!(too_soon.is_resource_in_use_exception(), "{too_soon:?}");

    emulator.advance_clock(Duration::from_secs(5));
    let mut second = subscribe().await.unwrap().event_stream;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match first.recv().await {
                Ok(Some(_)) => continue,
                Ok(None) => return "closed".to_owned(),
                Err(err) => return format!("{:?}", err.into_service_error()),
            }
        }
    })
    .await
    .expect("the first subscription ends");
    assert!(ended.contains("ResourceInUse"), "{ended}");

    client
        .put_record()
        .stream_name(&stream)
        .partition_key("k")
        .data(Blob::new("after the takeover"))
        .send()
        .await
        .unwrap();
    loop {
        let event = next_event(&mut second).await.expect("still open");
        if let Some(record) = event.records().first() {
            assert_eq!(record.data().as_ref(), b"after the takeover");
            break;
        }
    }
}
