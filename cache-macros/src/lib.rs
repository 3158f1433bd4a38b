//! Procedural macros behind `cache-runtime`: [`macro@cached`] and
//! [`macro@invalidate`]. Use them through `cache_runtime`, which re-exports
//! them; the code they generate calls `::cache_runtime::__private`.

mod args;
mod codegen;
mod duration;
mod errors;
mod expand_cached;
mod expand_invalidate;
mod item;
mod rename_self;
mod signature;
mod template;
mod validate;

use proc_macro::TokenStream;

/// Caches the result of an `async fn`.
///
/// ```
/// use cache_runtime::cached;
/// # #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// # struct User { id: u64 }
/// # #[derive(Debug)]
/// # struct DbError;
/// # mod db {
/// #     pub async fn load_user(id: u64) -> Result<super::User, super::DbError> { Ok(super::User { id }) }
/// # }
///
/// #[cached(ttl = "10m", key = "user:{id}", tags = ["user:{id}"])]
/// async fn get_user(id: u64) -> Result<User, DbError> {
///     db::load_user(id).await
/// }
///
/// #[derive(Clone)]
/// struct Repo { table: String }
///
/// impl Repo {
///     // Serves a stale value for up to a minute past the TTL while one
///     // background refresh runs (needs `Repo: Clone`).
///     #[cached(ttl = "30s", stale = "1m")]
///     async fn count(&self, kind: &str) -> u64 {
///         (self.table.len() + kind.len()) as u64
///     }
/// }
/// # #[tokio::main]
/// # async fn main() {
/// assert_eq!(get_user(7).await.unwrap().id, 7);
/// let repo = Repo { table: "users".into() };
/// assert_eq!(repo.count("admin").await, 10);
/// # }
/// ```
///
/// All arguments are optional and given at most once:
///
/// | argument | example | meaning |
/// |---|---|---|
/// | `ttl` | `ttl = "10m"` | how long a value is fresh |
/// | `stale` | `stale = "1m"` | serve the old value this long past the TTL while refreshing in the background |
/// | `fail_safe` | `fail_safe = "1h"` | serve the old value this long when a reload fails |
/// | `refresh_ahead` | `refresh_ahead = 1.0` | refresh early, probabilistically (XFetch beta in (0, 100]; outside it, a compile error) |
/// | `key` | `key = "user:{id}"` | the key as a template of parameters and their fields (`{p.f}`, `{self.id}`) |
/// | `tags` | `tags = ["user:{id}"]` | tags to invalidate the value by, as templates |
/// | `skip` | `skip(conn)` | parameters left out of the default key |
/// | `cache` | `cache = self.cache` | the cache to use (`Cache`, `&Cache`, `Arc<Cache>`, ..); default: the global one |
/// | `lock` | `lock = "local"` | stampede protection: `"local"`, `"distributed"` or `"none"` |
/// | `cache_none` | `cache_none = false` | for `Option` and `Result<Option<T>, E>` returns: whether `None` (`Ok(None)`) is stored (default `true`) |
/// | `profile` | `profile = "users"` | a named policy registered on the cache |
/// | `name` | `name = "users::get"` | the function's identity in keys and metrics (default `module::fn`) |
/// | `version` | `version = 2` | bump to ignore values stored by older code |
///
/// Durations are a whole number and a unit (`ms`, `s`, `m`, `h`, `d`) without
/// spaces, or an integer literal of seconds.
///
/// Without `key`, the key is a hash of every parameter (they must implement
/// `serde::Serialize`), the type parameters and, in methods, the `Self` type;
/// `self` itself is not part of it. Template values must implement `Display`.
///
/// The return type decides what is stored: for `Result<T, E>` only `Ok`, for
/// `Option<T>` `Some` and (unless `cache_none = false`) `None`, for
/// `Result<Option<T>, E>` `Ok(Some(_))` and (unless `cache_none = false`)
/// `Ok(None)`, otherwise the value. `?` and `return` in the body work as usual.
///
/// `stale` and `refresh_ahead` (and `profile`, when possible) rerun the body in
/// the background after the caller returned, on owned copies of the arguments:
/// parameters must then be by value or `&T` with `T: Clone`/`ToOwned`, with no
/// `&mut` and no borrowed types, and `&self` methods need `Self: Clone`.
///
/// # Cancel safety
///
/// The generated function's future may be dropped at any await (a request
/// timeout, a client that hung up) and leaves nothing stuck: a caller that
/// waited for another's load leaves it alone; the caller that runs the body
/// drops it, and the key goes to the next caller (no waiter hangs); a
/// distributed lock it held is released in the background, and a breaker
/// probe it carried is replaced after the breaker's open period. A value it
/// was storing may or may not have reached the remote tier; nothing stale is
/// left in memory.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_cached::expand(args.into(), item.into()).into()
}

/// Invalidates tags after an `async fn` succeeds (for `Result`, when it
/// returns `Ok`).
///
/// ```
/// use cache_runtime::invalidate;
/// # #[derive(Debug)]
/// # struct DbError;
/// # mod db {
/// #     pub async fn rename(_id: u64, _name: &str) -> Result<(), super::DbError> { Ok(()) }
/// # }
///
/// #[invalidate(tags = ["user:{id}"])]
/// async fn rename_user(id: u64, name: String) -> Result<(), DbError> {
///     db::rename(id, &name).await
/// }
/// # #[tokio::main]
/// # async fn main() {
/// rename_user(7, "ada".into()).await.unwrap();
/// # }
/// ```
///
/// Arguments: `tags` (required), templates of the parameters like in
/// [`macro@cached`], rendered before the body runs; `cache = EXPR` (optional),
/// the cache to invalidate in, by default the global one.
///
/// # Cancel safety
///
/// Dropped before the body returned, nothing is invalidated (the body did
/// not finish). Once it returned a success, the invalidation starts in the
/// same poll and is applied everywhere however the future is dropped after:
/// see `Cache::invalidate_tags`.
#[proc_macro_attribute]
pub fn invalidate(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_invalidate::expand(args.into(), item.into()).into()
}
