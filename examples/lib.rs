//! Runnable examples of cache-runtime. Each is a file beside this one:
//!
//! | example | run with | shows |
//! |---|---|---|
//! | `quickstart` | `cargo run --example quickstart` | miss then hit, stale-while-revalidate, tag invalidation, fail-safe, stats |
