#![deny(warnings)]

use cache_runtime::cached;

pub struct Connection;

#[cached(stale = "1m", skip(conn))]
pub async fn count(conn: &Connection, id: u64) -> u64 {
    let _ = conn;
    id
}

fn main() {}
