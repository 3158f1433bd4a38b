//! Entries: bytes by key with an expiry on the server's clock. A hit is one
//! prepared statement: the entry alone, or the entry and its tags'
//! versions together (`sql::FETCH_TAGGED`).

use std::collections::HashMap;
use std::time::Duration;

use super::{sql, PostgresStore};
use crate::store::{EntryStore, Fetch, Fetched, StoreError};

/// A TTL in milliseconds: at least 1, at most about 100 years, so that the
/// server's `now + ttl` cannot overflow.
pub(super) fn ttl_ms(ttl: Duration) -> i64 {
    const CENTURY_MS: u64 = 100 * 365 * 24 * 3600 * 1000;
    // At most CENTURY_MS, far below i64::MAX.
    crate::clock::millis(ttl).clamp(1, CENTURY_MS) as i64
}

impl PostgresStore {
    /// The versions of `tag_keys` from what a read returned (NULL for a
    /// missing counter); the missing ones are created by
    /// [`versions`](crate::store::TagStore::versions), a second round trip
    /// only for them.
    pub(super) async fn complete(
        &self,
        tag_keys: impl Fn(usize) -> Vec<u8>,
        read: Vec<Option<i64>>,
    ) -> Result<Vec<u64>, StoreError> {
        let missing: Vec<Vec<u8>> = read
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_none())
            .map(|(i, _)| tag_keys(i))
            .collect();
        let created: HashMap<Vec<u8>, u64> = if missing.is_empty() {
            HashMap::new()
        } else {
            self.create_versions(&missing).await?
        };
        read.into_iter()
            .enumerate()
            .map(|(i, version)| match version {
                Some(v) => Ok(v.max(0) as u64),
                None => created
                    .get(&tag_keys(i))
                    .copied()
                    .ok_or_else(|| StoreError::Backend("a tag version was not created".into())),
            })
            .collect()
    }
}

impl EntryStore for PostgresStore {
    async fn fetch(&self, request: Fetch<'_>) -> Result<Fetched, StoreError> {
        let key = request.entry_key();
        let client = self.shared.client().await?;
        if request.tag_count() == 0 {
            let statement = client
                .prepare_cached(sql::FETCH_ONE)
                .await
                .map_err(|e| self.shared.error(e))?;
            let row = client
                .query_opt(&statement, &[&key.as_bytes()])
                .await
                .map_err(|e| self.shared.error(e))?;
            let entry = match row {
                Some(row) => Some(row.try_get(0).map_err(|e| self.shared.error(e))?),
                None => None,
            };
            return Ok(Fetched::new(entry, Vec::new()));
        }
        let tags: Vec<String> = request.tag_keys().collect();
        let tag_bytes: Vec<&[u8]> = tags.iter().map(|t| t.as_bytes()).collect();
        let statement = client
            .prepare_cached(sql::FETCH_TAGGED)
            .await
            .map_err(|e| self.shared.error(e))?;
        let row = client
            .query_one(&statement, &[&key.as_bytes(), &tag_bytes])
            .await
            .map_err(|e| self.shared.error(e))?;
        drop(client);
        let entry: Option<Vec<u8>> = row.try_get(0).map_err(|e| self.shared.error(e))?;
        let read: Vec<Option<i64>> = row.try_get(1).map_err(|e| self.shared.error(e))?;
        if read.len() != tags.len() {
            return Err(StoreError::Backend(
                "a read answered too few versions".into(),
            ));
        }
        let versions = self.complete(|i| tags[i].as_bytes().to_vec(), read).await?;
        Ok(Fetched::new(entry, versions))
    }

    async fn fetch_batch(&self, requests: &[Fetch<'_>]) -> Result<Vec<Fetched>, StoreError> {
        match requests {
            [] => return Ok(Vec::new()),
            [one] => return Ok(vec![self.fetch(*one).await?]),
            _ => {}
        }
        let keys: Vec<String> = requests.iter().map(Fetch::entry_key).collect();
        let tags: Vec<String> = requests.iter().flat_map(|r| r.tag_keys()).collect();
        let (entries, read) = self.read_batch(&keys, &tags).await?;
        let mut versions = self
            .complete(|i| tags[i].as_bytes().to_vec(), read)
            .await?
            .into_iter();
        Ok(requests
            .iter()
            .zip(entries)
            .map(|(request, entry)| {
                Fetched::new(entry, versions.by_ref().take(request.tag_count()).collect())
            })
            .collect())
    }

    async fn fetch_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.read_batch(keys, &[]).await?.0)
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(sql::PUT)
            .await
            .map_err(|e| self.shared.error(e))?;
        client
            .execute(&statement, &[&key.as_bytes(), &bytes, &ttl_ms(ttl)])
            .await
            .map_err(|e| self.shared.error(e))?;
        Ok(())
    }

    async fn put_many(&self, items: Vec<(String, Vec<u8>, Duration)>) -> Result<(), StoreError> {
        // One statement may not write a row twice: the last item of a key wins,
        // as it would written one by one.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(items.len());
        for (i, (key, _, _)) in items.iter().enumerate() {
            last.insert(key.as_str(), i);
        }
        let mut keys = Vec::with_capacity(last.len());
        let mut values = Vec::with_capacity(last.len());
        let mut ttls = Vec::with_capacity(last.len());
        for (i, (key, bytes, ttl)) in items.iter().enumerate() {
            if last.get(key.as_str()) == Some(&i) {
                keys.push(key.as_bytes());
                values.push(bytes.as_slice());
                ttls.push(ttl_ms(*ttl));
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(sql::PUT_MANY)
            .await
            .map_err(|e| self.shared.error(e))?;
        client
            .execute(&statement, &[&keys, &values, &ttls])
            .await
            .map_err(|e| self.shared.error(e))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(sql::DELETE)
            .await
            .map_err(|e| self.shared.error(e))?;
        let row = client
            .query_opt(&statement, &[&key.as_bytes()])
            .await
            .map_err(|e| self.shared.error(e))?;
        match row {
            Some(row) => row.try_get(0).map_err(|e| self.shared.error(e)),
            None => Ok(false),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.shared.client().await?;
        client
            .simple_query(sql::PING)
            .await
            .map_err(|e| self.shared.error(e))?;
        Ok(())
    }
}

impl PostgresStore {
    /// Entries `keys` and the versions read for `tags` (NULL for a missing
    /// counter), in one statement.
    async fn read_batch(
        &self,
        keys: &[String],
        tags: &[String],
    ) -> Result<(Vec<Option<Vec<u8>>>, Vec<Option<i64>>), StoreError> {
        let key_bytes: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        let tag_bytes: Vec<&[u8]> = tags.iter().map(|t| t.as_bytes()).collect();
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(sql::FETCH_BATCH)
            .await
            .map_err(|e| self.shared.error(e))?;
        let row = client
            .query_one(&statement, &[&key_bytes, &tag_bytes])
            .await
            .map_err(|e| self.shared.error(e))?;
        let entries: Vec<Option<Vec<u8>>> = row.try_get(0).map_err(|e| self.shared.error(e))?;
        let versions: Vec<Option<i64>> = row.try_get(1).map_err(|e| self.shared.error(e))?;
        if entries.len() != keys.len() || versions.len() != tags.len() {
            return Err(StoreError::Backend(
                "a batch read answered the wrong count".into(),
            ));
        }
        Ok((entries, versions))
    }
}
