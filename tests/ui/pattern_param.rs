#![deny(warnings)]

use cache_runtime::cached;

#[cached(ttl = "5m")]
pub async fn area((w, h): (u32, u32)) -> u32 {
    w * h
}

fn main() {}
