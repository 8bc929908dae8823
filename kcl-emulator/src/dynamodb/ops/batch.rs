//! BatchGetItem, BatchWriteItem, TransactWriteItems and TransactGetItems.

use crate::dynamodb::*;

impl DynamoDb {
    pub(crate) fn batch_get(&self, body: &Json) -> ApiResult<Json> {
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

    pub(crate) async fn batch_write(&self, body: &Json) -> ApiResult<Json> {
        let requests = field(body, "RequestItems")
            .and_then(Json::as_object)
            .ok_or_else(|| ApiError::validation("RequestItems is required"))?;
        let total: usize = requests
            .values()
            .map(|r| r.as_array().map_or(0, Vec::len))
            .sum();
        if total == 0 || total > 25 {
            return Err(validation::invalid_unshown(
                "requestItems",
                "Member must have length less than or equal to 25",
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

    pub(crate) async fn transact_write(&self, body: &Json) -> ApiResult<Json> {
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

    pub(crate) fn transact_get(&self, body: &Json) -> ApiResult<Json> {
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
}
