//! Settings that a builder accepts but that cannot be what was meant:
//! rejected by [`CacheBuilder::build`] with [`Error::Config`].

use std::time::Duration;

use super::CacheBuilder;
use crate::policy::MAX_REFRESH_AHEAD;
use crate::{Error, Policy, Result};

impl CacheBuilder {
    /// A zero default TTL (every value would expire as it is stored, so
    /// caching would be off without a word), a zero maximum entry size, or a `refresh_ahead` beta
    /// outside `(0, MAX_REFRESH_AHEAD]` in the defaults or a profile.
    pub(super) fn check_settings(&self) -> Result<()> {
        if self.default_ttl == Duration::ZERO {
            return Err(Error::Config(
                "default_ttl(0): every value would expire as it is stored; give a positive duration, or .enabled(false) to turn caching off".into(),
            ));
        }
        if self.max_entry_bytes == 0 {
            return Err(Error::Config(
                "max_entry_bytes(0): no entry would ever be stored in the remote tier; give a size in bytes (default 16 MiB), or usize::MAX for no bound".into(),
            ));
        }
        check_refresh_ahead("defaults", &self.defaults)?;
        let mut names: Vec<&String> = self.profiles.keys().collect();
        names.sort();
        for name in names {
            check_refresh_ahead(&format!("profile {name:?}"), &self.profiles[name])?;
        }
        Ok(())
    }
}

/// Whether `beta` is a `refresh_ahead` that means what it says.
pub(crate) fn refresh_ahead_ok(beta: f64) -> bool {
    beta > 0.0 && beta <= MAX_REFRESH_AHEAD
}

fn check_refresh_ahead(what: &str, policy: &Policy) -> Result<()> {
    match policy.refresh_ahead {
        Some(beta) if !refresh_ahead_ok(beta) => Err(Error::Config(format!(
            "{what}: refresh_ahead({beta}) is outside (0, {MAX_REFRESH_AHEAD}]: 1.0 is usual; a larger beta refreshes earlier, and above {MAX_REFRESH_AHEAD} nearly every hit would refresh"
        ))),
        _ => Ok(()),
    }
}
