//! CBOR bodies read straight into request types and written straight from response types.
//!
//! What a CBOR body means is defined by the generic path in [`crate::wire::codec`]: CBOR is read
//! into a `serde_json::Value` (byte strings become base64 text, tag 1 becomes epoch seconds)
//! and that value into the request type; responses go the other way through the same value.
//! That path builds a tree of small allocations per record, so the server reads and writes
//! CBOR here instead, making the serde calls the JSON value would have made.
//!
//! The decoder only takes the common shapes (what SDKs send). For anything else (tags other
//! than 1, bignums, unusual simple values, structs sent as arrays, duplicate members, nesting
//! past [`MAX_DEPTH`]) and for every malformed body it returns an error, and the caller runs
//! the generic path, whose answer, value or error, is the one the client gets. So a body
//! either decodes here to exactly what the generic path gives, or the generic path decides;
//! error messages never depend on this module. The encoder falls back the same way.
//!
//! One difference is visible on the wire: maps are written in the order serde gives the
//! members (the order JSON responses use), where the generic path sorts them. CBOR maps are
//! unordered, and the Java SDK reads members by name.

use std::fmt;

use base64::Engine as _;
use serde::de::{self, Visitor};
use serde::ser;

mod decode;
mod encode;
#[cfg(test)]
pub(crate) mod tests;

use decode::Decoder;
pub(crate) use encode::to_vec;

/// Containers nested deeper than this are left to the generic path, whose own limit (256,
/// counting tags too) is higher, so nothing this decoder accepts is rejected there for depth.
const MAX_DEPTH: usize = 128;

/// The name [`Blob`] asks for, so this decoder can hand it the raw bytes of a byte string.
/// Other deserializers ignore the name and give the blob its base64 text as before.
const BLOB_TOKEN: &str = "$kcl_emulator::Blob";

/// Why the direct path did not produce a value. Never shown to clients: the generic path
/// decides what they see.
#[derive(Debug)]
pub(crate) struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

fn unsupported(what: &str) -> Error {
    Error(format!("left to the generic path: {what}"))
}

type Result<T> = std::result::Result<T, Error>;

/// A blob member of a request: base64 text from JSON, or the bytes of a CBOR byte string.
///
/// The generic path turns a byte string into its base64 text, which the action decodes again;
/// keeping the bytes skips both steps and means the same thing.
#[derive(Clone)]
pub(crate) enum Blob {
    /// Base64 text, checked when the action reads it (so a bad blob is reported after the
    /// checks the action makes first, as before).
    Base64(String),
    /// The bytes themselves.
    Raw(Vec<u8>),
}

impl Blob {
    /// The blob's bytes.
    ///
    /// # Errors
    /// When base64 text does not decode.
    pub(crate) fn into_bytes(self) -> std::result::Result<Vec<u8>, base64::DecodeError> {
        match self {
            Blob::Base64(text) => base64::engine::general_purpose::STANDARD.decode(text),
            Blob::Raw(bytes) => Ok(bytes),
        }
    }
}

/// Shows the bytes whichever form they came in, so the two decoding paths print alike.
impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.clone().into_bytes()) {
            (_, Ok(bytes)) => f.debug_tuple("Blob").field(&bytes).finish(),
            (Blob::Base64(text), Err(_)) => {
                f.debug_tuple("Blob::InvalidBase64").field(text).finish()
            }
            (Blob::Raw(_), Err(_)) => unreachable!("raw bytes always decode"),
        }
    }
}

impl<'de> de::Deserialize<'de> for Blob {
    fn deserialize<D: de::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct BlobVisitor;
        impl<'de> Visitor<'de> for BlobVisitor {
            type Value = Blob;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_newtype_struct<D: de::Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> std::result::Result<Blob, D::Error> {
                de::Deserialize::deserialize(deserializer).map(Blob::Base64)
            }

            fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> std::result::Result<Blob, E> {
                Ok(Blob::Raw(bytes))
            }
        }
        deserializer.deserialize_newtype_struct(BLOB_TOKEN, BlobVisitor)
    }
}

/// Decodes one CBOR item from the start of `body` into `T`, making the calls that reading
/// the generic path's JSON value would make. Bytes after the item are ignored, as the
/// generic path ignores them.
///
/// # Errors
/// For malformed input and for anything left to the generic path (see the module docs).
pub(crate) fn from_slice<T: de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    T::deserialize(&mut Decoder::new(body))
}

/// `None` when the direct decoder leaves `body` to the generic path or decodes it to the same
/// value (compared by debug text); otherwise both results. For fuzzing and tests.
pub(crate) fn disagreement<T: de::DeserializeOwned + fmt::Debug>(body: &[u8]) -> Option<String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let direct: T = from_slice(body).ok()?;
    let direct = format!("{direct:?}");
    match crate::wire::codec::decode_generic::<T>(crate::wire::codec::Format::Cbor, body) {
        Ok(generic) if format!("{generic:?}") == direct => None,
        generic => Some(format!("direct: {direct}\ngeneric: {generic:?}")),
    }
}
