//! Ranges served from a stored complete response (RFC 9110 §14): a single
//! `bytes` range of a `Range` request that a fresh stored 200 answers. Other
//! forms (several ranges, other units, malformed) are ignored, which §14.2
//! allows: the whole representation is then sent as a 200.

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ranged {
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// No byte of the range exists: 416 (§15.5.17).
    Unsatisfiable,
    /// Ignored: the whole body, as a 200.
    Whole,
}

/// The range `header` (a `Range` value) selects in a body of `len` bytes.
pub(crate) fn select(header: &[u8], len: u64) -> Ranged {
    let Some(spec) = strip_unit(header.trim_ascii()) else {
        return Ranged::Whole;
    };
    let spec = spec.trim_ascii();
    if spec.contains(&b',') {
        return Ranged::Whole; // Several ranges: a multipart answer is not made.
    }
    let Some(dash) = spec.iter().position(|c| *c == b'-') else {
        return Ranged::Whole;
    };
    let (first, last) = (spec[..dash].trim_ascii(), spec[dash + 1..].trim_ascii());
    match (number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || len == 0 {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part(len.saturating_sub(n), len - 1)
            }
        }
        // bytes=A- and bytes=A-B (B past the end means the end).
        (Some(a), b) if last.is_empty() || b.is_some() => {
            let end = b.map_or(len.saturating_sub(1), |b| b.min(len.saturating_sub(1)));
            if b.is_some_and(|b| b < a) {
                Ranged::Whole // Invalid (§14.1.1): ignored.
            } else if a >= len {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part(a, end)
            }
        }
        _ => Ranged::Whole,
    }
}

fn strip_unit(h: &[u8]) -> Option<&[u8]> {
    let (unit, rest) = h.split_at(h.iter().position(|c| *c == b'=')?);
    unit.trim_ascii()
        .eq_ignore_ascii_case(b"bytes")
        .then_some(&rest[1..])
}

fn number(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_byte_ranges_are_selected() {
        assert_eq!(select(b"bytes=0-1", 11), Ranged::Part(0, 1));
        assert_eq!(select(b"bytes=5-", 11), Ranged::Part(5, 10));
        assert_eq!(select(b"bytes=-3", 11), Ranged::Part(8, 10));
        assert_eq!(select(b"bytes=-30", 11), Ranged::Part(0, 10));
        assert_eq!(select(b"Bytes = 2-100", 11), Ranged::Part(2, 10));
    }

    #[test]
    fn unsatisfiable_and_ignored_ranges() {
        assert_eq!(select(b"bytes=11-", 11), Ranged::Unsatisfiable);
        assert_eq!(select(b"bytes=-0", 11), Ranged::Unsatisfiable);
        for ignored in [
            &b"bytes=0-1,3-4"[..],
            b"items=0-1",
            b"bytes=5-2",
            b"bytes=x-1",
            b"bytes=-",
            b"bytes",
            b"bytes=99999999999999999999-",
        ] {
            assert_eq!(select(ignored, 11), Ranged::Whole, "{ignored:?}");
        }
    }
}
