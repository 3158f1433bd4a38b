//! The statements, one per operation. Every value is a bound parameter;
//! the only names written into the text are the tables', which are fixed
//! (`schema`). Times are the server's clock, so that every process agrees
//! on expiry: milliseconds (entries, locks) and microseconds (tag versions)
//! since the epoch.

/// The server's clock in milliseconds.
macro_rules! now_ms {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::int8"
    };
}

/// The server's clock in microseconds: the base of a new tag version.
macro_rules! now_us {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000000)::int8"
    };
}

/// The hit: an entry alone (`$1` key).
pub(super) const FETCH_ONE: &str = concat!(
    "SELECT value FROM cache_runtime_entries WHERE key = $1 AND expires_at > ",
    now_ms!()
);

/// An entry and its tags' versions in one round trip (`$1` key, `$2` tag
/// keys): the versions in the order asked, NULL for a missing counter.
pub(super) const FETCH_TAGGED: &str = concat!(
    "SELECT (SELECT value FROM cache_runtime_entries WHERE key = $1 AND expires_at > ",
    now_ms!(),
    "), ARRAY(SELECT t.version FROM unnest($2::bytea[]) WITH ORDINALITY AS k(key, n) ",
    "LEFT JOIN cache_runtime_tags t ON t.key = k.key ORDER BY k.n)"
);

/// Many entries (`$1`) and many tags' versions (`$2`), each in order.
pub(super) const FETCH_BATCH: &str = concat!(
    "SELECT ARRAY(SELECT e.value FROM unnest($1::bytea[]) WITH ORDINALITY AS k(key, n) ",
    "LEFT JOIN cache_runtime_entries e ON e.key = k.key AND e.expires_at > ",
    now_ms!(),
    " ORDER BY k.n), ",
    "ARRAY(SELECT t.version FROM unnest($2::bytea[]) WITH ORDINALITY AS k(key, n) ",
    "LEFT JOIN cache_runtime_tags t ON t.key = k.key ORDER BY k.n)"
);

/// Stores `$2` under `$1` for `$3` ms.
pub(super) const PUT: &str = concat!(
    "INSERT INTO cache_runtime_entries (key, value, expires_at) VALUES ($1, $2, ",
    now_ms!(),
    " + $3) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
);

/// [`PUT`] for arrays of keys, values and TTLs (keys distinct).
pub(super) const PUT_MANY: &str = concat!(
    "INSERT INTO cache_runtime_entries (key, value, expires_at) SELECT k, v, ",
    now_ms!(),
    " + t FROM unnest($1::bytea[], $2::bytea[], $3::int8[]) AS u(k, v, t) ",
    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
);

/// Removes `$1`; a row if there was one, true if it had not expired.
pub(super) const DELETE: &str = concat!(
    "DELETE FROM cache_runtime_entries WHERE key = $1 RETURNING expires_at > ",
    now_ms!()
);

/// The versions of the distinct keys of `$1`, creating the missing ones
/// at the clock. A counter another connection creates meanwhile reads as
/// NULL (it is not in this statement's snapshot): the caller asks again.
pub(super) const VERSIONS: &str = concat!(
    "WITH k AS (SELECT DISTINCT key FROM unnest($1::bytea[]) AS u(key)), ",
    "ins AS (INSERT INTO cache_runtime_tags (key, version) SELECT key, ",
    now_us!(),
    " FROM k ORDER BY key ON CONFLICT (key) DO NOTHING RETURNING key, version) ",
    "SELECT k.key, COALESCE(ins.version, t.version) FROM k ",
    "LEFT JOIN ins ON ins.key = k.key LEFT JOIN cache_runtime_tags t ON t.key = k.key"
);

/// Bumps the distinct keys of `$1` (in key order, so that concurrent bumps
/// lock rows in one order and never deadlock): above the old version and
/// at least the clock, so a counter restored from an older copy still moves
/// past every version handed out.
pub(super) const BUMP: &str = concat!(
    "INSERT INTO cache_runtime_tags AS t (key, version) ",
    "SELECT key, ",
    now_us!(),
    " FROM (SELECT DISTINCT key FROM unnest($1::bytea[]) AS u(key)) d ORDER BY key ",
    "ON CONFLICT (key) DO UPDATE SET version = GREATEST(t.version + 1, EXCLUDED.version) ",
    "RETURNING key, version"
);

/// Takes lock `$1` for token `$2` for `$3` ms unless a live one holds it;
/// a row when taken.
pub(super) const TRY_LOCK: &str = concat!(
    "INSERT INTO cache_runtime_locks AS l (key, token, expires_at) VALUES ($1, $2, ",
    now_ms!(),
    " + $3) ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at ",
    "WHERE l.expires_at <= ",
    now_ms!(),
    " RETURNING 1"
);

/// Extends lock `$1` of token `$2` to `$3` ms from now if still held.
pub(super) const EXTEND_LOCK: &str = concat!(
    "UPDATE cache_runtime_locks SET expires_at = ",
    now_ms!(),
    " + $3 WHERE key = $1 AND token = $2 AND expires_at > ",
    now_ms!()
);

/// Releases lock `$1` if token `$2` still holds it.
pub(super) const UNLOCK: &str = concat!(
    "DELETE FROM cache_runtime_locks WHERE key = $1 AND token = $2 AND expires_at > ",
    now_ms!()
);

/// Adds `$2` to counter `$1` (0 when absent); the new value.
pub(super) const INCREMENT: &str =
    "INSERT INTO cache_runtime_counters AS c (key, value) VALUES ($1, $2) \
     ON CONFLICT (key) DO UPDATE SET value = c.value + EXCLUDED.value RETURNING value";

/// Counter `$1`, unchanged.
pub(super) const COUNTER_VALUE: &str = "SELECT value FROM cache_runtime_counters WHERE key = $1";

/// One page of live entry keys in `[$1, $2)` after `$3`, at most `$4`, in
/// key order (the primary key's index: no table lock, no sort).
pub(super) const SCAN: &str = concat!(
    "SELECT key FROM cache_runtime_entries WHERE key >= $1 AND key < $2 AND key > $3 ",
    "AND expires_at > ",
    now_ms!(),
    " ORDER BY key LIMIT $4"
);

/// Deletes the entries `$1`; how many of them were live.
pub(super) const UNLINK: &str = concat!(
    "WITH d AS (DELETE FROM cache_runtime_entries WHERE key = ANY($1::bytea[]) RETURNING expires_at) ",
    "SELECT count(*) FILTER (WHERE expires_at > ",
    now_ms!(),
    ") FROM d"
);

/// Deletes at most `$1` expired entries, skipping rows others hold.
pub(super) const SWEEP_ENTRIES: &str = concat!(
    "DELETE FROM cache_runtime_entries WHERE ctid = ANY(ARRAY(SELECT ctid FROM cache_runtime_entries ",
    "WHERE expires_at <= ",
    now_ms!(),
    " ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED))"
);

/// Deletes at most `$1` expired locks, as [`SWEEP_ENTRIES`].
pub(super) const SWEEP_LOCKS: &str = concat!(
    "DELETE FROM cache_runtime_locks WHERE ctid = ANY(ARRAY(SELECT ctid FROM cache_runtime_locks ",
    "WHERE expires_at <= ",
    now_ms!(),
    " LIMIT $1 FOR UPDATE SKIP LOCKED))"
);

/// A round trip that does nothing.
pub(super) const PING: &str = "SELECT 1";

/// Sends `$2` on channel `$1`.
pub(super) const NOTIFY: &str = "SELECT pg_notify($1, $2)";
