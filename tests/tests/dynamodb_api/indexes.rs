//! Global and local secondary indexes: projections, queries and scans.

use super::*;

#[tokio::test]
async fn keys_only_and_include_indexes_return_only_their_projection() {
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let name = unique_name("projected");
    client
        .create_table()
        .table_name(&name)
        .key_schema(key_element("pk", KeyType::Hash))
        .attribute_definitions(attribute("pk", ScalarAttributeType::S))
        .attribute_definitions(attribute("owner", ScalarAttributeType::S))
        .attribute_definitions(attribute("at", ScalarAttributeType::N))
        .billing_mode(BillingMode::PayPerRequest)
        .global_secondary_indexes(gsi("keys", "owner", "at", ProjectionType::KeysOnly, &[]))
        .global_secondary_indexes(gsi(
            "include",
            "owner",
            "at",
            ProjectionType::Include,
            &["color"],
        ))
        .send()
        .await
        .unwrap();
    wait_active(&client, &name).await;
    client
        .put_item()
        .table_name(&name)
        .item("pk", s("a"))
        .item("owner", s("o"))
        .item("at", n(1))
        .item("color", s("red"))
        .item("size", n(9))
        .send()
        .await
        .unwrap();
    let attributes = |index: &'static str, scan: bool| {
        let client = client.clone();
        let name = name.clone();
        async move {
            let items = if scan {
                client
                    .scan()
                    .table_name(&name)
                    .index_name(index)
                    .send()
                    .await
                    .unwrap()
                    .items
            } else {
                client
                    .query()
                    .table_name(&name)
                    .index_name(index)
                    .key_condition_expression("#o = :o")
                    .expression_attribute_names("#o", "owner")
                    .expression_attribute_values(":o", s("o"))
                    .send()
                    .await
                    .unwrap()
                    .items
            };
            let mut names: Vec<String> = items.unwrap()[0].keys().cloned().collect();
            names.sort();
            names
        }
    };
    for scan in [false, true] {
        assert_eq!(attributes("keys", scan).await, ["at", "owner", "pk"]);
        assert_eq!(
            attributes("include", scan).await,
            ["at", "color", "owner", "pk"]
        );
    }

    // Strongly consistent reads exist only on the table (and local indexes).
    let consistent = client
        .query()
        .table_name(&name)
        .index_name("keys")
        .key_condition_expression("#o = :o")
        .expression_attribute_names("#o", "owner")
        .expression_attribute_values(":o", s("o"))
        .consistent_read(true)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&consistent), "ValidationException");
    assert_eq!(
        consistent.message(),
        Some("Consistent reads are not supported on global secondary indexes")
    );
    let consistent_scan = client
        .scan()
        .table_name(&name)
        .index_name("include")
        .consistent_read(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&consistent_scan.into_service_error()),
        "ValidationException"
    );
}

#[tokio::test]
async fn local_secondary_indexes_are_described_queried_and_scanned() {
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let lsi = |name: &str, projection: ProjectionType| {
        LocalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key_element("pk", KeyType::Hash))
            .key_schema(key_element("at", KeyType::Range))
            .projection(Projection::builder().projection_type(projection).build())
            .build()
            .unwrap()
    };
    let name = unique_name("local");
    client
        .create_table()
        .table_name(&name)
        .key_schema(key_element("pk", KeyType::Hash))
        .key_schema(key_element("sk", KeyType::Range))
        .attribute_definitions(attribute("pk", ScalarAttributeType::S))
        .attribute_definitions(attribute("sk", ScalarAttributeType::N))
        .attribute_definitions(attribute("at", ScalarAttributeType::N))
        .billing_mode(BillingMode::PayPerRequest)
        .local_secondary_indexes(lsi("byAt", ProjectionType::KeysOnly))
        .send()
        .await
        .unwrap();
    wait_active(&client, &name).await;
    let items = [(1, Some(30)), (2, Some(10)), (3, None), (4, Some(20))]
        .into_iter()
        .map(|(sk, at)| {
            let mut item = HashMap::from([
                ("pk".to_owned(), s("p")),
                ("sk".to_owned(), n(sk)),
                ("note".to_owned(), s("x")),
            ]);
            if let Some(at) = at {
                item.insert("at".to_owned(), n(at));
            }
            item
        })
        .collect();
    put_all(&client, &name, items).await;

    let described = client
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .unwrap();
    let locals = described.table().unwrap().local_secondary_indexes();
    assert_eq!(locals.len(), 1);
    assert_eq!(locals[0].index_name(), Some("byAt"));
    assert_eq!(locals[0].item_count(), Some(3));
    assert!(described
        .table()
        .unwrap()
        .global_secondary_indexes()
        .is_empty());

    // Local indexes read strongly consistent, in index order, only items with the index key.
    let queried = client
        .query()
        .table_name(&name)
        .index_name("byAt")
        .key_condition_expression("pk = :p AND #at > :low")
        .expression_attribute_names("#at", "at")
        .expression_attribute_values(":p", s("p"))
        .expression_attribute_values(":low", n(5))
        .consistent_read(true)
        .limit(2)
        .send()
        .await
        .unwrap();
    let sks: Vec<i64> = queried.items().iter().map(sk_of).collect();
    assert_eq!(sks, [2, 4]);
    assert!(queried.items().iter().all(|i| !i.contains_key("note")));
    let start = queried.last_evaluated_key().unwrap();
    let mut start_keys: Vec<&String> = start.keys().collect();
    start_keys.sort();
    assert_eq!(start_keys, ["at", "pk", "sk"]);
    let rest = client
        .query()
        .table_name(&name)
        .index_name("byAt")
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s("p"))
        .set_exclusive_start_key(Some(start.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.items().iter().map(sk_of).collect::<Vec<_>>(), [1]);
    let scanned = client
        .scan()
        .table_name(&name)
        .index_name("byAt")
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(scanned.count(), 3);

    // A local index needs a table with a sort key, and the table's partition key.
    let no_range = client
        .create_table()
        .table_name(unique_name("local-bad"))
        .key_schema(key_element("pk", KeyType::Hash))
        .attribute_definitions(attribute("pk", ScalarAttributeType::S))
        .attribute_definitions(attribute("at", ScalarAttributeType::N))
        .billing_mode(BillingMode::PayPerRequest)
        .local_secondary_indexes(lsi("byAt", ProjectionType::All))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&no_range.into_service_error()), "ValidationException");
}
