//! [`ClusterFactory`]: a node's [`ManagerFactory`] whose admissions also hold a lease in
//! Redis, so that per-user limits and duplicate client ids hold across every node.
//!
//! | module | job |
//! |---|---|
//! | `error` | [`AdmitError`], [`ClusterDelivery`], [`RemoteDelivery`], [`ClusterDisconnect`] |
//! | `held` | the leases this node holds, and the guard that releases one exactly once |
//! | `releaser`, `renewer` | the two background tasks: batched releases with retries; renewals every third of the lease TTL |
//! | `manager` | [`ClusterManager`] |
//! | `push` | delivery across nodes: `send_to_user`, the [`ClusterEmitter`], what a node does with messages from the others |
//! | this file | [`ClusterFactory`] |

mod error;
mod held;
mod manager;
mod push;
mod releaser;
mod renewer;

use std::fmt;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use error::{AdmitError, ClusterDelivery, ClusterDisconnect, RemoteDelivery};

/// What a node does with a new socket while Redis does not answer.
///
/// # Examples
///
/// ```
/// use wsctx::cluster::WhenUnavailable;
///
/// assert_eq!(WhenUnavailable::default(), WhenUnavailable::Refuse);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WhenUnavailable {
    /// Refuse it with BACKPLANE_UNAVAILABLE (503 + Retry-After, close 1013): the
    /// per-user limit and duplicate client ids stay exact across nodes. The default.
    #[default]
    Refuse,
    /// Admit it on this node's limits alone. Its lease is created in Redis by the first
    /// renewal once Redis is back, without a limit check (the socket is open): until the
    /// extra sockets end, a user may hold more than the per-user limit across nodes, and
    /// a client id also live on another node closes one of the two as a duplicate then.
    /// Messages from other nodes reach the socket once this node subscribes again.
    AdmitLocally,
}

/// Builds a [`ClusterFactory`]: from [`ClusterFactory::builder`].
///
/// # Examples
///
/// ```no_run
/// # use std::time::Duration;
/// # use wsctx::{ManagerFactory, cluster::{Backplane, BusConfig, ClusterFactory, WhenUnavailable}};
/// # async fn run(backplane: Backplane) {
/// let factory = ClusterFactory::builder(ManagerFactory::default(), backplane)
///     .bus(BusConfig::default().probe_interval(Duration::from_secs(1)))
///     .when_unavailable(WhenUnavailable::AdmitLocally)
///     .start();
/// # let _ = factory;
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `start`"]
pub struct ClusterFactoryBuilder {
    local: ManagerFactory,
    backplane: Backplane,
    bus: BusConfig,
    when_unavailable: WhenUnavailable,
}

impl ClusterFactoryBuilder {
    /// The pub/sub bus's probe settings (default [`BusConfig::default`]).
    ///
    /// # Examples
    ///
    /// See [`ClusterFactoryBuilder`].
    pub fn bus(mut self, bus: BusConfig) -> Self {
        self.bus = bus;
        self
    }

    /// What to do with new sockets while Redis does not answer (default
    /// [`WhenUnavailable::Refuse`]).
    ///
    /// # Examples
    ///
    /// See [`ClusterFactoryBuilder`].
    pub fn when_unavailable(mut self, policy: WhenUnavailable) -> Self {
        self.when_unavailable = policy;
        self
    }

    /// Starts the factory's background tasks on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::spawn`] does.
    ///
    /// # Examples
    ///
    /// See [`ClusterFactoryBuilder`].
    pub fn start(self) -> ClusterFactory {
        let Self {
            local,
            backplane,
            bus,
            when_unavailable,
        } = self;
        let (releases, queue) = mpsc::unbounded_channel();
        let held = Arc::new(Held::new(releases));
        tokio::spawn(releaser::run(backplane.clone(), queue));
        let renewer = tokio::spawn(renewer::run(backplane.clone(), Arc::clone(&held)));
        let deliver_to = local.clone();
        let bus = Bus::start(backplane.clone(), bus, move |incoming| {
            push::deliver_incoming(&deliver_to, incoming);
        });
        ClusterFactory {
            inner: Arc::new(Inner {
                local,
                backplane,
                bus,
                held,
                renewer,
                when_unavailable,
                leases: LeaseReport::register(),
            }),
        }
    }
}
pub use manager::ClusterManager;
#[cfg(feature = "serde")]
pub use push::ClusterEmitter;

use crate::close::{CloseCode, CloseFrame, CloseReason};
use crate::cluster::backplane::{Backplane, BackplaneError, BackplaneErrorKind};
use crate::cluster::bus::{Bus, BusConfig, Subscription};
use crate::cluster::envelope::ClusterMessage;
use crate::cluster::lease::{Acquire, Lease};
use crate::cluster::report::LeaseReport;
use crate::context::Context;
use crate::factory::{FactoryError, IsolatedManager, ManagerFactory, Outbound};
use crate::id::UserId;
use crate::resume::ResumePoint;
use crate::state::Bound;
use held::Held;

/// Admits sockets on one node of a cluster: the node's own [`ManagerFactory`] checks
/// first, then a lease in Redis that counts the user's sockets on every node.
///
/// A cheap [`Clone`] handle (shared state behind an [`Arc`]). [`start`](Self::start)
/// spawns background tasks on the current tokio runtime: a **renewer**, which every
/// third of the lease TTL renews every lease of the node (re-creating those Redis lost)
/// and closes the sockets whose lease was revoked by a disconnect on any node or taken
/// by a duplicate; a **releaser**, which releases the leases of dropped managers in
/// batches, owner-checked, retrying while Redis is away; and the node's pub/sub
/// [`Bus`](crate::cluster::Bus) (its subscriber and its publication queue).
///
/// | operation | what it does |
/// |---|---|
/// | [`admit`](Self::admit), [`admit_resuming`](Self::admit_resuming), [`admit_with_position`](Self::admit_with_position) | the user's channel subscribed, local admission (after the user's stream is read, for a resume or a position), then the lease: CONNECTION_LIMIT and DUPLICATE_CLIENT count every node; BACKPLANE_UNAVAILABLE when Redis does not answer within the response timeout (or, opted in, a local admission: [`WhenUnavailable`]) |
/// | dropping a [`ClusterManager`] | frees the node's slot; the lease is released exactly once |
/// | [`disconnect_user`](Self::disconnect_user) | closes the user's sockets here, revokes its leases and publishes the close: other nodes close theirs at once, or at their next renewal if the message is lost |
/// | [`send_to_user`](Self::send_to_user), `emitter` (feature `serde`) | a frame to the user's sockets here, then to the other nodes; events positioned by the user's stream, on every node |
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
    bus: Bus,
    held: Arc<Held>,
    renewer: JoinHandle<()>,
    when_unavailable: WhenUnavailable,
    leases: LeaseReport,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.renewer.abort();
        self.bus.shutdown();
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
        Self::builder(local, backplane).start()
    }

    /// A factory with settings other than the defaults: see [`ClusterFactoryBuilder`].
    ///
    /// # Examples
    ///
    /// See [`ClusterFactoryBuilder`].
    pub fn builder(local: ManagerFactory, backplane: Backplane) -> ClusterFactoryBuilder {
        ClusterFactoryBuilder {
            local,
            backplane,
            bus: BusConfig::default(),
            when_unavailable: WhenUnavailable::default(),
        }
    }

    /// Whether the policy admits sockets locally while Redis does not answer, and it
    /// does not answer now.
    fn admits_locally(&self, error: &BackplaneError) -> bool {
        self.inner.when_unavailable == WhenUnavailable::AdmitLocally && error.is_unavailable()
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
        let subscription = self.subscribe(ctx.user_id()).await?;
        let admitted = self.inner.local.create(ctx);
        self.lease(admitted, subscription).await
    }

    /// Holds the user's channel subscribed for one socket, so that nothing published
    /// for the user after the socket is admitted is missed here.
    async fn subscribe(&self, user: &UserId) -> Result<Subscription, AdmitError> {
        match self.inner.bus.subscribe(user).await {
            Ok(subscription) => Ok(subscription),
            Err(error) if self.admits_locally(&error) => Ok(self.inner.bus.subscribe_later(user)),
            Err(error) => Err(self.refused(AdmitError::Backplane(error))),
        }
    }

    /// An admission that starts from the user's stream in Redis: hold the user's ring
    /// here (so every event from now on reaches it), subscribe, read the stream, then
    /// admit locally, merging what was read, in one step.
    async fn admit_from_stream(
        &self,
        ctx: Context<Bound>,
        resume: Option<ResumePoint>,
    ) -> Result<(ClusterManager, Outbound), AdmitError> {
        let user = ctx.user_id().clone();
        let hold = self.inner.local.hold_ring(&user);
        let subscription = self.subscribe(&user).await?;
        let epoch = uuid::Uuid::new_v4().as_u64_pair().0;
        // The run must cover what the client missed and what the ring here lacks.
        let from = match (resume, hold.position()) {
            (Some(point), Some(ring)) if point.epoch() == ring.epoch() => {
                Some(if point.seq() < ring.seq() {
                    point
                } else {
                    ring
                })
            }
            (_, Some(ring)) => Some(ring),
            (point, None) => point,
        };
        let fetched = match self.inner.backplane.stream_since(&user, from, epoch).await {
            Ok(fetched) => fetched,
            Err(error) if self.admits_locally(&error) => {
                // This node's ring is all there is: resume from it, or start at its
                // position.
                let admitted = match resume {
                    Some(point) => self.inner.local.create_resuming(ctx, point),
                    None => self.inner.local.create_with_position(ctx),
                };
                drop(hold);
                return self.lease(admitted, subscription).await;
            }
            Err(error) => return Err(self.refused(AdmitError::Backplane(error))),
        };
        let admitted = self.inner.local.admit_backfilled(
            ctx,
            fetched.epoch,
            fetched.first,
            fetched.frames,
            resume,
        );
        drop(hold);
        self.lease(admitted, subscription).await
    }

    /// Admits like [`admit`](Self::admit) and queues first the events the client
    /// missed after `point`, then `{"type":"resumed","missed":n}` (or
    /// `{"type":"resume_gap"}` when the user's stream no longer holds them all), as
    /// [`ManagerFactory::create_resuming`] does on one node. The missed events come from
    /// the user's stream in Redis, so the tab may have seen them on any node; they are
    /// merged into this node's ring and the admission is one atomic step, so an event
    /// emitted meanwhile arrives once, in order.
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
        self.admit_from_stream(ctx, Some(point)).await
    }

    /// Admits like [`admit`](Self::admit) and queues first
    /// `{"type":"position","epoch":…,"seq":n}`: where the user's stream in Redis is now,
    /// as [`ManagerFactory::create_with_position`] does for one node. A tab that stores
    /// it can resume on any node.
    ///
    /// # Errors
    ///
    /// As [`admit`](Self::admit).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{Context, Rejection, state::Bound, cluster::ClusterFactory};
    /// # async fn run(factory: ClusterFactory, bound: Context<Bound>) -> Result<(), Rejection> {
    /// let (manager, mut outbound) = factory.admit_with_position(bound).await?;
    /// let position = outbound.recv().await; // {"type":"position",...}
    /// # let _ = (manager, position);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn admit_with_position(
        &self,
        ctx: Context<Bound>,
    ) -> Result<(ClusterManager, Outbound), AdmitError> {
        self.admit_from_stream(ctx, None).await
    }

    /// The lease step of an admission.
    async fn lease(
        &self,
        admitted: Result<(IsolatedManager, Outbound), FactoryError>,
        subscription: Subscription,
    ) -> Result<(ClusterManager, Outbound), AdmitError> {
        let (manager, outbound) = admitted?;
        let per_user = self.inner.local.limits().per_user;
        let user = manager.context().user_id().clone();
        let client = manager.websocket_client_id().clone();
        let (backplane, held) = (self.inner.backplane.clone(), Arc::clone(&self.inner.held));
        // On a task of its own, so that a caller giving up cannot lose a granted lease.
        let (reply, decision) = oneshot::channel();
        let (asked_user, asked_client) = (user.clone(), client.clone());
        tokio::spawn(async move {
            let decided = match backplane
                .acquire(&asked_user, &asked_client, per_user)
                .await
            {
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
            Ok(Acquire::Granted { lease, .. }) => {
                self.inner.leases.granted();
                Ok((self.hold(lease, manager, subscription), outbound))
            }
            Ok(Acquire::Duplicate { .. }) => Err(self.refused(AdmitError::DuplicateClient)),
            Ok(_) => Err(self.refused(AdmitError::ConnectionLimit)),
            Err(error) if self.admits_locally(&error) => {
                let lease = self.inner.backplane.unconfirmed_lease(&user, &client);
                Ok((self.hold(lease, manager, subscription), outbound))
            }
            Err(error) => Err(self.refused(AdmitError::Backplane(error))),
        }
    }

    /// Counts a refusal of the cluster's part of an admission.
    fn refused(&self, error: AdmitError) -> AdmitError {
        self.inner.leases.refused(error.code());
        error
    }

    fn hold(
        &self,
        lease: Lease,
        manager: IsolatedManager,
        subscription: Subscription,
    ) -> ClusterManager {
        let manager = Arc::new(manager);
        let guard = self.inner.held.insert(lease, &manager);
        ClusterManager::new(manager, guard, subscription)
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
        let published = self
            .inner
            .bus
            .publish(user, &ClusterMessage::Disconnect(frame))
            .await;
        ClusterDisconnect {
            local,
            remote,
            published: RemoteDelivery::from_result(&published),
        }
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
        self.inner.bus.shutdown();
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

    /// The pub/sub bus's status: whether this node's subscription is live (a health
    /// check reports the node degraded when it is not), and its counters.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(factory: wsctx::cluster::ClusterFactory) {
    /// if !factory.bus_status().subscribed {
    ///     println!("degraded: messages from other nodes are not reaching this one");
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn bus_status(&self) -> crate::cluster::BusStatus {
        self.inner.bus.status()
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
