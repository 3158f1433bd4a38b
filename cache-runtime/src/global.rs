//! The global cache that `#[cached]` uses when no `cache = ..` is given.

use std::sync::OnceLock;

use crate::{Cache, Error, Result};

static INSTALLED: OnceLock<Cache> = OnceLock::new();
static FALLBACK: OnceLock<Cache> = OnceLock::new();

/// Capacity of the memory cache used before [`install`] is called.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Sets the global cache, once, at start-up. Functions without `cache = ..`
/// use it from then on; before, they use a memory cache of
/// [`DEFAULT_CAPACITY`] entries.
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
    INSTALLED.set(cache).map_err(|_| Error::AlreadyInstalled)
}

/// The global cache.
#[inline]
pub fn global() -> &'static Cache {
    match INSTALLED.get() {
        Some(cache) => cache,
        None => FALLBACK.get_or_init(|| Cache::memory(DEFAULT_CAPACITY)),
    }
}
