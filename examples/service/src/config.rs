//! The service's settings, from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DATABASE_URL` | PostgreSQL, `postgres://user:pw@host:port/db` or key=value form | required |
//! | `DATABASE_POOL_SIZE` | connections in the pool | 16 |
//! | `LISTEN_ADDR` | address to bind; port 0 picks a free one | `127.0.0.1:3000` |
//! | `REDIS_URL`, `CACHE_POSTGRES_URL`, `CACHE_*` | the cache, as `cache_runtime::CacheBuilder::env` reads them | memory only |

use std::net::SocketAddr;

/// Default of `LISTEN_ADDR`.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:3000";
/// Default of `DATABASE_POOL_SIZE`.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// The settings of one service process.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `DATABASE_POOL_SIZE`.
    pub pool_size: usize,
    /// `LISTEN_ADDR`.
    pub listen_addr: SocketAddr,
}

impl Config {
    /// Reads the process environment.
    ///
    /// # Errors
    ///
    /// A message naming the variable that is missing or malformed.
    pub fn from_env() -> Result<Config, String> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the variables from `lookup` (name to value), for tests.
    ///
    /// ```
    /// let config = service::Config::from_lookup(|name| match name {
    ///     "DATABASE_URL" => Some("postgres://localhost/app".into()),
    ///     _ => None,
    /// })
    /// .unwrap();
    /// assert_eq!(config.listen_addr.to_string(), "127.0.0.1:3000");
    /// ```
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let database_url = set("DATABASE_URL").ok_or(
            "DATABASE_URL is not set: give the PostgreSQL URL, e.g. \
             DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres",
        )?;
        let pool_size = match set("DATABASE_POOL_SIZE") {
            None => DEFAULT_POOL_SIZE,
            Some(v) => v.trim().parse().ok().filter(|n| *n > 0).ok_or(format!(
                "DATABASE_POOL_SIZE={v:?}: expected a positive integer"
            ))?,
        };
        let listen = set("LISTEN_ADDR").unwrap_or_else(|| DEFAULT_LISTEN_ADDR.to_owned());
        let listen_addr = listen
            .trim()
            .parse()
            .map_err(|e| format!("LISTEN_ADDR={listen:?}: {e} (expected e.g. 127.0.0.1:3000)"))?;
        Ok(Config {
            database_url,
            pool_size,
            listen_addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn database_url_is_required() {
        let err = Config::from_lookup(vars(&[])).unwrap_err();
        assert!(err.contains("DATABASE_URL"), "{err}");
    }

    #[test]
    fn malformed_values_name_their_variable() {
        let err = Config::from_lookup(vars(&[("DATABASE_URL", "x"), ("LISTEN_ADDR", "nope")]))
            .unwrap_err();
        assert!(err.contains("LISTEN_ADDR"), "{err}");
        let err = Config::from_lookup(vars(&[("DATABASE_URL", "x"), ("DATABASE_POOL_SIZE", "0")]))
            .unwrap_err();
        assert!(err.contains("DATABASE_POOL_SIZE"), "{err}");
    }

    #[test]
    fn values_are_read() {
        let config = Config::from_lookup(vars(&[
            ("DATABASE_URL", "postgres://h/db"),
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("DATABASE_POOL_SIZE", "4"),
        ]))
        .unwrap();
        assert_eq!(config.database_url, "postgres://h/db");
        assert_eq!(config.listen_addr.port(), 0);
        assert_eq!(config.pool_size, 4);
    }
}
