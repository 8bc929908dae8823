//! Request and response bodies in the two wire formats Kinesis clients use.
//!
//! - `application/x-amz-json-1.1` (Rust SDK, boto3, the CLI): blobs are base64 strings,
//!   timestamps are epoch seconds as numbers.
//! - `application/x-amz-cbor-1.1` (Java SDK v2's default): blobs are CBOR byte strings,
//!   timestamps are tag 1 wrapping epoch *milliseconds* (the Java SDK writes and reads them so).
//!
//! The actions work on JSON-shaped values only; CBOR is translated at the edge. Requests are
//! translated generically (bytes -> base64, tagged time -> seconds). Responses need the shape:
//! the fields below are the only blob and timestamp members of Kinesis output shapes.
//!
//! That generic translation, through a `serde_json::Value`, defines what a CBOR body means.
//! The server reads and writes CBOR through [`super::cbor`] instead, which makes the same serde
//! calls without building the value and hands anything unusual back to the generic path.

use base64::Engine as _;
use ciborium::Value as Cbor;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value as Json;

use crate::wire::{ApiError, ApiResult};

/// Output members that hold blobs.
pub(super) const BLOB_FIELDS: &[&str] = &["Data"];
/// Output members that hold timestamps.
pub(super) const TIMESTAMP_FIELDS: &[&str] = &[
    "ApproximateArrivalTimestamp",
    "StreamCreationTimestamp",
    "ConsumerCreationTimestamp",
    "ChannelCreationTimestamp",
    "QueueCreationTimestamp",
    "FirstReceiveTimestamp",
    // A queue's StartingPosition.
    "Timestamp",
];

/// A wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// AWS JSON 1.1 (Kinesis) or 1.0 (DynamoDB).
    Json,
    /// AWS CBOR 1.1.
    Cbor,
}

impl Format {
    /// The format named by a `Content-Type` header; JSON when absent or unknown, as AWS does.
    pub(crate) fn from_content_type(content_type: Option<&str>) -> Format {
        match content_type {
            Some(ct) if ct.contains("cbor") => Format::Cbor,
            _ => Format::Json,
        }
    }

    /// The response `Content-Type` for this format.
    pub(crate) fn content_type(self, json_version: &str) -> String {
        match self {
            Format::Json => format!("application/x-amz-json-{json_version}"),
            Format::Cbor => "application/x-amz-cbor-1.1".to_owned(),
        }
    }
}

/// Decodes a request body into a JSON value. An empty body is an empty object.
///
/// # Errors
/// `SerializationException` naming what could not be read.
pub(crate) fn decode_value(format: Format, body: &[u8]) -> ApiResult<Json> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Json::Object(serde_json::Map::new()));
    }
    match format {
        Format::Json => serde_json::from_slice(body)
            .map_err(|err| ApiError::serialization(format!("Malformed JSON request body: {err}"))),
        Format::Cbor => {
            let value: Cbor = ciborium::from_reader(body).map_err(|err| {
                ApiError::serialization(format!("Malformed CBOR request body: {err}"))
            })?;
            cbor_to_json(value)
        }
    }
}

/// Decodes a JSON value into an action's input type.
///
/// # Errors
/// `SerializationException` when a member has the wrong type, as AWS reports it.
pub(crate) fn from_value<T: DeserializeOwned>(value: Json) -> ApiResult<T> {
    serde_json::from_value(value)
        .map_err(|err| ApiError::serialization(format!("Unable to read the request: {err}")))
}

/// Decodes a request body straight into an action's input type, without an intermediate
/// value unless the body needs the generic path (see [`super::cbor`]).
///
/// # Errors
/// `SerializationException`, as [`decode_generic`] reports it.
pub(crate) fn decode<T: DeserializeOwned>(format: Format, body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return decode_generic(format, body);
    }
    match format {
        Format::Json => serde_json::from_slice(body).map_err(|err| {
            if err.is_data() {
                ApiError::serialization(format!("Unable to read the request: {err}"))
            } else {
                ApiError::serialization(format!("Malformed JSON request body: {err}"))
            }
        }),
        // Whatever the direct decoder does not take, errors included, the generic path
        // decides, so clients see the same values and the same errors as before it existed.
        Format::Cbor => super::cbor::from_slice(body).or_else(|_| decode_generic(format, body)),
    }
}

/// Decodes a request body through a JSON value: the definition [`decode`] must agree with.
///
/// # Errors
/// `SerializationException` naming what could not be read.
pub(crate) fn decode_generic<T: DeserializeOwned>(format: Format, body: &[u8]) -> ApiResult<T> {
    from_value(decode_value(format, body)?)
}

/// Encodes an action's output.
pub(crate) fn encode<T: Serialize>(format: Format, output: &T) -> Vec<u8> {
    match format {
        Format::Json => serde_json::to_vec(output).expect("output types always serialize"),
        Format::Cbor => super::cbor::to_vec(output).unwrap_or_else(|_| encode_generic(output)),
    }
}

/// Encodes an output as CBOR through a JSON value: the definition [`encode`] must agree with.
pub(crate) fn encode_generic<T: Serialize>(output: &T) -> Vec<u8> {
    let json = serde_json::to_value(output).expect("output types always serialize");
    encode_json_as_cbor(&json)
}

/// Encodes an already-built JSON value (error bodies, DynamoDB outputs) in `format`.
pub(crate) fn encode_value(format: Format, value: &Json) -> Vec<u8> {
    match format {
        Format::Json => serde_json::to_vec(value).expect("JSON values always serialize"),
        Format::Cbor => super::cbor::to_vec(value).unwrap_or_else(|_| encode_json_as_cbor(value)),
    }
}

fn encode_json_as_cbor(value: &Json) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(&json_to_cbor(value, None), &mut out).expect("writing to a Vec");
    out
}

fn cbor_to_json(value: Cbor) -> ApiResult<Json> {
    Ok(match value {
        Cbor::Null => Json::Null,
        Cbor::Bool(b) => Json::Bool(b),
        Cbor::Integer(i) => {
            let i = i128::from(i);
            match i64::try_from(i) {
                Ok(small) => Json::from(small),
                Err(_) => Json::from(i as f64),
            }
        }
        Cbor::Float(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        Cbor::Text(s) => Json::String(s),
        Cbor::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Cbor::Array(items) => Json::Array(
            items
                .into_iter()
                .map(cbor_to_json)
                .collect::<ApiResult<_>>()?,
        ),
        Cbor::Map(entries) => {
            let mut map = serde_json::Map::new();
            for (key, value) in entries {
                let Cbor::Text(key) = key else {
                    return Err(ApiError::serialization(
                        "CBOR map keys must be text strings",
                    ));
                };
                map.insert(key, cbor_to_json(value)?);
            }
            Json::Object(map)
        }
        // Tag 1 is an epoch timestamp; the Java SDK sends milliseconds.
        Cbor::Tag(1, inner) => {
            let millis = match *inner {
                Cbor::Integer(i) => i128::from(i) as f64,
                Cbor::Float(f) => f,
                _ => return Err(ApiError::serialization("CBOR timestamp must be a number")),
            };
            serde_json::Number::from_f64(millis / 1000.0).map_or(Json::Null, Json::Number)
        }
        Cbor::Tag(_, inner) => cbor_to_json(*inner)?,
        _ => return Err(ApiError::serialization("unsupported CBOR value")),
    })
}

fn json_to_cbor(value: &Json, field: Option<&str>) -> Cbor {
    match value {
        Json::Null => Cbor::Null,
        Json::Bool(b) => Cbor::Bool(*b),
        Json::Number(n) if field.is_some_and(|f| TIMESTAMP_FIELDS.contains(&f)) => {
            let millis = (n.as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
            Cbor::Tag(1, Box::new(Cbor::Integer(millis.into())))
        }
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Cbor::Integer(i.into()),
            (None, Some(u)) => Cbor::Integer(u.into()),
            _ => Cbor::Float(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) if field.is_some_and(|f| BLOB_FIELDS.contains(&f)) => {
            match base64::engine::general_purpose::STANDARD.decode(s) {
                Ok(bytes) => Cbor::Bytes(bytes),
                Err(_) => Cbor::Text(s.clone()),
            }
        }
        Json::String(s) => Cbor::Text(s.clone()),
        // List members inherit the field name, so `Records[*].Data` is still a blob.
        Json::Array(items) => Cbor::Array(items.iter().map(|v| json_to_cbor(v, field)).collect()),
        Json::Object(map) => Cbor::Map(
            map.iter()
                .map(|(k, v)| (Cbor::Text(k.clone()), json_to_cbor(v, Some(k))))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cbor_blobs_and_timestamps_translate_both_ways() {
        let output = json!({"Records": [{"Data": "aGVsbG8=", "ApproximateArrivalTimestamp": 1.5}]});
        let bytes = encode_value(Format::Cbor, &output);
        let raw: Cbor = ciborium::from_reader(&bytes[..]).unwrap();
        let record = &raw.as_map().unwrap()[0].1.as_array().unwrap()[0];
        let fields = record.as_map().unwrap();
        assert!(fields
            .iter()
            .any(|(_, v)| v == &Cbor::Bytes(b"hello".to_vec())));
        assert!(fields
            .iter()
            .any(|(_, v)| v == &Cbor::Tag(1, Box::new(Cbor::Integer(1500.into())))));
        assert_eq!(
            decode_value(Format::Cbor, &bytes).unwrap()["Records"][0]["Data"],
            "aGVsbG8="
        );
    }

    #[test]
    fn malformed_bodies_are_serialization_errors() {
        for (format, body) in [
            (Format::Json, &b"{\"a\":"[..]),
            (Format::Cbor, &[0xff, 0x00][..]),
        ] {
            let err = decode_value(format, body).unwrap_err();
            assert_eq!(err.kind, crate::ErrorKind::Serialization);
        }
        assert!(decode_value(Format::Json, b"")
            .unwrap()
            .as_object()
            .unwrap()
            .is_empty());
    }
}
