//! Settings of fleet coordination.

use std::time::Duration;

/// How the workers of a fleet share out leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CoordinationMode {
    /// The KCL 3 protocol: one leader (elected through a lock item) assigns leases by load and
    /// moves them with graceful handoffs; workers never take leases themselves. The default
    /// (Java's `CLIENT_VERSION_CONFIG_3X`). A table whose migration state says the fleet runs
    /// 2.x, or is being upgraded, is followed instead (see [`crate::kcl3::ClientVersion`]).
    #[default]
    Kcl3,
    /// The KCL 2.x protocol: every worker's taker scans the table and takes or steals leases.
    /// Reads and writes no migration state (Java's `CLIENT_VERSION_CONFIG_COMPATIBLE_WITH_2X_PHASE1`).
    /// For tables shared with Java KCL 2.x workers.
    Kcl2,
    /// The upgrade from 2.x (Java's `CLIENT_VERSION_CONFIG_COMPATIBLE_WITH_2X`): the 2.x
    /// protocol while any lease owner is a 2.x worker, then, once every owner has reported
    /// metrics for [`CoordinationConfig::upgrade_stabilisation`], the whole fleet flips to
    /// KCL 3 in place, with a rollback possible until a worker configured with
    /// [`CoordinationMode::Kcl3`] ends the migration.
    CompatibleWith2x,
}

/// How the leader balances leases between workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AssignmentStrategy {
    /// By each worker's reported utilisation (CPU), falling back to lease throughput for workers
    /// that report no metrics (Java's default).
    #[default]
    Utilisation,
    /// By lease count: every worker holds `ceil(leases / workers)` at most (Java's
    /// `LEASE_COUNT_BASED`).
    LeaseCount,
}

/// Settings of KCL 3 coordination. The lease timings (failover time, graceful handoff) are in
/// [`LeaseConfig`](crate::LeaseConfig); the defaults here are Java KCL 3.5's unless the doc of
/// a field says why not.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CoordinationConfig {
    /// The protocol. Default [`CoordinationMode::Kcl3`]. A table whose migration state
    /// (`Migration3.0`) says the fleet runs 2.x is not switched behind its back: such a worker
    /// runs the 2.x protocol until the fleet is upgraded.
    pub mode: CoordinationMode,
    /// How often the leader runs a full assignment round (one scan of the table; unassigned
    /// leases, new workers, rebalancing). Default 20 s (2 × the default failover time), as
    /// Java's `leaseAssignmentIntervalMillis`.
    pub assignment_interval: Duration,
    /// How often each worker reports its metrics, which is also its heartbeat. Default 250 ms:
    /// a leader tells a dead worker from a live one by its heartbeat, and a worker learns of
    /// leases given to it from the reply to its report. A failover takes at most the failover
    /// time plus a report interval (the dead worker's last heartbeat), a liveness check and
    /// another report interval (the new owner's lookup): 10.75 s at the defaults. (Java
    /// reports every 30 s and judges liveness by lease counters.)
    pub report_interval: Duration,
    /// How often the leader (and its designated successor) reads the workers' heartbeats.
    /// Default 250 ms.
    pub liveness_check_interval: Duration,
    /// How often a worker that is neither leader nor successor reads the leader lock, to take
    /// it over if the leader and its successor both died. Default 10 s.
    pub leader_check_interval: Duration,
    /// How often a worker looks up its leases in the owner index even without a sign that the
    /// leader gave it any. Default 10 s (Java: 9,975 ms).
    pub discovery_interval: Duration,
    /// How often CPU utilisation is sampled. Default 1 s.
    pub metrics_capture_interval: Duration,
    /// How many averages of each metric a worker keeps in its item. Default 10.
    pub persisted_metric_values: usize,
    /// Report no metrics (the worker is then balanced by lease throughput). Default `false`.
    pub disable_worker_metrics: bool,
    /// A worker metrics item without this library's heartbeat (a Java worker's) counts as
    /// active while its `lut` is younger than this. Default 60 s.
    pub stale_worker_after: Duration,
    /// Metrics items of workers silent for this long are deleted by the leader. Default 1 day.
    pub stale_worker_metrics_cleanup: Duration,
    /// Balancing strategy. Default [`AssignmentStrategy::Utilisation`].
    pub strategy: AssignmentStrategy,
    /// Every how many assignment rounds the leader rebalances (the first round included).
    /// Default 3.
    pub variance_balancing_frequency: u32,
    /// Workers within this percentage of the average utilisation are balanced. Default 10.
    pub rebalance_threshold_percent: f64,
    /// Share of a worker's excess load moved in one rebalance, in percent. Default 60.
    pub dampening_percent: f64,
    /// Whether a rebalance may move at least one lease even when that overshoots the target.
    /// Default `true`.
    pub allow_throughput_overshoot: bool,
    /// Weight of the newest value in the moving average of a metric. Default 0.5.
    pub metrics_ema_alpha: f64,
    /// Most lease throughput (KB/s) a worker is given. Default unlimited.
    pub max_throughput_per_host_kbps: Option<f64>,
    /// How often a worker reads the migration state while the fleet may still change
    /// protocol (upgrade, rollback, roll-forward), and how often the upgrade check runs.
    /// Default 60 s, as in Java.
    pub migration_check_interval: Duration,
    /// How long the fleet must stay ready (owner index ACTIVE, every lease owner reporting
    /// metrics) before it flips from 2.x to KCL 3. Default 10 minutes, as in Java.
    pub upgrade_stabilisation: Duration,
    /// How often a worker running the 2.x protocol during an upgrade reports its metrics (it
    /// has no heartbeat to keep then). Default 30 s, Java's reporting period.
    pub upgrade_report_interval: Duration,
}

impl Default for CoordinationConfig {
    fn default() -> Self {
        CoordinationConfig {
            mode: CoordinationMode::Kcl3,
            assignment_interval: Duration::from_secs(20),
            report_interval: Duration::from_millis(250),
            liveness_check_interval: Duration::from_millis(250),
            leader_check_interval: Duration::from_secs(10),
            discovery_interval: Duration::from_secs(10),
            metrics_capture_interval: Duration::from_secs(1),
            persisted_metric_values: crate::PERSISTED_METRIC_VALUES,
            disable_worker_metrics: false,
            stale_worker_after: Duration::from_secs(60),
            stale_worker_metrics_cleanup: Duration::from_secs(24 * 60 * 60),
            strategy: AssignmentStrategy::Utilisation,
            variance_balancing_frequency: 3,
            rebalance_threshold_percent: 10.0,
            dampening_percent: 60.0,
            allow_throughput_overshoot: true,
            metrics_ema_alpha: 0.5,
            max_throughput_per_host_kbps: None,
            migration_check_interval: Duration::from_secs(60),
            upgrade_stabilisation: Duration::from_secs(10 * 60),
            upgrade_report_interval: Duration::from_secs(30),
        }
    }
}
