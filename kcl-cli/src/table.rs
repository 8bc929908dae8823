//! Reading an application's lease table: leases, and the KCL 3 items that share the table
//! (leader lock, worker metrics, migration state), each read as its own kind.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context};
use aws_sdk_dynamodb::types::{AttributeValue, KeyType};
use kcl_lease::Lease;
use serde_json::{json, Value};

use crate::aws::{explain, has_code};

/// One item of the lease table.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A lease (no `entityType`, or `LEASE`).
    Lease(Lease),
    /// The KCL 3 leader lock (`Leader`).
    Leader(Leader),
    /// A KCL 3 worker's metrics.
    WorkerMetrics(WorkerMetrics),
    /// The KCL 3 client-version migration state (`Migration3.0`).
    Migration(Migration),
    /// Another tagged item (e.g. `TableMigration3.5`), shown by key and kind only.
    Other {
        /// Its `leaseKey`.
        key: String,
        /// Its `entityType`.
        entity_type: String,
    },
}

/// The leader lock item of the Java KCL 3 (`DynamoDBLockBasedLeaderDecider`).
#[derive(Debug, Clone)]
pub struct Leader {
    /// `ownerName`: the leader's worker id.
    pub owner: Option<String>,
    /// `leaseDuration`, milliseconds.
    pub lease_duration_ms: Option<u64>,
    /// `recordVersionNumber`: changes with every heartbeat.
    pub record_version: Option<String>,
}

/// A worker's metrics item (`WorkerMetricStats`).
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    /// The worker id.
    pub worker_id: String,
    /// `lut`: last update, epoch seconds.
    pub last_update_epoch_s: Option<u64>,
    /// `sts`: recent values per metric name (C CPU, M memory, NI/NO network, T throughput).
    pub stats: BTreeMap<String, Vec<f64>>,
    /// `opr`: the operating range (maximum) per metric.
    pub operating_range: BTreeMap<String, Vec<f64>>,
}

/// The `Migration3.0` item.
#[derive(Debug, Clone)]
pub struct Migration {
    /// `cv`: the client version the fleet runs in.
    pub client_version: Option<String>,
    /// `mb`: the worker that last changed it.
    pub modified_by: Option<String>,
    /// `mts`: when, epoch milliseconds.
    pub modified_at_ms: Option<u64>,
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
    pub fn leader(&self) -> Option<&Leader> {
        self.entries.iter().find_map(|e| match e {
            Entry::Leader(leader) => Some(leader),
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
        Entry::Leader(_) => "Leader",
        Entry::WorkerMetrics(m) => &m.worker_id,
        Entry::Migration(_) => "Migration3.0",
        Entry::Other { key, .. } => key,
    }
}

/// Reads an item as the kind its `entityType` names; untagged items are leases, as in the
/// Java KCL (2.x tables have no tags).
pub fn classify(item: &HashMap<String, AttributeValue>) -> anyhow::Result<Entry> {
    let key = string(item, "leaseKey").unwrap_or_default();
    if Lease::is_lease_item(item) {
        return Ok(Entry::Lease(
            Lease::from_item(item).with_context(|| format!("reading lease {key}"))?,
        ));
    }
    let entity_type = string(item, "entityType");
    Ok(match entity_type.as_deref() {
        Some("LEADER") => Entry::Leader(Leader {
            owner: string(item, "ownerName"),
            lease_duration_ms: string(item, "leaseDuration").and_then(|d| d.parse().ok()),
            record_version: string(item, "recordVersionNumber"),
        }),
        Some("WORKER_METRIC_STATS") => Entry::WorkerMetrics(WorkerMetrics {
            worker_id: string(item, "wid").unwrap_or(key),
            last_update_epoch_s: number(item, "lut").map(|n| n as u64),
            stats: number_lists(item, "sts"),
            operating_range: number_lists(item, "opr"),
        }),
        Some("CLIENT_VERSION_MIGRATION") => Entry::Migration(Migration {
            client_version: string(item, "cv"),
            modified_by: string(item, "mb"),
            modified_at_ms: number(item, "mts").map(|n| n as u64),
        }),
        other => Entry::Other {
            key,
            // A tag that is not a string: shown as it is not a kind this tool knows.
            entity_type: other.unwrap_or("?").to_owned(),
        },
    })
}

fn string(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<f64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn number_lists(item: &HashMap<String, AttributeValue>, name: &str) -> BTreeMap<String, Vec<f64>> {
    let Some(AttributeValue::M(map)) = item.get(name) else {
        return BTreeMap::new();
    };
    map.iter()
        .map(|(metric, values)| {
            let values = values
                .as_l()
                .map(|l| {
                    l.iter()
                        .filter_map(|v| v.as_n().ok()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            (metric.clone(), values)
        })
        .collect()
}

impl Leader {
    /// JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "owner": self.owner,
            "leaseDurationMillis": self.lease_duration_ms,
            "recordVersionNumber": self.record_version,
        })
    }
}

impl WorkerMetrics {
    /// JSON form.
    pub fn to_json(&self, now_epoch_s: u64) -> Value {
        json!({
            "workerId": self.worker_id,
            "lastUpdateEpochSeconds": self.last_update_epoch_s,
            "lastUpdateAgeSeconds": self.last_update_epoch_s.map(|t| now_epoch_s.saturating_sub(t)),
            "stats": self.stats,
            "operatingRange": self.operating_range,
        })
    }

    /// The newest value of each metric, `C=42 M=60`.
    pub fn summary(&self) -> String {
        if self.stats.is_empty() {
            return "no metrics".to_owned();
        }
        self.stats
            .iter()
            .map(|(name, values)| match values.last() {
                Some(v) => format!("{name}={v}"),
                None => format!("{name}=-"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Migration {
    /// JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "clientVersion": self.client_version,
            "modifiedBy": self.modified_by,
            "modifiedAtEpochMillis": self.modified_at_ms,
        })
    }
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
                assert_eq!(l.owner.as_deref(), Some("worker-a"));
                assert_eq!(l.lease_duration_ms, Some(120_000));
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
    }
}
