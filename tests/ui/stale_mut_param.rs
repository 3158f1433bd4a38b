#![deny(warnings)]

use cache_runtime::cached;

#[cached(ttl = "5m", stale = "1m")]
pub async fn get_user(id: u64, buf: &mut Vec<u8>) -> u64 {
    buf.push(1);
    id
}

fn main() {}
