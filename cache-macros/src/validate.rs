//! Checks of the arguments against the function they are on: template
//! placeholders and `skip` name parameters, `cache_none` needs an `Option`
//! (or `Result<Option<T>, E>`), and refresh mode needs arguments it can copy.

use syn::{Error, Ident};

use crate::args::{CachedArgs, TemplateArg};
use crate::errors::Errors;
use crate::signature::{Analysed, Ownership, ReturnKind};

/// The function the arguments are checked against.
pub struct Target<'a> {
    /// Its name, for messages.
    pub name: &'a Ident,
    /// Its signature.
    pub sig: &'a Analysed,
}

impl Target<'_> {
    /// Names a placeholder may start from: `self` in methods, then the parameters.
    fn names(&self) -> Vec<String> {
        let receiver = self.sig.receiver.as_ref().map(|_| "self".to_owned());
        receiver
            .into_iter()
            .chain(self.sig.params.iter().map(|p| p.ident.to_string()))
            .collect()
    }

    fn list_names(&self) -> String {
        let names = self.names();
        if names.is_empty() {
            format!("`{}` has no parameters", self.name)
        } else {
            format!("parameters are: {}", names.join(", "))
        }
    }

    fn has_param(&self, ident: &Ident) -> bool {
        self.sig.params.iter().any(|p| p.ident == *ident)
    }
}

/// Whether `#[cached]` builds background refreshes: asked for by `stale` or
/// `refresh_ahead`, or by `profile` when every argument can be copied.
pub fn refresh_mode(args: &CachedArgs, sig: &Analysed) -> bool {
    if args.stale.is_some() || args.refresh_ahead.is_some() {
        return true;
    }
    args.profile.is_some() && {
        let receiver = sig.receiver.iter().map(|r| &r.ownership);
        let mut all = receiver.chain(sig.params.iter().map(|p| &p.ownership));
        all.all(|o| !matches!(o, Ownership::Borrowed(_)))
    }
}

/// Checks `#[cached]` arguments against the function.
pub fn check_cached(args: &CachedArgs, target: &Target) -> syn::Result<()> {
    let mut errors = Errors::default();
    for ident in &args.skip {
        if ident == "self" {
            errors.push(Error::new_spanned(
                ident,
                "`self` is never part of the default key (only its type is); remove it from `skip`",
            ));
        } else if !target.has_param(ident) {
            errors.push(Error::new_spanned(
                ident,
                format!(
                    "`{ident}` is not a parameter of `{}`; `skip` lists parameters to leave out of the default key ({})",
                    target.name,
                    target.list_names()
                ),
            ));
        }
    }
    if let Some(key) = &args.key {
        check_template(key, target, &mut errors);
        for p in key.template.placeholders() {
            if let Some(root) = &p.root {
                if args.skip.contains(root) {
                    errors.push(Error::new_spanned(
                        &key.lit,
                        format!(
                            "`{}` uses `{root}`, which is listed in `skip`; remove `{root}` from `skip` or from the key",
                            p.text
                        ),
                    ));
                }
            }
        }
    }
    check_tags(&args.tags, target, &mut errors);
    if let Some((_, arg)) = &args.cache_none {
        if !matches!(
            target.sig.ret_kind,
            ReturnKind::Option | ReturnKind::ResultOption
        ) {
            errors.push(Error::new_spanned(
                arg,
                "`cache_none` applies only to functions that return `Option` or `Result<Option<T>, E>`; remove it",
            ));
        }
    }
    check_refresh_inputs(args, target, &mut errors);
    errors.finish()
}

/// Checks the placeholders of every tag template.
pub fn check_tags(tags: &[TemplateArg], target: &Target, errors: &mut Errors) {
    for tag in tags {
        check_template(tag, target, errors);
    }
}

/// Reports placeholders that name no parameter.
fn check_template(t: &TemplateArg, target: &Target, errors: &mut Errors) {
    for p in t.template.placeholders() {
        let known = match &p.root {
            Some(root) => target.has_param(root),
            None => target.sig.receiver.is_some(),
        };
        if !known {
            errors.push(Error::new_spanned(
                &t.lit,
                format!(
                    "`{}` names no parameter of `{}`; {}",
                    p.text,
                    target.name,
                    target.list_names()
                ),
            ));
        }
    }
}

/// With `stale` or `refresh_ahead`, reports arguments a refresh cannot copy.
fn check_refresh_inputs(args: &CachedArgs, target: &Target, errors: &mut Errors) {
    let (subject, remove) = match (args.stale.is_some(), args.refresh_ahead.is_some()) {
        (true, true) => (
            "`stale` and `refresh_ahead` refresh",
            "`stale` and `refresh_ahead`",
        ),
        (true, false) => ("`stale` refreshes", "`stale`"),
        (false, true) => ("`refresh_ahead` refreshes", "`refresh_ahead`"),
        (false, false) => return,
    };
    let receiver = target
        .sig
        .receiver
        .iter()
        .map(|r| ("self".to_owned(), &r.ownership, &r.arg));
    let params = target
        .sig
        .params
        .iter()
        .map(|p| (p.ident.to_string(), &p.ownership, &p.arg));
    for (name, ownership, arg) in receiver.chain(params) {
        if let Ownership::Borrowed(why) = ownership {
            errors.push(Error::new_spanned(
                arg,
                format!(
                    "{subject} in the background after the caller has returned, so it needs owned copies of the arguments, but `{name}` {why}. Take it by value or as `&T` with `T: Clone` (or `ToOwned`), or remove {remove}."
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse_cached;
    use crate::signature::analyse;
    use proc_macro2::TokenStream;
    use quote::quote;

    fn errors(args: TokenStream, sig: &str) -> Vec<String> {
        let sig: syn::Signature = syn::parse_str(sig).expect("signature parses");
        let analysed = analyse(&sig).unwrap_or_else(|e| panic!("{e}"));
        let args = parse_cached(args).unwrap_or_else(|e| panic!("{e}"));
        let target = Target {
            name: &sig.ident,
            sig: &analysed,
        };
        match check_cached(&args, &target) {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    const GET_USER: &str = "async fn get_user(id: u64, name: &str) -> Option<u8>";

    #[test]
    fn valid() {
        assert!(errors(quote!(key = "u:{id}:{name}", tags = ["n:{name}"]), GET_USER).is_empty());
        assert!(errors(
            quote!(skip(name), cache_none = false, stale = "1m"),
            GET_USER
        )
        .is_empty());
        assert!(errors(quote!(key = "{self.id}"), "async fn f(&self) -> u8").is_empty());
    }

    #[test]
    fn placeholders() {
        let e = errors(quote!(key = "u:{idd}"), GET_USER);
        assert_eq!(
            e,
            ["`{idd}` names no parameter of `get_user`; parameters are: id, name"]
        );
        let e = errors(quote!(tags = ["{self.id}"]), "async fn f() -> u8");
        assert_eq!(
            e,
            ["`{self.id}` names no parameter of `f`; `f` has no parameters"]
        );
        let e = errors(quote!(tags = ["{x}"]), "async fn f(&self, a: u8)");
        assert_eq!(
            e,
            ["`{x}` names no parameter of `f`; parameters are: self, a"]
        );
    }

    #[test]
    fn skip() {
        let e = errors(quote!(skip(nam, self)), GET_USER);
        assert_eq!(e.len(), 2);
        assert!(e[0].starts_with("`nam` is not a parameter of `get_user`"));
        assert!(e[1].starts_with("`self` is never part of the default key"));
        let e = errors(quote!(skip(name), key = "{id}:{name}"), GET_USER);
        assert_eq!(
            e,
            ["`{name}` uses `name`, which is listed in `skip`; remove `name` from `skip` or from the key"]
        );
    }

    #[test]
    fn cache_none_needs_option() {
        const REFUSED: &str = "`cache_none` applies only to functions that return `Option` or `Result<Option<T>, E>`; remove it";
        for ret in ["Result<u8, E>", "u8", "Vec<Option<u8>>"] {
            let e = errors(quote!(cache_none = true), &format!("async fn f() -> {ret}"));
            assert_eq!(e, [REFUSED], "{ret}");
        }
        for ret in [
            "Option<u8>",
            "Result<Option<u8>, E>",
            "io::Result<Option<u8>>",
        ] {
            let e = errors(
                quote!(cache_none = false),
                &format!("async fn f() -> {ret}"),
            );
            assert!(e.is_empty(), "{ret}: {e:?}");
        }
    }

    #[test]
    fn refresh_needs_owned_inputs() {
        let e = errors(
            quote!(stale = "1m"),
            "async fn f(&mut self, a: &mut u8, b: Foo<'a>, c: &'a str, d: impl Tr)",
        );
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].starts_with("`stale` refreshes in the background"));
        assert!(e[0].contains("but `self` is borrowed mutably (`&mut self`)"));
        assert!(e[1].contains("but `a` is a `&mut` reference"));
        assert!(e[2].contains("but `b` has a type that borrows"));
        assert!(e[3].contains("but `d` is an `impl Trait` parameter"));
        assert!(e[3].ends_with("or remove `stale`."));
        let e = errors(quote!(refresh_ahead = 1), "async fn f(a: &mut u8)");
        assert!(e[0].starts_with("`refresh_ahead` refreshes"), "{e:?}");
        // `profile` alone silently turns refreshes off instead.
        assert!(errors(quote!(profile = "p"), "async fn f(a: &mut u8)").is_empty());
    }

    #[test]
    fn refresh_mode_choice() {
        let mode = |args: TokenStream, sig: &str| {
            let sig: syn::Signature = syn::parse_str(sig).expect("signature parses");
            let analysed = analyse(&sig).unwrap_or_else(|e| panic!("{e}"));
            refresh_mode(
                &parse_cached(args).unwrap_or_else(|e| panic!("{e}")),
                &analysed,
            )
        };
        assert!(mode(quote!(stale = 1), "async fn f(a: u8)"));
        assert!(mode(quote!(refresh_ahead = 1.0), "async fn f(a: u8)"));
        assert!(mode(quote!(profile = "p"), "async fn f(&self, a: &str)"));
        assert!(!mode(quote!(profile = "p"), "async fn f(&mut self)"));
        assert!(!mode(quote!(ttl = 1), "async fn f(a: u8)"));
    }
}
