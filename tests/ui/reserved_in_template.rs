#![deny(warnings)]

use cache_runtime::cached;

#[cached(key = "{a}%{b}")]
pub async fn percent(a: String, b: String) -> String {
    format!("{a}{b}")
}

#[cached(key = "v2#user:{id}", tags = ["user~{id}"])]
pub async fn hash(id: u64) -> u64 {
    id
}

fn main() {}
