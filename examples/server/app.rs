//! The example server's application: routes, the chat handler, metrics and graceful
//! shutdown. `main.rs` runs it; the end-to-end tests include this file and start it on
//! an ephemeral port.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::ws::Message;
use axum::extract::{FromRef, State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use tokio::net::TcpListener;
use wsctx::axum::{Authenticated, CLOSE_GRACE, Endpoint, MessageHandler, RejectMode, Session};
use wsctx::http::{ExtractConfig, Handshake, Origins};
use wsctx::jwt::JwtVerifier;
use wsctx::{
    ErrorCode, Frame, IdGenerator, Limits, ManagerFactory, Policy, Rejection, TokenVerifier,
    UuidGenerator,
};

/// The audience every token for this server must name.
pub(crate) const AUDIENCE: &str = "wsctx";
/// The issuer every token for this server must name.
pub(crate) const ISSUER: &str = "wsctx-demo";
/// The subprotocol the server speaks; browsers offer it next to `jwt.<token>`.
pub(crate) const SUBPROTOCOL: &str = "wsctx.v1";

/// What the server can be configured with.
#[derive(Clone)]
pub(crate) struct Options {
    /// Sockets per user and in all, queue length, idle timeout.
    pub(crate) limits: Limits,
    /// How long the verifier may take.
    pub(crate) verify_timeout: Duration,
    /// Whether the `token` query parameter is read (off in the example binary).
    pub(crate) allow_query_token: bool,
    /// The id generator (tests use a failing one to reach INTERNAL_ERROR).
    pub(crate) ids: Option<Arc<dyn IdGenerator>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            verify_timeout: Duration::from_secs(5),
            allow_query_token: false,
            ids: None,
        }
    }
}

/// The JWT verifier for `secret`: HS256, audience [`AUDIENCE`], issuer [`ISSUER`].
pub(crate) fn verifier(secret: &[u8]) -> Result<JwtVerifier, wsctx::jwt::JwtKeyError> {
    Ok(JwtVerifier::hs256(secret)?
        .audience([AUDIENCE])
        .issuer([ISSUER]))
}

/// A token for `sub`, valid for `ttl`, signed with `secret`.
pub(crate) fn mint_token(
    secret: &[u8],
    sub: &str,
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = serde_json::json!({
        "sub": sub,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now,
        "exp": now + ttl.as_secs(),
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
}

/// Delivers every text frame to all the sockets of the sender's user.
#[derive(Debug, Default)]
pub(crate) struct Chat;

impl MessageHandler for Chat {
    async fn on_open(&self, session: &Session) {
        let ctx = session.context();
        let welcome = serde_json::json!({
            "type": "welcome",
            "client_id": ctx.websocket_client_id().as_str(),
            "thread_id": ctx.thread_id().as_str(),
            "run_id": ctx.run_id().as_str(),
            "request_id": ctx.request_id().as_str(),
        });
        session.reply(Frame::text(welcome.to_string()));
    }

    async fn on_message(&self, session: &Session, message: Message) {
        if let Message::Text(text) = message {
            let frame = serde_json::json!({
                "type": "message",
                "from": session.context().websocket_client_id().as_str(),
                "text": text.as_str(),
            });
            session.send_to_user(Frame::text(frame.to_string()));
        }
    }
}

/// Handshake refusals by error code (the factory counts its own).
#[derive(Debug, Default)]
struct Refusals([AtomicU64; ErrorCode::COUNT]);

impl Refusals {
    fn count(&self, code: ErrorCode) {
        self.0[code.index()].fetch_add(1, Ordering::Relaxed);
    }
}

/// The router state.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    endpoint: Endpoint<Chat>,
    refusals: Arc<Refusals>,
}

impl FromRef<AppState> for Handshake {
    fn from_ref(state: &AppState) -> Self {
        state.endpoint.handshake().clone()
    }
}

/// The server: its router and the factory behind it.
#[derive(Debug)]
pub(crate) struct App {
    /// Serve it with `into_make_service_with_connect_info::<SocketAddr>()`.
    pub(crate) router: Router,
    /// For shutdown and metrics.
    pub(crate) factory: ManagerFactory,
}

/// Builds the server around any verifier (the binary uses [`verifier`]; tests also use
/// verifiers that fail or hang).
pub(crate) fn app(verifier: impl TokenVerifier + 'static, options: &Options) -> App {
    let ids = options
        .ids
        .clone()
        .unwrap_or_else(|| Arc::new(UuidGenerator::new()));
    let handshake = Handshake::builder(verifier)
        .policy(Policy::default())
        .id_generator(ids)
        .verify_timeout(options.verify_timeout)
        .extract(ExtractConfig::default().allow_query_token(options.allow_query_token))
        .subprotocols([SUBPROTOCOL])
        .origins(Origins::SameHost)
        .build();
    let factory = ManagerFactory::new(options.limits);
    let state = AppState {
        endpoint: Endpoint::new(handshake, factory.clone(), Chat),
        refusals: Arc::default(),
    };
    let router = Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/ws", any(ws::<false>))
        .route("/ws/browser", any(ws::<true>))
        .with_state(state);
    App { router, factory }
}

async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
}

async fn healthz(State(state): State<AppState>) -> Response {
    if state.endpoint.factory().is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        "ok\n".into_response()
    }
}

/// The WebSocket routes: `/ws` (`BROWSER = false`) refuses before the upgrade with the
/// HTTP status of the table; `/ws/browser` upgrades, then refuses with the error frame
/// and the close code (browsers cannot read a refused handshake's status).
/// `WebSocketUpgrade` comes first so that a request that is not a WebSocket handshake is
/// refused before any token is verified.
async fn ws<const BROWSER: bool>(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    auth: Result<Authenticated, Rejection>,
) -> Response {
    if let Err(rejection) = &auth {
        state.refusals.count(rejection.code());
    }
    let mode = if BROWSER {
        RejectMode::AfterUpgrade
    } else {
        RejectMode::BeforeUpgrade
    };
    state.endpoint.accept(ws, auth, mode)
}

/// Prometheus text format. Labels are error codes only; no user id appears.
async fn metrics(State(state): State<AppState>) -> Response {
    use std::fmt::Write as _;

    let m = state.endpoint.factory().metrics();
    #[rustfmt::skip]
    let metrics = [
        ("wsctx_connections_active", "gauge", "Sockets holding a slot.", m.active),
        ("wsctx_connections_admitted_total", "counter", "Sockets admitted.", m.admitted),
        ("wsctx_connections_freed_total", "counter", "Slots freed.", m.freed),
        ("wsctx_messages_delivered_total", "counter", "Frames queued to a socket.", m.messages_delivered),
        ("wsctx_messages_dropped_total", "counter", "Frames not queued (full, closing or refused).", m.messages_dropped),
        ("wsctx_messages_discarded_total", "counter", "Queued frames thrown away on close.", m.messages_discarded),
        ("wsctx_slow_consumers_total", "counter", "Sockets closed as SLOW_CONSUMER.", m.slow_consumers),
        ("wsctx_idle_timeouts_total", "counter", "Sockets closed as IDLE_TIMEOUT.", m.idle_timeouts),
        ("wsctx_disconnected_total", "counter", "Sockets closed by a disconnect.", m.disconnected),
        ("wsctx_closed_by_shutdown_total", "counter", "Sockets closed by shutdown.", m.closed_by_shutdown),
    ];
    let mut out = String::with_capacity(2048);
    for (name, kind, help, value) in metrics {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP wsctx_handshake_rejections_total Handshakes refused, by error code.\n\
         # TYPE wsctx_handshake_rejections_total counter"
    );
    for code in ErrorCode::ALL {
        let refused = state.refusals.0[code.index()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "wsctx_handshake_rejections_total{{code=\"{code}\"}} {refused}"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Serves `app` on `listener` until `signal` resolves, then drains: stops accepting,
/// closes every socket with 1012 (SHUTTING_DOWN) and waits until every slot is free (at
/// most [`CLOSE_GRACE`] plus a second).
pub(crate) async fn serve(
    listener: TcpListener,
    app: App,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let App { router, factory } = app;
    let reaper = tokio::spawn({
        let factory = factory.clone();
        async move { factory.run_idle_reaper(Duration::from_secs(1)).await }
    });
    let draining = factory.clone();
    let shutdown = async move {
        signal.await;
        draining.shutdown();
    };
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    factory.shutdown();
    let deadline = tokio::time::Instant::now() + CLOSE_GRACE + Duration::from_secs(1);
    while factory.metrics().active > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = reaper.await;
    Ok(())
}
