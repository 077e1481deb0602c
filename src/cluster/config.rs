//! [`ClusterConfig`]: where Redis is, how long leases live, how long to wait for Redis.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::keys::{HashingKey, Keyspace};

/// A configuration value that cannot work. Messages are lowercase and never contain the
/// rejected value (a Redis URL may hold a password).
///
/// # Examples
///
/// ```
/// use wsctx::cluster::{ClusterConfig, ClusterConfigError, HashingKey};
///
/// let key = HashingKey::new([0u8; 32])?;
/// let error = ClusterConfig::builder("redis://:secret@", key).build().unwrap_err();
/// assert_eq!(error, ClusterConfigError::InvalidUrl);
/// assert!(!error.to_string().contains("secret"));
/// # Ok::<(), ClusterConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterConfigError {
    /// The Redis URL does not parse, or names a scheme this build cannot use.
    #[error("the redis url is invalid or uses an unsupported scheme")]
    InvalidUrl,
    /// The hashing key is shorter than [`MIN_HASHING_KEY_BYTES`](crate::cluster::MIN_HASHING_KEY_BYTES).
    #[error("the hashing key must be at least 32 bytes")]
    HashingKeyTooShort,
    /// The key prefix is not 1 to 64 bytes of `[A-Za-z0-9_.:-]`.
    #[error("the key prefix must be 1 to 64 bytes of letters, digits, '_', '.', ':' or '-'")]
    InvalidPrefix,
    /// The node id is not 1 to 64 bytes of `[A-Za-z0-9_.-]`.
    #[error("the node id must be 1 to 64 bytes of letters, digits, '_', '.' or '-'")]
    InvalidNodeId,
    /// The lease TTL is outside 100 ms to 1 hour.
    #[error("the lease ttl must be between 100 ms and 1 hour")]
    LeaseTtlOutOfRange,
    /// The response timeout is zero or longer than a third of the lease TTL (a renewal
    /// that may take longer than the renewal period cannot keep a lease alive).
    #[error("the response timeout must be above zero and at most a third of the lease ttl")]
    ResponseTimeoutOutOfRange,
    /// The connection timeout is zero.
    #[error("the connection timeout must be above zero")]
    ConnectionTimeoutZero,
    /// The revocation TTL is shorter than the lease TTL (a node that renews only once per
    /// period could miss the marker).
    #[error("the revocation ttl must be at least the lease ttl")]
    RevocationTtlTooShort,
    /// A stream cap is zero.
    #[error("the stream caps must be above zero")]
    StreamCapZero,
}

/// Which node this process is in the cluster: 1 to 64 bytes of `[A-Za-z0-9_.-]`.
///
/// It tags the leases this node owns and names its probe channel; it never reaches a
/// client. The default is a fresh random id per process start, so a restarted node never
/// mistakes the leases of its previous life for its own.
///
/// # Examples
///
/// ```
/// use wsctx::cluster::NodeId;
///
/// assert_eq!(NodeId::try_new("web-1")?.as_str(), "web-1");
/// assert!(NodeId::try_new("web 1").is_err());
/// assert_ne!(NodeId::random(), NodeId::random());
/// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// A checked node id.
    ///
    /// # Errors
    ///
    /// [`ClusterConfigError::InvalidNodeId`] unless `id` is 1 to 64 bytes of
    /// `[A-Za-z0-9_.-]`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(wsctx::cluster::NodeId::try_new("pod-7f9c.eu").is_ok());
    /// ```
    pub fn try_new(id: &str) -> Result<Self, ClusterConfigError> {
        let valid = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if valid {
            Ok(Self(Arc::from(id)))
        } else {
            Err(ClusterConfigError::InvalidNodeId)
        }
    }

    /// A fresh random node id (`n-` and 32 hex digits of a UUID v4).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::cluster::NodeId::random().as_str().len(), 34);
    /// ```
    #[must_use]
    pub fn random() -> Self {
        Self(Arc::from(format!("n-{}", uuid::Uuid::new_v4().simple())))
    }

    /// The id.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::cluster::NodeId::try_new("a")?.as_str(), "a");
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

/// Which Redis the backplane talks to.
#[derive(Clone)]
pub(crate) enum Target {
    /// One Redis server (or a Sentinel-resolved primary).
    Standalone(redis::Client),
    /// A Redis Cluster, through any of its seed nodes.
    #[cfg(feature = "redis-cluster")]
    Cluster {
        client: Box<redis::cluster::ClusterClient>,
        seeds: Vec<String>,
        /// The seeds' connection settings, for the pub/sub bus's own client (it needs a
        /// push sender of its own).
        infos: Vec<redis::ConnectionInfo>,
    },
}

/// How a node joins the Redis backplane. Built with [`ClusterConfig::builder`] (one Redis
/// server) or, with the feature `redis-cluster`, `ClusterConfig::cluster_builder` (a
/// Redis Cluster).
///
/// | setting | default | meaning |
/// |---|---|---|
/// | `node_id` | random per process | tags this node's leases; see [`NodeId`] |
/// | `prefix` | `wsctx` | the namespace of every key and channel |
/// | `lease_ttl` | 30 s | a lease not renewed for this long expires (a crashed node's sockets stop counting); renewed every third of it |
/// | `revocation_ttl` | 2 × `lease_ttl` | how long a disconnect's marker stays for renewals to read |
/// | `response_timeout` | 500 ms | the longest any Redis call may take, reconnecting included; at most `lease_ttl / 3` |
/// | `connection_timeout` | 1 s | the longest one connection attempt may take |
/// | `stream_max_len` | 256 events | the most events a user's replay stream keeps |
/// | `stream_max_age` | 2 minutes | how old an event in a user's replay stream may get |
///
/// The hashing key and the prefix must be the same on every node of a deployment, and so
/// should the lease TTL.
///
/// `Debug` shows the Redis address but never its password, nor the hashing key.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use wsctx::cluster::{ClusterConfig, HashingKey, NodeId};
///
/// let config = ClusterConfig::builder("redis://127.0.0.1:6380", HashingKey::new([7u8; 32])?)
///     .node_id(NodeId::try_new("web-1")?)
///     .lease_ttl(Duration::from_secs(15))
///     .build()?;
/// assert_eq!(config.response_timeout(), Duration::from_millis(500));
/// assert_eq!(config.revocation_ttl(), Duration::from_secs(30));
/// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
/// ```
#[derive(Clone)]
pub struct ClusterConfig {
    pub(crate) target: Target,
    keyspace: Keyspace,
    node_id: NodeId,
    lease_ttl: Duration,
    revocation_ttl: Duration,
    response_timeout: Duration,
    connection_timeout: Duration,
    stream_max_len: usize,
    stream_max_age: Duration,
}

impl ClusterConfig {
    /// The default lease TTL.
    pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);
    /// The default response timeout.
    pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
    /// The default connection timeout.
    pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
    /// The default cap on events per user stream.
    pub const DEFAULT_STREAM_MAX_LEN: usize = 256;
    /// The default cap on the age of events in a user stream.
    pub const DEFAULT_STREAM_MAX_AGE: Duration = Duration::from_secs(120);

    /// A builder for a node that reaches Redis at `redis_url` (`redis://[user:password@]host:port[/db]`
    /// or `redis+unix:///path/to/socket`), hashing user ids with `key`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{ClusterConfig, HashingKey};
    /// let config = ClusterConfig::builder("redis+unix:///run/redis/redis.sock", HashingKey::new([7u8; 32])?)
    ///     .build()?;
    /// assert_eq!(config.redis_address(), "/run/redis/redis.sock");
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    pub fn builder(redis_url: &str, key: HashingKey) -> ClusterConfigBuilder {
        ClusterConfigBuilder {
            redis_urls: vec![redis_url.to_owned()],
            #[cfg(feature = "redis-cluster")]
            cluster: false,
            key,
            prefix: None,
            node_id: None,
            lease_ttl: Self::DEFAULT_LEASE_TTL,
            revocation_ttl: None,
            response_timeout: Self::DEFAULT_RESPONSE_TIMEOUT,
            connection_timeout: Self::DEFAULT_CONNECTION_TIMEOUT,
            stream_max_len: Self::DEFAULT_STREAM_MAX_LEN,
            stream_max_age: Self::DEFAULT_STREAM_MAX_AGE,
        }
    }

    /// A builder for a node of a Redis Cluster deployment (feature `redis-cluster`): the
    /// URLs of some of its nodes (`redis://[user:password@]host:port`, the same
    /// credentials for all); the rest of the cluster is discovered. Each user's keys live
    /// in one hash slot, so every lease script runs on one shard.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{ClusterConfig, HashingKey};
    /// let config = ClusterConfig::cluster_builder(
    ///     ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"],
    ///     HashingKey::new([7u8; 32])?,
    /// )
    /// .build()?;
    /// assert_eq!(config.redis_address(), "10.0.0.1:7000,10.0.0.2:7000");
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    #[cfg(feature = "redis-cluster")]
    pub fn cluster_builder<'a>(
        seed_urls: impl IntoIterator<Item = &'a str>,
        key: HashingKey,
    ) -> ClusterConfigBuilder {
        let mut builder = Self::builder("", key);
        builder.redis_urls = seed_urls.into_iter().map(str::to_owned).collect();
        builder.cluster = true;
        builder
    }

    /// The Redis address: `host:port` or a unix socket path (for a Redis Cluster, its
    /// seed nodes, comma-separated), never a password.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{ClusterConfig, HashingKey};
    /// let config = ClusterConfig::builder("redis://:pw@10.0.0.5:6390/2", HashingKey::new([7u8; 32])?).build()?;
    /// assert_eq!(config.redis_address(), "10.0.0.5:6390");
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    #[must_use]
    pub fn redis_address(&self) -> String {
        match &self.target {
            Target::Standalone(client) => client.get_connection_info().addr().to_string(),
            #[cfg(feature = "redis-cluster")]
            Target::Cluster { seeds, .. } => seeds.join(","),
        }
    }

    /// How user ids and names become Redis keys.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{ClusterConfig, HashingKey};
    /// let config = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?).prefix("app").build()?;
    /// assert_eq!(config.keyspace().prefix(), "app");
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    #[must_use]
    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    /// This node's id.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{ClusterConfig, HashingKey, NodeId};
    /// let config = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?)
    ///     .node_id(NodeId::try_new("web-2")?)
    ///     .build()?;
    /// assert_eq!(config.node_id().as_str(), "web-2");
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    #[must_use]
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// How long a lease lives without renewal.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{ClusterConfig, HashingKey};
    /// let config = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?).build()?;
    /// assert_eq!(config.lease_ttl(), ClusterConfig::DEFAULT_LEASE_TTL);
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    #[must_use]
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// How often leases are renewed: a third of the lease TTL.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{ClusterConfig, HashingKey};
    /// let config = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?).build()?;
    /// assert_eq!(config.renew_interval(), std::time::Duration::from_secs(10));
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    #[must_use]
    pub fn renew_interval(&self) -> Duration {
        self.lease_ttl / 3
    }

    /// How long a disconnect's revocation marker stays in Redis.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{ClusterConfig, HashingKey};
    /// let config = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?).build()?;
    /// assert_eq!(config.revocation_ttl(), 2 * config.lease_ttl());
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    #[must_use]
    pub fn revocation_ttl(&self) -> Duration {
        self.revocation_ttl
    }

    /// The longest any Redis call may take, reconnecting included.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{ClusterConfig, HashingKey};
    /// let config = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?).build()?;
    /// assert_eq!(config.response_timeout(), ClusterConfig::DEFAULT_RESPONSE_TIMEOUT);
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    #[must_use]
    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// The longest one connection attempt may take.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{ClusterConfig, HashingKey};
    /// let config = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?).build()?;
    /// assert_eq!(config.connection_timeout(), ClusterConfig::DEFAULT_CONNECTION_TIMEOUT);
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    #[must_use]
    pub fn connection_timeout(&self) -> Duration {
        self.connection_timeout
    }

    /// The most events a user's replay stream keeps.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{ClusterConfig, HashingKey};
    /// let config = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?).stream_max_len(64).build()?;
    /// assert_eq!(config.stream_max_len(), 64);
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    #[must_use]
    pub fn stream_max_len(&self) -> usize {
        self.stream_max_len
    }

    /// How old an event in a user's replay stream may get.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{ClusterConfig, HashingKey};
    /// let config = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?).build()?;
    /// assert_eq!(config.stream_max_age(), ClusterConfig::DEFAULT_STREAM_MAX_AGE);
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    #[must_use]
    pub fn stream_max_age(&self) -> Duration {
        self.stream_max_age
    }
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("redis_address", &self.redis_address())
            .field("keyspace", &self.keyspace)
            .field("node_id", &self.node_id)
            .field("lease_ttl", &self.lease_ttl)
            .field("revocation_ttl", &self.revocation_ttl)
            .field("response_timeout", &self.response_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .field("stream_max_len", &self.stream_max_len)
            .field("stream_max_age", &self.stream_max_age)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ClusterConfig`]; every value is checked by [`build`](Self::build).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use wsctx::cluster::{ClusterConfig, ClusterConfigError, HashingKey};
///
/// let key = HashingKey::new([7u8; 32])?;
/// let error = ClusterConfig::builder("redis://127.0.0.1", key)
///     .lease_ttl(Duration::from_secs(1))
///     .response_timeout(Duration::from_millis(500))
///     .build()
///     .unwrap_err();
/// assert_eq!(error, ClusterConfigError::ResponseTimeoutOutOfRange);
/// # Ok::<(), ClusterConfigError>(())
/// ```
#[must_use]
pub struct ClusterConfigBuilder {
    redis_urls: Vec<String>,
    #[cfg(feature = "redis-cluster")]
    cluster: bool,
    key: HashingKey,
    prefix: Option<String>,
    node_id: Option<NodeId>,
    lease_ttl: Duration,
    revocation_ttl: Option<Duration>,
    response_timeout: Duration,
    connection_timeout: Duration,
    stream_max_len: usize,
    stream_max_age: Duration,
}

impl ClusterConfigBuilder {
    builder_setters! {
        /// The namespace of every key and channel (default `wsctx`).
        ///
        /// # Examples
        ///
        /// ```
        /// # use wsctx::cluster::{ClusterConfig, HashingKey};
        /// let builder = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?).prefix("a{b}");
        /// assert!(builder.build().is_err());
        /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
        /// ```
        prefix(prefix: impl Into<String>) => prefix = Some(prefix.into());

        /// This node's id (default: [`NodeId::random`]).
        ///
        /// # Examples
        ///
        /// ```
        /// # use wsctx::cluster::{ClusterConfig, HashingKey, NodeId};
        /// let config = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?)
        ///     .node_id(NodeId::try_new("web-3")?)
        ///     .build()?;
        /// assert_eq!(config.node_id().as_str(), "web-3");
        /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
        /// ```
        node_id(node_id: NodeId) => node_id = Some(node_id);

        /// The lease TTL, 100 ms to 1 hour (default 30 s).
        ///
        /// # Examples
        ///
        /// ```
        /// # use std::time::Duration;
        /// # use wsctx::cluster::{ClusterConfig, HashingKey};
        /// let builder = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?)
        ///     .lease_ttl(Duration::from_millis(10));
        /// assert!(builder.build().is_err());
        /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
        /// ```
        lease_ttl(ttl: Duration) => lease_ttl;

        /// How long a disconnect's marker stays, at least the lease TTL (default twice it).
        ///
        /// # Examples
        ///
        /// ```
        /// # use std::time::Duration;
        /// # use wsctx::cluster::{ClusterConfig, HashingKey};
        /// let config = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?)
        ///     .revocation_ttl(Duration::from_secs(600))
        ///     .build()?;
        /// assert_eq!(config.revocation_ttl(), Duration::from_secs(600));
        /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
        /// ```
        revocation_ttl(ttl: Duration) => revocation_ttl = Some(ttl);

        /// The longest any Redis call may take, above zero and at most a third of the lease
        /// TTL (default 500 ms).
        ///
        /// # Examples
        ///
        /// ```
        /// # use std::time::Duration;
        /// # use wsctx::cluster::{ClusterConfig, HashingKey};
        /// let config = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?)
        ///     .response_timeout(Duration::from_millis(200))
        ///     .build()?;
        /// assert_eq!(config.response_timeout(), Duration::from_millis(200));
        /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
        /// ```
        response_timeout(timeout: Duration) => response_timeout;

        /// The longest one connection attempt may take, above zero (default 1 s).
        ///
        /// # Examples
        ///
        /// ```
        /// # use std::time::Duration;
        /// # use wsctx::cluster::{ClusterConfig, HashingKey};
        /// let builder = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?)
        ///     .connection_timeout(Duration::ZERO);
        /// assert!(builder.build().is_err());
        /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
        /// ```
        connection_timeout(timeout: Duration) => connection_timeout;

        /// The most events a user's replay stream keeps, above zero (default 256).
        ///
        /// # Examples
        ///
        /// ```
        /// # use wsctx::cluster::{ClusterConfig, HashingKey};
        /// let builder = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?).stream_max_len(0);
        /// assert!(builder.build().is_err());
        /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
        /// ```
        stream_max_len(events: usize) => stream_max_len;

        /// How old an event in a user's replay stream may get, above zero (default 2 minutes).
        ///
        /// # Examples
        ///
        /// ```
        /// # use std::time::Duration;
        /// # use wsctx::cluster::{ClusterConfig, HashingKey};
        /// let config = ClusterConfig::builder("redis://127.0.0.1", HashingKey::new([7u8; 32])?)
        ///     .stream_max_age(Duration::from_secs(30))
        ///     .build()?;
        /// assert_eq!(config.stream_max_age(), Duration::from_secs(30));
        /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
        /// ```
        stream_max_age(age: Duration) => stream_max_age;
    }

    /// Checks every value and parses the URL (without connecting).
    ///
    /// # Errors
    ///
    /// The first [`ClusterConfigError`] found.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{ClusterConfig, HashingKey};
    /// assert!(ClusterConfig::builder("redis://127.0.0.1:6400", HashingKey::new([7u8; 32])?).build().is_ok());
    /// assert!(ClusterConfig::builder("http://127.0.0.1", HashingKey::new([7u8; 32])?).build().is_err());
    /// # Ok::<(), wsctx::cluster::ClusterConfigError>(())
    /// ```
    pub fn build(self) -> Result<ClusterConfig, ClusterConfigError> {
        const MIN_TTL: Duration = Duration::from_millis(100);
        const MAX_TTL: Duration = Duration::from_secs(3600);
        let keyspace = Keyspace::new(
            self.prefix.as_deref().unwrap_or(Keyspace::DEFAULT_PREFIX),
            &self.key,
        )?;
        if !(MIN_TTL..=MAX_TTL).contains(&self.lease_ttl) {
            return Err(ClusterConfigError::LeaseTtlOutOfRange);
        }
        if self.response_timeout.is_zero() || self.response_timeout > self.lease_ttl / 3 {
            return Err(ClusterConfigError::ResponseTimeoutOutOfRange);
        }
        if self.connection_timeout.is_zero() {
            return Err(ClusterConfigError::ConnectionTimeoutZero);
        }
        let revocation_ttl = self.revocation_ttl.unwrap_or(2 * self.lease_ttl);
        if revocation_ttl < self.lease_ttl {
            return Err(ClusterConfigError::RevocationTtlTooShort);
        }
        if self.stream_max_len == 0 || self.stream_max_age.is_zero() {
            return Err(ClusterConfigError::StreamCapZero);
        }
        #[cfg(feature = "redis-cluster")]
        let target = if self.cluster {
            open_cluster(
                &self.redis_urls,
                self.connection_timeout,
                self.response_timeout,
            )?
        } else {
            open_standalone(&self.redis_urls)?
        };
        #[cfg(not(feature = "redis-cluster"))]
        let target = open_standalone(&self.redis_urls)?;
        Ok(ClusterConfig {
            target,
            keyspace,
            node_id: self.node_id.unwrap_or_else(NodeId::random),
            lease_ttl: self.lease_ttl,
            revocation_ttl,
            response_timeout: self.response_timeout,
            connection_timeout: self.connection_timeout,
            stream_max_len: self.stream_max_len,
            stream_max_age: self.stream_max_age,
        })
    }
}

debug_fields!(ClusterConfigBuilder {
    prefix,
    node_id,
    lease_ttl,
    ..
});

/// Parses a URL, speaking RESP3 (pub/sub messages arrive as pushes on the same
/// reconnecting connection).
fn connection_info(url: &str) -> Result<redis::ConnectionInfo, ClusterConfigError> {
    use redis::IntoConnectionInfo;
    let info = url
        .into_connection_info()
        .map_err(|_| ClusterConfigError::InvalidUrl)?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(redis::ProtocolVersion::RESP3);
    Ok(info.set_redis_settings(settings))
}

fn open_standalone(urls: &[String]) -> Result<Target, ClusterConfigError> {
    let [url] = urls else {
        return Err(ClusterConfigError::InvalidUrl);
    };
    redis::Client::open(connection_info(url)?)
        .map(Target::Standalone)
        .map_err(|_| ClusterConfigError::InvalidUrl)
}

#[cfg(feature = "redis-cluster")]
fn open_cluster(
    urls: &[String],
    connection_timeout: Duration,
    response_timeout: Duration,
) -> Result<Target, ClusterConfigError> {
    let infos = urls
        .iter()
        .map(|url| connection_info(url))
        .collect::<Result<Vec<_>, _>>()?;
    if infos.is_empty() {
        return Err(ClusterConfigError::InvalidUrl);
    }
    let seeds = infos.iter().map(|info| info.addr().to_string()).collect();
    let client = redis::cluster::ClusterClientBuilder::new(infos.clone())
        .use_protocol(redis::ProtocolVersion::RESP3)
        .connection_timeout(connection_timeout)
        .response_timeout(response_timeout)
        .build()
        .map_err(|_| ClusterConfigError::InvalidUrl)?;
    Ok(Target::Cluster {
        client: Box::new(client),
        seeds,
        infos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(
        irrefutable_let_patterns,
        reason = "refutable with the feature redis-cluster"
    )]
    fn debug_shows_no_password_and_no_key() {
        let key = HashingKey::new(b"hashing-key-hashing-key-hashing-key!").unwrap();
        let config = ClusterConfig::builder("redis://user:hunter2-pw@127.0.0.1:6399/1", key)
            .build()
            .unwrap();
        let debug = format!("{config:?}");
        assert!(debug.contains("127.0.0.1:6399"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("hashing-key"), "{debug}");
        let Target::Standalone(client) = &config.target else {
            panic!("one url is one server");
        };
        assert_eq!(
            client.get_connection_info().redis_settings().protocol(),
            redis::ProtocolVersion::RESP3
        );
    }

    #[test]
    fn bounds_are_checked() {
        let key = || HashingKey::new([0; 32]).unwrap();
        let ms = Duration::from_millis;
        let base = || ClusterConfig::builder("redis://127.0.0.1", key());
        assert_eq!(
            base().lease_ttl(ms(99)).build().unwrap_err(),
            ClusterConfigError::LeaseTtlOutOfRange
        );
        assert!(
            base()
                .lease_ttl(ms(300))
                .response_timeout(ms(100))
                .build()
                .is_ok()
        );
        assert_eq!(
            base()
                .lease_ttl(ms(300))
                .response_timeout(ms(101))
                .build()
                .unwrap_err(),
            ClusterConfigError::ResponseTimeoutOutOfRange
        );
        assert_eq!(
            base().response_timeout(Duration::ZERO).build().unwrap_err(),
            ClusterConfigError::ResponseTimeoutOutOfRange
        );
        assert_eq!(
            base().revocation_ttl(ms(29_999)).build().unwrap_err(),
            ClusterConfigError::RevocationTtlTooShort
        );
        assert_eq!(
            base().stream_max_age(Duration::ZERO).build().unwrap_err(),
            ClusterConfigError::StreamCapZero
        );
        for bad in ["", "not a url", "http://127.0.0.1", "redis://:pw@"] {
            assert_eq!(
                ClusterConfig::builder(bad, key()).build().unwrap_err(),
                ClusterConfigError::InvalidUrl,
                "{bad}"
            );
        }
    }
}
