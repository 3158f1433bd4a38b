//! How a function's return type maps onto what is stored: `Result` stores only
//! `Ok`, `Option` stores `Some` (and `None` unless `cache_none = false`, also
//! inside a `Result<Option<T>, E>`), any other type is stored as it is. The macro picks the kind from the return type.

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
/// Such a change changes the type's shape: entries written before it are
/// misses after it (counted in
/// [`Stats::schema_mismatches`](crate::Stats::schema_mismatches)), rewritten
/// by their next load (tested in `tests/huge_values.rs`). Any change to a
/// stored type's fields, their names or types, or its enum variants does
/// the same: an entry is read only as the shape it was written for. The HTTP
/// layer stores bodies and header values as byte strings. An entry larger than
/// [`CacheBuilder::max_entry_bytes`](crate::CacheBuilder::max_entry_bytes)
/// is not written to the remote tier.
/// # Panics
///
/// The impls of these traits are the stored type's own code, and the cache
/// runs them on the caller's behalf. What a panic in each of them does:
///
/// * `Deserialize`, on bytes read back from the remote tier: contained. Those
///   bytes are untrusted input (another build's entry, a hand-written key),
///   so the read is a miss, counted as a corrupt entry
///   ([`Stats::corrupt_entries`](crate::Stats::corrupt_entries) and
///   `decode_errors`, [`FaultKind::Corrupt`](crate::events::FaultKind::Corrupt)),
///   logged at `warn`; the function runs, and its value overwrites the entry.
/// * `Serialize`, while the value is written to the remote tier: contained.
///   The remote write is skipped (a store error:
///   [`Stats::store_errors`](crate::Stats::store_errors), one `warn` line),
///   the value is still kept in the memory tier, and the caller, and every
///   caller waiting for the same load, gets it; the function is not run
///   again for them. In a memory tier bounded in bytes, where the value is
///   also serialized to weigh it, a panic there leaves a lower estimate.
/// * `Clone`, which the cache calls to hand a caller its own copy (a memory
///   hit, a value shared with a load's waiters, the copy kept in memory):
///   not contained. It is the caller's value being copied for the caller, so
///   the panic unwinds into that caller, as a panic in its own code would.
///   Nothing is left held: the memory tier's lock is released and its entry
///   kept (later hits are served as before), and a load whose value panics
///   on its clone releases its waiters (one of them runs the function again)
///   and its distributed lock. A panic raised by the cached function itself
///   is a failed load (see `fail_safe`), not one of these.
///
/// The `std` panic hook still runs for a contained panic (by default it
/// prints the message to stderr): the cache does not replace the
/// application's hook.
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
/// `Result<Option<T>, E>` (a lookup that may find nothing): only `Ok` stored,
/// and `Ok(None)` only unless `cache_none = false`.
pub struct AsResultOption;

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

impl<T: Storable, E> ReturnKind<Result<Option<T>, E>> for AsResultOption {
    type Value = Option<T>;
    #[inline]
    fn split(r: Result<Option<T>, E>) -> Result<Option<T>, Result<Option<T>, E>> {
        match r {
            Ok(v) => Ok(v),
            Err(e) => Err(Err(e)),
        }
    }
    #[inline]
    fn join(v: Option<T>) -> Result<Option<T>, E> {
        Ok(v)
    }
    fn storable(v: &Option<T>, cache_none: bool) -> bool {
        cache_none || v.is_some()
    }
    fn succeeded(r: &Result<Option<T>, E>) -> bool {
        r.is_ok()
    }
}
