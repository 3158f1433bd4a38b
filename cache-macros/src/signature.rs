//! What the macros need to know about a function's signature: the receiver,
//! the named parameters and whether each can be copied into a background
//! refresh, and the return type and its kind.

use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{Error, FnArg, Ident, Lifetime, Pat, ReturnType, Token, Type};

use crate::errors::Errors;

/// How the return value is split into what is stored (by its last path segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnKind {
    /// `Result<T, E>`: only `Ok` is stored.
    Result,
    /// `Result<Option<T>, E>`: only `Ok` is stored, and `Ok(None)` only
    /// unless `cache_none = false`.
    ResultOption,
    /// `Option<T>`.
    Option,
    /// Anything else.
    Plain,
}

/// How an argument is copied into a background refresh.
#[derive(Debug, Clone)]
pub enum Ownership {
    /// Taken by value: `owned_arg(&x)`, then `let x: T = __o_x;`.
    /// Holds `T` with named lifetimes replaced by `'_`.
    Value(Type),
    /// Taken by shared reference: `owned_arg(x)`, then
    /// `let x: &T = Borrow::borrow(&__o_x);`. Holds `&T`, lifetimes as above.
    Ref(Type),
    /// Cannot be copied; the text says why, e.g. "is a `&mut` reference".
    Borrowed(&'static str),
}

/// `self` in any of its forms.
pub struct Receiver {
    /// The `self` token, whose span the renamed body refers to.
    pub self_token: Token![self],
    /// `mut self`.
    pub mutability: Option<Token![mut]>,
    /// How it is copied into a refresh.
    pub ownership: Ownership,
    /// The whole receiver, for spans.
    pub arg: FnArg,
}

/// A parameter bound to a plain name.
pub struct Param {
    /// Its name.
    pub ident: Ident,
    /// `mut name`.
    pub mutability: Option<Token![mut]>,
    /// How it is copied into a refresh.
    pub ownership: Ownership,
    /// The whole parameter, for spans.
    pub arg: FnArg,
}

/// A function's signature, analysed.
pub struct Analysed {
    /// The receiver, for methods.
    pub receiver: Option<Receiver>,
    /// The other parameters, in order.
    pub params: Vec<Param>,
    /// The declared return type; `()` when there is none.
    pub ret: Type,
    /// Its kind.
    pub ret_kind: ReturnKind,
}

/// Reports a function that is not `async` (span: the `fn` token).
pub fn check_async(sig: &syn::Signature, attr: &str) -> syn::Result<()> {
    if sig.asyncness.is_some() {
        return Ok(());
    }
    Err(Error::new_spanned(
        sig.fn_token,
        format!("#[{attr}] needs an `async fn`; add `async` before `fn` (callers then `.await` the result)"),
    ))
}

/// Analyses `sig`, reporting parameters that are not bound to a plain name and
/// `impl Trait` return types.
pub fn analyse(sig: &syn::Signature) -> syn::Result<Analysed> {
    let mut errors = Errors::default();
    let mut receiver = None;
    let mut params = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => {
                let ownership = if r.colon_token.is_some() {
                    ownership(&r.ty)
                } else {
                    match &r.reference {
                        Some(_) if r.mutability.is_some() => {
                            Ownership::Borrowed("is borrowed mutably (`&mut self`)")
                        }
                        Some(_) => Ownership::Ref(syn::parse_quote!(&Self)),
                        None => Ownership::Value(syn::parse_quote!(Self)),
                    }
                };
                let mutability = if r.reference.is_none() {
                    r.mutability
                } else {
                    None
                };
                receiver = Some(Receiver {
                    self_token: r.self_token,
                    mutability,
                    ownership,
                    arg: arg.clone(),
                });
            }
            FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => params.push(Param {
                    ident: p.ident.clone(),
                    mutability: p.mutability,
                    ownership: ownership(&t.ty),
                    arg: arg.clone(),
                }),
                other => errors.push(Error::new_spanned(
                    other,
                    "bind the parameter to a name (e.g. `pair: (u8, u8)`) and destructure it in the body",
                )),
            },
        }
    }
    let ret: Type = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    if contains_impl_trait(&ret) {
        errors.push(Error::new_spanned(
            &ret,
            "the return value is stored in the cache, so it needs a nameable type; replace `impl Trait` with a concrete type",
        ));
    }
    errors.finish()?;
    let ret_kind = return_kind(&ret);
    Ok(Analysed {
        receiver,
        params,
        ret,
        ret_kind,
    })
}

/// The kind of a return type, by its last path segment.
pub fn return_kind(ty: &Type) -> ReturnKind {
    match ty {
        Type::Group(g) => return_kind(&g.elem),
        Type::Paren(p) => return_kind(&p.elem),
        Type::Path(p) => match p.path.segments.last() {
            Some(s) if s.ident == "Result" => match first_type_arg(s) {
                Some(inner) if return_kind(inner) == ReturnKind::Option => ReturnKind::ResultOption,
                _ => ReturnKind::Result,
            },
            Some(s) if s.ident == "Option" => ReturnKind::Option,
            _ => ReturnKind::Plain,
        },
        _ => ReturnKind::Plain,
    }
}

/// `T` of a return type `Name<T, ..>` (through parentheses and groups).
pub fn first_type_arg_of(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Group(g) => first_type_arg_of(&g.elem),
        Type::Paren(p) => first_type_arg_of(&p.elem),
        Type::Path(p) => p.path.segments.last().and_then(first_type_arg),
        _ => None,
    }
}

/// `T` of `Name<T, ..>`.
fn first_type_arg(segment: &syn::PathSegment) -> Option<&Type> {
    match &segment.arguments {
        syn::PathArguments::AngleBracketed(a) => a.args.iter().find_map(|arg| match arg {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}

/// How a parameter of type `ty` is copied into a refresh.
fn ownership(ty: &Type) -> Ownership {
    match ty {
        Type::Group(g) => ownership(&g.elem),
        Type::Paren(p) => ownership(&p.elem),
        Type::Reference(r) if r.mutability.is_some() => {
            Ownership::Borrowed("is a `&mut` reference")
        }
        Type::Reference(r) => match borrows(&r.elem) {
            Some(why) => Ownership::Borrowed(why),
            None => Ownership::Ref(erase_lifetimes(ty)),
        },
        _ => match borrows(ty) {
            Some(why) => Ownership::Borrowed(why),
            None => Ownership::Value(erase_lifetimes(ty)),
        },
    }
}

/// Why a type cannot be owned by a `'static` copy, if it cannot.
fn borrows(ty: &Type) -> Option<&'static str> {
    let mut finder = BorrowFinder::default();
    finder.visit_type(ty);
    if finder.impl_trait {
        Some("is an `impl Trait` parameter, whose type cannot be named")
    } else if finder.borrowed {
        Some("has a type that borrows (it carries a lifetime)")
    } else {
        None
    }
}

fn contains_impl_trait(ty: &Type) -> bool {
    let mut finder = BorrowFinder::default();
    finder.visit_type(ty);
    finder.impl_trait
}

/// Finds lifetimes other than `'static`, references without `'static`, and
/// `impl Trait`; function pointer and `Fn(..)` signatures are not borrows.
#[derive(Default)]
struct BorrowFinder {
    borrowed: bool,
    impl_trait: bool,
}

impl<'ast> Visit<'ast> for BorrowFinder {
    fn visit_lifetime(&mut self, l: &'ast Lifetime) {
        if l.ident != "static" {
            self.borrowed = true;
        }
    }
    fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
        if r.lifetime.is_none() || r.mutability.is_some() {
            self.borrowed = true;
        }
        syn::visit::visit_type_reference(self, r);
    }
    fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
        self.impl_trait = true;
    }
    fn visit_type_bare_fn(&mut self, _: &'ast syn::TypeBareFn) {}
    fn visit_parenthesized_generic_arguments(
        &mut self,
        _: &'ast syn::ParenthesizedGenericArguments,
    ) {
    }
    fn visit_bound_lifetimes(&mut self, _: &'ast syn::BoundLifetimes) {}
}

/// `ty` with every lifetime other than `'static` replaced by `'_`.
fn erase_lifetimes(ty: &Type) -> Type {
    struct Eraser;
    impl VisitMut for Eraser {
        fn visit_lifetime_mut(&mut self, l: &mut Lifetime) {
            if l.ident != "static" {
                *l = Lifetime::new("'_", l.apostrophe);
            }
        }
        fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {}
        fn visit_parenthesized_generic_arguments_mut(
            &mut self,
            _: &mut syn::ParenthesizedGenericArguments,
        ) {
        }
    }
    let mut ty = ty.clone();
    Eraser.visit_type_mut(&mut ty);
    ty
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;

    fn sig(src: &str) -> syn::Signature {
        syn::parse_str(src).expect("signature parses")
    }

    fn own(ty: &str) -> String {
        match ownership(&syn::parse_str(ty).expect("type parses")) {
            Ownership::Value(t) => format!("value {}", t.to_token_stream()),
            Ownership::Ref(t) => format!("ref {}", t.to_token_stream()),
            Ownership::Borrowed(why) => format!("borrowed {why}"),
        }
    }

    #[test]
    fn ownership_of_types() {
        assert_eq!(own("u64"), "value u64");
        assert_eq!(own("Vec<String>"), "value Vec < String >");
        assert_eq!(own("&str"), "ref & str");
        assert_eq!(own("&'a str"), "ref & '_ str");
        assert_eq!(own("&'static str"), "ref & 'static str");
        assert_eq!(
            own("Option<&'static str>"),
            "value Option < & 'static str >"
        );
        assert_eq!(own("fn(&str) -> u8"), "value fn (& str) -> u8");
        assert_eq!(
            own("Box<dyn Fn(&str) + Send>"),
            "value Box < dyn Fn (& str) + Send >"
        );
        assert!(own("&mut u8").starts_with("borrowed is a `&mut`"));
        assert!(own("Foo<'a>").starts_with("borrowed has a type that borrows"));
        assert!(own("&'a Foo<'b>").starts_with("borrowed has a type"));
        assert!(own("&Foo<'_>").starts_with("borrowed has a type"));
        assert!(own("Option<&u8>").starts_with("borrowed has a type"));
        assert!(own("impl Into<String>").starts_with("borrowed is an `impl Trait`"));
        assert!(own("&impl Display").starts_with("borrowed is an `impl Trait`"));
    }

    #[test]
    fn receivers_and_params() {
        let a = analyse(&sig(
            "async fn f(&self, mut id: u64, name: &str) -> Result<u8, E>",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let r = a.receiver.expect("receiver");
        assert!(matches!(r.ownership, Ownership::Ref(_)));
        assert_eq!(a.params.len(), 2);
        assert!(a.params[0].mutability.is_some());
        assert!(matches!(a.params[1].ownership, Ownership::Ref(_)));
        assert_eq!(a.ret_kind, ReturnKind::Result);

        let a = analyse(&sig("async fn f(&mut self)")).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            a.receiver.map(|r| r.ownership),
            Some(Ownership::Borrowed(_))
        ));
        assert_eq!(a.ret.to_token_stream().to_string(), "()");
        assert_eq!(a.ret_kind, ReturnKind::Plain);

        let a =
            analyse(&sig("async fn f(mut self) -> Option<u8>")).unwrap_or_else(|e| panic!("{e}"));
        let r = a.receiver.expect("receiver");
        assert!(r.mutability.is_some());
        assert!(matches!(r.ownership, Ownership::Value(_)));
        assert_eq!(a.ret_kind, ReturnKind::Option);

        for (ret, kind) in [
            ("Result<Option<u8>, E>", ReturnKind::ResultOption),
            (
                "io::Result<std::option::Option<u8>>",
                ReturnKind::ResultOption,
            ),
            ("Result<Vec<Option<u8>>, E>", ReturnKind::Result),
            ("Option<Result<u8, E>>", ReturnKind::Option),
        ] {
            let a =
                analyse(&sig(&format!("async fn f() -> {ret}"))).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(a.ret_kind, kind, "{ret}");
        }

        let a = analyse(&sig("async fn f(self: Arc<Self>) -> io::Result<u8>"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            a.receiver.map(|r| r.ownership),
            Some(Ownership::Value(_))
        ));
        assert_eq!(a.ret_kind, ReturnKind::Result);
    }

    #[test]
    fn rejected_signatures() {
        let msg = |s: &str| {
            analyse(&sig(s))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(msg("async fn f((a, b): (u8, u8))").starts_with("bind the parameter to a name"));
        assert!(msg("async fn f(_: u8)").starts_with("bind the parameter to a name"));
        assert!(msg("async fn f() -> impl Display").contains("replace `impl Trait`"));
        assert!(check_async(&sig("fn f()"), "cached").is_err());
        assert!(check_async(&sig("async fn f()"), "cached").is_ok());
    }
}
