//! CreateTable, DescribeTable, ListTables, DeleteTable, UpdateTable, TTL, tags and backups.

use crate::dynamodb::*;

impl DynamoDb {
    pub(crate) fn table_name(body: &Json) -> ApiResult<String> {
        let name = required_str(body, "TableName")?;
        // A table ARN works wherever a name does.
        let name = name.rsplit_once(":table/").map_or(name, |(_, n)| n);
        if name.len() < 3
            || name.len() > 255
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Err(validation::invalid(name, "tableName", "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 3 and 255"));
        }
        Ok(name.to_owned())
    }

    pub(crate) fn key_defs(
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

    pub(crate) async fn create_table(&self, body: &Json) -> ApiResult<Json> {
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

    pub(crate) fn index_meta(
        gsi: &Json,
        definitions: &[Json],
        billing_mode: &str,
    ) -> ApiResult<IndexMeta> {
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

    pub(crate) fn describe_table(&self, body: &Json) -> ApiResult<Json> {
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

    pub(crate) fn list_tables(&self, body: &Json) -> ApiResult<Json> {
        let limit = field(body, "Limit").and_then(Json::as_u64).unwrap_or(100);
        if !(1..=100).contains(&limit) {
            return Err(validation::invalid_unshown(
                "limit",
                "Member must have value between 1 and 100",
            ));
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

    pub(crate) async fn delete_table(&self, body: &Json) -> ApiResult<Json> {
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

    pub(crate) async fn update_table(&self, body: &Json) -> ApiResult<Json> {
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

    pub(crate) fn describe_ttl(&self, body: &Json) -> ApiResult<Json> {
        let name = Self::table_name(body)?;
        self.with_table(&name, |table| {
            Ok(match &table.meta.ttl {
                Some((attribute, true)) => json!({"TimeToLiveDescription": {"TimeToLiveStatus": "ENABLED", "AttributeName": attribute}}),
                _ => json!({"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}),
            })
        })
    }

    pub(crate) async fn update_ttl(&self, body: &Json) -> ApiResult<Json> {
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

    pub(crate) async fn tags(&self, operation: &str, body: &Json) -> ApiResult<Json> {
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

    pub(crate) async fn backups(&self, operation: &str, body: &Json) -> ApiResult<Json> {
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
}
