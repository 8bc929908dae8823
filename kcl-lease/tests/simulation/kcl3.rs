//! The KCL 3 fleet: every worker runs its real run loop ([`LeaseCoordinator::run`]) on a store
//! of its own that wraps one shared in-memory table and injects that worker's faults: a crash
//! (nothing it started reaches the table any more), a cut-off (every call fails, retryably,
//! for longer than the failover time, then the network heals) and a pause (every call hangs
//! until after its leases expired, then goes through: the classic zombie). The driver advances
//! the paused clock step by step, checkpoints one held lease per worker per step, and checks
//! the invariants after every step.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use kcl_lease::{
    AssignmentStrategy, CheckpointUpdate, CoordinationMode, InMemoryLeaseStore, Lease, LeaseConfig,
    LeaseCoordinator, LeaseError, LeaseEvent, LeaseStore, LeaseStoreLayer, Result,
    StoredCheckpoint,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const LEASES: usize = 24;
const MAX_WORKERS: usize = 5;
const FAILOVER: Duration = Duration::from_secs(10);
/// The driver's step: checkpoints and invariant checks happen once per step.
const STEP: Duration = Duration::from_millis(500);
/// Faults, joins and leaves happen in the first part; the rest is quiet, so the fleet settles.
const CHURN_STEPS: usize = 600;
const STEPS: usize = 1000;
/// Per step, in percent: the chance of each kind of event while the fleet is healthy.
const EVENT_PERCENT: u32 = 2;

/// The faults of one worker, as its store sees them.
#[derive(Debug, Default)]
struct Faults {
    /// The process is gone: nothing it started reaches the table any more.
    crashed: bool,
    /// Until then every call fails with a retryable error: the table cannot be reached.
    cut_until: Option<Instant>,
    /// Until then every call hangs, then goes through: the process stood still.
    paused_until: Option<Instant>,
}

/// One worker's view of the shared table, with its faults injected. It also checks, for every
/// checkpoint that goes through, that the table named this worker as the lease's owner (or its
/// checkpoint owner, during a handoff) right before the write.
#[derive(Debug)]
struct FaultStore {
    worker_id: String,
    inner: Arc<InMemoryLeaseStore>,
    faults: Arc<Mutex<Faults>>,
    violations: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl LeaseStoreLayer for FaultStore {
    fn inner(&self) -> &dyn LeaseStore {
        self.inner.as_ref()
    }

    async fn gate(&self, operation: &'static str) -> Result<()> {
        let paused = self.faults.lock().unwrap().paused_until;
        if let Some(until) = paused {
            if Instant::now() < until {
                tokio::time::sleep_until(until).await;
            }
        }
        let faults = self.faults.lock().unwrap();
        if faults.crashed {
            return Err(LeaseError::Store {
                operation,
                message: "the process is gone".to_owned(),
                retryable: false,
            });
        }
        if faults.cut_until.is_some_and(|until| Instant::now() < until) {
            return Err(LeaseError::Store {
                operation,
                message: "the table cannot be reached".to_owned(),
                retryable: true,
            });
        }
        Ok(())
    }

    async fn update_checkpoint(&self, lease: &Lease, update: &CheckpointUpdate) -> Result<bool> {
        self.gate("update_checkpoint").await?;
        // The in-memory store never yields, so nothing runs between this read and the write.
        let before = self.inner.get_lease(&lease.lease_key).await?;
        let written = self.inner.update_checkpoint(lease, update).await?;
        if written {
            let writer = before
                .as_ref()
                .and_then(|l| l.checkpoint_owner.clone().or_else(|| l.lease_owner.clone()));
            if writer.as_deref() != Some(self.worker_id.as_str()) {
                self.violations.lock().unwrap().push(format!(
                    "{} wrote a checkpoint of {} whose owner was {writer:?}",
                    self.worker_id, lease.lease_key
                ));
            }
        }
        Ok(written)
    }
}

/// A worker of the fleet: its coordinator's run loop and the task that plays its scheduler.
struct Worker {
    coordinator: Arc<LeaseCoordinator>,
    cancel: CancellationToken,
    run: JoinHandle<()>,
    scheduler: JoinHandle<()>,
    faults: Arc<Mutex<Faults>>,
    /// A checkpoint of this worker's is still under way (it may hang while the worker pauses).
    checkpointing: Arc<AtomicBool>,
}

/// A fault the fleet has to recover from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    Crash,
    LeaderCrash,
    CutOff,
    Pause,
}

/// A lease whose owner crashed, was cut off or paused, and since when.
#[derive(Debug)]
struct Orphan {
    key: String,
    from: String,
    since: Instant,
    kind: FaultKind,
    /// Whether its owner held the leader lock when the fault struck.
    of_leader: bool,
}

struct Sim {
    rng: StdRng,
    table: Arc<InMemoryLeaseStore>,
    config: LeaseConfig,
    workers: BTreeMap<String, Worker>,
    next_id: usize,
    violations: Arc<Mutex<Vec<String>>>,
    /// Highest checkpoint seen in the table per lease.
    checkpoints: HashMap<String, u64>,
    orphans: Vec<Orphan>,
    /// The leader crashed, was cut off or paused at this time: a new one is due.
    leader_lost_at: Option<Instant>,
    /// A worker cut off or paused, and when it comes back.
    impaired: Option<(String, Instant)>,
    last_membership_change: Instant,
    faults_injected: BTreeMap<&'static str, usize>,
    /// Longest time an orphaned lease waited, and a leaderless fleet waited.
    longest_orphan: Duration,
    longest_leaderless: Duration,
}

/// The time a fault may take to heal (a dead or cut-off worker's leases owned again; after
/// the leader's fault, a new leader too): the target, failover time + 1 s, plus one step
/// because the driver sees the outcome only at its next step. The protocol's own bound is the
/// failover time plus a report interval (the last heartbeat), a liveness check and a report
/// interval (the new owner's lookup), 10.75 s. A leader's fault heals as fast because the
/// successor watches every heartbeat and other workers defer to it. Safety invariants are
/// checked without slack.
fn recovery_limit() -> Duration {
    FAILOVER + Duration::from_secs(1) + STEP
}

impl Sim {
    fn join(&mut self, now: Instant) {
        let id = format!("worker-{}", self.next_id);
        self.next_id += 1;
        tracing::info!(worker = %id, "simulation: join");
        let faults = Arc::new(Mutex::new(Faults::default()));
        let store = Arc::new(FaultStore {
            worker_id: id.clone(),
            inner: Arc::clone(&self.table),
            faults: Arc::clone(&faults),
            violations: Arc::clone(&self.violations),
        });
        let (coordinator, mut events) = LeaseCoordinator::new(
            store as Arc<dyn LeaseStore>,
            id.clone(),
            self.config.clone(),
        );
        let cancel = CancellationToken::new();
        let run = tokio::spawn(Arc::clone(&coordinator).run(cancel.clone()));
        // As a scheduler does: a lease the leader moves away is handed over once its
        // processor has stopped (here, at once).
        let handing_off = Arc::clone(&coordinator);
        let scheduler = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                if let LeaseEvent::HandoffRequested(key) = event {
                    let _ = handing_off.complete_handoff(&key).await;
                }
            }
        });
        self.workers.insert(
            id,
            Worker {
                coordinator,
                cancel,
                run,
                scheduler,
                faults,
                checkpointing: Arc::new(AtomicBool::new(false)),
            },
        );
        self.last_membership_change = now;
    }

    /// Leases the table has in `id`'s name (as owner or handing off) or that `id` holds.
    async fn leases_of(&self, id: &str) -> BTreeSet<String> {
        let mut keys: BTreeSet<String> = self.workers[id]
            .coordinator
            .held_keys()
            .into_iter()
            .collect();
        for lease in self.table.list_leases().await.unwrap() {
            if lease.lease_owner.as_deref() == Some(id)
                || lease.checkpoint_owner.as_deref() == Some(id)
            {
                keys.insert(lease.lease_key);
            }
        }
        keys
    }

    async fn lock_owner(&self) -> Option<String> {
        self.table
            .get_leader_lock()
            .await
            .unwrap()
            .map(|lock| lock.owner)
    }

    async fn fault(&mut self, id: String, kind: FaultKind, now: Instant) {
        *self
            .faults_injected
            .entry(match kind {
                FaultKind::Crash => "crash",
                FaultKind::LeaderCrash => "leader crash",
                FaultKind::CutOff => "cut off",
                FaultKind::Pause => "pause",
            })
            .or_default() += 1;
        tracing::info!(worker = %id, ?kind, "simulation: fault injected");
        let of_leader = self.lock_owner().await.as_deref() == Some(id.as_str());
        for key in self.leases_of(&id).await {
            self.orphans.push(Orphan {
                key,
                from: id.clone(),
                since: now,
                kind,
                of_leader,
            });
        }
        if of_leader {
            self.leader_lost_at = Some(now);
        }
        // Longer than the failover time and than the time allowed to recover.
        let heals = now + recovery_limit() + Duration::from_millis(self.rng.gen_range(500..8000));
        let worker = &self.workers[&id];
        match kind {
            FaultKind::Crash | FaultKind::LeaderCrash => {
                worker.faults.lock().unwrap().crashed = true;
                worker.cancel.cancel();
                worker.run.abort();
                worker.scheduler.abort();
                self.workers.remove(&id);
                self.last_membership_change = now;
            }
            FaultKind::CutOff => {
                worker.faults.lock().unwrap().cut_until = Some(heals);
                self.impaired = Some((id, heals));
            }
            FaultKind::Pause => {
                worker.faults.lock().unwrap().paused_until = Some(heals);
                self.impaired = Some((id, heals));
            }
        }
    }

    /// Whether the fleet has recovered from the last fault: faults are injected one at a time,
    /// as the targets are per fault (a second fault meanwhile, say the successor's crash right
    /// after the leader's, legitimately takes longer: the others read the lock every
    /// `leader_check_interval`).
    fn healthy(&self) -> bool {
        self.orphans.is_empty() && self.leader_lost_at.is_none() && self.impaired.is_none()
    }

    async fn step(&mut self, now: Instant, churn: bool) {
        if self
            .impaired
            .as_ref()
            .is_some_and(|(_, heals)| now >= *heals)
        {
            // Back in the fleet: the leader sees its heartbeat again and may give it leases.
            tracing::info!("simulation: the impaired worker is back");
            self.impaired = None;
            self.last_membership_change = now;
        }
        if churn && self.healthy() {
            let live = self.workers.len();
            // A fault waits until the fleet has had the time to notice the last change (a
            // crashed worker with no lease leaves no orphan to wait for, yet it may be the
            // successor): a fault right after another is a double fault, whose recovery is
            // legitimately slower (see `healthy`).
            let settled = now.duration_since(self.last_membership_change) > recovery_limit();
            let event = self.rng.gen_range(0..100 / EVENT_PERCENT);
            match event {
                0 if live < MAX_WORKERS => self.join(now),
                1 if live > 2 => {
                    let id = self.pick_worker();
                    tracing::info!(worker = %id, "simulation: graceful leave");
                    let worker = self.workers.remove(&id).expect("picked a live worker");
                    worker.cancel.cancel();
                    let _ = worker.run.await;
                    worker.coordinator.release_all().await;
                    worker.scheduler.abort();
                    self.last_membership_change = now;
                }
                2 if live > 2 && settled => {
                    let id = self.pick_worker();
                    self.fault(id, FaultKind::Crash, now).await;
                }
                3 if live > 2 && settled => {
                    if let Some(id) = self
                        .lock_owner()
                        .await
                        .filter(|id| self.workers.contains_key(id))
                    {
                        self.fault(id, FaultKind::LeaderCrash, now).await;
                    }
                }
                4 if live > 2 && settled => {
                    let id = self.pick_worker();
                    self.fault(id, FaultKind::CutOff, now).await;
                }
                5 if live > 2 && settled => {
                    let id = self.pick_worker();
                    self.fault(id, FaultKind::Pause, now).await;
                }
                _ => {}
            }
        }
        // Each worker checkpoints one of its leases one further, from its own copy; a worker
        // that stands still does so once its store calls go through again.
        let ids: Vec<String> = self.workers.keys().cloned().collect();
        for id in ids {
            let worker = &self.workers[&id];
            if worker.checkpointing.load(Ordering::Relaxed) {
                continue;
            }
            let held = worker.coordinator.held_keys();
            if held.is_empty() {
                continue;
            }
            let key = held[self.rng.gen_range(0..held.len())].clone();
            let coordinator = Arc::clone(&worker.coordinator);
            let busy = Arc::clone(&worker.checkpointing);
            busy.store(true, Ordering::Relaxed);
            tokio::spawn(async move {
                if let Some(lease) = coordinator.held_lease(&key).await {
                    let current: u64 = lease
                        .checkpoint
                        .and_then(|c| c.sequence_number.parse().ok())
                        .unwrap_or(0);
                    let update = CheckpointUpdate {
                        checkpoint: StoredCheckpoint::new((current + 1).to_string()),
                        pending_checkpoint: None,
                        pending_checkpoint_state: None,
                    };
                    // Errors are the injected faults; a lost lease is the coordinator's to note.
                    let _ = coordinator.checkpoint(&key, &update).await;
                }
                busy.store(false, Ordering::Relaxed);
            });
        }
    }

    fn pick_worker(&mut self) -> String {
        let ids: Vec<&String> = self.workers.keys().collect();
        ids[self.rng.gen_range(0..ids.len())].clone()
    }

    fn is_impaired(&self, id: &str) -> bool {
        self.impaired
            .as_ref()
            .is_some_and(|(impaired, _)| impaired == id)
    }

    /// Checks every invariant; returns 1 if the balance invariant was checked this step.
    async fn check(&mut self, now: Instant) -> std::result::Result<u32, String> {
        if let Some(violation) = self.violations.lock().unwrap().first() {
            return Err(violation.clone());
        }
        let table: BTreeMap<String, Lease> = self
            .table
            .list_leases()
            .await
            .unwrap()
            .into_iter()
            .map(|l| (l.lease_key.clone(), l))
            .collect();
        // Each worker's copies, where readable now: a copy is locked only while a store call
        // of that worker is under way, which outside a pause returns at once.
        let mut copies: BTreeMap<&str, BTreeMap<String, Lease>> = BTreeMap::new();
        for (id, worker) in &self.workers {
            let mut held = BTreeMap::new();
            for key in worker.coordinator.held_keys() {
                if let Some(Some(lease)) = worker.coordinator.held_lease(&key).now_or_never() {
                    held.insert(key, lease);
                }
            }
            copies.insert(id.as_str(), held);
        }
        for lease in table.values() {
            let value: u64 = lease
                .checkpoint
                .as_ref()
                .and_then(|c| c.sequence_number.parse().ok())
                .unwrap_or(0);
            let highest = self.checkpoints.entry(lease.lease_key.clone()).or_insert(0);
            if value < *highest {
                return Err(format!(
                    "checkpoint of {} went back from {highest} to {value}",
                    lease.lease_key
                ));
            }
            *highest = value;
            let current_holders: Vec<&str> = copies
                .iter()
                .filter(|(_, held)| {
                    held.get(&lease.lease_key)
                        .is_some_and(|copy| copy.lease_counter == lease.lease_counter)
                })
                .map(|(id, _)| *id)
                .collect();
            if current_holders.len() > 1 {
                return Err(format!(
                    "{} is live-owned by {current_holders:?}",
                    lease.lease_key
                ));
            }
            // The zombie: a worker that would hand a batch of a lease to its processor while
            // the table names another worker (neither owner nor, in a handoff, the old owner
            // still checkpointing).
            for (id, worker) in &self.workers {
                let named = lease.lease_owner.as_deref() == Some(id.as_str())
                    || lease.checkpoint_owner.as_deref() == Some(id.as_str());
                if !named && worker.coordinator.holds_unexpired(&lease.lease_key) {
                    return Err(format!(
                        "{id} would process {} while the table names {:?} (handing off from {:?})",
                        lease.lease_key, lease.lease_owner, lease.checkpoint_owner
                    ));
                }
            }
        }
        // An orphaned lease is owned again, by a worker that can reach the table and holds the
        // table's current copy, within the limit counted from the fault.
        let mut still = Vec::new();
        for orphan in std::mem::take(&mut self.orphans) {
            let limit = recovery_limit();
            let owned = table.get(&orphan.key).is_none_or(|lease| {
                lease.checkpoint_owner.is_none()
                    && lease.lease_owner.as_deref().is_some_and(|owner| {
                        owner != orphan.from
                            && !self.is_impaired(owner)
                            && copies
                                .get(owner)
                                .and_then(|held| held.get(&orphan.key))
                                .is_some_and(|copy| copy.lease_counter == lease.lease_counter)
                    })
            });
            let waited = now.duration_since(orphan.since);
            if owned {
                if std::env::var_os("KCL_SIM_SLOW").is_some()
                    && waited > Duration::from_millis(10_900)
                {
                    eprintln!(
                        "SLOW {waited:?} {:?} leader={} {}",
                        orphan.kind, orphan.of_leader, orphan.key
                    );
                }
                self.longest_orphan = self.longest_orphan.max(waited);
                continue;
            }
            if waited > limit {
                return Err(format!(
                    "{} of {} ({:?}) not owned again after {waited:?} (limit {limit:?}); table: {:?}",
                    orphan.key,
                    orphan.from,
                    orphan.kind,
                    table.get(&orphan.key)
                ));
            }
            still.push(orphan);
        }
        self.orphans = still;
        if let Some(since) = self.leader_lost_at {
            let owner = self.lock_owner().await;
            let led = owner.as_deref().is_some_and(|owner| {
                !self.is_impaired(owner)
                    && self
                        .workers
                        .get(owner)
                        .is_some_and(|w| w.coordinator.is_leader())
            });
            let waited = now.duration_since(since);
            if led {
                self.longest_leaderless = self.longest_leaderless.max(waited);
                self.leader_lost_at = None;
            } else if waited > recovery_limit() {
                let limit = recovery_limit();
                return Err(format!(
                    "no new leader {waited:?} after the leader was lost (limit {limit:?}); lock owner {owner:?}"
                ));
            }
        }
        // After a quiet spell every worker holds its share within one lease.
        let quiet = self.config.coordination.assignment_interval
            * (self.config.coordination.variance_balancing_frequency * 2);
        if self.healthy() && now.duration_since(self.last_membership_change) > quiet {
            let target = LEASES.div_ceil(self.workers.len());
            for (id, worker) in &self.workers {
                let count = worker.coordinator.held_keys().len();
                if count + 1 < target || count > target + 1 {
                    return Err(format!(
                        "{id} holds {count}, target {target}, after a quiet spell; all: {:?}",
                        self.workers
                            .iter()
                            .map(|(id, w)| (id.clone(), w.coordinator.held_keys().len()))
                            .collect::<Vec<_>>()
                    ));
                }
            }
            return Ok(1);
        }
        Ok(0)
    }

    fn shut_down(self) {
        for worker in self.workers.values() {
            worker.faults.lock().unwrap().crashed = true;
            worker.cancel.cancel();
            worker.run.abort();
            worker.scheduler.abort();
        }
    }
}

/// What one seed's run saw.
struct Outcome {
    faults: BTreeMap<&'static str, usize>,
    longest_orphan: Duration,
    longest_leaderless: Duration,
    balanced_checks: u32,
}

fn kcl3_config() -> LeaseConfig {
    let mut config = LeaseConfig::with_failover_time(FAILOVER);
    config.coordination.mode = CoordinationMode::Kcl3;
    // Counts, not the CPU of the machine running the test, so the balance is checkable and
    // the run replays.
    config.coordination.strategy = AssignmentStrategy::LeaseCount;
    config.coordination.disable_worker_metrics = true;
    config
}

async fn run(seed: u64) -> std::result::Result<Outcome, String> {
    let table = Arc::new(InMemoryLeaseStore::new());
    for i in 0..LEASES {
        table
            .create_lease_if_absent(&Lease::new(
                format!("shardId-{i:012}"),
                StoredCheckpoint::new("0"),
            ))
            .await
            .unwrap();
    }
    let now = Instant::now();
    let mut sim = Sim {
        rng: StdRng::seed_from_u64(seed),
        table,
        config: kcl3_config(),
        workers: BTreeMap::new(),
        next_id: 0,
        violations: Arc::default(),
        checkpoints: HashMap::new(),
        orphans: Vec::new(),
        leader_lost_at: None,
        impaired: None,
        last_membership_change: now,
        faults_injected: BTreeMap::new(),
        longest_orphan: Duration::ZERO,
        longest_leaderless: Duration::ZERO,
    };
    for _ in 0..3 {
        sim.join(now);
    }
    let mut balanced_checks = 0;
    let mut result = Ok(());
    for step in 0..STEPS {
        let now = Instant::now();
        sim.step(now, step < CHURN_STEPS).await;
        match sim.check(now).await {
            Ok(checked) => balanced_checks += checked,
            Err(err) => {
                result = Err(format!(
                    "step {step} ({:?} in): {err}",
                    now.duration_since(sim_start(now, step))
                ));
                break;
            }
        }
        // Every worker's timers due before the next step fire while the driver sleeps.
        tokio::time::sleep(STEP).await;
    }
    let outcome = Outcome {
        faults: sim.faults_injected.clone(),
        longest_orphan: sim.longest_orphan,
        longest_leaderless: sim.longest_leaderless,
        balanced_checks,
    };
    sim.shut_down();
    result?;
    if outcome.balanced_checks == 0 {
        return Err("the fleet was never quiet long enough to check its balance".to_owned());
    }
    Ok(outcome)
}

fn sim_start(now: Instant, step: usize) -> Instant {
    now - STEP * u32::try_from(step).expect("few steps")
}

/// Log lines stamped with the simulated time, for replaying a seed with `RUST_LOG` set.
struct SimulatedTime(Instant);

impl tracing_subscriber::fmt::time::FormatTime for SimulatedTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{:>9.3}s", self.0.elapsed().as_secs_f64())
    }
}

#[tokio::test(start_paused = true)]
async fn kcl3_fleet_simulation_keeps_its_invariants() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_timer(SimulatedTime(Instant::now()))
            .with_test_writer()
            .try_init();
    }
    let mut faults: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut longest_orphan = Duration::ZERO;
    let mut longest_leaderless = Duration::ZERO;
    let seeds = super::seeds(24);
    for &seed in &seeds {
        match run(seed).await {
            Ok(outcome) => {
                for (kind, n) in outcome.faults {
                    *faults.entry(kind).or_default() += n;
                }
                longest_orphan = longest_orphan.max(outcome.longest_orphan);
                longest_leaderless = longest_leaderless.max(outcome.longest_leaderless);
            }
            Err(err) => {
                panic!(
                    "KCL 3 simulation failed with seed {seed} (replay: KCL_SIM_SEED={seed}): {err}"
                )
            }
        }
    }
    println!(
        "{} seeds: faults {faults:?}; longest orphaned lease {longest_orphan:?}, longest without a leader {longest_leaderless:?} (limit {:?})",
        seeds.len(),
        recovery_limit()
    );
}
