use super::*;
use crate::wire::codec::{self, Format};
use ciborium::value::Integer;
use ciborium::Value as Cbor;
use proptest::prelude::*;
use serde::Serialize;
use serde_json::{json, Value as Json};

pub(crate) fn cbor(value: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

pub(crate) fn text(s: &str) -> Cbor {
    Cbor::Text(s.to_owned())
}

/// The direct decoder reads `bytes` itself, to what the generic path reads.
fn assert_direct(bytes: &[u8]) -> Json {
    let direct: Json = from_slice(bytes).unwrap_or_else(|e| panic!("{bytes:02x?}: {e}"));
    let generic = codec::decode_value(Format::Cbor, bytes).unwrap();
    assert_eq!(direct, generic, "{bytes:02x?}");
    direct
}

/// The direct decoder leaves `bytes` to the generic path, so the server answers as it does.
fn assert_left_to_generic(bytes: &[u8]) {
    assert!(from_slice::<Json>(bytes).is_err(), "{bytes:02x?}");
    let served = codec::decode::<Json>(Format::Cbor, bytes);
    let generic = codec::decode_generic::<Json>(Format::Cbor, bytes);
    assert_eq!(
        format!("{served:?}"),
        format!("{generic:?}"),
        "{bytes:02x?}"
    );
}

#[test]
fn hand_built_items_read_as_the_generic_path_reads_them() {
    let cases: &[(&[u8], Json)] = &[
        // {"a": 1}
        (&[0xa1, 0x61, b'a', 0x01], json!({"a": 1})),
        // Indefinite map and array, chunked text and bytes, as streaming writers make them.
        (
            &[
                0xbf, 0x61, b'a', 0x9f, 0x01, 0x02, 0xff, 0x61, b'b', 0x7f, 0x62, b'h', b'e', 0x63,
                b'l', b'l', b'o', 0xff, 0x61, b'c', 0x5f, 0x42, b'h', b'e', 0x41, b'y', 0xff, 0xff,
            ],
            json!({"a": [1, 2], "b": "hello", "c": "aGV5"}),
        ),
        (&[0x18, 0xff], json!(255)),
        (&[0x1a, 0x00, 0x01, 0x00, 0x00], json!(65536)),
        (
            &[0x1b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            json!(i64::MAX),
        ),
        // Past i64: a float, as in the JSON value.
        (
            &[0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            json!(u64::MAX as f64),
        ),
        // (A lone 0x20, -1, is a blank body to the codec, which reads it as `{}`.)
        (&[0x38, 0x63], json!(-100)),
        (
            &[0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            json!(i64::MIN),
        ),
        (
            &[0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            json!(-18446744073709551616.0),
        ),
        (&[0xf9, 0x3e, 0x00], json!(1.5)),
        // Half-precision subnormal.
        (&[0xf9, 0x00, 0x01], json!(5.960464477539063e-8)),
        (&[0xfa, 0x47, 0xc3, 0x50, 0x00], json!(100000.0)),
        (
            &[0xfb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a],
            json!(0.1),
        ),
        // Not finite: null.
        (&[0xf9, 0x7c, 0x00], Json::Null),
        (&[0xfa, 0x7f, 0xc0, 0x00, 0x00], Json::Null),
        (&[0xf4], json!(false)),
        (&[0xf5], json!(true)),
        (&[0xf6], Json::Null),
        (&[0xf7], Json::Null),
        // Tag 1: milliseconds to seconds, integer, negative or float.
        (&[0xc1, 0x19, 0x05, 0xdc], json!(1.5)),
        (&[0xc1, 0x39, 0x05, 0xdb], json!(-1.5)),
        (&[0xc1, 0xf9, 0x3e, 0x00], json!(0.0015)),
        (&[0xc1, 0xf9, 0x7e, 0x00], Json::Null),
        (&[0x43, 0x00, 0x01, 0xff], json!("AAH/")),
        (&[0x62, 0xc3, 0xa9], json!("é")),
        // What follows the item is ignored, as the generic path ignores it.
        (&[0xa0, 0xff, 0x00], json!({})),
    ];
    for (bytes, expected) in cases {
        assert_eq!(&assert_direct(bytes), expected, "{bytes:02x?}");
    }
}

#[test]
fn unusual_items_are_left_to_the_generic_path() {
    let cases: &[&[u8]] = &[
        // Self-described CBOR (tag 55799), a bignum, a tag-1 bignum.
        &[0xd9, 0xd9, 0xf7, 0xa0],
        &[0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0xc1, 0xc2, 0x41, 0x01],
        // Simple values: 16, and false in its two-byte form.
        &[0xf0],
        &[0xf8, 0x14],
        // A map key that is not text.
        &[0xa1, 0x01, 0x02],
        // An indefinite chunk inside an indefinite string.
        &[0x5f, 0x5f, 0x41, 0x00, 0xff, 0xff],
        // Malformed: truncated, invalid UTF-8, break at the top, reserved head, tag 1 on text.
        &[0xa1, 0x61],
        &[0x62, 0xc3, 0x28],
        &[0xff],
        &[0x1c],
        &[0xc1, 0x61, b'x'],
        &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ];
    for bytes in cases {
        assert_left_to_generic(bytes);
    }
    let mut deep = vec![0x81; MAX_DEPTH + 1];
    deep.push(0x00);
    assert_left_to_generic(&deep);
    let mut deepest_taken = vec![0x81; MAX_DEPTH];
    deepest_taken.push(0x00);
    assert_direct(&deepest_taken);
}

/// Member names of Kinesis inputs and outputs, so generated maps hit real fields.
pub(crate) const MEMBERS: &[&str] = &[
    "StreamName",
    "StreamARN",
    "Records",
    "Data",
    "PartitionKey",
    "ExplicitHashKey",
    "SequenceNumberForOrdering",
    "ShardId",
    "ShardIteratorType",
    "StartingSequenceNumber",
    "Timestamp",
    "ShardIterator",
    "Limit",
    "ShardCount",
    "StreamModeDetails",
    "StreamMode",
    "Tags",
    "TagKeys",
    "NextToken",
    "MaxResults",
    "ExclusiveStartShardId",
    "StreamCreationTimestamp",
    "ShardFilter",
    "Type",
    "ConsumerName",
    "ConsumerARN",
    "StartingPosition",
    "SequenceNumber",
    "RetentionPeriodHours",
    "TargetShardCount",
    "ScalingType",
    "ApproximateArrivalTimestamp",
];

pub(crate) fn leaf() -> impl Strategy<Value = Cbor> {
    prop_oneof![
        4 => "[a-zA-Z0-9=+/_.:-]{0,12}".prop_map(Cbor::Text),
        1 => "\\PC{0,4}".prop_map(Cbor::Text),
        2 => prop::collection::vec(any::<u8>(), 0..12).prop_map(Cbor::Bytes),
        2 => any::<i64>().prop_map(|i| Cbor::Integer(i.into())),
        1 => (0u64..1000).prop_map(|i| Cbor::Integer(i.into())),
        1 => any::<u64>().prop_map(|u| Cbor::Integer(u.into())),
        1 => Just(Cbor::Integer(Integer::try_from(-(1i128 << 64)).unwrap())),
        1 => any::<f64>().prop_map(Cbor::Float),
        1 => prop::sample::select(vec![0.5, 1.5, 65504.0, 1e300, f64::NAN, f64::INFINITY])
            .prop_map(Cbor::Float),
        1 => any::<bool>().prop_map(Cbor::Bool),
        1 => Just(Cbor::Null),
        1 => any::<i64>().prop_map(|ms| Cbor::Tag(1, Box::new(Cbor::Integer(ms.into())))),
        1 => any::<f64>().prop_map(|ms| Cbor::Tag(1, Box::new(Cbor::Float(ms)))),
        // Left to the generic path.
        1 => Just(Cbor::Tag(55799, Box::new(text("x")))),
        1 => Just(Cbor::Tag(2, Box::new(Cbor::Bytes(vec![1; 9])))),
    ]
}

pub(crate) fn key() -> impl Strategy<Value = Cbor> {
    prop_oneof![
        12 => prop::sample::select(MEMBERS).prop_map(text),
        2 => "[a-z]{1,4}".prop_map(Cbor::Text),
        1 => any::<u8>().prop_map(|i| Cbor::Integer(i.into())),
    ]
}

pub(crate) fn value() -> impl Strategy<Value = Cbor> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Cbor::Array),
            prop::collection::vec((key(), inner), 0..6).prop_map(Cbor::Map),
        ]
    })
}

/// A request-shaped body: a map of members, some holding well-typed records.
pub(crate) fn request() -> impl Strategy<Value = Cbor> {
    let record = prop::collection::vec(
        prop_oneof![
            (
                Just(text("Data")),
                prop::collection::vec(any::<u8>(), 0..8).prop_map(Cbor::Bytes)
            ),
            (
                Just(text("PartitionKey")),
                "[a-z0-9]{1,8}".prop_map(Cbor::Text)
            ),
            (
                Just(text("ExplicitHashKey")),
                "[0-9]{1,5}".prop_map(Cbor::Text)
            ),
            (key(), value()),
        ],
        0..4,
    )
    .prop_map(Cbor::Map);
    prop::collection::vec(
        prop_oneof![
            (Just(text("StreamName")), "[a-z]{1,8}".prop_map(Cbor::Text)),
            (
                Just(text("Records")),
                prop::collection::vec(record, 0..4).prop_map(Cbor::Array)
            ),
            (key(), value()),
        ],
        0..6,
    )
    .prop_map(Cbor::Map)
}

/// Sorts map entries by key at every level: CBOR maps are unordered.
fn normalized(value: Cbor) -> Cbor {
    match value {
        Cbor::Array(items) => Cbor::Array(items.into_iter().map(normalized).collect()),
        Cbor::Map(entries) => {
            let mut entries: Vec<(Cbor, Cbor)> = entries
                .into_iter()
                .map(|(k, v)| (normalized(k), normalized(v)))
                .collect();
            entries.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
            Cbor::Map(entries)
        }
        Cbor::Tag(tag, inner) => Cbor::Tag(tag, Box::new(normalized(*inner))),
        other => other,
    }
}

fn assert_encoders_agree<T: Serialize>(output: &T) {
    let direct = to_vec(output).expect("the direct encoder takes this shape");
    let generic = codec::encode_generic(output);
    let read = |bytes: &[u8]| normalized(ciborium::from_reader(bytes).unwrap());
    assert_eq!(read(&direct), read(&generic));
}

#[test]
fn responses_encode_as_the_generic_path_encodes_them() {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Record {
        data: String,
        approximate_arrival_timestamp: f64,
        sequence_number: String,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    enum Status {
        Active,
    }
    #[derive(serde::Serialize)]
    struct Extra {
        #[serde(rename = "Extra")]
        extra: u8,
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        records: Vec<Record>,
        stream_creation_timestamp: i64,
        timestamp: Option<u64>,
        millis_behind_latest: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_token: Option<String>,
        encryption_type: Option<String>,
        status: Status,
        ratio: f64,
        not_a_number: f64,
        #[serde(flatten)]
        extra: Extra,
    }
    let output = Output {
        records: vec![
            Record {
                data: "aGVsbG8=".into(),
                approximate_arrival_timestamp: 1_700_000_000.123,
                sequence_number: "4960".into(),
            },
            Record {
                data: "not base64!".into(),
                approximate_arrival_timestamp: -0.5,
                sequence_number: "4961".into(),
            },
        ],
        stream_creation_timestamp: 1_700_000_000,
        timestamp: Some(u64::MAX),
        millis_behind_latest: 70_000,
        next_token: None,
        encryption_type: None,
        status: Status::Active,
        ratio: 0.1,
        not_a_number: f64::NAN,
        extra: Extra { extra: 7 },
    };
    assert_encoders_agree(&output);
    let encoded = to_vec(&output).unwrap();
    let raw: Cbor = ciborium::from_reader(&encoded[..]).unwrap();
    let record = &raw.as_map().unwrap()[0].1.as_array().unwrap()[0];
    assert_eq!(
        record.as_map().unwrap()[0],
        (text("Data"), Cbor::Bytes(b"hello".to_vec()))
    );
    assert_eq!(
        record.as_map().unwrap()[1].1,
        Cbor::Tag(1, Box::new(Cbor::Integer(1_700_000_000_123i64.into())))
    );
    assert_encoders_agree(&json!({
        "Records": [{"Data": "aGVsbG8=", "ApproximateArrivalTimestamp": 1.5}],
        "message": "x", "n": -3, "f": 1.0e300, "half": 0.5, "single": 100000.0
    }));
}

/// Whether `value` holds something the direct decoder leaves to the generic path.
fn left_to_generic(value: &Cbor) -> bool {
    match value {
        Cbor::Tag(1, inner) => !matches!(**inner, Cbor::Integer(_) | Cbor::Float(_)),
        Cbor::Tag(..) => true,
        Cbor::Array(items) => items.iter().any(left_to_generic),
        Cbor::Map(entries) => entries
            .iter()
            .any(|(k, v)| !matches!(k, Cbor::Text(_)) || left_to_generic(v)),
        _ => false,
    }
}

proptest! {
    #[test]
    fn direct_decoding_agrees_with_the_generic_path(value in value()) {
        let body = cbor(&value);
        prop_assert_eq!(disagreement::<Json>(&body), None);
        // The fast path is taken for everything it is meant for.
        prop_assert_eq!(from_slice::<Json>(&body).is_ok(), !left_to_generic(&value));
    }

    #[test]
    fn direct_encoding_agrees_with_the_generic_path(value in value()) {
        // Only what a JSON value can hold: the generic path's reading of the CBOR.
        if let Ok(json) = codec::decode_value(Format::Cbor, &cbor(&value)) {
            assert_encoders_agree(&json);
        }
    }
}
