//! Tag version counters: created at the server's clock in microseconds,
//! bumped to the larger of the old version + 1 and the clock, one
//! statement for all the tags of a call.

use std::collections::HashMap;

use super::{sql, PostgresStore};
use crate::store::{StoreError, TagStore};

/// How often `versions` asks again when a counter was created by another
/// connection during its statement (each retry sees it).
const CREATE_ATTEMPTS: usize = 3;

impl PostgresStore {
    /// The versions of `keys`, creating the missing ones; by key.
    pub(super) async fn create_versions(
        &self,
        keys: &[Vec<u8>],
    ) -> Result<HashMap<Vec<u8>, u64>, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(sql::VERSIONS)
            .await
            .map_err(|e| self.shared.error(e))?;
        let mut found = HashMap::with_capacity(keys.len());
        let mut asked: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        for _ in 0..CREATE_ATTEMPTS {
            let rows = client
                .query(&statement, &[&asked])
                .await
                .map_err(|e| self.shared.error(e))?;
            for row in rows {
                let key: Vec<u8> = row.try_get(0).map_err(|e| self.shared.error(e))?;
                let version: Option<i64> = row.try_get(1).map_err(|e| self.shared.error(e))?;
                if let Some(version) = version {
                    found.insert(key, version.max(0) as u64);
                }
            }
            asked.retain(|k| !found.contains_key(*k));
            if asked.is_empty() {
                return Ok(found);
            }
        }
        Err(StoreError::Backend(
            "tag versions could not be read: counters kept being created concurrently".into(),
        ))
    }
}

impl TagStore for PostgresStore {
    async fn versions(&self, tag_keys: &[String]) -> Result<Vec<u64>, StoreError> {
        if tag_keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Vec<u8>> = tag_keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        let found = self.create_versions(&keys).await?;
        keys.iter()
            .map(|k| {
                found
                    .get(k)
                    .copied()
                    .ok_or_else(|| StoreError::Backend("a tag version is missing".into()))
            })
            .collect()
    }

    async fn bump(&self, tag_keys: &[String]) -> Result<Vec<u64>, StoreError> {
        if tag_keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&[u8]> = tag_keys.iter().map(|k| k.as_bytes()).collect();
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(sql::BUMP)
            .await
            .map_err(|e| self.shared.error(e))?;
        let rows = client
            .query(&statement, &[&keys])
            .await
            .map_err(|e| self.shared.error(e))?;
        let mut bumped = HashMap::with_capacity(rows.len());
        for row in rows {
            let key: Vec<u8> = row.try_get(0).map_err(|e| self.shared.error(e))?;
            let version: i64 = row.try_get(1).map_err(|e| self.shared.error(e))?;
            bumped.insert(key, version.max(0) as u64);
        }
        keys.iter()
            .map(|k| {
                bumped
                    .get(*k)
                    .copied()
                    .ok_or_else(|| StoreError::Backend("a bump answered no version".into()))
            })
            .collect()
    }
}
