//! A canonical, platform-independent byte encoding of serde values, used to hash
//! the arguments of a default key. Every value is type-tagged and
//! length-prefixed, so the encoding is prefix-free and the concatenation of
//! several arguments is unambiguous. Integers are little-endian and widened, so
//! the bytes are the same on every platform and build. Maps are hashed
//! entry by entry and combined with a commutative sum, so a `HashMap`'s random
//! iteration order does not change the key. (A `HashSet` serializes as a plain
//! sequence: use a `BTreeSet` in arguments.)

use serde::ser::{self, Serialize};
use std::fmt;

use super::buf::Buf;

/// Why a value could not be encoded (its `Serialize` impl reported an error).
#[derive(Debug)]
pub(crate) struct EncodeError(pub(crate) String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EncodeError(msg.to_string())
    }
}

mod tag {
    pub const BOOL: u8 = 1;
    pub const INT: u8 = 2;
    pub const UINT: u8 = 3;
    pub const INT128: u8 = 4;
    pub const UINT128: u8 = 5;
    pub const FLOAT: u8 = 6;
    pub const CHAR: u8 = 7;
    pub const STR: u8 = 8;
    pub const BYTES: u8 = 9;
    pub const NONE: u8 = 10;
    pub const SOME: u8 = 11;
    pub const UNIT: u8 = 12;
    pub const UNIT_VARIANT: u8 = 13;
    pub const NEWTYPE_VARIANT: u8 = 14;
    pub const SEQ: u8 = 15;
    pub const SEQ_OPEN: u8 = 16;
    pub const SEQ_END: u8 = 17;
    pub const TUPLE: u8 = 18;
    pub const TUPLE_VARIANT: u8 = 19;
    pub const MAP: u8 = 20;
    pub const STRUCT: u8 = 21;
    pub const STRUCT_VARIANT: u8 = 22;
}

/// Encodes one value onto the end of `buf`.
#[inline]
pub(crate) fn encode<T: Serialize + ?Sized>(buf: &mut Buf, value: &T) -> Result<(), EncodeError> {
    value.serialize(Encoder { buf })
}

struct Encoder<'a> {
    buf: &'a mut Buf,
}

impl Encoder<'_> {
    #[inline(always)]
    fn tag(&mut self, tag: u8) {
        self.buf.put_array([tag]);
    }
    #[inline(always)]
    fn len(&mut self, len: usize) {
        self.buf.put_array((len as u64).to_le_bytes());
    }
    #[inline(always)]
    fn variant(&mut self, tag: u8, index: u32) {
        self.tag(tag);
        self.buf.put_array(index.to_le_bytes());
    }
    #[inline(always)]
    fn tagged<const N: usize>(&mut self, tag: u8, bytes: [u8; N]) {
        self.tag(tag);
        self.buf.put_array(bytes);
    }
}

/// Serializes the parts of a compound value into the same buffer.
struct Compound<'a> {
    buf: &'a mut Buf,
    /// `Some` for a sequence of unknown length: closed with an end marker.
    open: bool,
}

/// Collects a map's entries, each hashed on its own, summed so order is irrelevant.
struct MapEncoder<'a> {
    buf: &'a mut Buf,
    sum: u128,
    count: u64,
    entry: Buf,
}

impl<'a> ser::Serializer for Encoder<'a> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = MapEncoder<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        self.buf.put_array([tag::BOOL, v as u8]);
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), EncodeError> {
        self.serialize_i64(v.into())
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), EncodeError> {
        self.serialize_i64(v.into())
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), EncodeError> {
        self.serialize_i64(v.into())
    }
    #[inline]
    fn serialize_i64(mut self, v: i64) -> Result<(), EncodeError> {
        self.tagged(tag::INT, v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_i128(mut self, v: i128) -> Result<(), EncodeError> {
        self.tagged(tag::INT128, v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        self.serialize_u64(v.into())
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), EncodeError> {
        self.serialize_u64(v.into())
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), EncodeError> {
        self.serialize_u64(v.into())
    }
    #[inline]
    fn serialize_u64(mut self, v: u64) -> Result<(), EncodeError> {
        self.tagged(tag::UINT, v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_u128(mut self, v: u128) -> Result<(), EncodeError> {
        self.tagged(tag::UINT128, v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), EncodeError> {
        self.serialize_f64(v.into())
    }
    #[inline]
    fn serialize_f64(mut self, v: f64) -> Result<(), EncodeError> {
        self.tagged(tag::FLOAT, v.to_bits().to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_char(mut self, v: char) -> Result<(), EncodeError> {
        self.tagged(tag::CHAR, u32::from(v).to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_str(mut self, v: &str) -> Result<(), EncodeError> {
        self.tag(tag::STR);
        self.len(v.len());
        self.buf.put(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(mut self, v: &[u8]) -> Result<(), EncodeError> {
        self.tag(tag::BYTES);
        self.len(v.len());
        self.buf.put(v);
        Ok(())
    }
    #[inline]
    fn serialize_none(mut self) -> Result<(), EncodeError> {
        self.tag(tag::NONE);
        Ok(())
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(mut self, value: &T) -> Result<(), EncodeError> {
        self.tag(tag::SOME);
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(mut self) -> Result<(), EncodeError> {
        self.tag(tag::UNIT);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), EncodeError> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        mut self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
    ) -> Result<(), EncodeError> {
        self.variant(tag::UNIT_VARIANT, index);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.variant(tag::NEWTYPE_VARIANT, index);
        value.serialize(self)
    }
    fn serialize_seq(mut self, len: Option<usize>) -> Result<Compound<'a>, EncodeError> {
        match len {
            Some(len) => {
                self.tag(tag::SEQ);
                self.len(len);
            }
            None => self.tag(tag::SEQ_OPEN),
        }
        Ok(Compound {
            buf: self.buf,
            open: len.is_none(),
        })
    }
    fn serialize_tuple(mut self, len: usize) -> Result<Compound<'a>, EncodeError> {
        self.tag(tag::TUPLE);
        self.len(len);
        Ok(Compound {
            buf: self.buf,
            open: false,
        })
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, EncodeError> {
        self.serialize_tuple(len)
    }
    fn serialize_tuple_variant(
        mut self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, EncodeError> {
        self.variant(tag::TUPLE_VARIANT, index);
        self.len(len);
        Ok(Compound {
            buf: self.buf,
            open: false,
        })
    }
    fn serialize_map(mut self, _len: Option<usize>) -> Result<MapEncoder<'a>, EncodeError> {
        self.tag(tag::MAP);
        Ok(MapEncoder {
            buf: self.buf,
            sum: 0,
            count: 0,
            entry: Buf::new(),
        })
    }
    fn serialize_struct(
        mut self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, EncodeError> {
        self.tag(tag::STRUCT);
        self.len(len);
        Ok(Compound {
            buf: self.buf,
            open: false,
        })
    }
    fn serialize_struct_variant(
        mut self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, EncodeError> {
        self.variant(tag::STRUCT_VARIANT, index);
        self.len(len);
        Ok(Compound {
            buf: self.buf,
            open: false,
        })
    }
}

impl Compound<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(Encoder { buf: self.buf })
    }
    fn close(self) -> Result<(), EncodeError> {
        if self.open {
            self.buf.put(&[tag::SEQ_END]);
        }
        Ok(())
    }
}

macro_rules! compound_impl {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = EncodeError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
                self.element(value)
            }
            fn end(self) -> Result<(), EncodeError> {
                self.close()
            }
        }
    )*};
}
compound_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

macro_rules! struct_impl {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = EncodeError;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _key: &'static str,
                value: &T,
            ) -> Result<(), EncodeError> {
                self.element(value)
            }
            fn skip_field(&mut self, _key: &'static str) -> Result<(), EncodeError> {
                // A skipped field still takes its place, so the field count stays right.
                self.buf.put_array([tag::UNIT]);
                Ok(())
            }
            fn end(self) -> Result<(), EncodeError> {
                self.close()
            }
        }
    )*};
}
struct_impl!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for MapEncoder<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        self.entry = Buf::new();
        encode(&mut self.entry, key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        encode(&mut self.entry, value)?;
        let entry_hash = self.entry.hash();
        self.sum = self.sum.wrapping_add(entry_hash);
        self.count += 1;
        Ok(())
    }
    fn end(self) -> Result<(), EncodeError> {
        self.buf.put(&self.count.to_le_bytes());
        self.buf.put(&self.sum.to_le_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    fn bytes<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
        let mut b = Buf::new();
        encode(&mut b, v).unwrap();
        b.to_vec()
    }

    #[test]
    fn strings_are_length_prefixed_so_concatenations_differ() {
        let mut a = Buf::new();
        encode(&mut a, "a:b").unwrap();
        encode(&mut a, "c").unwrap();
        let mut b = Buf::new();
        encode(&mut b, "a").unwrap();
        encode(&mut b, "b:c").unwrap();
        assert_ne!(a.to_vec(), b.to_vec());
    }

    #[test]
    fn option_and_unit_are_distinct() {
        assert_ne!(bytes(&None::<u8>), bytes(&()));
        assert_ne!(bytes(&Some(0u8)), bytes(&0u8));
    }

    #[test]
    fn map_order_does_not_matter() {
        let mut h1 = HashMap::new();
        let mut h2 = HashMap::new();
        for i in 0..50u32 {
            h1.insert(i, i * 2);
        }
        for i in (0..50u32).rev() {
            h2.insert(i, i * 2);
        }
        let b: BTreeMap<u32, u32> = h1.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(bytes(&h1), bytes(&h2));
        assert_eq!(bytes(&h1), bytes(&b));
        h2.insert(99, 1);
        assert_ne!(bytes(&h1), bytes(&h2));
    }

    #[test]
    fn long_input_spills_to_the_heap_intact() {
        let s = "x".repeat(500);
        let b = bytes(s.as_str());
        assert_eq!(b.len(), 1 + 8 + 500);
        assert_eq!(&b[9..], s.as_bytes());
    }

    #[test]
    fn integers_are_fixed_little_endian() {
        assert_eq!(bytes(&1u64), vec![3, 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes(&1u8), bytes(&1u64));
        assert_eq!(bytes(&-1i32), {
            let mut v = vec![2];
            v.extend_from_slice(&(-1i64).to_le_bytes());
            v
        });
    }
}
