//! [`Outbound`]: the receiving end of one socket's outbound queue.

use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use crate::factory::error::TryRecvError;
use crate::factory::frame::Frame;
use crate::factory::shard::Shard;
use crate::factory::socket::Socket;

/// The receiving end of one socket's bounded outbound queue. The writer task forwards
/// what it yields to the real socket.
///
/// A requested close comes first: once the socket is closed (by
/// [`disconnect_user`](crate::ManagerFactory::disconnect_user),
/// [`shutdown`](crate::ManagerFactory::shutdown), the idle reaper, a full queue, or
/// dropping its [`IsolatedManager`](crate::IsolatedManager)), the next frame is the
/// [`Frame::Close`] to send, even if the queue was full, then `None`. Frames still
/// queued at that moment are thrown away (counted in
/// [`MetricsSnapshot::messages_discarded`](crate::MetricsSnapshot::messages_discarded)):
/// a closing socket gets no more data.
///
/// Dropping the `Outbound` marks the socket closed: later frames for it are dropped.
/// The slot stays held until its [`IsolatedManager`](crate::IsolatedManager) is dropped.
///
/// # Examples
///
/// ```
/// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
/// use wsctx::{CloseCode, CloseFrame, Frame};
///
/// # let bound = Context::builder().user_id("user-a").build()
/// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
/// let factory = ManagerFactory::default();
/// let (manager, mut outbound) = factory.create(bound)?;
/// manager.send_to_user(Frame::text("hello"));
/// drop(manager); // the reader ended: the slot is freed and the socket closed
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// assert_eq!(outbound.recv().await, Some(Frame::Close(CloseFrame::new(CloseCode::NORMAL, ""))));
/// assert_eq!(outbound.recv().await, None);
/// # });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Outbound {
    shard: Arc<Shard>,
    socket: Arc<Socket>,
}

impl Outbound {
    pub(super) fn new(shard: Arc<Shard>, socket: Arc<Socket>) -> Self {
        Self { shard, socket }
    }

    /// Waits for the next frame: a requested [`Frame::Close`] first, otherwise the
    /// oldest queued frame. `None` once the close frame has been yielded.
    ///
    /// Cancel-safe: dropping the future loses no frame. Works on any executor.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// use wsctx::Frame;
    ///
    /// let (manager, mut outbound) = ManagerFactory::default().create(bound)?;
    /// manager.send_to_user(Frame::text("one"));
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// assert_eq!(outbound.recv().await, Some(Frame::text("one")));
    /// # });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn recv(&mut self) -> Option<Frame> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The poll form of [`recv`](Self::recv), for writing a `Stream` adapter.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// let (_manager, mut outbound) = wsctx::ManagerFactory::default().create(bound)?;
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let pending = std::future::poll_fn(|cx| std::task::Poll::Ready(outbound.poll_recv(cx).is_pending())).await;
    /// assert!(pending); // nothing queued yet
    /// # });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll_recv(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Frame>> {
        self.socket.poll_recv(cx)
    }

    /// The next frame if one is ready now, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when nothing is queued yet; [`TryRecvError::Closed`] once
    /// the close frame has been yielded.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// use wsctx::{Frame, TryRecvError};
    ///
    /// let (manager, mut outbound) = wsctx::ManagerFactory::default().create(bound)?;
    /// assert_eq!(outbound.try_recv(), Err(TryRecvError::Empty));
    /// manager.send_to_user(Frame::text("x"));
    /// assert_eq!(outbound.try_recv(), Ok(Frame::text("x")));
    /// drop(manager);
    /// assert!(outbound.try_recv()?.is_close());
    /// assert_eq!(outbound.try_recv(), Err(TryRecvError::Closed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv(&mut self) -> Result<Frame, TryRecvError> {
        self.socket.try_recv()
    }

    /// Frames waiting in the queue (not counting a pending close).
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// let (manager, outbound) = wsctx::ManagerFactory::default().create(bound)?;
    /// manager.send_to_user(wsctx::Frame::text("x"));
    /// assert_eq!(outbound.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.socket.queued()
    }

    /// Whether no frame is waiting in the queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// let (_manager, outbound) = wsctx::ManagerFactory::default().create(bound)?;
    /// assert!(outbound.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the socket is closing: a close was requested (and perhaps already
    /// yielded), or the manager was dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// let (manager, outbound) = wsctx::ManagerFactory::default().create(bound)?;
    /// assert!(!outbound.is_closing());
    /// drop(manager);
    /// assert!(outbound.is_closing());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn is_closing(&self) -> bool {
        self.socket.is_closing()
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        let discarded = self.socket.receiver_dropped();
        self.shard.count_discarded(discarded);
    }
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field(
                "websocket_client_id",
                self.socket.context().websocket_client_id(),
            )
            .field("queued", &self.len())
            .field("closing", &self.is_closing())
            .finish_non_exhaustive()
    }
}
