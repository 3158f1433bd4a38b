//! Durations written as text at run time (environment variables, profiles):
//! the forms of the macro's `ttl`, `stale` and `fail_safe` arguments.
//!
//! `cache-macros/src/duration.rs` parses the same forms at compile time; a
//! proc-macro crate cannot export it, so this is its run-time twin, and the
//! tests below go over the macro's own accept and reject lists.

use std::time::Duration;

/// The accepted forms, for error messages.
pub(crate) const FORMS: &str =
    "a whole number and a unit without spaces (250ms, 30s, 10m, 2h, 1d) or a whole number of seconds (30)";

/// Why a duration was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// Neither `<digits><unit>` nor `<digits>`.
    Malformed,
    /// Does not fit in `u64` milliseconds.
    Overflow,
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationError::Malformed => write!(f, "malformed duration: write {FORMS}"),
            DurationError::Overflow => {
                write!(f, "duration too long to count in milliseconds")
            }
        }
    }
}

/// Parses `"<digits><unit>"` (unit `ms`, `s`, `m`, `h` or `d`) or
/// `"<digits>"` (seconds, as the macro's integer literal).
pub(crate) fn parse(text: &str) -> Result<Duration, DurationError> {
    let millis = match text.find(|c: char| !c.is_ascii_digit()) {
        None => seconds(text)?,
        Some(split) => with_unit(text.split_at(split))?,
    };
    Ok(Duration::from_millis(millis))
}

fn seconds(digits: &str) -> Result<u64, DurationError> {
    if digits.is_empty() {
        return Err(DurationError::Malformed);
    }
    // Only ASCII digits: a parse failure means the number is too big.
    let n: u64 = digits.parse().map_err(|_| DurationError::Overflow)?;
    n.checked_mul(1_000).ok_or(DurationError::Overflow)
}

fn with_unit((digits, unit): (&str, &str)) -> Result<u64, DurationError> {
    if digits.is_empty() {
        return Err(DurationError::Malformed);
    }
    let factor: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(DurationError::Malformed),
    };
    let n: u64 = digits.parse().map_err(|_| DurationError::Overflow)?;
    n.checked_mul(factor).ok_or(DurationError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> Result<u64, DurationError> {
        parse(text).map(|d| d.as_millis() as u64)
    }

    /// The macro's accepted strings (`cache-macros/src/duration.rs`, test
    /// `units`), with the same results.
    #[test]
    fn accepts_what_the_macro_accepts() {
        for (text, millis) in [
            ("250ms", 250),
            ("30s", 30_000),
            ("10m", 600_000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
            ("0s", 0),
            ("007s", 7_000),
            ("18446744073709551615ms", u64::MAX),
        ] {
            assert_eq!(ms(text), Ok(millis), "{text:?}");
        }
    }

    /// The macro's rejected strings (test `malformed`), except `"30"`: the
    /// macro writes whole seconds as an integer literal (`ttl = 30`), which
    /// text can only spell as bare digits, so here `"30"` is 30 s.
    #[test]
    fn rejects_what_the_macro_rejects() {
        for bad in [
            "", "s", "30 s", " 30s", "30s ", "1.5s", "-1s", "+1s", "30sec", "30S", "1w", "ms",
            "1_000ms", "1e3ms", "30ms5", // the macro's list
            "soon", "-1", "1.5", " 30", "30 ", "0x10", "٣s", // and the literals it rejects
        ] {
            assert_eq!(ms(bad), Err(DurationError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn bare_digits_are_seconds_like_the_macros_integer() {
        assert_eq!(ms("30"), Ok(30_000));
        assert_eq!(ms("0"), Ok(0));
        assert_eq!(ms("45"), Ok(45_000));
    }

    #[test]
    fn overflow_matches_the_macro() {
        for big in [
            "99999999999999999999ms",
            "18446744073709551615s",
            "18446744073709551615",
            "99999999999999999999",
        ] {
            assert_eq!(ms(big), Err(DurationError::Overflow), "{big:?}");
        }
    }

    #[test]
    fn messages_show_the_forms() {
        let text = DurationError::Malformed.to_string();
        assert!(text.contains("30s") && text.contains("250ms"), "{text}");
        assert!(DurationError::Overflow.to_string().contains("too long"));
    }
}
