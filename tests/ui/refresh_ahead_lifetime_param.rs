#![deny(warnings)]

use cache_runtime::cached;

#[derive(serde::Serialize)]
pub struct Query<'a> {
    pub name: &'a str,
}

#[cached(ttl = "5m", refresh_ahead = 1.0)]
pub async fn search<'a>(id: u64, query: Query<'a>) -> u64 {
    id + query.name.len() as u64
}

fn main() {}
