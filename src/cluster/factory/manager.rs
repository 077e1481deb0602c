//! [`ClusterManager`]: one socket admitted on a cluster-wide lease.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::cluster::bus::Subscription;
use crate::cluster::envelope::ClusterMessage;
use crate::cluster::factory::held::LeaseGuard;
use crate::cluster::factory::{ClusterDelivery, RemoteDelivery};
use crate::factory::IsolatedManager;
use crate::factory::{Delivery, Frame};

/// One socket admitted by a [`ClusterFactory`](crate::cluster::ClusterFactory): an
/// [`IsolatedManager`] (it derefs to one: send, close, record activity) that also holds
/// the socket's lease in Redis.
///
/// Dropping it frees the node's slot and releases the lease exactly once: the release
/// is queued (a drop never blocks or awaits) and a background task sends it, in
/// batches, retrying while Redis is away. Until then, and while the socket lives, the
/// node renews the lease every third of the lease TTL. Drop it when the socket's reader
/// task ends.
///
/// Its `Debug` output shows the user's [`Fingerprint`](crate::Fingerprint), never the
/// user id.
///
/// # Examples
///
/// ```no_run
/// # use wsctx::{Context, Frame, state::Bound, cluster::ClusterFactory};
/// # async fn run(factory: ClusterFactory, bound: Context<Bound>) -> Result<(), Box<dyn std::error::Error>> {
/// let (manager, mut outbound) = factory.admit(bound).await?;
/// manager.send_to_user(Frame::text("hello, every tab on this node"));
/// while let Some(frame) = outbound.recv().await {
///     // write `frame` to the socket
/// #   let _ = frame;
/// }
/// drop(manager); // frees the slot on every node
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping the manager frees its slot and releases its lease"]
pub struct ClusterManager {
    // Dropped in this order: the node's slot first, then the lease.
    manager: Arc<IsolatedManager>,
    _lease: LeaseGuard,
    /// Keeps the user's channel subscribed on this node while the socket lives, and
    /// publishes on it.
    subscription: Subscription,
}

impl ClusterManager {
    pub(super) fn new(
        manager: Arc<IsolatedManager>,
        lease: LeaseGuard,
        subscription: Subscription,
    ) -> Self {
        Self {
            manager,
            _lease: lease,
            subscription,
        }
    }

    /// Queues `frame` on every socket of this socket's user on this node, as
    /// [`IsolatedManager::send_to_user`] does, then publishes it to the other nodes
    /// holding the user's sockets. The remote part is
    /// [`RemoteDelivery::Refused`] when the local send was refused (a close frame, or a
    /// socket whose close was requested).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{Frame, cluster::ClusterManager};
    /// # async fn run(manager: ClusterManager) {
    /// let sent = manager.send_to_user(Frame::text("from this tab")).await;
    /// println!("{} tabs here, other nodes: {:?}", sent.local.delivered, sent.remote);
    /// # }
    /// ```
    pub async fn send_to_user(&self, frame: Frame) -> ClusterDelivery {
        let refused = frame.is_close() || self.manager.is_closing();
        let local = self.manager.send_to_user(frame.clone());
        let remote = if refused {
            RemoteDelivery::Refused
        } else {
            let published = self
                .subscription
                .publish(&ClusterMessage::Frame(frame))
                .await;
            RemoteDelivery::from_result(&published)
        };
        ClusterDelivery { local, remote }
    }

    /// Like [`send_to_user`](Self::send_to_user) without waiting: the publication is
    /// queued on this node's bus, which publishes in order (see
    /// [`Bus::publish_in_order`](crate::cluster::Bus::publish_in_order)). Returns the local part. For code that cannot await.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{Frame, cluster::ClusterManager};
    /// # fn run(manager: ClusterManager) {
    /// let here = manager.send_to_user_queued(Frame::text("from this tab"));
    /// println!("{} tabs here", here.delivered);
    /// # }
    /// ```
    pub fn send_to_user_queued(&self, frame: Frame) -> Delivery {
        let refused = frame.is_close() || self.manager.is_closing();
        let local = self.manager.send_to_user(frame.clone());
        if !refused {
            self.subscription
                .publish_in_order(&ClusterMessage::Frame(frame));
        }
        local
    }
}

impl Deref for ClusterManager {
    type Target = IsolatedManager;

    fn deref(&self) -> &IsolatedManager {
        &self.manager
    }
}

impl fmt::Debug for ClusterManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClusterManager")
            .field(&*self.manager)
            .finish()
    }
}
