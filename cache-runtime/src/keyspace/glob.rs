//! Matching keys against a `delete_matching` pattern in the memory tier.

use crate::key::Key;
use crate::memory::MemoryTier;

/// Removes from the memory tier every entry whose key matches `pattern` (as
/// in `Cache::delete_matching`); how many.
pub(crate) fn forget_matching(memory: &MemoryTier, ns: &str, pattern: &str) -> u64 {
    // The namespace is never empty and has no `:` (`build()` checks it),
    // so `{ns}:` is where this namespace's entries, and only they, begin.
    let prefix = format!("{ns}:");
    // Written like a manual key: its reserved characters are escaped the
    // same way, and `*` (not reserved) stays a wildcard.
    let pattern = crate::key::reserved::escaped(pattern);
    let mut removed = 0;
    for repr in memory.keys() {
        let full = Key { repr: repr.clone() }.full(ns);
        if full
            .strip_prefix(&prefix)
            .is_some_and(|rest| glob_star(&pattern, rest))
            && memory.remove(&repr)
        {
            removed += 1;
        }
    }
    removed
}

/// Whether `text` matches `pattern` where only `*` is special.
fn glob_star(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = match parts.split_first() {
        Some(split) => split,
        None => return text.is_empty(),
    };
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_star_matches_only_stars() {
        assert!(glob_star("user:*", "user:7"));
        assert!(glob_star("*:7", "user:7"));
        assert!(glob_star("a*b*c", "axxbyyc"));
        assert!(!glob_star("a*b*c", "axxbyy"));
        assert!(!glob_star("user:?", "user:7"));
        assert!(glob_star("user:?", "user:?"));
        assert!(glob_star("exact", "exact"));
        assert!(!glob_star("exact", "exactly"));
    }
}
