//! The one-text-string CBOR fast path: never panics, and whatever it accepts
//! `ciborium` reads as the same string (checked inside the wrapper).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cache_runtime::__fuzz::decode_cbor_text(data);
});
