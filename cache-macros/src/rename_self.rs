//! Renames `self` to `__self` in a function body, so the body can run inside an
//! `async move` block where the receiver is an owned copy bound as `__self`
//! (`self` itself cannot be rebound). `Self` is left alone.
//!
//! Expressions are renamed through the syntax tree; macro invocations, whose
//! arguments are plain tokens, are renamed token by token, recursing into
//! groups. Paths such as `self::module::item` keep their `self`, and nested
//! items (`fn`, `impl`, ..) are not entered since their `self` is their own.

use proc_macro2::{Group, Ident, TokenStream, TokenTree};
use syn::visit_mut::VisitMut;
use syn::{Block, ExprPath, Item, Macro};

/// The name the receiver is bound to inside the refresh future.
pub const RENAMED: &str = "__self";

/// Renames `self` in `block`.
pub fn rename_block(block: &mut Block) {
    Renamer.visit_block_mut(block);
}

struct Renamer;

impl VisitMut for Renamer {
    fn visit_expr_path_mut(&mut self, expr: &mut ExprPath) {
        let path = &mut expr.path;
        if expr.qself.is_none() && path.leading_colon.is_none() && path.segments.len() == 1 {
            if let Some(only) = path.segments.first_mut() {
                if only.ident == "self" {
                    only.ident = Ident::new(RENAMED, only.ident.span());
                    return;
                }
            }
        }
        syn::visit_mut::visit_expr_path_mut(self, expr);
    }

    fn visit_item_mut(&mut self, item: &mut Item) {
        // `macro_rules!` and item-like macro calls (`select! {..}`) may use `self`.
        if let Item::Macro(m) = item {
            self.visit_macro_mut(&mut m.mac);
        }
    }

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        mac.tokens = rename_tokens(std::mem::take(&mut mac.tokens));
    }
}

/// Renames `self` tokens in `tokens`, recursing into groups; `self::` paths stay.
pub fn rename_tokens(tokens: TokenStream) -> TokenStream {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    for (i, tree) in trees.iter().enumerate() {
        out.push(match tree {
            TokenTree::Ident(ident) if ident == "self" && !starts_path(&trees[i + 1..]) => {
                TokenTree::Ident(Ident::new(RENAMED, ident.span()))
            }
            TokenTree::Group(group) => {
                let mut renamed = Group::new(group.delimiter(), rename_tokens(group.stream()));
                renamed.set_span(group.span());
                TokenTree::Group(renamed)
            }
            other => other.clone(),
        });
    }
    out.into_iter().collect()
}

/// Whether `rest` starts with `::`.
fn starts_path(rest: &[TokenTree]) -> bool {
    matches!(
        rest,
        [TokenTree::Punct(a), TokenTree::Punct(b), ..] if a.as_char() == ':' && b.as_char() == ':'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::{quote, ToTokens};

    fn renamed(block: TokenStream) -> String {
        let mut block: Block = syn::parse2(block).expect("block parses");
        rename_block(&mut block);
        block.to_token_stream().to_string()
    }

    /// Printed like `renamed` prints, for comparison.
    fn printed(block: TokenStream) -> String {
        let block: Block = syn::parse2(block).expect("block parses");
        block.to_token_stream().to_string()
    }

    #[test]
    fn expressions() {
        let out = renamed(quote!({
            let x = self.id + self.get(self::helper()) + Self::C;
            (|| self.x)()
        }));
        assert_eq!(
            out,
            printed(quote!({
                let x = __self.id + __self.get(self::helper()) + Self::C;
                (|| __self.x)()
            }))
        );
    }

    #[test]
    fn macros_recurse_into_groups() {
        let out = renamed(quote!({
            println!("{}", (self.a, [self.b]));
            macro_rules! m {
                () => {
                    self.c
                };
            }
            vec![self::X, self]
        }));
        assert_eq!(
            out,
            printed(quote!({
                println!("{}", (__self.a, [__self.b]));
                macro_rules! m {
                    () => {
                        __self.c
                    };
                }
                vec![self::X, __self]
            }))
        );
    }

    #[test]
    fn nested_items_are_left_alone() {
        let src = quote!({
            struct S;
            impl S {
                fn f(&self) -> &Self {
                    self
                }
            }
            fn g() {}
        });
        assert_eq!(renamed(src.clone()), printed(src));
    }
}
