//! The chaos test's worker process: `chaos-worker <index> <proxy-url>
//! <direct-url> <db-url>`. For each `run <first-seed> <count> <start-us>` line
//! on stdin it builds one cache per schedule (through the fault proxy at
//! `proxy-url`), runs that schedule's operations for this worker (derived
//! from the seed, see `chaos_plan`) from `start-us` on, prints one event line
//! per operation and then `done`. `direct-url` reaches the cache's Redis
//! without the proxy (for invalidations whose message is lost); `db-url` is
//! the "database", a separate Redis that no fault touches.

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_runtime::{cached, Cache};
use integration_tests::chaos_plan::{self, now_us, Event, Mode, Op, OpKind};
use redis::aio::MultiplexedConnection;
use tokio::task::JoinSet;

/// A tag bump as the library makes it (never repeating a version), without
/// its backplane message.
const BUMP: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  local now = redis.call('TIME')
  redis.call('SET', KEYS[1], now[1] .. string.format('%06d', tonumber(now[2])))
end
return redis.call('INCR', KEYS[1])
";

/// A call that takes longer than this hangs: check (c) counts it.
const HANG: Duration = Duration::from_secs(5);

/// The database: versions per item, in a Redis no fault touches.
#[derive(Clone)]
struct Db {
    conn: MultiplexedConnection,
    namespace: String,
}

impl Db {
    fn key(&self, item: u32) -> String {
        format!("db:{}:item:{item}", self.namespace)
    }

    async fn version(&self, item: u32) -> Result<u64, String> {
        let mut conn = self.conn.clone();
        redis::cmd("GET")
            .arg(self.key(item))
            .query_async::<Option<u64>>(&mut conn)
            .await
            .map(|v| v.unwrap_or(0))
            .map_err(|e| format!("db GET: {e}"))
    }

    async fn bump(&self, item: u32) -> Result<u64, String> {
        let mut conn = self.conn.clone();
        redis::cmd("INCR")
            .arg(self.key(item))
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("db INCR: {e}"))
    }
}

/// The function under test: a load of random duration that returns the
/// item's database version.
#[cached(cache = cache, key = "item:{item}", tags = ["item:{item}"], ttl = "30s")]
async fn read_item(
    cache: &Cache,
    db: &Db,
    item: u32,
    before_ms: u64,
    after_ms: u64,
) -> Result<u64, String> {
    tokio::time::sleep(Duration::from_millis(before_ms)).await;
    let version = db.version(item).await?;
    tokio::time::sleep(Duration::from_millis(after_ms)).await;
    Ok(version)
}

struct Urls {
    proxy: String,
    direct: String,
}

async fn build(mode: Mode, namespace: &str, urls: &Urls) -> Result<Cache, String> {
    let mut builder = Cache::builder().namespace(namespace);
    if mode.memory() {
        builder = builder.memory(1_000);
    }
    if mode.shared() {
        builder = builder.redis(urls.proxy.as_str());
    }
    if let Some(known) = mode.known_tags() {
        builder = builder.known_tag_versions(known);
    }
    builder.build().await.map_err(|e| e.to_string())
}

/// Runs one operation and returns its event, if it makes one.
async fn run_op(
    seed: u64,
    worker: u64,
    op: Op,
    cache: Cache,
    db: Db,
    direct: redis::Client,
) -> Option<Event> {
    let item = op.item;
    let failed = |what: String| Event::Failed { seed, worker, what };
    match op.kind {
        OpKind::Read {
            before_ms,
            after_ms,
        } => {
            let start = now_us();
            let got =
                tokio::time::timeout(HANG, read_item(&cache, &db, item, before_ms, after_ms)).await;
            let end = now_us();
            Some(match got {
                Ok(Ok(value)) => Event::Read {
                    seed,
                    worker,
                    item,
                    start,
                    end,
                    value,
                },
                Ok(Err(e)) => failed(format!("read of item {item} returned Err: {e}")),
                Err(_) => failed(format!("read of item {item} hung for {HANG:?}")),
            })
        }
        OpKind::Write => {
            let version = match db.bump(item).await {
                Ok(v) => v,
                Err(e) => return Some(failed(format!("write of item {item}: {e}"))),
            };
            let tag = format!("item:{item}");
            let got = tokio::time::timeout(HANG, cache.invalidate_tags([tag])).await;
            let end = now_us();
            Some(match got {
                Ok(result) => Event::Write {
                    seed,
                    worker,
                    item,
                    version,
                    end,
                    ok: result.is_ok(),
                },
                Err(_) => failed(format!("invalidation of item {item} hung for {HANG:?}")),
            })
        }
        OpKind::External => {
            let version = match db.bump(item).await {
                Ok(v) => v,
                Err(e) => return Some(failed(format!("external write of item {item}: {e}"))),
            };
            // The tag's counter, as `invalidate_tags` would bump it, but with
            // no PUBLISH. Unconfirmed (Redis down): no event, nothing checked.
            // Like the library's bump, a missing counter (Redis restarted
            // empty) starts at the server's clock in microseconds, so that
            // versions never repeat: a plain INCR would start again at 1,
            // and an entry written with an old 1 would match it.
            let key = format!("{}#tag:item:{item}", cache.namespace());
            let bumped = tokio::time::timeout(Duration::from_millis(500), async {
                let mut conn = direct.get_multiplexed_async_connection().await?;
                redis::Script::new(BUMP)
                    .key(&key)
                    .invoke_async::<u64>(&mut conn)
                    .await
            })
            .await;
            matches!(bumped, Ok(Ok(_))).then(|| Event::External {
                seed,
                worker,
                item,
                version,
                end: now_us(),
            })
        }
    }
}

/// Runs schedule `seed`'s operations of this worker, from `start_us` on.
async fn run_schedule(
    seed: u64,
    worker: u64,
    start_us: u64,
    cache: Cache,
    db: Db,
    direct: redis::Client,
    out: Arc<Mutex<Vec<String>>>,
) {
    let mut ops = JoinSet::new();
    for op in chaos_plan::ops(seed, worker) {
        let at = start_us + op.at_ms * 1_000;
        let wait = Duration::from_micros(at.saturating_sub(now_us()));
        let (cache, db, direct) = (cache.clone(), db.clone(), direct.clone());
        ops.spawn(async move {
            tokio::time::sleep(wait).await;
            run_op(seed, worker, op, cache, db, direct).await
        });
    }
    while let Some(done) = ops.join_next().await {
        let line = match done {
            Ok(Some(event)) => event.to_string(),
            Ok(None) => continue,
            Err(e) => Event::Failed {
                seed,
                worker,
                what: format!("an operation panicked: {e}"),
            }
            .to_string(),
        };
        out.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }
}

async fn run_batch(worker: u64, first: u64, count: u64, start_us: u64, urls: &Urls, db_url: &str) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let direct = match redis::Client::open(urls.direct.as_str()) {
        Ok(c) => c,
        Err(e) => {
            println!("S {first} {worker} direct client: {e}");
            println!("done");
            return;
        }
    };
    let db_conn = match redis::Client::open(db_url) {
        Ok(client) => client.get_multiplexed_async_connection().await,
        Err(e) => Err(e),
    };
    let db_conn = match db_conn {
        Ok(c) => c,
        Err(e) => {
            println!("S {first} {worker} database connection: {e}");
            println!("done");
            return;
        }
    };
    // Build every schedule's cache first, concurrently, before the start.
    let mut builds = JoinSet::new();
    for seed in first..first + count {
        let namespace = format!("chaos{seed}");
        let mode = Mode::of(seed);
        let urls = Urls {
            proxy: urls.proxy.clone(),
            direct: urls.direct.clone(),
        };
        builds.spawn(async move {
            (
                seed,
                namespace.clone(),
                build(mode, &namespace, &urls).await,
            )
        });
    }
    let mut schedules = JoinSet::new();
    while let Some(built) = builds.join_next().await {
        let Ok((seed, namespace, cache)) = built else {
            println!("S {first} {worker} a cache build panicked");
            continue;
        };
        let cache = match cache {
            Ok(cache) => cache,
            Err(e) => {
                // Not a check: `build` may fail; the schedule runs without
                // this worker.
                println!("S {seed} {worker} build failed: {e}");
                continue;
            }
        };
        let db = Db {
            conn: db_conn.clone(),
            namespace,
        };
        let (direct, out) = (direct.clone(), out.clone());
        schedules.spawn(run_schedule(seed, worker, start_us, cache, db, direct, out));
    }
    while schedules.join_next().await.is_some() {}
    let lines = std::mem::take(&mut *out.lock().unwrap_or_else(|p| p.into_inner()));
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    for line in lines {
        let _ = writeln!(stdout, "{line}");
    }
    let _ = writeln!(stdout, "done");
    let _ = stdout.flush();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, worker, proxy, direct, db_url] = args.as_slice() else {
        eprintln!("usage: chaos-worker <index> <proxy-url> <direct-url> <db-url>");
        std::process::exit(2);
    };
    let Ok(worker) = worker.parse::<u64>() else {
        eprintln!("chaos-worker: bad index {worker}");
        std::process::exit(2);
    };
    let urls = Urls {
        proxy: proxy.clone(),
        direct: direct.clone(),
    };
    // stdin is read on a plain thread: a blocking read must not hold up the
    // runtime's workers.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["run", first, count, start] => {
                let (Ok(first), Ok(count), Ok(start)) =
                    (first.parse(), count.parse(), start.parse())
                else {
                    eprintln!("chaos-worker: bad command {line:?}");
                    std::process::exit(2);
                };
                run_batch(worker, first, count, start, &urls, db_url).await;
            }
            ["quit"] => return,
            _ => {
                eprintln!("chaos-worker: unknown command {line:?}");
                std::process::exit(2);
            }
        }
    }
}
