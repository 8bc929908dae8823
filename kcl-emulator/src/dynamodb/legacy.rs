//! The legacy (pre-expression) request forms, translated into expressions.

use super::expr::{Cmp, Operand};
use super::*;

pub(crate) fn path(name: &str) -> Path {
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
            return Err(ApiError::validation(
                "One or more parameter values were invalid: Exists is true but no Value was given",
            ));
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
