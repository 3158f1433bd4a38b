//! A fast path for the most common payload: one CBOR text string (a cached
//! `String`). `ciborium` copies a text string through its scratch buffer in
//! segments before handing it to serde, about 700 instructions for 100 bytes,
//! a tenth of a remote hit's own work; here the string is validated and handed
//! to the visitor in place.
//!
//! Only a definite-length text string that fills the whole payload, asked for
//! as a string (or as anything), is decoded here. Every other shape, every
//! other request (an enum's unit variant, an `Option`, ...) and every error
//! goes to `ciborium`, so results and error messages stay exactly its own.

use serde::de::{self, DeserializeOwned, Visitor};

/// The value of `payload` when it is one text string that `T` reads as a
/// string; `None` for `ciborium` to decode.
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Option<T> {
    let text = whole_text(payload)?;
    T::deserialize(Text(text)).ok()
}

/// The string of a payload that is exactly one definite-length text string.
fn whole_text(payload: &[u8]) -> Option<&str> {
    let (&first, rest) = payload.split_first()?;
    if first >> 5 != 3 {
        return None;
    }
    let (len, rest) = match first & 0x1f {
        n @ 0..=23 => (u64::from(n), rest),
        24 => (u64::from(*rest.first()?), rest.get(1..)?),
        25 => (
            u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            rest.get(2..)?,
        ),
        26 => (
            u64::from(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?)),
            rest.get(4..)?,
        ),
        27 => (
            u64::from_be_bytes(rest.get(..8)?.try_into().ok()?),
            rest.get(8..)?,
        ),
        // Indefinite length (31) or reserved: ciborium's.
        _ => return None,
    };
    if u64::try_from(rest.len()).ok()? != len {
        return None;
    }
    std::str::from_utf8(rest).ok()
}

/// A deserializer of one string that declines every request but a string's.
struct Text<'a>(&'a str);

/// Declined: `ciborium` decodes the payload instead.
#[derive(Debug)]
struct Declined;

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a plain string")
    }
}

impl std::error::Error for Declined {}

impl de::Error for Declined {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Declined
    }
}

/// Deserializer methods without extra arguments that decline.
macro_rules! decline {
    ($($method:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Declined> {
                Err(Declined)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Text<'_> {
    type Error = Declined;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        visitor.visit_str(self.0)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        visitor.visit_str(self.0)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Declined> {
        visitor.visit_str(self.0)
    }

    decline! {
        deserialize_bool, deserialize_i8, deserialize_i16, deserialize_i32,
        deserialize_i64, deserialize_u8, deserialize_u16, deserialize_u32,
        deserialize_u64, deserialize_f32, deserialize_f64, deserialize_char,
        deserialize_bytes, deserialize_byte_buf, deserialize_option,
        deserialize_unit, deserialize_seq, deserialize_map,
        deserialize_identifier, deserialize_ignored_any,
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: V,
    ) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: V,
    ) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Declined> {
        Err(Declined)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Declined> {
        Err(Declined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::collections::BTreeMap;

    fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).unwrap();
        out
    }

    #[test]
    fn strings_of_every_length_class_decode_as_ciborium_does() {
        for len in [0, 1, 23, 24, 255, 256, 65_535, 65_536, 100_000] {
            let s: String = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let bytes = cbor(&s);
            assert_eq!(decode::<String>(&bytes).as_deref(), Some(s.as_str()));
            assert_eq!(decode::<Box<str>>(&bytes).as_deref(), Some(s.as_str()));
            assert_eq!(decode::<Cow<str>>(&bytes).as_deref(), Some(s.as_str()));
        }
    }

    #[test]
    fn other_shapes_and_requests_are_declined() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        enum Unit {
            A,
        }
        // Requests a string would not satisfy the same way in ciborium.
        assert_eq!(decode::<Unit>(&cbor(&Unit::A)), None);
        assert_eq!(decode::<Option<String>>(&cbor(&Some("a"))), None);
        assert_eq!(decode::<char>(&cbor(&'a')), None);
        assert_eq!(decode::<Vec<u8>>(&cbor(&"ab")), None);
        // Other items, trailing bytes, truncation, bad UTF-8, indefinite length.
        assert_eq!(decode::<String>(&cbor(&7u32)), None);
        assert_eq!(decode::<String>(&cbor(&BTreeMap::from([("a", 1)]))), None);
        let mut trailing = cbor(&"ab");
        trailing.push(0);
        assert_eq!(decode::<String>(&trailing), None);
        let whole = cbor(&"abc");
        assert_eq!(decode::<String>(&whole[..whole.len() - 1]), None);
        assert_eq!(decode::<String>(&[0x62, 0xff, 0xfe]), None);
        assert_eq!(decode::<String>(&[0x7f, 0x61, b'a', 0xff]), None);
        assert_eq!(decode::<String>(&[0x7b, 0xff]), None);
        assert_eq!(decode::<String>(&[]), None);
    }
}
