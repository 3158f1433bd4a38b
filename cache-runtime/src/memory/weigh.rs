//! The weight of a value in a byte-bounded memory tier
//! ([`memory_bytes`](crate::CacheBuilder::memory_bytes)), computed once, when
//! the value is stored: the hit path never weighs.
//!
//! Values in memory are typed, not serialized, so their size is estimated:
//! the value's inline size (`size_of`) plus what a serde serializer that
//! only counts sees of it: strings and byte strings by their length, numbers
//! by their width. That is a serialization of the value with no output and
//! no allocation, linear in the value's fields (a `Bytes` or `String` body
//! is one `len()`, whatever its size; a `Vec<u8>` goes through serde's
//! sequence, one call per byte, about a millisecond per MB). It counts the
//! data, not the allocator's slack nor the pointers of pointer-rich values (a
//! `Vec<String>` of short strings is undercounted about twofold): such values
//! are better weighed by a function of the user's own,
//! [`memory_weighted`](crate::CacheBuilder::memory_weighted).

use serde::ser::{self, Serialize, Serializer};

/// Estimated bytes of `value`: its inline size plus the data serde sees.
/// A value whose `Serialize` fails, or panics, weighs what was counted until
/// then.
pub(crate) fn estimate<V: Serialize>(value: &V) -> u64 {
    let mut count = Count(0);
    // A failing `Serialize` (a custom impl's error) leaves a partial count: a
    // lower estimate, never a panic. A panicking one too: it is the user's
    // code, and the caller's value is stored in memory all the same (its
    // write to the remote tier reports the panic).
    let _ = crate::remote::user_code::contain(|| value.serialize(&mut count));
    (std::mem::size_of::<V>() as u64).saturating_add(count.0)
}

/// A serializer that adds up the bytes of what it is given.
struct Count(u64);

impl Count {
    fn add(&mut self, bytes: usize) -> Result<(), Never> {
        self.0 = self.0.saturating_add(bytes as u64);
        Ok(())
    }
}

/// Counting cannot fail; `Serialize` impls may still make up an error.
#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a value's Serialize impl failed")
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        Never
    }
}

/// Integers and floats count their width.
macro_rules! widths {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(fn $method(self, _v: $ty) -> Result<(), Never> {
            self.add(std::mem::size_of::<$ty>())
        })*
    };
}

impl Serializer for &mut Count {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    widths! {
        serialize_bool: bool,
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64,
        serialize_u128: u128,
        serialize_f32: f32, serialize_f64: f64,
        serialize_char: char,
    }

    fn serialize_str(self, v: &str) -> Result<(), Never> {
        self.add(v.len())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Never> {
        self.add(v.len())
    }

    fn serialize_none(self) -> Result<(), Never> {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Never> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Never> {
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Never> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> Result<(), Never> {
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Never> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Never> {
        Ok(self)
    }

    fn is_human_readable(&self) -> bool {
        // Types with two forms (e.g. addresses, UUIDs) count the compact one,
        // closer to what they hold.
        false
    }
}

/// Every compound counts its elements, nothing for itself.
macro_rules! elements {
    ($($trait:ident :: $method:ident),* $(,)?) => {
        $(impl ser::$trait for &mut Count {
            type Ok = ();
            type Error = Never;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
                value.serialize(&mut **self)
            }

            fn end(self) -> Result<(), Never> {
                Ok(())
            }
        })*
    };
}

elements! {
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
}

impl ser::SerializeMap for &mut Count {
    type Ok = ();
    type Error = Never;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Never> {
        key.serialize(&mut **self)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}

/// Struct fields count their values, not their names (which are not stored).
macro_rules! fields {
    ($($trait:ident),* $(,)?) => {
        $(impl ser::$trait for &mut Count {
            type Ok = ();
            type Error = Never;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _key: &'static str,
                value: &T,
            ) -> Result<(), Never> {
                value.serialize(&mut **self)
            }

            fn end(self) -> Result<(), Never> {
                Ok(())
            }
        })*
    };
}

fields!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(serde::Serialize)]
    struct User {
        id: u64,
        name: String,
        tags: Vec<String>,
        avatar: Option<Vec<u8>>,
    }

    #[test]
    fn strings_and_bytes_weigh_their_length_and_numbers_their_width() {
        assert_eq!(estimate(&7u64), 8 + 8);
        let text = "x".repeat(1000);
        assert_eq!(estimate(&text), 24 + 1000);
        assert_eq!(estimate(&vec![0u8; 700_000]), 24 + 700_000);
        let user = User {
            id: 1,
            name: "ada".into(),
            tags: vec!["a".into(), "bc".into()],
            avatar: Some(vec![0u8; 4096]),
        };
        let inline = std::mem::size_of::<User>() as u64;
        assert_eq!(estimate(&user), inline + 8 + 3 + 1 + 2 + 4096);
        let map: HashMap<String, u32> = (0..10).map(|i| (format!("k{i}"), i)).collect();
        assert_eq!(
            estimate(&map),
            std::mem::size_of_val(&map) as u64 + 10 * (2 + 4)
        );
    }

    #[test]
    fn a_failing_serialize_weighs_what_was_counted() {
        struct Fails;
        impl Serialize for Fails {
            fn serialize<S: Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
                Err(ser::Error::custom("no"))
            }
        }
        assert_eq!(estimate(&Fails), 0);
        assert_eq!(estimate(&(vec![1u32, 2], Fails)), 24 + 8);
    }

    #[test]
    fn a_panicking_serialize_weighs_what_was_counted() {
        struct Panics;
        impl Serialize for Panics {
            fn serialize<S: Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
                panic!("no")
            }
        }
        assert_eq!(estimate(&Panics), 0);
        assert_eq!(estimate(&(vec![1u32, 2], Panics)), 24 + 8);
    }
}
