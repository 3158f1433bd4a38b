//! Remote stores: the interface a shared tier implements.
//!
//! A cache's remote tier is any [`Store`]: five small traits, one per
//! concern, that the read path, invalidation and the manual API call and
//! nothing else.
//!
//! | trait | what for | the flow relies on |
//! |---|---|---|
//! | [`EntryStore`] | entries: bytes by key with a TTL | [`fetch`](EntryStore::fetch) reads an entry and its tags' versions in one round trip |
//! | [`TagStore`] | tag version counters | a version is never handed out twice |
//! | [`LockStore`] | locks with tokens | take, extend and release are atomic compare-and-sets |
//! | [`CounterStore`] | atomic counters | one increment, never repeated |
//! | [`ScanStore`] | deletion by pattern | a walk by cursor that covers every key |
//!
//! Beside it, a [`Backplane`] carries invalidations between processes
//! (publish/subscribe), as FusionCache keeps its backplane apart from its
//! second-level cache: a store without one still works, with other
//! processes' invalidations seen within a second instead of milliseconds.
//!
//! The cache wraps every call in its remote timeout and circuit breaker,
//! retries a [`StoreError::Connection`] where the operation is safe to
//! repeat, checks every entry it reads back (checksum, format, type), and
//! counts every fault; a store returns errors, it never panics.
//!
//! # Writing a store
//!
//! A store over a `HashMap` (one process only, no TTL: the shape, not a
//! store to use):
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//! use std::time::Duration;
//! use cache_runtime::store::*;
//!
//! #[derive(Default)]
//! struct MapStore {
//!     bytes: Mutex<HashMap<String, Vec<u8>>>,
//!     numbers: Mutex<HashMap<String, i64>>,
//! }
//!
//! impl MapStore {
//!     fn version(&self, key: &str, bump: bool) -> u64 {
//!         let mut numbers = self.numbers.lock().unwrap();
//!         let n = numbers.entry(key.to_string()).or_insert(1);
//!         *n += i64::from(bump);
//!         *n as u64
//!     }
//! }
//!
//! impl EntryStore for MapStore {
//!     async fn fetch(&self, request: Fetch<'_>) -> Result<Fetched, StoreError> {
//!         let entry = self.bytes.lock().unwrap().get(&request.entry_key()).cloned();
//!         let versions = request.tag_keys().map(|t| self.version(&t, false)).collect();
//!         Ok(Fetched::new(entry, versions))
//!     }
//!     async fn fetch_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
//!         let bytes = self.bytes.lock().unwrap();
//!         Ok(keys.iter().map(|k| bytes.get(k).cloned()).collect())
//!     }
//!     async fn put(&self, key: &str, bytes: Vec<u8>, _ttl: Duration) -> Result<(), StoreError> {
//!         self.bytes.lock().unwrap().insert(key.to_string(), bytes);
//!         Ok(())
//!     }
//!     async fn put_many(&self, items: Vec<(String, Vec<u8>, Duration)>) -> Result<(), StoreError> {
//!         self.bytes.lock().unwrap().extend(items.into_iter().map(|(k, b, _)| (k, b)));
//!         Ok(())
//!     }
//!     async fn delete(&self, key: &str) -> Result<bool, StoreError> {
//!         Ok(self.bytes.lock().unwrap().remove(key).is_some())
//!     }
//!     async fn ping(&self) -> Result<(), StoreError> {
//!         Ok(())
//!     }
//! }
//!
//! impl TagStore for MapStore {
//!     async fn versions(&self, tag_keys: &[String]) -> Result<Vec<u64>, StoreError> {
//!         Ok(tag_keys.iter().map(|t| self.version(t, false)).collect())
//!     }
//!     async fn bump(&self, tag_keys: &[String]) -> Result<Vec<u64>, StoreError> {
//!         Ok(tag_keys.iter().map(|t| self.version(t, true)).collect())
//!     }
//! }
//!
//! impl LockStore for MapStore {
//!     async fn try_lock(&self, key: &str, token: &str, _ttl: Duration) -> Result<bool, StoreError> {
//!         let mut bytes = self.bytes.lock().unwrap();
//!         if bytes.contains_key(key) {
//!             return Ok(false);
//!         }
//!         bytes.insert(key.to_string(), token.as_bytes().to_vec());
//!         Ok(true)
//!     }
//!     async fn extend_lock(&self, key: &str, token: &str, _ttl: Duration) -> Result<bool, StoreError> {
//!         Ok(self.bytes.lock().unwrap().get(key).is_some_and(|t| t == token.as_bytes()))
//!     }
//!     async fn unlock(&self, key: &str, token: &str) -> Result<bool, StoreError> {
//!         let mut bytes = self.bytes.lock().unwrap();
//!         let held = bytes.get(key).is_some_and(|t| t == token.as_bytes());
//!         if held {
//!             bytes.remove(key);
//!         }
//!         Ok(held)
//!     }
//! }
//!
//! impl CounterStore for MapStore {
//!     async fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
//!         let mut numbers = self.numbers.lock().unwrap();
//!         let n = numbers.entry(key.to_string()).or_insert(0);
//!         *n += delta;
//!         Ok(*n)
//!     }
//! }
//!
//! /// One node: the whole map, in one page.
//! struct Whole(Vec<String>);
//!
//! impl ScanStore for MapStore {
//!     type Node = Whole;
//!     async fn scan_nodes(&self) -> Result<Vec<Whole>, StoreError> {
//!         Ok(vec![Whole(self.bytes.lock().unwrap().keys().cloned().collect())])
//!     }
//! }
//!
//! impl ScanNode for Whole {
//!     async fn scan(&self, _cursor: u64, pattern: &str, _count: u32) -> Result<(u64, Vec<String>), StoreError> {
//!         // A prefix pattern only, for brevity; a real store matches globs.
//!         let prefix = pattern.trim_end_matches('*');
//!         Ok((0, self.0.iter().filter(|k| k.starts_with(prefix)).cloned().collect()))
//!     }
//!     async fn unlink(&self, keys: &[String]) -> Result<u64, StoreError> {
//!         Ok(keys.len() as u64) // a real node deletes them
//!     }
//! }
//!
//! fn takes_a_store(_: impl Store) {}
//! takes_a_store(MapStore::default());
//! ```

#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod fetch;
pub mod in_process;
mod interface;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod subscription;

pub use error::StoreError;
pub use fetch::{Fetch, Fetched};
pub use interface::{
    Backplane, CounterStore, EntryStore, LockStore, ScanNode, ScanStore, Store, TagStore,
};
pub use subscription::Subscription;
