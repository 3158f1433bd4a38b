//! Entry points into the private decoders for the fuzz targets in `fuzz/`
//! (cargo feature `__fuzz`, off by default). Not API: thin wrappers that run a
//! decoder on untrusted bytes and report only whether it accepted them.

use crate::coherence::message;
use crate::remote::{cbor_text, entry};

/// Decodes `bytes` as a stored entry: the header, then the payload as a
/// generic CBOR value and as a `String`; then `bytes` with a matching
/// checksum appended, so that the fuzzer reaches the checks behind the
/// checksum (random bytes almost never carry a matching one). Returns
/// whether either header decoded.
///
/// # Panics
/// If a decoded header breaks the limits the decoder promises to enforce.
pub fn decode_entry(bytes: &[u8]) -> bool {
    let mut sealed = bytes.to_vec();
    entry::seal(&mut sealed);
    let raw = decode_entry_as_is(bytes);
    decode_entry_as_is(&sealed) || raw
}

fn decode_entry_as_is(bytes: &[u8]) -> bool {
    let Ok((header, payload)) = entry::decode_header(bytes) else {
        return false;
    };
    assert!(
        header.tags.len() <= entry::MAX_TAGS,
        "too many tags accepted"
    );
    assert!(
        header
            .tags
            .iter()
            .all(|(name, _)| name.len() <= entry::MAX_TAG_NAME_LEN),
        "a tag name past the limit was accepted"
    );
    let _ = entry::decode_any::<ciborium::Value>(&payload);
    let _ = entry::decode_any::<String>(&payload);
    let _ = entry::decode_any::<Vec<u64>>(&payload);
    let _ = entry::decode_value::<Vec<u64>>(&payload);
    true
}

/// Runs the one-text-string fast path on `payload`; when it accepts, checks
/// that `ciborium` reads the same string (the fast path must never disagree
/// with the decoder it stands in for). Returns what the fast path decoded.
///
/// # Panics
/// If the fast path and `ciborium` disagree: that is the bug being fuzzed for.
pub fn decode_cbor_text(payload: &[u8]) -> Option<String> {
    let fast = cbor_text::decode::<String>(payload)?;
    let mut rest = payload;
    let slow: Result<String, _> = ciborium::from_reader(&mut rest);
    assert_eq!(
        slow.ok().as_deref(),
        Some(fast.as_str()),
        "the fast path disagrees with ciborium"
    );
    assert!(rest.is_empty(), "the fast path accepted trailing bytes");
    Some(fast)
}

/// Decodes `bytes` as a backplane message; returns whether it decoded.
pub fn decode_backplane(bytes: &[u8]) -> bool {
    message::decode(bytes).is_some()
}
