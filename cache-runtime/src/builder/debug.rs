//! `Debug` for [`CacheBuilder`]: its settings, with every Redis URL
//! redacted (see `remote::redact`) and the root CA left out.

use std::fmt;

use super::{CacheBuilder, RedisTarget};
use crate::remote::redis::redact;

impl fmt::Debug for CacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redis = match &self.redis {
            None => None,
            Some(RedisTarget::Standalone(url)) => Some(vec![redact(url)]),
            Some(RedisTarget::Cluster(urls)) => Some(urls.iter().map(|u| redact(u)).collect()),
        };
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
            .field("store", &self.store.as_ref().map(|_| "<store>"))
            .field("backplane", &self.backplane.as_ref().map(|_| "<backplane>"))
            .field("root_ca", &self.root_ca.as_ref().map(|_| "<pem>"))
            .field("remote_timeout", &self.remote_timeout)
            .field("remote_retries", &self.remote_retries)
            .field("outage_grace", &self.outage_grace)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}
