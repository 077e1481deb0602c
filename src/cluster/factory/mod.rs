//! [`ClusterFactory`]: a node's [`ManagerFactory`] whose admissions also hold a lease in
//! Redis, so that per-user limits and duplicate client ids hold across every node.
//!
//! | module | job |
//! |---|---|
//! | `error` | [`AdmitError`], [`ClusterDelivery`], [`RemoteDelivery`], [`ClusterDisconnect`] |
//! | `held` | the leases this node holds, and the guard that releases one exactly once |
//! | `releaser`, `renewer` | the two background tasks: batched releases with retries; renewals every third of the lease TTL |
//! | `manager` | [`ClusterManager`] |
//! | this file | [`ClusterFactory`] |

mod error;
mod held;
mod manager;
mod releaser;
mod renewer;

use std::fmt;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use error::{AdmitError, ClusterDelivery, ClusterDisconnect, RemoteDelivery};
pub use manager::ClusterManager;

use crate::close::{CloseCode, CloseFrame, CloseReason};
use crate::cluster::backplane::{Backplane, BackplaneError, BackplaneErrorKind};
use crate::cluster::lease::{Acquire, Lease};
use crate::context::Context;
use crate::factory::{FactoryError, Frame, IsolatedManager, ManagerFactory, Outbound};
use crate::id::UserId;
use crate::resume::ResumePoint;
use crate::state::Bound;
use held::Held;

/// Admits sockets on one node of a cluster: the node's own [`ManagerFactory`] checks
/// first, then a lease in Redis that counts the user's sockets on every node.
///
/// A cheap [`Clone`] handle (shared state behind an [`Arc`]). [`start`](Self::start)
/// spawns two background tasks on the current tokio runtime: a **renewer**, which every
/// third of the lease TTL renews every lease of the node (re-creating those Redis lost)
/// and closes the sockets whose lease was revoked by a disconnect on any node or taken
/// by a duplicate; and a **releaser**, which releases the leases of dropped managers in
/// batches, owner-checked, retrying while Redis is away.
///
/// | operation | what it does |
/// |---|---|
/// | [`admit`](Self::admit), [`admit_resuming`](Self::admit_resuming) | local admission, then the lease: CONNECTION_LIMIT and DUPLICATE_CLIENT count every node; BACKPLANE_UNAVAILABLE when Redis does not answer within the response timeout |
/// | dropping a [`ClusterManager`] | frees the node's slot; the lease is released exactly once |
/// | [`disconnect_user`](Self::disconnect_user) | closes the user's sockets here, then revokes its leases: other nodes close theirs at their next renewal |
/// | [`send_to_user`](Self::send_to_user) | delivers to the user's sockets on this node (delivery across nodes is not built yet) |
/// | [`shutdown`](Self::shutdown) | drains the node and stops renewing |
///
/// A node that crashes stops renewing, and its leases expire after one lease TTL. When
/// Redis is away, sockets already open stay open and local delivery goes on; only new
/// admissions are refused.
///
/// The per-user limit is the local factory's [`Limits::per_user`](crate::Limits::per_user):
/// the same on every node, counted across all of them. [`Limits::global`](crate::Limits::global)
/// stays a limit of this node.
///
/// Dropping the last handle stops the renewer; the releaser ends once the last
/// manager is dropped and its lease released. Keep a handle while sockets are open.
///
/// # Examples
///
/// ```no_run
/// use wsctx::{Context, Limits, ManagerFactory, Policy, Rejection, UuidGenerator};
/// use wsctx::cluster::{Backplane, ClusterConfig, ClusterFactory, HashingKey};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let key = HashingKey::new(std::env::var("WSCTX_HASHING_KEY")?)?;
/// let config = ClusterConfig::builder("redis://127.0.0.1:6380", key).build()?;
/// let local = ManagerFactory::new(Limits { per_user: 3, ..Limits::default() });
/// let factory = ClusterFactory::start(local, Backplane::connect(config).await?);
///
/// let ids = UuidGenerator::new();
/// let bound = Context::builder().user_id("alice").build()
///     .validate(&Policy::default(), &ids)?
///     .bind(None, &ids)?;
/// match factory.admit(bound).await {
///     Ok((manager, outbound)) => { /* run the socket; drop the manager when it ends */ }
///     Err(refused) => {
///         let rejection = Rejection::from(refused); // 429, 409 or 503 before the upgrade
///         # let _ = rejection;
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ClusterFactory {
    inner: Arc<Inner>,
}

struct Inner {
    local: ManagerFactory,
    backplane: Backplane,
    held: Arc<Held>,
    renewer: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl ClusterFactory {
    /// A cluster node admitting through `local` (its limits, close style and replay
    /// rings) and counting leases on `backplane`. Spawns the renewer and the releaser on
    /// the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::spawn`] does. ([`Backplane::connect`]
    /// needs one too.)
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{ManagerFactory, cluster::{Backplane, ClusterFactory}};
    /// # async fn run(backplane: Backplane) {
    /// let factory = ClusterFactory::start(ManagerFactory::default(), backplane);
    /// assert_eq!(factory.leases(), 0);
    /// # }
    /// ```
    #[must_use]
    pub fn start(local: ManagerFactory, backplane: Backplane) -> Self {
        let (releases, queue) = mpsc::unbounded_channel();
        let held = Arc::new(Held::new(releases));
        tokio::spawn(releaser::run(backplane.clone(), queue));
        let renewer = tokio::spawn(renewer::run(backplane.clone(), Arc::clone(&held)));
        Self {
            inner: Arc::new(Inner {
                local,
                backplane,
                held,
                renewer,
            }),
        }
    }

    /// Admits a socket: first on this node ([`ManagerFactory::create`]), then its lease
    /// in Redis, counted against the per-user limit on every node. On any refusal the
    /// node's slot is freed again.
    ///
    /// Cancel-safe: if this future is dropped while Redis is deciding, a lease granted
    /// meanwhile is released, not leaked.
    ///
    /// # Errors
    ///
    /// [`AdmitError::Local`] when this node refuses (SHUTTING_DOWN, a duplicate client id
    /// or the per-user limit here, OVERLOADED); [`AdmitError::ConnectionLimit`] and
    /// [`AdmitError::DuplicateClient`] across nodes; [`AdmitError::Backplane`]
    /// (BACKPLANE_UNAVAILABLE) when Redis does not answer within the response timeout.
    /// When a timed-out acquisition may still have taken effect, its lease is released
    /// in the background.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{Context, Rejection, state::Bound, cluster::ClusterFactory};
    /// # async fn run(factory: ClusterFactory, bound: Context<Bound>) -> Result<(), Rejection> {
    /// let (manager, outbound) = factory.admit(bound).await?;
    /// # let _ = (manager, outbound);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn admit(
        &self,
        ctx: Context<Bound>,
    ) -> Result<(ClusterManager, Outbound), AdmitError> {
        let admitted = self.inner.local.create(ctx);
        self.lease(admitted).await
    }

    /// Admits like [`admit`](Self::admit) through [`ManagerFactory::create_resuming`]:
    /// the events the client missed after `point` are queued first.
    ///
    /// Replay is still per node: a tab resumes from this node's replay ring, so a tab
    /// that reconnects to another node gets `{"type":"resume_gap"}` and reloads its
    /// state.
    ///
    /// # Errors
    ///
    /// As [`admit`](Self::admit); a refused admission replays nothing.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{Context, ResumePoint, Rejection, state::Bound, cluster::ClusterFactory};
    /// # async fn run(factory: ClusterFactory, bound: Context<Bound>, point: ResumePoint) -> Result<(), Rejection> {
    /// let (manager, mut outbound) = factory.admit_resuming(bound, point).await?;
    /// let first = outbound.recv().await; // a missed event, or the resume status
    /// # let _ = (manager, first);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn admit_resuming(
        &self,
        ctx: Context<Bound>,
        point: ResumePoint,
    ) -> Result<(ClusterManager, Outbound), AdmitError> {
        let admitted = self.inner.local.create_resuming(ctx, point);
        self.lease(admitted).await
    }

    /// The lease step of an admission.
    async fn lease(
        &self,
        admitted: Result<(IsolatedManager, Outbound), FactoryError>,
    ) -> Result<(ClusterManager, Outbound), AdmitError> {
        let (manager, outbound) = admitted?;
        let per_user = self.inner.local.limits().per_user;
        let user = manager.context().user_id().clone();
        let client = manager.websocket_client_id().clone();
        let (backplane, held) = (self.inner.backplane.clone(), Arc::clone(&self.inner.held));
        // On a task of its own, so that a caller giving up cannot lose a granted lease.
        let (reply, decision) = oneshot::channel();
        tokio::spawn(async move {
            let decided = match backplane.acquire(&user, &client, per_user).await {
                Ok(decided) => Ok(decided),
                Err(failed) => {
                    let (error, orphan) = failed.into_parts();
                    if let Some(orphan) = orphan {
                        held.release_later(orphan);
                    }
                    Err(error)
                }
            };
            if let Err(Ok(Acquire::Granted { lease, .. })) = reply.send(decided) {
                held.release_later(lease);
            }
        });
        let decided = decision
            .await
            .unwrap_or_else(|_| Err(BackplaneError::from_kind(BackplaneErrorKind::Connection)));
        match decided {
            Ok(Acquire::Granted { lease, .. }) => Ok((self.hold(lease, manager), outbound)),
            Ok(Acquire::Duplicate { .. }) => Err(AdmitError::DuplicateClient),
            Ok(_) => Err(AdmitError::ConnectionLimit),
            Err(error) => Err(AdmitError::Backplane(error)),
        }
    }

    fn hold(&self, lease: Lease, manager: IsolatedManager) -> ClusterManager {
        let manager = Arc::new(manager);
        let guard = self.inner.held.insert(lease, &manager);
        ClusterManager::new(manager, guard)
    }

    /// Queues `frame` on every live socket of `user` **on this node**, as
    /// [`ManagerFactory::send_to_user`] does. Delivery to the user's sockets on other
    /// nodes is not built yet: the result says so in
    /// [`remote`](ClusterDelivery::remote), apart from the local count, which Redis can
    /// never change.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{Frame, UserId, cluster::ClusterFactory};
    /// # fn run(factory: ClusterFactory) -> Result<(), Box<dyn std::error::Error>> {
    /// let sent = factory.send_to_user(&UserId::try_new("alice")?, Frame::text("report ready"));
    /// println!("{} tabs here", sent.local.delivered);
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_to_user(&self, user: &UserId, frame: Frame) -> ClusterDelivery {
        ClusterDelivery {
            local: self.inner.local.send_to_user(user, frame),
            remote: RemoteDelivery::NotPublished,
        }
    }

    /// Closes every socket of `user`, on every node: those on this node at once, with
    /// `code` and `reason`; then it revokes the user's leases in Redis and leaves a
    /// marker with the close frame, which every node's next renewal reads, closing the
    /// user's sockets there within a third of the lease TTL. New sockets of the user
    /// may be admitted right after.
    ///
    /// The local close never waits for Redis and a Redis error never undoes it: the
    /// result reports the two parts apart.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{CloseCode, CloseReason, UserId, cluster::ClusterFactory};
    /// # async fn run(factory: ClusterFactory) -> Result<(), Box<dyn std::error::Error>> {
    /// let done = factory
    ///     .disconnect_user(&UserId::try_new("alice")?, CloseCode::FORBIDDEN, &CloseReason::new("banned"))
    ///     .await;
    /// println!("{} closed here; redis: {:?}", done.local, done.remote.is_ok());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn disconnect_user(
        &self,
        user: &UserId,
        code: CloseCode,
        reason: &CloseReason,
    ) -> ClusterDisconnect {
        let frame = CloseFrame {
            code,
            reason: reason.clone(),
        };
        let local = self.inner.local.disconnect_user(user, &frame);
        let remote = self.inner.backplane.revoke(user, code, reason).await;
        ClusterDisconnect { local, remote }
    }

    /// How many live leases `user` holds in Redis, across every node, on Redis's clock.
    ///
    /// # Errors
    ///
    /// A [`BackplaneError`] when Redis is unavailable or refuses.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{UserId, cluster::ClusterFactory};
    /// # async fn run(factory: ClusterFactory) -> Result<(), Box<dyn std::error::Error>> {
    /// println!("{} tabs in the cluster", factory.held(&UserId::try_new("alice")?).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn held(&self, user: &UserId) -> Result<u64, BackplaneError> {
        self.inner.backplane.held(user).await
    }

    /// How many admissions of this node hold a lease now (each is released when its
    /// manager is dropped).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(factory: wsctx::cluster::ClusterFactory) {
    /// println!("{} leases held here", factory.leases());
    /// # }
    /// ```
    #[must_use]
    pub fn leases(&self) -> usize {
        self.inner.held.len()
    }

    /// Drains this node: [`ManagerFactory::shutdown`] (every socket closed with 1012,
    /// new admissions refused with SHUTTING_DOWN) and no more renewals. Managers dropped
    /// from now on still release their leases; those never dropped expire within one
    /// lease TTL. Idempotent.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(factory: wsctx::cluster::ClusterFactory) {
    /// factory.shutdown();
    /// assert!(factory.local().is_shutting_down());
    /// # }
    /// ```
    pub fn shutdown(&self) {
        self.inner.local.shutdown();
        self.inner.renewer.abort();
    }

    /// This node's factory: its limits, metrics, idle reaper and emitters.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(factory: wsctx::cluster::ClusterFactory) {
    /// println!("{} sockets on this node", factory.local().metrics().active);
    /// # }
    /// ```
    #[must_use]
    pub fn local(&self) -> &ManagerFactory {
        &self.inner.local
    }

    /// The connection to Redis.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(factory: wsctx::cluster::ClusterFactory) {
    /// println!("node {}", factory.backplane().config().node_id());
    /// # }
    /// ```
    #[must_use]
    pub fn backplane(&self) -> &Backplane {
        &self.inner.backplane
    }
}

impl fmt::Debug for ClusterFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterFactory")
            .field("local", &self.inner.local)
            .field("backplane", &self.inner.backplane)
            .field("leases", &self.leases())
            .finish()
    }
}
