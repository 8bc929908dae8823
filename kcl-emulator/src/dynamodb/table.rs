//! Tables: their metadata, keys and indexes, and how they are described to clients.

use super::*;

/// Largest item DynamoDB accepts.
pub(crate) const MAX_ITEM_BYTES: usize = 400 * 1024;
/// Largest partition key value (UTF-8 or raw binary bytes).
pub(crate) const MAX_HASH_KEY_BYTES: usize = 2048;
/// Largest sort key value.
pub(crate) const MAX_RANGE_KEY_BYTES: usize = 1024;
/// Most data one Query or Scan page reads.
pub(crate) const MAX_PAGE_BYTES: usize = 1024 * 1024;
/// Most data one BatchGetItem returns; the keys past it come back as UnprocessedKeys.
pub(crate) const MAX_BATCH_GET_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyDef {
    pub(crate) name: String,
    /// `S`, `N` or `B`.
    pub(crate) kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IndexMeta {
    pub(crate) name: String,
    pub(crate) hash: KeyDef,
    pub(crate) range: Option<KeyDef>,
    pub(crate) projection: Json,
    pub(crate) throughput: Option<Json>,
    /// A local secondary index (same partition key as the table, strongly consistent reads).
    #[serde(default)]
    pub(crate) local: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TableMeta {
    pub(crate) name: String,
    pub(crate) arn: String,
    pub(crate) hash: KeyDef,
    pub(crate) range: Option<KeyDef>,
    pub(crate) attribute_definitions: Json,
    pub(crate) indexes: Vec<IndexMeta>,
    pub(crate) billing_mode: String,
    pub(crate) throughput: Option<Json>,
    pub(crate) created_ms: i64,
    pub(crate) creating_until: i64,
    pub(crate) deleting_until: Option<i64>,
    pub(crate) ttl: Option<(String, bool)>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) pitr: bool,
    pub(crate) deletion_protection: bool,
    pub(crate) table_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Table {
    pub(crate) meta: TableMeta,
    /// Items by canonical key (JSON of the key values), which also gives scans a stable order.
    pub(crate) items: BTreeMap<String, Item>,
}

impl TableMeta {
    pub(crate) fn key_names(&self) -> Vec<&str> {
        std::iter::once(self.hash.name.as_str())
            .chain(self.range.as_ref().map(|r| r.name.as_str()))
            .collect()
    }

    pub(crate) fn status(&self, now: i64) -> &'static str {
        if self.deleting_until.is_some() {
            "DELETING"
        } else if now < self.creating_until {
            "CREATING"
        } else {
            "ACTIVE"
        }
    }
}

impl Table {
    /// The canonical key of `key` (which must hold exactly the key attributes, correctly typed).
    pub(crate) fn key_of(&self, key: &Item, exact: bool) -> ApiResult<String> {
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

impl DynamoDb {
    pub(crate) fn description(&self, table: &Table) -> Json {
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
}

/// The order reads return items in, comparing the attributes of `keys` in turn by type.
pub(crate) fn read_order(a: &Item, b: &Item, keys: &[&KeyDef]) -> Ordering {
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
pub(crate) fn index_entry(item: &Item, index: &IndexMeta, table: &TableMeta) -> Item {
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
