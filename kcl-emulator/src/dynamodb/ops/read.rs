//! Query and Scan.

use crate::dynamodb::*;

impl DynamoDb {
    pub(crate) fn scan_or_query(&self, body: &Json, query: bool) -> ApiResult<Json> {
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
                let l = l.as_u64().filter(|l| *l >= 1).ok_or_else(|| {
                    validation::invalid_unshown(
                        "limit",
                        "Member must have value greater than or equal to 1",
                    )
                })?;
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
                return Err(validation::invalid(other, "select", "Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES]"));
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
    pub(crate) fn check_key_condition(
        cond: &Cond,
        hash: &KeyDef,
        range: Option<&KeyDef>,
    ) -> ApiResult<()> {
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
