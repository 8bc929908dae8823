//! Enhanced fan-out retrieval end to end: workers register a consumer, subscribe per shard
//! through `aws-sdk-kinesis` over real HTTP, renew subscriptions that expire, and follow splits
//! and merges; the leases live in the emulator's DynamoDB API.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::types::ConsumerStatus;
use kcl_core::FanOutConfig;
use kcl_emulator::Config;
use kcl_integration_tests::kcl::{
    assert_ordered_per_shard, assert_parents_before_children, fast_builder, lease_store,
    put_records, spawn, Journal, Recorder,
};
use kcl_integration_tests::{
    create_active_stream, dynamodb_client, eventually, kinesis_client, start_emulator_with,
    unique_name, wait_for_active,
};

/// Subscriptions end after this long, so every test outlives several of them.
const SUBSCRIPTION_LIFETIME: Duration = Duration::from_secs(2);

fn fan_out() -> FanOutConfig {
    let mut config = FanOutConfig::default();
    config.silent_subscription_timeout = Duration::from_secs(5);
    config
}

fn expected(prefixes: &[&str], each: usize) -> HashSet<String> {
    prefixes
        .iter()
        .flat_map(|p| (0..each).map(move |i| format!("{p}-{i}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_fleet_keeps_every_record_across_split_merge_and_subscription_expiry() {
    let mut config = Config::embedded();
    config.subscription_lifetime = SUBSCRIPTION_LIFETIME;
    let emulator = start_emulator_with(config).await;
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("efo-fleet");
    create_active_stream(&kinesis, &stream, 4).await;
    let application = unique_name("efo-app");
    let store = lease_store(
        dynamodb_client(&emulator.endpoint_url()),
        application.clone(),
    );
    let journal = Arc::new(Journal::default());
    let workers: Vec<_> = ["efo-w1", "efo-w2"]
        .iter()
        .map(|id| {
            fast_builder(
                &application,
                &stream,
                kinesis.clone(),
                Arc::clone(&store),
                Recorder::factory(Arc::clone(&journal)),
                id,
            )
            .fan_out(fan_out())
            .build()
            .unwrap()
        })
        .collect();
    let handles: Vec<_> = workers.iter().map(|w| w.handle()).collect();
    let tasks: Vec<_> = workers.into_iter().map(spawn).collect();

    put_records(&kinesis, &stream, "before", 800).await;
    eventually("the first records", || async {
        (journal.payloads().len() == 800).then_some(())
    })
    .await;
    // Outlive the subscriptions: what is put now arrives over renewed ones.
    tokio::time::sleep(SUBSCRIPTION_LIFETIME + Duration::from_millis(500)).await;
    put_records(&kinesis, &stream, "renewed", 800).await;
    // Split shard 0 into shards 4 (lower half) and 5 (upper half).
    let upper_half_of_shard_0 = (1u128 << 125).to_string();
    kinesis
        .split_shard()
        .stream_name(&stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(upper_half_of_shard_0)
        .send()
        .await
        .unwrap();
    put_records(&kinesis, &stream, "split", 800).await;
    wait_for_active(&kinesis, &stream).await;
    // Merge the neighbours 1 and 2 into shard 6.
    kinesis
        .merge_shards()
        .stream_name(&stream)
        .shard_to_merge("shardId-000000000001")
        .adjacent_shard_to_merge("shardId-000000000002")
        .send()
        .await
        .unwrap();
    put_records(&kinesis, &stream, "merge", 800).await;

    let expected = expected(&["before", "renewed", "split", "merge"], 800);
    eventually("every record", || async {
        (journal.payloads().len() == expected.len()).then_some(())
    })
    .await;
    eventually("shards 0, 1 and 2 to end", || async {
        let ended: HashSet<String> = journal.ended.lock().unwrap().iter().cloned().collect();
        [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002",
        ]
        .iter()
        .all(|s| ended.contains(*s))
        .then_some(())
    })
    .await;
    for handle in &handles {
        assert!(handle.shutdown().await);
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }

    assert_eq!(journal.payloads(), expected);
    assert!(
        journal.duplicates().is_empty(),
        "exactly once with per-batch checkpoints: {:?}",
        journal.duplicates()
    );
    assert_ordered_per_shard(&journal);
    assert_parents_before_children(
        &journal,
        &[
            ("shardId-000000000004", &["shardId-000000000000"]),
            ("shardId-000000000005", &["shardId-000000000000"]),
            (
                "shardId-000000000006",
                &["shardId-000000000001", "shardId-000000000002"],
            ),
        ],
    );
    let by_shard = journal.by_shard();
    for child in [
        "shardId-000000000004",
        "shardId-000000000005",
        "shardId-000000000006",
    ] {
        assert!(by_shard.contains_key(child), "{child} got records");
    }

    // One consumer, named after the application, registered once for the whole fleet.
    let stream_arn = kinesis
        .describe_stream_summary()
        .stream_name(&stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_arn()
        .to_owned();
    let consumers = kinesis
        .list_stream_consumers()
        .stream_arn(stream_arn)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = consumers
        .consumers()
        .iter()
        .map(|c| c.consumer_name())
        .collect();
    assert_eq!(names, vec![application.as_str()]);
    assert_eq!(
        consumers.consumers()[0].consumer_status(),
        &ConsumerStatus::Active
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fan_out_applications_each_read_the_whole_stream() {
    let mut config = Config::embedded();
    config.subscription_lifetime = SUBSCRIPTION_LIFETIME;
    let emulator = start_emulator_with(config).await;
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let dynamodb = dynamodb_client(&emulator.endpoint_url());
    let stream = unique_name("efo-two");
    create_active_stream(&kinesis, &stream, 2).await;
    let applications = [unique_name("billing"), unique_name("audit")];
    let journals: Vec<Arc<Journal>> = applications
        .iter()
        .map(|_| Arc::new(Journal::default()))
        .collect();
    let workers: Vec<_> = applications
        .iter()
        .zip(&journals)
        .map(|(application, journal)| {
            let store = lease_store(dynamodb.clone(), application.clone());
            fast_builder(
                application,
                &stream,
                kinesis.clone(),
                store,
                Recorder::factory(Arc::clone(journal)),
                "only-worker",
            )
            .fan_out(fan_out())
            .build()
            .unwrap()
        })
        .collect();
    let handles: Vec<_> = workers.iter().map(|w| w.handle()).collect();
    let tasks: Vec<_> = workers.into_iter().map(spawn).collect();

    put_records(&kinesis, &stream, "shared", 1000).await;
    let expected = expected(&["shared"], 1000);
    for journal in &journals {
        eventually("every record in both applications", || async {
            (journal.payloads().len() == expected.len()).then_some(())
        })
        .await;
    }
    for handle in &handles {
        assert!(handle.shutdown().await);
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    for journal in &journals {
        assert_eq!(journal.payloads(), expected);
        assert!(journal.duplicates().is_empty());
        assert_ordered_per_shard(journal);
    }
}
