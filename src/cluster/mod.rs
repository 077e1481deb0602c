//! Cluster mode on a Redis backplane (feature `redis`): what one node needs to share
//! per-user limits, duplicate client ids and disconnects with the other nodes behind a
//! load balancer.
//!
//! # What lives in Redis
//!
//! One user's tabs may sit on different nodes. Each live socket holds a **lease** in
//! Redis: a member of the user's sorted set scored by its expiry, plus an owner entry.
//! Leases change only through Lua scripts, which run atomically and read the time from
//! Redis (`TIME`), so nodes with skewed clocks still agree:
//!
//! | operation | what the script does |
//! |---|---|
//! | [`Backplane::acquire`] | drops the user's expired leases; a live lease with the same client id → [`Acquire::Duplicate`] (DUPLICATE_CLIENT); `per_user` live leases → [`Acquire::Limit`] (CONNECTION_LIMIT); else adds the lease |
//! | [`Backplane::renew`] | every third of the lease TTL: extends this node's leases, re-creates the ones Redis lost (a restart without persistence), and reports leases revoked by a disconnect or taken by another admission |
//! | [`Backplane::release`] | when a socket ends: removes its lease only if its owner token still holds it (batched per user) |
//! | [`Backplane::revoke`] | a disconnect: drops the user's leases and leaves a marker that every later renewal of an older lease reports, so a node that missed the disconnect message closes its sockets within a third of the lease TTL |
//!
//! A node that crashes stops renewing, and its leases expire after one lease TTL
//! (default 30 s): nothing has to clean up after it.
//!
//! [`ClusterFactory`] does all of this for a node: it admits sockets on its local
//! [`ManagerFactory`](crate::ManagerFactory) first and then on a lease, renews the
//! node's leases in the background, closes sockets whose lease was revoked or taken,
//! and releases a lease when its [`ClusterManager`] is dropped.
//!
//! # Delivery and replay across nodes
//!
//! Each node has one [`Bus`]: a pub/sub connection on which it subscribes to the channel
//! of every user it holds sockets of, and probes its own subscription.
//! [`ClusterFactory::send_to_user`] and [`ClusterFactory::disconnect_user`] act on the
//! node's sockets first, then publish (a [`ClusterMessage`] in a binary envelope that
//! names no user); the result reports the other nodes apart ([`RemoteDelivery`]).
//! Events (`ClusterFactory::emitter`, feature `serde`) are numbered and kept by the
//! user's stream in Redis (capped by count and age) and published in the same script;
//! every node, the emitting one included, takes them off the channel in the stream's
//! order, and a tab resumes on any node ([`ClusterFactory::admit_resuming`]).
//!
//! | Redis name | holds |
//! |---|---|
//! | leases, owners | one member per live socket, scored by expiry; who owns it |
//! | revoked | the last disconnect's marker |
//! | stream, position | the user's recent events; the stream's epoch and last number |
//! | channel | messages for the user's sockets on other nodes (sharded on a Redis Cluster) |
//!
//! # Keys never name a user
//!
//! Keys and channels carry a keyed hash of the user id ([`UserHash`], HMAC-SHA-256 under
//! the deployment's [`HashingKey`]), never the id; all of one user's names share the hash
//! tag `{u:<hash>}`, hence one Redis Cluster hash slot. See [`Keyspace`] and [`UserKeys`].
//!
//! # When Redis is slow or gone
//!
//! Every call is bounded by the response timeout (default 500 ms), reconnection
//! included, and fails with a [`BackplaneError`] that tells an *unavailable* backplane
//! (BACKPLANE_UNAVAILABLE: 503 + Retry-After, close 1013) from one that *refused* the call
//! (a server fault). Nothing holds a lock across an await.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use wsctx::{CloseCode, CloseReason, UserId, WebSocketClientId};
//! use wsctx::cluster::{Acquire, Backplane, ClusterConfig, HashingKey, Renewal};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The same hashing key on every node, from the deployment's secrets.
//! let key = HashingKey::new(std::env::var("WSCTX_HASHING_KEY")?)?;
//! let config = ClusterConfig::builder("redis://127.0.0.1:6380", key)
//!     .lease_ttl(Duration::from_secs(30))
//!     .build()?;
//! let backplane = Backplane::connect(config).await?;
//!
//! let alice = UserId::try_new("alice")?;
//! let Acquire::Granted { lease, .. } =
//!     backplane.acquire(&alice, &WebSocketClientId::try_new("tab-1")?, 5).await?
//! else {
//!     return Ok(()); // DUPLICATE_CLIENT or CONNECTION_LIMIT, on any node
//! };
//!
//! // Every ten seconds, for every lease this node holds:
//! for result in backplane.renew(std::slice::from_ref(&lease)).await {
//!     if let Ok(Renewal::Revoked(_) | Renewal::Taken) = result {
//!         // close that socket
//!     }
//! }
//!
//! // Another node disconnects alice everywhere:
//! backplane.revoke(&alice, CloseCode::FORBIDDEN, &CloseReason::new("banned")).await?;
//! // When the socket ends:
//! backplane.release(&[lease]).await?;
//! # Ok(())
//! # }
//! ```

mod backplane;
mod bus;
mod config;
mod envelope;
mod factory;
mod keys;
mod lease;
mod report;
mod stream;

pub use backplane::{Backplane, BackplaneError, BackplaneErrorKind};
pub use bus::{Bus, BusConfig, BusStatus, Incoming, Subscription};
pub use config::{ClusterConfig, ClusterConfigBuilder, ClusterConfigError, NodeId};
pub use envelope::ClusterMessage;
#[cfg(feature = "serde")]
pub use factory::ClusterEmitter;
pub use factory::{
    AdmitError, ClusterDelivery, ClusterDisconnect, ClusterFactory, ClusterFactoryBuilder,
    ClusterManager, RemoteDelivery, WhenUnavailable,
};
pub use keys::{ClientHash, HashingKey, Keyspace, MIN_HASHING_KEY_BYTES, UserHash, UserKeys};
pub use lease::{Acquire, AcquireError, Lease, Released, Renewal, Revocation};
