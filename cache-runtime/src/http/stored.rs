//! What is stored for a URI: a response (status, header fields, body bytes
//! and the times its age and freshness are computed from), or, for a
//! response with `Vary`, an index naming the fields its variants are keyed
//! by. Both are serde-serializable (CBOR in the remote tier) and cheap to
//! clone (an `Arc`), since the memory tier hands out clones on every hit.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::cache_control::Directives;
use super::freshness::current_age;
use super::rendered::HitHeaders;

/// What a stored response's `Cache-Control` allows once it is stale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StaleRules {
    /// `no-cache`, `must-revalidate`, `proxy-revalidate`, `s-maxage`.
    pub(crate) never: bool,
    /// `stale-while-revalidate`, milliseconds.
    pub(crate) while_revalidate: u64,
    /// `stale-if-error`, milliseconds.
    pub(crate) if_error: u64,
    /// `no-cache`: every use is revalidated first, even when fresh.
    pub(crate) no_cache: bool,
}

impl StaleRules {
    pub(crate) fn of(cc: &Directives) -> StaleRules {
        StaleRules {
            never: cc.never_stale(),
            while_revalidate: cc.stale_while_revalidate.unwrap_or(0).saturating_mul(1000),
            if_error: cc.stale_if_error.unwrap_or(0).saturating_mul(1000),
            no_cache: cc.no_cache,
        }
    }
}

/// A stored response.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredResponse {
    /// The request identity it answers (checked on every hit).
    pub(crate) identity: String,
    /// The secondary key (§4.1) of the request it was selected by, when it
    /// has a `Vary`.
    pub(crate) secondary: Option<String>,
    pub(crate) status: u16,
    #[serde(serialize_with = "ser_headers", deserialize_with = "de_headers")]
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// When the response was received, Unix milliseconds.
    pub(crate) response_time: u64,
    /// `corrected_initial_age` (§4.2.3), milliseconds.
    pub(crate) initial_age: u64,
    /// Freshness lifetime (§4.2.1), milliseconds.
    pub(crate) lifetime: u64,
    pub(crate) stale: StaleRules,
    /// Tags beyond the URI's (from `Cache-Tag` and the layer's tag function),
    /// kept so that a freshened response is stored with them again.
    pub(crate) tags: Vec<String>,
    /// What fresh hits are answered with, rendered once per second.
    #[serde(skip)]
    pub(crate) hit_headers: HitHeaders,
}

impl StoredResponse {
    pub(crate) fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK)
    }

    pub(crate) fn age(&self, now: u64) -> u64 {
        current_age(self.initial_age, self.response_time, now)
    }

    /// Milliseconds it stays fresh after `now` (negative: stale for that long).
    pub(crate) fn fresh_for(&self, now: u64) -> i128 {
        i128::from(self.lifetime) - i128::from(self.age(now))
    }
}

/// An entry under one of the layer's keys.
#[derive(Debug, Clone)]
pub(crate) enum HttpEntry {
    Response(Arc<StoredResponse>),
    /// The URI's responses vary on these fields (sorted, lower-case).
    Variants(Arc<Vec<String>>),
}

#[derive(Serialize)]
enum EntryRef<'a> {
    Response(&'a StoredResponse),
    Variants(&'a [String]),
}

#[derive(Deserialize)]
enum EntryOwned {
    Response(Box<StoredResponse>),
    Variants(Vec<String>),
}

impl Serialize for HttpEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            HttpEntry::Response(r) => EntryRef::Response(r),
            HttpEntry::Variants(v) => EntryRef::Variants(v),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for HttpEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match EntryOwned::deserialize(d)? {
            EntryOwned::Response(r) => HttpEntry::Response(Arc::from(r)),
            EntryOwned::Variants(v) => HttpEntry::Variants(Arc::new(v)),
        })
    }
}

/// Header values as CBOR byte strings.
struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

fn ser_headers<S: Serializer>(headers: &HeaderMap, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(headers.len()))?;
    for (name, value) in headers {
        seq.serialize_element(&(name.as_str(), RawBytes(value.as_bytes())))?;
    }
    seq.end()
}

/// Bytes from the store are not trusted: a name or value that is not a valid
/// header field fails the decode, and the entry reads as a miss.
fn de_headers<'de, D: Deserializer<'de>>(d: D) -> Result<HeaderMap, D::Error> {
    use serde::de::Error;
    let pairs = Vec::<(String, Bytes)>::deserialize(d)?;
    let mut headers = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(D::Error::custom)?;
        let value = HeaderValue::from_maybe_shared(value).map_err(D::Error::custom)?;
        headers.append(name, value);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredResponse {
        let mut headers = HeaderMap::new();
        headers.append("etag", HeaderValue::from_static("\"v1\""));
        headers.append("x-many", HeaderValue::from_static("a"));
        headers.append("x-many", HeaderValue::from_static("b"));
        StoredResponse {
            identity: "GET 1:h1:/".into(),
            secondary: Some("cookie=-;".into()),
            status: 203,
            headers,
            body: Bytes::from_static(b"\x00body\xff"),
            response_time: 1_000_000,
            initial_age: 2_000,
            lifetime: 10_000,
            stale: StaleRules {
                never: true,
                while_revalidate: 1,
                if_error: 2,
                no_cache: false,
            },
            tags: vec!["t".into()],
            hit_headers: HitHeaders::default(),
        }
    }

    #[test]
    fn round_trips_through_cbor() {
        let entry = HttpEntry::Response(Arc::new(sample()));
        let mut bytes = Vec::new();
        ciborium::into_writer(&entry, &mut bytes).unwrap();
        let back: HttpEntry = ciborium::from_reader(bytes.as_slice()).unwrap();
        let HttpEntry::Response(r) = back else {
            panic!("variant")
        };
        let s = sample();
        assert_eq!(r.headers, s.headers);
        assert_eq!(r.body, s.body);
        assert_eq!((r.status, r.lifetime, r.initial_age), (203, 10_000, 2_000));
        assert_eq!(r.stale, s.stale);
        assert_eq!(r.secondary, s.secondary);
        let v = HttpEntry::Variants(Arc::new(vec!["cookie".into()]));
        let mut bytes = Vec::new();
        ciborium::into_writer(&v, &mut bytes).unwrap();
        let back: HttpEntry = ciborium::from_reader(bytes.as_slice()).unwrap();
        assert!(matches!(back, HttpEntry::Variants(f) if f.as_slice() == ["cookie"]));
    }

    #[test]
    fn bodies_and_header_values_are_cbor_byte_strings() {
        // Bytes of every value, most of which take two bytes as integers.
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 256) as u8).collect();
        let mut response = sample();
        response.body = Bytes::from(body.clone());
        let mut encoded = Vec::new();
        ciborium::into_writer(&HttpEntry::Response(Arc::new(response)), &mut encoded).unwrap();
        // One byte per body byte, plus the rest of the response: not the
        // ~190 kB an array of integers would take.
        assert!(encoded.len() < body.len() + 300, "{} bytes", encoded.len());
        // The body is there as one CBOR byte string: major type 2 with a
        // 4-byte length (0x5a), then the bytes themselves.
        let mut head = vec![0x5a];
        head.extend_from_slice(&(body.len() as u32).to_be_bytes());
        head.extend_from_slice(&body[..16]);
        assert!(encoded.windows(head.len()).any(|w| w == head));
    }

    #[test]
    fn invalid_header_bytes_from_the_store_fail_the_decode() {
        #[derive(Serialize)]
        enum Forged<'a> {
            Response(&'a Fake),
        }
        #[derive(Serialize)]
        struct Fake {
            identity: String,
            secondary: Option<String>,
            status: u16,
            headers: Vec<(String, Bytes)>,
        }
        let fake = Fake {
            identity: String::new(),
            secondary: None,
            status: 200,
            headers: vec![("x".into(), Bytes::from_static(b"a\r\nset-cookie: x"))],
        };
        let mut bytes = Vec::new();
        ciborium::into_writer(&Forged::Response(&fake), &mut bytes).unwrap();
        assert!(ciborium::from_reader::<HttpEntry, _>(bytes.as_slice()).is_err());
    }

    #[test]
    fn freshness_follows_age() {
        let s = sample();
        // 2 s old on arrival, 10 s lifetime: fresh for 8 s more.
        assert_eq!(s.fresh_for(1_000_000), 8_000);
        assert_eq!(s.fresh_for(1_009_000), -1_000);
    }
}
