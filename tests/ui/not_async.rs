#![deny(warnings)]

use cache_runtime::cached;

#[cached(ttl = "5m")]
pub fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
