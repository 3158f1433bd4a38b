//! The backplane's messages: their format (CBOR) and their channel.

/// One message: who sent it, the tags it invalidates and their new versions
/// (in the same order; absent from messages of earlier builds, which makes
/// receivers forget those tags' versions instead), and the manual-API keys
/// (or the `delete_matching` pattern) a write changed, with the write's
/// number (`coherence::key_writes`).
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Message {
    pub(crate) origin: u64,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) versions: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) write: Option<u64>,
}

/// A message for an invalidation of `tags`, now at `versions`.
pub(crate) fn encode(origin: u64, tags: &[String], versions: &[u64]) -> Option<Vec<u8>> {
    to_bytes(&Message {
        origin,
        tags: tags.to_vec(),
        versions: versions.to_vec(),
        keys: Vec::new(),
        pattern: None,
        write: None,
    })
}

/// A message for a write by key (see `coherence::key_writes`).
pub(crate) fn encode_writes(
    origin: u64,
    keys: Vec<String>,
    pattern: Option<String>,
    write: Option<u64>,
) -> Option<Vec<u8>> {
    to_bytes(&Message {
        origin,
        tags: Vec::new(),
        versions: Vec::new(),
        keys,
        pattern,
        write,
    })
}

fn to_bytes(message: &Message) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::into_writer(message, &mut out).ok()?;
    Some(out)
}

/// The message in `bytes`; `None` for garbage.
pub(crate) fn decode(bytes: &[u8]) -> Option<Message> {
    ciborium::from_reader(bytes).ok()
}

/// The channel of a namespace.
pub(crate) fn channel(namespace: &str) -> String {
    format!("{namespace}#invalidations")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_rejected() {
        let bytes = encode(7, &["a".into(), "b:c".into()], &[3, 4]).unwrap();
        let m = decode(&bytes).unwrap();
        assert_eq!(
            (m.origin, m.tags, m.versions),
            (7, vec!["a".to_string(), "b:c".to_string()], vec![3, 4])
        );
        assert!(decode(b"\xff\x00garbage").is_none());
    }

    #[test]
    fn messages_without_versions_still_decode() {
        #[derive(serde::Serialize)]
        struct Before {
            origin: u64,
            tags: Vec<String>,
        }
        let mut bytes = Vec::new();
        let before = Before {
            origin: 1,
            tags: vec!["a".into()],
        };
        ciborium::into_writer(&before, &mut bytes).unwrap();
        let m = decode(&bytes).unwrap();
        assert_eq!((m.tags, m.versions), (vec!["a".to_string()], vec![]));
    }
}
