//! The axum adapter (feature `axum`): an extractor that authenticates and validates a
//! handshake before the upgrade, [`IntoResponse`] for [`Rejection`], an [`Endpoint`]
//! that admits the socket to a [`ManagerFactory`](crate::ManagerFactory) and runs it, and
//! [`serve`], which serves a router with the pre-upgrade limits `axum::serve` lacks.
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
//! # What the runner guarantees
//!
//! Each admitted socket runs in one task (see [`Endpoint::serve`] and
//! [`EndpointConfig`]):
//!
//! - once a close is requested (slow consumer, idle, disconnect, shutdown, heartbeat,
//!   credential expiry), the handler gets no further message from that socket, the
//!   close frame is written within `write_timeout`, and the connection is dropped
//!   `close_grace` after the request at the latest, whatever the peer does;
//! - a protocol violation closes with PROTOCOL_ERROR (1002), INVALID_PAYLOAD (1007) or
//!   MESSAGE_TOO_BIG (1009);
//! - the server pings every `ping_interval`; a peer silent for `pong_timeout` after a
//!   ping is closed with HEARTBEAT_TIMEOUT (4408);
//! - a socket lives no longer than its credential ([`Session::expires_at`]): at expiry
//!   it gets the TOKEN_EXPIRED error frame and 4401, unless [`Session::refresh`] moved it;
//! - tungstenite's buffers are small (a few KiB per idle socket) and bounded.
//!
//! # Serving with pre-upgrade limits
//!
//! `axum::serve` reads request heads without a timeout and accepts without limit, so
//! idle TCP connections can exhaust file descriptors before any handshake. Serve with
//! [`serve`] instead: hyper's HTTP/1 server with a header-read timeout
//! ([`ServeConfig::header_read_timeout`], 10 s) and a cap on connections that have not
//! upgraded ([`ServeConfig::max_pending`]). Cap verifications in flight with
//! [`HandshakeBuilder::max_in_flight`](crate::http::HandshakeBuilder::max_in_flight)
//! (over it: OVERLOADED, 503).
//!
//! The example uses the `jwt` feature's verifier.
//!
#![cfg_attr(feature = "jwt", doc = "```no_run")]
#![cfg_attr(not(feature = "jwt"), doc = "```ignore")]
//! use std::time::Duration;
//! use axum::{Router, extract::{State, WebSocketUpgrade}, response::Response, routing::any};
//! use wsctx::axum::{Authenticated, Endpoint, EndpointConfig, MessageHandler, RejectMode, ServeConfig, Session};
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
//! let handshake = Handshake::builder(verifier)
//!     .subprotocols(["wsctx.v1"])
//!     .max_in_flight(256) // a 257th concurrent verification is a 503 OVERLOADED
//!     .build();
//! let factory = ManagerFactory::new(Limits::default());
//! let endpoint = Endpoint::new(handshake, factory.clone(), Echo)
//!     .with_config(EndpointConfig { ping_interval: Some(Duration::from_secs(20)), ..EndpointConfig::default() });
//! let app = Router::new()
//!     .route("/ws", any(ws))
//!     .route("/ws/browser", any(browser))
//!     .with_state(endpoint);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let limits = ServeConfig { header_read_timeout: Duration::from_secs(10), max_pending: 1024 };
//! let ctrl_c = async { let _ = tokio::signal::ctrl_c().await; };
//! wsctx::axum::serve(listener, app, limits, ctrl_c).await?;
//! factory.shutdown(); // every socket gets 1012 and is gone within its close grace
//! # Ok(())
//! # }
//! ```

mod config;
mod connection;
mod endpoint;
mod serve;
mod session;

use std::net::SocketAddr;
use std::time::SystemTime;

use ::axum::body::Body;
use ::axum::extract::connect_info::ConnectInfo;
use ::axum::extract::ws::WebSocket;
use ::axum::extract::{FromRef, FromRequestParts};
use ::axum::response::{IntoResponse, Response};
use ::http::request::Parts;

pub use config::EndpointConfig;
pub use endpoint::Endpoint;
pub use serve::{ServeConfig, serve};
pub use session::{Admission, MessageHandler, Session};

use crate::context::Context;
use crate::http::{Handshake, query_resume};
use crate::rejection::{CloseStyle, Rejection};
use crate::resume::ResumePoint;
use crate::state::Validated;

impl IntoResponse for Rejection {
    /// [`Rejection::to_http_response`], for refusing a handshake before the upgrade.
    fn into_response(self) -> Response {
        self.to_http_response().map(Body::from).into_response()
    }
}

/// The extractor: a handshake that passed extraction, verification and validation,
/// before the upgrade, with the client's `resume` point if it sent one (a malformed one
/// is INVALID_CONTEXT).
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
    expires_at: Option<SystemTime>,
    resume: Option<ResumePoint>,
}

impl Authenticated {
    /// A handshake you authenticated yourself: a validated context, the peer's address,
    /// and when the credential expires. The extractor builds it for you.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::axum::Authenticated;
    /// use wsctx::{Context, Policy, UuidGenerator};
    ///
    /// let ctx = Context::builder().user_id("user-8f14").build().validate(&Policy::default(), &UuidGenerator::new())?;
    /// let auth = Authenticated::new(ctx, Some("127.0.0.1:50000".parse()?), None);
    /// assert_eq!(auth.context().user_id().as_str(), "user-8f14");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn new(
        context: Context<Validated>,
        peer: Option<SocketAddr>,
        expires_at: Option<SystemTime>,
    ) -> Self {
        Self {
            context,
            peer,
            expires_at,
            resume: None,
        }
    }

    /// The same handshake, resuming from `point`: [`Endpoint::admit`] then replays what
    /// the client missed (see
    /// [`ManagerFactory::create_resuming`](crate::ManagerFactory::create_resuming)). The
    /// extractor sets it from the `resume` query parameter.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::axum::Authenticated;
    /// use wsctx::{Context, Policy, ResumePoint, UuidGenerator};
    ///
    /// let ctx = Context::builder().user_id("user-8f14").build().validate(&Policy::default(), &UuidGenerator::new())?;
    /// let point: ResumePoint = "00c0ffee00c0ffee.42".parse()?;
    /// let auth = Authenticated::new(ctx, None, None).resuming(Some(point));
    /// assert_eq!(auth.resume(), Some(point));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn resuming(self, point: Option<ResumePoint>) -> Self {
        Self {
            resume: point,
            ..self
        }
    }

    /// Where the client asked to resume its user's event stream (the `resume` query
    /// parameter), if it did.
    ///
    /// # Examples
    ///
    /// ```
    /// async fn handler(auth: wsctx::axum::Authenticated) -> String {
    ///     auth.resume().map_or_else(|| "fresh".to_owned(), |point| point.to_string())
    /// }
    /// # let _ = handler;
    /// ```
    #[must_use]
    pub fn resume(&self) -> Option<ResumePoint> {
        self.resume
    }

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

    /// When the verified credential expires (`None`: it does not); the runner closes
    /// the socket then.
    ///
    /// # Examples
    ///
    /// ```
    /// async fn handler(auth: wsctx::axum::Authenticated) -> String {
    ///     format!("{:?}", auth.expires_at())
    /// }
    /// # let _ = handler;
    /// ```
    #[must_use]
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
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
        let (context, user) = handshake
            .authenticate_user(&parts.headers, &parts.uri)
            .await?;
        // Read after the credential, like the other query fields.
        let resume = query_resume(&parts.uri).map_err(|r| handshake.refused(r))?;
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr);
        Ok(Self::new(context, peer, user.expires_at()).resuming(resume))
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

/// Refuses an upgraded socket: sends [`Rejection::error_frame`], then the close frame
/// in `style`, and waits for the client's close reply, with the timeouts of
/// [`EndpointConfig::DEFAULT`] (each write within `write_timeout`, all of it within
/// `close_grace`).
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
pub async fn reject_socket(socket: WebSocket, rejection: &Rejection, style: CloseStyle) {
    connection::reject(socket, rejection, style, &EndpointConfig::DEFAULT).await;
}
