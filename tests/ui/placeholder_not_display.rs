#![deny(warnings)]

use cache_runtime::cached;

#[derive(Clone, serde::Serialize)]
pub struct Filter {
    pub term: String,
}

#[cached(ttl = "1m", key = "search:{filter}")]
pub async fn search(filter: Filter) -> u64 {
    filter.term.len() as u64
}

fn main() {}
