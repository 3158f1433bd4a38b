//! Rendering of `key = ".."` and `tags = [..]` templates with escaped values.
//!
//! A value's `Display` output is percent-encoded wherever it contains a reserved
//! character (`%`, `#`, `~`, which literal text never contains) or a character
//! that occurs in the template's literal text. Since placeholders are always
//! separated by literal text (the macro enforces it), every value ends exactly
//! where the next literal begins, so different arguments never render the same
//! string: `"{a}:{b}"` with `("a:b", "c")` gives `a%3Ab:c`, with `("a", "b:c")`
//! gives `a:b%3Ac`. See the grammar in the [`key`](super) module.

use std::fmt::{self, Write};

use smol_str::SmolStrBuilder;

use super::reserved::{HEX, RESERVED};
use super::Key;
use crate::private::Site;

/// A template being rendered; built by generated code.
///
/// Renders into a small-string builder: a key of up to 23 bytes is built and
/// kept without allocating (most keys, e.g. `user:42`).
pub struct Template {
    out: SmolStrBuilder,
    escape: EscapeSet,
}

/// The characters a value must not contain unescaped: the reserved ones and
/// those of the template's literal text.
#[derive(Clone, Copy)]
struct EscapeSet {
    /// Bit `b` set: ASCII byte `b` is escaped. Checking a byte is a shift.
    ascii: u128,
    /// The whole set, when it has characters beyond ASCII (else empty).
    wide: &'static str,
}

impl EscapeSet {
    /// Inlined with a literal `escape`, this folds to constants.
    #[inline(always)]
    fn new(escape: &'static str) -> EscapeSet {
        let mut ascii = RESERVED;
        for b in escape.bytes() {
            if b.is_ascii() {
                ascii |= 1u128 << b;
            }
        }
        EscapeSet {
            ascii,
            wide: if escape.is_ascii() { "" } else { escape },
        }
    }

    #[inline]
    fn needs_escape(&self, c: char) -> bool {
        if c.is_ascii() {
            (self.ascii >> (c as u32)) & 1 == 1
        } else {
            self.wide.contains(c)
        }
    }

    /// Whether `s` has nothing to escape: byte by byte when the set is ASCII
    /// (a byte of a multi-byte character is never an ASCII one).
    #[inline]
    fn is_clean(&self, s: &str) -> bool {
        if self.wide.is_empty() {
            s.bytes()
                .all(|b| !b.is_ascii() || (self.ascii >> b) & 1 == 0)
        } else {
            !s.chars().any(|c| self.needs_escape(c))
        }
    }
}

impl Template {
    /// Starts a rendering; `escape` lists the characters of the template's literals.
    #[inline]
    pub fn new(escape: &'static str) -> Self {
        Self {
            out: SmolStrBuilder::new(),
            escape: EscapeSet::new(escape),
        }
    }

    /// Appends literal template text as it is.
    #[inline]
    pub fn lit(&mut self, text: &str) {
        self.out.push_str(text);
    }

    /// Appends a placeholder's value, escaped.
    #[inline]
    pub fn value<T: fmt::Display + ?Sized>(&mut self, value: &T) {
        let mut w = Escaper {
            out: &mut self.out,
            escape: self.escape,
        };
        // Writing into a String only fails if the Display impl itself fails;
        // then the partial text stays, which still renders deterministically.
        let _ = write!(w, "{value}");
    }

    /// Appends an integer's decimal digits, escaped (see `placeholder`).
    #[inline]
    pub(crate) fn integer(&mut self, negative: bool, magnitude: u64) {
        let mut digits = [0u8; 21];
        let mut at = digits.len();
        let mut n = magnitude;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if negative {
            at -= 1;
            digits[at] = b'-';
        }
        // SAFETY: `digits[at..]` holds only ASCII digits and '-', so it is UTF-8.
        let text = unsafe { std::str::from_utf8_unchecked(&digits[at..]) };
        self.text(text);
    }

    /// Appends a string, escaped.
    #[inline]
    pub(crate) fn text(&mut self, text: &str) {
        let mut w = Escaper {
            out: &mut self.out,
            escape: self.escape,
        };
        let _ = w.write_str(text);
    }

    /// The rendered text as a key of `site`, ending in `#v{N}` with
    /// `version = N` (no rendered text contains `#`).
    #[inline]
    pub fn key(mut self, site: &'static Site) -> Key {
        if let Some(version) = site.version {
            self.out.push_str("#v");
            let mut digits = [0u8; 20];
            self.out
                .push_str(super::store_key::decimal(version, &mut digits));
        }
        Key::rendered(self.out.finish())
    }

    /// The rendered text as a tag.
    pub fn tag(self) -> String {
        self.out.as_str().to_owned()
    }
}

struct Escaper<'a> {
    out: &'a mut SmolStrBuilder,
    escape: EscapeSet,
}

impl Write for Escaper<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.escape.is_clean(s) {
            self.out.push_str(s);
            return Ok(());
        }
        self.write_escaped(s);
        Ok(())
    }
}

impl Escaper<'_> {
    #[cold]
    fn write_escaped(&mut self, s: &str) {
        let escape = self.escape;
        let mut rest = s;
        while let Some(pos) = rest.find(|c| escape.needs_escape(c)) {
            self.out.push_str(&rest[..pos]);
            let c = rest[pos..].chars().next().unwrap_or('%');
            let mut utf8 = [0u8; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                self.out.push('%');
                self.out.push(char::from(HEX[usize::from(byte >> 4)]));
                self.out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
            rest = &rest[pos + c.len_utf8()..];
        }
        self.out.push_str(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(escape: &'static str, parts: &[Result<&str, &str>]) -> String {
        let mut t = Template::new(escape);
        for p in parts {
            match p {
                Ok(lit) => t.lit(lit),
                Err(value) => t.value(value),
            }
        }
        t.tag()
    }

    #[test]
    fn separators_inside_values_are_escaped() {
        let a = render(":", &[Err("a:b"), Ok(":"), Err("c")]);
        let b = render(":", &[Err("a"), Ok(":"), Err("b:c")]);
        assert_eq!(a, "a%3Ab:c");
        assert_eq!(b, "a:b%3Ac");
        assert_ne!(a, b);
    }

    #[test]
    fn percent_is_always_escaped() {
        assert_eq!(render("", &[Err("100%")]), "100%25");
        assert_ne!(
            render(":", &[Err("%3A"), Ok(":"), Err("x")]),
            render(":", &[Err(":"), Ok(":"), Err("x")])
        );
    }

    #[test]
    fn multibyte_escapes_every_byte() {
        assert_eq!(render("é", &[Ok("é"), Err("aéb")]), "éa%C3%A9b");
    }

    #[test]
    fn non_ascii_values_keep_their_characters_under_an_ascii_set() {
        assert_eq!(render(":", &[Err("é:ü")]), "é%3Aü");
        assert_eq!(render("", &[Err("日本%")]), "日本%25");
    }

    #[test]
    fn reserved_characters_are_escaped_in_every_template() {
        assert_eq!(render("", &[Err("a#v2~%")]), "a%23v2%7E%25");
        assert_eq!(render(":", &[Ok("x:"), Err("#~")]), "x:%23%7E");
    }

    #[test]
    fn versions_follow_the_text() {
        static V2: Site = Site {
            name: "t",
            version: Some(2),
            ..Site::DEFAULT
        };
        let mut t = Template::new(":");
        t.lit("user:");
        t.value(&7u8);
        assert_eq!(t.key(&V2).full("app"), "app:user:7#v2");
    }

    #[test]
    fn plain_values_are_untouched() {
        let mut t = Template::new(":");
        t.lit("user:");
        t.value(&42u64);
        assert_eq!(t.tag(), "user:42");
    }
}
