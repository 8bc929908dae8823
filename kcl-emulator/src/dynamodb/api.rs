//! The dispatch on the operation name, and helpers that read request members.

use super::*;

pub(crate) fn s(v: &Json) -> Option<&str> {
    v.as_str()
}

pub(crate) fn field<'a>(body: &'a Json, name: &str) -> Option<&'a Json> {
    body.get(name).filter(|v| !v.is_null())
}

pub(crate) fn required_str<'a>(body: &'a Json, name: &str) -> ApiResult<&'a str> {
    match field(body, name) {
        Some(Json::String(text)) => Ok(text),
        Some(_) => Err(ApiError::serialization(format!("{name} must be a string"))),
        None => Err(validation::null(&lower_first(name))),
    }
}

pub(crate) fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

pub(crate) fn not_found() -> ApiError {
    ApiError::not_found("Requested resource not found")
}

pub(crate) fn conditional_failed(old: Option<&Item>, body: &Json) -> ApiError {
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
pub(crate) fn validated_item(raw: &Json) -> ApiResult<Item> {
    let Some(map) = raw.as_object() else {
        return Err(ApiError::serialization("Item must be a map"));
    };
    let mut item = map.clone();
    for value in item.values_mut() {
        value::validate(value)?;
    }
    Ok(item)
}

/// A condition from ConditionExpression or the legacy Expected form.
pub(crate) fn write_condition(
    body: &Json,
    placeholders: &mut Placeholders,
) -> ApiResult<Option<Cond>> {
    match (field(body, "ConditionExpression").and_then(s), field(body, "Expected")) {
        (Some(_), Some(_)) => Err(ApiError::validation(
            "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {Expected} Expression parameters: {ConditionExpression}",
        )),
        (Some(text), None) => Ok(Some(expr::parse_condition("ConditionExpression", text, placeholders)?)),
        (None, Some(expected)) => legacy::expected(expected, field(body, "ConditionalOperator").and_then(s)).map(Some),
        (None, None) => Ok(None),
    }
}

pub(crate) fn projection(
    body: &Json,
    placeholders: &mut Placeholders,
) -> ApiResult<Option<Vec<Path>>> {
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

pub(crate) fn placeholders(body: &Json) -> ApiResult<Placeholders> {
    Placeholders::new(
        field(body, "ExpressionAttributeNames"),
        field(body, "ExpressionAttributeValues"),
    )
}

impl DynamoDb {
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
}
