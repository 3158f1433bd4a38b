//! `Vary` (RFC 9111 §4.1): the request header fields a stored response was
//! selected by, kept as a secondary key. Bounded like `Cache-Control`: a
//! malformed or huge `Vary`, or selected request fields too long to key on,
//! make the exchange pass through uncached.

use http::header::VARY;
use http::HeaderMap;

use super::cache_control::is_tchar;

/// The longest `Vary` that is parsed.
pub(crate) const MAX_LEN: usize = 1024;
/// The most field names a `Vary` may list.
pub(crate) const MAX_FIELDS: usize = 16;
/// The longest secondary key (the selected request fields together).
pub(crate) const MAX_SECONDARY: usize = 8192;

/// A response's `Vary`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Vary {
    /// No `Vary`: one response for every request of the URI.
    None,
    /// The listed fields, lower-cased, sorted, without repeats.
    Fields(Vec<String>),
    /// `Vary: *`: never served from the cache.
    Any,
}

/// Why a `Vary` is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

impl Vary {
    /// The `Vary` of every line of `headers`.
    pub(crate) fn of(headers: &HeaderMap) -> Result<Vary, Malformed> {
        let mut fields: Vec<String> = Vec::new();
        let mut len = 0usize;
        for value in headers.get_all(VARY) {
            len = len.saturating_add(value.len() + 1);
            if len > MAX_LEN {
                return Err(Malformed);
            }
            for item in value.as_bytes().split(|c| *c == b',') {
                let item = item.trim_ascii();
                if item.is_empty() {
                    continue;
                }
                if item == b"*" {
                    return Ok(Vary::Any);
                }
                if !item.iter().all(|c| is_tchar(*c)) {
                    return Err(Malformed);
                }
                // Only tchars: ASCII, so this cannot fail.
                let name = String::from_utf8_lossy(item).to_ascii_lowercase();
                if !fields.contains(&name) {
                    fields.push(name);
                }
                if fields.len() > MAX_FIELDS {
                    return Err(Malformed);
                }
            }
        }
        if fields.is_empty() {
            return Ok(Vary::None);
        }
        fields.sort();
        Ok(Vary::Fields(fields))
    }
}

/// The secondary key of a request for `fields`: each field's combined value
/// (lines joined by `,`, whitespace around items dropped, §4.1's
/// normalisation), length-prefixed, or `-` when absent, so that an absent
/// field and an empty one differ. `None` when longer than [`MAX_SECONDARY`].
pub(crate) fn secondary(fields: &[String], request: &HeaderMap) -> Option<String> {
    let mut out = String::new();
    for name in fields {
        out.push_str(name);
        let mut values = request.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() {
            out.push_str("=-;");
            continue;
        }
        // Language tags, codings and charsets are case-insensitive (RFC 9110
        // §12.5.3-4, RFC 5646 §2.1.1): `eN, De` selects what `en, de` does.
        let fold = matches!(
            name.as_str(),
            "accept-language" | "accept-encoding" | "accept-charset"
        );
        let mut combined: Vec<u8> = Vec::new();
        for v in values {
            for item in v.as_bytes().split(|c| *c == b',') {
                if !combined.is_empty() {
                    combined.push(b',');
                }
                let start = combined.len();
                combined.extend_from_slice(item.trim_ascii());
                if fold {
                    combined[start..].make_ascii_lowercase();
                }
            }
            if combined.len() > MAX_SECONDARY {
                return None;
            }
        }
        // Compared as bytes: a value that is not UTF-8 (obs-text) is
        // escaped, never decoded lossily, so `tok\xff` and `tok\xc0` stay two
        // variants and the key stays text (in Redis too).
        let text = escape(&combined);
        out.push_str(&format!("={}:{};", text.len(), text));
        if out.len() > MAX_SECONDARY {
            return None;
        }
    }
    Some(out)
}

/// `bytes` as ASCII text, losslessly: `%` and every byte outside printable
/// ASCII become `%XX`, the rest stays (so the usual value is unchanged, and
/// two values are equal exactly when their bytes are).
fn escape(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    let plain = |b: u8| b != b'%' && (b == b' ' || b.is_ascii_graphic());
    match std::str::from_utf8(bytes) {
        Ok(text) if bytes.iter().all(|b| plain(*b)) => std::borrow::Cow::Borrowed(text),
        _ => {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            let mut out = String::with_capacity(bytes.len() * 3);
            for &b in bytes {
                if plain(b) {
                    out.push(char::from(b));
                } else {
                    out.push('%');
                    out.push(char::from(HEX[usize::from(b >> 4)]));
                    out.push(char::from(HEX[usize::from(b & 15)]));
                }
            }
            std::borrow::Cow::Owned(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn case_insensitive_negotiation_values_are_folded() {
        let fields = vec!["accept-language".to_string(), "x-case".to_string()];
        let a = secondary(
            &fields,
            &map(&[("accept-language", b"en, de"), ("x-case", b"A")]),
        );
        let b = secondary(
            &fields,
            &map(&[("accept-language", b"eN,De"), ("x-case", b"A")]),
        );
        let c = secondary(
            &fields,
            &map(&[("accept-language", b"en, de"), ("x-case", b"a")]),
        );
        assert_eq!(a, b);
        assert_ne!(a, c, "other fields keep their case");
    }

    #[test]
    fn values_are_compared_as_bytes() {
        let f = vec!["x-token".to_string()];
        let a = secondary(&f, &map(&[("x-token", b"tok\xff\xfe\x80")])).unwrap();
        let b = secondary(&f, &map(&[("x-token", b"tok\xc0\xc1\x90")])).unwrap();
        assert_ne!(a, b);
        assert!(a.is_ascii() && b.is_ascii());
        // `%` is escaped too: a literal `%FF` is not the byte 0xFF.
        let c = secondary(&f, &map(&[("x-token", b"tok%FF%FE%80")])).unwrap();
        assert_ne!(a, c);
        assert_eq!(
            secondary(&f, &map(&[("x-token", b"plain")])).unwrap(),
            "x-token=5:plain;"
        );
    }

    #[test]
    fn fields_are_normalised_and_star_wins() {
        let v = Vary::of(&map(&[
            ("vary", b"Accept-Language, cookie"),
            ("vary", b"accept-language"),
        ]));
        assert_eq!(
            v,
            Ok(Vary::Fields(vec![
                "accept-language".into(),
                "cookie".into()
            ]))
        );
        assert_eq!(Vary::of(&map(&[("vary", b"a, *")])), Ok(Vary::Any));
        assert_eq!(Vary::of(&map(&[])), Ok(Vary::None));
        assert_eq!(Vary::of(&map(&[("vary", b"a b")])), Err(Malformed));
        let many = (0..=MAX_FIELDS)
            .map(|i| format!("f{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(Vary::of(&map(&[("vary", many.as_bytes())])), Err(Malformed));
    }

    #[test]
    fn secondary_keys_tell_values_apart() {
        let f = vec!["cookie".to_string()];
        let a = secondary(&f, &map(&[("cookie", b"user=a")]));
        let b = secondary(&f, &map(&[("cookie", b"user=b")]));
        let none = secondary(&f, &map(&[]));
        let empty = secondary(&f, &map(&[("cookie", b"")]));
        assert_ne!(a, b);
        assert_ne!(none, empty);
        // Whitespace and line splits do not change the meaning.
        let f = vec!["accept".to_string()];
        assert_eq!(
            secondary(&f, &map(&[("accept", b"a, b")])),
            secondary(&f, &map(&[("accept", b"a"), ("accept", b"b")]))
        );
        let huge = vec![b'x'; MAX_SECONDARY + 1];
        assert_eq!(secondary(&f, &map(&[("accept", &huge)])), None);
    }

    #[test]
    fn random_vary_headers_never_panic() {
        let mut rng = fastrand::Rng::with_seed(0x4_1);
        let alphabet = b"ab*, \t-\x7f\xffCookie";
        for _ in 0..20_000 {
            let len = rng.usize(0..100);
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect();
            let Ok(value) = HeaderValue::from_bytes(&bytes) else {
                continue;
            };
            let mut h = HeaderMap::new();
            h.insert(VARY, value);
            if let Ok(Vary::Fields(f)) = Vary::of(&h) {
                assert!(f.len() <= MAX_FIELDS);
                let _ = secondary(&f, &h);
            }
        }
    }
}
