//! `#[cached]`: checks, then the function with its body wrapped in the cache
//! lookup (see `SPEC.md`, "Generated code for `#[cached]`").

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, GenericParam, Ident, ItemFn, Pat};

use crate::args::{self, CachedArgs, Lock};
use crate::codegen::{self, local, local_for, private};
use crate::errors::Errors;
use crate::item;
use crate::rename_self::{self, RENAMED};
use crate::signature::{self, Analysed, Ownership};
use crate::validate::{self, Target};

/// The whole expansion: the rewritten function, or the errors followed by the
/// function unchanged (so its callers do not report errors of their own).
pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    item::expand_with(item, "cached", |func| rewrite(args, func))
}

fn rewrite(args: TokenStream, func: &ItemFn) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = errors.ok(args::parse_cached(args));
    errors.ok(signature::check_async(&func.sig, "cached"));
    let sig = errors.ok(signature::analyse(&func.sig));
    if let (Some(args), Some(sig)) = (&args, &sig) {
        let target = Target {
            name: &func.sig.ident,
            sig,
        };
        errors.ok(validate::check_cached(args, &target));
    }
    errors.finish()?;
    let (Some(args), Some(sig)) = (args, sig) else {
        return Err(syn::Error::new(Span::call_site(), "invalid #[cached] use"));
    };
    Ok(generate(&args, &sig, func))
}

fn generate(args: &CachedArgs, sig: &Analysed, func: &ItemFn) -> TokenStream {
    let p = private();
    let refresh = validate::refresh_mode(args, sig);
    let site_var = Ident::new("__CACHE_SITE", Span::mixed_site());
    let site = site(args, refresh, &func.sig.ident);
    let cache_binding = codegen::cache_binding(args.cache.as_ref(), true);
    let key = match &args.key {
        Some(template) => codegen::template(template, quote!(key(&#site_var))),
        None => default_key(args, sig, func),
    };
    let tags = codegen::tags_vec(&args.tags);
    let mode = codegen::mode(sig.ret_kind);
    let ret = &sig.ret;
    // Errors about the return type (not storable, ..) point at it, and at
    // the stored type inside it (`Report` in `Result<Option<Report>, E>`).
    let ret_span = match &func.sig.output {
        syn::ReturnType::Type(_, ty) => stored_type(ty, sig.ret_kind).span(),
        syn::ReturnType::Default => Span::call_site(),
    };
    let (cache, key_var, site_ref) = (local("__cache"), local("__cache_key"), &site_var);
    // The tags closure borrows the arguments only for the synchronous part of
    // `begin` (it is called there on a miss, or dropped), so the body can still
    // move them afterwards.
    let (step, miss) = (local("__step"), local("__miss"));
    // The return type's check: its one error (a value that cannot be stored)
    // points at the return type, and the kind it yields keeps the calls
    // below free of errors of their own.
    let mode_var = local("__cache_mode");
    let probe = quote_spanned! {ret_span=>
        #[allow(unused_imports)]
        use ::cache_runtime::__private::NotStorable as _;
        let #mode_var = ::cache_runtime::__private::Probe::<#mode, #ret>::new().mode();
    };
    let begin = quote_spanned! {ret_span=>
        match ::cache_runtime::__private::begin_in::<_, #ret, _>(
            &#mode_var,
            #cache,
            &#site_ref,
            #key_var,
            || -> ::std::vec::Vec<::std::string::String> { #tags },
        ) {
            ::cache_runtime::__private::Begun::Ready(#step) => #step,
            ::cache_runtime::__private::Begun::Miss(#miss) => #miss.await,
        }
    };
    let hit = quote_spanned! {ret_span=>
        ::cache_runtime::__private::hit_in::<_, #ret>(&#mode_var, #cache, &#site_ref, &#key_var)
    };
    let load_method = Ident::new("load", ret_span);
    let (r, ticket, refresher, make_owned) = (
        local("__r"),
        local("__ticket"),
        local("__refresher"),
        local("__make_owned"),
    );

    let (prelude, refresh_arm, load) = if refresh {
        let closure = owned_closure(sig, func, &make_owned);
        let arm = quote! {
            #p::Step::Refresh(#r, #refresher) => {
                #p::spawn_in::<_, #ret, _>(&#mode_var, #refresher, #make_owned());
                #r
            }
        };
        (closure, arm, quote!(#make_owned()))
    } else {
        let block = &func.block;
        let arm = quote!(#p::Step::Refresh(#r, _) => #r,);
        (
            TokenStream::new(),
            arm,
            quote!(#p::output::<#ret, _>(async move #block)),
        )
    };

    let body = quote! {{
        #probe
        #site
        #cache_binding
        let #key_var: #p::Key = #key;
        // A fresh hit returns here: its value is never held across an
        // `.await`, so it stays out of this future's state.
        if let ::core::option::Option::Some(#r) = #hit {
            return #r;
        }
        #prelude
        let #step = #begin;
        match #step {
            #p::Step::Hit(#r) => #r,
            #refresh_arm
            #p::Step::Load(#ticket) => #ticket.#load_method(#load).await,
        }
    }};

    let mut outer_sig = func.sig.clone();
    if refresh {
        allow_unused_mut(&mut outer_sig);
    }
    let attrs = &func.attrs;
    let vis = &func.vis;
    quote!(#(#attrs)* #vis #outer_sig #body)
}

/// The type a return type stores: `T` of `Result<T, E>` and `Option<T>`,
/// `T` of `Result<Option<T>, E>`, else the type itself.
fn stored_type(ty: &syn::Type, kind: signature::ReturnKind) -> &syn::Type {
    use signature::ReturnKind;
    let depth = match kind {
        ReturnKind::Plain => 0,
        ReturnKind::Result | ReturnKind::Option => 1,
        ReturnKind::ResultOption => 2,
    };
    (0..depth).fold(ty, |ty, _| signature::first_type_arg_of(ty).unwrap_or(ty))
}

/// `static __CACHE_SITE: P::Site = ..;`
fn site(args: &CachedArgs, refresh: bool, fn_name: &Ident) -> TokenStream {
    let p = private();
    let var = Ident::new("__CACHE_SITE", Span::mixed_site());
    let mut fields = Vec::new();
    let name = match &args.name {
        Some(lit) => lit.to_token_stream(),
        None => {
            let fn_name = fn_name.unraw().to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #fn_name))
        }
    };
    fields.push(quote!(name: #name));
    if let Some(version) = args.version {
        fields.push(quote!(version: ::core::option::Option::Some(#version)));
    }
    for (field, millis) in [
        ("ttl", args.ttl),
        ("stale", args.stale),
        ("fail_safe", args.fail_safe),
    ] {
        if let Some(millis) = millis {
            let field = Ident::new(field, Span::call_site());
            fields.push(quote! {
                #field: ::core::option::Option::Some(::core::time::Duration::from_millis(#millis))
            });
        }
    }
    if let Some(beta) = args.refresh_ahead {
        let beta = proc_macro2::Literal::f64_suffixed(beta);
        fields.push(quote!(refresh_ahead: ::core::option::Option::Some(#beta)));
    }
    if let Some(profile) = &args.profile {
        fields.push(quote!(profile: ::core::option::Option::Some(#profile)));
    }
    if let Some(lock) = args.lock {
        let variant = match lock {
            Lock::Local => quote!(Local),
            Lock::Distributed => quote!(Distributed),
            Lock::None => quote!(None),
        };
        fields.push(quote!(lock: #p::LockMode::#variant));
    }
    if let Some((cache_none, _)) = &args.cache_none {
        fields.push(quote!(cache_none: #cache_none));
    }
    if refresh {
        fields.push(quote!(refreshable: true));
    }
    quote! {
        #[allow(clippy::needless_update)]
        static #var: #p::Site = #p::Site {
            #(#fields,)*
            ..#p::Site::DEFAULT
        };
    }
}

/// The default key: `Self` (methods), type and const parameters, then every
/// parameter not skipped and not the one `cache = <param>` names.
fn default_key(args: &CachedArgs, sig: &Analysed, func: &ItemFn) -> TokenStream {
    let p = private();
    let h = local("__h");
    let site_var = Ident::new("__CACHE_SITE", Span::mixed_site());
    let mut calls = Vec::new();
    if sig.receiver.is_some() {
        calls.push(quote!(#h.type_name(#p::type_name::<Self>());));
    }
    for param in &func.sig.generics.params {
        match param {
            GenericParam::Type(t) => {
                let ident = &t.ident;
                calls.push(quote_spanned!(ident.span()=> #h.type_name(#p::type_name::<#ident>());));
            }
            GenericParam::Const(c) => {
                let ident = &c.ident;
                calls.push(quote_spanned!(ident.span()=> #h.arg(&#ident);));
            }
            GenericParam::Lifetime(_) => {}
        }
    }
    let cache_param = args.cache.as_ref().and_then(named_ident);
    for param in &sig.params {
        let ident = &param.ident;
        if args.skip.contains(ident) || cache_param == Some(ident) {
            continue;
        }
        calls.push(quote_spanned!(ident.span()=> #h.arg(&#ident);));
    }
    let mutability = (!calls.is_empty()).then(|| quote!(mut));
    quote! {{
        let #mutability #h = #p::KeyHasher::new();
        #(#calls)*
        #h.finish(&#site_var)
    }}
}

/// The variable `cache = x`, `&x` or `&*x` names, if any.
fn named_ident(expr: &Expr) -> Option<&Ident> {
    match expr {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident(),
        Expr::Reference(r) => named_ident(&r.expr),
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => named_ident(&u.expr),
        Expr::Paren(p) => named_ident(&p.expr),
        Expr::Group(g) => named_ident(&g.expr),
        _ => None,
    }
}

/// `let __make_owned = || { owned copies; P::output::<RET, _>(async move { rebinds; body }) };`
fn owned_closure(sig: &Analysed, func: &ItemFn, make_owned: &Ident) -> TokenStream {
    let p = private();
    let ret = &sig.ret;
    let mut copies = Vec::new();
    let mut rebinds = Vec::new();
    if let Some(receiver) = &sig.receiver {
        let owned = local("__o_self");
        let span = receiver.self_token.span;
        let name = Ident::new(RENAMED, span);
        let mutability = receiver.mutability;
        let self_token = receiver.self_token;
        push_copy(
            &mut copies,
            &mut rebinds,
            &owned,
            &receiver.ownership,
            quote!(#self_token),
            quote!(#[allow(unused_variables)] let #mutability #name),
        );
    }
    for param in &sig.params {
        let owned = local_for("__o_", &param.ident);
        let ident = &param.ident;
        let mutability = param.mutability;
        push_copy(
            &mut copies,
            &mut rebinds,
            &owned,
            &param.ownership,
            quote!(#ident),
            // Used by the key or `cache = ..` when the body ignores it, as in plain mode.
            quote!(#[allow(unused_variables)] let #mutability #ident),
        );
    }
    let mut block = (*func.block).clone();
    rename_self::rename_block(&mut block);
    quote! {
        let #make_owned = || {
            #(#copies)*
            #p::output::<#ret, _>(async move {
                #(#rebinds)*
                #block
            })
        };
    }
}

/// The copy (outside the future) and rebinding (inside) of one argument.
fn push_copy(
    copies: &mut Vec<TokenStream>,
    rebinds: &mut Vec<TokenStream>,
    owned: &Ident,
    ownership: &Ownership,
    value: TokenStream,
    binding: TokenStream,
) {
    // A parameter that cannot be copied is reported at the parameter.
    let span = value
        .clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span());
    match ownership {
        Ownership::Value(ty) => {
            let call = quote_spanned!(span=> ::cache_runtime::__private::owned_arg(&#value));
            copies.push(quote!(let #owned = #call;));
            rebinds.push(quote!(#binding: #ty = #owned;));
        }
        Ownership::Ref(ty) => {
            let call = quote_spanned!(span=> ::cache_runtime::__private::owned_arg(#value));
            copies.push(quote!(let #owned = #call;));
            rebinds.push(quote!(#binding: #ty = ::core::borrow::Borrow::borrow(&#owned);));
        }
        // Refresh mode is only chosen when every argument can be copied.
        Ownership::Borrowed(_) => {}
    }
}

/// In refresh mode the body mutates the rebound copies, not the parameters.
fn allow_unused_mut(sig: &mut syn::Signature) {
    for arg in &mut sig.inputs {
        match arg {
            FnArg::Receiver(r) if r.mutability.is_some() && r.reference.is_none() => {
                r.attrs.push(syn::parse_quote!(#[allow(unused_mut)]));
            }
            FnArg::Typed(t) => {
                if let Pat::Ident(p) = &*t.pat {
                    if p.mutability.is_some() {
                        t.attrs.push(syn::parse_quote!(#[allow(unused_mut)]));
                    }
                }
            }
            FnArg::Receiver(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(args: TokenStream, item: TokenStream) -> String {
        expand(args, item).to_string()
    }

    #[test]
    fn refresh_mode_builds_the_owned_closure() {
        let out = expanded(
            quote!(stale = "1m"),
            quote!(
                async fn f(&self, mut id: u64, name: &'a str) -> u64 {
                    self.x + id
                }
            ),
        );
        assert!(!out.contains("compile_error"), "{out}");
        assert!(out.contains("__make_owned"), "{out}");
        assert!(out.contains("__self . x"), "{out}");
        assert!(out.contains("# [allow (unused_mut)] mut id : u64"), "{out}");
        assert!(out.contains("let mut id : u64 = __o_id"), "{out}");
        assert!(
            out.contains("# [allow (unused_variables)] let mut id"),
            "{out}"
        );
        assert!(out.contains("let name : & '_ str"), "{out}");
        assert!(out.contains("refreshable : true"), "{out}");
    }

    #[test]
    fn plain_mode_keeps_the_body_as_is() {
        let out = expanded(
            quote!(ttl = 30, key = "k:{id}", tags = ["t"]),
            quote!(
                pub(crate) async fn f(&self, id: u64) -> Option<u64> {
                    self.get(id)
                }
            ),
        );
        assert!(!out.contains("compile_error"), "{out}");
        assert!(!out.contains("__make_owned"), "{out}");
        assert!(out.contains("self . get (id)"), "{out}");
        assert!(out.contains("from_millis (30000u64)"), "{out}");
        assert!(out.contains("AsOption"), "{out}");
        assert!(out.starts_with("pub (crate) async fn f"), "{out}");
    }

    #[test]
    fn errors_keep_the_function() {
        let cases = [
            (
                quote!(ttl = "x"),
                quote!(
                    async fn f(id: u64) -> u64 {
                        id
                    }
                ),
            ),
            (
                quote!(key = "{nope}"),
                quote!(
                    async fn f(id: u64) -> u64 {
                        id
                    }
                ),
            ),
            (
                quote!(),
                quote!(
                    fn f(id: u64) -> u64 {
                        id
                    }
                ),
            ),
            (
                quote!(stale = 1),
                quote!(
                    async fn f(a: &mut u8) {}
                ),
            ),
            (
                quote!(,,),
                quote!(
                    async fn f() {}
                ),
            ),
        ];
        for (args, item) in cases {
            let out = expanded(args, item);
            assert!(out.starts_with(":: core :: compile_error !"), "{out}");
            assert!(out.contains("fn f"), "{out}");
            assert!(!out.contains("__CACHE_SITE"), "{out}");
        }
    }

    #[test]
    fn bad_items_do_not_panic() {
        let items = [
            quote!(
                struct S;
            ),
            quote!(
                async fn f(&self);
            ),
            quote!(),
            quote!(
                async fn f(_: u8, (a, b): (u8, u8)) -> impl Sized {}
            ),
        ];
        for item in items {
            let out = expanded(quote!(ttl = 1), item);
            assert!(out.contains("compile_error"), "{out}");
        }
    }
}
