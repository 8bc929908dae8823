//! The CBOR writer: response types straight to bytes (see the module docs of `cbor`).

use serde::ser::{self, Serialize};

use base64::Engine as _;

use super::decode::{Decoder, BREAK};
use super::{unsupported, Error, Result};

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
        if is(crate::wire::codec::BLOB_FIELDS) {
            Member::Blob
        } else if is(crate::wire::codec::TIMESTAMP_FIELDS) {
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
        let key = Decoder::new(&self.encoder.out[start..])
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
