//! The rule a namespace must follow, checked when a cache is built.
//!
//! Every store name starts with the namespace and then `:` (entries) or `#`
//! (tags, locks, counters, the backplane channel). A namespace made only of
//! letters, digits, `-`, `_` and `.` contains neither, so the first `:` or
//! `#` of a name ends its namespace: no namespace's names can be read as
//! another's (`app` with key `b#tag:t` against `app:b`'s tag `t`), and the
//! patterns of `delete_matching` (`{namespace}:…`) never leave it. It is
//! never empty (an empty one made `delete_matching("*")` reach `:*`, every
//! namespace's entries), and short enough that a shortened key keeps it whole.

use crate::{Error, Result};

/// The longest namespace, in bytes: well inside the prefix a shortened key
/// keeps (`KEPT_PREFIX`), with room for `#counter:`.
pub(crate) const MAX_NAMESPACE_LEN: usize = 64;

/// `Ok` if `namespace` follows the rule, else `Error::Config` naming it and
/// the rule it breaks.
pub(crate) fn check_namespace(namespace: &str) -> Result<()> {
    let problem = if namespace.is_empty() {
        "is empty (`delete_matching` would reach every namespace)".to_owned()
    } else if namespace.len() > MAX_NAMESPACE_LEN {
        format!("is longer than {MAX_NAMESPACE_LEN} bytes")
    } else if let Some(c) = namespace.chars().find(|c| !allowed(*c)) {
        format!("contains {c:?}")
    } else {
        return Ok(());
    };
    Err(Error::Config(format!(
        "namespace `{namespace}` {problem}: a namespace is 1 to {MAX_NAMESPACE_LEN} ASCII \
         letters, digits, `-`, `_` or `.`, so that no namespace's keys can be read as \
         another's (`:`, `#` and `~` separate the parts of a key; `*`, `?` and `[` are patterns)"
    )))
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass() {
        for ns in [
            "cache",
            "myapp",
            "manual-test",
            "app.v2",
            "a_b",
            "A1",
            &"n".repeat(64),
        ] {
            assert!(check_namespace(ns).is_ok(), "{ns}");
        }
    }

    #[test]
    fn separators_globs_empty_and_long_names_fail_with_the_rule() {
        for (ns, says) in [
            ("", "is empty"),
            ("app:b", "contains ':'"),
            ("app#b", "contains '#'"),
            ("app~", "contains '~'"),
            ("a*", "contains '*'"),
            ("a?", "contains '?'"),
            ("a[b]", "contains '['"),
            ("a b", "contains ' '"),
            ("a%", "contains '%'"),
            ("é", "contains 'é'"),
            (&"n".repeat(65), "longer than 64"),
        ] {
            let Err(Error::Config(message)) = check_namespace(ns) else {
                panic!("`{ns}` passed");
            };
            assert!(message.contains(says), "{message}");
            assert!(message.contains(&format!("`{ns}`")), "{message}");
        }
    }
}
