//! The connection to Redis: one reconnecting, multiplexed connection per node, every call
//! bounded by the response timeout, every failure a typed [`BackplaneError`].

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};

use crate::cluster::config::{ClusterConfig, Target};
use crate::rejection::{ErrorCode, Rejection};

/// What went wrong talking to Redis. See [`BackplaneError`].
///
/// The first three kinds mean the backplane is **unavailable** (wait and try again); the
/// last two mean Redis **refused** the call in a way that waiting does not fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackplaneErrorKind {
    /// No answer within the response timeout (Redis stopped, overloaded, or the network
    /// is down). The call may or may not have taken effect.
    Timeout,
    /// No connection could be made, or it broke during the call. The call may or may not
    /// have taken effect.
    Connection,
    /// Redis answered that it cannot serve now: loading its data, running a long
    /// script, out of memory, or in a failover (`READONLY`, `MASTERDOWN`, `TRYAGAIN`,
    /// `CLUSTERDOWN`). The call did not take effect.
    Busy,
    /// Redis refused the credentials, or its ACL does not allow a command.
    Auth,
    /// Redis answered something the backplane does not understand (a script error, an
    /// unexpected reply): a bug, or a server that is not Redis 7.
    Protocol,
}

/// A failed call to the Redis backplane.
///
/// It says whether the backplane is *unavailable* ([`is_unavailable`](Self::is_unavailable):
/// a timeout, no connection, Redis busy or failing over) or *refused* the call
/// ([`is_refused`](Self::is_refused): credentials, permissions, or a reply that makes no
/// sense). An unavailable backplane refuses new sockets with BACKPLANE_UNAVAILABLE (503 +
/// Retry-After, close 1013); a refusing one is a server fault, INTERNAL_ERROR (500, close
/// 1011). Neither is the client's fault.
///
/// The message is fixed and lowercase; [`source`](std::error::Error::source) gives the
/// Redis client's error for the operator's logs. Neither ever contains a user id (Redis
/// sees only hashes) or a password.
///
/// # Examples
///
/// ```
/// use wsctx::{ErrorCode, Rejection};
/// use wsctx::cluster::{BackplaneError, BackplaneErrorKind};
///
/// let error = BackplaneError::from_kind(BackplaneErrorKind::Timeout);
/// assert!(error.is_unavailable() && !error.is_refused());
/// assert!(error.may_have_applied());
/// let rejection = Rejection::from(error);
/// assert_eq!(rejection.code(), ErrorCode::BackplaneUnavailable);
/// assert_eq!(rejection.http_status(), Some(503));
/// ```
#[derive(Clone, Debug)]
pub struct BackplaneError {
    kind: BackplaneErrorKind,
    source: Option<RedisError>,
}

impl BackplaneError {
    /// An error of `kind` with no underlying Redis error (for tests and for wrappers that
    /// detect a failure themselves).
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::cluster::{BackplaneError, BackplaneErrorKind};
    ///
    /// let error = BackplaneError::from_kind(BackplaneErrorKind::Auth);
    /// assert_eq!(error.kind(), BackplaneErrorKind::Auth);
    /// assert!(std::error::Error::source(&error).is_none());
    /// ```
    #[must_use]
    pub fn from_kind(kind: BackplaneErrorKind) -> Self {
        Self { kind, source: None }
    }

    pub(crate) fn protocol(detail: &'static str) -> Self {
        Self {
            kind: BackplaneErrorKind::Protocol,
            source: Some(RedisError::from((ErrorKind::UnexpectedReturnType, detail))),
        }
    }

    /// What went wrong.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{BackplaneError, BackplaneErrorKind};
    /// assert_eq!(BackplaneError::from_kind(BackplaneErrorKind::Busy).kind(), BackplaneErrorKind::Busy);
    /// ```
    #[must_use]
    pub fn kind(&self) -> BackplaneErrorKind {
        self.kind
    }

    /// Whether the backplane is unavailable for now: a timeout, no connection, or Redis
    /// busy or failing over. Retrying later may succeed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{BackplaneError, BackplaneErrorKind};
    /// assert!(BackplaneError::from_kind(BackplaneErrorKind::Connection).is_unavailable());
    /// ```
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.kind,
            BackplaneErrorKind::Timeout | BackplaneErrorKind::Connection | BackplaneErrorKind::Busy
        )
    }

    /// Whether Redis refused the call for a reason waiting does not fix: credentials,
    /// permissions, or a reply the backplane does not understand.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{BackplaneError, BackplaneErrorKind};
    /// assert!(BackplaneError::from_kind(BackplaneErrorKind::Protocol).is_refused());
    /// ```
    #[must_use]
    pub fn is_refused(&self) -> bool {
        !self.is_unavailable()
    }

    /// Whether the call may have taken effect in Redis although it failed (a timeout or a
    /// connection that broke mid-call). A lease acquisition that fails this way must be
    /// released again (owner-checked, so releasing is always safe).
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::cluster::{BackplaneError, BackplaneErrorKind};
    /// assert!(!BackplaneError::from_kind(BackplaneErrorKind::Busy).may_have_applied());
    /// ```
    #[must_use]
    pub fn may_have_applied(&self) -> bool {
        matches!(
            self.kind,
            BackplaneErrorKind::Timeout | BackplaneErrorKind::Connection
        )
    }

    /// The error code a refused socket gets: BACKPLANE_UNAVAILABLE when
    /// [unavailable](Self::is_unavailable), INTERNAL_ERROR when [refused](Self::is_refused).
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{ErrorCode, cluster::{BackplaneError, BackplaneErrorKind}};
    /// assert_eq!(BackplaneError::from_kind(BackplaneErrorKind::Auth).code(), ErrorCode::InternalError);
    /// ```
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        if self.is_unavailable() {
            ErrorCode::BackplaneUnavailable
        } else {
            ErrorCode::InternalError
        }
    }
}

impl fmt::Display for BackplaneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            BackplaneErrorKind::Timeout => "the redis backplane did not answer in time",
            BackplaneErrorKind::Connection => "the redis backplane could not be reached",
            BackplaneErrorKind::Busy => "the redis backplane is busy or failing over",
            BackplaneErrorKind::Auth => "the redis backplane refused the credentials or a command",
            BackplaneErrorKind::Protocol => "the redis backplane gave an unexpected reply",
        })
    }
}

impl StdError for BackplaneError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<BackplaneError> for Rejection {
    fn from(error: BackplaneError) -> Self {
        Rejection::new(error.code())
    }
}

impl From<RedisError> for BackplaneError {
    fn from(error: RedisError) -> Self {
        Self {
            kind: classify(&error),
            source: Some(error),
        }
    }
}

/// Sorts a Redis client error into unavailable (timeout, connection, busy) and refused
/// (auth, protocol).
fn classify(error: &RedisError) -> BackplaneErrorKind {
    if error.is_timeout() {
        return BackplaneErrorKind::Timeout;
    }
    match error.kind() {
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => BackplaneErrorKind::Connection,
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask,
        ) => BackplaneErrorKind::Busy,
        ErrorKind::AuthenticationFailed | ErrorKind::Server(ServerErrorKind::NoPerm) => {
            BackplaneErrorKind::Auth
        }
        _ => match error.code() {
            Some("BUSY" | "OOM" | "LOADING" | "NOREPLICAS" | "MISCONF") => BackplaneErrorKind::Busy,
            Some("NOAUTH" | "WRONGPASS" | "NOPERM") => BackplaneErrorKind::Auth,
            _ => BackplaneErrorKind::Protocol,
        },
    }
}

/// One node's connection to the Redis backplane: a cheap [`Clone`] handle (shared state
/// behind an [`Arc`]).
///
/// Calls go over one multiplexed connection that reconnects by itself in the background.
/// Every call is bounded by the configured response timeout **as a whole**, waiting for a
/// reconnection included, so a Redis that is down or stopped costs a caller at most that
/// long. No lock is held across an await.
///
/// The lease operations ([`acquire`](Self::acquire), [`renew`](Self::renew),
/// [`release`](Self::release), [`revoke`](Self::revoke)) are Lua scripts that run
/// atomically on Redis's clock; see the [module docs](crate::cluster).
///
/// # Examples
///
/// ```no_run
/// use wsctx::cluster::{Backplane, ClusterConfig, HashingKey};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = ClusterConfig::builder("redis://127.0.0.1:6380", HashingKey::new([7u8; 32])?).build()?;
/// let backplane = Backplane::connect(config).await?;
/// println!("redis answered in {:?}", backplane.ping().await?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Backplane {
    pub(crate) inner: Arc<Inner>,
}

/// The node's connection: both kinds reconnect by themselves and are cheap to clone.
#[derive(Clone)]
pub(crate) enum Connection {
    Standalone(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(connection) => connection.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(connection) => connection.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(connection) => connection.get_db(),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) config: ClusterConfig,
    connection: Connection,
    /// Random per `Backplane`: with the node id and `sequence`, makes every lease owner
    /// token unique, even across restarts of a node with a fixed id.
    incarnation: u64,
    sequence: AtomicU64,
}

impl Backplane {
    /// Connects to Redis. Waits for the first connection at most the connection timeout
    /// plus the response timeout.
    ///
    /// Must be called within a tokio runtime (the connection reconnects on a background
    /// task).
    ///
    /// # Errors
    ///
    /// A [`BackplaneError`]: unavailable when Redis cannot be reached in time, refused
    /// when it rejects the credentials.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::cluster::{Backplane, ClusterConfig, HashingKey};
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = ClusterConfig::builder("redis://127.0.0.1:6380", HashingKey::new([7u8; 32])?).build()?;
    /// let backplane = Backplane::connect(config).await?;
    /// # let _ = backplane;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(config: ClusterConfig) -> Result<Self, BackplaneError> {
        let deadline = config.connection_timeout() + config.response_timeout();
        let connection = match &config.target {
            Target::Standalone(client) => {
                // One plain attempt first: the connection manager retries every failure,
                // a wrong password included, so only this attempt can tell "refused"
                // from "down".
                let probe = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(config.connection_timeout()))
                    .set_response_timeout(Some(config.response_timeout()));
                within(
                    deadline,
                    client.get_multiplexed_async_connection_with_config(&probe),
                )
                .await?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(config.response_timeout()))
                    .set_connection_timeout(Some(config.connection_timeout()))
                    // Keep trying while Redis is away, but never wait long between
                    // attempts: a Redis that comes back is used again within a second.
                    .set_max_delay(Duration::from_secs(1));
                Connection::Standalone(
                    within(
                        deadline,
                        ConnectionManager::new_with_config(client.clone(), manager_config),
                    )
                    .await?,
                )
            }
            #[cfg(feature = "redis-cluster")]
            Target::Cluster { client, .. } => {
                Connection::Cluster(within(deadline, client.get_async_connection()).await?)
            }
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                connection,
                incarnation: uuid::Uuid::new_v4().as_u64_pair().0,
                sequence: AtomicU64::new(0),
            }),
        })
    }

    /// The configuration this node connected with.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::cluster::{Backplane, ClusterConfig, HashingKey};
    /// # async fn run(backplane: Backplane) {
    /// println!("node {}", backplane.config().node_id());
    /// # }
    /// ```
    #[must_use]
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// Sends `PING` and returns how long the answer took.
    ///
    /// # Errors
    ///
    /// A [`BackplaneError`] when Redis does not answer `PONG` within the response timeout.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::cluster::Backplane;
    /// # async fn run(backplane: Backplane) -> Result<(), wsctx::cluster::BackplaneError> {
    /// assert!(backplane.ping().await? < std::time::Duration::from_millis(500));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ping(&self) -> Result<Duration, BackplaneError> {
        let start = Instant::now();
        let reply: String =
            self.call(|mut connection| async move {
                redis::cmd("PING").query_async(&mut connection).await
            })
            .await?;
        if reply == "PONG" {
            Ok(start.elapsed())
        } else {
            Err(BackplaneError::protocol("ping was not answered with pong"))
        }
    }

    /// A new owner token: `<node id>:<incarnation>:<sequence>`, unique per admission.
    pub(crate) fn next_owner(&self) -> Box<str> {
        let sequence = self.inner.sequence.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}:{:016x}:{sequence:x}",
            self.inner.config.node_id(),
            self.inner.incarnation
        )
        .into_boxed_str()
    }

    /// Runs one Redis call on a clone of the connection handle (no lock held), bounded by
    /// the response timeout as a whole.
    pub(crate) async fn call<T, F, Fut>(&self, call: F) -> Result<T, BackplaneError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.inner.connection.clone();
        within(self.inner.config.response_timeout(), call(connection)).await
    }
}

impl Backplane {
    /// Runs one of the crate's Lua scripts, bounded like [`call`](Self::call).
    pub(crate) async fn run_script(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<Value, BackplaneError> {
        self.call(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await
    }
}

/// Runs a Redis call, failing with [`BackplaneErrorKind::Timeout`] at `deadline`.
async fn within<T>(
    deadline: Duration,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, BackplaneError> {
    match tokio::time::timeout(deadline, call).await {
        Ok(result) => result.map_err(BackplaneError::from),
        Err(_) => Err(BackplaneError::from_kind(BackplaneErrorKind::Timeout)),
    }
}

impl fmt::Debug for Backplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backplane")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_errors_are_sorted_into_unavailable_and_refused() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&io), BackplaneErrorKind::Connection);
        let timeout = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert_eq!(classify(&timeout), BackplaneErrorKind::Timeout);
        let auth = RedisError::from((ErrorKind::AuthenticationFailed, "no"));
        assert_eq!(classify(&auth), BackplaneErrorKind::Auth);
        let parse = RedisError::from((ErrorKind::UnexpectedReturnType, "no"));
        assert_eq!(classify(&parse), BackplaneErrorKind::Protocol);
        for kind in [
            BackplaneErrorKind::Timeout,
            BackplaneErrorKind::Connection,
            BackplaneErrorKind::Busy,
        ] {
            let error = BackplaneError::from_kind(kind);
            assert!(error.is_unavailable());
            assert_eq!(error.code(), ErrorCode::BackplaneUnavailable);
        }
        for kind in [BackplaneErrorKind::Auth, BackplaneErrorKind::Protocol] {
            let error = BackplaneError::from_kind(kind);
            assert!(error.is_refused());
            assert_eq!(error.code(), ErrorCode::InternalError);
        }
    }
}
