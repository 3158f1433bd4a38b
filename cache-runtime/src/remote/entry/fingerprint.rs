//! Schema fingerprints: a `u64` for the shape of a stored type, recorded in
//! every remote entry, so that an entry written for another shape of the
//! type (a field added, renamed or retyped; a tuple widened; an enum variant
//! added) is a clean miss instead of a decode error or, worse, a value that
//! decodes into the new type differently (a renamed field with
//! `#[serde(default)]` read as its default).
//!
//! # How
//!
//! The type's own `Deserialize` is run once against a tracing deserializer
//! that answers every request with a sample value and hashes (XXH3-64) what
//! was asked: each primitive's kind, container names with their field or
//! variant names (`deserialize_struct` and `deserialize_enum` name them all
//! up front), tuple lengths, and the element, key, value and field types
//! below them. An enum is traced once per variant, so each variant's
//! contents count. Nothing of the build is hashed (no `TypeId`, no path),
//! so two processes of different builds that store the same shape agree.
//! `is_human_readable` is `false`, as for the CBOR decoder, so types that
//! read differently in text and binary forms are traced on the binary path.
//!
//! # What it cannot see
//!
//! The fingerprint is exact for derived types made of primitives, strings,
//! bytes, options, sequences, maps, tuples, structs and externally tagged
//! enums. Elsewhere it degrades, never to a false difference between two
//! builds of one shape (the trace is a pure function of the type's
//! `Deserialize`):
//! - A type that asks for `deserialize_any` (`#[serde(untagged)]`, internally
//!   or adjacently tagged enums, `#[serde(flatten)]`, `serde_json::Value`)
//!   ends the trace there: what came before is hashed with an "unknown"
//!   mark. A type that is `deserialize_any` at its root has the one
//!   "unknown" fingerprint, which matches only other such types.
//! - A value the sample does not satisfy (a `Uuid` or a date parsed from an
//!   empty string, a `NonZeroU32`-like check on 1) ends the trace there
//!   too: the fields after it are known by name (from the container's field
//!   list), not by type.
//! - Recursive types: inside a container already being traced, options,
//!   sequences and maps are traced empty; a trace deeper than
//!   [`MAX_DEPTH`] or longer than [`MAX_EVENTS`] ends there.
//!
//! Reordering a struct's fields changes the fingerprint (a miss, once,
//! after the deploy), though CBOR maps would have decoded; that is the safe
//! side.
//!
//! # Cost
//!
//! Traced once per type per process ([`of`] keeps the result by `TypeId` in
//! a read-mostly map); after that a remote decode pays one read-locked map
//! lookup (10 to 20 ns in release, against about 2 µs for decoding a small
//! struct: BENCHMARKS.md). The memory hit path never asks for it.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use parking_lot::RwLock;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use xxhash_rust::xxh3::Xxh3Default;

/// Deepest nesting of requests traced.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most requests traced for one type, all passes together.
pub(crate) const MAX_EVENTS: usize = 100_000;
/// Most passes (one per enum variant beyond the first).
const MAX_PASSES: usize = 1_024;
/// Changes every fingerprint when the tracing itself changes.
const ALGORITHM: &[u8] = b"cache-runtime schema fingerprint v1";

/// The fingerprint of `T`'s shape: traced the first time, then looked up.
pub(crate) fn of<T: DeserializeOwned + 'static>() -> u64 {
    static KNOWN: OnceLock<RwLock<HashMap<TypeId, u64, ById>>> = OnceLock::new();
    let known = KNOWN.get_or_init(Default::default);
    let id = TypeId::of::<T>();
    if let Some(fingerprint) = known.read().get(&id) {
        return *fingerprint;
    }
    let fingerprint = trace::<T>();
    known.write().insert(id, fingerprint);
    fingerprint
}

/// Hashes a `TypeId` by the bits it is made of (already a hash of the
/// type): SipHash doubled the cost of a lookup.
#[derive(Default, Clone, Copy)]
struct ById;

impl std::hash::BuildHasher for ById {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// See [`ById`]: folds whatever is written into one `u64`.
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(5) ^ n;
    }

    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
}

/// Traces `T`'s `Deserialize` (see the module's docs); never cached.
#[cold]
pub(crate) fn trace<T: DeserializeOwned>() -> u64 {
    let mut tracer = Tracer::default();
    tracer.hasher.update(ALGORITHM);
    let mut passes = 0;
    loop {
        tracer.begin_pass();
        // The type's `Deserialize` is the user's code: a panic is a mark in
        // the trace, not the caller's panic.
        let outcome = super::super::user_code::contain(|| T::deserialize(&mut tracer).map(drop));
        tracer.hasher.update(match outcome {
            Ok(Ok(())) => b"=ok",
            Ok(Err(_)) => b"=er",
            Err(_) => b"=pa",
        });
        passes += 1;
        if passes >= MAX_PASSES || tracer.over_budget() {
            tracer.hasher.update(b"=cut");
            break;
        }
        if !tracer.next_choice() {
            break;
        }
    }
    tracer.hasher.digest()
}

/// The deserializer that records what is asked of it.
#[derive(Default)]
struct Tracer {
    hasher: Xxh3Default,
    events: usize,
    /// Named containers being traced, outermost first.
    stack: Vec<&'static str>,
    /// Enums seen, in the order first seen: name and variant count.
    enums: Vec<(&'static str, usize)>,
    /// The variant each enum takes this pass (0 when absent).
    choices: HashMap<&'static str, usize>,
    /// The enum whose variants are being walked, as an index into `enums`.
    walking: usize,
}

impl Tracer {
    fn begin_pass(&mut self) {
        self.stack.clear();
        self.hasher.update(b"|pass");
    }

    fn over_budget(&self) -> bool {
        self.events > MAX_EVENTS
    }

    /// Moves to the next variant of the enum being walked, or to the next
    /// enum; `false` when every variant of every enum seen was traced.
    fn next_choice(&mut self) -> bool {
        while let Some(&(name, count)) = self.enums.get(self.walking) {
            let next = self.choices.get(name).copied().unwrap_or(0) + 1;
            if next < count {
                self.choices.insert(name, next);
                return true;
            }
            // Back to the first variant while the next enum is walked.
            self.choices.remove(name);
            self.walking += 1;
        }
        false
    }

    /// Records one request; fails once the trace is too long or too deep.
    fn event(&mut self, tag: u8) -> Result<(), Error> {
        self.events += 1;
        self.hasher.update(&[tag]);
        if self.over_budget() {
            return Err(Error("the trace is too long"));
        }
        if self.stack.len() > MAX_DEPTH {
            return Err(Error("the trace is too deep"));
        }
        Ok(())
    }

    fn name(&mut self, name: &str) {
        self.hasher.update(&(name.len() as u64).to_le_bytes());
        self.hasher.update(name.as_bytes());
    }

    fn names(&mut self, names: &[&str]) {
        self.hasher.update(&(names.len() as u64).to_le_bytes());
        for name in names {
            self.name(name);
        }
    }

    /// Whether a container of this name is already being traced: a
    /// recursive type, whose optional parts are then traced empty.
    fn recursing(&self) -> bool {
        let stack = &self.stack;
        stack
            .iter()
            .enumerate()
            .any(|(i, name)| stack[i + 1..].contains(name))
    }

    fn enter<R>(
        &mut self,
        name: &'static str,
        inside: impl FnOnce(&mut Self) -> Result<R, Error>,
    ) -> Result<R, Error> {
        self.stack.push(name);
        let result = inside(self);
        self.stack.pop();
        result
    }
}

/// Why a trace stopped (the message is never hashed).
#[derive(Debug)]
pub(crate) struct Error(&'static str);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Error("the type refused the sample value")
    }
}

macro_rules! primitive {
    ($($method:ident $tag:literal $visit:ident $sample:expr;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.event($tag)?;
            visitor.$visit($sample)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut Tracer {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        self.event(b'?')?;
        Err(Error("deserialize_any: the shape is not known"))
    }

    primitive! {
        deserialize_bool b'z' visit_bool false;
        deserialize_i8 b'1' visit_i8 1;
        deserialize_i16 b'2' visit_i16 1;
        deserialize_i32 b'3' visit_i32 1;
        deserialize_i64 b'4' visit_i64 1;
        deserialize_i128 b'5' visit_i128 1;
        deserialize_u8 b'6' visit_u8 1;
        deserialize_u16 b'7' visit_u16 1;
        deserialize_u32 b'8' visit_u32 1;
        deserialize_u64 b'9' visit_u64 1;
        deserialize_u128 b'0' visit_u128 1;
        deserialize_f32 b'f' visit_f32 0.0;
        deserialize_f64 b'd' visit_f64 0.0;
        deserialize_char b'c' visit_char 'a';
        deserialize_str b's' visit_str "";
        deserialize_string b's' visit_str "";
        deserialize_bytes b'b' visit_bytes &[];
        deserialize_byte_buf b'b' visit_bytes &[];
        deserialize_identifier b'i' visit_str "";
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.event(b'u')?;
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.event(b'x')?;
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.recursing() {
            self.event(b'O')?;
            return visitor.visit_none();
        }
        self.event(b'o')?;
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.event(b'U')?;
        self.name(name);
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.event(b'N')?;
        self.name(name);
        self.enter(name, |t| visitor.visit_newtype_struct(t))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let len = usize::from(!self.recursing());
        self.event(if len == 1 { b'q' } else { b'Q' })?;
        visitor.visit_seq(Elements {
            tracer: self,
            left: len,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.event(b't')?;
        self.hasher.update(&(len as u64).to_le_bytes());
        visitor.visit_seq(Elements {
            tracer: self,
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.event(b'T')?;
        self.name(name);
        self.hasher.update(&(len as u64).to_le_bytes());
        self.enter(name, |t| {
            visitor.visit_seq(Elements {
                tracer: t,
                left: len,
            })
        })
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let len = usize::from(!self.recursing());
        self.event(if len == 1 { b'm' } else { b'M' })?;
        visitor.visit_map(Entries {
            tracer: self,
            left: len,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.event(b'S')?;
        self.name(name);
        self.names(fields);
        self.enter(name, |t| {
            visitor.visit_map(Fields {
                tracer: t,
                fields,
                next: 0,
            })
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.event(b'E')?;
        self.name(name);
        self.names(variants);
        if !self.enums.iter().any(|(seen, _)| *seen == name) {
            self.enums.push((name, variants.len()));
        }
        // Inside a recursion, the first variant (a way out, usually).
        let chosen = if self.recursing() {
            0
        } else {
            self.choices.get(name).copied().unwrap_or(0)
        };
        self.hasher.update(&(chosen as u64).to_le_bytes());
        self.enter(name, |t| visitor.visit_enum(Variant { tracer: t, chosen }))
    }

    fn is_human_readable(&self) -> bool {
        // As `ciborium`'s deserializer: the binary path is the one traced.
        false
    }
}

/// `len` elements of a sequence or tuple, each traced.
struct Elements<'a> {
    tracer: &'a mut Tracer,
    left: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.tracer).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// At most one entry of a map: its key's type, then its value's.
struct Entries<'a> {
    tracer: &'a mut Tracer,
    left: usize,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.tracer).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(&mut *self.tracer)
    }
}

/// A struct's fields by name, as a CBOR map presents them.
struct Fields<'a> {
    tracer: &'a mut Tracer,
    fields: &'static [&'static str],
    next: usize,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(field) = self.fields.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        seed.deserialize(IntoDeserializer::<Error>::into_deserializer(*field))
            .map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        seed.deserialize(&mut *self.tracer)
    }
}

/// The variant chosen for this pass.
struct Variant<'a> {
    tracer: &'a mut Tracer,
    chosen: usize,
}

impl<'de, 'a> EnumAccess<'de> for Variant<'a> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        let index = u32::try_from(self.chosen).map_err(|_| Error("too many variants"))?;
        let value = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(index))?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        self.tracer.event(b'v')
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        self.tracer.event(b'w')?;
        seed.deserialize(self.tracer)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.tracer.event(b'y')?;
        self.tracer.hasher.update(&(len as u64).to_le_bytes());
        visitor.visit_seq(Elements {
            tracer: self.tracer,
            left: len,
        })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.tracer.event(b'r')?;
        self.tracer.names(fields);
        visitor.visit_map(Fields {
            tracer: self.tracer,
            fields,
            next: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::{BTreeMap, HashMap};

    mod v1 {
        use super::*;
        #[derive(Deserialize)]
        #[allow(dead_code)]
        pub struct User {
            pub id: u64,
            pub name: String,
            pub tags: Vec<String>,
        }
    }
    mod added {
        use super::*;
        #[derive(Deserialize)]
        #[allow(dead_code)]
        pub struct User {
            pub id: u64,
            pub name: String,
            pub tags: Vec<String>,
            pub email: Option<String>,
        }
    }
    mod renamed {
        use super::*;
        #[derive(Deserialize)]
        #[allow(dead_code)]
        pub struct User {
            pub id: u64,
            #[serde(default)]
            pub full_name: String,
            pub tags: Vec<String>,
        }
    }
    mod retyped {
        use super::*;
        #[derive(Deserialize)]
        #[allow(dead_code)]
        pub struct User {
            pub id: u32,
            pub name: String,
            pub tags: Vec<String>,
        }
    }
    mod retyped_deep {
        use super::*;
        #[derive(Deserialize)]
        #[allow(dead_code)]
        pub struct User {
            pub id: u64,
            pub name: String,
            pub tags: Vec<u64>,
        }
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Role {
        Admin,
        Member { since: u64 },
    }
    mod more_roles {
        use super::*;
        #[derive(Deserialize)]
        #[allow(dead_code)]
        pub enum Role {
            Admin,
            Member { since: u64 },
            Guest,
        }
    }
    mod variant_retyped {
        use super::*;
        #[derive(Deserialize)]
        #[allow(dead_code)]
        pub enum Role {
            Admin,
            Member { since: String },
        }
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Wrapper<T>(T);

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Tree {
        value: u32,
        left: Option<Box<Tree>>,
        right: Option<Box<Tree>>,
        children: Vec<Tree>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum List {
        Cons(u32, Box<List>),
        Nil,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum Loose {
        A(u64),
        B(String),
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum Loose2 {
        A(u64),
    }

    #[test]
    fn the_same_type_gives_the_same_fingerprint() {
        assert_eq!(trace::<v1::User>(), trace::<v1::User>());
        assert_eq!(of::<v1::User>(), trace::<v1::User>());
        assert_eq!(of::<v1::User>(), of::<v1::User>());
        // The same shape under another path: the same fingerprint.
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct User {
            id: u64,
            name: String,
            tags: Vec<String>,
        }
        assert_eq!(trace::<User>(), trace::<v1::User>());
    }

    #[test]
    fn a_changed_shape_gives_another_fingerprint() {
        let base = trace::<v1::User>();
        let others = [
            ("field added", trace::<added::User>()),
            ("field renamed", trace::<renamed::User>()),
            ("field retyped", trace::<retyped::User>()),
            ("element retyped", trace::<retyped_deep::User>()),
        ];
        for (what, fingerprint) in others {
            assert_ne!(fingerprint, base, "{what}");
        }
        assert_ne!(trace::<(u64, String)>(), trace::<(u64, String, bool)>());
        assert_ne!(trace::<Role>(), trace::<more_roles::Role>());
        assert_ne!(trace::<Role>(), trace::<variant_retyped::Role>());
        assert_ne!(trace::<Option<u64>>(), trace::<u64>());
        assert_ne!(trace::<Vec<u8>>(), trace::<String>());
        assert_ne!(
            trace::<HashMap<String, u64>>(),
            trace::<HashMap<String, i64>>()
        );
        // Maps of one shape agree whatever their kind.
        assert_eq!(
            trace::<HashMap<String, u64>>(),
            trace::<BTreeMap<String, u64>>()
        );
    }

    #[test]
    fn generic_instances_are_distinct() {
        assert_ne!(trace::<Wrapper<u32>>(), trace::<Wrapper<String>>());
        assert_ne!(
            trace::<Wrapper<Wrapper<u32>>>(),
            trace::<Wrapper<Wrapper<String>>>()
        );
        assert_ne!(of::<Wrapper<u32>>(), of::<Wrapper<u64>>());
        assert_ne!(of::<Vec<v1::User>>(), of::<Vec<added::User>>());
    }

    #[test]
    fn recursive_types_are_traced_and_stop() {
        let tree = trace::<Tree>();
        assert_eq!(tree, trace::<Tree>());
        assert_eq!(trace::<List>(), trace::<List>());
        assert_ne!(tree, trace::<List>());
    }

    #[test]
    fn untraceable_types_are_unknown_and_match_only_unknown() {
        let unknown = trace::<Loose>();
        assert_eq!(
            unknown,
            trace::<Loose2>(),
            "both are deserialize_any at the root"
        );
        assert_eq!(unknown, trace::<ciborium::Value>());
        assert_ne!(unknown, trace::<u64>());
        assert_ne!(unknown, trace::<String>());
        // Known fields around an unknown one still count.
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Holder {
            id: u64,
            extra: ciborium::Value,
        }
        assert_ne!(trace::<Holder>(), unknown);
    }

    #[test]
    fn a_panicking_deserialize_is_traced_without_panicking() {
        struct Panics;
        impl<'de> Deserialize<'de> for Panics {
            fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
                panic!("trace boom")
            }
        }
        assert_eq!(trace::<Panics>(), trace::<Panics>());
    }

    #[test]
    fn a_lookup_is_cheap_after_the_first_trace() {
        let _ = of::<added::User>();
        let n = 100_000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(of::<added::User>());
        }
        let per_lookup = start.elapsed() / n;
        let start = std::time::Instant::now();
        std::hint::black_box(trace::<added::User>());
        let per_trace = start.elapsed();
        eprintln!("fingerprint: lookup {per_lookup:?}, trace {per_trace:?}");
        // Generous: a debug build on a shared machine.
        assert!(per_lookup < std::time::Duration::from_micros(20));
    }
}
