//! Redis clients from URLs: TLS (feature `tls`, a private root CA), and
//! errors turned into [`StoreError`]s without the URL's secrets.

use redis::cluster::ClusterClientBuilder;
use redis::{Client, RedisError};

use super::redact::scrub;
use crate::store::StoreError;

/// `error` with every secret of `url` taken out of its message.
fn scrubbed(error: StoreError, url: &str) -> StoreError {
    match error {
        StoreError::Backend(text) => StoreError::Backend(scrub(&text, url)),
        StoreError::Connection(text) => StoreError::Connection(scrub(&text, url)),
        other => other,
    }
}

/// `text` with `secret` replaced (an empty one is no secret).
pub(crate) fn hide(text: String, secret: &str) -> String {
    if secret.is_empty() {
        text
    } else {
        text.replace(secret, "***")
    }
}

pub(crate) fn backend(error: RedisError, secret: Option<&str>) -> StoreError {
    let mut text = error.to_string();
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        text = text.replace(secret, "***");
    }
    // A broken connection (not an error reply, not an I/O timeout): the
    // connection manager reconnects, so the operation may be tried again.
    let connection = (error.is_io_error() && !error.is_timeout())
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.kind() == redis::ErrorKind::ClusterConnectionNotFound;
    if connection {
        StoreError::Connection(text)
    } else {
        StoreError::Backend(text)
    }
}

/// A client for `url`; with the `tls` feature, `root_ca` (PEM) is trusted for
/// `rediss://` URLs instead of the system's roots.
pub(crate) fn client(url: &str, root_ca: Option<&[u8]>) -> Result<Client, StoreError> {
    #[cfg(feature = "tls")]
    {
        // rustls needs a process-wide crypto provider; keep one already set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if let Some(pem) = root_ca {
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            };
            return Client::build_with_tls(url, certs).map_err(|e| scrubbed(backend(e, None), url));
        }
    }
    #[cfg(not(feature = "tls"))]
    if root_ca.is_some() {
        return Err(StoreError::Backend(
            "a TLS root certificate needs the `tls` feature of cache-runtime".into(),
        ));
    }
    Client::open(url).map_err(|e| scrubbed(backend(e, None), url))
}

/// A cluster client builder seeded with `urls`. The password (or ACL user)
/// and TLS mode come from the first URL; with the `tls` feature, `root_ca`
/// (PEM) is trusted for every node the client discovers, not only the seeds.
pub(super) fn cluster_builder(urls: &[String], root_ca: Option<&[u8]>) -> ClusterClientBuilder {
    let builder = ClusterClientBuilder::new(urls.iter().map(String::as_str));
    #[cfg(feature = "tls")]
    if let Some(pem) = root_ca {
        // `certs` turns TLS on for every node; `client` has already checked
        // that each URL is `rediss://`.
        return builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.to_vec()),
        });
    }
    #[cfg(not(feature = "tls"))]
    let _ = root_ca;
    builder
}
