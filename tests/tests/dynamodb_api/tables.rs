//! CreateTable, DescribeTable, ListTables, UpdateTable and DeleteTable.

use super::*;

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
