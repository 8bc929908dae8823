//! DynamoDB expressions: condition, filter, key condition, update and projection.
//!
//! A hand-written tokenizer and recursive-descent parser turn the text into a small AST;
//! `#name` and `:value` placeholders are resolved while parsing, and every placeholder used is
//! recorded, because DynamoDB rejects requests with unused or undefined ones. Evaluation works
//! on items in DynamoDB JSON.
//!
//! - `parse`: the tokenizer, the parser and the limits DynamoDB puts on expressions;
//! - `eval`: conditions evaluated against items, updates applied to them, projections.

mod eval;
mod parse;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use serde_json::{Map, Value as Json};

use super::value::AttrValue;
use crate::wire::{ApiError, ApiResult};
pub(crate) use eval::*;
pub(crate) use parse::*;

/// One step of a document path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Attr(String),
    Index(usize),
}

/// A document path such as `a.b[2].c`.
pub(crate) type Path = Vec<Step>;

/// A value in a condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Path(Path),
    Value(AttrValue),
    Size(Path),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A condition (ConditionExpression, FilterExpression, KeyConditionExpression).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Compare(Operand, Cmp, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    Exists(Path),
    NotExists(Path),
    Type(Path, Operand),
    BeginsWith(Operand, Operand),
    Contains(Operand, Operand),
}

/// The right-hand side of a SET action.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SetValue {
    Operand(Operand),
    IfNotExists(Path, Box<SetValue>),
    ListAppend(Box<SetValue>, Box<SetValue>),
    Plus(Box<SetValue>, Box<SetValue>),
    Minus(Box<SetValue>, Box<SetValue>),
}

/// A parsed UpdateExpression.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Update {
    pub(crate) set: Vec<(Path, SetValue)>,
    pub(crate) remove: Vec<Path>,
    pub(crate) add: Vec<(Path, AttrValue)>,
    pub(crate) delete: Vec<(Path, AttrValue)>,
}

/// The placeholders of a request, and which of them the expressions used.
#[derive(Debug, Default)]
pub(crate) struct Placeholders {
    names: Map<String, Json>,
    values: Map<String, Json>,
    used_names: BTreeSet<String>,
    used_values: BTreeSet<String>,
}

impl Placeholders {
    pub(crate) fn new(names: Option<&Json>, values: Option<&Json>) -> ApiResult<Placeholders> {
        let names = match names {
            None => Map::new(),
            Some(Json::Object(map)) => map.clone(),
            Some(_) => {
                return Err(ApiError::serialization(
                    "ExpressionAttributeNames must be a map",
                ))
            }
        };
        let mut values = match values {
            None => Map::new(),
            Some(Json::Object(map)) => map.clone(),
            Some(_) => {
                return Err(ApiError::serialization(
                    "ExpressionAttributeValues must be a map",
                ))
            }
        };
        for value in values.values_mut() {
            super::value::validate(value)?;
        }
        Ok(Placeholders {
            names,
            values,
            used_names: BTreeSet::new(),
            used_values: BTreeSet::new(),
        })
    }

    /// Fails if a placeholder was provided but no expression used it.
    pub(crate) fn check_all_used(&self) -> ApiResult<()> {
        let unused: Vec<&String> = self
            .values
            .keys()
            .filter(|k| !self.used_values.contains(*k))
            .collect();
        if !unused.is_empty() {
            return Err(ApiError::validation(format!(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                unused
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let unused: Vec<&String> = self
            .names
            .keys()
            .filter(|k| !self.used_names.contains(*k))
            .collect();
        if !unused.is_empty() {
            return Err(ApiError::validation(format!(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                unused
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    }
}
