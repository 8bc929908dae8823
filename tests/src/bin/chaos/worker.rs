//! The worker a chaos container runs: a KCL scheduler whose processor appends what it gets to
//! `<log dir>/<worker>.records` before checkpointing (every N records or T milliseconds, at
//! shard end and at shutdown, as an application would), and whose lease table writes are
//! logged with their outcome to `<log dir>/<worker>.leases`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use kcl_core::{
    CheckpointError, FanOutConfig, InitialPosition, InitializationInput, LeaseLostInput,
    LifecycleConfig, PollingConfig, ProcessRecordsInput, ProcessorError, RecordProcessor,
    SchedulerBuilder, ShardEndedInput, ShutdownRequestedInput,
};
use kcl_lease::{CheckpointUpdate, Lease, LeaseStore, LeaseStoreLayer, WorkerMetrics};

use crate::logs::{now_ms, AppendLog, LeaseWrite, ProcessorEvent, ProcessorId, HEARTBEAT};

/// How the workers read their shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// GetRecords polling.
    Polling,
    /// Enhanced fan-out (SubscribeToShard).
    Fanout,
}

impl Mode {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Polling => "polling",
            Mode::Fanout => "fanout",
        }
    }
}

/// How the workers share the leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Coordination {
    /// KCL 3: a leader assigns the leases and judges workers by their heartbeats.
    Kcl3,
    /// KCL 2: each worker takes expired leases itself.
    Kcl2,
}

impl Coordination {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Coordination::Kcl3 => "kcl3",
            Coordination::Kcl2 => "kcl2",
        }
    }
}

/// KCL 3 timings for a failover time: the defaults are sized for 10 s, and a leader that
/// checks heartbeats every 500 ms cannot judge a worker dead within a 3 s failover with any
/// precision, so shorter failover times shrink the intervals in proportion (never above
/// the defaults).
fn coordination_for(failover: Duration) -> kcl_core::CoordinationConfig {
    let defaults = kcl_core::CoordinationConfig::default();
    let mut coordination = defaults.clone();
    coordination.mode = kcl_core::CoordinationMode::Kcl3;
    coordination.assignment_interval = (failover * 2).min(defaults.assignment_interval);
    coordination.report_interval = (failover / 15).min(defaults.report_interval);
    coordination.liveness_check_interval = (failover / 15).min(defaults.liveness_check_interval);
    coordination.leader_check_interval = failover.min(defaults.leader_check_interval);
    coordination.discovery_interval = failover.min(defaults.discovery_interval);
    coordination.metrics_capture_interval = (failover / 15)
        .max(Duration::from_millis(100))
        .min(defaults.metrics_capture_interval);
    coordination
}

/// `chaos worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Kinesis and DynamoDB endpoint.
    #[arg(long)]
    endpoint: String,
    /// Stream to consume.
    #[arg(long)]
    stream: String,
    /// Application name (the lease table).
    #[arg(long)]
    app: String,
    /// This worker's id.
    #[arg(long)]
    worker_id: String,
    /// Directory of the logs.
    #[arg(long)]
    log_dir: PathBuf,
    /// Polling or enhanced fan-out.
    #[arg(long, value_enum, default_value_t = Mode::Polling)]
    mode: Mode,
    /// Lease failover time, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    failover_ms: u64,
    /// The coordination protocol.
    #[arg(long, value_enum, default_value_t = Coordination::Kcl3)]
    coordination: Coordination,
    /// Checkpoint after this many records...
    #[arg(long, default_value_t = 100)]
    checkpoint_every: usize,
    /// ...or once this many milliseconds passed since the last checkpoint.
    #[arg(long, default_value_t = 2_000)]
    checkpoint_interval_ms: u64,
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn terminate_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,kcl_core=info,kcl_lease=info".into()),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let incarnation = now_ms();
    let records = Arc::new(AppendLog::open(
        &args.log_dir.join(format!("{}.records", args.worker_id)),
    )?);
    let lease_log = Arc::new(AppendLog::open(
        &args.log_dir.join(format!("{}.leases", args.worker_id)),
    )?);
    let kinesis = kcl_emulator::testcontainers::kinesis_client(&args.endpoint);
    let dynamodb = kcl_emulator::testcontainers::dynamodb_client(&args.endpoint);
    let store: Arc<dyn LeaseStore> = Arc::new(JournaledLeaseStore {
        inner: kcl_lease::DynamoDbLeaseStore::new(
            dynamodb,
            args.app.clone(),
            kcl_lease::TableConfig::default(),
        ),
        log: lease_log,
        worker: args.worker_id.clone(),
        incarnation,
    });

    let instances = Arc::new(AtomicU64::new(0));
    let factory = {
        let worker = args.worker_id.clone();
        let every = args.checkpoint_every;
        let interval = Duration::from_millis(args.checkpoint_interval_ms);
        move |shard_id: &str| LoggingProcessor {
            id: ProcessorId {
                worker: worker.clone(),
                incarnation,
                instance: instances.fetch_add(1, Ordering::Relaxed),
            },
            shard: shard_id.to_owned(),
            log: Arc::clone(&records),
            every,
            interval,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
        }
    };

    let mut polling = PollingConfig::default();
    polling.idle_time_between_reads = Duration::from_millis(200);
    let mut lifecycle = LifecycleConfig::default();
    lifecycle.parent_poll_interval = Duration::from_millis(500);
    lifecycle.shard_sync_interval = Duration::from_secs(5);
    lifecycle.shutdown_timeout = Duration::from_secs(20);
    let mut builder =
        SchedulerBuilder::new(args.app.clone(), args.stream.clone(), kinesis, factory)
            .lease_store(store)
            .worker_id(args.worker_id.clone())
            .initial_position(InitialPosition::TrimHorizon)
            .failover_time(Duration::from_millis(args.failover_ms))
            .polling(polling)
            .lifecycle(lifecycle);
    if args.mode == Mode::Fanout {
        builder = builder.fan_out(FanOutConfig::default());
    }
    builder = match args.coordination {
        Coordination::Kcl3 => {
            builder.coordination(coordination_for(Duration::from_millis(args.failover_ms)))
        }
        Coordination::Kcl2 => builder.coordination_mode(kcl_core::CoordinationMode::Kcl2),
    };
    let scheduler = builder.build()?;
    let shutdown = tokio::spawn(kcl_core::shutdown_on_signal(scheduler.handle()));
    eprintln!(
        "worker {} (incarnation {incarnation}) consuming {} ({}, {})",
        args.worker_id,
        args.stream,
        args.mode.as_str(),
        args.coordination.as_str()
    );
    scheduler.run().await?;
    let graceful = shutdown.await.unwrap_or(false);
    eprintln!(
        "worker {} stopped{}",
        args.worker_id,
        if graceful { " gracefully" } else { "" }
    );
    Ok(())
}

/// Logs every record before the checkpoint that covers it, so a record missing from the logs
/// was never checkpointed by this processor.
struct LoggingProcessor {
    id: ProcessorId,
    shard: String,
    log: Arc<AppendLog>,
    every: usize,
    interval: Duration,
    since_checkpoint: usize,
    last_checkpoint: Instant,
}

impl LoggingProcessor {
    fn event(&self, kind: char, detail: &[&str]) {
        let line = ProcessorEvent::line(kind, &self.id, &self.shard, detail);
        if let Err(err) = self.log.append(&line) {
            eprintln!("writing the records log: {err}");
        }
    }

    async fn checkpoint(
        &mut self,
        checkpointer: &kcl_core::Checkpointer,
    ) -> Result<(), CheckpointError> {
        let position = checkpointer.largest_permitted().to_string();
        let result = checkpointer.checkpoint().await;
        let outcome = match &result {
            Ok(()) => "ok".to_owned(),
            Err(err) => format!("failed:{err}"),
        };
        self.event('C', &[&position, &outcome]);
        if result.is_ok() {
            self.since_checkpoint = 0;
            self.last_checkpoint = Instant::now();
        }
        result
    }
}

#[async_trait]
impl RecordProcessor for LoggingProcessor {
    async fn initialize(&mut self, input: InitializationInput) -> Result<(), ProcessorError> {
        self.shard = input.lease_key;
        self.event('I', &[&input.checkpoint.to_string()]);
        Ok(())
    }

    async fn process_records(
        &mut self,
        input: ProcessRecordsInput<'_>,
    ) -> Result<(), ProcessorError> {
        if input.records.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for record in &input.records {
            text.push_str(&ProcessorEvent::line(
                'R',
                &self.id,
                &self.shard,
                &[
                    &record.sequence_number,
                    &String::from_utf8_lossy(&record.data),
                ],
            ));
        }
        // A record is processed once its line is written; a failed write fails the batch, which
        // the KCL retries, as an application whose side effect failed would.
        self.log.append(&text)?;
        self.since_checkpoint += input.records.len();
        if self.since_checkpoint >= self.every || self.last_checkpoint.elapsed() >= self.interval {
            // A lost lease or a shut-down checkpointer is the end of this processor's turn,
            // not a processing failure: the next owner continues from the last checkpoint.
            let _ = self.checkpoint(input.checkpointer).await;
        }
        Ok(())
    }

    async fn lease_lost(&mut self, _input: LeaseLostInput) -> Result<(), ProcessorError> {
        self.event('L', &[]);
        Ok(())
    }

    async fn shard_ended(&mut self, input: ShardEndedInput<'_>) -> Result<(), ProcessorError> {
        self.event('E', &[]);
        self.checkpoint(input.checkpointer).await?;
        Ok(())
    }

    async fn shutdown_requested(
        &mut self,
        input: ShutdownRequestedInput<'_>,
    ) -> Result<(), ProcessorError> {
        self.event('S', &[]);
        let _ = self.checkpoint(input.checkpointer).await;
        Ok(())
    }
}

/// The worker's lease table, logging each conditional write with the counter and owner it was
/// conditioned on and whether the table accepted it. The runner rebuilds each lease's history
/// of owners per counter from these logs.
#[derive(Debug)]
struct JournaledLeaseStore {
    inner: kcl_lease::DynamoDbLeaseStore,
    log: Arc<AppendLog>,
    worker: String,
    incarnation: u64,
}

impl JournaledLeaseStore {
    fn record(
        &self,
        op: &str,
        lease: &Lease,
        new_owner: Option<&str>,
        checkpoint: Option<&str>,
        outcome: &kcl_lease::Result<bool>,
    ) {
        let write = LeaseWrite {
            time_ms: now_ms(),
            worker: self.worker.clone(),
            incarnation: self.incarnation,
            op: op.to_owned(),
            lease: lease.lease_key.clone(),
            expected_counter: lease.lease_counter,
            expected_owner: lease.lease_owner.clone(),
            new_owner: new_owner.map(str::to_owned),
            checkpoint_owner: lease.checkpoint_owner.clone(),
            outcome: match outcome {
                Ok(true) => "ok",
                Ok(false) => "no",
                Err(_) => "err",
            }
            .to_owned(),
            checkpoint: checkpoint.map(str::to_owned),
        };
        if let Err(err) = self.log.append(&write.line()) {
            eprintln!("writing the lease log: {err}");
        }
    }
}

impl JournaledLeaseStore {
    /// Logs a leader's assignment. `assign_lease` and `unassign_lease` are conditioned on the
    /// owners the leader scanned, not on the counter, so the counter they bumped from is read
    /// back: nobody else bumps it in between (the old owner's writes are fenced by the owner
    /// change, and the new owner learns of the lease only after `notify_assignment`).
    async fn record_assignment(
        &self,
        op: &str,
        lease: &Lease,
        new_owner: Option<&str>,
        outcome: &kcl_lease::Result<bool>,
    ) {
        let mut logged = lease.clone();
        if matches!(outcome, Ok(true)) {
            if let Ok(Some(stored)) = self.inner.get_lease(&lease.lease_key).await {
                logged.lease_counter = stored.lease_counter.saturating_sub(1);
            }
        }
        self.record(op, &logged, new_owner, None, outcome);
    }

    /// Logs a heartbeat (a metrics report): under KCL 3's liveness by heartbeat a worker keeps
    /// its leases by these, not by renewing each lease.
    fn record_heartbeat(&self, succeeded: bool) {
        let write = LeaseWrite {
            time_ms: now_ms(),
            worker: self.worker.clone(),
            incarnation: self.incarnation,
            op: HEARTBEAT.to_owned(),
            lease: "-".to_owned(),
            expected_counter: 0,
            expected_owner: None,
            new_owner: None,
            checkpoint_owner: None,
            outcome: if succeeded { "ok" } else { "err" }.to_owned(),
            checkpoint: None,
        };
        if let Err(err) = self.log.append(&write.line()) {
            eprintln!("writing the lease log: {err}");
        }
    }
}

#[async_trait]
impl LeaseStoreLayer for JournaledLeaseStore {
    fn inner(&self) -> &dyn LeaseStore {
        &self.inner
    }

    async fn create_lease_if_absent(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        let outcome = self.inner.create_lease_if_absent(lease).await;
        let checkpoint = lease
            .checkpoint
            .as_ref()
            .map(|c| c.sequence_number.as_str());
        self.record("create", lease, None, checkpoint, &outcome);
        outcome
    }

    async fn renew_lease(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        let outcome = self.inner.renew_lease(lease).await;
        self.record("renew", lease, None, None, &outcome);
        outcome
    }

    async fn take_lease(&self, lease: &Lease, new_owner: &str) -> kcl_lease::Result<bool> {
        let outcome = self.inner.take_lease(lease, new_owner).await;
        self.record("take", lease, Some(new_owner), None, &outcome);
        outcome
    }

    async fn evict_lease(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        let outcome = self.inner.evict_lease(lease).await;
        self.record("evict", lease, None, None, &outcome);
        outcome
    }

    async fn start_handoff(&self, lease: &Lease, new_owner: &str) -> kcl_lease::Result<bool> {
        let outcome = self.inner.start_handoff(lease, new_owner).await;
        self.record("start_handoff", lease, Some(new_owner), None, &outcome);
        outcome
    }

    async fn complete_handoff(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        let outcome = self.inner.complete_handoff(lease).await;
        self.record("complete_handoff", lease, None, None, &outcome);
        outcome
    }

    async fn update_checkpoint(
        &self,
        lease: &Lease,
        update: &CheckpointUpdate,
    ) -> kcl_lease::Result<bool> {
        let outcome = self.inner.update_checkpoint(lease, update).await;
        let position = format!(
            "{}.{}",
            update.checkpoint.sequence_number, update.checkpoint.sub_sequence_number
        );
        self.record("checkpoint", lease, None, Some(&position), &outcome);
        outcome
    }

    async fn assign_lease(&self, lease: &Lease, new_owner: &str) -> kcl_lease::Result<bool> {
        let outcome = self.inner.assign_lease(lease, new_owner).await;
        self.record_assignment("assign", lease, Some(new_owner), &outcome)
            .await;
        outcome
    }

    async fn unassign_lease(&self, lease: &Lease) -> kcl_lease::Result<bool> {
        let outcome = self.inner.unassign_lease(lease).await;
        self.record_assignment("unassign", lease, None, &outcome)
            .await;
        outcome
    }

    async fn report_worker_metrics(
        &self,
        metrics: &WorkerMetrics,
    ) -> kcl_lease::Result<WorkerMetrics> {
        let outcome = self.inner.report_worker_metrics(metrics).await;
        self.record_heartbeat(outcome.is_ok());
        outcome
    }
}
