//! The CBOR decoders against the request types: the direct decoder must read every body it
//! takes as the generic path (CBOR through a JSON value) reads it.

use ciborium::Value as Cbor;
use proptest::prelude::*;

use super::records::PutRecordsInput;
use crate::kinesis::request::StreamRef;
use crate::wire::cbor::tests::{cbor, request, text, value};
use crate::wire::cbor::{disagreement, from_slice};
use crate::wire::codec::{self, Format};

#[test]
fn malformed_bodies_get_the_generic_errors() {
    for body in [
        &[0xa1, 0x61][..],
        &[0xa1, 0x01, 0x02],
        &[0xc1, 0x61, b'x'],
        &[0xff, 0x00],
    ] {
        let served = codec::decode::<StreamRef>(Format::Cbor, body).unwrap_err();
        let generic = codec::decode_generic::<StreamRef>(Format::Cbor, body).unwrap_err();
        assert_eq!(served.kind, crate::ErrorKind::Serialization);
        assert_eq!(served.message, generic.message);
    }
}

/// A PutRecords body as the Java SDK writes it: indefinite maps and arrays, blobs as byte
/// strings.
fn java_put_records(records: usize) -> Vec<u8> {
    let mut body = vec![0xbf];
    body.extend(cbor(&text("StreamName")));
    body.extend(cbor(&text("orders")));
    body.extend(cbor(&text("Records")));
    body.push(0x9f);
    for i in 0..records {
        body.push(0xbf);
        body.extend(cbor(&text("Data")));
        body.extend(cbor(&Cbor::Bytes(vec![i as u8; 3])));
        body.extend(cbor(&text("PartitionKey")));
        body.extend(cbor(&text(&format!("key-{i}"))));
        body.push(0xff);
    }
    body.extend([0xff, 0xff]);
    body
}

#[test]
fn sdk_requests_take_the_direct_path_and_agree() {
    let body = java_put_records(3);
    let direct: PutRecordsInput = from_slice(&body).unwrap();
    let generic: PutRecordsInput = codec::decode_generic(Format::Cbor, &body).unwrap();
    assert_eq!(format!("{direct:?}"), format!("{generic:?}"));
    assert!(format!("{direct:?}").contains("Blob([2, 2, 2])"));
    assert_eq!(disagreement::<PutRecordsInput>(&body), None);
    // Blob text instead of bytes is base64, as the generic path reads it.
    let body = cbor(&Cbor::Map(vec![
        (text("StreamName"), text("orders")),
        (
            text("Records"),
            Cbor::Array(vec![Cbor::Map(vec![
                (text("Data"), text("aGk=")),
                (text("PartitionKey"), text("k")),
            ])]),
        ),
    ]));
    let direct: PutRecordsInput = from_slice(&body).unwrap();
    assert!(format!("{direct:?}").contains("Blob([104, 105])"));
    assert_eq!(disagreement::<PutRecordsInput>(&body), None);
}

#[test]
fn duplicate_members_are_left_to_the_generic_path() {
    let body = cbor(&Cbor::Map(vec![
        (text("StreamName"), text("a")),
        (text("Records"), Cbor::Array(vec![])),
        (text("Records"), Cbor::Array(vec![])),
    ]));
    assert!(from_slice::<PutRecordsInput>(&body).is_err());
    assert!(codec::decode::<PutRecordsInput>(Format::Cbor, &body).is_ok());
}

proptest! {
    #[test]
    fn every_operation_decodes_alike(value in value()) {
        let body = cbor(&value);
        for operation in super::operation_names() {
            let difference = super::cbor_decoders_disagree(operation, &body);
            prop_assert_eq!(difference, None, "{}", operation);
        }
    }

    #[test]
    fn request_shapes_decode_alike(value in request()) {
        let body = cbor(&value);
        for operation in ["PutRecords", "PutRecord", "ListShards", "GetRecords"] {
            let difference = super::cbor_decoders_disagree(operation, &body);
            prop_assert_eq!(difference, None, "{}", operation);
        }
    }
}
