//! Checks that `#[cached]` emits at the span of the user's mistake, so a
//! mistake is one error that says how to fix it, not several that name the
//! internals of the generated code.
//!
//! The return type: `Probe::<M, R>::new().mode()` resolves to the inherent
//! method when `M: ReturnKind<R>` (the value can be stored), else to
//! [`NotStorable::mode`], whose bound [`Cacheable`] nothing user-visible
//! implements: one error, with `Cacheable`'s message. That fallback yields
//! the mode [`Unstorable`], which fits every return type, so the rest of the
//! generated code (`hit_in`, `begin_in`, `spawn_in`) adds no error of its own.

use std::future::Future;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::flow::{begin, hit, Begun, Refresher};
use crate::key::Key;
use crate::outcome::ReturnKind;
use crate::Cache;

use super::Site;

/// The return kind `M` chosen for a function; only built by [`Probe`].
pub struct Mode<M>(PhantomData<fn() -> M>);

/// Asks whether return type `R` can be cached with kind `M`.
pub struct Probe<M, R>(PhantomData<fn() -> (M, R)>);

impl<M, R> Probe<M, R> {
    /// A probe; call `.mode()` on it.
    // Only generated code builds one, always by this name.
    #[allow(clippy::new_without_default)]
    #[inline(always)]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<M: ReturnKind<R>, R> Probe<M, R> {
    /// The kind, when `R` can be cached with it (preferred over
    /// [`NotStorable::mode`] by method resolution).
    #[inline(always)]
    pub fn mode(&self) -> Mode<M> {
        Mode(PhantomData)
    }
}

/// The fallback of `Probe::mode` when the return type cannot be stored.
pub trait NotStorable<R> {
    /// Fails to compile with [`Cacheable`]'s message.
    #[inline(always)]
    fn mode(&self) -> Mode<Unstorable>
    where
        R: Cacheable,
    {
        Mode(PhantomData)
    }
}

impl<M, R> NotStorable<R> for Probe<M, R> {}

/// Never implemented for a return type: the bound that reports a value that
/// cannot be stored.
#[diagnostic::on_unimplemented(
    message = "the return type `{Self}` cannot be cached: the stored value (the `T` of `Result<T, E>`, `Option<T>` or `Result<Option<T>, E>`, else the whole type) must be `Clone + Serialize + DeserializeOwned + Send + Sync + 'static`",
    label = "the stored value is not `Clone + Serialize + DeserializeOwned + Send + Sync + 'static`",
    note = "derive `Clone`, `serde::Serialize` and `serde::Deserialize` for the stored type (owned fields only, no references)"
)]
pub trait Cacheable {}

// One implementation, so the error does not suggest adding one.
#[diagnostic::do_not_recommend]
impl Cacheable for Unstorable {}

/// The kind given to a return type that cannot be stored, once its error is
/// reported: it fits every type, so no further error follows. No value of it
/// exists, and no code using it is ever run (the crate does not compile).
#[derive(Debug, Clone, Copy)]
pub enum Unstorable {}

impl Serialize for Unstorable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        match *self {}
    }
}

impl<'de> Deserialize<'de> for Unstorable {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("no value of this type exists"))
    }
}

impl<R> ReturnKind<R> for Unstorable {
    type Value = Unstorable;
    fn split(r: R) -> Result<Unstorable, R> {
        Err(r)
    }
    fn join(v: Unstorable) -> R {
        match v {}
    }
}

/// [`hit`] with the kind from a [`Mode`].
#[inline(always)]
pub fn hit_in<M: ReturnKind<R>, R>(
    _: &Mode<M>,
    cache: &Cache,
    site: &'static Site,
    key: &Key,
) -> Option<R> {
    hit::<M, R>(cache, site, key)
}

/// [`begin`] with the kind from a [`Mode`].
#[inline(always)]
pub fn begin_in<'a, M, R, T>(
    _: &Mode<M>,
    cache: &'a Cache,
    site: &'static Site,
    key: Key,
    tags: T,
) -> Begun<'a, M, R>
where
    M: ReturnKind<R>,
    T: FnOnce() -> Vec<String>,
{
    begin::<M, R, T>(cache, site, key, tags)
}

/// [`Refresher::spawn`] with the kind from a [`Mode`].
#[inline]
pub fn spawn_in<M, R, F>(_: &Mode<M>, refresher: Refresher, load: F)
where
    M: ReturnKind<R> + 'static,
    F: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    refresher.spawn::<M, R, F>(load);
}

/// What `cache = EXPR` may evaluate to: a [`Cache`], or a reference or
/// smart pointer to one.
#[diagnostic::on_unimplemented(
    message = "`cache = ..` takes a `Cache`, not `{Self}`",
    label = "not a `Cache`, `&Cache` or `Arc<Cache>`",
    note = "give the cache itself: `cache = state.cache` (a `Cache`, `&Cache`, `Arc<Cache>`, `Box<Cache>` or `Rc<Cache>`)"
)]
pub trait AsCache {
    /// The cache.
    fn as_cache(&self) -> &Cache;
}

impl AsCache for Cache {
    #[inline]
    fn as_cache(&self) -> &Cache {
        self
    }
}

impl<T: AsCache + ?Sized> AsCache for &T {
    #[inline]
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}

impl<T: AsCache + ?Sized> AsCache for &mut T {
    #[inline]
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}

impl<T: AsCache + ?Sized> AsCache for std::sync::Arc<T> {
    #[inline]
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}

impl<T: AsCache + ?Sized> AsCache for std::rc::Rc<T> {
    #[inline]
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}

impl<T: AsCache + ?Sized> AsCache for Box<T> {
    #[inline]
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}
