//! Requests DynamoDB refuses: key sizes, Select misuse, expression limits, reserved words.

use super::*;

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
