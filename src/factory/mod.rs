//! The connection manager factory: admission under per-user and global limits, one
//! bounded outbound queue per socket, fan-out to the sockets of one user, server push
//! (frames by user id, events through an emitter, a per-user replay ring for clients
//! that reconnect), forced disconnects, shutdown, the idle reaper, and metrics.
//!
//! Layered like tokio's channel: each module uses only the ones above it in this table.
//!
//! | module | job |
//! |---|---|
//! | `limits`, `frame`, `error` | [`Limits`], [`ReplayLimits`]; [`Frame`], [`Delivery`]; [`FactoryError`], [`TryRecvError`], `EmitError` |
//! | `metrics`, `replay`, `emit` | per-shard counters, [`MetricsSnapshot`]; one user's replay ring and the byte budget all rings share; event frame rendering |
//! | `global`, `socket` | what every shard shares (limits, the global slot count, the draining flag, the idle clock, the replay budget); one socket's queue and close slot (knows nothing of shards) |
//! | `shard` | one shard's map user hash -> sockets and rings, and the transitions on it |
//! | `registry` | the shards, and the keyed hash that picks one |
//! | `manager`, `outbound`, `emitter` | [`IsolatedManager`], [`Outbound`], `Emitter`: handles holding their shard |
//! | this file | [`ManagerFactory`] and the transitions that span shards |

#[cfg(feature = "serde")]
mod emit;
#[cfg(feature = "serde")]
mod emitter;
mod error;
mod frame;
mod global;
mod limits;
mod manager;
mod metrics;
mod outbound;
mod registry;
mod replay;
mod shard;
mod socket;

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

#[cfg(feature = "serde")]
pub use emitter::Emitter;
#[cfg(feature = "serde")]
pub use error::EmitError;
pub use error::{FactoryError, TryRecvError};
pub use frame::{Delivery, Frame};
pub use limits::{Limits, ReplayLimits};
pub use manager::IsolatedManager;
pub use metrics::MetricsSnapshot;
pub use outbound::Outbound;

use crate::close::CloseFrame;
use crate::context::Context;
use crate::id::UserId;
use crate::rejection::{CloseStyle, ErrorCode};
use crate::resume::ResumePoint;
use crate::state::Bound;
use crate::trace::debug_event;
use global::{Global, nanos};
use metrics::Counter;
use registry::Registry;
use shard::Start;

/// The shortest interval [`ManagerFactory::run_idle_reaper`] sweeps at.
const MIN_REAP_INTERVAL: Duration = Duration::from_millis(1);

/// What every handle of one factory shares.
struct Shared {
    registry: Registry,
    global: Arc<Global>,
}

/// Admits bound contexts as [`IsolatedManager`]s, one per socket, under [`Limits`].
///
/// A cheap [`Clone`] handle to shared state (like `reqwest::Client`): clone it into
/// every connection task. Sockets are kept in a sharded registry keyed by a keyed hash
/// of the user id, so connections of different users rarely touch the same lock; no
/// lock is ever held across an await.
///
/// | transition | result |
/// |---|---|
/// | [`create`](Self::create) | an [`IsolatedManager`] (the slot) and an [`Outbound`] (its queue), or a [`FactoryError`] |
/// | [`create_with_position`](Self::create_with_position), [`create_resuming`](Self::create_resuming) | the same, with the client's position in its user's event stream, or the events it missed, queued first |
/// | [`send_to_user`](Self::send_to_user), an emitter's `emit` (feature `serde`) | a frame or an event to every socket of one user, from anywhere |
/// | dropping the manager | frees the slot, closes the socket with 1000 |
/// | a full outbound queue | closes that socket with SLOW_CONSUMER (1013) |
/// | [`disconnect_user`](Self::disconnect_user) | closes every socket of one user with a given frame |
/// | [`run_idle_reaper`](Self::run_idle_reaper) | closes idle sockets with IDLE_TIMEOUT (4408) |
/// | [`shutdown`](Self::shutdown) | closes every socket with SHUTTING_DOWN (1012), refuses new ones |
///
/// User ids appear in no log line, metric or `Debug` output of the factory.
///
/// [`metrics`](Self::metrics) reads the counters at any time. With the `metrics`
/// feature, every transition also reports through the `metrics` crate's facade (the
/// names are in `wsctx::metrics::Metric`), to the recorder that was in force when the
/// factory was created: install the recorder first.
///
/// An admitted socket costs the factory about 430 bytes (its context included) plus
/// its queued frames; admission and release take one shard lock and one global atomic
/// counter, fan-out one shard read lock and one short lock per receiving socket. See
/// `BENCHMARKS.md` for measured numbers.
///
/// # Examples
///
/// ```
/// use wsctx::{Context, ErrorCode, Frame, Limits, ManagerFactory, Policy, Rejection, UuidGenerator};
///
/// let ids = UuidGenerator::new();
/// let factory = ManagerFactory::new(Limits { per_user: 1, ..Limits::default() });
///
/// let validated = Context::builder().user_id("user-a").build().validate(&Policy::default(), &ids)?;
/// // Each bind gets a fresh client id (one per browser tab).
/// let (manager, mut outbound) = factory.create(validated.clone().bind(None, &ids)?)?;
///
/// // A second socket of the same user is over its limit.
/// let rejection = Rejection::from(factory.create(validated.bind(None, &ids)?).unwrap_err());
/// assert_eq!(rejection.code(), ErrorCode::ConnectionLimit);
/// assert_eq!(rejection.http_status(), Some(429));
///
/// manager.send_to_user(Frame::text("hello"));
/// assert_eq!(outbound.try_recv()?, Frame::text("hello"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ManagerFactory {
    shared: Arc<Shared>,
}

impl ManagerFactory {
    /// A factory enforcing `limits`, rendering the closes it sends in
    /// [`CloseStyle::Detailed`].
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{Limits, ManagerFactory};
    ///
    /// let factory = ManagerFactory::new(Limits { per_user: 2, ..Limits::default() });
    /// assert_eq!(factory.limits().per_user, 2);
    /// ```
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self::with_close_style(limits, CloseStyle::Detailed)
    }

    /// A factory enforcing `limits`, rendering the closes it sends (SLOW_CONSUMER,
    /// IDLE_TIMEOUT, SHUTTING_DOWN) in `style`: [`CloseStyle::Opaque`] sends 1008 for
    /// IDLE_TIMEOUT's 4408.
    ///
    /// With the `metrics` feature, this is when the factory describes its metrics to the
    /// recorder in force (the global one, or a local one set by
    /// `metrics::with_local_recorder`) and takes its handles from it.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{CloseStyle, Limits, ManagerFactory};
    ///
    /// let factory = ManagerFactory::with_close_style(Limits::default(), CloseStyle::Opaque);
    /// assert_eq!(factory.close_style(), CloseStyle::Opaque);
    /// ```
    #[must_use]
    pub fn with_close_style(limits: Limits, style: CloseStyle) -> Self {
        let limits = Limits {
            outbound_queue: limits.outbound_queue.max(1),
            ..limits
        };
        let global = Arc::new(Global::new(limits, style));
        Self {
            shared: Arc::new(Shared {
                registry: Registry::new(&global),
                global,
            }),
        }
    }

    /// Admits the socket that `ctx` is bound to: checks, in this order, that the factory
    /// is not draining, that the user has no live socket with the same client id, that
    /// the user holds fewer than [`Limits::per_user`] sockets and that the factory holds
    /// fewer than [`Limits::global`]. The checks and the admission are one atomic step:
    /// concurrent calls never admit more than the limits.
    ///
    /// Returns the [`IsolatedManager`] (the admission: drop it to free the slot) and the
    /// socket's [`Outbound`] queue (give it to the writer task).
    ///
    /// Only a [`Context<Bound>`] is accepted:
    ///
    /// ```compile_fail
    /// use wsctx::{Context, ManagerFactory};
    ///
    /// let raw = Context::builder().user_id("user-a").build();
    /// ManagerFactory::default().create(raw); // error: expected `Context<Bound>`, found `Context<Raw>`
    /// ```
    ///
    /// The passing twin, with the same input bound first:
    ///
    /// ```
    /// use wsctx::{Context, ManagerFactory, Policy, UuidGenerator};
    ///
    /// let ids = UuidGenerator::new();
    /// let raw = Context::builder().user_id("user-a").build();
    /// let bound = raw.validate(&Policy::default(), &ids)?.bind(None, &ids)?;
    /// ManagerFactory::default().create(bound)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// A validated context is not bound to a socket yet:
    ///
    /// ```compile_fail
    /// use wsctx::{Context, ManagerFactory, Policy, UuidGenerator};
    ///
    /// let validated = Context::builder().user_id("user-a").build()
    ///     .validate(&Policy::default(), &UuidGenerator::new())?;
    /// ManagerFactory::default().create(validated)?; // error: expected `Context<Bound>`, found `Context<Validated>`
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Its passing twin:
    ///
    /// ```
    /// use wsctx::{Context, ManagerFactory, Policy, UuidGenerator};
    ///
    /// let ids = UuidGenerator::new();
    /// let validated = Context::builder().user_id("user-a").build()
    ///     .validate(&Policy::default(), &ids)?;
    /// ManagerFactory::default().create(validated.bind(None, &ids)?)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`FactoryError::ShuttingDown`] after [`shutdown`](Self::shutdown);
    /// [`FactoryError::DuplicateClient`] when the user has a live (not closing) socket
    /// with the same client id (another user may use the same client id);
    /// [`FactoryError::ConnectionLimit`] when the user is at [`Limits::per_user`] (other
    /// users are unaffected); [`FactoryError::Overloaded`] when the factory is at
    /// [`Limits::global`].
    pub fn create(&self, ctx: Context<Bound>) -> Result<(IsolatedManager, Outbound), FactoryError> {
        self.admit(ctx, Start::Plain)
    }

    /// Admits like [`create`](Self::create), and queues first, in the same atomic step,
    /// what a client that was disconnected missed: every event of the user after
    /// `point`, oldest first, then `{"type":"resumed","missed":n}`. When the user's
    /// replay ring no longer holds all of them (another epoch, thrown away by a limit,
    /// expired, or a point the stream never reached) it queues `{"type":"resume_gap"}`
    /// instead, and the client must reload its state.
    ///
    /// Admission and replay are one step under the user's shard lock: an event emitted
    /// at the same time is either among the replayed frames or delivered live after
    /// them, never both and never neither. Replayed frames do not count against
    /// [`Limits::outbound_queue`]: the queue has room for that many live frames beyond
    /// them.
    ///
    /// A client that has not seen an event yet has no point to resume from: admit it
    /// with [`create_with_position`](Self::create_with_position) to tell it one.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create); a refused admission replays nothing.
    ///
    /// # Examples
    ///
    /// (Events come from an emitter, which needs the `serde` feature.)
    ///
    #[cfg_attr(feature = "serde", doc = "```")]
    #[cfg_attr(not(feature = "serde"), doc = "```ignore")]
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let ids = SequenceGenerator::new();
    /// # let ctx = Context::builder().user_id("user-a").build().validate(&Policy::default(), &ids)?;
    /// # let tab = || ctx.clone().bind(None, &UuidGenerator::new());
    /// use wsctx::{EventType, Frame};
    ///
    /// let factory = ManagerFactory::default();
    /// let step = EventType::try_new("agent_thinking")?;
    /// let (tab_1, _out) = factory.create(tab()?)?;
    /// let seen = factory.emitter(&ctx).emit(&step, &1)?.position.unwrap();
    /// drop(tab_1); // the tab loses its connection
    /// factory.emitter(&ctx).emit(&step, &2)?; // missed
    ///
    /// let (_tab, mut outbound) = factory.create_resuming(tab()?, seen)?;
    /// assert!(outbound.try_recv()?.as_text().unwrap().contains(r#""data":2"#));
    /// assert_eq!(outbound.try_recv()?, Frame::text(r#"{"type":"resumed","missed":1}"#));
    ///
    /// let unknown = "0123456789abcdef.1".parse()?;
    /// let (_tab, mut outbound) = factory.create_resuming(tab()?, unknown)?;
    /// assert_eq!(outbound.try_recv()?, Frame::text(r#"{"type":"resume_gap"}"#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_resuming(
        &self,
        ctx: Context<Bound>,
        point: ResumePoint,
    ) -> Result<(IsolatedManager, Outbound), FactoryError> {
        self.admit(ctx, Start::Resume(point))
    }

    /// Admits like [`create`](Self::create), and queues first, in the same atomic step,
    /// `{"type":"position","epoch":"<16 hex digits>","seq":n}`: the position of the
    /// user's event stream at admission. Every event after it reaches this socket live,
    /// so a client that stores the position (and then the position of each event it
    /// gets) can always resume, even if it drops before its first event. This is how
    /// a new tab learns where it starts; `create` sends no such frame.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// let (_tab, mut outbound) = ManagerFactory::default().create_with_position(bound)?;
    /// let position = outbound.try_recv()?;
    /// assert!(position.as_text().unwrap().starts_with(r#"{"type":"position","epoch":""#));
    /// assert!(position.as_text().unwrap().ends_with(r#"","seq":0}"#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_with_position(
        &self,
        ctx: Context<Bound>,
    ) -> Result<(IsolatedManager, Outbound), FactoryError> {
        self.admit(ctx, Start::Position)
    }

    fn admit(
        &self,
        ctx: Context<Bound>,
        start: Start,
    ) -> Result<(IsolatedManager, Outbound), FactoryError> {
        let hash = self.shared.registry.hash(ctx.user_id());
        let shard = self.shared.registry.shard(hash);
        match shard.admit(ctx, hash, start) {
            Ok(socket) => {
                debug_event!("socket admitted");
                let manager = IsolatedManager::new(Arc::clone(shard), Arc::clone(&socket));
                Ok((manager, Outbound::new(Arc::clone(shard), socket)))
            }
            Err(error) => {
                debug_event!(error_code = error.code().as_str(), "admission refused");
                Err(error)
            }
        }
    }

    /// Queues `frame` on every live socket of `user`, from anywhere in the server: no
    /// socket of that user is needed, and nobody else receives it. Behaves like
    /// [`IsolatedManager::send_to_user`] otherwise: never waits, a full queue closes
    /// that one socket as SLOW_CONSUMER, closing sockets are skipped, and a
    /// [`Frame::Close`] is refused (every socket counted as dropped).
    ///
    /// The frame is not kept for tabs that are reconnecting; events sent through an
    /// emitter (feature `serde`) are.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = |user: &str| -> Result<Context<wsctx::state::Bound>, Box<dyn std::error::Error>> {
    /// #     Ok(Context::builder().user_id(user).build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?)
    /// # };
    /// use wsctx::{Frame, TryRecvError, UserId};
    ///
    /// let factory = ManagerFactory::default();
    /// let (_alice, mut alice_out) = factory.create(bound("alice")?)?;
    /// let (_bob, mut bob_out) = factory.create(bound("bob")?)?;
    ///
    /// let delivery = factory.send_to_user(&UserId::try_new("alice")?, Frame::text("report ready"));
    /// assert_eq!(delivery.delivered, 1);
    /// assert_eq!(alice_out.try_recv()?, Frame::text("report ready"));
    /// assert_eq!(bob_out.try_recv(), Err(TryRecvError::Empty));
    ///
    /// // A user with no socket: nobody gets it.
    /// assert_eq!(factory.send_to_user(&UserId::try_new("carol")?, Frame::text("hi")).delivered, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(
        clippy::needless_pass_by_value,
        reason = "the frame is handed over; each socket gets a clone of its shared payload"
    )]
    pub fn send_to_user(&self, user: &UserId, frame: Frame) -> Delivery {
        let hash = self.shared.registry.hash(user);
        let shard = self.shared.registry.shard(hash);
        shard.send_to_user(hash, user, &frame)
    }

    /// An [`Emitter`] that sends events on behalf of `ctx` (a validated or bound context
    /// at any depth) to every live socket of `ctx`'s user. The context's ids are rendered
    /// once, here; the emitter keeps no reference to the context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator};
    /// # let ids = SequenceGenerator::new();
    /// # let request = Context::builder().user_id("user-a").build().validate(&Policy::default(), &ids)?;
    /// use wsctx::EventType;
    ///
    /// let factory = ManagerFactory::default();
    /// let emitter = factory.emitter(&request.child("summarize", &Policy::default(), &ids)?);
    /// let handle = std::thread::spawn(move || {
    ///     emitter.emit(&EventType::try_new("agent_completed").unwrap(), &()).unwrap()
    /// });
    /// assert_eq!(handle.join().unwrap().delivered, 0); // the user has no socket
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "serde")]
    #[must_use]
    pub fn emitter<S: crate::state::Valid>(&self, ctx: &Context<S>) -> Emitter {
        let user = ctx.user_id();
        let hash = self.shared.registry.hash(user);
        Emitter::new(
            Arc::clone(self.shared.registry.shard(hash)),
            hash,
            user.clone(),
            emit::EventHeader::new(ctx),
            self.shared.global.limits().event_data_bytes,
        )
    }

    /// Closes every open socket of `user` with `frame`; each one's
    /// [`Outbound`] yields that close frame next, even if its queue is full. Returns
    /// how many sockets this call closed. Other users are untouched. Slots stay held
    /// until the managers are dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = |user: &str| -> Result<Context<wsctx::state::Bound>, Box<dyn std::error::Error>> {
    /// #     Ok(Context::builder().user_id(user).build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?)
    /// # };
    /// use wsctx::{CloseCode, CloseFrame, Frame};
    ///
    /// let factory = ManagerFactory::default();
    /// let (alice, mut alice_out) = factory.create(bound("alice")?)?;
    /// let (_bob, bob_out) = factory.create(bound("bob")?)?;
    ///
    /// let banned = CloseFrame::new(CloseCode::GOING_AWAY, "banned");
    /// let closed = factory.disconnect_user(alice.context().user_id(), &banned);
    /// assert_eq!(closed, 1);
    /// assert_eq!(alice_out.try_recv()?, Frame::Close(banned));
    /// assert!(!bob_out.is_closing());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn disconnect_user(&self, user: &UserId, frame: &CloseFrame) -> usize {
        let hash = self.shared.registry.hash(user);
        let shard = self.shared.registry.shard(hash);
        let (closed, _) = shard.close_user(hash, user, frame, Counter::Disconnected);
        debug_event!(sockets = closed, "user disconnected");
        closed
    }

    /// How many sockets `user` holds now, closing ones included.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// let factory = ManagerFactory::default();
    /// let user = bound.user_id().clone();
    /// let admitted = factory.create(bound)?;
    /// assert_eq!(factory.connections(&user), 1);
    /// drop(admitted);
    /// assert_eq!(factory.connections(&user), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn connections(&self, user: &UserId) -> usize {
        let hash = self.shared.registry.hash(user);
        self.shared.registry.shard(hash).connections(hash, user)
    }

    /// Starts draining: refuses every new admission with SHUTTING_DOWN, closes every
    /// socket with SHUTTING_DOWN's close frame (1012), and stops the idle reapers.
    /// Idempotent. Slots are freed as the managers are dropped; watch
    /// [`MetricsSnapshot::active`] reach 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = |tab: &str| -> Result<Context<wsctx::state::Bound>, Box<dyn std::error::Error>> {
    /// #     Ok(Context::builder().user_id("user-a").websocket_client_id(tab).build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?)
    /// # };
    /// use wsctx::{CloseCode, FactoryError, Frame};
    ///
    /// let factory = ManagerFactory::default();
    /// let (_manager, mut outbound) = factory.create(bound("tab-1")?)?;
    /// factory.shutdown();
    /// assert!(matches!(outbound.try_recv()?, Frame::Close(close) if close.code == CloseCode::SERVICE_RESTART));
    /// assert_eq!(factory.create(bound("tab-2")?).unwrap_err(), FactoryError::ShuttingDown);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&self) {
        let global = &self.shared.global;
        global.begin_draining();
        let frame = global.close_frame(ErrorCode::ShuttingDown);
        for shard in self.shared.registry.shards() {
            shard.close_where(&frame, Counter::ClosedByShutdown, |_| true);
        }
        debug_event!(error_code = "SHUTTING_DOWN", "factory draining");
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// let factory = wsctx::ManagerFactory::default();
    /// factory.shutdown();
    /// assert!(factory.is_shutting_down());
    /// ```
    #[must_use]
    pub fn is_shutting_down(&self) -> bool {
        self.shared.global.is_draining()
    }

    /// Runs [`close_idle`](Self::close_idle) every `every` (at least 1 ms), closing the
    /// sockets without activity for [`Limits::idle_timeout`] with IDLE_TIMEOUT (4408):
    /// each is closed between `idle_timeout` and `idle_timeout + 2 × every` after its
    /// last activity, never before. Returns after [`shutdown`](Self::shutdown). The
    /// application spawns it:
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use wsctx::ManagerFactory;
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
    /// let factory = ManagerFactory::default();
    /// let reaper = tokio::spawn({
    ///     let factory = factory.clone();
    ///     async move { factory.run_idle_reaper(Duration::from_secs(10)).await }
    /// });
    /// factory.shutdown();
    /// reaper.await?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Panics
    ///
    /// When polled outside a Tokio runtime with the time driver enabled, as
    /// `tokio::time::sleep` does.
    pub async fn run_idle_reaper(&self, every: Duration) {
        let every = every.max(MIN_REAP_INTERVAL);
        loop {
            let mut notified = pin!(self.shared.global.draining_notified());
            notified.as_mut().enable();
            if self.is_shutting_down() {
                return;
            }
            let mut sleep = pin!(tokio::time::sleep(every));
            // A hand-written `select!`: the core enables only tokio's `sync` and `time`
            // features, not `macros`.
            let shutdown = poll_fn(|cx| {
                if notified.as_mut().poll(cx).is_ready() {
                    Poll::Ready(true)
                } else if sleep.as_mut().poll(cx).is_ready() {
                    Poll::Ready(false)
                } else {
                    Poll::Pending
                }
            })
            .await;
            if shutdown || self.is_shutting_down() {
                return;
            }
            self.close_idle();
            self.free_expired_rings();
        }
    }

    /// One sweep of the idle reaper, now. Returns how many sockets it closed.
    ///
    /// Activity ([`IsolatedManager::record_activity`], or the admission) only sets a
    /// flag, so that it costs no clock read; a sweep that finds the flag set clears it
    /// and notes its own time as the socket's last activity. A sweep closes, with
    /// IDLE_TIMEOUT (4408), every open socket whose flag is clear and whose last noted
    /// activity is at least [`Limits::idle_timeout`] old. So a socket is never closed
    /// less than `idle_timeout` after its last activity, and the first sweep after a
    /// socket is admitted never closes it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// use std::time::Duration;
    /// use wsctx::{CloseCode, Frame, Limits};
    ///
    /// let factory = ManagerFactory::new(Limits { idle_timeout: Duration::ZERO, ..Limits::default() });
    /// let (manager, mut outbound) = factory.create(bound)?;
    /// assert_eq!(factory.close_idle(), 0); // sees the admission
    /// assert_eq!(factory.close_idle(), 1); // nothing since
    /// assert!(matches!(outbound.try_recv()?, Frame::Close(close) if close.code == CloseCode::TIMEOUT));
    /// # drop(manager);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close_idle(&self) -> usize {
        let global = &self.shared.global;
        let timeout = nanos(global.limits().idle_timeout);
        let now = global.now();
        let frame = global.close_frame(ErrorCode::IdleTimeout);
        let closed = self
            .shared
            .registry
            .shards()
            .map(|shard| {
                shard.close_where(&frame, Counter::IdleTimeouts, |socket| {
                    socket.idle_for(now, timeout)
                })
            })
            .sum();
        if closed > 0 {
            debug_event!(
                error_code = "IDLE_TIMEOUT",
                sockets = closed,
                "idle sockets closed"
            );
        }
        closed
    }

    /// Frees the replay rings of users who have had no socket for
    /// [`ReplayLimits::window`] (counted from the later of their last socket leaving and
    /// their newest event), and throws away expired events from the others. Returns how
    /// many rings it freed. [`run_idle_reaper`](Self::run_idle_reaper) calls it on every
    /// sweep; without a reaper, rings of departed users are only freed here.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// use std::time::Duration;
    /// use wsctx::{Limits, ReplayLimits};
    ///
    /// let replay = ReplayLimits { window: Duration::ZERO, ..ReplayLimits::default() };
    /// let factory = ManagerFactory::new(Limits { replay, ..Limits::default() });
    /// let tab = factory.create_with_position(bound)?; // the user gets a ring
    /// assert_eq!(factory.metrics().replay_rings, 1);
    /// assert_eq!(factory.free_expired_rings(), 0); // a socket is attached
    /// drop(tab);
    /// assert_eq!(factory.free_expired_rings(), 1);
    /// assert_eq!(factory.metrics().replay_rings, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn free_expired_rings(&self) -> usize {
        let now = tokio::time::Instant::now();
        let freed = self
            .shared
            .registry
            .shards()
            .map(|shard| shard.free_expired_rings(now))
            .sum();
        if freed > 0 {
            debug_event!(rings = freed, "replay rings freed");
        }
        freed
    }

    /// The counters now.
    ///
    /// # Examples
    ///
    /// ```
    /// let m = wsctx::ManagerFactory::default().metrics();
    /// assert_eq!((m.admitted, m.active), (0, 0));
    /// ```
    #[must_use]
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut total = MetricsSnapshot::default();
        for shard in self.shared.registry.shards() {
            shard.sum_into(&mut total);
        }
        let global = &self.shared.global;
        total.active = u64::try_from(global.active()).unwrap_or(u64::MAX);
        total.replay_bytes = u64::try_from(global.replay().held()).unwrap_or(u64::MAX);
        total
    }

    /// The limits in force (an `outbound_queue` of 0 reads as 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{Limits, ManagerFactory};
    ///
    /// assert_eq!(ManagerFactory::default().limits(), Limits::default());
    /// ```
    #[must_use]
    pub fn limits(&self) -> Limits {
        *self.shared.global.limits()
    }

    /// How the closes this factory sends are rendered.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::ManagerFactory::default().close_style(), wsctx::CloseStyle::Detailed);
    /// ```
    #[must_use]
    pub fn close_style(&self) -> CloseStyle {
        self.shared.global.style()
    }
}

impl Default for ManagerFactory {
    /// A factory with [`Limits::default`].
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl fmt::Debug for ManagerFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerFactory")
            .field("limits", self.shared.global.limits())
            .field("active", &self.shared.global.active())
            .field("shutting_down", &self.is_shutting_down())
            .finish_non_exhaustive()
    }
}
