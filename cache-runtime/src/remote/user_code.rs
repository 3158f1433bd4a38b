//! The stored type's `Serialize` and `Deserialize` are the user's code, run
//! by the cache on the caller's behalf: on bytes read back from the store
//! (untrusted input: an entry written by another build, or by hand) and on a
//! value being written. A panic in them is contained here and becomes an
//! error the caller never sees: a read is then a miss (counted as a corrupt
//! entry), a write skips the store and the caller keeps its value.
//!
//! `catch_unwind` costs nothing on the path where nothing panics (no
//! allocation, no extra call through a pointer once inlined).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `user` (a serde call on the stored type); `Err` with the panic's
/// message when it panicked.
///
/// `AssertUnwindSafe`: what `user` touches is either dropped on the way out
/// (a partial decode, a half-written buffer) or the user's own value, which
/// its `Serialize` only reads.
#[inline(always)]
pub(crate) fn contain<T>(user: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(user)).map_err(|panic| message(&*panic))
}

/// The text of a panic's payload (`panic!`'s `&str` or `String`).
#[cold]
fn message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(contain(|| 7), Ok(7));
        assert_eq!(
            contain(|| -> u8 { panic!("no {}", 1) }),
            Err("no 1".to_owned())
        );
        assert_eq!(
            contain(|| -> u8 { panic!("static") }),
            Err("static".to_owned())
        );
        assert_eq!(
            contain(|| -> u8 { std::panic::panic_any(5u32) }),
            Err("a panic without a message".to_owned())
        );
    }
}
