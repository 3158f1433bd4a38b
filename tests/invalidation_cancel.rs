//! The contract's "Cancellation": dropping the future of `invalidate_tags`,
//! of an `#[invalidate]` function or of a cached call at any point leaves
//! nothing stuck and loses nothing. Each test drives the future through a
//! slow link (a fault proxy that holds every chunk), drops it after `k`
//! polls for `k = 1, 2, ...` until it completes on its own, and after each
//! drop checks that the tag is not stuck pending, that the invalidation
//! reached Redis, and that no waiter or lock is left behind.
//!
//! The last test is about queued invalidations after an outage: they are
//! retried as soon as the connection is back, not at the next backoff.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use cache_runtime::{cached, invalidate, Cache};
use integration_tests::fault_proxy::FaultProxy;
use integration_tests::redis_harness::RedisServer;
use integration_tests::within;

/// The "database": a version per id. Each test uses its own range of ids.
static DB: [AtomicU64; 128] = [const { AtomicU64::new(1) }; 128];
/// How many times each id's function body ran.
static LOADS: [AtomicUsize; 128] = [const { AtomicUsize::new(0) }; 128];

fn db(id: u64) -> u64 {
    DB[id as usize].load(Ordering::SeqCst)
}

fn loads(id: u64) -> usize {
    LOADS[id as usize].load(Ordering::SeqCst)
}

#[cached(cache = cache, key = "item:{id}", tags = ["t:{id}"], ttl = "1h")]
async fn item(cache: &Cache, id: u64) -> u64 {
    LOADS[id as usize].fetch_add(1, Ordering::SeqCst);
    db(id)
}

#[invalidate(cache = cache, tags = ["t:{id}"])]
async fn write(cache: &Cache, id: u64) -> Result<(), String> {
    // An await inside the body: the first drop point is before it returns.
    tokio::task::yield_now().await;
    DB[id as usize].fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// The per-chunk hold of the slow link: a request and its reply take
/// about twice this.
const SLOW: Duration = Duration::from_millis(60);
/// The bound of every "after the drop" check; the tag stuck pending is
/// still so after it.
const SETTLE: Duration = Duration::from_secs(3);
/// Drop points tried at most.
const MAX_POLLS: usize = 40;

/// Polls `fut` at most `k` times: its output if it completed, `None` if it
/// was dropped after its `k`-th poll.
async fn poll_at_most<F: Future>(fut: F, k: usize) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut polls = 0;
    std::future::poll_fn(|cx| {
        polls += 1;
        match fut.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready(Some(out)),
            Poll::Pending if polls >= k => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The cache under test (through the proxy), and another process on the
/// same Redis that reads Redis on every call (storage-only).
async fn caches(server: &RedisServer, proxy: &FaultProxy, ns: &str) -> (Cache, Cache) {
    let x = Cache::builder()
        .namespace(ns)
        .memory(1000)
        .redis(proxy.redis_url())
        .remote_timeout(Duration::from_secs(2))
        .breaker(1_000, Duration::from_millis(100))
        .build()
        .await
        .expect("connect through the proxy");
    let y = Cache::builder()
        .namespace(ns)
        .redis(server.url())
        .build()
        .await
        .expect("connect to the test server");
    (x, y)
}

/// What the drops left behind, counted over every drop point.
#[derive(Debug, Default)]
struct Left {
    drops: usize,
    /// `x` still ran the function on every call after [`SETTLE`].
    stuck: usize,
    /// The other cache still served the old value after [`SETTLE`].
    lost: usize,
}

/// `x` caches `id` again: a call that returns the current version without
/// running the function.
async fn caches_again(x: &Cache, id: u64) -> bool {
    within!(SETTLE, {
        let before = loads(id);
        item(x, id).await == db(id) && loads(id) == before
    })
    .is_some()
}

/// `y` (reading Redis) sees the current version.
async fn sees(y: &Cache, id: u64) -> bool {
    within!(SETTLE, item(y, id).await == db(id)).is_some()
}

/// Both caches hold `id`'s current version, `x` in memory too.
async fn warm(x: &Cache, y: &Cache, id: u64) {
    assert!(caches_again(x, id).await, "x caches {id}");
    assert_eq!(item(y, id).await, db(id));
}

/// `invalidate_tags` dropped at every await: the tag is never stuck pending
/// in the dropping process, and the invalidation reaches Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_invalidate_tags_leaves_nothing_stuck_and_loses_nothing() {
    let server = RedisServer::start();
    let proxy = FaultProxy::to_port(server.port());
    let (x, y) = caches(&server, &proxy, "cancel-tags").await;
    let mut left = Left::default();
    for k in 1..=MAX_POLLS {
        let id = k as u64;
        warm(&x, &y, id).await;
        DB[id as usize].fetch_add(1, Ordering::SeqCst);
        proxy.set_delay(SLOW);
        let done = poll_at_most(x.invalidate_tags([format!("t:{id}")]), k).await;
        proxy.set_delay(Duration::ZERO);
        if done.is_none() {
            left.drops += 1;
        }
        if !caches_again(&x, id).await {
            left.stuck += 1;
        }
        if !sees(&y, id).await {
            left.lost += 1;
        }
        if let Some(result) = done {
            result.expect("Redis confirmed the invalidation");
            break;
        }
    }
    eprintln!("invalidate_tags dropped at every await: {left:?}");
    assert!(left.drops >= 1, "{left:?}");
    assert_eq!((left.stuck, left.lost), (0, 0), "{left:?}");
}

/// An `#[invalidate]` function dropped at every await: before its body
/// returned nothing changed; after, the invalidation is applied everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_invalidate_function_leaves_nothing_stuck_and_loses_nothing() {
    let server = RedisServer::start();
    let proxy = FaultProxy::to_port(server.port());
    let (x, y) = caches(&server, &proxy, "cancel-fn").await;
    let mut left = Left::default();
    for k in 1..=MAX_POLLS {
        let id = 40 + k as u64;
        warm(&x, &y, id).await;
        proxy.set_delay(SLOW);
        let done = poll_at_most(write(&x, id), k).await;
        proxy.set_delay(Duration::ZERO);
        if done.is_none() {
            left.drops += 1;
        }
        if !caches_again(&x, id).await {
            left.stuck += 1;
        }
        if !sees(&y, id).await {
            left.lost += 1;
        }
        if let Some(result) = done {
            assert_eq!(result, Ok(()));
            break;
        }
    }
    eprintln!("#[invalidate] dropped at every await: {left:?}");
    assert!(left.drops >= 2, "{left:?}");
    assert_eq!((left.stuck, left.lost), (0, 0), "{left:?}");
}

/// A cached call that misses (and leads the load, under the distributed
/// lock) dropped at every await: a call that waited for it finishes, and
/// the next call in this process and in another proceeds at once (no
/// flight left open, no lock left held until its TTL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_cached_call_leaves_no_waiter_hanging_and_no_lock_held() {
    let server = RedisServer::start();
    let proxy = FaultProxy::to_port(server.port());
    let (x, _) = caches(&server, &proxy, "cancel-load").await;
    let other = Cache::builder()
        .namespace("cancel-load")
        .memory(1000)
        .redis(server.url())
        .build()
        .await
        .expect("connect to the test server");
    // Well under the load lock's TTL (2 s), which an orphaned lock costs.
    let bound = Duration::from_millis(1_000);
    let (mut drops, mut hung, mut slow) = (0, 0, Vec::new());
    for k in 1..=MAX_POLLS {
        let id = 80 + k as u64;
        proxy.set_delay(SLOW);
        let leader = item(&x, id);
        // A waiter that joins the leader's load once the leader began.
        let (began, joined) = tokio::sync::oneshot::channel::<()>();
        let waiter = {
            let x = x.clone();
            tokio::spawn(async move {
                let _ = joined.await;
                item(&x, id).await
            })
        };
        let mut began = Some(began);
        let leader = async move {
            let mut leader = std::pin::pin!(leader);
            std::future::poll_fn(|cx| {
                let polled = leader.as_mut().poll(cx);
                if let Some(began) = began.take() {
                    let _ = began.send(());
                }
                polled
            })
            .await
        };
        let done = poll_at_most(leader, k).await;
        proxy.set_delay(Duration::ZERO);
        if done.is_none() {
            drops += 1;
        }
        match tokio::time::timeout(SETTLE, waiter).await {
            Ok(Ok(value)) => assert_eq!(value, db(id)),
            _ => hung += 1,
        }
        for cache in [&x, &other] {
            let started_here = Instant::now();
            assert_eq!(item(cache, id).await, db(id));
            let took = started_here.elapsed();
            if took > bound {
                slow.push((k, took));
            }
        }
        if done.is_some() {
            break;
        }
    }
    eprintln!(
        "cached call dropped at every await: {drops} drops, {hung} waiters hung, slow next calls {slow:?}"
    );
    assert!(drops >= 1);
    assert_eq!(hung, 0);
    assert!(slow.is_empty(), "next calls waited for a lock: {slow:?}");
}

/// A lock release dropped halfway leaves the lock to be released in the
/// background, not held until its TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_lock_release_still_releases_the_lock() {
    let server = RedisServer::start();
    let proxy = FaultProxy::to_port(server.port());
    let (x, y) = caches(&server, &proxy, "cancel-lock").await;
    let ttl = Duration::from_secs(30);
    let mut held = 0;
    let mut drops = 0;
    for k in 1..=MAX_POLLS {
        let name = format!("job:{k}");
        proxy.set_delay(SLOW);
        let done = poll_at_most(
            async {
                let guard = x.lock(&name, ttl, Duration::ZERO).await?;
                guard.release().await
            },
            k,
        )
        .await;
        proxy.set_delay(Duration::ZERO);
        if done.is_none() {
            drops += 1;
        }
        let free = within!(SETTLE, matches!(y.try_lock(&name, ttl).await, Ok(Some(_))));
        if free.is_none() {
            held += 1;
        }
        if done.is_some() {
            break;
        }
    }
    eprintln!("lock + release dropped at every await: {drops} drops, {held} locks left held");
    assert!(drops >= 1);
    assert_eq!(held, 0, "locks left held until their TTL");
}

/// Polls (every millisecond, on a thread of its own) until this Redis has
/// a subscriber on `channel`: when the cache's backplane connected again.
fn resubscribed(server: &RedisServer, channel: String) -> std::thread::JoinHandle<Option<Instant>> {
    let client = server.client();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut conn) = client.get_connection() {
                let reply: redis::RedisResult<(String, u64)> = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(&channel)
                    .query(&mut conn);
                if matches!(reply, Ok((_, n)) if n > 0) {
                    return Some(Instant::now());
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    })
}

/// Queued during an outage long enough for the retry's backoff to reach its
/// longest (2 s): once Redis is back on the same port, the queue is retried
/// as soon as the cache's connection is back, not at the next backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_invalidations_go_as_soon_as_the_connection_is_back() {
    let mut server = RedisServer::start();
    let ns = "cancel-back";
    let x = Cache::builder()
        .namespace(ns)
        .memory(1000)
        .redis(server.url())
        .remote_timeout(Duration::from_millis(200))
        .build()
        .await
        .expect("connect to the test server");
    // After the reconnect, well under the backoff (2 s); twice that after
    // the restart (the backplane tries to subscribe again every 250 ms).
    let bound = Duration::from_millis(300);
    let mut late = 0;
    let mut measured = Vec::new();
    for cycle in 0..3 {
        let id = 121 + cycle as u64;
        assert!(caches_again(&x, id).await);
        server.kill();
        let queued = x.invalidate_tags([format!("t:{id}")]).await;
        assert!(queued.is_err(), "Redis is down: queued");
        // The outage's length, not a synchronisation: the retry's backoff
        // (25 ms doubling) reaches 2 s after about 3.2 s of failures.
        tokio::time::sleep(Duration::from_millis(4_000)).await;
        assert!(x.stats().pending_invalidations >= 1);
        server.restart();
        let restarted = Instant::now();
        let subscribed = resubscribed(&server, format!("{ns}#invalidations"));
        let landed = within!(Duration::from_secs(8), x.stats().pending_invalidations == 0)
            .map(|_| Instant::now())
            .expect("the queued invalidation reached Redis");
        let subscribed = tokio::task::spawn_blocking(move || subscribed.join())
            .await
            .expect("join")
            .expect("poller")
            .expect("the backplane subscribed again");
        let after_reconnect = landed.saturating_duration_since(subscribed);
        if after_reconnect > bound || landed.duration_since(restarted) > 2 * bound {
            late += 1;
        }
        measured.push((
            landed.duration_since(restarted).as_millis(),
            subscribed.duration_since(restarted).as_millis(),
            after_reconnect.as_millis(),
        ));
    }
    eprintln!(
        "queued invalidation after a restart (ms: landed after restart, reconnected after restart, landed after reconnect): {measured:?}"
    );
    assert_eq!(
        late, 0,
        "landed later than {bound:?} after the reconnect (or twice that after the restart): {measured:?}"
    );
}

/// `set` and `set_many` dropped at every await: the writing process never
/// keeps serving its old value while Redis holds the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_set_never_leaves_the_old_value_in_memory() {
    let server = RedisServer::start();
    let proxy = FaultProxy::to_port(server.port());
    let (x, y) = caches(&server, &proxy, "cancel-set").await;
    let (mut drops, mut disagree) = (0, Vec::new());
    for many in [false, true] {
        for k in 1..=MAX_POLLS {
            let key = format!("k:{many}:{k}");
            x.set(&key, 1u64).await.expect("set");
            assert_eq!(x.get::<u64>(&key).await.expect("get"), Some(1));
            proxy.set_delay(SLOW);
            let done = if many {
                poll_at_most(x.set_many([(key.as_str(), 2u64)], &Default::default()), k).await
            } else {
                poll_at_most(x.set(&key, 2u64), k).await
            };
            proxy.set_delay(Duration::ZERO);
            if done.is_none() {
                drops += 1;
            }
            let here = x.get::<u64>(&key).await.expect("get here");
            let there = y.get::<u64>(&key).await.expect("get there");
            if here != there {
                disagree.push((key, here, there));
            }
            if done.is_some() {
                break;
            }
        }
    }
    eprintln!("set / set_many dropped at every await: {drops} drops, disagreeing {disagree:?}");
    assert!(drops >= 2);
    assert!(disagree.is_empty(), "{disagree:?}");
}

/// A cached call dropped while it was the breaker's half-open probe: the
/// probe never reports back, and the breaker must not stay open for ever
/// (every call of the process skipping Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_during_the_breaker_probe_leaves_the_breaker_working() {
    let server = RedisServer::start();
    let proxy = FaultProxy::to_port(server.port());
    let open_for = Duration::from_millis(200);
    let x = Cache::builder()
        .namespace("cancel-probe")
        .redis(proxy.redis_url())
        .remote_timeout(Duration::from_millis(300))
        .breaker(1, open_for)
        // No backplane: its reconnection would let a probe through too.
        .known_tag_versions(0)
        .build()
        .await
        .expect("connect through the proxy");
    proxy.blackhole();
    assert_eq!(item(&x, 126).await, db(126), "the function answers");
    let breaker = x.health().await.expect("remote tier").breaker;
    assert_eq!(breaker, cache_runtime::BreakerState::Open);
    proxy.heal();
    // The breaker's open period, waited out (not a synchronisation).
    tokio::time::sleep(open_for + Duration::from_millis(50)).await;
    proxy.set_delay(SLOW);
    let done = poll_at_most(item(&x, 127), 1).await;
    proxy.set_delay(Duration::ZERO);
    assert!(done.is_none(), "dropped while its probe was in flight");
    let closed = within!(
        SETTLE,
        x.health().await.map(|h| h.breaker) == Some(cache_runtime::BreakerState::Closed)
    );
    eprintln!("breaker closed again after the dropped probe: {closed:?}");
    assert!(
        closed.is_some(),
        "the breaker stayed open after a dropped probe"
    );
}
