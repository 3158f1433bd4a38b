//! Durations of `ttl`, `stale` and `fail_safe`: `"250ms"`, `"30s"`, `"10m"`,
//! `"2h"`, `"1d"` or an integer literal of seconds, turned into milliseconds.

use syn::{Error, Expr, Lit};

/// The accepted forms, quoted by every duration error.
const FORMS: &str = "write a whole number and a unit without spaces (\"250ms\", \"30s\", \"10m\", \"2h\", \"1d\") or an integer number of seconds (`30`)";

/// Why a duration string was rejected.
#[derive(Debug, PartialEq, Eq)]
pub enum DurationError {
    /// Not `<digits><unit>`.
    Malformed,
    /// Does not fit in `u64` milliseconds.
    Overflow,
}

/// Parses `"<digits><unit>"` with unit `ms`, `s`, `m`, `h` or `d` into milliseconds.
pub fn parse_str(text: &str) -> Result<u64, DurationError> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(DurationError::Malformed)?;
    let (digits, unit) = text.split_at(split);
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
    // Only ASCII digits remain, so a parse failure means the number is too big.
    let n: u64 = digits.parse().map_err(|_| DurationError::Overflow)?;
    n.checked_mul(factor).ok_or(DurationError::Overflow)
}

/// Whole seconds into milliseconds.
pub fn seconds_to_millis(secs: u64) -> Result<u64, DurationError> {
    secs.checked_mul(1_000).ok_or(DurationError::Overflow)
}

/// Reads the value of a duration argument (`arg` names it in messages).
pub fn parse_expr(arg: &str, expr: &Expr) -> syn::Result<u64> {
    let Expr::Lit(lit) = expr else {
        return Err(malformed(arg, expr));
    };
    let result = match &lit.lit {
        Lit::Str(s) => parse_str(&s.value()),
        Lit::Int(i) if i.suffix().is_empty() => match i.base10_parse::<u64>() {
            Ok(secs) => seconds_to_millis(secs),
            Err(_) => Err(DurationError::Overflow),
        },
        _ => Err(DurationError::Malformed),
    };
    result.map_err(|e| match e {
        DurationError::Malformed => malformed(arg, expr),
        DurationError::Overflow => Error::new_spanned(
            expr,
            format!("`{arg}` is too long to count in milliseconds; use a smaller duration"),
        ),
    })
}

fn malformed(arg: &str, expr: &Expr) -> Error {
    Error::new_spanned(expr, format!("malformed duration for `{arg}`: {FORMS}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_str("250ms"), Ok(250));
        assert_eq!(parse_str("30s"), Ok(30_000));
        assert_eq!(parse_str("10m"), Ok(600_000));
        assert_eq!(parse_str("2h"), Ok(7_200_000));
        assert_eq!(parse_str("1d"), Ok(86_400_000));
        assert_eq!(parse_str("0s"), Ok(0));
        assert_eq!(parse_str("007s"), Ok(7_000));
    }

    #[test]
    fn malformed() {
        for bad in [
            "", "s", "30", "30 s", " 30s", "30s ", "1.5s", "-1s", "+1s", "30sec", "30S", "1w",
            "ms", "1_000ms", "1e3ms", "30ms5",
        ] {
            assert_eq!(parse_str(bad), Err(DurationError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn overflow() {
        assert_eq!(
            parse_str("99999999999999999999ms"),
            Err(DurationError::Overflow)
        );
        assert_eq!(
            parse_str("18446744073709551615s"),
            Err(DurationError::Overflow)
        );
        assert_eq!(parse_str("18446744073709551615ms"), Ok(u64::MAX));
        assert_eq!(seconds_to_millis(u64::MAX), Err(DurationError::Overflow));
        assert_eq!(seconds_to_millis(30), Ok(30_000));
    }

    fn expr(src: &str) -> Expr {
        syn::parse_str(src).expect("test expression parses")
    }

    #[test]
    fn expressions() {
        assert_eq!(parse_expr("ttl", &expr("\"30s\"")).ok(), Some(30_000));
        assert_eq!(parse_expr("ttl", &expr("45")).ok(), Some(45_000));
        assert_eq!(parse_expr("ttl", &expr("0")).ok(), Some(0));
        for bad in ["\"soon\"", "1.5", "-1", "x", "30u8", "true"] {
            let err = parse_expr("stale", &expr(bad)).expect_err(bad).to_string();
            assert!(
                err.starts_with("malformed duration for `stale`"),
                "{bad}: {err}"
            );
            assert!(err.contains("\"30s\""), "{err}");
        }
        let err = parse_expr("ttl", &expr("18446744073709551615"))
            .expect_err("overflow")
            .to_string();
        assert!(err.contains("too long"), "{err}");
    }
}
