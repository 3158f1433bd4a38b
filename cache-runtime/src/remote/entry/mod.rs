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
mod tests;
