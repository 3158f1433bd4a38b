//! The surface the macros generate code against. Not public API: names here may
//! change in any release. Generated code refers only to `::cache_runtime::__private`.
//!
//! Shape of the code `#[cached]` generates (see `cache-macros`):
//! ```text
//! static __SITE: Site = Site { name: .., ttl: .., ..Site::DEFAULT };
//! let __cache: &Cache = global();             // or cache_ref(&(expr)) (cloned)
//! let __key: Key = { KeyHasher / Template .. };
//! // The return type's check (see `checks`): one error at the return type
//! // when it cannot be stored, and the kind the calls below are made with.
//! let __mode = Probe::<AsResult, R>::new().mode();
//! if let Some(r) = hit_in::<_, R>(&__mode, __cache, &__SITE, &__key) { return r; }
//! let step = match begin_in::<_, R, _>(&__mode, __cache, &__SITE, __key, || vec![/* tags */]) {
//!     Begun::Ready(step) => step,
//!     Begun::Miss(miss) => miss.await,
//! };
//! match step {
//!     Step::Hit(r) => r,
//!     Step::Refresh(r, refresher) => { spawn_in::<_, R, _>(&__mode, refresher, owned_future); r }
//!     Step::Load(ticket) => ticket.load(output::<R, _>(async move { body })).await,
//! }
//! ```

use std::future::Future;
use std::time::Duration;

mod checks;

pub use checks::{
    begin_in, hit_in, spawn_in, AsCache, Cacheable, Mode, NotStorable, Probe, Unstorable,
};

pub use crate::flow::plan::number::PlanCache;

pub use crate::flow::{begin, hit, invalidate_after, Begin, Begun, Refresher, Step, Ticket};
pub use crate::key::{
    Key, KeyArg, KeyHasher, Placeholder, RenderDirect, RenderDisplay, Template, TemplateValue,
};
pub use crate::outcome::{AsOption, AsPlain, AsResult, AsResultOption, ReturnKind};
pub use crate::owned::{owned_arg, OwnedArg};
use crate::Cache;

/// Stampede protection asked for on the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// `"distributed"` where the cache has a remote tier, else `"local"`.
    Default,
    /// One load per key per process.
    Local,
    /// One load per key across processes sharing the remote tier.
    Distributed,
    /// No coalescing: every miss runs the function.
    None,
}

/// What `#[cached(...)]` said about one function, fixed at compile time.
#[derive(Debug)]
pub struct Site {
    /// The function's identity in default keys (`name = ".."` or `module::fn`).
    pub name: &'static str,
    /// `version = N`.
    pub version: Option<u64>,
    /// `ttl`.
    pub ttl: Option<Duration>,
    /// `stale`.
    pub stale: Option<Duration>,
    /// `fail_safe`.
    pub fail_safe: Option<Duration>,
    /// `refresh_ahead` (XFetch beta).
    pub refresh_ahead: Option<f64>,
    /// `profile = ".."`.
    pub profile: Option<&'static str>,
    /// `lock = ".."`.
    pub lock: LockMode,
    /// `cache_none`.
    pub cache_none: bool,
    /// Whether the generated code can build a background refresh (owned inputs).
    pub refreshable: bool,
    /// The function's number in each cache's table of resolved options, so
    /// hits through any cache skip resolving them.
    pub plan: PlanCache,
}

impl Site {
    /// Every option unset; used as `..Site::DEFAULT` by generated code.
    // Interior mutability is the point: each static built from this constant
    // gets its own empty `PlanCache`.
    #[allow(clippy::declare_interior_mutable_const)]
    pub const DEFAULT: Site = Site {
        name: "",
        version: None,
        ttl: None,
        stale: None,
        fail_safe: None,
        refresh_ahead: None,
        profile: None,
        lock: LockMode::Default,
        cache_none: true,
        refreshable: false,
        plan: PlanCache::new(),
    };
}

/// The global cache: the one given to [`crate::install`], else a memory default.
#[inline]
pub fn global() -> &'static Cache {
    crate::global::global()
}

/// Borrows a `Cache` out of whatever the `cache = EXPR` argument evaluates to:
/// `Cache`, `&Cache`, `Arc<Cache>`, ... (see [`AsCache`]).
#[inline]
pub fn cache_ref<C: AsCache + ?Sized>(cache: &C) -> &Cache {
    cache.as_cache()
}

/// The per-function get counters (one block of about 2 KiB per function
/// and cache) alive in this process: a cache frees its own when its last
/// handle is dropped (or, with the `metrics` feature, at its drain's last
/// report, within half a second). For tests.
#[doc(hidden)]
pub fn live_site_counts() -> usize {
    crate::stats::live_site_counts()
}

/// Pins the output type of the body's async block so `?` and `return` infer.
#[inline(always)]
pub fn output<R, F: Future<Output = R>>(future: F) -> F {
    future
}

/// Feeds one type into a key's identity (generic functions, `Self`).
#[inline]
pub fn type_name<T: ?Sized>() -> &'static str {
    std::any::type_name::<T>()
}
