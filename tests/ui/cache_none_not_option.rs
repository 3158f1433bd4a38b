#![deny(warnings)]

use cache_runtime::cached;

#[cached(ttl = "5m", cache_none = false)]
pub async fn get_user(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {}
