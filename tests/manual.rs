//! The manual API: get, set, delete, get-or-load and their batch forms.

use std::collections::HashMap;
use std::time::Duration;

use cache_runtime::{cached, Cache, Policy};
use integration_tests::Calls;
use tokio::time::sleep;

#[tokio::test]
async fn get_set_delete() {
    let cache = Cache::memory(100);
    assert_eq!(cache.get::<String>("a").await.unwrap(), None);
    cache.set("a", "x".to_string()).await.unwrap();
    assert_eq!(cache.get::<String>("a").await.unwrap(), Some("x".into()));
    assert_eq!(
        cache.get::<u32>("a").await.unwrap(),
        None,
        "another type is a miss"
    );
    assert!(cache.delete("a").await.unwrap());
    assert!(!cache.delete("a").await.unwrap());
    assert_eq!(cache.get::<String>("a").await.unwrap(), None);

    cache
        .set_with("short", 1u8, &Policy::ttl(Duration::from_millis(50)), ["t"])
        .await
        .unwrap();
    assert_eq!(cache.get::<u8>("short").await.unwrap(), Some(1));
    sleep(Duration::from_millis(100)).await;
    assert_eq!(cache.get::<u8>("short").await.unwrap(), None);
}

#[tokio::test]
async fn manual_keys_meet_template_keys() {
    let cache = Cache::memory(100);
    #[cached(cache = cache, key = "user:{id}")]
    async fn user(cache: &Cache, id: u32) -> String {
        format!("loaded {id}")
    }
    cache
        .set("user:7", "set by hand".to_string())
        .await
        .unwrap();
    assert_eq!(user(&cache, 7).await, "set by hand");
    assert_eq!(user(&cache, 8).await, "loaded 8");
    assert_eq!(
        cache.get::<String>("user:8").await.unwrap(),
        Some("loaded 8".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_load_coalesces_and_skips_errors() {
    let cache = Cache::memory(100);
    static LOADS: Calls = Calls::new();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load("k", &Policy::new(), ["t"], || async {
                        LOADS.hit();
                        sleep(Duration::from_millis(50)).await;
                        Ok::<_, String>(5u32)
                    })
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(5));
    }
    assert_eq!(LOADS.get(), 1);

    let err: Result<u32, String> = cache
        .get_or_load("e", &Policy::new(), [""; 0], || async {
            Err("no".to_string())
        })
        .await;
    assert_eq!(err, Err("no".into()));
    assert_eq!(
        cache.get::<u32>("e").await.unwrap(),
        None,
        "errors are not stored"
    );
}

#[tokio::test]
async fn batch_get_and_set() {
    let cache = Cache::memory(100);
    cache
        .set_many([("a", 1u32), ("b", 2u32)], &Policy::new())
        .await
        .unwrap();
    assert_eq!(
        cache.get_many::<u32, _>(&["a", "x", "b"]).await.unwrap(),
        vec![Some(1), None, Some(2)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_load_only_loads_missing_keys_and_joins_single_loads() {
    let cache = Cache::memory(100);
    cache.set("have", 0u32).await.unwrap();
    // A single load of "b" is in progress when the batch starts: the batch waits for it.
    let single = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_load("b", &Policy::new(), [""; 0], || async {
                    sleep(Duration::from_millis(200)).await;
                    Ok::<_, String>(20u32)
                })
                .await
        })
    };
    sleep(Duration::from_millis(50)).await;
    let got = cache
        .get_many_or_load(
            &["have", "a", "b", "absent"],
            &Policy::new(),
            |missing: Vec<String>| async move {
                assert_eq!(missing, vec!["a".to_string(), "absent".to_string()]);
                Ok::<_, String>(HashMap::from([("a".to_string(), 10u32)]))
            },
        )
        .await
        .unwrap();
    assert_eq!(got, vec![Some(0), Some(10), Some(20), None]);
    assert_eq!(single.await.unwrap(), Ok(20));
    assert_eq!(cache.get::<u32>("a").await.unwrap(), Some(10));

    let failed = cache
        .get_many_or_load(&["c"], &Policy::new(), |_| async {
            Err::<HashMap<String, u32>, _>("down")
        })
        .await;
    assert_eq!(failed, Err("down"));
}

#[tokio::test]
async fn install_sets_the_global_cache_once() {
    let cache = Cache::builder()
        .namespace("manual-test")
        .memory(10)
        .build()
        .await
        .unwrap();
    cache_runtime::install(cache.clone()).unwrap();
    assert_eq!(cache_runtime::global().namespace(), "manual-test");
    assert!(cache_runtime::install(cache).is_err());
}

#[tokio::test]
async fn builder_without_a_tier_is_an_error() {
    let err = Cache::builder().build().await.unwrap_err();
    assert!(err.to_string().contains(".memory("), "{err}");
}

#[tokio::test]
async fn weighted_memory_tier_is_bounded_by_weight() {
    let cache = Cache::builder()
        .memory_weighted(1_000, |value| {
            value.downcast_ref::<String>().map_or(1, |s| s.len() as u64)
        })
        .build()
        .await
        .unwrap();
    for i in 0..100 {
        cache.set(&format!("k{i}"), "x".repeat(100)).await.unwrap();
    }
    // 100 values of weight 100 against a capacity of 1,000: about ten stay.
    assert!(cache.memory_len() <= 12, "{}", cache.memory_len());
    assert!(cache.memory_len() >= 5, "{}", cache.memory_len());
    assert!(cache.stats().evictions >= 88);
}
