#![deny(warnings)]

use cache_runtime::cached;

#[cached(skip(conn))]
pub async fn get_user(id: u64, db: String) -> u64 {
    id + db.len() as u64
}

fn main() {}
