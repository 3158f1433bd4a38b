//! The header fields a fresh hit is answered with, kept per stored response:
//! they change only when the whole seconds of `Age` or of the remaining
//! freshness (`ttl=` in `Cache-Status`) do, so the hits within one second
//! share one rendering and each pays for a clone, not for formatting two
//! values and growing the map. A rendering also carries the body's
//! `Content-Length` when the stored fields lack one: otherwise the server
//! (axum's `Route`, hyper) formats and inserts it into every hit's map.

use http::header::{HeaderValue, AGE, CONTENT_LENGTH};
use http::HeaderMap;
use parking_lot::Mutex;

use super::headers::CACHE_STATUS;

/// The last rendering of a stored response's hit headers.
#[derive(Debug, Default)]
pub(crate) struct HitHeaders(Mutex<Option<Rendering>>);

#[derive(Debug)]
struct Rendering {
    age: u64,
    ttl: i128,
    /// The layer's `Cache-Status` name it was rendered for (two layers with
    /// other names may share a cache).
    name: Option<String>,
    headers: HeaderMap,
}

/// What a hit's fields are rendered from besides the stored ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit<'a> {
    /// `Age`, seconds.
    pub(crate) age: u64,
    /// Seconds until stale, for `Cache-Status`.
    pub(crate) ttl: i128,
    /// This cache's `Cache-Status` name, if it sends one.
    pub(crate) name: Option<&'a str>,
    /// The stored body's length, for a `Content-Length` when the stored
    /// fields have none (`None`: the status has no body).
    pub(crate) length: Option<usize>,
}

impl HitHeaders {
    /// `stored` with `hit`'s fields added; rendered once per distinct `hit`
    /// (its `length` is the stored body's: the same for every hit).
    pub(crate) fn get(&self, stored: &HeaderMap, hit: Hit<'_>) -> HeaderMap {
        let same =
            |r: &Rendering| r.age == hit.age && r.ttl == hit.ttl && r.name.as_deref() == hit.name;
        // Never waits: a hit that finds another thread rendering renders too.
        let Some(mut last) = self.0.try_lock() else {
            return render(stored, hit);
        };
        match &*last {
            Some(r) if same(r) => r.headers.clone(),
            _ => {
                let headers = render(stored, hit);
                *last = Some(Rendering {
                    age: hit.age,
                    ttl: hit.ttl,
                    name: hit.name.map(str::to_string),
                    headers: headers.clone(),
                });
                headers
            }
        }
    }
}

fn render(stored: &HeaderMap, hit: Hit<'_>) -> HeaderMap {
    let Hit {
        age,
        ttl,
        name,
        length,
    } = hit;
    let mut headers = HeaderMap::with_capacity(stored.len() + 3);
    for (field, value) in stored {
        headers.append(field.clone(), value.clone());
    }
    if let Some(length) = length {
        if !headers.contains_key(CONTENT_LENGTH) {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
        }
    }
    headers.insert(AGE, HeaderValue::from(age));
    if let Some(name) = name {
        if let Ok(v) = HeaderValue::from_str(&format!("{name}; hit; ttl={ttl}")) {
            headers.append(CACHE_STATUS, v);
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(age: u64, ttl: i128, name: Option<&str>, length: Option<usize>) -> Hit<'_> {
        Hit {
            age,
            ttl,
            name,
            length,
        }
    }

    #[test]
    fn renders_again_only_when_an_input_changes() {
        let mut stored = HeaderMap::new();
        stored.append("x-many", HeaderValue::from_static("a"));
        stored.append("x-many", HeaderValue::from_static("b"));
        let hit = HitHeaders::default();
        let h = hit.get(&stored, at(3, 57, Some("c"), Some(5)));
        assert_eq!(h.get_all("x-many").iter().count(), 2);
        assert_eq!(h["age"], "3");
        assert_eq!(h["cache-status"], "c; hit; ttl=57");
        assert_eq!(h["content-length"], "5");
        assert_eq!(hit.get(&stored, at(3, 57, Some("c"), Some(5))), h);
        assert_eq!(hit.get(&stored, at(4, 56, Some("c"), Some(5)))["age"], "4");
        assert_eq!(
            hit.get(&stored, at(4, 56, Some("d"), Some(5)))["cache-status"],
            "d; hit; ttl=56"
        );
        let h = hit.get(&stored, at(4, 56, None, None));
        assert!(!h.contains_key("cache-status") && !h.contains_key("content-length"));
    }

    #[test]
    fn a_stored_content_length_is_kept() {
        let mut stored = HeaderMap::new();
        stored.insert(CONTENT_LENGTH, HeaderValue::from_static("7"));
        let h = HitHeaders::default().get(&stored, at(0, 1, None, Some(9)));
        assert_eq!(h.get_all(CONTENT_LENGTH).iter().collect::<Vec<_>>(), ["7"]);
    }
}
