#![deny(warnings)]

use cache_runtime::cached;

pub struct Report {
    pub total: u64,
}

#[cached(ttl = "1m")]
pub async fn report(id: u64) -> Result<Option<Report>, String> {
    Ok(Some(Report { total: id }))
}

fn main() {}
