//! The admin endpoints of a running worker: liveness, readiness (started, no stuck shard),
//! the leases it holds with their lag, and its metrics. (The server installs the process's
//! metrics recorder, hence a test binary of its own.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kcl_core::{
    InMemoryLeaseStore, LeaseStore, LifecycleConfig, ProcessRecordsInput, ProcessorError,
    RecordProcessor, ShardEndedInput, ShutdownRequestedInput,
};
use kcl_integration_tests::kcl::{fast_builder, put_records, spawn};
use kcl_integration_tests::prometheus::get;
use kcl_integration_tests::{
    create_active_stream, eventually, kinesis_client, start_emulator, unique_name,
};

/// Checkpoints every batch, but hangs for good on a record "hang".
struct Hanging {
    hung: Arc<AtomicBool>,
}

#[async_trait]
impl RecordProcessor for Hanging {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput<'_>,
    ) -> Result<(), ProcessorError> {
        if input.records.iter().any(|r| r.data.as_ref() == b"hang") {
            self.hung.store(true, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
        if !input.records.is_empty() {
            input.checkpointer.checkpoint().await?;
        }
        Ok(())
    }

    async fn shard_ended(&mut self, input: ShardEndedInput<'_>) -> Result<(), ProcessorError> {
        input.checkpointer.checkpoint().await?;
        Ok(())
    }

    async fn shutdown_requested(
        &mut self,
        _input: ShutdownRequestedInput<'_>,
    ) -> Result<(), ProcessorError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_report_start_leases_lag_and_a_stuck_shard() {
    let emulator = start_emulator().await;
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("admin");
    create_active_stream(&kinesis, &stream, 2).await;
    let store: Arc<dyn LeaseStore> = Arc::new(InMemoryLeaseStore::new());
    let hung = Arc::new(AtomicBool::new(false));
    let factory_hung = Arc::clone(&hung);
    let mut lifecycle = LifecycleConfig::default();
    lifecycle.shutdown_timeout = Duration::from_millis(500);
    let scheduler = fast_builder(
        "admin-app",
        &stream,
        kinesis.clone(),
        store,
        move |_: &str| Hanging {
            hung: Arc::clone(&factory_hung),
        },
        "admin-worker",
    )
    .lifecycle(lifecycle)
    .build()
    .unwrap();
    let server = kcl_core::admin::serve(
        "127.0.0.1:0".parse().unwrap(),
        scheduler.status(),
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    let addr = server.local_addr();

    assert_eq!(
        get(addr, "/healthz").await.unwrap(),
        (200, "ok\n".to_owned())
    );
    let (code, body) = get(addr, "/ready").await.unwrap();
    assert_eq!(code, 503, "not ready before the worker runs: {body}");
    assert!(body.contains("not started"), "{body}");

    let handle = scheduler.handle();
    let task = spawn(scheduler);
    put_records(&kinesis, &stream, "a", 200).await;
    eventually("ready, holding both shards", || async {
        let (code, body) = get(addr, "/ready").await?;
        (code == 200 && body.contains("\"leases\":2")).then_some(())
    })
    .await;
    let leases = eventually("both shards checkpointed, with their lag", || async {
        let (_, body) = get(addr, "/leases").await?;
        let leases: serde_json::Value = serde_json::from_str(&body).ok()?;
        let all = leases["leases"].as_array()?;
        let progressed = all.len() == 2
            && all
                .iter()
                .all(|l| l["checkpoint"].is_string() && l["millisBehindLatest"].is_number());
        progressed.then_some(leases)
    })
    .await;
    assert_eq!(leases["worker"], "admin-worker");

    // A processor that never returns: the worker stays alive but becomes unready, naming the
    // shard and the call.
    kinesis
        .put_record()
        .stream_name(&stream)
        .partition_key("pk")
        .data(aws_sdk_kinesis::primitives::Blob::new("hang"))
        .send()
        .await
        .unwrap();
    let reason = eventually("unready with a stuck shard", || async {
        let (code, body) = get(addr, "/ready").await?;
        (code == 503 && body.contains("stuck shards")).then_some(body)
    })
    .await;
    assert!(reason.contains("process_records"), "{reason}");
    assert!(hung.load(Ordering::SeqCst));
    assert_eq!(get(addr, "/healthz").await.unwrap().0, 200);
    let (_, body) = get(addr, "/leases").await.unwrap();
    assert!(body.contains("\"call\":\"process_records\""), "{body}");
    let (code, metrics) = get(addr, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("kcl_records_processed_total"), "{metrics}");
    assert_eq!(get(addr, "/nothing").await.unwrap().0, 404);

    // The hung call keeps its shard from stopping within the shutdown timeout.
    assert!(!handle.shutdown().await);
    task.await.unwrap().unwrap();
    let (code, _) = get(addr, "/ready").await.unwrap();
    assert_eq!(code, 503, "a stopped worker is not ready");
}
