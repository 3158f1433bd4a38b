//! The log lines of a test binary, captured for its assertions: one global
//! `tracing` subscriber (the cache's background tasks log from other
//! threads) writing into a buffer. Included with `#[path]` by the tests that
//! read their logs (availability.rs, secrets.rs, warming_edges.rs).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// The buffer every log line at `level` and above goes to; the first call
/// in a binary installs the subscriber and decides the level.
pub fn global(level: tracing::Level) -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        buffer
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
