//! The DynamoDB API (JSON 1.0) that lease tables need, and what users poke at them with.
//!
//! # Build or buy
//! Embeddable engines exist (the `dynoxide` name on crates.io was a 0.0.1 placeholder when
//! this was written), but none we found was maintained, light to build on two cores, and
//! faithful to the condition/update expression semantics the lease protocol depends on. The
//! subset here is small enough to own: a hand-written expression parser and evaluator
//! (`expr`), exact decimals (`value`), tables and items in memory (`table`), and a
//! group-committed write-ahead log (`crate::durable::wal`) for durability in the data directory.
//!
//! # Layout
//! - this module: the service, its lock and its log;
//! - `api`: the dispatch on the operation name and the request-field helpers;
//! - `table`: tables, keys, indexes and their descriptions;
//! - `ops`: the operations, by family (tables, items, batches and transactions, reads);
//! - `legacy`: the pre-expression request forms, translated into expressions;
//! - `expr`: condition, update, projection and key-condition expressions (`parse`, `eval`);
//! - `value`: attribute values and exact decimals.
//!
//! # Consistency
//! One mutex guards all tables: every request sees and changes them atomically, so conditional
//! writes are linearizable and every read is strongly consistent. A change is applied and its
//! log record queued under the lock; the response waits, outside the lock, until the record is
//! on disk.

mod api;
pub(crate) mod fuzzing;
mod legacy;
mod ops;
mod table;

mod expr;
mod value;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use crate::clock::now_ms;
use crate::durable::wal;
use crate::wire::validation;
use crate::wire::{ApiError, ApiResult, ErrorKind};
use crate::Config;
use api::*;
use expr::{Cond, Path, Placeholders, Step, Update};
use table::*;
use value::{compare, item_size, type_of, Item};

/// The DynamoDB service of the emulator.
#[derive(Debug)]
pub(crate) struct DynamoDb {
    config: Config,
    tables: Mutex<BTreeMap<String, Table>>,
    wal: Option<wal::Wal>,
}

/// What a mutation wrote, for the log.
enum Change {
    Put(String, Item),
    Delete(String),
}

impl DynamoDb {
    /// Opens the DynamoDB store under `config` (recovering the data directory if any).
    pub(crate) fn open(config: &Config) -> std::io::Result<DynamoDb> {
        let mut tables = BTreeMap::new();
        let wal = match &config.data_dir {
            None => None,
            Some(dir) => {
                let mut recovered: BTreeMap<String, Table> = BTreeMap::new();
                let storage = crate::durable::storage::disk();
                let wal = wal::Wal::open(&*storage, &dir.join("dynamodb"), |snapshot, records| {
                    if let Some(snapshot) = snapshot {
                        recovered = serde_json::from_value(snapshot)
                            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                    }
                    for record in records {
                        replay(&mut recovered, record);
                    }
                    serde_json::to_value(&recovered).map_err(std::io::Error::other)
                })?;
                tables = recovered;
                tracing::info!(tables = tables.len(), dir = %wal.dir().display(), "recovered DynamoDB data");
                Some(wal)
            }
        };
        Ok(DynamoDb {
            config: config.clone(),
            tables: Mutex::new(tables),
            wal,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Table>> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues log records for `changes` (under the tables' lock, so the log keeps apply order).
    fn log(
        &self,
        table: &str,
        changes: Vec<Change>,
    ) -> Option<Vec<tokio::sync::oneshot::Receiver<std::io::Result<()>>>> {
        let wal = self.wal.as_ref()?;
        Some(
            changes
                .into_iter()
                .map(|change| match change {
                    Change::Put(key, item) => {
                        wal.append(&json!({"t": "put", "table": table, "key": key, "item": item}))
                    }
                    Change::Delete(key) => {
                        wal.append(&json!({"t": "del", "table": table, "key": key}))
                    }
                })
                .collect(),
        )
    }

    fn log_table(
        &self,
        table: &Table,
    ) -> Option<tokio::sync::oneshot::Receiver<std::io::Result<()>>> {
        Some(
            self.wal
                .as_ref()?
                .append(&json!({"t": "table", "meta": table.meta})),
        )
    }

    async fn durable(
        waits: Option<Vec<tokio::sync::oneshot::Receiver<std::io::Result<()>>>>,
    ) -> ApiResult<()> {
        for wait in waits.into_iter().flatten() {
            match wait.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return Err(ApiError::internal(format!("storage failure: {err}"))),
                Err(_) => return Err(ApiError::internal("the DynamoDB log writer stopped")),
            }
        }
        Ok(())
    }

    fn purge(&self, tables: &mut BTreeMap<String, Table>) {
        let now = now_ms();
        tables.retain(|_, t| t.meta.deleting_until.is_none_or(|until| now < until));
    }

    fn with_table<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Table) -> ApiResult<T>,
    ) -> ApiResult<T> {
        let mut tables = self.lock();
        self.purge(&mut tables);
        let table = tables.get_mut(name).ok_or_else(not_found)?;
        if table.meta.deleting_until.is_some() {
            return Err(not_found());
        }
        f(table)
    }
}

/// Applies one log record during recovery.
fn replay(tables: &mut BTreeMap<String, Table>, record: Json) {
    match record.get("t").and_then(Json::as_str) {
        Some("table") => {
            if let Ok(meta) = serde_json::from_value::<TableMeta>(record["meta"].clone()) {
                match tables.get_mut(&meta.name) {
                    Some(table) => table.meta = meta,
                    None => {
                        tables.insert(
                            meta.name.clone(),
                            Table {
                                meta,
                                items: BTreeMap::new(),
                            },
                        );
                    }
                }
            }
        }
        Some("drop") => {
            if let Some(name) = record.get("name").and_then(Json::as_str) {
                tables.remove(name);
            }
        }
        Some("put") => {
            if let (Some(table), Some(key), Some(Json::Object(item))) = (
                record.get("table").and_then(Json::as_str),
                record.get("key").and_then(Json::as_str),
                record.get("item"),
            ) {
                if let Some(table) = tables.get_mut(table) {
                    table.items.insert(key.to_owned(), item.clone());
                }
            }
        }
        Some("del") => {
            if let (Some(table), Some(key)) = (
                record.get("table").and_then(Json::as_str),
                record.get("key").and_then(Json::as_str),
            ) {
                if let Some(table) = tables.get_mut(table) {
                    table.items.remove(key);
                }
            }
        }
        _ => {}
    }
}
