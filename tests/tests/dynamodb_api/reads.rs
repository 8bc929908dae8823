//! Query and Scan: resuming after deleted start keys, sort-key order, page and batch limits.

use super::*;

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
