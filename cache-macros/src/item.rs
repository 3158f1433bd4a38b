//! Reads the item an attribute is on: a function with a body.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Error, ItemFn, TraitItemFn};

/// The function, or the tokens to emit instead: an error and the item unchanged.
pub fn parse(item: TokenStream, attr: &str) -> Result<ItemFn, TokenStream> {
    match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => Ok(func),
        Err(_) => {
            let error = match syn::parse2::<TraitItemFn>(item.clone()) {
                Ok(decl) if decl.default.is_none() => Error::new_spanned(
                    &decl.sig,
                    format!("#[{attr}] needs a function body; put it on the method in the `impl` block instead"),
                ),
                _ => Error::new(
                    Span::call_site(),
                    format!("#[{attr}] goes on an `async fn`; move it onto a function"),
                ),
            };
            let error = error.to_compile_error();
            Err(quote!(#error #item))
        }
    }
}

/// Parses the item, then expands it with `rewrite`; on error, the errors
/// followed by the function unchanged (so its callers report nothing more).
pub fn expand_with(
    item: TokenStream,
    macro_name: &str,
    rewrite: impl FnOnce(&ItemFn) -> syn::Result<TokenStream>,
) -> TokenStream {
    let func = match parse(item, macro_name) {
        Ok(func) => func,
        Err(error) => return error,
    };
    match rewrite(&func) {
        Ok(tokens) => tokens,
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #func)
        }
    }
}
