//! Compiles `#[cached]` and `#[invalidate]` on the shapes of functions they
//! support, checks the generated futures are `Send`, and runs each once or
//! twice to see the wiring (hits skip the body, invalidation reruns it).
//! `deny(warnings)`: the expansions must not warn in user code.
#![deny(warnings)]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use cache_runtime::{cached, invalidate, Cache};
use serde::{Deserialize, Serialize};

fn assert_send<F: Send>(_: F) {}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
}

struct Params {
    org: String,
}

static GET_USER_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Free function: template key with a field path, tags, ttl, `?` and `return`.
#[cached(ttl = "10m", key = "user:{id}:{p.org}", tags = ["user:{id}", "org:{p.org}"])]
pub(crate) async fn get_user(id: u64, p: &Params) -> Result<User, String> {
    GET_USER_RUNS.fetch_add(1, SeqCst);
    if id == 0 {
        return Err("no user 0".to_owned());
    }
    let n: u64 = format!("{id}").parse::<u64>().map_err(|e| e.to_string())?;
    Ok(User {
        id: n,
        name: format!("{}/{n}", p.org),
    })
}

/// Invalidates what `get_user` stored under `user:{id}`.
#[invalidate(tags = ["user:{id}"])]
async fn rename_user(id: u64, name: String) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".to_owned());
    }
    let _ = id;
    Ok(())
}

#[derive(Clone)]
struct Repo {
    prefix: String,
    runs: Arc<AtomicUsize>,
    cache: Cache,
}

mod helpers {
    pub fn double(x: u64) -> u64 {
        x * 2
    }
}

impl Repo {
    fn base(&self) -> u64 {
        self.prefix.len() as u64
    }

    /// `&self` method in refresh mode with a `&str` parameter; the body uses
    /// `self` in expressions, in macros and `self::` paths.
    #[cached(ttl = "100ms", stale = "1m", cache = self.cache)]
    async fn count(&self, kind: &str) -> u64 {
        self.runs.fetch_add(1, SeqCst);
        let label = format!("{}{}", self.prefix, kind);
        let _ = self::helpers::double(0);
        tokio::task::yield_now().await;
        self.base() + label.len() as u64 + self.runs.load(SeqCst) as u64 * 1000
    }

    /// `mut` parameters in refresh mode, `Arc<Self>` receiver, `Option` return.
    #[cached(ttl = "1m", refresh_ahead = 1.0, cache_none = false, cache = self.cache)]
    async fn bump(self: Arc<Self>, mut x: u64, mut tags: Vec<String>) -> Option<u64> {
        x += 1;
        tags.push("x".to_owned());
        Some(x + tags.len() as u64 + self.base())
    }

    /// Template using `{self.prefix}`; non-refresh mode with `&mut self`.
    #[cached(ttl = "1m", key = "repo:{self.prefix}:{n}", cache = self.cache)]
    async fn touch(&mut self, mut n: u32) -> u32 {
        n += 1;
        self.prefix.push('!');
        n
    }
}

trait Store {
    async fn load(&self, id: u64) -> Option<u64>;
}

struct MemStore {
    cache: Cache,
    runs: AtomicUsize,
}

impl Store for MemStore {
    /// Trait impl method, default key (hashes `Self`'s type name and `id`).
    #[cached(ttl = "1m", lock = "local", cache = &self.cache, version = 2)]
    async fn load(&self, id: u64) -> Option<u64> {
        self.runs.fetch_add(1, SeqCst);
        (id & 1 == 0).then_some(id * 10)
    }
}

static GENERIC_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Generic function: the type parameter is part of the default key.
#[cached(ttl = "1m", name = "smoke::generic")]
async fn generic<T: Serialize + Send + Sync>(x: T) -> u64 {
    GENERIC_RUNS.fetch_add(1, SeqCst);
    let _ = &x;
    std::mem::size_of::<T>() as u64
}

/// Where clauses and lifetimes are kept.
#[cached(ttl = "1m", stale = "1m")]
async fn generic_where<'a, T>(x: T, label: &'a str) -> String
where
    T: Serialize + Clone + Send + Sync + std::fmt::Display + 'static,
{
    format!("{label}{x}")
}

static PARAM_CACHE_RUNS: AtomicUsize = AtomicUsize::new(0);

/// `cache = param`: the body may still move the parameter; it is not in the key.
#[cached(ttl = "1m", cache = cache)]
async fn with_cache(cache: Cache, id: u64) -> u64 {
    PARAM_CACHE_RUNS.fetch_add(1, SeqCst);
    drop(cache);
    id + 1
}

static LOCAL: LazyLock<Cache> = LazyLock::new(|| Cache::memory(100));

struct Conn;

static SKIP_RUNS: AtomicUsize = AtomicUsize::new(0);

/// `cache = &*STATIC`, `skip` of a non-`Serialize` parameter, `()` return.
#[cached(ttl = "1m", cache = &*LOCAL, skip(conn), lock = "none")]
async fn with_skip(conn: &Conn, id: u64) {
    let _ = (conn, id);
    SKIP_RUNS.fetch_add(1, SeqCst);
}

/// Const generic parameters are part of the default key.
#[cached(ttl = "1m", fail_safe = "1h")]
async fn const_generic<const N: usize>() -> usize {
    N
}

/// `profile` without `stale`: refreshes on since the arguments can be copied.
#[cached(profile = "missing", ttl = 60)]
async fn profiled(id: u64, name: &str) -> String {
    format!("{id}{name}")
}

/// `profile` with a `&mut` parameter: refreshes silently off.
#[cached(profile = "missing", ttl = 60, skip(out))]
async fn profiled_mut(out: &mut Vec<u8>, id: u64) -> u64 {
    out.push(1);
    id
}

#[test]
fn futures_are_send() {
    let p = Params { org: "o".into() };
    assert_send(get_user(1, &p));
    assert_send(rename_user(1, "n".into()));
    let repo = Arc::new(Repo {
        prefix: "p".into(),
        runs: Arc::default(),
        cache: Cache::memory(100),
    });
    assert_send(repo.count("k"));
    assert_send(repo.clone().bump(1, Vec::new()));
    let mut owned = (*repo).clone();
    assert_send(owned.touch(1));
    let store = MemStore {
        cache: Cache::memory(10),
        runs: AtomicUsize::new(0),
    };
    assert_send(store.load(1));
    assert_send(generic(String::from("x")));
    assert_send(generic_where(1u8, "x"));
    assert_send(with_cache(Cache::memory(10), 1));
    assert_send(with_skip(&Conn, 1));
    assert_send(const_generic::<3>());
    assert_send(profiled(1, "x"));
    let mut out = Vec::new();
    assert_send(profiled_mut(&mut out, 1));
}

#[tokio::test]
async fn free_fn_and_invalidate() {
    let p = Params { org: "acme".into() };
    let before = GET_USER_RUNS.load(SeqCst);
    let a = get_user(7, &p).await;
    let b = get_user(7, &p).await;
    assert_eq!(a, b);
    assert_eq!(a.as_ref().map(|u| u.name.as_str()), Ok("acme/7"));
    assert_eq!(GET_USER_RUNS.load(SeqCst), before + 1);
    // Errors are not stored.
    assert!(get_user(0, &p).await.is_err());
    assert!(get_user(0, &p).await.is_err());
    assert_eq!(GET_USER_RUNS.load(SeqCst), before + 3);
    // A failed invalidating call invalidates nothing; a successful one does.
    assert!(rename_user(7, String::new()).await.is_err());
    get_user(7, &p).await.ok();
    assert_eq!(GET_USER_RUNS.load(SeqCst), before + 3);
    rename_user(7, "x".into()).await.ok();
    get_user(7, &p).await.ok();
    assert_eq!(GET_USER_RUNS.load(SeqCst), before + 4);
}

#[tokio::test]
async fn methods() {
    let repo = Arc::new(Repo {
        prefix: "ab".into(),
        runs: Arc::default(),
        cache: Cache::memory(100),
    });
    let first = repo.count("xyz").await;
    assert_eq!(first, 2 + 5 + 1000);
    assert_eq!(repo.count("xyz").await, first);
    assert_eq!(repo.runs.load(SeqCst), 1);
    // Past the TTL the stale value is served while a refresh runs.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(repo.count("xyz").await, first);
    let mut refreshed = first;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        refreshed = repo.count("xyz").await;
        if refreshed != first {
            break;
        }
    }
    assert_eq!(refreshed, 2 + 5 + 2000, "the background refresh ran");

    assert_eq!(
        repo.clone().bump(1, vec!["a".into()]).await,
        Some(2 + 2 + 2)
    );

    let mut owned = (*repo).clone();
    assert_eq!(owned.touch(4).await, 5);
    assert_eq!(owned.prefix, "ab!");
}

#[tokio::test]
async fn trait_impl_method() {
    let store = MemStore {
        cache: Cache::memory(10),
        runs: AtomicUsize::new(0),
    };
    assert_eq!(store.load(2).await, Some(20));
    assert_eq!(store.load(2).await, Some(20));
    assert_eq!(store.load(3).await, None);
    assert_eq!(store.runs.load(SeqCst), 2);
}

#[tokio::test]
async fn generic_and_cache_args() {
    let before = GENERIC_RUNS.load(SeqCst);
    assert_eq!(generic(1u8).await, 1);
    assert_eq!(generic(1u64).await, 8);
    assert_eq!(generic(1u8).await, 1);
    assert_eq!(GENERIC_RUNS.load(SeqCst), before + 2);
    assert_eq!(generic_where(5u8, "n").await, "n5");

    let cache = Cache::memory(10);
    assert_eq!(with_cache(cache.clone(), 1).await, 2);
    assert_eq!(with_cache(cache.clone(), 1).await, 2);
    assert_eq!(PARAM_CACHE_RUNS.load(SeqCst), 1);

    with_skip(&Conn, 1).await;
    with_skip(&Conn, 1).await;
    assert_eq!(SKIP_RUNS.load(SeqCst), 1);

    assert_eq!(const_generic::<3>().await, 3);
    assert_eq!(const_generic::<4>().await, 4);

    assert_eq!(profiled(1, "a").await, "1a");
    let mut out = Vec::new();
    assert_eq!(profiled_mut(&mut out, 5).await, 5);
}
