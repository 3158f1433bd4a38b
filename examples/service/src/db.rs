//! PostgreSQL: the pool, the schema and its seed, and the queries of the
//! routes. Every query a route runs adds one to `service_db_queries_total`
//! (label `query`), so that tests and dashboards can see what the cache saved.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::{Deserialize, Serialize};
use tokio_postgres::{NoTls, Row};

use crate::error::DbError;

/// The counter of queries run by the routes.
pub const QUERIES_TOTAL: &str = "service_db_queries_total";
/// The users seeded at start: ids 1..=SEED_USERS.
pub const SEED_USERS: i64 = 1000;
/// Teams of the seed: `team-0` .. `team-{SEED_TEAMS - 1}`.
pub const SEED_TEAMS: i64 = 10;

/// One row of `users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// The team's name.
    pub team: String,
}

impl User {
    fn from_row(row: &Row) -> Result<User, DbError> {
        Ok(User {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            team: row.try_get("team")?,
        })
    }
}

/// A pool of `size` connections to `url` (not connected until first used).
///
/// # Errors
///
/// A malformed URL, or a pool that cannot be built.
pub fn pool(url: &str, size: usize) -> Result<Pool, DbError> {
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|e| DbError(format!("DATABASE_URL is malformed: {e}")))?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // Checks nothing on reuse: a broken connection is noticed by
            // its query, which then fails with a 500, and is dropped.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .build()
        .map_err(|e| DbError(format!("cannot build the pool: {e}")))
}

/// Creates `users` if it does not exist and seeds ids 1..=1000 (rows that
/// exist are left as they are, so a restart keeps earlier updates).
///
/// # Errors
///
/// Whatever PostgreSQL answers.
pub async fn migrate(pool: &Pool) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS users (
                id bigint PRIMARY KEY,
                name text NOT NULL,
                team text NOT NULL
            );
            CREATE INDEX IF NOT EXISTS users_team ON users (team);",
        )
        .await?;
    client
        .execute(
            "INSERT INTO users (id, name, team)
             SELECT i, 'user-' || i, 'team-' || (i % $2)
             FROM generate_series(1, $1::bigint) AS i
             ON CONFLICT (id) DO NOTHING",
            &[&SEED_USERS, &SEED_TEAMS],
        )
        .await?;
    Ok(())
}

fn counted(query: &'static str) {
    metrics::counter!(QUERIES_TOTAL, "query" => query).increment(1);
}

/// The user `id`, if there is one.
///
/// # Errors
///
/// Whatever the pool or PostgreSQL answers.
pub async fn user(pool: &Pool, id: i64) -> Result<Option<User>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("SELECT id, name, team FROM users WHERE id = $1")
        .await?;
    counted("user");
    let row = client.query_opt(&statement, &[&id]).await?;
    row.as_ref().map(User::from_row).transpose()
}

/// The users of `team`, by id.
///
/// # Errors
///
/// Whatever the pool or PostgreSQL answers.
pub async fn team(pool: &Pool, team: &str) -> Result<Vec<User>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("SELECT id, name, team FROM users WHERE team = $1 ORDER BY id")
        .await?;
    counted("team");
    let rows = client.query(&statement, &[&team]).await?;
    rows.iter().map(User::from_row).collect()
}

/// What [`update`] changed: the row before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    /// The team the user was in before the update.
    pub old_team: String,
    /// The row as it is now.
    pub user: User,
}

/// Sets the name and team of user `id`; `None` when there is no such user.
/// One statement: the old row is locked (`FOR UPDATE`) and read in the same
/// statement that changes it, so `old_team` is the team this update moved
/// the user out of, even under concurrent updates.
///
/// # Errors
///
/// Whatever the pool or PostgreSQL answers.
pub async fn update(
    pool: &Pool,
    id: i64,
    name: &str,
    team: &str,
) -> Result<Option<Updated>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE users AS u SET name = $2, team = $3
             FROM (SELECT id, team FROM users WHERE id = $1 FOR UPDATE) AS old
             WHERE u.id = old.id
             RETURNING u.id, u.name, u.team, old.team AS old_team",
        )
        .await?;
    counted("update");
    let Some(row) = client.query_opt(&statement, &[&id, &name, &team]).await? else {
        return Ok(None);
    };
    Ok(Some(Updated {
        old_team: row.try_get("old_team")?,
        user: User::from_row(&row)?,
    }))
}
