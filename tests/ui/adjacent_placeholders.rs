#![deny(warnings)]

use cache_runtime::cached;

#[cached(key = "user:{id}{name}")]
pub async fn get_user(id: u64, name: String) -> String {
    format!("{id}{name}")
}

fn main() {}
