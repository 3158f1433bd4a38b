//! `Cache-Control` (RFC 9111 §5.2), request and response directives in one
//! parse. Bounded: a header longer than [`MAX_LEN`] bytes, with more than
//! [`MAX_DIRECTIVES`] directives, or that is not well formed is an error, and
//! the layer then passes the exchange through uncached.

use http::header::{HeaderName, CACHE_CONTROL};
use http::HeaderMap;

/// RFC 9213's targeted field for CDN caches: when valid, a cache that obeys
/// it uses its directives instead of `Cache-Control`'s.
pub(crate) const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// The longest `Cache-Control` (all its lines together) that is parsed.
pub(crate) const MAX_LEN: usize = 4096;
/// The most directives that are parsed.
pub(crate) const MAX_DIRECTIVES: usize = 64;
/// RFC 9111 §1.2.2: a delta-seconds too large to represent counts as 2^31.
pub(crate) const DELTA_MAX: u64 = 2_147_483_648;

/// Why a `Cache-Control` was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// Longer than [`MAX_LEN`] or more than [`MAX_DIRECTIVES`] directives.
    TooLarge,
    /// Not a list of `token[=token|quoted-string]`.
    Syntax,
}

/// The directives of one message; the first occurrence of a repeated one wins
/// (§4.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub(crate) no_store: bool,
    pub(crate) no_cache: bool,
    pub(crate) private: bool,
    pub(crate) public: bool,
    pub(crate) must_revalidate: bool,
    pub(crate) proxy_revalidate: bool,
    pub(crate) only_if_cached: bool,
    /// `must-understand` (§5.2.2.3).
    pub(crate) must_understand: bool,
    /// Seconds; an invalid value is 0 (stale at once, §4.2.1).
    pub(crate) max_age: Option<u64>,
    pub(crate) s_maxage: Option<u64>,
    pub(crate) min_fresh: Option<u64>,
    pub(crate) stale_while_revalidate: Option<u64>,
    pub(crate) stale_if_error: Option<u64>,
}

impl Directives {
    /// The directives of every `Cache-Control` line of `headers`.
    pub(crate) fn of(headers: &HeaderMap) -> Result<Directives, Malformed> {
        Directives::of_field(headers, &CACHE_CONTROL, false)
    }

    /// The directives a response gives this cache: with `targeted`, those of
    /// a valid `CDN-Cache-Control` (RFC 9213 §2.2: `Cache-Control` is then
    /// ignored; an invalid one is itself ignored), else `Cache-Control`'s.
    pub(crate) fn of_response(
        headers: &HeaderMap,
        targeted: bool,
    ) -> Result<Directives, Malformed> {
        if targeted && headers.contains_key(CDN_CACHE_CONTROL) {
            if let Ok(d) = Directives::of_field(headers, &CDN_CACHE_CONTROL, true) {
                return Ok(d);
            }
        }
        Directives::of(headers)
    }

    /// `strict`: a Structured Fields dictionary (RFC 9651 §3.2, as RFC 9213
    /// defines targeted fields), so no whitespace around `=`.
    fn of_field(
        headers: &HeaderMap,
        name: &HeaderName,
        strict: bool,
    ) -> Result<Directives, Malformed> {
        let mut out = Directives::default();
        let mut len = 0usize;
        let mut count = 0usize;
        for value in headers.get_all(name) {
            len = len.saturating_add(value.len() + 1);
            if len > MAX_LEN {
                return Err(Malformed::TooLarge);
            }
            parse_into(value.as_bytes(), &mut out, &mut count, strict)?;
        }
        Ok(out)
    }

    /// Whether a stored response may never be served stale: `no-cache`,
    /// `must-revalidate`, and for a shared cache `proxy-revalidate` and
    /// `s-maxage` (which implies it, §5.2.2.10).
    pub(crate) fn never_stale(&self) -> bool {
        self.no_cache || self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some()
    }
}

fn parse_into(
    bytes: &[u8],
    out: &mut Directives,
    count: &mut usize,
    strict: bool,
) -> Result<(), Malformed> {
    let mut rest = bytes;
    loop {
        rest = skip_ows(rest);
        // Empty list elements (`a,,b`) are allowed (RFC 9110 §5.6.1).
        if let Some(r) = rest.strip_prefix(b",") {
            rest = r;
            continue;
        }
        if rest.is_empty() {
            return Ok(());
        }
        let (name, r) = token(rest);
        if name.is_empty() || (strict && !sf_key(name)) {
            return Err(Malformed::Syntax);
        }
        rest = if strict { r } else { skip_ows(r) };
        let mut value: Option<Vec<u8>> = None;
        if let Some(r) = rest.strip_prefix(b"=") {
            if strict && r.first().is_some_and(|c| *c == b' ' || *c == b'\t') {
                return Err(Malformed::Syntax);
            }
            let r = skip_ows(r);
            let is_quoted = r.first() == Some(&b'"');
            let (v, r) = if is_quoted {
                quoted(r)?
            } else {
                let (v, r) = token(r);
                (v.to_vec(), r)
            };
            if strict && !sf_value(name, &v, is_quoted) {
                return Err(Malformed::Syntax);
            }
            value = Some(v);
            rest = skip_ows(r);
        }
        match rest.first() {
            None | Some(b',') => {}
            Some(_) => return Err(Malformed::Syntax),
        }
        *count += 1;
        if *count > MAX_DIRECTIVES {
            return Err(Malformed::TooLarge);
        }
        apply(name, value.as_deref(), out);
    }
}

fn apply(name: &[u8], value: Option<&[u8]>, out: &mut Directives) {
    let name = name.to_ascii_lowercase();
    let seconds = |slot: &mut Option<u64>| {
        if slot.is_none() {
            *slot = Some(value.map_or(0, delta_seconds));
        }
    };
    match name.as_slice() {
        b"no-store" => out.no_store = true,
        // `no-cache="field"` and `private="field"` may allow storing the rest;
        // a shared cache is safe treating them as unqualified.
        b"no-cache" => out.no_cache = true,
        b"private" => out.private = true,
        b"public" => out.public = true,
        b"must-revalidate" => out.must_revalidate = true,
        b"proxy-revalidate" => out.proxy_revalidate = true,
        b"only-if-cached" => out.only_if_cached = true,
        b"must-understand" => out.must_understand = true,
        b"max-age" => seconds(&mut out.max_age),
        b"s-maxage" => seconds(&mut out.s_maxage),
        b"min-fresh" => seconds(&mut out.min_fresh),
        b"stale-while-revalidate" => seconds(&mut out.stale_while_revalidate),
        b"stale-if-error" => seconds(&mut out.stale_if_error),
        // Unknown directives are ignored (§5.2.3).
        _ => {}
    }
}

/// delta-seconds (§1.2.2): digits only, saturating at [`DELTA_MAX`]; anything
/// else is 0, so an invalid lifetime makes the response stale, never fresher.
pub(crate) fn delta_seconds(v: &[u8]) -> u64 {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    let mut n: u64 = 0;
    for &d in v {
        n = n.saturating_mul(10).saturating_add(u64::from(d - b'0'));
        if n > DELTA_MAX {
            return DELTA_MAX;
        }
    }
    n
}

/// A Structured Fields key (RFC 9651 §3.1.2): lower case only.
fn sf_key(name: &[u8]) -> bool {
    let ok_first = |c: u8| c.is_ascii_lowercase() || c == b'*';
    let ok_rest = |c: u8| ok_first(c) || c.is_ascii_digit() || b"_-.".contains(&c);
    name.first().is_some_and(|c| ok_first(*c)) && name[1..].iter().all(|c| ok_rest(*c))
}

/// A dictionary member's value as RFC 9213 §2.1 wants it: an Integer for
/// the directives that take seconds; else an Integer, a String or a Token.
fn sf_value(name: &[u8], v: &[u8], quoted: bool) -> bool {
    let integer = !v.is_empty() && v.len() <= 15 && v.iter().all(u8::is_ascii_digit);
    let seconds = [
        &b"max-age"[..],
        b"s-maxage",
        b"stale-while-revalidate",
        b"stale-if-error",
    ];
    if seconds.contains(&name) {
        return !quoted && integer;
    }
    let token = v
        .first()
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'*');
    quoted || integer || token
}

fn skip_ows(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| **c == b' ' || **c == b'\t').count();
    &b[n..]
}

/// tchar (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn token(b: &[u8]) -> (&[u8], &[u8]) {
    let n = b.iter().take_while(|c| is_tchar(**c)).count();
    b.split_at(n)
}

/// A quoted-string starting at `b[0] == '"'`: its unescaped content and the rest.
fn quoted(b: &[u8]) -> Result<(Vec<u8>, &[u8]), Malformed> {
    let mut out = Vec::new();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Ok((out, &b[i + 1..])),
            b'\\' if i + 1 < b.len() => {
                out.push(b[i + 1]);
                i += 2;
            }
            c if c == b'\t' || (0x20..0x7f).contains(&c) || c >= 0x80 => {
                out.push(c);
                i += 1;
            }
            _ => return Err(Malformed::Syntax),
        }
    }
    Err(Malformed::Syntax)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parse(lines: &[&[u8]]) -> Result<Directives, Malformed> {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(CACHE_CONTROL, HeaderValue::from_bytes(l).unwrap());
        }
        Directives::of(&h)
    }

    #[test]
    fn parses_the_directives_of_every_line() {
        let d = parse(&[b"public, max-age=60", b"S-MaxAge=\"30\", stale-if-error=5"]).unwrap();
        assert!(d.public && !d.private && !d.no_store);
        assert_eq!(d.max_age, Some(60));
        assert_eq!(d.s_maxage, Some(30));
        assert_eq!(d.stale_if_error, Some(5));
        assert!(d.never_stale(), "s-maxage implies proxy-revalidate");
    }

    #[test]
    fn first_occurrence_wins_and_bad_numbers_are_zero() {
        let d = parse(&[b"max-age=10, max-age=99"]).unwrap();
        assert_eq!(d.max_age, Some(10));
        assert_eq!(parse(&[b"max-age=-1"]).unwrap().max_age, Some(0));
        assert_eq!(parse(&[b"max-age=1.5"]).unwrap().max_age, Some(0));
        assert_eq!(parse(&[b"max-age=\"abc\""]).unwrap().max_age, Some(0));
        assert_eq!(parse(&[b"max-age"]).unwrap().max_age, Some(0));
        assert_eq!(
            parse(&[b"max-age=99999999999999999999999"])
                .unwrap()
                .max_age,
            Some(DELTA_MAX)
        );
    }

    #[test]
    fn qualified_private_and_no_cache_count_as_unqualified() {
        let d = parse(&[b"private=\"set-cookie\", no-cache=\"a, b\""]).unwrap();
        assert!(d.private && d.no_cache);
    }

    #[test]
    fn malformed_and_huge_headers_are_errors() {
        assert_eq!(parse(&[b"max-age=1 junk"]), Err(Malformed::Syntax));
        assert_eq!(parse(&[b"=1"]), Err(Malformed::Syntax));
        assert_eq!(parse(&[b"private=\"open"]), Err(Malformed::Syntax));
        let huge = "a,".repeat(MAX_LEN);
        assert_eq!(parse(&[huge.as_bytes()]), Err(Malformed::TooLarge));
        let many = "a,".repeat(MAX_DIRECTIVES + 1);
        assert_eq!(parse(&[many.as_bytes()]), Err(Malformed::TooLarge));
        assert!(parse(&[b" , ,no-store,"]).unwrap().no_store);
    }

    #[test]
    fn a_valid_cdn_cache_control_replaces_cache_control() {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            CDN_CACHE_CONTROL,
            HeaderValue::from_static("max-age=60, foo"),
        );
        let d = Directives::of_response(&h, true).unwrap();
        assert_eq!(d.max_age, Some(60));
        assert!(!d.no_store);
        // Not targeted: the field means nothing to this cache.
        assert!(Directives::of_response(&h, false).unwrap().no_store);
        // Invalid as a dictionary (whitespace around `=`, a bad key, a
        // string or an over-long integer for seconds): ignored.
        for bad in [
            "max-age =60",
            "max-age= 60",
            "max-age=60 x",
            "max-age=10000, &&&&&",
            "max-age=\"10000\"",
            "Max-Age=60",
            "max-age=99999999999999999",
        ] {
            h.insert(CDN_CACHE_CONTROL, HeaderValue::from_static(bad));
            assert!(Directives::of_response(&h, true).unwrap().no_store, "{bad}");
        }
    }

    /// Seeded random bytes: the parser never panics, and what it accepts
    /// stays within its bounds.
    #[test]
    fn random_headers_never_panic() {
        let mut rng = fastrand::Rng::with_seed(0x9111);
        let alphabet = b"max-age=, \"\\s-public;no-store\t0123456789\x7f\xff";
        for _ in 0..20_000 {
            let len = rng.usize(0..200);
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect();
            let mut out = Directives::default();
            let mut count = 0;
            let _ = parse_into(&bytes, &mut out, &mut count, false);
            assert!(count <= MAX_DIRECTIVES + 1);
            assert!(out.max_age.unwrap_or(0) <= DELTA_MAX);
        }
    }
}
