//! Update expressions and the legacy AttributeUpdates form.

use super::*;

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
