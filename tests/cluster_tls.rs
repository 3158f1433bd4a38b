//! The remote tier on a real 3-master Redis Cluster that speaks TLS only
//! (`rediss://`, `port 0`, `tls-cluster yes`), trusting the harness's private
//! test CA. The nodes have no plain port, so anything that works here went
//! over TLS, discovered nodes included. (The `tls` feature of cache-runtime
//! is always on in this package, see Cargo.toml.)

use std::time::{Duration, Instant};

use cache_runtime::{cached, Cache};
use integration_tests::cluster_scenario::{backplane_reaches, spread_share_and_invalidate, user};
use integration_tests::redis_harness::RedisCluster;
use integration_tests::{not_connected_because, Calls};
use tokio::time::sleep;

async fn cache(cluster: &RedisCluster, ns: &str, memory: bool) -> Cache {
    // Debug-build TLS handshakes on a loaded 2-core machine can take longer
    // than the default 250 ms.
    let builder = Cache::builder()
        .namespace(ns)
        .redis_cluster(cluster.urls())
        .redis_tls_root_ca(cluster.ca_pem())
        .remote_timeout(Duration::from_secs(2));
    let builder = if memory {
        builder.memory(1000)
    } else {
        builder
    };
    builder
        .build()
        .await
        .expect("connect to the TLS test cluster with its CA")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_shares_entries_and_invalidates_across_slots() {
    let cluster = RedisCluster::start_tls(3);
    assert!(
        cluster.urls().iter().all(|u| u.starts_with("rediss://")),
        "{:?}",
        cluster.urls()
    );
    let a = cache(&cluster, "tlscl", false).await;
    let b = cache(&cluster, "tlscl", true).await;

    spread_share_and_invalidate(&cluster, &a, &b).await;
    assert_eq!(b.stats().remote_hits, 60);

    // The manual API, across the two caches.
    for i in 0..30u32 {
        a.set(&format!("manual:{i}"), i * 7).await.unwrap();
    }
    for i in 0..30u32 {
        assert_eq!(
            b.get::<u32>(&format!("manual:{i}")).await.unwrap(),
            Some(i * 7),
            "manual entry {i} set by a, read by b"
        );
    }

    // b's backplane subscribed over TLS (with the CA), so b trusts its memory
    // tier: a second read is a memory hit. (Unsubscribed, every read would go
    // to the cluster.)
    let started = Instant::now();
    loop {
        let before = b.stats();
        user(&b, 5, 2).await;
        let after = b.stats();
        if after.hits > before.hits && after.remote_hits == before.remote_hits {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "b's backplane never subscribed over TLS: {after:?}"
        );
        sleep(Duration::from_millis(50)).await;
    }

    // The backplane's messages reach b's memory tier.
    backplane_reaches(&a, &b, Duration::from_secs(2)).await;

    for cache in [&a, &b] {
        let health = cache.health().await.expect("a remote tier");
        assert!(health.connected, "{health:?}");
        assert_eq!(cache.stats().store_errors, 0, "{:?}", cache.stats());
    }
}

#[tokio::test]
async fn a_tls_cluster_is_refused_without_its_ca_or_without_tls() {
    let cluster = RedisCluster::start_tls(3);
    // The system's roots do not know the test CA: the cache starts without
    // its remote tier (the contract's "Availability"), and says why.
    let untrusted = Cache::builder()
        .redis_cluster(cluster.urls())
        .build()
        .await
        .expect("starts degraded");
    let message = not_connected_because(&untrusted).await;
    assert!(message.contains("certificate"), "{message}");

    // Plain TCP to the TLS-only ports fails too.
    let plain: Vec<String> = cluster
        .urls()
        .iter()
        .map(|u| u.replacen("rediss://", "redis://", 1))
        .collect();
    let plain_cache = Cache::builder()
        .redis_cluster(plain.clone())
        .build()
        .await
        .expect("starts degraded");
    not_connected_because(&plain_cache).await;

    // A root CA with a `redis://` URL is a configuration mistake: an Err.
    let result = Cache::builder()
        .redis_cluster(plain)
        .redis_tls_root_ca(cluster.ca_pem())
        .build()
        .await;
    assert!(result.is_err(), "a root CA with redis:// URLs");

    // A CA that is not PEM: an Err.
    let result = Cache::builder()
        .redis_cluster(cluster.urls())
        .redis_tls_root_ca(b"not a certificate".to_vec())
        .build()
        .await;
    assert!(result.is_err(), "a garbage root CA");
}

static AUTHED: Calls = Calls::new();
#[cached(cache = cache, key = "secret:{x}", ttl = "1h")]
async fn authed(cache: &Cache, x: u64) -> u64 {
    AUTHED.hit();
    x + 1
}

#[tokio::test]
async fn a_tls_cluster_with_a_password_takes_it_from_the_urls() {
    let password = "tls-cluster-s3cret";
    let cluster = RedisCluster::start_tls_with_password(3, password);
    let connect = |urls: Vec<String>| {
        Cache::builder()
            .namespace("tlspw")
            .redis_cluster(urls)
            .redis_tls_root_ca(cluster.ca_pem())
            .remote_timeout(Duration::from_secs(2))
            .build()
    };
    let a = connect(cluster.urls()).await.expect("the right password");
    let b = connect(cluster.urls()).await.expect("the right password");
    for x in 0..20 {
        assert_eq!(authed(&a, x).await, x + 1);
    }
    for x in 0..20 {
        assert_eq!(authed(&b, x).await, x + 1);
    }
    assert_eq!(AUTHED.get(), 20, "b read a's entries");
    assert!(cluster.dbsize_per_node().iter().all(|n| *n > 0));

    // A wrong password is an Err that names neither password.
    let wrong = "wr0ng-pa55word";
    let urls: Vec<String> = cluster
        .urls()
        .iter()
        .map(|u| u.replacen(password, wrong, 1))
        .collect();
    assert!(urls.iter().all(|u| u.contains(wrong)), "{urls:?}");
    // A wrong password starts the cache without its remote tier, with a
    // reason that names neither password.
    let degraded = connect(urls).await.expect("starts degraded");
    let text = not_connected_because(&degraded).await;
    let report = format!("{:?}", degraded.health_report().await);
    assert!(
        !text.contains(wrong) && !report.contains(wrong) && !report.contains(password),
        "the report shows a password: {report}"
    );

    // No password at all: refused as well.
    let bare: Vec<String> = cluster
        .urls()
        .iter()
        .map(|u| u.replacen(&format!(":{password}@"), "", 1))
        .collect();
    let bare = connect(bare).await.expect("starts degraded");
    not_connected_because(&bare).await;
}
