//! What crosses the wire: the request/response codecs and the error table.
//!
//! Nothing here knows about streams or tables; the services above decode their inputs and
//! report their failures through this module, so a client sees one spelling for each.

pub(crate) mod cbor;
pub(crate) mod codec;
pub(crate) mod error;
pub(crate) mod event_stream;
pub(crate) mod validation;

pub use error::{ApiError, ApiResult, ErrorKind};
