//! The arguments of `#[cached(...)]` and `#[invalidate(...)]`: syntax, unknown
//! and repeated names, and the shape of each value. Checks that need the
//! function's signature live in `validate.rs`.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{token, Error, Expr, Ident, Lit, LitStr, Token};

use crate::duration;
use crate::errors::Errors;
use crate::template::{self, Template};

/// Arguments `#[cached]` accepts, in the order messages list them.
pub const CACHED_ARGS: &[&str] = &[
    "ttl",
    "stale",
    "fail_safe",
    "refresh_ahead",
    "key",
    "tags",
    "skip",
    "cache",
    "lock",
    "cache_none",
    "profile",
    "name",
    "version",
];

/// Arguments `#[invalidate]` accepts.
pub const INVALIDATE_ARGS: &[&str] = &["tags", "cache"];

/// How each argument is written, for messages.
fn example(name: &str) -> &'static str {
    match name {
        "ttl" => "ttl = \"30s\"",
        "stale" => "stale = \"1m\"",
        "fail_safe" => "fail_safe = \"1h\"",
        "refresh_ahead" => "refresh_ahead = 1.0",
        "key" => "key = \"user:{id}\"",
        "tags" => "tags = [\"user:{id}\"]",
        "skip" => "skip(conn)",
        "cache" => "cache = self.cache",
        "lock" => "lock = \"local\"",
        "cache_none" => "cache_none = false",
        "profile" => "profile = \"users\"",
        "name" => "name = \"users::get\"",
        "version" => "version = 2",
        _ => "name = value",
    }
}

/// One argument as written, before its value is checked.
pub struct RawArg {
    /// The argument's name.
    pub name: Ident,
    /// What follows the name.
    pub value: RawValue,
}

/// The part of an argument after its name.
pub enum RawValue {
    /// `name = expr`.
    Expr(Token![=], Expr),
    /// `name(a, b)`.
    List(token::Paren, Punctuated<Ident, Token![,]>),
    /// A bare `name`.
    Flag,
}

impl Parse for RawArg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name = input.call(Ident::parse_any)?;
        let value = if input.peek(Token![=]) {
            RawValue::Expr(input.parse()?, input.parse()?)
        } else if input.peek(token::Paren) {
            let content;
            let paren = syn::parenthesized!(content in input);
            RawValue::List(
                paren,
                content.parse_terminated(Ident::parse_any, Token![,])?,
            )
        } else if input.is_empty() || input.peek(Token![,]) {
            RawValue::Flag
        } else {
            return Err(input.error(format!(
                "expected `=` after `{name}`; write e.g. `{}`",
                example(&name.to_string())
            )));
        };
        Ok(RawArg { name, value })
    }
}

impl ToTokens for RawArg {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.name.to_tokens(tokens);
        match &self.value {
            RawValue::Expr(eq, expr) => {
                eq.to_tokens(tokens);
                expr.to_tokens(tokens);
            }
            RawValue::List(paren, list) => paren.surround(tokens, |t| list.to_tokens(t)),
            RawValue::Flag => {}
        }
    }
}

/// A `key` or tag template with the literal it came from.
pub struct TemplateArg {
    /// The string literal, for spans.
    pub lit: LitStr,
    /// Its parsed form.
    pub template: Template,
}

/// `lock = ".."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// `"local"`.
    Local,
    /// `"distributed"`.
    Distributed,
    /// `"none"`.
    None,
}

/// Checked arguments of `#[cached]`.
#[derive(Default)]
pub struct CachedArgs {
    /// `ttl` in milliseconds.
    pub ttl: Option<u64>,
    /// `stale` in milliseconds.
    pub stale: Option<u64>,
    /// `fail_safe` in milliseconds.
    pub fail_safe: Option<u64>,
    /// `refresh_ahead` beta.
    pub refresh_ahead: Option<f64>,
    /// `key` template.
    pub key: Option<TemplateArg>,
    /// `tags` templates.
    pub tags: Vec<TemplateArg>,
    /// `skip(..)` names.
    pub skip: Vec<Ident>,
    /// `cache = EXPR`.
    pub cache: Option<Expr>,
    /// `lock`.
    pub lock: Option<Lock>,
    /// `cache_none` and the whole argument, for spans.
    pub cache_none: Option<(bool, TokenStream)>,
    /// `profile`.
    pub profile: Option<LitStr>,
    /// `name`.
    pub name: Option<LitStr>,
    /// `version`.
    pub version: Option<u64>,
}

/// Checked arguments of `#[invalidate]`.
pub struct InvalidateArgs {
    /// `tags` templates, at least one.
    pub tags: Vec<TemplateArg>,
    /// `cache = EXPR`.
    pub cache: Option<Expr>,
}

/// Parses the arguments of `#[cached(...)]`.
pub fn parse_cached(tokens: TokenStream) -> syn::Result<CachedArgs> {
    let mut errors = Errors::default();
    let mut out = CachedArgs::default();
    let raw = parse_raw(tokens)?;
    for_each_known(&raw, CACHED_ARGS, &mut errors, |arg, errors| {
        match arg.name.to_string().as_str() {
            "ttl" => out.ttl = errors.ok(duration_arg(arg)),
            "stale" => out.stale = errors.ok(duration_arg(arg)),
            "fail_safe" => out.fail_safe = errors.ok(duration_arg(arg)),
            "refresh_ahead" => out.refresh_ahead = errors.ok(refresh_ahead_arg(arg)),
            "key" => out.key = errors.ok(lit_str(arg).and_then(template_arg)),
            "tags" => out.tags = errors.ok(tags_arg(arg)).unwrap_or_default(),
            "skip" => out.skip = errors.ok(skip_arg(arg)).unwrap_or_default(),
            "cache" => out.cache = errors.ok(value(arg).cloned()),
            "lock" => out.lock = errors.ok(lock_arg(arg)),
            "cache_none" => {
                out.cache_none = errors.ok(bool_arg(arg)).map(|b| (b, arg.to_token_stream()))
            }
            "profile" => out.profile = errors.ok(lit_str(arg)),
            "name" => out.name = errors.ok(lit_str(arg)),
            "version" => out.version = errors.ok(version_arg(arg)),
            _ => {}
        }
    });
    errors.finish()?;
    Ok(out)
}

/// Parses the arguments of `#[invalidate(...)]`.
pub fn parse_invalidate(tokens: TokenStream) -> syn::Result<InvalidateArgs> {
    let mut errors = Errors::default();
    let mut tags = None;
    let mut cache = None;
    let raw = parse_raw(tokens)?;
    for_each_known(&raw, INVALIDATE_ARGS, &mut errors, |arg, errors| {
        if arg.name == "tags" {
            tags = errors.ok(tags_arg(arg).and_then(|t| {
                if t.is_empty() {
                    Err(Error::new_spanned(
                        arg,
                        "list at least one tag to invalidate, e.g. `tags = [\"user:{id}\"]`",
                    ))
                } else {
                    Ok(t)
                }
            }));
        } else if arg.name == "cache" {
            cache = errors.ok(value(arg).cloned());
        }
    });
    // A rejected `tags` has reported its error above, so `None` here means missing.
    errors.finish()?;
    let tags = tags.ok_or_else(|| {
        Error::new(
            proc_macro2::Span::call_site(),
            "#[invalidate] needs the tags to invalidate; add e.g. `#[invalidate(tags = [\"user:{id}\"])]`",
        )
    })?;
    Ok(InvalidateArgs { tags, cache })
}

fn parse_raw(tokens: TokenStream) -> syn::Result<Punctuated<RawArg, Token![,]>> {
    Punctuated::<RawArg, Token![,]>::parse_terminated.parse2(tokens)
}

/// Calls `handle` on the first occurrence of each valid argument, in order,
/// and reports unknown and repeated ones.
fn for_each_known(
    raw: &Punctuated<RawArg, Token![,]>,
    valid: &[&str],
    errors: &mut Errors,
    mut handle: impl FnMut(&RawArg, &mut Errors),
) {
    let mut seen: Vec<&Ident> = Vec::new();
    for arg in raw {
        let name = arg.name.to_string();
        if !valid.contains(&name.as_str()) {
            errors.push(Error::new_spanned(&arg.name, unknown_message(&name, valid)));
        } else if seen.contains(&&arg.name) {
            errors.push(Error::new_spanned(
                &arg.name,
                format!("`{name}` is given twice; keep only one"),
            ));
        } else {
            seen.push(&arg.name);
            handle(arg, errors);
        }
    }
}

fn unknown_message(name: &str, valid: &[&str]) -> String {
    let hint = valid
        .iter()
        .filter(|v| edit_distance(name, v) <= 2)
        .min_by_key(|v| edit_distance(name, v))
        .map(|v| format!("did you mean `{v}`? "))
        .unwrap_or_default();
    format!(
        "unknown argument `{name}`; {hint}valid arguments are: {}",
        valid.join(", ")
    )
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// The expression of `name = expr`.
fn value(arg: &RawArg) -> syn::Result<&Expr> {
    let name = arg.name.to_string();
    match &arg.value {
        RawValue::Expr(_, expr) => Ok(expr),
        RawValue::Flag => Err(Error::new_spanned(
            &arg.name,
            format!("`{name}` needs a value; write e.g. `{}`", example(&name)),
        )),
        RawValue::List(..) => Err(Error::new_spanned(
            arg,
            format!(
                "`{name}` takes `= value`, not a list; write e.g. `{}`",
                example(&name)
            ),
        )),
    }
}

/// The literal of `name = lit`, or an error showing the expected form.
fn lit<'a>(arg: &'a RawArg, what: &str) -> syn::Result<&'a Lit> {
    let expr = value(arg)?;
    match expr {
        Expr::Lit(l) => Ok(&l.lit),
        _ => Err(wrong_kind(arg, expr, what)),
    }
}

fn wrong_kind(arg: &RawArg, expr: &Expr, what: &str) -> Error {
    let name = arg.name.to_string();
    Error::new_spanned(
        expr,
        format!("`{name}` takes {what}; write e.g. `{}`", example(&name)),
    )
}

fn lit_str(arg: &RawArg) -> syn::Result<LitStr> {
    match lit(arg, "a string literal")? {
        Lit::Str(s) => Ok(s.clone()),
        other => Err(wrong_kind(arg, &lit_expr(other), "a string literal")),
    }
}

fn lit_expr(lit: &Lit) -> Expr {
    Expr::Lit(syn::ExprLit {
        attrs: Vec::new(),
        lit: lit.clone(),
    })
}

fn duration_arg(arg: &RawArg) -> syn::Result<u64> {
    duration::parse_expr(&arg.name.to_string(), value(arg)?)
}

fn refresh_ahead_arg(arg: &RawArg) -> syn::Result<f64> {
    // The runtime's bound (`Policy::refresh_ahead`): above it nearly every hit refreshes.
    let what = "a number greater than 0 and at most 100";
    let expr = value(arg)?;
    let beta = match expr {
        Expr::Lit(l) => match &l.lit {
            Lit::Float(f) => f.base10_parse::<f64>().ok(),
            Lit::Int(i) => i.base10_parse::<f64>().ok(),
            _ => None,
        },
        _ => None,
    };
    match beta {
        Some(beta) if beta > 0.0 && beta <= 100.0 => Ok(beta),
        _ => Err(wrong_kind(arg, expr, what)),
    }
}

fn version_arg(arg: &RawArg) -> syn::Result<u64> {
    let expr = value(arg)?;
    match lit(arg, "an integer")? {
        Lit::Int(i) => i.base10_parse::<u64>(),
        _ => Err(wrong_kind(arg, expr, "an integer")),
    }
}

fn bool_arg(arg: &RawArg) -> syn::Result<bool> {
    let expr = value(arg)?;
    match lit(arg, "`true` or `false`")? {
        Lit::Bool(b) => Ok(b.value),
        _ => Err(wrong_kind(arg, expr, "`true` or `false`")),
    }
}

fn lock_arg(arg: &RawArg) -> syn::Result<Lock> {
    let s = lit_str(arg)?;
    match s.value().as_str() {
        "local" => Ok(Lock::Local),
        "distributed" => Ok(Lock::Distributed),
        "none" => Ok(Lock::None),
        other => Err(Error::new_spanned(
            &s,
            format!("unknown lock mode \"{other}\"; use \"local\", \"distributed\" or \"none\""),
        )),
    }
}

fn template_arg(lit: LitStr) -> syn::Result<TemplateArg> {
    match template::parse(&lit.value()) {
        Ok(template) => Ok(TemplateArg { lit, template }),
        Err(message) => Err(Error::new_spanned(&lit, message)),
    }
}

fn tags_arg(arg: &RawArg) -> syn::Result<Vec<TemplateArg>> {
    let expr = value(arg)?;
    let Expr::Array(array) = expr else {
        return Err(wrong_kind(arg, expr, "a list of string templates"));
    };
    let mut errors = Errors::default();
    let mut tags = Vec::new();
    for elem in &array.elems {
        match elem {
            Expr::Lit(syn::ExprLit {
                lit: Lit::Str(s), ..
            }) => {
                if let Some(t) = errors.ok(template_arg(s.clone())) {
                    tags.push(t);
                }
            }
            other => errors.push(Error::new_spanned(
                other,
                "each tag is a string template; write e.g. `tags = [\"user:{id}\", \"users\"]`",
            )),
        }
    }
    errors.finish()?;
    Ok(tags)
}

fn skip_arg(arg: &RawArg) -> syn::Result<Vec<Ident>> {
    let RawValue::List(_, list) = &arg.value else {
        return Err(Error::new_spanned(
            arg,
            "list the parameters to leave out of the default key as `skip(a, b)`",
        ));
    };
    let mut errors = Errors::default();
    let mut names: Vec<Ident> = Vec::new();
    for ident in list {
        if names.contains(ident) {
            errors.push(Error::new_spanned(
                ident,
                format!("`{ident}` is listed twice in `skip`; keep only one"),
            ));
        } else {
            names.push(ident.clone());
        }
    }
    errors.finish()?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn cached_err(tokens: TokenStream) -> Vec<String> {
        match parse_cached(tokens) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn accepts_every_argument() {
        let args = parse_cached(quote! {
            ttl = "10m", stale = 30, fail_safe = "1d", refresh_ahead = 1.5,
            key = "user:{id}", tags = ["user:{id}", "users"], skip(conn, db),
            cache = &*CACHE, lock = "distributed", cache_none = false,
            profile = "users", name = "get_user", version = 3,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.ttl, Some(600_000));
        assert_eq!(args.stale, Some(30_000));
        assert_eq!(args.fail_safe, Some(86_400_000));
        assert_eq!(args.refresh_ahead, Some(1.5));
        assert!(args.key.is_some());
        assert_eq!(args.tags.len(), 2);
        assert_eq!(args.skip.len(), 2);
        assert!(args.cache.is_some());
        assert_eq!(args.lock, Some(Lock::Distributed));
        assert_eq!(args.cache_none.map(|c| c.0), Some(false));
        assert_eq!(args.profile.map(|p| p.value()).as_deref(), Some("users"));
        assert_eq!(args.name.map(|p| p.value()).as_deref(), Some("get_user"));
        assert_eq!(args.version, Some(3));
    }

    #[test]
    fn empty_is_fine() {
        assert!(parse_cached(TokenStream::new()).is_ok());
        assert!(parse_cached(quote!(refresh_ahead = 2)).is_ok());
    }

    #[test]
    fn refresh_ahead_is_above_0_and_at_most_100() {
        assert!(parse_cached(quote!(refresh_ahead = 100)).is_ok());
        assert!(parse_cached(quote!(refresh_ahead = 0.01)).is_ok());
        for beta in [quote!(1e308), quote!(100.5), quote!(0.0)] {
            let errs = cached_err(quote!(refresh_ahead = #beta));
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert!(
                errs[0].contains("greater than 0 and at most 100"),
                "{errs:?}"
            );
        }
    }

    #[test]
    fn unknown_and_repeated() {
        let errs = cached_err(quote!(tll = "1s", ttl = "1s", ttl = "2s", foo));
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("unknown argument `tll`; did you mean `ttl`?"));
        assert!(errs[0].contains("valid arguments are: ttl, stale,"));
        assert_eq!(errs[1], "`ttl` is given twice; keep only one");
        assert!(errs[2].starts_with("unknown argument `foo`; valid"));
    }

    #[test]
    fn value_shapes() {
        let errs = cached_err(quote!(
            ttl,
            key = 3,
            lock = "global",
            cache_none = 1,
            skip = x
        ));
        assert_eq!(errs.len(), 5, "{errs:?}");
        assert_eq!(errs[0], "`ttl` needs a value; write e.g. `ttl = \"30s\"`");
        assert!(errs[1].starts_with("`key` takes a string literal"));
        assert!(errs[2].starts_with("unknown lock mode \"global\"; use \"local\""));
        assert!(errs[3].starts_with("`cache_none` takes `true` or `false`"));
        assert!(errs[4].contains("`skip(a, b)`"));
    }

    #[test]
    fn bad_values() {
        let errs = cached_err(quote!(
            stale = "5 min",
            refresh_ahead = 0.0,
            refresh_ahead2 = 1,
            version = "1",
            skip(a, a),
            tags = "x"
        ));
        assert_eq!(errs.len(), 6, "{errs:?}");
        assert!(
            errs[0].starts_with("malformed duration for `stale`"),
            "{errs:?}"
        );
        assert!(errs[1].starts_with("`refresh_ahead` takes a number greater than 0"));
        assert!(errs[2].starts_with("unknown argument `refresh_ahead2`"));
        assert!(errs[3].starts_with("`version` takes an integer"));
        assert_eq!(errs[4], "`a` is listed twice in `skip`; keep only one");
        assert!(errs[5].starts_with("`tags` takes a list of string templates"));
    }

    #[test]
    fn template_errors() {
        let errs = cached_err(quote!(key = "{a}{b}", tags = ["ok:{a}", "{", 3]));
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].contains("separate placeholders with literal text"));
        assert!(errs[1].starts_with("unclosed `{`"));
        assert!(errs[2].starts_with("each tag is a string template"));
    }

    #[test]
    fn syntax_errors() {
        let errs = cached_err(quote!(ttl "1s"));
        assert!(errs[0].starts_with("expected `=` after `ttl`"), "{errs:?}");
        assert!(parse_cached(quote!(ttl = )).is_err());
    }

    #[test]
    fn invalidate_args() {
        let ok = parse_invalidate(quote!(tags = ["user:{id}"], cache = c));
        assert!(ok.is_ok());
        let missing = parse_invalidate(TokenStream::new())
            .err()
            .map(|e| e.to_string());
        assert!(missing
            .unwrap_or_default()
            .starts_with("#[invalidate] needs the tags"));
        let empty = parse_invalidate(quote!(tags = []))
            .err()
            .map(|e| e.to_string());
        assert!(empty
            .unwrap_or_default()
            .starts_with("list at least one tag"));
        let unknown = parse_invalidate(quote!(tags = ["a"], ttl = "1s"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            unknown.as_deref(),
            Some("unknown argument `ttl`; valid arguments are: tags, cache")
        );
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("ttl", "ttl"), 0);
        assert_eq!(edit_distance("tll", "ttl"), 1);
        assert_eq!(edit_distance("stael", "stale"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
