//! Processors that fail on a record ("poison"), hang, or want to hear about quiet shards: the
//! failed-batch policies (skip, dead letter), hung-call detection with restart, and the empty
//! batch timer, each against a real worker on the emulator.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kcl_core::{
    DeadLetterHandler, DeadLetterInput, FailedBatchAction, FailedBatchPolicy, LifecycleConfig,
    PollingConfig, ProcessRecordsInput, ProcessorError, RecordProcessor, SchedulerBuilder,
    ShardEndedInput, ShutdownRequestedInput,
};
use kcl_integration_tests::kcl::{lease_store, put_records, spawn};
use kcl_integration_tests::{
    create_active_stream, dynamodb_client, eventually, kinesis_client, start_emulator, unique_name,
};

/// What the processors of one test saw.
#[derive(Debug, Default)]
struct Seen {
    /// Payloads of batches that were processed (returned `Ok`).
    processed: Mutex<Vec<String>>,
    /// How often a batch holding the poison record was attempted.
    poison_attempts: AtomicUsize,
    /// Calls with an empty batch.
    empty_calls: AtomicUsize,
    /// Whether a processor already hung on the "hang" record (only the first one does).
    hung: AtomicBool,
    /// Processors created.
    created: AtomicUsize,
}

struct Picky {
    seen: Arc<Seen>,
}

#[async_trait]
impl RecordProcessor for Picky {
    async fn process_records(
        &mut self,
        input: ProcessRecordsInput<'_>,
    ) -> Result<(), ProcessorError> {
        if input.records.is_empty() {
            self.seen.empty_calls.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        let payloads: Vec<String> = input
            .records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.data).into_owned())
            .collect();
        if payloads.iter().any(|p| p == "poison") {
            self.seen.poison_attempts.fetch_add(1, Ordering::SeqCst);
            return Err("cannot parse the poison record".into());
        }
        if payloads.iter().any(|p| p == "hang") && !self.seen.hung.swap(true, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.seen.processed.lock().unwrap().extend(payloads);
        input.checkpointer.checkpoint().await?;
        Ok(())
    }

    async fn shard_ended(&mut self, input: ShardEndedInput<'_>) -> Result<(), ProcessorError> {
        input.checkpointer.checkpoint().await?;
        Ok(())
    }

    async fn shutdown_requested(
        &mut self,
        input: ShutdownRequestedInput<'_>,
    ) -> Result<(), ProcessorError> {
        input.checkpointer.checkpoint().await?;
        Ok(())
    }
}

/// Keeps what it is handed.
#[derive(Debug, Default)]
struct DeadLetters {
    received: Mutex<Vec<(String, String, u32)>>,
}

#[async_trait]
impl DeadLetterHandler for DeadLetters {
    async fn handle(&self, input: DeadLetterInput) -> Result<(), ProcessorError> {
        let mut received = self.received.lock().unwrap();
        for record in &input.records {
            received.push((
                String::from_utf8_lossy(&record.data).into_owned(),
                input.error.clone(),
                input.attempts,
            ));
        }
        Ok(())
    }
}

/// A one-shard stream, one worker with `lifecycle`, and its processors' journal.
struct Setup {
    _emulator: kcl_emulator::EmbeddedEmulator,
    kinesis: aws_sdk_kinesis::Client,
    stream: String,
    seen: Arc<Seen>,
    handle: kcl_core::SchedulerHandle,
    task: tokio::task::JoinHandle<kcl_core::Result<()>>,
}

async fn start(lifecycle: LifecycleConfig) -> Setup {
    let emulator = start_emulator().await;
    let kinesis = kinesis_client(&emulator.endpoint_url());
    let stream = unique_name("picky");
    create_active_stream(&kinesis, &stream, 1).await;
    let store = lease_store(
        dynamodb_client(&emulator.endpoint_url()),
        unique_name("picky-app"),
    );
    let seen = Arc::new(Seen::default());
    let factory_seen = Arc::clone(&seen);
    let mut polling = PollingConfig::default();
    polling.idle_time_between_reads = Duration::from_millis(20);
    let worker = SchedulerBuilder::new("picky-app", &stream, kinesis.clone(), move |_: &str| {
        factory_seen.created.fetch_add(1, Ordering::SeqCst);
        Picky {
            seen: Arc::clone(&factory_seen),
        }
    })
    .lease_store(store)
    .worker_id("picky-worker")
    .initial_position(kcl_core::InitialPosition::TrimHorizon)
    .failover_time(Duration::from_millis(1500))
    .polling(polling)
    .lifecycle(lifecycle)
    .build()
    .unwrap();
    let handle = worker.handle();
    let task = spawn(worker);
    Setup {
        _emulator: emulator,
        kinesis,
        stream,
        seen,
        handle,
        task,
    }
}

fn fast_lifecycle(policy: FailedBatchPolicy) -> LifecycleConfig {
    let mut lifecycle = LifecycleConfig::default();
    lifecycle.restart_backoff = Duration::from_millis(20);
    lifecycle.failed_batch = policy;
    lifecycle
}

async fn put_one(setup: &Setup, payload: &str) {
    setup
        .kinesis
        .put_record()
        .stream_name(&setup.stream)
        .partition_key("pk")
        .data(aws_sdk_kinesis::primitives::Blob::new(payload))
        .send()
        .await
        .unwrap();
}

/// Puts a batch that is processed, then the poison record alone, then waits until `done`
/// says the policy acted, then puts another batch that must be processed too.
async fn poison_then_more<F, Fut>(setup: &Setup, done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    put_records(&setup.kinesis, &setup.stream, "before", 50).await;
    eventually("the first batch", || async {
        (setup.seen.processed.lock().unwrap().len() == 50).then_some(())
    })
    .await;
    put_one(setup, "poison").await;
    eventually("the failed-batch policy to act", done).await;
    put_records(&setup.kinesis, &setup.stream, "after", 50).await;
    eventually("the batch after the poison", || async {
        (setup.seen.processed.lock().unwrap().len() == 100).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_batch_moves_past_a_poison_record_after_the_attempts() {
    let setup = start(fast_lifecycle(FailedBatchPolicy::new(
        3,
        FailedBatchAction::SkipBatch,
    )))
    .await;
    poison_then_more(&setup, || async {
        (setup.seen.poison_attempts.load(Ordering::SeqCst) >= 3).then_some(())
    })
    .await;
    assert_eq!(setup.seen.poison_attempts.load(Ordering::SeqCst), 3);
    assert!(!setup
        .seen
        .processed
        .lock()
        .unwrap()
        .contains(&"poison".to_owned()));
    assert!(setup.handle.shutdown().await);
    setup.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_hands_the_poison_batch_to_the_application() {
    let letters = Arc::new(DeadLetters::default());
    let setup = start(fast_lifecycle(FailedBatchPolicy::new(
        2,
        FailedBatchAction::DeadLetter(Arc::clone(&letters) as _),
    )))
    .await;
    poison_then_more(&setup, || async {
        (!letters.received.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    let received = letters.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].0, "poison");
    assert!(received[0].1.contains("cannot parse the poison record"));
    assert_eq!(received[0].2, 2);
    assert_eq!(setup.seen.poison_attempts.load(Ordering::SeqCst), 2);
    assert!(setup.handle.shutdown().await);
    setup.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_never_skips_the_poison_record() {
    let setup = start(fast_lifecycle(FailedBatchPolicy::default())).await;
    put_one(&setup, "poison").await;
    put_records(&setup.kinesis, &setup.stream, "after", 10).await;
    eventually("many attempts", || async {
        (setup.seen.poison_attempts.load(Ordering::SeqCst) >= 5).then_some(())
    })
    .await;
    assert!(setup.seen.processed.lock().unwrap().is_empty());
    assert!(setup.handle.shutdown().await);
    setup.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_call_is_abandoned_and_the_shard_restarts_with_the_lease_kept() {
    let mut lifecycle = fast_lifecycle(FailedBatchPolicy::default());
    lifecycle.processor_call_timeout = Some(Duration::from_millis(300));
    lifecycle.restart_hung_processors = true;
    let setup = start(lifecycle).await;
    put_records(&setup.kinesis, &setup.stream, "before", 20).await;
    eventually("the first batch", || async {
        (setup.seen.processed.lock().unwrap().len() == 20).then_some(())
    })
    .await;
    put_one(&setup, "hang").await;
    eventually("the hung batch, processed by a fresh processor", || async {
        setup
            .seen
            .processed
            .lock()
            .unwrap()
            .contains(&"hang".to_owned())
            .then_some(())
    })
    .await;
    assert!(setup.seen.hung.load(Ordering::SeqCst));
    assert_eq!(
        setup.seen.created.load(Ordering::SeqCst),
        2,
        "one restart, on the same worker (the lease was kept)"
    );
    assert!(setup.handle.shutdown().await);
    setup.task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_shard_gets_empty_batches_on_the_timer() {
    let mut lifecycle = fast_lifecycle(FailedBatchPolicy::default());
    lifecycle.empty_batch_interval = Some(Duration::from_millis(100));
    let setup = start(lifecycle).await;
    eventually("three empty batches", || async {
        (setup.seen.empty_calls.load(Ordering::SeqCst) >= 3).then_some(())
    })
    .await;
    assert!(setup.handle.shutdown().await);
    setup.task.await.unwrap().unwrap();
}
