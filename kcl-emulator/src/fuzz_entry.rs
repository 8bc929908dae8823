//! Entry points for fuzzing the emulator's request decoders and expression parser (`fuzz/` and
//! `tests/decoders_fuzz.rs`). Not a stable API: hidden from the documentation and free to
//! change with the internals.
//!
//! Each entry point takes raw bytes, runs them through the same functions the server runs a
//! request through, and returns whether the input was accepted. Rejecting input is fine; a
//! panic is a bug.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value as Json;

use crate::kinesis::api::records::RecordOutput;
use crate::kinesis::model::keys::SequenceParts;
use crate::wire::codec::{self, Format};
use crate::wire::ApiError;

/// The Kinesis operations [`kinesis_request`] decodes, indexed by the first input byte.
pub fn kinesis_operations() -> &'static [&'static str] {
    crate::kinesis::api::operation_names()
}

/// Decodes a Kinesis request body as the server does before running the action: `data[0]`
/// picks the operation from [`kinesis_operations`] (modulo their number), the rest is the body
/// in JSON 1.1 or, with `cbor`, CBOR 1.1. Returns whether the body decoded.
///
/// # Panics
/// For CBOR, when the direct decoder accepts a body and reads it differently from the generic
/// path (CBOR through a JSON value) that defines what a body means.
pub fn kinesis_request(data: &[u8], cbor: bool) -> bool {
    let Some((&selector, body)) = data.split_first() else {
        return false;
    };
    let operations = kinesis_operations();
    let operation = operations[usize::from(selector) % operations.len()];
    let format = if cbor { Format::Cbor } else { Format::Json };
    if cbor {
        if let Some(difference) = crate::kinesis::api::cbor_decoders_disagree(operation, body) {
            panic!("{operation}: the CBOR decoders disagree\n{difference}");
        }
    }
    crate::kinesis::api::decode_request(operation, format, body).is_ok()
}

/// Runs a DynamoDB request body (JSON 1.0) through the expression handling of the item
/// operations: placeholder maps, condition, key condition, filter, projection and update
/// expressions (or their legacy forms), the unused-placeholder check, then evaluation, update
/// and projection against the request's `Item` or a lease-shaped item. Returns whether every
/// step accepted the request.
pub fn dynamodb_expressions(body: &[u8]) -> bool {
    crate::dynamodb::fuzzing::expressions(body).is_ok()
}

/// Reads fuzz input as a sequence of small values.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }

    fn bytes(&mut self) -> &[u8] {
        let len = usize::from(self.byte()).min(self.0.len());
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        taken
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |acc, _| acc << 8 | u64::from(self.byte()))
    }
}

/// Encodes the frames of a SubscribeToShard event stream built from `data` (the format, then
/// records: data, partition key, sequence number parts, arrival time), decodes them with the
/// event-stream decoder SDK clients use, and checks every header and record survived. Then
/// feeds `data` itself to that decoder. Returns whether `data` itself decoded as a frame.
///
/// # Panics
/// When a frame does not decode to what was encoded.
pub fn event_stream(data: &[u8]) -> bool {
    let mut input = Input(data);
    let cbor = input.byte() & 1 == 1;
    let format = if cbor { Format::Cbor } else { Format::Json };
    let mut sent = Vec::new();
    for _ in 0..input.byte() % 8 {
        let payload = input.bytes().to_vec();
        let partition_key = String::from_utf8_lossy(input.bytes()).into_owned();
        let sequence = SequenceParts {
            counter: input.u64(),
            shard_index: u32::from(input.byte()),
            stream_epoch: input.u64(),
        };
        // Milliseconds within a few thousand years of the epoch, as arrival times are.
        let arrival_ms = (input.u64() % (1 << 47)) as i64;
        sent.push((payload, partition_key, sequence.format(), arrival_ms));
    }
    let millis_behind_latest = (input.u64() >> 1) as i64;
    let continuation = sent.last().map(|(_, _, sequence, _)| sequence.clone());
    let message = String::from_utf8_lossy(input.bytes()).into_owned();
    let records = sent
        .iter()
        .map(|(payload, key, sequence, arrival_ms)| RecordOutput {
            sequence_number: sequence.clone(),
            approximate_arrival_timestamp: crate::kinesis::request::epoch_seconds(*arrival_ms),
            data: base64::engine::general_purpose::STANDARD.encode(payload),
            partition_key: Arc::from(key.as_str()),
        })
        .collect();
    let error = ApiError::not_found(message.clone());
    let [initial, event, exception] = crate::kinesis::api::subscription_frames(
        format,
        records,
        continuation.clone(),
        millis_behind_latest,
        &error,
    );

    let content_type = format.content_type("1.1");
    let initial = decode_frame(&initial, "event", &content_type);
    assert_eq!(initial.0.as_deref(), Some("initial-response"));
    assert_eq!(initial.1, Json::Object(serde_json::Map::new()));

    let (event_type, event) = decode_frame(&event, "event", &content_type);
    assert_eq!(event_type.as_deref(), Some("SubscribeToShardEvent"));
    assert_eq!(event["MillisBehindLatest"], millis_behind_latest);
    assert_eq!(
        event
            .get("ContinuationSequenceNumber")
            .and_then(Json::as_str),
        continuation.as_deref()
    );
    let received = event["Records"].as_array().expect("Records is a list");
    assert_eq!(received.len(), sent.len());
    for (record, (payload, key, sequence, arrival_ms)) in received.iter().zip(&sent) {
        let data = base64::engine::general_purpose::STANDARD
            .decode(record["Data"].as_str().expect("Data is a blob"))
            .expect("Data is base64 in the decoded form");
        assert_eq!(&data, payload);
        assert_eq!(record["PartitionKey"], key.as_str());
        assert_eq!(record["SequenceNumber"], sequence.as_str());
        assert_eq!(
            record["ApproximateArrivalTimestamp"].as_f64(),
            Some(crate::kinesis::request::epoch_seconds(*arrival_ms))
        );
    }

    let (exception_type, body) = decode_frame(&exception, "exception", &content_type);
    assert_eq!(
        exception_type.as_deref(),
        Some(crate::ErrorKind::ResourceNotFound.wire_name())
    );
    assert_eq!(body["message"], message.as_str());

    let mut raw = data;
    aws_smithy_eventstream::frame::read_message_from(&mut raw).is_ok()
}

/// Decodes one whole frame, checks its message and content types, and returns its event or
/// exception type and its payload decoded as the server's `format` would decode a request.
fn decode_frame(frame: &[u8], message_type: &str, content_type: &str) -> (Option<String>, Json) {
    let mut rest = frame;
    let message = aws_smithy_eventstream::frame::read_message_from(&mut rest)
        .expect("a frame the emulator wrote decodes");
    assert!(rest.is_empty(), "one frame, nothing after it");
    let header = |name: &str| {
        message
            .headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|v| v.as_str().to_owned())
    };
    assert_eq!(header(":message-type").as_deref(), Some(message_type));
    assert_eq!(header(":content-type").as_deref(), Some(content_type));
    let kind = header(if message_type == "event" {
        ":event-type"
    } else {
        ":exception-type"
    });
    let format = Format::from_content_type(Some(content_type));
    let payload = codec::decode_value(format, message.payload())
        .expect("a payload the emulator wrote decodes");
    (kind, payload)
}
