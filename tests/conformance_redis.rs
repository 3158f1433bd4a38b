//! The conformance suite against the public Redis store
//! (`cache_runtime::store::redis::RedisStore`), store and backplane, through
//! the public interface only: a standalone server, one with a password, and
//! a 3-master cluster. Each connection the suite opens is a new
//! `RedisStore`, as a new process would make.

use std::time::{Duration, Instant};

use cache_runtime::store::conformance;
use cache_runtime::store::redis::RedisStore;
use integration_tests::redis_harness::{RedisCluster, RedisServer};

/// The suite's bound for one store (issue 17: under ~10 s each).
const BOUND: Duration = Duration::from_secs(10);

/// A new connection to the standalone server at `url`.
async fn connect(url: String) -> RedisStore {
    RedisStore::connect(&url)
        .await
        .expect("connect to the test server")
}

/// A new connection to the cluster seeded by `urls`.
async fn connect_cluster(urls: Vec<String>) -> RedisStore {
    RedisStore::options()
        .timeout(Duration::from_secs(1))
        .connect_cluster(urls)
        .await
        .expect("connect to the test cluster")
}

async fn standalone(url: String) {
    let started = Instant::now();
    conformance::run_all(|| connect(url.clone())).await;
    let took = started.elapsed();
    println!("the suite took {took:?}");
    assert!(took < BOUND, "the suite took {took:?}");
    // The cross-process promises, through two caches on this server.
    conformance::run_cache(|| connect(url.clone())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_standalone_passes_the_suite() {
    let server = RedisServer::start();
    standalone(server.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_with_a_password_passes_the_suite() {
    let server = RedisServer::start_with_password("conformance-secret");
    standalone(server.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_passes_the_suite() {
    let cluster = RedisCluster::start(3);
    let urls = cluster.urls();
    let started = Instant::now();
    conformance::run_all(|| connect_cluster(urls.clone())).await;
    let took = started.elapsed();
    println!("the suite took {took:?}");
    assert!(took < BOUND, "the suite took {took:?}");
    conformance::run_cache(|| connect_cluster(urls.clone())).await;
}

/// A wrong password is refused at connection, without showing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_without_showing_it() {
    let server = RedisServer::start_with_password("right-one");
    let url = format!("redis://:wrong-one@127.0.0.1:{}/", server.port());
    let error = match RedisStore::connect(&url).await {
        Ok(_) => panic!("a wrong password connected"),
        Err(error) => error.to_string(),
    };
    assert!(!error.contains("wrong-one"), "{error}");
}

/// Over TLS with the server's own CA (`RedisStore::options().tls_root_ca`);
/// without it, connecting fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_over_tls_passes_the_suite() {
    let server = RedisServer::start_tls();
    let (url, ca) = (server.tls_url(), server.ca_pem());
    assert!(
        RedisStore::connect(&url).await.is_err(),
        "a private CA was trusted without being given"
    );
    let started = Instant::now();
    conformance::run_all(|| {
        let (url, ca) = (url.clone(), ca.clone());
        async move {
            RedisStore::options()
                .tls_root_ca(ca)
                .connect(&url)
                .await
                .expect("connect to the test server over TLS")
        }
    })
    .await;
    let took = started.elapsed();
    println!("the suite took {took:?}");
    assert!(took < BOUND, "the suite took {took:?}");
}
