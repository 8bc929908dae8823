//! Split and merge while records flow: every record processed exactly once (the processor
//! checkpoints every batch), and every parent finished before its children, both parents of a
//! merge included. A reshard that closes shards in a chain is walked without waiting for the
//! next taker run or assignment round.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kcl_core::{CoordinationMode, SchedulerBuilder};
use kcl_integration_tests::kcl::{
    assert_ordered_per_shard, assert_parents_before_children, fast_coordination, lease_store,
    put_records, Fleet, Journal,
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
    let fleet = Fleet::start(
        &["w1", "w2"],
        "reshard-app",
        &stream,
        &kinesis,
        &store,
        &journal,
        Duration::ZERO,
    )
    .await;

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
    fleet.shutdown().await;
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

/// UpdateShardCount from three shards to two closes shards in a chain: it splits the middle
/// shard (1) at the new boundary into 3 and 4, then merges 0 with 3 into 5 and 4 with 2 into
/// 6. Taker runs and assignment rounds are minutes apart here, so only the workers finishing
/// each parent can start the children: by taking their leases as they finish it.
async fn a_chain_of_closed_shards_is_walked_without_waiting_for_a_round(mode: CoordinationMode) {
    let emulator = start_emulator().await;
    let endpoint = emulator.endpoint_url();
    let kinesis = kinesis_client(&endpoint);
    let stream = unique_name("chain");
    create_active_stream(&kinesis, &stream, 3).await;
    let store = lease_store(dynamodb_client(&endpoint), unique_name("chain-app"));
    let journal = Arc::new(Journal::default());
    let mut coordination = fast_coordination();
    coordination.mode = mode;
    coordination.assignment_interval = Duration::from_secs(600);
    let configure = |builder: SchedulerBuilder| {
        builder
            .coordination(coordination.clone())
            // The 2.x taker runs every two failover times.
            .failover_time(Duration::from_secs(300))
    };
    let fleet = Fleet::start_configured(
        &["w1", "w2"],
        "chain-app",
        &stream,
        &kinesis,
        &store,
        &journal,
        Duration::ZERO,
        configure,
    )
    .await;

    put_records(&kinesis, &stream, "before", 300).await;
    eventually("the records before the reshard", || async {
        (journal.payloads().len() == 300).then_some(())
    })
    .await;
    kinesis
        .update_shard_count()
        .stream_name(&stream)
        .target_shard_count(2)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    wait_for_active(&kinesis, &stream).await;
    put_records(&kinesis, &stream, "after", 300).await;
    eventually(
        "the records after the reshard, in the chain's last shards",
        || async { (journal.payloads().len() == 600).then_some(()) },
    )
    .await;
    fleet.shutdown().await;
    let by_shard = journal.by_shard();
    for leaf in ["shardId-000000000005", "shardId-000000000006"] {
        assert!(
            by_shard.contains_key(leaf),
            "{leaf} got records: {by_shard:?}"
        );
    }
    assert_parents_before_children(
        &journal,
        &[
            ("shardId-000000000003", &["shardId-000000000001"]),
            ("shardId-000000000004", &["shardId-000000000001"]),
            (
                "shardId-000000000005",
                &["shardId-000000000000", "shardId-000000000003"],
            ),
            (
                "shardId-000000000006",
                &["shardId-000000000004", "shardId-000000000002"],
            ),
        ],
    );
    assert_ordered_per_shard(&journal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_closed_shards_is_walked_without_waiting_for_an_assignment_round() {
    a_chain_of_closed_shards_is_walked_without_waiting_for_a_round(CoordinationMode::Kcl3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_closed_shards_is_walked_without_waiting_for_a_taker_run() {
    a_chain_of_closed_shards_is_walked_without_waiting_for_a_round(CoordinationMode::Kcl2).await;
}
