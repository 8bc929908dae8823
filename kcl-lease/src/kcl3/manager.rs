//! The leader's loop.
//!
//! Liveness is judged on this worker's monotonic clock, never by comparing clocks: a worker of
//! this library bumps its heartbeat counter (`hbc`) at every report, and it is dead once its
//! counter has not changed for a failover time since this worker first saw that value. A
//! worker first seen is not trusted with leases until its counter moves once (a stale item of
//! a long-gone worker looks exactly like a fresh one). A Java worker (no `hbc`) is active while
//! its `lut` is younger than `stale_worker_after`, as in Java, and its leases expire by Java's
//! rule: counter unchanged for a failover time across this worker's scans.
//!
//! A worker newly judged dead triggers a round at once (one scan, which for a fleet costs less
//! than reading each of the dead worker's leases), so its leases move within a liveness check
//! of its death.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::time::Instant;

use super::assignment::{plan_assignment, LeaseMove, PlanInput, WorkerLoad};
use crate::coordinator::{LeaseConfig, LeaseFilter};
use crate::entities::{TableSnapshot, WorkerMetrics};
use crate::error::Result;
use crate::lease::Lease;
use crate::store::LeaseStore;

/// How many report intervals a leader that knows nothing of the fleet watches it before its
/// first round: long enough for every worker started with it to report twice.
const COLD_START_REPORTS: u32 = 3;

/// What the leader knows of one worker's heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    /// Seen, but its heartbeat has not moved yet: it keeps its leases, gets none.
    Unconfirmed,
    /// Its heartbeat moved within the failover time.
    Alive,
    /// Its heartbeat stood still for the failover time.
    Dead,
}

/// One worker as observed on this worker's clock.
#[derive(Debug, Clone)]
struct Observed {
    metrics: WorkerMetrics,
    /// The heartbeat value and when this worker first saw it.
    heartbeat_since: Option<(u64, Instant)>,
    liveness: Liveness,
}

impl Observed {
    fn is_java(&self) -> bool {
        self.metrics.heartbeat.is_none()
    }
}

/// The leader's side of KCL 3 coordination: judges which workers are alive from their
/// heartbeats, runs assignment rounds and carries the plans out.
pub struct LeaseAssignmentManager {
    store: Arc<dyn LeaseStore>,
    worker_id: String,
    config: LeaseConfig,
    filter: LeaseFilter,
    workers: BTreeMap<String, Observed>,
    /// Per lease, its counter and when this worker first saw it (Java's expiry rule).
    lease_counters: HashMap<String, (u64, Instant)>,
    /// Per lease with a handoff under way, when this worker first knew of it.
    handoffs: HashMap<String, Instant>,
    /// Per lease this worker assigned outright, when. Its new owner may not have taken it up
    /// yet, and an owner that does not hold a lease never notices a handoff of it: such a
    /// handoff would stall until judged stalled (graceful handoff timeout + failover time).
    /// So a lease is not handed off again until its owner has surely looked it up (its
    /// periodic discovery, every `discovery_interval`).
    assigned_at: HashMap<String, Instant>,
    /// Whether this worker has learnt the fleet: from a scan, or as successor from the list
    /// in the leader's lock (then it watched every heartbeat).
    scanned: bool,
    /// Workers named in the leader's lock that this worker has not read yet: read with the
    /// next heartbeat check.
    pending_workers: BTreeSet<String>,
    /// Whether a round ran since this worker last became leader.
    led: bool,
    next_round: Option<Instant>,
    next_successor_scan: Option<Instant>,
    rounds: u64,
    /// Workers seen alive at the last round: one that joins triggers a rebalance.
    workers_at_last_round: BTreeSet<String>,
    last_round: Option<RoundSummary>,
    rng: StdRng,
}

impl std::fmt::Debug for LeaseAssignmentManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseAssignmentManager")
            .field("worker_id", &self.worker_id)
            .field("rounds", &self.rounds)
            .field("live_workers", &self.live_workers())
            .finish_non_exhaustive()
    }
}

/// Workers whose liveness changed at one heartbeat check.
#[derive(Debug, Default)]
struct LivenessChanges {
    dead: Vec<String>,
    /// Workers first seen alive, or alive again.
    confirmed: Vec<String>,
    /// Workers whose drain flag was set since the last look (an operator's drain, or the
    /// worker shutting down): their leases move at once.
    draining: Vec<String>,
    /// Workers whose metrics item is gone: they left the fleet (released their leases and
    /// deleted the item), or the leader deleted a stale one. Forgotten at once, so neither
    /// their released leases nor the choice of successor wait for the next scan.
    gone: Vec<String>,
}

/// What one round did, for its log line and for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundSummary {
    /// Leases the round looked at (those the filter accepts).
    pub leases: usize,
    /// Workers that may hold leases.
    pub workers: usize,
    /// Leases that needed an owner.
    pub orphaned: usize,
    /// Leases given outright.
    pub assigned: usize,
    /// Graceful handoffs started.
    pub handoffs: usize,
    /// Moves whose conditional write failed (the lease changed since the scan).
    pub failed: usize,
}

fn wall_clock_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Java's moving average of a metric's persisted values, oldest first, skipping failed reads.
fn moving_average(values: &[f64], alpha: f64) -> Option<f64> {
    values
        .iter()
        .copied()
        .filter(|v| *v >= 0.0)
        .fold(None, |average, value| {
            Some(average.map_or(value, |a: f64| alpha * value + (1.0 - alpha) * a))
        })
}

impl LeaseAssignmentManager {
    /// A manager for the worker `worker_id`, assigning the leases `filter` accepts.
    pub fn new(
        store: Arc<dyn LeaseStore>,
        worker_id: impl Into<String>,
        config: LeaseConfig,
        filter: LeaseFilter,
    ) -> LeaseAssignmentManager {
        let worker_id = worker_id.into();
        // Seeded from the worker id: a leader's random picks replay identically in tests.
        let seed = worker_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        LeaseAssignmentManager {
            store,
            worker_id,
            config,
            filter,
            workers: BTreeMap::new(),
            lease_counters: HashMap::new(),
            handoffs: HashMap::new(),
            assigned_at: HashMap::new(),
            scanned: false,
            pending_workers: BTreeSet::new(),
            led: false,
            next_round: None,
            next_successor_scan: None,
            rounds: 0,
            workers_at_last_round: BTreeSet::new(),
            last_round: None,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// One step while this worker leads, called every `liveness_check_interval`.
    ///
    /// The first step after becoming leader runs a round at once when this worker already
    /// watched the heartbeats (as successor). Otherwise it first watches the table for three
    /// report intervals, scanning at every step, so that workers
    /// started together are found, seen alive and all counted in the first round.
    ///
    /// # Errors
    /// Store errors (the caller logs them and calls again at the next step).
    pub async fn tick_as_leader(&mut self) -> Result<()> {
        let now = Instant::now();
        if !self.led {
            self.led = true;
            self.next_round = Some(if self.scanned {
                now
            } else {
                now + self.config.coordination.report_interval * COLD_START_REPORTS
            });
        }
        if self.rounds == 0 && self.next_round.is_some_and(|at| now < at) {
            let snapshot = self.store.scan_table().await?;
            self.observe_snapshot(&snapshot, now);
            return Ok(());
        }
        let changes = self.check_heartbeats(now).await?;
        // A worker whose heartbeat moved for the first time joined: it is balanced in at once
        // instead of at the next scheduled round; so is a worker that started draining.
        if self.next_round.is_none_or(|at| now >= at)
            || !changes.confirmed.is_empty()
            || !changes.draining.is_empty()
        {
            self.run_round(now, true).await?;
            self.next_round = Some(now + self.config.coordination.assignment_interval);
        } else if !changes.dead.is_empty() || !changes.gone.is_empty() {
            // The schedule of full rounds is kept: this one only places the dead or departed
            // workers' leases (and anything else orphaned).
            self.run_round(now, false).await?;
        }
        Ok(())
    }

    /// Records the leader's metrics item as read by a worker that is neither leader nor
    /// successor, at each of its reads of the lock: should it take a silent leader's lock
    /// over, it may then already know the leader dead instead of watching it for another
    /// failover time.
    pub fn observe_leader(&mut self, metrics: WorkerMetrics) {
        self.observe_worker(metrics, Instant::now());
    }

    /// One step while this worker is the leader's successor: keeps watching heartbeats so that
    /// after a takeover it knows at once which workers are dead. Reads only. The workers to
    /// watch are those `fleet` names (the leader's list, in its lock) and those already known;
    /// without a list (a Java leader's lock) a scan every assignment interval finds them.
    ///
    /// # Errors
    /// Store errors.
    pub async fn tick_as_successor(&mut self, fleet: &[String]) -> Result<()> {
        let now = Instant::now();
        if fleet.is_empty() {
            if self.next_successor_scan.is_none_or(|at| now >= at) {
                let snapshot = self.store.scan_table().await?;
                self.observe_snapshot(&snapshot, now);
                self.next_successor_scan = Some(now + self.config.coordination.assignment_interval);
                return Ok(());
            }
        } else {
            for id in fleet {
                if !self.workers.contains_key(id) {
                    self.pending_workers.insert(id.clone());
                }
            }
        }
        self.check_heartbeats(now).await?;
        self.scanned |= !fleet.is_empty();
        Ok(())
    }

    /// The workers judged alive at the last step, for the leader to choose a successor.
    pub fn live_workers(&self) -> Vec<String> {
        let now_secs = wall_clock_secs();
        self.workers
            .iter()
            .filter(|(_, observed)| self.is_active(observed, now_secs))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Forgets what only a leader tracks (its round schedule, lease counters, handoffs under
    /// way): this worker stopped leading. Heartbeat observations are kept: they stay true on
    /// this worker's clock, and should it lead again they spare a failover time of waiting.
    pub fn reset(&mut self) {
        self.lease_counters.clear();
        self.handoffs.clear();
        self.assigned_at.clear();
        self.led = false;
        self.next_round = None;
        self.next_successor_scan = None;
        self.rounds = 0;
        self.workers_at_last_round.clear();
    }

    /// The scheduled rounds run since this worker last became leader.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// What the last round did, if one ran.
    pub fn last_round(&self) -> Option<RoundSummary> {
        self.last_round
    }

    fn is_active(&self, observed: &Observed, now_secs: u64) -> bool {
        if observed.is_java() {
            let age = now_secs.saturating_sub(observed.metrics.last_update_secs);
            observed.metrics.last_update_secs > 0
                && Duration::from_secs(age) <= self.config.coordination.stale_worker_after
        } else {
            observed.liveness == Liveness::Alive
        }
    }

    /// Records a worker's item as read at `now`; returns how its liveness changed.
    fn observe_worker(&mut self, metrics: WorkerMetrics, now: Instant) -> Option<Liveness> {
        let failover = self.config.failover_time;
        let entry = self
            .workers
            .entry(metrics.worker_id.clone())
            .or_insert_with(|| Observed {
                metrics: metrics.clone(),
                heartbeat_since: None,
                liveness: Liveness::Unconfirmed,
            });
        let was = entry.liveness;
        match (metrics.heartbeat, entry.heartbeat_since) {
            (None, _) => entry.heartbeat_since = None,
            // Heartbeats only grow (the store adds 1): a smaller value is a stale replica's
            // answer to an eventually consistent read, not a sign of life.
            (Some(beat), Some((seen, since))) if beat <= seen => {
                if now.duration_since(since) >= failover {
                    entry.liveness = Liveness::Dead;
                }
            }
            (Some(beat), previous) => {
                entry.heartbeat_since = Some((beat, now));
                if previous.is_some() {
                    entry.liveness = Liveness::Alive;
                }
            }
        }
        entry.metrics = metrics;
        let id = entry.metrics.worker_id.clone();
        match (was, entry.liveness) {
            (Liveness::Dead, Liveness::Alive) => {
                tracing::info!(worker = %id, "worker's heartbeat moves again: alive");
                Some(Liveness::Alive)
            }
            (Liveness::Unconfirmed, Liveness::Alive) => {
                tracing::info!(worker = %id, "worker's heartbeat moves: joined");
                Some(Liveness::Alive)
            }
            (previous, Liveness::Dead) if previous != Liveness::Dead => {
                tracing::info!(
                    worker = %id,
                    failover_ms = failover.as_millis() as u64,
                    "worker's heartbeat stood still for the failover time: dead"
                );
                Some(Liveness::Dead)
            }
            _ => None,
        }
    }

    /// Reads the heartbeats of the known workers; returns the workers newly judged dead
    /// (Java workers whose `lut` went stale included) or alive.
    async fn check_heartbeats(&mut self, now: Instant) -> Result<LivenessChanges> {
        let mut changes = LivenessChanges::default();
        let pending = std::mem::take(&mut self.pending_workers);
        if self.workers.is_empty() && pending.is_empty() {
            return Ok(changes);
        }
        let now_secs = wall_clock_secs();
        let ids: Vec<String> = self.workers.keys().cloned().collect();
        let asked: Vec<String> = ids.iter().chain(&pending).cloned().collect();
        let active_java: BTreeSet<String> = self
            .workers
            .iter()
            .filter(|(_, o)| o.is_java() && self.is_active(o, now_secs))
            .map(|(id, _)| id.clone())
            .collect();
        let replies = self.store.get_worker_metrics(&asked).await?;
        // A known worker missing from the reply deleted its item: it left. (An eventually
        // consistent read can also miss an item created within about a second. Such a
        // worker is forgotten until the next scan or the lock's list names it again; the
        // leases it may hold by then were moved to it moments ago, so their counters are
        // fresh and none is judged orphaned meanwhile.)
        let answered: BTreeSet<&str> = replies.iter().map(|m| m.worker_id.as_str()).collect();
        for id in ids.iter().filter(|id| !answered.contains(id.as_str())) {
            tracing::info!(worker = %id, "worker's metrics item is gone: it left the fleet");
            changes.gone.push(id.clone());
        }
        for id in &changes.gone {
            self.workers.remove(id);
        }
        for metrics in replies {
            let id = metrics.worker_id.clone();
            let was_draining = self.workers.get(&id).is_some_and(|o| o.metrics.draining);
            if metrics.draining && !was_draining {
                tracing::info!(worker = %id, "worker is draining: its leases move");
                changes.draining.push(id.clone());
            }
            match self.observe_worker(metrics, now) {
                Some(Liveness::Dead) => changes.dead.push(id),
                Some(Liveness::Alive) => changes.confirmed.push(id),
                _ => {}
            }
        }
        for id in active_java {
            if !self.is_active(&self.workers[&id], now_secs) {
                tracing::info!(worker = %id, "worker's metrics went stale: inactive");
                changes.dead.push(id);
            }
        }
        Ok(changes)
    }

    /// Records everything a scan shows: workers (the gone ones forgotten), lease counters and
    /// handoffs under way.
    fn observe_snapshot(&mut self, snapshot: &TableSnapshot, now: Instant) {
        self.scanned = true;
        let present: BTreeSet<&str> = snapshot
            .workers
            .iter()
            .map(|w| w.worker_id.as_str())
            .collect();
        self.workers.retain(|id, _| present.contains(id.as_str()));
        for metrics in &snapshot.workers {
            self.observe_worker(metrics.clone(), now);
        }
        let mut counters = HashMap::with_capacity(snapshot.leases.len());
        let mut handoffs = HashMap::new();
        for lease in snapshot.leases.iter().filter(|l| (self.filter)(l)) {
            let since = match self.lease_counters.get(&lease.lease_key) {
                Some((counter, since)) if *counter == lease.lease_counter => *since,
                _ => now,
            };
            counters.insert(lease.lease_key.clone(), (lease.lease_counter, since));
            if lease.checkpoint_owner.is_some() {
                let since = self.handoffs.get(&lease.lease_key).copied().unwrap_or(now);
                handoffs.insert(lease.lease_key.clone(), since);
            }
        }
        self.lease_counters = counters;
        self.handoffs = handoffs;
    }

    /// Whether `lease` needs an owner, judged at `now`.
    fn is_orphaned(&self, lease: &Lease, now: Instant, now_secs: u64) -> bool {
        let Some(owner) = lease.lease_owner.as_deref() else {
            return true;
        };
        let dead = |id: &str| match self.workers.get(id) {
            Some(observed) if observed.is_java() => !self.is_active(observed, now_secs),
            Some(observed) => observed.liveness == Liveness::Dead,
            None => false,
        };
        if let Some(previous_owner) = lease.checkpoint_owner.as_deref() {
            let stalled = self.handoffs.get(&lease.lease_key).is_some_and(|since| {
                now.duration_since(*since)
                    > self.config.graceful_handoff_timeout + self.config.failover_time
            });
            return stalled || dead(owner) || dead(previous_owner);
        }
        if dead(owner) {
            return true;
        }
        // Leases of Java workers, and of workers without a metrics item (2.x workers), are
        // judged by their counters as Java's leader judges them.
        let by_counter = self.workers.get(owner).is_none_or(Observed::is_java);
        by_counter
            && self
                .lease_counters
                .get(&lease.lease_key)
                .is_some_and(|(_, since)| now.duration_since(*since) > self.config.failover_time)
    }

    fn worker_load(&self, observed: &Observed) -> WorkerLoad {
        let metrics = &observed.metrics;
        let alpha = self.config.coordination.metrics_ema_alpha;
        WorkerLoad {
            worker_id: metrics.worker_id.clone(),
            utilisation: metrics
                .stats
                .iter()
                .filter_map(|(name, values)| Some((name.clone(), moving_average(values, alpha)?)))
                .collect(),
            max_utilisation: metrics
                .operating_range
                .iter()
                .filter_map(|(name, range)| Some((name.clone(), *range.first()?)))
                .collect(),
            accepts_leases: metrics.is_valid()
                && !metrics.has_failing_metric()
                && !metrics.draining,
            draining: metrics.draining,
        }
    }

    /// One assignment round: scan, judge, plan, write, notify, clean up.
    async fn run_round(&mut self, now: Instant, scheduled: bool) -> Result<RoundSummary> {
        let snapshot = self.store.scan_table().await?;
        self.observe_snapshot(&snapshot, now);
        let now_secs = wall_clock_secs();

        let mut leases: Vec<Lease> = snapshot
            .leases
            .into_iter()
            .filter(|l| (self.filter)(l))
            .collect();
        // Oldest first: the lease whose counter stood still longest.
        leases.sort_by(|a, b| {
            let since = |l: &Lease| self.lease_counters.get(&l.lease_key).map(|(_, s)| *s);
            since(a)
                .cmp(&since(b))
                .then_with(|| a.lease_key.cmp(&b.lease_key))
        });
        let orphaned: BTreeSet<String> = leases
            .iter()
            .filter(|l| self.is_orphaned(l, now, now_secs))
            .map(|l| l.lease_key.clone())
            .collect();
        let loads: Vec<WorkerLoad> = self
            .workers
            .values()
            .filter(|o| self.is_active(o, now_secs))
            .map(|o| self.worker_load(o))
            .collect();
        let present: BTreeSet<String> = loads.iter().map(|w| w.worker_id.clone()).collect();
        let joined = !present.is_subset(&self.workers_at_last_round);
        let frequency = u64::from(self.config.coordination.variance_balancing_frequency.max(1));
        // A worker that joined is balanced in at once rather than up to two rounds later.
        let rebalance = scheduled && (self.rounds.is_multiple_of(frequency) || joined);
        let input = PlanInput {
            leases: &leases,
            workers: &loads,
            orphaned: &orphaned,
            rebalance,
        };
        let moves = plan_assignment(&input, &self.config, &mut self.rng);
        let mut summary = self.execute(moves, &orphaned, now).await;
        summary.leases = leases.len();
        summary.workers = loads.iter().filter(|w| w.accepts_leases).count();
        summary.orphaned = orphaned.len();
        self.cleanup_stale_metrics(&snapshot.workers, now_secs)
            .await;
        if scheduled {
            self.rounds += 1;
            self.workers_at_last_round = present;
        }
        self.last_round = Some(summary);
        tracing::info!(
            leader = %self.worker_id,
            round = self.rounds,
            rebalance,
            leases = summary.leases,
            workers = summary.workers,
            orphaned = summary.orphaned,
            assigned = summary.assigned,
            handoffs = summary.handoffs,
            failed = summary.failed,
            "assignment round"
        );
        Ok(summary)
    }

    /// Writes the moves (in parallel, up to the renewal concurrency), then tells each worker
    /// that was given leases outright to look them up, and each owner asked to hand a lease off
    /// to look at it. Receivers of handoffs are told by the old owner once it has checkpointed.
    async fn execute(
        &mut self,
        moves: Vec<LeaseMove>,
        orphaned: &BTreeSet<String>,
        now: Instant,
    ) -> RoundSummary {
        let graceful = self.config.graceful_handoff;
        let store = Arc::clone(&self.store);
        let discovery = self.config.coordination.discovery_interval;
        self.assigned_at
            .retain(|_, at| now.duration_since(*at) < discovery);
        let recently_assigned: HashSet<String> = self.assigned_at.keys().cloned().collect();
        let writes = moves.into_iter().filter_map(|m| {
            let (lease, to, handoff) = match m {
                LeaseMove::Assign { lease, to } => (lease, to, false),
                LeaseMove::Handoff { lease, to } => (lease, to, graceful),
            };
            // A handoff under way is left to finish unless it was judged stalled.
            if lease.checkpoint_owner.is_some() && !orphaned.contains(&lease.lease_key) {
                return None;
            }
            // Its owner may not hold it yet (see `assigned_at`): moved at a later round.
            if handoff && recently_assigned.contains(&lease.lease_key) {
                return None;
            }
            let store = Arc::clone(&store);
            Some(async move {
                let written = if handoff {
                    store.start_handoff(&lease, &to).await
                } else {
                    store.assign_lease(&lease, &to).await
                };
                (lease, to, handoff, written)
            })
        });
        let results: Vec<_> = futures::stream::iter(writes)
            .buffer_unordered(self.config.renew_concurrency.max(1))
            .collect()
            .await;
        let mut summary = RoundSummary::default();
        let mut receivers = BTreeSet::new();
        for (lease, to, handoff, written) in results {
            let from = lease
                .checkpoint_owner
                .as_deref()
                .or(lease.lease_owner.as_deref());
            match written {
                Ok(true) if handoff => {
                    summary.handoffs += 1;
                    self.handoffs.insert(lease.lease_key.clone(), now);
                    // The owner learns of the handoff at its next report rather than at its
                    // next periodic lookup (its leases need no renewals to notice it by).
                    if let Some(owner) = &lease.lease_owner {
                        receivers.insert(owner.clone());
                    }
                    tracing::debug!(lease = %lease.lease_key, from = ?from, to = %to, "handoff started");
                }
                Ok(true) => {
                    summary.assigned += 1;
                    self.handoffs.remove(&lease.lease_key);
                    self.assigned_at.insert(lease.lease_key.clone(), now);
                    receivers.insert(to.clone());
                    tracing::debug!(lease = %lease.lease_key, from = ?from, to = %to, "lease assigned");
                }
                Ok(false) => {
                    summary.failed += 1;
                    tracing::debug!(lease = %lease.lease_key, to = %to, "lease changed since the scan: not moved");
                }
                Err(error) => {
                    summary.failed += 1;
                    tracing::debug!(lease = %lease.lease_key, to = %to, %error, "move failed");
                }
            }
        }
        for worker in receivers {
            if let Err(error) = self.store.notify_assignment(&worker).await {
                tracing::debug!(%worker, %error, "could not notify the worker of its leases");
            }
        }
        summary
    }

    /// Deletes the metrics items of workers silent for longer than the cleanup duration.
    async fn cleanup_stale_metrics(&mut self, workers: &[WorkerMetrics], now_secs: u64) {
        let limit = self
            .config
            .coordination
            .stale_worker_metrics_cleanup
            .as_secs();
        for metrics in workers {
            if now_secs.saturating_sub(metrics.last_update_secs) <= limit {
                continue;
            }
            match self
                .store
                .delete_worker_metrics(&metrics.worker_id, metrics.last_update_secs)
                .await
            {
                Ok(true) => {
                    tracing::info!(worker = %metrics.worker_id, "deleted a stale worker's metrics");
                    self.workers.remove(&metrics.worker_id);
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::debug!(worker = %metrics.worker_id, %error, "could not delete stale metrics")
                }
            }
        }
    }
}
