//! How a function's return type maps onto what is stored: `Result` stores only
//! `Ok`, `Option` stores `Some` (and `None` unless `cache_none = false`), any
//! other type is stored as it is. The macro picks the kind from the return type.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// What a stored value must be.
///
/// In the remote tier a value is stored as CBOR. Mark byte buffers as byte
/// strings there: a `Vec<u8>` (or `[u8; N]`, `&[u8]`) is written by serde as
/// a sequence, which CBOR stores as an array of integers, one to two bytes
/// each (about 1.9 bytes per random byte), while a byte string takes one
/// byte per byte plus a few. Use `#[serde(with = "serde_bytes")]` on the
/// field, or the types `serde_bytes::ByteBuf` or `bytes::Bytes` (with its
/// `serde` feature), from the `serde_bytes` and `bytes` crates:
///
/// ```ignore
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Thumbnail {
///     id: u64,
///     #[serde(with = "serde_bytes")] // 1 MB in Redis, not 1.9 MB
///     png: Vec<u8>,
/// }
/// ```
///
/// Entries written before such a change still read: `serde_bytes` accepts
/// an array of integers too (tested in `tests/huge_values.rs`). The HTTP
/// layer stores bodies and header values as byte strings. An entry larger than
/// [`CacheBuilder::max_entry_bytes`](crate::CacheBuilder::max_entry_bytes)
/// is not written to the remote tier.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is stored in the cache, so it must be `Serialize + DeserializeOwned + Clone + Send + Sync + 'static`",
    label = "the cached value",
    note = "derive `Clone`, `serde::Serialize` and `serde::Deserialize` for it (owned fields only, no references)"
)]
pub trait Storable: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Storable for T {}

/// Splits a return value of type `R` into the value to share and store, or a
/// failure returned as it is.
pub trait ReturnKind<R> {
    /// The value kept in the cache.
    type Value: Storable;
    /// `Ok(value)` on success; `Err(r)` for a failure (never stored).
    fn split(r: R) -> Result<Self::Value, R>;
    /// The return value for a cached value.
    fn join(v: Self::Value) -> R;
    /// Whether a successful value is stored.
    fn storable(_v: &Self::Value, _cache_none: bool) -> bool {
        true
    }
    /// Whether `r` is a success (for `#[invalidate]`).
    fn succeeded(_r: &R) -> bool {
        true
    }
}

/// Return types other than `Result` and `Option`: always stored.
pub struct AsPlain;
/// `Option<T>`: `Some` stored; `None` stored unless `cache_none = false`.
pub struct AsOption;
/// `Result<T, E>`: only `Ok` stored.
pub struct AsResult;

impl<T: Storable> ReturnKind<T> for AsPlain {
    type Value = T;
    #[inline]
    fn split(r: T) -> Result<T, T> {
        Ok(r)
    }
    #[inline]
    fn join(v: T) -> T {
        v
    }
}

impl<T: Storable> ReturnKind<Option<T>> for AsOption {
    type Value = Option<T>;
    #[inline]
    fn split(r: Option<T>) -> Result<Option<T>, Option<T>> {
        Ok(r)
    }
    #[inline]
    fn join(v: Option<T>) -> Option<T> {
        v
    }
    fn storable(v: &Option<T>, cache_none: bool) -> bool {
        cache_none || v.is_some()
    }
}

impl<T: Storable, E> ReturnKind<Result<T, E>> for AsResult {
    type Value = T;
    #[inline]
    fn split(r: Result<T, E>) -> Result<T, Result<T, E>> {
        match r {
            Ok(v) => Ok(v),
            Err(e) => Err(Err(e)),
        }
    }
    #[inline]
    fn join(v: T) -> Result<T, E> {
        Ok(v)
    }
    fn succeeded(r: &Result<T, E>) -> bool {
        r.is_ok()
    }
}
