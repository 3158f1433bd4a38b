//! The PostgreSQL part of the environment configuration
//! ([`CacheBuilder::env`](crate::CacheBuilder::env)): `CACHE_POSTGRES_URL`,
//! checked (but not connected) as it is read.

use super::pool::parse;
use super::redact::{scrub, shown, unparsable};
use crate::builder::env::invalid;
use crate::{CacheBuilder, Result};

/// Remote tier on PostgreSQL.
pub(crate) const POSTGRES_URL: &str = "CACHE_POSTGRES_URL";

/// Applies `CACHE_POSTGRES_URL` (`get` gives the set variables). Set beside
/// a Redis variable, it is an error: one remote tier.
pub(crate) fn apply<'a>(
    mut builder: CacheBuilder,
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<CacheBuilder> {
    let Some(url) = get(POSTGRES_URL) else {
        return Ok(builder);
    };
    let config = parse(url).map_err(|error| {
        invalid(
            POSTGRES_URL,
            &unparsable(url),
            &format!(
                "not a PostgreSQL URL (postgres://user:password@host:port/db): {}",
                scrub(&error.to_string(), url, None)
            ),
        )
    })?;
    if let Some(other) = ["REDIS_URL", "REDIS_CLUSTER_URLS"]
        .into_iter()
        .find(|name| get(name).is_some())
    {
        return Err(invalid(
            POSTGRES_URL,
            &shown(&config),
            &format!("{other} is set too: set one remote tier"),
        ));
    }
    builder = builder.postgres(url);
    Ok(builder)
}
