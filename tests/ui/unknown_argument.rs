#![deny(warnings)]

use cache_runtime::cached;

#[cached(ttl = "5m", expire = "10m")]
pub async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
