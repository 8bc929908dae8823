//! Leader election through the lock item (`Leader`), in the form of Java's DynamoDB lock
//! client, so a Java KCL 3 worker sharing the table reads and honours the same lock.
//!
//! - No lock: a worker writes one (conditional on there being none).
//! - The leader heartbeats every renew interval: a new random version, the successor it chose,
//!   and `liveness = "heartbeat"`. A failed heartbeat means another worker took the lock over:
//!   it stops leading at once. One that could not reach the table steps down before any
//!   other worker may take over (see [`LeaderElector::step`]).
//! - Takeover: a reader notes the lock's version and its own monotonic time when it first saw
//!   it; if a later read shows the same version after the lock's `leaseDuration`, the writer
//!   is silent and the reader replaces the lock (conditional on that version). Clocks of
//!   different hosts are never compared. A Java lock's 120 s duration is honoured as written.
//! - The successor named in the lock reads it every `liveness_check_interval`, so a dead
//!   leader is replaced about one lease duration after its last heartbeat; other workers read
//!   it every `leader_check_interval` and wait half a lease duration longer before taking
//!   over, so the successor, which knows the fleet's heartbeats, becomes leader unless it is
//!   gone too.

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use tokio::time::Instant;

use crate::coordinator::LeaseConfig;
use crate::entities::LeaderLock;
use crate::error::Result;
use crate::store::LeaseStore;

/// This worker's part in the election, as of its last step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderRole {
    /// It holds the lock.
    Leader,
    /// The leader named it its successor: it watches the lock closely.
    Successor,
    /// Neither.
    Follower,
}

/// A lock version seen by this worker, and when (on its clock) it first saw it.
#[derive(Debug, Clone)]
struct Sighting {
    version: String,
    first_seen: Instant,
    /// How long the version must stay unchanged before this worker replaces the lock: its
    /// lease duration, and half as long again when the lock names another worker successor.
    /// The successor watches the leader's heartbeat closely, so as the new leader it knows at
    /// once which workers are dead; a follower that took over first would not, and would
    /// watch them for another failover time. (If the successor died too, a follower takes
    /// over after the longer wait.)
    silent_for: Duration,
}

/// Runs this worker's side of the leader election: see the module documentation.
#[derive(Debug)]
pub struct LeaderElector {
    store: Arc<dyn LeaseStore>,
    worker_id: String,
    lease_duration: Duration,
    heartbeat_interval: Duration,
    liveness_check_interval: Duration,
    leader_check_interval: Duration,
    /// Whether the lock this worker writes says it judges liveness by heartbeats (workers
    /// then stop renewing each lease).
    heartbeat_liveness: bool,
    /// The workers this worker, as leader, judges alive: written into the lock for the
    /// successor.
    fleet: Vec<String>,
    /// The lock as this worker last wrote it, while it leads.
    held: Option<LeaderLock>,
    /// When the last successful heartbeat (or acquisition) started.
    last_written: Instant,
    /// The other leader's lock version last seen.
    sighting: Option<Sighting>,
    /// The lock as last read or written.
    last_seen: Option<LeaderLock>,
    next_step: Instant,
}

/// A new random record version: 128 random bits in the UUID layout Java's lock client uses.
fn new_record_version() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl LeaderElector {
    /// An elector for `worker_id`: the lock's lease duration is the failover time, the
    /// heartbeat the renew interval, and the read intervals those of `config.coordination`.
    pub fn new(
        store: Arc<dyn LeaseStore>,
        worker_id: impl Into<String>,
        config: &LeaseConfig,
    ) -> LeaderElector {
        LeaderElector {
            store,
            worker_id: worker_id.into(),
            lease_duration: config.failover_time,
            heartbeat_interval: config.renew_interval(),
            liveness_check_interval: config.coordination.liveness_check_interval,
            leader_check_interval: config.coordination.leader_check_interval,
            heartbeat_liveness: true,
            fleet: Vec::new(),
            held: None,
            last_written: Instant::now(),
            sighting: None,
            last_seen: None,
            next_step: Instant::now(),
        }
    }

    /// Whether the lock this worker writes as leader says it judges liveness by heartbeats
    /// (default `true`). Off while the fleet may still roll back to 2.x, whose takers judge
    /// leases by their counters. Written with the next heartbeat.
    pub fn set_heartbeat_liveness(&mut self, by_heartbeat: bool) {
        self.heartbeat_liveness = by_heartbeat;
    }

    /// The workers this worker judges alive, written into the lock with its next heartbeat as
    /// leader (the successor watches them without scanning the table).
    pub fn set_fleet(&mut self, fleet: Vec<String>) {
        self.fleet = fleet;
    }

    /// Whether this worker held the lock at its last step.
    pub fn is_leader(&self) -> bool {
        self.held.is_some()
    }

    /// This worker's part as of its last step.
    pub fn role(&self) -> LeaderRole {
        if self.held.is_some() {
            LeaderRole::Leader
        } else if self
            .last_seen
            .as_ref()
            .and_then(|lock| lock.successor.as_deref())
            == Some(self.worker_id.as_str())
        {
            LeaderRole::Successor
        } else {
            LeaderRole::Follower
        }
    }

    /// The lock as last read or written (`None`: there was none, or it was never read).
    pub fn lock(&self) -> Option<&LeaderLock> {
        self.last_seen.as_ref()
    }

    /// When [`LeaderElector::step`] should run next.
    pub fn next_step_at(&self) -> Instant {
        self.next_step
    }

    /// Makes the next step run at once (a worker that just learnt something about the lock).
    pub fn step_soon(&mut self) {
        self.next_step = Instant::now();
    }

    /// A newly named successor reads the lock only every leader check interval: tell it
    /// through its metrics item (its next report sees a new assignment generation and reads
    /// the lock at once), so it watches the leader within one report interval of being named.
    async fn tell_successor(&self, lock: &LeaderLock) {
        if let Some(successor) = &lock.successor {
            if let Err(err) = self.store.notify_assignment(successor).await {
                tracing::debug!(worker = %self.worker_id, %successor, error = %err, "could not tell the successor");
            }
        }
    }

    fn new_lock(&self, successor: Option<String>) -> LeaderLock {
        LeaderLock {
            owner: self.worker_id.clone(),
            lease_duration_ms: u64::try_from(self.lease_duration.as_millis()).unwrap_or(u64::MAX),
            record_version: new_record_version(),
            successor,
            liveness_by_heartbeat: self.heartbeat_liveness,
            fleet: self.fleet.clone(),
        }
    }

    /// One step of the election, due at [`LeaderElector::next_step_at`]: the leader
    /// heartbeats (naming `successor`); any other worker reads the lock and acquires it when
    /// there is none or its holder fell silent. Returns this worker's role afterwards.
    ///
    /// A leader whose heartbeats fail (the table unreachable) steps down once two thirds of
    /// the lease duration have passed since its last good one: no other worker can take over
    /// earlier than one lease duration after it, so two leaders never act at once.
    ///
    /// # Errors
    /// Store errors of a reader (it tries again at its next step).
    pub async fn step(&mut self, successor: Option<String>) -> Result<LeaderRole> {
        let now = Instant::now();
        if let Some(held) = self.held.clone() {
            let lock = self.new_lock(successor);
            match self
                .store
                .renew_leader_lock(&lock, &held.record_version)
                .await
            {
                Ok(true) => {
                    self.last_written = now;
                    self.last_seen = Some(lock.clone());
                    if lock.successor != held.successor {
                        self.tell_successor(&lock).await;
                    }
                    self.held = Some(lock);
                }
                Ok(false) => {
                    tracing::warn!(worker = %self.worker_id, "the leader lock was taken over; no longer leader");
                    self.step_down();
                }
                Err(err) => {
                    tracing::warn!(worker = %self.worker_id, error = %err, "leader heartbeat failed");
                    if now.duration_since(self.last_written) >= self.lease_duration * 2 / 3 {
                        tracing::warn!(worker = %self.worker_id, "no leader heartbeat for too long; no longer leader");
                        self.step_down();
                    }
                }
            }
            self.next_step = Instant::now()
                + if self.held.is_some() {
                    self.heartbeat_interval
                } else {
                    self.liveness_check_interval
                };
            return Ok(self.role());
        }
        let result = self.read_and_maybe_acquire(now, successor).await;
        let after = Instant::now();
        self.next_step = self.next_read_at(after);
        if result.is_err() {
            // A sighting already stale schedules the next read at once: without a pause, a
            // worker that cannot reach the table would retry in a busy loop.
            self.next_step = self.next_step.max(after + self.liveness_check_interval);
        }
        result.map(|()| self.role())
    }

    async fn read_and_maybe_acquire(
        &mut self,
        now: Instant,
        successor: Option<String>,
    ) -> Result<()> {
        let current = self.store.get_leader_lock().await?;
        let replacing = match &current {
            None => None,
            Some(lock) => {
                let stale = match &self.sighting {
                    Some(seen) if seen.version == lock.record_version => {
                        now.duration_since(seen.first_seen) > seen.silent_for
                    }
                    _ => {
                        let lease_duration = Duration::from_millis(lock.lease_duration_ms);
                        let defer_to_successor = lock
                            .successor
                            .as_deref()
                            .is_some_and(|successor| successor != self.worker_id);
                        self.sighting = Some(Sighting {
                            version: lock.record_version.clone(),
                            first_seen: now,
                            silent_for: if defer_to_successor {
                                lease_duration + lease_duration / 2
                            } else {
                                lease_duration
                            },
                        });
                        false
                    }
                };
                // Our own name on a lock we do not hold: left by this worker before a restart.
                let ours = lock.owner == self.worker_id;
                if !stale && !ours {
                    self.last_seen = current;
                    return Ok(());
                }
                tracing::info!(worker = %self.worker_id, leader = %lock.owner, "taking over the leader lock of a silent leader");
                Some(lock.record_version.clone())
            }
        };
        let lock = self.new_lock(successor);
        let start = Instant::now();
        if self
            .store
            .acquire_leader_lock(&lock, replacing.as_deref())
            .await?
        {
            tracing::info!(worker = %self.worker_id, "became leader");
            self.last_written = start;
            self.sighting = None;
            self.last_seen = Some(lock.clone());
            self.tell_successor(&lock).await;
            self.held = Some(lock);
        } else {
            // Someone else was quicker: read it again soon to learn who.
            self.last_seen = current;
            self.sighting = None;
        }
        Ok(())
    }

    /// When a worker that does not lead reads the lock next: soon when it is the successor,
    /// else at the leader check interval, but never later than when the version it saw would
    /// turn stale.
    fn next_read_at(&self, now: Instant) -> Instant {
        if self.held.is_some() {
            return now + self.heartbeat_interval;
        }
        let interval = match self.role() {
            LeaderRole::Successor => self.liveness_check_interval,
            _ => self.leader_check_interval,
        };
        let regular = now + interval;
        match &self.sighting {
            Some(seen) => {
                let stale_at = seen.first_seen + seen.silent_for + Duration::from_millis(1);
                regular.min(stale_at.max(now))
            }
            None if self.last_seen.is_none() => now + self.liveness_check_interval,
            None => regular,
        }
    }

    fn step_down(&mut self) {
        self.held = None;
        self.sighting = None;
        self.last_seen = None;
    }

    /// Gives the lock up (graceful shutdown), so another worker takes over at its next read
    /// instead of after a lease duration.
    ///
    /// # Errors
    /// Store errors.
    pub async fn release(&mut self) -> Result<()> {
        if let Some(held) = self.held.take() {
            self.step_down();
            if self.store.release_leader_lock(&held).await? {
                tracing::info!(worker = %self.worker_id, "released the leader lock");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::InMemoryLeaseStore;

    fn config() -> LeaseConfig {
        LeaseConfig::with_failover_time(Duration::from_secs(10))
    }

    async fn step_until(elector: &mut LeaderElector, until: Instant) -> LeaderRole {
        let mut role = elector.role();
        while Instant::now() < until {
            tokio::time::sleep_until(elector.next_step_at().min(until)).await;
            if Instant::now() >= elector.next_step_at() {
                role = elector.step(None).await.unwrap();
            }
        }
        role
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_worker_leads_and_others_follow_while_it_heartbeats() {
        let store: Arc<dyn LeaseStore> = Arc::new(InMemoryLeaseStore::new());
        let mut a = LeaderElector::new(Arc::clone(&store), "a", &config());
        let mut b = LeaderElector::new(Arc::clone(&store), "b", &config());
        assert_eq!(a.step(Some("b".into())).await.unwrap(), LeaderRole::Leader);
        assert_eq!(b.step(None).await.unwrap(), LeaderRole::Successor);
        let lock = store.get_leader_lock().await.unwrap().unwrap();
        assert!(lock.liveness_by_heartbeat);
        assert_eq!(lock.lease_duration_ms, 10_000);
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            let next = a.next_step_at().min(b.next_step_at());
            tokio::time::sleep_until(next).await;
            if Instant::now() >= a.next_step_at() {
                assert_eq!(a.step(Some("b".into())).await.unwrap(), LeaderRole::Leader);
            }
            if Instant::now() >= b.next_step_at() {
                assert_eq!(b.step(None).await.unwrap(), LeaderRole::Successor);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_leader_is_replaced_after_the_lease_duration_and_not_before() {
        let store: Arc<dyn LeaseStore> = Arc::new(InMemoryLeaseStore::new());
        let mut a = LeaderElector::new(Arc::clone(&store), "a", &config());
        let mut b = LeaderElector::new(Arc::clone(&store), "b", &config());
        a.step(Some("b".into())).await.unwrap();
        b.step(None).await.unwrap();
        // `a` dies now: its last heartbeat was just written.
        let died = Instant::now();
        let role = step_until(&mut b, died + Duration::from_millis(9_900)).await;
        assert_eq!(role, LeaderRole::Successor);
        let role = step_until(&mut b, died + Duration::from_millis(10_600)).await;
        assert_eq!(role, LeaderRole::Leader);
        assert_eq!(
            store.get_leader_lock().await.unwrap().unwrap().owner,
            "b".to_owned()
        );
        // The old leader, back from a pause, finds out at its next heartbeat.
        assert_eq!(a.step(None).await.unwrap(), LeaderRole::Follower);
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_takes_over_when_leader_and_successor_are_gone() {
        let store: Arc<dyn LeaseStore> = Arc::new(InMemoryLeaseStore::new());
        let mut a = LeaderElector::new(Arc::clone(&store), "a", &config());
        let mut c = LeaderElector::new(Arc::clone(&store), "c", &config());
        a.step(Some("b".into())).await.unwrap();
        assert_eq!(c.step(None).await.unwrap(), LeaderRole::Follower);
        let role = step_until(&mut c, Instant::now() + Duration::from_secs(25)).await;
        assert_eq!(role, LeaderRole::Leader);
    }

    #[tokio::test(start_paused = true)]
    async fn a_java_lock_is_honoured_for_its_whole_duration() {
        let store: Arc<dyn LeaseStore> = Arc::new(InMemoryLeaseStore::new());
        let java = LeaderLock {
            owner: "java-worker".into(),
            lease_duration_ms: 120_000,
            record_version: "4f1f3f53-1d0a-4b8e-9f59-3c2b1a0e9d11".into(),
            successor: None,
            liveness_by_heartbeat: false,
            fleet: Vec::new(),
        };
        assert!(store.acquire_leader_lock(&java, None).await.unwrap());
        let mut b = LeaderElector::new(Arc::clone(&store), "b", &config());
        b.step(None).await.unwrap();
        let start = Instant::now();
        let role = step_until(&mut b, start + Duration::from_secs(115)).await;
        assert_eq!(role, LeaderRole::Follower);
        assert_eq!(store.get_leader_lock().await.unwrap().unwrap(), java);
        let role = step_until(&mut b, start + Duration::from_secs(135)).await;
        assert_eq!(role, LeaderRole::Leader);
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_lock_is_acquired_at_the_next_read() {
        let store: Arc<dyn LeaseStore> = Arc::new(InMemoryLeaseStore::new());
        let mut a = LeaderElector::new(Arc::clone(&store), "a", &config());
        let mut b = LeaderElector::new(Arc::clone(&store), "b", &config());
        a.step(Some("b".into())).await.unwrap();
        b.step(None).await.unwrap();
        a.release().await.unwrap();
        assert!(!a.is_leader());
        assert!(store.get_leader_lock().await.unwrap().is_none());
        tokio::time::sleep_until(b.next_step_at()).await;
        assert_eq!(b.step(None).await.unwrap(), LeaderRole::Leader);
    }
}
