//! Pieces of generated code shared by `#[cached]` and `#[invalidate]`: runtime
//! paths, hygienic locals, the cache binding and template rendering.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::{Expr, Ident, Member};

use crate::args::TemplateArg;
use crate::signature::ReturnKind;
use crate::template::Segment;

/// `::cache_runtime::__private`.
pub fn private() -> TokenStream {
    quote!(::cache_runtime::__private)
}

/// A local of the generated code, invisible to the function body.
pub fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// A generated local named after a parameter (`__o_id`).
pub fn local_for(prefix: &str, param: &Ident) -> Ident {
    use syn::ext::IdentExt;
    format_ident!("{}{}", prefix, param.unraw(), span = Span::mixed_site())
}

/// The `P::AsResult`-style marker of a return kind.
pub fn mode(kind: ReturnKind) -> TokenStream {
    let p = private();
    match kind {
        ReturnKind::Result => quote!(#p::AsResult),
        ReturnKind::ResultOption => quote!(#p::AsResultOption),
        ReturnKind::Option => quote!(#p::AsOption),
        ReturnKind::Plain => quote!(#p::AsPlain),
    }
}

/// Binds `__cache`: the global cache, or a clone of `cache = EXPR` so the body
/// may still use or move what `EXPR` names.
pub fn cache_binding(cache: Option<&Expr>, borrow: bool) -> TokenStream {
    let p = private();
    let cache_var = local("__cache");
    match cache {
        None => quote! {
            let #cache_var = #p::global();
        },
        // `#[cached]` only uses the cache before the body runs (the ticket
        // keeps its own handle), so a borrow ends in time for the body to move
        // the arguments: no clone (and no shared reference count) per call.
        Some(expr) if borrow => {
            // At the expression's place, so a value that is not a cache is
            // reported there.
            let source = Ident::new(
                "__cache_source",
                Span::mixed_site().located_at(expr_span(expr)),
            );
            let borrowed = quote_spanned!(expr_span(expr)=> #p::cache_ref(#source));
            quote! {
                let #source = &(#expr);
                let #cache_var = #borrowed;
            }
        }
        Some(expr) => {
            let owned = local("__cache_owned");
            let borrowed = quote_spanned!(expr_span(expr)=> #p::cache_ref(&(#expr)));
            quote! {
                let #owned = ::core::clone::Clone::clone(#borrowed);
                let #cache_var = &#owned;
            }
        }
    }
}

fn expr_span(expr: &Expr) -> Span {
    expr.to_token_stream()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}

/// Renders a template; `finish` is the last call (`key(&SITE)` or `tag()`).
pub fn template(t: &TemplateArg, finish: TokenStream) -> TokenStream {
    let p = private();
    let var = local("__t");
    let span = t.lit.span();
    let escape = t.template.escape_set();
    let mut calls = Vec::new();
    for segment in &t.template.segments {
        calls.push(match segment {
            Segment::Lit(text) => quote_spanned!(span=> #var.lit(#text);),
            Segment::Value(placeholder) => {
                let root = match &placeholder.root {
                    Some(ident) => {
                        let mut ident = ident.clone();
                        ident.set_span(span);
                        ident.into_token_stream()
                    }
                    None => quote_spanned!(span=> self),
                };
                let fields = placeholder.fields.iter().map(|f| match f {
                    Member::Named(ident) => {
                        let mut ident = ident.clone();
                        ident.set_span(span);
                        Member::Named(ident)
                    }
                    Member::Unnamed(index) => Member::Unnamed(syn::Index {
                        index: index.index,
                        span,
                    }),
                });
                quote_spanned!(span=>
                    (&::cache_runtime::__private::Placeholder(&#root #(.#fields)*))
                        .render_into(&mut #var);
                )
            }
        });
    }
    let mutability = (!calls.is_empty()).then(|| quote!(mut));
    quote_spanned! {span=> {
        #[allow(unused_imports)]
        use #p::{RenderDirect as _, RenderDisplay as _};
        let #mutability #var = #p::Template::new(#escape);
        #(#calls)*
        #var.#finish
    }}
}

/// `::std::vec![tag, ..]` of rendered tags.
pub fn tags_vec(tags: &[TemplateArg]) -> TokenStream {
    if tags.is_empty() {
        return quote!(::std::vec::Vec::new());
    }
    let each = tags.iter().map(|t| template(t, quote!(tag())));
    quote!(::std::vec![#(#each),*])
}
