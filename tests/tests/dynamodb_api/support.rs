//! Builders and waits the index and paging tests share.

use super::*;

pub(crate) fn key_element(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .unwrap()
}

pub(crate) fn attribute(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .unwrap()
}

/// A GSI `name` on `hash` + `range` with `projection` (`NonKeyAttributes` for INCLUDE).
pub(crate) fn gsi(
    name: &str,
    hash: &str,
    range: &str,
    projection: ProjectionType,
    include: &[&str],
) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key_element(hash, KeyType::Hash))
        .key_schema(key_element(range, KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(projection)
                .set_non_key_attributes(
                    (!include.is_empty()).then(|| include.iter().map(|a| a.to_string()).collect()),
                )
                .build(),
        )
        .build()
        .unwrap()
}

/// Waits until table `name` is ACTIVE.
pub(crate) async fn wait_active(client: &aws_sdk_dynamodb::Client, name: &str) {
    eventually("table ACTIVE", || async {
        let d = client.describe_table().table_name(name).send().await.ok()?;
        (d.table()?.table_status() == Some(&TableStatus::Active)).then_some(())
    })
    .await;
}

/// Puts `items` with as few BatchWriteItem calls as DynamoDB allows (25 per call).
pub(crate) async fn put_all(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
    items: Vec<HashMap<String, AV>>,
) {
    let writes: Vec<WriteRequest> = items
        .into_iter()
        .map(|item| {
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect();
    for chunk in writes.chunks(25) {
        let out = client
            .batch_write_item()
            .request_items(name, chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert!(out.unprocessed_items().is_none_or(HashMap::is_empty));
    }
}

pub(crate) fn sk_of(item: &HashMap<String, AV>) -> i64 {
    item["sk"].as_n().unwrap().parse().unwrap()
}
