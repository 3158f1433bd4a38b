#![deny(warnings)]

use cache_runtime::invalidate;

#[invalidate]
pub async fn rename_user(id: u64, name: String) -> Result<(), String> {
    let _ = (id, name);
    Ok(())
}

fn main() {}
