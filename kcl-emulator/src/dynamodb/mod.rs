//! The DynamoDB API (JSON 1.0) that lease tables need, and what users poke at them with.
//!
//! # Build or buy
//! Embeddable engines exist (the `dynoxide` name on crates.io was a 0.0.1 placeholder when
//! this was written), but none we found was maintained, light to build on two cores, and
//! faithful to the condition/update expression semantics the lease protocol depends on. The
//! subset here is small enough to own: a hand-written expression parser and evaluator
//! (`expr`), exact decimals (`value`), tables and items in memory (this module), and a
//! group-committed write-ahead log (`wal`) for durability in the data directory.
//!
//! # Consistency
//! One mutex guards all tables: every request sees and changes them atomically, so conditional
//! writes are linearizable and every read is strongly consistent. A change is applied and its
//! log record queued under the lock; the response waits, outside the lock, until the record is
//! on disk.

mod expr;
pub(crate) mod fuzzing;
mod value;
mod wal;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};

use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::store::now_ms;
use crate::Config;
use expr::{Cond, Path, Placeholders, Step, Update};
use value::{compare, item_size, type_of, Item};

/// Largest item DynamoDB accepts.
const MAX_ITEM_BYTES: usize = 400 * 1024;
/// Largest partition key value (UTF-8 or raw binary bytes).
const MAX_HASH_KEY_BYTES: usize = 2048;
/// Largest sort key value.
const MAX_RANGE_KEY_BYTES: usize = 1024;
/// Most data one Query or Scan page reads.
const MAX_PAGE_BYTES: usize = 1024 * 1024;
/// Most data one BatchGetItem returns; the keys past it come back as UnprocessedKeys.
const MAX_BATCH_GET_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyDef {
    name: String,
    /// `S`, `N` or `B`.
    kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexMeta {
    name: String,
    hash: KeyDef,
    range: Option<KeyDef>,
    projection: Json,
    throughput: Option<Json>,
    /// A local secondary index (same partition key as the table, strongly consistent reads).
    #[serde(default)]
    local: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TableMeta {
    name: String,
    arn: String,
    hash: KeyDef,
    range: Option<KeyDef>,
    attribute_definitions: Json,
    indexes: Vec<IndexMeta>,
    billing_mode: String,
    throughput: Option<Json>,
    created_ms: i64,
    creating_until: i64,
    deleting_until: Option<i64>,
    ttl: Option<(String, bool)>,
    tags: BTreeMap<String, String>,
    pitr: bool,
    deletion_protection: bool,
    table_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Table {
    meta: TableMeta,
    /// Items by canonical key (JSON of the key values), which also gives scans a stable order.
    items: BTreeMap<String, Item>,
}

impl TableMeta {
    fn key_names(&self) -> Vec<&str> {
        std::iter::once(self.hash.name.as_str())
            .chain(self.range.as_ref().map(|r| r.name.as_str()))
            .collect()
    }

    fn status(&self, now: i64) -> &'static str {
        if self.deleting_until.is_some() {
            "DELETING"
        } else if now < self.creating_until {
            "CREATING"
        } else {
            "ACTIVE"
        }
    }
}

/// The DynamoDB service of the emulator.
#[derive(Debug)]
pub(crate) struct DynamoDb {
    config: Config,
    tables: Mutex<BTreeMap<String, Table>>,
    wal: Option<wal::Wal>,
}

fn s(v: &Json) -> Option<&str> {
    v.as_str()
}

fn field<'a>(body: &'a Json, name: &str) -> Option<&'a Json> {
    body.get(name).filter(|v| !v.is_null())
}

fn required_str<'a>(body: &'a Json, name: &str) -> ApiResult<&'a str> {
    match field(body, name) {
        Some(Json::String(text)) => Ok(text),
        Some(_) => Err(ApiError::serialization(format!("{name} must be a string"))),
        None => Err(ApiError::validation(format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
            lower_first(name)
        ))),
    }
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn not_found() -> ApiError {
    ApiError::not_found("Requested resource not found")
}

fn conditional_failed(old: Option<&Item>, body: &Json) -> ApiError {
    let error = ApiError::new(
        ErrorKind::ConditionalCheckFailed,
        "The conditional request failed",
    );
    match (
        old,
        field(body, "ReturnValuesOnConditionCheckFailure").and_then(s),
    ) {
        (Some(old), Some("ALL_OLD")) => error.with_extra(Map::from_iter([(
            "Item".to_owned(),
            Json::Object(old.clone()),
        )])),
        _ => error,
    }
}

/// Validates and normalizes an item's attribute values.
fn validated_item(raw: &Json) -> ApiResult<Item> {
    let Some(map) = raw.as_object() else {
        return Err(ApiError::serialization("Item must be a map"));
    };
    let mut item = map.clone();
    for value in item.values_mut() {
        value::validate(value)?;
    }
    Ok(item)
}

impl Table {
    /// The canonical key of `key` (which must hold exactly the key attributes, correctly typed).
    fn key_of(&self, key: &Item, exact: bool) -> ApiResult<String> {
        let mismatch =
            || ApiError::validation("The provided key element does not match the schema");
        if exact && key.len() != self.meta.key_names().len() {
            return Err(mismatch());
        }
        let mut parts = Vec::new();
        for def in std::iter::once(&self.meta.hash).chain(&self.meta.range) {
            let value = key.get(&def.name).ok_or_else(|| {
                if exact {
                    mismatch()
                } else {
                    ApiError::validation(format!(
                        "One or more parameter values were invalid: Missing the key {} in the item",
                        def.name
                    ))
                }
            })?;
            if type_of(value) != Some(def.kind.as_str()) {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: Type mismatch for key {} expected: {} actual: {}",
                    def.name,
                    def.kind,
                    type_of(value).unwrap_or("?")
                )));
            }
            if value[&def.kind].as_str() == Some("") {
                return Err(ApiError::validation(format!(
                    "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: {}",
                    def.name
                )));
            }
            let limit = if def.name == self.meta.hash.name {
                MAX_HASH_KEY_BYTES
            } else {
                MAX_RANGE_KEY_BYTES
            };
            if value::key_size(value) > limit {
                return Err(ApiError::validation(if limit == MAX_HASH_KEY_BYTES {
                    format!("One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of {limit} bytes")
                } else {
                    format!("One or more parameter values were invalid: Aggregated size of all range keys has exceeded the size limit of {limit} bytes")
                }));
            }
            parts.push(value.clone());
        }
        Ok(serde_json::to_string(&parts).expect("values serialize"))
    }
}

/// A condition from ConditionExpression or the legacy Expected form.
fn write_condition(body: &Json, placeholders: &mut Placeholders) -> ApiResult<Option<Cond>> {
    match (field(body, "ConditionExpression").and_then(s), field(body, "Expected")) {
        (Some(_), Some(_)) => Err(ApiError::validation(
            "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {Expected} Expression parameters: {ConditionExpression}",
        )),
        (Some(text), None) => Ok(Some(expr::parse_condition("ConditionExpression", text, placeholders)?)),
        (None, Some(expected)) => legacy::expected(expected, field(body, "ConditionalOperator").and_then(s)).map(Some),
        (None, None) => Ok(None),
    }
}

fn projection(body: &Json, placeholders: &mut Placeholders) -> ApiResult<Option<Vec<Path>>> {
    if let Some(text) = field(body, "ProjectionExpression").and_then(s) {
        return Ok(Some(expr::parse_projection(text, placeholders)?));
    }
    if let Some(Json::Array(names)) = field(body, "AttributesToGet") {
        return Ok(Some(
            names
                .iter()
                .filter_map(Json::as_str)
                .map(|n| vec![Step::Attr(n.to_owned())])
                .collect(),
        ));
    }
    Ok(None)
}

fn placeholders(body: &Json) -> ApiResult<Placeholders> {
    Placeholders::new(
        field(body, "ExpressionAttributeNames"),
        field(body, "ExpressionAttributeValues"),
    )
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
                let wal = wal::Wal::open(&dir.join("dynamodb"), |snapshot, records| {
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

    /// Runs `operation` on `body`.
    pub(crate) async fn handle(&self, operation: &str, body: Json) -> ApiResult<Json> {
        if !body.is_object() {
            return Err(ApiError::serialization(
                "The request body must be a JSON object",
            ));
        }
        match operation {
            "CreateTable" => self.create_table(&body).await,
            "DescribeTable" => self.describe_table(&body),
            "ListTables" => self.list_tables(&body),
            "DeleteTable" => self.delete_table(&body).await,
            "UpdateTable" => self.update_table(&body).await,
            "DescribeTimeToLive" => self.describe_ttl(&body),
            "UpdateTimeToLive" => self.update_ttl(&body).await,
            "TagResource" | "UntagResource" | "ListTagsOfResource" => {
                self.tags(operation, &body).await
            }
            "DescribeContinuousBackups" | "UpdateContinuousBackups" => {
                self.backups(operation, &body).await
            }
            "PutItem" => self.put_item(&body).await,
            "GetItem" => self.get_item(&body),
            "UpdateItem" => self.update_item(&body).await,
            "DeleteItem" => self.delete_item(&body).await,
            "BatchGetItem" => self.batch_get(&body),
            "BatchWriteItem" => self.batch_write(&body).await,
            "TransactWriteItems" => self.transact_write(&body).await,
            "TransactGetItems" => self.transact_get(&body),
            "Scan" => self.scan_or_query(&body, false),
            "Query" => self.scan_or_query(&body, true),
            other => Err(ApiError::new(
                ErrorKind::UnknownOperation,
                format!("Unknown operation DynamoDB_20120810.{other}"),
            )),
        }
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

    fn description(&self, table: &Table) -> Json {
        let meta = &table.meta;
        let now = now_ms();
        let key_schema = |hash: &KeyDef, range: &Option<KeyDef>| {
            let mut schema = vec![json!({"AttributeName": hash.name, "KeyType": "HASH"})];
            if let Some(range) = range {
                schema.push(json!({"AttributeName": range.name, "KeyType": "RANGE"}));
            }
            schema
        };
        let throughput = |t: &Option<Json>| {
            t.clone().unwrap_or_else(|| json!({"ReadCapacityUnits": 0, "WriteCapacityUnits": 0, "NumberOfDecreasesToday": 0}))
        };
        let mut desc = json!({
            "TableName": meta.name,
            "TableArn": meta.arn,
            "TableId": meta.table_id,
            "TableStatus": meta.status(now),
            "CreationDateTime": meta.created_ms as f64 / 1000.0,
            "KeySchema": key_schema(&meta.hash, &meta.range),
            "AttributeDefinitions": meta.attribute_definitions,
            "ItemCount": table.items.len(),
            "TableSizeBytes": table.items.values().map(item_size).sum::<usize>(),
            "ProvisionedThroughput": throughput(&meta.throughput),
            "BillingModeSummary": {"BillingMode": meta.billing_mode},
            "DeletionProtectionEnabled": meta.deletion_protection,
        });
        let in_index = |i: &IndexMeta, item: &Item| {
            item.contains_key(&i.hash.name)
                && i.range.as_ref().is_none_or(|r| item.contains_key(&r.name))
        };
        for local in [false, true] {
            let indexes: Vec<Json> = meta
                .indexes
                .iter()
                .filter(|i| i.local == local)
                .map(|i| {
                    let entries: Vec<Item> = table
                        .items
                        .values()
                        .filter(|item| in_index(i, item))
                        .map(|item| index_entry(item, i, meta))
                        .collect();
                    let mut index = json!({
                        "IndexName": i.name,
                        "KeySchema": key_schema(&i.hash, &i.range),
                        "Projection": i.projection,
                        "IndexArn": format!("{}/index/{}", meta.arn, i.name),
                        "ItemCount": entries.len(),
                        "IndexSizeBytes": entries.iter().map(item_size).sum::<usize>(),
                    });
                    if !local {
                        index["IndexStatus"] = json!(if meta.status(now) == "CREATING" {
                            "CREATING"
                        } else {
                            "ACTIVE"
                        });
                        index["ProvisionedThroughput"] = throughput(&i.throughput);
                    }
                    index
                })
                .collect();
            if !indexes.is_empty() {
                let key = if local {
                    "LocalSecondaryIndexes"
                } else {
                    "GlobalSecondaryIndexes"
                };
                desc[key] = Json::Array(indexes);
            }
        }
        desc
    }

    fn table_name(body: &Json) -> ApiResult<String> {
        let name = required_str(body, "TableName")?;
        // A table ARN works wherever a name does.
        let name = name.rsplit_once(":table/").map_or(name, |(_, n)| n);
        if name.len() < 3
            || name.len() > 255
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{name}' at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 3 and 255"
            )));
        }
        Ok(name.to_owned())
    }

    fn key_defs(
        schema: Option<&Json>,
        definitions: &[Json],
        what: &str,
    ) -> ApiResult<(KeyDef, Option<KeyDef>)> {
        let schema = schema
            .and_then(Json::as_array)
            .ok_or_else(|| ApiError::validation(format!("{what}: KeySchema is required")))?;
        let def = |name: &str| -> ApiResult<KeyDef> {
            let kind = definitions
                .iter()
                .find(|d| d.get("AttributeName").and_then(Json::as_str) == Some(name))
                .and_then(|d| d.get("AttributeType").and_then(Json::as_str))
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [{name}]"
                    ))
                })?;
            if !matches!(kind, "S" | "N" | "B") {
                return Err(ApiError::validation(format!(
                    "Invalid AttributeType {kind} for {name}"
                )));
            }
            Ok(KeyDef {
                name: name.to_owned(),
                kind: kind.to_owned(),
            })
        };
        let mut hash = None;
        let mut range = None;
        for element in schema {
            let name = element
                .get("AttributeName")
                .and_then(Json::as_str)
                .ok_or_else(|| ApiError::validation("KeySchema element needs an AttributeName"))?;
            match element.get("KeyType").and_then(Json::as_str) {
                Some("HASH") if hash.is_none() => hash = Some(def(name)?),
                Some("RANGE") if range.is_none() => range = Some(def(name)?),
                _ => {
                    return Err(ApiError::validation(format!(
                        "{what}: Invalid KeySchema: exactly one HASH and at most one RANGE key"
                    )))
                }
            }
        }
        let hash = hash.ok_or_else(|| {
            ApiError::validation(format!("{what}: Invalid KeySchema: no HASH key"))
        })?;
        Ok((hash, range))
    }

    async fn create_table(&self, body: &Json) -> ApiResult<Json> {
        let name = Self::table_name(body)?;
        let definitions: Vec<Json> = field(body, "AttributeDefinitions")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        let (hash, range) = Self::key_defs(field(body, "KeySchema"), &definitions, "CreateTable")?;
        let billing_mode = field(body, "BillingMode")
            .and_then(s)
            .unwrap_or("PROVISIONED")
            .to_owned();
        let throughput = field(body, "ProvisionedThroughput").cloned();
        if billing_mode == "PROVISIONED" && throughput.is_none() {
            return Err(ApiError::validation("One or more parameter values were invalid: ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED"));
        }
        if billing_mode == "PAY_PER_REQUEST" && throughput.is_some() {
            return Err(ApiError::validation("One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST"));
        }
        let mut indexes = Vec::new();
        for gsi in field(body, "GlobalSecondaryIndexes")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            indexes.push(Self::index_meta(gsi, &definitions, &billing_mode)?);
        }
        for lsi in field(body, "LocalSecondaryIndexes")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let mut index = Self::index_meta(lsi, &definitions, "PAY_PER_REQUEST")?;
            if range.is_none() {
                return Err(ApiError::validation("One or more parameter values were invalid: Table KeySchema does not have a range key, which is required when specifying a LocalSecondaryIndex"));
            }
            if index.hash.name != hash.name || index.range.is_none() {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: Index KeySchema does not have the same leading hash key as table KeySchema for index: {}. index hash key: {}, table hash key: {}",
                    index.name, index.hash.name, hash.name
                )));
            }
            index.local = true;
            index.throughput = None;
            indexes.push(index);
        }
        if indexes.iter().filter(|i| i.local).count() > 5 {
            return Err(ApiError::validation(
                "One or more parameter values were invalid: Number of LocalSecondaryIndexes exceeds per-table limit of 5",
            ));
        }
        // Every defined attribute must be a key of the table or of an index.
        let keys: std::collections::BTreeSet<&str> = std::iter::once(&hash)
            .chain(&range)
            .chain(
                indexes
                    .iter()
                    .flat_map(|i| std::iter::once(&i.hash).chain(&i.range)),
            )
            .map(|k| k.name.as_str())
            .collect();
        let defined: std::collections::BTreeSet<&str> = definitions
            .iter()
            .filter_map(|d| d.get("AttributeName").and_then(Json::as_str))
            .collect();
        if defined != keys || defined.len() != definitions.len() {
            return Err(ApiError::validation("One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions"));
        }
        let mut index_names = std::collections::BTreeSet::new();
        if let Some(dup) = indexes
            .iter()
            .find(|i| !index_names.insert(i.name.as_str()))
        {
            return Err(ApiError::validation(format!(
                "One or more parameter values were invalid: Duplicate index name: {}",
                dup.name
            )));
        }
        let now = now_ms();
        let mut tags = BTreeMap::new();
        for tag in field(body, "Tags")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(k), Some(v)) = (
                tag.get("Key").and_then(Json::as_str),
                tag.get("Value").and_then(Json::as_str),
            ) {
                tags.insert(k.to_owned(), v.to_owned());
            }
        }
        let table = Table {
            meta: TableMeta {
                arn: format!(
                    "arn:aws:dynamodb:{}:{}:table/{name}",
                    self.config.region, self.config.account_id
                ),
                name: name.clone(),
                hash,
                range,
                attribute_definitions: Json::Array(definitions),
                indexes,
                billing_mode,
                throughput: throughput.map(|mut t| {
                    t["NumberOfDecreasesToday"] = json!(0);
                    t
                }),
                created_ms: now,
                creating_until: now + self.config.create_delay.as_millis() as i64,
                deleting_until: None,
                ttl: None,
                tags,
                pitr: false,
                deletion_protection: field(body, "DeletionProtectionEnabled")
                    .and_then(Json::as_bool)
                    .unwrap_or(false),
                table_id: format!(
                    "{:08x}-0000-4000-8000-{:012x}",
                    now as u32,
                    now as u64 & 0xffff_ffff_ffff
                ),
            },
            items: BTreeMap::new(),
        };
        let (desc, wait) = {
            let mut tables = self.lock();
            self.purge(&mut tables);
            if tables.contains_key(&name) {
                return Err(ApiError::in_use(format!("Table already exists: {name}")));
            }
            let desc = self.description(&table);
            let wait = self.log_table(&table);
            tables.insert(name, table);
            (desc, wait)
        };
        Self::durable(wait.map(|w| vec![w])).await?;
        Ok(json!({ "TableDescription": desc }))
    }

    fn index_meta(gsi: &Json, definitions: &[Json], billing_mode: &str) -> ApiResult<IndexMeta> {
        let name = gsi
            .get("IndexName")
            .and_then(Json::as_str)
            .ok_or_else(|| ApiError::validation("IndexName is required"))?;
        let (hash, range) =
            Self::key_defs(gsi.get("KeySchema"), definitions, "GlobalSecondaryIndex")?;
        let throughput = gsi.get("ProvisionedThroughput").cloned();
        if billing_mode == "PROVISIONED" && throughput.is_none() {
            return Err(ApiError::validation(format!(
                "One or more parameter values were invalid: ProvisionedThroughput must be specified for index: {name}"
            )));
        }
        Ok(IndexMeta {
            name: name.to_owned(),
            hash,
            range,
            projection: gsi
                .get("Projection")
                .cloned()
                .unwrap_or_else(|| json!({"ProjectionType": "ALL"})),
            throughput,
            local: false,
        })
    }

    fn describe_table(&self, body: &Json) -> ApiResult<Json> {
        let name = Self::table_name(body)?;
        let mut tables = self.lock();
        self.purge(&mut tables);
        let table = tables.get(&name).ok_or_else(|| {
            ApiError::not_found(format!(
                "Requested resource not found: Table: {name} not found"
            ))
        })?;
        Ok(json!({ "Table": self.description(table) }))
    }

    fn list_tables(&self, body: &Json) -> ApiResult<Json> {
        let limit = field(body, "Limit").and_then(Json::as_u64).unwrap_or(100);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::validation("1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value between 1 and 100"));
        }
        let start = field(body, "ExclusiveStartTableName")
            .and_then(s)
            .map(str::to_owned);
        let mut tables = self.lock();
        self.purge(&mut tables);
        let names: Vec<&String> = tables
            .keys()
            .filter(|n| start.as_ref().is_none_or(|s| *n > s))
            .collect();
        let page: Vec<&String> = names.iter().take(limit as usize).copied().collect();
        let mut out = json!({ "TableNames": page });
        if names.len() > page.len() {
            out["LastEvaluatedTableName"] = json!(page.last());
        }
        Ok(out)
    }

    async fn delete_table(&self, body: &Json) -> ApiResult<Json> {
        let name = Self::table_name(body)?;
        let until = now_ms() + self.config.delete_delay.as_millis() as i64;
        let (desc, wait) = {
            let mut tables = self.lock();
            self.purge(&mut tables);
            let table = tables.get_mut(&name).ok_or_else(not_found)?;
            if table.meta.deletion_protection {
                return Err(ApiError::validation(format!(
                    "Resource cannot be deleted as it is currently protected against deletion. Disable deletion protection first: {}",
                    table.meta.arn
                )));
            }
            if table.meta.deleting_until.is_some() {
                return Err(ApiError::in_use(format!("Attempt to change a resource which is still in use: Table is being deleted: {name}")));
            }
            table.meta.deleting_until = Some(until);
            (
                self.description(table),
                self.wal
                    .as_ref()
                    .map(|w| w.append(&json!({"t": "drop", "name": name}))),
            )
        };
        Self::durable(wait.map(|w| vec![w])).await?;
        Ok(json!({ "TableDescription": desc }))
    }

    async fn update_table(&self, body: &Json) -> ApiResult<Json> {
        let name = Self::table_name(body)?;
        let (desc, wait) = {
            let mut tables = self.lock();
            self.purge(&mut tables);
            let table = tables.get_mut(&name).ok_or_else(not_found)?;
            let mut definitions: Vec<Json> = table
                .meta
                .attribute_definitions
                .as_array()
                .cloned()
                .unwrap_or_default();
            for extra in field(body, "AttributeDefinitions")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                if !definitions
                    .iter()
                    .any(|d| d.get("AttributeName") == extra.get("AttributeName"))
                {
                    definitions.push(extra.clone());
                }
            }
            if let Some(mode) = field(body, "BillingMode").and_then(s) {
                table.meta.billing_mode = mode.to_owned();
            }
            if let Some(throughput) = field(body, "ProvisionedThroughput") {
                table.meta.throughput = Some(throughput.clone());
            }
            if let Some(protect) = field(body, "DeletionProtectionEnabled").and_then(Json::as_bool)
            {
                table.meta.deletion_protection = protect;
            }
            for update in field(body, "GlobalSecondaryIndexUpdates")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(create) = update.get("Create") {
                    let index = Self::index_meta(create, &definitions, &table.meta.billing_mode)?;
                    if table.meta.indexes.iter().any(|i| i.name == index.name) {
                        return Err(ApiError::validation(format!(
                            "Attempting to create an index which already exists: {}",
                            index.name
                        )));
                    }
                    table.meta.indexes.push(index);
                } else if let Some(delete) = update.get("Delete") {
                    let index = delete
                        .get("IndexName")
                        .and_then(Json::as_str)
                        .unwrap_or_default();
                    table.meta.indexes.retain(|i| i.local || i.name != index);
                }
            }
            table.meta.attribute_definitions = Json::Array(definitions);
            (self.description(table), self.log_table(table))
        };
        Self::durable(wait.map(|w| vec![w])).await?;
        Ok(json!({ "TableDescription": desc }))
    }

    fn describe_ttl(&self, body: &Json) -> ApiResult<Json> {
        let name = Self::table_name(body)?;
        self.with_table(&name, |table| {
            Ok(match &table.meta.ttl {
                Some((attribute, true)) => json!({"TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED", "AttributeName": attribute}}),
                _ => json!({"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}),
            })
        })
    }

    async fn update_ttl(&self, body: &Json) -> ApiResult<Json> {
        let name = Self::table_name(body)?;
        let spec = field(body, "TimeToLiveSpecification")
            .cloned()
            .ok_or_else(|| ApiError::validation("TimeToLiveSpecification is required"))?;
        let attribute = spec
            .get("AttributeName")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        let enabled = spec.get("Enabled").and_then(Json::as_bool).unwrap_or(false);
        let wait = {
            let mut tables = self.lock();
            let table = tables.get_mut(&name).ok_or_else(not_found)?;
            if table
                .meta
                .ttl
                .as_ref()
                .is_some_and(|(_, on)| *on == enabled)
            {
                return Err(ApiError::validation(if enabled {
                    "TimeToLive is already enabled"
                } else {
                    "TimeToLive is already disabled"
                }));
            }
            table.meta.ttl = Some((attribute, enabled));
            self.log_table(table)
        };
        Self::durable(wait.map(|w| vec![w])).await?;
        Ok(json!({ "TimeToLiveSpecification": spec }))
    }

    async fn tags(&self, operation: &str, body: &Json) -> ApiResult<Json> {
        let arn = required_str(body, "ResourceArn")?;
        let name = arn
            .rsplit_once(":table/")
            .map(|(_, n)| n.to_owned())
            .ok_or_else(|| ApiError::validation(format!("Invalid ResourceArn {arn}")))?;
        let (out, wait) = {
            let mut tables = self.lock();
            let table = tables.get_mut(&name).ok_or_else(not_found)?;
            let out = match operation {
                "TagResource" => {
                    for tag in field(body, "Tags")
                        .and_then(Json::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let (Some(k), Some(v)) = (
                            tag.get("Key").and_then(Json::as_str),
                            tag.get("Value").and_then(Json::as_str),
                        ) {
                            table.meta.tags.insert(k.to_owned(), v.to_owned());
                        }
                    }
                    json!({})
                }
                "UntagResource" => {
                    for key in field(body, "TagKeys")
                        .and_then(Json::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Json::as_str)
                    {
                        table.meta.tags.remove(key);
                    }
                    json!({})
                }
                _ => {
                    json!({"Tags": table.meta.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>()})
                }
            };
            let wait = if operation == "ListTagsOfResource" {
                None
            } else {
                self.log_table(table)
            };
            (out, wait)
        };
        Self::durable(wait.map(|w| vec![w])).await?;
        Ok(out)
    }

    async fn backups(&self, operation: &str, body: &Json) -> ApiResult<Json> {
        let name = Self::table_name(body)?;
        let (pitr, wait) = {
            let mut tables = self.lock();
            let table = tables.get_mut(&name).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::ResourceNotFound,
                    format!("Table not found: {name}"),
                )
            })?;
            let mut wait = None;
            if operation == "UpdateContinuousBackups" {
                table.meta.pitr = field(body, "PointInTimeRecoverySpecification")
                    .and_then(|p| p.get("PointInTimeRecoveryEnabled"))
                    .and_then(Json::as_bool)
                    .unwrap_or(false);
                wait = self.log_table(table);
            }
            (table.meta.pitr, wait)
        };
        Self::durable(wait.map(|w| vec![w])).await?;
        Ok(json!({"ContinuousBackupsDescription": {
            "ContinuousBackupsStatus": "ENABLED",
            "PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": if pitr { "ENABLED" } else { "DISABLED" }}
        }}))
    }

    fn returned(
        old: Option<&Item>,
        new: Option<&Item>,
        mode: Option<&str>,
        updated: &[Path],
    ) -> ApiResult<Option<Item>> {
        // UPDATED_* return just the updated paths (nested ones inside their enclosing maps),
        // and no Attributes at all when none of them had a value.
        let only_updated = |item: Option<&Item>| {
            item.map(|i| expr::project(i, updated))
                .filter(|projected| !projected.is_empty())
        };
        Ok(match mode.unwrap_or("NONE") {
            "NONE" => None,
            "ALL_OLD" => old.cloned(),
            "ALL_NEW" => new.cloned(),
            "UPDATED_OLD" => only_updated(old),
            "UPDATED_NEW" => only_updated(new),
            other => {
                return Err(ApiError::validation(format!(
                    "Invalid ReturnValues: {other}"
                )))
            }
        })
    }

    async fn put_item(&self, body: &Json) -> ApiResult<Json> {
        let name = Self::table_name(body)?;
        let item = validated_item(
            field(body, "Item").ok_or_else(|| ApiError::validation("Item is required"))?,
        )?;
        let mode = field(body, "ReturnValues").and_then(s);
        if !matches!(mode, None | Some("NONE") | Some("ALL_OLD")) {
            return Err(ApiError::validation(
                "ReturnValues can only be ALL_OLD or NONE",
            ));
        }
        let mut placeholders = placeholders(body)?;
        let condition = write_condition(body, &mut placeholders)?;
        placeholders.check_all_used()?;
        if item_size(&item) > MAX_ITEM_BYTES {
            return Err(ApiError::validation(
                "Item size has exceeded the maximum allowed size",
            ));
        }
        let (old, waits) = self.with_table(&name, |table| {
            let key = table.key_of(&item, false)?;
            let old = table.items.get(&key).cloned();
            if let Some(cond) = &condition {
                if !expr::evaluate(cond, old.as_ref().unwrap_or(&Item::new())) {
                    return Err(conditional_failed(old.as_ref(), body));
                }
            }
            table.items.insert(key.clone(), item.clone());
            Ok((old, self.log(&name, vec![Change::Put(key, item.clone())])))
        })?;
        Self::durable(waits).await?;
        let mut out = json!({});
        if let Some(attributes) = Self::returned(old.as_ref(), None, mode, &[])? {
            out["Attributes"] = Json::Object(attributes);
        }
        Ok(out)
    }

    fn get_item(&self, body: &Json) -> ApiResult<Json> {
        let name = Self::table_name(body)?;
        let key = validated_item(
            field(body, "Key").ok_or_else(|| ApiError::validation("Key is required"))?,
        )?;
        let mut placeholders = placeholders(body)?;
        let projection = projection(body, &mut placeholders)?;
        placeholders.check_all_used()?;
        self.with_table(&name, |table| {
            let canonical = table.key_of(&key, true)?;
            Ok(match table.items.get(&canonical) {
                Some(item) => json!({"Item": projection.as_ref().map_or_else(|| item.clone(), |p| expr::project(item, p))}),
                None => json!({}),
            })
        })
    }

    async fn update_item(&self, body: &Json) -> ApiResult<Json> {
        let name = Self::table_name(body)?;
        let key = validated_item(
            field(body, "Key").ok_or_else(|| ApiError::validation("Key is required"))?,
        )?;
        let mut placeholders = placeholders(body)?;
        let condition = write_condition(body, &mut placeholders)?;
        let update = match (field(body, "UpdateExpression").and_then(s), field(body, "AttributeUpdates")) {
            (Some(_), Some(_)) => {
                return Err(ApiError::validation(
                    "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {AttributeUpdates} Expression parameters: {UpdateExpression}",
                ))
            }
            (Some(text), None) => expr::parse_update(text, &mut placeholders)?,
            (None, Some(updates)) => legacy::attribute_updates(updates)?,
            (None, None) => Update::default(),
        };
        placeholders.check_all_used()?;
        let mode = field(body, "ReturnValues").and_then(s);
        let (old, new, updated, waits) = self.with_table(&name, |table| {
            let canonical = table.key_of(&key, true)?;
            let key_names = table.meta.key_names();
            expr::check_key_untouched(&update, &key_names)?;
            let old = table.items.get(&canonical).cloned();
            if let Some(cond) = &condition {
                if !expr::evaluate(cond, old.as_ref().unwrap_or(&Item::new())) {
                    return Err(conditional_failed(old.as_ref(), body));
                }
            }
            let mut item = old.clone().unwrap_or_else(|| key.clone());
            expr::apply_update(&mut item, &update, &key_names)?;
            if item_size(&item) > MAX_ITEM_BYTES {
                return Err(ApiError::validation(
                    "Item size to update has exceeded the maximum allowed size",
                ));
            }
            let updated: Vec<Path> = update
                .set
                .iter()
                .map(|(p, _)| p)
                .chain(&update.remove)
                .chain(update.add.iter().map(|(p, _)| p))
                .chain(update.delete.iter().map(|(p, _)| p))
                .cloned()
                .collect();
            table.items.insert(canonical.clone(), item.clone());
            let waits = self.log(&name, vec![Change::Put(canonical, item.clone())]);
            Ok((old, item, updated, waits))
        })?;
        Self::durable(waits).await?;
        let mut out = json!({});
        if let Some(attributes) = Self::returned(old.as_ref(), Some(&new), mode, &updated)? {
            out["Attributes"] = Json::Object(attributes);
        }
        Ok(out)
    }

    async fn delete_item(&self, body: &Json) -> ApiResult<Json> {
        let name = Self::table_name(body)?;
        let key = validated_item(
            field(body, "Key").ok_or_else(|| ApiError::validation("Key is required"))?,
        )?;
        // Refused before anything changes: an update-only ReturnValues must not delete the item
        // and then fail (or quietly return nothing).
        let mode = field(body, "ReturnValues").and_then(s);
        if !matches!(mode, None | Some("NONE") | Some("ALL_OLD")) {
            return Err(ApiError::validation(
                "ReturnValues can only be ALL_OLD or NONE",
            ));
        }
        let mut placeholders = placeholders(body)?;
        let condition = write_condition(body, &mut placeholders)?;
        placeholders.check_all_used()?;
        let (old, waits) = self.with_table(&name, |table| {
            let canonical = table.key_of(&key, true)?;
            let old = table.items.get(&canonical).cloned();
            if let Some(cond) = &condition {
                if !expr::evaluate(cond, old.as_ref().unwrap_or(&Item::new())) {
                    return Err(conditional_failed(old.as_ref(), body));
                }
            }
            let waits = old.as_ref().and_then(|_| {
                table.items.remove(&canonical);
                self.log(&name, vec![Change::Delete(canonical.clone())])
            });
            Ok((old, waits))
        })?;
        Self::durable(waits).await?;
        let mut out = json!({});
        if let Some(attributes) = Self::returned(old.as_ref(), None, mode, &[])? {
            out["Attributes"] = Json::Object(attributes);
        }
        Ok(out)
    }

    fn batch_get(&self, body: &Json) -> ApiResult<Json> {
        let requests = field(body, "RequestItems")
            .and_then(Json::as_object)
            .ok_or_else(|| ApiError::validation("RequestItems is required"))?;
        let total: usize = requests
            .values()
            .map(|r| r.get("Keys").and_then(Json::as_array).map_or(0, Vec::len))
            .sum();
        if total == 0 || total > 100 {
            return Err(ApiError::validation(
                "Too many items requested for the BatchGetItem call",
            ));
        }
        let mut responses = Map::new();
        let mut unprocessed = Map::new();
        let mut response_bytes = 0;
        for (table_name, request) in requests {
            let mut placeholders = placeholders(request)?;
            let projection = projection(request, &mut placeholders)?;
            placeholders.check_all_used()?;
            let keys = request
                .get("Keys")
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default();
            let mut found = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            let mut left = Vec::new();
            for raw_key in keys {
                let key = validated_item(&raw_key)?;
                self.with_table(table_name, |table| {
                    let canonical = table.key_of(&key, true)?;
                    if !seen.insert(canonical.clone()) {
                        return Err(ApiError::validation(
                            "Provided list of item keys contains duplicates",
                        ));
                    }
                    // Past 16 MB of response, the remaining keys are handed back to retry.
                    if response_bytes >= MAX_BATCH_GET_BYTES {
                        left.push(raw_key);
                    } else if let Some(item) = table.items.get(&canonical) {
                        let item = projection
                            .as_ref()
                            .map_or_else(|| item.clone(), |p| expr::project(item, p));
                        response_bytes += item_size(&item);
                        found.push(Json::Object(item));
                    }
                    Ok(())
                })?;
            }
            if !left.is_empty() {
                let mut request = request.clone();
                request["Keys"] = Json::Array(left);
                unprocessed.insert(table_name.clone(), request);
            }
            responses.insert(table_name.clone(), Json::Array(found));
        }
        Ok(json!({"Responses": responses, "UnprocessedKeys": unprocessed}))
    }

    async fn batch_write(&self, body: &Json) -> ApiResult<Json> {
        let requests = field(body, "RequestItems")
            .and_then(Json::as_object)
            .ok_or_else(|| ApiError::validation("RequestItems is required"))?;
        let total: usize = requests
            .values()
            .map(|r| r.as_array().map_or(0, Vec::len))
            .sum();
        if total == 0 || total > 25 {
            return Err(ApiError::validation(
                "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Member must have length less than or equal to 25",
            ));
        }
        // Every request is checked before any is applied, so a refused batch writes nothing.
        let mut planned = Vec::new();
        for (table_name, writes) in requests {
            let changes = self.with_table(table_name, |table| {
                let mut seen = std::collections::BTreeSet::new();
                let mut changes = Vec::new();
                for write in writes.as_array().into_iter().flatten() {
                    let (key, item) = if let Some(put) = write.get("PutRequest") {
                        let item = validated_item(put.get("Item").unwrap_or(&Json::Null))?;
                        (table.key_of(&item, false)?, Some(item))
                    } else if let Some(delete) = write.get("DeleteRequest") {
                        let key = validated_item(delete.get("Key").unwrap_or(&Json::Null))?;
                        (table.key_of(&key, true)?, None)
                    } else {
                        return Err(ApiError::validation(
                            "Each write request needs a PutRequest or a DeleteRequest",
                        ));
                    };
                    if !seen.insert(key.clone()) {
                        return Err(ApiError::validation(
                            "Provided list of item keys contains duplicates",
                        ));
                    }
                    changes.push((key, item));
                }
                Ok(changes)
            })?;
            planned.push((table_name, changes));
        }
        let mut waits = Vec::new();
        for (table_name, changes) in planned {
            let table_waits = self.with_table(table_name, |table| {
                let mut logged = Vec::new();
                for (key, item) in changes {
                    let change = match item {
                        Some(item) => {
                            table.items.insert(key.clone(), item.clone());
                            Some(Change::Put(key, item))
                        }
                        None => table.items.remove(&key).map(|_| Change::Delete(key)),
                    };
                    logged.extend(change);
                }
                Ok((!logged.is_empty())
                    .then(|| self.log(table_name, logged))
                    .flatten())
            })?;
            waits.extend(table_waits.into_iter().flatten());
        }
        Self::durable(Some(waits)).await?;
        Ok(json!({"UnprocessedItems": {}}))
    }

    async fn transact_write(&self, body: &Json) -> ApiResult<Json> {
        let items = field(body, "TransactItems")
            .and_then(Json::as_array)
            .ok_or_else(|| ApiError::validation("TransactItems is required"))?;
        if items.is_empty() || items.len() > 100 {
            return Err(ApiError::validation(
                "Member must have length less than or equal to 100",
            ));
        }
        // Parse everything first: an invalid request changes nothing.
        struct Planned {
            table: String,
            kind: &'static str,
            key: Item,
            item: Option<Item>,
            condition: Option<Cond>,
            update: Option<Update>,
            return_old: bool,
        }
        let mut planned = Vec::new();
        for entry in items {
            let (kind, op) = ["ConditionCheck", "Put", "Update", "Delete"]
                .iter()
                .find_map(|k| entry.get(*k).map(|op| (*k, op)))
                .ok_or_else(|| ApiError::validation("Each TransactItem needs exactly one of ConditionCheck, Put, Update, Delete"))?;
            let table = Self::table_name(op)?;
            let mut placeholders = placeholders(op)?;
            let condition = match op.get("ConditionExpression").and_then(Json::as_str) {
                Some(text) => Some(expr::parse_condition(
                    "ConditionExpression",
                    text,
                    &mut placeholders,
                )?),
                None => None,
            };
            if kind == "ConditionCheck" && condition.is_none() {
                return Err(ApiError::validation(
                    "ConditionCheck needs a ConditionExpression",
                ));
            }
            let update = match op.get("UpdateExpression").and_then(Json::as_str) {
                Some(text) => Some(expr::parse_update(text, &mut placeholders)?),
                None => None,
            };
            placeholders.check_all_used()?;
            let item = if kind == "Put" {
                Some(validated_item(op.get("Item").unwrap_or(&Json::Null))?)
            } else {
                None
            };
            let key = match &item {
                Some(item) => item.clone(),
                None => validated_item(op.get("Key").unwrap_or(&Json::Null))?,
            };
            let return_old = op
                .get("ReturnValuesOnConditionCheckFailure")
                .and_then(Json::as_str)
                == Some("ALL_OLD");
            planned.push(Planned {
                table,
                kind,
                key,
                item,
                condition,
                update,
                return_old,
            });
        }
        let waits = {
            let mut tables = self.lock();
            self.purge(&mut tables);
            let mut seen = std::collections::BTreeSet::new();
            let mut reasons = Vec::new();
            let mut failed = false;
            let mut canonical = Vec::new();
            for p in &planned {
                let table = tables.get(&p.table).ok_or_else(not_found)?;
                let key = table.key_of(&p.key, p.item.is_none())?;
                if !seen.insert((p.table.clone(), key.clone())) {
                    return Err(ApiError::validation(
                        "Transaction request cannot include multiple operations on one item",
                    ));
                }
                let old = table.items.get(&key);
                let ok = p
                    .condition
                    .as_ref()
                    .is_none_or(|c| expr::evaluate(c, old.unwrap_or(&Item::new())));
                if ok {
                    reasons.push(json!({"Code": "None"}));
                } else {
                    failed = true;
                    let mut reason = json!({"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"});
                    if p.return_old {
                        if let Some(old) = old {
                            reason["Item"] = Json::Object(old.clone());
                        }
                    }
                    reasons.push(reason);
                }
                canonical.push(key);
            }
            if failed {
                let codes: Vec<&str> = reasons
                    .iter()
                    .map(|r| r["Code"].as_str().unwrap_or("None"))
                    .collect();
                return Err(ApiError::new(
                    ErrorKind::TransactionCanceled,
                    format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", ")),
                )
                .with_extra(Map::from_iter([("CancellationReasons".to_owned(), Json::Array(reasons))])));
            }
            // Compute every new item before changing anything, so an invalid update aborts all.
            let mut results: Vec<(String, String, Option<Item>)> = Vec::new();
            for (p, key) in planned.iter().zip(&canonical) {
                let table = tables.get(&p.table).ok_or_else(not_found)?;
                match p.kind {
                    "Put" => results.push((p.table.clone(), key.clone(), p.item.clone())),
                    "Delete" => results.push((p.table.clone(), key.clone(), None)),
                    "Update" => {
                        let mut item = table
                            .items
                            .get(key)
                            .cloned()
                            .unwrap_or_else(|| p.key.clone());
                        if let Some(update) = &p.update {
                            expr::apply_update(&mut item, update, &table.meta.key_names())?;
                        }
                        results.push((p.table.clone(), key.clone(), Some(item)));
                    }
                    _ => {}
                }
            }
            let mut waits = Vec::new();
            for (table_name, key, item) in results {
                let table = tables.get_mut(&table_name).ok_or_else(not_found)?;
                let change = match item {
                    Some(item) => {
                        table.items.insert(key.clone(), item.clone());
                        Change::Put(key, item)
                    }
                    None => match table.items.remove(&key) {
                        Some(_) => Change::Delete(key),
                        None => continue,
                    },
                };
                waits.extend(self.log(&table_name, vec![change]).into_iter().flatten());
            }
            waits
        };
        Self::durable(Some(waits)).await?;
        Ok(json!({}))
    }

    fn transact_get(&self, body: &Json) -> ApiResult<Json> {
        let items = field(body, "TransactItems")
            .and_then(Json::as_array)
            .ok_or_else(|| ApiError::validation("TransactItems is required"))?;
        let mut responses = Vec::new();
        for entry in items {
            let get = entry
                .get("Get")
                .ok_or_else(|| ApiError::validation("Each TransactGetItem needs a Get"))?;
            let out = self.get_item(get)?;
            responses.push(match out.get("Item") {
                Some(item) => json!({"Item": item}),
                None => json!({}),
            });
        }
        Ok(json!({"Responses": responses}))
    }

    fn scan_or_query(&self, body: &Json, query: bool) -> ApiResult<Json> {
        let name = Self::table_name(body)?;
        let mut placeholders = placeholders(body)?;
        let key_condition = if query {
            match (field(body, "KeyConditionExpression").and_then(s), field(body, "KeyConditions")) {
                (Some(text), _) => Some(expr::parse_condition("KeyConditionExpression", text, &mut placeholders)?),
                (None, Some(conditions)) => Some(legacy::expected(conditions, Some("AND"))?),
                (None, None) => return Err(ApiError::validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")),
            }
        } else {
            None
        };
        let filter = match (
            field(body, "FilterExpression").and_then(s),
            field(body, "ScanFilter").or(field(body, "QueryFilter")),
        ) {
            (Some(text), _) => Some(expr::parse_condition(
                "FilterExpression",
                text,
                &mut placeholders,
            )?),
            (None, Some(legacy_filter)) => Some(legacy::expected(
                legacy_filter,
                field(body, "ConditionalOperator").and_then(s),
            )?),
            (None, None) => None,
        };
        let projection = projection(body, &mut placeholders)?;
        placeholders.check_all_used()?;
        let limit = match field(body, "Limit") {
            Some(l) => {
                let l = l.as_u64().filter(|l| *l >= 1).ok_or_else(|| ApiError::validation("1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"))?;
                Some(l as usize)
            }
            None => None,
        };
        let segment = match (field(body, "Segment").and_then(Json::as_u64), field(body, "TotalSegments").and_then(Json::as_u64)) {
            (Some(seg), Some(total)) if total >= 1 && seg < total => Some((seg, total)),
            (None, None) => None,
            _ => return Err(ApiError::validation("The Segment parameter is required but was not present in the request when parameter TotalSegments is present, and must be less than TotalSegments")),
        };
        let select = field(body, "Select").and_then(s);
        let index_name = field(body, "IndexName").and_then(s).map(str::to_owned);
        match (select, &projection, &index_name) {
            (Some("SPECIFIC_ATTRIBUTES"), None, _) => {
                return Err(ApiError::validation("One or more parameter values were invalid: Must specify the AttributesToGet or ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES"));
            }
            (Some("ALL_PROJECTED_ATTRIBUTES"), _, None) => {
                return Err(ApiError::validation("One or more parameter values were invalid: ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an IndexName"));
            }
            (
                Some(other @ ("COUNT" | "ALL_ATTRIBUTES" | "ALL_PROJECTED_ATTRIBUTES")),
                Some(_),
                _,
            ) => {
                return Err(ApiError::validation(format!("One or more parameter values were invalid: Cannot specify the AttributesToGet or ProjectionExpression when choosing to get {other}")));
            }
            (
                None
                | Some(
                    "SPECIFIC_ATTRIBUTES" | "COUNT" | "ALL_ATTRIBUTES" | "ALL_PROJECTED_ATTRIBUTES",
                ),
                _,
                _,
            ) => {}
            (Some(other), _, _) => {
                return Err(ApiError::validation(format!("1 validation error detected: Value '{other}' at 'select' failed to satisfy constraint: Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES]")));
            }
        }
        let select_count = select == Some("COUNT");
        let forward = field(body, "ScanIndexForward")
            .and_then(Json::as_bool)
            .unwrap_or(true);
        let start = match field(body, "ExclusiveStartKey") {
            Some(key) => Some(validated_item(key)?),
            None => None,
        };
        let consistent = field(body, "ConsistentRead").and_then(Json::as_bool) == Some(true);
        self.with_table(&name, |table| {
            let index = match &index_name {
                Some(index) => Some(
                    table
                        .meta
                        .indexes
                        .iter()
                        .find(|i| &i.name == index)
                        .cloned()
                        .ok_or_else(|| {
                            ApiError::validation(format!(
                                "The table does not have the specified index: {index}"
                            ))
                        })?,
                ),
                None => None,
            };
            if let (Some("ALL_ATTRIBUTES"), Some(i)) = (select, &index) {
                let kind = i.projection.get("ProjectionType").and_then(Json::as_str);
                if !i.local && matches!(kind, Some("KEYS_ONLY" | "INCLUDE")) {
                    return Err(ApiError::validation(format!(
                        "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index {} because its projection type is not ALL",
                        i.name
                    )));
                }
            }
            if consistent && index.as_ref().is_some_and(|i| !i.local) {
                return Err(ApiError::validation(
                    "Consistent reads are not supported on global secondary indexes",
                ));
            }
            let (hash, range) = match &index {
                Some(i) => (i.hash.clone(), i.range.clone()),
                None => (table.meta.hash.clone(), table.meta.range.clone()),
            };
            // Reads return items by partition key, then sort key, compared by type (numbers
            // numerically, binary bytewise); index reads break ties by the table's key.
            let order_keys: Vec<&KeyDef> = index
                .iter()
                .flat_map(|i| std::iter::once(&i.hash).chain(&i.range))
                .chain(std::iter::once(&table.meta.hash))
                .chain(&table.meta.range)
                .collect();
            let order = |a: &Item, b: &Item| read_order(a, b, &order_keys);
            let mut candidates: Vec<(&String, &Item)> = table
                .items
                .iter()
                .filter(|(_, item)| {
                    index.is_none()
                        || (item.contains_key(&hash.name)
                            && range.as_ref().is_none_or(|r| item.contains_key(&r.name)))
                })
                .collect();
            if let Some(cond) = &key_condition {
                Self::check_key_condition(cond, &hash, range.as_ref())?;
                candidates.retain(|(_, item)| expr::evaluate(cond, item));
            }
            if let Some((seg, total)) = segment {
                candidates
                    .retain(|(key, _)| u64::from(crc32fast::hash(key.as_bytes())) % total == seg);
            }
            candidates.sort_by(|(_, a), (_, b)| order(a, b));
            if !forward {
                candidates.reverse();
            }
            if let Some(start) = &start {
                // Resume after where the start key sorts, whether or not its item still exists.
                let past = if forward {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
                candidates.retain(|(_, item)| order(item, start) == past);
            }
            // A page ends at Limit items or once 1 MB has been read, whichever comes first.
            let mut scanned: Vec<Item> = Vec::new();
            let mut read_bytes = 0;
            let mut more = false;
            for (_, item) in &candidates {
                if limit.is_some_and(|limit| scanned.len() >= limit) || read_bytes >= MAX_PAGE_BYTES
                {
                    more = true;
                    break;
                }
                let entry = match &index {
                    Some(i) => index_entry(item, i, &table.meta),
                    None => (*item).clone(),
                };
                read_bytes += item_size(&entry);
                scanned.push(entry);
            }
            let mut out = json!({"ScannedCount": scanned.len()});
            if more {
                if let Some(last) = scanned.last() {
                    let key: Item = order_keys
                        .iter()
                        .filter_map(|k| last.get(&k.name).map(|v| (k.name.clone(), v.clone())))
                        .collect();
                    out["LastEvaluatedKey"] = Json::Object(key);
                }
            }
            let matching: Vec<Item> = scanned
                .into_iter()
                .filter(|i| filter.as_ref().is_none_or(|f| expr::evaluate(f, i)))
                .collect();
            out["Count"] = json!(matching.len());
            if !select_count {
                out["Items"] = Json::Array(
                    matching
                        .into_iter()
                        .map(|item| {
                            Json::Object(match &projection {
                                Some(p) => expr::project(&item, p),
                                None => item,
                            })
                        })
                        .collect(),
                );
            }
            Ok(out)
        })
    }

    /// A key condition may only test the partition key for equality and the sort key.
    fn check_key_condition(cond: &Cond, hash: &KeyDef, range: Option<&KeyDef>) -> ApiResult<()> {
        let invalid =
            |why: &str| ApiError::validation(format!("Query key condition not supported: {why}"));
        let attr = |path: &Path| match path.as_slice() {
            [Step::Attr(a)] => Some(a.clone()),
            _ => None,
        };
        let mut parts = Vec::new();
        fn flatten<'a>(cond: &'a Cond, out: &mut Vec<&'a Cond>) {
            match cond {
                Cond::And(a, b) => {
                    flatten(a, out);
                    flatten(b, out);
                }
                other => out.push(other),
            }
        }
        flatten(cond, &mut parts);
        let mut has_hash = false;
        for part in parts {
            let name = match part {
                Cond::Compare(expr::Operand::Path(p), op, expr::Operand::Value(_)) => {
                    let name = attr(p);
                    if name.as_deref() == Some(hash.name.as_str()) && *op != expr::Cmp::Eq {
                        return Err(invalid("the partition key can only be tested with ="));
                    }
                    name
                }
                Cond::Between(expr::Operand::Path(p), _, _)
                | Cond::BeginsWith(expr::Operand::Path(p), _) => attr(p),
                _ => {
                    return Err(invalid(
                        "only =, <, <=, >, >=, BETWEEN and begins_with on key attributes",
                    ))
                }
            };
            match name {
                Some(n) if n == hash.name => has_hash = true,
                Some(n) if range.is_some_and(|r| r.name == n) => {}
                Some(n) => return Err(invalid(&format!("{n} is not a key attribute"))),
                None => return Err(invalid("nested paths are not keys")),
            }
        }
        if !has_hash {
            return Err(ApiError::validation(
                "Query condition missed key schema element: ".to_owned() + &hash.name,
            ));
        }
        Ok(())
    }
}

/// The order reads return items in, comparing the attributes of `keys` in turn by type.
fn read_order(a: &Item, b: &Item, keys: &[&KeyDef]) -> Ordering {
    keys.iter()
        .map(|k| match (a.get(&k.name), b.get(&k.name)) {
            (Some(x), Some(y)) => compare(x, y).unwrap_or(Ordering::Equal),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// What an index holds of `item`: all of it, or its projection (the table's and the index's
/// keys, plus the `NonKeyAttributes` of an INCLUDE projection).
fn index_entry(item: &Item, index: &IndexMeta, table: &TableMeta) -> Item {
    let kind = index
        .projection
        .get("ProjectionType")
        .and_then(Json::as_str);
    if !matches!(kind, Some("KEYS_ONLY" | "INCLUDE")) {
        return item.clone();
    }
    let included: Vec<&str> = index
        .projection
        .get("NonKeyAttributes")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect();
    item.iter()
        .filter(|(name, _)| {
            table.key_names().contains(&name.as_str())
                || index.hash.name == **name
                || index.range.as_ref().is_some_and(|r| r.name == **name)
                || (kind == Some("INCLUDE") && included.contains(&name.as_str()))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
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

/// The legacy (pre-expression) request forms, translated into expressions.
mod legacy {
    use super::*;
    use expr::{Cmp, Operand};

    fn path(name: &str) -> Path {
        vec![Step::Attr(name.to_owned())]
    }

    /// `Expected` / `KeyConditions` / `ScanFilter` entries joined with `operator` (AND by default).
    pub(super) fn expected(expected: &Json, operator: Option<&str>) -> ApiResult<Cond> {
        let map = expected
            .as_object()
            .ok_or_else(|| ApiError::validation("Expected must be a map"))?;
        let mut conds = Vec::new();
        for (name, spec) in map {
            let values: Vec<Operand> = spec
                .get("AttributeValueList")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .map(|v| {
                    let mut v = v.clone();
                    super::value::validate(&mut v).map(|()| Operand::Value(v))
                })
                .collect::<ApiResult<_>>()?;
            let attr = Operand::Path(path(name));
            let cond = if let Some(op) = spec.get("ComparisonOperator").and_then(Json::as_str) {
                let arg = |i: usize| {
                    values.get(i).cloned().ok_or_else(|| ApiError::validation(format!("One or more parameter values were invalid: Invalid number of argument(s) for the {op} ComparisonOperator")))
                };
                match op {
                    "EQ" => Cond::Compare(attr, Cmp::Eq, arg(0)?),
                    "NE" => Cond::Compare(attr, Cmp::Ne, arg(0)?),
                    "LT" => Cond::Compare(attr, Cmp::Lt, arg(0)?),
                    "LE" => Cond::Compare(attr, Cmp::Le, arg(0)?),
                    "GT" => Cond::Compare(attr, Cmp::Gt, arg(0)?),
                    "GE" => Cond::Compare(attr, Cmp::Ge, arg(0)?),
                    "BETWEEN" => Cond::Between(attr, arg(0)?, arg(1)?),
                    "IN" => Cond::In(attr, values.clone()),
                    "BEGINS_WITH" => Cond::BeginsWith(attr, arg(0)?),
                    "CONTAINS" => Cond::Contains(attr, arg(0)?),
                    "NOT_CONTAINS" => Cond::Not(Box::new(Cond::Contains(attr, arg(0)?))),
                    "NULL" => Cond::NotExists(path(name)),
                    "NOT_NULL" => Cond::Exists(path(name)),
                    other => {
                        return Err(ApiError::validation(format!(
                            "Unsupported ComparisonOperator {other}"
                        )))
                    }
                }
            } else if spec.get("Exists").and_then(Json::as_bool) == Some(false) {
                if spec.get("Value").is_some() {
                    return Err(ApiError::validation("One or more parameter values were invalid: Value cannot be used when Exists is false"));
                }
                Cond::NotExists(path(name))
            } else if let Some(value) = spec.get("Value") {
                let mut value = value.clone();
                super::value::validate(&mut value)?;
                Cond::Compare(attr, Cmp::Eq, Operand::Value(value))
            } else {
                return Err(ApiError::validation("One or more parameter values were invalid: Exists is true but no Value was given"));
            };
            conds.push(cond);
        }
        let or = operator == Some("OR");
        conds
            .into_iter()
            .reduce(|a, b| {
                if or {
                    Cond::Or(Box::new(a), Box::new(b))
                } else {
                    Cond::And(Box::new(a), Box::new(b))
                }
            })
            .ok_or_else(|| ApiError::validation("Expected must not be empty"))
    }

    /// `AttributeUpdates` (PUT / ADD / DELETE) as an update.
    pub(super) fn attribute_updates(updates: &Json) -> ApiResult<Update> {
        let map = updates
            .as_object()
            .ok_or_else(|| ApiError::validation("AttributeUpdates must be a map"))?;
        let mut update = Update::default();
        for (name, spec) in map {
            let value = match spec.get("Value") {
                Some(v) => {
                    let mut v = v.clone();
                    super::value::validate(&mut v)?;
                    Some(v)
                }
                None => None,
            };
            match (
                spec.get("Action").and_then(Json::as_str).unwrap_or("PUT"),
                value,
            ) {
                ("PUT", Some(v)) => update
                    .set
                    .push((path(name), expr::SetValue::Operand(Operand::Value(v)))),
                // The legacy ADD appends to a list (creating it), which expressions spell as
                // list_append.
                ("ADD", Some(v)) if type_of(&v) == Some("L") => update.set.push((
                    path(name),
                    expr::SetValue::ListAppend(
                        Box::new(expr::SetValue::IfNotExists(
                            path(name),
                            Box::new(expr::SetValue::Operand(Operand::Value(json!({"L": []})))),
                        )),
                        Box::new(expr::SetValue::Operand(Operand::Value(v))),
                    ),
                )),
                ("ADD", Some(v)) => update.add.push((path(name), v)),
                ("DELETE", Some(v)) => update.delete.push((path(name), v)),
                ("DELETE", None) => update.remove.push(path(name)),
                (action, _) => {
                    return Err(ApiError::validation(format!(
                        "One or more parameter values were invalid: Action {action} needs a Value"
                    )))
                }
            }
        }
        Ok(update)
    }
}
