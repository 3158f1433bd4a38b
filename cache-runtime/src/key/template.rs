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

use super::text::{KeyText, INLINE};

use super::reserved::{HEX, RESERVED};
use super::Key;
use crate::private::Site;

/// A template being rendered; built by generated code.
///
/// Renders into a buffer on the stack: a key of up to 23 bytes (`text::INLINE`) is
/// built and kept without allocating (most keys, e.g. `user:42`). A plain
/// byte buffer, not `SmolStrBuilder`: its per-push bookkeeping was a fifth of
/// a template-key hit (BENCHMARKS.md, run 9).
pub struct Template {
    out: Out,
    escape: EscapeSet,
}

/// The rendered text: inline while it fits, then on the heap.
struct Out {
    len: usize,
    inline: [u8; INLINE],
    /// Used once the text outgrew `inline` (`String::new` does not allocate).
    heap: String,
}

impl Out {
    #[inline(always)]
    fn new() -> Out {
        Out {
            len: 0,
            inline: [0; INLINE],
            heap: String::new(),
        }
    }

    #[inline(always)]
    fn push_str(&mut self, s: &str) {
        let end = self.len + s.len();
        match self.inline.get_mut(self.len..end) {
            Some(room) if self.heap.is_empty() => {
                room.copy_from_slice(s.as_bytes());
                self.len = end;
            }
            _ => self.spill(s),
        }
    }

    #[cold]
    fn spill(&mut self, s: &str) {
        if self.heap.is_empty() {
            self.heap.reserve(self.len + s.len() + 16);
            let inline = std::mem::take(&mut self.len);
            self.heap.push_str(as_str(&self.inline[..inline]));
        }
        self.heap.push_str(s);
    }

    /// Writes an integer's digits in place when they fit inline; whether
    /// they did.
    #[inline(always)]
    fn push_integer(&mut self, negative: bool, magnitude: u64) -> bool {
        let width = usize::from(negative) + decimal_width(magnitude);
        let end = self.len + width;
        match self.inline.get_mut(self.len..end) {
            Some(room) if self.heap.is_empty() => {
                write_integer(room, negative, magnitude);
                self.len = end;
                true
            }
            _ => false,
        }
    }

    fn push(&mut self, c: char) {
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }

    #[inline(always)]
    fn as_str(&self) -> &str {
        if self.heap.is_empty() {
            as_str(&self.inline[..self.len])
        } else {
            &self.heap
        }
    }

    #[inline(always)]
    fn finish(self) -> KeyText {
        if self.heap.is_empty() {
            // The buffer is zeroed past `len`, as `KeyText` needs.
            KeyText::inline(self.inline, self.len)
        } else {
            KeyText::from_string(self.heap)
        }
    }
}

/// The number of decimal digits of `n`.
#[inline(always)]
fn decimal_width(mut n: u64) -> usize {
    let mut width = 1;
    while n >= 10 {
        n /= 10;
        width += 1;
    }
    width
}

/// Writes `n`'s decimal digits (and a leading '-') to the end of `out`,
/// which must have room; where they start.
#[inline(always)]
fn write_integer(out: &mut [u8], negative: bool, mut n: u64) -> usize {
    let mut at = out.len();
    loop {
        at -= 1;
        out[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        out[at] = b'-';
    }
    at
}

/// The inline bytes as text.
#[inline(always)]
fn as_str(bytes: &[u8]) -> &str {
    // SAFETY: only whole `&str`s are ever copied into the inline buffer, one
    // after another, so its first `len` bytes are UTF-8.
    unsafe { std::str::from_utf8_unchecked(bytes) }
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
            out: Out::new(),
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
        // Folds to a constant with a literal template: most templates have
        // no digit or '-' in their text, so digits need no escape check and
        // are written straight into the key when they fit.
        if self.escape.ascii & DIGITS_AND_MINUS == 0 && self.out.push_integer(negative, magnitude) {
            return;
        }
        let mut digits = [0u8; 21];
        let at = write_integer(&mut digits, negative, magnitude);
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

/// Bits of `0`-`9` and `-` in an [`EscapeSet`]'s mask.
const DIGITS_AND_MINUS: u128 = (0x3ff << b'0') | (1 << b'-');

struct Escaper<'a> {
    out: &'a mut Out,
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
