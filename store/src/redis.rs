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
//!   script checks every value it reads before its first write (so an error leaves
//!   nothing half done) and declares itself with a `#!lua` shebang, so that an
//!   out-of-memory server refuses it before it starts rather than in the middle. Needs
//!   Redis 7 or Valkey.
//! * A kind with a quota keeps its index in the same script, so its `take`, `put` and
//!   `delete` go through the script too.
//! * The [`ConnectionManager`] reconnects after the server restarts or the network
//!   drops; a call made while the server is unreachable fails with
//!   [`StoreError::Redis`] (the host answers 503), it never blocks for long or panics.
//!
//! A batch's keys must live on one node: with Redis Cluster, give a prefix with a hash
//! tag such as `{cg}` so every key hashes to the same slot.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};

use crate::contract::{
    Key, Kind, Op, OpResult, Quotas, Store, StoreError, StoreFuture, UnixTime, validate_write,
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
    /// The most live entries per kind (none by default). A kind with a quota also keeps
    /// an index of its entries (a sorted set by expiry under `PREFIX:index:KIND`), and
    /// all its writes go through the batch script; set quotas from the first start, since
    /// entries written before are not in the index.
    pub quotas: Quotas,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: "cg".into(),
            connection_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            quotas: Quotas::none(),
        }
    }
}

/// One batch, atomically. `KEYS[i]` is op i's key and `KEYS[n + i]` the index of its
/// kind (see [`RedisOptions::quotas`]); ARGV[1] is `now`, then per op its code (`put`,
/// `pia`, `take`, `get`, `del`), its kind's quota (0: none) and, for the two puts, value,
/// TTL and expiry (the index's score, as a decimal string: no number conversions in Lua).
/// Every check runs before the first write, since Redis does not roll a script back: a
/// refused batch writes nothing but the removal of expired index members.
///
/// What it costs is what redis-server spends per flow (most of it Lua calling into
/// Redis), so each op reads its key once: `pia`, `take` and `get` read the value in the
/// first pass and use it in the second unless an earlier op of the batch wrote that key;
/// a plain `put` reads nothing unless it counts against a quota; and an index drops its
/// expired members only when it looks full.
const BATCH_SCRIPT: &str = r#"#!lua
local now = tonumber(ARGV[1])
local n = #KEYS / 2
local function expires(v)
  local e = 0
  for i = 1, 8 do e = e * 256 + string.byte(v, i) end
  return e
end
-- First pass, no writes: every code known, every existing value one of ours, and the
-- new entries of each kind with a quota counted.
local a, held, adding, count, seen, pruned = 2, {}, {}, {}, {}, {}
for i = 1, n do
  local key, code, limit = KEYS[i], ARGV[a], tonumber(ARGV[a + 1])
  local put = code == 'put' or code == 'pia'
  if put then a = a + 5
  elseif code == 'take' or code == 'get' or code == 'del' then a = a + 2
  else return redis.error_reply('cg: unknown op ' .. tostring(code)) end
  local len = 0
  if code == 'pia' or code == 'take' or code == 'get' then
    local cur = redis.call('GET', key)
    held[i] = cur
    if cur then len = #cur end
  elseif put and limit > 0 then
    len = redis.call('STRLEN', key)
  end
  if len > 0 and len < 8 then return redis.error_reply('cg: corrupt entry at op ' .. i) end
  if limit > 0 and put and len == 0 and not seen[key] then
    seen[key] = true
    local index = KEYS[n + i]
    adding[index] = (adding[index] or 0) + 1
    if not count[index] then count[index] = redis.call('ZCARD', index) end
    if count[index] + adding[index] > limit and not pruned[index] then
      pruned[index] = true
      redis.call('ZREMRANGEBYSCORE', index, '-inf', ARGV[1])
      count[index] = redis.call('ZCARD', index)
    end
    if count[index] + adding[index] > limit then
      return redis.error_reply('CGQUOTA ' .. i)
    end
  end
end
local results, wrote = {}, {}
a = 2
for i = 1, n do
  local key, code, limit = KEYS[i], ARGV[a], tonumber(ARGV[a + 1])
  local cur = held[i]
  if wrote[key] and code ~= 'put' and code ~= 'del' then cur = redis.call('GET', key) end
  if code == 'put' or code == 'pia' then
    local write = code == 'put' or not (cur and expires(cur) > now)
    if write then
      redis.call('SET', key, ARGV[a + 2], 'PX', ARGV[a + 3])
      if limit > 0 then redis.call('ZADD', KEYS[n + i], ARGV[a + 4], key) end
      wrote[key] = true
    end
    results[i] = write and 1 or 0
    a = a + 5
  else
    if code == 'del' or (code == 'take' and cur) then
      redis.call('DEL', key)
      if limit > 0 then redis.call('ZREM', KEYS[n + i], key) end
      wrote[key] = true
    end
    results[i] = cur or false
    a = a + 2
  end
end
return results
"#;

/// A lone take of a kind with a quota (every consent, sign-in in flight and code is
/// taken so), with the batch script's keys, arguments and reply. The batch script does the
/// same at about twice redis-server's time (its set-up is for batches), and what
/// redis-server spends per flow bounds a replica's flows per second on a shared core.
const TAKE_SCRIPT: &str = r#"#!lua
local v = redis.call('GET', KEYS[1])
if not v then return {false} end
if #v < 8 then return redis.error_reply('cg: corrupt entry at op 1') end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], KEYS[1])
return {v}
"#;

/// A lone put or put-if-absent of a kind with a quota (every registration, consent,
/// sign-in in flight and code is written so), with the batch script's keys, arguments
/// and reply, and its checks: an entry not ours refuses, an entry already there adds
/// nothing to the count, a live one stops a put-if-absent, and a full index drops its
/// expired members before it refuses.
const PUT_SCRIPT: &str = r#"#!lua
local key, index, limit = KEYS[1], KEYS[2], tonumber(ARGV[3])
local len, cur = 0, false
if ARGV[2] == 'pia' then
  cur = redis.call('GET', key)
  if cur then len = #cur end
else
  len = redis.call('STRLEN', key)
end
if len > 0 and len < 8 then return redis.error_reply('cg: corrupt entry at op 1') end
if cur then
  local e = 0
  for i = 1, 8 do e = e * 256 + string.byte(cur, i) end
  if e > tonumber(ARGV[1]) then return {0} end
end
if len == 0 and redis.call('ZCARD', index) >= limit then
  redis.call('ZREMRANGEBYSCORE', index, '-inf', ARGV[1])
  if redis.call('ZCARD', index) >= limit then return redis.error_reply('CGQUOTA 1') end
end
redis.call('SET', key, ARGV[4], 'PX', ARGV[5])
redis.call('ZADD', index, ARGV[6], key)
return {1}
"#;

/// The Redis backend. Cheap to clone: clones share one multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    quotas: Quotas,
    batch: Script,
    take: Script,
    put: Script,
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
            quotas: options.quotas,
            batch: Script::new(BATCH_SCRIPT),
            take: Script::new(TAKE_SCRIPT),
            put: Script::new(PUT_SCRIPT),
        })
    }

    /// The Redis key of `(kind, key)`.
    pub fn redis_key(&self, kind: Kind, key: &Key) -> String {
        let mut name = String::with_capacity(self.prefix.len() + kind.label().len() + 66);
        name.push_str(&self.prefix);
        name.push(':');
        name.push_str(kind.label());
        name.push(':');
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for byte in key {
            name.push(char::from(HEX[usize::from(byte >> 4)]));
            name.push(char::from(HEX[usize::from(byte & 15)]));
        }
        name
    }

    /// The Redis key of the index of a kind with a quota.
    fn index_key(&self, kind: Kind) -> String {
        format!("{}:index:{}", self.prefix, kind.label())
    }

    /// The script that runs `ops`: a lone put or take of a kind with a quota has its own,
    /// cheaper one, with the same keys, arguments and reply.
    fn script_for(&self, ops: &[Op]) -> &Script {
        match ops {
            [op @ (Op::Put { .. } | Op::PutIfAbsent { .. })] if self.has_quota(op) => &self.put,
            [op @ Op::Take { .. }] if self.has_quota(op) => &self.take,
            _ => &self.batch,
        }
    }

    fn has_quota(&self, op: &Op) -> bool {
        self.quotas.of(op.kind()).is_some()
    }

    async fn run_batch(&self, ops: Vec<Op>, now: UnixTime) -> Result<Vec<OpResult>, StoreError> {
        for op in &ops {
            op.validate(now)?;
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.script_for(&ops).prepare_invoke();
        invocation.arg(now.secs());
        for op in &ops {
            invocation.key(self.redis_key(op.kind(), op.key()));
            let code = match op {
                Op::Put { .. } => "put",
                Op::PutIfAbsent { .. } => "pia",
                Op::Take { .. } => "take",
                Op::Get { .. } => "get",
                Op::Delete { .. } => "del",
            };
            invocation
                .arg(code)
                .arg(self.quotas.of(op.kind()).unwrap_or(0));
            if let Op::Put {
                value, expires_at, ..
            }
            | Op::PutIfAbsent {
                value, expires_at, ..
            } = op
            {
                invocation
                    .arg(encode(value, *expires_at))
                    .arg(ttl_ms(*expires_at, now))
                    .arg(expires_at.secs());
            }
        }
        for op in &ops {
            invocation.key(self.index_key(op.kind()));
        }
        let replies: Vec<Value> = match invocation.invoke_async(&mut self.conn.clone()).await {
            Ok(replies) => replies,
            Err(error) if error.code() == Some("CGQUOTA") => {
                let full = error
                    .detail()
                    .and_then(|i| i.trim().parse::<usize>().ok())
                    .and_then(|i| ops.get(i.checked_sub(1)?));
                return Err(match full {
                    Some(op) => StoreError::QuotaExceeded(op.kind()),
                    None => StoreError::Protocol(error.to_string()),
                });
            }
            Err(error) => return Err(error.into()),
        };
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
            if self.quotas.of(kind).is_some() {
                let op = Op::Put {
                    kind,
                    key,
                    value,
                    expires_at,
                };
                return self.run_batch(vec![op], now).await.map(drop);
            }
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
            if self.quotas.of(kind).is_some() {
                let mut taken = self.run_batch(vec![Op::Take { kind, key }], now).await?;
                return match taken.pop() {
                    Some(OpResult::Take(value)) => Ok(value),
                    _ => Err(StoreError::Protocol("take answered another op".into())),
                };
            }
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

    fn delete(&self, kind: Kind, key: Key, now: UnixTime) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if self.quotas.of(kind).is_some() {
                let op = Op::Delete { kind, key };
                return self.run_batch(vec![op], now).await.map(drop);
            }
            kind.validate()?;
            redis::cmd("DEL")
                .arg(self.redis_key(kind, &key))
                .query_async::<()>(&mut self.conn.clone())
                .await?;
            Ok(())
        })
    }
}
