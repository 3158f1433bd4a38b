//! Keys that never collide and namespaces that never leak (issue 10, items 5
//! and 8), on a real Redis: every lookup of a storage-only cache goes through
//! the store name, so two inputs sharing a name would show as one call
//! returning another's value.

use std::collections::HashSet;

use cache_runtime::{cached, Cache, Error, Policy};
use integration_tests::redis_harness::RedisServer;
use integration_tests::storage_only;

// Each returns its own identity and arguments: a value read from another
// function's entry, or another argument's, cannot pass for the right one.

#[cached(cache = cache, key = "t2:{a}:{b}", lock = "local")]
async fn t2(cache: &Cache, a: &str, b: &str) -> String {
    format!("t2|{a}|{b}")
}

#[cached(cache = cache, key = "x{a}A{b}5z{c}", lock = "local")]
async fn letters(cache: &Cache, a: &str, b: &str, c: &str) -> String {
    format!("letters|{a}|{b}|{c}")
}

#[cached(cache = cache, key = "user:{a}", version = 2, lock = "local")]
async fn user_v2(cache: &Cache, a: &str) -> String {
    format!("user_v2|{a}")
}

#[cached(cache = cache, key = "v2:user:{a}", lock = "local")]
async fn v2_user(cache: &Cache, a: &str) -> String {
    format!("v2_user|{a}")
}

#[cached(cache = cache, name = "users.get", lock = "local")]
async fn default_key(cache: &Cache, a: &str) -> String {
    format!("default_key|{a}")
}

#[cached(cache = cache, name = "users.get", version = 2, lock = "local")]
async fn default_v2(cache: &Cache, a: &str) -> String {
    format!("default_v2|{a}")
}

#[cached(cache = cache, key = "users.get:{a}", lock = "local")]
async fn users_get(cache: &Cache, a: &str) -> String {
    format!("users_get|{a}")
}

#[cached(cache = cache, key = "long:{a}", lock = "local")]
async fn long(cache: &Cache, a: &str) -> String {
    format!("long|{a}")
}

/// Calls every function with `args` and checks each answers for itself.
async fn call_all(cache: &Cache, args: &[String; 3]) {
    let [a, b, c] = args;
    let (a, b, c) = (a.as_str(), b.as_str(), c.as_str());
    assert_eq!(t2(cache, a, b).await, format!("t2|{a}|{b}"));
    assert_eq!(
        letters(cache, a, b, c).await,
        format!("letters|{a}|{b}|{c}")
    );
    assert_eq!(user_v2(cache, a).await, format!("user_v2|{a}"));
    assert_eq!(v2_user(cache, a).await, format!("v2_user|{a}"));
    assert_eq!(default_key(cache, a).await, format!("default_key|{a}"));
    assert_eq!(default_v2(cache, a).await, format!("default_v2|{a}"));
    assert_eq!(users_get(cache, a).await, format!("users_get|{a}"));
    assert_eq!(long(cache, a).await, format!("long|{a}"));
}

const PIECES: &[&str] = &[
    "%",
    ":",
    "~",
    "#",
    "{",
    "}",
    "/",
    "A",
    "5",
    "z",
    "2",
    "25",
    "v",
    "x",
    "é",
    "日本",
    "%25",
    "%3A",
    "#v2",
    "~0",
    "v2:",
    "user:",
    "#tag:",
    "0123456789abcdef",
];

/// Pieces that no template here escapes: long values of these alone give
/// shortened keys whose readable prefix a forger could copy exactly.
const CLEAN: &[&str] = &["x", "z", "v", "2", "é", "日本"];

fn value(rng: &mut fastrand::Rng) -> String {
    let (pieces, target) = match rng.u8(..12) {
        0 => (PIECES, rng.usize(180..260)),
        1 => (CLEAN, rng.usize(251..300)),
        _ => (PIECES, rng.usize(0..10)),
    };
    let mut out = String::new();
    while out.len() < target {
        out.push_str(pieces[rng.usize(..pieces.len())]);
    }
    out
}

/// Every key of `namespace` in the store (`SCAN`, never `KEYS`).
fn store_keys(server: &RedisServer, namespace: &str) -> Vec<String> {
    let mut conn = server.client().get_connection().expect("connect");
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{namespace}[:#]*"))
            .arg("COUNT")
            .arg(1000)
            .query(&mut conn)
            .expect("SCAN");
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            return keys;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_arguments_and_manual_keys_never_share_an_entry() {
    let server = RedisServer::start();
    let cache = storage_only(&server, "kc").await;
    let mut rng = fastrand::Rng::with_seed(0x636f_6c6c);
    let mut tried = Vec::new();
    for _ in 0..150 {
        let args = [value(&mut rng), value(&mut rng), value(&mut rng)];
        call_all(&cache, &args).await;
        tried.push(args);
    }
    // Inputs crafted from the names now stored: each name, and its tail
    // after every `:`, `#` or `~`, as every argument and as a manual key.
    let names = store_keys(&server, "kc");
    assert!(names.len() > 150 * 5, "{} names", names.len());
    assert!(
        names.iter().any(|n| n.contains('~')),
        "some keys were shortened"
    );
    let mut tails = HashSet::new();
    for name in &names {
        let entry = name.strip_prefix("kc:").unwrap_or(name);
        tails.insert(entry.to_owned());
        for (at, _) in entry.match_indices([':', '#', '~']) {
            tails.insert(entry[at + 1..].to_owned());
        }
    }
    let tails: Vec<String> = tails.into_iter().collect();
    for tail in &tails {
        let args = [tail.clone(), tail.clone(), value(&mut rng)];
        call_all(&cache, &args).await;
        tried.push(args);
    }
    // A manual key reaches only an unversioned template's entry (the sharing
    // the manual API is for), never a versioned, default or shortened one.
    let mut shared = 0;
    for tail in &tails {
        if let Some(found) = cache.get::<String>(tail).await.unwrap() {
            let origin = found.split('|').next().unwrap_or_default();
            assert!(
                ["t2", "letters", "v2_user", "users_get", "long"].contains(&origin),
                "manual key `{tail}` read `{found}`"
            );
            shared += 1;
        }
    }
    assert!(shared > 0, "plain template keys are readable by hand");
    // Writing under every crafted manual key overwrites no versioned, default
    // or shortened entry: every such call still answers for itself.
    for tail in &tails {
        cache.set(tail, format!("manual|{tail}")).await.unwrap();
    }
    for [a, ..] in &tried {
        assert_eq!(user_v2(&cache, a).await, format!("user_v2|{a}"));
        assert_eq!(default_key(&cache, a).await, format!("default_key|{a}"));
        assert_eq!(default_v2(&cache, a).await, format!("default_v2|{a}"));
        if a.len() > 250 {
            assert_eq!(long(&cache, a).await, format!("long|{a}"));
        }
    }
}

#[tokio::test]
async fn namespaces_that_could_reach_others_do_not_build() {
    let server = RedisServer::start();
    for ns in ["app:b", "", "a*", "a?", "app#tag", "a~", "a b", "a[1]"] {
        for remote in [false, true] {
            let builder = Cache::builder().namespace(ns).memory(10);
            let builder = if remote {
                builder.redis(server.url())
            } else {
                builder
            };
            match builder.build().await {
                Err(Error::Config(message)) => {
                    assert!(message.contains(&format!("namespace `{ns}`")), "{message}")
                }
                Err(other) => panic!("`{ns}`: {other}"),
                Ok(_) => panic!("namespace `{ns}` was accepted"),
            }
        }
    }
    assert_eq!(server.dbsize(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similar_namespaces_cannot_read_overwrite_or_delete_each_other() {
    let server = RedisServer::start();
    let app = storage_only(&server, "app").await;
    let others = [
        storage_only(&server, "app.b").await,
        storage_only(&server, "app-b").await,
        storage_only(&server, "appb").await,
    ];
    let policy = Policy::new();
    for other in &others {
        // Invalidated once first, so the tag's counter exists in the store.
        other.invalidate_tags(["t"]).await.unwrap();
        other.set_with("x", 1u32, &policy, ["t"]).await.unwrap();
        other.increment("n", 5).await.unwrap();
    }
    let tag_counters: Vec<String> = others
        .iter()
        .map(|o| format!("{}#tag:t", o.namespace()))
        .collect();
    let versions_before: Vec<String> = tag_counters
        .iter()
        .map(|k| server.cli(&["GET", k]))
        .collect();

    // `app` writes keys shaped like the others' names.
    for key in [
        "b#tag:t",
        ".b#tag:t",
        "-b#tag:t",
        "b:x",
        ".b:x",
        "b#counter:n",
        "#tag:t",
    ] {
        app.set(key, 99u32).await.unwrap();
    }
    app.invalidate_tags(["t"]).await.unwrap();
    let versions_after: Vec<String> = tag_counters
        .iter()
        .map(|k| server.cli(&["GET", k]))
        .collect();
    assert_eq!(
        versions_before, versions_after,
        "no tag counter of another namespace moved"
    );
    for other in &others {
        assert_eq!(
            other.get::<u32>("x").await.unwrap(),
            Some(1),
            "{}",
            other.namespace()
        );
        assert_eq!(other.counter("n").await.unwrap(), 5);
        assert_eq!(other.get::<u32>("b#tag:t").await.unwrap(), None);
    }
    assert_eq!(server.cli(&["EXISTS", "app:b%23tag:t"]).trim(), "1");

    // Deleting everything in `app` deletes only `app`'s entries.
    let before: Vec<usize> = others
        .iter()
        .map(|o| store_keys(&server, o.namespace()).len())
        .collect();
    assert_eq!(app.delete_matching("*").await.unwrap(), 7);
    let after: Vec<usize> = others
        .iter()
        .map(|o| store_keys(&server, o.namespace()).len())
        .collect();
    assert_eq!(before, after);
    assert!(
        before.iter().all(|n| *n >= 3),
        "entry, tag, counter: {before:?}"
    );
    assert_eq!(app.get::<u32>("b:x").await.unwrap(), None);
    for other in &others {
        assert_eq!(other.get::<u32>("x").await.unwrap(), Some(1));
        assert_eq!(
            other.delete_matching("*").await.unwrap(),
            1,
            "its own entry only"
        );
    }
}
