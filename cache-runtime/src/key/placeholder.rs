//! How a template placeholder's value is rendered: integers and strings
//! directly, anything else through its `Display`.
//!
//! `core::fmt` costs about 350 instructions to print a `u64` into a key
//! (`Formatter`, padding, a `dyn Write`), a third of a template-key hit. Without
//! specialization, generated code picks the direct rendering by method
//! resolution ("autoref specialization"): it calls
//! `(&Placeholder(&value)).render_into(&mut template)`, which finds
//! [`RenderDirect`] (implemented for `Placeholder<'_, u64>` and the like, taking
//! `&self`) before it would add a reference to reach [`RenderDisplay`]
//! (implemented for every `&Placeholder<'_, T>`). Both render the same text.

use std::fmt;

use super::Template;

/// A placeholder's value, for [`RenderDirect`] and [`RenderDisplay`].
pub struct Placeholder<'a, T: ?Sized>(pub &'a T);

/// A value used in a key or tag template: anything `Display`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is used in a cache key or tag template, so it must implement `std::fmt::Display`",
    label = "rendered into this template",
    note = "implement `Display` for it, or name a field that has it: `{{arg.field}}`"
)]
pub trait TemplateValue: fmt::Display {}
impl<T: fmt::Display + ?Sized> TemplateValue for T {}

/// Renders through `Display`: every type, chosen when no direct way applies.
pub trait RenderDisplay {
    /// The placeholder's type.
    type Value: ?Sized;
    /// Appends the value, escaped, to `template`.
    fn render_into(&self, template: &mut Template)
    where
        Self::Value: TemplateValue;
}

impl<T: ?Sized> RenderDisplay for &Placeholder<'_, T> {
    type Value = T;
    #[inline]
    fn render_into(&self, template: &mut Template)
    where
        T: TemplateValue,
    {
        template.value(self.0);
    }
}

/// Renders without `core::fmt`: integers and strings.
pub trait RenderDirect {
    /// Appends the value, escaped, to `template`.
    fn render_into(&self, template: &mut Template);
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl RenderDirect for Placeholder<'_, $t> {
            #[inline]
            fn render_into(&self, template: &mut Template) {
                template.integer(false, *self.0 as u64);
            }
        }
    )*};
}

macro_rules! signed {
    ($($t:ty),*) => {$(
        impl RenderDirect for Placeholder<'_, $t> {
            #[inline]
            fn render_into(&self, template: &mut Template) {
                template.integer(*self.0 < 0, self.0.unsigned_abs() as u64);
            }
        }
    )*};
}

unsigned!(u8, u16, u32, u64, usize);
signed!(i8, i16, i32, i64, isize);

macro_rules! text {
    ($($t:ty),*) => {$(
        impl RenderDirect for Placeholder<'_, $t> {
            #[inline]
            fn render_into(&self, template: &mut Template) {
                template.text(self.0);
            }
        }
    )*};
}

text!(str, &str, String);

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders `value` the way generated code does, and through `Display`.
    macro_rules! both {
        ($value:expr) => {{
            let value = $value;
            let mut direct = Template::new(":");
            #[allow(unused_imports)]
            use RenderDirect as _;
            (&Placeholder(&value)).render_into(&mut direct);
            let mut display = Template::new(":");
            display.value(&value);
            (direct.tag(), display.tag())
        }};
    }

    #[test]
    fn direct_rendering_matches_display() {
        for n in [0u64, 7, 42, 1000, u64::MAX] {
            let (a, b) = both!(n);
            assert_eq!(a, b);
        }
        for n in [0i64, -1, 42, i64::MIN, i64::MAX] {
            let (a, b) = both!(n);
            assert_eq!(a, b);
        }
        let (a, b) = both!(i8::MIN);
        assert_eq!((a.as_str(), b.as_str()), ("-128", "-128"));
        let (a, b) = both!(u16::MAX);
        assert_eq!(a, b);
        let (a, b) = both!("a:b%c");
        assert_eq!((a.as_str(), b.as_str()), ("a%3Ab%25c", "a%3Ab%25c"));
        let (a, b) = both!(String::from("x:y"));
        assert_eq!(a, b);
    }

    #[test]
    // Written as generated code writes it (the borrow picks the method).
    #[allow(clippy::needless_borrow)]
    fn digits_in_the_template_text_are_escaped_in_integers() {
        let mut t = Template::new("2:");
        (&Placeholder(&1234u32)).render_into(&mut t);
        assert_eq!(t.tag(), "1%3234");
    }

    #[test]
    fn other_types_fall_back_to_display() {
        struct Id(u8);
        impl fmt::Display for Id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "id-{}", self.0)
            }
        }
        #[allow(unused_imports)]
        use RenderDirect as _;
        let mut t = Template::new(":");
        (&Placeholder(&Id(3))).render_into(&mut t);
        (&Placeholder(&1.5f64)).render_into(&mut t);
        assert_eq!(t.tag(), "id-31.5");
    }
}
