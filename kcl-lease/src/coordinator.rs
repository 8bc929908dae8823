//! The lease coordinator: keeps this worker's leases, in one of two protocols
//! ([`CoordinationMode`], in [`LeaseConfig::coordination`]).
//!
//! # KCL 3 (the default)
//! A leader, elected through the table's lock item ([`LeaderElector`]), assigns leases; workers
//! never take any. [`LeaseCoordinator::run`] first reads the table's migration state
//! (`Migration3.0`, see [`ClientVersion`]): none is written as the configured mode's; a fleet
//! recorded as running 2.x (`CLIENT_VERSION_2X`, `CLIENT_VERSION_UPGRADE_FROM_2X`) is not
//! switched behind its back, and this worker runs the 2.x protocol below. While the state may
//! still change (all but `CLIENT_VERSION_3X`), the worker reads it every
//! `migration_check_interval` and switches protocol in place, keeping its leases: the flip of
//! an upgraded fleet to KCL 3, a rollback to 2.x, a roll-forward. In KCL 3 mode the run loop
//! does:
//! - **Renewals**: per lease, as below (Java-compatible), while the leader lock is a Java
//!   leader's or there is none. When the lock says the leader judges liveness by heartbeats
//!   (`liveness = "heartbeat"`, written by this library's leaders), held leases are kept by
//!   the heartbeat instead: no per-lease writes; a worker whose reports have all failed for a
//!   failover time drops every lease (the leader has judged it dead by then), and throughput
//!   goes out with checkpoints.
//! - **Metrics report** (every `report_interval`): CPU utilisation
//!   ([`WorkerMetricsSampler`]); the store bumps the heartbeat counter and returns the item,
//!   whose assignment generation (`ag`) changes when the leader gave this worker leases.
//! - **Discovery** (when `ag` changed, and every `discovery_interval`): the owner index lists
//!   the leases in this worker's name; new ones are read consistently and taken up when no
//!   handoff to this worker is still under way; held ones the index no longer lists are read
//!   too, so a lease moved away or being handed off is noticed without per-lease renewals.
//! - **Election** and, on the leader, [`LeaseAssignmentManager::tick_as_leader`] (on its
//!   successor [`LeaseAssignmentManager::tick_as_successor`]) every `liveness_check_interval`.
//! - After completing a handoff, the old owner bumps the new owner's `ag`, so the new owner
//!   starts from the final checkpoint within one report interval.
//!
//! # KCL 2.x
//! - During an upgrade (`CLIENT_VERSION_UPGRADE_FROM_2X`) every worker also reports its metrics
//!   every `upgrade_report_interval`, and the deterministic leader ([`deterministic_leader`],
//!   as Java's) checks every `migration_check_interval` whether every lease owner reports: ready
//!   for `upgrade_stabilisation` without a break, it flips the fleet to
//!   `CLIENT_VERSION_3X_WITH_ROLLBACK`.
//! - The **renewer** (every `failover_time / 3 - epsilon`) bumps the counter of every held lease
//!   with a conditional write. A renewal that finds the counter or owner changed means another
//!   worker took the lease: it is dropped and a [`LeaseEvent::Lost`] goes out. A lease this
//!   worker could not renew for a whole failover time is dropped too, because another worker may
//!   already consider it expired; a renewal still waiting on the table at that moment (a
//!   partition can leave a call hanging) is given up. Renewals write the lease's throughput
//!   (`throughputKBps`).
//! - The **taker** (every `(failover_time + epsilon) * 2`) lists the table and takes leases until
//!   this worker holds its target, `ceil(leases / workers)` capped by `max_leases_for_worker`:
//!   unowned leases first, then expired ones, and only when none is free, steals at most
//!   `max_leases_to_steal_at_one_time` from the most loaded worker.
//! - A **steal is a graceful handoff** (the KCL 3 sequence, unless `graceful_handoff` is off):
//!   the taker sets itself as `leaseOwner` and the owner as `checkpointOwner`, without bumping
//!   the counter. The owner finds out at its next renewal or checkpoint, keeps the lease while
//!   its processor gets `shutdown_requested` and checkpoints, then completes the handoff
//!   (removes `checkpointOwner`, bumps the counter); the taker then takes the lease at that
//!   checkpoint. An owner that never answers loses the lease when it expires; one that takes
//!   longer than `graceful_handoff_timeout` lets go anyway. (KCL 3 handoffs, started by the
//!   leader, go the same way on the owner's side.)
//! - **Expiry** is judged on this worker's monotonic clock: a lease is expired when its counter
//!   has not changed, as seen by this worker, for `failover_time`. No clocks are compared across
//!   hosts. When a listing shows a lease that will expire before the next regular taker run,
//!   the taker runs again right when it expires, so a dead worker's leases are owned again
//!   within `failover_time` plus one taker period.
//!
//! Renewals and checkpoints of one lease both depend on its counter, so each held lease sits
//! behind an async mutex that is held across the conditional write: the two never race, and
//! whichever goes second uses the counter the first produced.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::{retry, BackoffConfig};
use crate::entities::WorkerMetrics;
use crate::error::{LeaseError, Result};
use crate::kcl3::{
    deterministic_leader, next_migration_state, upgrade_blockers, ClientVersion, CoordinationMode,
    LeaderElector, LeaderRole, LeaseAssignmentManager, ThroughputTracker, WorkerMetricsSampler,
};
use crate::lease::Lease;
use crate::store::{CheckpointUpdate, LeaseStore};

/// Lease timing and balancing settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LeaseConfig {
    /// How long a lease may go without renewal before others may take it. Default 10 s.
    pub failover_time: Duration,
    /// Slack subtracted from the renewal period and added to the taking period. Default 25 ms.
    pub epsilon: Duration,
    /// Most leases this worker holds. Default unlimited.
    pub max_leases_for_worker: usize,
    /// Most leases taken from other workers in one taker run. Default 1.
    pub max_leases_to_steal_at_one_time: usize,
    /// Renewals in flight at once. Default 64.
    pub renew_concurrency: usize,
    /// Whether a lease taken from a live worker is handed off gracefully (the KCL 3 handoff:
    /// the owner is told, checkpoints, then lets go, and the taker starts at that checkpoint,
    /// so no record is processed twice) instead of taken outright. A Java KCL 2.x owner does
    /// not know the handoff: its lease then moves after one failover time. Default `true`.
    pub graceful_handoff: bool,
    /// How long an owner asked to hand a lease off may take (its processor's
    /// `shutdown_requested` and final checkpoint) before it lets go anyway. Default 30 s, as
    /// in the Java KCL.
    pub graceful_handoff_timeout: Duration,
    /// Whether a worker that finished a shard takes its children's leases at once when they
    /// are unowned, instead of leaving them to the next taker run or the leader's next
    /// assignment round. A reshard that closes shards in a chain (UpdateShardCount across
    /// uneven ranges splits, then merges, the pieces) then walks the chain as fast as it reads
    /// it, not one round (2 failover times) per generation. The taker or the leader evens the
    /// fleet out afterwards. Default `true`; the Java KCL leaves children to the next round.
    pub adopt_child_leases: bool,
    /// Fleet coordination: the KCL 3 protocol (the default) or the 2.x taker, and their
    /// settings.
    pub coordination: crate::kcl3::CoordinationConfig,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            failover_time: Duration::from_secs(10),
            epsilon: Duration::from_millis(25),
            max_leases_for_worker: usize::MAX,
            max_leases_to_steal_at_one_time: 1,
            renew_concurrency: 64,
            graceful_handoff: true,
            graceful_handoff_timeout: Duration::from_secs(30),
            adopt_child_leases: true,
            coordination: crate::kcl3::CoordinationConfig::default(),
        }
    }
}

impl LeaseConfig {
    /// Settings with `failover_time` and the other defaults.
    pub fn with_failover_time(failover_time: Duration) -> LeaseConfig {
        LeaseConfig {
            failover_time,
            ..LeaseConfig::default()
        }
    }

    /// How often held leases are renewed.
    pub fn renew_interval(&self) -> Duration {
        (self.failover_time / 3)
            .saturating_sub(self.epsilon)
            .max(Duration::from_millis(1))
    }

    /// How often the taker runs.
    pub fn take_interval(&self) -> Duration {
        (self.failover_time + self.epsilon) * 2
    }
}

/// What the coordinator tells the worker.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LeaseEvent {
    /// This worker now holds the lease (as of this copy).
    Gained(Box<Lease>),
    /// This worker no longer holds the lease with this key.
    Lost(String),
    /// Another worker asked for this held lease (a graceful handoff): stop its processor
    /// gracefully (it may checkpoint), then call [`LeaseCoordinator::complete_handoff`]. Until
    /// then this worker keeps renewing it; after `graceful_handoff_timeout` it lets go anyway.
    HandoffRequested(String),
}

/// A lease this worker holds.
#[derive(Debug)]
struct Held {
    /// Held across the store call of a renewal or checkpoint (see the module docs).
    lease: tokio::sync::Mutex<Lease>,
    last_renewed: Mutex<Instant>,
    /// When another worker asked for this lease, if it did.
    handoff_requested: Mutex<Option<Instant>>,
}

impl Held {
    fn new(lease: Lease) -> Held {
        Held {
            lease: tokio::sync::Mutex::new(lease),
            last_renewed: Mutex::new(Instant::now()),
            handoff_requested: Mutex::new(None),
        }
    }

    fn handoff_requested(&self) -> Option<Instant> {
        *self
            .handoff_requested
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether `current` (the table's copy of a lease) shows a handoff away from `worker_id` that
/// started after `known` (this worker's copy): `worker_id` is its checkpoint owner, another
/// worker its owner, and the counter unchanged (a handoff does not bump it; anything else
/// that changed the lease would have).
fn is_handoff_from(worker_id: &str, known: &Lease, current: &Lease) -> bool {
    is_handed_off_by(worker_id, current) && current.lease_counter == known.lease_counter
}

/// Whether the table asks `worker_id` to hand `lease` to the owner it names.
fn is_handed_off_by(worker_id: &str, lease: &Lease) -> bool {
    lease.checkpoint_owner.as_deref() == Some(worker_id)
        && lease.lease_owner.as_deref() != Some(worker_id)
}

/// How one renewal went.
enum Renewal {
    Renewed,
    /// Kept trying: a store error within the failover time.
    Retrying,
    Lost(&'static str),
    /// Another worker asked for the lease; this worker adopted the handoff.
    HandoffRequested,
    /// The handoff took longer than allowed: it was completed without waiting further.
    HandoffTimedOut,
}

/// What the taker has seen of a lease: its counter and when that last changed on our clock.
#[derive(Debug, Clone, Copy)]
struct Observed {
    counter: u64,
    changed_at: Instant,
}

/// Wall-clock time in epoch milliseconds, for items Java reads as dates (never for liveness).
fn wall_clock_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Which leases of the table a worker may take. Leases it rejects are invisible to its taker:
/// never taken, and not counted when it works out its share.
pub type LeaseFilter = Arc<dyn Fn(&Lease) -> bool + Send + Sync>;

/// Keeps this worker's leases: see the module documentation.
pub struct LeaseCoordinator {
    store: Arc<dyn LeaseStore>,
    filter: LeaseFilter,
    worker_id: String,
    config: LeaseConfig,
    held: Mutex<BTreeMap<String, Arc<Held>>>,
    observed: Mutex<HashMap<String, Observed>>,
    /// When the earliest lease of another worker expires if it stays silent.
    next_expiry: Mutex<Option<Instant>>,
    events: mpsc::Sender<LeaseEvent>,
    /// Breaks ties among equally good leases. Seeded from the worker id, so workers starting
    /// together prefer different leases, yet one fleet of named workers replays identically.
    tie_break: Mutex<StdRng>,
    /// Bytes delivered per held lease, for `throughputKBps`.
    throughput: Mutex<ThroughputTracker>,
    /// The protocol the run loop settled on (the configured one, unless the table's migration
    /// state keeps the fleet on 2.x).
    mode: Mutex<CoordinationMode>,
    /// KCL 3: the leader election (kept here so that [`LeaseCoordinator::release_all`] can
    /// give the lock up).
    elector: tokio::sync::Mutex<Option<LeaderElector>>,
    /// KCL 3: whether this worker held the leader lock at its last election step.
    leader: AtomicBool,
    /// KCL 3: whether held leases are kept alive by this worker's heartbeat instead of
    /// per-lease renewals (the leader's lock says it judges liveness by heartbeats).
    heartbeat_renewal: AtomicBool,
    /// KCL 3: when the last successful metrics report (heartbeat) started.
    last_heartbeat: Mutex<Option<Instant>>,
    /// KCL 3: the assignment generation (`ag`) seen in the last report.
    assignment_generation: Mutex<Option<u64>>,
    /// KCL 3: a handoff to this worker was still under way at the last discovery: look again
    /// at the next report.
    discovery_due: AtomicBool,
    /// KCL 3: this worker is draining before it stops; it takes no more leases.
    draining: AtomicBool,
    /// KCL 3: the `lut` of this worker's metrics item as last written, so that it can delete
    /// exactly that item when it leaves the fleet.
    last_report_secs: Mutex<Option<u64>>,
    /// The fleet's client version as last read (`None` for a pure 2.x worker, or before
    /// [`LeaseCoordinator::run`] read it).
    client_version: Mutex<Option<ClientVersion>>,
    /// 2.x protocol: the deterministic leader among the lease owners at the last taker run
    /// (it runs the periodic shard sync and the upgrade check).
    deterministic_leader: Mutex<Option<String>>,
}

impl std::fmt::Debug for LeaseCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseCoordinator")
            .field("worker_id", &self.worker_id)
            .field("config", &self.config)
            .field("held", &self.held_keys())
            .finish_non_exhaustive()
    }
}

/// Capacity of the event channel; the worker drains it continuously.
const EVENT_BUFFER: usize = 4096;

impl LeaseCoordinator {
    /// A coordinator for `worker_id` on `store` that may take any lease of the table, and the
    /// receiver of its events.
    pub fn new(
        store: Arc<dyn LeaseStore>,
        worker_id: impl Into<String>,
        config: LeaseConfig,
    ) -> (Arc<LeaseCoordinator>, mpsc::Receiver<LeaseEvent>) {
        LeaseCoordinator::with_filter(store, worker_id, config, Arc::new(|_: &Lease| true))
    }

    /// A coordinator that only takes the leases `filter` accepts (for example those of the
    /// streams this application reads), and the receiver of its events.
    pub fn with_filter(
        store: Arc<dyn LeaseStore>,
        worker_id: impl Into<String>,
        config: LeaseConfig,
        filter: LeaseFilter,
    ) -> (Arc<LeaseCoordinator>, mpsc::Receiver<LeaseEvent>) {
        let (events, receiver) = mpsc::channel(EVENT_BUFFER);
        let worker_id = worker_id.into();
        let config_mode = config.coordination.mode;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        worker_id.hash(&mut hasher);
        let coordinator = LeaseCoordinator {
            store,
            filter,
            tie_break: Mutex::new(StdRng::seed_from_u64(hasher.finish())),
            worker_id,
            config,
            held: Mutex::default(),
            observed: Mutex::default(),
            next_expiry: Mutex::default(),
            events,
            throughput: Mutex::default(),
            mode: Mutex::new(config_mode),
            elector: tokio::sync::Mutex::new(None),
            leader: AtomicBool::new(false),
            heartbeat_renewal: AtomicBool::new(false),
            last_heartbeat: Mutex::new(None),
            assignment_generation: Mutex::new(None),
            discovery_due: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            last_report_secs: Mutex::new(None),
            client_version: Mutex::new(None),
            deterministic_leader: Mutex::new(None),
        };
        (Arc::new(coordinator), receiver)
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The settings.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// The lease store.
    pub fn store(&self) -> &Arc<dyn LeaseStore> {
        &self.store
    }

    fn held_map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Held>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keys of the leases held now.
    pub fn held_keys(&self) -> Vec<String> {
        self.held_map().keys().cloned().collect()
    }

    /// Copies of the leases held now.
    pub async fn held_leases(&self) -> Vec<Lease> {
        let held: Vec<Arc<Held>> = self.held_map().values().cloned().collect();
        let mut leases = Vec::with_capacity(held.len());
        for entry in held {
            leases.push(entry.lease.lock().await.clone());
        }
        leases
    }

    /// Keeps this worker's leases until `cancel` fires: the KCL 3 protocol or the 2.x taker,
    /// as the table's migration state says (see the module docs). Does not release leases:
    /// call [`LeaseCoordinator::release_all`] after the final checkpoints.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        if ClientVersion::initial(self.config.coordination.mode).is_none() {
            self.set_mode(CoordinationMode::Kcl2);
            self.run_kcl2(&cancel, None).await;
            return;
        }
        let mut previous: Option<ClientVersion> = None;
        loop {
            let Some(version) = self.settle_version(&cancel).await else {
                return;
            };
            if let Some(previous) = previous {
                tracing::info!(worker = %self.worker_id, from = %previous, to = %version, "the fleet's client version changed: switching protocol");
            }
            previous = Some(version);
            let protocol = version.protocol();
            self.set_mode(protocol);
            let next = match protocol {
                CoordinationMode::Kcl2 => self.run_kcl2(&cancel, Some(version)).await,
                _ => self.run_kcl3(&cancel, version).await,
            };
            if next.is_none() || cancel.is_cancelled() {
                return;
            }
            if protocol != CoordinationMode::Kcl2 {
                self.leave_kcl3().await;
            }
        }
    }

    fn set_mode(&self, mode: CoordinationMode) {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
    }

    /// The protocol coordination runs on: the configured one, unless the table's migration
    /// state says otherwise (then known once [`LeaseCoordinator::run`] started).
    pub fn coordination_mode(&self) -> CoordinationMode {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fleet's client version (`cv` of the migration state) as this worker last read it;
    /// `None` for a worker configured for pure 2.x, or before [`LeaseCoordinator::run`] read it.
    pub fn client_version(&self) -> Option<ClientVersion> {
        *self
            .client_version
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this worker is the fleet's leader: under KCL 3 the holder of the leader lock,
    /// under 2.x the deterministic leader of the lease owners (which runs the periodic shard
    /// sync), as of its last election step or taker run.
    pub fn is_leader(&self) -> bool {
        if self.coordination_mode() == CoordinationMode::Kcl2 {
            return self
                .deterministic_leader
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_deref()
                == Some(self.worker_id.as_str());
        }
        self.leader.load(Ordering::Relaxed)
    }

    /// Whether this worker should run the fleet's periodic table-wide chores (shard sync,
    /// cleanup of former streams): the leader, or any worker while the fleet has none yet (a
    /// fresh table whose leases no worker owns).
    pub fn runs_fleet_chores(&self) -> bool {
        if self.coordination_mode() == CoordinationMode::Kcl2 {
            let leader = self
                .deterministic_leader
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            return leader
                .as_deref()
                .is_none_or(|leader| leader == self.worker_id.as_str());
        }
        self.is_leader()
    }

    /// Counts `bytes` delivered to the processor of the held lease `lease_key`: its
    /// throughput (`throughputKBps`) is written with its next renewal or checkpoint.
    pub fn record_delivered(&self, lease_key: &str, bytes: u64) {
        self.throughput
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(lease_key, bytes);
    }

    fn current_kbps(&self, lease_key: &str) -> Option<f64> {
        self.throughput
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .kbps(lease_key, self.config.renew_interval())
    }

    /// Reads the table's migration state and settles the version this worker runs: the
    /// recorded one (a fleet is never switched behind its back), the configured mode's when
    /// none is recorded (written, conditional on there being none), and `3X` for a worker
    /// configured for KCL 3 that finds `3X_WITH_ROLLBACK` (it ends the migration, as Java's).
    /// Retries store errors; `None` when cancelled first.
    async fn settle_version(&self, cancel: &CancellationToken) -> Option<ClientVersion> {
        loop {
            match self.read_version().await {
                Ok(Some(version)) => {
                    *self
                        .client_version
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(version);
                    if version.protocol() == CoordinationMode::Kcl2 {
                        tracing::warn!(worker = %self.worker_id, client_version = %version, "the table's migration state says the fleet runs KCL 2.x: running the 2.x protocol until it is upgraded");
                    }
                    return Some(version);
                }
                // A conditional write lost a race with another worker: read what it wrote.
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(worker = %self.worker_id, error = %err, "reading the migration state failed; trying again");
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep(self.config.renew_interval()) => {}
            }
        }
    }

    /// One read of the migration state, settled as [`LeaseCoordinator::settle_version`]
    /// describes. `Ok(None)`: a conditional write lost a race; read again.
    async fn read_version(&self) -> Result<Option<ClientVersion>> {
        let configured = self.config.coordination.mode;
        let Some(state) = self.store.get_migration_state().await? else {
            let version = ClientVersion::initial(configured).unwrap_or(ClientVersion::Kcl2x);
            let state = next_migration_state(None, version, &self.worker_id, wall_clock_millis());
            let written = self.store.put_migration_state(&state, None).await?;
            return Ok(written.then_some(version));
        };
        let Some(version) = ClientVersion::parse(&state.client_version) else {
            tracing::warn!(worker = %self.worker_id, client_version = %state.client_version, "unknown client version in the migration state; running KCL 3");
            return Ok(Some(ClientVersion::Kcl3x));
        };
        let Some(settled) = version.settled_by(configured) else {
            return Ok(Some(version));
        };
        let next =
            next_migration_state(Some(&state), settled, &self.worker_id, wall_clock_millis());
        let written = self
            .store
            .put_migration_state(&next, Some(version.as_str()))
            .await?;
        if written {
            tracing::info!(worker = %self.worker_id, from = %version, to = %settled, "this worker is configured for KCL 3: the migration is over, no rollback from here");
        }
        Ok(written.then_some(settled))
    }

    /// At a migration check: the version now recorded, when it differs from `current`.
    /// Store errors are logged and read as "unchanged" (the next check tries again).
    async fn version_change(&self, current: ClientVersion) -> Option<ClientVersion> {
        let limit = self.config.renew_interval();
        match bounded(limit, self.read_version()).await {
            Ok(Some(version)) if version != current => {
                *self
                    .client_version
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(version);
                tracing::info!(worker = %self.worker_id, from = %current, to = %version, "the fleet's client version changed");
                Some(version)
            }
            Ok(_) => None,
            Err(err) => {
                tracing::warn!(worker = %self.worker_id, error = %err, "reading the migration state failed");
                None
            }
        }
    }

    /// Leaves the KCL 3 protocol for 2.x (a rollback): gives the leader lock up and goes back
    /// to per-lease renewals, which the 2.x run loop starts with at once.
    async fn leave_kcl3(&self) {
        if let Some(mut elector) = self.elector.lock().await.take() {
            if let Err(err) = elector.release().await {
                tracing::warn!(worker = %self.worker_id, error = %err, "releasing the leader lock failed");
            }
        }
        self.leader.store(false, Ordering::Relaxed);
        self.heartbeat_renewal.store(false, Ordering::Relaxed);
    }

    /// The upgrade check of the deterministic leader in `UPGRADE_FROM_2X`: whether the owner
    /// index is ACTIVE and every lease owner reports metrics. Logs what holds the fleet back.
    async fn fleet_ready_for_kcl3(&self) -> Result<bool> {
        if !self.store.owner_index_ready().await? {
            tracing::info!(worker = %self.worker_id, "upgrade to KCL 3 waits: the owner index is not ACTIVE yet");
            return Ok(false);
        }
        let snapshot = self.store.scan_table().await?;
        let now_secs = wall_clock_millis() / 1000;
        let blockers = upgrade_blockers(
            &snapshot.leases,
            &snapshot.workers,
            now_secs,
            self.config.coordination.stale_worker_after,
        );
        if !blockers.is_empty() {
            tracing::info!(worker = %self.worker_id, ?blockers, "upgrade to KCL 3 waits: these lease owners report no metrics (KCL 2.x workers, or gone)");
        }
        Ok(blockers.is_empty())
    }

    /// Flips an upgraded fleet to `3X_WITH_ROLLBACK`, conditional on `UPGRADE_FROM_2X` still
    /// being recorded. Returns whether this worker wrote it.
    async fn flip_to_kcl3(&self) -> Result<bool> {
        let Some(state) = self.store.get_migration_state().await? else {
            return Ok(false);
        };
        if ClientVersion::parse(&state.client_version) != Some(ClientVersion::UpgradeFrom2x) {
            return Ok(false);
        }
        let next = next_migration_state(
            Some(&state),
            ClientVersion::Kcl3xWithRollback,
            &self.worker_id,
            wall_clock_millis(),
        );
        let written = self
            .store
            .put_migration_state(&next, Some(ClientVersion::UpgradeFrom2x.as_str()))
            .await?;
        if written {
            tracing::info!(worker = %self.worker_id, "every lease owner reported metrics for the stabilisation time: the fleet moves to KCL 3 (rollback possible)");
        }
        Ok(written)
    }

    /// The 2.x protocol: renewer and taker; during an upgrade also metrics reports and, on the
    /// deterministic leader, the upgrade check. Returns the new version when the migration
    /// state moves the fleet to KCL 3, `None` when cancelled.
    async fn run_kcl2(
        &self,
        cancel: &CancellationToken,
        mut version: Option<ClientVersion>,
    ) -> Option<ClientVersion> {
        let coordination = &self.config.coordination;
        let mut renew = tokio::time::interval(self.config.renew_interval());
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_take = Instant::now();
        let mut sampler = WorkerMetricsSampler::new(
            coordination.persisted_metric_values,
            coordination.disable_worker_metrics,
        );
        let started = Instant::now();
        let mut next_report = started;
        let mut next_capture = started;
        let mut next_migration_check = started + coordination.migration_check_interval;
        // When the upgrade check first found the fleet ready, without a break since.
        let mut ready_since: Option<Instant> = None;
        loop {
            let upgrading = version == Some(ClientVersion::UpgradeFrom2x);
            tokio::select! {
                () = cancel.cancelled() => return None,
                _ = renew.tick() => self.renew_all().await,
                () = tokio::time::sleep_until(next_take) => {
                    if let Err(err) = self.take_leases().await {
                        tracing::warn!(worker = %self.worker_id, error = %err, "taking leases failed");
                    }
                    next_take = self.next_take_at(Instant::now());
                }
                () = tokio::time::sleep_until(next_capture), if upgrading => {
                    sampler.sample();
                    next_capture = Instant::now() + coordination.metrics_capture_interval;
                }
                () = tokio::time::sleep_until(next_report), if upgrading => {
                    if let Err(err) = bounded(self.config.renew_interval(), self.report_metrics(&mut sampler)).await {
                        tracing::warn!(worker = %self.worker_id, error = %err, "reporting worker metrics failed");
                    }
                    next_report = Instant::now() + coordination.upgrade_report_interval;
                }
                () = tokio::time::sleep_until(next_migration_check), if version.is_some() => {
                    next_migration_check = Instant::now() + coordination.migration_check_interval;
                    let current = version.expect("checked only with a version");
                    if let Some(changed) = self.version_change(current).await {
                        if changed.protocol() != CoordinationMode::Kcl2 {
                            return Some(changed);
                        }
                        version = Some(changed);
                        ready_since = None;
                        continue;
                    }
                    if !upgrading || !self.is_leader() {
                        ready_since = None;
                        continue;
                    }
                    match bounded(self.config.failover_time, self.fleet_ready_for_kcl3()).await {
                        Ok(true) => {
                            let since = *ready_since.get_or_insert_with(Instant::now);
                            if since.elapsed() >= coordination.upgrade_stabilisation {
                                match self.flip_to_kcl3().await {
                                    Ok(true) => {
                                        *self.client_version.lock().unwrap_or_else(|p| p.into_inner()) = Some(ClientVersion::Kcl3xWithRollback);
                                        return Some(ClientVersion::Kcl3xWithRollback);
                                    }
                                    // Another worker changed the state: the next check follows it.
                                    Ok(false) => next_migration_check = Instant::now(),
                                    Err(err) => tracing::warn!(worker = %self.worker_id, error = %err, "writing the migration state failed"),
                                }
                            } else {
                                tracing::info!(worker = %self.worker_id, ready_for = ?since.elapsed(), needed = ?coordination.upgrade_stabilisation, "the fleet is ready for KCL 3; waiting for it to stay so");
                            }
                        }
                        Ok(false) => ready_since = None,
                        Err(err) => {
                            tracing::warn!(worker = %self.worker_id, error = %err, "the upgrade check failed");
                            ready_since = None;
                        }
                    }
                }
            }
        }
    }

    /// The KCL 3 protocol: renewals (or the heartbeat's self-fencing), metrics reports,
    /// discovery, the leader election, and the leader's (or successor's) steps. Returns the
    /// new version when the migration state rolls the fleet back to 2.x, `None` when
    /// cancelled.
    async fn run_kcl3(
        &self,
        cancel: &CancellationToken,
        mut version: ClientVersion,
    ) -> Option<ClientVersion> {
        let coordination = self.config.coordination.clone();
        let mut elector = LeaderElector::new(
            Arc::clone(&self.store),
            self.worker_id.clone(),
            &self.config,
        );
        elector.set_heartbeat_liveness(version.allows_heartbeat_liveness());
        *self.elector.lock().await = Some(elector);
        let mut next_migration_check = Instant::now() + coordination.migration_check_interval;
        let mut manager = LeaseAssignmentManager::new(
            Arc::clone(&self.store),
            self.worker_id.clone(),
            self.config.clone(),
            Arc::clone(&self.filter),
        );
        let mut sampler = WorkerMetricsSampler::new(
            coordination.persisted_metric_values,
            coordination.disable_worker_metrics,
        );
        let started = Instant::now();
        let interval = |period: Duration| {
            let mut interval = tokio::time::interval(period.max(Duration::from_millis(1)));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        };
        let mut renew = interval(self.config.renew_interval());
        let mut report = interval(coordination.report_interval);
        let mut capture = interval(coordination.metrics_capture_interval);
        // The first report's generation counts as new, so discovery runs right after it; this
        // is the fallback when reports fail.
        let mut next_discovery = started + coordination.discovery_interval;
        let mut next_manager_step = started;
        let mut role = LeaderRole::Follower;
        let call_limit = self.config.renew_interval();
        let mut earlier_handoffs_ended = false;
        loop {
            // On every turn, not only at the renewal tick: when every step times out in a
            // partition, the ready branches take turns at random and the tick may wait long.
            self.fence_without_heartbeat(started).await;
            let election_at = match self.elector.lock().await.as_ref() {
                Some(elector) => elector.next_step_at(),
                None => return None,
            };
            let stepping = role != LeaderRole::Follower;
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = tokio::time::sleep_until(next_migration_check), if version.is_watched() => {
                    next_migration_check = Instant::now() + coordination.migration_check_interval;
                    if let Some(changed) = self.version_change(version).await {
                        if changed.protocol() == CoordinationMode::Kcl2 {
                            return Some(changed);
                        }
                        version = changed;
                        if let Some(elector) = self.elector.lock().await.as_mut() {
                            elector.set_heartbeat_liveness(version.allows_heartbeat_liveness());
                        }
                    }
                }
                _ = renew.tick() => self.keep_leases(started).await,
                _ = capture.tick() => sampler.sample(),
                // Every store call of this loop is bounded: a partition can leave a call
                // hanging, and while one hangs the loop would not get to `keep_leases`, whose
                // self-fence must drop the leases when the heartbeat stops.
                _ = report.tick() => match bounded(call_limit, self.report_metrics(&mut sampler)).await {
                    Ok(true) => {
                        next_discovery = Instant::now();
                        // The generation also moves when the leader names this worker its
                        // successor: read the lock now rather than at the next check.
                        if let Some(elector) = self.elector.lock().await.as_mut() {
                            if role == LeaderRole::Follower {
                                elector.step_soon();
                            }
                        }
                    }
                    Ok(false) => {}
                    Err(err) => tracing::warn!(worker = %self.worker_id, error = %err, "reporting worker metrics failed"),
                },
                () = tokio::time::sleep_until(next_discovery) => {
                    match bounded(call_limit, self.discover_leases()).await {
                        Ok(_) if !earlier_handoffs_ended => {
                            match bounded(self.config.failover_time, self.end_handoffs_of_an_earlier_run()).await {
                                Ok(()) => earlier_handoffs_ended = true,
                                Err(err) => tracing::warn!(worker = %self.worker_id, error = %err, "ending the handoffs of an earlier run failed; tried again after the next discovery"),
                            }
                        }
                        Ok(_) => {}
                        Err(err) => tracing::warn!(worker = %self.worker_id, error = %err, "looking up assigned leases failed"),
                    }
                    next_discovery = Instant::now() + coordination.discovery_interval;
                }
                () = tokio::time::sleep_until(election_at) => {
                    let new_role = match tokio::time::timeout(call_limit, self.election_step(&mut manager)).await {
                        Ok(role) => role,
                        Err(_) => {
                            tracing::warn!(worker = %self.worker_id, "the leader election step timed out");
                            role
                        }
                    };
                    if role == LeaderRole::Leader && new_role != LeaderRole::Leader {
                        manager.reset();
                    }
                    if role == LeaderRole::Follower && new_role != LeaderRole::Follower {
                        next_manager_step = Instant::now();
                    }
                    role = new_role;
                }
                () = tokio::time::sleep_until(next_manager_step), if stepping => {
                    let result = if role == LeaderRole::Leader {
                        bounded(self.config.failover_time / 2, manager.tick_as_leader()).await
                    } else {
                        let fleet = self
                            .elector
                            .lock()
                            .await
                            .as_ref()
                            .and_then(|elector| elector.lock().map(|lock| lock.fleet.clone()))
                            .unwrap_or_default();
                        bounded(call_limit, manager.tick_as_successor(&fleet)).await
                    };
                    if let Err(err) = result {
                        tracing::warn!(worker = %self.worker_id, error = %err, leader = role == LeaderRole::Leader, "lease assignment step failed");
                    }
                    next_manager_step = Instant::now() + coordination.liveness_check_interval;
                    // The successor named in the lock died or left: name another at once
                    // rather than at the next heartbeat of the lock.
                    if role == LeaderRole::Leader {
                        if let Some(elector) = self.elector.lock().await.as_mut() {
                            let named = elector.lock().and_then(|lock| lock.successor.clone());
                            if named != Self::successor_among(&self.worker_id, &manager) {
                                elector.step_soon();
                            }
                        }
                    }
                }
            }
        }
    }

    /// One step of the leader election; notes whether this worker leads and whether the
    /// leader judges liveness by heartbeats.
    async fn election_step(&self, manager: &mut LeaseAssignmentManager) -> LeaderRole {
        let mut guard = self.elector.lock().await;
        let Some(elector) = guard.as_mut() else {
            return LeaderRole::Follower;
        };
        let successor = Self::successor_among(&self.worker_id, manager);
        elector.set_fleet(manager.live_workers());
        let role = match elector.step(successor).await {
            Ok(role) => role,
            Err(err) => {
                tracing::warn!(worker = %self.worker_id, error = %err, "reading the leader lock failed");
                elector.role()
            }
        };
        // A follower reads the leader's heartbeat with the lock (the successor watches it
        // anyway): should it take the lock over, it knows how long the leader has been silent.
        if role == LeaderRole::Follower {
            if let Some(leader) = elector.lock().map(|lock| lock.owner.clone()) {
                if leader != self.worker_id {
                    if let Ok(Some(metrics)) = self
                        .store
                        .get_worker_metrics(std::slice::from_ref(&leader))
                        .await
                        .map(|found| found.into_iter().next())
                    {
                        manager.observe_leader(metrics);
                    }
                }
            }
        }
        self.leader
            .store(role == LeaderRole::Leader, Ordering::Relaxed);
        let by_heartbeat = elector
            .lock()
            .is_some_and(|lock| lock.liveness_by_heartbeat);
        if self.heartbeat_renewal.swap(by_heartbeat, Ordering::Relaxed) != by_heartbeat {
            tracing::info!(worker = %self.worker_id, by_heartbeat, "leases are kept alive {}", if by_heartbeat { "by this worker's heartbeat" } else { "by per-lease renewals" });
            // Renewals take over from the heartbeat without refreshing anything: every
            // successful report already moved each lease's last renewal, so a worker that
            // comes back from a partition to find a new leader still counts its leases from
            // its last heartbeat, and stops processing those that expired meanwhile.
        }
        role
    }

    /// The successor a leader names: a live worker other than itself, the same one while it
    /// lives. Computed for a worker about to take the lock over too, so a new leader names
    /// its successor in the lock it writes.
    fn successor_among(worker_id: &str, manager: &LeaseAssignmentManager) -> Option<String> {
        manager
            .live_workers()
            .into_iter()
            .filter(|worker| worker != worker_id)
            .min()
    }

    /// At every renew interval in KCL 3 mode: per-lease renewals, or, while the leader judges
    /// liveness by heartbeats, the heartbeat's self-fencing (no successful report for a
    /// failover time: every lease is dropped, the leader has judged this worker dead) and
    /// the end of handoffs that took too long.
    async fn keep_leases(&self, started: Instant) {
        if !self.heartbeat_renewal.load(Ordering::Relaxed) {
            return self.renew_all().await;
        }
        if self.fence_without_heartbeat(started).await {
            return;
        }
        let held: Vec<(String, Arc<Held>)> = self
            .held_map()
            .iter()
            .filter(|(_, entry)| {
                entry
                    .handoff_requested()
                    .is_some_and(|since| since.elapsed() > self.config.graceful_handoff_timeout)
            })
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        for (key, entry) in held {
            let lease = entry.lease.lock().await.clone();
            tracing::warn!(worker = %self.worker_id, lease = %key, "the handoff took longer than allowed; let go without waiting for the processor");
            match self.store.complete_handoff(&lease).await {
                Ok(true) => self.notify_new_owner(&lease).await,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(worker = %self.worker_id, lease = %key, error = %err, "completing a handoff failed")
                }
            }
            if self.held_map().remove(&key).is_some() {
                let _ = self.events.send(LeaseEvent::Lost(key)).await;
            }
        }
    }

    /// KCL 3 self-fence: drops every held lease once no heartbeat has succeeded for the
    /// failover time (counted from `started` before the first). Returns whether it did.
    async fn fence_without_heartbeat(&self, started: Instant) -> bool {
        if !self.heartbeat_renewal.load(Ordering::Relaxed) {
            return false;
        }
        let last = self
            .last_heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(started);
        if last.elapsed() <= self.config.failover_time {
            return false;
        }
        for key in self.held_keys() {
            self.lost(&key, "heartbeat lost").await;
        }
        true
    }

    /// Reports this worker's metrics (its heartbeat). Returns whether discovery should run
    /// now: the leader gave this worker leases since the last report (`ag` changed), or a
    /// handoff to it was still under way at the last discovery.
    ///
    /// # Errors
    /// Store errors.
    async fn report_metrics(&self, sampler: &mut WorkerMetricsSampler) -> Result<bool> {
        let start = Instant::now();
        let (stats, operating_range) = sampler.report();
        let mut metrics = WorkerMetrics::new(self.worker_id.clone());
        metrics.last_update_secs = wall_clock_millis() / 1000;
        metrics.stats = stats;
        metrics.operating_range = operating_range;
        let stored = self.store.report_worker_metrics(&metrics).await?;
        *self
            .last_report_secs
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(stored.last_update_secs);
        *self
            .last_heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(start);
        if self.heartbeat_renewal.load(Ordering::Relaxed) {
            // Only a lease still alive when this heartbeat set out is kept alive by it: after
            // a gap of a failover time (a partition, a pause) it may be another worker's
            // already. Such a lease is dropped; discovery takes it up again if the table
            // still names this worker.
            let mut expired = Vec::new();
            for (key, entry) in self.held_map().iter() {
                let mut last = entry.last_renewed.lock().unwrap_or_else(|p| p.into_inner());
                if start.saturating_duration_since(*last) <= self.config.failover_time {
                    *last = (*last).max(start);
                } else {
                    expired.push(key.clone());
                }
            }
            for key in &expired {
                self.lost(key, "expired before this heartbeat").await;
            }
            if !expired.is_empty() {
                self.discovery_due.store(true, Ordering::Relaxed);
            }
        }
        let mut generation = self
            .assignment_generation
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let changed = *generation != Some(stored.assignment_generation);
        *generation = Some(stored.assignment_generation);
        Ok(changed | self.discovery_due.swap(false, Ordering::Relaxed))
    }

    /// KCL 3 discovery: the leases the owner index lists under this worker's name. A lease not
    /// held yet is read (consistently) and taken up when it is this worker's with no handoff
    /// still under way. A held lease the index no longer lists is read too: another worker's
    /// now (lost), or being handed off from this worker (the handoff is adopted, as a renewal
    /// would). Returns the keys taken up.
    ///
    /// # Errors
    /// Store errors.
    pub async fn discover_leases(&self) -> Result<Vec<String>> {
        let listed: HashSet<String> = self
            .store
            .lease_keys_of_owner(&self.worker_id)
            .await?
            .into_iter()
            .collect();
        let held: BTreeMap<String, Arc<Held>> = self.held_map().clone();
        let mut gained = Vec::new();
        for key in listed.iter().filter(|key| !held.contains_key(*key)) {
            let Some(lease) = self.store.get_lease(key).await? else {
                continue;
            };
            if lease.lease_owner.as_deref() != Some(self.worker_id.as_str())
                || !(self.filter)(&lease)
            {
                continue;
            }
            if lease.checkpoint_owner.is_some() {
                // Handed to this worker, but its old owner is still checkpointing.
                self.discovery_due.store(true, Ordering::Relaxed);
                continue;
            }
            tracing::info!(worker = %self.worker_id, lease = %key, "lease assigned to this worker");
            self.gain(lease).await;
            gained.push(key.clone());
        }
        for (key, entry) in held.iter().filter(|(key, _)| !listed.contains(*key)) {
            let Some(current) = self.store.get_lease(key).await? else {
                self.lost(key, "the lease was deleted").await;
                continue;
            };
            if current.lease_owner.as_deref() == Some(self.worker_id.as_str()) {
                continue;
            }
            let mut lease = entry.lease.lock().await;
            if entry.handoff_requested().is_some()
                && current.checkpoint_owner.as_deref() == Some(self.worker_id.as_str())
            {
                continue;
            }
            if self.config.graceful_handoff && is_handoff_from(&self.worker_id, &lease, &current) {
                *lease = current;
                *entry
                    .handoff_requested
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                drop(lease);
                tracing::info!(worker = %self.worker_id, lease = %key, "the leader moves the lease; handing it off");
                let _ = self
                    .events
                    .send(LeaseEvent::HandoffRequested(key.clone()))
                    .await;
                continue;
            }
            drop(lease);
            self.lost(key, "assigned to another worker").await;
        }
        Ok(gained)
    }

    async fn gain(&self, lease: Lease) {
        let key = lease.lease_key.clone();
        self.throughput
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(&key, 0);
        self.held_map()
            .insert(key, Arc::new(Held::new(lease.clone())));
        let _ = self.events.send(LeaseEvent::Gained(Box::new(lease))).await;
    }

    /// After a handoff completed, in KCL 3 mode: tells the new owner at once (bumps its
    /// assignment generation), so it starts within one report interval of the checkpoint.
    async fn notify_new_owner(&self, lease: &Lease) {
        if self.coordination_mode() != CoordinationMode::Kcl3 {
            return;
        }
        if let Some(owner) = lease
            .lease_owner
            .as_deref()
            .filter(|owner| *owner != self.worker_id)
        {
            if let Err(err) = self.store.notify_assignment(owner).await {
                tracing::warn!(worker = %self.worker_id, lease = %lease.lease_key, to = owner, error = %err, "telling the new owner failed; it finds the lease at its next discovery");
            }
        }
    }

    /// When the taker should run next, after a run at `now`: one taker period later, or as soon
    /// as a silent lease of another worker expires if that is sooner.
    pub fn next_take_at(&self, now: Instant) -> Instant {
        let regular = now + self.config.take_interval();
        match *self.next_expiry.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(expiry) if expiry < regular => expiry.max(now),
            _ => regular,
        }
    }

    async fn lost(&self, lease_key: &str, why: &str) {
        self.throughput
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget(lease_key);
        if self.held_map().remove(lease_key).is_some() {
            tracing::info!(worker = %self.worker_id, lease = lease_key, why, "lease lost");
            let _ = self
                .events
                .send(LeaseEvent::Lost(lease_key.to_owned()))
                .await;
        }
    }

    /// Renews every held lease once, with bounded concurrency.
    pub async fn renew_all(&self) {
        let held: Vec<(String, Arc<Held>)> = self
            .held_map()
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        let outcomes: Vec<(String, Renewal)> = futures::stream::iter(held)
            .map(|(key, entry)| async move {
                // A store call that hangs (a partition leaves connections open and silent)
                // must not keep the lease past its expiry: by then another worker may own it.
                let last = *entry.last_renewed.lock().unwrap_or_else(|p| p.into_inner());
                let expiry = last + self.config.failover_time;
                let outcome = tokio::time::timeout_at(expiry, self.renew(&key, &entry))
                    .await
                    .unwrap_or(Renewal::Lost("not renewed within the failover time"));
                (key, outcome)
            })
            .buffer_unordered(self.config.renew_concurrency.max(1))
            .collect()
            .await;
        for (key, outcome) in outcomes {
            match outcome {
                Renewal::Renewed | Renewal::Retrying => {}
                Renewal::Lost(why) => self.lost(&key, why).await,
                Renewal::HandoffRequested => {
                    tracing::info!(worker = %self.worker_id, lease = %key, "another worker asked for the lease; handing it off");
                    let _ = self.events.send(LeaseEvent::HandoffRequested(key)).await;
                }
                Renewal::HandoffTimedOut => {
                    tracing::warn!(worker = %self.worker_id, lease = %key, "the handoff took longer than allowed; let go without waiting for the processor");
                    if self.held_map().remove(&key).is_some() {
                        let _ = self.events.send(LeaseEvent::Lost(key)).await;
                    }
                }
            }
        }
    }

    async fn renew(&self, key: &str, entry: &Held) -> Renewal {
        let mut lease = entry.lease.lock().await;
        if entry
            .handoff_requested()
            .is_some_and(|since| since.elapsed() > self.config.graceful_handoff_timeout)
        {
            return match self.store.complete_handoff(&lease).await {
                Ok(_) => Renewal::HandoffTimedOut,
                Err(err) => {
                    tracing::warn!(worker = %self.worker_id, lease = %key, error = %err, "completing a handoff failed");
                    Renewal::HandoffTimedOut
                }
            };
        }
        let last = *entry.last_renewed.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() > self.config.failover_time {
            return Renewal::Lost("not renewed within the failover time");
        }
        if let Some(kbps) = self.current_kbps(key) {
            lease.throughput_kbps = Some(kbps);
        }
        match self.store.renew_lease(&lease).await {
            Ok(true) => {
                lease.lease_counter += 1;
                *entry.last_renewed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                Renewal::Renewed
            }
            Ok(false) if self.config.graceful_handoff && entry.handoff_requested().is_none() => {
                self.adopt_handoff(key, entry, &mut lease).await
            }
            Ok(false) => Renewal::Lost("another worker changed it"),
            Err(err) => {
                // Keep trying until the failover time runs out.
                tracing::warn!(worker = %self.worker_id, lease = %key, error = %err, "renewal failed");
                Renewal::Retrying
            }
        }
    }

    /// After a failed renewal: if the table shows a handoff of this lease from this worker
    /// (this worker is its `checkpointOwner`, the counter unchanged), take it on: keep the
    /// table's copy, renew it, and report the request.
    async fn adopt_handoff(&self, key: &str, entry: &Held, lease: &mut Lease) -> Renewal {
        let current = match self.store.get_lease(key).await {
            Ok(Some(current)) => current,
            Ok(None) => return Renewal::Lost("the lease was deleted"),
            Err(err) => {
                tracing::warn!(worker = %self.worker_id, lease = %key, error = %err, "reading a changed lease failed");
                return Renewal::Retrying;
            }
        };
        if !is_handoff_from(&self.worker_id, lease, &current) {
            return Renewal::Lost("another worker changed it");
        }
        *lease = current;
        *entry
            .handoff_requested
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        if let Ok(true) = self.store.renew_lease(lease).await {
            lease.lease_counter += 1;
            *entry.last_renewed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
        Renewal::HandoffRequested
    }

    /// Whether this worker holds `lease_key` and renewed it within the failover time. A lease
    /// not renewed for that long may belong to another worker already (this one was paused, or
    /// cut off from the table) even before the renewer has noticed: process nothing more of it.
    pub fn holds_unexpired(&self, lease_key: &str) -> bool {
        self.held_map().get(lease_key).is_some_and(|entry| {
            entry
                .last_renewed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed()
                <= self.config.failover_time
        })
    }

    /// Ends a handoff this worker was asked for (see [`LeaseEvent::HandoffRequested`]), once
    /// its processor has stopped: the lease is then the other worker's alone. Returns whether
    /// the table took it (`false`: the handoff had already been ended by a taker).
    ///
    /// # Errors
    /// Store errors.
    pub async fn complete_handoff(&self, lease_key: &str) -> Result<bool> {
        let Some(entry) = self.held_map().remove(lease_key) else {
            return Ok(false);
        };
        // A copy: no lock of the lease is held across table calls, which may hang.
        let lease = entry.lease.lock().await.clone();
        let done = self.write_handoff_end(&lease).await?;
        tracing::info!(worker = %self.worker_id, lease = lease_key, done, "handed the lease off");
        if done {
            self.notify_new_owner(&lease).await;
        }
        Ok(done)
    }

    /// Writes the end of a handoff: three attempts, each bounded by the renewal interval, so
    /// all fit in about the failover time. A call that hangs on a connection gone silent must
    /// not leave the new owner waiting until the leader judges the handoff stalled (the
    /// chaos suite saw one hang for longer than a minute). An attempt that landed although
    /// its answer was lost makes the next one find the handoff ended: `Ok(false)`.
    async fn write_handoff_end(&self, lease: &Lease) -> Result<bool> {
        let attempt = self.config.renew_interval();
        let backoff = BackoffConfig {
            initial: Duration::from_millis(100).min(attempt),
            max: Duration::from_millis(200).min(attempt),
            max_attempts: 3,
        };
        retry(&backoff, || {
            bounded(attempt, self.store.complete_handoff(lease))
        })
        .await
    }

    /// Whether this worker was asked to hand the held lease `lease_key` off.
    pub fn handoff_requested(&self, lease_key: &str) -> bool {
        self.held_map()
            .get(lease_key)
            .is_some_and(|entry| entry.handoff_requested().is_some())
    }

    /// One taker run: list the table, then take unowned, expired, or (if none) stolen leases
    /// up to this worker's target. Returns the keys taken.
    ///
    /// # Errors
    /// When the table cannot be listed.
    pub async fn take_leases(&self) -> Result<Vec<String>> {
        let mut leases = self.store.list_leases().await?;
        *self
            .deterministic_leader
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = deterministic_leader(&leases);
        leases.retain(|lease| (self.filter)(lease));
        let now = Instant::now();
        let held_keys: HashSet<String> = self.held_map().keys().cloned().collect();
        let mut expired: Vec<Lease> = Vec::new();
        let mut load: BTreeMap<String, Vec<Lease>> = BTreeMap::new();
        let mut next_expiry: Option<Instant> = None;
        // Handoffs to this worker still under way: counted as held, so it does not ask for more.
        let mut handoffs_to_me = 0;
        {
            let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
            observed.retain(|key, _| leases.iter().any(|l| &l.lease_key == key));
            for lease in &leases {
                let seen = observed.entry(lease.lease_key.clone()).or_insert(Observed {
                    counter: lease.lease_counter,
                    changed_at: now,
                });
                if seen.counter != lease.lease_counter {
                    *seen = Observed {
                        counter: lease.lease_counter,
                        changed_at: now,
                    };
                }
                let stale = now.duration_since(seen.changed_at) > self.config.failover_time;
                let expires = seen.changed_at + self.config.failover_time + self.config.epsilon;
                match &lease.lease_owner {
                    _ if held_keys.contains(&lease.lease_key) => {}
                    // A handoff under way: the old owner is still checkpointing. Left alone
                    // unless it stalls for a whole failover time (then taken like any other).
                    Some(owner) if lease.checkpoint_owner.is_some() && !stale => {
                        next_expiry = Some(next_expiry.map_or(expires, |e| e.min(expires)));
                        if *owner == self.worker_id {
                            handoffs_to_me += 1;
                        } else {
                            load.entry(owner.clone()).or_default().push(lease.clone());
                        }
                    }
                    None => expired.push(lease.clone()),
                    // Our own name on a lease we do not hold: left over from before a restart.
                    Some(owner) if *owner == self.worker_id => expired.push(lease.clone()),
                    Some(_) if stale => expired.push(lease.clone()),
                    Some(owner) => {
                        next_expiry = Some(next_expiry.map_or(expires, |e| e.min(expires)));
                        load.entry(owner.clone()).or_default().push(lease.clone());
                    }
                }
            }
        }
        if handoffs_to_me > 0 {
            // Look again soon: the lease is this worker's to take once the old owner lets go.
            let soon = now + self.config.renew_interval();
            next_expiry = Some(next_expiry.map_or(soon, |e| e.min(soon)));
        }
        *self.next_expiry.lock().unwrap_or_else(|p| p.into_inner()) = next_expiry;
        let mine = held_keys.len() + handoffs_to_me;
        let workers = load.len() + 1;
        let target = leases
            .len()
            .div_ceil(workers)
            .min(self.config.max_leases_for_worker);
        if mine >= target {
            return Ok(Vec::new());
        }
        let needed = target - mine;
        // Only leases of live workers are stolen; expired and unowned ones are simply taken.
        let stealing = expired.is_empty();
        let candidates: Vec<Lease> = if !stealing {
            // Unowned first, then the longest-silent; random among equals so workers starting
            // together do not all race for the same lease.
            expired.shuffle(&mut *self.tie_break.lock().unwrap_or_else(|p| p.into_inner()));
            let observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
            expired.sort_by_key(|l| {
                (
                    l.lease_owner.is_some(),
                    observed.get(&l.lease_key).map(|o| o.changed_at),
                )
            });
            expired.into_iter().take(needed).collect()
        } else {
            // Nothing is free: steal from the most loaded worker, only what brings it down
            // towards the target (or one lease when it sits at the target and we are two short,
            // which is how a fleet with leases % workers != 0 settles within one of the target).
            let most_loaded = load.values().max_by_key(|leases| leases.len());
            match most_loaded {
                Some(victim) => {
                    let over = victim.len().saturating_sub(target);
                    let steal = if over > 0 {
                        needed.min(over)
                    } else if victim.len() == target && needed > 1 {
                        1
                    } else {
                        0
                    }
                    .min(self.config.max_leases_to_steal_at_one_time);
                    let mut victim = victim.clone();
                    victim.shuffle(&mut *self.tie_break.lock().unwrap_or_else(|p| p.into_inner()));
                    victim.into_iter().take(steal).collect()
                }
                None => Vec::new(),
            }
        };
        let mut taken = Vec::new();
        for lease in candidates {
            // A lease a live worker is processing is asked for, not taken: it checkpoints and
            // lets go, and this worker starts exactly there.
            if stealing && self.config.graceful_handoff {
                match self.store.start_handoff(&lease, &self.worker_id).await {
                    Ok(true) => {
                        tracing::info!(worker = %self.worker_id, lease = %lease.lease_key, from = ?lease.lease_owner, "asked for a lease (graceful handoff)");
                        let soon = Instant::now() + self.config.renew_interval();
                        let mut next = self.next_expiry.lock().unwrap_or_else(|p| p.into_inner());
                        *next = Some(next.map_or(soon, |e| e.min(soon)));
                    }
                    Ok(false) => {}
                    Err(err) => {
                        tracing::warn!(worker = %self.worker_id, lease = %lease.lease_key, error = %err, "asking for a lease failed")
                    }
                }
                continue;
            }
            match self.store.take_lease(&lease, &self.worker_id).await {
                Ok(true) => {
                    let lease = self.as_taken(lease);
                    tracing::info!(worker = %self.worker_id, lease = %lease.lease_key, "lease taken");
                    taken.push(lease.lease_key.clone());
                    self.gain(lease).await;
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(worker = %self.worker_id, lease = %lease.lease_key, error = %err, "taking a lease failed")
                }
            }
        }
        Ok(taken)
    }

    /// `lease` as a successful [`LeaseStore::take_lease`] by this worker left it.
    fn as_taken(&self, mut lease: Lease) -> Lease {
        if lease.lease_owner.as_deref() != Some(self.worker_id.as_str()) {
            lease.owner_switches_since_checkpoint += 1;
        }
        lease.lease_owner = Some(self.worker_id.clone());
        lease.lease_counter += 1;
        lease
    }

    /// Takes `child`, the unowned lease of a child of a shard this worker processed to its
    /// end, when [`LeaseConfig::adopt_child_leases`] is set: the child starts now rather than
    /// at the next taker run or assignment round. A lease someone owns (or takes first: the
    /// take is conditional) is left alone, as is every lease once this worker holds
    /// `max_leases_for_worker` or is draining. Returns whether this worker took it.
    ///
    /// # Errors
    /// Store errors taking the lease.
    pub async fn adopt_child(&self, child: Lease) -> Result<bool> {
        let refused = !self.config.adopt_child_leases
            || self.draining.load(Ordering::Relaxed)
            || child.lease_owner.is_some()
            || !(self.filter)(&child)
            || {
                let held = self.held_map();
                held.len() >= self.config.max_leases_for_worker
                    || held.contains_key(&child.lease_key)
            };
        if refused || !self.store.take_lease(&child, &self.worker_id).await? {
            return Ok(false);
        }
        let child = self.as_taken(child);
        tracing::info!(worker = %self.worker_id, lease = %child.lease_key, "took the lease of a child of a finished shard");
        self.gain(child).await;
        Ok(true)
    }

    /// Writes a checkpoint to a held lease, fenced by its counter and owner. `Ok(false)` means
    /// the lease was lost: another worker took it and nothing was written, or the write did not
    /// complete before the lease expired (the lease is dropped; the write may still land while
    /// no other worker has taken the lease).
    ///
    /// # Cancel safety
    /// The write and the update of this worker's copy of the lease run to completion in a task
    /// of their own, even when the caller stops waiting (a processor call abandoned as hung):
    /// a write that reached the table is never forgotten, which would leave the copy's counter
    /// behind and lose the lease at its next renewal.
    ///
    /// # Errors
    /// [`LeaseError::NotHeld`] for a lease this worker does not hold; store errors.
    pub async fn checkpoint(&self, lease_key: &str, update: &CheckpointUpdate) -> Result<bool> {
        let entry = self
            .held_map()
            .get(lease_key)
            .cloned()
            .ok_or_else(|| LeaseError::NotHeld(lease_key.to_owned()))?;
        // Past this instant the lease may be another worker's: a write still hanging then (a
        // partition) is given up on, and the lease with it. The write goes on in the
        // background; conditional on the counter, it cannot land over a new owner.
        let expiry = *entry.last_renewed.lock().unwrap_or_else(|p| p.into_inner())
            + self.config.failover_time;
        let store = Arc::clone(&self.store);
        let update = update.clone();
        let graceful = self.config.graceful_handoff;
        let worker_id = self.worker_id.clone();
        // Without per-lease renewals, throughput goes out with checkpoints.
        let kbps = if self.heartbeat_renewal.load(Ordering::Relaxed) {
            self.current_kbps(lease_key)
        } else {
            None
        };
        let write = tokio::spawn(async move {
            let mut lease = entry.lease.lock().await;
            if kbps.is_some() {
                lease.throughput_kbps = kbps;
            }
            let mut written = store.update_checkpoint(&lease, &update).await?;
            let mut adopted = false;
            // The write may be the first to meet a handoff another worker started: take it on
            // (as a renewal would) and write again, so the final checkpoint still lands.
            if !written && graceful && entry.handoff_requested().is_none() {
                if let Some(current) = store.get_lease(&lease.lease_key).await? {
                    if is_handoff_from(&worker_id, &lease, &current) {
                        *lease = current;
                        *entry
                            .handoff_requested
                            .lock()
                            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                        adopted = true;
                        written = store.update_checkpoint(&lease, &update).await?;
                    }
                }
            }
            if written {
                lease.lease_counter += 1;
                lease.checkpoint = Some(update.checkpoint);
                lease.pending_checkpoint = update.pending_checkpoint;
                lease.pending_checkpoint_state = update.pending_checkpoint_state;
                lease.owner_switches_since_checkpoint = 0;
                // A successful conditional write proves ownership as well as a renewal does.
                *entry.last_renewed.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
            }
            Ok::<(bool, bool), LeaseError>((written, adopted))
        });
        let Ok(write) = tokio::time::timeout_at(expiry, write).await else {
            self.lost(lease_key, "checkpoint not written within the failover time")
                .await;
            return Ok(false);
        };
        let (written, adopted) = match write {
            Ok(result) => result?,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            // Only a runtime shutting down cancels the task: whether it wrote is unknown.
            Err(_) => {
                return Err(LeaseError::Store {
                    operation: "checkpoint",
                    message: "the runtime shut down during the write".to_owned(),
                    retryable: false,
                })
            }
        };
        if adopted {
            tracing::info!(worker = %self.worker_id, lease = lease_key, "another worker asked for the lease; handing it off");
            let _ = self
                .events
                .send(LeaseEvent::HandoffRequested(lease_key.to_owned()))
                .await;
        }
        if !written {
            self.lost(lease_key, "checkpoint found the lease changed")
                .await;
        }
        Ok(written)
    }

    /// The current copy of a held lease.
    pub async fn held_lease(&self, lease_key: &str) -> Option<Lease> {
        let entry = self.held_map().get(lease_key).cloned()?;
        let lease = entry.lease.lock().await.clone();
        Some(lease)
    }

    /// Ends the handoffs the table still asks of this worker for leases it does not hold.
    /// They are an earlier run's: a worker that restarts under the same id before the leader
    /// judges it dead may find the leader moved one of its leases in between. No process of
    /// it will write that lease's final checkpoint, and the new owner would wait for the
    /// leader to judge the handoff stalled (the graceful handoff timeout and a failover time);
    /// the last checkpoint in the table is the last one made, so the handoff can end now.
    ///
    /// Run once, after the first discovery: a handoff the leader wrote before that discovery
    /// kept the lease from it and is found here, and one written after it finds the lease held
    /// and ends the usual way, so none is left to the stall timeout.
    async fn end_handoffs_of_an_earlier_run(&self) -> Result<()> {
        let held: HashSet<String> = self.held_keys().into_iter().collect();
        for lease in self.store.list_leases().await? {
            if !is_handed_off_by(&self.worker_id, &lease)
                || held.contains(&lease.lease_key)
                || !(self.filter)(&lease)
            {
                continue;
            }
            if self.store.complete_handoff(&lease).await? {
                tracing::info!(worker = %self.worker_id, lease = %lease.lease_key, to = ?lease.lease_owner, "ended a handoff left by an earlier run of this worker");
                self.notify_new_owner(&lease).await;
            }
        }
        Ok(())
    }

    /// Gives a held lease up: evicts this worker as its owner so another takes it at once.
    /// Call after the shard's final checkpoint.
    ///
    /// # Errors
    /// Store errors; an eviction whose condition fails (someone took it already) is `Ok(false)`.
    pub async fn release(&self, lease_key: &str) -> Result<bool> {
        let Some(entry) = self.held_map().remove(lease_key) else {
            return Ok(false);
        };
        let lease = entry.lease.lock().await;
        if lease.checkpoint_owner.as_deref() == Some(self.worker_id.as_str()) {
            // Asked for by another worker: give it to that worker rather than to anyone.
            let done = self.store.complete_handoff(&lease).await?;
            if done {
                self.notify_new_owner(&lease).await;
            }
            return Ok(done);
        }
        if self.store.evict_lease(&lease).await? {
            return Ok(true);
        }
        // Asked for since this worker last renewed it: complete that handoff instead.
        match self.store.get_lease(lease_key).await? {
            Some(current) if is_handoff_from(&self.worker_id, &lease, &current) => {
                let done = self.store.complete_handoff(&current).await?;
                if done {
                    self.notify_new_owner(&current).await;
                }
                Ok(done)
            }
            _ => Ok(false),
        }
    }

    /// Releases every held lease (graceful shutdown).
    ///
    /// A handoff to this worker that its old owner completed after this worker's last taker
    /// run leaves a lease in this worker's name that it never held: such leases are released
    /// too, so they do not wait out a failover time. (A handoff still under way is left to
    /// finish; that lease then expires like any dead worker's.)
    ///
    /// In KCL 3 mode the leader lock is given up too, and the leases in this worker's name are
    /// found through the owner index rather than a scan.
    pub async fn release_all(&self) {
        if let Some(elector) = self.elector.lock().await.as_mut() {
            if let Err(err) = elector.release().await {
                tracing::warn!(worker = %self.worker_id, error = %err, "releasing the leader lock failed");
            }
            self.leader.store(false, Ordering::Relaxed);
        }
        for key in self.held_keys() {
            if let Err(err) = self.release(&key).await {
                tracing::warn!(worker = %self.worker_id, lease = %key, error = %err, "releasing a lease failed");
            }
        }
        self.leave_fleet().await;
        if !self.config.graceful_handoff {
            return;
        }
        let leases = match self.leases_in_my_name().await {
            Ok(leases) => leases,
            Err(err) => {
                tracing::warn!(worker = %self.worker_id, error = %err, "listing leases at shutdown failed");
                return;
            }
        };
        for lease in leases.into_iter().filter(|l| {
            l.lease_owner.as_deref() == Some(self.worker_id.as_str())
                && l.checkpoint_owner.is_none()
                && (self.filter)(l)
        }) {
            if let Err(err) = self.store.evict_lease(&lease).await {
                tracing::warn!(worker = %self.worker_id, lease = %lease.lease_key, error = %err, "releasing a handed-off lease failed");
            }
        }
    }

    /// KCL 3: asks the leader to move this worker's leases to other workers by graceful
    /// handoff (its processors checkpoint, the next owners start right there) before it stops:
    /// sets this worker's drain flag, which the leader sees at its next heartbeat check. The
    /// worker keeps running meanwhile; call [`LeaseCoordinator::release_all`] once it holds
    /// nothing (or gave up waiting).
    ///
    /// Returns whether waiting for the handoffs makes sense: KCL 3 mode, leases held, a
    /// leader, and another live worker to take them. Otherwise nothing is written.
    pub async fn start_drain(&self) -> bool {
        if self.coordination_mode() != CoordinationMode::Kcl3 || self.held_keys().is_empty() {
            return false;
        }
        let snapshot = match self.store.scan_table().await {
            Ok(snapshot) => snapshot,
            Err(err) => {
                tracing::warn!(worker = %self.worker_id, error = %err, "reading the fleet before draining failed");
                return false;
            }
        };
        if snapshot.leader.is_none() || !self.others_alive(&snapshot.workers).await {
            return false;
        }
        match self.store.set_worker_draining(&self.worker_id, true).await {
            Ok(true) => {
                self.draining.store(true, Ordering::Relaxed);
                tracing::info!(worker = %self.worker_id, leases = self.held_keys().len(), "draining: the leader hands this worker's leases to others");
                true
            }
            Ok(false) => false,
            Err(err) => {
                tracing::warn!(worker = %self.worker_id, error = %err, "setting the drain flag failed");
                false
            }
        }
    }

    /// Whether another worker that could take leases is alive: a worker of this library whose
    /// heartbeat moves within two report intervals (read again after them, so a worker that
    /// died moments ago does not count), or a Java worker whose last report is recent.
    async fn others_alive(&self, workers: &[WorkerMetrics]) -> bool {
        let others: Vec<&WorkerMetrics> = workers
            .iter()
            .filter(|w| w.worker_id != self.worker_id && !w.draining)
            .collect();
        let now_secs = wall_clock_millis() / 1000;
        let stale = self.config.coordination.stale_worker_after.as_secs();
        // Coarse on purpose (wall clocks of two hosts): a Java worker's liveness is judged the
        // way Java's leader judges it.
        if others
            .iter()
            .any(|w| w.heartbeat.is_none() && now_secs.saturating_sub(w.last_update_secs) <= stale)
        {
            return true;
        }
        let ids: Vec<String> = others
            .iter()
            .filter(|w| w.heartbeat.is_some())
            .map(|w| w.worker_id.clone())
            .collect();
        if ids.is_empty() {
            return false;
        }
        tokio::time::sleep(self.config.coordination.report_interval * 2).await;
        match self.store.get_worker_metrics(&ids).await {
            Ok(now) => now.iter().any(|w| {
                others
                    .iter()
                    .any(|before| before.worker_id == w.worker_id && w.heartbeat > before.heartbeat)
            }),
            Err(err) => {
                tracing::warn!(worker = %self.worker_id, error = %err, "reading the other workers' heartbeats failed");
                false
            }
        }
    }

    /// KCL 3: removes this worker's metrics item when it leaves the fleet, so the leader
    /// stops counting it at its next scan, and a restart under the same id starts without the
    /// drain flag of this run.
    async fn leave_fleet(&self) {
        let last = *self
            .last_report_secs
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(lut) = last {
            if let Err(err) = self.store.delete_worker_metrics(&self.worker_id, lut).await {
                tracing::warn!(worker = %self.worker_id, error = %err, "removing this worker's metrics item failed");
            }
        }
    }

    /// The table's leases whose owner is this worker: from the owner index in KCL 3 mode (no
    /// worker but the leader scans the table), from a scan in 2.x mode.
    async fn leases_in_my_name(&self) -> Result<Vec<Lease>> {
        if self.coordination_mode() != CoordinationMode::Kcl3 {
            return self.store.list_leases().await;
        }
        let mut leases = Vec::new();
        for key in self.store.lease_keys_of_owner(&self.worker_id).await? {
            if let Some(lease) = self.store.get_lease(&key).await? {
                leases.push(lease);
            }
        }
        Ok(leases)
    }

    /// Stops holding a lease without writing to the table (its lease was deleted, or the worker
    /// is crashing on purpose in a test).
    pub fn forget(&self, lease_key: &str) {
        self.held_map().remove(lease_key);
    }
}

/// Runs a store-bound step for at most `limit`; a step still waiting then fails like a store
/// error (retryable: the next step tries again).
async fn bounded<T>(
    limit: Duration,
    step: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(limit, step).await.unwrap_or_else(|_| {
        Err(LeaseError::Store {
            operation: "coordination step",
            message: format!("no answer from the lease table within {limit:?}"),
            retryable: true,
        })
    })
}
