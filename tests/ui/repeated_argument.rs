#![deny(warnings)]

use cache_runtime::cached;

#[cached(ttl = "5m", stale = "1m", ttl = "10m")]
pub async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
