//! A multi-stream application: two workers share the shards of two streams through one lease
//! table with the Java KCL's multi-stream lease keys, and follow a split in one of them.

use std::collections::HashSet;
use std::sync::Arc;

use kcl_integration_tests::kcl::{
    assert_ordered_per_shard, assert_parents_before_children, fast_builder, lease_store,
    put_records, spawn, Journal, Recorder,
};
use kcl_integration_tests::{
    create_active_stream, dynamodb_client, eventually, kinesis_client, start_emulator, unique_name,
    wait_for_active,
};
use kcl_lease::MultiStreamKey;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_two_streams_and_follow_a_split() {
    let emulator = start_emulator().await;
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let orders = unique_name("orders");
    let clicks = unique_name("clicks");
    create_active_stream(&kinesis, &orders, 2).await;
    create_active_stream(&kinesis, &clicks, 1).await;
    let application = unique_name("multi-app");
    let store = lease_store(
        dynamodb_client(&emulator.endpoint_url()),
        application.clone(),
    );
    let journal = Arc::new(Journal::default());
    let workers: Vec<_> = ["ms-w1", "ms-w2"]
        .iter()
        .map(|id| {
            fast_builder(
                &application,
                &orders,
                kinesis.clone(),
                Arc::clone(&store),
                Recorder::factory(Arc::clone(&journal)),
                id,
            )
            .streams([orders.clone(), clicks.clone()])
            .build()
            .unwrap()
        })
        .collect();
    let handles: Vec<_> = workers.iter().map(|w| w.handle()).collect();
    let tasks: Vec<_> = workers.into_iter().map(spawn).collect();

    put_records(&kinesis, &orders, "order", 600).await;
    put_records(&kinesis, &clicks, "click", 600).await;
    // Split the first shard of orders; its children must wait for it, found by prefixed keys.
    let upper_half_of_shard_0 = (1u128 << 126).to_string();
    kinesis
        .split_shard()
        .stream_name(&orders)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(upper_half_of_shard_0)
        .send()
        .await
        .unwrap();
    put_records(&kinesis, &orders, "after-split", 600).await;
    wait_for_active(&kinesis, &orders).await;

    let expected: HashSet<String> = ["order", "click", "after-split"]
        .iter()
        .flat_map(|p| (0..600).map(move |i| format!("{p}-{i}")))
        .collect();
    eventually("every record of both streams", || async {
        (journal.payloads().len() == expected.len()).then_some(())
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
        "{:?}",
        journal.duplicates()
    );
    assert_ordered_per_shard(&journal);

    // Every lease key is <account>:<stream>:<creationEpoch>:<shardId>, for both streams.
    let leases = store.list_leases().await.unwrap();
    let mut per_stream: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for lease in &leases {
        let key = MultiStreamKey::parse(&lease.lease_key)
            .unwrap_or_else(|| panic!("{} is a multi-stream key", lease.lease_key));
        assert_eq!(key.account_id, "000000000000");
        per_stream
            .entry(key.stream_name.to_owned())
            .or_default()
            .push(key.shard_id.to_owned());
    }
    assert_eq!(per_stream[&clicks], vec!["shardId-000000000000"]);
    // The split parent's lease may already be cleaned up, its children having started.
    let mut order_shards = per_stream[&orders].clone();
    order_shards.retain(|s| s != "shardId-000000000000");
    order_shards.sort();
    assert_eq!(
        order_shards,
        vec![
            "shardId-000000000001",
            "shardId-000000000002",
            "shardId-000000000003"
        ],
        "{per_stream:?}"
    );
    let key_of = |stream: &str, shard: &str| {
        leases
            .iter()
            .find(|l| {
                MultiStreamKey::parse(&l.lease_key)
                    .is_some_and(|k| k.stream_name == stream && k.shard_id == shard)
            })
            .map(|l| l.lease_key.clone())
            .unwrap()
    };
    let children = [
        key_of(&orders, "shardId-000000000002"),
        key_of(&orders, "shardId-000000000003"),
    ];
    let parent = MultiStreamKey {
        shard_id: "shardId-000000000000",
        ..MultiStreamKey::parse(&children[0]).unwrap()
    }
    .format();
    assert_parents_before_children(
        &journal,
        &[
            (children[0].as_str(), &[parent.as_str()]),
            (children[1].as_str(), &[parent.as_str()]),
        ],
    );
    let by_shard = journal.by_shard();
    assert!(
        children.iter().any(|c| by_shard.contains_key(c)),
        "the children got records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_stream_application_reads_by_fan_out_with_a_consumer_per_stream() {
    let emulator = start_emulator().await;
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let first = unique_name("efo-first");
    let second = unique_name("efo-second");
    create_active_stream(&kinesis, &first, 1).await;
    create_active_stream(&kinesis, &second, 2).await;
    let application = unique_name("multi-efo");
    let store = lease_store(
        dynamodb_client(&emulator.endpoint_url()),
        application.clone(),
    );
    let journal = Arc::new(Journal::default());
    let scheduler = fast_builder(
        &application,
        &first,
        kinesis.clone(),
        store,
        Recorder::factory(Arc::clone(&journal)),
        "efo-worker",
    )
    .streams([first.clone(), second.clone()])
    .fan_out(kcl_core::FanOutConfig::default())
    .build()
    .unwrap();
    let handle = scheduler.handle();
    let task = spawn(scheduler);
    put_records(&kinesis, &first, "first", 300).await;
    put_records(&kinesis, &second, "second", 300).await;
    eventually("every record of both streams", || async {
        (journal.payloads().len() == 600).then_some(())
    })
    .await;
    assert!(handle.shutdown().await);
    task.await.unwrap().unwrap();
    assert!(journal.duplicates().is_empty());
    assert_ordered_per_shard(&journal);
    for stream in [&first, &second] {
        let arn = format!("arn:aws:kinesis:us-east-1:000000000000:stream/{stream}");
        let consumers = kinesis
            .list_stream_consumers()
            .stream_arn(arn)
            .send()
            .await
            .unwrap();
        let names: Vec<&str> = consumers
            .consumers()
            .iter()
            .map(|c| c.consumer_name())
            .collect();
        assert_eq!(names, vec![application.as_str()], "{stream}");
    }
}

/// A lease of a stream the application does not read (here: a stream dropped from its
/// configuration) is never taken, so nothing is read from the wrong stream or checkpointed into
/// its row; with `FormerStreamsPolicy::DeleteAfter` it is deleted once it has waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_of_former_streams_are_left_alone_then_deleted_by_policy() {
    use kcl_core::FormerStreamsPolicy;
    use kcl_lease::{Lease, StoredCheckpoint};

    let emulator = start_emulator().await;
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let orders = unique_name("orders");
    create_active_stream(&kinesis, &orders, 1).await;
    let application = unique_name("former-app");
    let store = lease_store(
        dynamodb_client(&emulator.endpoint_url()),
        application.clone(),
    );
    store.initialize().await.unwrap();
    // A stream this application read once: its lease names another stream and holds a
    // checkpoint that means nothing in `orders`.
    let foreign_key = "000000000000:retired-stream:1700000000:shardId-000000000000";
    let mut foreign = Lease::new(foreign_key, StoredCheckpoint::new("49000000000000000000"));
    foreign.lease_counter = 7;
    assert!(store.create_lease_if_absent(&foreign).await.unwrap());

    let journal = Arc::new(Journal::default());
    let keep = |id: &str, policy: FormerStreamsPolicy| {
        fast_builder(
            &application,
            &orders,
            kinesis.clone(),
            Arc::clone(&store),
            Recorder::factory(Arc::clone(&journal)),
            id,
        )
        .streams([orders.clone()])
        .former_streams(policy)
        .build()
        .unwrap()
    };
    let worker = keep("keeper", FormerStreamsPolicy::Keep);
    let handle = worker.handle();
    let task = spawn(worker);
    put_records(&kinesis, &orders, "order", 300).await;
    eventually("the configured stream's records", || async {
        (journal.payloads().len() == 300).then_some(())
    })
    .await;
    // Several taker runs and shard syncs later, the foreign lease is untouched.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let untouched = store.get_lease(foreign_key).await.unwrap().unwrap();
    assert_eq!(untouched.lease_owner, None, "a foreign lease was taken");
    assert_eq!(untouched.lease_counter, 7);
    assert_eq!(untouched.checkpoint, foreign.checkpoint);
    assert!(handle.shutdown().await);
    task.await.unwrap().unwrap();

    // The worker's own leases carry Java's multi-stream attributes.
    let item = dynamodb_client(&emulator.endpoint_url())
        .scan()
        .table_name(&application)
        .send()
        .await
        .unwrap();
    let own = item
        .items()
        .iter()
        .find(|i| {
            i.get("leaseKey")
                .and_then(|k| k.as_s().ok())
                .is_some_and(|k| k.contains(&orders))
        })
        .expect("a lease of the configured stream");
    let stream_id = own["streamName"].as_s().unwrap();
    assert!(stream_id.starts_with("000000000000:") && stream_id.contains(&orders));
    assert_eq!(own["shardId"].as_s().unwrap(), "shardId-000000000000");

    let worker = keep(
        "cleaner",
        FormerStreamsPolicy::DeleteAfter(std::time::Duration::from_secs(1)),
    );
    let handle = worker.handle();
    let task = spawn(worker);
    eventually("the former stream's lease to be deleted", || async {
        store
            .get_lease(foreign_key)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(handle.shutdown().await);
    task.await.unwrap().unwrap();
    assert!(
        journal.duplicates().is_empty(),
        "{:?}",
        journal.duplicates()
    );
}
