//! The Redis part of the environment configuration
//! ([`CacheBuilder::env`](crate::CacheBuilder::env)): `REDIS_URL` and
//! `REDIS_CLUSTER_URLS`, checked (but not connected) as they are read.

use super::{client, redact, scrub, RedisTarget};
use crate::builder::env::invalid;
use crate::{CacheBuilder, Result};

/// Remote tier on a standalone Redis.
pub(crate) const REDIS_URL: &str = "REDIS_URL";
/// Remote tier on a Redis Cluster: seed URLs, comma-separated.
pub(crate) const REDIS_CLUSTER_URLS: &str = "REDIS_CLUSTER_URLS";

/// Applies `REDIS_URL` or `REDIS_CLUSTER_URLS` (`get` gives the set ones).
pub(crate) fn apply<'a>(
    mut builder: CacheBuilder,
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<CacheBuilder> {
    match (get(REDIS_URL), get(REDIS_CLUSTER_URLS)) {
        (Some(url), Some(_)) => {
            return Err(invalid(
                REDIS_URL,
                &redact(url),
                "REDIS_CLUSTER_URLS is set too: set one of them",
            ))
        }
        (Some(url), None) => {
            check_url(REDIS_URL, url)?;
            builder.redis = Some(RedisTarget::Standalone(url.to_string()));
            builder.store = None;
        }
        (None, Some(list)) => {
            builder.redis = Some(RedisTarget::Cluster(cluster_urls(list)?));
            builder.store = None;
        }
        (None, None) => {}
    }
    Ok(builder)
}

/// Checks that `url` is a Redis URL the client accepts (no connection yet).
fn check_url(name: &str, url: &str) -> Result<()> {
    client(url, None).map(drop).map_err(|error| {
        // The client's message may quote the URL: never show its password.
        let why = scrub(&error.to_string(), url);
        invalid(
            name,
            &redact(url),
            &format!("not a Redis URL (redis://[user:password@]host:port[/db]): {why}"),
        )
    })
}

fn cluster_urls(list: &str) -> Result<Vec<String>> {
    let urls: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .collect();
    if urls.is_empty() {
        return Err(invalid(
            REDIS_CLUSTER_URLS,
            list,
            "no URL: write seed URLs separated by commas",
        ));
    }
    for url in &urls {
        check_url(REDIS_CLUSTER_URLS, url)?;
    }
    Ok(urls)
}
