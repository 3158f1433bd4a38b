//! A storage-only `#[cached]` hit on the PostgreSQL tier (100-byte value, no
//! tags: one prepared `SELECT` by primary key) against a raw prepared
//! `SELECT` by primary key of the same bytes through an identical pool
//! (deadpool-postgres, 16 connections, statements cached per connection),
//! sequentially. The bench starts its own PostgreSQL (initdb + postgres on a
//! free loopback port, in a temporary directory; as the `postgres` user when
//! run as root) and stops it at the end.
//!
//! Before criterion's groups (which run one side after the other, so that a
//! drift of the shared machine lands on one side only), it alternates short
//! rounds of the three sides in one process and prints their medians and the
//! median of the per-round ratios (`PG_RATIO_ROUNDS`, default 21 rounds of
//! 300 sequential calls each).
//!
//! `cargo bench -p cache-runtime --features postgres --bench postgres_hit`

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cache_runtime::store::postgres::PostgresStore;
use cache_runtime::{cached, Cache};
use criterion::{criterion_group, criterion_main, Criterion};
use deadpool_postgres::{Manager, ManagerConfig, Pool, QueueMode, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

/// A private PostgreSQL, stopped on drop.
struct Pg {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// The directory of `initdb` and `postgres` (Debian's layout, newest first).
fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is needed for this bench: apt-get install postgresql")
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    found.sort();
    found.pop().expect("no /usr/lib/postgresql/<version>/bin").1
}

/// The `postgres` user's uid and gid when this runs as root.
fn run_as() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

impl Pg {
    fn start() -> Pg {
        use std::os::unix::process::CommandExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(format!("cache-bench-pg-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench dir");
        let user = run_as();
        let command = |program: &str| {
            let mut cmd = Command::new(bin_dir().join(program));
            if let Some((uid, gid)) = user {
                cmd.uid(uid).gid(gid).env("HOME", "/tmp");
            }
            cmd
        };
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown");
        }
        let done = command("initdb")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("initdb");
        assert!(done.success(), "initdb failed");
        let child = command("postgres")
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("postgres");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "postgres did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Accepting TCP is not accepting queries yet: the store's connect retries.
        Pg { child, port, dir }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The 100-byte value both sides read.
fn value() -> String {
    "v".repeat(100)
}

#[cached(cache = cache, key = "item:{id}", ttl = "1h")]
async fn item(cache: &Cache, id: u64) -> String {
    let _ = id;
    value()
}

/// The raw side's pool: as the store's (see `store/postgres/pool.rs`).
fn raw_pool(url: &str) -> Pool {
    let config: tokio_postgres::Config = url.parse().expect("url");
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(16)
        .queue_mode(QueueMode::Lifo)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_millis(250)))
        .create_timeout(Some(Duration::from_millis(250)))
        .recycle_timeout(Some(Duration::from_millis(250)))
        .build()
        .expect("pool")
}

/// The store's hit statement (`store/postgres/sql.rs`, `FETCH_ONE`).
const STORE_SQL: &str = "SELECT value FROM cache_runtime_entries WHERE key = $1 AND expires_at > (extract(epoch from clock_timestamp()) * 1000)::int8";

/// The key the cached function's entry is stored under.
fn cache_key(rt: &tokio::runtime::Runtime, raw: &Pool) -> Vec<u8> {
    rt.block_on(async {
        let client = raw.get().await.expect("client");
        let row = client
            .query_one("SELECT key FROM cache_runtime_entries LIMIT 1", &[])
            .await
            .expect("the entry");
        row.get(0)
    })
}

const RAW: &str = "SELECT value FROM raw_items WHERE key = $1";

fn hit(c: &mut Criterion) {
    let pg = Pg::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (cache, raw) = rt.block_on(async {
        let started = Instant::now();
        let store = loop {
            match PostgresStore::options()
                .timeout(Duration::from_secs(2))
                .connect(&pg.url())
                .await
            {
                Ok(store) => break store,
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot connect: {e}"),
            }
        };
        let cache = Cache::builder()
            .namespace("bench")
            .store(store)
            .build()
            .await
            .expect("cache");
        item(&cache, 1).await;
        let raw = raw_pool(&pg.url());
        let client = raw.get().await.expect("client");
        client
            .batch_execute(
                "CREATE UNLOGGED TABLE IF NOT EXISTS raw_items (key bytea PRIMARY KEY, value bytea NOT NULL)",
            )
            .await
            .expect("create");
        client
            .execute(
                "INSERT INTO raw_items VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&b"raw:item:1".as_slice(), &value().as_bytes()],
            )
            .await
            .expect("insert");
        drop(client);
        (cache, raw)
    });
    // Statements per hit, from the server's count of transactions (each
    // statement outside a transaction is one); its stats lag up to a second.
    let commits = || {
        rt.block_on(async {
            let client = raw.get().await.expect("client");
            let row = client
                .query_one(
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
                    &[],
                )
                .await
                .expect("stats");
            row.get::<_, i64>(0)
        })
    };
    let before = (cache.stats(), commits());
    rt.block_on(async {
        for _ in 0..1000 {
            item(&cache, 1).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let after = (cache.stats(), commits());
    assert_eq!(
        after.0.remote_hits - before.0.remote_hits,
        1000,
        "every call is a remote hit"
    );
    println!(
        "transactions for 1000 storage-only hits: {} (the count's own included)",
        after.1 - before.1
    );

    let key = cache_key(&rt, &raw);
    alternate(&rt, &raw, &cache, &key);

    let mut group = c.benchmark_group("postgres_hit_sequential");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("raw_select", |b| {
        b.to_async(&rt).iter(|| async {
            let client = raw.get().await.expect("client");
            let statement = client.prepare_cached(RAW).await.expect("prepare");
            let row = client
                .query_opt(&statement, &[&b"raw:item:1".as_slice()])
                .await
                .expect("select")
                .expect("a row");
            let bytes: Vec<u8> = row.get(0);
            String::from_utf8(bytes).expect("utf8")
        })
    });
    // The store's own statement, raw: what the server's side of a hit costs.
    group.bench_function("raw_store_statement", |b| {
        b.to_async(&rt).iter(|| async {
            let client = raw.get().await.expect("client");
            let statement = client.prepare_cached(STORE_SQL).await.expect("prepare");
            let row = client
                .query_opt(&statement, &[&key.as_slice()])
                .await
                .expect("select")
                .expect("a row");
            let bytes: Vec<u8> = row.get(0);
            bytes
        })
    });
    group.bench_function("cached_storage_only", |b| {
        b.to_async(&rt).iter(|| item(&cache, 1))
    });
    group.finish();
}

/// One raw prepared `SELECT` of `sql` with `key` through `raw`.
async fn raw_select(raw: &Pool, sql: &str, key: &[u8]) -> Vec<u8> {
    let client = raw.get().await.expect("client");
    let statement = client.prepare_cached(sql).await.expect("prepare");
    let row = client
        .query_opt(&statement, &[&key])
        .await
        .expect("select")
        .expect("a row");
    row.get(0)
}

/// Calls per side per alternated round.
const PER_ROUND: u32 = 300;

/// This thread's CPU time in nanoseconds (Linux `schedstat`; 0 elsewhere):
/// the current-thread runtime runs the client and its connections' tasks
/// here, so it is the client's whole CPU cost.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Wall and client CPU microseconds per call of `PER_ROUND` sequential
/// calls of `call`.
fn round<F: std::future::Future>(rt: &tokio::runtime::Runtime, call: impl Fn() -> F) -> (f64, f64) {
    rt.block_on(async {
        let cpu = thread_cpu_ns();
        let started = Instant::now();
        for _ in 0..PER_ROUND {
            std::hint::black_box(call().await);
        }
        let wall = started.elapsed().as_secs_f64() * 1e6 / f64::from(PER_ROUND);
        let cpu = (thread_cpu_ns() - cpu) as f64 / 1e3 / f64::from(PER_ROUND);
        (wall, cpu)
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Alternated rounds of the raw `SELECT`, the store's statement raw and the
/// cached hit; prints the medians, the median per-round ratio of the cached
/// hit to the raw `SELECT`, and the load average.
fn alternate(rt: &tokio::runtime::Runtime, raw: &Pool, cache: &Cache, key: &[u8]) {
    let rounds: usize = std::env::var("PG_RATIO_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(21);
    let (mut plain, mut store, mut cached, mut ratios) = (vec![], vec![], vec![], vec![]);
    let (mut plain_cpu, mut store_cpu, mut cached_cpu) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        let (p, pc) = round(rt, || raw_select(raw, RAW, b"raw:item:1"));
        let (s, sc) = round(rt, || raw_select(raw, STORE_SQL, key));
        let (c, cc) = round(rt, || item(cache, 1));
        plain.push(p);
        store.push(s);
        cached.push(c);
        ratios.push(c / p);
        plain_cpu.push(pc);
        store_cpu.push(sc);
        cached_cpu.push(cc);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "alternated, {rounds} rounds of {PER_ROUND}: raw SELECT {:.1} µs, store's statement raw {:.1} µs, \
         #[cached] storage-only {:.1} µs; median ratio cached/raw {:.2}x; client CPU per call \
         {:.1} / {:.1} / {:.1} µs (load average {})",
        median(plain),
        median(store),
        median(cached),
        median(ratios),
        median(plain_cpu),
        median(store_cpu),
        median(cached_cpu),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
}

criterion_group!(benches, hit);
criterion_main!(benches);
