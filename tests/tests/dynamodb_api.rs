//! The emulator's DynamoDB API through `aws-sdk-dynamodb`: tables, items, conditions, update
//! expressions, batches, transactions, scans and queries, and DynamoDB-shaped errors.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeAction, AttributeDefinition, AttributeValue as AV, AttributeValueUpdate, BillingMode,
    ConditionCheck, ExpectedAttributeValue, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    Projection, ProjectionType, Put, PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, Select, TableStatus, TimeToLiveSpecification, TransactWriteItem, Update,
    WriteRequest,
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
            "SET visits = if_not_exists(visits, :zero) + :one, #l = list_append(#l, :more), #m.inner = #m.inner - :one REMOVE gone ADD total :five, letters :ab DELETE #s :x",
        )
        .expression_attribute_names("#l", "list")
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
        .key_condition_expression("owner = :o")
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
                    .condition_expression("owner = :o")
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
