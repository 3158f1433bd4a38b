//! The global cache that `#[cached]` uses when no `cache = ..` is given.

use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

use crate::{Cache, Error, Result};

static INSTALLED: OnceLock<Cache> = OnceLock::new();
static FALLBACK: OnceLock<Cache> = OnceLock::new();
/// The cache `global()` returns: one load on every call, instead of checking
/// two `OnceLock`s. Points into `INSTALLED` or `FALLBACK`, which are statics
/// and never dropped; null until either is set.
static CURRENT: AtomicPtr<Cache> = AtomicPtr::new(std::ptr::null_mut());

/// Capacity of the memory cache used before [`install`] is called.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Sets the global cache, once, at start-up. Functions without `cache = ..`
/// use it from then on; before, they use a memory cache of
/// [`DEFAULT_CAPACITY`] entries (the fallback).
///
/// Installing after the fallback was used succeeds, and logs a warning:
/// - every call that starts after `install` returns uses the installed cache;
/// - the fallback's entries are not carried over and never served again (the
///   installed cache starts empty, so those functions load once more);
/// - a call already running keeps the fallback it started with, finishes
///   there (its value is stored in the fallback, not in the installed cache)
///   and returns normally: nothing in flight fails or waits because of
///   `install`. The fallback itself stays alive, unused, for the process.
///
/// A second `install` returns [`Error::AlreadyInstalled`] and changes nothing.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cache_runtime::Error> {
/// let cache = cache_runtime::Cache::builder().namespace("myapp").memory(10_000).build().await?;
/// cache_runtime::install(cache.clone())?;
/// assert!(cache_runtime::install(cache).is_err());
/// # Ok(())
/// # }
/// ```
pub fn install(cache: Cache) -> Result<()> {
    INSTALLED.set(cache).map_err(|_| Error::AlreadyInstalled)?;
    if FALLBACK.get().is_some() {
        tracing::warn!(
            "cache_runtime::install after #[cached] functions already used the memory-only \
             fallback cache: calls from now on use the installed cache; the fallback's \
             entries are not carried over; call install at start-up, before the first call"
        );
    }
    if let Some(installed) = INSTALLED.get() {
        CURRENT.store(std::ptr::from_ref(installed).cast_mut(), Ordering::Release);
    }
    Ok(())
}

/// The global cache.
#[inline]
pub fn global() -> &'static Cache {
    let current = CURRENT.load(Ordering::Acquire);
    // SAFETY: a non-null `CURRENT` points into `INSTALLED` or `FALLBACK`:
    // statics, set once and never dropped, so valid for `'static`.
    match unsafe { current.as_ref() } {
        Some(cache) => cache,
        None => first_use(),
    }
}

#[cold]
fn first_use() -> &'static Cache {
    let cache = match INSTALLED.get() {
        Some(cache) => cache,
        None => FALLBACK.get_or_init(|| Cache::memory(DEFAULT_CAPACITY)),
    };
    // A racing `install` may have stored its cache already; keep that one.
    let _ = CURRENT.compare_exchange(
        std::ptr::null_mut(),
        std::ptr::from_ref(cache).cast_mut(),
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    // SAFETY: as in `global`.
    unsafe { CURRENT.load(Ordering::Acquire).as_ref() }.unwrap_or(cache)
}
