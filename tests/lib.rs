//! Shared helpers for the integration tests.

pub mod redis_harness;

use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts how many times a function body ran.
#[derive(Default)]
pub struct Calls(AtomicUsize);

impl Calls {
    /// A counter at zero.
    pub const fn new() -> Self {
        Self(AtomicUsize::new(0))
    }

    /// Records one call; returns the number of calls before it.
    pub fn hit(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }

    /// The number of calls so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Asserts at compile time that a future is `Send`, and returns it.
pub fn assert_send<F: std::future::Future + Send>(f: F) -> F {
    f
}
