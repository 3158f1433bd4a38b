//! Owned copies of a function's arguments for background refreshes, which run
//! after the caller has its answer and so cannot borrow from it.

use std::borrow::Borrow;

/// An argument that can be copied into a background refresh.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be copied into the background refresh of a #[cached] function",
    label = "`stale`, `refresh_ahead` and `profile` re-run the function after the caller returned, with owned copies of its arguments",
    note = "implement `Clone` for it (or `ToOwned` for a borrowed type), make it `Send + Sync + 'static`, or remove `stale`/`refresh_ahead`/`profile`"
)]
pub trait OwnedArg {
    /// The owned copy.
    type Owned: Borrow<Self> + Send + Sync + 'static;
    /// Makes the copy.
    fn owned_arg(&self) -> Self::Owned;
}

impl<T: ToOwned + ?Sized> OwnedArg for T
where
    T::Owned: Send + Sync + 'static,
{
    type Owned = T::Owned;
    #[inline]
    fn owned_arg(&self) -> T::Owned {
        self.to_owned()
    }
}

/// An owned copy of an argument (`&str` → `String`, `&T` → `T`).
#[inline]
pub fn owned_arg<T: OwnedArg + ?Sized>(value: &T) -> T::Owned {
    value.owned_arg()
}
