//! `Debug` for [`CacheBuilder`]: its settings, with every Redis URL
//! redacted (see `store::redis::redact`) and the root CA left out.

use std::fmt;

use super::CacheBuilder;

impl fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        #[cfg(feature = "redis")]
        let redis = {
            use crate::store::redis::{redact, RedisTarget};
            match &self.redis {
                None => None,
                Some(RedisTarget::Standalone(url)) => Some(vec![redact(url)]),
                Some(RedisTarget::Cluster(urls)) => Some(urls.iter().map(|u| redact(u)).collect()),
            }
        };
        #[cfg(feature = "redis")]
        let root_ca = self.root_ca.as_ref().map(|_| "<pem>");
        #[cfg(not(feature = "redis"))]
        let (redis, root_ca): (Option<Vec<String>>, Option<&str>) = (None, None);
        #[cfg(feature = "postgres")]
        let postgres = self.postgres.as_deref().map(|url| {
            use crate::store::postgres::{redacted_config, unparsable};
            url.parse()
                .map_or_else(|_| unparsable(url), |config| redacted_config(&config))
        });
        #[cfg(not(feature = "postgres"))]
        let postgres: Option<String> = None;
        let mut profiles: Vec<_> = self.profiles.iter().collect();
        profiles.sort_by(|a, b| a.0.cmp(b.0));
        f.debug_struct("CacheBuilder")
            .field("namespace", &self.namespace)
            .field("default_ttl", &self.default_ttl)
            .field("memory", &self.memory)
            .field("memory_bytes", &self.memory_bytes)
            .field("profiles", &profiles)
            .field("defaults", &self.defaults)
            .field("redis", &redis)
            .field("root_ca", &root_ca)
            .field("postgres", &postgres)
            .field("store", &self.store.as_ref().map(|_| "<store>"))
            .field("backplane", &self.backplane.as_ref().map(|_| "<backplane>"))
            .field("remote_timeout", &self.remote_timeout)
            .field("remote_retries", &self.remote_retries)
            .field("outage_grace", &self.outage_grace)
            .field("max_entry_bytes", &self.max_entry_bytes)
            .field("compress_above", &self.compress_above)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}
