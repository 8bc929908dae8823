//! The `application/vnd.amazon.eventstream` framing of streamed responses (SubscribeToShard):
//! prelude, headers, payload and CRCs, as the SDKs' event-stream readers expect them.

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;

use crate::wire::codec::{self, Format};
use crate::wire::ApiError;

/// One message in the `application/vnd.amazon.eventstream` framing.
pub(crate) fn frame(message: &Message) -> Bytes {
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(message, &mut out)
        .expect("event messages built here are always encodable");
    Bytes::from(out)
}

/// An `event` message of type `event_type` carrying `payload`.
pub(crate) fn event(event_type: &'static str, content_type: &str, payload: Vec<u8>) -> Bytes {
    frame(
        &Message::new(payload)
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            ))
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String(event_type.into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String(content_type.to_owned().into()),
            )),
    )
}

/// The `exception` message that ends a stream with `error`.
pub(crate) fn exception(error: &ApiError, format: Format, content_type: &str) -> Bytes {
    let body = serde_json::json!({ "message": error.message });
    frame(
        &Message::new(codec::encode_value(format, &body))
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("exception".into()),
            ))
            .add_header(Header::new(
                ":exception-type",
                HeaderValue::String(error.kind.wire_name().into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String(content_type.to_owned().into()),
            )),
    )
}
