//! What compression (`.compress_above(n)`) costs a remote read and write:
//! a storage-only cache over the in-process store (no network, so the
//! codec's share is as large as it gets), `set` and `get` of a `Vec` of user
//! records of about 16 and 64 KiB of CBOR, uncompressed against compressed,
//! in alternating rounds. Also prints the stored sizes.
//!
//! `CARGO_TARGET_DIR=target/bench cargo bench -p cache-runtime --bench compress`

use std::time::Instant;

use cache_runtime::store::in_process::InProcessStore;
use cache_runtime::Cache;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    email: String,
    roles: Vec<String>,
    city: String,
    active: bool,
    score: f64,
}

fn users(n: u64) -> Vec<User> {
    let names = [
        "ann", "bob", "carla", "dmitri", "eve", "fatima", "hiro", "ines",
    ];
    let cities = ["Paris", "Lagos", "Osaka", "Lima", "Oslo"];
    (0..n)
        .map(|id| {
            let name = names[(id % 8) as usize];
            User {
                id,
                name: format!("{name} {}", id * 7919 % 1000),
                email: format!("{name}.{}@example.com", id * 104_729 % 10_000),
                roles: ["viewer", "ops", "admin"][..(id % 3 + 1) as usize]
                    .iter()
                    .map(|r| r.to_string())
                    .collect(),
                city: cities[(id % 5) as usize].to_owned(),
                active: id % 2 == 0,
                score: (id * 37 % 1000) as f64 / 10.0,
            }
        })
        .collect()
}

const CALLS: u32 = 2_000;
const ROUNDS: usize = 5;

fn main() {
    let rt = Runtime::new().expect("a runtime");
    for count in [160u64, 640] {
        let value = users(count);
        let (plain, packed, store) = rt.block_on(async {
            let store = InProcessStore::new();
            let make = |above: Option<usize>| {
                let mut b = Cache::builder().namespace("bench").store(store.connect());
                if let Some(above) = above {
                    b = b.compress_above(above);
                }
                b.build()
            };
            (
                make(None).await.expect("builds"),
                make(Some(4096)).await.expect("builds"),
                store,
            )
        });
        let mut best = [[f64::MAX; 2]; 2];
        for _ in 0..ROUNDS {
            for (side, cache) in [&plain, &packed].into_iter().enumerate() {
                let key = format!("users{side}");
                let (set, get) = rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..CALLS {
                        cache.set(&key, value.clone()).await.expect("set");
                    }
                    let set = start.elapsed().as_secs_f64() / f64::from(CALLS);
                    let start = Instant::now();
                    for _ in 0..CALLS {
                        let got = cache.get::<Vec<User>>(&key).await.expect("get");
                        assert!(got.is_some_and(|g| g.len() == value.len()));
                    }
                    (set, start.elapsed().as_secs_f64() / f64::from(CALLS))
                });
                best[side][0] = best[side][0].min(set);
                best[side][1] = best[side][1].min(get);
            }
        }
        let size = |key: &str| {
            rt.block_on(async {
                use cache_runtime::store::EntryStore;
                // A plain manual key is stored as `{namespace}:{key}`.
                store
                    .fetch_many(&[format!("bench:{key}")])
                    .await
                    .ok()
                    .and_then(|mut v| v.pop().flatten())
                    .map_or(0, |v| v.len())
            })
        };
        println!(
            "{count} users: stored {} B plain, {} B compressed; set {:.1} µs / {:.1} µs, get {:.1} µs / {:.1} µs (plain / compressed, best of {ROUNDS} rounds of {CALLS})",
            size("users0"),
            size("users1"),
            best[0][0] * 1e6,
            best[1][0] * 1e6,
            best[0][1] * 1e6,
            best[1][1] * 1e6,
        );
    }
}
