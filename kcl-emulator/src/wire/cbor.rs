//! CBOR bodies read straight into request types and written straight from response types.
//!
//! What a CBOR body means is defined by the generic path in [`super::codec`]: CBOR is read
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

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use serde::de::{self, DeserializeSeed, Visitor};
use serde::ser::{self, Serialize};

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
    let mut decoder = Decoder {
        input: body,
        pos: 0,
        depth: 0,
    };
    T::deserialize(&mut decoder)
}

/// `None` when the direct decoder leaves `body` to the generic path or decodes it to the same
/// value (compared by debug text); otherwise both results. For fuzzing and tests.
pub(crate) fn disagreement<T: de::DeserializeOwned + fmt::Debug>(body: &[u8]) -> Option<String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let direct: T = from_slice(body).ok()?;
    let direct = format!("{direct:?}");
    match super::codec::decode_generic::<T>(super::codec::Format::Cbor, body) {
        Ok(generic) if format!("{generic:?}") == direct => None,
        generic => Some(format!("direct: {direct}\ngeneric: {generic:?}")),
    }
}

/// An item's initial byte and argument.
#[derive(Debug, Clone, Copy)]
struct Head {
    major: u8,
    info: u8,
    /// The argument; meaningless when `indefinite`.
    arg: u64,
    /// Indefinite length (additional information 31).
    indefinite: bool,
    /// Bytes the head takes.
    len: usize,
}

const BREAK: u8 = 0xff;

struct Decoder<'de> {
    input: &'de [u8],
    pos: usize,
    depth: usize,
}

impl<'de> Decoder<'de> {
    fn eof() -> Error {
        Error("unexpected end of CBOR input".to_owned())
    }

    fn head_at(&self, pos: usize) -> Result<Head> {
        let &initial = self.input.get(pos).ok_or_else(Self::eof)?;
        let (major, info) = (initial >> 5, initial & 0x1f);
        let extra = match info {
            0..=23 => 0,
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            // Break (major 7) and indefinite lengths (2 to 5) only.
            31 if matches!(major, 2..=5) => {
                return Ok(Head {
                    major,
                    info,
                    arg: 0,
                    indefinite: true,
                    len: 1,
                })
            }
            _ => return Err(Error(format!("CBOR head {initial:#04x} at {pos}"))),
        };
        let arg = if extra == 0 {
            u64::from(info)
        } else {
            let bytes = self
                .input
                .get(pos + 1..pos + 1 + extra)
                .ok_or_else(Self::eof)?;
            bytes.iter().fold(0, |acc, &b| acc << 8 | u64::from(b))
        };
        Ok(Head {
            major,
            info,
            arg,
            indefinite: false,
            len: 1 + extra,
        })
    }

    fn peek(&self) -> Result<Head> {
        self.head_at(self.pos)
    }

    fn take(&mut self) -> Result<Head> {
        let head = self.peek()?;
        self.pos += head.len;
        Ok(head)
    }

    fn take_slice(&mut self, len: u64) -> Result<&'de [u8]> {
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
            .filter(|&end| end <= self.input.len())
            .ok_or_else(Self::eof)?;
        let slice = &self.input[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// The content of a byte (major 2) or text (major 3) string whose head was taken: the
    /// input itself when definite, the chunks joined when not.
    fn string_after(&mut self, head: Head) -> Result<Cow<'de, [u8]>> {
        if !head.indefinite {
            let bytes = self.take_slice(head.arg)?;
            if head.major == 3 {
                std::str::from_utf8(bytes).map_err(|e| Error(e.to_string()))?;
            }
            return Ok(Cow::Borrowed(bytes));
        }
        let mut joined = Vec::new();
        loop {
            if self.input.get(self.pos) == Some(&BREAK) {
                self.pos += 1;
                return Ok(Cow::Owned(joined));
            }
            let chunk = self.take()?;
            // Chunks are definite strings of the same kind; the generic path's reader also
            // takes nested indefinite chunks, which are left to it.
            if chunk.major != head.major || chunk.indefinite {
                return Err(unsupported("string chunk"));
            }
            let bytes = self.take_slice(chunk.arg)?;
            // Each chunk is checked on its own: a character split across chunks is an error
            // there too.
            if head.major == 3 {
                std::str::from_utf8(bytes).map_err(|e| Error(e.to_string()))?;
            }
            joined.extend_from_slice(bytes);
        }
    }

    fn text_after(&mut self, head: Head) -> Result<Cow<'de, str>> {
        Ok(match self.string_after(head)? {
            Cow::Borrowed(bytes) => {
                Cow::Borrowed(std::str::from_utf8(bytes).map_err(|e| Error(e.to_string()))?)
            }
            Cow::Owned(bytes) => {
                Cow::Owned(String::from_utf8(bytes).map_err(|e| Error(e.to_string()))?)
            }
        })
    }

    /// A float (major 7, additional information 25 to 27) as `f64`.
    fn float(head: Head) -> f64 {
        match head.info {
            25 => half::f16::from_bits(head.arg as u16).to_f64(),
            26 => f64::from(f32::from_bits(head.arg as u32)),
            _ => f64::from_bits(head.arg),
        }
    }

    /// The epoch seconds of a tag 1 whose head was taken: the Java SDK sends milliseconds,
    /// integer or float.
    fn timestamp_after(&mut self) -> Result<f64> {
        let inner = self.take()?;
        let millis = match inner.major {
            0 => inner.arg as f64,
            1 => (-1 - i128::from(inner.arg)) as f64,
            7 if matches!(inner.info, 25..=27) => Self::float(inner),
            _ => return Err(unsupported("tag 1 content")),
        };
        Ok(millis / 1000.0)
    }

    /// Whether the next item is what the generic path turns into JSON `null`: null,
    /// undefined, or a float (or tag 1 timestamp) that is not finite. Takes it if so.
    fn take_null(&mut self) -> Result<bool> {
        let start = self.pos;
        let head = self.take()?;
        let null = match (head.major, head.info) {
            (7, 22 | 23) => true,
            (7, 25..=27) => !Self::float(head).is_finite(),
            (6, _) if head.arg == 1 => !self.timestamp_after()?.is_finite(),
            _ => false,
        };
        if !null {
            self.pos = start;
        }
        Ok(null)
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(unsupported("deep nesting"));
        }
        Ok(())
    }

    fn seq_after<V: Visitor<'de>>(&mut self, head: Head, visitor: V) -> Result<V::Value> {
        self.enter()?;
        let mut access = Access {
            remaining: (!head.indefinite).then_some(head.arg),
            ended: false,
            de: &mut *self,
        };
        let value = visitor.visit_seq(&mut access)?;
        // The generic path fails when a visitor leaves elements unread.
        access.end()?;
        self.depth -= 1;
        Ok(value)
    }

    fn map_after<V: Visitor<'de>>(&mut self, head: Head, visitor: V) -> Result<V::Value> {
        self.enter()?;
        let mut access = Access {
            remaining: (!head.indefinite).then_some(head.arg),
            ended: false,
            de: &mut *self,
        };
        let value = visitor.visit_map(&mut access)?;
        access.end()?;
        self.depth -= 1;
        Ok(value)
    }

    /// A number as the generic path's JSON value holds it: not finite is `null`.
    fn number<V: Visitor<'de>>(value: f64, visitor: V) -> Result<V::Value> {
        if value.is_finite() {
            visitor.visit_f64(value)
        } else {
            visitor.visit_unit()
        }
    }
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let head = self.take()?;
        match head.major {
            // The JSON value keeps integers in i64 range as integers and the rest as floats.
            0 => match i64::try_from(head.arg) {
                Ok(_) => visitor.visit_u64(head.arg),
                Err(_) => visitor.visit_f64(head.arg as f64),
            },
            1 => {
                let value = -1 - i128::from(head.arg);
                match i64::try_from(value) {
                    Ok(small) => visitor.visit_i64(small),
                    Err(_) => visitor.visit_f64(value as f64),
                }
            }
            2 => {
                let bytes = self.string_after(head)?;
                visitor.visit_string(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            3 => match self.text_after(head)? {
                Cow::Borrowed(text) => visitor.visit_borrowed_str(text),
                Cow::Owned(text) => visitor.visit_string(text),
            },
            4 => self.seq_after(head, visitor),
            5 => self.map_after(head, visitor),
            6 if head.arg == 1 => Decoder::number(self.timestamp_after()?, visitor),
            7 => match head.info {
                20 => visitor.visit_bool(false),
                21 => visitor.visit_bool(true),
                22 | 23 => visitor.visit_unit(),
                25..=27 => Decoder::number(Decoder::float(head), visitor),
                _ => Err(unsupported("simple value")),
            },
            _ => Err(unsupported("tag")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.take_null()? {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.take_null()? {
            visitor.visit_unit()
        } else {
            Err(unsupported("unit"))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        if name == BLOB_TOKEN && self.peek()?.major == 2 {
            let head = self.take()?;
            return visitor.visit_byte_buf(self.string_after(head)?.into_owned());
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek()?.major {
            4 => {
                let head = self.take()?;
                self.seq_after(head, visitor)
            }
            _ => Err(unsupported("not an array")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek()?.major {
            5 => {
                let head = self.take()?;
                self.map_after(head, visitor)
            }
            // Includes structs sent as arrays, which the generic path reads by position.
            _ => Err(unsupported("not a map")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.peek()?.major {
            3 => {
                let head = self.take()?;
                visitor.visit_enum(UnitVariant(self.text_after(head)?))
            }
            _ => Err(unsupported("enum")),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(unsupported("bytes"))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(unsupported("bytes"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string identifier
        ignored_any
    }
}

/// The elements of an array or the entries of a map.
struct Access<'a, 'de> {
    de: &'a mut Decoder<'de>,
    /// Items left in a definite container; `None` for an indefinite one.
    remaining: Option<u64>,
    /// An indefinite container's break was read.
    ended: bool,
}

impl Access<'_, '_> {
    /// Moves to the next item; false at the end of the container.
    fn advance(&mut self) -> Result<bool> {
        match &mut self.remaining {
            Some(0) => Ok(false),
            Some(n) => {
                *n -= 1;
                Ok(true)
            }
            None if self.ended => Ok(false),
            None => {
                if self.de.input.get(self.de.pos) == Some(&BREAK) {
                    self.de.pos += 1;
                    self.ended = true;
                    return Ok(false);
                }
                Ok(true)
            }
        }
    }

    /// Checks the visitor read the container to its end.
    fn end(&mut self) -> Result<()> {
        if self.advance()? {
            return Err(unsupported("items left unread"));
        }
        Ok(())
    }
}

impl<'de> de::SeqAccess<'de> for Access<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if !self.advance()? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        // Bounded by the input so a forged length cannot make a visitor allocate much.
        self.remaining.map(|n| {
            usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(self.de.input.len() - self.de.pos)
        })
    }
}

impl<'de> de::MapAccess<'de> for Access<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if !self.advance()? {
            return Ok(None);
        }
        let head = self.de.take()?;
        if head.major != 3 {
            return Err(unsupported("map key that is not text"));
        }
        let key = self.de.text_after(head)?;
        seed.deserialize(Key(key)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        self.remaining.map(|n| {
            usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(self.de.input.len() - self.de.pos)
        })
    }
}

/// A map key. Only text is handed over; a type that wants something else from a key (a
/// number, an option) rejects it, and the generic path decides.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserializer<'de> for Key<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.0 {
            Cow::Borrowed(text) => visitor.visit_borrowed_str(text),
            Cow::Owned(text) => visitor.visit_string(text),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

/// An enum read from text: a unit variant, as the JSON value gives it.
struct UnitVariant<'de>(Cow<'de, str>);

impl<'de> de::EnumAccess<'de> for UnitVariant<'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let variant = seed.deserialize(Key(self.0.clone()))?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for UnitVariant<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<()> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value> {
        Err(unsupported("variant with data"))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value> {
        Err(unsupported("variant with data"))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value> {
        Err(unsupported("variant with data"))
    }
}

/// Which of the generic path's special members a value sits in. Lists inherit their member,
/// so `Records[*].ApproximateArrivalTimestamp` is still a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Plain,
    Blob,
    Timestamp,
}

impl Member {
    fn of(name: &[u8]) -> Member {
        let is = |names: &[&str]| names.iter().any(|n| n.as_bytes() == name);
        if is(super::codec::BLOB_FIELDS) {
            Member::Blob
        } else if is(super::codec::TIMESTAMP_FIELDS) {
            Member::Timestamp
        } else {
            Member::Plain
        }
    }
}

/// Encodes `value` as the generic path would (blob members as byte strings, timestamp members
/// as tag 1 milliseconds), except that map members keep serde's order.
///
/// # Errors
/// For shapes left to the generic path: 128-bit integers, `f32`, byte arrays, enum variants
/// with data, sequences of unknown length, map keys that are not strings.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut encoder = Encoder {
        out: Vec::with_capacity(256),
        member: Member::Plain,
    };
    value.serialize(&mut encoder)?;
    Ok(encoder.out)
}

struct Encoder {
    out: Vec<u8>,
    member: Member,
}

impl Encoder {
    /// A head in its shortest form, as the generic path's writer makes it.
    fn head(&mut self, major: u8, arg: u64) {
        let major = major << 5;
        if arg < 24 {
            self.out.push(major | arg as u8);
        } else if let Ok(arg) = u8::try_from(arg) {
            self.out.extend_from_slice(&[major | 24, arg]);
        } else if let Ok(arg) = u16::try_from(arg) {
            self.out.push(major | 25);
            self.out.extend_from_slice(&arg.to_be_bytes());
        } else if let Ok(arg) = u32::try_from(arg) {
            self.out.push(major | 26);
            self.out.extend_from_slice(&arg.to_be_bytes());
        } else {
            self.out.push(major | 27);
            self.out.extend_from_slice(&arg.to_be_bytes());
        }
    }

    fn int(&mut self, value: i64) {
        if value >= 0 {
            self.head(0, value as u64);
        } else {
            // -1 - value, the argument of a negative integer.
            self.head(1, !value as u64);
        }
    }

    fn null(&mut self) {
        self.out.push(0xf6);
    }

    fn timestamp(&mut self, seconds: f64) {
        self.head(6, 1);
        self.int((seconds * 1000.0).round() as i64);
    }

    /// A float in the shortest width that holds it exactly, as the generic path's writer does.
    fn float(&mut self, value: f64) {
        let half = half::f16::from_f64(value);
        if half.to_f64().to_bits() == value.to_bits() {
            self.out.push(0xf9);
            self.out.extend_from_slice(&half.to_bits().to_be_bytes());
        } else if f64::from(value as f32).to_bits() == value.to_bits() {
            self.out.push(0xfa);
            self.out
                .extend_from_slice(&(value as f32).to_bits().to_be_bytes());
        } else {
            self.out.push(0xfb);
            self.out.extend_from_slice(&value.to_bits().to_be_bytes());
        }
    }

    fn text(&mut self, text: &str) {
        self.head(3, text.len() as u64);
        self.out.extend_from_slice(text.as_bytes());
    }
}

impl<'a> ser::Serializer for &'a mut Encoder {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    fn serialize_bool(self, value: bool) -> Result<()> {
        self.out.push(if value { 0xf5 } else { 0xf4 });
        Ok(())
    }

    fn serialize_i8(self, value: i8) -> Result<()> {
        self.serialize_i64(value.into())
    }

    fn serialize_i16(self, value: i16) -> Result<()> {
        self.serialize_i64(value.into())
    }

    fn serialize_i32(self, value: i32) -> Result<()> {
        self.serialize_i64(value.into())
    }

    fn serialize_i64(self, value: i64) -> Result<()> {
        match self.member {
            Member::Timestamp => self.timestamp(value as f64),
            _ => self.int(value),
        }
        Ok(())
    }

    fn serialize_u8(self, value: u8) -> Result<()> {
        self.serialize_u64(value.into())
    }

    fn serialize_u16(self, value: u16) -> Result<()> {
        self.serialize_u64(value.into())
    }

    fn serialize_u32(self, value: u32) -> Result<()> {
        self.serialize_u64(value.into())
    }

    fn serialize_u64(self, value: u64) -> Result<()> {
        match self.member {
            Member::Timestamp => self.timestamp(value as f64),
            _ => self.head(0, value),
        }
        Ok(())
    }

    fn serialize_f32(self, _value: f32) -> Result<()> {
        Err(unsupported("f32"))
    }

    fn serialize_f64(self, value: f64) -> Result<()> {
        // A JSON value has no NaN or infinity: they become null, even in a timestamp member.
        if !value.is_finite() {
            self.null();
        } else if self.member == Member::Timestamp {
            self.timestamp(value);
        } else {
            self.float(value);
        }
        Ok(())
    }

    fn serialize_char(self, value: char) -> Result<()> {
        self.serialize_str(value.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, value: &str) -> Result<()> {
        if self.member == Member::Blob {
            // Blob members are base64 text in the output types; text that is not base64
            // stays text, as in the generic path.
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(value) {
                self.head(2, bytes.len() as u64);
                self.out.extend_from_slice(&bytes);
                return Ok(());
            }
        }
        self.text(value);
        Ok(())
    }

    fn serialize_bytes(self, _value: &[u8]) -> Result<()> {
        Err(unsupported("bytes"))
    }

    fn serialize_none(self) -> Result<()> {
        self.null();
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<()> {
        self.null();
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        self.null();
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<()> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<()> {
        Err(unsupported("variant with data"))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'a>> {
        let len = len.ok_or_else(|| unsupported("sequence of unknown length"))?;
        self.head(4, len as u64);
        Ok(Compound::new(self, Some(len)))
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a>> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(unsupported("variant with data"))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'a>> {
        match len {
            Some(len) => self.head(5, len as u64),
            // Flattened members: the count is not known up front.
            None => self.out.push(0xbf),
        }
        Ok(Compound::new(self, len))
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a>> {
        self.head(5, len as u64);
        Ok(Compound::new(self, Some(len)))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(unsupported("variant with data"))
    }
}

/// An array or map being written.
struct Compound<'a> {
    encoder: &'a mut Encoder,
    /// The declared count (items or entries); `None` when the map is indefinite.
    expected: Option<usize>,
    written: usize,
    /// The member this container sits in, restored at its end.
    parent: Member,
    /// The member named by the last map key.
    pending: Member,
}

impl<'a> Compound<'a> {
    fn new(encoder: &'a mut Encoder, expected: Option<usize>) -> Compound<'a> {
        let parent = encoder.member;
        Compound {
            encoder,
            expected,
            written: 0,
            parent,
            pending: Member::Plain,
        }
    }

    fn finish(self) -> Result<()> {
        self.encoder.member = self.parent;
        match self.expected {
            None => self.encoder.out.push(BREAK),
            // A serializer that declared a wrong count would make a corrupt item.
            Some(expected) if expected != self.written => {
                return Err(unsupported("count differs from the declared one"))
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.written += 1;
        // Elements of a list are in the list's member.
        self.encoder.member = self.parent;
        value.serialize(&mut *self.encoder)
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }

    fn end(self) -> Result<()> {
        self.finish()
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }

    fn end(self) -> Result<()> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }

    fn end(self) -> Result<()> {
        self.finish()
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.written += 1;
        let start = self.encoder.out.len();
        self.encoder.member = Member::Plain;
        key.serialize(&mut *self.encoder)?;
        // Keys are text in a JSON value; serde_json turns numbers and the like into text,
        // which is left to the generic path.
        let key = Decoder {
            input: &self.encoder.out[start..],
            pos: 0,
            depth: 0,
        }
        .take()
        .ok()
        .filter(|head| head.major == 3 && !head.indefinite)
        .map(|head| &self.encoder.out[start + head.len..])
        .ok_or_else(|| unsupported("map key that is not text"))?;
        self.pending = Member::of(key);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.encoder.member = self.pending;
        value.serialize(&mut *self.encoder)
    }

    fn end(self) -> Result<()> {
        self.finish()
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.written += 1;
        self.encoder.text(key);
        self.encoder.member = Member::of(key.as_bytes());
        value.serialize(&mut *self.encoder)
    }

    fn end(self) -> Result<()> {
        self.finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::codec::{self, Format};
    use ciborium::value::Integer;
    use ciborium::Value as Cbor;
    use proptest::prelude::*;
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
                    0xbf, 0x61, b'a', 0x9f, 0x01, 0x02, 0xff, 0x61, b'b', 0x7f, 0x62, b'h', b'e',
                    0x63, b'l', b'l', b'o', 0xff, 0x61, b'c', 0x5f, 0x42, b'h', b'e', 0x41, b'y',
                    0xff, 0xff,
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
}
