//! Checks of [`LockStore`]: exclusive, by token, expiring.

use std::sync::Arc;
use std::time::Duration;

use super::support::{eventually, joined, namespace, ok, same, two, PROMPT};
use super::Connect;
use crate::store::LockStore;

const MINUTE: Duration = Duration::from_secs(60);

fn lock_key() -> String {
    format!("{}#load:lock", namespace())
}

/// Of 8 concurrent `try_lock`s of one key with different tokens, from two
/// connections, exactly one wins.
pub async fn lock_exclusive<S: LockStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "lock_exclusive";
    let (one, other) = two(connect).await;
    let key = Arc::new(lock_key());
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(if i % 2 == 0 { &one } else { &other });
            let key = Arc::clone(&key);
            tokio::spawn(async move { store.try_lock(&key, &format!("token-{i}"), MINUTE).await })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        let taken = ok(joined(CHECK, task).await, CHECK, "try_lock");
        winners += usize::from(taken);
    }
    same(CHECK, "how many of 8 concurrent try_locks won", winners, 1);
    let late = ok(one.try_lock(&key, "late", MINUTE).await, CHECK, "try_lock");
    same(CHECK, "try_lock of a held lock", late, false);
}

/// Only the holder's token extends or releases a lock; once released,
/// another token takes it.
pub async fn lock_tokens<S: LockStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "lock_tokens";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let key = lock_key();
    same(
        CHECK,
        "try_lock of a free lock",
        ok(one.try_lock(&key, "A", MINUTE).await, CHECK, "try_lock"),
        true,
    );
    same(
        CHECK,
        "try_lock with another token",
        ok(other.try_lock(&key, "B", MINUTE).await, CHECK, "try_lock"),
        false,
    );
    same(
        CHECK,
        "extend_lock with a token that does not hold it",
        ok(
            other.extend_lock(&key, "B", MINUTE).await,
            CHECK,
            "extend_lock",
        ),
        false,
    );
    same(
        CHECK,
        "unlock with a token that does not hold it",
        ok(other.unlock(&key, "B").await, CHECK, "unlock"),
        false,
    );
    same(
        CHECK,
        "try_lock after a wrong unlock",
        ok(other.try_lock(&key, "C", MINUTE).await, CHECK, "try_lock"),
        false,
    );
    same(
        CHECK,
        "extend_lock by the holder",
        ok(
            other.extend_lock(&key, "A", MINUTE).await,
            CHECK,
            "extend_lock",
        ),
        true,
    );
    same(
        CHECK,
        "unlock by the holder",
        ok(one.unlock(&key, "A").await, CHECK, "unlock"),
        true,
    );
    same(
        CHECK,
        "unlock of a released lock",
        ok(one.unlock(&key, "A").await, CHECK, "unlock"),
        false,
    );
    same(
        CHECK,
        "extend_lock of a released lock",
        ok(
            one.extend_lock(&key, "A", MINUTE).await,
            CHECK,
            "extend_lock",
        ),
        false,
    );
    same(
        CHECK,
        "try_lock of a released lock",
        ok(other.try_lock(&key, "B", MINUTE).await, CHECK, "try_lock"),
        true,
    );
}

/// A lock past its TTL is free; one extended beyond it is still held.
pub async fn lock_expires<S: LockStore>(connect: &impl Connect<S>) {
    const CHECK: &str = "lock_expires";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let (short, extended) = (lock_key(), lock_key());
    let ttl = Duration::from_millis(250);
    same(
        CHECK,
        "try_lock",
        ok(one.try_lock(&short, "A", ttl).await, CHECK, "try_lock"),
        true,
    );
    same(
        CHECK,
        "try_lock",
        ok(one.try_lock(&extended, "A", ttl).await, CHECK, "try_lock"),
        true,
    );
    same(
        CHECK,
        "extend_lock by the holder",
        ok(
            one.extend_lock(&extended, "A", MINUTE).await,
            CHECK,
            "extend_lock",
        ),
        true,
    );
    let freed = eventually(ttl + PROMPT, async || {
        ok(other.try_lock(&short, "B", MINUTE).await, CHECK, "try_lock")
    })
    .await;
    assert!(
        freed,
        "conformance check `{CHECK}`: a lock with a TTL of 250 ms was still held after {:?}",
        ttl + PROMPT
    );
    same(
        CHECK,
        "try_lock of an extended lock past its first TTL",
        ok(
            other.try_lock(&extended, "B", MINUTE).await,
            CHECK,
            "try_lock",
        ),
        false,
    );
    same(
        CHECK,
        "extend_lock by the holder of an expired lock",
        ok(
            one.extend_lock(&short, "A", MINUTE).await,
            CHECK,
            "extend_lock",
        ),
        false,
    );
    same(
        CHECK,
        "unlock by the new holder",
        ok(other.unlock(&short, "B").await, CHECK, "unlock"),
        true,
    );
}
