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

mod batches;
mod expressions;
mod indexes;
mod items;
mod reads;
mod support;
mod tables;
mod validation;

use support::*;
