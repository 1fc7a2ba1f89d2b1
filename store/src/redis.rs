//! The Redis backend (Valkey too): the store several replicas share (R63).
//!
//! Keys are `{prefix}:{kind}:{hex key}` (prefix `cg` by default). A value is stored as
//! the 8-byte big-endian `expires_at` followed by the record, with a TTL of
//! `expires_at - now`: the TTL reclaims memory, while the stored expiry makes reads agree
//! with the caller's `now` exactly as the other backends do, even when the caller's clock
//! and the server's differ by a little.
//!
//! * `take` is `GETDEL`: one command, so of N replicas taking the same code exactly one
//!   gets it.
//! * `put` is `SET … PX`.
//! * `put_if_absent` and `apply` are one Lua script: a plain `SET NX` would treat an
//!   entry the caller sees as expired (but the server has not reaped yet) as present. The
//!   script checks every key before its first write (so an error leaves nothing half
//!   done) and declares itself with a `#!lua` shebang, so that an out-of-memory server
//!   refuses it before it starts rather than in the middle. Needs Redis 7 or Valkey.
//! * The [`ConnectionManager`] reconnects after the server restarts or the network
//!   drops; a call made while the server is unreachable fails with
//!   [`StoreError::Redis`] (the host answers 503), it never blocks for long or panics.
//!
//! A batch's keys must live on one node: with Redis Cluster, give a prefix with a hash
//! tag such as `{cg}` so every key hashes to the same slot.

use std::fmt::Write as _;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};

use crate::contract::{
    Key, Kind, Op, OpResult, Store, StoreError, StoreFuture, UnixTime, validate_write,
};

/// Options of [`RedisStore::connect`].
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// The first segment of every key (several deployments can share one server).
    pub prefix: String,
    /// How long one connection attempt may take.
    pub connection_timeout: Duration,
    /// How long one command may wait for its answer.
    pub response_timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: "cg".into(),
            connection_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
        }
    }
}

/// One batch, atomically. KEYS are the ops' keys in order; ARGV[1] is `now`, then each
/// op's code (`put`, `pia`, `take`, `get`, `del`) and, for the two puts, value and TTL.
const BATCH_SCRIPT: &str = r#"#!lua
local now = tonumber(ARGV[1])
local function expires(v)
  local e = 0
  for i = 1, 8 do e = e * 256 + string.byte(v, i) end
  return e
end
-- First pass, no writes: every code known, every existing value one of ours.
local a = 2
for i = 1, #KEYS do
  local code = ARGV[a]
  if code == 'put' or code == 'pia' then a = a + 3
  elseif code == 'take' or code == 'get' or code == 'del' then a = a + 1
  else return redis.error_reply('cg: unknown op ' .. tostring(code)) end
  local len = redis.call('STRLEN', KEYS[i])
  if len > 0 and len < 8 then return redis.error_reply('cg: corrupt entry at op ' .. i) end
end
local results = {}
a = 2
for i = 1, #KEYS do
  local key, code = KEYS[i], ARGV[a]
  if code == 'put' or code == 'pia' then
    local write = true
    if code == 'pia' then
      local cur = redis.call('GET', key)
      write = not (cur and expires(cur) > now)
    end
    if write then redis.call('SET', key, ARGV[a + 1], 'PX', ARGV[a + 2]) end
    results[i] = write and 1 or 0
    a = a + 3
  else
    local cur = false
    if code ~= 'del' then cur = redis.call('GET', key) end
    if code ~= 'get' then redis.call('DEL', key) end
    results[i] = cur
    a = a + 1
  end
end
return results
"#;

/// The Redis backend. Cheap to clone: clones share one multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    batch: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`, `rediss://` for TLS where the `redis`
    /// crate is built with it). Fails if the server cannot be reached now.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(options.connection_timeout)
            .set_response_timeout(options.response_timeout)
            // Reconnection: two retries about a second apart (the library's shortest
            // delay, with jitter). A call while the server is down fails within seconds
            // instead of queueing behind a long backoff; the next call tries again.
            .set_number_of_retries(2)
            .set_factor(2)
            .set_max_delay(1_000);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        tracing::info!(prefix = %options.prefix, "redis store connected");
        Ok(RedisStore {
            conn,
            prefix: options.prefix,
            batch: Script::new(BATCH_SCRIPT),
        })
    }

    /// The Redis key of `(kind, key)`.
    pub fn redis_key(&self, kind: Kind, key: &Key) -> String {
        let mut name = String::with_capacity(self.prefix.len() + kind.label().len() + 66);
        name.push_str(&self.prefix);
        name.push(':');
        name.push_str(kind.label());
        name.push(':');
        for byte in key {
            let _ = write!(name, "{byte:02x}");
        }
        name
    }

    async fn run_batch(&self, ops: Vec<Op>, now: UnixTime) -> Result<Vec<OpResult>, StoreError> {
        for op in &ops {
            op.validate(now)?;
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.batch.prepare_invoke();
        invocation.arg(now.secs());
        for op in &ops {
            invocation.key(self.redis_key(op.kind(), op.key()));
            match op {
                Op::Put {
                    value, expires_at, ..
                }
                | Op::PutIfAbsent {
                    value, expires_at, ..
                } => {
                    let code = if matches!(op, Op::Put { .. }) {
                        "put"
                    } else {
                        "pia"
                    };
                    invocation
                        .arg(code)
                        .arg(encode(value, *expires_at))
                        .arg(ttl_ms(*expires_at, now));
                }
                Op::Take { .. } => _ = invocation.arg("take"),
                Op::Get { .. } => _ = invocation.arg("get"),
                Op::Delete { .. } => _ = invocation.arg("del"),
            }
        }
        let replies: Vec<Value> = invocation.invoke_async(&mut self.conn.clone()).await?;
        if replies.len() != ops.len() {
            return Err(StoreError::Protocol(format!(
                "{} ops, {} replies",
                ops.len(),
                replies.len()
            )));
        }
        ops.iter()
            .zip(replies)
            .map(|(op, reply)| {
                Ok(match op {
                    Op::Put { .. } => OpResult::Put,
                    Op::PutIfAbsent { .. } => {
                        OpResult::PutIfAbsent(redis::from_redis_value::<i64>(&reply)? == 1)
                    }
                    Op::Take { kind, .. } => {
                        OpResult::Take(decode(*kind, redis::from_redis_value(&reply)?, now)?)
                    }
                    Op::Get { kind, .. } => {
                        OpResult::Get(decode(*kind, redis::from_redis_value(&reply)?, now)?)
                    }
                    Op::Delete { .. } => OpResult::Delete,
                })
            })
            .collect()
    }
}

/// Milliseconds until `expires_at`; validation guarantees at least one second.
fn ttl_ms(expires_at: UnixTime, now: UnixTime) -> u64 {
    expires_at.secs().saturating_sub(now.secs()).max(1) * 1000
}

fn encode(value: &[u8], expires_at: UnixTime) -> Vec<u8> {
    let mut stored = Vec::with_capacity(8 + value.len());
    stored.extend_from_slice(&expires_at.secs().to_be_bytes());
    stored.extend_from_slice(value);
    stored
}

/// The record of a stored value if it is live at `now`.
fn decode(
    kind: Kind,
    stored: Option<Vec<u8>>,
    now: UnixTime,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(mut stored) = stored else {
        return Ok(None);
    };
    let Some(header) = stored.first_chunk::<8>() else {
        return Err(StoreError::Corrupt(kind));
    };
    if u64::from_be_bytes(*header) <= now.secs() {
        return Ok(None);
    }
    stored.drain(..8);
    Ok(Some(stored))
}

impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn apply(&self, ops: Vec<Op>, now: UnixTime) -> StoreFuture<'_, Vec<OpResult>> {
        Box::pin(self.run_batch(ops, now))
    }

    /// Redis expires entries itself (the TTLs); nothing to sweep.
    fn sweep(&self, _now: UnixTime) -> StoreFuture<'_, u64> {
        Box::pin(async { Ok(0) })
    }

    fn put(
        &self,
        kind: Kind,
        key: Key,
        value: Vec<u8>,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            validate_write(kind, value.len(), expires_at, now)?;
            redis::cmd("SET")
                .arg(self.redis_key(kind, &key))
                .arg(encode(&value, expires_at))
                .arg("PX")
                .arg(ttl_ms(expires_at, now))
                .query_async::<()>(&mut self.conn.clone())
                .await?;
            Ok(())
        })
    }

    fn take(&self, kind: Kind, key: Key, now: UnixTime) -> StoreFuture<'_, Option<Vec<u8>>> {
        Box::pin(async move {
            kind.validate()?;
            let stored: Option<Vec<u8>> = redis::cmd("GETDEL")
                .arg(self.redis_key(kind, &key))
                .query_async(&mut self.conn.clone())
                .await?;
            decode(kind, stored, now)
        })
    }

    fn get(&self, kind: Kind, key: Key, now: UnixTime) -> StoreFuture<'_, Option<Vec<u8>>> {
        Box::pin(async move {
            kind.validate()?;
            let stored: Option<Vec<u8>> = redis::cmd("GET")
                .arg(self.redis_key(kind, &key))
                .query_async(&mut self.conn.clone())
                .await?;
            decode(kind, stored, now)
        })
    }

    fn delete(&self, kind: Kind, key: Key, _now: UnixTime) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            kind.validate()?;
            redis::cmd("DEL")
                .arg(self.redis_key(kind, &key))
                .query_async::<()>(&mut self.conn.clone())
                .await?;
            Ok(())
        })
    }
}
