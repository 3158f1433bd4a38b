//! The return kinds, function shapes, cache selection and `Send` of `#[cached]`.

use std::sync::{Arc, LazyLock};

use cache_runtime::{cached, Cache};
use integration_tests::{assert_send, Calls};
use serde::{Deserialize, Serialize};

static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::memory(1000));

static PLAIN: Calls = Calls::new();
#[cached(cache = &*CACHE, ttl = "1h")]
async fn plain(x: u64) -> String {
    PLAIN.hit();
    format!("value {x}")
}

#[tokio::test]
async fn plain_values_are_stored_per_argument() {
    assert_eq!(plain(1).await, "value 1");
    assert_eq!(plain(1).await, "value 1");
    assert_eq!(plain(2).await, "value 2");
    assert_eq!(PLAIN.get(), 2);
}

static RESULTS: Calls = Calls::new();
#[cached(cache = &*CACHE)]
async fn result_fn(fail: bool) -> Result<u32, String> {
    let n = RESULTS.hit();
    if fail {
        return Err(format!("failure {n}"));
    }
    let parsed: u32 = "7".parse().map_err(|_| "parse".to_string())?;
    Ok(parsed)
}

#[tokio::test]
async fn result_stores_only_ok() {
    assert_eq!(result_fn(true).await, Err("failure 0".into()));
    assert_eq!(result_fn(true).await, Err("failure 1".into()));
    assert_eq!(result_fn(false).await, Ok(7));
    assert_eq!(result_fn(false).await, Ok(7));
    assert_eq!(RESULTS.get(), 3);
}

static OPTS: Calls = Calls::new();
#[cached(cache = &*CACHE)]
async fn option_stored(x: u8) -> Option<u8> {
    OPTS.hit();
    (x > 0).then_some(x)
}

static OPTS_NO_NONE: Calls = Calls::new();
#[cached(cache = &*CACHE, cache_none = false)]
async fn option_not_stored(x: u8) -> Option<u8> {
    OPTS_NO_NONE.hit();
    (x > 0).then_some(x)
}

#[tokio::test]
async fn option_none_is_stored_unless_cache_none_false() {
    assert_eq!(option_stored(0).await, None);
    assert_eq!(option_stored(0).await, None);
    assert_eq!(OPTS.get(), 1);

    assert_eq!(option_not_stored(0).await, None);
    assert_eq!(option_not_stored(0).await, None);
    assert_eq!(OPTS_NO_NONE.get(), 2);
    assert_eq!(option_not_stored(3).await, Some(3));
    assert_eq!(option_not_stored(3).await, Some(3));
    assert_eq!(OPTS_NO_NONE.get(), 3);
}

#[derive(Clone)]
struct Repo {
    cache: Cache,
    calls: Arc<Calls>,
    prefix: String,
}

impl Repo {
    /// Doc comments and visibility are kept.
    #[cached(cache = self.cache, key = "repo:{id}")]
    pub async fn name(&self, id: u64) -> String {
        self.calls.hit();
        format!("{}{id}", self.prefix)
    }

    #[cached(cache = self.cache, stale = "1s")]
    async fn with_str(&self, text: &str, n: &u32) -> String {
        self.calls.hit();
        format!("{}{text}{n}", self.prefix)
    }
}

#[tokio::test]
async fn inherent_methods_use_self_fields() {
    let repo = Repo {
        cache: Cache::memory(100),
        calls: Arc::new(Calls::new()),
        prefix: "p".into(),
    };
    assert_eq!(repo.name(1).await, "p1");
    assert_eq!(repo.name(1).await, "p1");
    assert_eq!(repo.with_str("a", &2).await, "pa2");
    assert_eq!(repo.with_str("a", &2).await, "pa2");
    assert_eq!(repo.calls.get(), 2);
    assert_eq!(
        repo.cache.get::<String>("repo:1").await.unwrap(),
        Some("p1".into())
    );
}

trait Lookup {
    async fn lookup(&self, id: u32) -> u32;
}

struct Doubler {
    cache: Cache,
    calls: Calls,
}

impl Lookup for Doubler {
    #[cached(cache = self.cache)]
    async fn lookup(&self, id: u32) -> u32 {
        self.calls.hit();
        id * 2
    }
}

#[tokio::test]
async fn trait_impl_methods_are_cached() {
    let d = Doubler {
        cache: Cache::memory(100),
        calls: Calls::new(),
    };
    assert_eq!(d.lookup(4).await, 8);
    assert_eq!(d.lookup(4).await, 8);
    assert_eq!(d.calls.get(), 1);
}

static GENERIC: Calls = Calls::new();
#[cached(cache = &*CACHE)]
async fn describe<T>(value: T) -> String
where
    T: Serialize + std::fmt::Debug + Send + Sync + Clone,
{
    GENERIC.hit();
    format!("{} {:?}", std::any::type_name::<T>(), value)
}

#[tokio::test]
async fn type_parameters_are_part_of_the_key() {
    // Same encoded argument (the integer 5), different types: different entries.
    assert_eq!(describe(5u32).await, "u32 5");
    assert_eq!(describe(5u64).await, "u64 5");
    assert_eq!(describe(5u32).await, "u32 5");
    assert_eq!(GENERIC.get(), 2);
}

#[tokio::test]
async fn cache_parameter_is_used_and_left_out_of_the_key() {
    let a = Cache::memory(10);
    let b = Cache::memory(10);
    assert_eq!(explicit_cache_param(&a, 1).await, 2);
    assert_eq!(explicit_cache_param(&a, 1).await, 2);
    assert_eq!(EXPLICIT.get(), 1);
    assert_eq!(a.memory_len(), 1);
    assert_eq!(b.memory_len(), 0);
    // The key does not depend on the cache argument: b gets the same key.
    assert_eq!(explicit_cache_param(&b, 1).await, 2);
    assert_eq!(EXPLICIT.get(), 2);
    assert_eq!(a.memory_keys(), b.memory_keys());
}

static EXPLICIT: Calls = Calls::new();
#[cached(cache = cache)]
async fn explicit_cache_param(cache: &Cache, id: u32) -> u32 {
    EXPLICIT.hit();
    id + 1
}

static SKIPPED: Calls = Calls::new();
#[cached(cache = &*CACHE, skip(ctx))]
async fn skipping(ctx: &str, id: u32) -> u32 {
    SKIPPED.hit();
    id + ctx.len() as u32
}

#[tokio::test]
async fn skipped_parameters_do_not_change_the_key() {
    assert_eq!(skipping("a", 1).await, 2);
    assert_eq!(skipping("bbb", 1).await, 2);
    assert_eq!(SKIPPED.get(), 1);
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

static USERS: Calls = Calls::new();
#[cached(cache = &*CACHE, key = "user:{id}:{filter.kind}", ttl = 60)]
async fn user(id: u64, filter: &Filter) -> Result<User, std::io::Error> {
    USERS.hit();
    tokio::task::yield_now().await;
    Ok(User {
        id,
        name: format!("{}-{id}", filter.kind),
    })
}

struct Filter {
    kind: String,
}

#[cached(cache = &*CACHE)]
async fn spawned(x: u64) -> String {
    tokio::task::yield_now().await;
    format!("spawned {x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_futures_are_send() {
    let f = Filter { kind: "k".into() };
    let first = assert_send(user(1, &f)).await.unwrap();
    let handles: Vec<_> = (0..8)
        .map(|_| tokio::spawn(async { spawned(100).await }))
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap(), "spawned 100");
    }
    let repo = Repo {
        cache: Cache::memory(10),
        calls: Arc::new(Calls::new()),
        prefix: String::new(),
    };
    let spawned = tokio::spawn(async move { repo.with_str("x", &1).await });
    assert_eq!(spawned.await.unwrap(), "x1");
    assert_eq!(first.name, "k-1");
    assert_eq!(user(1, &f).await.unwrap(), first);
    assert_eq!(USERS.get(), 1);
}

static ESCAPE: Calls = Calls::new();
#[cached(cache = &*CACHE, key = "pair:{a}:{b}")]
async fn pair(a: &str, b: &str) -> String {
    ESCAPE.hit();
    format!("{a}|{b}")
}

#[tokio::test]
async fn template_values_never_collide() {
    assert_eq!(pair("a:b", "c").await, "a:b|c");
    assert_eq!(pair("a", "b:c").await, "a|b:c");
    assert_eq!(ESCAPE.get(), 2);
}

#[tokio::test]
async fn stats_count_hits_misses_and_loads() {
    let cache = Cache::memory(10);
    #[cached(cache = cache)]
    async fn sq(cache: &Cache, x: u32) -> u32 {
        x * x
    }
    sq(&cache, 3).await;
    sq(&cache, 3).await;
    sq(&cache, 3).await;
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.loads), (2, 1, 1));
}

#[tokio::test]
async fn memory_tier_is_bounded() {
    let cache = Cache::memory(50);
    #[cached(cache = cache)]
    async fn id(cache: &Cache, x: u32) -> u32 {
        x
    }
    for i in 0..500 {
        id(&cache, i).await;
    }
    assert!(cache.memory_len() <= 60, "{}", cache.memory_len());
    assert!(cache.stats().evictions > 0);
}
