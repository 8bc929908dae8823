use super::*;
use crate::dynamodb::value::Item;
use proptest::prelude::*;
use serde_json::json;

fn placeholders(names: Json, values: Json) -> Placeholders {
    Placeholders::new(Some(&names), Some(&values)).unwrap()
}

fn item(v: Json) -> Item {
    v.as_object().unwrap().clone()
}

#[test]
fn lease_renewal_condition_and_update() {
    let mut p = placeholders(
        json!({}),
        json!({":c": {"N": "3"}, ":o": {"S": "w1"}, ":n": {"N": "4"}}),
    );
    let cond = parse_condition(
        "ConditionExpression",
        "leaseCounter = :c AND leaseOwner = :o",
        &mut p,
    )
    .unwrap();
    let update = parse_update("SET leaseCounter = :n", &mut p).unwrap();
    p.check_all_used().unwrap();
    let mut lease = item(
        json!({"leaseKey": {"S": "s"}, "leaseCounter": {"N": "3"}, "leaseOwner": {"S": "w1"}}),
    );
    assert!(evaluate(&cond, &lease));
    apply_update(&mut lease, &update, &["leaseKey"]).unwrap();
    assert_eq!(lease["leaseCounter"], json!({"N": "4"}));
    assert!(!evaluate(&cond, &lease));
}

#[test]
fn every_update_action_kind() {
    let mut p = placeholders(
        json!({"#c": "count"}),
        json!({":one": {"N": "1"}, ":l": {"L": [{"S": "z"}]}, ":s": {"SS": ["a", "b"]}, ":d": {"SS": ["a"]}, ":zero": {"N": "0"}}),
    );
    let update = parse_update(
        "SET #c = if_not_exists(#c, :zero) + :one, tags = list_append(tags, :l), m.nested = :one REMOVE gone ADD tally :one, letters :s DELETE discard :d",
        &mut p,
    )
    .unwrap();
    p.check_all_used().unwrap();
    let mut it = item(
        json!({"k": {"S": "x"}, "tags": {"L": [{"S": "y"}]}, "m": {"M": {}}, "gone": {"BOOL": true}, "discard": {"SS": ["a", "c"]}}),
    );
    apply_update(&mut it, &update, &["k"]).unwrap();
    assert_eq!(it["count"], json!({"N": "1"}));
    assert_eq!(it["tags"], json!({"L": [{"S": "y"}, {"S": "z"}]}));
    assert_eq!(it["m"], json!({"M": {"nested": {"N": "1"}}}));
    assert!(!it.contains_key("gone"));
    assert_eq!(it["tally"], json!({"N": "1"}));
    assert_eq!(it["letters"], json!({"SS": ["a", "b"]}));
    assert_eq!(it["discard"], json!({"SS": ["c"]}));
    let err = apply_update(
        &mut it,
        &parse_update(
            "SET k = :v",
            &mut placeholders(json!({}), json!({":v": {"S": "q"}})),
        )
        .unwrap(),
        &["k"],
    )
    .unwrap_err();
    assert!(err.message.contains("part of the key"));
}

#[test]
fn functions_comparisons_and_logic() {
    let it = item(
        json!({"s": {"S": "hello"}, "n": {"N": "5"}, "tagset": {"SS": ["x"]}, "l": {"L": [{"N": "1"}]}}),
    );
    let mut p = placeholders(
        json!({}),
        json!({":h": {"S": "he"}, ":lo": {"N": "1"}, ":hi": {"N": "9"}, ":x": {"S": "x"}, ":t": {"S": "SS"}, ":three": {"N": "3"}}),
    );
    let text = "begins_with(s, :h) AND n BETWEEN :lo AND :hi AND contains(tagset, :x) AND attribute_type(tagset, :t) AND size(s) > :three AND NOT attribute_exists(absent) AND (n IN (:lo, :hi) OR n <> :lo)";
    let cond = parse_condition("ConditionExpression", text, &mut p).unwrap();
    assert!(evaluate(&cond, &it));
}

#[test]
fn bad_expressions_are_validation_errors() {
    for bad in [
        "a = ",
        "a == :v",
        "attribute_exists(",
        "a = :undefined",
        "#undefined = :v",
        "AND = :v",
        "a = :v extra",
        "",
        "foo(a)",
        "a = :v AND",
    ] {
        let mut p = placeholders(json!({}), json!({":v": {"S": "x"}}));
        let err = parse_condition("ConditionExpression", bad, &mut p).unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::Validation, "{bad}: {err}");
    }
    let mut p = placeholders(
        json!({"#n": "x"}),
        json!({":v": {"S": "x"}, ":unused": {"S": "y"}}),
    );
    parse_condition("ConditionExpression", "#n = :v", &mut p).unwrap();
    assert!(p.check_all_used().unwrap_err().message.contains(":unused"));
    for bad in [
        "SET a = :v SET b = :v",
        "SET a = :v, a = :v",
        "REMOVE",
        "SET a :v",
    ] {
        let mut p = placeholders(json!({}), json!({":v": {"S": "x"}}));
        assert!(parse_update(bad, &mut p).is_err(), "{bad}");
    }
}

#[test]
fn reserved_words_are_refused_bare_in_every_expression_kind() {
    let refused = |result: ApiResult<()>, kind: &str, word: &str| {
        let err = result.unwrap_err();
        assert_eq!(
            err.message,
            format!(
                "Invalid {kind}: Attribute name is a reserved keyword; reserved keyword: {word}"
            )
        );
    };
    let values = || json!({":v": {"S": "x"}});
    let mut p = placeholders(json!({}), values());
    refused(
        parse_condition("ConditionExpression", "owner = :v", &mut p).map(drop),
        "ConditionExpression",
        "owner",
    );
    refused(
        parse_condition("FilterExpression", "a.Status = :v", &mut p).map(drop),
        "FilterExpression",
        "Status",
    );
    refused(
        parse_condition("KeyConditionExpression", "begins_with(KEY, :v)", &mut p).map(drop),
        "KeyConditionExpression",
        "KEY",
    );
    refused(
        parse_update("SET a = :v REMOVE ttl", &mut p).map(drop),
        "UpdateExpression",
        "ttl",
    );
    refused(
        parse_projection("a, b[0].comment", &mut p).map(drop),
        "ProjectionExpression",
        "comment",
    );
    // Through a placeholder the same name is fine.
    let mut p = placeholders(json!({"#o": "owner"}), values());
    parse_condition("ConditionExpression", "#o = :v", &mut p).unwrap();
    // The list holds whole words only, in upper case and sorted for the lookup.
    let words: Vec<&str> = RESERVED_WORDS.lines().collect();
    assert_eq!(words.len(), 573);
    assert!(words.windows(2).all(|w| w[0] < w[1]));
    assert!(words
        .iter()
        .all(|w| w.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')));
    assert!(!is_reserved("leaseOwner"));
}

#[test]
fn operator_and_in_operand_limits() {
    let values = json!({":v": {"N": "1"}});
    // 150 comparisons joined by 149 ORs: 299 operators.
    let many = vec!["a < :v"; 150].join(" OR ");
    let mut p = placeholders(json!({}), values.clone());
    parse_condition("ConditionExpression", &format!("NOT ({many})"), &mut p).unwrap();
    let err =
        parse_condition("ConditionExpression", &format!("{many} OR b < :v"), &mut p).unwrap_err();
    assert_eq!(
        err.message,
        "Invalid ConditionExpression: The expression contains too many operators; operator count: 301"
    );
    // Each action's `+` counts; 300 parse (and then fail only on the overlapping paths).
    let sums = |n: usize| format!("SET {}", vec!["a=a+:v"; n].join(","));
    let err = parse_update(&sums(300), &mut p).unwrap_err();
    assert!(err.message.contains("Two document paths overlap"), "{err}");
    let err = parse_update(&sums(301), &mut p).unwrap_err();
    assert_eq!(
        err.message,
        "Invalid UpdateExpression: The expression contains too many operators; operator count: 301"
    );

    let hundred = vec![":v"; 100].join(", ");
    parse_condition("FilterExpression", &format!("a IN ({hundred})"), &mut p).unwrap();
    let err =
        parse_condition("FilterExpression", &format!("a IN ({hundred}, :v)"), &mut p).unwrap_err();
    assert_eq!(
        err.message,
        "Invalid FilterExpression: The IN operator is provided with too many operands; number of operands: 101"
    );
}

fn path_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("#n".to_owned()),
        Just("a.b".to_owned()),
        Just("l[0]".to_owned()),
        Just("m.#n[1]".to_owned())
    ]
}

fn operand_text() -> impl Strategy<Value = String> {
    prop_oneof![
        path_text(),
        Just(":v".to_owned()),
        Just(":w".to_owned()),
        path_text().prop_map(|p| format!("size({p})"))
    ]
}

fn condition_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (
            operand_text(),
            prop_oneof![
                Just("="),
                Just("<>"),
                Just("<"),
                Just("<="),
                Just(">"),
                Just(">=")
            ],
            operand_text()
        )
            .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        path_text().prop_map(|p| format!("attribute_exists({p})")),
        path_text().prop_map(|p| format!("attribute_not_exists({p})")),
        (operand_text(), operand_text()).prop_map(|(a, b)| format!("begins_with({a}, {b})")),
        (operand_text(), operand_text()).prop_map(|(a, b)| format!("contains({a}, {b})")),
        (operand_text(), operand_text(), operand_text())
            .prop_map(|(a, b, c)| format!("{a} BETWEEN {b} AND {c}")),
        (operand_text(), operand_text()).prop_map(|(a, b)| format!("{a} IN ({b}, :v)")),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} AND {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) OR ({b})")),
            inner.prop_map(|a| format!("NOT ({a})")),
        ]
    })
}

proptest! {
    #[test]
    fn random_valid_conditions_parse_and_evaluate_without_panicking(text in condition_text()) {
        let mut p = placeholders(json!({"#n": "n"}), json!({":v": {"N": "1"}, ":w": {"S": "x"}}));
        let cond = parse_condition("ConditionExpression", &text, &mut p).unwrap();
        let it = item(json!({"a": {"M": {"b": {"S": "x"}}}, "n": {"N": "2"}, "l": {"L": [{"S": "q"}]}, "m": {"M": {"n": {"L": [{"N": "1"}, {"N": "2"}]}}}}));
        let _ = evaluate(&cond, &it);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,60}") {
        let mut p = placeholders(json!({"#n": "n"}), json!({":v": {"N": "1"}}));
        if let Err(err) = parse_condition("ConditionExpression", &text, &mut p) {
            prop_assert_eq!(err.kind, crate::ErrorKind::Validation);
        }
        let mut p = placeholders(json!({"#n": "n"}), json!({":v": {"N": "1"}}));
        let _ = parse_update(&text, &mut p);
    }
}
