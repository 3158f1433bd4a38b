//! Lenient HTTP-dates: one of the three formats of RFC 9110 §5.6.7, exact
//! but for the weekday (`Thu Aug  8 02:01:18 2050` was a Monday) or the case
//! of its names (`THU, 18 AUG 2050 02:01:18 gMT`). Such a date still says
//! when it means, and other shared caches (Apache httpd, Squid, Traffic
//! Server, nginx) read it. Anything else (two-digit years outside
//! rfc850-date, missing commas, extra spaces, dashes) stays invalid: the
//! names are fixed and the text is parsed again by `httpdate`, strictly.

use std::time::UNIX_EPOCH;

const SHORT: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// `text` (which `httpdate` refused) as Unix milliseconds, or `None`.
pub(crate) fn lenient(text: &str) -> Option<u64> {
    if !text.is_ascii() || text.len() > 64 {
        return None;
    }
    let fixed = fix_case(text);
    // The weekday is the leading word: try it as it is, then each other.
    let rest = fixed.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let names: &[&str] = if fixed.len() - rest.len() > 3 {
        &LONG
    } else {
        &SHORT
    };
    std::iter::once(fixed.clone())
        .chain(names.iter().map(|day| format!("{day}{rest}")))
        .find_map(|candidate| httpdate::parse_http_date(&candidate).ok())
        .map(|time| {
            time.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        })
}

/// Each word capitalised (`Thu`, `Aug`, `Thursday`), `GMT` upper case.
fn fix_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut start = true;
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            out.push(if start {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
            start = false;
        } else {
            out.push(c);
            start = true;
        }
    }
    out.replace("Gmt", "GMT")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_weekdays_and_cases_are_read() {
        let t = 784_111_777_000; // Sun, 06 Nov 1994 08:49:37 GMT
        for text in [
            "Thu, 06 Nov 1994 08:49:37 GMT",
            "SUN, 06 NOV 1994 08:49:37 gMT",
            "Monday, 06-Nov-94 08:49:37 GMT",
            "Thu Nov  6 08:49:37 1994",
        ] {
            assert_eq!(lenient(text), Some(t), "{text}");
        }
        assert_eq!(lenient("Thu Aug  8 02:01:18 2050"), Some(2_543_536_878_000));
    }

    #[test]
    fn other_defects_stay_invalid() {
        for text in [
            "",
            "0",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 CET",
            "Sun, 36 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sun, 06  Nov 1994 08:49:37 GMT",
            "Sun, 06-Nov-1994 08:49:37 GMT",
        ] {
            assert_eq!(lenient(text), None, "{text}");
        }
    }
}
