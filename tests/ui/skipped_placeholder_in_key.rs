#![deny(warnings)]

use cache_runtime::cached;

#[cached(key = "user:{id}:{region}", skip(region))]
pub async fn get_user(id: u64, region: String) -> String {
    format!("{id}{region}")
}

fn main() {}
