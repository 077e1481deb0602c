//! [`Endpoint`]: a route's handshake, factory, handler and socket configuration.

use std::borrow::Cow;
use std::sync::Arc;

use ::axum::extract::FromRef;
use ::axum::extract::ws::{WebSocket, WebSocketUpgrade};
use ::axum::response::{IntoResponse, Response};

use super::config::EndpointConfig;
use super::connection::{Connection, reject};
use super::session::{Admission, Held, MessageHandler};
use super::{Authenticated, RejectMode};
#[cfg(feature = "redis")]
use crate::cluster::ClusterFactory;
use crate::factory::ManagerFactory;
use crate::http::Handshake;
use crate::rejection::Rejection;
use crate::trace::debug_event;

/// A WebSocket route: a [`Handshake`], a [`ManagerFactory`], a [`MessageHandler`] and an
/// [`EndpointConfig`]. A cheap `Clone` handle; use it as (or inside) the router state.
/// `Handshake` and `ManagerFactory` implement `FromRef<Endpoint<H>>`.
///
/// See the [module documentation](super) for a complete router.
pub struct Endpoint<H> {
    handshake: Handshake,
    factory: ManagerFactory,
    /// Cluster mode: admissions also take a lease and subscribe (feature `redis`).
    #[cfg(feature = "redis")]
    cluster: Option<ClusterFactory>,
    handler: Arc<H>,
    config: EndpointConfig,
}

impl<H> Clone for Endpoint<H> {
    fn clone(&self) -> Self {
        Self {
            handshake: self.handshake.clone(),
            factory: self.factory.clone(),
            #[cfg(feature = "redis")]
            cluster: self.cluster.clone(),
            handler: Arc::clone(&self.handler),
            config: self.config,
        }
    }
}

debug_fields!(Endpoint<H> { handshake, factory, config, .. });

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
    /// An endpoint with [`EndpointConfig::default`].
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
            #[cfg(feature = "redis")]
            cluster: None,
            handler: Arc::new(handler),
            config: EndpointConfig::DEFAULT,
        }
    }

    /// An endpoint in cluster mode (feature `redis`): sockets are admitted through
    /// `cluster` ([`ClusterFactory::admit`], `admit_resuming`, `admit_with_position`),
    /// so per-user limits and duplicate client ids count every node, and
    /// [`Session::send_to_user`](super::Session::send_to_user) reaches the user's
    /// sockets on every node. [`factory`](Self::factory) is the cluster's local factory.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::axum::{Endpoint, MessageHandler, Session};
    /// # struct Quiet;
    /// # impl MessageHandler for Quiet {
    /// #     async fn on_message(&self, _: &Session, _: axum::extract::ws::Message) {}
    /// # }
    /// # async fn run(handshake: wsctx::http::Handshake, cluster: wsctx::cluster::ClusterFactory) {
    /// let endpoint = Endpoint::clustered(handshake, cluster, Quiet);
    /// assert!(endpoint.cluster().is_some());
    /// # }
    /// ```
    #[cfg(feature = "redis")]
    pub fn clustered(handshake: Handshake, cluster: ClusterFactory, handler: H) -> Self {
        let mut endpoint = Self::new(handshake, cluster.local().clone(), handler);
        endpoint.cluster = Some(cluster);
        endpoint
    }

    /// The cluster this endpoint admits through, when it is in cluster mode.
    ///
    /// # Examples
    ///
    /// See [`clustered`](Self::clustered).
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn cluster(&self) -> Option<&ClusterFactory> {
        self.cluster.as_ref()
    }

    /// The same endpoint with `config` (limits, timeouts, buffer sizes).
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
    /// use wsctx::axum::EndpointConfig;
    ///
    /// let endpoint = Endpoint::new(handshake, wsctx::ManagerFactory::default(), Quiet)
    ///     .with_config(EndpointConfig { max_message_bytes: 16 * 1024, ..EndpointConfig::default() });
    /// assert_eq!(endpoint.config().max_message_bytes, 16 * 1024);
    /// ```
    #[must_use]
    pub fn with_config(mut self, config: EndpointConfig) -> Self {
        self.config = config.normalized();
        self
    }

    /// The socket configuration.
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
    /// let endpoint = Endpoint::new(handshake, wsctx::ManagerFactory::default(), Quiet);
    /// assert_eq!(endpoint.config(), &wsctx::axum::EndpointConfig::default());
    /// ```
    #[must_use]
    pub fn config(&self) -> &EndpointConfig {
        &self.config
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
    /// let handshake = wsctx::http::Handshake::builder(deny).build();
    /// let endpoint = Endpoint::new(handshake, wsctx::ManagerFactory::default(), Quiet);
    /// assert_eq!(endpoint.factory().metrics().active, 0);
    /// ```
    #[must_use]
    pub fn factory(&self) -> &ManagerFactory {
        &self.factory
    }

    /// Binds the authenticated context to its peer and admits it (in cluster mode
    /// through the [`ClusterFactory`](crate::cluster::ClusterFactory), feature `redis`,
    /// which also waits for Redis): with
    /// [`ManagerFactory::create_resuming`] when the client sent a `resume` point (the
    /// events it missed are queued first), else with
    /// [`ManagerFactory::create_with_position`] when
    /// [`EndpointConfig::send_position`] is set, else with [`ManagerFactory::create`].
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
    /// use wsctx::axum::Authenticated;
    /// use wsctx::{Context, ErrorCode, Policy, UuidGenerator};
    ///
    /// let tab = || -> Result<Authenticated, wsctx::Rejection> {
    ///     let ctx = Context::builder().user_id("user-8f14").websocket_client_id("tab-1").build()
    ///         .validate(&Policy::default(), &UuidGenerator::new())?;
    ///     Ok(Authenticated::new(ctx, None, None))
    /// };
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let _admission = endpoint.admit(tab()?).await?;
    /// let again = endpoint.admit(tab()?).await.unwrap_err();
    /// assert_eq!(again.code(), ErrorCode::DuplicateClient);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg_attr(
        not(feature = "redis"),
        allow(clippy::unused_async, reason = "cluster mode waits for Redis")
    )]
    pub async fn admit(&self, auth: Authenticated) -> Result<Admission, Rejection> {
        let expires_at = auth.expires_at();
        let peer = auth.peer_addr();
        let resume = auth.resume();
        let bound = self.handshake.bind(auth.into_context(), peer)?;
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            let admitted = match resume {
                Some(point) => cluster.admit_resuming(bound, point).await,
                None if self.config.send_position => cluster.admit_with_position(bound).await,
                None => cluster.admit(bound).await,
            };
            let (manager, outbound) = admitted.map_err(|error| {
                debug_event!(error_code = error.code().as_str(), "admission refused");
                Rejection::from(error)
            })?;
            return Ok(Admission::new(Held::Cluster(manager), outbound, expires_at));
        }
        let admitted = match resume {
            Some(point) => self.factory.create_resuming(bound, point),
            None if self.config.send_position => self.factory.create_with_position(bound),
            None => self.factory.create(bound),
        };
        let (manager, outbound) = admitted.map_err(|error| {
            debug_event!(error_code = error.code().as_str(), "admission refused");
            Rejection::from(error)
        })?;
        Ok(Admission::new(Held::Local(manager), outbound, expires_at))
    }

    /// Applies this endpoint's subprotocols, message limit and buffer sizes to an
    /// upgrade. [`accept`](Self::accept) does it; call it when you upgrade yourself.
    ///
    /// # Examples
    ///
    /// See [`serve`](Self::serve).
    pub fn configure(&self, ws: WebSocketUpgrade) -> WebSocketUpgrade {
        let protocols: Vec<Cow<'static, str>> = self
            .handshake
            .subprotocols()
            .map(|p| Cow::Owned(p.to_owned()))
            .collect();
        let config = &self.config;
        ws.protocols(protocols)
            .max_message_size(config.max_message_bytes)
            .max_frame_size(config.max_message_bytes)
            .read_buffer_size(config.read_buffer_size)
            .write_buffer_size(config.write_buffer_size)
            .max_write_buffer_size(config.max_write_buffer_size)
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
    ///     endpoint.accept(ws, auth, RejectMode::AfterUpgrade).await
    /// }
    /// ```
    pub async fn accept(
        &self,
        ws: WebSocketUpgrade,
        auth: Result<Authenticated, Rejection>,
        mode: RejectMode,
    ) -> Response {
        let admitted = match auth {
            Ok(auth) => self.admit(auth).await,
            Err(rejection) => Err(rejection),
        };
        if let (Err(rejection), RejectMode::BeforeUpgrade) = (&admitted, mode) {
            return rejection.clone().into_response();
        }
        let ws = self.configure(ws);
        match admitted {
            Ok(admission) => {
                let endpoint = self.clone();
                ws.on_upgrade(move |socket| async move {
                    endpoint.serve(socket, admission).await;
                })
            }
            Err(rejection) => {
                let style = self.handshake.close_style();
                let config = self.config;
                ws.on_upgrade(move |socket| async move {
                    reject(socket, &rejection, style, &config).await;
                })
            }
        }
    }

    /// Runs an admitted socket until it is done, in one task: it writes the session's
    /// replies and the user's outbound frames, hands inbound text and binary messages to
    /// the handler, pings, and closes the socket when a close is requested (disconnect,
    /// shutdown, idle, slow consumer, heartbeat, credential expiry, protocol violation).
    /// Every write is bounded by [`EndpointConfig::write_timeout`], and a closing socket
    /// is dropped at [`EndpointConfig::close_grace`] after the request at the latest.
    ///
    /// Upgrade with [`configure`](Self::configure) so that the message limit and buffer
    /// sizes apply.
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
    ///     match endpoint.admit(auth).await {
    ///         Ok(admission) => endpoint.configure(ws).on_upgrade(move |socket| async move {
    ///             endpoint.serve(socket, admission).await;
    ///         }),
    ///         Err(rejection) => rejection.into_response(),
    ///     }
    /// }
    /// ```
    pub async fn serve(&self, socket: WebSocket, admission: Admission) {
        let handler = Arc::clone(&self.handler);
        let handshake = self.handshake.clone();
        Connection::new(socket, admission, handshake, handler, self.config)
            .run()
            .await;
    }
}
