#![deny(warnings)]

use cache_runtime::cached;

pub struct Report {
    pub total: u64,
}

#[cached(ttl = "1m")]
pub async fn report(id: u64) -> Report {
    Report { total: id }
}

fn main() {}
