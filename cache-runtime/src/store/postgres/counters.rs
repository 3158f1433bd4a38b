//! Atomic counters: one upsert per increment.

use super::{sql, PostgresStore};
use crate::store::{CounterStore, StoreError};

impl CounterStore for PostgresStore {
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(sql::INCREMENT)
            .await
            .map_err(|e| self.shared.error(e))?;
        let row = client
            .query_one(&statement, &[&key.as_bytes(), &delta])
            .await
            .map_err(|e| self.shared.error(e))?;
        row.try_get(0).map_err(|e| self.shared.error(e))
    }

    async fn value(&self, key: &str) -> Result<i64, StoreError> {
        // A read, not an increment by 0: nothing is created.
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(sql::COUNTER_VALUE)
            .await
            .map_err(|e| self.shared.error(e))?;
        let row = client
            .query_opt(&statement, &[&key.as_bytes()])
            .await
            .map_err(|e| self.shared.error(e))?;
        match row {
            Some(row) => row.try_get(0).map_err(|e| self.shared.error(e)),
            None => Ok(0),
        }
    }
}
