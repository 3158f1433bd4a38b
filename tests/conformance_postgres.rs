//! The conformance suite against the public PostgreSQL store
//! (`cache_runtime::store::postgres::PostgresStore`), store and backplane,
//! through the public interface only, on a private server of the harness.
//! Each connection the suite opens is a new `PostgresStore` (a pool of its
//! own), as a new process would make.

use std::time::{Duration, Instant};

use cache_runtime::store::conformance;
use cache_runtime::store::postgres::PostgresStore;
use integration_tests::pg_harness::PgDatabase;

/// The suite's bound for one store (as Redis': under ~10 s).
const BOUND: Duration = Duration::from_secs(10);

/// A new connection to the database at `url`; a generous timeout, as the
/// machine running the tests may be busy.
async fn connect(url: String) -> PostgresStore {
    PostgresStore::options()
        .timeout(Duration::from_secs(2))
        .connect(&url)
        .await
        .expect("connect to the test database")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_suite() {
    let db = PgDatabase::start();
    let url = db.url();
    let started = Instant::now();
    conformance::run_all(|| connect(url.clone())).await;
    let took = started.elapsed();
    println!("the suite took {took:?}");
    assert!(took < BOUND, "the suite took {took:?}");
    // The cross-process promises, through two caches on this database.
    conformance::run_cache(|| connect(url.clone())).await;
}

/// A namespace or key that looks like SQL is only data: every value is a
/// bound parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_look_like_sql_are_data() {
    use cache_runtime::store::{EntryStore, ScanNode, ScanStore};
    let db = PgDatabase::start();
    let store = connect(db.url()).await;
    let key = "ns:'); DROP TABLE cache_runtime_entries; --";
    store
        .put(key, b"v".to_vec(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        store.fetch_many(&[key.to_string()]).await.unwrap(),
        vec![Some(b"v".to_vec())]
    );
    let nodes = store.scan_nodes().await.unwrap();
    let (_, found) = nodes[0].scan(0, "ns:'*", 100).await.unwrap();
    assert_eq!(found, vec![key.to_string()]);
    assert_eq!(
        db.sql("SELECT count(*) FROM cache_runtime_entries").trim(),
        "1"
    );
}
