//! The in-process store's own behaviour: TTLs on tokio's clock, versions
//! through lost writes and failovers, and each fault.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::{advance, timeout, Instant};

use super::{InProcessStore, InjectedFault, Op};
use crate::store::{Backplane, CounterStore, EntryStore, LockStore, StoreError, TagStore};

const SECOND: Duration = Duration::from_secs(1);

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[tokio::test(start_paused = true)]
async fn ttl_runs_on_tokios_clock() {
    let store = InProcessStore::new();
    store.put("k", b"v".to_vec(), SECOND).await.unwrap();
    advance(Duration::from_millis(999)).await;
    assert_eq!(
        store.fetch_many(&keys(&["k"])).await.unwrap(),
        vec![Some(b"v".to_vec())]
    );
    advance(Duration::from_millis(2)).await;
    assert_eq!(store.fetch_many(&keys(&["k"])).await.unwrap(), vec![None]);
    assert_eq!(store.key_count(), 0);
}

#[tokio::test]
async fn a_lost_bump_is_never_handed_out_again() {
    let store = InProcessStore::new();
    let tag = keys(&["ns#tag:t"]);
    let read = store.versions(&tag).await.unwrap()[0];
    store.faults().lose_writes(1);
    let lost = store.bump(&tag).await.unwrap()[0];
    assert!(lost > read);
    // The backend forgot it: the counter reads the old version...
    assert_eq!(store.versions(&tag).await.unwrap()[0], read);
    // ...and the next bump is not the lost one again.
    let next = store.bump(&tag).await.unwrap()[0];
    assert!(next > lost, "{next} after a lost {lost}");
}

#[tokio::test]
async fn a_failover_loses_writes_since_the_checkpoint_but_no_version_repeats() {
    let one = InProcessStore::new();
    let other = one.connect();
    let tag = keys(&["ns#tag:t"]);
    one.put("kept", b"k".to_vec(), SECOND * 60).await.unwrap();
    let before = one.versions(&tag).await.unwrap()[0];
    one.faults().checkpoint();
    one.put("lost", b"l".to_vec(), SECOND * 60).await.unwrap();
    let mut handed = Vec::new();
    for _ in 0..3 {
        handed.push(one.bump(&tag).await.unwrap()[0]);
    }
    other.faults().fail_over();
    let read = keys(&["kept", "lost"]);
    assert_eq!(
        other.fetch_many(&read).await.unwrap(),
        vec![Some(b"k".to_vec()), None]
    );
    assert_eq!(other.versions(&tag).await.unwrap()[0], before);
    let next = other.bump(&tag).await.unwrap()[0];
    assert!(
        handed.iter().all(|&h| next > h),
        "{next} repeats one of {handed:?}"
    );
    // A failover without a checkpoint: an empty replica. A new counter is
    // created above everything handed out.
    one.faults().fail_over();
    let fresh = one.versions(&tag).await.unwrap()[0];
    assert!(fresh > next);
}

#[tokio::test]
async fn a_partition_cuts_one_handle_only() {
    let one = InProcessStore::new();
    let other = one.connect();
    let mut subscription = one.subscribe("ch").await.unwrap();
    one.faults().partition();
    assert!(matches!(one.ping().await, Err(StoreError::Connection(_))));
    assert!(matches!(
        one.subscribe("ch").await,
        Err(StoreError::Connection(_))
    ));
    other.ping().await.unwrap();
    // The partitioned handle's subscription ends: the cache resubscribes.
    assert_eq!(subscription.next().await, None);
    one.faults().heal();
    let mut subscription = one.subscribe("ch").await.unwrap();
    other.publish("ch", b"m".to_vec()).await.unwrap();
    assert_eq!(subscription.next().await, Some(b"m".to_vec()));
}

#[tokio::test]
async fn errors_for_the_next_calls_then_none() {
    let store = InProcessStore::new();
    store.faults().fail_next(2, InjectedFault::Backend);
    assert!(matches!(store.ping().await, Err(StoreError::Backend(_))));
    assert!(matches!(
        store.increment("c", 1).await,
        Err(StoreError::Backend(_))
    ));
    // The failed increment did not count.
    assert_eq!(store.increment("c", 1).await.unwrap(), 1);
    store.faults().fail_next(1, InjectedFault::Timeout);
    assert!(matches!(store.ping().await, Err(StoreError::Timeout)));
    store.ping().await.unwrap();
}

async fn pattern(seed: u64) -> Vec<bool> {
    let store = InProcessStore::new();
    store
        .faults()
        .fail_fraction(0.5, InjectedFault::Connection, seed);
    let mut failed = Vec::new();
    for _ in 0..64 {
        failed.push(store.ping().await.is_err());
    }
    failed
}

#[tokio::test]
async fn a_fraction_of_errors_is_deterministic_by_seed() {
    let (a, b, c) = (pattern(7).await, pattern(7).await, pattern(8).await);
    assert_eq!(a, b);
    assert_ne!(a, c);
    let failures = a.iter().filter(|f| **f).count();
    assert!((16..=48).contains(&failures), "{failures} of 64");
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_call_hangs_until_dropped() {
    let store = InProcessStore::new();
    store.faults().time_out_next(1);
    assert!(timeout(SECOND * 30, store.ping()).await.is_err());
    store.ping().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn latency_is_added_on_tokios_clock() {
    let store = InProcessStore::new();
    store.faults().latency(Duration::from_millis(40));
    let start = Instant::now();
    store.ping().await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(80));
    store.faults().clear();
    let start = Instant::now();
    store.ping().await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn messages_dropped_or_delayed_for_one_handle() {
    let one = InProcessStore::new();
    let other = one.connect();
    let mut lossy = one.subscribe("ch").await.unwrap();
    let mut clean = other.subscribe("ch").await.unwrap();
    one.faults().drop_messages(1);
    other.publish("ch", b"1".to_vec()).await.unwrap();
    other.publish("ch", b"2".to_vec()).await.unwrap();
    assert_eq!(lossy.next().await, Some(b"2".to_vec()));
    assert_eq!(clean.next().await, Some(b"1".to_vec()));
    assert_eq!(clean.next().await, Some(b"2".to_vec()));

    one.faults().delay_messages(Duration::from_millis(300));
    let start = Instant::now();
    other.publish("ch", b"3".to_vec()).await.unwrap();
    assert_eq!(lossy.next().await, Some(b"3".to_vec()));
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    assert_eq!(clean.next().await, Some(b"3".to_vec()));
}

#[tokio::test]
async fn ending_subscriptions_leaves_the_handle_working() {
    let store = InProcessStore::new();
    let mut subscription = store.subscribe("ch").await.unwrap();
    store.faults().end_subscriptions();
    assert_eq!(subscription.next().await, None);
    let mut again = store.subscribe("ch").await.unwrap();
    store.publish("ch", b"m".to_vec()).await.unwrap();
    assert_eq!(again.next().await, Some(b"m".to_vec()));
}

#[tokio::test]
async fn operations_are_counted_per_handle_and_per_backend() {
    let one = InProcessStore::new();
    let other = one.connect();
    let same_handle = one.clone();
    one.ping().await.unwrap();
    same_handle.ping().await.unwrap();
    other.faults().fail_next(1, InjectedFault::Connection);
    let _ = other.fetch_many(&keys(&["k"])).await;
    assert_eq!(one.counts().get(Op::Ping), 2);
    assert_eq!(one.counts().total(), 2);
    assert_eq!(other.counts().get(Op::FetchMany), 1);
    let all = one.backend_counts();
    assert_eq!(
        (all.get(Op::Ping), all.get(Op::FetchMany), all.total()),
        (2, 1, 3)
    );
    let before = one.counts();
    one.ping().await.unwrap();
    assert_eq!(one.counts().since(&before).total(), 1);
}

#[tokio::test]
async fn a_lock_that_never_expires_is_taken_over_and_counted_as_a_repair() {
    let store = InProcessStore::new();
    // A key without a TTL where a lock should be (a fault left it).
    store.increment("lock", 1).await.unwrap();
    assert!(store.try_lock("lock", "t", SECOND).await.unwrap());
    assert_eq!(store.take_repairs(), 1);
    assert_eq!(store.take_repairs(), 0);
    assert!(!store.try_lock("lock", "u", SECOND).await.unwrap());
}

#[tokio::test]
async fn a_broken_counter_is_replaced_above_every_version() {
    let store = InProcessStore::new();
    let tag = keys(&["ns#tag:t"]);
    let handed = store.bump(&tag).await.unwrap()[0];
    store
        .put(&tag[0], b"not a number".to_vec(), SECOND * 60)
        .await
        .unwrap();
    let other = store.connect();
    let repaired = other.versions(&tag).await.unwrap()[0];
    assert!(repaired > handed);
    // The handle that repaired it reports it; the others do not.
    assert_eq!(store.take_repairs(), 0);
    assert_eq!(other.take_repairs(), 1);
}

#[tokio::test]
async fn increment_of_bytes_that_are_no_number_fails() {
    let store = InProcessStore::new();
    store.put("k", b"12".to_vec(), SECOND * 60).await.unwrap();
    assert_eq!(store.increment("k", 1).await.unwrap(), 13);
    store.put("k", b"x".to_vec(), SECOND * 60).await.unwrap();
    assert!(matches!(
        store.increment("k", 1).await,
        Err(StoreError::Backend(_))
    ));
    assert!(matches!(
        store.increment("big", i64::MAX).await,
        Ok(i64::MAX)
    ));
    assert!(matches!(
        store.increment("big", 1).await,
        Err(StoreError::Backend(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn faults_aimed_at_one_kind_of_operation() {
    let store = InProcessStore::new();
    let tag = keys(&["ns#tag:t"]);
    store
        .faults()
        .fail_next_of(Op::Bump, 1, InjectedFault::Backend)
        .latency_of(Op::Fetch, Duration::from_millis(7))
        .time_out_next_of(Op::Ping, 1);
    // Other kinds pass; the bump fails once.
    store.versions(&tag).await.unwrap();
    assert!(matches!(
        store.bump(&tag).await,
        Err(StoreError::Backend(_))
    ));
    store.bump(&tag).await.unwrap();
    assert!(timeout(SECOND, store.ping()).await.is_err());
    store.ping().await.unwrap();
    let key = crate::key::Key::manual("k");
    let request = crate::store::Fetch {
        namespace: "ns",
        key: &key,
        tags: &[],
    };
    let start = Instant::now();
    store.fetch_many(&tag).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO, "fetch_many is not fetch");
    store.fetch(request).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(7));
}

#[tokio::test]
async fn a_version_raised_by_increment_is_not_handed_out_again() {
    let store = InProcessStore::new();
    let tag = keys(&["ns#tag:t"]);
    store.increment(&tag[0], 1000).await.unwrap();
    assert_eq!(store.versions(&tag).await.unwrap()[0], 1000);
    store.delete(&tag[0]).await.unwrap();
    let back = store.versions(&tag).await.unwrap()[0];
    assert!(
        back > 1000,
        "a lost counter came back at {back}, not above 1000"
    );
}
