//! Glob patterns as Redis' `SCAN MATCH` reads them: `*`, `?`, `[abc]`,
//! `[^a]`, `[a-z]`, and `\` escaping the next character.

/// Whether `text` matches the glob `pattern`.
pub(crate) fn matches(pattern: &str, text: &str) -> bool {
    matches_bytes(pattern.as_bytes(), text.as_bytes())
}

fn matches_bytes(mut p: &[u8], mut t: &[u8]) -> bool {
    while let Some(&c) = p.first() {
        match c {
            b'*' => {
                // Collapse a run of stars; then try every split of the rest.
                while p.first() == Some(&b'*') {
                    p = &p[1..];
                }
                if p.is_empty() {
                    return true;
                }
                return (0..=t.len()).any(|skip| matches_bytes(p, &t[skip..]));
            }
            b'?' => {
                if t.is_empty() {
                    return false;
                }
                p = &p[1..];
                t = &t[1..];
            }
            b'[' => {
                let Some((&ch, rest)) = t.split_first() else {
                    return false;
                };
                let (hit, after) = class(&p[1..], ch);
                if !hit {
                    return false;
                }
                p = after;
                t = rest;
            }
            _ => {
                // `\x` is the literal `x`; a trailing `\` is itself.
                let (literal, after) = match (c, p.get(1)) {
                    (b'\\', Some(&next)) => (next, &p[2..]),
                    _ => (c, &p[1..]),
                };
                if t.first() != Some(&literal) {
                    return false;
                }
                p = after;
                t = &t[1..];
            }
        }
    }
    t.is_empty()
}

/// Whether `ch` is in the class whose body starts at `p` (after `[`), and
/// the pattern after the closing `]` (the rest of the pattern when the class
/// is unclosed, as Redis does).
fn class(mut p: &[u8], ch: u8) -> (bool, &[u8]) {
    let negated = p.first() == Some(&b'^');
    if negated {
        p = &p[1..];
    }
    let mut hit = false;
    loop {
        match p {
            [] => break,
            [b']', rest @ ..] => {
                p = rest;
                break;
            }
            [b'\\', c, rest @ ..] => {
                hit |= *c == ch;
                p = rest;
            }
            [lo, b'-', hi, rest @ ..] if *hi != b']' => {
                let (lo, hi) = if lo <= hi { (*lo, *hi) } else { (*hi, *lo) };
                hit |= (lo..=hi).contains(&ch);
                p = rest;
            }
            [c, rest @ ..] => {
                hit |= *c == ch;
                p = rest;
            }
        }
    }
    (hit != negated, p)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn the_forms_of_scan_match() {
        assert!(matches("ns:*", "ns:a:b"));
        assert!(matches("*", ""));
        assert!(!matches("ns:*", "nt:a"));
        assert!(matches("k?", "k1"));
        assert!(!matches("k?", "k10"));
        assert!(matches("[ab]x", "bx"));
        assert!(!matches("[ab]x", "cx"));
        assert!(matches("[^ab]x", "cx"));
        assert!(matches("[a-c]", "b"));
        assert!(!matches("[a-c]", "d"));
        assert!(matches(r"lit\*", "lit*"));
        assert!(!matches(r"lit\*", "litx"));
        assert!(matches(r"a\?b", "a?b"));
        assert!(!matches(r"a\?b", "axb"));
        assert!(matches(r"[\]]", "]"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
    }
}
