//! Locks with tokens and an expiry, each operation one conditional
//! statement (a compare-and-set on the row).

use std::time::Duration;

use super::entries::ttl_ms;
use super::{sql, PostgresStore};
use crate::store::{LockStore, StoreError};

impl LockStore for PostgresStore {
    async fn try_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(sql::TRY_LOCK)
            .await
            .map_err(|e| self.shared.error(e))?;
        let row = client
            .query_opt(
                &statement,
                &[&key.as_bytes(), &token.as_bytes(), &ttl_ms(ttl)],
            )
            .await
            .map_err(|e| self.shared.error(e))?;
        Ok(row.is_some())
    }

    async fn extend_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(sql::EXTEND_LOCK)
            .await
            .map_err(|e| self.shared.error(e))?;
        let changed = client
            .execute(
                &statement,
                &[&key.as_bytes(), &token.as_bytes(), &ttl_ms(ttl)],
            )
            .await
            .map_err(|e| self.shared.error(e))?;
        Ok(changed == 1)
    }

    async fn unlock(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(sql::UNLOCK)
            .await
            .map_err(|e| self.shared.error(e))?;
        let changed = client
            .execute(&statement, &[&key.as_bytes(), &token.as_bytes()])
            .await
            .map_err(|e| self.shared.error(e))?;
        Ok(changed == 1)
    }
}
