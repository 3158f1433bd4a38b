//! The service example end to end: real `service` processes on a harness
//! PostgreSQL and a harness Redis, driven over HTTP.

use std::time::Duration;

use integration_tests::pg_harness::PgDatabase;
use integration_tests::redis_harness::RedisServer;
use integration_tests::service_process::ServiceProcess;
use integration_tests::within;
use serde_json::Value;

/// A name no earlier run used, so that a shared `DATABASE_URL` server
/// never makes a stale value look fresh.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

async fn user_queries(service: &ServiceProcess) -> f64 {
    service
        .counter("service_db_queries_total", &[("query", "user")])
        .await
}

/// A database, a Redis, and two service processes sharing both.
fn two_services() -> (PgDatabase, RedisServer, ServiceProcess, ServiceProcess) {
    let db = PgDatabase::start();
    let redis = RedisServer::start();
    let a = ServiceProcess::start(&db.url(), &[("REDIS_URL", &redis.url())]);
    let b = ServiceProcess::start(&db.url(), &[("REDIS_URL", &redis.url())]);
    (db, redis, a, b)
}

/// `PUT /users/{id}` that must succeed; the updated row.
async fn put_user(service: &ServiceProcess, id: i64, name: &str, team: &str) -> Value {
    let body = serde_json::json!({ "name": name, "team": team }).to_string();
    let put = service.put(&format!("/users/{id}"), &body).await;
    assert_eq!(put.status, 200, "PUT /users/{id}: {}", put.body);
    let row = put.json().unwrap();
    assert_eq!(row["name"], name);
    row
}

fn ids_of(list: &Value) -> Vec<i64> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|u| u["id"].as_i64().expect("an id"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_get_runs_no_query() {
    let db = PgDatabase::start();
    let redis = RedisServer::start();
    let service = ServiceProcess::start(&db.url(), &[("REDIS_URL", &redis.url())]);

    let before = user_queries(&service).await;
    let first = service.get("/users/7").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json().unwrap()["id"], 7);
    let after_first = user_queries(&service).await;
    assert_eq!(
        after_first,
        before + 1.0,
        "the first GET queries PostgreSQL"
    );

    let second = service.get("/users/7").await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, first.body);
    assert_eq!(
        user_queries(&service).await,
        after_first,
        "the second GET is served from the cache"
    );

    // A process that shares the Redis finds the entry there: no query either.
    let other = ServiceProcess::start(&db.url(), &[("REDIS_URL", &redis.url())]);
    let shared = other.get("/users/7").await;
    assert_eq!(shared.body, first.body);
    assert_eq!(user_queries(&other).await, 0.0, "read from Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_cache_queries_every_time() {
    // The counter really counts: with the cache off, each GET is a query.
    let db = PgDatabase::start();
    let service = ServiceProcess::start(&db.url(), &[("CACHE_DISABLED", "true")]);
    for _ in 0..3 {
        assert_eq!(service.get("/users/7").await.status, 200);
    }
    assert_eq!(user_queries(&service).await, 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_redis_see_each_others_updates() {
    let (_db, _redis, a, b) = two_services();

    for round in 0..3 {
        // B holds user 7 in its memory tier.
        let cached = b.get("/users/7").await;
        assert_eq!(cached.status, 200, "{}", cached.body);
        assert_eq!(b.get("/users/7").await.body, cached.body);

        let name = unique(&format!("renamed-{round}"));
        put_user(&a, 7, &name, "team-7").await;

        let seen = within!(Duration::from_millis(500), {
            b.get("/users/7").await.json().unwrap()["name"] == name.as_str()
        });
        assert!(
            seen.is_some(),
            "round {round}: B still serves {} 500 ms after A's PUT",
            b.get("/users/7").await.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_lists_follow_a_move() {
    let (_db, _redis, a, b) = two_services();

    // Seeded: user 13 is in team-3.
    for service in [&a, &b] {
        let three = service.get("/users?team=team-3").await;
        assert_eq!(three.status, 200, "{}", three.body);
        let three = three.json().unwrap();
        assert!(ids_of(&three).contains(&13), "{three}");
        assert_eq!(ids_of(&three).len(), 100);
        let four = service.get("/users?team=team-4").await.json().unwrap();
        assert!(!ids_of(&four).contains(&13), "{four}");
    }
    let team_queries = a
        .counter("service_db_queries_total", &[("query", "team")])
        .await;
    assert_eq!(
        team_queries, 2.0,
        "A read each list once; B found them in Redis"
    );

    let name = unique("moved");
    assert_eq!(put_user(&a, 13, &name, "team-4").await["team"], "team-4");

    for service in [&a, &b] {
        let moved = within!(Duration::from_millis(1000), {
            let three = service.get("/users?team=team-3").await.json().unwrap();
            let four = service.get("/users?team=team-4").await.json().unwrap();
            !ids_of(&three).contains(&13)
                && four
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|u| u["id"] == 13 && u["name"] == name.as_str())
        });
        assert!(
            moved.is_some(),
            "the lists at {} do not show the move",
            service.addr()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors() {
    let db = PgDatabase::start();
    let service = ServiceProcess::start(&db.url(), &[]);

    let absent = service.get("/users/5000").await;
    assert_eq!(absent.status, 404);
    assert!(
        absent.json().unwrap()["error"].is_string(),
        "{}",
        absent.body
    );
    let absent_again = service.get("/users/5000").await;
    assert_eq!(absent_again.status, 404, "a stored None is still a 404");
    let put_absent = service
        .put("/users/5000", r#"{"name":"x","team":"team-1"}"#)
        .await;
    assert_eq!(put_absent.status, 404, "{}", put_absent.body);

    let long_team = format!("/users?team={}", "x".repeat(201));
    let cases = [
        ("GET", "/users/abc", None),
        ("GET", "/users", None),
        ("GET", "/users?team=", None),
        ("GET", &long_team, None),
        ("PUT", "/users/7", Some(r#"{"name":"#)),
        ("PUT", "/users/7", Some(r#"{"name":"x"}"#)),
        (
            "PUT",
            "/users/7",
            Some(r#"{"name":"x","team":"t","admin":true}"#),
        ),
        ("PUT", "/users/7", Some(r#"{"name":"  ","team":"t"}"#)),
        ("PUT", "/users/7", Some(r#"[1,2]"#)),
    ];
    for (method, path, body) in cases {
        let response = match method {
            "GET" => service.get(path).await,
            _ => service.put(path, body.unwrap_or("")).await,
        };
        assert!(
            (400..500).contains(&response.status),
            "{method} {path} {body:?}: {} {}",
            response.status,
            response.body
        );
        assert!(
            response.json().is_ok_and(|v| v["error"].is_string()),
            "{method} {path} {body:?}: not a JSON error: {}",
            response.body
        );
    }
    // None of them changed the row.
    let seven = service.get("/users/7").await.json().unwrap();
    assert_eq!(seven["name"], "user-7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_errors_are_json_500s() {
    let db = PgDatabase::start();
    let service = ServiceProcess::start(&db.url(), &[]);
    assert_eq!(service.get("/users/8").await.status, 200);

    db.sql("DROP TABLE users");
    let failed = service.get("/users/9").await;
    assert_eq!(failed.status, 500, "{}", failed.body);
    assert!(
        failed.json().unwrap()["error"].is_string(),
        "{}",
        failed.body
    );
    let put = service
        .put("/users/8", r#"{"name":"x","team":"team-1"}"#)
        .await;
    assert_eq!(put.status, 500, "{}", put.body);
    // The service is still up, and an error was not cached: the next
    // request queries again (and fails again).
    let before = user_queries(&service).await;
    assert_eq!(service.get("/users/9").await.status, 500);
    assert_eq!(user_queries(&service).await, before + 1.0);
    assert_eq!(service.get("/health").await.status, 200);
}

/// `/health`'s HTTP status and JSON status.
async fn health(service: &ServiceProcess) -> (u16, String, Value) {
    let response = service.get("/health").await;
    let body = response.json().expect("/health answers JSON");
    let status = body["status"].as_str().unwrap_or("").to_owned();
    (response.status, status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_redis() {
    let db = PgDatabase::start();
    let mut redis = RedisServer::start();
    let service = ServiceProcess::start(&db.url(), &[("REDIS_URL", &redis.url())]);

    // Polled: on a loaded machine one PING may pass the 10 ms warning limit.
    let healthy = within!(Duration::from_secs(5), {
        let (code, status, _) = health(&service).await;
        code == 200 && status == "healthy"
    });
    let (_, _, body) = health(&service).await;
    assert!(healthy.is_some(), "not healthy at start: {body}");
    assert_eq!(body["remote"]["connected"], true, "{body}");
    assert!(body["stats"]["hits"].is_u64(), "{body}");
    assert!(body["reasons"].is_array(), "{body}");

    redis.kill();
    let down = within!(Duration::from_secs(5), {
        let (code, status, _) = health(&service).await;
        // Unhealthy is a 503; degraded still serves, a 200.
        matches!(
            (code, status.as_str()),
            (503, "unhealthy") | (200, "degraded")
        )
    });
    let (code, _, body) = health(&service).await;
    assert!(down.is_some(), "still {code} {body} with Redis killed");
    assert!(
        body["reasons"].as_array().is_some_and(|r| !r.is_empty()),
        "no reason given: {body}"
    );
    assert_eq!(body["remote"]["connected"], false, "{body}");
    // The service still answers, from PostgreSQL, meanwhile.
    assert_eq!(service.get("/users/3").await.status, 200);

    redis.restart();
    let up = within!(Duration::from_secs(10), {
        let (code, status, _) = health(&service).await;
        code == 200 && status == "healthy"
    });
    assert!(
        up.is_some(),
        "not healthy with Redis back: {}",
        health(&service).await.2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_cache_reports_degraded() {
    let db = PgDatabase::start();
    let service = ServiceProcess::start(&db.url(), &[("CACHE_DISABLED", "true")]);
    let (code, status, body) = health(&service).await;
    assert_eq!((code, status.as_str()), (200, "degraded"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_user_functions_hits_and_misses() {
    let db = PgDatabase::start();
    let service = ServiceProcess::start(&db.url(), &[]);
    // Two misses (ids 1 and 2), then three hits.
    for id in [1, 2, 1, 1, 2] {
        assert_eq!(service.get(&format!("/users/{id}")).await.status, 200);
    }
    let gets = |result: &'static str| {
        let service = &service;
        async move {
            let labels = [
                ("cache", "service"),
                ("function", "service.user"),
                ("result", result),
            ];
            service.counter("cache_gets_total", &labels).await
        }
    };
    // Gets are reported every 500 ms: current within 1 s.
    let reported = within!(Duration::from_secs(3), {
        gets("miss").await == 2.0 && gets("hit").await == 3.0
    });
    assert!(
        reported.is_some(),
        "cache_gets_total of service.user: {} misses, {} hits; /metrics:\n{}",
        gets("miss").await,
        gets("hit").await,
        service.get("/metrics").await.body
    );
    let loads = service
        .counter(
            "cache_loads_total",
            &[("function", "service.user"), ("outcome", "ok")],
        )
        .await;
    assert_eq!(loads, 2.0, "one load per miss");
    assert_eq!(user_queries(&service).await, 2.0, "one query per load");
    // The other function has its own series.
    assert_eq!(service.get("/users?team=team-1").await.status, 200);
    let team_misses = within!(Duration::from_secs(3), {
        service
            .counter(
                "cache_gets_total",
                &[("function", "service.team"), ("result", "miss")],
            )
            .await
            == 1.0
    });
    assert!(team_misses.is_some(), "no miss of service.team reported");
    assert_eq!(gets("miss").await, 2.0, "service.user's series unchanged");
}
