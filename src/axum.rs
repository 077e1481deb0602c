//! The axum adapter (feature `axum`): an extractor that authenticates and validates a
//! handshake before the upgrade, [`IntoResponse`] for [`Rejection`], and an [`Endpoint`]
//! that admits the socket to a [`ManagerFactory`] and runs it.
//!
//! Two ways to refuse, chosen per route with [`RejectMode`]:
//!
//! - [`RejectMode::BeforeUpgrade`]: answer the handshake with the table's HTTP status
//!   (401, 403, 400, 409, 429, 503, 500) and the JSON error body. For non-browser
//!   clients and proxies.
//! - [`RejectMode::AfterUpgrade`]: upgrade, send the error frame, then close with the
//!   table's close code (4401, 4403, ..., 1013). Browsers cannot read the status of a
//!   refused handshake, only a close code.
//!
//! Admission to the factory happens before the upgrade in both modes, so CONNECTION_LIMIT
//! is a 429 on a `BeforeUpgrade` route; the slot is freed if the upgrade then fails.
//!
//! The example uses the `jwt` feature's verifier.
//!
#![cfg_attr(feature = "jwt", doc = "```no_run")]
#![cfg_attr(not(feature = "jwt"), doc = "```ignore")]
//! use std::net::SocketAddr;
//! use axum::{Router, extract::{State, WebSocketUpgrade}, response::Response, routing::any};
//! use wsctx::axum::{Authenticated, Endpoint, MessageHandler, RejectMode, Session};
//! use wsctx::http::Handshake;
//! use wsctx::jwt::JwtVerifier;
//! use wsctx::{Frame, Limits, ManagerFactory, Rejection};
//!
//! /// Echoes every text frame to all the sockets of the sender's user.
//! struct Echo;
//! impl MessageHandler for Echo {
//!     async fn on_message(&self, session: &Session, message: axum::extract::ws::Message) {
//!         if let axum::extract::ws::Message::Text(text) = message {
//!             session.send_to_user(Frame::text(text.as_str()));
//!         }
//!     }
//! }
//!
//! async fn ws(State(endpoint): State<Endpoint<Echo>>, auth: Authenticated, ws: WebSocketUpgrade) -> Response {
//!     endpoint.accept(ws, Ok(auth), RejectMode::BeforeUpgrade)
//! }
//!
//! async fn browser(
//!     State(endpoint): State<Endpoint<Echo>>,
//!     auth: Result<Authenticated, Rejection>,
//!     ws: WebSocketUpgrade,
//! ) -> Response {
//!     endpoint.accept(ws, auth, RejectMode::AfterUpgrade)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = JwtVerifier::hs256(std::env::var("JWT_SECRET")?)?.audience(["my-app"]);
//! let handshake = Handshake::builder(verifier).subprotocols(["wsctx.v1"]).build();
//! let endpoint = Endpoint::new(handshake, ManagerFactory::new(Limits::default()), Echo);
//! let app = Router::new()
//!     .route("/ws", any(ws))
//!     .route("/ws/browser", any(browser))
//!     .with_state(endpoint);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ::axum::body::{Body, Bytes};
use ::axum::extract::connect_info::ConnectInfo;
use ::axum::extract::ws::{self, Message, WebSocket, WebSocketUpgrade};
use ::axum::extract::{FromRef, FromRequestParts};
use ::axum::response::{IntoResponse, Response};
use ::http::request::Parts;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::mpsc;

use crate::close::CloseFrame;
use crate::context::Context;
use crate::factory::{Delivery, Frame, IsolatedManager, ManagerFactory, Outbound};
use crate::http::Handshake;
use crate::rejection::{CloseStyle, Rejection};
use crate::state::{Bound, Validated};
use crate::trace::debug_event;

/// How long a socket waits for the client's close reply after the server sent its close
/// frame, before dropping the connection.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The largest inbound message an [`Endpoint`] accepts by default: 64 KiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// How many frames [`Session::reply`] may queue for one socket.
const REPLY_QUEUE: usize = 32;

impl IntoResponse for Rejection {
    /// [`Rejection::to_http_response`], for refusing a handshake before the upgrade.
    fn into_response(self) -> Response {
        self.to_http_response().map(Body::from).into_response()
    }
}

/// The extractor: a handshake that passed extraction, verification and validation,
/// before the upgrade.
///
/// Needs a [`Handshake`] in the router state (`Handshake: FromRef<S>`; an [`Endpoint`]
/// state provides it). Its rejection is a [`Rejection`], rendered as the HTTP response of
/// the table. Take `Result<Authenticated, Rejection>` instead to handle the refusal
/// yourself, for example to refuse after the upgrade.
///
/// The peer address is read from [`ConnectInfo<SocketAddr>`] when the server was started
/// with `into_make_service_with_connect_info::<SocketAddr>()`.
///
/// # Examples
///
/// ```
/// use axum::response::IntoResponse;
/// use wsctx::axum::Authenticated;
///
/// async fn handler(auth: Authenticated) -> impl IntoResponse {
///     format!("thread {}", auth.context().thread_id())
/// }
/// # let _ = handler;
/// ```
#[derive(Debug)]
pub struct Authenticated {
    context: Context<Validated>,
    peer: Option<SocketAddr>,
}

impl Authenticated {
    /// The validated context.
    ///
    /// # Examples
    ///
    /// ```
    /// async fn handler(auth: wsctx::axum::Authenticated) -> String {
    ///     auth.context().thread_id().to_string()
    /// }
    /// # let _ = handler;
    /// ```
    pub fn context(&self) -> &Context<Validated> {
        &self.context
    }

    /// The validated context, by value.
    ///
    /// # Examples
    ///
    /// ```
    /// async fn handler(auth: wsctx::axum::Authenticated) {
    ///     let ctx = auth.into_context();
    ///     assert!(!ctx.run_id().as_str().is_empty());
    /// }
    /// # let _ = handler;
    /// ```
    pub fn into_context(self) -> Context<Validated> {
        self.context
    }

    /// The client's address, when the server provides [`ConnectInfo`].
    ///
    /// # Examples
    ///
    /// ```
    /// async fn handler(auth: wsctx::axum::Authenticated) -> String {
    ///     auth.peer_addr().map_or_else(|| "unknown".to_owned(), |peer| peer.to_string())
    /// }
    /// # let _ = handler;
    /// ```
    #[must_use]
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    Handshake: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let handshake = Handshake::from_ref(state);
        let context = handshake.authenticate(&parts.headers, &parts.uri).await?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr);
        Ok(Self { context, peer })
    }
}

/// Where an [`Endpoint`] refuses a handshake; see the [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectMode {
    /// Answer the handshake with the table's HTTP status.
    BeforeUpgrade,
    /// Upgrade, send the error frame, then close with the table's close code.
    AfterUpgrade,
}

/// One admitted socket, as a [`MessageHandler`] sees it: the [`IsolatedManager`] (which
/// sends only to the sockets of its own user) and a reply channel to this socket alone.
pub struct Session {
    manager: IsolatedManager,
    replies: mpsc::Sender<Frame>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("manager", &self.manager)
            .finish_non_exhaustive()
    }
}

impl Session {
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
        self.manager.context()
    }

    /// The socket's manager.
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
    ///         session.manager().record_activity();
    /// #       let _ = message;
    ///     }
    /// }
    /// ```
    pub fn manager(&self) -> &IsolatedManager {
        &self.manager
    }

    /// Sends `frame` to every socket of this socket's user (this one included) and to
    /// nobody else. See [`IsolatedManager::send_to_user`].
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
            Frame::Close(close) => self.manager.close(&close),
            frame => !self.manager.is_closing() && self.replies.try_send(frame).is_ok(),
        }
    }

    /// Closes this socket with the close frame of `rejection`.
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
    ///         if message == Message::text("logout") {
    ///             session.close_with(&wsctx::Rejection::new(wsctx::ErrorCode::Forbidden));
    ///         }
    ///     }
    /// }
    /// ```
    pub fn close_with(&self, rejection: &Rejection) -> bool {
        self.manager.close_with(rejection)
    }
}

/// What an [`Endpoint`] calls for an admitted socket. Ping, pong and close frames are
/// handled by the endpoint; `record_activity` is called for every inbound frame before
/// the handler sees it.
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

    /// Called for every text or binary message, in order.
    fn on_message(&self, session: &Session, message: Message) -> impl Future<Output = ()> + Send;

    /// Called once when the socket's reader ends, before its slot is freed.
    fn on_close(&self, session: &Session) -> impl Future<Output = ()> + Send {
        let _ = session;
        async {}
    }
}

/// A WebSocket route: a [`Handshake`], a [`ManagerFactory`] and a [`MessageHandler`].
/// A cheap `Clone` handle; use it as (or inside) the router state. `Handshake` and
/// `ManagerFactory` implement `FromRef<Endpoint<H>>`.
///
/// See the [module documentation](self) for a complete router.
pub struct Endpoint<H> {
    handshake: Handshake,
    factory: ManagerFactory,
    handler: Arc<H>,
    max_message_bytes: usize,
}

impl<H> Clone for Endpoint<H> {
    fn clone(&self) -> Self {
        Self {
            handshake: self.handshake.clone(),
            factory: self.factory.clone(),
            handler: Arc::clone(&self.handler),
            max_message_bytes: self.max_message_bytes,
        }
    }
}

impl<H> fmt::Debug for Endpoint<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("handshake", &self.handshake)
            .field("factory", &self.factory)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish_non_exhaustive()
    }
}

impl<H> FromRef<Endpoint<H>> for Handshake {
    fn from_ref(endpoint: &Endpoint<H>) -> Self {
        endpoint.handshake.clone()
    }
}

impl<H> FromRef<Endpoint<H>> for ManagerFactory {
    fn from_ref(endpoint: &Endpoint<H>) -> Self {
        endpoint.factory.clone()
    }
}

impl<H: MessageHandler> Endpoint<H> {
    /// An endpoint; inbound messages are limited to [`DEFAULT_MAX_MESSAGE_BYTES`].
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
    /// let handshake = wsctx::http::Handshake::builder(deny).subprotocols(["wsctx.v1"]).build();
    /// let endpoint = Endpoint::new(handshake, wsctx::ManagerFactory::default(), Quiet);
    /// assert_eq!(endpoint.factory().limits(), wsctx::Limits::default());
    /// ```
    pub fn new(handshake: Handshake, factory: ManagerFactory, handler: H) -> Self {
        Self {
            handshake,
            factory,
            handler: Arc::new(handler),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// The largest inbound message (and frame) accepted; a larger one ends the socket.
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
    /// let handshake = wsctx::http::Handshake::builder(deny).subprotocols(["wsctx.v1"]).build();
    /// let endpoint = Endpoint::new(handshake, wsctx::ManagerFactory::default(), Quiet);
    /// let endpoint = endpoint.max_message_bytes(16 * 1024);
    /// # let _ = endpoint;
    /// ```
    #[must_use]
    pub fn max_message_bytes(mut self, max: usize) -> Self {
        self.max_message_bytes = max;
        self
    }

    /// The handshake configuration.
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
    /// let handshake = wsctx::http::Handshake::builder(deny).subprotocols(["wsctx.v1"]).build();
    /// let endpoint = Endpoint::new(handshake, wsctx::ManagerFactory::default(), Quiet);
    /// assert_eq!(endpoint.handshake().subprotocols().next(), Some("wsctx.v1"));
    /// ```
    #[must_use]
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    /// The factory sockets are admitted to.
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
    /// let handshake = wsctx::http::Handshake::builder(deny).subprotocols(["wsctx.v1"]).build();
    /// let endpoint = Endpoint::new(handshake, wsctx::ManagerFactory::default(), Quiet);
    /// assert_eq!(endpoint.factory().metrics().active, 0);
    /// ```
    #[must_use]
    pub fn factory(&self) -> &ManagerFactory {
        &self.factory
    }

    /// Binds the context to the peer and admits it to the factory.
    ///
    /// # Errors
    ///
    /// INTERNAL_ERROR when the id generator fails; CONNECTION_LIMIT, OVERLOADED,
    /// DUPLICATE_CLIENT or SHUTTING_DOWN from the factory.
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
    /// let handshake = wsctx::http::Handshake::builder(deny).subprotocols(["wsctx.v1"]).build();
    /// let endpoint = Endpoint::new(handshake, wsctx::ManagerFactory::default(), Quiet);
    /// use wsctx::{Context, ErrorCode, Policy, UuidGenerator};
    ///
    /// let validated = || Context::builder().user_id("user-8f14").websocket_client_id("tab-1").build()
    ///     .validate(&Policy::default(), &UuidGenerator::new());
    /// let (_manager, _outbound) = endpoint.admit(validated()?, None)?;
    /// let again = endpoint.admit(validated()?, None).unwrap_err();
    /// assert_eq!(again.code(), ErrorCode::DuplicateClient);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn admit(
        &self,
        context: Context<Validated>,
        peer: Option<SocketAddr>,
    ) -> Result<(IsolatedManager, Outbound), Rejection> {
        let bound = self.handshake.bind(context, peer)?;
        let admitted = self.factory.create(bound).map_err(|error| {
            debug_event!(error_code = error.code().as_str(), "admission refused");
            Rejection::from(error)
        })?;
        Ok(admitted)
    }

    /// Finishes a handshake: admits an authenticated one and upgrades, or refuses in
    /// `mode`. The response selects one of the handshake's subprotocols when the client
    /// offered it (never the `jwt.` entry).
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::extract::{State, WebSocketUpgrade};
    /// use axum::response::Response;
    /// use wsctx::Rejection;
    /// use wsctx::axum::{Authenticated, Endpoint, MessageHandler, RejectMode};
    ///
    /// async fn browser<H: MessageHandler>(
    ///     State(endpoint): State<Endpoint<H>>,
    ///     auth: Result<Authenticated, Rejection>,
    ///     ws: WebSocketUpgrade,
    /// ) -> Response {
    ///     endpoint.accept(ws, auth, RejectMode::AfterUpgrade)
    /// }
    /// ```
    pub fn accept(
        &self,
        ws: WebSocketUpgrade,
        auth: Result<Authenticated, Rejection>,
        mode: RejectMode,
    ) -> Response {
        let admitted = auth.and_then(|auth| self.admit(auth.context, auth.peer));
        if let (Err(rejection), RejectMode::BeforeUpgrade) = (&admitted, mode) {
            return rejection.clone().into_response();
        }
        let protocols: Vec<Cow<'static, str>> = self
            .handshake
            .subprotocols()
            .map(|p| Cow::Owned(p.to_owned()))
            .collect();
        let ws = ws
            .protocols(protocols)
            .max_message_size(self.max_message_bytes)
            .max_frame_size(self.max_message_bytes);
        match admitted {
            Ok((manager, outbound)) => {
                let endpoint = self.clone();
                ws.on_upgrade(move |socket| async move {
                    endpoint.serve(socket, manager, outbound).await;
                })
            }
            Err(rejection) => {
                let style = self.handshake.close_style();
                ws.on_upgrade(move |socket| async move {
                    reject_socket(socket, &rejection, style).await;
                })
            }
        }
    }

    /// Runs an admitted socket until it closes: a writer task forwards the
    /// [`Outbound`] and the session's replies to the socket (text, binary, then the
    /// close frame); this task reads, calls [`IsolatedManager::record_activity`] for
    /// every inbound frame and hands text and binary messages to the handler. When the
    /// server closes the socket (disconnect, shutdown, idle, slow consumer), the client
    /// gets [`CLOSE_GRACE`] to answer the close before the connection is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use axum::extract::{State, WebSocketUpgrade};
    /// use axum::response::{IntoResponse, Response};
    /// use wsctx::axum::{Authenticated, Endpoint, MessageHandler};
    ///
    /// /// What `accept` does for an admitted handshake, spelled out.
    /// async fn handler<H: MessageHandler>(
    ///     State(endpoint): State<Endpoint<H>>,
    ///     auth: Authenticated,
    ///     ws: WebSocketUpgrade,
    /// ) -> Response {
    ///     let peer = auth.peer_addr();
    ///     match endpoint.admit(auth.into_context(), peer) {
    ///         Ok((manager, outbound)) => ws.on_upgrade(move |socket| async move {
    ///             endpoint.serve(socket, manager, outbound).await;
    ///         }),
    ///         Err(rejection) => rejection.into_response(),
    ///     }
    /// }
    /// ```
    pub async fn serve(&self, socket: WebSocket, manager: IsolatedManager, outbound: Outbound) {
        let (replies, replies_rx) = mpsc::channel(REPLY_QUEUE);
        let session = Session { manager, replies };
        self.handler.on_open(&session).await;
        let (sink, mut stream) = socket.split();
        let mut writer = tokio::spawn(write_frames(sink, outbound, replies_rx));
        let mut writer_done = false;
        loop {
            let next = if writer_done {
                // Our close frame is out: only the client's close reply is awaited.
                match tokio::time::timeout(CLOSE_GRACE, stream.next()).await {
                    Ok(next) => next,
                    Err(_elapsed) => break,
                }
            } else {
                tokio::select! {
                    next = stream.next() => next,
                    _ = &mut writer => {
                        writer_done = true;
                        continue;
                    }
                }
            };
            let Some(Ok(message)) = next else { break };
            session.manager.record_activity();
            match message {
                Message::Text(_) | Message::Binary(_) if !writer_done => {
                    self.handler.on_message(&session, message).await;
                }
                // Ping and pong are answered by tungstenite; after a close (either way)
                // keep reading so the close handshake completes, until the stream ends.
                _ => {}
            }
        }
        self.handler.on_close(&session).await;
        // Frees the slot; the outbound yields its close frame (1000 unless another close
        // came first), which ends the writer.
        drop(session);
        if !writer_done
            && tokio::time::timeout(CLOSE_GRACE, &mut writer)
                .await
                .is_err()
        {
            writer.abort();
        }
        debug_event!("socket finished");
    }
}

/// Forwards frames to the socket until the close frame has been sent.
async fn write_frames<S>(mut sink: S, mut outbound: Outbound, mut replies: mpsc::Receiver<Frame>)
where
    S: futures_util::Sink<Message> + Unpin,
{
    loop {
        let frame = tokio::select! {
            biased;
            Some(frame) = replies.recv() => frame,
            frame = outbound.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
        };
        let last = frame.is_close();
        if sink.send(to_message(frame)).await.is_err() || last {
            break;
        }
    }
    let _ = sink.close().await;
}

fn to_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(text) => Message::Text(text.as_ref().into()),
        Frame::Binary(bytes) => Message::Binary(Bytes::copy_from_slice(&bytes)),
        Frame::Close(close) => close_message(&close),
    }
}

fn close_message(close: &CloseFrame) -> Message {
    Message::Close(Some(ws::CloseFrame {
        code: close.code.as_u16(),
        reason: close.reason.as_str().into(),
    }))
}

/// Refuses an upgraded socket: sends [`Rejection::error_frame`], then the close frame
/// in `style`, and waits up to [`CLOSE_GRACE`] for the client's close reply.
///
/// # Examples
///
/// ```
/// use axum::{extract::WebSocketUpgrade, response::Response};
/// use wsctx::{CloseStyle, ErrorCode, Rejection};
///
/// async fn closed_for_maintenance(ws: WebSocketUpgrade) -> Response {
///     ws.on_upgrade(|socket| async move {
///         let rejection = Rejection::new(ErrorCode::ShuttingDown);
///         wsctx::axum::reject_socket(socket, &rejection, CloseStyle::Detailed).await;
///     })
/// }
/// # let _ = closed_for_maintenance;
/// ```
pub async fn reject_socket(mut socket: WebSocket, rejection: &Rejection, style: CloseStyle) {
    debug_event!(
        error_code = rejection.code().as_str(),
        "socket refused after upgrade"
    );
    let frame = Message::Text(rejection.error_frame().into());
    let close = close_message(&rejection.close_frame(style));
    if socket.send(frame).await.is_err() || socket.send(close).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
}
