//! The command line: `http_proxy --listen ADDR --upstream URL [options]`.

use std::net::SocketAddr;
use std::time::Duration;

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
    /// How long the origin may take to answer a request's head.
    pub upstream_timeout: Duration,
    /// The site's name sent upstream in `X-Forwarded-Host` and `Forwarded`
    /// (else the address the proxy listens on).
    pub public_host: Option<Authority>,
}

/// The default of `--upstream-timeout`.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

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
  --upstream-timeout T   how long the origin may take to send a response's
                         head, e.g. 30s, 500ms, 2m (default 30s); then 504,
                         or a stale response that allows stale-if-error
  --public-host NAME     the site's name sent upstream in X-Forwarded-Host
                         and Forwarded (default: the address listened on)

Strict mode: only responses with explicit freshness (or no-cache with a
validator) are stored; no default TTL, no heuristic freshness.

Responses are keyed by the upstream's authority, path and query, never by
the client's Host: proxies with different upstreams can share one Redis and
namespace, and a forged Host cannot store into another site's entries.
Before the cache sees a request, the proxy removes the hop-by-hop fields
(Connection and the fields it names, Keep-Alive, Proxy-Connection, TE,
Trailer, Transfer-Encoding, Upgrade, Proxy-Authorization,
Proxy-Authenticate) and every forwarding field a client sent (Forwarded,
X-Forwarded-*, X-Real-IP, X-Client-IP, X-Original-URL, X-Rewrite-URL,
X-Original-Host, X-Host, X-HTTP-Method-Override, X-HTTP-Method,
X-Method-Override), then sets Host to the upstream's, X-Forwarded-For to
the client's address, X-Forwarded-Host to --public-host,
X-Forwarded-Proto: http, the same in Forwarded, and appends to Via. The
origin's hop-by-hop fields never reach a client nor the store; every
response gains Via: 1.1 http_proxy.";

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
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            public_host: None,
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
                "--upstream-timeout" => {
                    let v = value()?;
                    out.upstream_timeout = duration(&v).ok_or(format!(
                        "--upstream-timeout {v}: a duration above zero, e.g. 30s, 500ms, 2m"
                    ))?;
                }
                "--public-host" => {
                    let v = value()?;
                    let host: Authority =
                        v.parse().map_err(|e| format!("--public-host {v}: {e}"))?;
                    out.public_host = Some(host);
                }
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

/// `500ms`, `30s`, `2m` or a bare number of seconds; above zero (a zero
/// timeout would answer every miss 504).
fn duration(v: &str) -> Option<Duration> {
    let (digits, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => v.split_at(at),
        None => (v, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
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
        assert_eq!(a.upstream_timeout, DEFAULT_UPSTREAM_TIMEOUT);
        assert!(a.public_host.is_none());
        let b = parse("--upstream http://x --upstream-timeout 500ms --public-host www.test:8443")
            .unwrap();
        assert_eq!(b.upstream_timeout, Duration::from_millis(500));
        assert_eq!(b.public_host.unwrap().as_str(), "www.test:8443");
        for (text, secs) in [("2m", 120), ("7s", 7), ("9", 9)] {
            let line = format!("--upstream http://x --upstream-timeout {text}");
            assert_eq!(parse(&line).unwrap().upstream_timeout.as_secs(), secs);
        }
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
        for bad in ["0s", "-1s", "1h", "s", "1.5s"] {
            let line = format!("--upstream http://x --upstream-timeout {bad}");
            assert!(parse(&line).is_err(), "{bad}");
        }
        assert!(parse("--upstream http://x --public-host a/b").is_err());
    }
}
