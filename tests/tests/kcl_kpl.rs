//! KPL aggregated records are delivered de-aggregated, with sub-sequence numbers, and a
//! checkpoint in the middle of an aggregate resumes at the next sub-record.

use std::sync::Arc;

use aws_sdk_kinesis::primitives::Blob;
use kcl_core::{kpl, InMemoryLeaseStore, LeaseStore};
use kcl_integration_tests::kcl::{fast_builder, spawn, Journal, Recorder};
use kcl_integration_tests::{
    create_active_stream, eventually, kinesis_client, start_emulator, unique_name,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_records_arrive_as_their_sub_records() {
    let emulator = start_emulator().await;
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("kpl");
    create_active_stream(&kinesis, &stream, 1).await;
    let mut outer = Vec::new();
    for batch in 0..3 {
        let subs: Vec<(String, Option<String>, Vec<u8>)> = (0..10)
            .map(|i| {
                (
                    format!("key-{i}"),
                    None,
                    format!("agg{batch}-{i}").into_bytes(),
                )
            })
            .collect();
        let put = kinesis
            .put_record()
            .stream_name(&stream)
            .partition_key("outer")
            .data(Blob::new(kpl::aggregate(&subs)))
            .send()
            .await
            .unwrap();
        outer.push(put.sequence_number().to_owned());
    }
    kinesis
        .put_record()
        .stream_name(&stream)
        .partition_key("plain")
        .data(Blob::new("plain-record"))
        .send()
        .await
        .unwrap();

    // The lease logic is not under test here, so the fast in-memory store suffices.
    let store: Arc<dyn LeaseStore> = Arc::new(InMemoryLeaseStore::new());
    let journal = Arc::new(Journal::default());
    let scheduler = fast_builder(
        "kpl-app",
        &stream,
        kinesis.clone(),
        Arc::clone(&store),
        Recorder::factory(Arc::clone(&journal)),
        "w",
    )
    .build()
    .unwrap();
    let handle = scheduler.handle();
    let task = spawn(scheduler);
    eventually("31 user records", || async {
        (journal.count() >= 31).then_some(())
    })
    .await;
    assert!(handle.shutdown().await);
    task.await.unwrap().unwrap();

    let deliveries = journal.deliveries.lock().unwrap().clone();
    assert_eq!(deliveries.len(), 31);
    for (batch, seq) in outer.iter().enumerate() {
        let subs: Vec<_> = deliveries
            .iter()
            .filter(|d| &d.sequence_number == seq)
            .collect();
        assert_eq!(subs.len(), 10);
        for (i, d) in subs.iter().enumerate() {
            assert_eq!(d.sub_sequence_number, i as u64);
            assert_eq!(d.data, format!("agg{batch}-{i}"));
        }
    }
    assert_eq!(deliveries.last().unwrap().data, "plain-record");
    assert_eq!(deliveries.last().unwrap().sub_sequence_number, 0);
    // The checkpoint is the last user record: the plain one.
    let lease = store
        .get_lease("shardId-000000000000")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        lease.checkpoint.unwrap().sequence_number,
        deliveries.last().unwrap().sequence_number
    );
}
