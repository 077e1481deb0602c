//! Key and channel names. A user appears in Redis only as a keyed hash of the user id,
//! and every key and channel of one user carries the same hash tag, so they share one
//! Redis Cluster hash slot.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::cluster::config::ClusterConfigError;
use crate::id::{UserId, WebSocketClientId};

/// The shortest [`HashingKey`] accepted, in bytes (as for an HS256 secret).
pub const MIN_HASHING_KEY_BYTES: usize = 32;

/// Domain separation: the user hash and the client hash never collide by construction.
const USER_DOMAIN: &[u8] = b"wsctx/cluster/user\0";
const CLIENT_DOMAIN: &[u8] = b"wsctx/cluster/client\0";

/// The secret that keys the hash of user ids in Redis key and channel names. A secret.
///
/// Every node of one deployment must use the same key (they must agree on a user's
/// keys); different deployments should use different keys. Without it, nobody who can
/// read Redis (`MONITOR`, `SLOWLOG`, a dump) can tell which user a key belongs to, nor
/// test a guessed user id against it. Changing it moves every user to new keys: do it
/// with all nodes stopped. At least [`MIN_HASHING_KEY_BYTES`] bytes; `Debug` prints
/// `HashingKey(<redacted>)`.
///
/// # Examples
///
/// ```
/// use wsctx::cluster::HashingKey;
///
/// let key = HashingKey::new("a deployment secret of at least 32 bytes")?;
/// assert_eq!(format!("{key:?}"), "HashingKey(<redacted>)");
/// assert!(HashingKey::new("too short").is_err());
/// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
/// ```
#[derive(Clone)]
pub struct HashingKey(Arc<[u8]>);

impl HashingKey {
    /// Wraps a secret of at least [`MIN_HASHING_KEY_BYTES`] bytes.
    ///
    /// # Errors
    ///
    /// [`ClusterConfigError::HashingKeyTooShort`] when it is shorter.
    ///
    /// # Examples
    ///
    /// ```
    /// let key = wsctx::cluster::HashingKey::new([7u8; 32])?;
    /// # let _ = key;
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    pub fn new(key: impl AsRef<[u8]>) -> Result<Self, ClusterConfigError> {
        let key = key.as_ref();
        if key.len() < MIN_HASHING_KEY_BYTES {
            return Err(ClusterConfigError::HashingKeyTooShort);
        }
        Ok(Self(Arc::from(key)))
    }
}

impl fmt::Debug for HashingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashingKey(<redacted>)")
    }
}

/// Writes 16 bytes as 32 lowercase hex digits.
fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8; 16]) -> fmt::Result {
    for byte in bytes {
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

/// `Display` (32 lowercase hex digits) and `Debug` (`Name(digits)`) for a 16-byte keyed
/// hash, and (for unit tests) `from_bytes`.
macro_rules! hash_formatting {
    ($name:ident) => {
        impl $name {
            #[cfg(test)]
            pub(crate) const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }
    };
}

/// A user as Redis sees it: 128 bits of HMAC-SHA-256 of the user id under the
/// deployment's [`HashingKey`], printed as 32 hex digits. The same on every node; says
/// nothing about the user id without the key.
///
/// # Examples
///
/// ```
/// use wsctx::UserId;
/// use wsctx::cluster::{HashingKey, Keyspace};
///
/// let keys = Keyspace::new("wsctx", &HashingKey::new([1u8; 32])?)?;
/// let alice = keys.user_hash(&UserId::try_new("alice")?);
/// assert_eq!(alice.to_string().len(), 32);
/// assert!(!alice.to_string().contains("alice"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserHash([u8; 16]);

hash_formatting!(UserHash);

/// A client id (one socket's [`WebSocketClientId`]) as Redis sees it: a keyed hash of
/// the client id bound to its user's hash, 32 hex digits. It names the socket's lease.
///
/// # Examples
///
/// ```
/// use wsctx::{UserId, WebSocketClientId};
/// use wsctx::cluster::{HashingKey, Keyspace};
///
/// let keys = Keyspace::new("wsctx", &HashingKey::new([1u8; 32])?)?;
/// let user = keys.user_hash(&UserId::try_new("alice")?);
/// let tab = WebSocketClientId::try_new("tab-1")?;
/// assert_eq!(keys.client_hash(user, &tab), keys.client_hash(user, &tab));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientHash([u8; 16]);

hash_formatting!(ClientHash);

/// Whether `prefix` is a usable key prefix: 1 to 64 bytes of `[A-Za-z0-9_.:-]`. Braces
/// are refused because Redis Cluster would take them for a hash tag.
fn valid_prefix(prefix: &str) -> bool {
    (1..=64).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// How one deployment names users, clients and their keys in Redis: a key prefix (the
/// namespace, default `wsctx`) and the [`HashingKey`].
///
/// A user's keys are `<prefix>:{u:<user hash>}:<name>`; the braces are the Redis Cluster
/// hash tag, so all of them (and the user's channel) live in one hash slot and one Lua
/// script can change them atomically. See [`UserKeys`].
///
/// # Examples
///
/// ```
/// use wsctx::UserId;
/// use wsctx::cluster::{HashingKey, Keyspace};
///
/// let keys = Keyspace::new("chat", &HashingKey::new([9u8; 32])?)?;
/// let user = keys.user_keys(keys.user_hash(&UserId::try_new("alice")?));
/// assert!(user.leases().starts_with("chat:{u:"));
/// assert!(user.leases().ends_with("}:leases"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Keyspace {
    prefix: Arc<str>,
    /// HMAC state already keyed: cloning it skips re-keying on every hash.
    mac: Hmac<Sha256>,
}

impl Keyspace {
    /// The default key prefix.
    pub const DEFAULT_PREFIX: &'static str = "wsctx";

    /// A keyspace with `prefix` (1 to 64 bytes of `[A-Za-z0-9_.:-]`) and `key`.
    ///
    /// # Errors
    ///
    /// [`ClusterConfigError::InvalidPrefix`] for any other prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::cluster::{HashingKey, Keyspace};
    ///
    /// let key = HashingKey::new([0u8; 32])?;
    /// assert!(Keyspace::new("app-1", &key).is_ok());
    /// assert!(Keyspace::new("a{b}", &key).is_err());
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    pub fn new(prefix: &str, key: &HashingKey) -> Result<Self, ClusterConfigError> {
        if !valid_prefix(prefix) {
            return Err(ClusterConfigError::InvalidPrefix);
        }
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0)
            .map_err(|_| ClusterConfigError::HashingKeyTooShort)?;
        Ok(Self {
            prefix: Arc::from(prefix),
            mac,
        })
    }

    /// The key prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{HashingKey, Keyspace};
    /// let keys = Keyspace::new("app", &HashingKey::new([0u8; 32])?)?;
    /// assert_eq!(keys.prefix(), "app");
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn digest(&self, domain: &[u8], parts: &[&[u8]]) -> [u8; 16] {
        let mut mac = self.mac.clone();
        mac.update(domain);
        for part in parts {
            mac.update(part);
        }
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// The keyed hash of a user id.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{UserId, cluster::{HashingKey, Keyspace}};
    /// let a = Keyspace::new("app", &HashingKey::new([1u8; 32])?)?;
    /// let b = Keyspace::new("app", &HashingKey::new([2u8; 32])?)?;
    /// let alice = UserId::try_new("alice")?;
    /// assert_ne!(a.user_hash(&alice), b.user_hash(&alice)); // another key, another hash
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn user_hash(&self, user: &UserId) -> UserHash {
        UserHash(self.digest(USER_DOMAIN, &[user.as_str().as_bytes()]))
    }

    /// The keyed hash of a client id of the user with hash `user`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{UserId, WebSocketClientId, cluster::{HashingKey, Keyspace}};
    /// let keys = Keyspace::new("app", &HashingKey::new([1u8; 32])?)?;
    /// let tab = WebSocketClientId::try_new("tab-1")?;
    /// let alice = keys.user_hash(&UserId::try_new("alice")?);
    /// let bob = keys.user_hash(&UserId::try_new("bob")?);
    /// assert_ne!(keys.client_hash(alice, &tab), keys.client_hash(bob, &tab));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn client_hash(&self, user: UserHash, client: &WebSocketClientId) -> ClientHash {
        ClientHash(self.digest(CLIENT_DOMAIN, &[&user.0, client.as_str().as_bytes()]))
    }

    /// Every key and channel name of one user.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{UserId, cluster::{HashingKey, Keyspace}};
    /// let keys = Keyspace::new("app", &HashingKey::new([1u8; 32])?)?;
    /// let user = keys.user_keys(keys.user_hash(&UserId::try_new("alice")?));
    /// assert_eq!(user.tag().len(), "{u:}".len() + 32);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn user_keys(&self, user: UserHash) -> UserKeys {
        let base = format!("{}:{{u:{user}}}", self.prefix);
        let name = |suffix: &str| format!("{base}:{suffix}").into_boxed_str();
        UserKeys {
            user,
            leases: name("leases"),
            owners: name("owners"),
            revoked: name("revoked"),
            stream: name("stream"),
            position: name("pos"),
            channel: name("ch"),
        }
    }

    /// The channel of one node: messages addressed to that node, and the node's own
    /// liveness probe. `<prefix>:node:<node id>`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{HashingKey, Keyspace, NodeId};
    /// let keys = Keyspace::new("app", &HashingKey::new([1u8; 32])?)?;
    /// let node = NodeId::try_new("web-1")?;
    /// assert_eq!(keys.node_channel(&node), "app:node:web-1");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn node_channel(&self, node: &crate::cluster::NodeId) -> String {
        format!("{}:node:{}", self.prefix, node.as_str())
    }
}

impl fmt::Debug for Keyspace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyspace")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The Redis names of one user, all in the user's hash slot (`{u:<user hash>}`).
///
/// | name | Redis type | holds |
/// |---|---|---|
/// | [`leases`](Self::leases) | sorted set | one member per live socket (its [`ClientHash`]), scored by the lease's expiry in milliseconds on Redis's clock |
/// | [`owners`](Self::owners) | hash | [`ClientHash`] → when the lease was acquired (µs, Redis's clock) and which admission owns it |
/// | [`revoked`](Self::revoked) | string, with a TTL | the last disconnect of the user: when, and the close code and reason |
/// | [`stream`](Self::stream) | stream | the user's recent events, for replay on any node |
/// | [`position`](Self::position) | hash, with a TTL | the epoch of the user's event stream and its last sequence number |
/// | [`channel`](Self::channel) | pub/sub channel | messages for the user's sockets on other nodes |
///
/// # Examples
///
/// ```
/// # use wsctx::{UserId, cluster::{HashingKey, Keyspace}};
/// let keys = Keyspace::new("wsctx", &HashingKey::new([1u8; 32])?)?;
/// let user = keys.user_keys(keys.user_hash(&UserId::try_new("alice")?));
/// for name in [user.leases(), user.owners(), user.revoked(), user.stream(), user.position(), user.channel()] {
///     assert!(name.contains(user.tag()));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserKeys {
    user: UserHash,
    leases: Box<str>,
    owners: Box<str>,
    revoked: Box<str>,
    stream: Box<str>,
    position: Box<str>,
    channel: Box<str>,
}

impl UserKeys {
    /// The user these names belong to.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{UserId, cluster::{HashingKey, Keyspace}};
    /// # let keys = Keyspace::new("wsctx", &HashingKey::new([1u8; 32])?)?;
    /// let hash = keys.user_hash(&UserId::try_new("alice")?);
    /// assert_eq!(keys.user_keys(hash).user(), hash);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn user(&self) -> UserHash {
        self.user
    }

    /// The hash tag shared by every name of the user: `{u:<user hash>}`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{UserId, cluster::{HashingKey, Keyspace}};
    /// # let keys = Keyspace::new("wsctx", &HashingKey::new([1u8; 32])?)?;
    /// let user = keys.user_keys(keys.user_hash(&UserId::try_new("alice")?));
    /// assert!(user.tag().starts_with("{u:") && user.tag().ends_with('}'));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn tag(&self) -> &str {
        let start = self.leases.find('{').unwrap_or(0);
        let end = self.leases.find('}').map_or(self.leases.len(), |i| i + 1);
        &self.leases[start..end]
    }

    /// The sorted set of the user's leases.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{UserId, cluster::{HashingKey, Keyspace}};
    /// # let keys = Keyspace::new("wsctx", &HashingKey::new([1u8; 32])?)?;
    /// let user = keys.user_keys(keys.user_hash(&UserId::try_new("alice")?));
    /// assert!(user.leases().ends_with(":leases"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn leases(&self) -> &str {
        &self.leases
    }

    /// The hash of lease owners.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{UserId, cluster::{HashingKey, Keyspace}};
    /// # let keys = Keyspace::new("wsctx", &HashingKey::new([1u8; 32])?)?;
    /// let user = keys.user_keys(keys.user_hash(&UserId::try_new("alice")?));
    /// assert!(user.owners().ends_with(":owners"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn owners(&self) -> &str {
        &self.owners
    }

    /// The revocation marker left by a disconnect of the user.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{UserId, cluster::{HashingKey, Keyspace}};
    /// # let keys = Keyspace::new("wsctx", &HashingKey::new([1u8; 32])?)?;
    /// let user = keys.user_keys(keys.user_hash(&UserId::try_new("alice")?));
    /// assert!(user.revoked().ends_with(":revoked"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn revoked(&self) -> &str {
        &self.revoked
    }

    /// The stream of the user's recent events.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{UserId, cluster::{HashingKey, Keyspace}};
    /// # let keys = Keyspace::new("wsctx", &HashingKey::new([1u8; 32])?)?;
    /// let user = keys.user_keys(keys.user_hash(&UserId::try_new("alice")?));
    /// assert!(user.stream().ends_with(":stream"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Where the user's event stream is: its epoch and its last sequence number.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{UserId, cluster::{HashingKey, Keyspace}};
    /// # let keys = Keyspace::new("wsctx", &HashingKey::new([1u8; 32])?)?;
    /// let user = keys.user_keys(keys.user_hash(&UserId::try_new("alice")?));
    /// assert!(user.position().ends_with(":pos"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn position(&self) -> &str {
        &self.position
    }

    /// The user's pub/sub channel.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{UserId, cluster::{HashingKey, Keyspace}};
    /// # let keys = Keyspace::new("wsctx", &HashingKey::new([1u8; 32])?)?;
    /// let user = keys.user_keys(keys.user_hash(&UserId::try_new("alice")?));
    /// assert!(user.channel().ends_with(":ch"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyspace(key: u8) -> Keyspace {
        Keyspace::new("wsctx", &HashingKey::new([key; 32]).unwrap()).unwrap()
    }

    #[test]
    fn hashes_are_keyed_stable_and_domain_separated() {
        let keys = keyspace(1);
        let alice = UserId::try_new("alice").unwrap();
        let hash = keys.user_hash(&alice);
        assert_eq!(
            hash,
            keyspace(1).user_hash(&alice),
            "same key, same hash on every node"
        );
        assert_ne!(
            hash,
            keyspace(2).user_hash(&alice),
            "another deployment key"
        );
        // A client id spelled like the user id does not hash like it.
        let tab = WebSocketClientId::try_new("alice").unwrap();
        assert_ne!(keys.client_hash(hash, &tab).0, hash.0);
        // The known HMAC-SHA-256 value, so the wire format cannot drift silently.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&[1; 32]).unwrap();
        mac.update(b"wsctx/cluster/user\0alice");
        assert_eq!(hash.0[..], mac.finalize().into_bytes()[..16]);
    }

    #[test]
    fn every_name_carries_one_tag_and_never_the_id() {
        let keys = keyspace(3);
        let user = keys.user_keys(keys.user_hash(&UserId::try_new("alice@example.com").unwrap()));
        let names = [
            user.leases(),
            user.owners(),
            user.revoked(),
            user.stream(),
            user.channel(),
        ];
        for name in names {
            assert_eq!(name.matches('{').count(), 1, "{name}");
            assert_eq!(name.matches('}').count(), 1, "{name}");
            assert!(name.contains(user.tag()));
            assert!(!name.contains("alice"));
        }
        assert_eq!(user.tag(), format!("{{u:{}}}", user.user()));
    }

    #[test]
    fn prefixes_with_braces_or_spaces_are_refused() {
        let key = HashingKey::new([0; 32]).unwrap();
        for bad in ["", "a{b", "a}b", "a b", "é", &"x".repeat(65)] {
            assert_eq!(
                Keyspace::new(bad, &key).unwrap_err(),
                ClusterConfigError::InvalidPrefix
            );
        }
        for good in ["wsctx", "app:v2", "A_b.c-d", &"x".repeat(64)] {
            assert!(Keyspace::new(good, &key).is_ok());
        }
    }
}
