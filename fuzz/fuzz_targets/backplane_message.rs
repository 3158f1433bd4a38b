//! A backplane message, from whoever can PUBLISH on the channel: decoding
//! never panics or allocates without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cache_runtime::__fuzz::decode_backplane(data);
});
