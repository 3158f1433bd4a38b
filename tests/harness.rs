//! Self-test of the Redis test harness (`integration_tests::redis_harness`):
//! every feature the other tests rely on, against real `redis-server`s.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use integration_tests::redis_harness::{RedisCluster, RedisServer};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, AsyncConnectionConfig, RedisResult};

/// Bound on any single client call in these tests.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn manager_config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(OP_TIMEOUT))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(Duration::from_millis(200))
}

async fn manager(url: &str, response_timeout: Duration) -> ConnectionManager {
    let client = redis::Client::open(url).unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        ConnectionManager::new_with_config(client, manager_config(response_timeout)),
    )
    .await
    .expect("ConnectionManager::new timed out")
    .expect("ConnectionManager::new failed")
}

/// A fresh multiplexed connection to `url`, then PING.
async fn ping_url(url: &str) -> RedisResult<String> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(OP_TIMEOUT))
        .set_response_timeout(Some(OP_TIMEOUT));
    let work = async {
        let mut con = redis::Client::open(url)?
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("PING").query_async::<String>(&mut con).await
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .expect("ping_url is bounded by the client timeouts")
}

async fn ping(con: &mut ConnectionManager) -> RedisResult<String> {
    redis::cmd("PING").query_async(con).await
}

/// Retries `op` until it succeeds, for at most `limit`.
async fn eventually<T, F, Fut>(limit: Duration, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = RedisResult<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout(OP_TIMEOUT, op()).await {
            Ok(Ok(v)) => return v,
            Ok(Err(e)) if Instant::now() >= deadline => {
                panic!("still failing after {limit:?}: {e}")
            }
            Err(_) if Instant::now() >= deadline => panic!("still timing out after {limit:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn standalone_ping_set_get_and_cli() {
    let server = RedisServer::start();
    let port = server.port();
    assert_ne!(port, 6379, "never the machine's own Redis");
    assert!(port < 55_535);
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}/"));

    let mut con = manager(&server.url(), OP_TIMEOUT).await;
    assert_eq!(ping(&mut con).await.unwrap(), "PONG");
    let () = con.set("greeting", "hello").await.unwrap();
    let got: String = con.get("greeting").await.unwrap();
    assert_eq!(got, "hello");
    let missing: Option<String> = con.get("nope").await.unwrap();
    assert_eq!(missing, None);

    // redis-cli sees the same server, and the settings the harness promises.
    assert_eq!(server.cli(&["GET", "greeting"]).trim(), "hello");
    assert_eq!(server.cli(&["TYPE", "greeting"]).trim(), "string");
    assert_eq!(server.dbsize(), 1);
    assert_eq!(server.cli(&["CONFIG", "GET", "save"]), "save\n\n");
    assert_eq!(
        server.cli(&["CONFIG", "GET", "appendonly"]),
        "appendonly\nno\n"
    );
    assert_eq!(server.cli(&["CONFIG", "GET", "bind"]), "bind\n127.0.0.1\n");
    assert_eq!(server.cli(&["DEBUG", "SLEEP", "0"]).trim(), "OK");
    assert!(server
        .cli(&["INFO", "commandstats"])
        .contains("cmdstat_set:calls=1"));
    // Error replies come back as text, they do not panic.
    assert!(server
        .cli(&["LPUSH", "greeting", "x"])
        .starts_with("WRONGTYPE"));
    // Arbitrary bytes as arguments.
    {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let garbage = OsStr::from_bytes(b"\xff\xfe garbage");
        assert_eq!(
            server
                .cli(&[OsStr::new("SET"), OsStr::new("junk"), garbage])
                .trim(),
            "OK"
        );
        let raw: Vec<u8> = con.get("junk").await.unwrap();
        assert_eq!(raw, b"\xff\xfe garbage");
    }
    assert!(server.log_tail(50).contains("Ready to accept connections"));
}

#[tokio::test]
async fn password_server_requires_the_password() {
    let pw = "p@ss:w/rd x";
    let server = RedisServer::start_with_password(pw);
    let port = server.port();
    assert_eq!(
        server.url(),
        format!("redis://:p%40ss%3Aw%2Frd%20x@127.0.0.1:{port}/")
    );

    let anonymous = ping_url(&format!("redis://127.0.0.1:{port}/")).await;
    let err = anonymous.expect_err("no password must be refused");
    assert!(err.to_string().contains("NOAUTH"), "{err}");
    let wrong = ping_url(&format!("redis://:wrong@127.0.0.1:{port}/")).await;
    assert!(wrong.is_err(), "a wrong password must be refused");

    assert_eq!(ping_url(&server.url()).await.unwrap(), "PONG");
    let mut con = manager(&server.url(), OP_TIMEOUT).await;
    let () = con.set("k", "v").await.unwrap();
    let got: String = con.get("k").await.unwrap();
    assert_eq!(got, "v");
    assert_eq!(server.cli(&["GET", "k"]).trim(), "v");
}

#[tokio::test]
async fn acl_user_server_requires_the_user() {
    let server = RedisServer::start_with_acl_user("alice", "s3cret!");
    let port = server.port();
    assert_eq!(
        server.url(),
        format!("redis://alice:s3cret%21@127.0.0.1:{port}/")
    );

    let err = ping_url(&format!("redis://127.0.0.1:{port}/"))
        .await
        .expect_err("no credentials must be refused");
    assert!(err.to_string().contains("NOAUTH"), "{err}");
    assert!(
        ping_url(&format!("redis://bob:s3cret%21@127.0.0.1:{port}/"))
            .await
            .is_err()
    );
    assert!(ping_url(&format!("redis://alice:nope@127.0.0.1:{port}/"))
        .await
        .is_err());

    let mut con = manager(&server.url(), OP_TIMEOUT).await;
    let who: String = redis::cmd("ACL")
        .arg("WHOAMI")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(who, "alice");
    let () = con.set("k", "v").await.unwrap();
    let () = redis::cmd("FLUSHALL").query_async(&mut con).await.unwrap();
    assert_eq!(server.cli(&["ACL", "WHOAMI"]).trim(), "alice");
    assert_eq!(server.dbsize(), 0);
}

#[tokio::test]
async fn kill_then_restart_on_the_same_url() {
    let mut server = RedisServer::start();
    let url = server.url();
    let port = server.port();
    let pid = server.pid().unwrap();

    let mut con = manager(&url, OP_TIMEOUT).await;
    let () = con.set("before", "1").await.unwrap();

    server.kill();
    assert_eq!(server.pid(), None);
    assert!(!alive(pid), "kill() waits until the process is gone");
    let err = ping_url(&url)
        .await
        .expect_err("a killed server must not answer");
    assert!(err.is_connection_refusal() || err.is_io_error(), "{err:?}");
    assert!(
        ping(&mut con).await.is_err(),
        "the open connection must fail too"
    );
    server.kill(); // a second kill is a no-op

    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(server.url(), url);
    let new_pid = server.pid().unwrap();
    assert_ne!(new_pid, pid);
    assert_eq!(ping_url(&url).await.unwrap(), "PONG");

    // The ConnectionManager reconnects; nothing survived (no persistence).
    let before: Option<String> = eventually(Duration::from_secs(10), || {
        let mut con = con.clone();
        async move { con.get("before").await }
    })
    .await;
    assert_eq!(before, None);

    // restart() of a running server kills it first.
    server.restart();
    assert_eq!(server.port(), port);
    assert!(!alive(new_pid));
    assert_eq!(ping_url(&url).await.unwrap(), "PONG");
}

#[tokio::test]
async fn freeze_makes_requests_time_out_and_thaw_recovers() {
    let server = RedisServer::start();
    let mut con = manager(&server.url(), Duration::from_millis(300)).await;
    assert_eq!(ping(&mut con).await.unwrap(), "PONG");

    server.freeze();
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(5), ping(&mut con))
        .await
        .expect("the client's own 300 ms timeout must fire first")
        .expect_err("a frozen server must not answer");
    let took = started.elapsed();
    assert!(err.is_timeout(), "expected a timeout, got {err:?}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Still frozen a while later.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(ping(&mut con).await.is_err());

    server.thaw();
    assert_eq!(ping_url(&server.url()).await.unwrap(), "PONG");
    let pong = eventually(Duration::from_secs(10), || {
        let mut con = con.clone();
        async move { ping(&mut con).await }
    })
    .await;
    assert_eq!(pong, "PONG");
}

#[test]
fn drop_kills_the_server_also_on_panic_and_when_frozen() {
    let pid = {
        let server = RedisServer::start();
        server.pid().unwrap()
    };
    assert!(!alive(pid), "drop kills and reaps the server");

    let frozen_pid = {
        let server = RedisServer::start();
        server.freeze();
        server.pid().unwrap()
    };
    assert!(!alive(frozen_pid), "drop kills a frozen server too");

    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::panic::catch_unwind(move || {
        let server = RedisServer::start();
        tx.send(server.pid().unwrap()).unwrap();
        panic!("test failure while a server runs");
    });
    assert!(outcome.is_err());
    let panicked_pid = rx.recv().unwrap();
    assert!(!alive(panicked_pid), "unwinding drops and kills the server");
}

#[test]
fn concurrent_servers_get_distinct_ports() {
    let servers: Vec<RedisServer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(RedisServer::start)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ports: Vec<u16> = servers.iter().map(RedisServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), servers.len());
    for server in &servers {
        assert_eq!(server.cli(&["PING"]).trim(), "PONG");
    }
}

#[tokio::test]
async fn cluster_of_three_spreads_keys_over_all_masters() {
    let cluster = RedisCluster::start(3);
    let ports = cluster.ports();
    assert_eq!(ports.len(), 3);
    assert!(ports.iter().all(|&p| p != 6379 && p < 55_535));
    assert_eq!(
        cluster.urls(),
        ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect::<Vec<_>>()
    );
    for i in 0..3 {
        let info = cluster.cli_node(i, &["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_known_nodes:3"), "{info}");
    }

    let client = redis::cluster::ClusterClient::builder(cluster.urls())
        .connection_timeout(OP_TIMEOUT)
        .response_timeout(OP_TIMEOUT)
        .build()
        .unwrap();
    let mut con = tokio::time::timeout(Duration::from_secs(10), client.get_async_connection())
        .await
        .expect("cluster connection timed out")
        .unwrap();
    for i in 0..100 {
        let () = con.set(format!("key:{i}"), i).await.unwrap();
    }
    for i in 0..100 {
        let v: i64 = con.get(format!("key:{i}")).await.unwrap();
        assert_eq!(v, i);
    }

    let sizes = cluster.dbsize_per_node();
    assert_eq!(sizes.len(), 3);
    assert!(sizes.iter().all(|&n| n > 0), "keys not spread: {sizes:?}");
    assert_eq!(sizes.iter().sum::<u64>(), 100, "{sizes:?}");
    assert_eq!(cluster.node(0).dbsize(), sizes[0]);
}

#[tokio::test]
async fn tls_cluster_speaks_tls_only_and_announces_its_tls_ports() {
    let cluster = RedisCluster::start_tls(3);
    let ports = cluster.ports();
    assert!(ports.iter().all(|&p| p != 6379 && p < 55_535));
    assert_eq!(
        cluster.urls(),
        ports
            .iter()
            .map(|p| format!("rediss://127.0.0.1:{p}/"))
            .collect::<Vec<_>>()
    );
    assert!(String::from_utf8_lossy(&cluster.ca_pem()).contains("BEGIN CERTIFICATE"));
    for i in 0..3 {
        let info = cluster.cli_node(i, &["CLUSTER", "INFO"]);
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_known_nodes:3"), "{info}");
    }
    // The nodes announce their TLS ports (there is no other port).
    let slots = cluster.cli_node(0, &["CLUSTER", "SLOTS"]);
    for port in &ports {
        assert!(
            slots.lines().any(|l| l.trim() == port.to_string()),
            "port {port} not announced: {slots}"
        );
    }

    // The harness's client trusts the test CA.
    let client = cluster.client();
    let mut con = tokio::time::timeout(Duration::from_secs(10), client.get_async_connection())
        .await
        .expect("TLS cluster connection timed out")
        .unwrap();
    for i in 0..60 {
        let () = con.set(format!("key:{i}"), i).await.unwrap();
    }
    for i in 0..60 {
        let v: i64 = con.get(format!("key:{i}")).await.unwrap();
        assert_eq!(v, i);
    }
    let sizes = cluster.dbsize_per_node();
    assert!(sizes.iter().all(|&n| n > 0), "keys not spread: {sizes:?}");
    assert_eq!(sizes.iter().sum::<u64>(), 60, "{sizes:?}");

    // Plain TCP gets no answer from a TLS port.
    let plain = redis::Client::open(format!("redis://127.0.0.1:{}/", ports[0])).unwrap();
    let plain_ping = async {
        let mut con = plain.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut con).await
    };
    if let Ok(Ok(pong)) = tokio::time::timeout(OP_TIMEOUT, plain_ping).await {
        panic!("a TLS-only node answered plain TCP: {pong}");
    }

    let pids: Vec<u32> = cluster
        .nodes()
        .iter()
        .filter_map(RedisServer::pid)
        .collect();
    assert_eq!(pids.len(), 3);
    drop(con);
    drop(cluster);
    assert!(pids.iter().all(|&pid| !alive(pid)), "drop kills every node");
}
