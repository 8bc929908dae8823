//! Reading an application's lease table: leases, and the KCL 3 items that share the table
//! (leader lock, worker metrics, migration state), each read as its own kind.

use std::collections::HashMap;

use anyhow::{bail, Context};
use aws_sdk_dynamodb::types::{AttributeValue, KeyType};
use kcl_lease::{
    LeaderLock, Lease, MigrationState, WorkerMetrics, ENTITY_CLIENT_VERSION_MIGRATION,
    ENTITY_LEADER, ENTITY_WORKER_METRICS,
};
use serde_json::{json, Value};

use crate::aws::{explain, has_code};

/// One item of the lease table, read by the library's own readers, so this tool sees each
/// item exactly as a worker does.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A lease (no `entityType`, or `LEASE`).
    Lease(Lease),
    /// The KCL 3 leader lock (`Leader`).
    Leader(LeaderLock),
    /// A KCL 3 worker's metrics.
    WorkerMetrics(WorkerMetrics),
    /// The KCL 3 client-version migration state (`Migration3.0`).
    Migration(MigrationState),
    /// Another tagged item (e.g. `TableMigration3.5`), or a KCL 3 item that cannot be read,
    /// shown by key and kind only.
    Other {
        /// Its `leaseKey`.
        key: String,
        /// Its `entityType`, and why it could not be read when it is of a known kind.
        entity_type: String,
    },
}

/// Everything in the table at one scan.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The items, leases sorted by key.
    pub entries: Vec<Entry>,
}

impl Snapshot {
    /// The leases.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Lease(lease) => Some(lease),
            _ => None,
        })
    }

    /// The leader lock, if the fleet has one.
    pub fn leader(&self) -> Option<&LeaderLock> {
        self.entries.iter().find_map(|e| match e {
            Entry::Leader(leader) => Some(leader),
            _ => None,
        })
    }

    /// The migration state, if one was written.
    pub fn migration(&self) -> Option<&MigrationState> {
        self.entries.iter().find_map(|e| match e {
            Entry::Migration(m) => Some(m),
            _ => None,
        })
    }

    /// Worker metrics items.
    pub fn worker_metrics(&self) -> impl Iterator<Item = &WorkerMetrics> {
        self.entries.iter().filter_map(|e| match e {
            Entry::WorkerMetrics(m) => Some(m),
            _ => None,
        })
    }
}

/// Checks that `table` exists and has the lease table's key, so that every later error is about
/// the fleet, not about a mistyped name.
pub async fn check_lease_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> anyhow::Result<()> {
    let described = match dynamodb.describe_table().table_name(table).send().await {
        Ok(out) => out,
        Err(err) if has_code(&err, "ResourceNotFoundException") => bail!(
            "no lease table named {table}: a KCL application's lease table is named after the \
             application (or set with --table); check the name and the region"
        ),
        Err(err) => return Err(explain(&format!("describing table {table}"), err)),
    };
    let hash_key = described
        .table()
        .map(|t| t.key_schema())
        .unwrap_or_default()
        .iter()
        .find(|k| k.key_type() == &KeyType::Hash)
        .map(|k| k.attribute_name().to_owned());
    if hash_key.as_deref() != Some("leaseKey") {
        bail!(
            "table {table} is not a KCL lease table: its key is {}, a lease table's is leaseKey",
            hash_key.unwrap_or_else(|| "unknown".to_owned())
        );
    }
    Ok(())
}

/// Reads every item of `table` (consistent scan).
pub async fn scan(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<Snapshot> {
    let mut entries = Vec::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|err| explain(&format!("reading table {table}"), err))?;
        for item in page.items() {
            entries.push(classify(item)?);
        }
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => break,
        }
    }
    entries.sort_by(|a, b| entry_key(a).cmp(entry_key(b)));
    Ok(Snapshot { entries })
}

fn entry_key(entry: &Entry) -> &str {
    match entry {
        Entry::Lease(lease) => &lease.lease_key,
        Entry::Leader(_) => kcl_lease::LEADER_KEY,
        Entry::WorkerMetrics(m) => &m.worker_id,
        Entry::Migration(_) => kcl_lease::MIGRATION_KEY,
        Entry::Other { key, .. } => key,
    }
}

/// Reads an item as the kind its `entityType` names; untagged items are leases, as in the
/// Java KCL (2.x tables have no tags). A lease that cannot be read is an error (its shard's
/// state is unknown); any other unreadable item is shown as it is.
pub fn classify(item: &HashMap<String, AttributeValue>) -> anyhow::Result<Entry> {
    let key = string(item, "leaseKey").unwrap_or_default();
    if Lease::is_lease_item(item) {
        return Ok(Entry::Lease(
            Lease::from_item(item).with_context(|| format!("reading lease {key}"))?,
        ));
    }
    let entity_type = string(item, "entityType").unwrap_or_else(|| "?".to_owned());
    let read = match entity_type.as_str() {
        ENTITY_LEADER => LeaderLock::from_item(item).map(Entry::Leader),
        ENTITY_WORKER_METRICS => WorkerMetrics::from_item(item).map(Entry::WorkerMetrics),
        ENTITY_CLIENT_VERSION_MIGRATION => MigrationState::from_item(item).map(Entry::Migration),
        _ => return Ok(Entry::Other { key, entity_type }),
    };
    Ok(read.unwrap_or_else(|err| Entry::Other {
        key,
        entity_type: format!("{entity_type}, unreadable: {err}"),
    }))
}

fn string(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

/// The leader lock as JSON.
pub fn leader_json(leader: &LeaderLock) -> Value {
    json!({
        "owner": leader.owner,
        "successor": leader.successor,
        "leaseDurationMillis": leader.lease_duration_ms,
        "recordVersionNumber": leader.record_version,
        "livenessByHeartbeat": leader.liveness_by_heartbeat,
    })
}

/// A worker's metrics item as JSON; ages against `now_epoch_s`.
pub fn worker_json(worker: &WorkerMetrics, now_epoch_s: u64) -> Value {
    json!({
        "workerId": worker.worker_id,
        "lastUpdateEpochSeconds": worker.last_update_secs,
        "lastUpdateAgeSeconds": now_epoch_s.saturating_sub(worker.last_update_secs),
        "heartbeat": worker.heartbeat,
        "assignmentGeneration": worker.assignment_generation,
        "draining": worker.draining,
        "cpu": latest_cpu(worker),
        "stats": worker.stats,
        "operatingRange": worker.operating_range,
    })
}

/// The worker's newest CPU utilisation, percent; `None` without one (or a failed read, -1).
pub fn latest_cpu(worker: &WorkerMetrics) -> Option<f64> {
    worker
        .stats
        .get(kcl_lease::METRIC_CPU)?
        .last()
        .copied()
        .filter(|v| *v >= 0.0)
}

/// The newest value of each metric, `C=42 M=60`.
pub fn metrics_summary(worker: &WorkerMetrics) -> String {
    if worker.stats.is_empty() {
        return "no metrics".to_owned();
    }
    worker
        .stats
        .iter()
        .map(|(name, values)| match values.last() {
            Some(v) => format!("{name}={v}"),
            None => format!("{name}=-"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The migration state as JSON.
pub fn migration_json(migration: &MigrationState) -> Value {
    json!({
        "clientVersion": migration.client_version,
        "modifiedBy": migration.modified_by,
        "modifiedAtEpochMillis": migration.modified_at_ms,
        "history": migration.history.iter().map(|h| json!({
            "clientVersion": h.client_version,
            "modifiedBy": h.modified_by,
            "modifiedAtEpochMillis": h.modified_at_ms,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    #[test]
    fn tagged_items_are_not_read_as_leases() {
        let leader = HashMap::from([
            ("leaseKey".to_owned(), s("Leader")),
            ("entityType".to_owned(), s("LEADER")),
            ("ownerName".to_owned(), s("worker-a")),
            ("leaseDuration".to_owned(), s("120000")),
            ("recordVersionNumber".to_owned(), s("rvn-1")),
        ]);
        match classify(&leader).unwrap() {
            Entry::Leader(l) => {
                assert_eq!(l.owner, "worker-a");
                assert_eq!(l.lease_duration_ms, 120_000);
            }
            other => panic!("read as {other:?}"),
        }
        let java_lease = HashMap::from([
            ("leaseKey".to_owned(), s("shardId-000000000000")),
            ("entityType".to_owned(), s("LEASE")),
            ("leaseCounter".to_owned(), AttributeValue::N("3".into())),
            ("checkpoint".to_owned(), s("TRIM_HORIZON")),
            // The Java KCL 3 writes this as a number when it creates a lease.
            (
                "pendingCheckpointState".to_owned(),
                AttributeValue::N("0".into()),
            ),
        ]);
        assert!(matches!(classify(&java_lease).unwrap(), Entry::Lease(l) if l.lease_counter == 3));
        let table_migration = HashMap::from([
            ("leaseKey".to_owned(), s("TableMigration3.5")),
            ("entityType".to_owned(), s("TABLE_MIGRATION")),
        ]);
        assert!(matches!(
            classify(&table_migration).unwrap(),
            Entry::Other { .. }
        ));
        let broken_lock = HashMap::from([
            ("leaseKey".to_owned(), s("Leader")),
            ("entityType".to_owned(), s("LEADER")),
        ]);
        assert!(matches!(
            classify(&broken_lock).unwrap(),
            Entry::Other { entity_type, .. } if entity_type.starts_with("LEADER, unreadable")
        ));
    }
}
