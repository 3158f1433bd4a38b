//! Configuration from environment variables: [`CacheBuilder::env`],
//! [`CacheBuilder::env_from`] and [`Cache::from_env`]. The README's table
//! lists every variable.
//!
//! A variable that is set applies over what earlier builder calls said;
//! builder calls after `env()` win over it. A malformed value is an
//! [`Error::Config`] naming the variable and its value, with a URL's password
//! redacted.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::time::Duration;

use super::CacheBuilder;
use crate::duration;
use crate::{Cache, Error, Policy, Result};

/// The Redis tier's variables (`store::redis::env`), read only with the
/// `redis` feature; without it, setting one is an error, not a cache
/// silently without its remote tier.
const REDIS_NAMES: [&str; 2] = ["REDIS_URL", "REDIS_CLUSTER_URLS"];
/// The PostgreSQL tier's URL (`store::postgres::env`); without the
/// `postgres` feature, setting it is an error.
const POSTGRES_URL: &str = "CACHE_POSTGRES_URL";
/// Prefix of every key.
const NAMESPACE: &str = "CACHE_NAMESPACE";
/// Default TTL.
const DEFAULT_TTL: &str = "CACHE_DEFAULT_TTL";
/// Entries in the memory tier; 0 for none.
const MEMORY_CAPACITY: &str = "CACHE_MEMORY_CAPACITY";
/// The memory tier's bound in bytes.
const MEMORY_BYTES: &str = "CACHE_MEMORY_BYTES";
/// The largest entry in the remote tier, in bytes.
const MAX_ENTRY_BYTES: &str = "CACHE_MAX_ENTRY_BYTES";
/// Remote entries whose encoded value is larger are compressed.
const COMPRESS_ABOVE: &str = "CACHE_COMPRESS_ABOVE";
/// Time limit of each remote operation.
const REMOTE_TIMEOUT: &str = "CACHE_REMOTE_TIMEOUT";
/// Retries of a remote operation after a connection fault.
const REMOTE_RETRIES: &str = "CACHE_REMOTE_RETRIES";
/// `true`: nothing is cached.
const DISABLED: &str = "CACHE_DISABLED";
/// How long memory serves while Redis is unreachable.
const OUTAGE_GRACE: &str = "CACHE_OUTAGE_GRACE";
/// `CACHE_PROFILE_<NAME>`: a named policy.
const PROFILE_PREFIX: &str = "CACHE_PROFILE_";

/// Every fixed name, to pick ours out of the process environment.
const NAMES: [&str; 10] = [
    NAMESPACE,
    DEFAULT_TTL,
    MEMORY_CAPACITY,
    MEMORY_BYTES,
    MAX_ENTRY_BYTES,
    COMPRESS_ABOVE,
    REMOTE_TIMEOUT,
    REMOTE_RETRIES,
    DISABLED,
    OUTAGE_GRACE,
];

/// Longest value quoted in an error message, in characters.
const MAX_QUOTED: usize = 120;

impl Cache {
    /// A cache configured by the environment alone: a memory cache of
    /// [`DEFAULT_CAPACITY`](crate::DEFAULT_CAPACITY) (10,000) entries, with
    /// the variables that are set applied over it (see
    /// [`CacheBuilder::env`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::from_env().await?;
    /// # let _ = cache;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a malformed variable (the message names it and
    /// its value, never a password), and whatever
    /// [`build`](CacheBuilder::build) returns.
    ///
    /// # Cancel safety
    ///
    /// As [`CacheBuilder::build`]: dropping it drops the cache
    /// being built and its background tasks.
    pub async fn from_env() -> Result<Cache> {
        from_env_base().env()?.build().await
    }
}

/// What [`Cache::from_env`] starts from: the contract's defaults.
fn from_env_base() -> CacheBuilder {
    Cache::builder().memory(crate::DEFAULT_CAPACITY)
}

impl CacheBuilder {
    /// Applies the process's environment variables that are set (an empty
    /// value counts as unset; surrounding whitespace is ignored) over what
    /// earlier calls said; later calls win over them:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `REDIS_URL` | remote tier on a standalone Redis, as [`redis`](Self::redis) |
    /// | `REDIS_CLUSTER_URLS` | remote tier on a Redis Cluster, seed URLs comma-separated, as [`redis_cluster`](Self::redis_cluster) |
    /// | `CACHE_POSTGRES_URL` | remote tier on PostgreSQL, `postgres://user:password@host:port/db`, as `postgres` (feature `postgres`); not beside a Redis variable |
    /// | `CACHE_NAMESPACE` | [`namespace`](Self::namespace) |
    /// | `CACHE_DEFAULT_TTL` | [`default_ttl`](Self::default_ttl), a duration in the macro's forms (`250ms`, `30s`, `10m`, `2h`, `1d`, or seconds), above 0 |
    /// | `CACHE_MEMORY_CAPACITY` | [`memory`](Self::memory) in entries; `0` for no memory tier (storage only) |
    /// | `CACHE_MEMORY_BYTES` | [`memory_bytes`](Self::memory_bytes): a number of bytes, or one with a unit, `KB`, `MB`, `GB`, `TB` (powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024), case-insensitive: `64MB`, `1GiB`, `1.5 GiB`, `67108864` |
    /// | `CACHE_MAX_ENTRY_BYTES` | [`max_entry_bytes`](Self::max_entry_bytes), in the forms of `CACHE_MEMORY_BYTES`, above 0 |
    /// | `CACHE_COMPRESS_ABOVE` | [`compress_above`](Self::compress_above), in the forms of `CACHE_MEMORY_BYTES` (`4KB`, `4096`) |
    /// | `CACHE_REMOTE_TIMEOUT` | [`remote_timeout`](Self::remote_timeout), a duration |
    /// | `CACHE_REMOTE_RETRIES` | [`remote_retries`](Self::remote_retries) |
    /// | `CACHE_DISABLED` | `true` (or `1`, `yes`, `on`): [`enabled(false)`](Self::enabled) |
    /// | `CACHE_OUTAGE_GRACE` | [`outage_grace`](Self::outage_grace), a duration; `0` for none |
    /// | `CACHE_PROFILE_<NAME>` | [`profile`](Self::profile) `<name>` (lower case, `_` as `-`), as `ttl=30m,stale=1m,fail_safe=1h,refresh_ahead=1.0`, any subset; `refresh_ahead` in (0, 100] |
    ///
    /// Other variables, `CACHE_*` ones included, are ignored.
    ///
    /// ```
    /// # fn main() -> Result<(), cache_runtime::Error> {
    /// let builder = cache_runtime::Cache::builder()
    ///     .namespace("myapp")
    ///     .memory(10_000)
    ///     .env()?; // CACHE_NAMESPACE, when set, replaces "myapp"
    /// # let _ = builder;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the variable and its value (a URL's password
    /// redacted) when a value is malformed, when both `REDIS_URL` and
    /// `REDIS_CLUSTER_URLS` are set, when `CACHE_MEMORY_CAPACITY=0` leaves
    /// the cache with no tier at all, or when `CACHE_MEMORY_BYTES` is `0` or
    /// set beside `CACHE_MEMORY_CAPACITY=0`, when `CACHE_MAX_ENTRY_BYTES` is
    /// `0`, when `CACHE_DEFAULT_TTL` is 0
    /// (use `CACHE_DISABLED=true` to turn caching off), or when two
    /// `CACHE_PROFILE_*` variables name one profile (`_ODD` and `_odd`).
    pub fn env(self) -> Result<Self> {
        self.env_from(std::env::vars_os())
    }

    /// Like [`env`](Self::env), from `vars` (name, value pairs) instead of
    /// the process environment: for tests, or settings read from a file.
    /// When a name repeats, its last value counts.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cache_runtime::Error> {
    /// let cache = cache_runtime::Cache::builder()
    ///     .memory(100)
    ///     .env_from([("CACHE_NAMESPACE", "myapp"), ("CACHE_DEFAULT_TTL", "10m")])?
    ///     .build()
    ///     .await?;
    /// assert_eq!(cache.namespace(), "myapp");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`env`](Self::env); also a variable of ours whose value is not
    /// UTF-8.
    pub fn env_from<I, K, V>(self, vars: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut ours = BTreeMap::new();
        for (name, value) in vars {
            let (name, value) = (name.as_ref(), value.as_ref());
            // Only our names matter; a foreign variable may hold anything.
            let Some(name) = name.to_str().filter(|n| is_ours(n)) else {
                if is_ours(&name.to_string_lossy()) {
                    return Err(Error::Config(format!(
                        "environment variable {:?}: its name is not UTF-8",
                        name.to_string_lossy()
                    )));
                }
                continue;
            };
            let Some(value) = value.to_str() else {
                return Err(invalid(name, "<not UTF-8>", "the value is not UTF-8"));
            };
            ours.insert(name.to_string(), value.trim().to_string());
        }
        // Empty counts as unset (e.g. `REDIS_URL=` in a compose file).
        ours.retain(|_, value| !value.is_empty());
        self.apply(&ours)
    }

    /// Applies the set variables, in a fixed order whatever the order given.
    fn apply(mut self, vars: &BTreeMap<String, String>) -> Result<Self> {
        let get = |name: &str| vars.get(name).map(String::as_str);
        #[cfg(feature = "redis")]
        {
            self = crate::store::redis::apply_env(self, get)?;
        }
        #[cfg(not(feature = "redis"))]
        if let Some(name) = REDIS_NAMES.into_iter().find(|name| get(name).is_some()) {
            return Err(invalid(
                name,
                "***",
                "cache-runtime is built without its `redis` feature: enable it for a Redis tier",
            ));
        }
        #[cfg(feature = "postgres")]
        {
            self = crate::store::postgres::apply_env(self, get)?;
        }
        #[cfg(not(feature = "postgres"))]
        if get(POSTGRES_URL).is_some() {
            return Err(invalid(
                POSTGRES_URL,
                "***",
                "cache-runtime is built without its `postgres` feature: enable it for a PostgreSQL tier",
            ));
        }
        if let Some(namespace) = get(NAMESPACE) {
            if namespace.contains(['*', '?', '[', ']', '#']) {
                return Err(invalid(
                    NAMESPACE,
                    namespace,
                    "contains a reserved character (* ? [ ] #)",
                ));
            }
            self.namespace = namespace.to_string();
        }
        if let Some(ttl) = get(DEFAULT_TTL) {
            self.default_ttl = parse_duration(DEFAULT_TTL, ttl)?;
            if self.default_ttl.is_zero() {
                return Err(invalid(
                    DEFAULT_TTL,
                    ttl,
                    "a TTL of 0 expires every value as it is stored: give a positive duration, or set CACHE_DISABLED=true to turn caching off",
                ));
            }
        }
        if let Some(capacity) = get(MEMORY_CAPACITY) {
            let entries: usize = capacity.parse().map_err(|_| {
                invalid(
                    MEMORY_CAPACITY,
                    capacity,
                    "not a whole number of entries (0 for no memory tier)",
                )
            })?;
            self.memory = (entries > 0).then_some(entries);
        }
        if let Some(bytes) = get(MEMORY_BYTES) {
            let bound = parse_bytes(MEMORY_BYTES, bytes)?;
            if bound == 0 {
                return Err(invalid(
                    MEMORY_BYTES,
                    bytes,
                    "a bound of 0 bytes holds nothing: unset it for no bound in bytes, or set CACHE_MEMORY_CAPACITY=0 for no memory tier",
                ));
            }
            if get(MEMORY_CAPACITY).is_some() && self.memory.is_none() {
                return Err(invalid(
                    MEMORY_BYTES,
                    bytes,
                    "CACHE_MEMORY_CAPACITY=0 turns the memory tier off: unset one of them",
                ));
            }
            self = self.memory_bytes(bound);
        }
        if let Some(bytes) = get(MAX_ENTRY_BYTES) {
            let max = parse_bytes(MAX_ENTRY_BYTES, bytes)?;
            if max == 0 {
                return Err(invalid(
                    MAX_ENTRY_BYTES,
                    bytes,
                    "a bound of 0 bytes stores no entry in the remote tier: unset it for the default (16MiB)",
                ));
            }
            // Past the address space is no bound at all.
            self.max_entry_bytes = usize::try_from(max).unwrap_or(usize::MAX);
        }
        if let Some(bytes) = get(COMPRESS_ABOVE) {
            let above = parse_bytes(COMPRESS_ABOVE, bytes)?;
            // Past the address space nothing is compressed.
            self.compress_above = usize::try_from(above).ok();
        }
        if let Some(timeout) = get(REMOTE_TIMEOUT) {
            let raw = timeout;
            let timeout = parse_duration(REMOTE_TIMEOUT, raw)?;
            if timeout.is_zero() {
                return Err(invalid(
                    REMOTE_TIMEOUT,
                    raw,
                    "a time limit of 0 fails every remote operation; give a positive duration",
                ));
            }
            self.remote_timeout = timeout;
        }
        if let Some(retries) = get(REMOTE_RETRIES) {
            self.remote_retries = retries.parse().map_err(|_| {
                invalid(
                    REMOTE_RETRIES,
                    retries,
                    "not a whole number of retries (0 for none)",
                )
            })?;
        }
        if let Some(disabled) = get(DISABLED) {
            self.enabled = !parse_bool(DISABLED, disabled)?;
        }
        if let Some(grace) = get(OUTAGE_GRACE) {
            self.outage_grace = parse_duration(OUTAGE_GRACE, grace)?;
        }
        // Two variables may name one profile (`_ODD`, `_odd`, `_A_B`,
        // `_A-B`): which would win depends on the order, so neither does.
        let mut named: BTreeMap<String, &str> = BTreeMap::new();
        for (name, value) in vars.range(PROFILE_PREFIX.to_string()..) {
            let Some(suffix) = name.strip_prefix(PROFILE_PREFIX) else {
                break;
            };
            let profile = profile_name(name, suffix)?;
            if let Some(other) = named.insert(profile.clone(), name) {
                return Err(invalid(
                    name,
                    value,
                    &format!("{other} names the same profile {profile:?}: set one of them"),
                ));
            }
            self.profiles.insert(profile, parse_profile(name, value)?);
        }
        if get(MEMORY_CAPACITY).is_some()
            && self.memory.is_none()
            && !self.has_remote()
            && self.enabled
        {
            return Err(invalid(
                MEMORY_CAPACITY,
                "0",
                "no memory tier and no remote tier: set REDIS_URL or REDIS_CLUSTER_URLS for storage only, or a capacity above 0",
            ));
        }
        Ok(self)
    }
}

fn is_ours(name: &str) -> bool {
    NAMES.contains(&name)
        || REDIS_NAMES.contains(&name)
        || name == POSTGRES_URL
        || name.starts_with(PROFILE_PREFIX)
}

/// The error for `name` set to `shown` (already redacted where it must be).
pub(crate) fn invalid(name: &str, shown: &str, why: &str) -> Error {
    let mut quoted: String = shown.chars().take(MAX_QUOTED).collect();
    if quoted.len() < shown.len() {
        quoted.push_str("...");
    }
    Error::Config(format!("environment variable {name}={quoted:?}: {why}"))
}

fn parse_duration(name: &str, value: &str) -> Result<Duration> {
    duration::parse(value).map_err(|e| invalid(name, value, &e.to_string()))
}

/// `bytes` as a number of bytes: a whole or decimal number with an optional
/// unit (`B`, `KB`..`TB` in powers of 1000, `KiB`..`TiB` in powers of 1024,
/// any case, a space allowed before it).
fn parse_bytes(name: &str, bytes: &str) -> Result<u64> {
    const WHY: &str = "not a size in bytes: write a number of bytes or one with a unit, as 64MB or 1GiB (KB, MB, GB, TB: powers of 1000; KiB, MiB, GiB, TiB: powers of 1024)";
    let split = bytes
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(bytes.len());
    let (number, unit) = bytes.split_at(split);
    let scale: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000_u64.pow(2),
        "gb" => 1000_u64.pow(3),
        "tb" => 1000_u64.pow(4),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(invalid(name, bytes, WHY)),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(invalid(name, bytes, WHY));
    }
    let digits = |part: &str| -> Result<u64> {
        if part.is_empty() {
            return Ok(0);
        }
        part.parse().map_err(|_| invalid(name, bytes, WHY))
    };
    let too_large = || invalid(name, bytes, "larger than 2^64 bytes");
    let mut total = digits(whole)?.checked_mul(scale).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        // The fraction of the unit, rounded down to whole bytes; digits
        // past the 12th cannot change it for units up to TiB.
        let kept = &fraction[..fraction.len().min(12)];
        let part = u128::from(digits(kept)?) * u128::from(scale) / 10_u128.pow(kept.len() as u32);
        let part = u64::try_from(part).map_err(|_| too_large())?;
        total = total.checked_add(part).ok_or_else(too_large)?;
    }
    Ok(total)
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(name, value, "write true or false")),
    }
}

/// `CACHE_PROFILE_USER_PROFILE` names `user-profile`.
fn profile_name(var: &str, suffix: &str) -> Result<String> {
    if suffix.is_empty() {
        return Err(invalid(
            var,
            "",
            "the profile has no name: write CACHE_PROFILE_<NAME>",
        ));
    }
    Ok(suffix.to_ascii_lowercase().replace('_', "-"))
}

/// `ttl=30m,stale=1m,fail_safe=1h,refresh_ahead=1.0`, any subset, each at most once.
fn parse_profile(var: &str, value: &str) -> Result<Policy> {
    const OPTIONS: &str = "ttl, stale, fail_safe, refresh_ahead";
    let mut policy = Policy::new();
    let mut seen: Vec<&str> = Vec::new();
    for item in value.split(',').map(str::trim) {
        let Some((option, setting)) = item.split_once('=') else {
            return Err(invalid(
                var,
                value,
                &format!("`{item}` is not option=value (options: {OPTIONS})"),
            ));
        };
        let (option, setting) = (option.trim(), setting.trim());
        if seen.contains(&option) {
            return Err(invalid(var, value, &format!("`{option}` is given twice")));
        }
        seen.push(option);
        let when = |e: duration::DurationError| invalid(var, value, &format!("`{option}`: {e}"));
        match option {
            "ttl" => policy.ttl = Some(duration::parse(setting).map_err(when)?),
            "stale" => policy.stale = Some(duration::parse(setting).map_err(when)?),
            "fail_safe" => policy.fail_safe = Some(duration::parse(setting).map_err(when)?),
            "refresh_ahead" => {
                let beta: f64 = setting
                    .parse()
                    .ok()
                    .filter(|b: &f64| super::checks::refresh_ahead_ok(*b))
                    .ok_or_else(|| {
                        invalid(
                            var,
                            value,
                            "`refresh_ahead` is a number above 0 and at most 100 (1.0 is usual)",
                        )
                    })?;
                policy.refresh_ahead = Some(beta);
            }
            _ => {
                return Err(invalid(
                    var,
                    value,
                    &format!("unknown option `{option}` (options: {OPTIONS})"),
                ))
            }
        }
    }
    Ok(policy)
}

// Most of them set a Redis tier.
#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;
    use crate::store::redis::RedisTarget;

    fn from(vars: &[(&str, &str)]) -> Result<CacheBuilder> {
        from_env_base().env_from(vars.iter().copied())
    }

    fn err(vars: &[(&str, &str)]) -> String {
        match from(vars) {
            Ok(_) => panic!("{vars:?} should be rejected"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn nothing_set_is_a_memory_cache_of_10000_with_the_defaults() {
        let b = from(&[("PATH", "/bin"), ("CACHE_DIR", "/tmp"), ("REDIS_URL", "")]).unwrap();
        assert_eq!(b.memory, Some(10_000));
        assert!(b.redis.is_none());
        assert_eq!(b.namespace, "cache");
        assert_eq!(b.default_ttl, Duration::from_secs(300));
        assert_eq!(b.remote_timeout, Duration::from_millis(250));
        assert_eq!(b.remote_retries, 1);
        assert!(b.enabled);
        assert!(b.profiles.is_empty());
    }

    #[test]
    fn every_variable_sets_its_option() {
        let b = from(&[
            ("REDIS_URL", " redis://:pw@127.0.0.1:7000/2 "),
            ("CACHE_NAMESPACE", "myapp"),
            ("CACHE_DEFAULT_TTL", "10m"),
            ("CACHE_MEMORY_CAPACITY", "500"),
            ("CACHE_REMOTE_TIMEOUT", "1s"),
            ("CACHE_REMOTE_RETRIES", "3"),
            ("CACHE_DISABLED", "TRUE"),
            ("CACHE_OUTAGE_GRACE", "5s"),
            ("CACHE_PROFILE_USER_PROFILE", "ttl=30m,stale=1m"),
            ("CACHE_PROFILE_X", "fail_safe=2h"),
        ])
        .unwrap();
        assert!(
            matches!(&b.redis, Some(RedisTarget::Standalone(u)) if u == "redis://:pw@127.0.0.1:7000/2")
        );
        assert_eq!(b.namespace, "myapp");
        assert_eq!(b.default_ttl, Duration::from_secs(600));
        assert_eq!(b.memory, Some(500));
        assert_eq!(b.remote_timeout, Duration::from_secs(1));
        assert_eq!(b.remote_retries, 3);
        assert!(!b.enabled);
        assert_eq!(b.outage_grace, Duration::from_secs(5));
        assert_eq!(
            b.profiles.get("user-profile"),
            Some(&Policy::ttl(Duration::from_secs(1800)).stale(Duration::from_secs(60)))
        );
        assert_eq!(
            b.profiles.get("x"),
            Some(&Policy::new().fail_safe(Duration::from_secs(7200)))
        );
        for (value, enabled) in [("false", true), ("0", true), ("off", true), ("1", false)] {
            assert_eq!(
                from(&[(DISABLED, value)]).unwrap().enabled,
                enabled,
                "{value}"
            );
        }
    }

    #[test]
    fn cluster_urls_are_split_on_commas() {
        let b = from(&[(
            "REDIS_CLUSTER_URLS",
            "redis://127.0.0.1:7000, redis://127.0.0.1:7001,",
        )])
        .unwrap();
        let Some(RedisTarget::Cluster(urls)) = &b.redis else {
            panic!("a cluster target");
        };
        assert_eq!(urls, &["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]);
        let e = err(&[("REDIS_CLUSTER_URLS", " , ")]);
        assert!(
            e.contains("REDIS_CLUSTER_URLS") && e.contains("no URL"),
            "{e}"
        );
    }

    #[test]
    fn set_variables_win_over_earlier_calls() {
        let b = Cache::builder()
            .namespace("code")
            .default_ttl(Duration::from_secs(1))
            .memory_weighted(1 << 20, |_| 1)
            .redis("redis://127.0.0.1:1")
            .profile("p", Policy::ttl(Duration::from_secs(1)))
            .remote_retries(5)
            .enabled(false)
            .env_from([
                ("CACHE_NAMESPACE", "env"),
                ("CACHE_DEFAULT_TTL", "2h"),
                ("CACHE_MEMORY_CAPACITY", "7"),
                ("REDIS_CLUSTER_URLS", "redis://127.0.0.1:2"),
                ("CACHE_PROFILE_P", "ttl=3s"),
                ("CACHE_REMOTE_RETRIES", "0"),
                ("CACHE_DISABLED", "false"),
            ])
            .unwrap();
        assert_eq!(b.namespace, "env");
        assert_eq!(b.default_ttl, Duration::from_secs(7200));
        // The entry bound joins the weigher's bound: both hold.
        assert_eq!((b.memory, b.memory_bytes), (Some(7), Some(1 << 20)));
        assert!(b.weigher.is_some());
        assert!(matches!(&b.redis, Some(RedisTarget::Cluster(u)) if u.len() == 1));
        assert_eq!(b.profiles["p"], Policy::ttl(Duration::from_secs(3)));
        assert_eq!(b.remote_retries, 0);
        assert!(b.enabled);
    }

    #[test]
    fn unset_variables_keep_earlier_calls_and_later_calls_win() {
        let kept = Cache::builder()
            .namespace("code")
            .remote_timeout(Duration::from_secs(9))
            .env_from([("CACHE_DEFAULT_TTL", "1m")])
            .unwrap();
        assert_eq!(kept.namespace, "code");
        assert_eq!(kept.remote_timeout, Duration::from_secs(9));
        let later = kept
            .default_ttl(Duration::from_secs(5))
            .memory(3)
            .env_from([("CACHE_NAMESPACE", "env")])
            .unwrap()
            .namespace("later");
        assert_eq!(later.namespace, "later");
        assert_eq!(later.default_ttl, Duration::from_secs(5));
        assert_eq!(later.memory, Some(3));
    }

    #[test]
    fn memory_bytes_takes_units_of_1000_and_1024() {
        for (value, bytes) in [
            ("67108864", 67_108_864),
            ("64MB", 64_000_000),
            ("64mb", 64_000_000),
            ("64 MiB", 64 << 20),
            ("1GiB", 1 << 30),
            ("1.5GiB", 3 << 29),
            ("0.5kib", 512),
            (".25KB", 250),
            ("4096B", 4096),
            ("2TB", 2_000_000_000_000),
            ("1TiB", 1 << 40),
        ] {
            let b = from(&[("CACHE_MEMORY_BYTES", value)]).unwrap();
            assert_eq!(b.memory_bytes, Some(bytes), "{value}");
            // The default entry bound stays: both hold.
            assert_eq!(b.memory, Some(10_000), "{value}");
        }
        // Alone (no earlier entry bound), it makes a tier bounded in bytes only.
        let b = Cache::builder()
            .redis("redis://127.0.0.1:7000")
            .env_from([("CACHE_MEMORY_BYTES", "1MiB")])
            .unwrap();
        assert_eq!(
            (b.memory, b.memory_bytes),
            (Some(usize::MAX), Some(1 << 20))
        );
        let b = from(&[
            ("CACHE_MEMORY_BYTES", "1MiB"),
            ("CACHE_MEMORY_CAPACITY", "50"),
        ])
        .unwrap();
        assert_eq!((b.memory, b.memory_bytes), (Some(50), Some(1 << 20)));
    }

    #[test]
    fn max_entry_bytes_takes_the_forms_of_memory_bytes() {
        assert_eq!(
            from(&[]).unwrap().max_entry_bytes,
            crate::remote::oversize::DEFAULT_MAX_ENTRY_BYTES
        );
        for (value, bytes) in [
            ("1048576", 1 << 20),
            ("64MB", 64_000_000),
            ("32 MiB", 32 << 20),
            ("1GiB", 1 << 30),
        ] {
            let b = from(&[("CACHE_MAX_ENTRY_BYTES", value)]).unwrap();
            assert_eq!(b.max_entry_bytes, bytes, "{value}");
        }
        for value in ["0", "0MiB"] {
            let e = err(&[("CACHE_MAX_ENTRY_BYTES", value)]);
            assert!(
                e.contains("CACHE_MAX_ENTRY_BYTES") && e.contains("stores no entry"),
                "{e}"
            );
        }
        let e = err(&[("CACHE_MAX_ENTRY_BYTES", "big")]);
        assert!(
            e.contains("CACHE_MAX_ENTRY_BYTES=\"big\"") && e.contains("64MB or 1GiB"),
            "{e}"
        );
        // A later call wins over it.
        let b = Cache::builder()
            .memory(1)
            .env_from([("CACHE_MAX_ENTRY_BYTES", "1MiB")])
            .unwrap()
            .max_entry_bytes(5);
        assert_eq!(b.max_entry_bytes, 5);
    }

    #[test]
    fn compress_above_takes_the_forms_of_memory_bytes() {
        assert_eq!(from(&[]).unwrap().compress_above, None);
        for (value, bytes) in [("4096", 4096), ("4KB", 4000), ("4KiB", 4096), ("0", 0)] {
            let b = from(&[("CACHE_COMPRESS_ABOVE", value)]).unwrap();
            assert_eq!(b.compress_above, Some(bytes), "{value}");
        }
        let e = err(&[("CACHE_COMPRESS_ABOVE", "lots")]);
        assert!(e.contains("CACHE_COMPRESS_ABOVE=\"lots\""), "{e}");
        let b = Cache::builder()
            .env_from([("CACHE_COMPRESS_ABOVE", "1MiB")])
            .unwrap()
            .compress_above(10);
        assert_eq!(b.compress_above, Some(10));
    }

    #[test]
    fn malformed_memory_bytes_name_the_variable() {
        for value in [
            "lots", "-1", "64 M", "64K", "1e9", "1.2.3", ".", "MB", "0x10", "64MBs",
        ] {
            let e = err(&[("CACHE_MEMORY_BYTES", value)]);
            assert!(
                e.contains(&format!("CACHE_MEMORY_BYTES={value:?}")) && e.contains("64MB or 1GiB"),
                "{value}: {e}"
            );
        }
        for value in ["0", "0GiB", "0.0"] {
            let e = err(&[("CACHE_MEMORY_BYTES", value)]);
            assert!(
                e.contains("CACHE_MEMORY_BYTES") && e.contains("holds nothing"),
                "{e}"
            );
        }
        let e = err(&[("CACHE_MEMORY_BYTES", "99999999999TiB")]);
        assert!(
            e.contains("CACHE_MEMORY_BYTES") && e.contains("2^64"),
            "{e}"
        );
        let e = err(&[
            ("CACHE_MEMORY_BYTES", "64MB"),
            ("CACHE_MEMORY_CAPACITY", "0"),
            ("REDIS_URL", "redis://127.0.0.1:7000"),
        ]);
        assert!(
            e.contains("CACHE_MEMORY_BYTES") && e.contains("unset one"),
            "{e}"
        );
    }

    #[test]
    fn storage_only_needs_a_remote_tier() {
        let b = from(&[
            ("CACHE_MEMORY_CAPACITY", "0"),
            ("REDIS_URL", "redis://127.0.0.1:7000"),
        ])
        .unwrap();
        assert_eq!(b.memory, None);
        let e = err(&[("CACHE_MEMORY_CAPACITY", "0")]);
        assert!(
            e.contains("CACHE_MEMORY_CAPACITY=\"0\"") && e.contains("REDIS_URL"),
            "{e}"
        );
        // A remote tier from an earlier call counts; so does turning the cache off.
        let b = Cache::builder()
            .redis("redis://127.0.0.1:7000")
            .env_from([("CACHE_MEMORY_CAPACITY", "0")]);
        assert!(b.is_ok());
        assert!(from(&[("CACHE_MEMORY_CAPACITY", "0"), ("CACHE_DISABLED", "1")]).is_ok());
    }

    #[test]
    fn malformed_values_name_the_variable_and_the_value() {
        for (name, value, says) in [
            ("CACHE_DEFAULT_TTL", "soon", "malformed duration"),
            ("CACHE_DEFAULT_TTL", "1.5s", "malformed duration"),
            ("CACHE_DEFAULT_TTL", "99999999999999999999", "too long"),
            ("CACHE_REMOTE_TIMEOUT", "30 s", "malformed duration"),
            ("CACHE_REMOTE_TIMEOUT", "0ms", "time limit of 0"),
            ("CACHE_MEMORY_CAPACITY", "-1", "whole number of entries"),
            ("CACHE_MEMORY_CAPACITY", "10k", "whole number of entries"),
            ("CACHE_REMOTE_RETRIES", "many", "whole number of retries"),
            ("CACHE_DISABLED", "maybe", "true or false"),
            ("CACHE_NAMESPACE", "a*b", "reserved character"),
            ("CACHE_PROFILE_P", "ttl=1x", "`ttl`: malformed duration"),
            ("REDIS_URL", "http://127.0.0.1:7000", "not a Redis URL"),
            (
                "REDIS_CLUSTER_URLS",
                "redis://127.0.0.1:7000,nope",
                "not a Redis URL",
            ),
        ] {
            let e = err(&[(name, value)]);
            assert!(e.contains(&format!("{name}=")), "{name}: {e}");
            assert!(e.contains(says), "{name}={value}: {e}");
            if !name.starts_with("REDIS") {
                assert!(e.contains(&format!("{value:?}")), "{name}={value}: {e}");
            }
        }
        let e = err(&[("CACHE_PROFILE_", "ttl=1s")]);
        assert!(e.contains("CACHE_PROFILE_") && e.contains("no name"), "{e}");
    }

    #[test]
    fn both_remote_variables_are_an_error() {
        let e = err(&[
            ("REDIS_URL", "redis://:s3cr3t@127.0.0.1:7000"),
            ("REDIS_CLUSTER_URLS", "redis://127.0.0.1:7001"),
        ]);
        assert!(
            e.contains("REDIS_URL") && e.contains("REDIS_CLUSTER_URLS"),
            "{e}"
        );
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn passwords_never_show() {
        for (name, value) in [
            ("REDIS_URL", "redis://admin:s3cr3t@127.0.0.1:notaport"),
            ("REDIS_URL", "http://admin:s3cr3t@127.0.0.1:7000"),
            ("REDIS_URL", "redis//admin:s3cr3t@127.0.0.1:7000"),
            ("REDIS_URL", "redis://:s3cr3t@[::1"),
            (
                "REDIS_CLUSTER_URLS",
                "redis://127.0.0.1:7000,redis://u:s3cr3t@h:x",
            ),
        ] {
            let e = err(&[(name, value)]);
            assert!(e.contains(name), "{e}");
            assert!(!e.contains("s3cr3t"), "{name}={value}: {e}");
        }
    }

    #[test]
    fn the_last_of_repeated_names_counts_whatever_the_order() {
        let b = from(&[
            ("CACHE_PROFILE_B", "ttl=1s"),
            ("CACHE_NAMESPACE", "first"),
            ("CACHE_PROFILE_A", "ttl=2s"),
            ("CACHE_NAMESPACE", "second"),
        ])
        .unwrap();
        assert_eq!(b.namespace, "second");
        assert_eq!(b.profiles.len(), 2);
    }

    #[cfg(unix)]
    #[test]
    fn values_that_are_not_utf8_are_errors_for_ours_only() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'1', 0xff]);
        let foreign = from_env_base().env_from([(OsString::from("OTHER"), bad.clone())]);
        assert!(foreign.is_ok());
        let e = from_env_base()
            .env_from([(OsString::from("CACHE_DEFAULT_TTL"), bad)])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("CACHE_DEFAULT_TTL") && e.contains("not UTF-8"),
            "{e}"
        );
    }

    #[test]
    fn profiles_parse_any_subset() {
        let p = parse_profile("V", "ttl=30m,stale=1m,fail_safe=1h,refresh_ahead=1.0").unwrap();
        assert_eq!(p.ttl, Some(Duration::from_secs(1800)));
        assert_eq!(p.stale, Some(Duration::from_secs(60)));
        assert_eq!(p.fail_safe, Some(Duration::from_secs(3600)));
        assert_eq!(p.refresh_ahead, Some(1.0));
        let p = parse_profile("V", " stale = 5s , ttl=90 ").unwrap();
        assert_eq!(p.ttl, Some(Duration::from_secs(90)));
        assert_eq!(p.stale, Some(Duration::from_secs(5)));
        assert_eq!(p.fail_safe, None);
    }

    #[test]
    fn profiles_reject_mistakes() {
        for (bad, says) in [
            ("ttl=soon", "`ttl`: malformed duration"),
            ("ttl", "not option=value"),
            ("ttl=1s,,stale=1s", "`` is not option=value"),
            ("ttl=1s,ttl=2s", "given twice"),
            ("tll=1s", "unknown option `tll`"),
            ("refresh_ahead=0", "above 0"),
            ("refresh_ahead=NaN", "above 0"),
            ("refresh_ahead=inf", "above 0"),
            ("fail_safe=99999999999999999999", "too long"),
        ] {
            let err = parse_profile("CACHE_PROFILE_X", bad)
                .unwrap_err()
                .to_string();
            assert!(err.contains("CACHE_PROFILE_X"), "{bad}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn long_values_are_cut() {
        let long = "x".repeat(1000);
        let err = invalid("V", &long, "why").to_string();
        assert!(err.len() < 300 && err.contains("..."), "{err}");
    }
}

#[cfg(all(test, not(feature = "redis")))]
mod without_redis {
    use super::*;

    #[test]
    fn a_redis_variable_without_the_feature_is_an_error() {
        let e = from_env_base()
            .env_from([("REDIS_URL", "redis://:secret@127.0.0.1:7000")])
            .expect_err("no Redis tier to set");
        let e = e.to_string();
        assert!(
            e.contains("REDIS_URL") && e.contains("`redis` feature"),
            "{e}"
        );
        assert!(!e.contains("secret"), "{e}");
    }
}
