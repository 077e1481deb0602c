//! Leases: one per live socket, in Redis, changed only by the Lua scripts below.
//!
//! Per user (all in the user's hash slot, see [`UserKeys`]):
//! - `leases`, a sorted set: member = [`ClientHash`], score = expiry in ms on Redis's
//!   clock;
//! - `owners`, a hash: [`ClientHash`] → `"<acquired µs> <owner token>"`;
//! - `revoked`, a string with a TTL: `"<at µs> <close code> <close reason>"`.
//!
//! Every script reads the time with `TIME` (Redis's clock, never a node's) and first
//! drops the user's expired leases. Keys live at least twice the lease TTL after the last
//! write, so a user who leaves leaves nothing behind.

use std::collections::HashMap;
use std::sync::LazyLock;

use futures_util::future::join_all;
use redis::{Script, Value};

use crate::close::{CloseCode, CloseReason};
use crate::cluster::backplane::{Backplane, BackplaneError};
use crate::cluster::keys::{ClientHash, UserHash, UserKeys};
use crate::id::{UserId, WebSocketClientId};

/// Helpers every script starts with.
pub(super) const PRELUDE: &str = r"
-- Redis's clock, in microseconds. Lua numbers are doubles: exact below 2^53.
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- An integer as a decimal string ('..' would print large numbers as 1.7e+15).
local function int(n)
  return string.format('%.0f', n)
end
-- Drops leases whose expiry is at or before now_ms, with their owner entries.
local function purge(leases, owners, now_ms)
  local expired = redis.call('ZRANGE', leases, '-inf', int(now_ms), 'BYSCORE')
  for i = 1, #expired, 1000 do
    redis.call('HDEL', owners, unpack(expired, i, math.min(i + 999, #expired)))
  end
  if #expired > 0 then
    redis.call('ZREMRANGEBYSCORE', leases, '-inf', int(now_ms))
  end
end
-- Keeps a key at least ms more milliseconds; never shortens its life.
local function keep(key, ms)
  if redis.call('PTTL', key) < ms then
    redis.call('PEXPIRE', key, ms)
  end
end
-- An owner entry: acquired (us) and owner token.
local function owner_of(entry)
  if not entry then return nil, nil end
  local at, owner = string.match(entry, '^(%d+) (.+)$')
  return tonumber(at), owner
end
-- The revocation marker: its time (us, 0 when there is none) and its text.
local function revoked_at(key)
  local marker = redis.call('GET', key)
  if not marker then return 0, false end
  return tonumber(string.match(marker, '^(%d+) ')) or 0, marker
end
";

/// KEYS: leases, owners, revoked. ARGV: client hash, owner token, ttl (ms), per-user limit.
/// Returns `{status, held, acquired_us, expires_ms}`; status 0 granted, 1 duplicate, 2 limit.
const ACQUIRE: &str = r"
local now = now_us()
local now_ms = math.floor(now / 1000)
local ttl = tonumber(ARGV[3])
purge(KEYS[1], KEYS[2], now_ms)
local held = redis.call('ZCARD', KEYS[1])
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return {1, held, 0, 0}
end
if held >= tonumber(ARGV[4]) then
  return {2, held, 0, 0}
end
-- A lease acquired after a revocation is always newer than it, even if the clock
-- stepped back, so the marker can never revoke it.
local acquired = now
local at = revoked_at(KEYS[3])
if at >= acquired then acquired = at + 1 end
local expires = now_ms + ttl
redis.call('ZADD', KEYS[1], int(expires), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], int(acquired) .. ' ' .. ARGV[2])
keep(KEYS[1], 2 * ttl)
keep(KEYS[2], 2 * ttl)
return {0, held + 1, acquired, expires}
";

/// KEYS: leases, owners, revoked. ARGV: ttl (ms), then per lease: client hash, owner
/// token, acquired (us). Returns `{held, marker or nil, status...}`; status 0 renewed,
/// 1 re-created, 2 revoked, 3 taken.
const RENEW: &str = r"
local now_ms = math.floor(now_us() / 1000)
local ttl = tonumber(ARGV[1])
purge(KEYS[1], KEYS[2], now_ms)
local at, marker = revoked_at(KEYS[3])
local out = {0, marker}
local kept = false
for i = 2, #ARGV, 3 do
  local client, owner, acquired = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local entry = redis.call('HGET', KEYS[2], client)
  local _, holder = owner_of(entry)
  local status
  if acquired <= at then
    -- Disconnected after this lease began: never renew it (and drop it if still ours).
    status = 2
    if holder == owner then
      redis.call('ZREM', KEYS[1], client)
      redis.call('HDEL', KEYS[2], client)
    end
  elseif entry and holder ~= owner then
    status = 3
  else
    -- Missing means it expired while this node could not reach Redis, or Redis lost
    -- its data: re-create it as it was. The limit is not checked again: the socket
    -- is already open.
    if entry then status = 0 else status = 1 end
    redis.call('ZADD', KEYS[1], int(now_ms + ttl), client)
    if not entry then
      redis.call('HSET', KEYS[2], client, int(acquired) .. ' ' .. owner)
    end
    kept = true
  end
  out[#out + 1] = status
end
if kept then
  keep(KEYS[1], 2 * ttl)
  keep(KEYS[2], 2 * ttl)
end
out[1] = redis.call('ZCARD', KEYS[1])
return out
";

/// KEYS: leases, owners. ARGV: per lease: client hash, owner token. Removes each lease
/// only while that owner still holds it. Returns how many it removed.
const RELEASE: &str = r"
local released = 0
for i = 1, #ARGV, 2 do
  local _, holder = owner_of(redis.call('HGET', KEYS[2], ARGV[i]))
  if holder == ARGV[i + 1] then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    released = released + 1
  end
end
return released
";

/// KEYS: leases, owners, revoked. ARGV: marker ttl (ms), close code, close reason.
/// Drops every lease of the user and leaves the marker. Returns `{leases dropped, at_us}`.
const REVOKE: &str = r"
local now = now_us()
purge(KEYS[1], KEYS[2], math.floor(now / 1000))
-- The marker must be at least as new as every lease it revokes, and never move back.
local at = now
local previous = revoked_at(KEYS[3])
if previous > at then at = previous end
for _, entry in ipairs(redis.call('HVALS', KEYS[2])) do
  local acquired = owner_of(entry)
  if acquired and acquired > at then at = acquired end
end
local dropped = redis.call('ZCARD', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], int(at) .. ' ' .. ARGV[2] .. ' ' .. ARGV[3], 'PX', ARGV[1])
return {dropped, at}
";

/// KEYS: leases. Returns how many leases are live now.
const HELD: &str = r"
local now_ms = math.floor(now_us() / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. int(now_ms), '+inf')
";

struct Scripts {
    acquire: Script,
    renew: Script,
    release: Script,
    revoke: Script,
    held: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| {
    let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
    Scripts {
        acquire: script(ACQUIRE),
        renew: script(RENEW),
        release: script(RELEASE),
        revoke: script(REVOKE),
        held: script(HELD),
    }
});

/// One socket's lease: proof that Redis counted it against its user's limit. Held by
/// the node that acquired it, renewed every third of the lease TTL, released exactly
/// once when the socket ends.
///
/// It carries only hashes and the owner token (`<node id>:<incarnation>:<sequence>`,
/// unique per admission), never a user or client id.
///
/// # Examples
///
/// ```no_run
/// # use wsctx::{UserId, WebSocketClientId, cluster::{Acquire, Backplane}};
/// # async fn run(backplane: Backplane) -> Result<(), Box<dyn std::error::Error>> {
/// let user = UserId::try_new("alice")?;
/// if let Acquire::Granted { lease, .. } = backplane.acquire(&user, &WebSocketClientId::try_new("tab-1")?, 5).await? {
///     assert!(lease.owner().starts_with(backplane.config().node_id().as_str()));
///     backplane.release(&[lease]).await?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    user: UserHash,
    client: ClientHash,
    owner: Box<str>,
    acquired_us: u64,
    expires_ms: u64,
}

impl Lease {
    /// A lease as Redis might have granted it, for unit tests that need no Redis.
    #[cfg(test)]
    pub(crate) fn for_tests(user: u8, client: u8, owner: &str) -> Self {
        Self {
            user: UserHash::from_bytes([user; 16]),
            client: ClientHash::from_bytes([client; 16]),
            owner: owner.into(),
            acquired_us: 1,
            expires_ms: 1,
        }
    }

    /// The user's hash.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(lease: wsctx::cluster::Lease) {
    /// println!("lease of user {}", lease.user());
    /// # }
    /// ```
    #[must_use]
    pub fn user(&self) -> UserHash {
        self.user
    }

    /// The client id's hash.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(lease: wsctx::cluster::Lease) {
    /// println!("lease of client {}", lease.client());
    /// # }
    /// ```
    #[must_use]
    pub fn client(&self) -> ClientHash {
        self.client
    }

    /// The owner token: which admission on which node holds the lease.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(lease: wsctx::cluster::Lease) {
    /// println!("owned by {}", lease.owner());
    /// # }
    /// ```
    #[must_use]
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// When Redis granted it, in microseconds since the Unix epoch on Redis's clock.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(lease: wsctx::cluster::Lease) {
    /// assert!(lease.acquired_us() > 0);
    /// # }
    /// ```
    #[must_use]
    pub fn acquired_us(&self) -> u64 {
        self.acquired_us
    }

    /// When it expires unless renewed, in milliseconds since the Unix epoch on Redis's
    /// clock, as of its acquisition.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(lease: wsctx::cluster::Lease) {
    /// assert!(lease.expires_ms() * 1000 > lease.acquired_us());
    /// # }
    /// ```
    #[must_use]
    pub fn expires_ms(&self) -> u64 {
        self.expires_ms
    }
}

/// What [`Backplane::acquire`] decided.
///
/// # Examples
///
/// ```
/// use wsctx::ErrorCode;
/// use wsctx::cluster::Acquire;
///
/// assert_eq!(Acquire::Duplicate { held: 1 }.code(), Some(ErrorCode::DuplicateClient));
/// assert_eq!(Acquire::Limit { held: 5 }.code(), Some(ErrorCode::ConnectionLimit));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Acquire {
    /// Counted: the user now holds `held` leases, this one included.
    Granted {
        /// The new lease.
        lease: Lease,
        /// How many live leases the user holds now.
        held: u64,
    },
    /// The user already holds a live lease for this client id, on some node:
    /// DUPLICATE_CLIENT.
    Duplicate {
        /// How many live leases the user holds.
        held: u64,
    },
    /// The user holds the per-user limit already: CONNECTION_LIMIT.
    Limit {
        /// How many live leases the user holds.
        held: u64,
    },
}

impl Acquire {
    /// The error code of a refusal; `None` when granted.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::Acquire;
    /// assert_eq!(Acquire::Limit { held: 2 }.code().map(|c| c.as_str()), Some("CONNECTION_LIMIT"));
    /// ```
    #[must_use]
    pub fn code(&self) -> Option<crate::ErrorCode> {
        match self {
            Self::Granted { .. } => None,
            Self::Duplicate { .. } => Some(crate::ErrorCode::DuplicateClient),
            Self::Limit { .. } => Some(crate::ErrorCode::ConnectionLimit),
        }
    }
}

/// A failed [`Backplane::acquire`]: the [`BackplaneError`], and the lease Redis may
/// have granted anyway.
///
/// When the call timed out or its connection broke
/// ([`may_have_applied`](BackplaneError::may_have_applied)), the script may still run
/// (a stopped Redis that continues runs what it had received). [`orphan`](Self::orphan)
/// is that lease, to [`release`](Backplane::release) so it cannot hold the user's slot
/// for a whole lease TTL; releasing is owner-checked, so it is safe whether or not the
/// lease exists. The orphan is good for releasing only.
///
/// # Examples
///
/// ```no_run
/// # use wsctx::{UserId, WebSocketClientId, cluster::Backplane};
/// # async fn run(backplane: Backplane) -> Result<(), Box<dyn std::error::Error>> {
/// match backplane.acquire(&UserId::try_new("alice")?, &WebSocketClientId::try_new("t1")?, 5).await {
///     Ok(decision) => println!("{decision:?}"),
///     Err(failed) => {
///         if let Some(orphan) = failed.orphan() {
///             let _ = backplane.release(std::slice::from_ref(orphan)).await; // or queue it
///         }
///         return Err(failed.into()); // BACKPLANE_UNAVAILABLE, via wsctx::Rejection
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct AcquireError {
    error: BackplaneError,
    orphan: Option<Lease>,
}

impl AcquireError {
    /// What went wrong.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(failed: wsctx::cluster::AcquireError) {
    /// assert!(failed.error().is_unavailable() || failed.error().is_refused());
    /// # }
    /// ```
    #[must_use]
    pub fn error(&self) -> &BackplaneError {
        &self.error
    }

    /// The lease Redis may have granted although the call failed; `None` when the call
    /// certainly had no effect.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(failed: wsctx::cluster::AcquireError) {
    /// assert_eq!(failed.orphan().is_some(), failed.error().may_have_applied());
    /// # }
    /// ```
    #[must_use]
    pub fn orphan(&self) -> Option<&Lease> {
        self.orphan.as_ref()
    }

    /// The error and the orphan.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(failed: wsctx::cluster::AcquireError) {
    /// let (error, orphan) = failed.into_parts();
    /// # let _ = (error, orphan);
    /// # }
    /// ```
    #[must_use]
    pub fn into_parts(self) -> (BackplaneError, Option<Lease>) {
        (self.error, self.orphan)
    }
}

impl std::fmt::Display for AcquireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for AcquireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<AcquireError> for BackplaneError {
    fn from(failed: AcquireError) -> Self {
        failed.error
    }
}

impl From<AcquireError> for crate::Rejection {
    fn from(failed: AcquireError) -> Self {
        failed.error.into()
    }
}

/// The close frame a disconnect asked for, as left in the user's revocation marker.
///
/// # Examples
///
/// ```no_run
/// # use wsctx::cluster::{Renewal, Revocation};
/// # fn run(renewal: Renewal) {
/// if let Renewal::Revoked(Some(Revocation { code, reason })) = renewal {
///     println!("close with {} {}", code.as_u16(), reason.as_str());
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The close code.
    pub code: CloseCode,
    /// The close reason.
    pub reason: CloseReason,
}

/// What [`Backplane::renew`] found for one lease.
///
/// # Examples
///
/// ```no_run
/// # use wsctx::cluster::{Backplane, Lease, Renewal};
/// # async fn run(backplane: Backplane, leases: Vec<Lease>) {
/// for (lease, result) in leases.iter().zip(backplane.renew(&leases).await) {
///     match result {
///         Ok(Renewal::Renewed | Renewal::Recreated) => {}
///         Ok(Renewal::Revoked(_) | Renewal::Taken) => { /* close that socket */ }
///         Ok(_) => {}
///         Err(error) => { /* Redis unavailable: try again next period */ }
///     }
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Renewal {
    /// Live until one lease TTL from now.
    Renewed,
    /// It was missing (it expired while this node could not reach Redis, or Redis lost
    /// its data) and was re-created as it was; live until one lease TTL from now.
    Recreated,
    /// The user was disconnected after this lease began: close the socket with the
    /// marker's frame (`None` when the marker could not be read as a close frame).
    Revoked(Option<Revocation>),
    /// Another admission now holds this client id (this lease expired and the client id
    /// was admitted again elsewhere): this socket is a duplicate; close it.
    Taken,
}

/// What [`Backplane::release`] did.
///
/// # Examples
///
/// ```no_run
/// # use wsctx::cluster::{Backplane, Lease};
/// # async fn run(backplane: Backplane, leases: Vec<Lease>) -> Result<(), wsctx::cluster::BackplaneError> {
/// let released = backplane.release(&leases).await?;
/// assert_eq!(released.released + released.not_held, leases.len());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Released {
    /// Leases removed.
    pub released: usize,
    /// Leases this owner no longer held (expired, revoked, or taken by another
    /// admission): left alone.
    pub not_held: usize,
}

fn int(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

fn ints<const N: usize>(value: &Value) -> Option<[u64; N]> {
    let Value::Array(items) = value else {
        return None;
    };
    if items.len() != N {
        return None;
    }
    let mut out = [0; N];
    for (slot, item) in out.iter_mut().zip(items) {
        *slot = int(item)?;
    }
    Some(out)
}

/// `"<at µs> <code> <reason>"` → the close frame; `None` for anything else.
fn parse_marker(marker: &[u8]) -> Option<Revocation> {
    let text = std::str::from_utf8(marker).ok()?;
    let mut parts = text.splitn(3, ' ');
    let _at = parts.next()?;
    let code = CloseCode::new(parts.next()?.parse().ok()?)?;
    Some(Revocation {
        code,
        reason: CloseReason::new(parts.next().unwrap_or("")),
    })
}

impl Backplane {
    fn keys_of(&self, user: UserHash) -> UserKeys {
        self.inner.config.keyspace().user_keys(user)
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.inner.config.lease_ttl().as_millis()).unwrap_or(u64::MAX)
    }

    /// Counts a new socket of `user` with client id `client` against the per-user limit,
    /// across every node, in one atomic script: drop the user's expired leases; if a live
    /// lease has this client id, [`Acquire::Duplicate`]; if `per_user` are live,
    /// [`Acquire::Limit`]; else add a lease that expires one lease TTL from now.
    ///
    /// # Errors
    ///
    /// An [`AcquireError`] when Redis is unavailable or refuses; when the lease may exist
    /// anyway, it carries that lease to release.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{UserId, WebSocketClientId, cluster::{Acquire, Backplane}};
    /// # async fn run(backplane: Backplane) -> Result<(), Box<dyn std::error::Error>> {
    /// let alice = UserId::try_new("alice")?;
    /// match backplane.acquire(&alice, &WebSocketClientId::try_new("tab-1")?, 3).await? {
    ///     Acquire::Granted { lease, held } => println!("{held} of 3 in use; {lease:?}"),
    ///     refused => println!("refused: {:?}", refused.code()),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn acquire(
        &self,
        user: &UserId,
        client: &WebSocketClientId,
        per_user: usize,
    ) -> Result<Acquire, AcquireError> {
        let keyspace = self.inner.config.keyspace();
        let user = keyspace.user_hash(user);
        let client = keyspace.client_hash(user, client);
        let keys = self.keys_of(user);
        let owner = self.next_owner();
        let ttl = self.ttl_ms();
        let mut invocation = SCRIPTS.acquire.prepare_invoke();
        invocation
            .key(keys.leases())
            .key(keys.owners())
            .key(keys.revoked())
            .arg(client.to_string())
            .arg(&*owner)
            .arg(ttl)
            .arg(per_user);
        let reply = self.run_script(invocation).await;
        let mut lease = Lease {
            user,
            client,
            owner,
            acquired_us: 0,
            expires_ms: 0,
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                let orphan = error.may_have_applied().then_some(lease);
                return Err(AcquireError { error, orphan });
            }
        };
        let refused = |detail| AcquireError {
            error: BackplaneError::protocol(detail),
            orphan: None,
        };
        let [status, held, acquired_us, expires_ms] =
            ints::<4>(&reply).ok_or_else(|| refused("unexpected acquire reply"))?;
        match status {
            0 => {
                lease.acquired_us = acquired_us;
                lease.expires_ms = expires_ms;
                Ok(Acquire::Granted { lease, held })
            }
            1 => Ok(Acquire::Duplicate { held }),
            2 => Ok(Acquire::Limit { held }),
            _ => Err(refused("unexpected acquire status")),
        }
    }

    /// A lease for a socket admitted while Redis could not be asked (see
    /// `WhenUnavailable::AdmitLocally`): never granted, it is created in Redis by the
    /// first renewal that reaches it, without a limit check (the socket is open), or
    /// found taken by another admission of the same client id.
    pub(crate) fn unconfirmed_lease(&self, user: &UserId, client: &WebSocketClientId) -> Lease {
        let keyspace = self.inner.config.keyspace();
        let user = keyspace.user_hash(user);
        let acquired_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Lease {
            user,
            client: keyspace.client_hash(user, client),
            owner: self.next_owner(),
            acquired_us,
            expires_ms: 0,
        }
    }

    /// Renews leases this node holds, one script per user, all users at once. For each
    /// lease, in order: if the user was disconnected after the lease began,
    /// [`Renewal::Revoked`] (never renewed); if another admission holds its client id,
    /// [`Renewal::Taken`]; else it is live for one more lease TTL, and re-created if Redis
    /// had lost it ([`Renewal::Recreated`]).
    ///
    /// Returns one result per lease, in the order given; a user whose script failed gets
    /// the error for each of its leases (renew them again next period).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::cluster::{Backplane, Lease, Renewal};
    /// # async fn run(backplane: Backplane, leases: Vec<Lease>) {
    /// let results = backplane.renew(&leases).await;
    /// assert_eq!(results.len(), leases.len());
    /// # }
    /// ```
    pub async fn renew(&self, leases: &[Lease]) -> Vec<Result<Renewal, BackplaneError>> {
        let ttl = self.ttl_ms();
        let groups = group_by_user(leases);
        let calls = groups.iter().map(|(user, indices)| {
            let keys = self.keys_of(*user);
            let mut invocation = SCRIPTS.renew.prepare_invoke();
            invocation
                .key(keys.leases())
                .key(keys.owners())
                .key(keys.revoked())
                .arg(ttl);
            for &i in indices {
                let lease = &leases[i];
                invocation
                    .arg(lease.client.to_string())
                    .arg(&*lease.owner)
                    .arg(lease.acquired_us);
            }
            async move {
                let reply = self.run_script(invocation).await?;
                parse_renewal(&reply, indices.len())
            }
        });
        let replies = join_all(calls).await;
        let mut out: Vec<Option<Result<Renewal, BackplaneError>>> = vec![None; leases.len()];
        for ((_, indices), reply) in groups.iter().zip(replies) {
            match reply {
                Ok(renewals) => {
                    for (&i, renewal) in indices.iter().zip(renewals) {
                        out[i] = Some(Ok(renewal));
                    }
                }
                Err(error) => {
                    for &i in indices {
                        out[i] = Some(Err(error.clone()));
                    }
                }
            }
        }
        out.into_iter()
            .map(|slot| slot.unwrap_or_else(|| Err(BackplaneError::protocol("lease not renewed"))))
            .collect()
    }

    /// Releases leases, one script per user, all users at once. A lease is removed only
    /// while its owner token still holds it, so a lease that expired and was admitted
    /// again (here or on another node) is never removed by its old owner. Idempotent:
    /// after an error, releasing the same leases again is safe.
    ///
    /// # Errors
    ///
    /// The first [`BackplaneError`] of any user's script; the others still ran.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::cluster::{Backplane, Lease};
    /// # async fn run(backplane: Backplane, leases: Vec<Lease>) -> Result<(), wsctx::cluster::BackplaneError> {
    /// let released = backplane.release(&leases).await?;
    /// println!("{} released, {} no longer ours", released.released, released.not_held);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn release(&self, leases: &[Lease]) -> Result<Released, BackplaneError> {
        let groups = group_by_user(leases);
        let calls = groups.iter().map(|(user, indices)| {
            let keys = self.keys_of(*user);
            let mut invocation = SCRIPTS.release.prepare_invoke();
            invocation.key(keys.leases()).key(keys.owners());
            for &i in indices {
                invocation
                    .arg(leases[i].client.to_string())
                    .arg(&*leases[i].owner);
            }
            async move {
                let reply = self.run_script(invocation).await?;
                let released = int(&reply)
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|&n| n <= indices.len())
                    .ok_or_else(|| BackplaneError::protocol("unexpected release reply"))?;
                Ok::<_, BackplaneError>((released, indices.len()))
            }
        });
        let mut total = Released::default();
        let mut first_error = None;
        for reply in join_all(calls).await {
            match reply {
                Ok((released, asked)) => {
                    total.released += released;
                    total.not_held += asked - released;
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(total), Err)
    }

    /// Disconnects `user` everywhere, as far as leases go: drops every lease of the user
    /// and leaves a revocation marker with the close frame, for
    /// [`revocation_ttl`](crate::cluster::ClusterConfig::revocation_ttl). Every node's
    /// next [`renew`](Self::renew) of a lease that began before it answers
    /// [`Renewal::Revoked`] with that frame, so a node that missed the disconnect message
    /// still closes its sockets within a third of the lease TTL. New sockets may be
    /// admitted at once. Returns how many live leases were dropped.
    ///
    /// # Errors
    ///
    /// A [`BackplaneError`] when Redis is unavailable or refuses.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{CloseCode, CloseReason, UserId, cluster::Backplane};
    /// # async fn run(backplane: Backplane) -> Result<(), Box<dyn std::error::Error>> {
    /// let dropped = backplane
    ///     .revoke(&UserId::try_new("alice")?, CloseCode::FORBIDDEN, &CloseReason::new("banned"))
    ///     .await?;
    /// println!("{dropped} sockets to close");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn revoke(
        &self,
        user: &UserId,
        code: CloseCode,
        reason: &CloseReason,
    ) -> Result<u64, BackplaneError> {
        let keys = self.keys_of(self.inner.config.keyspace().user_hash(user));
        let marker_ttl =
            u64::try_from(self.inner.config.revocation_ttl().as_millis()).unwrap_or(u64::MAX);
        let mut invocation = SCRIPTS.revoke.prepare_invoke();
        invocation
            .key(keys.leases())
            .key(keys.owners())
            .key(keys.revoked())
            .arg(marker_ttl)
            .arg(code.as_u16())
            .arg(reason.as_str());
        let reply = self.run_script(invocation).await?;
        let [dropped, _at] =
            ints::<2>(&reply).ok_or_else(|| BackplaneError::protocol("unexpected revoke reply"))?;
        Ok(dropped)
    }

    /// How many live leases `user` holds across every node, on Redis's clock.
    ///
    /// # Errors
    ///
    /// A [`BackplaneError`] when Redis is unavailable or refuses.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{UserId, cluster::Backplane};
    /// # async fn run(backplane: Backplane) -> Result<(), Box<dyn std::error::Error>> {
    /// println!("{} sockets", backplane.held(&UserId::try_new("alice")?).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn held(&self, user: &UserId) -> Result<u64, BackplaneError> {
        let keys = self.keys_of(self.inner.config.keyspace().user_hash(user));
        let mut invocation = SCRIPTS.held.prepare_invoke();
        invocation.key(keys.leases());
        let reply = self.run_script(invocation).await?;
        int(&reply).ok_or_else(|| BackplaneError::protocol("unexpected count reply"))
    }
}

/// Lease indices grouped by user, in first-seen order.
fn group_by_user(leases: &[Lease]) -> Vec<(UserHash, Vec<usize>)> {
    let mut groups: Vec<(UserHash, Vec<usize>)> = Vec::new();
    let mut index: HashMap<UserHash, usize> = HashMap::new();
    for (i, lease) in leases.iter().enumerate() {
        let slot = *index.entry(lease.user).or_insert_with(|| {
            groups.push((lease.user, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(i);
    }
    groups
}

fn parse_renewal(reply: &Value, expected: usize) -> Result<Vec<Renewal>, BackplaneError> {
    let bad = || BackplaneError::protocol("unexpected renew reply");
    let Value::Array(items) = reply else {
        return Err(bad());
    };
    if items.len() != expected + 2 {
        return Err(bad());
    }
    let revocation = match &items[1] {
        Value::BulkString(marker) => parse_marker(marker),
        _ => None,
    };
    items[2..]
        .iter()
        .map(|status| match int(status) {
            Some(0) => Ok(Renewal::Renewed),
            Some(1) => Ok(Renewal::Recreated),
            Some(2) => Ok(Renewal::Revoked(revocation.clone())),
            Some(3) => Ok(Renewal::Taken),
            _ => Err(bad()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_parse_into_close_frames_or_nothing() {
        assert_eq!(
            parse_marker(b"1764800000000000 4403 banned for spam"),
            Some(Revocation {
                code: CloseCode::FORBIDDEN,
                reason: CloseReason::new("banned for spam"),
            })
        );
        assert_eq!(
            parse_marker(b"1 1000 ").map(|r| r.code),
            Some(CloseCode::NORMAL)
        );
        // 1005 cannot be sent; garbage is not a frame.
        assert_eq!(parse_marker(b"1 1005 x"), None);
        assert_eq!(parse_marker(b"garbage"), None);
        assert_eq!(parse_marker(&[0xff, 0xfe]), None);
    }

    #[test]
    fn renew_replies_are_checked() {
        let reply = Value::Array(vec![
            Value::Int(2),
            Value::Nil,
            Value::Int(0),
            Value::Int(1),
            Value::Int(3),
        ]);
        assert_eq!(
            parse_renewal(&reply, 3).unwrap(),
            [Renewal::Renewed, Renewal::Recreated, Renewal::Taken]
        );
        assert!(parse_renewal(&reply, 2).is_err(), "length mismatch");
        let odd = Value::Array(vec![Value::Int(0), Value::Nil, Value::Int(9)]);
        assert!(parse_renewal(&odd, 1).is_err(), "unknown status");
    }

    #[test]
    fn groups_keep_first_seen_order() {
        let lease = |user: u8, n: u8| Lease::for_tests(user, n, "n:0:0");
        let leases = [lease(2, 0), lease(1, 1), lease(2, 2)];
        let groups = group_by_user(&leases);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].1, [0, 2]);
        assert_eq!(groups[1].1, [1]);
    }
}
