//! Split and merge while records flow: every record processed exactly once (the processor
//! checkpoints every batch), and every parent finished before its children, both parents of a
//! merge included.

use std::collections::HashSet;
use std::sync::Arc;

use kcl_integration_tests::kcl::{
    assert_ordered_per_shard, assert_parents_before_children, fast_builder, lease_store,
    put_records, spawn, Journal, Recorder,
};
use kcl_integration_tests::python::MotoServer;
use kcl_integration_tests::{
    create_active_stream, dynamodb_client, eventually, kinesis_client, start_emulator, unique_name,
    wait_for_active,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_merge_keep_every_record_and_parents_before_children() {
    let emulator = start_emulator().await;
    let moto = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .unwrap();
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("reshard");
    create_active_stream(&kinesis, &stream, 2).await;
    let store = lease_store(dynamodb_client(moto.endpoint()), unique_name("reshard-app"));
    let journal = Arc::new(Journal::default());
    let workers: Vec<_> = ["w1", "w2"]
        .iter()
        .map(|id| {
            fast_builder(
                "reshard-app",
                &stream,
                kinesis.clone(),
                Arc::clone(&store),
                Recorder::factory(Arc::clone(&journal)),
                id,
            )
            .build()
            .unwrap()
        })
        .collect();
    let handles: Vec<_> = workers.iter().map(|w| w.handle()).collect();
    let tasks: Vec<_> = workers.into_iter().map(spawn).collect();

    put_records(&kinesis, &stream, "before", 1000).await;
    // Split shard 0 into shards 2 (lower half) and 3 (upper half) while records keep coming.
    let half = (1u128 << 126).to_string();
    kinesis
        .split_shard()
        .stream_name(&stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(half)
        .send()
        .await
        .unwrap();
    put_records(&kinesis, &stream, "split", 1000).await;
    wait_for_active(&kinesis, &stream).await;
    // Merge shard 3 with its neighbour shard 1 into shard 4.
    kinesis
        .merge_shards()
        .stream_name(&stream)
        .shard_to_merge("shardId-000000000003")
        .adjacent_shard_to_merge("shardId-000000000001")
        .send()
        .await
        .unwrap();
    put_records(&kinesis, &stream, "merge", 1000).await;

    let expected: HashSet<String> = ["before", "split", "merge"]
        .iter()
        .flat_map(|p| (0..1000).map(move |i| format!("{p}-{i}")))
        .collect();
    eventually("all 3000 records", || async {
        (journal.payloads().len() == expected.len()).then_some(())
    })
    .await;
    eventually("shards 0, 1 and 3 to end", || async {
        let ended: HashSet<String> = journal.ended.lock().unwrap().iter().cloned().collect();
        [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000003",
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
            ("shardId-000000000002", &["shardId-000000000000"]),
            ("shardId-000000000003", &["shardId-000000000000"]),
            (
                "shardId-000000000004",
                &["shardId-000000000003", "shardId-000000000001"],
            ),
        ],
    );
    assert!(
        journal.by_shard().contains_key("shardId-000000000004"),
        "the merged shard got records"
    );
}
