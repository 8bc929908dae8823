//! PutItem, GetItem, UpdateItem and DeleteItem.

use crate::dynamodb::*;

impl DynamoDb {
    pub(crate) fn returned(
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

    pub(crate) async fn put_item(&self, body: &Json) -> ApiResult<Json> {
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

    pub(crate) fn get_item(&self, body: &Json) -> ApiResult<Json> {
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

    pub(crate) async fn update_item(&self, body: &Json) -> ApiResult<Json> {
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

    pub(crate) async fn delete_item(&self, body: &Json) -> ApiResult<Json> {
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
}
