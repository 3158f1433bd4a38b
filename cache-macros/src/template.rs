//! Templates of `key = ".."` and `tags = [..]`: literal text with `{param}` or
//! `{param.field.0}` placeholders.
//!
//! Rules: no literal braces, no empty placeholders, two placeholders always
//! have literal text between them, and no literal `%`, `#` or `~` (reserved by
//! the key grammar: the escape, the mark of versions and default keys, the mark
//! of shortened keys), so the runtime can escape the characters that end a
//! value and different arguments never render the same string, nor a string of
//! another kind of key.

use syn::{Ident, Member};

/// A parsed template.
#[derive(Debug)]
pub struct Template {
    /// Literal text and placeholders in order, never two placeholders in a row.
    pub segments: Vec<Segment>,
}

/// One piece of a template.
#[derive(Debug)]
pub enum Segment {
    /// Text copied as it is.
    Lit(String),
    /// A value rendered with `Display` and escaped.
    Value(Placeholder),
}

/// `{root.field.field}`.
#[derive(Debug)]
pub struct Placeholder {
    /// The placeholder as written, braces included, for messages.
    pub text: String,
    /// The parameter it starts from; `None` for `self`.
    pub root: Option<Ident>,
    /// Field accesses after the root.
    pub fields: Vec<Member>,
}

/// Parses a template, or says how to fix it.
pub fn parse(text: &str) -> Result<Template, String> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut lit = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find(['{', '}']) {
        lit.push_str(&rest[..pos]);
        if rest[pos..].starts_with('}') {
            return Err(
                "`}` without a matching `{`; remove it (templates cannot contain literal braces)"
                    .to_owned(),
            );
        }
        let after = &rest[pos + 1..];
        let Some(end) = after.find(['{', '}']) else {
            return Err(
                "unclosed `{` in template; close the placeholder with `}`, e.g. `{id}`".to_owned(),
            );
        };
        if after[end..].starts_with('{') {
            return Err(format!(
                "unclosed `{{{}` in template; close each placeholder with `}}` before the next `{{`",
                &after[..end]
            ));
        }
        let placeholder = placeholder(&after[..end])?;
        if lit.is_empty() {
            if let Some(Segment::Value(prev)) = segments.last() {
                return Err(format!(
                    "`{}{}` has no text between the placeholders; separate placeholders with literal text, e.g. `{}:{}`, so different arguments never render the same key",
                    prev.text, placeholder.text, prev.text, placeholder.text
                ));
            }
        } else {
            segments.push(Segment::Lit(std::mem::take(&mut lit)));
        }
        segments.push(Segment::Value(placeholder));
        rest = &after[end + 1..];
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        segments.push(Segment::Lit(lit));
    }
    for segment in &segments {
        if let Segment::Lit(text) = segment {
            reserved(text)?;
        }
    }
    Ok(Template { segments })
}

/// The characters the key grammar reserves (`cache-runtime`'s `key` module).
const RESERVED: [char; 3] = ['%', '#', '~'];

/// Rejects literal text with a reserved character.
fn reserved(text: &str) -> Result<(), String> {
    match text.chars().find(|c| RESERVED.contains(c)) {
        Some(c) => Err(format!(
            "`{c}` cannot be used in a key or tag template: `%`, `#` and `~` are reserved \
             (`%` escapes values, `#` marks versions and default keys, `~` shortened keys); \
             use another separator, e.g. `:`"
        )),
        None => Ok(()),
    }
}

/// Parses the inside of `{..}`.
fn placeholder(inner: &str) -> Result<Placeholder, String> {
    let text = format!("{{{inner}}}");
    if inner.is_empty() {
        return Err("empty placeholder `{}`; name a parameter inside, e.g. `{id}`".to_owned());
    }
    let invalid = || {
        format!(
            "`{text}` is not a placeholder; write a parameter name or a field path, e.g. `{{id}}` or `{{user.id}}`"
        )
    };
    let allowed = |c: char| c.is_alphanumeric() || c == '_' || c == '.' || c == '#';
    if !inner.chars().all(allowed) {
        return Err(invalid());
    }
    let mut parts = inner.split('.');
    let first = parts.next().unwrap_or_default();
    let root = if first == "self" {
        None
    } else {
        Some(syn::parse_str::<Ident>(first).map_err(|_| invalid())?)
    };
    let mut fields = Vec::new();
    for part in parts {
        let member = if !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()) {
            let index: u32 = part.parse().map_err(|_| invalid())?;
            Member::Unnamed(syn::Index {
                index,
                span: proc_macro2::Span::call_site(),
            })
        } else {
            Member::Named(syn::parse_str::<Ident>(part).map_err(|_| invalid())?)
        };
        fields.push(member);
    }
    Ok(Placeholder { text, root, fields })
}

impl Template {
    /// The placeholders in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Value(p) => Some(p),
            Segment::Lit(_) => None,
        })
    }

    /// The characters the runtime escapes in values: every character of the
    /// literal text other than letters and digits, plus the first character of
    /// each literal that follows a placeholder (which is where a value ends).
    /// Distinct, in order of first occurrence.
    pub fn escape_set(&self) -> String {
        let mut set = String::new();
        let mut add = |c: char| {
            if !set.contains(c) {
                set.push(c);
            }
        };
        let mut after_value = false;
        for segment in &self.segments {
            match segment {
                Segment::Value(_) => after_value = true,
                Segment::Lit(text) => {
                    for (i, c) in text.chars().enumerate() {
                        if !c.is_alphanumeric() || (i == 0 && after_value) {
                            add(c);
                        }
                    }
                    after_value = false;
                }
            }
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(text: &str) -> Vec<String> {
        parse(text)
            .expect("template parses")
            .segments
            .iter()
            .map(|s| match s {
                Segment::Lit(l) => format!("lit:{l}"),
                Segment::Value(p) => {
                    let root = p.root.as_ref().map_or("self".to_owned(), |r| r.to_string());
                    let mut out = format!("val:{root}");
                    for f in &p.fields {
                        match f {
                            Member::Named(i) => out.push_str(&format!(".{i}")),
                            Member::Unnamed(i) => out.push_str(&format!(".{}", i.index)),
                        }
                    }
                    out
                }
            })
            .collect()
    }

    fn error(text: &str) -> String {
        parse(text).expect_err(text)
    }

    #[test]
    fn segments() {
        assert_eq!(
            shape("user:{id}:{p.f}"),
            ["lit:user:", "val:id", "lit::", "val:p.f"]
        );
        assert_eq!(shape("{self.id}/x"), ["val:self.id", "lit:/x"]);
        assert_eq!(shape("{t.0.name}"), ["val:t.0.name"]);
        assert_eq!(shape("plain"), ["lit:plain"]);
        assert_eq!(shape("{r#type}-"), ["val:r#type", "lit:-"]);
        assert!(shape("").is_empty());
    }

    #[test]
    fn placeholder_text_is_kept() {
        let t = parse("a{x.y}b").expect("parses");
        let texts: Vec<_> = t.placeholders().map(|p| p.text.clone()).collect();
        assert_eq!(texts, ["{x.y}"]);
    }

    #[test]
    fn syntax_errors() {
        assert!(error("user:{id").starts_with("unclosed `{`"));
        assert!(error("{a{b}").starts_with("unclosed `{a`"));
        assert!(error("user:{}").starts_with("empty placeholder"));
        assert!(error("user}").starts_with("`}` without a matching `{`"));
        assert!(error("{a}}").starts_with("`}` without"));
        for bad in [
            "{ id }", "{a-b}", "{a.}", "{.a}", "{a..b}", "{1}", "{type}", "{f()}",
        ] {
            assert!(error(bad).contains("is not a placeholder"), "{bad}");
        }
    }

    #[test]
    fn reserved_characters_in_text() {
        for bad in ["{a}%{b}", "v2#user:{id}", "long~{x}", "100%", "#"] {
            assert!(error(bad).contains("are reserved"), "{bad}");
        }
        assert!(parse("{r#type}:x").is_ok(), "a raw identifier is not text");
    }

    #[test]
    fn adjacent_placeholders() {
        let msg = error("{a}{b}");
        assert!(
            msg.contains("separate placeholders with literal text, e.g. `{a}:{b}`"),
            "{msg}"
        );
        assert!(parse("{a}:{b}").is_ok());
    }

    #[test]
    fn escape_sets() {
        let esc = |t: &str| parse(t).expect("parses").escape_set();
        assert_eq!(esc("user:{id}:{p.f}"), ":");
        assert_eq!(esc("user:{id}"), ":");
        assert_eq!(esc("org/{a}-{b}.json"), "/-.");
        assert_eq!(esc("x{a}y{b}z"), "yz");
        assert_eq!(esc("{a}é{b}"), "é");
        assert_eq!(esc("plain"), "");
        assert_eq!(esc("a b:{x}"), " :");
    }
}
