//! [`ClusterManager`]: one socket admitted on a cluster-wide lease.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::cluster::bus::Subscription;
use crate::cluster::factory::held::LeaseGuard;
use crate::factory::IsolatedManager;

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
    /// Keeps the user's channel subscribed on this node while the socket lives.
    _subscription: Subscription,
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
            _subscription: subscription,
        }
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
