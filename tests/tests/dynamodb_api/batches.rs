//! BatchGetItem, BatchWriteItem, transactions, and scans and queries over them.

use super::*;

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
