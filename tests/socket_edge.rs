//! The socket edge of the axum runner, attacked from raw TCP on 127.0.0.1: closes that are
//! carried out whatever the peer does (never reads, pings after the close, keeps
//! sending), protocol violations closed with their own codes, heartbeats, credential
//! expiry, and the cap on verifications in flight. Each test owns its server; durations
//! are short and configured, and every bound asserted is a correctness bound with slack,
//! not a speed target.
#![cfg(all(feature = "axum", feature = "jwt"))]
#![allow(clippy::too_many_lines, reason = "tests")]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::ws::Message;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::any;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use wsctx::axum::{
    Authenticated, Endpoint, EndpointConfig, MessageHandler, RejectMode, ServeConfig, Session,
};
use wsctx::http::Handshake;
use wsctx::jwt::JwtVerifier;
use wsctx::{
    AuthError, AuthenticatedUser, CloseCode, CloseFrame, ErrorCode, Frame, IsolatedManager, Limits,
    ManagerFactory, Rejection, Token, TokenVerifier, UserId,
};

use support::raw::{self, RawClient};

const SECRET: &[u8] = b"socket-edge-test-secret-0123456789abcdef";
/// How long anything may take beyond the bound a test checks (a shared 2-core machine).
const SLACK: Duration = Duration::from_millis(1500);
/// A text frame the pump sends: 16 KiB.
const CHUNK: usize = 16 * 1024;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A real HS256 JWT for `sub`, expiring at `exp` (seconds since the epoch).
fn token(sub: &str, exp: u64) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "sub": sub, "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn bearer(sub: &str, exp: u64) -> String {
    format!("Bearer {}", token(sub, exp))
}

/// Records what the handler was given.
#[derive(Debug, Default)]
struct Probe {
    texts: Mutex<Vec<String>>,
}

impl Probe {
    fn texts(&self) -> Vec<String> {
        self.texts.lock().unwrap().clone()
    }
}

struct Recorder(Arc<Probe>);

impl MessageHandler for Recorder {
    async fn on_message(&self, session: &Session, message: Message) {
        if let Message::Text(text) = message {
            self.0.texts.lock().unwrap().push(text.as_str().to_owned());
            if text.as_str() == "echo" {
                session.reply(Frame::text("echoed"));
            }
        }
    }
}

/// A verifier that waits at a gate before verifying for real, to hold verifications in
/// flight.
struct Gated {
    inner: JwtVerifier,
    gate: Arc<Notify>,
}

impl TokenVerifier for Gated {
    async fn verify(&self, token: &Token) -> Result<AuthenticatedUser, AuthError> {
        self.gate.notified().await;
        self.inner.verify_now(token)
    }
}

struct Edge {
    addr: SocketAddr,
    factory: ManagerFactory,
    probe: Arc<Probe>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Edge {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn ws(
    State(endpoint): State<Endpoint<Recorder>>,
    auth: Result<Authenticated, Rejection>,
    ws: WebSocketUpgrade,
) -> Response {
    endpoint.accept(ws, auth, RejectMode::BeforeUpgrade).await
}

impl Edge {
    async fn start(config: EndpointConfig, limits: Limits) -> Self {
        Self::start_with(
            JwtVerifier::hs256(SECRET).unwrap(),
            usize::MAX,
            config,
            limits,
        )
        .await
    }

    async fn start_with(
        verifier: impl TokenVerifier + 'static,
        max_in_flight: usize,
        config: EndpointConfig,
        limits: Limits,
    ) -> Self {
        let handshake = Handshake::builder(verifier)
            .max_in_flight(max_in_flight)
            .build();
        let factory = ManagerFactory::new(limits);
        let probe = Arc::new(Probe::default());
        let endpoint = Endpoint::new(handshake, factory.clone(), Recorder(Arc::clone(&probe)))
            .with_config(config);
        let router = Router::new().route("/ws", any(ws)).with_state(endpoint);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let never = std::future::pending::<()>();
            let _ = wsctx::axum::serve(listener, router, ServeConfig::default(), never).await;
        });
        let reaper = tokio::spawn({
            let factory = factory.clone();
            async move { factory.run_idle_reaper(Duration::from_millis(50)).await }
        });
        Self {
            addr,
            factory,
            probe,
            tasks: vec![server, reaper],
        }
    }

    async fn raw(&self, sub: &str, exp: u64, recv_buffer: Option<u32>) -> RawClient {
        let auth = bearer(sub, exp);
        let client = raw::connect(self.addr, "/ws", &[("Authorization", &auth)], recv_buffer).await;
        self.wait_until("the socket is admitted", Duration::from_secs(5), |m| {
            m.active >= 1
        })
        .await;
        client
    }

    /// Waits until `done` holds for the factory's metrics; panics after `within`.
    async fn wait_until(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&wsctx::MetricsSnapshot) -> bool,
    ) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            let now = Instant::now();
            if done(&self.factory.metrics()) {
                return now;
            }
            assert!(now < deadline, "{what}: not within {within:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until every slot is free; returns when that was seen.
    async fn freed_within(&self, within: Duration) -> Instant {
        self.wait_until("every slot is freed", within, |m| m.active == 0)
            .await
    }

    /// A second, socket-less admission of `sub`, used to push frames to every socket of
    /// that user. Its own queue is drained so that it stays open.
    fn pump(&self, sub: &str) -> (IsolatedManager, JoinHandle<()>) {
        let bound = support::contexts::bound(sub, "pump");
        let (manager, mut outbound) = self.factory.create(bound).unwrap();
        let drain = tokio::spawn(async move { while outbound.recv().await.is_some() {} });
        (manager, drain)
    }
}

/// Pushes `frames` frames of 16 KiB to every socket of the pump's user at once.
fn push(pump: &IsolatedManager, frames: usize) {
    let chunk: Arc<str> = "x".repeat(CHUNK).into();
    for _ in 0..frames {
        let _ = pump.send_to_user(Frame::Text(Arc::clone(&chunk)));
    }
}

/// Short timeouts for the close-path tests; no heartbeat (it would close the silent
/// peers first).
fn close_config() -> EndpointConfig {
    EndpointConfig {
        write_timeout: Duration::from_secs(2),
        close_grace: Duration::from_millis(500),
        ping_interval: None,
        ..EndpointConfig::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClosePath {
    SlowConsumer,
    Idle,
    Disconnect,
    Shutdown,
    TokenExpiry,
}

/// How the client behaves once admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    /// Never reads, and the server has filled the connection: the server's writes block.
    NeverReadsPipeFull,
    /// Never reads, and pings every 300 ms after the close is requested.
    PingsAfterClose,
}

/// Runs one close path against one misbehaving peer and checks that the slot is freed
/// within `write_timeout + close_grace` of the close request.
async fn slot_is_freed(path: ClosePath, peer: Peer) {
    let config = close_config();
    let limits = Limits {
        outbound_queue: if path == ClosePath::SlowConsumer {
            64
        } else {
            100_000
        },
        idle_timeout: if path == ClosePath::Idle {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(3600)
        },
        ..Limits::default()
    };
    let edge = Edge::start(config, limits).await;
    let sub = format!("user-{path:?}-{peer:?}").to_lowercase();
    // A credential that expires in (1, 2] seconds for the expiry path.
    let exp = if path == ClosePath::TokenExpiry {
        unix_now() + 2
    } else {
        unix_now() + 600
    };
    let mut client = edge.raw(&sub, exp, Some(4096)).await;
    let (pump, drain) = edge.pump(&sub);
    let full = peer == Peer::NeverReadsPipeFull;
    if path == ClosePath::TokenExpiry && full {
        // Fill the connection just before the expiry, so that the runner is blocked
        // writing when it comes.
        let expiry = UNIX_EPOCH + Duration::from_secs(exp);
        let left = expiry.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::time::sleep(left.saturating_sub(Duration::from_millis(500))).await;
    }
    // Fill the connection (8 MiB; the client reads nothing), or, for the slow consumer,
    // overflow its 64-frame queue before the runner could write much.
    match (path, full) {
        (ClosePath::SlowConsumer, true) => loop {
            push(&pump, 8);
            if edge.factory.metrics().slow_consumers > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        },
        (ClosePath::SlowConsumer, false) => push(&pump, 1000),
        (_, true) => {
            push(&pump, 512);
            // Let the runner write until the connection is full and its write blocks.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        (_, false) => {}
    }
    drop(pump);
    drain.abort();
    let user = UserId::try_new(&sub).unwrap();
    let requested = match path {
        ClosePath::SlowConsumer => {
            edge.wait_until("slow consumer", Duration::from_secs(10), |m| {
                m.slow_consumers >= 1
            })
            .await
        }
        ClosePath::Idle => {
            edge.wait_until("idle close", Duration::from_secs(5), |m| {
                m.idle_timeouts >= 1
            })
            .await
        }
        ClosePath::Disconnect => {
            let at = Instant::now();
            assert_eq!(
                edge.factory
                    .disconnect_user(&user, &CloseFrame::new(CloseCode::GOING_AWAY, "banned")),
                1
            );
            at
        }
        ClosePath::Shutdown => {
            let at = Instant::now();
            edge.factory.shutdown();
            at
        }
        ClosePath::TokenExpiry => {
            let expiry = UNIX_EPOCH + Duration::from_secs(exp);
            let left = expiry.duration_since(SystemTime::now()).unwrap_or_default();
            Instant::now() + left
        }
    };
    // The client stays connected (reading nothing) until the test ends.
    let pings = peer == Peer::PingsAfterClose;
    let holder = tokio::spawn(async move {
        tokio::time::sleep_until(requested).await;
        while pings && client.ping().await {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        std::future::pending::<()>().await;
    });
    let bound = config.write_timeout + config.close_grace;
    let freed = edge
        .freed_within(bound + SLACK + Duration::from_secs(2))
        .await;
    let took = freed.saturating_duration_since(requested);
    assert!(
        took <= bound + SLACK,
        "{path:?}/{peer:?}: slot freed {took:?} after the close request (bound {bound:?})"
    );
    let m = edge.factory.metrics();
    if full {
        // Frames were still queued when the socket went: its writes were blocked.
        assert!(
            m.messages_discarded > 0,
            "{path:?}: the connection was not full"
        );
    }
    holder.abort();
}

/// One test per close path and peer: `Path: never_reads_test, pings_after_close_test;`
/// runs [`slot_is_freed`] with the path and each peer behaviour (as separate tests, so
/// they run in parallel and fail by name).
macro_rules! slot_is_freed_tests {
    ($($path:ident: $never_reads:ident, $pings:ident;)+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $never_reads() {
            slot_is_freed(ClosePath::$path, Peer::NeverReadsPipeFull).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $pings() {
            slot_is_freed(ClosePath::$path, Peer::PingsAfterClose).await;
        }
    )+};
}

slot_is_freed_tests! {
    SlowConsumer:
        slow_consumer_that_never_reads_is_freed_within_the_bound,
        slow_consumer_that_pings_after_the_close_is_freed_within_the_bound;
    Idle:
        idle_socket_that_never_reads_is_freed_within_the_bound,
        idle_socket_that_pings_after_the_close_is_freed_within_the_bound;
    Disconnect:
        disconnected_user_that_never_reads_is_freed_within_the_bound,
        disconnected_user_that_pings_after_the_close_is_freed_within_the_bound;
    Shutdown:
        shutdown_socket_that_never_reads_is_freed_within_the_bound,
        shutdown_socket_that_pings_after_the_close_is_freed_within_the_bound;
    TokenExpiry:
        expired_socket_that_never_reads_is_freed_within_the_bound,
        expired_socket_that_pings_after_the_close_is_freed_within_the_bound;
}

/// A banned client keeps sending; none of it reaches the handler, whether the server was
/// blocked writing to it (`full`) or not.
async fn banned_messages_never_reach_the_handler(full: bool) {
    let limits = Limits {
        outbound_queue: 100_000,
        ..Limits::default()
    };
    let edge = Edge::start(close_config(), limits).await;
    let sub = if full {
        "user-banned-full"
    } else {
        "user-banned"
    };
    let mut client = edge.raw(sub, unix_now() + 600, Some(4096)).await;
    assert!(client.text("before-ban").await);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !edge.probe.texts().contains(&"before-ban".to_owned()) {
        assert!(
            Instant::now() < deadline,
            "the handler got the first message"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if full {
        let (pump, drain) = edge.pump(sub);
        push(&pump, 512);
        drop(pump);
        drain.abort();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let user = UserId::try_new(sub).unwrap();
    let closed = edge
        .factory
        .disconnect_user(&user, &CloseFrame::new(CloseCode::GOING_AWAY, "banned"));
    assert_eq!(closed, 1);
    for i in 0..5 {
        if !client.text(&format!("after-ban-{i}")).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let config = close_config();
    edge.freed_within(config.write_timeout + config.close_grace + SLACK)
        .await;
    let texts = edge.probe.texts();
    assert_eq!(
        texts,
        ["before-ban"],
        "messages after the ban reached the handler"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_clients_later_messages_never_reach_the_handler() {
    banned_messages_never_reach_the_handler(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_clients_later_messages_never_reach_the_handler_while_its_writes_block() {
    banned_messages_never_reach_the_handler(true).await;
}

/// Sends `frames` (raw bytes) on a fresh socket and returns the close the client sees.
async fn close_after(edge: &Edge, sub: &str, bytes: &[u8]) -> (u16, String) {
    let mut client = edge.raw(sub, unix_now() + 600, None).await;
    client.write_raw(bytes).await;
    let (close, _) = client.read_close(Duration::from_secs(5)).await;
    close.unwrap_or_else(|| panic!("{sub}: no close frame"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_close_with_1007_1009_and_1002() {
    let edge = Edge::start(EndpointConfig::default(), Limits::default()).await;
    let over = vec![b'a'; 70 * 1000];
    let half = vec![b'a'; 40 * 1024];
    let fragmented = [
        raw::encode(false, raw::TEXT, &half, true),
        raw::encode(true, 0x0, &half, true),
    ]
    .concat();
    let cases: [(&str, Vec<u8>, u16, ErrorCode); 6] = [
        (
            "user-utf8",
            raw::encode(true, raw::TEXT, &[0x68, 0xff, 0xfe, 0x69], true),
            1007,
            ErrorCode::InvalidPayload,
        ),
        (
            "user-big",
            raw::encode(true, raw::TEXT, &over, true),
            1009,
            ErrorCode::MessageTooBig,
        ),
        (
            "user-big-in-two-frames",
            fragmented,
            1009,
            ErrorCode::MessageTooBig,
        ),
        (
            "user-reserved-opcode",
            raw::encode(true, 0x3, b"x", true),
            1002,
            ErrorCode::ProtocolError,
        ),
        (
            "user-reserved-control-opcode",
            raw::encode(true, 0xB, b"x", true),
            1002,
            ErrorCode::ProtocolError,
        ),
        (
            "user-unmasked",
            raw::encode(true, raw::TEXT, b"hello", false),
            1002,
            ErrorCode::ProtocolError,
        ),
    ];
    for (sub, bytes, expected, code) in &cases {
        let (close, reason) = close_after(&edge, sub, bytes).await;
        assert_eq!(close, *expected, "{sub}");
        assert_eq!(reason, code.reason(), "{sub}");
    }
    edge.freed_within(Duration::from_secs(5)).await;
    let m = edge.factory.metrics();
    assert_eq!(m.closed(ErrorCode::InvalidPayload), 1);
    assert_eq!(m.closed(ErrorCode::MessageTooBig), 2);
    assert_eq!(m.closed(ErrorCode::ProtocolError), 3);
    assert!(
        edge.probe.texts().is_empty(),
        "no violation reached the handler"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_pings_is_closed_with_4408() {
    let config = EndpointConfig {
        ping_interval: Some(Duration::from_millis(100)),
        pong_timeout: Duration::from_millis(200),
        close_grace: Duration::from_millis(500),
        ..EndpointConfig::default()
    };
    let edge = Edge::start(config, Limits::default()).await;
    // Reads what the server sends (its pings among it) but never answers.
    let mut client = edge.raw("user-silent", unix_now() + 600, None).await;
    let mut pings = 0;
    let close = loop {
        let frame = client
            .read_frame(Duration::from_secs(5))
            .await
            .expect("a frame within 5 s");
        match frame.opcode {
            raw::PING => pings += 1,
            raw::CLOSE => break frame.close().unwrap(),
            other => panic!("unexpected opcode {other}"),
        }
    };
    assert!(pings >= 1, "the server pinged");
    assert_eq!(close, (4408, "heartbeat_timeout".to_owned()));
    assert!(client.wait_eof(Duration::from_secs(5)).await);
    edge.freed_within(Duration::from_secs(5)).await;
    assert_eq!(
        edge.factory.metrics().closed(ErrorCode::HeartbeatTimeout),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_answers_pings_every_100_ms_stays_open_for_2_s() {
    let config = EndpointConfig {
        ping_interval: Some(Duration::from_millis(100)),
        pong_timeout: Duration::from_millis(300),
        ..EndpointConfig::default()
    };
    let edge = Edge::start(config, Limits::default()).await;
    let mut request = format!("ws://{}/ws", edge.addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        http::header::AUTHORIZATION,
        bearer("user-alive", unix_now() + 600).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    // Reading answers the pings (tokio-tungstenite sends the pongs).
    let until = Instant::now() + Duration::from_secs(2);
    let mut pings = 0;
    while let Ok(frame) = tokio::time::timeout_at(until, ws.next()).await {
        match frame.expect("the socket stays open").unwrap() {
            WsMessage::Ping(_) => pings += 1,
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert!(pings >= 10, "pinged {pings} times in 2 s");
    ws.send("echo".into()).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let WsMessage::Text(text) = ws.next().await.unwrap().unwrap() {
                return text;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(answer.as_str(), "echoed");
    assert_eq!(
        edge.factory.metrics().closed(ErrorCode::HeartbeatTimeout),
        0
    );
    assert_eq!(edge.factory.metrics().active, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_credential_gets_the_error_frame_and_4401() {
    let config = EndpointConfig {
        close_grace: Duration::from_millis(500),
        ..EndpointConfig::default()
    };
    let edge = Edge::start(config, Limits::default()).await;
    let exp = unix_now() + 1;
    let mut client = edge.raw("user-expiring", exp, None).await;
    let (close, texts) = client.read_close(Duration::from_secs(5)).await;
    let expired_at = SystemTime::now();
    assert_eq!(close, Some((4401, "token_expired".to_owned())));
    assert!(
        // Timed on the monotonic clock: allow 20 ms.
        expired_at + Duration::from_millis(20) >= UNIX_EPOCH + Duration::from_secs(exp),
        "closed before the credential expired"
    );
    assert_eq!(texts.len(), 1, "{texts:?}");
    let frame: Value = serde_json::from_str(&texts[0]).unwrap();
    assert_eq!(frame["type"], "error");
    assert_eq!(frame["code"], "TOKEN_EXPIRED");
    assert_eq!(frame["retry"], "after_refresh");
    edge.freed_within(Duration::from_secs(5)).await;
    assert_eq!(edge.factory.metrics().closed(ErrorCode::TokenExpired), 1);
}

#[test]
fn a_jwt_verifier_reports_the_tokens_expiry() {
    let exp = unix_now() + 120;
    let user = JwtVerifier::hs256(SECRET)
        .unwrap()
        .verify_now(&Token::new(token("user-exp", exp)))
        .unwrap();
    assert_eq!(
        user.expires_at(),
        Some(UNIX_EPOCH + Duration::from_secs(exp))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifications_over_max_in_flight_are_refused_with_503_overloaded() {
    let gate = Arc::new(Notify::new());
    let verifier = Gated {
        inner: JwtVerifier::hs256(SECRET).unwrap(),
        gate: Arc::clone(&gate),
    };
    let edge = Edge::start_with(verifier, 2, EndpointConfig::default(), Limits::default()).await;
    let addr = edge.addr;
    let handshake = |sub: &'static str| {
        tokio::spawn(async move {
            let auth = bearer(sub, unix_now() + 600);
            raw::upgrade(
                raw::tcp(addr, None).await,
                addr,
                "/ws",
                &[("Authorization", &auth)],
            )
            .await
        })
    };
    // Two verifications wait at the gate...
    let first = handshake("user-first");
    let second = handshake("user-second");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...so a third is refused without reaching the verifier.
    let third = tokio::time::timeout(Duration::from_secs(5), handshake("user-third"))
        .await
        .expect("refused at once, not queued behind the gate")
        .unwrap();
    let raw::Upgrade::Refused(status, head) = third else {
        panic!("the third handshake was not refused");
    };
    assert_eq!(status, 503);
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 5"),
        "{head}"
    );
    assert!(head.contains(r#""code":"OVERLOADED""#), "{head}");
    gate.notify_waiters();
    let mut open = Vec::new();
    for upgrade in [first, second] {
        match upgrade.await.unwrap() {
            raw::Upgrade::Switched(client) => open.push(client),
            raw::Upgrade::Refused(status, _) => panic!("refused with {status}"),
        }
    }
    edge.wait_until("both admitted", Duration::from_secs(5), |m| m.active == 2)
        .await;
    // The permits came back: another verification runs.
    let fourth = handshake("user-fourth");
    tokio::time::sleep(Duration::from_millis(200)).await;
    gate.notify_waiters();
    assert!(matches!(fourth.await.unwrap(), raw::Upgrade::Switched(_)));
}
