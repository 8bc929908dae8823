//! The emulator's DynamoDB API through `aws-sdk-dynamodb`: tables, items, conditions, update
//! expressions, batches, transactions, scans and queries, and DynamoDB-shaped errors.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeAction, AttributeDefinition, AttributeValue as AV, AttributeValueUpdate, BillingMode,
    ConditionCheck, ExpectedAttributeValue, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, Put, PutRequest, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, Select, TableStatus,
    TimeToLiveSpecification, TransactWriteItem, Update, WriteRequest,
};
use kcl_integration_tests::{dynamodb_client, eventually, start_emulator, unique_name};

fn s(v: &str) -> AV {
    AV::S(v.to_owned())
}

fn n(v: i64) -> AV {
    AV::N(v.to_string())
}

fn code<E: ProvideErrorMetadata>(err: &E) -> String {
    err.code().unwrap_or("<none>").to_owned()
}

/// A table `pk` (S) + `sk` (N) with a GSI `byOwner` on `owner` (S) + `sk`.
async fn table(client: &aws_sdk_dynamodb::Client) -> String {
    let name = unique_name("items");
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attr = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .unwrap()
    };
    let created = client
        .create_table()
        .table_name(&name)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attr("pk", ScalarAttributeType::S))
        .attribute_definitions(attr("sk", ScalarAttributeType::N))
        .attribute_definitions(attr("owner", ScalarAttributeType::S))
        .billing_mode(BillingMode::PayPerRequest)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("byOwner")
                .key_schema(key("owner", KeyType::Hash))
                .key_schema(key("sk", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.table_description().unwrap().table_status(),
        Some(&TableStatus::Creating)
    );
    eventually("table ACTIVE", || async {
        let d = client
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .ok()?;
        (d.table()?.table_status() == Some(&TableStatus::Active)).then_some(())
    })
    .await;
    name
}

#[tokio::test]
async fn tables_are_created_described_listed_updated_and_deleted() {
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let name = table(&client).await;
    let dup = client
        .create_table()
        .table_name(&name)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&dup.into_service_error()), "ResourceInUseException");
    let missing = client
        .describe_table()
        .table_name("nope-table")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(missing.is_resource_not_found_exception());

    let _other = table(&client).await;
    let first = client.list_tables().limit(1).send().await.unwrap();
    assert_eq!(first.table_names().len(), 1);
    let rest = client
        .list_tables()
        .exclusive_start_table_name(first.last_evaluated_table_name().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.table_names().len(), 1);

    client
        .update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let ttl = client
        .describe_time_to_live()
        .table_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description().unwrap().attribute_name(),
        Some("expires")
    );
    let arn = client
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .unwrap()
        .table()
        .unwrap()
        .table_arn()
        .unwrap()
        .to_owned();
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags(
            aws_sdk_dynamodb::types::Tag::builder()
                .key("team")
                .value("data")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        client
            .list_tags_of_resource()
            .resource_arn(&arn)
            .send()
            .await
            .unwrap()
            .tags()
            .len(),
        1
    );
    client
        .update_table()
        .table_name(&name)
        .deletion_protection_enabled(true)
        .send()
        .await
        .unwrap();
    let protected = client
        .delete_table()
        .table_name(&name)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&protected.into_service_error()), "ValidationException");
    client
        .update_table()
        .table_name(&name)
        .deletion_protection_enabled(false)
        .send()
        .await
        .unwrap();
    let backups = client
        .describe_continuous_backups()
        .table_name(&name)
        .send()
        .await
        .unwrap();
    assert!(backups.continuous_backups_description().is_some());
    client
        .delete_table()
        .table_name(&name)
        .send()
        .await
        .unwrap();
    eventually("table gone", || async {
        client
            .describe_table()
            .table_name(&name)
            .send()
            .await
            .err()
            .map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn conditional_writes_pass_and_fail_as_dynamodb_does() {
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let name = table(&client).await;
    client
        .put_item()
        .table_name(&name)
        .item("pk", s("a"))
        .item("sk", n(1))
        .item("count", n(1))
        .send()
        .await
        .unwrap();
    // create-if-absent fails on an existing item and hands back the old item when asked.
    let err = client
        .put_item()
        .table_name(&name)
        .item("pk", s("a"))
        .item("sk", n(1))
        .condition_expression("attribute_not_exists(pk)")
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_conditional_check_failed_exception());
    match err {
        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(e) => {
            assert_eq!(e.item().unwrap().get("count"), Some(&n(1)));
        }
        other => panic!("{other:?}"),
    }
    // A counter-fenced update: passes with the right counter, fails with a stale one.
    let update = |expected: i64| {
        client
            .update_item()
            .table_name(&name)
            .key("pk", s("a"))
            .key("sk", n(1))
            .condition_expression("#c = :expected")
            .update_expression("SET #c = #c + :one")
            .expression_attribute_names("#c", "count")
            .expression_attribute_values(":expected", n(expected))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
    };
    let out = update(1).await.unwrap();
    assert_eq!(out.attributes().unwrap().get("count"), Some(&n(2)));
    assert!(update(1)
        .await
        .unwrap_err()
        .into_service_error()
        .is_conditional_check_failed_exception());
    // Delete with a condition.
    let stale = client
        .delete_item()
        .table_name(&name)
        .key("pk", s("a"))
        .key("sk", n(1))
        .condition_expression("#c = :v")
        .expression_attribute_names("#c", "count")
        .expression_attribute_values(":v", n(9))
        .send()
        .await;
    assert!(stale
        .unwrap_err()
        .into_service_error()
        .is_conditional_check_failed_exception());
    let gone = client
        .delete_item()
        .table_name(&name)
        .key("pk", s("a"))
        .key("sk", n(1))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.attributes().unwrap().get("count"), Some(&n(2)));
    assert!(client
        .get_item()
        .table_name(&name)
        .key("pk", s("a"))
        .key("sk", n(1))
        .send()
        .await
        .unwrap()
        .item()
        .is_none());
    // The legacy Expected and AttributeUpdates forms.
    client
        .update_item()
        .table_name(&name)
        .key("pk", s("legacy"))
        .key("sk", n(1))
        .expected(
            "pk",
            ExpectedAttributeValue::builder().exists(false).build(),
        )
        .attribute_updates(
            "tags",
            AttributeValueUpdate::builder()
                .action(AttributeAction::Add)
                .value(AV::Ss(vec!["x".into()]))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let item = client
        .get_item()
        .table_name(&name)
        .key("pk", s("legacy"))
        .key("sk", n(1))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        item.item().unwrap().get("tags"),
        Some(&AV::Ss(vec!["x".into()]))
    );
}

#[tokio::test]
async fn update_expressions_of_every_kind() {
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let name = table(&client).await;
    client
        .put_item()
        .table_name(&name)
        .item("pk", s("u"))
        .item("sk", n(1))
        .item("list", AV::L(vec![s("a")]))
        .item("gone", AV::Bool(true))
        .item("set", AV::Ss(vec!["x".into(), "y".into()]))
        .item("map", AV::M(HashMap::from([("inner".to_owned(), n(1))])))
        .send()
        .await
        .unwrap();
    let out = client
        .update_item()
        .table_name(&name)
        .key("pk", s("u"))
        .key("sk", n(1))
        .update_expression(
            "SET visits = if_not_exists(visits, :zero) + :one, #l = list_append(#l, :more), #m.#i = #m.#i - :one REMOVE gone ADD #t :five, letters :ab DELETE #s :x",
        )
        .expression_attribute_names("#l", "list")
        .expression_attribute_names("#i", "inner")
        .expression_attribute_names("#t", "total")
        .expression_attribute_names("#m", "map")
        .expression_attribute_names("#s", "set")
        .expression_attribute_values(":zero", n(0))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":five", AV::N("5.5".into()))
        .expression_attribute_values(":more", AV::L(vec![s("b")]))
        .expression_attribute_values(":ab", AV::Ss(vec!["a".into(), "b".into()]))
        .expression_attribute_values(":x", AV::Ss(vec!["x".into()]))
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .unwrap();
    let item = out.attributes().unwrap();
    assert_eq!(item.get("visits"), Some(&n(1)));
    assert_eq!(item.get("list"), Some(&AV::L(vec![s("a"), s("b")])));
    assert_eq!(
        item.get("map"),
        Some(&AV::M(HashMap::from([("inner".to_owned(), n(0))])))
    );
    assert!(!item.contains_key("gone"));
    assert_eq!(item.get("total"), Some(&AV::N("5.5".into())));
    assert_eq!(item.get("set"), Some(&AV::Ss(vec!["y".into()])));
    let mut letters = item.get("letters").unwrap().as_ss().unwrap().clone();
    letters.sort();
    assert_eq!(letters, ["a", "b"]);

    // Bad expressions and key mismatches are ValidationExceptions with a message.
    let bad = client
        .update_item()
        .table_name(&name)
        .key("pk", s("u"))
        .key("sk", n(1))
        .update_expression("SET = :v")
        .expression_attribute_values(":v", n(1))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&bad), "ValidationException");
    assert!(bad.message().unwrap().contains("Syntax error"), "{bad:?}");
    let unused = client
        .get_item()
        .table_name(&name)
        .key("pk", s("u"))
        .key("sk", n(1))
        .expression_attribute_names("#unused", "x")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        unused.message().unwrap_or_default().contains("unused"),
        "{unused:?}"
    );
    let mismatch = client
        .get_item()
        .table_name(&name)
        .key("pk", s("u"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        mismatch
            .message()
            .unwrap()
            .contains("key element does not match"),
        "{mismatch:?}"
    );
    let missing_table = client
        .get_item()
        .table_name("nope-table")
        .key("pk", s("u"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(missing_table.is_resource_not_found_exception());
}

#[tokio::test]
async fn batches_transactions_scans_and_queries() {
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let name = table(&client).await;
    let writes: Vec<WriteRequest> = (0..20)
        .map(|i| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .item("pk", s(if i % 2 == 0 { "even" } else { "odd" }))
                        .item("sk", n(i))
                        .item("owner", s(&format!("w{}", i % 3)))
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect();
    client
        .batch_write_item()
        .request_items(&name, writes)
        .send()
        .await
        .unwrap();
    let keys = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
        .keys(HashMap::from([
            ("pk".to_owned(), s("even")),
            ("sk".to_owned(), n(0)),
        ]))
        .keys(HashMap::from([
            ("pk".to_owned(), s("odd")),
            ("sk".to_owned(), n(99)),
        ]))
        .build()
        .unwrap();
    let got = client
        .batch_get_item()
        .request_items(&name, keys)
        .send()
        .await
        .unwrap();
    assert_eq!(got.responses().unwrap()[&name].len(), 1);

    // Scan pages with Limit / LastEvaluatedKey and filters; segments partition the table.
    let mut start = None;
    let mut seen = 0;
    loop {
        let page = client
            .scan()
            .table_name(&name)
            .limit(6)
            .set_exclusive_start_key(start.clone())
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        seen += page.items().len();
        match page.last_evaluated_key() {
            Some(key) => start = Some(key.clone()),
            None => break,
        }
    }
    assert_eq!(seen, 20);
    let filtered = client
        .scan()
        .table_name(&name)
        .filter_expression("sk >= :ten")
        .expression_attribute_values(":ten", n(10))
        .select(Select::Count)
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.count(), 10);
    let mut segmented = 0;
    for segment in 0..3 {
        segmented += client
            .scan()
            .table_name(&name)
            .segment(segment)
            .total_segments(3)
            .send()
            .await
            .unwrap()
            .items()
            .len();
    }
    assert_eq!(segmented, 20);

    // Query: partition equality, range conditions, order.
    let q = client
        .query()
        .table_name(&name)
        .key_condition_expression("pk = :p AND sk BETWEEN :lo AND :hi")
        .expression_attribute_values(":p", s("even"))
        .expression_attribute_values(":lo", n(4))
        .expression_attribute_values(":hi", n(10))
        .scan_index_forward(false)
        .send()
        .await
        .unwrap();
    let sks: Vec<_> = q
        .items()
        .iter()
        .map(|i| i["sk"].as_n().unwrap().clone())
        .collect();
    assert_eq!(sks, ["10", "8", "6", "4"]);
    let by_owner = client
        .query()
        .table_name(&name)
        .index_name("byOwner")
        .key_condition_expression("#o = :o")
        .expression_attribute_names("#o", "owner")
        .expression_attribute_values(":o", s("w0"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_owner.items().len(), 7);
    let bad_query = client
        .query()
        .table_name(&name)
        .key_condition_expression("sk = :v")
        .expression_attribute_values(":v", n(1))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad_query.into_service_error()), "ValidationException");

    // Transactions: all or nothing, with reasons on cancellation.
    let check = |value: i64| {
        TransactWriteItem::builder()
            .condition_check(
                ConditionCheck::builder()
                    .table_name(&name)
                    .key("pk", s("even"))
                    .key("sk", n(0))
                    .condition_expression("#o = :o")
                    .expression_attribute_names("#o", "owner")
                    .expression_attribute_values(":o", s(&format!("w{value}")))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let put_new = TransactWriteItem::builder()
        .put(
            Put::builder()
                .table_name(&name)
                .set_item(Some(HashMap::from([
                    ("pk".to_owned(), s("tx")),
                    ("sk".to_owned(), n(1)),
                ])))
                .build()
                .unwrap(),
        )
        .build();
    let bump = TransactWriteItem::builder()
        .update(
            Update::builder()
                .table_name(&name)
                .key("pk", s("odd"))
                .key("sk", n(1))
                .update_expression("SET hits = :one")
                .expression_attribute_values(":one", n(1))
                .build()
                .unwrap(),
        )
        .build();
    let cancelled = client
        .transact_write_items()
        .transact_items(check(1))
        .transact_items(put_new.clone())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match &cancelled {
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(e) => {
            let codes: Vec<_> = e.cancellation_reasons().iter().map(|r| r.code().unwrap_or_default().to_owned()).collect();
            assert_eq!(codes, ["ConditionalCheckFailed", "None"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        client
            .get_item()
            .table_name(&name)
            .key("pk", s("tx"))
            .key("sk", n(1))
            .send()
            .await
            .unwrap()
            .item()
            .is_none(),
        "nothing applied"
    );
    client
        .transact_write_items()
        .transact_items(check(0))
        .transact_items(put_new)
        .transact_items(bump)
        .send()
        .await
        .unwrap();
    assert!(client
        .get_item()
        .table_name(&name)
        .key("pk", s("tx"))
        .key("sk", n(1))
        .send()
        .await
        .unwrap()
        .item()
        .is_some());
    let odd = client
        .get_item()
        .table_name(&name)
        .key("pk", s("odd"))
        .key("sk", n(1))
        .projection_expression("hits")
        .send()
        .await
        .unwrap();
    assert_eq!(odd.item().unwrap().len(), 1);
}

fn key_element(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .unwrap()
}

fn attribute(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .unwrap()
}

/// A GSI `name` on `hash` + `range` with `projection` (`NonKeyAttributes` for INCLUDE).
fn gsi(
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
async fn wait_active(client: &aws_sdk_dynamodb::Client, name: &str) {
    eventually("table ACTIVE", || async {
        let d = client.describe_table().table_name(name).send().await.ok()?;
        (d.table()?.table_status() == Some(&TableStatus::Active)).then_some(())
    })
    .await;
}

/// Puts `items` with as few BatchWriteItem calls as DynamoDB allows (25 per call).
async fn put_all(client: &aws_sdk_dynamodb::Client, name: &str, items: Vec<HashMap<String, AV>>) {
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

fn sk_of(item: &HashMap<String, AV>) -> i64 {
    item["sk"].as_n().unwrap().parse().unwrap()
}

#[tokio::test]
async fn reads_resume_after_a_start_key_whose_item_was_deleted() {
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let name = table(&client).await;
    let items = (0..12)
        .map(|i| {
            HashMap::from([
                ("pk".to_owned(), s(if i % 2 == 0 { "even" } else { "odd" })),
                ("sk".to_owned(), n(i)),
                ("owner".to_owned(), s("w")),
            ])
        })
        .collect();
    put_all(&client, &name, items).await;
    let delete = |key: HashMap<String, AV>| {
        let client = client.clone();
        let name = name.clone();
        async move {
            client
                .delete_item()
                .table_name(&name)
                .key("pk", key["pk"].clone())
                .key("sk", key["sk"].clone())
                .send()
                .await
                .unwrap();
        }
    };

    // Query: the page's last item goes away before the next page is asked for.
    let query = |start: Option<HashMap<String, AV>>, index: Option<&str>| {
        let mut q = client
            .query()
            .table_name(&name)
            .limit(2)
            .set_exclusive_start_key(start)
            .set_index_name(index.map(str::to_owned));
        q = match index {
            Some(_) => q
                .key_condition_expression("#o = :o")
                .expression_attribute_names("#o", "owner")
                .expression_attribute_values(":o", s("w")),
            None => q
                .key_condition_expression("pk = :p")
                .expression_attribute_values(":p", s("even")),
        };
        q.send()
    };
    let first = query(None, None).await.unwrap();
    let start = first.last_evaluated_key().unwrap().clone();
    assert_eq!(sk_of(&start), 2);
    delete(start.clone()).await;
    let next = query(Some(start), None).await.unwrap();
    let sks: Vec<i64> = next.items().iter().map(sk_of).collect();
    assert_eq!(sks, [4, 6]);
    assert!(next.last_evaluated_key().is_some());

    // The same through the GSI (its start key carries the table's and the index's keys).
    let first = query(None, Some("byOwner")).await.unwrap();
    let start = first.last_evaluated_key().unwrap().clone();
    assert_eq!(sk_of(&start), 1);
    delete(start.clone()).await;
    let next = query(Some(start), Some("byOwner")).await.unwrap();
    let sks: Vec<i64> = next.items().iter().map(sk_of).collect();
    assert_eq!(sks, [3, 4]);

    // Scans, whole-table and by segment, each page's last item deleted before the next page.
    for segments in [None, Some(2)] {
        let mut seen = Vec::new();
        let mut deleted = 0;
        for segment in 0..segments.unwrap_or(1) {
            let mut start: Option<HashMap<String, AV>> = None;
            loop {
                let page = client
                    .scan()
                    .table_name(&name)
                    .limit(3)
                    .set_segment(segments.map(|_| segment))
                    .set_total_segments(segments)
                    .set_exclusive_start_key(start.clone())
                    .send()
                    .await
                    .unwrap();
                seen.extend(page.items().iter().map(sk_of));
                match page.last_evaluated_key() {
                    Some(key) => {
                        delete(key.clone()).await;
                        deleted += 1;
                        start = Some(key.clone());
                    }
                    None => break,
                }
            }
        }
        let left = client.scan().table_name(&name).send().await.unwrap();
        assert_eq!(
            seen.len(),
            left.items().len() + deleted,
            "every item is seen once ({segments:?} segments): {seen:?}"
        );
    }
}

#[tokio::test]
async fn scans_order_number_and_binary_sort_keys_by_value() {
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let numbers = table(&client).await;
    let items = [10, 2, -3, 1]
        .into_iter()
        .map(|i| HashMap::from([("pk".to_owned(), s("p")), ("sk".to_owned(), n(i))]))
        .collect();
    put_all(&client, &numbers, items).await;
    let scanned = client.scan().table_name(&numbers).send().await.unwrap();
    let sks: Vec<i64> = scanned.items().iter().map(sk_of).collect();
    assert_eq!(sks, [-3, 1, 2, 10]);

    let binary = unique_name("binary");
    client
        .create_table()
        .table_name(&binary)
        .key_schema(key_element("pk", KeyType::Hash))
        .key_schema(key_element("sk", KeyType::Range))
        .attribute_definitions(attribute("pk", ScalarAttributeType::S))
        .attribute_definitions(attribute("sk", ScalarAttributeType::B))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    wait_active(&client, &binary).await;
    // Base64 text sorts 0xff ("/w==") before 0x10 ("EA=="); bytes sort it after.
    let blobs: [&[u8]; 4] = [&[0xff], &[0x10, 0x00], &[0x10], &[0x00, 0xff]];
    let items = blobs
        .iter()
        .map(|b| {
            HashMap::from([
                ("pk".to_owned(), s("p")),
                (
                    "sk".to_owned(),
                    AV::B(aws_sdk_dynamodb::primitives::Blob::new(*b)),
                ),
            ])
        })
        .collect();
    put_all(&client, &binary, items).await;
    let scanned = client.scan().table_name(&binary).send().await.unwrap();
    let order: Vec<Vec<u8>> = scanned
        .items()
        .iter()
        .map(|i| i["sk"].as_b().unwrap().as_ref().to_vec())
        .collect();
    assert_eq!(
        order,
        [vec![0x00, 0xff], vec![0x10], vec![0x10, 0x00], vec![0xff]]
    );
}

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
async fn pages_stop_at_one_megabyte_and_batch_gets_at_sixteen() {
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let name = table(&client).await;
    let big = |i: i64, bytes: usize| {
        HashMap::from([
            ("pk".to_owned(), s("p")),
            ("sk".to_owned(), n(i)),
            ("owner".to_owned(), s("w")),
            ("blob".to_owned(), s(&"x".repeat(bytes))),
        ])
    };
    // 45 items of 380 KB: 1 MB pages hold 3 of them, a 16 MB batch read 44.
    put_all(
        &client,
        &name,
        (0..45).map(|i| big(i, 380 * 1024)).collect(),
    )
    .await;
    let mut start = None;
    let mut pages = Vec::new();
    loop {
        let page = client
            .query()
            .table_name(&name)
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s("p"))
            .set_exclusive_start_key(start.clone())
            .send()
            .await
            .unwrap();
        pages.push(page.items().len());
        match page.last_evaluated_key() {
            Some(key) => start = Some(key.clone()),
            None => break,
        }
    }
    assert_eq!(pages.iter().sum::<usize>(), 45);
    assert!(pages.iter().all(|p| *p == 3), "{pages:?}");
    let scanned = client
        .scan()
        .table_name(&name)
        .index_name("byOwner")
        .send()
        .await
        .unwrap();
    assert_eq!(scanned.count(), 3);
    assert!(scanned.last_evaluated_key().is_some());

    let keys = |range: std::ops::Range<i64>| {
        let mut builder = aws_sdk_dynamodb::types::KeysAndAttributes::builder();
        for i in range {
            builder = builder.keys(HashMap::from([
                ("pk".to_owned(), s("p")),
                ("sk".to_owned(), n(i)),
            ]));
        }
        builder.build().unwrap()
    };
    let got = client
        .batch_get_item()
        .request_items(&name, keys(0..45))
        .send()
        .await
        .unwrap();
    let returned = got.responses().unwrap()[&name].len();
    let unprocessed = got.unprocessed_keys().unwrap()[&name].keys().len();
    assert_eq!(returned + unprocessed, 45);
    assert!(
        unprocessed > 0 && returned > 0,
        "{returned} + {unprocessed}"
    );
    let retried = client
        .batch_get_item()
        .set_request_items(got.unprocessed_keys().cloned())
        .send()
        .await
        .unwrap();
    assert_eq!(retried.responses().unwrap()[&name].len(), unprocessed);
    assert!(retried.unprocessed_keys().is_none_or(HashMap::is_empty));

    // Counts beyond 100 keys or 25 writes per call are refused.
    let too_many = client
        .batch_get_item()
        .request_items(&name, keys(0..101))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&too_many.into_service_error()), "ValidationException");
    let writes: Vec<WriteRequest> = (0..26)
        .map(|i| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(big(100 + i, 1)))
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect();
    let too_many = client
        .batch_write_item()
        .request_items(&name, writes)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&too_many.into_service_error()), "ValidationException");
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

#[tokio::test]
async fn list_removes_returned_values_and_legacy_list_adds_follow_dynamodb() {
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let name = table(&client).await;
    let letters = |l: &[&str]| AV::L(l.iter().map(|x| s(x)).collect());
    client
        .put_item()
        .table_name(&name)
        .item("pk", s("a"))
        .item("sk", n(1))
        .item("l", letters(&["a", "b", "c", "d"]))
        .item(
            "m",
            AV::M(HashMap::from([
                ("x".to_owned(), n(1)),
                ("y".to_owned(), n(2)),
            ])),
        )
        .send()
        .await
        .unwrap();
    let update = |expression: &str| {
        client
            .update_item()
            .table_name(&name)
            .key("pk", s("a"))
            .key("sk", n(1))
            .update_expression(expression)
    };

    // Both indexes name elements of the list as it was.
    let removed = update("REMOVE l[0], l[2]")
        .return_values(ReturnValue::AllNew)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.attributes().unwrap()["l"], letters(&["b", "d"]));

    // UPDATED_NEW returns only the updated nested path, inside its map.
    let nested = update("SET m.x = :v")
        .expression_attribute_values(":v", n(5))
        .return_values(ReturnValue::UpdatedNew)
        .send()
        .await
        .unwrap();
    assert_eq!(
        nested.attributes().unwrap(),
        &HashMap::from([(
            "m".to_owned(),
            AV::M(HashMap::from([("x".to_owned(), n(5))]))
        )])
    );

    // UPDATED_OLD of attributes that had no value returns no Attributes.
    let fresh = update("SET fresh = :v")
        .expression_attribute_values(":v", n(1))
        .return_values(ReturnValue::UpdatedOld)
        .send()
        .await
        .unwrap();
    assert!(fresh.attributes().is_none(), "{:?}", fresh.attributes());

    // The legacy ADD appends to a list, and creates a missing one.
    for (attribute, expected) in [
        ("l", letters(&["b", "d", "e"])),
        ("new_list", letters(&["e"])),
    ] {
        let added = client
            .update_item()
            .table_name(&name)
            .key("pk", s("a"))
            .key("sk", n(1))
            .attribute_updates(
                attribute,
                AttributeValueUpdate::builder()
                    .action(AttributeAction::Add)
                    .value(letters(&["e"]))
                    .build(),
            )
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .unwrap();
        assert_eq!(added.attributes().unwrap()[attribute], expected);
    }
}

#[tokio::test]
async fn oversized_keys_select_misuse_overlapping_projections_and_inconsistent_tables_are_refused()
{
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let name = table(&client).await;
    let put = |pk: String, sk: AV| {
        client
            .put_item()
            .table_name(&name)
            .item("pk", s(&pk))
            .item("sk", sk)
            .send()
    };
    put("h".repeat(2048), n(1)).await.unwrap();
    let long_hash = put("h".repeat(2049), n(1)).await.unwrap_err();
    assert_eq!(code(&long_hash.into_service_error()), "ValidationException");
    let binary = unique_name("bin-key");
    client
        .create_table()
        .table_name(&binary)
        .key_schema(key_element("pk", KeyType::Hash))
        .key_schema(key_element("sk", KeyType::Range))
        .attribute_definitions(attribute("pk", ScalarAttributeType::S))
        .attribute_definitions(attribute("sk", ScalarAttributeType::B))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    wait_active(&client, &binary).await;
    let put_blob = |len: usize| {
        client
            .put_item()
            .table_name(&binary)
            .item("pk", s("p"))
            .item(
                "sk",
                AV::B(aws_sdk_dynamodb::primitives::Blob::new(vec![7; len])),
            )
            .send()
    };
    // Sort keys are measured in raw bytes: 1,024 fit though their base64 is longer.
    put_blob(1024).await.unwrap();
    let long_range = put_blob(1025).await.unwrap_err();
    assert_eq!(
        code(&long_range.into_service_error()),
        "ValidationException"
    );

    let scan = || client.scan().table_name(&name);
    let refused = [
        scan()
            .select(Select::SpecificAttributes)
            .send()
            .await
            .unwrap_err(),
        scan()
            .select(Select::AllProjectedAttributes)
            .send()
            .await
            .unwrap_err(),
        scan()
            .select(Select::Count)
            .projection_expression("pk")
            .send()
            .await
            .unwrap_err(),
        scan()
            .projection_expression("pk, pk")
            .send()
            .await
            .unwrap_err(),
        scan()
            .projection_expression("m, m.x")
            .send()
            .await
            .unwrap_err(),
    ];
    for error in refused {
        assert_eq!(code(&error.into_service_error()), "ValidationException");
    }
    scan()
        .select(Select::SpecificAttributes)
        .projection_expression("pk, m.x, m.y")
        .send()
        .await
        .unwrap();

    let create = |defs: &[&str], with_throughput: bool, gsi_on: Option<&str>| {
        let mut create = client
            .create_table()
            .table_name(unique_name("bad"))
            .key_schema(key_element("pk", KeyType::Hash))
            .billing_mode(BillingMode::PayPerRequest);
        for def in defs {
            create = create.attribute_definitions(attribute(def, ScalarAttributeType::S));
        }
        if with_throughput {
            create = create.provisioned_throughput(
                aws_sdk_dynamodb::types::ProvisionedThroughput::builder()
                    .read_capacity_units(1)
                    .write_capacity_units(1)
                    .build()
                    .unwrap(),
            );
        }
        if let Some(attribute) = gsi_on {
            create = create.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("g")
                    .key_schema(key_element(attribute, KeyType::Hash))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            );
        }
        create.send()
    };
    for refused in [
        create(&["pk"], true, None).await,
        create(&["pk", "unused"], false, None).await,
        create(&["pk"], false, Some("undefined")).await,
    ] {
        assert_eq!(
            code(&refused.unwrap_err().into_service_error()),
            "ValidationException"
        );
    }
    create(&["pk", "g"], false, Some("g")).await.unwrap();
}

#[tokio::test]
async fn deeply_nested_expressions_and_values_are_refused_and_the_server_keeps_answering() {
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let name = table(&client).await;
    let conditional_put = |condition: String| {
        client
            .put_item()
            .table_name(&name)
            .item("pk", s("a"))
            .item("sk", n(1))
            .condition_expression(condition)
            .expression_attribute_values(":v", n(1))
            .send()
    };
    let parens = format!("{}sk = :v{}", "(".repeat(2000), ")".repeat(2000));
    let nots = format!("{}sk = :v", "NOT ".repeat(10_000));
    let long = vec!["sk = :v"; 600].join(" OR ");
    for condition in [parens, nots, long] {
        let refused = conditional_put(condition).await.unwrap_err();
        assert_eq!(code(&refused.into_service_error()), "ValidationException");
    }
    let appends = format!(
        "SET l = {}:v{}",
        "list_append(:v, ".repeat(500),
        ")".repeat(500)
    );
    let refused = client
        .update_item()
        .table_name(&name)
        .key("pk", s("a"))
        .key("sk", n(1))
        .update_expression(appends)
        .expression_attribute_values(":v", AV::L(vec![]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&refused.into_service_error()), "ValidationException");
    let mut deep = s("leaf");
    for _ in 0..40 {
        deep = AV::L(vec![deep]);
    }
    let refused = client
        .put_item()
        .table_name(&name)
        .item("pk", s("a"))
        .item("sk", n(1))
        .item("deep", deep)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&refused.into_service_error()), "ValidationException");

    // Nesting within the limits works, and the server is still there.
    conditional_put(format!(
        "{}attribute_not_exists(sk) OR sk = :v{}",
        "(".repeat(20),
        ")".repeat(20)
    ))
    .await
    .unwrap();
    let mut nested = s("leaf");
    for _ in 0..30 {
        nested = AV::M(HashMap::from([("m".to_owned(), nested)]));
    }
    client
        .put_item()
        .table_name(&name)
        .item("pk", s("a"))
        .item("sk", n(2))
        .item("nested", nested)
        .send()
        .await
        .unwrap();
    assert!(client
        .get_item()
        .table_name(&name)
        .key("pk", s("a"))
        .key("sk", n(2))
        .send()
        .await
        .unwrap()
        .item()
        .is_some());
}

#[tokio::test]
async fn reserved_words_operator_counts_and_in_operands_are_refused_as_dynamodb_does() {
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let name = table(&client).await;
    let message = |err: aws_sdk_dynamodb::Error| {
        assert_eq!(code(&err), "ValidationException", "{err:?}");
        err.message().unwrap_or_default().to_owned()
    };

    let bare = client
        .update_item()
        .table_name(&name)
        .key("pk", s("a"))
        .key("sk", n(1))
        .condition_expression("attribute_not_exists(owner)")
        .update_expression("SET hits = :v")
        .expression_attribute_values(":v", n(1))
        .send()
        .await
        .map(drop)
        .map_err(aws_sdk_dynamodb::Error::from);
    assert_eq!(
        message(bare.unwrap_err()),
        "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: owner"
    );
    let bare_update = client
        .update_item()
        .table_name(&name)
        .key("pk", s("a"))
        .key("sk", n(1))
        .update_expression("SET Status = :v")
        .expression_attribute_values(":v", n(1))
        .send()
        .await
        .map(drop)
        .map_err(aws_sdk_dynamodb::Error::from);
    assert_eq!(
        message(bare_update.unwrap_err()),
        "Invalid UpdateExpression: Attribute name is a reserved keyword; reserved keyword: Status"
    );
    // The same names through placeholders are fine, and nothing was written before.
    let written = client
        .update_item()
        .table_name(&name)
        .key("pk", s("a"))
        .key("sk", n(1))
        .condition_expression("attribute_not_exists(#o)")
        .update_expression("SET #st = :v")
        .expression_attribute_names("#o", "owner")
        .expression_attribute_names("#st", "Status")
        .expression_attribute_values(":v", n(1))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
        .send()
        .await
        .unwrap();
    assert_eq!(written.attributes().unwrap().get("Status"), Some(&n(1)));

    let many = vec!["sk < :v"; 150].join(" OR ");
    let scan = |filter: String| {
        client
            .scan()
            .table_name(&name)
            .filter_expression(filter)
            .expression_attribute_values(":v", n(1))
            .send()
    };
    scan(format!("NOT ({many})")).await.unwrap();
    let too_many = scan(format!("{many} OR pk = :v"))
        .await
        .map(drop)
        .map_err(aws_sdk_dynamodb::Error::from);
    assert_eq!(
        message(too_many.unwrap_err()),
        "Invalid FilterExpression: The expression contains too many operators; operator count: 301"
    );
    let hundred = vec![":v"; 100].join(", ");
    scan(format!("sk IN ({hundred})")).await.unwrap();
    let too_many_operands = scan(format!("sk IN ({hundred}, :v)"))
        .await
        .map(drop)
        .map_err(aws_sdk_dynamodb::Error::from);
    assert_eq!(
        message(too_many_operands.unwrap_err()),
        "Invalid FilterExpression: The IN operator is provided with too many operands; number of operands: 101"
    );
}

#[tokio::test]
async fn delete_item_refuses_update_only_return_values_and_keeps_the_item() {
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let name = table(&client).await;
    client
        .put_item()
        .table_name(&name)
        .item("pk", s("a"))
        .item("sk", n(1))
        .send()
        .await
        .unwrap();
    for mode in [
        ReturnValue::UpdatedOld,
        ReturnValue::AllNew,
        ReturnValue::UpdatedNew,
    ] {
        let err = client
            .delete_item()
            .table_name(&name)
            .key("pk", s("a"))
            .key("sk", n(1))
            .return_values(mode.clone())
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert_eq!(code(&err), "ValidationException", "{mode:?}");
    }
    let kept = client
        .get_item()
        .table_name(&name)
        .key("pk", s("a"))
        .key("sk", n(1))
        .send()
        .await
        .unwrap();
    assert!(kept.item().is_some(), "a refused delete deletes nothing");
}

#[tokio::test]
async fn batch_write_refuses_two_requests_for_one_item_and_writes_nothing() {
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let name = table(&client).await;
    put_all(
        &client,
        &name,
        vec![HashMap::from([
            ("pk".to_owned(), s("a")),
            ("sk".to_owned(), n(1)),
        ])],
    )
    .await;
    let delete = |pk: &str| {
        WriteRequest::builder()
            .delete_request(
                aws_sdk_dynamodb::types::DeleteRequest::builder()
                    .key("pk", s(pk))
                    .key("sk", n(1))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let put = |pk: &str| {
        WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .item("pk", s(pk))
                    .item("sk", n(1))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    for batch in [
        vec![delete("a"), delete("a")],
        vec![put("b"), delete("a"), put("b")],
        vec![put("b"), delete("b")],
    ] {
        let err = client
            .batch_write_item()
            .request_items(&name, batch)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert_eq!(code(&err), "ValidationException");
    }
    // Nothing of the refused batches was applied: "a" is still there, "b" never was.
    let scan = client.scan().table_name(&name).send().await.unwrap();
    let keys: Vec<_> = scan.items().iter().map(|i| i["pk"].clone()).collect();
    assert_eq!(keys, [s("a")]);
}

#[tokio::test]
async fn an_update_of_a_key_attribute_is_refused_before_its_condition_is_evaluated() {
    let emulator = start_emulator().await;
    let client = dynamodb_client(&emulator.endpoint_url());
    let name = table(&client).await;
    // No item exists, so the condition would fail; the key update is refused first, in both
    // the expression and the legacy form.
    let expression = client
        .update_item()
        .table_name(&name)
        .key("pk", s("a"))
        .key("sk", n(1))
        .update_expression("SET pk = :other")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":other", s("b"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&expression), "ValidationException");
    let legacy = client
        .update_item()
        .table_name(&name)
        .key("pk", s("a"))
        .key("sk", n(1))
        .attribute_updates(
            "pk",
            AttributeValueUpdate::builder()
                .action(AttributeAction::Put)
                .value(s("b"))
                .build(),
        )
        .expected(
            "owner",
            ExpectedAttributeValue::builder().value(s("w1")).build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&legacy), "ValidationException");
}
