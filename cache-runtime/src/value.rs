//! The memory tier's values: of any type, checked by `TypeId`, and held inline
//! in the entry when they are small.
//!
//! A value of up to three words (`String`, `Vec<T>`, `u64`, most `Option`s)
//! lives in the entry itself instead of behind an `Arc`. A hit then reads the
//! `String`'s pointer and length from the line it already loaded for the key,
//! and goes straight to the bytes: in the hit bench, the `Arc`'s own cache line
//! was the most expensive load after the bytes (BENCHMARKS.md, run 7).
//! Larger values, and values that arrive already shared (decoded from the
//! remote tier), stay behind an `Arc`.

use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::mem::{align_of, size_of, MaybeUninit};
use std::sync::Arc;

/// A value shared between the memory tier, waiters of a load and refreshes.
pub(crate) type SharedValue = Arc<dyn Any + Send + Sync>;

/// A stored value of any type.
pub(crate) struct Value {
    /// Always the concrete type of the value in `repr`: set only by the
    /// constructors, from the value itself. The unchecked casts rely on it.
    type_id: TypeId,
    repr: Repr,
}

enum Repr {
    Inline(Inline),
    Shared(SharedValue),
}

/// Room for a value kept inline, in words (so aligned for any `V` whose
/// alignment is at most a word's).
const WORDS: usize = 3;

/// A value of some type `V` that fits in `data`, and `V`'s operations.
struct Inline {
    data: MaybeUninit<[usize; WORDS]>,
    ops: &'static Ops,
}

// SAFETY: an `Inline` is only made (in `Inline::new`) from a `V: Send + Sync`,
// and owns it; sending or sharing it sends or shares that `V`.
unsafe impl Send for Inline {}
// SAFETY: as above.
unsafe impl Sync for Inline {}

/// The operations of one inline type, on a pointer to its `data`.
struct Ops {
    clone: unsafe fn(*const ()) -> Inline,
    drop: unsafe fn(*mut ()),
    share: unsafe fn(*const ()) -> SharedValue,
    any: unsafe fn(*const ()) -> *const (dyn Any + Send + Sync),
}

struct OpsOf<V>(PhantomData<V>);

impl<V: Clone + Send + Sync + 'static> OpsOf<V> {
    const OPS: Ops = Ops {
        clone: clone_inline::<V>,
        drop: drop_inline::<V>,
        share: share_inline::<V>,
        any: any_inline::<V>,
    };
}

// SAFETY (the four below): called only through the `Ops` of the `V` that
// `Inline::new` wrote at `data`, with a pointer to that live `V`.
unsafe fn clone_inline<V: Clone + Send + Sync + 'static>(data: *const ()) -> Inline {
    // SAFETY: see above.
    let value = unsafe { &*data.cast::<V>() };
    Inline::new(value.clone()).unwrap_or_else(|_| unreachable!("V fitted before"))
}

unsafe fn drop_inline<V>(data: *mut ()) {
    // SAFETY: see above; `Inline::drop` calls this once.
    unsafe { std::ptr::drop_in_place(data.cast::<V>()) }
}

unsafe fn share_inline<V: Clone + Send + Sync + 'static>(data: *const ()) -> SharedValue {
    // SAFETY: see above.
    Arc::new(unsafe { &*data.cast::<V>() }.clone())
}

unsafe fn any_inline<V: Send + Sync + 'static>(data: *const ()) -> *const (dyn Any + Send + Sync) {
    data.cast::<V>() as *const (dyn Any + Send + Sync)
}

/// Whether a `V` can be kept inline.
const fn fits<V>() -> bool {
    size_of::<V>() <= size_of::<[usize; WORDS]>() && align_of::<V>() <= align_of::<usize>()
}

impl Inline {
    /// `value` inline, or back when it does not fit.
    #[inline]
    fn new<V: Clone + Send + Sync + 'static>(value: V) -> Result<Inline, V> {
        if !fits::<V>() {
            return Err(value);
        }
        let mut data = MaybeUninit::<[usize; WORDS]>::uninit();
        // SAFETY: `data` is large and aligned enough for a `V` (checked above).
        unsafe { data.as_mut_ptr().cast::<V>().write(value) };
        Ok(Inline {
            data,
            ops: &OpsOf::<V>::OPS,
        })
    }

    #[inline(always)]
    fn ptr(&self) -> *const () {
        self.data.as_ptr().cast()
    }
}

impl Drop for Inline {
    fn drop(&mut self) {
        // SAFETY: `data` holds the live value `ops` belongs to; dropped once.
        unsafe { (self.ops.drop)(self.data.as_mut_ptr().cast()) }
    }
}

impl Clone for Inline {
    fn clone(&self) -> Inline {
        // SAFETY: `data` holds the live value `ops` belongs to.
        unsafe { (self.ops.clone)(self.ptr()) }
    }
}

impl Clone for Value {
    fn clone(&self) -> Value {
        Value {
            type_id: self.type_id,
            repr: match &self.repr {
                Repr::Inline(inline) => Repr::Inline(inline.clone()),
                Repr::Shared(shared) => Repr::Shared(shared.clone()),
            },
        }
    }
}

impl Value {
    /// A value of a known type: inline when it fits.
    pub(crate) fn new<V: Clone + Send + Sync + 'static>(value: V) -> Value {
        let repr = match Inline::new(value) {
            Ok(inline) => Repr::Inline(inline),
            Err(value) => Repr::Shared(Arc::new(value)),
        };
        Value {
            type_id: TypeId::of::<V>(),
            repr,
        }
    }

    /// `value` inline when it fits, else `shared`, which holds the same value
    /// (a load's result, already shared with its waiters).
    pub(crate) fn new_or_shared<V: Clone + Send + Sync + 'static>(
        value: &V,
        shared: SharedValue,
    ) -> Value {
        if fits::<V>() {
            Value::new(value.clone())
        } else {
            Value::from_shared(shared)
        }
    }

    /// A value already shared.
    pub(crate) fn from_shared(shared: SharedValue) -> Value {
        Value {
            type_id: Any::type_id(&*shared),
            repr: Repr::Shared(shared),
        }
    }

    /// The value, if it is a `V`.
    #[inline(always)]
    pub(crate) fn downcast_ref<V: 'static>(&self) -> Option<&V> {
        if self.type_id != TypeId::of::<V>() {
            return None;
        }
        let ptr = match &self.repr {
            Repr::Inline(inline) => inline.ptr(),
            Repr::Shared(shared) => Arc::as_ptr(shared).cast(),
        };
        // SAFETY: `type_id` is the concrete type of the value at `ptr` (see the
        // field), and it is `V`'s, so `ptr` points to a live `V` owned by `self`.
        Some(unsafe { &*ptr.cast::<V>() })
    }

    /// The concrete type of the value.
    pub(crate) fn type_id(&self) -> TypeId {
        self.type_id
    }

    /// The value as shared: a reference count, or for an inline value a
    /// clone into a new `Arc` (off the hit path: fail-safe, joined loads).
    pub(crate) fn to_shared(&self) -> SharedValue {
        match &self.repr {
            // SAFETY: `data` holds the live value `ops` belongs to.
            Repr::Inline(inline) => unsafe { (inline.ops.share)(inline.ptr()) },
            Repr::Shared(shared) => shared.clone(),
        }
    }

    /// The value as `dyn Any` (for weighers).
    pub(crate) fn as_any(&self) -> &(dyn Any + Send + Sync) {
        match &self.repr {
            // SAFETY: `data` holds the live value `ops` belongs to, borrowed
            // for as long as `self`.
            Repr::Inline(inline) => unsafe { &*(inline.ops.any)(inline.ptr()) },
            Repr::Shared(shared) => &**shared,
        }
    }

    /// The value itself, if it is a `V`: moved out when nobody else holds
    /// it (inline, or the last reference to its `Arc`), else cloned.
    pub(crate) fn take<V: Clone + Send + Sync + 'static>(self) -> Result<V, Value> {
        if self.type_id != TypeId::of::<V>() {
            return Err(self);
        }
        match self.repr {
            Repr::Inline(inline) => {
                // Not dropped: the value is moved out below.
                let inline = std::mem::ManuallyDrop::new(inline);
                // SAFETY: `type_id` is `V`'s (checked above), so `data` holds
                // a live `V`; `ManuallyDrop` keeps `Inline::drop` from
                // dropping it again after this read moves it out.
                Ok(unsafe { inline.ptr().cast::<V>().read() })
            }
            Repr::Shared(shared) => match shared.downcast::<V>() {
                Ok(shared) => Ok(Arc::try_unwrap(shared).unwrap_or_else(|v| (*v).clone())),
                Err(shared) => Err(Value::from_shared(shared)),
            },
        }
    }

    #[cfg(test)]
    fn is_inline(&self) -> bool {
        matches!(self.repr, Repr::Inline(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn small_values_are_inline_and_large_ones_shared() {
        assert!(Value::new(String::from("v")).is_inline());
        assert!(Value::new(7u64).is_inline());
        assert!(Value::new(()).is_inline());
        assert!(Value::new(Some(vec![1u8])).is_inline());
        assert!(!Value::new([0u64; 4]).is_inline());
        assert!(!Value::new(0u128).is_inline(), "align 16 > a word");
        assert!(!Value::from_shared(Arc::new(1u8)).is_inline());
    }

    #[test]
    fn values_downcast_only_to_their_own_type() {
        for value in [
            Value::new(String::from("v")),
            Value::from_shared(Arc::new(String::from("v"))),
        ] {
            assert_eq!(
                value.downcast_ref::<String>().map(String::as_str),
                Some("v")
            );
            assert!(value.downcast_ref::<&str>().is_none());
            assert!(value.downcast_ref::<Arc<String>>().is_none());
            assert_eq!(value.type_id(), TypeId::of::<String>());
            assert_eq!(
                value
                    .to_shared()
                    .downcast_ref::<String>()
                    .map(String::as_str),
                Some("v")
            );
            assert!(value.as_any().downcast_ref::<String>().is_some());
            let copy = value.clone();
            drop(value);
            assert_eq!(copy.downcast_ref::<String>().map(String::as_str), Some("v"));
        }
        let big = Value::new([7u64; 4]);
        assert_eq!(big.downcast_ref::<[u64; 4]>(), Some(&[7u64; 4]));
    }

    /// Counts live instances, to prove inline values are cloned and dropped
    /// exactly once each.
    #[derive(Debug)]
    struct Counted(&'static AtomicUsize);

    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.0.fetch_add(1, Ordering::SeqCst);
            Counted(self.0)
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn inline_values_are_dropped_once_per_clone() {
        static LIVE: AtomicUsize = AtomicUsize::new(0);
        LIVE.fetch_add(1, Ordering::SeqCst);
        let value = Value::new(Counted(&LIVE));
        assert!(value.is_inline());
        let copies: Vec<Value> = (0..5).map(|_| value.clone()).collect();
        let shared = value.to_shared();
        assert_eq!(LIVE.load(Ordering::SeqCst), 7);
        drop(copies);
        drop(value);
        assert_eq!(LIVE.load(Ordering::SeqCst), 1);
        drop(shared);
        assert_eq!(LIVE.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn taking_moves_a_value_out_once_and_checks_its_type() {
        static LIVE: AtomicUsize = AtomicUsize::new(0);
        LIVE.fetch_add(1, Ordering::SeqCst);
        let value = Value::new(Counted(&LIVE));
        let copy = value.clone();
        let Ok(taken) = value.take::<Counted>() else {
            panic!("a Counted")
        };
        assert_eq!(LIVE.load(Ordering::SeqCst), 2, "moved out, not cloned");
        drop(taken);
        assert_eq!(LIVE.load(Ordering::SeqCst), 1);
        let Err(copy) = copy.take::<String>() else {
            panic!("not a String")
        };
        assert_eq!(LIVE.load(Ordering::SeqCst), 1, "given back whole");
        drop(copy);
        assert_eq!(LIVE.load(Ordering::SeqCst), 0);

        let shared = Value::from_shared(Arc::new(String::from("v")));
        let other = shared.clone();
        assert_eq!(shared.take::<String>().ok().as_deref(), Some("v"), "cloned");
        assert_eq!(other.take::<String>().ok().as_deref(), Some("v"), "moved");
        assert!(Value::new(1u8).take::<u16>().is_err());
    }
}
