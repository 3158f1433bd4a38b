//! PostgreSQL connection strings with their secrets taken out, for errors,
//! logs, health and `Debug`.
//!
//! What is shown is rebuilt from the parsed configuration (user, hosts,
//! ports, database), never copied from the text, so a password cannot leak
//! through a part the parser read differently; and every error text is
//! scrubbed of the password as written and as decoded.

use tokio_postgres::config::Host;
use tokio_postgres::Config;

/// `postgres://user@host:port/db`, from what `config` holds: never a
/// password, nor any other option (they may hold one).
pub(crate) fn shown(config: &Config) -> String {
    let mut out = String::from("postgres://");
    if let Some(user) = config.get_user() {
        out.push_str(user);
        if config.get_password().is_some() {
            out.push_str(":***");
        }
        out.push('@');
    }
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    out.push_str(&hosts.join(","));
    if let Some(db) = config.get_dbname() {
        out.push('/');
        out.push_str(db);
    }
    out
}

/// What to show of `url` when it does not parse: its scheme at most.
pub(crate) fn unparsable(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, _)) if scheme.chars().all(|c| c.is_ascii_alphanumeric()) => {
            format!("{scheme}://<unparsable>")
        }
        _ => "<unparsable connection string>".to_string(),
    }
}

/// `text` with the password of `url` (parsed, and as written, raw or
/// percent-encoded) replaced by `***`.
pub(crate) fn scrub(text: &str, url: &str, config: Option<&Config>) -> String {
    let mut secrets: Vec<String> = Vec::new();
    if let Some(password) = config.and_then(Config::get_password) {
        secrets.push(String::from_utf8_lossy(password).into_owned());
    }
    // As written: the userinfo's password of a URL, or `password=` of a
    // key=value string (quoted or not).
    if let Some((_, rest)) = url.split_once("://") {
        let authority = &rest[..rest.rfind('@').unwrap_or(0)];
        if let Some((_, password)) = authority.split_once(':') {
            secrets.push(password.to_string());
        }
        for pair in rest.split(['?', '&']) {
            if let Some(("password", value)) = pair.split_once('=') {
                secrets.push(value.to_string());
            }
        }
    } else if let Some(at) = url.find("password=") {
        let value = &url[at + "password=".len()..];
        let value = value.trim_start_matches('\'');
        let end = value.find([' ', '\'']).unwrap_or(value.len());
        secrets.push(value[..end].to_string());
    }
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut text = text.to_string();
    for secret in &secrets {
        text = text.replace(secret.as_str(), "***");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_never_holds_the_password() {
        let url = "postgres://app:s3cr%40t@db.local:5433/cache?application_name=x";
        let config: Config = url.parse().unwrap();
        let text = shown(&config);
        assert_eq!(text, "postgres://app:***@db.local:5433/cache");
        assert!(!scrub("auth s3cr@t / s3cr%40t", url, Some(&config)).contains("s3cr"));
        let kv = "host=h user=u password='p w' dbname=d";
        let config: Config = kv.parse().unwrap();
        assert_eq!(shown(&config), "postgres://u:***@h/d");
        assert!(!scrub("p w failed", kv, Some(&config)).contains("p w"));
        assert_eq!(unparsable("postgres://x:y@"), "postgres://<unparsable>");
        assert_eq!(unparsable("secret"), "<unparsable connection string>");
    }
}
