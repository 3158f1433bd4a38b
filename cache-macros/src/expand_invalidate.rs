//! `#[invalidate]`: runs the function, then invalidates the rendered tags if
//! it succeeded (see `SPEC.md`, "`#[invalidate(tags = [...], cache = EXPR)]`").

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ItemFn;

use crate::args::{self, InvalidateArgs};
use crate::codegen::{self, local, private};
use crate::errors::Errors;
use crate::item;
use crate::signature::{self, Analysed};
use crate::validate::{self, Target};

/// The whole expansion: the rewritten function, or the errors followed by the
/// function unchanged.
pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    item::expand_with(item, "invalidate", |func| rewrite(args, func))
}

fn rewrite(args: TokenStream, func: &ItemFn) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let args = errors.ok(args::parse_invalidate(args));
    errors.ok(signature::check_async(&func.sig, "invalidate"));
    let sig = errors.ok(signature::analyse(&func.sig));
    if let (Some(args), Some(sig)) = (&args, &sig) {
        let target = Target {
            name: &func.sig.ident,
            sig,
        };
        validate::check_tags(&args.tags, &target, &mut errors);
    }
    errors.finish()?;
    let (Some(args), Some(sig)) = (args, sig) else {
        return Err(syn::Error::new(
            Span::call_site(),
            "invalid #[invalidate] use",
        ));
    };
    Ok(generate(&args, &sig, func))
}

fn generate(args: &InvalidateArgs, sig: &Analysed, func: &ItemFn) -> TokenStream {
    let p = private();
    let tags = codegen::tags_vec(&args.tags);
    let cache_binding = codegen::cache_binding(args.cache.as_ref(), false);
    let mode = codegen::mode(sig.ret_kind);
    let ret = &sig.ret;
    let (tags_var, cache, r) = (local("__tags"), local("__cache"), local("__r"));
    let block = &func.block;
    let attrs = &func.attrs;
    let vis = &func.vis;
    let fn_sig = &func.sig;
    quote! {
        #(#attrs)* #vis #fn_sig {
            let #tags_var: ::std::vec::Vec<::std::string::String> = #tags;
            #cache_binding
            let #r: #ret = #p::output::<#ret, _>(async move #block).await;
            #p::invalidate_after::<#mode, #ret>(#cache, &#r, #tags_var).await;
            #r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_the_body() {
        let out = expand(
            quote!(tags = ["user:{id}"], cache = c),
            quote!(
                async fn f(c: Cache, id: u64) -> Result<(), E> {
                    Ok(())
                }
            ),
        )
        .to_string();
        assert!(!out.contains("compile_error"), "{out}");
        assert!(out.contains("invalidate_after :: < :: cache_runtime :: __private :: AsResult"));
        assert!(
            out.contains("__private :: Placeholder (& id)) . render_into (& mut __t)"),
            "{out}"
        );
    }

    #[test]
    fn errors_keep_the_function() {
        let out = expand(
            quote!(),
            quote!(
                async fn f(id: u64) {}
            ),
        )
        .to_string();
        assert!(out.contains("needs the tags"), "{out}");
        assert!(out.contains("async fn f (id : u64) { }"), "{out}");
        let out = expand(
            quote!(tags = ["{x}"]),
            quote!(
                fn f(id: u64) {}
            ),
        )
        .to_string();
        assert!(out.contains("names no parameter"), "{out}");
        assert!(out.contains("needs an `async fn`"), "{out}");
    }
}
