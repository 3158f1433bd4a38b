//! Stored types whose own code panics, against a real Redis.
//!
//! * A `Deserialize` that panics on bytes read back from the store: the
//!   read is a miss counted as a corrupt entry, the function runs, and the
//!   caller gets its value (storage-only and write-through, through
//!   `#[cached]` and the manual `get`, `get_many`, `get_or_load`).
//! * A `Serialize` that panics while the value is stored: the store is
//!   skipped (a store error), the caller and every waiter of the same load
//!   get the value, and the function runs once.
//! * A `Clone` that panics on a memory hit: the caller's own code, so the
//!   panic is the caller's; nothing is left held, and the cache goes on
//!   serving (the `# Panics` section of `Storable`'s docs says so).
//!
//! Each attempt runs in its own task, so a panic that reaches the caller is
//! counted rather than ending the test.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use cache_runtime::{cached, Cache, Policy};
use integration_tests::redis_harness::RedisServer;
use integration_tests::{storage_only, within, write_through, Calls};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::Semaphore;

/// Every wait of these tests is bounded: a stuck flight fails, not hangs.
const LIMIT: Duration = Duration::from_secs(10);

/// How many attempts (calls, or loads with waiters) each case makes.
const ATTEMPTS: usize = 6;

/// Runs `call` in its own task: `Some(value)`, or `None` if it panicked.
async fn attempt<T: Send + 'static>(call: impl Future<Output = T> + Send + 'static) -> Option<T> {
    match tokio::time::timeout(LIMIT, tokio::spawn(call)).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(error)) if error.is_panic() => None,
        Ok(Err(error)) => panic!("task failed: {error}"),
        Err(_) => panic!("a call did not finish within {LIMIT:?}: something is stuck"),
    }
}

// ---------------------------------------------------------------------------
// A `Deserialize` that panics

/// Serializes as a plain struct; deserializing it always panics.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct ReadBomb {
    id: u64,
}

impl<'de> Deserialize<'de> for ReadBomb {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("ReadBomb's Deserialize panics")
    }
}

#[cached(cache = cache, key = "read-bomb:{id}", ttl = "1h")]
async fn read_bomb(cache: &Cache, id: u64) -> ReadBomb {
    ReadBomb { id }
}

/// Storage-only: every call reads the entry back from Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_deserialize_is_a_corrupt_miss_storage_only() {
    let server = RedisServer::start();
    let cache = storage_only(&server, "rb-so").await;
    // Stored by the first load (nothing to read back yet).
    assert_eq!(read_bomb(&cache, 1).await, ReadBomb { id: 1 });
    assert_eq!(cache.stats().loads, 1);

    let mut panics = 0;
    for _ in 0..ATTEMPTS {
        let c = cache.clone();
        match attempt(async move { read_bomb(&c, 1).await }).await {
            Some(got) => assert_eq!(got, ReadBomb { id: 1 }),
            None => panics += 1,
        }
    }
    let stats = cache.stats();
    eprintln!("storage-only #[cached]: {panics}/{ATTEMPTS} calls panicked; {stats:?}");
    assert_eq!(panics, 0, "a panicking Deserialize reached the caller");
    assert_eq!(stats.loads, 1 + ATTEMPTS as u64, "each read was a miss");
    // The call reads Redis again once it holds the load's lock: met once or twice.
    assert!(stats.corrupt_entries >= ATTEMPTS as u64, "{stats:?}");
    assert_eq!(stats.decode_errors, stats.corrupt_entries, "{stats:?}");
}

/// Write-through: a second cache (as another process would) finds the entry
/// in Redis, not in its memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_deserialize_is_a_corrupt_miss_write_through() {
    let server = RedisServer::start();
    let writer = write_through(&server, "rb-wt").await;
    let reader = write_through(&server, "rb-wt").await;

    let mut panics = 0;
    for id in 0..ATTEMPTS as u64 {
        assert_eq!(read_bomb(&writer, id).await, ReadBomb { id });
        let c = reader.clone();
        match attempt(async move { read_bomb(&c, id).await }).await {
            Some(got) => assert_eq!(got, ReadBomb { id }),
            None => panics += 1,
        }
    }
    let stats = reader.stats();
    eprintln!("write-through #[cached]: {panics}/{ATTEMPTS} calls panicked; {stats:?}");
    assert_eq!(panics, 0, "a panicking Deserialize reached the caller");
    assert_eq!(stats.loads, ATTEMPTS as u64, "each read was a miss");
    assert!(stats.corrupt_entries >= ATTEMPTS as u64, "{stats:?}");
    assert_eq!(stats.decode_errors, stats.corrupt_entries, "{stats:?}");
    // The loaded value is now in the reader's memory: a plain hit.
    assert_eq!(read_bomb(&reader, 0).await, ReadBomb { id: 0 });
    assert_eq!(reader.stats().loads, ATTEMPTS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_deserialize_is_a_corrupt_miss_manual_storage_only() {
    let server = RedisServer::start();
    let cache = storage_only(&server, "rbm-so").await;
    manual_reads_miss(&cache, &cache, "storage-only").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_deserialize_is_a_corrupt_miss_manual_write_through() {
    let server = RedisServer::start();
    let writer = write_through(&server, "rbm-wt").await;
    let reader = write_through(&server, "rbm-wt").await;
    manual_reads_miss(&writer, &reader, "write-through").await;
}

/// What `writer` stores `reader` reads back from Redis: `get` and
/// `get_many` miss, `get_or_load` loads; each read is a corrupt entry.
/// A fresh key per read, so that `reader`'s memory never holds it.
async fn manual_reads_miss(writer: &Cache, reader: &Cache, mode: &str) {
    let key = |what: &str, i: usize| format!("{what}:{i}");
    let mut panics = [0; 3];
    for i in 0..ATTEMPTS {
        for what in ["get", "many", "load"] {
            writer.set(&key(what, i), ReadBomb { id: 2 }).await.unwrap();
        }
        let (c, k) = (reader.clone(), key("get", i));
        match attempt(async move { c.get::<ReadBomb>(&k).await }).await {
            Some(got) => assert_eq!(got.unwrap(), None),
            None => panics[0] += 1,
        }
        let (c, k) = (reader.clone(), key("many", i));
        match attempt(async move { c.get_many::<ReadBomb, _>(&[k.as_str(), "none"]).await }).await {
            Some(got) => assert_eq!(got.unwrap(), vec![None, None]),
            None => panics[1] += 1,
        }
        let (c, k) = (reader.clone(), key("load", i));
        let load = async move {
            c.get_or_load(&k, &Policy::new(), ["t"], || async {
                Ok::<_, String>(ReadBomb { id: 3 })
            })
            .await
        };
        match attempt(load).await {
            Some(got) => assert_eq!(got, Ok(ReadBomb { id: 3 })),
            None => panics[2] += 1,
        }
    }
    let stats = reader.stats();
    eprintln!(
        "{mode}: get {}/{ATTEMPTS}, get_many {}/{ATTEMPTS}, get_or_load {}/{ATTEMPTS} \
         calls panicked; {stats:?}",
        panics[0], panics[1], panics[2]
    );
    assert_eq!(panics, [0; 3], "a panicking Deserialize reached a caller");
    // `get_or_load` reads Redis again under the load's lock: once or twice.
    assert!(stats.corrupt_entries >= 3 * ATTEMPTS as u64, "{stats:?}");
    assert_eq!(stats.decode_errors, stats.corrupt_entries, "{stats:?}");
}

// ---------------------------------------------------------------------------
// A `Serialize` that panics

/// Serializing it always panics (so it never reaches Redis).
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct WriteBomb {
    id: u64,
}

impl Serialize for WriteBomb {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("WriteBomb's Serialize panics")
    }
}

static WRITE_RUNS: Calls = Calls::new();
/// Held shut while the waiters join the load.
static WRITE_GATE: Semaphore = Semaphore::const_new(0);
/// The two tests below share the function's counter and gate: one at a time.
static WRITE_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[cached(cache = cache, key = "write-bomb:{id}", ttl = "1h")]
async fn write_bomb(cache: &Cache, id: u64) -> WriteBomb {
    WRITE_RUNS.hit();
    WRITE_GATE.acquire().await.expect("gate open").forget();
    WriteBomb { id }
}

/// One load of `id` with `waiters` callers joining it: how many of the
/// `1 + waiters` callers panicked, and how many times the function ran.
async fn load_with_waiters(cache: &Cache, id: u64, waiters: usize) -> (usize, usize) {
    let runs = WRITE_RUNS.get();
    let coalesced = cache.stats().coalesced;
    let c = cache.clone();
    let leader = tokio::spawn(async move { write_bomb(&c, id).await });
    assert!(
        within!(LIMIT, WRITE_RUNS.get() == runs + 1).is_some(),
        "the leader did not start"
    );
    let joined: Vec<_> = (0..waiters)
        .map(|_| {
            let c = cache.clone();
            tokio::spawn(async move { write_bomb(&c, id).await })
        })
        .collect();
    assert!(
        within!(LIMIT, cache.stats().coalesced == coalesced + waiters as u64).is_some(),
        "the waiters did not join the load: {:?}",
        cache.stats()
    );
    // Enough permits for every run, the waiters' reruns included.
    WRITE_GATE.add_permits(1 + waiters);
    let mut panics = 0;
    for task in std::iter::once(leader).chain(joined) {
        match tokio::time::timeout(LIMIT, task)
            .await
            .expect("a caller is stuck")
        {
            Ok(got) => assert_eq!(got, WriteBomb { id }),
            Err(error) if error.is_panic() => panics += 1,
            Err(error) => panic!("task failed: {error}"),
        }
    }
    // Permits the runs did not take would let the next leader through early.
    WRITE_GATE.forget_permits(usize::MAX);
    (panics, WRITE_RUNS.get() - runs)
}

async fn a_panicking_serialize_skips_the_store(cache: &Cache, mode: &str, base: u64) {
    const WAITERS: usize = 4;
    let mut panics = 0;
    let mut runs = 0;
    for i in 0..ATTEMPTS as u64 {
        let (p, r) = load_with_waiters(cache, base + i, WAITERS).await;
        panics += p;
        runs += r;
    }
    let callers = ATTEMPTS * (1 + WAITERS);
    let stats = cache.stats();
    eprintln!(
        "{mode}: {panics}/{callers} callers panicked; the function ran {runs} times \
         for {ATTEMPTS} loads; {stats:?}"
    );
    assert_eq!(panics, 0, "a panicking Serialize reached a caller");
    assert_eq!(runs, ATTEMPTS, "a waiter ran the function again");
    assert!(stats.store_errors >= ATTEMPTS as u64, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_serialize_skips_the_store_storage_only() {
    let _one_at_a_time = WRITE_TESTS.lock().await;
    let server = RedisServer::start();
    let cache = storage_only(&server, "wb-so").await;
    a_panicking_serialize_skips_the_store(&cache, "storage-only", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_serialize_skips_the_store_write_through() {
    let _one_at_a_time = WRITE_TESTS.lock().await;
    let server = RedisServer::start();
    let cache = write_through(&server, "wb-wt").await;
    a_panicking_serialize_skips_the_store(&cache, "write-through", 100).await;
    // Memory holds typed values, no serialization: the value is kept there.
    let runs = WRITE_RUNS.get();
    assert_eq!(write_bomb(&cache, 100).await, WriteBomb { id: 100 });
    assert_eq!(WRITE_RUNS.get(), runs, "a memory hit");
}

/// The manual writes: `set` and `set_many` return `Ok` (the value just does
/// not reach Redis: a store error each), and nothing panics. What memory
/// keeps is `kept` (write-through) or nothing (storage-only).
async fn manual_writes_skip_the_store(cache: &Cache, mode: &str, kept: bool) {
    let mut panics = [0; 2];
    let before = cache.stats().store_errors;
    for i in 0..ATTEMPTS as u64 {
        let c = cache.clone();
        match attempt(async move { c.set(&format!("set:{i}"), WriteBomb { id: i }).await }).await {
            Some(set) => assert!(set.is_ok(), "{set:?}"),
            None => panics[0] += 1,
        }
        let c = cache.clone();
        let set_many = async move {
            let items = [(format!("many:{i}"), WriteBomb { id: i })];
            c.set_many(items, &Policy::new()).await
        };
        match attempt(set_many).await {
            Some(set) => assert!(set.is_ok(), "{set:?}"),
            None => panics[1] += 1,
        }
    }
    let stats = cache.stats();
    eprintln!(
        "{mode}: set {}/{ATTEMPTS}, set_many {}/{ATTEMPTS} calls panicked; {stats:?}",
        panics[0], panics[1]
    );
    assert_eq!(panics, [0; 2], "a panicking Serialize reached a caller");
    assert_eq!(stats.store_errors, before + 2 * ATTEMPTS as u64);
    let kept = kept.then_some(WriteBomb { id: 0 });
    assert_eq!(cache.get::<WriteBomb>("set:0").await.unwrap(), kept);
    assert_eq!(cache.get::<WriteBomb>("many:0").await.unwrap(), kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_serialize_in_set_skips_the_store_storage_only() {
    let server = RedisServer::start();
    let cache = storage_only(&server, "wbm-so").await;
    manual_writes_skip_the_store(&cache, "storage-only", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_serialize_in_set_skips_the_store_write_through() {
    let server = RedisServer::start();
    let cache = write_through(&server, "wbm-wt").await;
    manual_writes_skip_the_store(&cache, "write-through", true).await;
}

// ---------------------------------------------------------------------------
// A `Clone` that panics

/// The ids whose values panic when cloned (one per test: tests run at once).
static ARMED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

fn armed(id: u64) -> bool {
    ARMED.lock().unwrap().contains(&id)
}

fn arm(id: u64, on: bool) {
    let mut armed = ARMED.lock().unwrap();
    armed.retain(|&a| a != id);
    if on {
        armed.push(id);
    }
}

/// Cloning it panics when it carries a fuse and its id is armed.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct CloneBomb {
    id: u64,
    fuse: bool,
}

impl Clone for CloneBomb {
    fn clone(&self) -> Self {
        if self.fuse && armed(self.id) {
            panic!("CloneBomb's Clone panics");
        }
        CloneBomb {
            id: self.id,
            fuse: self.fuse,
        }
    }
}

static CLONE_RUNS: Calls = Calls::new();
static CLONE_GATE: Semaphore = Semaphore::const_new(0);
/// The two tests below share the function's counter: one at a time.
static CLONE_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Ids loaded once already.
static LOADED: Mutex<Vec<u64>> = Mutex::new(Vec::new());
/// Ids whose next load waits at `CLONE_GATE`.
static GATED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Its first run for an id returns a value with a fuse; later ones do not.
#[cached(cache = cache, key = "clone-bomb:{id}", ttl = "1h")]
async fn clone_bomb(cache: &Cache, id: u64) -> CloneBomb {
    CLONE_RUNS.hit();
    let first = {
        let mut loaded = LOADED.lock().unwrap();
        let first = !loaded.contains(&id);
        loaded.push(id);
        first
    };
    let gated = {
        let mut gated = GATED.lock().unwrap();
        let was = gated.contains(&id);
        gated.retain(|&g| g != id);
        was
    };
    if gated {
        CLONE_GATE.acquire().await.expect("gate open").forget();
    }
    CloneBomb { id, fuse: first }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_clone_on_a_memory_hit_is_the_callers_and_leaves_nothing_held() {
    let _one_at_a_time = CLONE_TESTS.lock().await;
    let cache = Cache::memory(100);
    // Loaded and stored while disarmed.
    assert_eq!(clone_bomb(&cache, 1).await.id, 1);
    assert_eq!(cache.stats().loads, 1);

    arm(1, true);
    let mut panics = 0;
    for _ in 0..ATTEMPTS {
        let c = cache.clone();
        if attempt(async move { clone_bomb(&c, 1).await })
            .await
            .is_none()
        {
            panics += 1;
        }
    }
    assert_eq!(
        panics, ATTEMPTS,
        "the value's own Clone panics in its caller"
    );
    let c = cache.clone();
    assert!(
        attempt(async move { c.get::<CloneBomb>("clone-bomb:1").await })
            .await
            .is_none(),
        "and in the manual get's caller"
    );
    arm(1, false);

    // Nothing is held: the entry's shard takes writes and reads, other keys
    // load, the entry is still served, and no load ran meanwhile.
    assert_eq!(clone_bomb(&cache, 1).await, CloneBomb { id: 1, fuse: true });
    assert_eq!(clone_bomb(&cache, 2).await.id, 2);
    assert_eq!(cache.stats().loads, 2);
    assert!(cache.delete("clone-bomb:1").await.unwrap());
    assert_eq!(clone_bomb(&cache, 1).await.id, 1);
    assert_eq!(cache.stats().loads, 3);
}

/// The leader's value panics when the cache clones it to share: the leader
/// panics, its waiter is released (not stuck) and loads it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_clone_in_a_load_leaves_no_flight_stuck() {
    let _one_at_a_time = CLONE_TESTS.lock().await;
    let cache = Cache::memory(100);
    let id = 200;
    GATED.lock().unwrap().push(id);
    arm(id, true);
    let runs = CLONE_RUNS.get();
    let c = cache.clone();
    let leader = tokio::spawn(async move { clone_bomb(&c, id).await });
    assert!(within!(LIMIT, CLONE_RUNS.get() == runs + 1).is_some());
    let c = cache.clone();
    let waiter = tokio::spawn(async move { clone_bomb(&c, id).await });
    assert!(within!(LIMIT, cache.stats().coalesced == 1).is_some());
    CLONE_GATE.add_permits(1);

    let leader = tokio::time::timeout(LIMIT, leader)
        .await
        .expect("leader stuck");
    assert!(
        leader.unwrap_err().is_panic(),
        "the leader's clone panicked"
    );
    let waiter = tokio::time::timeout(LIMIT, waiter)
        .await
        .expect("waiter stuck");
    // The second run's value has no fuse.
    assert_eq!(waiter.unwrap(), CloneBomb { id, fuse: false });
    assert_eq!(CLONE_RUNS.get(), runs + 2, "the waiter loaded again");
    arm(id, false);
    let runs = CLONE_RUNS.get();
    assert_eq!(clone_bomb(&cache, id).await, CloneBomb { id, fuse: false });
    assert_eq!(CLONE_RUNS.get(), runs, "its value is stored");
}

/// With a remote tier: a load whose value panics on its clone releases the
/// key's distributed lock, so other processes do not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_clone_in_a_load_releases_the_distributed_lock() {
    let _one_at_a_time = CLONE_TESTS.lock().await;
    let server = RedisServer::start();
    let cache = write_through(&server, "cb-wt").await;
    let id = 300;
    let lock = "cb-wt#load:clone-bomb:300";
    arm(id, true);
    GATED.lock().unwrap().push(id);
    let runs = CLONE_RUNS.get();
    let c = cache.clone();
    let leader = attempt(async move { clone_bomb(&c, id).await });
    let leader = tokio::spawn(leader);
    assert!(within!(LIMIT, CLONE_RUNS.get() == runs + 1).is_some());
    assert_eq!(
        server.cli(&["EXISTS", lock]).trim(),
        "1",
        "the load holds the lock"
    );
    CLONE_GATE.add_permits(1);
    assert!(
        leader.await.unwrap().is_none(),
        "the leader's clone panicked"
    );
    assert!(
        within!(LIMIT, server.cli(&["EXISTS", lock]).trim() == "0").is_some(),
        "the load's lock is still held"
    );
    arm(id, false);
    assert_eq!(clone_bomb(&cache, id).await, CloneBomb { id, fuse: false });
}
