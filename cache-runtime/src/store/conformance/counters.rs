//! Checks of [`CounterStore`]: atomic increments.

use std::collections::HashSet;
use std::sync::Arc;

use super::support::{joined, namespace, ok, same, two};
use super::Connect;
use crate::store::CounterStore;

/// `increment` of an absent key starts from 0, takes negative deltas, and
/// counts across connections.
pub async fn increment_counts<S: CounterStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "increment_counts";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let key = format!("{}:counter", namespace());
    same(
        CHECK,
        "increment of an absent key by 5",
        ok(one.increment(&key, 5).await, CHECK, "increment"),
        5,
    );
    same(
        CHECK,
        "increment by -7",
        ok(other.increment(&key, -7).await, CHECK, "increment"),
        -2,
    );
    same(
        CHECK,
        "increment by 0",
        ok(one.increment(&key, 0).await, CHECK, "increment"),
        -2,
    );
    same(
        CHECK,
        "increment by 2",
        ok(one.increment(&key, 2).await, CHECK, "increment"),
        0,
    );
}

/// 8 tasks on two connections increment one key 50 times each: every
/// answer is distinct and the total is 400 (no update lost).
pub async fn increment_concurrent<S: CounterStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "increment_concurrent";
    const TASKS: i64 = 8;
    const EACH: i64 = 50;
    let (one, other) = two(connect).await;
    let key = Arc::new(format!("{}:counter", namespace()));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = Arc::clone(if i % 2 == 0 { &one } else { &other });
            let key = Arc::clone(&key);
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..EACH {
                    seen.push(store.increment(&key, 1).await);
                }
                seen
            })
        })
        .collect();
    let mut answers = HashSet::new();
    for task in tasks {
        let seen = joined(CHECK, task).await;
        for n in seen {
            let n = ok(n, CHECK, "increment");
            assert!(
                answers.insert(n),
                "conformance check `{CHECK}`: two increments answered {n}: an update was lost"
            );
        }
    }
    let total = ok(one.increment(&key, 0).await, CHECK, "increment");
    same(
        CHECK,
        "the counter after 8 × 50 concurrent increments",
        total,
        TASKS * EACH,
    );
}

/// `value` reads 0 for an absent key without changing it, then what
/// `increment` wrote (from another connection too), and never changes the
/// counter itself: reading it twice gives one answer, and the next
/// increment counts from it.
pub async fn value_reads_counter<S: CounterStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "value_reads_counter";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let key = format!("{}:counter", namespace());
    same(
        CHECK,
        "value of an absent key",
        ok(one.value(&key).await, CHECK, "value"),
        0,
    );
    same(
        CHECK,
        "increment by 3 after reading the absent key",
        ok(other.increment(&key, 3).await, CHECK, "increment"),
        3,
    );
    same(
        CHECK,
        "value from another connection after increment by 3",
        ok(one.value(&key).await, CHECK, "value"),
        3,
    );
    same(
        CHECK,
        "value read again",
        ok(other.value(&key).await, CHECK, "value"),
        3,
    );
    same(
        CHECK,
        "increment by -10 after two reads",
        ok(one.increment(&key, -10).await, CHECK, "increment"),
        -7,
    );
    same(
        CHECK,
        "value after increment by -10",
        ok(other.value(&key).await, CHECK, "value"),
        -7,
    );
}
