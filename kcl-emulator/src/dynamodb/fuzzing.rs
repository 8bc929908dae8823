//! The expression handling of the item operations, run on one request without a table, for
//! fuzzing. It calls the same functions, in the same order, as `put_item`, `update_item`,
//! `get_item` and `scan_or_query`, then evaluates what parsed against an item, so any panic
//! here is a panic a request could cause in the server.

use serde_json::{json, Value as Json};

use super::{expr, placeholders, value, Update};
use super::{field, legacy, projection, s, validated_item, write_condition, DynamoDb, KeyDef};
use crate::wire::codec::{self, Format};
use crate::wire::ApiResult;

/// A lease-table-shaped item the expressions are evaluated against when the request has none.
fn default_item() -> value::Item {
    let item = json!({
        "leaseKey": {"S": "shardId-000000000001"},
        "sk": {"N": "7"},
        "leaseOwner": {"S": "worker-a"},
        "leaseCounter": {"N": "42"},
        "checkpoint": {"S": "49590338271490256608559692538361571095921575989136588898"},
        "ownerSwitchesSinceCheckpoint": {"N": "0"},
        "parentShardId": {"SS": ["shardId-000000000000"]},
        "hashKeyRange": {"M": {"startingHashKey": {"S": "0"}, "endingHashKey": {"S": "340282366920938463463374607431768211455"}}},
        "childShardIds": {"L": [{"S": "shardId-000000000002"}, {"S": "shardId-000000000003"}]},
        "blob": {"B": "AAEC"},
        "gone": {"NULL": true},
        "flag": {"BOOL": false},
    });
    match item {
        Json::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

/// Runs every expression member of a DynamoDB request `body` (raw JSON 1.0 bytes) through the
/// server's parsing, placeholder checks, key-condition check, evaluation, update and projection.
///
/// # Errors
/// The error the server would answer with; only a panic is a bug.
pub(crate) fn expressions(body: &[u8]) -> ApiResult<()> {
    let body = codec::decode_value(Format::Json, body)?;
    let mut placeholders = placeholders(&body)?;
    let condition = write_condition(&body, &mut placeholders)?;
    let key_condition = match field(&body, "KeyConditionExpression").and_then(s) {
        Some(text) => Some(expr::parse_condition(
            "KeyConditionExpression",
            text,
            &mut placeholders,
        )?),
        None => None,
    };
    let filter = match field(&body, "FilterExpression").and_then(s) {
        Some(text) => Some(expr::parse_condition(
            "FilterExpression",
            text,
            &mut placeholders,
        )?),
        None => None,
    };
    let projection = projection(&body, &mut placeholders)?;
    let update = match (
        field(&body, "UpdateExpression").and_then(s),
        field(&body, "AttributeUpdates"),
    ) {
        (Some(text), _) => expr::parse_update(text, &mut placeholders)?,
        (None, Some(updates)) => legacy::attribute_updates(updates)?,
        (None, None) => Update::default(),
    };
    placeholders.check_all_used()?;

    let item = match field(&body, "Item") {
        Some(raw) => validated_item(raw)?,
        None => default_item(),
    };
    let hash = KeyDef {
        name: "leaseKey".to_owned(),
        kind: "S".to_owned(),
    };
    let range = KeyDef {
        name: "sk".to_owned(),
        kind: "N".to_owned(),
    };
    if let Some(cond) = &key_condition {
        DynamoDb::check_key_condition(cond, &hash, Some(&range))?;
        expr::evaluate(cond, &item);
    }
    for cond in [&condition, &filter].into_iter().flatten() {
        expr::evaluate(cond, &item);
    }
    let mut updated = item.clone();
    expr::apply_update(&mut updated, &update, &["leaseKey", "sk"])?;
    value::item_size(&updated);
    if let Some(paths) = &projection {
        expr::project(&updated, paths);
    }
    Ok(())
}
