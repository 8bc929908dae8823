//! A fleet started together on a stream that already holds records: every lease is owned by
//! one worker at a time from the start, so no record is processed twice.

use std::sync::Arc;

use kcl_integration_tests::kcl::{
    assert_ordered_per_shard, fast_builder, lease_store, put_records, spawn, Journal, Recorder,
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
    let workers: Vec<_> = ["w1", "w2", "w3"]
        .iter()
        .map(|id| {
            fast_builder(
                "start-app",
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
    let mut tasks = Vec::new();
    for worker in workers {
        tasks.push(spawn(worker));
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    // Records keep coming while the fleet settles (past its first rebalancing runs).
    for round in 0..60 {
        put_records(&kinesis, &stream, &format!("live{round}"), 200).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    eventually("all records", || async {
        (journal.payloads().len() == 4000 + 60 * 200).then_some(())
    })
    .await;
    for handle in &handles {
        assert!(handle.shutdown().await);
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert!(
        journal.duplicates().is_empty(),
        "{} records processed twice; leases lost: {:?}",
        journal.duplicates().len(),
        journal.lost.lock().unwrap()
    );
    assert_ordered_per_shard(&journal);
}
