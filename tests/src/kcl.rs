//! A recording record processor and fleet helpers for the KCL tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kcl_core::{
    InitialPosition, InitializationInput, LeaseLostInput, LeaseStore, LifecycleConfig,
    PollingConfig, ProcessRecordsInput, ProcessorError, RecordProcessor, Scheduler,
    SchedulerBuilder, ShardEndedInput, ShutdownRequestedInput,
};

/// One delivery of a record to a processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The shard.
    pub shard_id: String,
    /// The record's sequence number.
    pub sequence_number: String,
    /// Its sub-sequence number.
    pub sub_sequence_number: u64,
    /// Its payload as text.
    pub data: String,
    /// Which processor instance got it (a shard gets a new one after a failover or restart).
    pub processor: usize,
}

/// Numbers processor instances.
static NEXT_PROCESSOR: AtomicUsize = AtomicUsize::new(0);

/// Everything the processors of a test saw.
#[derive(Debug, Default)]
pub struct Journal {
    /// Records in delivery order.
    pub deliveries: Mutex<Vec<Delivery>>,
    /// Shards in the order their processors saw `shard_ended`.
    pub ended: Mutex<Vec<String>>,
    /// Shards in the order their first record arrived.
    pub started: Mutex<Vec<String>>,
    /// Lease-lost notifications by shard.
    pub lost: Mutex<Vec<String>>,
    /// How many panics are still to be injected (see [`Recorder::panic_every`]).
    pub panics_left: AtomicUsize,
}

impl Journal {
    /// The payloads delivered, per shard, in order.
    pub fn by_shard(&self) -> BTreeMap<String, Vec<String>> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in self.deliveries.lock().unwrap().iter() {
            map.entry(d.shard_id.clone())
                .or_default()
                .push(d.data.clone());
        }
        map
    }

    /// The distinct payloads delivered so far.
    pub fn payloads(&self) -> std::collections::HashSet<String> {
        self.deliveries
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.data.clone())
            .collect()
    }

    /// Number of deliveries (with duplicates).
    pub fn count(&self) -> usize {
        self.deliveries.lock().unwrap().len()
    }

    /// Payloads delivered more than once.
    pub fn duplicates(&self) -> Vec<String> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for d in self.deliveries.lock().unwrap().iter() {
            *seen.entry(d.data.clone()).or_default() += 1;
        }
        seen.into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(d, _)| d)
            .collect()
    }
}

/// A processor that records what it gets and checkpoints after every batch.
#[derive(Debug)]
pub struct Recorder {
    instance: usize,
    shard_id: String,
    journal: Arc<Journal>,
    panic_every: Option<usize>,
    batches: usize,
}

impl Recorder {
    /// A factory of recorders writing to `journal`.
    pub fn factory(journal: Arc<Journal>) -> impl Fn(&str) -> Recorder + Send + Sync {
        move |shard_id: &str| Recorder {
            instance: NEXT_PROCESSOR.fetch_add(1, Ordering::Relaxed),
            shard_id: shard_id.to_owned(),
            journal: Arc::clone(&journal),
            panic_every: None,
            batches: 0,
        }
    }

    /// A factory of recorders that panic on every `n`th batch while the journal's panic budget lasts.
    pub fn panicking_factory(
        journal: Arc<Journal>,
        n: usize,
    ) -> impl Fn(&str) -> Recorder + Send + Sync {
        move |shard_id: &str| Recorder {
            instance: NEXT_PROCESSOR.fetch_add(1, Ordering::Relaxed),
            shard_id: shard_id.to_owned(),
            journal: Arc::clone(&journal),
            panic_every: Some(n),
            batches: 0,
        }
    }
}

#[async_trait]
impl RecordProcessor for Recorder {
    async fn initialize(&mut self, input: InitializationInput) -> Result<(), ProcessorError> {
        // The lease key names the shard uniquely, also across the streams of a multi-stream
        // application (it is the shard id otherwise).
        self.shard_id = input.lease_key;
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput<'_>,
    ) -> Result<(), ProcessorError> {
        self.batches += 1;
        if let Some(n) = self.panic_every {
            if self.batches.is_multiple_of(n) && !input.records.is_empty() {
                let left = self.journal.panics_left.load(Ordering::SeqCst);
                if left > 0
                    && self
                        .journal
                        .panics_left
                        .compare_exchange(left, left - 1, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                {
                    panic!("injected failure in {}", self.shard_id);
                }
            }
        }
        if !input.records.is_empty() {
            let mut started = self.journal.started.lock().unwrap();
            if !started.contains(&self.shard_id) {
                started.push(self.shard_id.clone());
            }
        }
        {
            let mut deliveries = self.journal.deliveries.lock().unwrap();
            for record in &input.records {
                deliveries.push(Delivery {
                    shard_id: self.shard_id.clone(),
                    sequence_number: record.sequence_number.clone(),
                    sub_sequence_number: record.sub_sequence_number,
                    data: String::from_utf8_lossy(&record.data).into_owned(),
                    processor: self.instance,
                });
            }
        }
        if !input.records.is_empty() {
            input.checkpointer.checkpoint().await?;
        }
        Ok(())
    }

    async fn lease_lost(&mut self, _input: LeaseLostInput) -> Result<(), ProcessorError> {
        self.journal
            .lost
            .lock()
            .unwrap()
            .push(self.shard_id.clone());
        Ok(())
    }

    async fn shard_ended(&mut self, input: ShardEndedInput<'_>) -> Result<(), ProcessorError> {
        self.journal
            .ended
            .lock()
            .unwrap()
            .push(self.shard_id.clone());
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

/// A lease table named `table` in the DynamoDB that `dynamodb` talks to, with default settings.
pub fn lease_store(
    dynamodb: aws_sdk_dynamodb::Client,
    table: impl Into<String>,
) -> Arc<dyn LeaseStore> {
    Arc::new(kcl_lease::DynamoDbLeaseStore::new(
        dynamodb,
        table,
        kcl_lease::TableConfig::default(),
    ))
}

/// Settings that keep tests fast: short failover, no idle wait to speak of.
pub fn fast_builder(
    application: &str,
    stream: &str,
    kinesis: aws_sdk_kinesis::Client,
    store: Arc<dyn LeaseStore>,
    factory: impl kcl_core::RecordProcessorFactory + 'static,
    worker_id: &str,
) -> SchedulerBuilder {
    let mut polling = PollingConfig::default();
    polling.idle_time_between_reads = Duration::from_millis(50);
    let mut lifecycle = LifecycleConfig::default();
    lifecycle.parent_poll_interval = Duration::from_millis(100);
    lifecycle.restart_backoff = Duration::from_millis(50);
    lifecycle.shard_sync_interval = Duration::from_millis(500);
    lifecycle.shutdown_timeout = Duration::from_secs(10);
    SchedulerBuilder::new(application, stream, kinesis, factory)
        .lease_store(store)
        .worker_id(worker_id)
        .initial_position(InitialPosition::TrimHorizon)
        .failover_time(Duration::from_millis(1500))
        .coordination(fast_coordination())
        .polling(polling)
        .lifecycle(lifecycle)
}

/// KCL 3 timings scaled to the tests' 1.5 s failover time, as the defaults are to 10 s.
pub fn fast_coordination() -> kcl_core::CoordinationConfig {
    let mut coordination = kcl_core::CoordinationConfig::default();
    coordination.assignment_interval = Duration::from_secs(3);
    coordination.report_interval = Duration::from_millis(100);
    coordination.liveness_check_interval = Duration::from_millis(100);
    coordination.leader_check_interval = Duration::from_millis(1500);
    coordination.discovery_interval = Duration::from_millis(1500);
    coordination.metrics_capture_interval = Duration::from_millis(200);
    coordination
}

/// Spawns `scheduler.run()`; the join handle lets a test abort it like a crash.
pub fn spawn(scheduler: Scheduler) -> tokio::task::JoinHandle<kcl_core::Result<()>> {
    tokio::spawn(scheduler.run())
}

/// Puts `count` records `"{prefix}-{i}"` with varied partition keys, 500 per call.
pub async fn put_records(
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    prefix: &str,
    count: usize,
) {
    let mut i = 0;
    while i < count {
        let end = (i + 500).min(count);
        let entries = (i..end)
            .map(|n| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("pk-{n}"))
                    .data(Blob::new(format!("{prefix}-{n}")))
                    .build()
                    .unwrap()
            })
            .collect();
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_record_count(), Some(0));
        i = end;
    }
}

/// Checks per-shard order: every processor instance sees its shard's records with strictly
/// increasing (sequence, sub-sequence). After a failover the next owner starts again at the
/// last checkpoint (at-least-once), so order holds per processor, not across owners.
pub fn assert_ordered_per_shard(journal: &Journal) {
    let deliveries = journal.deliveries.lock().unwrap();
    let mut last: HashMap<usize, (usize, &str, u64)> = HashMap::new();
    for d in deliveries.iter() {
        let key = (
            d.sequence_number.len(),
            d.sequence_number.as_str(),
            d.sub_sequence_number,
        );
        if let Some(prev) = last.get(&d.processor) {
            assert!(
                *prev < key,
                "out of order in {} (processor {}): {prev:?} then {key:?}",
                d.shard_id,
                d.processor
            );
        }
        last.insert(d.processor, key);
    }
}

/// Checks lineage: every child's first record was delivered after the last record of each of
/// its parents. `lineage` lists `(child, parents)`; a child that got no records is skipped.
pub fn assert_parents_before_children(journal: &Journal, lineage: &[(&str, &[&str])]) {
    let deliveries = journal.deliveries.lock().unwrap();
    let first = |shard: &str| deliveries.iter().position(|d| d.shard_id == shard);
    let last = |shard: &str| deliveries.iter().rposition(|d| d.shard_id == shard);
    for (child, parents) in lineage {
        let Some(child_first) = first(child) else {
            continue;
        };
        for parent in *parents {
            if let Some(parent_last) = last(parent) {
                assert!(
                    parent_last < child_first,
                    "{parent} still delivering after {child} started"
                );
            }
        }
    }
}

/// Workers of one application started for a test: their handles and run tasks.
#[derive(Debug)]
pub struct Fleet {
    handles: Vec<kcl_core::SchedulerHandle>,
    tasks: Vec<tokio::task::JoinHandle<kcl_core::Result<()>>>,
}

impl Fleet {
    /// Starts one [`fast_builder`] worker with a [`Recorder`] into `journal` per id in `ids`,
    /// `stagger` apart (zero starts them together).
    pub async fn start(
        ids: &[&str],
        application: &str,
        stream: &str,
        kinesis: &aws_sdk_kinesis::Client,
        store: &Arc<dyn LeaseStore>,
        journal: &Arc<Journal>,
        stagger: Duration,
    ) -> Fleet {
        let same = |builder| builder;
        Fleet::start_configured(
            ids,
            application,
            stream,
            kinesis,
            store,
            journal,
            stagger,
            same,
        )
        .await
    }

    /// [`Fleet::start`], each worker's builder passed through `configure` first.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_configured(
        ids: &[&str],
        application: &str,
        stream: &str,
        kinesis: &aws_sdk_kinesis::Client,
        store: &Arc<dyn LeaseStore>,
        journal: &Arc<Journal>,
        stagger: Duration,
        configure: impl Fn(SchedulerBuilder) -> SchedulerBuilder,
    ) -> Fleet {
        let mut fleet = Fleet {
            handles: Vec::new(),
            tasks: Vec::new(),
        };
        for id in ids {
            let scheduler = configure(fast_builder(
                application,
                stream,
                kinesis.clone(),
                Arc::clone(store),
                Recorder::factory(Arc::clone(journal)),
                id,
            ))
            .build()
            .expect("a valid configuration");
            fleet.handles.push(scheduler.handle());
            fleet.tasks.push(spawn(scheduler));
            if !stagger.is_zero() {
                tokio::time::sleep(stagger).await;
            }
        }
        fleet
    }

    /// Shuts every worker down gracefully, checking each finished in time and without error.
    pub async fn shutdown(self) {
        for handle in &self.handles {
            assert!(
                handle.shutdown().await,
                "a worker shut down within its timeout"
            );
        }
        for task in self.tasks {
            task.await
                .expect("the worker task")
                .expect("the worker ran");
        }
    }
}
