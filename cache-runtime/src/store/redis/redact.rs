//! Redis URLs with their secrets taken out, for errors, logs and health.
//!
//! redis-rs (1.x) takes a password from the userinfo of a TCP URL
//! (`redis://user:pw@host`, `rediss://`, `valkey://`, `valkeys://`,
//! percent-encoded) and from the `pass` query parameter of a socket URL
//! (`redis+unix://`, `valkey+unix://`, `unix://`, `?user=&pass=`). The text is
//! not parsed the way the client parses it: a URL that is malformed (a
//! password with an unencoded `/`, `?`, `#` or `@`, a misspelled parameter)
//! must lose its secret too. So the rules err towards hiding:
//!
//! - everything before the last `@` of the authority is userinfo: only a
//!   plain user name before a `:` is kept (`user:***@`), else `***@`;
//! - of the query, only the values of `db`, `protocol` and `user` are kept,
//!   and only when plain (letters, digits, `.`, `_`, `~`, `-`); every other
//!   value is `***`, and a parameter that is not `name=value` is `***`;
//! - a fragment other than `#insecure` is `#***`.

/// Query parameters whose plain values are shown.
const SHOWN_PARAMS: [&str; 3] = ["db", "protocol", "user"];

/// `url` with any password (or anything that may be one) replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some(parts) = Parts::of(url) else {
        return "<unparsable url>".to_string();
    };
    let mut out = format!("{}://", parts.scheme);
    if let Some(userinfo) = parts.userinfo {
        match userinfo.split_once(':') {
            Some((user, _)) if plain(user) => {
                out.push_str(user);
                out.push_str(":***@");
            }
            _ => out.push_str("***@"),
        }
    }
    match parts.socket_host() {
        Some(host) => {
            out.push_str("***");
            out.push_str(&parts.address[host.len()..]);
        }
        None => out.push_str(parts.address),
    }
    if let Some(query) = parts.query {
        out.push('?');
        let pairs: Vec<String> = query.split('&').map(redact_pair).collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(fragment) = parts.fragment {
        out.push('#');
        out.push_str(if fragment == "insecure" {
            fragment
        } else {
            "***"
        });
    }
    out
}

/// `text` (a client's error message about `url`) with every secret of
/// `url`, as written and decoded, replaced by `***`.
pub(crate) fn scrub(text: &str, url: &str) -> String {
    let mut secrets = secrets(url);
    // Longest first: a secret that contains another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut text = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), "***");
    }
    text
}

/// What [`redact`] hides in `url`, as written and percent-decoded (and
/// with `+` as a space, as query values are decoded).
fn secrets(url: &str) -> Vec<String> {
    let Some(parts) = Parts::of(url) else {
        return vec![url.to_string()];
    };
    let mut raw: Vec<&str> = Vec::new();
    if let Some(userinfo) = parts.userinfo {
        match userinfo.split_once(':') {
            Some((user, password)) if plain(user) => raw.push(password),
            _ => raw.push(userinfo),
        }
    }
    for pair in parts.query.into_iter().flat_map(|q| q.split('&')) {
        match pair.split_once('=') {
            Some((key, value)) if !shown_param(key, value) => raw.push(value),
            Some(_) => {}
            None => raw.push(pair),
        }
    }
    raw.extend(parts.fragment.filter(|f| *f != "insecure"));
    raw.extend(parts.socket_host());
    let mut all = Vec::new();
    for secret in raw {
        all.push(secret.to_string());
        all.push(percent_decode(secret));
        all.push(percent_decode(&secret.replace('+', " ")));
    }
    all
}

/// A URL cut where a reader of it would cut it, whatever the client makes of it.
struct Parts<'a> {
    scheme: &'a str,
    /// A socket URL (`unix://`, `redis+unix://`, `valkey+unix://`).
    unix: bool,
    userinfo: Option<&'a str>,
    address: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn of(url: &'a str) -> Option<Parts<'a>> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme_ok = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return None;
        }
        // A socket URL has no host: an `@` in its query is a password's.
        // A TCP URL's password may hold an unencoded `?` or `#`: its last
        // `@` ends the userinfo.
        let unix =
            scheme.eq_ignore_ascii_case("unix") || scheme.to_ascii_lowercase().ends_with("+unix");
        let head = if unix {
            &rest[..rest.find('?').unwrap_or(rest.len())]
        } else {
            rest
        };
        let (userinfo, tail) = match head.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (tail, fragment) = match tail.split_once('#') {
            Some((tail, fragment)) => (tail, Some(fragment)),
            None => (tail, None),
        };
        let (address, query) = match tail.split_once('?') {
            Some((address, query)) => (address, Some(query)),
            None => (tail, None),
        };
        Some(Parts {
            scheme,
            unix,
            userinfo,
            address,
            query,
            fragment,
        })
    }
}

impl Parts<'_> {
    /// A socket URL's host (before its path): the client reads none, so it
    /// may be a password in the wrong place (`redis+unix://pw`).
    fn socket_host(&self) -> Option<&str> {
        if !self.unix {
            return None;
        }
        let host = &self.address[..self.address.find('/').unwrap_or(self.address.len())];
        (!host.is_empty() && !host.eq_ignore_ascii_case("localhost")).then_some(host)
    }
}

fn redact_pair(pair: &str) -> String {
    match pair.split_once('=') {
        Some((key, value)) if shown_param(key, value) => format!("{key}={value}"),
        Some((key, _)) if plain(key) && !key.is_empty() => format!("{key}=***"),
        None if pair.is_empty() => String::new(),
        _ => "***".to_string(),
    }
}

/// Whether `key=value` is a parameter that holds no secret, plainly written.
fn shown_param(key: &str, value: &str) -> bool {
    plain(key)
        && plain(value)
        && SHOWN_PARAMS
            .iter()
            .any(|shown| key.eq_ignore_ascii_case(shown))
}

/// Letters, digits, `.`, `_`, `~`, `-` only (RFC 3986's unreserved).
fn plain(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'))
}

/// `text` with `%XX` escapes decoded (invalid UTF-8 replaced).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_the_client_reads() {
        let cases = [
            (
                "redis://:s3cret@127.0.0.1:7000/",
                "redis://:***@127.0.0.1:7000/",
            ),
            ("redis://app:s3cret@host:1/0", "redis://app:***@host:1/0"),
            ("redis://127.0.0.1:7000", "redis://127.0.0.1:7000"),
            (
                "rediss://u:p%40ss@h:1/#insecure",
                "rediss://u:***@h:1/#insecure",
            ),
            (
                "redis+unix:///r.sock?pass=s3cret&db=2",
                "redis+unix:///r.sock?pass=***&db=2",
            ),
            (
                "unix:///r.sock?db=1&USER=app&Pass=s3",
                "unix:///r.sock?db=1&USER=app&Pass=***",
            ),
            (
                "unix:///r.sock?pass=a@b&p%61ss=c",
                "unix:///r.sock?pass=***&***",
            ),
            ("redis://:a/b?c#d@host/3", "redis://:***@host/3"),
            ("redis://s3cret@host", "redis://***@host"),
            ("redis://host/?x=1#frag", "redis://host/?x=***#***"),
            ("s3cret", "<unparsable url>"),
            ("redis+unix://s3cret", "redis+unix://***"),
            ("unix://localhost/r.sock", "unix://localhost/r.sock"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact(url), shown, "{url}");
        }
    }

    #[test]
    fn scrub_takes_out_the_secret_as_written_and_decoded() {
        let url = "redis://u:p%40ss@h:1/";
        assert_eq!(
            scrub("auth p@ss and p%40ss failed", url),
            "auth *** and *** failed"
        );
        let url = "unix:///s?pass=a+b";
        assert_eq!(scrub("bad a b / a+b", url), "bad *** / ***");
    }
}
