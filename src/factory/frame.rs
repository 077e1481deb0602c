//! [`Frame`], what an outbound queue carries, and [`Delivery`], what a fan-out did.

use std::sync::Arc;

use crate::close::CloseFrame;
use crate::resume::ResumePoint;

/// One outbound WebSocket message. Cheap to clone: the payload is shared, so a fan-out
/// to every socket of a user copies a pointer, not the message.
///
/// # Examples
///
/// ```
/// use wsctx::Frame;
///
/// let frame = Frame::text("hello");
/// let copy = frame.clone(); // shares the text
/// assert_eq!(copy.as_text(), Some("hello"));
/// assert_eq!(Frame::binary(vec![1, 2, 3]), Frame::Binary(vec![1, 2, 3].into()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A text message.
    Text(Arc<str>),
    /// A binary message.
    Binary(Arc<[u8]>),
    /// A close frame: the last frame an [`Outbound`](crate::Outbound) yields. Never
    /// queued by a send (a send of one is refused): closing is
    /// [`IsolatedManager::close`](crate::IsolatedManager::close)'s and
    /// [`ManagerFactory::disconnect_user`](crate::ManagerFactory::disconnect_user)'s job.
    Close(CloseFrame),
}

impl Frame {
    /// A text frame.
    ///
    /// # Examples
    ///
    /// ```
    /// let frame = wsctx::Frame::text(String::from("hi"));
    /// assert_eq!(frame.as_text(), Some("hi"));
    /// ```
    pub fn text(text: impl Into<Arc<str>>) -> Self {
        Self::Text(text.into())
    }

    /// A binary frame.
    ///
    /// # Examples
    ///
    /// ```
    /// let frame = wsctx::Frame::binary(&b"\x00\x01"[..]);
    /// assert!(matches!(frame, wsctx::Frame::Binary(_)));
    /// ```
    pub fn binary(bytes: impl Into<Arc<[u8]>>) -> Self {
        Self::Binary(bytes.into())
    }

    /// The text, for a text frame.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::Frame::binary(vec![0]).as_text(), None);
    /// ```
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Binary(_) | Self::Close(..) => None,
        }
    }

    /// Whether this is a close frame.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{CloseCode, CloseFrame, Frame};
    ///
    /// assert!(Frame::from(CloseFrame::new(CloseCode::NORMAL, "")).is_close());
    /// ```
    #[must_use]
    pub const fn is_close(&self) -> bool {
        matches!(self, Self::Close(..))
    }
}

impl From<CloseFrame> for Frame {
    fn from(frame: CloseFrame) -> Self {
        Self::Close(frame)
    }
}

/// What one send did: [`IsolatedManager::send_to_user`](crate::IsolatedManager::send_to_user),
/// [`ManagerFactory::send_to_user`](crate::ManagerFactory::send_to_user) or an
/// emitter's `emit` (feature `serde`). Counted in sockets of the receiving user.
///
/// Non-exhaustive, so that a deployment spanning several servers can report its remote
/// deliveries beside the local ones.
///
/// # Examples
///
/// ```
/// # use wsctx::{Context, Frame, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
/// # let bound = |tab: &str| -> Result<Context<wsctx::state::Bound>, Box<dyn std::error::Error>> {
/// #     Ok(Context::builder().user_id("user-a").websocket_client_id(tab).build()
/// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?)
/// # };
/// let factory = ManagerFactory::default();
/// let (tab1, _out1) = factory.create(bound("tab-1")?)?;
/// let (_tab2, _out2) = factory.create(bound("tab-2")?)?;
///
/// let delivery = tab1.send_to_user(Frame::text("hi"));
/// assert_eq!((delivery.delivered, delivery.dropped), (2, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Delivery {
    /// Sockets whose outbound queue accepted the frame.
    pub delivered: usize,
    /// Sockets that did not get the frame: closing or closed, or their queue was full
    /// (such a socket is now closing as SLOW_CONSUMER). A refused send (see
    /// [`send_to_user`](crate::IsolatedManager::send_to_user)) counts every socket of the
    /// user here.
    pub dropped: usize,
    /// For an event: its position in the user's stream (what a client that saw it
    /// resumes from). `None` for a plain frame, and for an event to a user with no
    /// socket and no replay ring, which nobody can resume.
    pub position: Option<ResumePoint>,
    /// For an event: whether the user's replay ring holds it, so that a client
    /// reconnecting within the window gets it. `false` for a plain frame, and for an
    /// event too large for [`ReplayLimits`](crate::ReplayLimits) (a client that missed it
    /// gets `resume_gap`).
    pub buffered: bool,
}
