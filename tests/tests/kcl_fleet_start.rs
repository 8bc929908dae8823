//! A fleet started a few milliseconds apart on a stream that already holds records, with more
//! arriving: the first worker takes every lease, the others ask for their share, and each lease
//! moves by a graceful handoff (the owner checkpoints, then lets go), so no record is
//! processed twice.

use std::sync::Arc;
use std::time::Duration;

use kcl_integration_tests::kcl::{
    assert_ordered_per_shard, lease_store, put_records, Fleet, Journal,
};
use kcl_integration_tests::{
    create_active_stream, dynamodb_client, eventually, kinesis_client, start_emulator, unique_name,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_started_together_process_each_record_once() {
    let emulator = start_emulator().await;
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("start");
    create_active_stream(&kinesis, &stream, 4).await;
    put_records(&kinesis, &stream, "r", 4000).await;
    let store = lease_store(
        dynamodb_client(&emulator.endpoint_url()),
        unique_name("start-app"),
    );
    store.initialize().await.unwrap();
    let journal = Arc::new(Journal::default());
    let fleet = Fleet::start(
        &["w1", "w2", "w3"],
        "start-app",
        &stream,
        &kinesis,
        &store,
        &journal,
        Duration::from_millis(15),
    )
    .await;
    // Records keep coming while the fleet settles (past its first rebalancing runs).
    for round in 0..60 {
        put_records(&kinesis, &stream, &format!("live{round}"), 200).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually("all records", || async {
        (journal.payloads().len() == 4000 + 60 * 200).then_some(())
    })
    .await;
    fleet.shutdown().await;
    assert!(
        journal.duplicates().is_empty(),
        "{} records processed twice; leases lost: {:?}",
        journal.duplicates().len(),
        journal.lost.lock().unwrap()
    );
    assert_ordered_per_shard(&journal);
}
