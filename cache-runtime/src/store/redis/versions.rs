//! Tag version counters that never repeat, and the repair of those a fault
//! left behind.
//!
//! An entry is valid while every tag version it recorded equals the tag's
//! current one, so a version must never come back once it was left behind:
//! otherwise an entry written before an invalidation matches again. A counter
//! that starts at 0 breaks that the moment its key disappears (evicted under
//! an `allkeys-*` policy, or deleted): the next read sees 0 again, or `INCR`
//! climbs back through the old versions. So a missing counter is never read
//! as 0: the first read (or bump) that finds it missing creates it, in one
//! script, at a fresh base taken from the server's clock, `TIME` in
//! microseconds (`sec * 10^6 + usec`, about 1.7e15 today). That base exceeds
//! every version the tag had before, provided the tag was bumped fewer than
//! 10^6 times per second on average since its previous base was taken, and
//! the server's clock did not step back (a failover to a server whose clock
//! is behind). Concurrent creators agree: the script runs atomically, and
//! whoever comes second finds the key and keeps it (`SET NX` semantics).
//!
//! A counter that holds another Redis type (a hash, a list: `MGET` reads it
//! as nil, `GET` and `INCR` fail with `WRONGTYPE`) or a string that is not a
//! version is replaced the same way, logged at `warn` and counted in
//! `store_errors`. A version is 1 to 16 decimal digits, at most
//! [`MAX_VERSION`] (2^53 - 1, the largest integer a Lua number holds exactly),
//! and the Rust and the Lua side agree on that test, so whatever a read
//! rejects the script replaces.
//!
//! A counter that is present but went back (a failover to a replica that
//! missed the last `INCR`s, a restore from an older snapshot) would let
//! `INCR` land on a version live entries recorded, and serve them again
//! after the invalidation. So a bump sets `max(current + 1, TIME in µs)`,
//! in the same script and round trip: every version handed out before was
//! at most the clock of its bump (plus the bumps within one microsecond),
//! so the new one exceeds them all, whatever the store lost, on the same
//! two conditions as above. A tag bumped less than once a second therefore
//! moves by the time elapsed, not by one; versions stay below
//! [`MAX_VERSION`] until the year 2255.
//!
//! Reads stay at one round trip on the hit path: versions come with the
//! entry in one `MGET` (or concurrent `GET`s in a cluster), and the script
//! runs, as a second round trip, only for the keys that came back missing or
//! broken. On a standalone server it takes all of them in one call; in a
//! cluster each key is its own call (the keys sit in different slots, and a
//! script may only touch its own slot), all concurrently. Scripts may call
//! `TIME` before writing: Redis 5 and later replicate a script's effects, not
//! the script (the only mode in Redis 7); the script asks for that mode
//! itself on Redis 3.2 and 4 (`redis.replicate_commands`, a no-op since).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use futures_util::future::join_all;
use redis::aio::ConnectionLike;
use redis::{Script, ToRedisArgs, Value};

use super::backend;
use crate::store::StoreError;

/// The largest version a counter holds: Lua numbers are doubles.
pub(super) const MAX_VERSION: u64 = (1 << 53) - 1;

/// Reads (`ARGV[1]` = `read`) or increments (`bump`) each of `KEYS`,
/// creating or replacing those that hold no version. A bump never gives
/// less than the server's clock in microseconds: `max(current + 1, TIME)`. Per key: `{version,
/// state}`, state 0 as found, 1 created (missing), 2 replaced (wrong type or
/// not a version). Read versions come back as strings (exact), bumped ones as
/// the integers `INCR` gave (exact below 2^53).
static VERSIONS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.replicate_commands then redis.replicate_commands() end
local now = redis.call('TIME')
local base = now[1] .. string.format('%06d', tonumber(now[2]))
local out = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key).ok
  local v = false
  if kind == 'string' then
    v = redis.call('GET', key)
    if not (#v <= 16 and string.match(v, '^%d+$') and tonumber(v) <= 9007199254740991) then
      v = false
    end
  end
  local state = 0
  if not v then
    if kind == 'none' then state = 1 else state = 2 end
    redis.call('SET', key, base)
    v = base
  end
  if ARGV[1] == 'bump' then
    v = redis.call('INCR', key)
    if v < tonumber(base) then
      redis.call('SET', key, base)
      v = base
    end
  end
  out[i] = {v, state}
end
return out
"#,
    )
});

/// What the script does to each key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// Reads the version (creating or replacing it when needed).
    Read,
    /// Increments it (an invalidation), after the same repair.
    Bump,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Read => "read",
            Mode::Bump => "bump",
        }
    }
}

/// A stored version, or `None` when `value` is no version (missing, another
/// type, not 1 to 16 digits, above [`MAX_VERSION`]): the script repairs it.
pub(super) fn parse(value: &Value) -> Option<u64> {
    match value {
        Value::BulkString(bytes) => parse_digits(bytes),
        Value::SimpleString(text) => parse_digits(text.as_bytes()),
        Value::Int(n) => u64::try_from(*n).ok().filter(|v| *v <= MAX_VERSION),
        _ => None,
    }
}

fn parse_digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 16 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = bytes
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    (v <= MAX_VERSION).then_some(v)
}

/// Runs the script on `keys`: one call on a standalone server, one per key
/// (concurrently) in a cluster. The versions, in the order of `keys`; each
/// replaced key is logged and added to `repairs`.
pub(super) async fn run<C, K>(
    conn: &C,
    cluster: bool,
    keys: &[K],
    mode: Mode,
    repairs: &AtomicU64,
) -> Result<Vec<u64>, StoreError>
where
    C: ConnectionLike + Clone + Send,
    K: ToRedisArgs + Sync,
{
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let replies: Vec<Value> = if cluster {
        let each = keys.iter().map(|key| {
            let mut conn = conn.clone();
            async move {
                let mut call = VERSIONS.prepare_invoke();
                call.key(key).arg(mode.arg());
                call.invoke_async::<Value>(&mut conn).await
            }
        });
        let mut out = Vec::with_capacity(keys.len());
        for reply in join_all(each).await {
            out.extend(per_key(reply.map_err(|e| backend(e, None))?, 1)?);
        }
        out
    } else {
        let mut call = VERSIONS.prepare_invoke();
        for key in keys {
            call.key(key);
        }
        call.arg(mode.arg());
        let mut conn = conn.clone();
        let reply: Value = call
            .invoke_async(&mut conn)
            .await
            .map_err(|e| backend(e, None))?;
        per_key(reply, keys.len())?
    };
    keys.iter()
        .zip(replies)
        .map(|(key, reply)| version_of_reply(key, reply, repairs))
        .collect()
}

/// The script's reply as one `{version, state}` pair per key, `expected` of them.
fn per_key(reply: Value, expected: usize) -> Result<Vec<Value>, StoreError> {
    match reply {
        Value::Array(items) if items.len() == expected => Ok(items),
        other => Err(unexpected(&other)),
    }
}

#[cold]
fn unexpected(reply: &Value) -> StoreError {
    StoreError::Backend(format!("unexpected tag version script reply: {reply:?}"))
}

/// One key's `{version, state}`.
fn version_of_reply<K: ToRedisArgs>(
    key: &K,
    reply: Value,
    repairs: &AtomicU64,
) -> Result<u64, StoreError> {
    let Value::Array(pair) = &reply else {
        return Err(unexpected(&reply));
    };
    let (Some(version), Some(state)) = (pair.first().and_then(parse), pair.get(1)) else {
        return Err(unexpected(&reply));
    };
    if matches!(state, Value::Int(2)) {
        repairs.fetch_add(1, Ordering::Relaxed);
        let name = key
            .to_redis_args()
            .first()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default();
        tracing::warn!(
            key = %name,
            version,
            "a tag version key held another type or no version: replaced by a fresh version"
        );
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_one_to_sixteen_digits_up_to_two_to_the_53() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(parse(&bulk("0")), Some(0));
        assert_eq!(parse(&bulk("42")), Some(42));
        assert_eq!(parse(&bulk("007")), Some(7));
        assert_eq!(
            parse(&bulk("1718000000123456")),
            Some(1_718_000_000_123_456)
        );
        assert_eq!(parse(&bulk("9007199254740991")), Some(MAX_VERSION));
        for broken in [
            "",
            "garbage",
            "-1",
            "+1",
            " 1",
            "1.5",
            "9007199254740992",
            "12345678901234567",
        ] {
            assert_eq!(parse(&bulk(broken)), None, "{broken:?}");
        }
        assert_eq!(parse(&Value::Nil), None);
        assert_eq!(parse(&Value::Int(5)), Some(5));
        assert_eq!(parse(&Value::Int(-5)), None);
        assert_eq!(parse(&Value::Int(1 << 53)), None);
        assert_eq!(parse(&Value::Array(vec![])), None);
    }

    #[test]
    fn a_today_base_fits_a_version() {
        // `TIME` in microseconds, in the year 2255, still fits.
        let micros_2255: u64 = 9_000_000_000 * 1_000_000;
        assert!(micros_2255 <= MAX_VERSION);
    }

    #[test]
    fn replies_are_checked_and_replacements_counted() {
        let repairs = AtomicU64::new(0);
        let pair = |v: Value, state: i64| Value::Array(vec![v, Value::Int(state)]);
        let key = "ns#tag:t".to_string();
        let found = pair(Value::BulkString(b"12".to_vec()), 0);
        assert_eq!(version_of_reply(&key, found, &repairs).unwrap(), 12);
        let created = pair(Value::Int(1_718_000_000_000_001), 1);
        assert_eq!(
            version_of_reply(&key, created, &repairs).unwrap(),
            1_718_000_000_000_001
        );
        assert_eq!(
            repairs.load(Ordering::Relaxed),
            0,
            "a missing key is no fault"
        );
        let replaced = pair(Value::BulkString(b"99".to_vec()), 2);
        assert_eq!(version_of_reply(&key, replaced, &repairs).unwrap(), 99);
        assert_eq!(repairs.load(Ordering::Relaxed), 1);
        let garbage = pair(Value::BulkString(b"x".to_vec()), 0);
        assert!(version_of_reply(&key, garbage, &repairs).is_err());
        assert!(version_of_reply(&key, Value::Nil, &repairs).is_err());
        assert!(per_key(Value::Array(vec![Value::Nil]), 2).is_err());
    }
}
