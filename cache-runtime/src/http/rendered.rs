//! The header fields a fresh hit is answered with, kept per stored response:
//! they change only when the whole seconds of `Age` or of the remaining
//! freshness (`ttl=` in `Cache-Status`) do, so the hits within one second
//! share one rendering and each pays for a clone, not for formatting two
//! values and growing the map.

use http::header::{HeaderValue, AGE};
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

impl HitHeaders {
    /// `stored` with `Age: age` and this cache's `Cache-Status` member for a
    /// hit `ttl` seconds from stale; rendered once per distinct input.
    pub(crate) fn get(
        &self,
        stored: &HeaderMap,
        age: u64,
        ttl: i128,
        name: Option<&str>,
    ) -> HeaderMap {
        let same = |r: &Rendering| r.age == age && r.ttl == ttl && r.name.as_deref() == name;
        // Never waits: a hit that finds another thread rendering renders too.
        let Some(mut last) = self.0.try_lock() else {
            return render(stored, age, ttl, name);
        };
        match &*last {
            Some(r) if same(r) => r.headers.clone(),
            _ => {
                let headers = render(stored, age, ttl, name);
                *last = Some(Rendering {
                    age,
                    ttl,
                    name: name.map(str::to_string),
                    headers: headers.clone(),
                });
                headers
            }
        }
    }
}

fn render(stored: &HeaderMap, age: u64, ttl: i128, name: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(stored.len() + 2);
    for (field, value) in stored {
        headers.append(field.clone(), value.clone());
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

    #[test]
    fn renders_again_only_when_an_input_changes() {
        let mut stored = HeaderMap::new();
        stored.append("x-many", HeaderValue::from_static("a"));
        stored.append("x-many", HeaderValue::from_static("b"));
        let hit = HitHeaders::default();
        let h = hit.get(&stored, 3, 57, Some("c"));
        assert_eq!(h.get_all("x-many").iter().count(), 2);
        assert_eq!(h["age"], "3");
        assert_eq!(h["cache-status"], "c; hit; ttl=57");
        assert_eq!(hit.get(&stored, 3, 57, Some("c")), h);
        assert_eq!(hit.get(&stored, 4, 56, Some("c"))["age"], "4");
        assert_eq!(
            hit.get(&stored, 4, 56, Some("d"))["cache-status"],
            "d; hit; ttl=56"
        );
        assert!(!hit.get(&stored, 4, 56, None).contains_key("cache-status"));
    }
}
