//! PutItem, GetItem, UpdateItem and DeleteItem, with conditions and returned values.

use super::*;

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
