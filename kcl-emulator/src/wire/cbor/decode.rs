//! The CBOR reader: serde calls straight from the bytes (see the module docs of `cbor`).

use std::borrow::Cow;

use base64::Engine as _;
use serde::de::{self, DeserializeSeed, Visitor};

use super::{unsupported, Error, Result, BLOB_TOKEN, MAX_DEPTH};

/// An item's initial byte and argument.
#[derive(Debug, Clone, Copy)]
pub(super) struct Head {
    pub(super) major: u8,
    info: u8,
    /// The argument; meaningless when `indefinite`.
    arg: u64,
    /// Indefinite length (additional information 31).
    pub(super) indefinite: bool,
    /// Bytes the head takes.
    pub(super) len: usize,
}

/// The stop code ending an item of indefinite length.
pub(super) const BREAK: u8 = 0xff;

pub(super) struct Decoder<'de> {
    input: &'de [u8],
    pos: usize,
    depth: usize,
}

impl<'de> Decoder<'de> {
    /// A decoder at the start of `input`.
    pub(super) fn new(input: &'de [u8]) -> Decoder<'de> {
        Decoder {
            input,
            pos: 0,
            depth: 0,
        }
    }

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

    pub(super) fn take(&mut self) -> Result<Head> {
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
