//! The service example with PostgreSQL as its only cache tier (no Redis):
//! `CACHE_POSTGRES_URL` and `CACHE_MEMORY_CAPACITY=0`, so that a cached
//! response can only come from the cache's PostgreSQL tables.

use std::time::Duration;

use integration_tests::pg_harness::PgDatabase;
use integration_tests::service_process::ServiceProcess;
use integration_tests::within;

async fn user_queries(service: &ServiceProcess) -> f64 {
    service
        .counter("service_db_queries_total", &[("query", "user")])
        .await
}

/// Storage-only on PostgreSQL: the app's database holds the cache's tables
/// too (one server, no Redis).
fn start(db: &PgDatabase) -> ServiceProcess {
    ServiceProcess::start(
        &db.url(),
        &[
            ("CACHE_POSTGRES_URL", &db.url()),
            ("CACHE_MEMORY_CAPACITY", "0"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_get_is_served_from_the_postgres_cache() {
    let db = PgDatabase::start();
    let service = start(&db);

    // The tier connects at start; polled, as /health's ping may be slow on
    // a loaded machine.
    let connected = within!(Duration::from_secs(10), {
        let body = service.get("/health").await.json().expect("JSON");
        body["remote"]["connected"] == true
    });
    assert!(
        connected.is_some(),
        "the PostgreSQL tier is not connected: {}",
        service.get("/health").await.body
    );

    let before = user_queries(&service).await;
    let first = service.get("/users/7").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json().unwrap()["id"], 7);
    let after_first = user_queries(&service).await;
    assert_eq!(after_first, before + 1.0, "the first GET queries the app");

    let second = service.get("/users/7").await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, first.body);
    assert_eq!(
        user_queries(&service).await,
        after_first,
        "the second GET is served from the cache (no memory tier: PostgreSQL)"
    );
    let entries = db.sql("SELECT count(*) FROM cache_runtime_entries");
    assert_ne!(entries.trim(), "0", "no entry in the cache's table");

    // Another process on the same database finds the entry there.
    let other = start(&db);
    let shared = other.get("/users/7").await;
    assert_eq!(shared.body, first.body);
    assert_eq!(user_queries(&other).await, 0.0, "read from PostgreSQL");
}
