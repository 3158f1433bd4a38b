#![deny(warnings)]

use cache_runtime::{cached, Cache};

pub struct AppState {
    pub cache: Cache,
}

#[cached(cache = state, ttl = "1m")]
pub async fn users(state: &AppState, id: u64) -> u64 {
    id
}

fn main() {}
