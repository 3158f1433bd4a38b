//! Deletion by pattern: a walk of the entries in key order, one page per
//! call, on the primary key's index (`key > last`): no table lock, and no
//! snapshot held between pages, so writers are never blocked and a key
//! present for the whole walk is found once.
//!
//! The pattern's literal prefix bounds the range read; the rest of the glob
//! is matched here (`store::in_process::glob`, Redis' `SCAN MATCH` rules).
//! The interface's cursor is a number: the node keeps the last key of the
//! latest pages it answered (a few, for a page asked again after a timeout)
//! and the cursor is that page's number.

use std::sync::Arc;

use parking_lot::Mutex;

use super::pool::Shared;
use super::{sql, PostgresStore};
use crate::store::in_process::glob;
use crate::store::{ScanNode, ScanStore, StoreError};

/// Above every key: keys are UTF-8, which never holds the byte 0xFF.
const END: &[u8] = &[0xFF];

/// The one node of a PostgreSQL store: its entries table.
pub struct PostgresNode {
    shared: Arc<Shared>,
    /// The latest pages' numbers and last keys: cursor `n` resumes after
    /// page `n`'s last key.
    positions: Mutex<Positions>,
}

impl std::fmt::Debug for PostgresNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresNode").finish_non_exhaustive()
    }
}

impl ScanStore for PostgresStore {
    type Node = PostgresNode;

    async fn scan_nodes(&self) -> Result<Vec<PostgresNode>, StoreError> {
        Ok(vec![PostgresNode {
            shared: Arc::clone(&self.shared),
            positions: Mutex::new(Positions::default()),
        }])
    }
}

/// How many pages' positions a node keeps.
const KEPT: usize = 8;

/// See [`PostgresNode::positions`].
#[derive(Default)]
struct Positions {
    pages: u64,
    kept: std::collections::VecDeque<(u64, Vec<u8>)>,
}

/// The literal start of `pattern` (before its first `*`, `?` or `[`, with
/// `\x` read as `x`), and the first key above every key it starts.
fn bounds(pattern: &str) -> (Vec<u8>, Vec<u8>) {
    let mut prefix = Vec::new();
    let mut bytes = pattern.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'*' | b'?' | b'[' => break,
            b'\\' => match bytes.next() {
                Some(next) => prefix.push(next),
                None => prefix.push(b),
            },
            _ => prefix.push(b),
        }
    }
    // The smallest key after every key starting with `prefix`: its last
    // byte below 0xFF raised by one, what follows it dropped.
    let mut upper = prefix.clone();
    while let Some(last) = upper.pop() {
        if last < 0xFF {
            upper.push(last + 1);
            return (prefix, upper);
        }
    }
    (prefix, END.to_vec())
}

impl ScanNode for PostgresNode {
    async fn scan(
        &self,
        cursor: u64,
        pattern: &str,
        count: u32,
    ) -> Result<(u64, Vec<String>), StoreError> {
        let after = match cursor {
            0 => Vec::new(),
            n => {
                let positions = self.positions.lock();
                positions
                    .kept
                    .iter()
                    .find(|(page, _)| *page == n)
                    .map(|(_, key)| key.clone())
                    .ok_or_else(|| StoreError::Backend(format!("unknown scan cursor {n}")))?
            }
        };
        let (low, high) = bounds(pattern);
        let limit = i64::from(count.max(1));
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(sql::SCAN)
            .await
            .map_err(|e| self.shared.error(e))?;
        let rows = client
            .query(&statement, &[&low, &high, &after, &limit])
            .await
            .map_err(|e| self.shared.error(e))?;
        drop(client);
        let mut keys = Vec::new();
        let mut last = None;
        for row in &rows {
            let key: Vec<u8> = row.try_get(0).map_err(|e| self.shared.error(e))?;
            let text = String::from_utf8_lossy(&key).into_owned();
            if glob::matches(pattern, &text) {
                keys.push(text);
            }
            last = Some(key);
        }
        let next = match last {
            Some(last) if rows.len() as i64 >= limit => {
                let mut positions = self.positions.lock();
                positions.pages += 1;
                let page = positions.pages;
                if positions.kept.len() == KEPT {
                    positions.kept.pop_front();
                }
                positions.kept.push_back((page, last));
                page
            }
            _ => 0,
        };
        Ok((next, keys))
    }

    async fn unlink(&self, keys: &[String]) -> Result<u64, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(sql::UNLINK)
            .await
            .map_err(|e| self.shared.error(e))?;
        let row = client
            .query_one(&statement, &[&keys])
            .await
            .map_err(|e| self.shared.error(e))?;
        let live: i64 = row.try_get(0).map_err(|e| self.shared.error(e))?;
        Ok(live.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::bounds;

    #[test]
    fn the_literal_prefix_bounds_the_range() {
        assert_eq!(bounds("ns:k?"), (b"ns:k".to_vec(), b"ns:l".to_vec()));
        assert_eq!(
            bounds(r"ns:lit\*"),
            (b"ns:lit*".to_vec(), b"ns:lit+".to_vec())
        );
        assert_eq!(bounds("*"), (Vec::new(), vec![0xFF]));
        assert_eq!(bounds("[ab]x"), (Vec::new(), vec![0xFF]));
    }
}
