//! The Prometheus endpoint serves what a worker records: scraped over HTTP after a worker
//! processed a stream. (A process has one metrics recorder, hence a test binary of its own.)

use std::sync::Arc;

use kcl_core::{InMemoryLeaseStore, LeaseStore};
use kcl_integration_tests::kcl::{fast_builder, put_records, spawn, Journal, Recorder};
use kcl_integration_tests::prometheus::{free_local_addr, sample, scrape};
use kcl_integration_tests::{
    create_active_stream, eventually, kinesis_client, start_emulator, unique_name,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_the_records_and_leases_of_a_worker() {
    let addr = free_local_addr();
    kcl_core::prometheus::serve(addr).unwrap();

    let emulator = start_emulator().await;
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("metrics");
    create_active_stream(&kinesis, &stream, 2).await;
    put_records(&kinesis, &stream, "m", 700).await;
    let store: Arc<dyn LeaseStore> = Arc::new(InMemoryLeaseStore::new());
    let journal = Arc::new(Journal::default());
    let scheduler = fast_builder(
        "metrics-app",
        &stream,
        kinesis,
        store,
        Recorder::factory(Arc::clone(&journal)),
        "w1",
    )
    .build()
    .unwrap();
    let handle = scheduler.handle();
    let task = spawn(scheduler);
    eventually("700 records processed", || async {
        (journal.count() >= 700).then_some(())
    })
    .await;

    let body = eventually("a scrape with the records", || async {
        let body = scrape(addr).await?;
        let done = sample(&body, "kcl_records_processed_total")? >= 700.0
            && sample(&body, "kcl_leases_held")? == 2.0;
        done.then_some(body)
    })
    .await;
    assert_eq!(sample(&body, "kcl_leases_taken_total"), Some(2.0), "{body}");
    assert!(
        sample(&body, "kcl_bytes_processed_total").unwrap_or(0.0) > 0.0,
        "{body}"
    );
    assert!(
        body.contains("kcl_millis_behind_latest{shard=\"shardId-000000000000\"}"),
        "{body}"
    );
    assert!(body.contains("kcl_get_records_seconds"), "{body}");

    assert!(handle.shutdown().await);
    task.await.unwrap().unwrap();
}
