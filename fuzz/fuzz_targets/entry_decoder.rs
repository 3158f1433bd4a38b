//! A stored entry's header and payload, from bytes an attacker (or a bug)
//! put in Redis: the decoder must reject or accept, never panic or allocate
//! past the input's size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cache_runtime::__fuzz::decode_entry(data);
});
