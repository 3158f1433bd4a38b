//! Checks of [`Backplane`]: messages reach every subscriber of a channel,
//! in any connection.

use futures_util::StreamExt;

use super::support::{namespace, ok, same, PROMPT};
use super::Connect;
use crate::store::{Backplane, Subscription};

/// The next message of `subscription`, failing the check if none comes
/// within [`PROMPT`] or the subscription ends.
async fn next(check: &str, who: &str, subscription: &mut Subscription) -> Vec<u8> {
    match tokio::time::timeout(PROMPT, subscription.next()).await {
        Ok(Some(message)) => message,
        Ok(None) => panic!("conformance check `{check}`: {who}'s subscription ended"),
        Err(_) => panic!("conformance check `{check}`: {who} received nothing within {PROMPT:?}"),
    }
}

/// A message published on one connection reaches a subscriber on another.
pub async fn publish_reaches_other_connection<B: Backplane>(connect: &impl Connect<B>) {
    const CHECK: &str = "publish_reaches_other_connection";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let channel = namespace();
    let mut subscription = ok(one.subscribe(&channel).await, CHECK, "subscribe");
    ok(
        other.publish(&channel, b"hello".to_vec()).await,
        CHECK,
        "publish",
    );
    let got = next(CHECK, "the other connection", &mut subscription).await;
    same(CHECK, "the message received", &got, &b"hello".to_vec());
}

/// A message reaches every subscriber of its channel (several on one
/// connection, one on another, the publisher's own included), and no
/// subscriber of another channel.
pub async fn publish_reaches_every_subscriber<B: Backplane>(connect: &impl Connect<B>) {
    const CHECK: &str = "publish_reaches_every_subscriber";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let (channel, elsewhere) = (namespace(), namespace());
    let mut subscribers = Vec::new();
    for (who, store) in [
        ("a subscriber of the publisher's connection", &one),
        ("a second subscriber of the publisher's connection", &one),
        ("a subscriber of another connection", &other),
    ] {
        subscribers.push((who, ok(store.subscribe(&channel).await, CHECK, "subscribe")));
    }
    let mut apart = ok(other.subscribe(&elsewhere).await, CHECK, "subscribe");
    ok(
        one.publish(&channel, b"first".to_vec()).await,
        CHECK,
        "publish",
    );
    ok(
        one.publish(&elsewhere, b"apart".to_vec()).await,
        CHECK,
        "publish",
    );
    for (who, subscription) in &mut subscribers {
        let got = next(CHECK, who, subscription).await;
        same(
            CHECK,
            &format!("the message {who} received"),
            &got,
            &b"first".to_vec(),
        );
    }
    // The other channel's subscriber gets its own message, not the first.
    let got = next(CHECK, "the other channel's subscriber", &mut apart).await;
    same(
        CHECK,
        "the message of another channel",
        &got,
        &b"apart".to_vec(),
    );
}

/// Dropping a subscription is not an error: publishing (with or without a
/// subscriber) still works and a new subscription on the same connection
/// receives what is published after it.
pub async fn subscription_end_is_clean<B: Backplane>(connect: &impl Connect<B>) {
    const CHECK: &str = "subscription_end_is_clean";
    let (one, other) = (connect.connect().await, connect.connect().await);
    let channel = namespace();
    let first = ok(one.subscribe(&channel).await, CHECK, "subscribe");
    drop(first);
    ok(
        other.publish(&channel, b"nobody".to_vec()).await,
        CHECK,
        "publish without subscribers",
    );
    let mut again = ok(one.subscribe(&channel).await, CHECK, "subscribe again");
    ok(
        other.publish(&channel, b"again".to_vec()).await,
        CHECK,
        "publish",
    );
    let mut got = next(CHECK, "a new subscription", &mut again).await;
    // A message published before `subscribe` returned may still arrive (in
    // a cluster, PUBLISH reaches the other nodes over the cluster bus, after
    // the publisher has its answer): the contract promises the later ones.
    if got == b"nobody" {
        got = next(CHECK, "a new subscription", &mut again).await;
    }
    same(
        CHECK,
        "the message a new subscription received",
        &got,
        &b"again".to_vec(),
    );
}
