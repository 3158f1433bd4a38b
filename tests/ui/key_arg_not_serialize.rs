#![deny(warnings)]

use cache_runtime::cached;

pub struct Filter {
    pub kind: u8,
}

#[cached]
pub async fn search(filter: Filter, page: u32) -> u64 {
    u64::from(filter.kind) + u64::from(page)
}

fn main() {}
