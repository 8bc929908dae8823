//! Fleet coordination: the KCL 3 protocol (a leader assigning by load, heartbeats, graceful
//! handoff) against the 2.x taker, on the emulator through the real SDKs. Failover after a
//! worker or the leader is killed, DynamoDB capacity units per minute (with the Java KCL 3
//! design's figure computed from its defaults beside ours), cold-start balance, a rolling
//! deploy, and skewed load.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kinesis::primitives::Blob;
use kcl_core::{
    InitialPosition, InitializationInput, LeaseStore, LifecycleConfig, PollingConfig,
    ProcessRecordsInput, ProcessorError, RecordProcessor, SchedulerBuilder, SchedulerHandle,
    ShardEndedInput, ShutdownRequestedInput,
};
use kcl_lease::{
    AssignmentStrategy, CheckpointUpdate, CoordinationMode, DynamoDbLeaseStore, LeaderLock, Lease,
    LeaseConfig, LeaseCoordinator, LeaseStoreLayer, MigrationState, StoredCheckpoint, TableConfig,
    TableSnapshot, WorkerMetrics,
};

use super::kcl::Clients;
use super::{create_stream, percentile, unique, Row};

/// A fleet benchmark's lease settings: `mode` at `failover`, the rest at the defaults.
pub fn lease_config(mode: CoordinationMode, failover: Duration) -> LeaseConfig {
    let mut config = LeaseConfig::with_failover_time(failover);
    config.coordination.mode = mode;
    config
}

fn mode_name(mode: CoordinationMode) -> &'static str {
    match mode {
        CoordinationMode::Kcl2 => "KCL 2 taker",
        _ => "KCL 3 leader",
    }
}

fn note_row(workload: String, note: String) -> Row {
    Row {
        workload,
        target: "KCL fleet + emulator".to_owned(),
        records_per_sec: None,
        mb_per_sec: None,
        p50_ms: None,
        p99_ms: None,
        note: Some(note),
    }
}

fn store(clients: &Clients, table: &str) -> Arc<dyn LeaseStore> {
    Arc::new(DynamoDbLeaseStore::new(
        clients.dynamodb.clone(),
        table.to_owned(),
        TableConfig::default(),
    ))
}

async fn wait_for(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !check() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Processors that log what they see.

/// One processed record.
#[derive(Debug, Clone)]
struct Processed {
    shard: String,
    sequence_number: String,
    worker: String,
    at: Instant,
}

/// What every processor of a run saw.
#[derive(Debug, Default)]
struct Log {
    processed: Mutex<Vec<Processed>>,
    /// Per shard, when a processor's final checkpoint (at `shutdown_requested`) was written.
    handed_off: Mutex<Vec<(String, Instant)>>,
    /// Bytes processed per worker.
    bytes: Mutex<BTreeMap<String, u64>>,
}

struct Logging {
    worker: String,
    shard: String,
    log: Arc<Log>,
}

#[async_trait]
impl RecordProcessor for Logging {
    async fn initialize(&mut self, input: InitializationInput) -> Result<(), ProcessorError> {
        self.shard = input.shard_id;
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput<'_>,
    ) -> Result<(), ProcessorError> {
        if input.records.is_empty() {
            return Ok(());
        }
        let at = Instant::now();
        let bytes: usize = input.records.iter().map(|r| r.data.len()).sum();
        {
            let mut processed = self.log.processed.lock().unwrap();
            for record in &input.records {
                processed.push(Processed {
                    shard: self.shard.clone(),
                    sequence_number: record.sequence_number.clone(),
                    worker: self.worker.clone(),
                    at,
                });
            }
        }
        *self
            .log
            .bytes
            .lock()
            .unwrap()
            .entry(self.worker.clone())
            .or_default() += bytes as u64;
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
        self.log
            .handed_off
            .lock()
            .unwrap()
            .push((self.shard.clone(), Instant::now()));
        Ok(())
    }
}

type Running = (
    SchedulerHandle,
    tokio::task::JoinHandle<kcl_core::Result<()>>,
);

/// A worker of the fleet reading `stream` (also the lease table) with `config`.
fn start_worker(
    clients: &Clients,
    stream: &str,
    worker_id: &str,
    config: &LeaseConfig,
    log: &Arc<Log>,
) -> anyhow::Result<Running> {
    let (worker, log) = (worker_id.to_owned(), Arc::clone(log));
    let factory = move |_: &str| Logging {
        worker: worker.clone(),
        shard: String::new(),
        log: Arc::clone(&log),
    };
    let mut lifecycle = LifecycleConfig::default();
    lifecycle.parent_poll_interval = Duration::from_millis(200);
    lifecycle.shard_sync_interval = Duration::from_secs(5);
    let mut polling = PollingConfig::default();
    polling.idle_time_between_reads = Duration::from_millis(200);
    let scheduler = SchedulerBuilder::new(stream, stream, clients.kinesis.clone(), factory)
        .lease_store(store(clients, stream))
        .worker_id(worker_id)
        .initial_position(InitialPosition::TrimHorizon)
        .lease_config(config.clone())
        .lifecycle(lifecycle)
        .polling(polling)
        .build()?;
    let handle = scheduler.handle();
    Ok((handle, tokio::spawn(scheduler.run())))
}

/// Puts records into `stream` until stopped: every `pause`, one record per hot key and, for a
/// skewed load, `hot_weight` more to the first key.
fn produce(
    clients: &Clients,
    stream: &str,
    keys: usize,
    pause: Duration,
    payload: usize,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<u64>) {
    let running = Arc::new(AtomicBool::new(true));
    let (kinesis, stream, flag) = (
        clients.kinesis.clone(),
        stream.to_owned(),
        Arc::clone(&running),
    );
    let task = tokio::spawn(async move {
        let mut sent = 0u64;
        let data = Blob::new(vec![b'x'; payload]);
        while flag.load(Ordering::Relaxed) {
            let key = format!("key-{}", sent as usize % keys);
            if kinesis
                .put_record()
                .stream_name(&stream)
                .partition_key(key)
                .data(data.clone())
                .send()
                .await
                .is_ok()
            {
                sent += 1;
            }
            tokio::time::sleep(pause).await;
        }
        sent
    });
    (running, task)
}

// ---------------------------------------------------------------------------------------
// Failover after a kill.

/// Which worker a failover run kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Victim {
    /// A worker that is not the leader.
    Worker,
    /// The leader (KCL 3 only; in 2.x mode there is none, and any worker is killed).
    Leader,
}

/// Failover over `kills` runs of a fleet of `workers` on `shards` shards, each killing one
/// worker (its task aborted: no release, no final checkpoint) at a different phase of the
/// renewal period. Reports mean and max time from the kill until every shard it held is
/// processing again elsewhere (a checkpoint written by the new owner), and for a killed
/// leader, the time until a new leader holds the lock.
pub async fn failover(
    clients: &Clients,
    mode: CoordinationMode,
    victim: Victim,
    failover_time: Duration,
    kills: usize,
) -> anyhow::Result<Row> {
    let config = lease_config(mode, failover_time);
    let mut recovered = Vec::new();
    let mut new_leader = Vec::new();
    let mut moved = 0;
    for run in 0..kills {
        let phase = config.renew_interval().mul_f64(run as f64 / kills as f64);
        let outcome = failover_once(clients, &config, victim, phase).await?;
        recovered.push(outcome.recovered.as_secs_f64());
        if let Some(leader) = outcome.new_leader {
            new_leader.push(leader.as_secs_f64());
        }
        moved += outcome.shards;
    }
    let stats = |values: &[f64]| {
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        let max = values.iter().copied().fold(0.0, f64::max);
        (mean, max)
    };
    let (mean, max) = stats(&recovered);
    let mut note = format!("processing again: mean {mean:.2} s, max {max:.2} s");
    if !new_leader.is_empty() {
        let (mean, max) = stats(&new_leader);
        note.push_str(&format!("; new leader: mean {mean:.2} s, max {max:.2} s"));
    }
    let who = match victim {
        Victim::Worker => "a worker",
        Victim::Leader => "the leader",
    };
    Ok(note_row(
        format!(
            "failover, {}: {who} of 4 killed -> its shards processing again (failover time {failover_time:?}, {kills} kills, {moved} shards moved; target failover time + 1 s)",
            mode_name(mode)
        ),
        note,
    ))
}

struct FailoverOutcome {
    recovered: Duration,
    new_leader: Option<Duration>,
    shards: usize,
}

async fn failover_once(
    clients: &Clients,
    config: &LeaseConfig,
    victim: Victim,
    phase: Duration,
) -> anyhow::Result<FailoverOutcome> {
    let stream = unique("fleet-failover");
    let shards = 16;
    create_stream(&clients.kinesis, &stream, shards).await?;
    let table = store(clients, &stream);
    // Created here rather than by the first worker, so the watch below can list it at once.
    table.initialize().await?;
    let log = Arc::new(Log::default());
    let ids: Vec<String> = (0..4).map(|w| format!("worker-{w}")).collect();
    let mut fleet = Vec::new();
    for id in &ids {
        fleet.push(start_worker(clients, &stream, id, config, &log)?);
    }
    let (producing, producer) = produce(clients, &stream, 256, Duration::from_millis(2), 64);
    // Every shard processing, on every worker.
    let started = Instant::now();
    loop {
        let leases = table.list_leases().await?;
        let owners: BTreeSet<&str> = leases
            .iter()
            .filter_map(|l| l.lease_owner.as_deref())
            .collect();
        let processing = leases.len() == shards as usize
            && leases.iter().all(|l| {
                l.checkpoint
                    .as_ref()
                    .is_some_and(|c| c.sequence_number.chars().all(|ch| ch.is_ascii_digit()))
            });
        if processing && owners.len() == ids.len() {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(180),
            "the fleet never settled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(phase).await;
    let leader = table.get_leader_lock().await?.map(|lock| lock.owner);
    let victim_id = match (victim, &leader) {
        (Victim::Leader, Some(leader)) => leader.clone(),
        (Victim::Leader, None) => ids[0].clone(),
        (Victim::Worker, _) => ids
            .iter()
            .find(|id| Some(*id) != leader.as_ref())
            .cloned()
            .expect("four workers"),
    };
    let victim_leases: BTreeSet<String> = table
        .list_leases()
        .await?
        .into_iter()
        .filter(|l| l.lease_owner.as_deref() == Some(victim_id.as_str()))
        .map(|l| l.lease_key)
        .collect();
    anyhow::ensure!(!victim_leases.is_empty(), "the victim holds no lease");
    let index = ids
        .iter()
        .position(|id| *id == victim_id)
        .expect("a fleet member");
    fleet[index].1.abort();
    let killed = Instant::now();
    let mut new_leader = None;
    let recovered = loop {
        anyhow::ensure!(
            killed.elapsed() < config.failover_time * 12,
            "the victim's shards never moved"
        );
        if victim == Victim::Leader && new_leader.is_none() {
            if let Some(lock) = table.get_leader_lock().await? {
                if lock.owner != victim_id {
                    new_leader = Some(killed.elapsed());
                }
            }
        }
        let leases = table.list_leases().await?;
        // A checkpoint written since the move (owner switches back to 0) by another owner.
        let moved = leases
            .iter()
            .filter(|l| victim_leases.contains(&l.lease_key))
            .all(|l| {
                l.lease_owner.as_deref().is_some_and(|o| o != victim_id)
                    && l.owner_switches_since_checkpoint == 0
                    && l.checkpoint_owner.is_none()
            });
        if moved {
            break killed.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    producing.store(false, Ordering::Relaxed);
    let _ = producer.await;
    for (i, (handle, task)) in fleet.into_iter().enumerate() {
        if i != index {
            handle.shutdown().await;
            let _ = task.await;
        }
    }
    Ok(FailoverOutcome {
        recovered,
        new_leader,
        shards: victim_leases.len(),
    })
}

// ---------------------------------------------------------------------------------------
// DynamoDB capacity.

/// DynamoDB's item size: attribute names plus values (numbers count about one byte per two
/// digits), as its capacity units are computed.
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(values) => values.iter().map(String::len).sum(),
        AttributeValue::Ns(values) => values.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        AttributeValue::L(values) => 3 + values.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

fn write_units(size: usize) -> f64 {
    size.div_ceil(1024).max(1) as f64
}

fn read_units(size: usize, consistent: bool) -> f64 {
    let units = size.div_ceil(4096).max(1) as f64;
    if consistent {
        units
    } else {
        units / 2.0
    }
}

/// Read and write capacity units a store's requests consume, by DynamoDB's rules (a failed
/// conditional write consumes its units too).
#[derive(Debug, Default)]
struct Meter {
    /// Thousandths of a unit, so atomics can add them.
    read_milli: AtomicU64,
    write_milli: AtomicU64,
}

impl Meter {
    fn read(&self, units: f64) {
        self.read_milli
            .fetch_add((units * 1000.0) as u64, Ordering::Relaxed);
    }
    fn write(&self, units: f64) {
        self.write_milli
            .fetch_add((units * 1000.0) as u64, Ordering::Relaxed);
    }
    fn totals(&self) -> (f64, f64) {
        (
            self.read_milli.load(Ordering::Relaxed) as f64 / 1000.0,
            self.write_milli.load(Ordering::Relaxed) as f64 / 1000.0,
        )
    }
}

/// A lease store that meters what its requests cost.
#[derive(Debug)]
struct Metered {
    inner: Arc<dyn LeaseStore>,
    meter: Arc<Meter>,
}

impl Metered {
    fn lease_write(&self, lease: &Lease) {
        self.meter.write(write_units(item_size(&lease.to_item())));
    }
}

fn owner_index_entry_size(lease: &Lease) -> usize {
    "leaseKey".len()
        + lease.lease_key.len()
        + "leaseOwner".len()
        + lease.lease_owner.as_deref().map_or(0, str::len)
}

#[async_trait]
impl LeaseStoreLayer for Metered {
    fn inner(&self) -> &dyn LeaseStore {
        self.inner.as_ref()
    }

    async fn create_lease_if_absent(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        self.lease_write(lease);
        self.inner.create_lease_if_absent(lease).await
    }
    async fn list_leases(&self) -> kcl_lease::Result<Vec<Lease>> {
        let leases = self.inner.list_leases().await?;
        let bytes: usize = leases.iter().map(|l| item_size(&l.to_item())).sum();
        self.meter.read(read_units(bytes, true));
        Ok(leases)
    }
    async fn get_lease(&self, lease_key: &str) -> kcl_lease::Result<Option<Lease>> {
        let lease = self.inner.get_lease(lease_key).await?;
        self.meter.read(read_units(
            lease.as_ref().map_or(1, |l| item_size(&l.to_item())),
            true,
        ));
        Ok(lease)
    }
    async fn renew_lease(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        self.lease_write(lease);
        self.inner.renew_lease(lease).await
    }
    async fn take_lease(&self, lease: &Lease, owner: &str) -> kcl_lease::Result<bool> {
        self.lease_write(lease);
        self.inner.take_lease(lease, owner).await
    }
    async fn evict_lease(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        self.lease_write(lease);
        self.inner.evict_lease(lease).await
    }
    async fn start_handoff(&self, lease: &Lease, new_owner: &str) -> kcl_lease::Result<bool> {
        self.lease_write(lease);
        self.inner.start_handoff(lease, new_owner).await
    }
    async fn complete_handoff(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        self.lease_write(lease);
        self.inner.complete_handoff(lease).await
    }
    async fn update_checkpoint(
        &self,
        lease: &Lease,
        update: &CheckpointUpdate,
    ) -> kcl_lease::Result<bool> {
        self.lease_write(lease);
        self.inner.update_checkpoint(lease, update).await
    }
    async fn update_child_shards(
        &self,
        lease_key: &str,
        children: &BTreeSet<String>,
    ) -> kcl_lease::Result<bool> {
        self.meter.write(1.0);
        self.inner.update_child_shards(lease_key, children).await
    }
    async fn delete_lease(&self, lease_key: &str) -> kcl_lease::Result<()> {
        self.meter.write(1.0);
        self.inner.delete_lease(lease_key).await
    }
    async fn scan_table(&self) -> kcl_lease::Result<TableSnapshot> {
        let snapshot = self.inner.scan_table().await?;
        let bytes: usize = snapshot
            .leases
            .iter()
            .map(|l| item_size(&l.to_item()))
            .sum::<usize>()
            + snapshot
                .workers
                .iter()
                .map(|w| item_size(&w.to_item()))
                .sum::<usize>()
            + snapshot
                .leader
                .iter()
                .map(|l| item_size(&l.to_item()))
                .sum::<usize>()
            + snapshot
                .migration
                .iter()
                .map(|m| item_size(&m.to_item()))
                .sum::<usize>();
        self.meter.read(read_units(bytes, false));
        Ok(snapshot)
    }
    async fn lease_keys_of_owner(&self, owner: &str) -> kcl_lease::Result<Vec<String>> {
        let keys = self.inner.lease_keys_of_owner(owner).await?;
        let bytes: usize = keys
            .iter()
            .map(|k| "leaseKey".len() + k.len() + "leaseOwner".len() + owner.len())
            .sum();
        self.meter.read(read_units(bytes, false));
        Ok(keys)
    }
    async fn assign_lease(&self, lease: &Lease, new_owner: &str) -> kcl_lease::Result<bool> {
        self.lease_write(lease);
        self.inner.assign_lease(lease, new_owner).await
    }
    async fn unassign_lease(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        self.lease_write(lease);
        self.inner.unassign_lease(lease).await
    }
    async fn report_worker_metrics(
        &self,
        metrics: &WorkerMetrics,
    ) -> kcl_lease::Result<WorkerMetrics> {
        self.meter
            .write(write_units(item_size(&metrics.to_item()) + 16));
        self.inner.report_worker_metrics(metrics).await
    }
    async fn get_worker_metrics(&self, ids: &[String]) -> kcl_lease::Result<Vec<WorkerMetrics>> {
        let found = self.inner.get_worker_metrics(ids).await?;
        // BatchGetItem rounds every item up on its own; a missing item costs a unit too.
        let units: f64 = found
            .iter()
            .map(|w| read_units(item_size(&w.to_item()) + 16, false))
            .sum::<f64>()
            + (ids.len().saturating_sub(found.len())) as f64 * 0.5;
        self.meter.read(units);
        Ok(found)
    }
    async fn notify_assignment(&self, worker_id: &str) -> kcl_lease::Result<()> {
        self.meter.write(1.0);
        self.inner.notify_assignment(worker_id).await
    }
    async fn set_worker_draining(
        &self,
        worker_id: &str,
        draining: bool,
    ) -> kcl_lease::Result<bool> {
        self.meter.write(1.0);
        self.inner.set_worker_draining(worker_id, draining).await
    }
    async fn delete_worker_metrics(&self, worker_id: &str, lut: u64) -> kcl_lease::Result<bool> {
        self.meter.write(1.0);
        self.inner.delete_worker_metrics(worker_id, lut).await
    }
    async fn get_leader_lock(&self) -> kcl_lease::Result<Option<LeaderLock>> {
        self.meter.read(1.0);
        self.inner.get_leader_lock().await
    }
    async fn acquire_leader_lock(
        &self,
        lock: &LeaderLock,
        replacing: Option<&str>,
    ) -> kcl_lease::Result<bool> {
        self.meter.write(1.0);
        self.inner.acquire_leader_lock(lock, replacing).await
    }
    async fn renew_leader_lock(
        &self,
        lock: &LeaderLock,
        previous: &str,
    ) -> kcl_lease::Result<bool> {
        self.meter.write(1.0);
        self.inner.renew_leader_lock(lock, previous).await
    }
    async fn release_leader_lock(&self, lock: &LeaderLock) -> kcl_lease::Result<bool> {
        self.meter.write(1.0);
        self.inner.release_leader_lock(lock).await
    }
    async fn get_migration_state(&self) -> kcl_lease::Result<Option<MigrationState>> {
        self.meter.read(1.0);
        self.inner.get_migration_state().await
    }
    async fn put_migration_state(
        &self,
        state: &MigrationState,
        expected: Option<&str>,
    ) -> kcl_lease::Result<bool> {
        self.meter.write(1.0);
        self.inner.put_migration_state(state, expected).await
    }
}

/// A table with `leases` unowned leases at TRIM_HORIZON, as shard sync would create them.
async fn table_with_leases(
    clients: &Clients,
    leases: usize,
) -> anyhow::Result<Arc<dyn LeaseStore>> {
    let table = store(clients, &unique("fleet-table"));
    table.initialize().await?;
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in (0..leases)
        .collect::<Vec<_>>()
        .chunks(leases.div_ceil(8).max(1))
    {
        let (table, chunk) = (Arc::clone(&table), chunk.to_vec());
        tasks.spawn(async move {
            for i in chunk {
                let mut lease = Lease::new(
                    format!("shardId-{i:012}"),
                    StoredCheckpoint::new("TRIM_HORIZON"),
                );
                lease.hash_key_range = Some((
                    "0".to_owned(),
                    "340282366920938463463374607431768211455".to_owned(),
                ));
                table.create_lease_if_absent(&lease).await?;
            }
            Ok::<_, kcl_lease::LeaseError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(table)
}

/// Lease coordinators of `workers` workers on one table (no record processing: what the
/// coordination itself costs and how fast it balances).
struct CoordinatorFleet {
    members: Vec<Arc<LeaseCoordinator>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: tokio_util::sync::CancellationToken,
    /// Keeps the event channels open and drained.
    _drains: Vec<tokio::task::JoinHandle<()>>,
}

impl CoordinatorFleet {
    fn start(
        table: &Arc<dyn LeaseStore>,
        workers: usize,
        config: &LeaseConfig,
    ) -> CoordinatorFleet {
        let stop = tokio_util::sync::CancellationToken::new();
        let mut members = Vec::new();
        let mut tasks = Vec::new();
        let mut drains = Vec::new();
        for w in 0..workers {
            let (coordinator, mut events) = LeaseCoordinator::new(
                Arc::clone(table),
                format!("bench-worker-{w}"),
                config.clone(),
            );
            // A real worker completes handoffs once its processor stopped: at once here.
            let handing = Arc::clone(&coordinator);
            drains.push(tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    if let kcl_lease::LeaseEvent::HandoffRequested(key) = event {
                        let _ = handing.complete_handoff(&key).await;
                    }
                }
            }));
            tasks.push(tokio::spawn(Arc::clone(&coordinator).run(stop.clone())));
            members.push(coordinator);
        }
        CoordinatorFleet {
            members,
            tasks,
            stop,
            _drains: drains,
        }
    }

    fn held(&self) -> Vec<usize> {
        self.members.iter().map(|m| m.held_keys().len()).collect()
    }

    async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        for member in &self.members {
            member.release_all().await;
        }
    }
}

fn balanced(held: &[usize], leases: usize) -> bool {
    let total: usize = held.iter().sum();
    let (min, max) = (
        held.iter().copied().min().unwrap_or(0),
        held.iter().copied().max().unwrap_or(0),
    );
    total == leases && max - min <= 1
}

/// The Java KCL 3 design's capacity units per minute at its defaults for `workers` workers
/// holding `leases` leases of `lease_bytes` each (REFERENCE timings: renewal every
/// failover / 3 - 25 ms = 3,308 ms; the leader's eventually consistent scan every 20 s; each
/// worker's owner-index query every 9,975 ms; metrics written every 30 s; the lock
/// heartbeat every 30 s and the other workers' lock reads every 30 s).
fn java_units_per_minute(
    workers: usize,
    leases: usize,
    lease_bytes: usize,
    metrics_bytes: usize,
) -> (f64, f64) {
    let renewals = leases as f64 * 60_000.0 / 3_308.0 * write_units(lease_bytes);
    let scans = 3.0 * read_units(leases * lease_bytes + workers * metrics_bytes + 200, false);
    let per_worker_keys = leases.div_ceil(workers);
    let queries = workers as f64
        * (60_000.0 / 9_975.0)
        * read_units(
            per_worker_keys * ("leaseKey".len() + 20 + "leaseOwner".len() + 20),
            false,
        );
    let metrics = workers as f64 * 2.0 * write_units(metrics_bytes);
    let lock_writes = 2.0;
    let lock_reads = (workers - 1) as f64 * 2.0;
    (
        scans + queries + lock_reads,
        renewals + metrics + lock_writes,
    )
}

/// DynamoDB capacity units per minute of `workers` workers holding `leases` leases in steady
/// state (`run` long, after the fleet balanced), beside the Java KCL 3 design's figure.
pub async fn capacity(
    clients: &Clients,
    mode: CoordinationMode,
    workers: usize,
    leases: usize,
    run: Duration,
) -> anyhow::Result<Row> {
    let table = table_with_leases(clients, leases).await?;
    let meter = Arc::new(Meter::default());
    let metered: Arc<dyn LeaseStore> = Arc::new(Metered {
        inner: Arc::clone(&table),
        meter: Arc::clone(&meter),
    });
    let config = lease_config(mode, Duration::from_secs(10));
    let fleet = CoordinatorFleet::start(&metered, workers, &config);
    wait_for("the fleet to balance", Duration::from_secs(900), || {
        balanced(&fleet.held(), leases)
    })
    .await?;
    // Let a full assignment round and its notifications pass before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (reads_before, writes_before) = meter.totals();
    tokio::time::sleep(run).await;
    let (reads_after, writes_after) = meter.totals();
    let minutes = run.as_secs_f64() / 60.0;
    let (reads, writes) = (
        (reads_after - reads_before) / minutes,
        (writes_after - writes_before) / minutes,
    );
    let snapshot = table.scan_table().await?;
    let lease_bytes = snapshot
        .leases
        .iter()
        .map(|l| item_size(&l.to_item()))
        .sum::<usize>()
        / snapshot.leases.len().max(1);
    let metrics_bytes = snapshot
        .workers
        .iter()
        .map(|w| item_size(&w.to_item()))
        .max()
        .unwrap_or(120);
    fleet.stop().await;
    let (java_reads, java_writes) =
        java_units_per_minute(workers, leases, lease_bytes, metrics_bytes);
    Ok(note_row(
        format!(
            "DynamoDB capacity per minute, {}: {workers} workers holding {leases} leases, steady state, no checkpoints (measured over {run:?})",
            mode_name(mode)
        ),
        format!(
            "ours {reads:.0} RCU + {writes:.0} WCU = {:.0}; Java KCL 3 at its defaults {java_reads:.0} RCU + {java_writes:.0} WCU = {:.0} (lease item {lease_bytes} B)",
            reads + writes,
            java_reads + java_writes
        ),
    ))
}

/// `workers` coordinators started together on `leases` unowned leases: time until balanced
/// to within one lease, also in assignment intervals.
pub async fn cold_start(
    clients: &Clients,
    mode: CoordinationMode,
    workers: usize,
    leases: usize,
) -> anyhow::Result<Row> {
    let table = table_with_leases(clients, leases).await?;
    let config = lease_config(mode, Duration::from_secs(10));
    let started = Instant::now();
    let fleet = CoordinatorFleet::start(&table, workers, &config);
    wait_for("the fleet to balance", Duration::from_secs(1800), || {
        balanced(&fleet.held(), leases)
    })
    .await?;
    let took = started.elapsed();
    fleet.stop().await;
    let interval = config.coordination.assignment_interval;
    Ok(note_row(
        format!(
            "cold start, {}: {workers} workers started together on {leases} leases -> balanced to +-1 (target: 2 assignment intervals = {:?})",
            mode_name(mode),
            interval * 2
        ),
        format!(
            "{:.2} s = {:.2} assignment intervals",
            took.as_secs_f64(),
            took.as_secs_f64() / interval.as_secs_f64()
        ),
    ))
}

// ---------------------------------------------------------------------------------------
// Rolling deploy and skewed load.

/// Four workers on 8 shards with records flowing; each is stopped gracefully and started
/// again in turn. Reports records processed twice and, per handed-off shard, the time from
/// the old owner's final checkpoint to the new owner's first record.
pub async fn rolling_deploy(clients: &Clients, mode: CoordinationMode) -> anyhow::Result<Row> {
    let stream = unique("fleet-deploy");
    let shards = 8;
    create_stream(&clients.kinesis, &stream, shards).await?;
    let config = lease_config(mode, Duration::from_secs(10));
    let log = Arc::new(Log::default());
    let ids: Vec<String> = (0..4).map(|w| format!("worker-{w}")).collect();
    let mut fleet: Vec<Option<Running>> = Vec::new();
    for id in &ids {
        fleet.push(Some(start_worker(clients, &stream, id, &config, &log)?));
    }
    let (producing, producer) = produce(clients, &stream, 128, Duration::from_millis(2), 64);
    let settle = |log: &Arc<Log>| {
        let workers: BTreeSet<String> = log
            .processed
            .lock()
            .unwrap()
            .iter()
            .rev()
            .take(2000)
            .map(|p| p.worker.clone())
            .collect();
        workers.len() >= 3
    };
    wait_for("the fleet to process", Duration::from_secs(120), || {
        settle(&log)
    })
    .await?;
    let deploy_started = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        let (handle, task) = fleet[i].take().expect("running");
        handle.shutdown().await;
        let _ = task.await;
        fleet[i] = Some(start_worker(clients, &stream, id, &config, &log)?);
        // Give the restarted worker time to get leases before the next one stops.
        tokio::time::sleep(
            config
                .coordination
                .assignment_interval
                .min(Duration::from_secs(5)),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deploy = deploy_started.elapsed();
    producing.store(false, Ordering::Relaxed);
    let sent = producer.await?;
    for running in fleet.into_iter().flatten() {
        running.0.shutdown().await;
        let _ = running.1.await;
    }
    let processed = log.processed.lock().unwrap().clone();
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    for p in &processed {
        *seen
            .entry((p.shard.as_str(), p.sequence_number.as_str()))
            .or_default() += 1;
    }
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    // Which workers processed a repeated record, and when (from the deploy's start), to tell
    // the causes apart.
    for ((shard, sequence_number), _) in seen.iter().filter(|(_, n)| **n > 1) {
        let by: Vec<String> = processed
            .iter()
            .filter(|p| p.shard == *shard && p.sequence_number == *sequence_number)
            .map(|p| {
                let at = p.at.checked_duration_since(deploy_started).map_or_else(
                    || format!("-{:.3}", deploy_started.duration_since(p.at).as_secs_f64()),
                    |d| format!("{:.3}", d.as_secs_f64()),
                );
                format!("{} at {at} s", p.worker)
            })
            .collect();
        tracing::debug!(%shard, %sequence_number, ?by, "record processed twice");
    }
    // Per handoff: the first record of that shard processed after the old owner's checkpoint.
    let mut gaps: Vec<f64> = Vec::new();
    for (shard, at) in log.handed_off.lock().unwrap().iter() {
        if let Some(next) = processed
            .iter()
            .filter(|p| p.shard == *shard && p.at > *at)
            .map(|p| p.at)
            .min()
        {
            gaps.push(next.duration_since(*at).as_secs_f64() * 1000.0);
        }
    }
    gaps.sort_by(f64::total_cmp);
    Ok(note_row(
        format!(
            "rolling deploy, {}: 4 workers on {shards} shards stopped gracefully and restarted in turn, records flowing ({sent} records, {:.0} s; target 0 duplicates, handoff within 1 s)",
            mode_name(mode),
            deploy.as_secs_f64()
        ),
        format!(
            "{duplicates} records processed twice; {} handoffs, old owner's checkpoint -> new owner's first record: p50 {:.0} ms, max {:.0} ms",
            gaps.len(),
            percentile(&gaps, 50.0).unwrap_or(f64::NAN),
            gaps.last().copied().unwrap_or(f64::NAN)
        ),
    ))
}

/// Four workers on 8 shards, one shard carrying half the bytes: the spread of bytes
/// processed per worker (max / min) once balanced, by `strategy`.
pub async fn skewed_load(
    clients: &Clients,
    strategy: AssignmentStrategy,
    run: Duration,
) -> anyhow::Result<Row> {
    let stream = unique("fleet-skew");
    let shards = 8;
    create_stream(&clients.kinesis, &stream, shards).await?;
    let mut config = lease_config(CoordinationMode::Kcl3, Duration::from_secs(10));
    config.coordination.strategy = strategy;
    // One process hosts every worker: CPU figures would be the same for all, so the workers
    // report none and the leader balances by lease throughput, as Java does for them.
    config.coordination.disable_worker_metrics = true;
    config.coordination.assignment_interval = Duration::from_secs(5);
    let log = Arc::new(Log::default());
    let ids: Vec<String> = (0..4).map(|w| format!("worker-{w}")).collect();
    let mut fleet = Vec::new();
    for id in &ids {
        fleet.push(start_worker(clients, &stream, id, &config, &log)?);
    }
    // Even keys over all shards, plus one key as heavy as all of them together.
    let hot_key = explicit_hot_key(clients, &stream).await?;
    let (even_running, even) = produce(clients, &stream, 512, Duration::from_millis(4), 512);
    let hot_running = Arc::new(AtomicBool::new(true));
    let hot = {
        let (kinesis, stream, flag) = (
            clients.kinesis.clone(),
            stream.clone(),
            Arc::clone(&hot_running),
        );
        tokio::spawn(async move {
            let data = Blob::new(vec![b'h'; 512]);
            while flag.load(Ordering::Relaxed) {
                let _ = kinesis
                    .put_record()
                    .stream_name(&stream)
                    .partition_key("hot")
                    .explicit_hash_key(&hot_key)
                    .data(data.clone())
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
        })
    };
    // Let throughput figures build up and a few rounds rebalance, then measure.
    tokio::time::sleep(run).await;
    let before = log.bytes.lock().unwrap().clone();
    tokio::time::sleep(run).await;
    let after = log.bytes.lock().unwrap().clone();
    even_running.store(false, Ordering::Relaxed);
    hot_running.store(false, Ordering::Relaxed);
    let _ = even.await;
    let _ = hot.await;
    for (handle, task) in fleet {
        handle.shutdown().await;
        let _ = task.await;
    }
    let per_worker: Vec<f64> = ids
        .iter()
        .map(|id| {
            (after.get(id).copied().unwrap_or(0) - before.get(id).copied().unwrap_or(0)) as f64
                / 1024.0
                / run.as_secs_f64()
        })
        .collect();
    let max = per_worker.iter().copied().fold(0.0, f64::max);
    let min = per_worker.iter().copied().fold(f64::INFINITY, f64::min);
    let name = match strategy {
        AssignmentStrategy::LeaseCount => "lease count",
        _ => "utilisation (throughput without metrics)",
    };
    Ok(note_row(
        format!("skewed load, by {name}: 4 workers, 8 shards, one shard with half the bytes"),
        format!(
            "KB/s per worker {}; max/min {:.2}",
            per_worker
                .iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join(" / "),
            if min > 0.0 { max / min } else { f64::INFINITY }
        ),
    ))
}

/// A hash key inside the stream's first shard.
async fn explicit_hot_key(clients: &Clients, stream: &str) -> anyhow::Result<String> {
    let shards = clients
        .kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await?;
    let first = shards
        .shards()
        .first()
        .ok_or_else(|| anyhow::anyhow!("no shards"))?;
    Ok(first
        .hash_key_range()
        .map(|r| r.starting_hash_key().to_owned())
        .unwrap_or_else(|| "0".to_owned()))
}
