//! [`Admission`], one admitted socket before its upgrade; [`Session`], the same socket as
//! a handler sees it once it runs; and [`MessageHandler`].

use std::fmt;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use ::axum::extract::ws::Message;
use tokio::sync::mpsc;

use crate::auth::Token;
use crate::context::Context;
use crate::factory::{Delivery, Frame, IsolatedManager, Outbound};
use crate::http::Handshake;
use crate::rejection::{ErrorCode, Rejection};
use crate::state::Bound;
use crate::trace::debug_event;

/// The admission a socket holds: a slot on this node, and in cluster mode also a lease
/// and a subscription of the user's channel.
pub(super) enum Held {
    Local(IsolatedManager),
    #[cfg(feature = "redis")]
    Cluster(crate::cluster::ClusterManager),
}

impl Held {
    fn manager(&self) -> &IsolatedManager {
        match self {
            Self::Local(manager) => manager,
            #[cfg(feature = "redis")]
            Self::Cluster(manager) => manager,
        }
    }

    /// Sends to the user's sockets here; in cluster mode also queues the publication
    /// to the other nodes (in order, without waiting).
    fn send_to_user(&self, frame: Frame) -> Delivery {
        match self {
            Self::Local(manager) => manager.send_to_user(frame),
            #[cfg(feature = "redis")]
            Self::Cluster(manager) => manager.send_to_user_queued(frame),
        }
    }
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.manager(), f)
    }
}

/// One admitted socket before its upgrade: the factory slot (held until the socket is
/// done, or freed if this value is dropped), its outbound queue, and its credential's
/// expiry. Give it to [`Endpoint::serve`](super::Endpoint::serve).
///
/// # Examples
///
/// ```
/// # use wsctx::axum::{Endpoint, MessageHandler, Session};
/// # struct Quiet;
/// # impl MessageHandler for Quiet {
/// #     async fn on_message(&self, _: &Session, _: axum::extract::ws::Message) {}
/// # }
/// # let deny = wsctx::verify_fn(|_| std::future::ready(Err(wsctx::AuthError::ValidationFailed)));
/// # let handshake = wsctx::http::Handshake::builder(deny).build();
/// use wsctx::axum::Authenticated;
/// use wsctx::{Context, Policy, UuidGenerator};
///
/// let endpoint = Endpoint::new(handshake, wsctx::ManagerFactory::default(), Quiet);
/// let ctx = Context::builder().user_id("user-8f14").build().validate(&Policy::default(), &UuidGenerator::new())?;
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let admission = endpoint.admit(Authenticated::new(ctx, None, None)).await?;
/// assert_eq!(endpoint.factory().metrics().active, 1);
/// assert_eq!(admission.expires_at(), None);
/// drop(admission); // never upgraded: the slot is freed
/// assert_eq!(endpoint.factory().metrics().active, 0);
/// # Ok::<(), wsctx::Rejection>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping an admission frees its slot"]
pub struct Admission {
    manager: Held,
    outbound: Outbound,
    expires_at: Option<SystemTime>,
}

impl Admission {
    pub(super) fn new(manager: Held, outbound: Outbound, expires_at: Option<SystemTime>) -> Self {
        Self {
            manager,
            outbound,
            expires_at,
        }
    }

    /// The manager, the outbound queue and the expiry, for the runner.
    pub(super) fn into_parts(self) -> (Held, Outbound, Option<SystemTime>) {
        (self.manager, self.outbound, self.expires_at)
    }

    /// The admitted socket's manager.
    ///
    /// # Examples
    ///
    /// See [`Admission`].
    pub fn manager(&self) -> &IsolatedManager {
        self.manager.manager()
    }

    /// When the socket's credential expires; see [`Session::expires_at`].
    ///
    /// # Examples
    ///
    /// See [`Admission`].
    #[must_use]
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
}

debug_fields!(Admission {
    manager,
    expires_at,
    ..
});

/// One admitted socket, as a [`MessageHandler`] sees it: the [`IsolatedManager`] (which
/// sends only to the sockets of its own user), a reply channel to this socket alone, and
/// the expiry of the credential it was opened with.
pub struct Session {
    manager: Held,
    replies: mpsc::Sender<Frame>,
    handshake: Handshake,
    expires_at: Mutex<Option<SystemTime>>,
    /// The error frame the runner writes before the close frame this session requested.
    error_frame: Mutex<Option<String>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("manager", self.manager.manager())
            .field("expires_at", &self.expires_at())
            .finish_non_exhaustive()
    }
}

/// Locks a mutex that nothing panics under.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Session {
    pub(super) fn new(
        manager: Held,
        replies: mpsc::Sender<Frame>,
        handshake: Handshake,
        expires_at: Option<SystemTime>,
    ) -> Self {
        Self {
            manager,
            replies,
            handshake,
            expires_at: Mutex::new(expires_at),
            error_frame: Mutex::new(None),
        }
    }

    /// The socket's bound context.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::extract::ws::Message;
    /// use wsctx::axum::{MessageHandler, Session};
    /// use wsctx::Frame;
    ///
    /// struct Handler;
    /// impl MessageHandler for Handler {
    ///     async fn on_message(&self, session: &Session, message: Message) {
    ///         let client = session.context().websocket_client_id().as_str();
    ///         session.reply(Frame::text(format!("you are {client}")));
    /// #       let _ = message;
    ///     }
    /// }
    /// ```
    pub fn context(&self) -> &Context<Bound> {
        self.manager().context()
    }

    /// The socket's manager.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::extract::ws::Message;
    /// use wsctx::axum::{MessageHandler, Session};
    ///
    /// struct Handler;
    /// impl MessageHandler for Handler {
    ///     async fn on_message(&self, session: &Session, message: Message) {
    ///         assert!(!session.manager().is_closing());
    /// #       let _ = message;
    ///     }
    /// }
    /// ```
    pub fn manager(&self) -> &IsolatedManager {
        self.manager.manager()
    }

    /// Sends `frame` to every socket of this socket's user (this one included) and to
    /// nobody else. See [`IsolatedManager::send_to_user`]. On an endpoint in cluster
    /// mode ([`Endpoint::clustered`](super::Endpoint::clustered), feature `redis`) the
    /// frame also goes to the user's sockets on the other nodes: published in the
    /// background, in the order of this node's sends; the delivery returned counts this
    /// node's sockets.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::extract::ws::Message;
    /// use wsctx::axum::{MessageHandler, Session};
    /// use wsctx::Frame;
    ///
    /// struct Handler;
    /// impl MessageHandler for Handler {
    ///     async fn on_message(&self, session: &Session, message: Message) {
    ///         if let Message::Text(text) = message {
    ///             let delivery = session.send_to_user(Frame::text(text.as_str()));
    ///             assert!(delivery.delivered >= 1); // at least this socket
    ///         }
    ///     }
    /// }
    /// ```
    pub fn send_to_user(&self, frame: Frame) -> Delivery {
        self.manager.send_to_user(frame)
    }

    /// Sends `frame` to this socket only, ahead of frames queued for the user (use it for
    /// a welcome or a per-socket error). Returns `false` when the frame was dropped
    /// because the socket is closing or its reply queue is full. A [`Frame::Close`]
    /// closes this socket.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::extract::ws::Message;
    /// use wsctx::axum::{MessageHandler, Session};
    /// use wsctx::Frame;
    ///
    /// struct Handler;
    /// impl MessageHandler for Handler {
    ///     async fn on_message(&self, session: &Session, message: Message) {
    ///         if let Message::Binary(_) = message {
    ///             session.reply(Frame::text(r#"{"type":"error","code":"TEXT_ONLY"}"#));
    ///         }
    ///     }
    /// }
    /// ```
    pub fn reply(&self, frame: Frame) -> bool {
        match frame {
            Frame::Close(close) => self.manager().close(&close),
            frame => !self.manager().is_closing() && self.replies.try_send(frame).is_ok(),
        }
    }

    /// Closes this socket: the runner writes `rejection`'s
    /// [error frame](Rejection::error_frame), then its close frame. Returns whether this
    /// call closed it (`false` when it was already closing). The handler gets no further
    /// message from this socket.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::extract::ws::Message;
    /// use wsctx::axum::{MessageHandler, Session};
    ///
    /// struct Handler;
    /// impl MessageHandler for Handler {
    ///     async fn on_message(&self, session: &Session, message: Message) {
    ///         if message == Message::text("logout") {
    ///             session.close_with(&wsctx::Rejection::new(wsctx::ErrorCode::Forbidden));
    ///         }
    ///     }
    /// }
    /// ```
    pub fn close_with(&self, rejection: &Rejection) -> bool {
        // Set before the close is requested: the runner reads it when it sees the close.
        *lock(&self.error_frame) = Some(rejection.error_frame());
        let closed = self.manager().close_with(rejection);
        if !closed {
            *lock(&self.error_frame) = None;
        }
        closed
    }

    /// When the credential this socket runs on expires (`None`: never). At that moment
    /// plus [`EndpointConfig::expiry_grace`](super::EndpointConfig::expiry_grace) the
    /// runner closes the socket with TOKEN_EXPIRED (4401, retry `after_refresh`), unless
    /// [`refresh`](Self::refresh) moved it.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::extract::ws::Message;
    /// use wsctx::axum::{MessageHandler, Session};
    /// use wsctx::Frame;
    ///
    /// struct Handler;
    /// impl MessageHandler for Handler {
    ///     async fn on_open(&self, session: &Session) {
    ///         if session.expires_at().is_none() {
    ///             session.reply(Frame::text(r#"{"type":"notice","text":"no expiry"}"#));
    ///         }
    ///     }
    ///     async fn on_message(&self, _: &Session, _: Message) {}
    /// }
    /// ```
    #[must_use]
    pub fn expires_at(&self) -> Option<SystemTime> {
        *lock(&self.expires_at)
    }

    /// Verifies `token` with the handshake's verifier, under its timeout and its cap on
    /// verifications in flight, and moves this socket's expiry to the new credential's.
    ///
    /// The new credential must name this socket's user. When it names another user the
    /// socket is closed with FORBIDDEN (4403) and FORBIDDEN is returned. Any other
    /// failure (a bad or expired token, an unavailable verifier) leaves the socket and
    /// its expiry as they were.
    ///
    /// # Errors
    ///
    /// FORBIDDEN for another user's credential (the socket is closing);
    /// the verifier's refusal (INVALID_FORMAT, VALIDATION_FAILED, TOKEN_EXPIRED,
    /// MISSING_USER_ID, ...), AUTH_UNAVAILABLE, or OVERLOADED.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::extract::ws::Message;
    /// use wsctx::axum::{MessageHandler, Session};
    /// use wsctx::{Frame, Token};
    ///
    /// /// A text frame `refresh <token>` renews the socket's credential.
    /// struct Renew;
    /// impl MessageHandler for Renew {
    ///     async fn on_message(&self, session: &Session, message: Message) {
    ///         let Message::Text(text) = message else { return };
    ///         if let Some(token) = text.as_str().strip_prefix("refresh ") {
    ///             let answer = match session.refresh(&Token::new(token)).await {
    ///                 Ok(_) => "refreshed".to_owned(),
    ///                 Err(rejection) => rejection.error_frame(),
    ///             };
    ///             session.reply(Frame::text(answer));
    ///         }
    ///     }
    /// }
    /// ```
    pub async fn refresh(&self, token: &Token) -> Result<Option<SystemTime>, Rejection> {
        let user = self.handshake.verify_capped(token).await?;
        if user.user_id() != self.context().user_id() {
            debug_event!(error_code = "FORBIDDEN", "refresh names another user");
            let rejection = Rejection::new(ErrorCode::Forbidden);
            self.close_with(&rejection);
            return Err(rejection);
        }
        let expires_at = user.expires_at();
        *lock(&self.expires_at) = expires_at;
        debug_event!("credential refreshed");
        Ok(expires_at)
    }

    /// The error frame to write before this session's close frame, once.
    pub(super) fn take_error_frame(&self) -> Option<String> {
        lock(&self.error_frame).take()
    }
}

/// What an [`Endpoint`](super::Endpoint) calls for an admitted socket. Ping, pong and
/// close frames are handled by the endpoint. Every text, binary or ping frame from the
/// client counts as activity for the idle timeout
/// ([`IsolatedManager::record_activity`]); a pong answering the server's heartbeat does
/// not.
///
/// The runner awaits each call before it reads the next frame; a call that never
/// returns holds its socket open.
///
/// # Examples
///
/// ```
/// use axum::extract::ws::Message;
/// use wsctx::Frame;
/// use wsctx::axum::{MessageHandler, Session};
///
/// struct Shout;
/// impl MessageHandler for Shout {
///     async fn on_open(&self, session: &Session) {
///         session.reply(Frame::text(r#"{"type":"hello"}"#));
///     }
///     async fn on_message(&self, session: &Session, message: Message) {
///         if let Message::Text(text) = message {
///             session.send_to_user(Frame::text(text.as_str().to_uppercase()));
///         }
///     }
/// }
/// ```
pub trait MessageHandler: Send + Sync + 'static {
    /// Called once after admission, before any frame is written to the socket.
    fn on_open(&self, session: &Session) -> impl Future<Output = ()> + Send {
        let _ = session;
        async {}
    }

    /// Called for every text or binary message, in order, until a close is requested
    /// for the socket; never after that.
    fn on_message(&self, session: &Session, message: Message) -> impl Future<Output = ()> + Send;

    /// Called once when the socket is done, before its slot is freed.
    fn on_close(&self, session: &Session) -> impl Future<Output = ()> + Send {
        let _ = session;
        async {}
    }
}
