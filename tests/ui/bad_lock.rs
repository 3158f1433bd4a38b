#![deny(warnings)]

use cache_runtime::cached;

#[cached(lock = "global")]
pub async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
