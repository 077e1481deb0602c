//! What the cluster factory's operations return: [`AdmitError`] (why an admission was
//! refused), [`ClusterDelivery`] and [`RemoteDelivery`] (what a send reached), and
//! [`ClusterDisconnect`] (what a disconnect closed). A leaf of the cluster factory.

use crate::cluster::backplane::{BackplaneError, BackplaneErrorKind};
use crate::factory::{Delivery, FactoryError};
use crate::rejection::{ErrorCode, Rejection};

/// Why [`ClusterFactory::admit`](crate::cluster::ClusterFactory::admit) refused a
/// socket.
///
/// The node's own checks come first ([`Local`](Self::Local): SHUTTING_DOWN, a duplicate
/// client id or the per-user limit on this node, OVERLOADED at the node's global
/// limit); then the user's lease in Redis, which counts every node
/// ([`ConnectionLimit`](Self::ConnectionLimit), [`DuplicateClient`](Self::DuplicateClient));
/// a backplane that cannot answer in time refuses with BACKPLANE_UNAVAILABLE
/// ([`Backplane`](Self::Backplane)). Convert it into a [`Rejection`] to render it. The
/// messages are fixed, lowercase, and contain no id.
///
/// # Examples
///
/// ```
/// use wsctx::{ErrorCode, FactoryError, Rejection};
/// use wsctx::cluster::{AdmitError, BackplaneError, BackplaneErrorKind};
///
/// assert_eq!(AdmitError::ConnectionLimit.code(), ErrorCode::ConnectionLimit);
/// assert_eq!(AdmitError::Local(FactoryError::ShuttingDown).code(), ErrorCode::ShuttingDown);
/// let down = AdmitError::Backplane(BackplaneError::from_kind(BackplaneErrorKind::Timeout));
/// let rejection = Rejection::from(down);
/// assert_eq!(rejection.code(), ErrorCode::BackplaneUnavailable);
/// assert_eq!(rejection.http_status(), Some(503));
/// ```
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdmitError {
    /// This node refused it before asking Redis (see [`FactoryError`]).
    #[error(transparent)]
    Local(#[from] FactoryError),
    /// The user holds the per-user limit across all nodes: CONNECTION_LIMIT.
    #[error("{}", ErrorCode::ConnectionLimit.message())]
    ConnectionLimit,
    /// The user has a live socket with this client id on another node:
    /// DUPLICATE_CLIENT.
    #[error("{}", ErrorCode::DuplicateClient.message())]
    DuplicateClient,
    /// Redis did not answer in time or refused the call: BACKPLANE_UNAVAILABLE when it is
    /// [unavailable](BackplaneError::is_unavailable), INTERNAL_ERROR when it
    /// [refused](BackplaneError::is_refused).
    #[error(transparent)]
    Backplane(BackplaneError),
}

impl AdmitError {
    /// The error code of the rejection table.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::ErrorCode;
    /// use wsctx::cluster::AdmitError;
    ///
    /// assert_eq!(AdmitError::DuplicateClient.code(), ErrorCode::DuplicateClient);
    /// ```
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Local(error) => error.code(),
            Self::ConnectionLimit => ErrorCode::ConnectionLimit,
            Self::DuplicateClient => ErrorCode::DuplicateClient,
            Self::Backplane(error) => error.code(),
        }
    }
}

impl From<AdmitError> for Rejection {
    fn from(error: AdmitError) -> Self {
        match error {
            AdmitError::Backplane(error) => error.into(),
            other => Rejection::new(other.code()),
        }
    }
}

/// What [`ClusterFactory::send_to_user`](crate::cluster::ClusterFactory::send_to_user)
/// reached: the sockets on this node, reported exactly, and the other nodes, reported
/// apart so that a Redis error never hides (or cancels) the local delivery.
///
/// # Examples
///
/// ```no_run
/// # use wsctx::{Frame, UserId, cluster::{ClusterFactory, RemoteDelivery}};
/// # async fn run(factory: ClusterFactory) -> Result<(), Box<dyn std::error::Error>> {
/// let sent = factory.send_to_user(&UserId::try_new("alice")?, Frame::text("report ready")).await;
/// println!("{} tabs on this node", sent.local.delivered);
/// if let RemoteDelivery::Published { nodes } = sent.remote {
///     println!("{nodes} other nodes hold alice's tabs");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterDelivery {
    /// The sockets of this node, as [`ManagerFactory::send_to_user`](crate::ManagerFactory::send_to_user)
    /// reports them.
    pub local: Delivery,
    /// The other nodes.
    pub remote: RemoteDelivery,
}

/// What a send did for the user's sockets on other nodes.
///
/// # Examples
///
/// ```
/// use wsctx::cluster::{BackplaneErrorKind, RemoteDelivery};
///
/// let sent = RemoteDelivery::Published { nodes: 2 };
/// assert!(sent.is_published());
/// assert!(!RemoteDelivery::Failed(BackplaneErrorKind::Timeout).is_published());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteDelivery {
    /// Published on the user's channel; `nodes` other nodes hold sockets of the user
    /// and received it (each then queues it on its own sockets of the user).
    Published {
        /// Other nodes that received it.
        nodes: usize,
    },
    /// Not published: Redis did not answer in time or refused. The local part stands.
    Failed(BackplaneErrorKind),
    /// Not published because the send itself was refused: a close frame (closing is
    /// `disconnect_user`'s job), or a send from a socket whose close was requested.
    Refused,
}

impl RemoteDelivery {
    /// Whether Redis took the message.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(wsctx::cluster::RemoteDelivery::Published { nodes: 0 }.is_published());
    /// ```
    #[must_use]
    pub fn is_published(&self) -> bool {
        matches!(self, Self::Published { .. })
    }

    pub(crate) fn from_result(result: &Result<usize, BackplaneError>) -> Self {
        match result {
            Ok(nodes) => Self::Published { nodes: *nodes },
            Err(error) => Self::Failed(error.kind()),
        }
    }
}

/// What [`ClusterFactory::disconnect_user`](crate::cluster::ClusterFactory::disconnect_user)
/// did: the sockets it closed on this node, and, apart, whether Redis took the
/// revocation that closes the user's sockets on the other nodes.
///
/// # Examples
///
/// ```no_run
/// # use wsctx::{CloseCode, CloseReason, UserId, cluster::ClusterFactory};
/// # async fn run(factory: ClusterFactory) -> Result<(), Box<dyn std::error::Error>> {
/// let banned = factory
///     .disconnect_user(&UserId::try_new("alice")?, CloseCode::FORBIDDEN, &CloseReason::new("banned"))
///     .await;
/// println!("{} closed here", banned.local);
/// if let Err(error) = banned.remote {
///     eprintln!("other nodes not told: {error}"); // retry the disconnect later
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClusterDisconnect {
    /// Sockets this call closed on this node, as
    /// [`ManagerFactory::disconnect_user`](crate::ManagerFactory::disconnect_user)
    /// counts them. They are closed even when Redis is away.
    pub local: usize,
    /// The revocation in Redis: the number of the user's live leases it dropped (on
    /// every node, this one included), or why Redis did not take it. Once taken, every
    /// node closes the user's older sockets at its next lease renewal, within a third
    /// of the lease TTL.
    pub remote: Result<u64, BackplaneError>,
    /// The disconnect published on the user's channel: the other nodes holding the
    /// user's sockets close them at once, without waiting for their renewal.
    pub published: RemoteDelivery,
}
