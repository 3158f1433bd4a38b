//! The background sweep of expired rows: a read never returns an expired
//! entry (every statement compares with the clock), so this only gives the
//! space back. Bounded: at most [`BATCH`] rows a statement and
//! [`BATCHES`] statements a round, rows another connection holds skipped;
//! it stops with the store.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::pool::Shared;
use super::sql;

/// Time between two rounds.
const EVERY: Duration = Duration::from_secs(5);
/// Rows deleted by one statement at most.
const BATCH: i64 = 1000;
/// Statements in one round at most.
const BATCHES: usize = 10;

/// Starts the sweep on the current runtime (the store was connected on it).
pub(super) fn start(shared: &Arc<Shared>) {
    let weak = Arc::downgrade(shared);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(run(weak));
    }
}

async fn run(shared: Weak<Shared>) {
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Err(error) = round(&shared).await {
            tracing::debug!(%error, "the sweep of expired cache rows failed; it runs again later");
        }
    }
}

async fn round(shared: &Shared) -> Result<(), crate::store::StoreError> {
    let client = shared.client().await?;
    for statement in [sql::SWEEP_ENTRIES, sql::SWEEP_LOCKS] {
        let statement = client
            .prepare_cached(statement)
            .await
            .map_err(|e| shared.error(e))?;
        for _ in 0..BATCHES {
            let deleted = client
                .execute(&statement, &[&BATCH])
                .await
                .map_err(|e| shared.error(e))?;
            if deleted < BATCH as u64 {
                break;
            }
        }
    }
    Ok(())
}
