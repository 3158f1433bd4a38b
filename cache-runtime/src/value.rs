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
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};
use std::sync::Arc;

/// A value shared between the memory tier, waiters of a load and refreshes.
pub(crate) type SharedValue = Arc<dyn Any + Send + Sync>;

/// A stored value of any type: up to three words of data and the operations
/// of what they hold, four words in all. The value's type is known through
/// `ops` (no `TypeId` kept beside it: 16 bytes of every memory entry, about a
/// tenth of one at 1,000,000 entries; BENCHMARKS.md, issue 18).
pub(crate) struct Value {
    /// What `ops` says: a `V` itself, an `Arc<V>` or a [`SharedValue`].
    data: MaybeUninit<[usize; WORDS]>,
    /// Set only by the constructors, from the value itself: the unchecked
    /// casts rely on it.
    ops: &'static Ops,
}

/// Room for a value kept inline, in words (so aligned for any `V` whose
/// alignment is at most a word's).
const WORDS: usize = 3;

/// What `data` holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The value itself (a `V` that fits).
    Inline,
    /// An `Arc<V>` (a `V` too large to hold inline).
    Arc,
    /// A [`SharedValue`] of a type only known at run time.
    Dyn,
}

/// The operations of one kind of value, on a pointer to its `data`.
struct Ops {
    kind: Kind,
    /// The value's type (not called for `Kind::Dyn`, which asks the value).
    /// A function: `TypeId::of` is not `const` at this crate's MSRV.
    type_id: fn() -> TypeId,
    /// Clones the held data from the first pointer into the second.
    clone: unsafe fn(*const (), *mut ()),
    drop: unsafe fn(*mut ()),
    share: unsafe fn(*const ()) -> SharedValue,
    any: unsafe fn(*const ()) -> *const (dyn Any + Send + Sync),
}

fn type_id_of<V: 'static>() -> TypeId {
    TypeId::of::<V>()
}

struct InlineOps<V>(PhantomData<V>);

impl<V: Clone + Send + Sync + 'static> InlineOps<V> {
    const OPS: Ops = Ops {
        kind: Kind::Inline,
        type_id: type_id_of::<V>,
        clone: clone_held::<V>,
        drop: drop_held::<V>,
        share: share_inline::<V>,
        any: any_inline::<V>,
    };
}

struct ArcOps<V>(PhantomData<V>);

impl<V: Send + Sync + 'static> ArcOps<V> {
    const OPS: Ops = Ops {
        kind: Kind::Arc,
        type_id: type_id_of::<V>,
        clone: clone_held::<Arc<V>>,
        drop: drop_held::<Arc<V>>,
        share: share_arc::<V>,
        any: any_arc::<V>,
    };
}

/// The operations of a [`SharedValue`]. A static: one address.
static DYN_OPS: Ops = Ops {
    kind: Kind::Dyn,
    type_id: type_id_of::<DynMarker>,
    clone: clone_held::<SharedValue>,
    drop: drop_held::<SharedValue>,
    share: share_dyn,
    any: any_dyn,
};

/// The type `DYN_OPS` names, which no value has.
struct DynMarker;

// SAFETY (the functions below): called only through the `Ops` that the
// constructors stored beside the data, with a pointer to that live data
// (a `T` for the `*_held::<T>` ones).
unsafe fn clone_held<T: Clone>(from: *const (), to: *mut ()) {
    // SAFETY: see above; `to` is room for a `T` (it fitted before).
    unsafe { to.cast::<T>().write((*from.cast::<T>()).clone()) }
}

unsafe fn drop_held<T>(data: *mut ()) {
    // SAFETY: see above; `Value::drop` calls this once.
    unsafe { std::ptr::drop_in_place(data.cast::<T>()) }
}

unsafe fn share_inline<V: Clone + Send + Sync + 'static>(data: *const ()) -> SharedValue {
    // SAFETY: see above.
    Arc::new(unsafe { &*data.cast::<V>() }.clone())
}

unsafe fn any_inline<V: Send + Sync + 'static>(data: *const ()) -> *const (dyn Any + Send + Sync) {
    data.cast::<V>() as *const (dyn Any + Send + Sync)
}

unsafe fn share_arc<V: Send + Sync + 'static>(data: *const ()) -> SharedValue {
    // SAFETY: see above.
    unsafe { &*data.cast::<Arc<V>>() }.clone()
}

unsafe fn any_arc<V: Send + Sync + 'static>(data: *const ()) -> *const (dyn Any + Send + Sync) {
    // SAFETY: see above.
    Arc::as_ptr(unsafe { &*data.cast::<Arc<V>>() }) as *const (dyn Any + Send + Sync)
}

unsafe fn share_dyn(data: *const ()) -> SharedValue {
    // SAFETY: see above.
    unsafe { &*data.cast::<SharedValue>() }.clone()
}

unsafe fn any_dyn(data: *const ()) -> *const (dyn Any + Send + Sync) {
    // SAFETY: see above.
    Arc::as_ptr(unsafe { &*data.cast::<SharedValue>() })
}

/// Whether a `T` can be kept in `data`.
const fn fits<T>() -> bool {
    size_of::<T>() <= size_of::<[usize; WORDS]>() && align_of::<T>() <= align_of::<usize>()
}

// SAFETY: a `Value` is only made (by its constructors) from a `V: Send +
// Sync`, an `Arc` of one, or a `SharedValue`, and owns it; sending or sharing
// the `Value` sends or shares that.
unsafe impl Send for Value {}
// SAFETY: as above.
unsafe impl Sync for Value {}

impl Drop for Value {
    fn drop(&mut self) {
        // SAFETY: `data` holds the live data `ops` belongs to; dropped once.
        unsafe { (self.ops.drop)(self.data.as_mut_ptr().cast()) }
    }
}

impl Clone for Value {
    fn clone(&self) -> Value {
        let mut data = MaybeUninit::<[usize; WORDS]>::uninit();
        // SAFETY: `self.data` holds the live data `ops` belongs to, and
        // `data` has the same room.
        unsafe { (self.ops.clone)(self.ptr(), data.as_mut_ptr().cast()) };
        Value {
            data,
            ops: self.ops,
        }
    }
}

impl Value {
    /// `held` in `data`, with its operations.
    #[inline]
    fn holding<T>(held: T, ops: &'static Ops) -> Value {
        const { assert!(fits::<T>()) };
        let mut data = MaybeUninit::<[usize; WORDS]>::uninit();
        // SAFETY: `data` is large and aligned enough for a `T` (asserted).
        unsafe { data.as_mut_ptr().cast::<T>().write(held) };
        Value { data, ops }
    }

    #[inline(always)]
    fn ptr(&self) -> *const () {
        self.data.as_ptr().cast()
    }

    /// A value of a known type: inline when it fits, else in an `Arc`.
    pub(crate) fn new<V: Clone + Send + Sync + 'static>(value: V) -> Value {
        if fits::<V>() {
            let mut data = MaybeUninit::<[usize; WORDS]>::uninit();
            // SAFETY: `data` is large and aligned enough for a `V` (checked).
            unsafe { data.as_mut_ptr().cast::<V>().write(value) };
            Value {
                data,
                ops: &InlineOps::<V>::OPS,
            }
        } else {
            Value::holding(Arc::new(value), &ArcOps::<V>::OPS)
        }
    }

    /// `value` inline when it fits, else `shared`, which holds the same value
    /// (a load's result, already shared with its waiters).
    pub(crate) fn new_or_shared<V: Clone + Send + Sync + 'static>(
        value: &V,
        shared: SharedValue,
    ) -> Value {
        if fits::<V>() {
            return Value::new(value.clone());
        }
        match shared.downcast::<V>() {
            Ok(typed) => Value::holding(typed, &ArcOps::<V>::OPS),
            Err(shared) => Value::from_shared(shared),
        }
    }

    /// A value already shared.
    pub(crate) fn from_shared(shared: SharedValue) -> Value {
        Value::holding(shared, &DYN_OPS)
    }

    /// The value, if it is a `V`.
    #[inline(always)]
    pub(crate) fn downcast_ref<V: 'static>(&self) -> Option<&V> {
        if self.ops.kind == Kind::Inline {
            if (self.ops.type_id)() != TypeId::of::<V>() {
                return None;
            }
            // SAFETY: inline operations whose type is `V`'s are only stored
            // (by `new`) beside a live `V` in `data`.
            return Some(unsafe { &*self.ptr().cast::<V>() });
        }
        self.downcast_shared()
    }

    /// [`downcast_ref`](Self::downcast_ref) of a value behind an `Arc`.
    #[inline(never)]
    fn downcast_shared<V: 'static>(&self) -> Option<&V> {
        match self.ops.kind {
            Kind::Dyn => {
                // SAFETY: `DYN_OPS` is only stored beside a `SharedValue`.
                let shared = unsafe { &*self.ptr().cast::<SharedValue>() };
                (**shared).downcast_ref::<V>()
            }
            _ if (self.ops.type_id)() != TypeId::of::<V>() => None,
            // SAFETY: `V`'s `Arc` operations (its type id is `V`'s) are only
            // stored beside an `Arc<V>`.
            Kind::Arc => Some(unsafe { &**self.ptr().cast::<Arc<V>>() }),
            // SAFETY: as in `downcast_ref`.
            Kind::Inline => Some(unsafe { &*self.ptr().cast::<V>() }),
        }
    }

    /// The concrete type of the value.
    pub(crate) fn type_id(&self) -> TypeId {
        match self.ops.kind {
            Kind::Dyn => {
                // SAFETY: `DYN_OPS` is only stored beside a `SharedValue`.
                let shared = unsafe { &*self.ptr().cast::<SharedValue>() };
                Any::type_id(&**shared)
            }
            _ => (self.ops.type_id)(),
        }
    }

    /// The value as shared: a reference count, or for an inline value a
    /// clone into a new `Arc` (off the hit path: fail-safe, joined loads).
    pub(crate) fn to_shared(&self) -> SharedValue {
        // SAFETY: `data` holds the live data `ops` belongs to.
        unsafe { (self.ops.share)(self.ptr()) }
    }

    /// The value as `dyn Any` (for weighers).
    pub(crate) fn as_any(&self) -> &(dyn Any + Send + Sync) {
        // SAFETY: `data` holds the live data `ops` belongs to, borrowed for
        // as long as `self`.
        unsafe { &*(self.ops.any)(self.ptr()) }
    }

    /// The value itself, if it is a `V`: moved out when nobody else holds
    /// it (inline, or the last reference to its `Arc`), else cloned.
    pub(crate) fn take<V: Clone + Send + Sync + 'static>(self) -> Result<V, Value> {
        if self.type_id() != TypeId::of::<V>() {
            return Err(self);
        }
        // Not dropped: what it holds is moved out below.
        let this = ManuallyDrop::new(self);
        match this.ops.kind {
            // SAFETY: the type is `V`'s (checked above), so `data` holds a
            // live `V`; `ManuallyDrop` keeps `Value::drop` from dropping it
            // again after this read moves it out.
            Kind::Inline => Ok(unsafe { this.ptr().cast::<V>().read() }),
            Kind::Arc => {
                // SAFETY: as above, an `Arc<V>`, moved out once.
                let arc = unsafe { this.ptr().cast::<Arc<V>>().read() };
                Ok(Arc::try_unwrap(arc).unwrap_or_else(|v| (*v).clone()))
            }
            Kind::Dyn => {
                // SAFETY: as above, a `SharedValue`, moved out once.
                let shared = unsafe { this.ptr().cast::<SharedValue>().read() };
                match shared.downcast::<V>() {
                    Ok(arc) => Ok(Arc::try_unwrap(arc).unwrap_or_else(|v| (*v).clone())),
                    Err(shared) => Err(Value::from_shared(shared)),
                }
            }
        }
    }

    #[cfg(test)]
    fn is_inline(&self) -> bool {
        self.ops.kind == Kind::Inline
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
        assert_eq!(std::mem::size_of::<Value>(), 32, "no TypeId beside it");
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
        assert!(big.downcast_ref::<[u64; 3]>().is_none());
        assert_eq!(big.type_id(), TypeId::of::<[u64; 4]>());
        // A load's shared result, typed when the type is known.
        let shared: SharedValue = Arc::new([8u64; 4]);
        for value in [
            Value::new_or_shared(&[8u64; 4], shared.clone()),
            Value::from_shared(shared),
        ] {
            assert_eq!(value.downcast_ref::<[u64; 4]>(), Some(&[8u64; 4]));
            assert!(value.downcast_ref::<String>().is_none());
            assert_eq!(value.type_id(), TypeId::of::<[u64; 4]>());
            assert!(value.as_any().downcast_ref::<[u64; 4]>().is_some());
            let copy = value.clone();
            assert_eq!(value.take::<[u64; 4]>().ok(), Some([8u64; 4]));
            assert!(copy.take::<u8>().is_err());
        }
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
