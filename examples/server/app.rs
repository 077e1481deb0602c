//! The example server's application: routes, the chat handler (with credential refresh),
//! simulated agent runs that report to every tab of their user (`POST /runs`), metrics,
//! serving with pre-upgrade limits, and graceful shutdown. `main.rs` runs it; the
//! end-to-end tests include this file and start it on an ephemeral port.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::ws::Message;
use axum::extract::{FromRef, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get, post};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wsctx::axum::{
    Authenticated, Endpoint, EndpointConfig, MessageHandler, RejectMode, ServeConfig, Session,
};
use wsctx::http::{DEFAULT_MAX_IN_FLIGHT, ExtractConfig, Handshake, Origins};
use wsctx::jwt::JwtVerifier;
use wsctx::state::Validated;
use wsctx::{
    Context, Emitter, ErrorCode, EventType, Frame, IdGenerator, Limits, ManagerFactory, Policy,
    Rejection, Token, TokenVerifier, UuidGenerator,
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
    /// Timeouts, heartbeat and buffer sizes of every socket.
    pub(crate) endpoint: EndpointConfig,
    /// The header-read timeout and the cap on connections that have not upgraded.
    pub(crate) serve: ServeConfig,
    /// Verifications in flight; one more is refused with OVERLOADED.
    pub(crate) max_in_flight: usize,
    /// Serve `POST /demo/token` (demo only; see [`DemoTokens`]).
    pub(crate) demo_tokens: Option<DemoTokens>,
    /// The pause between two events of a simulated run.
    pub(crate) run_step: Duration,
    /// Simulated runs in progress at once, over all users; one more is refused with
    /// OVERLOADED.
    pub(crate) max_runs: usize,
    /// Cluster mode: this node's connection to the cluster's Redis (feature `redis`).
    #[cfg(feature = "redis")]
    pub(crate) backplane: Option<wsctx::cluster::Backplane>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            verify_timeout: Duration::from_secs(5),
            allow_query_token: false,
            ids: None,
            // The page resumes after a drop, so every socket learns its position.
            endpoint: EndpointConfig {
                send_position: true,
                ..EndpointConfig::default()
            },
            serve: ServeConfig::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            demo_tokens: None,
            run_step: Duration::from_millis(400),
            max_runs: 64,
            #[cfg(feature = "redis")]
            backplane: None,
        }
    }
}

/// **Demo only.** What `POST /demo/token` needs to hand a page a fresh token for the user
/// of the token it presents, so that the page can show a live credential refresh. A real
/// deployment gets fresh tokens from its identity provider (an OAuth refresh), never from
/// the WebSocket server, which should not hold a signing key.
#[derive(Clone)]
pub(crate) struct DemoTokens {
    /// The HS256 secret the server's verifier checks.
    pub(crate) secret: Vec<u8>,
    /// How long a token it mints is valid.
    pub(crate) ttl: Duration,
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
    mint_token_until(secret, sub, unix_secs(SystemTime::now()) + ttl.as_secs())
}

/// A token for `sub`, expiring at `exp` (seconds since the epoch), signed with `secret`.
pub(crate) fn mint_token_until(
    secret: &[u8],
    sub: &str,
    exp: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = serde_json::json!({
        "sub": sub,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": unix_secs(SystemTime::now()),
        "exp": exp,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
}

/// Seconds since the Unix epoch (0 before it).
fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Delivers every text frame to all the sockets of the sender's user, except
/// `{"type":"refresh","token":…}`, which renews this socket's credential (answered
/// `{"type":"refreshed","expires_at":…}`, or an error frame) and goes to nobody.
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
            "expires_at": session.expires_at().map(unix_secs),
        });
        session.reply(Frame::text(welcome.to_string()));
    }

    async fn on_message(&self, session: &Session, message: Message) {
        let Message::Text(text) = message else {
            return;
        };
        if let Some(token) = refresh_token(text.as_str()) {
            match session.refresh(&token).await {
                Ok(expires_at) => {
                    let frame = serde_json::json!({
                        "type": "refreshed",
                        "expires_at": expires_at.map(unix_secs),
                    });
                    session.reply(Frame::text(frame.to_string()));
                }
                // Another user's token: the socket is closing with its own error frame.
                Err(rejection) if rejection.code() == ErrorCode::Forbidden => {}
                Err(rejection) => {
                    session.reply(Frame::text(rejection.error_frame()));
                }
            }
            return;
        }
        let frame = serde_json::json!({
            "type": "message",
            "from": session.context().websocket_client_id().as_str(),
            "text": text.as_str(),
        });
        session.send_to_user(Frame::text(frame.to_string()));
    }
}

/// The token of a `{"type":"refresh","token":…}` frame.
fn refresh_token(text: &str) -> Option<Token> {
    // Cheap test first: chat messages are not parsed.
    if !text.starts_with('{') || !text.contains("\"refresh\"") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if value.get("type")?.as_str()? != "refresh" {
        return None;
    }
    Some(Token::new(value.get("token")?.as_str()?))
}

/// The router state.
#[derive(Clone)]
pub(crate) struct AppState {
    endpoint: Endpoint<Chat>,
    /// Renders what the handshake and the factory report through the `metrics` facade.
    prometheus: PrometheusHandle,
    demo_tokens: Option<Arc<DemoTokens>>,
    runs: Runs,
}

/// What `POST /runs` needs: the pause between events and a cap on runs in progress.
#[derive(Clone)]
struct Runs {
    step: Duration,
    slots: Arc<Semaphore>,
}

impl FromRef<AppState> for Handshake {
    fn from_ref(state: &AppState) -> Self {
        state.endpoint.handshake().clone()
    }
}

/// The server: its router, the factory behind it, and how to serve them.
#[derive(Debug)]
pub(crate) struct App {
    /// Serve it with [`serve`].
    pub(crate) router: Router,
    /// For shutdown and metrics.
    pub(crate) factory: ManagerFactory,
    /// Cluster mode: stopped at shutdown after the local factory.
    #[cfg(feature = "redis")]
    pub(crate) cluster: Option<wsctx::cluster::ClusterFactory>,
    /// The pre-upgrade limits.
    pub(crate) serve: ServeConfig,
    /// How long after a close request a slot is free at the latest.
    pub(crate) drain: Duration,
}

/// Builds the server around any verifier (the binary uses [`verifier`]; tests also use
/// verifiers that fail or hang).
pub(crate) fn app(verifier: impl TokenVerifier + 'static, options: &Options) -> App {
    let ids = options
        .ids
        .clone()
        .unwrap_or_else(|| Arc::new(UuidGenerator::new()));
    // The handshake and the factory take their metric handles from the recorder in
    // force when they are built. This app gives them a Prometheus recorder of its own
    // (the end-to-end tests run several apps in one process); a server with one app
    // would install it globally instead, before building them:
    // `PrometheusBuilder::new().install_recorder()`.
    let recorder = PrometheusBuilder::new().build_recorder();
    let prometheus = recorder.handle();
    let (handshake, factory) = metrics::with_local_recorder(&recorder, || {
        let handshake = Handshake::builder(verifier)
            .policy(Policy::default())
            .id_generator(ids)
            .verify_timeout(options.verify_timeout)
            .extract(ExtractConfig::default().allow_query_token(options.allow_query_token))
            .subprotocols([SUBPROTOCOL])
            .origins(Origins::SameOrigin { tls: false })
            .max_in_flight(options.max_in_flight)
            .build();
        (handshake, ManagerFactory::new(options.limits))
    });
    #[cfg(feature = "redis")]
    let cluster = options.backplane.clone().map(|backplane| {
        metrics::with_local_recorder(&recorder, || {
            wsctx::cluster::ClusterFactory::start(factory.clone(), backplane)
        })
    });
    #[cfg(feature = "redis")]
    let endpoint = match &cluster {
        Some(cluster) => Endpoint::clustered(handshake, cluster.clone(), Chat),
        None => Endpoint::new(handshake, factory.clone(), Chat),
    };
    #[cfg(not(feature = "redis"))]
    let endpoint = Endpoint::new(handshake, factory.clone(), Chat);
    let endpoint = endpoint.with_config(options.endpoint);
    let config = endpoint.config();
    let drain = config.write_timeout + config.close_grace;
    let state = AppState {
        endpoint,
        prometheus,
        demo_tokens: options.demo_tokens.clone().map(Arc::new),
        runs: Runs {
            step: options.run_step,
            slots: Arc::new(Semaphore::new(options.max_runs)),
        },
    };
    let router = Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/ws", any(ws::<false>))
        .route("/ws/browser", any(ws::<true>))
        .route("/demo/token", post(demo_token))
        .route("/runs", post(start_run))
        .route("/signout", post(sign_out))
        .with_state(state);
    App {
        router,
        factory,
        #[cfg(feature = "redis")]
        cluster,
        serve: options.serve,
        drain,
    }
}

async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
}

/// `ok`; `shutting down` (503) while draining; in cluster mode `degraded` (200: the
/// sockets here work, but new ones are refused and other nodes are not reached) while
/// the node cannot reach Redis or its subscription does not hear.
async fn healthz(State(state): State<AppState>) -> Response {
    if state.endpoint.factory().is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    #[cfg(feature = "redis")]
    if let Some(cluster) = state.endpoint.cluster() {
        if cluster.backplane().ping().await.is_err() {
            return "degraded: the redis backplane does not answer\n".into_response();
        }
        if !cluster.bus_status().subscribed {
            return "degraded: messages from other nodes do not reach this one\n".into_response();
        }
    }
    "ok\n".into_response()
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
    let mode = if BROWSER {
        RejectMode::AfterUpgrade
    } else {
        RejectMode::BeforeUpgrade
    };
    state.endpoint.accept(ws, auth, mode).await
}

/// **Demo only** (see [`DemoTokens`]): a fresh token for the user of the bearer token
/// presented, verified by the server's own verifier. 404 unless enabled.
async fn demo_token(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(demo) = state.demo_tokens.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let handshake = state.endpoint.handshake();
    let token = match handshake.extract_token(&headers, &Uri::from_static("/")) {
        Ok((token, _)) => token,
        Err(rejection) => return rejection.into_response(),
    };
    let user = match handshake.verify_capped(&token).await {
        Ok(user) => user,
        Err(rejection) => return rejection.into_response(),
    };
    let exp = unix_secs(SystemTime::now()) + demo.ttl.as_secs();
    match mint_token_until(&demo.secret, user.user_id().as_str(), exp) {
        Ok(fresh) => {
            let body = serde_json::json!({ "token": fresh, "expires_at": exp });
            let json = [(header::CONTENT_TYPE, "application/json")];
            (json, body.to_string()).into_response()
        }
        Err(_) => Rejection::new(ErrorCode::InternalError).into_response(),
    }
}

/// `POST /runs`: starts a simulated agent run for the user of the bearer token, on a
/// child context of that user's request context (the query may name `thread_id` and
/// `run_id`, as on `/ws`). The run reports to every tab of the user, and only that user,
/// over a few seconds: `agent_started`, `agent_thinking`, `tool_executing` and
/// `tool_completed` (from a grandchild context, the tool call), more thinking, then
/// `agent_completed`. Answers 202 with the run's ids; refusals are the table's.
async fn start_run(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let handshake = state.endpoint.handshake();
    let request = match handshake.authenticate(&headers, &uri).await {
        Ok(request) => request,
        Err(rejection) => return rejection.into_response(),
    };
    let Ok(slot) = Arc::clone(&state.runs.slots).try_acquire_owned() else {
        return Rejection::new(ErrorCode::Overloaded).into_response();
    };
    let (ids, policy) = (handshake.id_generator(), handshake.policy());
    let (run, tool) = match request.child("agent_run", policy, ids).and_then(|run| {
        let tool = run.child("tool:search", policy, ids)?;
        Ok((run, tool))
    }) {
        Ok(contexts) => contexts,
        Err(error) => return Rejection::from(error).into_response(),
    };
    let emitters = RunEmitters {
        run: RunEmitter::new(&state.endpoint, &run),
        tool: RunEmitter::new(&state.endpoint, &tool),
    };
    let body = serde_json::json!({
        "run_id": run.run_id().as_str(),
        "request_id": run.request_id().as_str(),
    });
    let step = state.runs.step;
    tokio::spawn(async move {
        simulate_run(&emitters, &run, step).await;
        drop(slot);
    });
    let json = [(header::CONTENT_TYPE, "application/json")];
    (StatusCode::ACCEPTED, json, body.to_string()).into_response()
}

/// `POST /signout` (bearer token): closes every tab of the token's user, on every node in
/// cluster mode, with 4401 `signed_out`: what a "sign out everywhere" button, or an
/// administrator's ban, does. Answers `{"closed_here":n,"cluster":true|false|null}`
/// (`cluster`: whether Redis took the disconnect for the other nodes; `null` on a single
/// node).
async fn sign_out(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let handshake = state.endpoint.handshake();
    let request = match handshake.authenticate(&headers, &uri).await {
        Ok(request) => request,
        Err(rejection) => return rejection.into_response(),
    };
    let user = request.user_id();
    let code = wsctx::CloseCode::UNAUTHORIZED;
    let reason = wsctx::CloseReason::new("signed_out");
    #[cfg(feature = "redis")]
    let (closed_here, cluster) = match state.endpoint.cluster() {
        Some(cluster) => {
            let done = cluster.disconnect_user(user, code, &reason).await;
            (done.local, Some(done.remote.is_ok()))
        }
        None => (
            state
                .endpoint
                .factory()
                .disconnect_user(user, &wsctx::CloseFrame { code, reason }),
            None,
        ),
    };
    #[cfg(not(feature = "redis"))]
    let (closed_here, cluster): (usize, Option<bool>) = (
        state
            .endpoint
            .factory()
            .disconnect_user(user, &wsctx::CloseFrame { code, reason }),
        None,
    );
    let body = serde_json::json!({ "closed_here": closed_here, "cluster": cluster });
    let json = [(header::CONTENT_TYPE, "application/json")];
    (json, body.to_string()).into_response()
}

/// The emitters of one run: the run's own context, and the tool call's.
struct RunEmitters {
    run: RunEmitter,
    tool: RunEmitter,
}

/// Events of one context to its user's tabs: on this node, or on every node.
enum RunEmitter {
    Local(Emitter),
    #[cfg(feature = "redis")]
    Cluster(wsctx::cluster::ClusterEmitter),
}

impl RunEmitter {
    fn new(endpoint: &Endpoint<Chat>, ctx: &Context<Validated>) -> Self {
        #[cfg(feature = "redis")]
        if let Some(cluster) = endpoint.cluster() {
            return Self::Cluster(cluster.emitter(ctx));
        }
        Self::Local(endpoint.factory().emitter(ctx))
    }

    #[cfg_attr(
        not(feature = "redis"),
        allow(clippy::unused_async, reason = "a cluster emitter waits for Redis")
    )]
    async fn emit(
        &self,
        event: &EventType,
        data: &serde_json::Value,
    ) -> Result<(), wsctx::EmitError> {
        match self {
            Self::Local(emitter) => emitter.emit(event, data).map(drop),
            #[cfg(feature = "redis")]
            Self::Cluster(emitter) => emitter.emit(event, data).await.map(drop),
        }
    }
}

/// The script of a simulated run: (which emitter, event type, data).
fn run_script(run: &Context<Validated>) -> Vec<(bool, &'static str, serde_json::Value)> {
    use serde_json::json;
    let question = format!("summarize thread {}", run.thread_id());
    vec![
        (false, "agent_started", json!({"task": question})),
        (
            false,
            "agent_thinking",
            json!({"step": 1, "thought": "reading the thread"}),
        ),
        (
            false,
            "agent_thinking",
            json!({"step": 2, "thought": "looking for related notes"}),
        ),
        (
            true,
            "tool_executing",
            json!({"tool": "search", "input": "related notes"}),
        ),
        (
            true,
            "tool_completed",
            json!({"tool": "search", "result": "3 notes found"}),
        ),
        (
            false,
            "agent_thinking",
            json!({"step": 3, "thought": "drafting the summary"}),
        ),
        (
            false,
            "agent_completed",
            json!({"summary": "3 notes, 2 open questions", "steps": 3}),
        ),
    ]
}

/// Emits the run's events, `step` apart. An event to a user with no open tab is kept
/// for a tab that reconnects; an emit error (none of this data is too large) ends the run.
async fn simulate_run(emitters: &RunEmitters, run: &Context<Validated>, step: Duration) {
    for (i, (tool, name, data)) in run_script(run).into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(step).await;
        }
        let Ok(event) = EventType::try_new(name) else {
            return;
        };
        let emitter = if tool { &emitters.tool } else { &emitters.run };
        if emitter.emit(&event, &data).await.is_err() {
            return;
        }
    }
}

/// Prometheus text format, rendered by `metrics-exporter-prometheus` from what the
/// handshake and the factory report (the names of `wsctx::metrics::Metric`). Labels
/// are error codes only; no user id appears.
async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.prometheus.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Serves `app` on `listener` (with a header-read timeout and a cap on connections that
/// have not upgraded) until `signal` resolves, then drains: stops accepting, closes every
/// socket with 1012 (SHUTTING_DOWN) and waits until every slot is free (at most the write
/// timeout plus the close grace, plus a second).
pub(crate) async fn serve(
    listener: TcpListener,
    app: App,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let App {
        router,
        factory,
        #[cfg(feature = "redis")]
        cluster,
        serve,
        drain,
    } = app;
    let reaper = tokio::spawn({
        let factory = factory.clone();
        async move { factory.run_idle_reaper(Duration::from_secs(1)).await }
    });
    let draining = factory.clone();
    let shutdown = async move {
        signal.await;
        draining.shutdown();
    };
    wsctx::axum::serve(listener, router, serve, shutdown).await?;
    factory.shutdown();
    let deadline = tokio::time::Instant::now() + drain + Duration::from_secs(1);
    while factory.metrics().active > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = reaper.await;
    #[cfg(feature = "redis")]
    if let Some(cluster) = cluster {
        cluster.shutdown();
    }
    Ok(())
}
