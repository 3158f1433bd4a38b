//! The byte format's tests: round trips, the golden bytes of each
//! version, every rejection, compression, schema checks, and fuzzing.

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
            std::hint::black_box(decode_any::<Profile>(std::hint::black_box(&payload)).unwrap());
        }
        let unchecked = start.elapsed() / n;
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(decode_value::<Profile>(std::hint::black_box(&payload)).unwrap());
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
