//! The worker: shard sync, the lease coordinator, and one shard consumer per held lease.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kcl_lease::{
    CoordinationConfig, CoordinationMode, DynamoDbLeaseStore, LeaseConfig, LeaseCoordinator,
    LeaseEvent, LeaseStore, TableConfig,
};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{
    FanOutConfig, FormerStreamsPolicy, InitialPosition, LifecycleConfig, PollingConfig,
    RetrievalMode,
};
use crate::error::{Error, Result};
use crate::lifecycle::{self, ConsumerContext, Outcome, Retrieval, Signals};
use crate::processor::{RecordProcessorFactory, SharedFactory};
use crate::retrieval::{fanout, StreamTarget};
use crate::shard_sync;
use crate::status::WorkerStatus;

/// Builds a [`Scheduler`]. Required: application name, stream, Kinesis client, processor
/// factory, and a lease store (or a DynamoDB client to make one).
pub struct SchedulerBuilder {
    application_name: String,
    streams: Vec<StreamTarget>,
    multi_stream: bool,
    kinesis: aws_sdk_kinesis::Client,
    factory: SharedFactory,
    lease_store: Option<Arc<dyn LeaseStore>>,
    dynamodb: Option<aws_sdk_dynamodb::Client>,
    table_name: Option<String>,
    worker_id: Option<String>,
    initial_position: InitialPosition,
    lease: LeaseConfig,
    retrieval: RetrievalMode,
    lifecycle: LifecycleConfig,
    former_streams: FormerStreamsPolicy,
}

impl std::fmt::Debug for SchedulerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerBuilder")
            .field("application_name", &self.application_name)
            .field("streams", &self.streams)
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

impl SchedulerBuilder {
    /// A builder for `application_name` consuming `stream` (a name, or an ARN starting with
    /// `arn:`) through `kinesis`, with processors from `factory`.
    pub fn new(
        application_name: impl Into<String>,
        stream: impl Into<String>,
        kinesis: aws_sdk_kinesis::Client,
        factory: impl RecordProcessorFactory + 'static,
    ) -> SchedulerBuilder {
        SchedulerBuilder {
            application_name: application_name.into(),
            streams: vec![StreamTarget::parse(stream.into())],
            multi_stream: false,
            kinesis,
            factory: Arc::new(factory),
            lease_store: None,
            dynamodb: None,
            table_name: None,
            worker_id: None,
            initial_position: InitialPosition::Latest,
            lease: LeaseConfig::default(),
            retrieval: RetrievalMode::default(),
            lifecycle: LifecycleConfig::default(),
            former_streams: FormerStreamsPolicy::default(),
        }
    }

    /// Makes this a multi-stream application reading every stream in `streams` (names or
    /// ARNs), in place of the stream given to [`SchedulerBuilder::new`]. The shards of all
    /// streams share one lease table and one fleet; lease keys take the Java KCL's
    /// multi-stream form `<account>:<stream>:<creationEpoch>:<shardId>`, and processors learn
    /// their stream from [`crate::InitializationInput::lease_key`].
    pub fn streams<I, S>(mut self, streams: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.streams = streams
            .into_iter()
            .map(|s| StreamTarget::parse(s.into()))
            .collect();
        self.multi_stream = true;
        self
    }

    /// What a multi-stream application does with the leases of streams it does not read (no
    /// longer configured, or deleted). Default [`FormerStreamsPolicy::Keep`].
    pub fn former_streams(mut self, policy: FormerStreamsPolicy) -> Self {
        self.former_streams = policy;
        self
    }

    /// The lease store to use. Default: a [`DynamoDbLeaseStore`] from [`Self::dynamodb`].
    pub fn lease_store(mut self, store: Arc<dyn LeaseStore>) -> Self {
        self.lease_store = Some(store);
        self
    }

    /// Keep leases in DynamoDB through `client` (table created if missing). No default.
    pub fn dynamodb(mut self, client: aws_sdk_dynamodb::Client) -> Self {
        self.dynamodb = Some(client);
        self
    }

    /// The lease table name. Default: the application name.
    pub fn table_name(mut self, table: impl Into<String>) -> Self {
        self.table_name = Some(table.into());
        self
    }

    /// This worker's id. Default: host name, process id and a random suffix.
    pub fn worker_id(mut self, worker_id: impl Into<String>) -> Self {
        self.worker_id = Some(worker_id.into());
        self
    }

    /// Where shards without a checkpoint start. Default [`InitialPosition::Latest`].
    pub fn initial_position(mut self, position: InitialPosition) -> Self {
        self.initial_position = position;
        self
    }

    /// Lease failover time. Default 10 s.
    pub fn failover_time(mut self, failover: Duration) -> Self {
        self.lease.failover_time = failover;
        self
    }

    /// Most leases this worker holds. Default unlimited.
    pub fn max_leases_for_worker(mut self, max: usize) -> Self {
        self.lease.max_leases_for_worker = max;
        self
    }

    /// Fleet coordination: the protocol ([`CoordinationMode::Kcl3`] by default: a leader
    /// assigns leases by load and moves them with graceful handoffs; [`CoordinationMode::Kcl2`]
    /// for tables shared with Java KCL 2.x workers) and its timings. Default
    /// [`CoordinationConfig::default`], whose fields document their defaults.
    pub fn coordination(mut self, config: CoordinationConfig) -> Self {
        self.lease.coordination = config;
        self
    }

    /// The coordination protocol alone (see [`SchedulerBuilder::coordination`]). Default
    /// [`CoordinationMode::Kcl3`].
    pub fn coordination_mode(mut self, mode: CoordinationMode) -> Self {
        self.lease.coordination.mode = mode;
        self
    }

    /// All lease settings, coordination included. Default [`LeaseConfig::default`].
    pub fn lease_config(mut self, config: LeaseConfig) -> Self {
        self.lease = config;
        self
    }

    /// Read by polling GetRecords with these settings. This is the default mode, with
    /// [`PollingConfig::default`].
    pub fn polling(mut self, config: PollingConfig) -> Self {
        self.retrieval = RetrievalMode::Polling(config);
        self
    }

    /// Read by enhanced fan-out (SubscribeToShard) with these settings. The consumer is
    /// registered at start unless it exists; leases and checkpoints are the same as with
    /// polling, so a fleet can switch modes without touching its lease table.
    pub fn fan_out(mut self, config: FanOutConfig) -> Self {
        self.retrieval = RetrievalMode::FanOut(config);
        self
    }

    /// The retrieval mode. Default [`RetrievalMode::Polling`].
    pub fn retrieval_mode(mut self, mode: RetrievalMode) -> Self {
        self.retrieval = mode;
        self
    }

    /// Lifecycle settings (parent polling, shutdown timeout, restarts, shard sync interval).
    /// Default [`LifecycleConfig::default`].
    pub fn lifecycle(mut self, config: LifecycleConfig) -> Self {
        self.lifecycle = config;
        self
    }

    /// Checks the settings and builds the scheduler.
    ///
    /// # Errors
    /// [`Error::Config`] when no lease store can be made or a name is empty.
    pub fn build(self) -> Result<Scheduler> {
        if self.application_name.is_empty() {
            return Err(Error::Config("the application name is empty".to_owned()));
        }
        let table = self
            .table_name
            .unwrap_or_else(|| self.application_name.clone());
        let store: Arc<dyn LeaseStore> = match (self.lease_store, self.dynamodb) {
            (Some(store), _) => store,
            (None, Some(client)) => Arc::new(DynamoDbLeaseStore::new(
                client,
                table,
                TableConfig::default(),
            )),
            (None, None) => {
                return Err(Error::Config(
                    "set a lease store or a DynamoDB client".to_owned(),
                ));
            }
        };
        let worker_id = self.worker_id.unwrap_or_else(default_worker_id);
        let (shutdown, _) = (CancellationToken::new(), ());
        let (done, done_receiver) = watch::channel(None);
        Ok(Scheduler {
            status: WorkerStatus::new(&worker_id),
            handle: SchedulerHandle {
                shutdown: shutdown.clone(),
                done: done_receiver,
            },
            done,
            shutdown,
            application_name: self.application_name,
            worker_id,
            streams: self.streams,
            multi_stream: self.multi_stream,
            kinesis: self.kinesis,
            factory: self.factory,
            store,
            initial_position: self.initial_position,
            lease: self.lease,
            retrieval: self.retrieval,
            lifecycle: self.lifecycle,
            former_streams: self.former_streams,
        })
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// A cloneable handle to ask a running scheduler to shut down.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    shutdown: CancellationToken,
    done: watch::Receiver<Option<bool>>,
}

impl SchedulerHandle {
    /// Starts a graceful shutdown: processors get `shutdown_requested` (and may checkpoint),
    /// then the leases are released (left unowned, or handed to the worker that asked for
    /// them), so other workers take them at their next taker run instead of waiting for them
    /// to expire. Resolves when the scheduler has stopped; `true` if every shard finished
    /// within the shutdown timeout.
    pub async fn shutdown(&self) -> bool {
        self.shutdown.cancel();
        let mut done = self.done.clone();
        loop {
            if let Some(completed) = *done.borrow_and_update() {
                return completed;
            }
            if done.changed().await.is_err() {
                return false;
            }
        }
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn request_shutdown(&self) {
        self.shutdown.cancel();
    }
}

/// Shuts `handle`'s scheduler down gracefully on Ctrl-C or SIGTERM. Returns the shutdown's result.
pub async fn shutdown_on_signal(handle: SchedulerHandle) -> bool {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("signal received; shutting down gracefully");
    handle.shutdown().await
}

/// A worker of a KCL application. See the crate documentation.
pub struct Scheduler {
    status: WorkerStatus,
    handle: SchedulerHandle,
    done: watch::Sender<Option<bool>>,
    shutdown: CancellationToken,
    application_name: String,
    worker_id: String,
    streams: Vec<StreamTarget>,
    multi_stream: bool,
    kinesis: aws_sdk_kinesis::Client,
    factory: SharedFactory,
    store: Arc<dyn LeaseStore>,
    initial_position: InitialPosition,
    lease: LeaseConfig,
    retrieval: RetrievalMode,
    lifecycle: LifecycleConfig,
    former_streams: FormerStreamsPolicy,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("application_name", &self.application_name)
            .field("worker_id", &self.worker_id)
            .field("streams", &self.streams)
            .finish_non_exhaustive()
    }
}

struct Running {
    signals: Signals,
    /// The lease was lost and taken back while this consumer was still winding down: start a
    /// new consumer when it finishes.
    regained: bool,
}

fn start_consumer(
    ctx: &Arc<ConsumerContext>,
    key: String,
    consumers: &mut HashMap<String, Running>,
    tasks: &mut JoinSet<(String, Outcome)>,
) {
    let signals = Signals {
        lease_lost: CancellationToken::new(),
        shutdown: CancellationToken::new(),
    };
    consumers.insert(
        key.clone(),
        Running {
            signals: signals.clone(),
            regained: false,
        },
    );
    let ctx = Arc::clone(ctx);
    tasks.spawn(async move {
        let outcome = lifecycle::run(ctx, key.clone(), signals).await;
        (key, outcome)
    });
}

/// Aborts its task when dropped, so a scheduler whose `run` future is dropped (or aborted)
/// leaves no lease renewal running behind it.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl AbortOnDrop {
    async fn join(mut self) {
        if let Some(task) = self.0.take() {
            let _ = task.await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

impl Scheduler {
    /// A handle to shut this scheduler down from elsewhere.
    pub fn handle(&self) -> SchedulerHandle {
        self.handle.clone()
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// A live view of what this worker is doing (for health checks; see [`crate::admin`]).
    pub fn status(&self) -> WorkerStatus {
        self.status.clone()
    }

    /// Runs until [`SchedulerHandle::shutdown`] is called.
    ///
    /// # Errors
    /// When the lease table or the stream cannot be used at start.
    pub async fn run(self) -> Result<()> {
        let result = self.run_inner().await;
        if result.is_err() {
            let _ = self.done.send(Some(false));
        }
        result
    }

    async fn run_inner(&self) -> Result<()> {
        self.store.initialize().await?;
        let mut streams = Vec::with_capacity(self.streams.len());
        for stream in &self.streams {
            let mut stream = stream.clone();
            if self.multi_stream {
                // A deleted stream of a multi-stream application is not read; its leases no
                // longer match a configured stream and follow the former-streams policy.
                match shard_sync::multi_stream_prefix(&self.kinesis, &stream).await {
                    Ok(prefix) => stream.lease_prefix = Some(prefix),
                    Err(err) if err.is_resource_not_found() => {
                        tracing::warn!(stream = ?stream.name.as_ref().or(stream.arn.as_ref()), "the stream does not exist; it is not read");
                        continue;
                    }
                    Err(err) => return Err(err),
                }
            }
            shard_sync::sync_leases(
                &self.kinesis,
                &stream,
                self.store.as_ref(),
                self.initial_position,
            )
            .await?;
            streams.push(stream);
        }
        let retrieval = match &self.retrieval {
            RetrievalMode::Polling(config) => Retrieval::Polling(config.clone()),
            RetrievalMode::FanOut(config) => {
                let consumer_arns = match &config.consumer_arn {
                    Some(_) if streams.len() > 1 => {
                        return Err(Error::Config(
                            "a consumer ARN names one stream's consumer: set a consumer name for a multi-stream application".to_owned(),
                        ))
                    }
                    Some(arn) => vec![arn.clone()],
                    None => {
                        let name = config
                            .consumer_name
                            .as_deref()
                            .unwrap_or(&self.application_name);
                        let mut arns = Vec::with_capacity(streams.len());
                        for stream in &streams {
                            arns.push(fanout::ensure_consumer(&self.kinesis, stream, name).await?);
                        }
                        arns
                    }
                };
                Retrieval::FanOut {
                    consumer_arns,
                    config: config.clone(),
                }
            }
        };
        // Only leases of the streams this application reads: a lease of another stream (a former
        // stream of a multi-stream application) must never be read from one of ours.
        let lease_streams = streams.clone();
        let (coordinator, mut events) = LeaseCoordinator::with_filter(
            Arc::clone(&self.store),
            self.worker_id.clone(),
            self.lease.clone(),
            Arc::new(move |lease: &kcl_lease::Lease| {
                lease_streams.iter().any(|s| s.owns(&lease.lease_key))
            }),
        );
        let ctx = Arc::new(ConsumerContext {
            kinesis: self.kinesis.clone(),
            streams,
            store: Arc::clone(&self.store),
            coordinator: Arc::clone(&coordinator),
            factory: Arc::clone(&self.factory),
            retrieval,
            lifecycle: self.lifecycle.clone(),
            initial_position: self.initial_position,
            status: self.status.clone(),
        });
        let leases_stop = CancellationToken::new();
        let lease_task = AbortOnDrop(Some(tokio::spawn(
            Arc::clone(&coordinator).run(leases_stop.clone()),
        )));
        let mut consumers: HashMap<String, Running> = HashMap::new();
        let mut tasks: JoinSet<(String, Outcome)> = JoinSet::new();
        // Table chores run beside the event loop, never inside it: cut off from the lease table,
        // their calls hang, and lease events (a lost lease's `lease_lost`) must not wait on them.
        let shard_ended = tokio::sync::Notify::new();
        let chores = self.chores(&coordinator, &ctx.streams, &shard_ended);
        tokio::pin!(chores);
        // Leadership changes without an event: the status looks at it this often.
        let mut status_refresh = tokio::time::interval(Duration::from_secs(1));
        status_refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tracing::info!(worker = %self.worker_id, application = %self.application_name, "scheduler running");
        self.status.set_started(true);
        // Set while this worker drains before stopping (KCL 3): the leader hands its leases to
        // other workers, which start at the final checkpoints, instead of the leases waiting
        // unowned for the leader's next round.
        let mut draining_until: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                () = self.shutdown.cancelled(), if draining_until.is_none() => {
                    // Bounded: a worker cut off from the table stops without draining.
                    let limit = coordinator.config().failover_time;
                    if !tokio::time::timeout(limit, coordinator.start_drain()).await.unwrap_or(false) {
                        break;
                    }
                    draining_until = Some(tokio::time::Instant::now() + coordinator.config().graceful_handoff_timeout);
                }
                () = sleep_until_or_never(draining_until) => {
                    tracing::warn!(worker = %self.worker_id, remaining = coordinator.held_keys().len(), "the leases were not all handed off in time; stopping anyway");
                    break;
                }
                event = events.recv() => match event {
                    Some(LeaseEvent::Gained(lease)) => {
                        metrics::counter!("kcl_leases_taken_total").increment(1);
                        let key = lease.lease_key.clone();
                        match consumers.get_mut(&key) {
                            Some(running) if running.signals.lease_lost.is_cancelled() => running.regained = true,
                            Some(_) => {}
                            None => start_consumer(&ctx, key, &mut consumers, &mut tasks),
                        }
                    }
                    Some(LeaseEvent::Lost(key)) => {
                        metrics::counter!("kcl_leases_lost_total").increment(1);
                        if let Some(running) = consumers.get(&key) {
                            running.signals.lease_lost.cancel();
                        }
                    }
                    // Another worker asked for the lease: the processor is told to shut down
                    // (and checkpoints), and the lease goes over once it has stopped.
                    Some(LeaseEvent::HandoffRequested(key)) => match consumers.get(&key) {
                        Some(running) => running.signals.shutdown.cancel(),
                        None => self.complete_handoff(&coordinator, &key).await,
                    },
                    Some(_) => {}
                    None => break,
                },
                Some(finished) = tasks.join_next() => {
                    match finished {
                        Ok((key, outcome)) => {
                            let regained = consumers.remove(&key).is_some_and(|r| r.regained);
                            if coordinator.handoff_requested(&key) {
                                self.complete_handoff(&coordinator, &key).await;
                            }
                            if regained && coordinator.held_keys().contains(&key) {
                                start_consumer(&ctx, key.clone(), &mut consumers, &mut tasks);
                            }
                            tracing::debug!(shard = %key, ?outcome, "shard consumer finished");
                            if outcome == Outcome::ShardEnded {
                                shard_ended.notify_one();
                            }
                        }
                        Err(err) => tracing::error!(error = %err, "a shard consumer task failed"),
                    }
                }
                _ = status_refresh.tick() => {}
                never = &mut chores => match never {},
            }
            let held = coordinator.held_keys();
            metrics::gauge!("kcl_leases_held").set(held.len() as f64);
            self.status.set_held(&held);
            self.status.set_leader(coordinator.is_leader());
            if draining_until.is_some() && held.is_empty() && consumers.is_empty() {
                tracing::info!(worker = %self.worker_id, "drained: every lease handed off");
                break;
            }
        }
        // Graceful shutdown: processors first (final checkpoints), then the leases.
        for running in consumers.values() {
            running.signals.shutdown.cancel();
        }
        let deadline = tokio::time::sleep(self.lifecycle.shutdown_timeout);
        tokio::pin!(deadline);
        let mut completed = true;
        while !tasks.is_empty() {
            tokio::select! {
                _ = tasks.join_next() => {}
                () = &mut deadline => {
                    tracing::warn!(remaining = tasks.len(), "shard consumers did not stop within the shutdown timeout");
                    tasks.abort_all();
                    completed = false;
                    break;
                }
            }
        }
        leases_stop.cancel();
        lease_task.join().await;
        // Bounded: cut off from the table, the calls hang, and the leases expire regardless.
        let limit = coordinator.config().failover_time;
        if tokio::time::timeout(limit, coordinator.release_all())
            .await
            .is_err()
        {
            tracing::warn!(worker = %self.worker_id, ?limit, "releasing the leases did not finish in time; they expire instead");
        }
        self.status.set_started(false);
        self.status.set_leader(false);
        self.status.set_held(&[]);
        tracing::info!(worker = %self.worker_id, completed, "scheduler stopped");
        let _ = self.done.send(Some(completed));
        Ok(())
    }

    /// The lease-table chores, until dropped: every shard sync interval, and when a shard
    /// ended, finished parents are cleaned up (and their children's leases taken); on the
    /// leader, every shard sync interval, the fleet chores. A round that hangs (a partition)
    /// is given up after the longer of the shard sync interval and two failover times.
    async fn chores(
        &self,
        coordinator: &LeaseCoordinator,
        streams: &[StreamTarget],
        shard_ended: &tokio::sync::Notify,
    ) -> std::convert::Infallible {
        let interval = self.lifecycle.shard_sync_interval;
        let limit = interval.max(coordinator.config().failover_time * 2);
        let mut sync = tokio::time::interval(interval);
        sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        sync.tick().await;
        let mut former = FormerStreams::default();
        loop {
            let fleet = tokio::select! {
                _ = sync.tick() => true,
                () = shard_ended.notified() => false,
            };
            let round = async {
                self.cleanup(coordinator).await;
                // Table-wide chores run on the leader only: in steady state no other worker
                // lists the table (or the streams' shards).
                if fleet && coordinator.runs_fleet_chores() {
                    self.fleet_chores(streams, &mut former).await;
                }
            };
            if tokio::time::timeout(limit, round).await.is_err() {
                tracing::warn!(worker = %self.worker_id, ?limit, "the lease table chores did not finish in time; they run again at the next shard sync");
            }
        }
    }

    /// The leader's periodic chores: shard sync of every stream (leases for new shards), and
    /// in a multi-stream application the former streams' policy.
    async fn fleet_chores(&self, streams: &[StreamTarget], former: &mut FormerStreams) {
        let mut deleted = HashSet::new();
        for (index, stream) in streams.iter().enumerate() {
            match shard_sync::sync_leases(
                &self.kinesis,
                stream,
                self.store.as_ref(),
                self.initial_position,
            )
            .await
            {
                Ok(_) => {}
                Err(err) if err.is_resource_not_found() => {
                    tracing::warn!(stream = ?stream.name.as_ref().or(stream.arn.as_ref()), "the stream no longer exists; its leases are not read");
                    deleted.insert(index);
                }
                Err(err) => tracing::warn!(error = %err, "shard sync failed"),
            }
        }
        if self.multi_stream {
            former
                .apply(self.former_streams, streams, &deleted, self.store.as_ref())
                .await;
        }
    }

    /// Lets the lease go to the worker that asked for it. The coordinator tries for up to the
    /// failover time; the event loop waits on it, so it is bounded here too, in case a call
    /// ignores that: past it, the leader moves the lease once it judges the handoff stalled.
    async fn complete_handoff(&self, coordinator: &LeaseCoordinator, lease_key: &str) {
        metrics::counter!("kcl_leases_handed_off_total").increment(1);
        let limit = coordinator.config().failover_time * 2;
        match tokio::time::timeout(limit, coordinator.complete_handoff(lease_key)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::warn!(lease = %lease_key, error = %err, "completing a handoff failed; the other worker takes the lease after the failover time")
            }
            Err(_) => {
                tracing::warn!(lease = %lease_key, ?limit, "completing a handoff did not finish in time; the leader moves the lease once it judges the handoff stalled")
            }
        }
    }

    /// For each finished parent shard this worker holds: takes its children's unowned leases
    /// (see [`kcl_lease::LeaseConfig::adopt_child_leases`]), and deletes the parent's lease
    /// once all its children have made progress (checkpoints past TRIM_HORIZON). Reads the
    /// parent and its children one lease at a time, as Java's lease cleanup does: no worker
    /// scans the table for it.
    async fn cleanup(&self, coordinator: &LeaseCoordinator) {
        for key in coordinator.held_keys() {
            let held_ended = coordinator
                .held_lease(&key)
                .await
                .is_some_and(|lease| lease.is_shard_end());
            if !held_ended {
                continue;
            }
            // The table's copy: the children are recorded there when the shard ends.
            let parent = match self.store.get_lease(&key).await {
                Ok(Some(parent)) if !parent.child_shard_ids.is_empty() => parent,
                Ok(_) => continue,
                Err(err) => {
                    tracing::warn!(lease = %key, error = %err, "reading a finished parent lease failed");
                    return;
                }
            };
            let mut children_started = true;
            for child in &parent.child_shard_ids {
                let lease = match self.store.get_lease(&parent.sibling_key(child)).await {
                    Ok(Some(lease)) => lease,
                    Ok(None) => {
                        children_started = false;
                        continue;
                    }
                    Err(err) => {
                        tracing::warn!(lease = %key, error = %err, "reading a child lease failed");
                        return;
                    }
                };
                let started = lease
                    .checkpoint
                    .as_ref()
                    .is_some_and(|cp| cp.sequence_number != "TRIM_HORIZON");
                children_started &= started;
                if !started && lease.lease_owner.is_none() {
                    let child = lease.lease_key.clone();
                    if let Err(err) = coordinator.adopt_child(lease).await {
                        tracing::warn!(lease = %child, error = %err, "taking a child's lease failed; the taker or the leader assigns it");
                    }
                }
            }
            if children_started {
                coordinator.forget(&key);
                if let Err(err) = self.store.delete_lease(&key).await {
                    tracing::warn!(lease = %key, error = %err, "deleting a finished parent lease failed");
                } else {
                    tracing::info!(lease = %key, "deleted the finished parent lease");
                }
            }
        }
    }
}

/// The leases of streams a multi-stream application does not read, and since when this worker
/// has seen each, for [`FormerStreamsPolicy::DeleteAfter`].
#[derive(Debug, Default)]
struct FormerStreams {
    first_seen: HashMap<String, tokio::time::Instant>,
}

impl FormerStreams {
    /// Notes the leases that belong to no configured stream, or to one of the `deleted` ones
    /// (indexes into `streams`), and deletes those the policy says have waited long enough.
    async fn apply(
        &mut self,
        policy: FormerStreamsPolicy,
        streams: &[StreamTarget],
        deleted: &HashSet<usize>,
        store: &dyn LeaseStore,
    ) {
        let FormerStreamsPolicy::DeleteAfter(wait) = policy else {
            return;
        };
        let Ok(leases) = store.list_leases().await else {
            return;
        };
        let now = tokio::time::Instant::now();
        let former: HashSet<String> = leases
            .into_iter()
            .map(|l| l.lease_key)
            .filter(|key| match streams.iter().position(|s| s.owns(key)) {
                None => true,
                Some(index) => deleted.contains(&index),
            })
            .collect();
        self.first_seen.retain(|key, _| former.contains(key));
        for key in former {
            let seen = *self.first_seen.entry(key.clone()).or_insert(now);
            if now.duration_since(seen) < wait {
                continue;
            }
            match store.delete_lease(&key).await {
                Ok(()) => {
                    tracing::info!(lease = %key, "deleted the lease of a former stream");
                    self.first_seen.remove(&key);
                }
                Err(err) => {
                    tracing::warn!(lease = %key, error = %err, "deleting a former stream's lease failed")
                }
            }
        }
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_or_never(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
