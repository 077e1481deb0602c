//! [`IsolatedManager`]: one admitted socket, scoped to its own user.

use std::fmt;
use std::sync::Arc;

use crate::close::CloseFrame;
use crate::context::Context;
use crate::factory::frame::{Delivery, Frame};
use crate::factory::metrics::Counter;
use crate::factory::shard::Shard;
use crate::factory::socket::Socket;
use crate::id::WebSocketClientId;
use crate::rejection::Rejection;
use crate::state::Bound;

/// One admitted socket, and the only handle through which it sends: every message goes
/// to the sockets of **its own user** (all tabs, this one included) and to nobody else.
/// There is no method that names another user.
///
/// The manager is the admission itself (RAII): it holds one slot of the per-user and
/// global limits and its client id. Dropping it frees all three, exactly once, and
/// closes its socket (its [`Outbound`](crate::Outbound) yields a 1000 close frame unless
/// another close came first). Drop it when the socket's reader task ends.
///
/// Closing the socket ([`close`](Self::close), a disconnect, the idle reaper, a full
/// queue, shutdown) does not free the slot: only the drop does. Once a close was
/// requested for the socket, the manager's own sends are refused (see
/// [`send_to_user`](Self::send_to_user)).
///
/// Its `Debug` output shows the user's [`Fingerprint`](crate::Fingerprint), never the
/// user id.
///
/// # Examples
///
/// ```
/// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
/// # let bound = |user: &str, tab: &str| -> Result<Context<wsctx::state::Bound>, Box<dyn std::error::Error>> {
/// #     Ok(Context::builder().user_id(user).websocket_client_id(tab).build()
/// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?)
/// # };
/// use wsctx::{Frame, TryRecvError};
///
/// let factory = ManagerFactory::default();
/// let (alice_1, mut alice_1_out) = factory.create(bound("alice", "tab-1")?)?;
/// let (_alice_2, mut alice_2_out) = factory.create(bound("alice", "tab-2")?)?;
/// let (_bob, mut bob_out) = factory.create(bound("bob", "tab-1")?)?;
///
/// let delivery = alice_1.send_to_user(Frame::text("for alice"));
/// assert_eq!(delivery.delivered, 2);
/// assert_eq!(alice_1_out.try_recv()?, Frame::text("for alice"));
/// assert_eq!(alice_2_out.try_recv()?, Frame::text("for alice"));
/// assert_eq!(bob_out.try_recv(), Err(TryRecvError::Empty));
/// assert!(!format!("{alice_1:?}").contains("alice"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping the manager frees its slot and closes its socket"]
pub struct IsolatedManager {
    shard: Arc<Shard>,
    socket: Arc<Socket>,
}

impl IsolatedManager {
    pub(super) fn new(shard: Arc<Shard>, socket: Arc<Socket>) -> Self {
        Self { shard, socket }
    }

    /// The bound context of this socket.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// let (manager, _outbound) = ManagerFactory::default().create(bound)?;
    /// assert_eq!(manager.context().user_id().as_str(), "user-a");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn context(&self) -> &Context<Bound> {
        self.socket.context()
    }

    /// The client id this socket holds (unique among the user's live sockets).
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").websocket_client_id("tab-1").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// let (manager, _outbound) = ManagerFactory::default().create(bound)?;
    /// assert_eq!(manager.websocket_client_id().as_str(), "tab-1");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn websocket_client_id(&self) -> &WebSocketClientId {
        self.socket.context().websocket_client_id()
    }

    /// Queues `frame` on every socket of this manager's user (all tabs, this one
    /// included), without waiting and without blocking on any of them.
    ///
    /// A socket whose queue is full is closed as SLOW_CONSUMER (its
    /// [`Outbound`](crate::Outbound) yields the 1013 close frame next); the others are
    /// unaffected. Closing sockets are skipped.
    ///
    /// Refused, with every socket of the user counted as `dropped` (and in
    /// [`MetricsSnapshot::messages_dropped`](crate::MetricsSnapshot::messages_dropped)):
    /// a [`Frame::Close`], which is never queued (to close sockets, use
    /// [`close`](Self::close) or
    /// [`ManagerFactory::disconnect_user`](crate::ManagerFactory::disconnect_user)); and
    /// every send once a close was requested for this socket: by [`close`](Self::close),
    /// [`close_with`](Self::close_with), `disconnect_user`,
    /// [`shutdown`](crate::ManagerFactory::shutdown) or the idle reaper. A socket closed
    /// because its own queue overflowed, or whose [`Outbound`](crate::Outbound) was
    /// dropped, lost only its writing side: its manager can still send to the user's
    /// other sockets.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// use wsctx::{Frame, Limits};
    ///
    /// let factory = ManagerFactory::new(Limits { outbound_queue: 1, ..Limits::default() });
    /// let (manager, mut outbound) = factory.create(bound)?;
    /// assert_eq!(manager.send_to_user(Frame::text("1")).delivered, 1);
    /// assert_eq!(manager.send_to_user(Frame::text("2")).dropped, 1); // queue full
    /// assert_eq!(outbound.try_recv()?.is_close(), true); // closed as SLOW_CONSUMER
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[allow(
        clippy::needless_pass_by_value,
        reason = "the frame is handed over; each socket gets a clone of its shared payload"
    )]
    pub fn send_to_user(&self, frame: Frame) -> Delivery {
        let (hash, user) = (self.socket.hash(), self.context().user_id());
        if self.socket.is_close_requested() {
            return self.shard.refuse(hash, user);
        }
        self.shard.send_to_user(hash, user, &frame)
    }

    /// Marks the socket active; the idle reaper closes sockets that go
    /// [`Limits::idle_timeout`](crate::Limits::idle_timeout) without it (see
    /// [`ManagerFactory::close_idle`](crate::ManagerFactory::close_idle) for the exact
    /// rule). Call it for every inbound frame: it is one relaxed atomic store, with no
    /// lock and no clock read.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// let (manager, _outbound) = ManagerFactory::default().create(bound)?;
    /// manager.record_activity();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record_activity(&self) {
        self.socket.mark_active();
    }

    /// Closes this socket (only this one) with `frame`. Returns whether this call closed
    /// it (`false` when it was already closing).
    ///
    /// From then on this manager's sends are refused, and its
    /// [`Outbound`](crate::Outbound) yields `frame` next. The slot and the client id stay
    /// held until the manager is dropped, which the reader task does when the socket
    /// ends (the axum runner drops it once the close handshake is over).
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// use wsctx::{CloseCode, CloseFrame, Frame};
    ///
    /// let (manager, mut outbound) = ManagerFactory::default().create(bound)?;
    /// let logged_out = CloseFrame::new(CloseCode::NORMAL, "logged_out");
    /// assert!(manager.close(&logged_out));
    /// assert!(!manager.close(&CloseFrame::new(CloseCode::NORMAL, "again")));
    /// assert_eq!(manager.send_to_user(Frame::text("too late")).delivered, 0); // refused
    /// assert_eq!(outbound.try_recv()?, Frame::Close(logged_out));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self, frame: &CloseFrame) -> bool {
        self.shard
            .close_socket(&self.socket, frame, Counter::Disconnected)
    }

    /// Closes this socket with the close frame of `rejection`, in the factory's
    /// [`CloseStyle`](crate::CloseStyle). Returns whether this call closed it; a close
    /// counts in [`MetricsSnapshot::closed`](crate::MetricsSnapshot::closed) under the
    /// rejection's code. As with [`close`](Self::close), the slot is freed when the
    /// manager is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// use wsctx::{CloseCode, ErrorCode, Frame, Rejection};
    ///
    /// let (manager, mut outbound) = ManagerFactory::default().create(bound)?;
    /// manager.close_with(&Rejection::new(ErrorCode::TokenExpired));
    /// assert!(matches!(outbound.try_recv()?, Frame::Close(close) if close.code == CloseCode::UNAUTHORIZED));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close_with(&self, rejection: &Rejection) -> bool {
        let frame = rejection.close_frame(self.shard.style());
        self.shard
            .close_socket_with(&self.socket, &frame, rejection.code())
    }

    /// Whether this socket is closing (a close was requested, or its
    /// [`Outbound`](crate::Outbound) was dropped).
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// let (manager, outbound) = ManagerFactory::default().create(bound)?;
    /// assert!(!manager.is_closing());
    /// drop(outbound);
    /// assert!(manager.is_closing());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn is_closing(&self) -> bool {
        self.socket.is_closing()
    }
}

impl Drop for IsolatedManager {
    fn drop(&mut self) {
        self.shard.release(&self.socket);
    }
}

impl fmt::Debug for IsolatedManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IsolatedManager")
            .field("user", &self.context().user_id().fingerprint())
            .field("websocket_client_id", self.websocket_client_id())
            .field("closing", &self.is_closing())
            .finish()
    }
}
