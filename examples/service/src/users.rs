//! The cached reads of users, and the update that invalidates them.
//!
//! Keys and tags: a user is stored under `user:{id}` tagged `user:{id}`; a
//! team's list under `team:{team}` tagged `team:{team}`. An update
//! invalidates the user's tag and the tags of the team it left and the team
//! it joined, so every list that could show the old row is dropped.

use cache_runtime::{cached, Cache};
use deadpool_postgres::Pool;

use crate::db::{self, Updated, User};
use crate::error::DbError;

/// The users, read through the cache.
#[derive(Clone)]
pub struct Users {
    /// The cache of this process (memory, Redis, or both; or disabled).
    pub cache: Cache,
    /// PostgreSQL.
    pub pool: Pool,
}

impl Users {
    /// The user `id`, or `None`.
    ///
    /// `None` is stored too (`cache_none` is on): ids that do not exist are
    /// asked for again and again by scanners and broken links, and each would
    /// otherwise cost a query. Rows are only created at start-up (the seed),
    /// and an update of an absent id invalidates `user:{id}` all the same, so
    /// a stored `None` is only wrong if rows are inserted behind the
    /// service's back; it then lasts at most the TTL.
    #[cached(cache = self.cache, ttl = "5m", key = "user:{id}", tags = ["user:{id}"], name = "service.user")]
    pub async fn user(&self, id: i64) -> Result<Option<User>, DbError> {
        db::user(&self.pool, id).await
    }

    /// The users of `team`, by id (empty for a team nobody is in).
    #[cached(cache = self.cache, ttl = "1m", key = "team:{team}", tags = ["team:{team}"], name = "service.team")]
    pub async fn team(&self, team: &str) -> Result<Vec<User>, DbError> {
        db::team(&self.pool, team).await
    }

    /// Updates user `id` and invalidates `user:{id}`, `team:{old}` and
    /// `team:{new}`; `None` when there is no such user.
    ///
    /// # Errors
    ///
    /// A failed update. A failed invalidation is no error here: the cache
    /// applied it in this process and retries it against Redis by itself
    /// (see `Cache::invalidate_tags`), so it is logged and the update stands.
    pub async fn update(&self, id: i64, name: &str, team: &str) -> Result<Option<User>, DbError> {
        let updated = db::update(&self.pool, id, name, team).await;
        let mut tags = vec![format!("user:{id}")];
        if let Ok(Some(Updated { old_team, user })) = &updated {
            tags.push(format!("team:{old_team}"));
            if user.team != *old_team {
                tags.push(format!("team:{}", user.team));
            }
        }
        // Also when the update failed or found nothing: its outcome is
        // unknown (a lost reply may hide a commit), and a miss is cheap.
        if let Err(e) = self.cache.invalidate_tags(&tags).await {
            tracing::warn!(error = %e, ?tags, "invalidation queued for retry");
        }
        Ok(updated?.map(|u| u.user))
    }
}
