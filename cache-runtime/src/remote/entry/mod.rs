//! The byte format of a cache entry stored in the remote tier (Redis).
//!
//! An entry is a small versioned binary header, the value encoded as CBOR
//! (with `ciborium`), possibly compressed, and a checksum. All integers are
//! little-endian. Format version 3:
//!
//! | offset | size | field             | meaning                                                        |
//! |-------:|-----:|-------------------|----------------------------------------------------------------|
//! |      0 |    2 | magic             | the bytes `b"CE"`                                              |
//! |      2 |    1 | version           | `u8`, = 3                                                      |
//! |      3 |    1 | flags             | `u8`; bit 0: the payload is compressed; every other bit must be 0 |
//! |      4 |    8 | created           | `u64`, milliseconds since the Unix epoch                       |
//! |     12 |    8 | fresh_until       | `u64`, ms since the epoch                                      |
//! |     20 |    8 | stale_until       | `u64`, ms since the epoch, `>= fresh_until`                    |
//! |     28 |    8 | fail_safe_until   | `u64`, ms since the epoch, `>= fresh_until`                    |
//! |     36 |    4 | load_millis       | `u32`, how long the loader took                                |
//! |     40 |    8 | schema            | `u64`, the stored type's schema fingerprint ([`fingerprint`])  |
//! |     48 |    2 | tag count         | `u16`, at most [`MAX_TAGS`]                                    |
//! |     50 |      | tags              | per tag: name length `u16` (at most [`MAX_TAG_NAME_LEN`]), the name (UTF-8), version `u64` |
//! |        |      | payload           | flag bit 0 clear: the value as one CBOR item; set: the CBOR's length `u32`, then the CBOR compressed as one LZ4 block ([`compress`]) |
//! |  end-8 |    8 | checksum          | `u64`, XXH3-64 (seed 0) of every byte before it (the stored, compressed bytes) |
//!
//! Version 2 was the same without the schema fingerprint, and with no flag
//! allowed. A version 2 entry read by this build is a plain miss (another
//! format version, below), overwritten by the load that follows.
//!
//! **Compression** (version 3): when the cache has a threshold
//! ([`CacheBuilder::compress_above`](crate::CacheBuilder::compress_above),
//! off by default) and the CBOR of a value is longer, the payload is
//! compressed if that makes it shorter. Reading one never trusts its
//! declared length: above the maximum entry size it is refused
//! ([`EntryError::InflatesPastMax`], counted as oversized), above what LZ4
//! can produce from the block it is refused, and the codec must produce
//! exactly that length, writing into a buffer of that length only
//! ([`EntryError::Decompress`], counted as corruption): no input inflates
//! past the bound, and none panics.
//!
//! **Schema fingerprints** (version 3): the header carries the fingerprint
//! of the type the value was written as ([`fingerprint::of`]); a reader of
//! another type's shape (a field added, renamed or retyped, a tuple
//! widened, an enum variant added) gets [`EntryError::SchemaMismatch`]
//! before any byte of the payload is decoded or decompressed: a clean miss,
//! counted in `Stats::schema_mismatches` (not as corruption nor as a decode
//! error), overwritten by the load that follows. Without it, a struct whose
//! field was renamed with `#[serde(default)]` read an older entry as a
//! value with the default. During a rolling deploy, old and new builds
//! overwrite each other's entries of a changed type: misses, not errors.
//!
//! Version 1 was version 2 without the checksum. A bit flipped in Redis (a
//! faulty disk, memory or network path, a restore of a damaged snapshot)
//! used to decode as a different value about one time in four; the checksum
//! covers header and payload, so a damaged entry is refused before any
//! field of it is used: a miss, counted as [`EntryError::Corrupt`] (in
//! `Stats::corrupt_entries` and `decode_errors`), and overwritten by the
//! load that follows. XXH3-64 runs at 6 to 9 GB/s on one core (measured
//! here: 46 ns for 256 bytes, 0.63 µs for 4 KiB, 90 µs for a 700 kB HTTP
//! body), is computed once per write and checked once per read from Redis
//! (never on a memory hit), and misses damage only by chance (2^-64 for
//! random changes; every single-bit flip tested, in the unit tests, is
//! caught). It is a guard against accidents, not against someone who can
//! write to Redis (they can store any value anyway).
//!
//! An entry of another format version (versions 1 and 2, written before the
//! upgrade, or a later version from a newer build during a rolling upgrade)
//! is a plain miss, not a fault: [`EntryError::UnsupportedVersion`], counted
//! in no error counter, so an upgrade does not read as a burst of errors in
//! health; the load that follows overwrites it.
//!
//! Decoding never trusts the bytes: the checksum is checked first, and every
//! length is still checked against what is left of the input before
//! anything is sliced or allocated (a writer may be hostile, not just
//! damaged), counts and lengths are bounded, and no input makes it panic.
//! The CBOR payload is decoded with a nesting limit of [`MAX_CBOR_DEPTH`]; a
//! hostile length prefix (an array or a string declaring 2^60 elements)
//! makes decoding fail at the end of the input instead of allocating:
//! `ciborium` reads strings and byte strings chunk by chunk, and serde's
//! collection visitors cap pre-allocation at 1 MiB. The payload's
//! `Deserialize` and the value's `Serialize` are the user's code: a panic in
//! either is an error here ([`EntryError::DecodePanicked`], counted as
//! corruption; [`EntryError::EncodePanicked`]), never the caller's panic.
//!
//! Size: an entry is at most the cache's maximum entry size
//! ([`CacheBuilder::max_entry_bytes`](crate::CacheBuilder::max_entry_bytes),
//! 16 MiB by default), checksum included, and so is its uncompressed form:
//! the bound is the same with or without compression. [`encode_within`] writes through a
//! writer that fails once the bound is passed, so a larger value stops being
//! encoded there (the buffer never grows past the bound) and is not stored:
//! [`EntryError::Oversized`]. [`decode_header_within`] refuses a longer entry
//! before checking or decoding anything: [`EntryError::OversizedRead`]. Both
//! count as [`FaultKind::Oversized`].
//!
//! Changing any of this layout requires a new format version.

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::oversize::Bounded;
use super::user_code;
use crate::events::FaultKind;

pub(crate) mod compress;
pub(crate) mod fingerprint;

pub(crate) use fingerprint::of as schema_of;

/// The first two bytes of every entry.
pub(crate) const MAGIC: [u8; 2] = *b"CE";
/// The format version this build writes and reads.
pub(crate) const FORMAT_VERSION: u8 = 3;
/// Flag bit 0: the payload is compressed ([`compress`]).
pub(crate) const FLAG_COMPRESSED: u8 = 0x01;
/// The flag bits version 3 accepts.
const KNOWN_FLAGS: u8 = FLAG_COMPRESSED;
/// The most tags an entry may carry.
pub(crate) const MAX_TAGS: usize = 256;
/// The longest tag name, in bytes.
pub(crate) const MAX_TAG_NAME_LEN: usize = 1024;
/// The deepest nesting of arrays, maps and tags accepted in the CBOR payload.
pub(crate) const MAX_CBOR_DEPTH: usize = 128;

/// Size of the fixed part of the header (up to and including the tag count).
const FIXED_LEN: usize = 2 + 1 + 1 + 8 * 4 + 4 + 8 + 2;
/// Smallest encoding of one tag: an empty name plus its length and version.
const MIN_TAG_LEN: usize = 2 + 8;
/// Size of the checksum at the end of the entry.
const CHECKSUM_LEN: usize = 8;
/// Room reserved for the CBOR payload when encoding, beyond the header.
const PAYLOAD_CAPACITY_GUESS: usize = 256;

/// The metadata stored in front of a cached value.
///
/// Times are milliseconds since the Unix epoch; `fresh_until` must not be after
/// `stale_until` nor after `fail_safe_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header<'a> {
    /// When the value was loaded.
    pub(crate) created: u64,
    /// Served as fresh until then.
    pub(crate) fresh_until: u64,
    /// Served stale (while one refresh runs) until then.
    pub(crate) stale_until: u64,
    /// Served when the loader fails, until then.
    pub(crate) fail_safe_until: u64,
    /// How long the loader took, in milliseconds.
    pub(crate) load_millis: u32,
    /// The schema fingerprint of the value's type ([`schema_of`]).
    pub(crate) schema: u64,
    /// The entry's tags with the tag version seen when the value was loaded.
    /// Decoding borrows the names from the entry's bytes.
    pub(crate) tags: Vec<(Cow<'a, str>, u64)>,
}

/// Why an entry could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EntryError {
    /// The input ended before `field` was complete (an empty input included).
    #[error("cache entry truncated: not enough bytes for {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// The input does not start with [`MAGIC`].
    #[error("not a cache entry: magic {found:02x?}, expected {MAGIC:02x?} (\"CE\")")]
    BadMagic {
        /// The first two bytes found.
        found: [u8; 2],
    },
    /// The format version is not [`FORMAT_VERSION`].
    #[error(
        "unsupported cache entry format version {0}; this build reads version {FORMAT_VERSION}"
    )]
    UnsupportedVersion(u8),
    /// The checksum does not match the bytes: the entry was damaged in the
    /// store (or cut short). Never served; counted as corruption.
    #[error("cache entry corrupt: checksum {stored:#018x}, computed {computed:#018x}")]
    Corrupt {
        /// The checksum the entry carries.
        stored: u64,
        /// The checksum of the bytes it covers.
        computed: u64,
    },
    /// Flag bits unknown to this version are set.
    #[error("unsupported cache entry flags {0:#04x}")]
    BadFlags(u8),
    /// More than [`MAX_TAGS`] tags.
    #[error("cache entry has {0} tags; at most {MAX_TAGS} are allowed")]
    TooManyTags(usize),
    /// A tag name longer than [`MAX_TAG_NAME_LEN`] bytes.
    #[error("cache entry tag name of {0} bytes; at most {MAX_TAG_NAME_LEN} are allowed")]
    TagNameTooLong(usize),
    /// A tag name that is not UTF-8.
    #[error("cache entry tag name is not valid UTF-8")]
    BadUtf8,
    /// `fresh_until` is after `stale_until` or after `fail_safe_until`.
    #[error(
        "cache entry times are inconsistent: fresh_until {fresh_until} is after \
         stale_until {stale_until} or fail_safe_until {fail_safe_until}"
    )]
    InconsistentTimes {
        /// The entry's `fresh_until`.
        fresh_until: u64,
        /// The entry's `stale_until`.
        stale_until: u64,
        /// The entry's `fail_safe_until`.
        fail_safe_until: u64,
    },
    /// The payload is not one CBOR item of the expected type.
    #[error("cache entry value could not be decoded: {0}")]
    CborDecode(String),
    /// The value could not be encoded as CBOR.
    #[error("cache entry value could not be encoded: {0}")]
    CborEncode(String),
    /// The entry would be larger than the maximum entry size: encoding
    /// stopped at the bound, and nothing is written.
    #[error(
        "cache entry larger than the maximum entry size of {max} bytes: encoding stopped there"
    )]
    Oversized {
        /// The bound, in bytes (checksum included).
        max: usize,
    },
    /// An entry read from the store is larger than the maximum entry size:
    /// not decoded (a miss).
    #[error("cache entry of {len} bytes is larger than the maximum entry size of {max} bytes")]
    OversizedRead {
        /// The entry's length.
        len: usize,
        /// The bound, in bytes.
        max: usize,
    },
    /// The stored type's `Deserialize` panicked on the payload (its message).
    /// Bytes from the store are untrusted input: a miss, counted as a
    /// corrupt entry, never a panic of the caller.
    #[error("cache entry value could not be decoded: the stored type's Deserialize panicked: {0}")]
    DecodePanicked(String),
    /// The value's `Serialize` panicked while it was encoded (its message):
    /// the write skips the store, the caller keeps its value.
    #[error("cache entry value could not be encoded: the stored type's Serialize panicked: {0}")]
    EncodePanicked(String),
    /// The entry was written for another shape of the stored type: a clean
    /// miss, counted in `Stats::schema_mismatches`, never decoded.
    #[error(
        "cache entry written for another shape of the stored type: schema {stored:#018x}, \
         this type's {expected:#018x}"
    )]
    SchemaMismatch {
        /// The fingerprint the entry carries.
        stored: u64,
        /// The reading type's.
        expected: u64,
    },
    /// A compressed payload that does not decompress to its declared
    /// length: counted as corruption.
    #[error("cache entry value could not be decompressed: {0}")]
    Decompress(String),
    /// A compressed payload whose declared length is over the maximum
    /// entry size: refused before decompressing (a miss, counted as
    /// oversized).
    #[error(
        "compressed cache entry declares {len} bytes, more than the maximum entry size of {max} bytes"
    )]
    InflatesPastMax {
        /// The declared uncompressed length.
        len: usize,
        /// The bound, in bytes.
        max: usize,
    },
}

impl EntryError {
    /// How a read counts this error: [`FaultKind::Corrupt`] for a damaged
    /// entry (and one whose value's `Deserialize` panicked, or that does
    /// not decompress), [`FaultKind::SchemaMismatch`] for an entry of
    /// another shape of the type, `None` for an entry of another format version (a plain miss:
    /// entries of the previous version after an upgrade, or of a newer one
    /// during a rolling upgrade), [`FaultKind::Oversized`] for an entry over the maximum entry size,
    /// [`FaultKind::Decode`] for anything else.
    pub(crate) fn fault(&self) -> Option<FaultKind> {
        match self {
            EntryError::Corrupt { .. }
            | EntryError::DecodePanicked(_)
            | EntryError::Decompress(_) => Some(FaultKind::Corrupt),
            EntryError::UnsupportedVersion(_) => None,
            EntryError::SchemaMismatch { .. } => Some(FaultKind::SchemaMismatch),
            EntryError::Oversized { .. }
            | EntryError::OversizedRead { .. }
            | EntryError::InflatesPastMax { .. } => Some(FaultKind::Oversized),
            _ => Some(FaultKind::Decode),
        }
    }
}

/// Counts an entry read from the store that is not served, and logs it:
/// damage at `warn` as corruption, another shape of the type at `debug`
/// (a deploy that changed it), another format version at `debug` (not a
/// fault), an entry over the maximum size as `oversize::count` does,
/// anything else at `warn` as a decode error.
#[cold]
pub(crate) fn count_unreadable(counters: &crate::stats::Counters, key: &str, error: &EntryError) {
    match error.fault() {
        Some(FaultKind::Oversized) => super::oversize::count(counters, key, error),
        Some(FaultKind::SchemaMismatch) => {
            counters.fault(FaultKind::SchemaMismatch);
            tracing::debug!(key, %error, "remote cache entry of another shape of the stored type treated as a miss");
        }
        Some(FaultKind::Corrupt) => {
            counters.fault(FaultKind::Corrupt);
            if let EntryError::DecodePanicked(_) | EntryError::Decompress(_) = error {
                tracing::warn!(key, %error, "remote cache entry whose value's Deserialize panicked treated as a miss (corrupt)");
            } else {
                tracing::warn!(key, %error, "corrupt remote cache entry (checksum mismatch) treated as a miss");
            }
        }
        Some(kind) => {
            counters.fault(kind);
            tracing::warn!(key, %error, "undecodable remote cache entry treated as a miss");
        }
        None => {
            tracing::debug!(key, %error, "remote cache entry of another format version treated as a miss");
        }
    }
}

impl Header<'_> {
    /// Checks what the decoder would reject, so that `encode` never writes an
    /// entry that `decode_header` refuses.
    fn validate(&self) -> Result<(), EntryError> {
        check_times(self.fresh_until, self.stale_until, self.fail_safe_until)?;
        if self.tags.len() > MAX_TAGS {
            return Err(EntryError::TooManyTags(self.tags.len()));
        }
        for (name, _) in &self.tags {
            if name.len() > MAX_TAG_NAME_LEN {
                return Err(EntryError::TagNameTooLong(name.len()));
            }
        }
        Ok(())
    }

    /// The number of bytes the header takes (valid after `validate`).
    fn encoded_len(&self) -> usize {
        FIXED_LEN
            + self
                .tags
                .iter()
                .map(|(name, _)| MIN_TAG_LEN + name.len())
                .sum::<usize>()
    }
}

fn check_times(fresh_until: u64, stale_until: u64, fail_safe_until: u64) -> Result<(), EntryError> {
    if fresh_until > stale_until || fresh_until > fail_safe_until {
        return Err(EntryError::InconsistentTimes {
            fresh_until,
            stale_until,
            fail_safe_until,
        });
    }
    Ok(())
}

/// How an entry is written: the cache's settings that shape it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The maximum entry size ([`CacheBuilder::max_entry_bytes`](crate::CacheBuilder::max_entry_bytes)).
    pub(crate) max: usize,
    /// Payloads (CBOR) longer than this are compressed
    /// ([`CacheBuilder::compress_above`](crate::CacheBuilder::compress_above));
    /// `None`: never.
    pub(crate) compress_above: Option<usize>,
}

#[cfg(test)]
impl Limits {
    /// No compression, at most `max` bytes.
    pub(crate) fn max(max: usize) -> Self {
        Self {
            max,
            compress_above: None,
        }
    }
}

/// [`encode_within`] with no bound and no compression.
#[cfg(test)]
pub(crate) fn encode<T: Serialize + ?Sized>(
    header: &Header<'_>,
    value: &T,
) -> Result<Vec<u8>, EntryError> {
    encode_within(header, value, Limits::max(usize::MAX))
}

/// Encodes `header` and `value` into one buffer of at most `max` bytes: the
/// header is written, then the CBOR of `value` is appended to the same `Vec`
/// (no intermediate buffer), then the checksum.
///
/// Fails if the header breaks a limit the decoder enforces (tag count, tag name
/// length, time order), if `value` cannot be serialized, or, as soon as
/// the encoding passes `limits.max`, with [`EntryError::Oversized`]: the buffer
/// never grows past `max` bytes, whatever the value's size. A CBOR payload
/// longer than `limits.compress_above` is then compressed, when that saves
/// bytes (the bound applies to the uncompressed form, as the reader checks).
pub(crate) fn encode_within<T: Serialize + ?Sized>(
    header: &Header<'_>,
    value: &T,
    limits: Limits,
) -> Result<Vec<u8>, EntryError> {
    let max = limits.max;
    header.validate()?;
    let header_len = header.encoded_len();
    // Room for the checksum is kept aside: the payload may take the rest.
    let Some(max_body) = max
        .checked_sub(CHECKSUM_LEN)
        .filter(|body| *body >= header_len)
    else {
        return Err(EntryError::Oversized { max });
    };
    let mut out = Vec::with_capacity((header_len + PAYLOAD_CAPACITY_GUESS).min(max_body));
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.push(0); // flags
    out.extend_from_slice(&header.created.to_le_bytes());
    out.extend_from_slice(&header.fresh_until.to_le_bytes());
    out.extend_from_slice(&header.stale_until.to_le_bytes());
    out.extend_from_slice(&header.fail_safe_until.to_le_bytes());
    out.extend_from_slice(&header.load_millis.to_le_bytes());
    out.extend_from_slice(&header.schema.to_le_bytes());
    // Both conversions hold after `validate` (256 tags, 1024 bytes); map the
    // impossible failure to the same errors rather than panicking.
    let count =
        u16::try_from(header.tags.len()).map_err(|_| EntryError::TooManyTags(header.tags.len()))?;
    out.extend_from_slice(&count.to_le_bytes());
    for (name, version) in &header.tags {
        let len = u16::try_from(name.len()).map_err(|_| EntryError::TagNameTooLong(name.len()))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&version.to_le_bytes());
    }
    debug_assert_eq!(out.len(), header_len);
    // The value's `Serialize` is the user's code: a panic in it is an error
    // here (the half-written buffer is dropped), not the caller's panic.
    // Only the bounded writer fails with an I/O error: past the bound.
    user_code::contain(|| ciborium::into_writer(value, Bounded::new(&mut out, max_body)))
        .map_err(EntryError::EncodePanicked)?
        .map_err(|e| match e {
            ciborium::ser::Error::Io(_) => EntryError::Oversized { max },
            ciborium::ser::Error::Value(e) => EntryError::CborEncode(e),
        })?;
    let payload_len = out.len() - header_len;
    if limits
        .compress_above
        .is_some_and(|above| payload_len > above)
    {
        if let Some(packed) = compress::compress(&out[header_len..]) {
            out.truncate(header_len);
            out.extend_from_slice(&packed);
            out[3] |= FLAG_COMPRESSED;
        }
    }
    // Exactly the checksum's room: a push on a full buffer would double it.
    out.reserve_exact(CHECKSUM_LEN);
    seal(&mut out);
    Ok(out)
}

/// Appends the checksum of `body` (an entry up to its payload's end).
pub(crate) fn seal(body: &mut Vec<u8>) {
    let sum = checksum(body);
    body.extend_from_slice(&sum.to_le_bytes());
}

/// The checksum of an entry's bytes before the checksum field.
#[inline]
fn checksum(covered: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(covered)
}

/// Splits `bytes` into what the checksum covers and the checksum it carries.
fn split_checksum(bytes: &[u8]) -> Option<(&[u8], u64)> {
    let (covered, sum) = bytes.split_last_chunk::<CHECKSUM_LEN>()?;
    Some((covered, u64::from_le_bytes(*sum)))
}

/// Checks the checksum of a whole entry; the bytes it covers.
fn verified(bytes: &[u8]) -> Result<&[u8], EntryError> {
    let (covered, stored) =
        split_checksum(bytes).ok_or(EntryError::Truncated { field: "checksum" })?;
    let computed = checksum(covered);
    if computed != stored {
        return Err(EntryError::Corrupt { stored, computed });
    }
    Ok(covered)
}

/// An entry whose magic or version is not this build's: damage to those
/// bytes (the checksum matches once they are put back) is corruption;
/// anything else keeps `error` (another format version, or not an entry).
#[cold]
fn damaged_prefix(bytes: &[u8], error: EntryError) -> EntryError {
    let Some((covered, stored)) = split_checksum(bytes) else {
        return error;
    };
    if covered.len() < 3 {
        return error;
    }
    let mut hasher = xxhash_rust::xxh3::Xxh3Default::new();
    hasher.update(&MAGIC);
    hasher.update(&[FORMAT_VERSION]);
    hasher.update(&covered[3..]);
    if hasher.digest() == stored {
        EntryError::Corrupt {
            stored,
            computed: checksum(covered),
        }
    } else {
        error
    }
}

/// An entry's payload, as [`decode_header_within`] found it: pass it to
/// [`decode_value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Payload<'a> {
    /// The stored bytes: the CBOR, or its compressed block.
    stored: &'a [u8],
    /// The CBOR's length when `stored` is compressed (checked against the
    /// maximum entry size and the codec's ratio already).
    inflated: Option<usize>,
    /// The schema fingerprint the entry carries.
    schema: u64,
}

impl<'a> Payload<'a> {
    /// The CBOR's length (uncompressed).
    pub(crate) fn len(&self) -> usize {
        self.inflated.unwrap_or(self.stored.len())
    }

    /// Whether the stored payload is compressed.
    #[cfg(test)]
    pub(crate) fn is_compressed(&self) -> bool {
        self.inflated.is_some()
    }

    /// The CBOR: borrowed, or decompressed into a buffer of its declared
    /// length.
    fn cbor(&self) -> Result<Cow<'a, [u8]>, EntryError> {
        match self.inflated {
            None => Ok(Cow::Borrowed(self.stored)),
            Some(raw_len) => {
                let block = &self.stored[compress::RAW_LEN_LEN..];
                compress::decompress(block, raw_len).map(Cow::Owned)
            }
        }
    }
}

/// [`decode_header`] for an entry of at most `max` bytes: a longer one is
/// refused first ([`EntryError::OversizedRead`]), before its checksum is
/// computed or anything of it is decoded; a compressed payload must not
/// declare more than `max` bytes either ([`EntryError::InflatesPastMax`]).
pub(crate) fn decode_header_within(
    bytes: &[u8],
    max: usize,
) -> Result<(Header<'_>, Payload<'_>), EntryError> {
    if bytes.len() > max {
        return Err(EntryError::OversizedRead {
            len: bytes.len(),
            max,
        });
    }
    parse(bytes, max)
}

/// Checks the checksum, then decodes and validates the header of an entry;
/// returns it with the payload that follows (pass that to
/// [`decode_value`]). No bound but LZ4's own ratio on a compressed
/// payload's declared length: [`decode_header_within`] is the reader's.
#[cfg(any(test, feature = "__fuzz"))]
pub(crate) fn decode_header(bytes: &[u8]) -> Result<(Header<'_>, Payload<'_>), EntryError> {
    parse(bytes, usize::MAX)
}

/// Allocates one `Vec` for the tags (none when there are none); tag names are
/// borrowed from `bytes`.
fn parse(bytes: &[u8], max: usize) -> Result<(Header<'_>, Payload<'_>), EntryError> {
    let mut input = Cursor { rest: bytes };

    let magic = input.array::<2>("magic")?;
    if magic != MAGIC {
        return Err(damaged_prefix(bytes, EntryError::BadMagic { found: magic }));
    }
    let version = input.u8("version")?;
    if version != FORMAT_VERSION {
        return Err(damaged_prefix(
            bytes,
            EntryError::UnsupportedVersion(version),
        ));
    }
    // Nothing past the version is read before the checksum matched.
    let mut input = Cursor {
        rest: &verified(bytes)?[3..],
    };
    let flags = input.u8("flags")?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(EntryError::BadFlags(flags));
    }

    let created = input.u64("created")?;
    let fresh_until = input.u64("fresh_until")?;
    let stale_until = input.u64("stale_until")?;
    let fail_safe_until = input.u64("fail_safe_until")?;
    check_times(fresh_until, stale_until, fail_safe_until)?;
    let load_millis = input.u32("load_millis")?;
    let schema = input.u64("schema")?;

    let count = usize::from(input.u16("tag count")?);
    if count > MAX_TAGS {
        return Err(EntryError::TooManyTags(count));
    }
    // Every tag takes at least MIN_TAG_LEN bytes: refuse a count the input cannot
    // hold before reserving room for it.
    if input.rest.len() / MIN_TAG_LEN < count {
        return Err(EntryError::Truncated { field: "tags" });
    }
    let mut tags = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(input.u16("tag name length")?);
        if len > MAX_TAG_NAME_LEN {
            return Err(EntryError::TagNameTooLong(len));
        }
        let name = input.take(len, "tag name")?;
        let name = std::str::from_utf8(name).map_err(|_| EntryError::BadUtf8)?;
        let tag_version = input.u64("tag version")?;
        tags.push((Cow::Borrowed(name), tag_version));
    }

    let inflated = if flags & FLAG_COMPRESSED != 0 {
        Some(compress::split(input.rest, max)?.0)
    } else {
        None
    };
    let header = Header {
        created,
        fresh_until,
        stale_until,
        fail_safe_until,
        load_millis,
        schema,
        tags,
    };
    let payload = Payload {
        stored: input.rest,
        inflated,
        schema,
    };
    Ok((header, payload))
}

/// Decodes the payload returned by [`decode_header_within`] as a `T`: first
/// its schema fingerprint must be `T`'s ([`EntryError::SchemaMismatch`]
/// otherwise, before anything is decompressed or decoded), then as
/// [`decode_any`].
#[inline]
pub(crate) fn decode_value<T: DeserializeOwned + 'static>(
    payload: &Payload<'_>,
) -> Result<T, EntryError> {
    let expected = schema_of::<T>();
    if payload.schema != expected {
        return Err(EntryError::SchemaMismatch {
            stored: payload.schema,
            expected,
        });
    }
    decode_any(payload)
}

/// Decompresses the payload if it is compressed, then decodes it as a `T`,
/// whatever shape the entry was written for (the fuzz targets' decoder).
pub(crate) fn decode_any<T: DeserializeOwned>(payload: &Payload<'_>) -> Result<T, EntryError> {
    decode_cbor_value(&payload.cbor()?)
}

/// Decodes CBOR as a `T`.
///
/// The payload must be exactly one CBOR item (trailing bytes are an error);
/// nesting is limited to [`MAX_CBOR_DEPTH`]. A panic in `T`'s
/// `Deserialize` (the user's code, on untrusted bytes) is
/// [`EntryError::DecodePanicked`], never the caller's panic.
#[inline]
pub(crate) fn decode_cbor_value<T: DeserializeOwned>(cbor: &[u8]) -> Result<T, EntryError> {
    user_code::contain(|| decode_cbor(cbor)).map_err(EntryError::DecodePanicked)?
}

fn decode_cbor<T: DeserializeOwned>(payload: &[u8]) -> Result<T, EntryError> {
    if let Some(value) = super::cbor_text::decode(payload) {
        return Ok(value);
    }
    let mut rest = payload;
    let value = if payload.len() <= MAX_CBOR_DEPTH {
        // Every level of nesting takes at least one byte, so a payload this
        // short is within the limit. ciborium's limited reader zeroes a 4 KiB
        // scratch buffer on every call, which showed in the remote hit's
        // profile; a short payload never needs more than its own length.
        let mut scratch = [0u8; MAX_CBOR_DEPTH];
        ciborium::de::from_reader_with_buffer(&mut rest, &mut scratch)
    } else {
        ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_CBOR_DEPTH)
    }
    .map_err(|e| EntryError::CborDecode(describe_cbor_error(&e)))?;
    if !rest.is_empty() {
        return Err(EntryError::CborDecode(format!(
            "{} trailing bytes after the value",
            rest.len()
        )));
    }
    Ok(value)
}

fn describe_cbor_error(error: &ciborium::de::Error<std::io::Error>) -> String {
    use ciborium::de::Error;
    match error {
        Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the payload ends before the value".to_owned()
        }
        Error::Io(e) => format!("read error: {e}"),
        Error::Syntax(offset) => format!("invalid CBOR at payload offset {offset}"),
        Error::Semantic(Some(offset), msg) => format!("{msg} (at payload offset {offset})"),
        Error::Semantic(None, msg) => msg.clone(),
        Error::RecursionLimitExceeded => {
            format!("nested deeper than {MAX_CBOR_DEPTH} levels")
        }
    }
}

/// Reads the header fields front to back; every read checks the length first.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], EntryError> {
        let (head, tail) = self
            .rest
            .split_at_checked(len)
            .ok_or(EntryError::Truncated { field })?;
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], EntryError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(EntryError::Truncated { field })?;
        self.rest = tail;
        Ok(*head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, EntryError> {
        self.array::<1>(field).map(|[b]| b)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, EntryError> {
        self.array(field).map(u16::from_le_bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, EntryError> {
        self.array(field).map(u32::from_le_bytes)
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, EntryError> {
        self.array(field).map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Profile {
        id: u64,
        name: String,
        roles: Vec<String>,
        email: Option<String>,
        scores: Vec<u32>,
    }

    fn profile() -> Profile {
        Profile {
            id: 7,
            name: "ann".to_owned(),
            roles: vec!["admin".to_owned(), "ops".to_owned()],
            email: Some("ann@example.com".to_owned()),
            scores: vec![1, 200, 70_000],
        }
    }

    fn header(tags: &[(&str, u64)]) -> Header<'static> {
        Header {
            created: 1_700_000_000_000,
            fresh_until: 1_700_000_060_000,
            stale_until: 1_700_000_120_000,
            fail_safe_until: 1_700_003_600_000,
            load_millis: 42,
            schema: schema_of::<Profile>(),
            tags: tags
                .iter()
                .map(|(n, v)| (Cow::Owned((*n).to_owned()), *v))
                .collect(),
        }
    }

    fn valid_entry() -> Vec<u8> {
        encode(&header(&[("user:7", 3), ("users", 1)]), &profile()).unwrap()
    }

    /// `bytes` (a whole entry) changed by `edit` and sealed again with a
    /// matching checksum: what a hostile writer (not damage) could store, to
    /// reach the checks behind the checksum.
    fn edited(bytes: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut body = bytes[..bytes.len() - CHECKSUM_LEN].to_vec();
        edit(&mut body);
        sealed(body)
    }

    /// `body` with its checksum appended.
    fn sealed(mut body: Vec<u8>) -> Vec<u8> {
        seal(&mut body);
        body
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        assert_eq!(s.len() % 2, 0);
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<(Header<'_>, T), EntryError> {
        let (header, payload) = decode_header(bytes)?;
        Ok((header, decode_any(&payload)?))
    }

    // ---- round trips ----

    #[test]
    fn round_trip_without_tags() {
        let h = header(&[]);
        let bytes = encode(&h, &profile()).unwrap();
        assert_eq!(&bytes[..2], b"CE");
        let (back, payload) = decode_header(&bytes).unwrap();
        assert_eq!(back, h);
        assert_eq!(bytes.len() - payload.len(), FIXED_LEN + CHECKSUM_LEN);
        assert_eq!(decode_any::<Profile>(&payload).unwrap(), profile());
    }

    #[test]
    fn round_trip_with_tags_and_none_fields() {
        let h = header(&[("user:7", 3), ("users", u64::MAX), ("", 0), ("ünï", 9)]);
        let value = Profile {
            email: None,
            roles: vec![],
            scores: vec![],
            ..profile()
        };
        let bytes = encode(&h, &value).unwrap();
        let (back, got) = decode::<Profile>(&bytes).unwrap();
        assert_eq!(back, h);
        assert_eq!(got, value);
    }

    #[test]
    fn round_trip_at_the_limits() {
        let name = "x".repeat(MAX_TAG_NAME_LEN);
        let h = Header {
            created: u64::MAX,
            fresh_until: u64::MAX,
            stale_until: u64::MAX,
            fail_safe_until: u64::MAX,
            load_millis: u32::MAX,
            schema: u64::MAX,
            tags: (0..MAX_TAGS as u64)
                .map(|v| (Cow::Owned(name.clone()), v))
                .collect(),
        };
        let bytes = encode(&h, &"a plain string").unwrap();
        let (back, got) = decode::<String>(&bytes).unwrap();
        assert_eq!(back, h);
        assert_eq!(got, "a plain string");
    }

    #[test]
    fn round_trip_scalars_and_unit() {
        let bytes = encode(&header(&[]), &()).unwrap();
        decode::<()>(&bytes).unwrap();
        let bytes = encode(&header(&[]), &Some(-5i64)).unwrap();
        assert_eq!(decode::<Option<i64>>(&bytes).unwrap().1, Some(-5));
        let bytes = encode(&header(&[]), &Option::<String>::None).unwrap();
        assert_eq!(decode::<Option<String>>(&bytes).unwrap().1, None);
    }

    // ---- golden bytes ----

    /// The exact bytes of one entry of format version 1, as builds before the
    /// checksum wrote it. Kept to show that such an entry, still in Redis
    /// after an upgrade, reads as another version (a miss), never as a value.
    /// (`_` only separates fields for reading; it is not part of the bytes.)
    const GOLDEN_V1: &str = concat!(
        "4345",                               // magic "CE"
        "01",                                 // version 1
        "00",                                 // flags
        "0068e5cf8b010000",                   // created 1_700_000_000_000
        "6052e6cf8b010000",                   // fresh_until 1_700_000_060_000
        "c03ce7cf8b010000",                   // stale_until 1_700_000_120_000
        "80561cd08b010000",                   // fail_safe_until 1_700_003_600_000
        "2a000000",                           // load_millis 42
        "0200",                               // 2 tags
        "0600_757365723a37_0300000000000000", // tag: len 6, "user:7", version 3
        "0500_7573657273_0100000000000000",   // tag: len 5, "users", version 1
        // CBOR map(5):
        "a5",
        "626964_07",                                     // "id": 7
        "646e616d65_63616e6e",                           // "name": "ann"
        "65726f6c6573_82_6561646d696e_636f7073",         // "roles": ["admin", "ops"]
        "65656d61696c_6f616e6e406578616d706c652e636f6d", // "email": "ann@example.com"
        "6673636f726573_83_01_18c8_1a00011170",          // "scores": [1, 200, 70000]
    );

    /// The exact bytes of one entry of format version 2, as builds before
    /// the schema fingerprint wrote it: read as another version (a miss).
    const GOLDEN_V2: &str = concat!(
        "4345",                               // magic "CE"
        "02",                                 // version 2
        "00",                                 // flags
        "0068e5cf8b010000",                   // created 1_700_000_000_000
        "6052e6cf8b010000",                   // fresh_until 1_700_000_060_000
        "c03ce7cf8b010000",                   // stale_until 1_700_000_120_000
        "80561cd08b010000",                   // fail_safe_until 1_700_003_600_000
        "2a000000",                           // load_millis 42
        "0200",                               // 2 tags
        "0600_757365723a37_0300000000000000", // tag: len 6, "user:7", version 3
        "0500_7573657273_0100000000000000",   // tag: len 5, "users", version 1
        // CBOR map(5):
        "a5",
        "626964_07",                                     // "id": 7
        "646e616d65_63616e6e",                           // "name": "ann"
        "65726f6c6573_82_6561646d696e_636f7073",         // "roles": ["admin", "ops"]
        "65656d61696c_6f616e6e406578616d706c652e636f6d", // "email": "ann@example.com"
        "6673636f726573_83_01_18c8_1a00011170",          // "scores": [1, 200, 70000]
        "10dd264951abe7d0", // checksum: XXH3-64 of all the bytes above, 0xd0e7ab514926dd10
    );

    /// The exact bytes of one entry. This freezes format version 3, and
    /// the schema fingerprint of `Profile` (the tracing algorithm): if this
    /// test fails, the layout (or the CBOR encoding of the value, the
    /// checksum, or the fingerprints) changed, and entries already in Redis
    /// would be misread or missed. Do not update the literal; bump
    /// `FORMAT_VERSION` (and keep reading the old version or let old
    /// entries miss) and add a golden test for the new version instead.
    const GOLDEN_V3: &str = concat!(
        "4345",                               // magic "CE"
        "03",                                 // version 3
        "00",                                 // flags: not compressed
        "0068e5cf8b010000",                   // created 1_700_000_000_000
        "6052e6cf8b010000",                   // fresh_until 1_700_000_060_000
        "c03ce7cf8b010000",                   // stale_until 1_700_000_120_000
        "80561cd08b010000",                   // fail_safe_until 1_700_003_600_000
        "2a000000",                           // load_millis 42
        "17c3f680264440e4",                   // schema: Profile's fingerprint
        "0200",                               // 2 tags
        "0600_757365723a37_0300000000000000", // tag: len 6, "user:7", version 3
        "0500_7573657273_0100000000000000",   // tag: len 5, "users", version 1
        // CBOR map(5):
        "a5",
        "626964_07",                                     // "id": 7
        "646e616d65_63616e6e",                           // "name": "ann"
        "65726f6c6573_82_6561646d696e_636f7073",         // "roles": ["admin", "ops"]
        "65656d61696c_6f616e6e406578616d706c652e636f6d", // "email": "ann@example.com"
        "6673636f726573_83_01_18c8_1a00011170",          // "scores": [1, 200, 70000]
        "40fae535beb4ed05",                              // checksum: XXH3-64 of all the bytes above
    );

    /// A compressed entry of format version 3: `[profile(); 3]` without
    /// tags, compressed above 64 bytes.
    const GOLDEN_V3_COMPRESSED: &str = concat!(
        "4345",             // magic "CE"
        "03",               // version 3
        "01",               // flags: compressed
        "0068e5cf8b010000", // created
        "6052e6cf8b010000", // fresh_until
        "c03ce7cf8b010000", // stale_until
        "80561cd08b010000", // fail_safe_until
        "2a000000",         // load_millis 42
        "807a97158d6afcb5", // schema: Vec<Profile>'s fingerprint
        "0000",             // no tags
        "d0000000",         // the CBOR's length: 208
        // The LZ4 block: a token (15 + 55 literals, then a match), the
        // literals (array(3), the first map), the match's offset and length
        // (the two other maps, 138 bytes, copied from 69 bytes back), and
        // the last 5 literals.
        "ff37",
        "83_a5626964_07646e616d65_63616e6e65726f6c6573_826561646d696e636f7073",
        "65656d61696c6f616e6e406578616d706c652e636f6d6673636f72657383_0118c81a00011170",
        "4500_71",
        "60_c81a00011170",
        "831751f84656eb84", // checksum: XXH3-64 of the stored bytes above
    );

    pub(super) fn compressed_entry() -> Vec<u8> {
        let mut h = header(&[]);
        h.schema = schema_of::<Vec<Profile>>();
        let limits = Limits {
            max: usize::MAX,
            compress_above: Some(64),
        };
        encode_within(&h, &vec![profile(); 3], limits).unwrap()
    }

    #[test]
    fn golden_bytes_v3() {
        let bytes = valid_entry();
        let golden = GOLDEN_V3.replace('_', "");
        assert_eq!(
            hex(&bytes),
            golden,
            "format v3 changed: bump FORMAT_VERSION"
        );
        let bytes = unhex(&golden);
        let (h, payload) = decode_header(&bytes).unwrap();
        assert_eq!(h, header(&[("user:7", 3), ("users", 1)]));
        assert!(!payload.is_compressed());
        assert_eq!(decode_value::<Profile>(&payload).unwrap(), profile());
    }

    #[test]
    fn golden_bytes_v3_compressed() {
        let bytes = compressed_entry();
        let golden = GOLDEN_V3_COMPRESSED.replace('_', "");
        assert_eq!(
            hex(&bytes),
            golden,
            "format v3 (compressed) changed: bump FORMAT_VERSION"
        );
        let bytes = unhex(&golden);
        let (h, payload) = decode_header(&bytes).unwrap();
        assert_eq!(h.schema, schema_of::<Vec<Profile>>());
        assert!(payload.is_compressed());
        let uncompressed = encode(&h, &vec![profile(); 3]).unwrap();
        assert!(bytes.len() < uncompressed.len());
        assert_eq!(payload.len(), uncompressed.len() - FIXED_LEN - CHECKSUM_LEN);
        assert_eq!(
            decode_value::<Vec<Profile>>(&payload).unwrap(),
            vec![profile(); 3]
        );
    }

    #[test]
    fn older_versions_read_as_another_version() {
        for (golden, version) in [(GOLDEN_V1, 1), (GOLDEN_V2, 2)] {
            let bytes = unhex(&golden.replace('_', ""));
            assert_eq!(
                decode_header(&bytes).unwrap_err(),
                EntryError::UnsupportedVersion(version)
            );
            assert_eq!(EntryError::UnsupportedVersion(version).fault(), None);
        }
    }

    #[test]
    fn every_single_bit_flip_is_corruption() {
        for value in [
            encode(&header(&[("user:7", 3), ("users", 1)]), &profile()).unwrap(),
            encode(&header(&[]), &"a string").unwrap(),
            encode(&header(&[("t", 9)]), &123_456_789u64).unwrap(),
        ] {
            for bit in 0..value.len() * 8 {
                let mut bytes = value.clone();
                bytes[bit / 8] ^= 1 << (bit % 8);
                let err = decode_header(&bytes).unwrap_err();
                assert!(
                    matches!(err, EntryError::Corrupt { .. }),
                    "bit {bit}: {err:?}"
                );
                assert_eq!(err.fault(), Some(FaultKind::Corrupt));
            }
        }
    }

    // ---- compression ----

    #[test]
    fn compression_follows_the_threshold() {
        let value = vec![profile(); 20];
        let h = header(&[("user:7", 3)]);
        let plain = encode(&h, &value).unwrap();
        let cbor_len = plain.len() - h.encoded_len() - CHECKSUM_LEN;
        let at = |above| {
            let limits = Limits {
                max: usize::MAX,
                compress_above: above,
            };
            encode_within(&h, &value, limits).unwrap()
        };
        // Off, or a threshold the payload does not pass: not compressed.
        assert_eq!(at(None), plain);
        assert_eq!(at(Some(cbor_len)), plain);
        // Passed: compressed, several times smaller, same value back.
        let packed = at(Some(cbor_len - 1));
        assert_eq!(packed[3], FLAG_COMPRESSED);
        assert!(
            packed.len() * 4 < plain.len(),
            "{} vs {}",
            packed.len(),
            plain.len()
        );
        let (back, payload) = decode_header_within(&packed, plain.len()).unwrap();
        assert_eq!(back, h);
        assert_eq!(payload.len(), cbor_len);
        assert_eq!(decode_any::<Vec<Profile>>(&payload).unwrap(), value);
        // A value that does not shrink stays as it is.
        let mut rng = fastrand::Rng::with_seed(3);
        let noise = ByteString(std::iter::repeat_with(|| rng.u8(..)).take(2000).collect());
        let limits = Limits {
            max: usize::MAX,
            compress_above: Some(0),
        };
        assert_eq!(encode_within(&h, &noise, limits).unwrap()[3], 0);
    }

    #[test]
    fn a_compressed_entry_is_bounded_by_the_maximum_entry_size() {
        let bytes = compressed_entry();
        let (_, payload) = decode_header(&bytes).unwrap();
        // Its stored length fits the bound, its CBOR does not: refused
        // before decompressing, counted as oversized.
        let err = decode_header_within(&bytes, payload.len() - 1).unwrap_err();
        assert_eq!(
            err,
            EntryError::InflatesPastMax {
                len: payload.len(),
                max: payload.len() - 1
            }
        );
        assert_eq!(err.fault(), Some(FaultKind::Oversized));
        assert!(decode_header_within(&bytes, payload.len()).is_ok());
        // Written: the bound applies to the CBOR before compression.
        let limits = Limits {
            max: bytes.len() + 10,
            compress_above: Some(64),
        };
        assert!(matches!(
            encode_within(&header(&[]), &vec![profile(); 3], limits).unwrap_err(),
            EntryError::Oversized { .. }
        ));
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_allocating() {
        // A hostile writer (the checksum matches): a tiny block claiming
        // 4 GiB. Refused by the maximum entry size, or, with no bound, by
        // what LZ4 can produce from the block; never allocated.
        let bomb = edited(&compressed_entry(), |b| {
            b.truncate(FIXED_LEN);
            b.extend_from_slice(&u32::MAX.to_le_bytes());
            b.extend_from_slice(&[0x1f, 0x00, 0x01, 0x00, 0x00]);
        });
        assert!(matches!(
            decode_header_within(&bomb, 16 << 20).unwrap_err(),
            EntryError::InflatesPastMax { .. }
        ));
        let err = decode_header(&bomb).unwrap_err();
        assert!(matches!(err, EntryError::Decompress(_)), "{err:?}");
        assert_eq!(err.fault(), Some(FaultKind::Corrupt));
        // A length within the ratio that the block does not produce: an
        // error when decoded, counted as corruption.
        let liar = edited(&compressed_entry(), |b| {
            let at = FIXED_LEN;
            b[at..at + 4].copy_from_slice(&300u32.to_le_bytes());
        });
        let (_, payload) = decode_header(&liar).unwrap();
        let err = decode_value::<Vec<Profile>>(&payload).unwrap_err();
        assert!(matches!(err, EntryError::Decompress(_)), "{err:?}");
        assert_eq!(err.fault(), Some(FaultKind::Corrupt));
        // The compressed flag on a payload that is not compressed.
        let flagged = edited(&valid_entry(), |b| b[3] = FLAG_COMPRESSED);
        let failed = decode_header(&flagged)
            .and_then(|(_, payload)| decode_value::<Profile>(&payload).map(drop));
        assert!(failed.is_err());
    }

    #[test]
    fn a_damaged_compressed_entry_is_corruption() {
        let value = compressed_entry();
        for bit in 0..value.len() * 8 {
            let mut bytes = value.clone();
            bytes[bit / 8] ^= 1 << (bit % 8);
            assert!(matches!(
                decode_header(&bytes).unwrap_err(),
                EntryError::Corrupt { .. }
            ));
        }
        // Hostile blocks behind a matching checksum: an error, never a panic.
        let mut rng = fastrand::Rng::with_seed(0xb10c);
        for _ in 0..5_000 {
            let bytes = edited(&value, |b| {
                let at = rng.usize(FIXED_LEN..b.len());
                b[at] = rng.u8(..);
            });
            if let Ok((_, payload)) = decode_header_within(&bytes, 1 << 20) {
                let _ = decode_value::<Vec<Profile>>(&payload);
                let _ = decode_any::<ciborium::Value>(&payload);
            }
        }
    }

    // ---- schema fingerprints ----

    /// The remote decode's cost with and without the schema check (one
    /// `TypeId` lookup): `cargo test --release -p cache-runtime --lib
    /// measure_the_schema_check -- --ignored --nocapture` (BENCHMARKS.md).
    #[test]
    #[ignore = "a measurement: run in release"]
    fn measure_the_schema_check() {
        let bytes = valid_entry();
        let (_, payload) = decode_header(&bytes).unwrap();
        let n = 1_000_000u32;
        let _ = decode_value::<Profile>(&payload).unwrap();
        for round in 0..3 {
            let start = Instant::now();
            for _ in 0..n {
                std::hint::black_box(
                    decode_any::<Profile>(std::hint::black_box(&payload)).unwrap(),
                );
            }
            let unchecked = start.elapsed() / n;
            let start = Instant::now();
            for _ in 0..n {
                std::hint::black_box(
                    decode_value::<Profile>(std::hint::black_box(&payload)).unwrap(),
                );
            }
            let checked = start.elapsed() / n;
            let start = Instant::now();
            for _ in 0..n {
                std::hint::black_box(schema_of::<Profile>());
            }
            let lookup = start.elapsed() / n;
            eprintln!("round {round}: decode {unchecked:?}, with the schema check {checked:?}, lookup alone {lookup:?}");
        }
        let start = Instant::now();
        let _ = fingerprint::trace::<Profile>();
        eprintln!("first trace of Profile: {:?}", start.elapsed());
    }

    #[test]
    fn another_shape_is_a_schema_mismatch_before_decoding() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Renamed {
            id: u64,
            #[serde(default)]
            full_name: String,
            roles: Vec<String>,
            email: Option<String>,
            scores: Vec<u32>,
        }
        let bytes = valid_entry();
        let (_, payload) = decode_header(&bytes).unwrap();
        // Without the fingerprint, the renamed field reads as its default.
        let silently = decode_any::<Renamed>(&payload).unwrap();
        assert_eq!(silently.full_name, "");
        let err = decode_value::<Renamed>(&payload).unwrap_err();
        assert_eq!(
            err,
            EntryError::SchemaMismatch {
                stored: schema_of::<Profile>(),
                expected: schema_of::<Renamed>(),
            }
        );
        assert_eq!(err.fault(), Some(FaultKind::SchemaMismatch));
        // Checked before the payload is decompressed or decoded.
        let bytes = edited(&compressed_entry(), |b| {
            let at = FIXED_LEN;
            b[at..at + 4].copy_from_slice(&300u32.to_le_bytes());
        });
        let (_, payload) = decode_header(&bytes).unwrap();
        assert!(matches!(
            decode_value::<Vec<Renamed>>(&payload).unwrap_err(),
            EntryError::SchemaMismatch { .. }
        ));
    }

    // ---- rejections ----

    #[test]
    fn rejects_empty_input() {
        assert_eq!(
            decode_header(&[]).unwrap_err(),
            EntryError::Truncated { field: "magic" }
        );
    }

    #[test]
    fn rejects_bad_magic() {
        let bytes = edited(&valid_entry(), |b| b[1] = b'X');
        assert_eq!(
            decode_header(&bytes).unwrap_err(),
            EntryError::BadMagic { found: *b"CX" }
        );
        // The same change to a stored entry is damage: its checksum matches
        // once the magic is put back.
        let mut bytes = valid_entry();
        bytes[1] = b'X';
        assert!(matches!(
            decode_header(&bytes).unwrap_err(),
            EntryError::Corrupt { .. }
        ));
        assert!(matches!(
            decode_header(b"{\"json\": true}").unwrap_err(),
            EntryError::BadMagic { .. }
        ));
    }

    #[test]
    fn rejects_unknown_versions() {
        for v in [0u8, 1, 2, 4, 255] {
            let bytes = edited(&valid_entry(), |b| b[2] = v);
            assert_eq!(
                decode_header(&bytes).unwrap_err(),
                EntryError::UnsupportedVersion(v)
            );
            // Damage to the version byte of a v3 entry is corruption.
            let mut bytes = valid_entry();
            bytes[2] = v;
            assert!(matches!(
                decode_header(&bytes).unwrap_err(),
                EntryError::Corrupt { .. }
            ));
        }
    }

    #[test]
    fn rejects_unknown_flags_in_v3() {
        for flags in [0b10, 0x80, 0xfe, 0xff] {
            let bytes = edited(&valid_entry(), |b| b[3] = flags);
            assert_eq!(
                decode_header(&bytes).unwrap_err(),
                EntryError::BadFlags(flags)
            );
        }
    }

    #[test]
    fn rejects_too_many_tags() {
        // Decode: a count of 257 (and u16::MAX) in an otherwise valid header.
        for count in [257u16, u16::MAX] {
            let bytes = edited(&encode(&header(&[]), &1u8).unwrap(), |b| {
                b[48..50].copy_from_slice(&count.to_le_bytes())
            });
            assert_eq!(
                decode_header(&bytes).unwrap_err(),
                EntryError::TooManyTags(usize::from(count))
            );
        }
        // A count within the limit that the input cannot hold is truncation.
        let bytes = edited(&encode(&header(&[]), &1u8).unwrap(), |b| {
            b[48..50].copy_from_slice(&256u16.to_le_bytes())
        });
        assert_eq!(
            decode_header(&bytes).unwrap_err(),
            EntryError::Truncated { field: "tags" }
        );
        // Encode refuses what decode would refuse.
        let mut h = header(&[]);
        h.tags = (0..=MAX_TAGS as u64)
            .map(|v| (Cow::Borrowed("t"), v))
            .collect();
        assert_eq!(encode(&h, &1u8).unwrap_err(), EntryError::TooManyTags(257));
    }

    #[test]
    fn rejects_tag_name_too_long() {
        // Decode: a declared name length of 1025 with the bytes present.
        let bytes = edited(&encode(&header(&[("t", 1)]), &1u8).unwrap(), |b| {
            b[50..52].copy_from_slice(&1025u16.to_le_bytes());
            b.extend(std::iter::repeat_n(b'a', 2000));
        });
        assert_eq!(
            decode_header(&bytes).unwrap_err(),
            EntryError::TagNameTooLong(1025)
        );
        // Encode.
        let name = "n".repeat(MAX_TAG_NAME_LEN + 1);
        let h = header(&[(&name, 1)]);
        assert_eq!(
            encode(&h, &1u8).unwrap_err(),
            EntryError::TagNameTooLong(1025)
        );
    }

    #[test]
    fn rejects_tag_name_length_past_the_end() {
        let bytes = edited(&encode(&header(&[("t", 1)]), &1u8).unwrap(), |b| {
            b[50..52].copy_from_slice(&1000u16.to_le_bytes())
        });
        assert_eq!(
            decode_header(&bytes).unwrap_err(),
            EntryError::Truncated { field: "tag name" }
        );
    }

    #[test]
    fn rejects_bad_utf8_in_tag_name() {
        let bytes = edited(&valid_entry(), |b| b[52] = 0xff); // first byte of "user:7"
        assert_eq!(decode_header(&bytes).unwrap_err(), EntryError::BadUtf8);
        // invalid 2-byte sequence
        let bytes = edited(&valid_entry(), |b| b[52..54].copy_from_slice(&[0xc3, 0x28]));
        assert_eq!(decode_header(&bytes).unwrap_err(), EntryError::BadUtf8);
    }

    #[test]
    fn rejects_inconsistent_times() {
        let put = |bytes: &mut Vec<u8>, at: usize, v: u64| {
            bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
        };
        // fresh_until (12) after stale_until (20).
        let bytes = edited(&valid_entry(), |b| put(b, 20, 1_700_000_059_999));
        assert!(matches!(
            decode_header(&bytes).unwrap_err(),
            EntryError::InconsistentTimes { .. }
        ));
        // fresh_until after fail_safe_until (28).
        let bytes = edited(&valid_entry(), |b| put(b, 28, 1));
        assert_eq!(
            decode_header(&bytes).unwrap_err(),
            EntryError::InconsistentTimes {
                fresh_until: 1_700_000_060_000,
                stale_until: 1_700_000_120_000,
                fail_safe_until: 1,
            }
        );
        // Equal times are fine (no stale window, no fail-safe).
        let bytes = edited(&valid_entry(), |b| {
            put(b, 20, 1_700_000_060_000);
            put(b, 28, 1_700_000_060_000);
        });
        decode::<Profile>(&bytes).unwrap();
        // Encode refuses them too.
        let mut h = header(&[]);
        h.stale_until = h.fresh_until - 1;
        assert!(matches!(
            encode(&h, &1u8).unwrap_err(),
            EntryError::InconsistentTimes { .. }
        ));
        let mut h = header(&[]);
        h.fail_safe_until = h.fresh_until - 1;
        assert!(matches!(
            encode(&h, &1u8).unwrap_err(),
            EntryError::InconsistentTimes { .. }
        ));
    }

    #[test]
    fn rejects_wrong_type_empty_and_trailing_payload() {
        let bytes = valid_entry();
        let (_, payload) = decode_header(&bytes).unwrap();
        assert!(matches!(
            decode_any::<Vec<u64>>(&payload).unwrap_err(),
            EntryError::CborDecode(_)
        ));
        assert!(matches!(
            decode_cbor_value::<u64>(&[]).unwrap_err(),
            EntryError::CborDecode(_)
        ));
        let mut longer = payload.stored.to_vec();
        longer.push(0x00);
        let err = decode_cbor_value::<Profile>(&longer).unwrap_err();
        assert_eq!(
            err,
            EntryError::CborDecode("1 trailing bytes after the value".to_owned())
        );
        // Not CBOR at all (reserved additional info 28).
        assert!(matches!(
            decode_cbor_value::<u64>(&[0x1c]).unwrap_err(),
            EntryError::CborDecode(_)
        ));
    }

    #[test]
    fn cbor_encode_errors_are_reported() {
        struct Fails;
        impl Serialize for Fails {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        assert!(matches!(
            encode(&header(&[]), &Fails).unwrap_err(),
            EntryError::CborEncode(_)
        ));
    }

    #[test]
    fn a_panicking_serialize_is_an_encode_error() {
        struct Panics;
        impl Serialize for Panics {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                panic!("serialize boom")
            }
        }
        assert_eq!(
            encode(&header(&[]), &Panics).unwrap_err(),
            EntryError::EncodePanicked("serialize boom".to_owned())
        );
    }

    #[test]
    fn a_panicking_deserialize_is_a_corrupt_entry() {
        #[derive(Debug)]
        struct Panics;
        impl<'de> serde::Deserialize<'de> for Panics {
            fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
                panic!("deserialize boom")
            }
        }
        // A long payload (ciborium's path) and a plain string (the fast path).
        let bytes = valid_entry();
        let (_, payload) = decode_header(&bytes).unwrap();
        let err = decode_any::<Panics>(&payload).unwrap_err();
        assert_eq!(
            err,
            EntryError::DecodePanicked("deserialize boom".to_owned())
        );
        assert_eq!(err.fault(), Some(FaultKind::Corrupt));
        let text = encode(&header(&[]), "a string").unwrap();
        let (_, payload) = decode_header(&text).unwrap();
        assert!(matches!(
            decode_any::<Panics>(&payload).unwrap_err(),
            EntryError::DecodePanicked(_)
        ));
    }

    #[test]
    fn errors_display() {
        let all = [
            EntryError::Truncated { field: "magic" },
            EntryError::BadMagic { found: *b"XY" },
            EntryError::UnsupportedVersion(2),
            EntryError::BadFlags(1),
            EntryError::Corrupt {
                stored: 1,
                computed: 2,
            },
            EntryError::TooManyTags(300),
            EntryError::TagNameTooLong(2000),
            EntryError::BadUtf8,
            EntryError::InconsistentTimes {
                fresh_until: 3,
                stale_until: 2,
                fail_safe_until: 1,
            },
            EntryError::CborDecode("x".to_owned()),
            EntryError::CborEncode("y".to_owned()),
            EntryError::Oversized { max: 10 },
            EntryError::OversizedRead { len: 11, max: 10 },
            EntryError::DecodePanicked("z".to_owned()),
            EntryError::EncodePanicked("w".to_owned()),
            EntryError::SchemaMismatch {
                stored: 1,
                expected: 2,
            },
            EntryError::Decompress("v".to_owned()),
            EntryError::InflatesPastMax { len: 12, max: 10 },
        ];
        for e in all {
            assert!(!e.to_string().is_empty());
            assert!(!format!("{e:?}").is_empty());
        }
        assert_eq!(
            EntryError::UnsupportedVersion(1).to_string(),
            "unsupported cache entry format version 1; this build reads version 3"
        );
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let bytes = valid_entry();
        for len in 0..bytes.len() {
            let prefix = &bytes[..len];
            // The checksum covers the whole entry: a cut anywhere fails the
            // header already, as truncation or (past the version) corruption.
            let err = decode_header(prefix).unwrap_err();
            assert!(
                matches!(
                    err,
                    EntryError::Truncated { .. } | EntryError::Corrupt { .. }
                ),
                "len {len}: {err:?}"
            );
        }
        assert_eq!(decode::<Profile>(&bytes).unwrap().1, profile());
    }

    // ---- the maximum entry size ----

    /// A byte buffer serialized as a CBOR byte string (as `serde_bytes` does).
    struct ByteString(Vec<u8>);

    impl Serialize for ByteString {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    #[test]
    fn encoding_stops_at_the_maximum_entry_size() {
        const MAX: usize = 1 << 20;
        let h = header(&[("user:7", 3)]);
        // 64 MB, as an array of integers and as a byte string: both refused,
        // the first after filling the bound, the second at its first write.
        let big = vec![200u8; 64 << 20];
        assert_eq!(
            encode_within(&h, &big, Limits::max(MAX)).unwrap_err(),
            EntryError::Oversized { max: MAX }
        );
        assert_eq!(
            encode_within(&h, &ByteString(big), Limits::max(MAX)).unwrap_err(),
            EntryError::Oversized { max: MAX }
        );
        // An entry of exactly `max` bytes is written; one byte less refuses it.
        let value = ByteString(vec![1; 1000]);
        let whole = encode(&h, &value).unwrap();
        let exact = encode_within(&h, &value, Limits::max(whole.len())).unwrap();
        assert_eq!(exact, whole);
        assert_eq!(exact.capacity(), whole.len(), "no slack past the bound");
        assert_eq!(
            encode_within(&h, &value, Limits::max(whole.len() - 1)).unwrap_err(),
            EntryError::Oversized {
                max: whole.len() - 1
            }
        );
        // A bound smaller than the header (and checksum) refuses everything.
        for max in [0, 7, h.encoded_len() + CHECKSUM_LEN - 1] {
            assert_eq!(
                encode_within(&h, &(), Limits::max(max)).unwrap_err(),
                EntryError::Oversized { max }
            );
        }
        assert!(encode_within(&h, &(), Limits::max(h.encoded_len() + CHECKSUM_LEN + 1)).is_ok());
        // Counted as oversized, not as a decode error.
        assert_eq!(
            EntryError::Oversized { max: 1 }.fault(),
            Some(FaultKind::Oversized)
        );
    }

    #[test]
    fn longer_entries_are_refused_before_decoding() {
        let bytes = valid_entry();
        assert!(decode_header_within(&bytes, bytes.len()).is_ok());
        let err = decode_header_within(&bytes, bytes.len() - 1).unwrap_err();
        assert_eq!(
            err,
            EntryError::OversizedRead {
                len: bytes.len(),
                max: bytes.len() - 1
            }
        );
        assert_eq!(err.fault(), Some(FaultKind::Oversized));
        // Before the checksum: a damaged oversized entry is oversized.
        let damaged = edited(&bytes, |_| ())
            .iter()
            .map(|b| b ^ 1)
            .collect::<Vec<_>>();
        assert!(matches!(
            decode_header_within(&damaged, 10).unwrap_err(),
            EntryError::OversizedRead { .. }
        ));
    }

    // ---- hostile CBOR ----

    /// A CBOR head with major type `major` and an 8-byte argument `n`.
    fn cbor_head(major: u8, n: u64) -> Vec<u8> {
        let mut v = vec![(major << 5) | 27];
        v.extend_from_slice(&n.to_be_bytes());
        v
    }

    #[test]
    fn huge_declared_lengths_fail_fast_without_allocating() {
        // Were any of these lengths honoured with an up-front allocation, the
        // test would abort (capacity overflow or allocation failure of 2^60
        // elements); instead each fails at the end of the input. Strings and
        // byte strings are read in 4 KiB chunks; serde's Vec/HashMap visitors
        // pre-allocate at most 1 MiB whatever the declared length.
        let n = 1u64 << 60;
        let start = Instant::now();
        let array = cbor_head(4, n);
        let map = cbor_head(5, n);
        let bytes = cbor_head(2, n);
        let text = cbor_head(3, n);
        let mut text_with_some = text.clone();
        text_with_some.extend_from_slice(&[b'a'; 10_000]);

        assert!(decode_cbor_value::<Vec<u64>>(&array).is_err());
        assert!(decode_cbor_value::<Vec<u8>>(&array).is_err());
        assert!(decode_cbor_value::<Vec<String>>(&array).is_err());
        assert!(decode_cbor_value::<Vec<()>>(&array).is_err());
        assert!(decode_cbor_value::<HashMap<String, u64>>(&map).is_err());
        assert!(decode_cbor_value::<Vec<u8>>(&bytes).is_err());
        assert!(decode_cbor_value::<String>(&text).is_err());
        assert!(decode_cbor_value::<String>(&text_with_some).is_err());
        assert!(decode_cbor_value::<ciborium::Value>(&array).is_err());
        assert!(decode_cbor_value::<ciborium::Value>(&map).is_err());
        assert!(decode_cbor_value::<ciborium::Value>(&bytes).is_err());
        assert!(decode_cbor_value::<ciborium::Value>(&text).is_err());
        // As a field of a struct, through a full entry.
        let entry = edited(&encode(&header(&[]), &()).unwrap(), |entry| {
            entry.truncate(FIXED_LEN);
            entry.push(0xa1); // map(1)
            entry.extend_from_slice(b"\x65roles");
            entry.extend_from_slice(&array);
        });
        let err = decode::<Profile>(&entry).unwrap_err();
        assert!(matches!(err, EntryError::CborDecode(_)), "{err:?}");
        // An indefinite-length array that never ends.
        let mut open = vec![0x9f];
        open.extend(std::iter::repeat_n(0x01, 1000));
        assert!(decode_cbor_value::<Vec<u8>>(&open).is_err());
        // Generous bound: each case is microseconds; a real 2^60 loop never ends.
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn nesting_is_limited() {
        let nested = |depth: usize| {
            let mut v = vec![0x81; depth]; // array(1), `depth` times
            v.push(0x00);
            v
        };
        assert!(decode_cbor_value::<ciborium::Value>(&nested(MAX_CBOR_DEPTH)).is_ok());
        // The longest payload read with the small scratch buffer.
        let short = nested(MAX_CBOR_DEPTH - 1);
        assert_eq!(short.len(), MAX_CBOR_DEPTH);
        assert!(decode_cbor_value::<ciborium::Value>(&short).is_ok());
        let err = decode_cbor_value::<ciborium::Value>(&nested(MAX_CBOR_DEPTH + 1)).unwrap_err();
        assert_eq!(
            err,
            EntryError::CborDecode("nested deeper than 128 levels".to_owned())
        );
        // Far deeper than the stack could take: still a clean error.
        assert!(decode_cbor_value::<ciborium::Value>(&nested(1_000_000)).is_err());
        let maps = [0xa1, 0x00].repeat(100_000); // map(1) {0: map(1) {0: ...
        assert!(decode_cbor_value::<ciborium::Value>(&maps).is_err());
        let tags = [0xd8, 0x64].repeat(100_000); // tag(100) tag(100) ...
        assert!(decode_cbor_value::<ciborium::Value>(&tags).is_err());
    }

    // ---- fuzz ----

    #[test]
    fn random_inputs_never_panic() {
        let mut rng = fastrand::Rng::with_seed(0x5eed_cafe);
        let valid = valid_entry();
        let check = |bytes: &[u8]| {
            if let Ok((h, payload)) = decode_header(bytes) {
                assert!(h.fresh_until <= h.stale_until);
                assert!(h.fresh_until <= h.fail_safe_until);
                assert!(h.tags.len() <= MAX_TAGS);
                assert!(h.tags.iter().all(|(n, _)| n.len() <= MAX_TAG_NAME_LEN));
                let _ = decode_any::<Profile>(&payload);
                let _ = decode_any::<ciborium::Value>(&payload);
                let _ = decode_any::<Vec<String>>(&payload);
            }
        };

        // Random byte strings, half of them behind a valid magic and version so
        // they get past the first checks.
        for i in 0..20_000 {
            let len = rng.usize(0..160);
            let mut bytes: Vec<u8> = std::iter::repeat_with(|| rng.u8(..)).take(len).collect();
            if i % 2 == 0 && bytes.len() >= 4 {
                bytes[..4].copy_from_slice(&[b'C', b'E', FORMAT_VERSION, 0]);
            }
            check(&bytes);
            // Sealed, they get past the checksum too.
            check(&sealed(bytes.clone()));
            let _ = decode_cbor_value::<ciborium::Value>(&bytes);
        }

        // Random single-byte mutations of a valid entry: refused by the
        // checksum unless the byte did not change; sealed again, they reach
        // the structural checks.
        for _ in 0..20_000 {
            let mut bytes = valid.clone();
            let at = rng.usize(0..bytes.len());
            let was = bytes[at];
            bytes[at] = rng.u8(..);
            assert_eq!(decode_header(&bytes).is_ok(), bytes[at] == was);
            check(&bytes);
            let at = rng.usize(0..valid.len() - CHECKSUM_LEN);
            let byte = rng.u8(..);
            check(&edited(&valid, |b| b[at] = byte));
        }

        // Random mutations of a valid entry, then a random truncation.
        for _ in 0..5_000 {
            let mut bytes = valid.clone();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(0..bytes.len());
                bytes[at] = rng.u8(..);
            }
            bytes.truncate(rng.usize(0..=bytes.len()));
            check(&bytes);
            check(&sealed(bytes));
        }
    }
}
