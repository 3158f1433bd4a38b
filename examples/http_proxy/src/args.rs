//! The command line: `http_proxy --listen ADDR --upstream URL [options]`.

use std::net::SocketAddr;

use http::uri::{Authority, Scheme};
use http::Uri;

/// What the proxy was asked to do.
#[derive(Debug)]
pub struct Args {
    /// The address the proxy listens on.
    pub listen: SocketAddr,
    /// The origin's scheme (`http`).
    pub scheme: Scheme,
    /// The origin's host and port.
    pub authority: Authority,
    /// A Redis URL for a shared tier (else `REDIS_URL`, else memory only).
    pub redis: Option<String>,
    /// The cache's key prefix (else `CACHE_NAMESPACE`, else `http_proxy`).
    pub namespace: Option<String>,
    /// Entries in the memory tier (else `CACHE_MEMORY_CAPACITY`).
    pub memory: Option<usize>,
    /// Largest body stored, in bytes.
    pub max_body: Option<usize>,
    /// Whether a request's `no-cache` / `max-age` / `min-fresh` revalidates.
    pub request_no_cache: bool,
    /// Whether `CDN-Cache-Control` (RFC 9213) is obeyed.
    pub cdn_cache_control: bool,
}

/// The usage text, printed by `--help` and after a bad argument.
pub const USAGE: &str = "\
usage: http_proxy --listen 127.0.0.1:8080 --upstream http://127.0.0.1:9000 [options]

  --listen ADDR          address to listen on (default 127.0.0.1:8080)
  --upstream URL         the origin, http://host:port (required)
  --redis URL            a Redis tier shared with other proxies (or REDIS_URL)
  --namespace NAME       key prefix (or CACHE_NAMESPACE; default http_proxy)
  --memory N             entries in the memory tier (or CACHE_MEMORY_CAPACITY)
  --max-body BYTES       largest body stored (default 1 MiB)
  --request-no-cache     honour a request's no-cache / max-age / min-fresh
  --no-cdn-cache-control ignore CDN-Cache-Control (obeyed by default, RFC 9213)

Strict mode: only responses with explicit freshness (or no-cache with a
validator) are stored; no default TTL, no heuristic freshness.";

impl Args {
    /// Parses the arguments after the program's name.
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut listen: SocketAddr = ([127, 0, 0, 1], 8080).into();
        let mut upstream: Option<Uri> = None;
        let mut out = Args {
            listen,
            scheme: Scheme::HTTP,
            authority: Authority::from_static("127.0.0.1"),
            redis: None,
            namespace: None,
            memory: None,
            max_body: None,
            request_no_cache: false,
            cdn_cache_control: true,
        };
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--listen" => {
                    let v = value()?;
                    listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
                }
                "--upstream" => {
                    let v = value()?;
                    upstream = Some(v.parse().map_err(|e| format!("--upstream {v}: {e}"))?);
                }
                "--redis" => out.redis = Some(value()?),
                "--namespace" => out.namespace = Some(value()?),
                "--memory" => out.memory = Some(number(&flag, &value()?)?),
                "--max-body" => out.max_body = Some(number(&flag, &value()?)?),
                "--request-no-cache" => out.request_no_cache = true,
                "--no-cdn-cache-control" => out.cdn_cache_control = false,
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        let upstream = upstream.ok_or("--upstream is required")?;
        if upstream.scheme() != Some(&Scheme::HTTP) {
            return Err("--upstream must be an http:// URL".into());
        }
        if !matches!(upstream.path(), "" | "/") || upstream.query().is_some() {
            // Requests keep their own path; a prefix would be a rewrite.
            return Err("--upstream names an origin only (no path)".into());
        }
        out.authority = upstream
            .authority()
            .cloned()
            .ok_or("--upstream has no host")?;
        out.listen = listen;
        Ok(out)
    }
}

fn number(flag: &str, v: &str) -> Result<usize, String> {
    v.parse().map_err(|e| format!("{flag} {v}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, String> {
        Args::parse(line.split_whitespace().map(str::to_string))
    }

    #[test]
    fn listen_upstream_and_options_parse() {
        let a = parse(
            "--listen 127.0.0.1:1 --upstream http://127.0.0.1:2 --memory 5 --request-no-cache",
        )
        .unwrap();
        assert_eq!(a.listen.port(), 1);
        assert_eq!(a.authority.as_str(), "127.0.0.1:2");
        assert_eq!(a.memory, Some(5));
        assert!(a.request_no_cache);
        assert!(a.cdn_cache_control);
        assert!(
            !parse("--upstream http://x --no-cdn-cache-control")
                .unwrap()
                .cdn_cache_control
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse("--listen 127.0.0.1:1").is_err());
        assert!(parse("--upstream https://x").is_err());
        assert!(parse("--upstream http://x/prefix").is_err());
        assert!(parse("--upstream http://x --memory many").is_err());
        assert!(parse("--upstream http://x --bogus").is_err());
        assert!(parse("--upstream").is_err());
    }
}
