//! KCL workloads: end-to-end throughput and latency through a worker, failover after a worker
//! dies, lease-table write rate, memory per lease, and the conditional-write rate of the
//! DynamoDB API that lease tables lean on. Every workload runs against an endpoint serving
//! Kinesis and DynamoDB (the emulator), through the real SDKs over HTTP.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kcl_core::{
    FanOutConfig, InitialPosition, LeaseStore, LifecycleConfig, PollingConfig, ProcessRecordsInput,
    ProcessorError, RecordProcessor, SchedulerBuilder, SchedulerHandle, ShardEndedInput,
    ShutdownRequestedInput,
};
use kcl_lease::{CheckpointUpdate, DynamoDbLeaseStore, Lease, LeaseStoreLayer, TableConfig};

use super::{create_stream, percentile, unique, Row};

/// How a worker reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// GetRecords polling.
    Polling,
    /// SubscribeToShard.
    FanOut,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Polling => "polling",
            Mode::FanOut => "fan-out",
        }
    }
}

fn micros_since_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What the no-op processors of one run observed.
#[derive(Debug, Default)]
struct Observed {
    records: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
    shards_started: AtomicUsize,
    /// put -> process latencies in ms, for payloads that carry their send time.
    latencies: Mutex<Vec<f64>>,
}

/// Does nothing with the records but count them (and time-stamped ones' latency), and
/// checkpoints after every batch, as a real application would.
struct NoOp {
    observed: Arc<Observed>,
    timed: bool,
}

#[async_trait]
impl RecordProcessor for NoOp {
    async fn initialize(
        &mut self,
        _input: kcl_core::InitializationInput,
    ) -> Result<(), ProcessorError> {
        self.observed.shards_started.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput<'_>,
    ) -> Result<(), ProcessorError> {
        if input.records.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        if self.timed {
            let received = micros_since_epoch();
            let mut latencies = self.observed.latencies.lock().unwrap();
            for record in &input.records {
                if let Some(sent) = std::str::from_utf8(&record.data)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    latencies.push(received.saturating_sub(sent) as f64 / 1000.0);
                }
            }
        }
        self.observed.first.lock().unwrap().get_or_insert(now);
        *self.observed.last.lock().unwrap() = Some(now);
        self.observed
            .records
            .fetch_add(input.records.len() as u64, Ordering::Relaxed);
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

/// Clients for an endpoint that serves both APIs.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Kinesis.
    pub kinesis: aws_sdk_kinesis::Client,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
}

impl Clients {
    /// Clients for `endpoint` with static credentials.
    pub async fn new(endpoint: &str) -> Clients {
        let (kinesis, dynamodb) = kcl_examples::clients(Some(endpoint)).await;
        Clients { kinesis, dynamodb }
    }
}

/// One benchmark worker: application (= stream = lease table) name, how it reads, and what
/// its processors report to.
struct WorkerSpec<'a> {
    clients: &'a Clients,
    stream: &'a str,
    store: Arc<dyn LeaseStore>,
    mode: Mode,
    observed: &'a Arc<Observed>,
    /// Whether payloads carry their send time (latency runs).
    timed: bool,
    worker_id: &'a str,
    failover: Duration,
}

type Running = (
    SchedulerHandle,
    tokio::task::JoinHandle<kcl_core::Result<()>>,
);

fn worker(spec: WorkerSpec<'_>) -> anyhow::Result<Running> {
    let WorkerSpec {
        clients,
        stream,
        store,
        mode,
        observed,
        timed,
        worker_id,
        failover,
    } = spec;
    let application = stream;
    let observed = Arc::clone(observed);
    let factory = move |_: &str| NoOp {
        observed: Arc::clone(&observed),
        timed,
    };
    let mut lifecycle = LifecycleConfig::default();
    lifecycle.parent_poll_interval = Duration::from_millis(200);
    lifecycle.shard_sync_interval = Duration::from_secs(5);
    let builder = SchedulerBuilder::new(application, stream, clients.kinesis.clone(), factory)
        .lease_store(store)
        .worker_id(worker_id)
        .initial_position(InitialPosition::TrimHorizon)
        .failover_time(failover)
        .lifecycle(lifecycle);
    let builder = match mode {
        // Kinesis allows five GetRecords a second per shard: 200 ms is the shortest idle time
        // an application on AWS could use.
        Mode::Polling => {
            let mut polling = PollingConfig::default();
            polling.idle_time_between_reads = Duration::from_millis(200);
            builder.polling(polling)
        }
        Mode::FanOut => builder.fan_out(FanOutConfig::default()),
    };
    let scheduler = builder.build()?;
    let handle = scheduler.handle();
    Ok((handle, tokio::spawn(scheduler.run())))
}

fn lease_store(clients: &Clients, table: &str) -> Arc<dyn LeaseStore> {
    Arc::new(DynamoDbLeaseStore::new(
        clients.dynamodb.clone(),
        table.to_owned(),
        TableConfig::default(),
    ))
}

/// Puts `count` records of `size` bytes with varied partition keys, `concurrency` calls of
/// 500 records at a time.
async fn preload(clients: &Clients, stream: &str, count: usize, size: usize) -> anyhow::Result<()> {
    let payload = Blob::new(vec![b'x'; size]);
    let batches: Vec<usize> = (0..count).step_by(500).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in batches.chunks(batches.len().div_ceil(4).max(1)) {
        let (kinesis, stream, payload, chunk) = (
            clients.kinesis.clone(),
            stream.to_owned(),
            payload.clone(),
            chunk.to_vec(),
        );
        tasks.spawn(async move {
            for start in chunk {
                let entries = (start..(start + 500).min(count))
                    .map(|i| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(format!("key-{i}"))
                            .data(payload.clone())
                            .build()
                            .expect("key and data are set")
                    })
                    .collect();
                let out = kinesis
                    .put_records()
                    .stream_name(&stream)
                    .set_records(Some(entries))
                    .send()
                    .await?;
                anyhow::ensure!(out.failed_record_count() == Some(0), "records were refused");
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

async fn wait_until(what: &str, limit: Duration, check: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !check() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// One worker drains a backlog of `records` 100-byte records from `shards` shards with a
/// no-op processor that checkpoints every batch; records/s from the first record processed
/// to the last.
pub async fn throughput(
    clients: &Clients,
    shards: i32,
    mode: Mode,
    records: usize,
) -> anyhow::Result<Row> {
    let stream = unique("kcl-tput");
    create_stream(&clients.kinesis, &stream, shards).await?;
    preload(clients, &stream, records, 100).await?;
    let observed = Arc::new(Observed::default());
    let (handle, task) = worker(WorkerSpec {
        clients,
        stream: &stream,
        store: lease_store(clients, &stream),
        mode,
        observed: &observed,
        timed: false,
        worker_id: "bench-worker",
        failover: Duration::from_secs(10),
    })?;
    wait_until("the backlog", Duration::from_secs(300), || {
        observed.records.load(Ordering::Relaxed) >= records as u64
    })
    .await?;
    handle.shutdown().await;
    task.await??;
    let first = observed
        .first
        .lock()
        .unwrap()
        .expect("records were processed");
    let last = observed
        .last
        .lock()
        .unwrap()
        .expect("records were processed");
    let seconds = last.duration_since(first).as_secs_f64().max(1e-6);
    let rate = records as f64 / seconds;
    Ok(Row {
        workload: format!(
            "KCL end to end, {} shards, {}, no-op processor, checkpoint per batch ({records} x 100 B backlog)",
            shards,
            mode.name()
        ),
        target: String::new(),
        records_per_sec: Some(rate),
        mb_per_sec: Some(rate * 100.0 / 1e6),
        p50_ms: None,
        p99_ms: None,
        note: None,
    })
}

/// put -> process_records latency: one record every 5 ms carrying its send time, into a
/// 4-shard stream a worker is already reading.
pub async fn latency(clients: &Clients, mode: Mode, samples: usize) -> anyhow::Result<Row> {
    let stream = unique("kcl-lat");
    let shards = 4;
    create_stream(&clients.kinesis, &stream, shards).await?;
    let observed = Arc::new(Observed::default());
    let (handle, task) = worker(WorkerSpec {
        clients,
        stream: &stream,
        store: lease_store(clients, &stream),
        mode,
        observed: &observed,
        timed: true,
        worker_id: "bench-worker",
        failover: Duration::from_secs(10),
    })?;
    wait_until("every shard to start", Duration::from_secs(60), || {
        observed.shards_started.load(Ordering::Relaxed) >= shards as usize
    })
    .await?;
    // Let the fetchers reach the tip (subscriptions open, first empty reads done).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..samples {
        clients
            .kinesis
            .put_record()
            .stream_name(&stream)
            .partition_key(format!("key-{i}"))
            .data(Blob::new(micros_since_epoch().to_string()))
            .send()
            .await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_until("every sample", Duration::from_secs(60), || {
        observed.latencies.lock().unwrap().len() >= samples
    })
    .await?;
    handle.shutdown().await;
    task.await??;
    let mut latencies = observed.latencies.lock().unwrap().clone();
    latencies.sort_by(f64::total_cmp);
    let idle = match mode {
        Mode::Polling => ", 200 ms idle between empty reads",
        Mode::FanOut => "",
    };
    Ok(Row {
        workload: format!(
            "put -> process_records latency, {} ({samples} records, 1 per 5 ms{idle})",
            mode.name()
        ),
        target: String::new(),
        records_per_sec: None,
        mb_per_sec: None,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        note: None,
    })
}

/// Failover time over `kills` independent runs (see [`failover_once`]); the kill comes at a
/// random point of the survivor's taker cycle, so the mean is the typical case and the
/// maximum approaches the worst (failover time plus one taker period).
pub async fn failover(
    clients: &Clients,
    failover_time: Duration,
    kills: usize,
) -> anyhow::Result<Row> {
    let mut times = Vec::with_capacity(kills);
    let mut moved = 0;
    for run in 0..kills {
        // Spread the kills over the taker period (twice the failover time) deterministically.
        let phase = failover_time.mul_f64(2.0 * run as f64 / kills as f64);
        let (time, shards) = failover_once(clients, failover_time, phase).await?;
        times.push(time.as_secs_f64());
        moved += shards;
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let max = times.iter().copied().fold(0.0, f64::max);
    Ok(Row {
        workload: format!(
            "failover: worker killed -> its shards processing on the survivor (failover time {failover_time:?}, {kills} kills, {moved} shards moved)"
        ),
        target: String::new(),
        records_per_sec: None,
        mb_per_sec: None,
        p50_ms: None,
        p99_ms: None,
        note: Some(format!("mean {mean:.2} s, max {max:.2} s")),
    })
}

/// Two workers share 4 shards; `phase` after both process records, one is killed (its task
/// aborted: no release, no final checkpoint). Returns the time from the kill until every shard
/// it held is processing again on the survivor (records flow into every shard all along), and
/// how many shards moved.
async fn failover_once(
    clients: &Clients,
    failover_time: Duration,
    phase: Duration,
) -> anyhow::Result<(Duration, usize)> {
    let stream = unique("kcl-failover");
    let shards = 4;
    create_stream(&clients.kinesis, &stream, shards).await?;
    let store = lease_store(clients, &stream);
    let survivor_seen = Arc::new(Observed::default());
    let victim_seen = Arc::new(Observed::default());
    let (survivor, survivor_task) = worker(WorkerSpec {
        clients,
        stream: &stream,
        store: Arc::clone(&store),
        mode: Mode::Polling,
        observed: &survivor_seen,
        timed: false,
        worker_id: "survivor",
        failover: failover_time,
    })?;
    let (_victim, victim_task) = worker(WorkerSpec {
        clients,
        stream: &stream,
        store: Arc::clone(&store),
        mode: Mode::Polling,
        observed: &victim_seen,
        timed: false,
        worker_id: "victim",
        failover: failover_time,
    })?;
    let producing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let producer = {
        let (kinesis, stream, producing) = (
            clients.kinesis.clone(),
            stream.clone(),
            Arc::clone(&producing),
        );
        tokio::spawn(async move {
            let mut i = 0u64;
            while producing.load(Ordering::Relaxed) {
                let _ = kinesis
                    .put_record()
                    .stream_name(&stream)
                    .partition_key(format!("key-{}", i % 64))
                    .data(Blob::new("x"))
                    .send()
                    .await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    // Both workers hold leases and process records.
    wait_until("both workers busy", Duration::from_secs(60), || {
        victim_seen.records.load(Ordering::Relaxed) > 0
            && survivor_seen.records.load(Ordering::Relaxed) > 0
    })
    .await?;
    tokio::time::sleep(phase).await;
    let victim_leases: Vec<String> = store
        .list_leases()
        .await?
        .into_iter()
        .filter(|l| l.lease_owner.as_deref() == Some("victim"))
        .map(|l| l.lease_key)
        .collect();
    anyhow::ensure!(!victim_leases.is_empty(), "the victim holds no lease");
    victim_task.abort();
    let killed = Instant::now();
    // Taken over when the survivor owns every lease and has processed records of each.
    let mut recovered = None;
    while killed.elapsed() < failover_time * 10 {
        let leases = store.list_leases().await?;
        let all_taken = leases
            .iter()
            .all(|l| l.lease_owner.as_deref() == Some("survivor"));
        let moved: Vec<&Lease> = leases
            .iter()
            .filter(|l| victim_leases.contains(&l.lease_key))
            .collect();
        // The survivor checkpoints every batch: a moved lease with a checkpoint written by
        // the survivor after the kill means its records flow again.
        if all_taken && moved.iter().all(|l| l.owner_switches_since_checkpoint == 0) {
            recovered = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    producing.store(false, Ordering::Relaxed);
    let _ = producer.await;
    survivor.shutdown().await;
    survivor_task.await??;
    let recovered = recovered.ok_or_else(|| anyhow::anyhow!("the survivor never took over"))?;
    Ok((recovered, victim_leases.len()))
}

/// Counts the writes a lease store makes.
#[derive(Debug)]
struct CountingStore {
    inner: Arc<dyn LeaseStore>,
    writes: AtomicU64,
}

#[async_trait]
impl LeaseStoreLayer for CountingStore {
    fn inner(&self) -> &dyn LeaseStore {
        self.inner.as_ref()
    }

    async fn create_lease_if_absent(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.create_lease_if_absent(lease).await
    }
    async fn renew_lease(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.renew_lease(lease).await
    }
    async fn take_lease(&self, lease: &Lease, owner: &str) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.take_lease(lease, owner).await
    }
    async fn evict_lease(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.evict_lease(lease).await
    }
    async fn start_handoff(&self, lease: &Lease, new_owner: &str) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.start_handoff(lease, new_owner).await
    }
    async fn complete_handoff(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.complete_handoff(lease).await
    }
    async fn update_checkpoint(
        &self,
        lease: &Lease,
        update: &CheckpointUpdate,
    ) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.update_checkpoint(lease, update).await
    }
    async fn update_child_shards(
        &self,
        lease_key: &str,
        children: &std::collections::BTreeSet<String>,
    ) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.update_child_shards(lease_key, children).await
    }
    async fn delete_lease(&self, lease_key: &str) -> kcl_lease::Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.delete_lease(lease_key).await
    }
    async fn assign_lease(&self, lease: &Lease, new_owner: &str) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.assign_lease(lease, new_owner).await
    }
    async fn unassign_lease(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.unassign_lease(lease).await
    }
    async fn report_worker_metrics(
        &self,
        metrics: &kcl_lease::WorkerMetrics,
    ) -> kcl_lease::Result<kcl_lease::WorkerMetrics> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.report_worker_metrics(metrics).await
    }
    async fn notify_assignment(&self, worker_id: &str) -> kcl_lease::Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.notify_assignment(worker_id).await
    }
    async fn set_worker_draining(
        &self,
        worker_id: &str,
        draining: bool,
    ) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.set_worker_draining(worker_id, draining).await
    }
    async fn delete_worker_metrics(
        &self,
        worker_id: &str,
        last_update_secs: u64,
    ) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner
            .delete_worker_metrics(worker_id, last_update_secs)
            .await
    }
    async fn acquire_leader_lock(
        &self,
        lock: &kcl_lease::LeaderLock,
        replacing: Option<&str>,
    ) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.acquire_leader_lock(lock, replacing).await
    }
    async fn renew_leader_lock(
        &self,
        lock: &kcl_lease::LeaderLock,
        previous_version: &str,
    ) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.renew_leader_lock(lock, previous_version).await
    }
    async fn release_leader_lock(&self, lock: &kcl_lease::LeaderLock) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.release_leader_lock(lock).await
    }
    async fn put_migration_state(
        &self,
        state: &kcl_lease::MigrationState,
        expected_version: Option<&str>,
    ) -> kcl_lease::Result<bool> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner
            .put_migration_state(state, expected_version)
            .await
    }
}

/// Lease-table writes per held lease per minute: one worker holding `shards` leases of an
/// idle stream (renewals only; checkpoints come on top, one per processed batch).
pub async fn lease_writes(clients: &Clients, shards: i32, run: Duration) -> anyhow::Result<Row> {
    let stream = unique("kcl-writes");
    create_stream(&clients.kinesis, &stream, shards).await?;
    let counting = Arc::new(CountingStore {
        inner: lease_store(clients, &stream),
        writes: AtomicU64::new(0),
    });
    let observed = Arc::new(Observed::default());
    let failover = Duration::from_secs(10);
    let (handle, task) = worker(WorkerSpec {
        clients,
        stream: &stream,
        store: Arc::clone(&counting) as Arc<dyn LeaseStore>,
        mode: Mode::Polling,
        observed: &observed,
        timed: false,
        worker_id: "bench-worker",
        failover,
    })?;
    wait_until("every shard to start", Duration::from_secs(60), || {
        observed.shards_started.load(Ordering::Relaxed) >= shards as usize
    })
    .await?;
    let before = counting.writes.load(Ordering::Relaxed);
    tokio::time::sleep(run).await;
    let writes = counting.writes.load(Ordering::Relaxed) - before;
    handle.shutdown().await;
    task.await??;
    let per_lease_per_minute = writes as f64 / f64::from(shards) / (run.as_secs_f64() / 60.0);
    Ok(Row {
        workload: format!(
            "lease-table writes per lease per minute ({shards} leases held, idle stream, failover {failover:?}, {run:?})"
        ),
        target: String::new(),
        records_per_sec: None,
        mb_per_sec: None,
        p50_ms: None,
        p99_ms: None,
        note: Some(format!("{per_lease_per_minute:.1}")),
    })
}

/// Resident set size of this process, from /proc.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Memory a worker needs per lease: the growth of this process's RSS while one worker takes
/// and processes `shards` leases (a shard consumer with its prefetch task each, idle).
pub async fn rss_per_leases(clients: &Clients, shards: i32) -> anyhow::Result<Row> {
    let stream = unique("kcl-rss");
    create_stream(&clients.kinesis, &stream, shards).await?;
    let store = lease_store(clients, &stream);
    store.initialize().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes().unwrap_or(0);
    let observed = Arc::new(Observed::default());
    let (handle, task) = worker(WorkerSpec {
        clients,
        stream: &stream,
        store,
        mode: Mode::Polling,
        observed: &observed,
        timed: false,
        worker_id: "bench-worker",
        failover: Duration::from_secs(10),
    })?;
    wait_until("every shard to start", Duration::from_secs(120), || {
        observed.shards_started.load(Ordering::Relaxed) >= shards as usize
    })
    .await?;
    // A few polling rounds, so every consumer has fetched and its buffers exist.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_bytes().unwrap_or(0);
    handle.shutdown().await;
    task.await??;
    let grown = after.saturating_sub(before) as f64;
    Ok(Row {
        workload: format!(
            "worker memory holding {shards} leases (RSS growth, polling, idle; emulator in the same process)"
        ),
        target: String::new(),
        records_per_sec: None,
        mb_per_sec: None,
        p50_ms: None,
        p99_ms: None,
        note: Some(format!(
            "{:.1} MiB ({:.1} KiB per lease)",
            grown / 1048576.0,
            grown / 1024.0 / f64::from(shards)
        )),
    })
}

/// The load client's own ceiling for [`conditional_updates`]: the same requests against a
/// server that answers every one with `{}` without looking at it.
pub async fn conditional_updates_client_ceiling(
    connections: usize,
    run: Duration,
) -> anyhow::Result<Row> {
    let endpoint = super::canned_server_with(
        bytes::Bytes::from_static(b"{}"),
        "application/x-amz-json-1.0",
    )
    .await?;
    let clients = Clients::new(&endpoint).await;
    let mut row = update_load(&clients, &unique("canned"), connections, run).await?;
    row.target = "load client vs canned server".to_owned();
    Ok(row)
}

/// Conditional UpdateItem, the lease renewal's write: `connections` clients each bump the
/// counter of its own items with a condition on the expected value, back to back.
pub async fn conditional_updates(
    clients: &Clients,
    connections: usize,
    run: Duration,
) -> anyhow::Result<Row> {
    let table = unique("bench-updates");
    create_update_table(clients, &table).await?;
    update_load(clients, &table, connections, run).await
}

/// Creates the lease-shaped table the update benchmarks write to and waits until it is ACTIVE.
async fn create_update_table(clients: &Clients, table: &str) -> anyhow::Result<()> {
    clients
        .dynamodb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("leaseKey")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("leaseKey")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .send()
        .await?;
    loop {
        let described = clients
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await?;
        if described
            .table()
            .and_then(|t| t.table_status())
            .map(|s| s.as_str())
            == Some("ACTIVE")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Writes the 16 lease-shaped items connection `c` of an update load bumps; returns their keys.
async fn seed_lease_items(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    c: usize,
) -> anyhow::Result<Vec<String>> {
    let keys: Vec<String> = (0..16).map(|k| format!("shard-{c}-{k}")).collect();
    for key in &keys {
        dynamodb
            .put_item()
            .table_name(table)
            .item("leaseKey", AttributeValue::S(key.clone()))
            .item("leaseCounter", AttributeValue::N("0".to_owned()))
            .item("leaseOwner", AttributeValue::S(format!("worker-{c}")))
            .send()
            .await?;
    }
    Ok(keys)
}

/// Collects the per-connection latencies (ms) of an update load into its row.
async fn update_row(
    workload: String,
    mut tasks: tokio::task::JoinSet<anyhow::Result<Vec<f64>>>,
    run: Duration,
) -> anyhow::Result<Row> {
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    latencies.sort_by(f64::total_cmp);
    Ok(Row {
        workload,
        target: String::new(),
        records_per_sec: Some(latencies.len() as f64 / run.as_secs_f64()),
        mb_per_sec: None,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        note: None,
    })
}

/// Runs the conditional-update load against `table` for `run`.
async fn update_load(
    clients: &Clients,
    table: &str,
    connections: usize,
    run: Duration,
) -> anyhow::Result<Row> {
    let deadline = Instant::now() + run;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        let (dynamodb, table) = (clients.dynamodb.clone(), table.to_owned());
        tasks.spawn(async move {
            let keys = seed_lease_items(&dynamodb, &table, c).await?;
            let mut counters = vec![0u64; keys.len()];
            let mut latencies = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let k = i % keys.len();
                let started = Instant::now();
                dynamodb
                    .update_item()
                    .table_name(&table)
                    .key("leaseKey", AttributeValue::S(keys[k].clone()))
                    .update_expression("SET leaseCounter = leaseCounter + :one")
                    .condition_expression(
                        "attribute_exists(leaseKey) AND leaseCounter = :expected AND leaseOwner = :owner",
                    )
                    .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
                    .expression_attribute_values(
                        ":expected",
                        AttributeValue::N(counters[k].to_string()),
                    )
                    .expression_attribute_values(
                        ":owner",
                        AttributeValue::S(format!("worker-{c}")),
                    )
                    .send()
                    .await?;
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                counters[k] += 1;
                i += 1;
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    update_row(
        format!("DynamoDB conditional UpdateItem (lease renewal shape), {connections} conn"),
        tasks,
        run,
    )
    .await
}

/// A fresh lease table holding `leases` unowned leases, through the DynamoDB API.
async fn table_with_leases(
    clients: &Clients,
    leases: usize,
) -> anyhow::Result<Arc<dyn LeaseStore>> {
    let store = lease_store(clients, &unique("bench-leases"));
    store.initialize().await?;
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in (0..leases)
        .collect::<Vec<_>>()
        .chunks(leases.div_ceil(8).max(1))
    {
        let (store, chunk) = (Arc::clone(&store), chunk.to_vec());
        tasks.spawn(async move {
            for i in chunk {
                let lease = Lease::new(
                    format!("shardId-{i:012}"),
                    kcl_lease::StoredCheckpoint::new("TRIM_HORIZON"),
                );
                store.create_lease_if_absent(&lease).await?;
            }
            Ok::<_, kcl_lease::LeaseError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(store)
}

/// Time for one worker to take `leases` unowned leases (one taker run: list, then a
/// conditional take per lease), and for `workers` workers started together to share them
/// within one lease of the even split. Started together, the first worker to list takes every
/// lease (it sees no other worker yet) and the rest is stealing, so the fleet row uses
/// `steal` leases per taker run: at the Java default of 1, balancing 1,000 leases over 4
/// workers takes about 250 taker periods.
pub async fn lease_acquisition(
    clients: &Clients,
    leases: usize,
    workers: usize,
    failover: Duration,
    steal: usize,
) -> anyhow::Result<Vec<Row>> {
    let row = |workload: String, took: Duration| Row {
        workload,
        target: String::new(),
        records_per_sec: None,
        mb_per_sec: None,
        p50_ms: None,
        p99_ms: None,
        note: Some(format!("{:.2} s", took.as_secs_f64())),
    };
    let mut rows = Vec::new();

    let store = table_with_leases(clients, leases).await?;
    let (coordinator, _events) =
        kcl_lease::LeaseCoordinator::new(store, "bench-worker", kcl_lease::LeaseConfig::default());
    let started = Instant::now();
    let taken = coordinator.take_leases().await?;
    anyhow::ensure!(taken.len() == leases, "took {} of {leases}", taken.len());
    rows.push(row(
        format!("one worker takes {leases} unowned leases (one taker run)"),
        started.elapsed(),
    ));

    let store = table_with_leases(clients, leases).await?;
    let mut config = kcl_lease::LeaseConfig::with_failover_time(failover);
    config.max_leases_to_steal_at_one_time = steal;
    let fleet: Vec<_> = (0..workers)
        .map(|w| {
            kcl_lease::LeaseCoordinator::new(
                Arc::clone(&store),
                format!("bench-worker-{w}"),
                config.clone(),
            )
        })
        .collect();
    let stop = tokio_util::sync::CancellationToken::new();
    let started = Instant::now();
    let tasks: Vec<_> = fleet
        .iter()
        .map(|(c, _)| tokio::spawn(Arc::clone(c).run(stop.clone())))
        .collect();
    let target = leases.div_ceil(workers);
    wait_until("the fleet to balance", Duration::from_secs(600), || {
        fleet.iter().all(|(c, _)| {
            let held = c.held_keys().len();
            held + 1 >= target && held <= target + 1
        }) && fleet
            .iter()
            .map(|(c, _)| c.held_keys().len())
            .sum::<usize>()
            == leases
    })
    .await?;
    let took = started.elapsed();
    stop.cancel();
    for task in tasks {
        let _ = task.await;
    }
    rows.push(row(
        format!(
            "{workers} workers started together share {leases} leases within one of {target} each (failover {failover:?}, steal {steal} at a time)"
        ),
        took,
    ));
    Ok(rows)
}

/// Conditional UpdateItem from a minimal client (raw HTTP/1.1, no signing, the JSON body
/// formatted by hand): what the emulator's DynamoDB API sustains when the SDK client is not
/// the limit. The same request shape as [`conditional_updates`].
pub async fn conditional_updates_raw(
    clients: &Clients,
    endpoint: &str,
    connections: usize,
    run: Duration,
) -> anyhow::Result<Row> {
    let table = unique("bench-raw-updates");
    // The table and its items through the SDK; only the measured updates go raw.
    create_update_table(clients, &table).await?;
    let deadline = Instant::now() + run;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        let (dynamodb, table, endpoint) =
            (clients.dynamodb.clone(), table.clone(), endpoint.to_owned());
        tasks.spawn(async move {
            let keys = seed_lease_items(&dynamodb, &table, c).await?;
            let mut connection = super::RawConnection::connect(&endpoint).await?;
            let mut counters = vec![0u64; keys.len()];
            let mut latencies = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let k = i % keys.len();
                let body = format!(
                    r#"{{"TableName":"{table}","Key":{{"leaseKey":{{"S":"{}"}}}},"UpdateExpression":"SET leaseCounter = leaseCounter + :one","ConditionExpression":"attribute_exists(leaseKey) AND leaseCounter = :expected AND leaseOwner = :owner","ExpressionAttributeValues":{{":one":{{"N":"1"}},":expected":{{"N":"{}"}},":owner":{{"S":"worker-{c}"}}}}}}"#,
                    keys[k], counters[k]
                );
                let started = Instant::now();
                connection
                    .post(
                        "DynamoDB_20120810.UpdateItem",
                        "application/x-amz-json-1.0",
                        bytes::Bytes::from(body),
                    )
                    .await?;
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                counters[k] += 1;
                i += 1;
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    update_row(
        format!(
            "DynamoDB conditional UpdateItem (lease renewal shape), {connections} conn, minimal raw HTTP client"
        ),
        tasks,
        run,
    )
    .await
}
