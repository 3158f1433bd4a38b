//! Freshness (RFC 9111 §4.2): the lifetime a response was given, and its age
//! as §4.2.3 computes it. Times are wall-clock milliseconds, so they mean the
//! same in every process that shares the remote tier.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, StatusCode};

use super::cache_control::{delta_seconds, Directives, DELTA_MAX};

/// An HTTP-date (RFC 9110 §5.6.7, all three formats) as Unix milliseconds;
/// also, leniently, one that is right but for a wrong weekday or the case
/// of its names (see [`super::date`]).
pub(crate) fn http_date(headers: &HeaderMap, name: http::header::HeaderName) -> Option<u64> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let text = first.to_str().ok()?.trim();
    match httpdate::parse_http_date(text) {
        Ok(time) => Some(
            time.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        ),
        Err(_) => super::date::lenient(text),
    }
}

/// Unix milliseconds as an IMF-fixdate.
#[cfg(test)]
pub(crate) fn format_date(millis: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(millis))
}

/// Milliseconds now, exactly (the cache's coarse clock is fine for entries,
/// but ages are shown in seconds and compared with `Date`).
pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Status codes that are heuristically cacheable (RFC 9110 §15.1).
pub(crate) fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// How the layer fills in freshness the response does not give.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fallback {
    /// The layer's `ttl`.
    pub(crate) ttl: Option<Duration>,
    /// The fraction of `Date − Last-Modified` (§4.2.2), when configured.
    pub(crate) heuristic: Option<f64>,
}

/// The freshness lifetime in milliseconds (§4.2.1): `s-maxage`, else `max-age`,
/// else `Expires − Date`; else, for a status that allows it (or `public`), the
/// layer's `ttl` or its heuristic. `None`: no lifetime, so not stored.
pub(crate) fn lifetime(
    cc: &Directives,
    headers: &HeaderMap,
    status: StatusCode,
    response_time: u64,
    fallback: Fallback,
) -> Option<u64> {
    if let Some(s) = cc.s_maxage.or(cc.max_age) {
        return Some(s.saturating_mul(1000));
    }
    if headers.contains_key(EXPIRES) {
        // An invalid Expires (e.g. "0") means already expired.
        let date = http_date(headers, DATE).unwrap_or(response_time);
        return Some(http_date(headers, EXPIRES).map_or(0, |expires| expires.saturating_sub(date)));
    }
    if !(heuristically_cacheable(status) || cc.public) {
        return None;
    }
    if let Some(ttl) = fallback.ttl {
        return Some(crate::clock::millis(ttl));
    }
    let fraction = fallback.heuristic?;
    let date = http_date(headers, DATE).unwrap_or(response_time);
    let modified = http_date(headers, LAST_MODIFIED)?;
    let lifetime = (date.saturating_sub(modified) as f64 * fraction.clamp(0.0, 1.0)) as u64;
    Some(lifetime)
}

/// `corrected_initial_age` (§4.2.3) in milliseconds.
pub(crate) fn initial_age(headers: &HeaderMap, request_time: u64, response_time: u64) -> u64 {
    let date = http_date(headers, DATE).unwrap_or(response_time);
    let apparent = response_time.saturating_sub(date);
    // `Age: 7200, 0` (a list where one value is allowed): the first member,
    // as with repeated lines (RFC 9110 §5.3), so a response is never
    // younger than its first cache said.
    let age_value = headers
        .get(AGE)
        .map_or(0, |v| {
            let first = v.as_bytes().split(|c| *c == b',').next().unwrap_or(b"");
            delta_seconds(first.trim_ascii())
        })
        .saturating_mul(1000);
    let delay = response_time.saturating_sub(request_time);
    apparent.max(age_value.saturating_add(delay))
}

/// `current_age` (§4.2.3) at `now`.
pub(crate) fn current_age(initial_age: u64, response_time: u64, now: u64) -> u64 {
    initial_age.saturating_add(now.saturating_sub(response_time))
}

/// The `Age` header's value for an age in milliseconds: whole seconds,
/// capped as §1.2.2 says.
pub(crate) fn age_seconds(age: u64) -> u64 {
    (age / 1000).min(DELTA_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const T: u64 = 1_700_000_000_000; // a whole second

    #[test]
    fn s_maxage_wins_over_max_age_over_expires() {
        let date = format_date(T);
        let expires = format_date(T + 50_000);
        let h = headers(&[("date", &date), ("expires", &expires)]);
        let ok = StatusCode::OK;
        let cc = |s: Option<u64>, m: Option<u64>| Directives {
            s_maxage: s,
            max_age: m,
            ..Default::default()
        };
        let none = Fallback::default();
        assert_eq!(lifetime(&cc(Some(5), Some(9)), &h, ok, T, none), Some(5000));
        assert_eq!(lifetime(&cc(None, Some(9)), &h, ok, T, none), Some(9000));
        assert_eq!(lifetime(&cc(None, None), &h, ok, T, none), Some(50_000));
        let bad = headers(&[("date", &date), ("expires", "0")]);
        assert_eq!(lifetime(&cc(None, None), &bad, ok, T, none), Some(0));
    }

    #[test]
    fn without_explicit_freshness_only_the_configured_fallback_applies() {
        let d = Directives::default();
        let h = headers(&[
            ("date", &format_date(T)),
            ("last-modified", &format_date(T - 100_000)),
        ]);
        let ok = StatusCode::OK;
        assert_eq!(lifetime(&d, &h, ok, T, Fallback::default()), None);
        let ttl = Fallback {
            ttl: Some(Duration::from_secs(3)),
            heuristic: None,
        };
        assert_eq!(lifetime(&d, &h, ok, T, ttl), Some(3000));
        // Not for a status the RFC does not let a cache guess about.
        assert_eq!(lifetime(&d, &h, StatusCode::FOUND, T, ttl), None);
        let heuristic = Fallback {
            ttl: None,
            heuristic: Some(0.1),
        };
        assert_eq!(lifetime(&d, &h, ok, T, heuristic), Some(10_000));
    }

    #[test]
    fn age_is_computed_as_the_rfc_says() {
        // Date 10 s before the response arrived, Age 3, 2 s in flight.
        let h = headers(&[("date", &format_date(T - 10_000)), ("age", "3")]);
        assert_eq!(initial_age(&h, T - 2_000, T), 10_000);
        let h = headers(&[("date", &format_date(T)), ("age", "30")]);
        assert_eq!(initial_age(&h, T - 2_000, T), 32_000);
        assert_eq!(current_age(32_000, T, T + 5_000), 37_000);
        assert_eq!(age_seconds(37_999), 37);
        assert_eq!(age_seconds(u64::MAX), DELTA_MAX);
    }

    #[test]
    fn the_first_member_of_a_listed_age_counts() {
        let h = headers(&[("date", &format_date(T)), ("age", "7200, 0")]);
        assert_eq!(initial_age(&h, T, T), 7_200_000);
        let h = headers(&[("date", &format_date(T)), ("age", "0, 7200")]);
        assert_eq!(initial_age(&h, T, T), 0);
    }

    #[test]
    fn all_three_date_formats_parse() {
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            let h = headers(&[("date", text)]);
            assert_eq!(http_date(&h, DATE), Some(784_111_777_000), "{text}");
        }
        assert_eq!(http_date(&headers(&[("date", "yesterday")]), DATE), None);
    }
}
