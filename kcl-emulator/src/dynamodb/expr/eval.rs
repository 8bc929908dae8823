//! Conditions evaluated against items, updates applied to them, and projections.

use std::cmp::Ordering;

use serde_json::Value as Json;

use super::*;
use crate::dynamodb::value::{compare, equal, type_of, AttrValue, Decimal, Item};
use crate::wire::{ApiError, ApiResult};

/// The value at `path` in `item`.
pub(crate) fn resolve<'a>(item: &'a Item, path: &Path) -> Option<&'a AttrValue> {
    let mut steps = path.iter();
    let Some(Step::Attr(first)) = steps.next() else {
        return None;
    };
    let mut current = item.get(first)?;
    for step in steps {
        current = match step {
            Step::Attr(name) => current.get("M")?.get(name)?,
            Step::Index(i) => current.get("L")?.get(*i)?,
        };
    }
    Some(current)
}

pub(crate) fn operand_value(item: &Item, operand: &Operand) -> Option<AttrValue> {
    match operand {
        Operand::Path(path) => resolve(item, path).cloned(),
        Operand::Value(value) => Some(value.clone()),
        Operand::Size(path) => {
            let value = resolve(item, path)?;
            let size = match type_of(value)? {
                "S" => value["S"].as_str()?.len(),
                "B" => {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(value["B"].as_str()?)
                        .ok()?
                        .len()
                }
                "L" | "SS" | "NS" | "BS" => value.as_object()?.values().next()?.as_array()?.len(),
                "M" => value["M"].as_object()?.len(),
                _ => return None,
            };
            Some(serde_json::json!({ "N": size.to_string() }))
        }
    }
}

/// Evaluates `cond` against `item` (an absent item is an empty one).
pub(crate) fn evaluate(cond: &Cond, item: &Item) -> bool {
    match cond {
        Cond::And(a, b) => evaluate(a, item) && evaluate(b, item),
        Cond::Or(a, b) => evaluate(a, item) || evaluate(b, item),
        Cond::Not(a) => !evaluate(a, item),
        Cond::Compare(a, op, b) => {
            let (Some(a), Some(b)) = (operand_value(item, a), operand_value(item, b)) else {
                return false;
            };
            match op {
                Cmp::Eq => equal(&a, &b),
                Cmp::Ne => !equal(&a, &b),
                _ => match compare(&a, &b) {
                    Some(order) => match op {
                        Cmp::Lt => order == Ordering::Less,
                        Cmp::Le => order != Ordering::Greater,
                        Cmp::Gt => order == Ordering::Greater,
                        _ => order != Ordering::Less,
                    },
                    None => false,
                },
            }
        }
        Cond::Between(v, low, high) => {
            let (Some(v), Some(low), Some(high)) = (
                operand_value(item, v),
                operand_value(item, low),
                operand_value(item, high),
            ) else {
                return false;
            };
            compare(&v, &low).is_some_and(|o| o != Ordering::Less)
                && compare(&v, &high).is_some_and(|o| o != Ordering::Greater)
        }
        Cond::In(v, options) => {
            let Some(v) = operand_value(item, v) else {
                return false;
            };
            options
                .iter()
                .any(|o| operand_value(item, o).is_some_and(|o| equal(&v, &o)))
        }
        Cond::Exists(path) => resolve(item, path).is_some(),
        Cond::NotExists(path) => resolve(item, path).is_none(),
        Cond::Type(path, kind) => {
            let expected = operand_value(item, kind)
                .and_then(|k| k.get("S").and_then(Json::as_str).map(str::to_owned));
            resolve(item, path)
                .and_then(type_of)
                .zip(expected)
                .is_some_and(|(t, e)| t == e)
        }
        Cond::BeginsWith(a, b) => {
            let (Some(a), Some(b)) = (operand_value(item, a), operand_value(item, b)) else {
                return false;
            };
            match (type_of(&a), type_of(&b)) {
                (Some("S"), Some("S")) => a["S"]
                    .as_str()
                    .zip(b["S"].as_str())
                    .is_some_and(|(a, b)| a.starts_with(b)),
                (Some("B"), Some("B")) => {
                    use base64::Engine as _;
                    let engine = base64::engine::general_purpose::STANDARD;
                    let decode =
                        |v: &AttrValue| v["B"].as_str().and_then(|s| engine.decode(s).ok());
                    decode(&a)
                        .zip(decode(&b))
                        .is_some_and(|(a, b)| a.starts_with(&b))
                }
                _ => false,
            }
        }
        Cond::Contains(a, b) => {
            let (Some(a), Some(b)) = (operand_value(item, a), operand_value(item, b)) else {
                return false;
            };
            match type_of(&a) {
                Some("S") => a["S"]
                    .as_str()
                    .zip(b.get("S").and_then(Json::as_str))
                    .is_some_and(|(a, b)| a.contains(b)),
                Some(set @ ("SS" | "NS" | "BS")) => {
                    let member = match set {
                        "SS" => b.get("S"),
                        "NS" => b.get("N"),
                        _ => b.get("B"),
                    };
                    let Some(member) = member else { return false };
                    a[set].as_array().is_some_and(|items| {
                        items.iter().any(|i| {
                            if set == "NS" {
                                equal(
                                    &serde_json::json!({"N": i}),
                                    &serde_json::json!({"N": member}),
                                )
                            } else {
                                i == member
                            }
                        })
                    })
                }
                Some("L") => a["L"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|i| equal(i, &b))),
                _ => false,
            }
        }
    }
}

pub(crate) fn eval_set(item: &Item, value: &SetValue) -> ApiResult<AttrValue> {
    let missing = |path: &Path| {
        ApiError::validation(format!(
            "The provided expression refers to an attribute that does not exist in the item: {}",
            display_path(path)
        ))
    };
    match value {
        SetValue::Operand(Operand::Path(path)) => {
            resolve(item, path).cloned().ok_or_else(|| missing(path))
        }
        SetValue::Operand(operand) => {
            operand_value(item, operand).ok_or_else(|| ApiError::validation("Invalid operand"))
        }
        SetValue::IfNotExists(path, fallback) => match resolve(item, path) {
            Some(existing) => Ok(existing.clone()),
            None => eval_set(item, fallback),
        },
        SetValue::ListAppend(a, b) => {
            let (a, b) = (eval_set(item, a)?, eval_set(item, b)?);
            match (a.get("L").and_then(Json::as_array), b.get("L").and_then(Json::as_array)) {
                (Some(a), Some(b)) => Ok(serde_json::json!({"L": a.iter().chain(b).cloned().collect::<Vec<_>>()})),
                _ => Err(ApiError::validation("An operand in the update expression has an incorrect data type; list_append needs two lists")),
            }
        }
        SetValue::Plus(a, b) | SetValue::Minus(a, b) => {
            let (a, b) = (eval_set(item, a)?, eval_set(item, b)?);
            let number = |v: &AttrValue| v.get("N").and_then(Json::as_str).and_then(Decimal::parse);
            let (Some(x), Some(y)) = (number(&a), number(&b)) else {
                return Err(ApiError::validation(
                    "An operand in the update expression has an incorrect data type",
                ));
            };
            let y = if matches!(value, SetValue::Minus(..)) {
                y.negate()
            } else {
                y
            };
            let sum = x.add(&y).ok_or_else(|| ApiError::validation("Number overflow. Attempting to store a number with magnitude larger than supported range"))?;
            Ok(serde_json::json!({"N": sum.to_string()}))
        }
    }
}

/// The container holding the last step of `path`, created along the way only for the
/// top-level attribute.
pub(crate) fn parent_mut<'a>(item: &'a mut Item, path: &Path) -> ApiResult<Option<&'a mut Json>> {
    let invalid = || {
        ApiError::validation(
            "The document path provided in the update expression is invalid for update",
        )
    };
    if path.len() == 1 {
        return Ok(None);
    }
    let Some(Step::Attr(first)) = path.first() else {
        return Err(invalid());
    };
    let mut current = item.get_mut(first).ok_or_else(invalid)?;
    for step in &path[1..path.len() - 1] {
        current = match step {
            Step::Attr(name) => current
                .get_mut("M")
                .and_then(|m| m.get_mut(name))
                .ok_or_else(invalid)?,
            Step::Index(i) => current
                .get_mut("L")
                .and_then(|l| l.get_mut(*i))
                .ok_or_else(invalid)?,
        };
    }
    Ok(Some(current))
}

pub(crate) fn put_at(item: &mut Item, path: &Path, value: AttrValue) -> ApiResult<()> {
    let invalid = || {
        ApiError::validation(
            "The document path provided in the update expression is invalid for update",
        )
    };
    match (parent_mut(item, path)?, path.last()) {
        (None, Some(Step::Attr(name))) => {
            item.insert(name.clone(), value);
        }
        (Some(parent), Some(Step::Attr(name))) => {
            parent
                .get_mut("M")
                .and_then(Json::as_object_mut)
                .ok_or_else(invalid)?
                .insert(name.clone(), value);
        }
        (Some(parent), Some(Step::Index(i))) => {
            let list = parent
                .get_mut("L")
                .and_then(Json::as_array_mut)
                .ok_or_else(invalid)?;
            if *i < list.len() {
                list[*i] = value;
            } else {
                list.push(value);
            }
        }
        _ => return Err(invalid()),
    }
    Ok(())
}

pub(crate) fn remove_at(item: &mut Item, path: &Path) -> ApiResult<()> {
    match (parent_mut(item, path)?, path.last()) {
        (None, Some(Step::Attr(name))) => {
            item.remove(name);
        }
        (Some(parent), Some(Step::Attr(name))) => {
            if let Some(map) = parent.get_mut("M").and_then(Json::as_object_mut) {
                map.remove(name);
            }
        }
        (Some(parent), Some(Step::Index(i))) => {
            if let Some(list) = parent.get_mut("L").and_then(Json::as_array_mut) {
                if *i < list.len() {
                    list.remove(*i);
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Refuses an update that acts on a key attribute. Callers check this before evaluating a
/// condition, since DynamoDB refuses such a request whatever the item holds.
pub(crate) fn check_key_untouched(update: &Update, key_names: &[&str]) -> ApiResult<()> {
    for path in update
        .set
        .iter()
        .map(|(p, _)| p)
        .chain(&update.remove)
        .chain(update.add.iter().map(|(p, _)| p))
        .chain(update.delete.iter().map(|(p, _)| p))
    {
        if let Some(Step::Attr(first)) = path.first() {
            if path.len() == 1 && key_names.contains(&first.as_str()) {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: Cannot update attribute {first}. This attribute is part of the key"
                )));
            }
        }
    }
    Ok(())
}

/// Applies `update` to `item`. Right-hand sides see the item as it was before the update.
pub(crate) fn apply_update(item: &mut Item, update: &Update, key_names: &[&str]) -> ApiResult<()> {
    check_key_untouched(update, key_names)?;
    let before = item.clone();
    let mut sets = Vec::with_capacity(update.set.len());
    for (path, value) in &update.set {
        sets.push((path, eval_set(&before, value)?));
    }
    for (path, value) in sets {
        put_at(item, path, value)?;
    }
    // Every REMOVE index refers to the list as it was: removing from the highest index
    // down keeps the lower ones in place.
    let mut removes: Vec<&Path> = update.remove.iter().collect();
    removes.sort_by(|a, b| path_order(b, a));
    for path in removes {
        remove_at(item, path)?;
    }
    for (path, value) in &update.add {
        let current = resolve(item, path).cloned();
        let next = match (type_of(value), current) {
            (Some("N"), None) => value.clone(),
            (Some("N"), Some(existing)) if type_of(&existing) == Some("N") => {
                let sum = Decimal::parse(existing["N"].as_str().unwrap_or("0"))
                    .zip(Decimal::parse(value["N"].as_str().unwrap_or("0")))
                    .and_then(|(a, b)| a.add(&b))
                    .ok_or_else(|| ApiError::validation("Number overflow in ADD"))?;
                serde_json::json!({"N": sum.to_string()})
            }
            (Some(set @ ("SS" | "NS" | "BS")), None) => {
                serde_json::json!({ set: value[set].clone() })
            }
            (Some(set @ ("SS" | "NS" | "BS")), Some(existing))
                if type_of(&existing) == Some(set) =>
            {
                let mut members: Vec<Json> = existing[set].as_array().cloned().unwrap_or_default();
                for m in value[set].as_array().into_iter().flatten() {
                    if !members.contains(m) {
                        members.push(m.clone());
                    }
                }
                serde_json::json!({ set: members })
            }
            _ => {
                return Err(ApiError::validation(
                    "An operand in the update expression has an incorrect data type",
                ))
            }
        };
        put_at(item, path, next)?;
    }
    for (path, value) in &update.delete {
        let Some(existing) = resolve(item, path).cloned() else {
            continue;
        };
        let set = type_of(value)
            .filter(|t| matches!(*t, "SS" | "NS" | "BS") && type_of(&existing) == Some(t));
        let Some(set) = set else {
            return Err(ApiError::validation(
                "An operand in the update expression has an incorrect data type",
            ));
        };
        let remove: Vec<&Json> = value[set].as_array().into_iter().flatten().collect();
        let kept: Vec<Json> = existing[set]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| !remove.contains(m))
            .cloned()
            .collect();
        if kept.is_empty() {
            remove_at(item, path)?;
        } else {
            put_at(item, path, serde_json::json!({ set: kept }))?;
        }
    }
    Ok(())
}

/// Orders paths step by step, list indexes numerically.
pub(crate) fn path_order(a: &Path, b: &Path) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (x, y) {
            (Step::Attr(x), Step::Attr(y)) => x.cmp(y),
            (Step::Index(x), Step::Index(y)) => x.cmp(y),
            (Step::Attr(_), Step::Index(_)) => Ordering::Less,
            (Step::Index(_), Step::Attr(_)) => Ordering::Greater,
        };
        if order.is_ne() {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// Keeps only the projected paths of `item`.
pub(crate) fn project(item: &Item, paths: &[Path]) -> Item {
    let mut out = Item::new();
    for path in paths {
        if let Some(value) = resolve(item, path) {
            // Nested projections keep the enclosing maps (lists are kept whole at their first index).
            let mut value = value.clone();
            for step in path[1..].iter().rev() {
                value = match step {
                    Step::Attr(name) => serde_json::json!({"M": { name.clone(): value }}),
                    Step::Index(_) => serde_json::json!({"L": [value]}),
                };
            }
            if let Some(Step::Attr(first)) = path.first() {
                merge(&mut out, first, value);
            }
        }
    }
    out
}

pub(crate) fn merge(out: &mut Item, name: &str, value: Json) {
    match (out.get_mut(name), &value) {
        (Some(Json::Object(existing)), Json::Object(incoming))
            if existing.contains_key("M") && incoming.contains_key("M") =>
        {
            if let (Some(Json::Object(a)), Some(Json::Object(b))) =
                (existing.get_mut("M"), incoming.get("M"))
            {
                for (k, v) in b {
                    let mut tmp = a.clone();
                    merge(&mut tmp, k, v.clone());
                    *a = tmp;
                }
            }
        }
        _ => {
            out.insert(name.to_owned(), value);
        }
    }
}
