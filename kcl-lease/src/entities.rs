//! The lease table's other items: worker metrics, the leader lock and the migration state, in
//! the Java KCL 3.5 layout (one table, items told apart by `entityType`).
//!
//! Java KCL 3.5 keeps every coordination item in the lease table under `leaseKey`, tagged with
//! `entityType`; lease readers skip every item whose type is not `LEASE` (see
//! [`Lease::is_lease_item`](crate::Lease::is_lease_item)). The attribute names and types here are
//! Java's, so a fleet can mix Java and Rust workers and an operator's tools read both.
//!
//! Three attributes of the worker metrics item are this library's own and ignored by Java:
//! `hbc` (a heartbeat counter the worker bumps at every report, so a leader can tell a live
//! worker from a silent one by watching it change on its own clock, never comparing clocks),
//! `ag` (an assignment generation the leader bumps when it gives the worker leases, which the
//! worker sees in the reply to its next report and answers by looking up its leases at once) and
//! `drn` (an operator asked the worker to be drained: it keeps running but gets no leases, and
//! the leader hands its leases to others).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::{LeaseError, Result};
use crate::lease::Lease;

/// `entityType` of a lease.
pub const ENTITY_LEASE: &str = "LEASE";
/// `entityType` of a worker's metrics item.
pub const ENTITY_WORKER_METRICS: &str = "WORKER_METRIC_STATS";
/// `entityType` of the leader lock.
pub const ENTITY_LEADER: &str = "LEADER";
/// `entityType` of the 2.x → 3.x migration state.
pub const ENTITY_CLIENT_VERSION_MIGRATION: &str = "CLIENT_VERSION_MIGRATION";
/// `leaseKey` of the leader lock.
pub const LEADER_KEY: &str = "Leader";
/// `leaseKey` of the 2.x → 3.x migration state.
pub const MIGRATION_KEY: &str = "Migration3.0";
/// The CPU metric's name in `sts` and `opr`.
pub const METRIC_CPU: &str = "C";
/// How many averages of one metric a worker keeps in its item, as in Java.
pub const PERSISTED_METRIC_VALUES: usize = 10;

/// A worker's metrics item (`entityType` `WORKER_METRIC_STATS`, `leaseKey` = worker id).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkerMetrics {
    /// `leaseKey` (Java's `wid`): the worker id.
    pub worker_id: String,
    /// `lut`: wall-clock time of the last report, epoch seconds. Only for display and Java's
    /// staleness rule (60 s); liveness in this library is judged by `heartbeat` changing.
    pub last_update_secs: u64,
    /// `sts`: per metric name (`C` = CPU), its last averages, oldest first; `-1` marks a
    /// failed read.
    pub stats: BTreeMap<String, Vec<f64>>,
    /// `opr`: per metric name, `[max utilisation]` (CPU: `[100]`).
    pub operating_range: BTreeMap<String, Vec<f64>>,
    /// `hbc`: bumped by the store at every report of a worker of this library; `None` for a
    /// Java worker.
    pub heartbeat: Option<u64>,
    /// `ag`: bumped by the leader when it gives this worker leases.
    pub assignment_generation: u64,
    /// `drn`: the worker is being drained (gets no leases; its leases are handed off).
    pub draining: bool,
}

/// The leader lock (`leaseKey` `Leader`, `entityType` `LEADER`), in the form of Java's
/// DynamoDB lock client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderLock {
    /// `ownerName`: the leader's worker id.
    pub owner: String,
    /// `leaseDuration` (a string of milliseconds, as Java writes it): how long the lock's
    /// version may stay unchanged before another worker may take the lock over.
    pub lease_duration_ms: u64,
    /// `recordVersionNumber`: a new random value at every heartbeat.
    pub record_version: String,
    /// `successor`: the worker the leader chose to watch the lock closely and take over at once
    /// if the leader dies (this library's; Java ignores it).
    pub successor: Option<String>,
    /// `liveness`: `"heartbeat"` when the leader judges workers alive by their heartbeats
    /// (this library's leaders). Workers then need not renew every lease: their heartbeat
    /// keeps all of them. A Java leader's lock has no such attribute: it judges leases by
    /// their counters, so workers renew each lease as Java's do.
    pub liveness_by_heartbeat: bool,
    /// `fleet`: the workers the leader judges alive (this library's; a string set, absent
    /// when empty). The successor watches their heartbeats without scanning the table to
    /// learn who they are.
    pub fleet: Vec<String>,
}

/// The 2.x → 3.x migration state (`leaseKey` `Migration3.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    /// `cv`: `CLIENT_VERSION_2X`, `CLIENT_VERSION_UPGRADE_FROM_2X`,
    /// `CLIENT_VERSION_3X_WITH_ROLLBACK` or `CLIENT_VERSION_3X`.
    pub client_version: String,
    /// `mb`: the worker that wrote it.
    pub modified_by: String,
    /// `mts`: when, epoch milliseconds.
    pub modified_at_ms: u64,
    /// `h`: earlier states, newest first, at most 10.
    pub history: Vec<MigrationHistoryEntry>,
}

/// One earlier migration state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationHistoryEntry {
    /// `cv`.
    pub client_version: String,
    /// `mb`.
    pub modified_by: String,
    /// `mts`.
    pub modified_at_ms: u64,
}

/// Everything in the lease table, as one scan found it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableSnapshot {
    /// The leases.
    pub leases: Vec<Lease>,
    /// Every worker metrics item.
    pub workers: Vec<WorkerMetrics>,
    /// The leader lock, if one is held.
    pub leader: Option<LeaderLock>,
    /// The migration state, if one was written.
    pub migration: Option<MigrationState>,
}

impl TableSnapshot {
    /// Sorts one scanned item into the snapshot; items of a type this library does not know
    /// (Java's `TABLE_MIGRATION`, `STREAM`) are skipped.
    ///
    /// # Errors
    /// [`LeaseError::Malformed`] for an item of a known type without its required attributes.
    pub fn add_item(&mut self, item: &HashMap<String, AttributeValue>) -> Result<()> {
        match entity_type(item) {
            None | Some(ENTITY_LEASE) => self.leases.push(Lease::from_item(item)?),
            Some(ENTITY_WORKER_METRICS) => self.workers.push(WorkerMetrics::from_item(item)?),
            Some(ENTITY_LEADER) => self.leader = Some(LeaderLock::from_item(item)?),
            Some(ENTITY_CLIENT_VERSION_MIGRATION) => {
                self.migration = Some(MigrationState::from_item(item)?)
            }
            Some(_) => {}
        }
        Ok(())
    }
}

fn entity_type(item: &HashMap<String, AttributeValue>) -> Option<&str> {
    match item.get("entityType") {
        Some(AttributeValue::S(kind)) => Some(kind.as_str()),
        _ => None,
    }
}

fn malformed(key: &str, why: impl Into<String>) -> LeaseError {
    LeaseError::Malformed {
        lease_key: key.to_owned(),
        reason: why.into(),
    }
}

fn key_of(item: &HashMap<String, AttributeValue>) -> Result<String> {
    match item.get("leaseKey") {
        Some(AttributeValue::S(key)) => Ok(key.clone()),
        _ => Err(malformed("?", "leaseKey is missing")),
    }
}

fn get_s(item: &HashMap<String, AttributeValue>, key: &str, name: &str) -> Result<Option<String>> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(key, format!("{name} is not of type S"))),
    }
}

fn get_n(item: &HashMap<String, AttributeValue>, key: &str, name: &str) -> Result<Option<f64>> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(n)) => n
            .parse::<f64>()
            .map(Some)
            .map_err(|_| malformed(key, format!("{name} is not a number: {n}"))),
        Some(_) => Err(malformed(key, format!("{name} is not of type N"))),
    }
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn metric_map_to_item(map: &BTreeMap<String, Vec<f64>>) -> AttributeValue {
    AttributeValue::M(
        map.iter()
            .map(|(name, values)| {
                (
                    name.clone(),
                    AttributeValue::L(values.iter().map(n).collect()),
                )
            })
            .collect(),
    )
}

fn metric_map_from_item(
    item: &HashMap<String, AttributeValue>,
    key: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<f64>>> {
    let Some(value) = item.get(name) else {
        return Ok(BTreeMap::new());
    };
    let AttributeValue::M(map) = value else {
        return Err(malformed(key, format!("{name} is not of type M")));
    };
    let mut metrics = BTreeMap::new();
    for (metric, values) in map {
        let AttributeValue::L(values) = values else {
            return Err(malformed(key, format!("{name}.{metric} is not of type L")));
        };
        let mut parsed = Vec::with_capacity(values.len());
        for value in values {
            match value {
                AttributeValue::N(number) => parsed.push(
                    number
                        .parse::<f64>()
                        .map_err(|_| malformed(key, format!("{name}.{metric} holds {number}")))?,
                ),
                _ => {
                    return Err(malformed(
                        key,
                        format!("{name}.{metric} holds a non-number"),
                    ))
                }
            }
        }
        metrics.insert(metric.clone(), parsed);
    }
    Ok(metrics)
}

impl WorkerMetrics {
    /// A report of `worker_id` with no metrics yet.
    pub fn new(worker_id: impl Into<String>) -> WorkerMetrics {
        WorkerMetrics {
            worker_id: worker_id.into(),
            ..WorkerMetrics::default()
        }
    }

    /// Whether a leader may give this worker leases, by Java's rule: it reported (`lut` set),
    /// and every metric it reports has an operating range whose first value is not 0. A worker
    /// without metrics is valid (it is balanced by throughput).
    pub fn is_valid(&self) -> bool {
        self.last_update_secs > 0
            && self.stats.keys().all(|name| {
                self.operating_range
                    .get(name)
                    .and_then(|range| range.first())
                    .is_some_and(|max| *max != 0.0)
            })
    }

    /// Whether the worker's newest value of some metric is `-1` (it failed to read it): by
    /// Java's rule it then gets no new leases.
    pub fn has_failing_metric(&self) -> bool {
        self.stats
            .values()
            .any(|values| values.last().is_some_and(|v| *v == -1.0))
    }

    /// The item Java's worker metrics DAO writes, with this library's additions; `hbc` and
    /// `ag` are left out (the store bumps them with `ADD`, so concurrent writers never lose an
    /// increment).
    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("leaseKey".to_owned(), s(&self.worker_id)),
            ("entityType".to_owned(), s(ENTITY_WORKER_METRICS)),
            ("lut".to_owned(), n(self.last_update_secs)),
            ("sts".to_owned(), metric_map_to_item(&self.stats)),
            ("opr".to_owned(), metric_map_to_item(&self.operating_range)),
            // Java 3.5's "stats updated" marker and its time.
            ("sup".to_owned(), n(1)),
            ("slu".to_owned(), n(self.last_update_secs)),
        ])
    }

    /// Reads a worker metrics item written by Java or by this library.
    ///
    /// # Errors
    /// [`LeaseError::Malformed`] for an item without a key or with wrongly typed attributes.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<WorkerMetrics> {
        let key = key_of(item)?;
        let number = |name: &str| get_n(item, &key, name);
        Ok(WorkerMetrics {
            last_update_secs: number("lut")?.map_or(0, |v| v as u64),
            stats: metric_map_from_item(item, &key, "sts")?,
            operating_range: metric_map_from_item(item, &key, "opr")?,
            heartbeat: number("hbc")?.map(|v| v as u64),
            assignment_generation: number("ag")?.map_or(0, |v| v as u64),
            draining: matches!(item.get("drn"), Some(AttributeValue::Bool(true))),
            worker_id: key,
        })
    }
}

impl LeaderLock {
    /// The lock's item.
    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::from([
            ("leaseKey".to_owned(), s(LEADER_KEY)),
            ("entityType".to_owned(), s(ENTITY_LEADER)),
            ("ownerName".to_owned(), s(&self.owner)),
            // Java's lock client writes the duration as a string.
            (
                "leaseDuration".to_owned(),
                s(&self.lease_duration_ms.to_string()),
            ),
            ("recordVersionNumber".to_owned(), s(&self.record_version)),
        ]);
        if let Some(successor) = &self.successor {
            item.insert("successor".to_owned(), s(successor));
        }
        if self.liveness_by_heartbeat {
            item.insert("liveness".to_owned(), s("heartbeat"));
        }
        if !self.fleet.is_empty() {
            item.insert("fleet".to_owned(), AttributeValue::Ss(self.fleet.clone()));
        }
        item
    }

    /// Reads the lock item, as written by Java's lock client or by this library.
    ///
    /// # Errors
    /// [`LeaseError::Malformed`] when the owner or version is missing.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<LeaderLock> {
        let key = key_of(item)?;
        let required = |name: &str| -> Result<String> {
            get_s(item, &key, name)?.ok_or_else(|| malformed(&key, format!("{name} is missing")))
        };
        let lease_duration_ms = match item.get("leaseDuration") {
            Some(AttributeValue::S(ms)) => ms.parse::<u64>().ok(),
            Some(AttributeValue::N(ms)) => ms.parse::<f64>().ok().map(|v| v as u64),
            _ => None,
        }
        .ok_or_else(|| malformed(&key, "leaseDuration is missing or not a number"))?;
        Ok(LeaderLock {
            owner: required("ownerName")?,
            lease_duration_ms,
            record_version: required("recordVersionNumber")?,
            successor: get_s(item, &key, "successor")?,
            liveness_by_heartbeat: get_s(item, &key, "liveness")?.as_deref() == Some("heartbeat"),
            fleet: match item.get("fleet") {
                None | Some(AttributeValue::Null(_)) => Vec::new(),
                Some(AttributeValue::Ss(ids)) => ids.clone(),
                Some(_) => return Err(malformed(&key, "fleet is not of type SS")),
            },
        })
    }
}

impl MigrationState {
    /// The state's item.
    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        let entry = |cv: &str, mb: &str, mts: u64| {
            AttributeValue::M(HashMap::from([
                ("cv".to_owned(), s(cv)),
                ("mb".to_owned(), s(mb)),
                ("mts".to_owned(), n(mts)),
            ]))
        };
        HashMap::from([
            ("leaseKey".to_owned(), s(MIGRATION_KEY)),
            ("entityType".to_owned(), s(ENTITY_CLIENT_VERSION_MIGRATION)),
            ("cv".to_owned(), s(&self.client_version)),
            ("mb".to_owned(), s(&self.modified_by)),
            ("mts".to_owned(), n(self.modified_at_ms)),
            (
                "h".to_owned(),
                AttributeValue::L(
                    self.history
                        .iter()
                        .map(|h| entry(&h.client_version, &h.modified_by, h.modified_at_ms))
                        .collect(),
                ),
            ),
        ])
    }

    /// Reads the migration state item.
    ///
    /// # Errors
    /// [`LeaseError::Malformed`] when `cv` is missing or the history is malformed.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> Result<MigrationState> {
        let key = key_of(item)?;
        let history = match item.get("h") {
            None => Vec::new(),
            Some(AttributeValue::L(entries)) => entries
                .iter()
                .map(|entry| match entry {
                    AttributeValue::M(fields) => Ok(MigrationHistoryEntry {
                        client_version: get_s(fields, &key, "cv")?.unwrap_or_default(),
                        modified_by: get_s(fields, &key, "mb")?.unwrap_or_default(),
                        modified_at_ms: get_n(fields, &key, "mts")?.map_or(0, |v| v as u64),
                    }),
                    _ => Err(malformed(&key, "h holds a non-map")),
                })
                .collect::<Result<Vec<_>>>()?,
            Some(_) => return Err(malformed(&key, "h is not of type L")),
        };
        Ok(MigrationState {
            client_version: get_s(item, &key, "cv")?
                .ok_or_else(|| malformed(&key, "cv is missing"))?,
            modified_by: get_s(item, &key, "mb")?.unwrap_or_default(),
            modified_at_ms: get_n(item, &key, "mts")?.map_or(0, |v| v as u64),
            history,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_metrics_round_trip_through_the_java_item() {
        let mut metrics = WorkerMetrics::new("worker-1");
        metrics.last_update_secs = 1_700_000_000;
        metrics
            .stats
            .insert(METRIC_CPU.to_owned(), vec![12.5, 40.0, -1.0]);
        metrics
            .operating_range
            .insert(METRIC_CPU.to_owned(), vec![100.0]);
        let mut item = metrics.to_item();
        assert_eq!(item["entityType"], s(ENTITY_WORKER_METRICS));
        assert!(!Lease::is_lease_item(&item));
        item.insert("hbc".to_owned(), n(7));
        item.insert("ag".to_owned(), n(3));
        item.insert("drn".to_owned(), AttributeValue::Bool(true));
        let read = WorkerMetrics::from_item(&item).unwrap();
        assert_eq!(read.stats, metrics.stats);
        assert_eq!(read.heartbeat, Some(7));
        assert_eq!(read.assignment_generation, 3);
        assert!(read.draining);
        assert!(read.has_failing_metric());
        assert!(read.is_valid());
    }

    #[test]
    fn a_metric_without_an_operating_range_makes_the_worker_invalid() {
        let mut metrics = WorkerMetrics::new("w");
        metrics.last_update_secs = 1;
        assert!(metrics.is_valid(), "no metrics: balanced by throughput");
        metrics.stats.insert(METRIC_CPU.to_owned(), vec![10.0]);
        assert!(!metrics.is_valid());
        metrics
            .operating_range
            .insert(METRIC_CPU.to_owned(), vec![0.0]);
        assert!(!metrics.is_valid());
    }

    #[test]
    fn the_lock_reads_java_string_durations_and_ignores_unknown_attributes() {
        let mut item = LeaderLock {
            owner: "w1".into(),
            lease_duration_ms: 120_000,
            record_version: "rvn".into(),
            successor: None,
            liveness_by_heartbeat: false,
            fleet: Vec::new(),
        }
        .to_item();
        assert_eq!(item["leaseDuration"], s("120000"));
        assert!(!item.contains_key("fleet"), "an empty fleet is not written");
        item.insert("isReleased".to_owned(), AttributeValue::Bool(false));
        let lock = LeaderLock::from_item(&item).unwrap();
        assert_eq!(lock.lease_duration_ms, 120_000);
        assert_eq!(lock.owner, "w1");
        assert!(!lock.liveness_by_heartbeat, "a Java lock");
        assert!(lock.fleet.is_empty());
        let ours = LeaderLock {
            successor: Some("w2".into()),
            liveness_by_heartbeat: true,
            fleet: vec!["w1".into(), "w2".into()],
            ..lock
        };
        assert_eq!(LeaderLock::from_item(&ours.to_item()).unwrap(), ours);
    }

    #[test]
    fn a_snapshot_sorts_items_and_skips_unknown_kinds() {
        let mut snapshot = TableSnapshot::default();
        let lease = Lease::new(
            "shardId-000000000000",
            crate::StoredCheckpoint::new("LATEST"),
        );
        snapshot.add_item(&lease.to_item()).unwrap();
        snapshot
            .add_item(&WorkerMetrics::new("w").to_item())
            .unwrap();
        snapshot
            .add_item(&HashMap::from([
                ("leaseKey".to_owned(), s("TableMigration3.5")),
                ("entityType".to_owned(), s("TABLE_MIGRATION")),
            ]))
            .unwrap();
        let migration = MigrationState {
            client_version: "CLIENT_VERSION_3X".into(),
            modified_by: "w".into(),
            modified_at_ms: 5,
            history: vec![MigrationHistoryEntry {
                client_version: "CLIENT_VERSION_3X_WITH_ROLLBACK".into(),
                modified_by: "w".into(),
                modified_at_ms: 4,
            }],
        };
        snapshot.add_item(&migration.to_item()).unwrap();
        assert_eq!(snapshot.leases.len(), 1);
        assert_eq!(snapshot.workers.len(), 1);
        assert_eq!(snapshot.migration, Some(migration));
    }
}
