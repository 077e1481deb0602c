//! End-to-end tests: the example server (examples/server/app.rs) on an ephemeral
//! 127.0.0.1 port, real tokio-tungstenite clients, real sockets.
#![cfg(all(feature = "axum", feature = "jwt", feature = "metrics"))]
#![allow(clippy::too_many_lines, reason = "tests")]

#[path = "../examples/server/app.rs"]
mod app;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderName, HeaderValue, StatusCode, header};
use serde_json::{Value, json};
use support::jwt::{hs256 as signed, now};
use support::raw;
use support::verifiers::{Down, Hangs};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsctx::axum::ServeConfig;
use wsctx::metrics::Metric;
use wsctx::{
    CloseStyle, ErrorCode, GenerateError, Limits, ManagerFactory, Rejection, ResumePoint,
    TokenVerifier,
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SECRET: &[u8] = b"e2e-test-only-secret-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(5);

struct Server {
    addr: SocketAddr,
    factory: ManagerFactory,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(options: app::Options) -> Self {
        Self::start_with(app::verifier(SECRET).unwrap(), options).await
    }

    async fn with_limits(limits: Limits) -> Self {
        Self::start(app::Options {
            limits,
            ..app::Options::default()
        })
        .await
    }

    async fn start_with(verifier: impl TokenVerifier + 'static, options: app::Options) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = app::app(verifier, &options);
        let factory = app.factory.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app::serve(listener, app, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            factory,
            stop: Some(stop),
            task,
        }
    }

    /// Sends the shutdown signal and waits for `serve` to return.
    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the server drains within 10 s")
            .unwrap()
            .unwrap();
    }

    async fn connect(
        &self,
        path: &str,
        headers: &[(HeaderName, &str)],
    ) -> Result<(Ws, http::Response<Option<Vec<u8>>>), WsError> {
        let mut request = format!("ws://{}{path}", self.addr)
            .into_client_request()
            .unwrap();
        for (name, value) in headers {
            request
                .headers_mut()
                .append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("handshake answered in time")
    }

    /// Connects with a bearer token and reads the welcome frame, then the position
    /// frame the example server sends to a socket that does not resume.
    async fn join(&self, path: &str, token: &str) -> (Ws, Value) {
        let (ws, welcome, _) = self.join_at(path, token).await;
        (ws, welcome)
    }

    /// [`join`](Self::join), also returning the socket's starting position.
    async fn join_at(&self, path: &str, token: &str) -> (Ws, Value, ResumePoint) {
        let auth = format!("Bearer {token}");
        let (mut ws, _) = self
            .connect(path, &[(header::AUTHORIZATION, &auth)])
            .await
            .unwrap();
        let welcome = next_json(&mut ws).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        let position = next_json(&mut ws).await;
        assert_eq!(position["type"], "position", "{position}");
        (ws, welcome, position_of(&position))
    }

    /// Asserts that `/metrics` has each of `lines` (a sample: name, labels and value).
    async fn metrics_show(&self, lines: &[&str]) {
        let metrics = self.get("/metrics").await;
        for line in lines {
            assert!(
                metrics.contains(&format!("{line}\n")),
                "{line} in {metrics}"
            );
        }
    }

    /// `POST path` with a bearer token: the status and the body.
    async fn post(&self, path: &str, token: &str) -> (u16, String) {
        let response = self
            .request(&format!(
                "POST {path} HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\n"
            ))
            .await;
        let status = response[9..12].parse().unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        (status, body.to_owned())
    }

    async fn get(&self, path: &str) -> String {
        self.request(&format!("GET {path} HTTP/1.1\r\n")).await
    }

    /// Sends `head` (request line and headers, each ending in CRLF) with `Host` and
    /// `Connection: close`, and reads the whole response.
    async fn request(&self, head: &str) -> String {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let request = format!("{head}Host: {}\r\nConnection: close\r\n\r\n", self.addr);
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
            .await
            .unwrap()
            .unwrap();
        response
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn token(sub: &str) -> String {
    app::mint_token(SECRET, sub, Duration::from_secs(600)).unwrap()
}

fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "aud": app::AUDIENCE, "iss": app::ISSUER, "exp": now() + 600 })
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn protocols(token: &str) -> String {
    format!("wsctx.v1, jwt.{}", URL_SAFE_NO_PAD.encode(token))
}

/// The next message, within [`WAIT`].
async fn next_message(ws: &mut Ws) -> Message {
    let next = tokio::time::timeout(WAIT, ws.next()).await;
    let next = next
        .expect("a frame within 5 s")
        .expect("the socket is open");
    next.expect("a valid frame")
}

/// The next text frame as JSON, skipping control frames.
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match next_message(ws).await {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Close(frame) => panic!("closed instead: {frame:?}"),
            _ => {}
        }
    }
}

/// The close frame's code and reason, skipping anything before it.
async fn next_close(ws: &mut Ws) -> (u16, String) {
    loop {
        if let Message::Close(frame) = next_message(ws).await {
            let frame = frame.expect("a close code");
            return (u16::from(frame.code), frame.reason.as_str().to_owned());
        }
    }
}

/// Asserts that nothing arrives on `ws` for a while.
async fn expect_silence(ws: &mut Ws) {
    if let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(400), ws.next()).await
    {
        panic!("unexpected frame {text}");
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// `/ws`: refused before the upgrade with an HTTP status.
    Http,
    /// `/ws/browser`: upgraded, then an error frame and a close code.
    Browser,
}

impl Route {
    fn path(self, query: &str) -> String {
        match self {
            Self::Http => format!("/ws{query}"),
            Self::Browser => format!("/ws/browser{query}"),
        }
    }
}

/// What a client presents at the handshake: a query and headers.
#[derive(Default)]
struct Attempt {
    query: String,
    headers: Vec<(HeaderName, String)>,
}

impl Attempt {
    fn header(mut self, name: HeaderName, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn bearer(token: &str) -> Self {
        Self::default().header(header::AUTHORIZATION, &bearer(token))
    }

    fn query(self, query: &str) -> Self {
        let query = query.to_owned();
        Self { query, ..self }
    }
}

impl Server {
    /// Connects and asserts the refusal renders `code` on `route`, and that neither the
    /// body, the headers, the error frame nor the close reason contains any of `secrets`.
    async fn refuses(&self, route: Route, attempt: &Attempt, code: ErrorCode, secrets: &[&str]) {
        let expected = Rejection::new(code);
        let headers: Vec<_> = (attempt.headers.iter())
            .map(|(name, value)| (name.clone(), value.as_str()))
            .collect();
        let (query, headers) = (attempt.query.as_str(), headers.as_slice());
        match route {
            Route::Http => {
                let error = self
                    .connect(&route.path(query), headers)
                    .await
                    .err()
                    .unwrap_or_else(|| panic!("{code}: handshake should be refused"));
                let WsError::Http(response) = error else {
                    panic!("{code}: expected an HTTP refusal, got {error:?}")
                };
                let status = response.status();
                assert_eq!(Some(status.as_u16()), code.http_status(), "{code}");
                let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
                let json: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(json["type"], "error");
                assert_eq!(json["code"], code.as_str());
                assert_eq!(json["retry"], code.retry().as_str());
                assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
                assert_eq!(
                    response.headers().contains_key(header::WWW_AUTHENTICATE),
                    status == StatusCode::UNAUTHORIZED,
                    "{code}"
                );
                if matches!(status.as_u16(), 429 | 503) {
                    assert!(
                        response.headers().contains_key(header::RETRY_AFTER),
                        "{code}: Retry-After"
                    );
                }
                assert!(
                    !response
                        .headers()
                        .contains_key(header::SEC_WEBSOCKET_PROTOCOL)
                );
                let mut rendered = body;
                for value in response.headers().values() {
                    rendered.push_str(value.to_str().unwrap_or_default());
                }
                for secret in secrets {
                    assert!(
                        !rendered.contains(secret),
                        "{code}: response leaks {secret:?}"
                    );
                }
            }
            Route::Browser => {
                let (mut ws, _) = self
                    .connect(&route.path(query), headers)
                    .await
                    .unwrap_or_else(|e| panic!("{code}: the browser route upgrades, got {e:?}"));
                let frame = next_json(&mut ws).await;
                assert_eq!(frame["type"], "error", "{code}");
                assert_eq!(frame["code"], code.as_str());
                assert_eq!(frame["retry"], code.retry().as_str());
                assert!(frame["message"].is_string());
                assert_eq!(frame.as_object().unwrap().len(), 4, "{frame}");
                let text = frame.to_string();
                let (close, reason) = next_close(&mut ws).await;
                assert_eq!(
                    close,
                    expected.close_code(CloseStyle::Detailed).as_u16(),
                    "{code}"
                );
                assert_eq!(reason.split(':').next(), Some(code.reason()), "{code}");
                assert!(
                    reason.len() <= 123,
                    "{code}: reason of {} bytes",
                    reason.len()
                );
                assert_ne!(close, 1011, "{code}: 1011 is only for INTERNAL_ERROR");
                for secret in secrets {
                    assert!(
                        !text.contains(secret) && !reason.contains(secret),
                        "{code}: frame leaks {secret:?}"
                    );
                }
            }
        }
    }

    /// [`refuses`](Self::refuses) on both routes.
    async fn refuses_on_both(&self, attempt: &Attempt, code: ErrorCode, secrets: &[&str]) {
        for route in [Route::Http, Route::Browser] {
            self.refuses(route, attempt, code, secrets).await;
        }
    }
}

/// Every rejection-table row a handshake can produce, on one route.
async fn every_handshake_row(route: Route) {
    let server = Server::start(app::Options::default()).await;
    let alice = token("user-alice-7f3a");
    let sig = alice.rsplit('.').next().unwrap().to_owned();
    let secrets = [alice.as_str(), sig.as_str(), "user-alice-7f3a"];

    let forged = signed(
        &claims("user-alice-7f3a"),
        b"another-secret-that-is-32-bytes-long!",
    );
    let forged_sig = forged.rsplit('.').next().unwrap().to_owned();
    let expired = signed(
        &json!({ "sub": "user-alice-7f3a", "aud": app::AUDIENCE, "iss": app::ISSUER, "exp": now() - 3600 }),
        SECRET,
    );
    let blank = token("   ");
    let cross_site = Attempt::bearer(&alice).header(header::ORIGIN, "http://evil.example");
    let rows = [
        (Attempt::default(), ErrorCode::NoToken, vec![]),
        (
            Attempt::default().header(header::AUTHORIZATION, "Bearer not-a-jwt"),
            ErrorCode::InvalidFormat,
            vec!["not-a-jwt"],
        ),
        // Signed with another secret.
        (
            Attempt::bearer(&forged),
            ErrorCode::ValidationFailed,
            vec![&forged, &forged_sig, "user-alice-7f3a"],
        ),
        (
            Attempt::bearer(&expired),
            ErrorCode::TokenExpired,
            vec![&expired, "user-alice-7f3a"],
        ),
        (
            Attempt::bearer(&blank),
            ErrorCode::MissingUserId,
            vec![&blank],
        ),
        // A cross-site browser origin.
        (cross_site, ErrorCode::Forbidden, secrets.to_vec()),
        // A placeholder thread id.
        (
            Attempt::bearer(&alice).query("?thread_id=null"),
            ErrorCode::InvalidContext,
            secrets.to_vec(),
        ),
        // A malformed resume point.
        (
            Attempt::bearer(&alice).query("?resume=00c0ffee00c0ffee.007"),
            ErrorCode::InvalidContext,
            [secrets.as_slice(), &["007"]].concat(),
        ),
    ];
    for (attempt, code, leaks) in &rows {
        server.refuses(route, attempt, *code, leaks).await;
    }
    let as_alice = Attempt::bearer(&alice);
    let (_tab, _) = server.join("/ws?client_id=tab-1", &alice).await;
    let duplicate = Attempt::bearer(&alice).query("?client_id=tab-1");
    server
        .refuses(route, &duplicate, ErrorCode::DuplicateClient, &secrets)
        .await;
    drop(server);

    // CONNECTION_LIMIT and OVERLOADED: a first socket fills the limit; then SHUTTING_DOWN,
    // the factory drains while the listener still answers.
    let bob = token("user-bob-2b9c");
    let one_per_user = Limits {
        per_user: 1,
        ..Limits::default()
    };
    let one_in_all = Limits {
        global: 1,
        ..Limits::default()
    };
    for (limits, first, code) in [
        (one_per_user, &alice, ErrorCode::ConnectionLimit),
        (one_in_all, &bob, ErrorCode::Overloaded),
    ] {
        let server = Server::with_limits(limits).await;
        let (_tab, _) = server.join("/ws", first).await;
        server.refuses(route, &as_alice, code, &secrets).await;
        server.factory.shutdown();
        let draining = ErrorCode::ShuttingDown;
        server.refuses(route, &as_alice, draining, &secrets).await;
    }

    // AUTH_UNAVAILABLE: the verifier is down, or does not answer in time.
    let slow = app::Options {
        verify_timeout: Duration::from_millis(200),
        ..app::Options::default()
    };
    for server in [
        Server::start_with(Down, app::Options::default()).await,
        Server::start_with(Hangs, slow).await,
    ] {
        server
            .refuses(route, &as_alice, ErrorCode::AuthUnavailable, &secrets)
            .await;
    }

    // INTERNAL_ERROR: the server's id generator fails (a server bug, the only 1011).
    let broken: Arc<dyn wsctx::IdGenerator> =
        Arc::new(wsctx::from_fn(|kind| Err(GenerateError::new(kind))));
    let server = Server::start(app::Options {
        ids: Some(broken),
        ..app::Options::default()
    })
    .await;
    let route_result = expect_internal(&server, route, &alice).await;
    assert!(route_result);
}

async fn expect_internal(server: &Server, route: Route, token: &str) -> bool {
    let auth = bearer(token);
    match route {
        Route::Http => {
            let Err(WsError::Http(response)) = server
                .connect("/ws", &[(header::AUTHORIZATION, &auth)])
                .await
            else {
                return false;
            };
            response.status() == StatusCode::INTERNAL_SERVER_ERROR
        }
        Route::Browser => {
            let (mut ws, _) = server
                .connect("/ws/browser", &[(header::AUTHORIZATION, &auth)])
                .await
                .unwrap();
            let frame = next_json(&mut ws).await;
            let (code, reason) = next_close(&mut ws).await;
            frame["code"] == "INTERNAL_ERROR" && code == 1011 && reason == "internal_error"
        }
    }
}

#[tokio::test]
async fn every_handshake_rejection_on_ws_is_the_tables_http_status() {
    every_handshake_row(Route::Http).await;
}

#[tokio::test]
async fn every_handshake_rejection_on_ws_browser_is_an_error_frame_and_close_code() {
    every_handshake_row(Route::Browser).await;
}

#[tokio::test]
async fn lowercase_bearer_connects_and_gets_a_welcome() {
    let server = Server::start(app::Options::default()).await;
    let auth = format!("bearer {}", token("user-alice-7f3a"));
    let (mut ws, _) = server
        .connect(
            "/ws?thread_id=thread-42&run_id=run-7",
            &[(header::AUTHORIZATION, &auth)],
        )
        .await
        .unwrap();
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["thread_id"], "thread-42");
    assert_eq!(welcome["run_id"], "run-7");
    assert!(welcome["request_id"].as_str().unwrap().starts_with("req_"));
    assert!(welcome["client_id"].as_str().unwrap().starts_with("ws_"));
    assert!(!welcome.to_string().contains("alice"));
}

#[tokio::test]
async fn subprotocol_token_connects_and_only_wsctx_v1_is_echoed() {
    let server = Server::start(app::Options::default()).await;
    let alice = token("user-alice-7f3a");
    for path in ["/ws", "/ws/browser"] {
        let (mut ws, response) = server
            .connect(
                path,
                &[(header::SEC_WEBSOCKET_PROTOCOL, &protocols(&alice))],
            )
            .await
            .unwrap();
        let selected: Vec<_> = response
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .collect();
        assert_eq!(selected, [HeaderValue::from_static("wsctx.v1")]);
        for value in response.headers().values() {
            assert!(!value.to_str().unwrap_or_default().contains("jwt."));
        }
        assert_eq!(next_json(&mut ws).await["type"], "welcome");
    }
    // A malformed subprotocol token is INVALID_FORMAT, never echoed.
    let malformed = Attempt::default().header(header::SEC_WEBSOCKET_PROTOCOL, "wsctx.v1, jwt.***");
    server
        .refuses_on_both(&malformed, ErrorCode::InvalidFormat, &["***"])
        .await;
}

#[tokio::test]
async fn query_token_is_refused_unless_enabled() {
    let alice = token("user-alice-7f3a");
    let query = format!("?token={alice}");
    let server = Server::start(app::Options::default()).await;
    let in_query = Attempt::default().query(&query);
    server
        .refuses_on_both(&in_query, ErrorCode::NoToken, &[&alice])
        .await;
    drop(server);

    let server = Server::start(app::Options {
        allow_query_token: true,
        ..app::Options::default()
    })
    .await;
    let (mut ws, _) = server.connect(&format!("/ws{query}"), &[]).await.unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
}

#[tokio::test]
async fn expired_wrong_signature_and_wrong_audience_tokens_are_refused() {
    let server = Server::start(app::Options::default()).await;
    let cases = [
        (
            json!({ "sub": "user-alice-7f3a", "aud": app::AUDIENCE, "iss": app::ISSUER, "exp": now() - 120 }),
            SECRET,
            ErrorCode::TokenExpired,
        ),
        (
            claims("user-alice-7f3a"),
            b"wrong-secret-wrong-secret-wrong-secret".as_slice(),
            ErrorCode::ValidationFailed,
        ),
        (
            json!({ "sub": "user-alice-7f3a", "aud": "another-service", "iss": app::ISSUER, "exp": now() + 600 }),
            SECRET,
            ErrorCode::ValidationFailed,
        ),
        (
            json!({ "sub": "user-alice-7f3a", "iss": app::ISSUER, "exp": now() + 600 }),
            SECRET,
            ErrorCode::ValidationFailed,
        ),
        (
            json!({ "sub": "user-alice-7f3a", "aud": app::AUDIENCE, "iss": "evil", "exp": now() + 600 }),
            SECRET,
            ErrorCode::ValidationFailed,
        ),
        (
            json!({ "sub": "user-alice-7f3a", "aud": app::AUDIENCE, "iss": app::ISSUER }),
            SECRET,
            ErrorCode::ValidationFailed,
        ),
    ];
    for (claims, secret, code) in cases {
        let jwt = signed(&claims, secret);
        let secrets = [jwt.as_str(), "user-alice-7f3a"];
        server
            .refuses_on_both(&Attempt::bearer(&jwt), code, &secrets)
            .await;
    }
}

#[tokio::test]
async fn unusable_subjects_never_become_an_identity() {
    let server = Server::start(app::Options::default()).await;
    let long = "u".repeat(300);
    let cases = [
        ("", ErrorCode::MissingUserId),
        ("   ", ErrorCode::MissingUserId),
        (" null ", ErrorCode::InvalidContext),
        ("test", ErrorCode::InvalidContext),
        (long.as_str(), ErrorCode::InvalidContext),
        ("user\u{202E}fdp", ErrorCode::InvalidContext),
    ];
    for (sub, code) in cases {
        let jwt = token(sub);
        let trimmed = sub.trim();
        let mut secrets = vec![jwt.as_str()];
        if !trimmed.is_empty() {
            secrets.push(trimmed);
        }
        server
            .refuses_on_both(&Attempt::bearer(&jwt), code, &secrets)
            .await;
    }
    assert_eq!(server.factory.metrics().admitted, 0);
}

#[tokio::test]
async fn the_sixth_tab_of_a_user_is_refused_while_another_user_connects() {
    let server = Server::start(app::Options::default()).await;
    let alice = token("user-alice-7f3a");
    let mut tabs = Vec::new();
    for _ in 0..5 {
        tabs.push(server.join("/ws", &alice).await.0);
    }
    let as_alice = Attempt::bearer(&alice);
    server
        .refuses_on_both(&as_alice, ErrorCode::ConnectionLimit, &[&alice])
        .await;
    let (_bob, welcome) = server.join("/ws", &token("user-bob-2b9c")).await;
    assert_eq!(welcome["type"], "welcome");

    // Closing one tab frees its slot.
    let mut tab = tabs.pop().unwrap();
    tab.close(None).await.unwrap();
    while tab.next().await.is_some() {}
    let deadline = tokio::time::Instant::now() + WAIT;
    while server
        .factory
        .connections(&wsctx::UserId::try_new("user-alice-7f3a").unwrap())
        > 4
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was not freed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_again, _) = server.join("/ws", &alice).await;
}

#[tokio::test]
async fn every_tab_of_a_user_gets_its_messages_and_no_other_user_does() {
    let server = Server::start(app::Options::default()).await;
    let alice = token("user-alice-7f3a");
    let (mut a1, w1) = server.join("/ws", &alice).await;
    let (mut a2, _) = server.join("/ws/browser", &alice).await;
    // Bob also asks for Alice's user id in the query: ignored, the token decides.
    let (mut bob, _) = server
        .join("/ws?user_id=user-alice-7f3a", &token("user-bob-2b9c"))
        .await;

    a1.send(Message::text("hello tabs")).await.unwrap();
    for ws in [&mut a1, &mut a2] {
        let message = next_json(ws).await;
        assert_eq!(
            message,
            json!({ "type": "message", "from": w1["client_id"], "text": "hello tabs" })
        );
    }
    expect_silence(&mut bob).await;

    bob.send(Message::text("only for bob")).await.unwrap();
    assert_eq!(next_json(&mut bob).await["text"], "only for bob");
    expect_silence(&mut a1).await;
    expect_silence(&mut a2).await;
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1012_and_drains() {
    let server = Server::start(app::Options::default()).await;
    let (mut a, _) = server.join("/ws", &token("user-alice-7f3a")).await;
    let (mut b, _) = server.join("/ws/browser", &token("user-bob-2b9c")).await;
    let factory = server.factory.clone();
    let closes = tokio::spawn(async move {
        let first = next_close(&mut a).await;
        let second = next_close(&mut b).await;
        (first, second)
    });
    server.shutdown().await;
    let (first, second) = closes.await.unwrap();
    assert_eq!(first, (1012, "shutting_down".to_owned()));
    assert_eq!(second, (1012, "shutting_down".to_owned()));
    assert_eq!(factory.metrics().active, 0);
}

#[tokio::test]
async fn an_idle_socket_is_closed_with_4408() {
    let options = app::Options {
        limits: Limits {
            idle_timeout: Duration::from_millis(500),
            ..Limits::default()
        },
        ..app::Options::default()
    };
    let server = Server::start(options).await;
    let (mut ws, _) = server.join("/ws", &token("user-alice-7f3a")).await;
    assert_eq!(next_close(&mut ws).await, (4408, "idle_timeout".to_owned()));
}

#[tokio::test]
async fn health_metrics_and_page_are_served_without_user_ids() {
    let server = Server::start(app::Options::default()).await;
    let (_a, _) = server.join("/ws", &token("user-alice-7f3a")).await;
    let _ = server.connect("/ws", &[]).await;
    assert!(server.get("/healthz").await.starts_with("HTTP/1.1 200"));
    let before = server.factory.metrics();
    let metrics = server.get("/metrics").await;
    assert_eq!(
        server.factory.metrics(),
        before,
        "nothing moved during the scrape"
    );
    let (head, body) = metrics.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    // Every metric of the table (but cluster mode's: this server is one node without
    // Redis), typed and described; every series of the factory with the value of its
    // snapshot.
    for metric in Metric::ALL
        .into_iter()
        .filter(|m| !support::metrics::is_cluster(*m))
    {
        let (name, kind) = (metric.name(), metric.kind().as_str());
        assert!(
            body.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} in {body}"
        );
        assert!(
            body.contains(&format!("# HELP {name} {}\n", metric.help())),
            "{name}"
        );
    }
    let values = support::metrics::scraped(body);
    support::metrics::assert_mirrors(&values, &before);
    assert!(body.contains("wsctx_connections_active 1\n"), "{body}");
    assert!(
        metrics.contains("wsctx_handshake_rejections_total{code=\"NO_TOKEN\"} 1\n"),
        "{metrics}"
    );
    assert!(!metrics.contains("alice"));
    let page = server.get("/").await;
    assert!(page.contains("<title>wsctx demo</title>"));
}

#[tokio::test]
async fn protocol_violations_show_in_metrics_by_code() {
    let server = Server::start(app::Options::default()).await;
    let over = vec![b'a'; 70 * 1000];
    let cases = [
        (
            raw::encode(true, raw::TEXT, &[0x68, 0xff, 0xfe, 0x69], true),
            1007,
        ),
        (raw::encode(true, raw::TEXT, &over, true), 1009),
        (raw::encode(true, 0x3, b"x", true), 1002),
        (raw::encode(true, raw::TEXT, b"hello", false), 1002),
    ];
    for (i, (bytes, expected)) in cases.iter().enumerate() {
        let auth = format!("Bearer {}", token(&format!("user-raw-{i}")));
        let mut client = raw::connect(server.addr, "/ws", &[("Authorization", &auth)], None).await;
        client.write_raw(bytes).await;
        let (close, _) = client.read_close(WAIT).await;
        assert_eq!(close.unwrap().0, *expected);
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.factory.metrics().active > 0 {
        assert!(tokio::time::Instant::now() < deadline, "slots freed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server
        .metrics_show(&[
            "wsctx_connections_closed_total{code=\"INVALID_PAYLOAD\"} 1",
            "wsctx_connections_closed_total{code=\"MESSAGE_TOO_BIG\"} 1",
            "wsctx_connections_closed_total{code=\"PROTOCOL_ERROR\"} 2",
            "wsctx_connections_freed_total 4",
            "wsctx_connections_active 0",
        ])
        .await;
}

// The socket edge, seen through the example server: credential expiry and refresh, the
// demo token endpoint, and the pre-upgrade limits of its `serve`.

/// Options with a short close grace, so that closed sockets go quickly.
fn quick() -> app::Options {
    let options = app::Options::default();
    app::Options {
        endpoint: wsctx::axum::EndpointConfig {
            close_grace: Duration::from_millis(500),
            ..options.endpoint
        },
        ..options
    }
}

/// A token for `sub` of this server, expiring at `exp` (seconds since the epoch).
fn token_until(sub: &str, exp: u64) -> String {
    app::mint_token_until(SECRET, sub, exp).unwrap()
}

/// The instant a JWT `exp` denotes, on Tokio's clock.
fn instant_of(exp: u64) -> tokio::time::Instant {
    let at = std::time::UNIX_EPOCH + Duration::from_secs(exp);
    let left = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::Instant::now() + left
}

fn refresh_frame(token: &str) -> Message {
    Message::text(json!({ "type": "refresh", "token": token }).to_string())
}

#[tokio::test]
async fn a_token_expiring_in_1_s_closes_with_4401_and_the_token_expired_frame() {
    let server = Server::start(quick()).await;
    let exp = now() + 1;
    let (mut ws, welcome) = server
        .join("/ws", &token_until("user-alice-7f3a", exp))
        .await;
    assert_eq!(welcome["expires_at"], exp);
    let error = next_json(&mut ws).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "TOKEN_EXPIRED");
    assert_eq!(error["retry"], "after_refresh");
    // Not before `exp` (the server times it on the monotonic clock: allow 20 ms).
    let expiry = std::time::UNIX_EPOCH + Duration::from_secs(exp);
    let early = expiry
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(early <= Duration::from_millis(20), "closed {early:?} early");
    assert_eq!(
        next_close(&mut ws).await,
        (4401, "token_expired".to_owned())
    );
    server
        .metrics_show(&["wsctx_connections_closed_total{code=\"TOKEN_EXPIRED\"} 1"])
        .await;
}

#[tokio::test]
async fn a_socket_refreshed_before_expiry_is_still_open_after_it() {
    let server = Server::start(quick()).await;
    // Expires one second after `start`, whatever the sub-second clock says.
    let exp = now() + 2;
    let expiry = instant_of(exp);
    let start = expiry - Duration::from_secs(1);
    tokio::time::sleep_until(start).await;
    let (mut ws, _) = server
        .join("/ws", &token_until("user-alice-7f3a", exp))
        .await;
    tokio::time::sleep_until(start + Duration::from_millis(500)).await;
    ws.send(refresh_frame(&token_until("user-alice-7f3a", exp + 600)))
        .await
        .unwrap();
    let refreshed = next_json(&mut ws).await;
    assert_eq!(
        refreshed,
        json!({ "type": "refreshed", "expires_at": exp + 600 })
    );
    tokio::time::sleep_until(start + Duration::from_millis(1500)).await;
    // Still open past the first token's expiry: a message goes through.
    ws.send(Message::text("still here")).await.unwrap();
    assert_eq!(next_json(&mut ws).await["text"], "still here");
    assert_eq!(server.factory.metrics().active, 1);
}

#[tokio::test]
async fn a_refresh_with_another_users_token_closes_with_4403() {
    let server = Server::start(quick()).await;
    let (mut ws, _) = server.join("/ws", &token("user-alice-7f3a")).await;
    let (mut other_tab, _) = server.join("/ws", &token("user-alice-7f3a")).await;
    // A bad token is refused and changes nothing.
    ws.send(refresh_frame("not-a-jwt")).await.unwrap();
    let refused = next_json(&mut ws).await;
    assert_eq!(refused["code"], "INVALID_FORMAT");
    // Another user's valid token closes the socket.
    ws.send(refresh_frame(&token("user-bob-2b9c")))
        .await
        .unwrap();
    let error = next_json(&mut ws).await;
    assert_eq!(error["code"], "FORBIDDEN");
    assert_eq!(next_close(&mut ws).await, (4403, "forbidden".to_owned()));
    // Tokens never reach another tab, and the other tab stays open.
    expect_silence(&mut other_tab).await;
    other_tab.send(Message::text("after")).await.unwrap();
    assert_eq!(next_json(&mut other_tab).await["text"], "after");
}

#[tokio::test]
async fn the_demo_token_endpoint_renews_the_presented_users_token_only() {
    let options = app::Options {
        demo_tokens: Some(app::DemoTokens {
            secret: SECRET.to_vec(),
            ttl: Duration::from_secs(60),
        }),
        ..app::Options::default()
    };
    let server = Server::start(options).await;
    let post = |auth: Option<String>| {
        let addr = server.addr;
        async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let auth = auth.map_or_else(String::new, |a| format!("Authorization: {a}\r\n"));
            let request = format!(
                "POST /demo/token HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response
        }
    };
    let response = post(Some(bearer(&token("user-alice-7f3a")))).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let fresh = wsctx::Token::new(body["token"].as_str().unwrap());
    let user = app::verifier(SECRET).unwrap().verify_now(&fresh).unwrap();
    assert_eq!(user.user_id().as_str(), "user-alice-7f3a");
    assert_eq!(
        user.expires_at(),
        Some(std::time::UNIX_EPOCH + Duration::from_secs(body["expires_at"].as_u64().unwrap()))
    );
    assert!(post(None).await.starts_with("HTTP/1.1 401"));
    let off = Server::start(app::Options::default()).await;
    let mut stream = TcpStream::connect(off.addr).await.unwrap();
    stream
        .write_all(b"POST /demo/token HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
}

/// A connection that sends a request head one byte per second. Returns how long the
/// server kept it.
async fn slow_head(addr: SocketAddr) -> Duration {
    let start = tokio::time::Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut buf = [0u8; 256];
    for byte in head.bytes() {
        if stream.write_all(&[byte]).await.is_err() {
            return start.elapsed();
        }
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => panic!("the server answered a head it never received whole"),
        }
    }
    panic!("the whole head went through: no header-read timeout");
}

/// The example server with the listener settings `serve`, its other options default.
async fn serving(serve: ServeConfig) -> Server {
    Server::start(app::Options {
        serve,
        ..app::Options::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_senders_are_dropped_while_a_client_connects_and_chats() {
    let header_timeout = Duration::from_secs(1);
    let server = serving(ServeConfig {
        header_read_timeout: header_timeout,
        ..ServeConfig::default()
    })
    .await;
    let slow: Vec<_> = (0..200)
        .map(|_| tokio::spawn(slow_head(server.addr)))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Meanwhile a legitimate client connects and chats, every 100 ms, for 2.5 s.
    let (mut ws, _) = server.join("/ws", &token("user-alice-7f3a")).await;
    let until = tokio::time::Instant::now() + Duration::from_millis(2500);
    let mut exchanged = 0;
    while tokio::time::Instant::now() < until {
        ws.send(Message::text(format!("m{exchanged}")))
            .await
            .unwrap();
        assert_eq!(next_json(&mut ws).await["text"], format!("m{exchanged}"));
        exchanged += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(exchanged >= 10);
    for task in slow {
        let kept = task.await.unwrap();
        assert!(
            kept <= header_timeout + Duration::from_millis(1500),
            "a slow head was kept {kept:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_pending_cap_wait_until_silent_ones_time_out() {
    let header_timeout = Duration::from_millis(1500);
    let server = serving(ServeConfig {
        header_read_timeout: header_timeout,
        max_pending: 10,
    })
    .await;
    // Ten connections that never send a byte hold every pending slot.
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = tokio::time::Instant::now();
    let join = {
        let addr = server.addr;
        let alice = token("user-alice-7f3a");
        tokio::spawn(async move {
            let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, bearer(&alice).parse().unwrap());
            tokio_tungstenite::connect_async(request).await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !join.is_finished(),
        "the eleventh connection was served over the cap"
    );
    let (mut ws, _) = tokio::time::timeout(header_timeout + Duration::from_secs(3), join)
        .await
        .expect("served once the silent connections timed out")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < header_timeout + Duration::from_secs(3));
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    // The silent ones were dropped.
    for mut stream in silent {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "a silent connection was kept"
        );
    }
}

// Server push, seen through the example server: `POST /runs` reports a simulated agent
// run to every tab of its user; a tab that drops resumes with `?resume=`.

/// The position of an event or position frame.
fn position_of(frame: &Value) -> ResumePoint {
    format!("{}.{}", frame["epoch"].as_str().unwrap(), frame["seq"])
        .parse()
        .unwrap()
}

/// The events of one simulated run, in order.
const RUN: [&str; 7] = [
    "agent_started",
    "agent_thinking",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_thinking",
    "agent_completed",
];

/// Options whose runs take a few hundred milliseconds.
fn fast_runs() -> app::Options {
    app::Options {
        run_step: Duration::from_millis(60),
        ..app::Options::default()
    }
}

/// The next `n` event frames, checking that each follows `after` by one.
async fn next_events(ws: &mut Ws, n: usize, mut after: ResumePoint) -> Vec<Value> {
    let mut events = Vec::new();
    for _ in 0..n {
        let frame = next_json(ws).await;
        assert_eq!(frame["type"], "event", "{frame}");
        let at = position_of(&frame);
        assert_eq!(
            at,
            ResumePoint::new(after.epoch(), after.seq() + 1),
            "{frame}"
        );
        after = at;
        events.push(frame);
    }
    events
}

fn names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_run_reaches_every_tab_of_its_user_in_order_and_no_other_user() {
    let server = Server::start(fast_runs()).await;
    let alice = token("user-alice-7f3a");
    let (mut a1, _, start) = server.join_at("/ws", &alice).await;
    let (mut a2, _, _) = server.join_at("/ws/browser", &alice).await;
    let (mut bob, _) = server.join("/ws", &token("user-bob-2b9c")).await;

    let (status, body) = server.post("/runs?thread_id=thread-9", &alice).await;
    assert_eq!(status, 202, "{body}");
    let run: Value = serde_json::from_str(&body).unwrap();
    for ws in [&mut a1, &mut a2] {
        let events = next_events(ws, RUN.len(), start).await;
        assert_eq!(names(&events), RUN);
        for event in &events {
            assert_eq!(event["run_id"], run["run_id"]);
            assert_eq!(event["thread_id"], "thread-9");
            assert!(!event.to_string().contains("alice"), "{event}");
            let tool = event["event"].as_str().unwrap().starts_with("tool_");
            assert_eq!(event["depth"], if tool { 2 } else { 1 }, "{event}");
        }
        assert_eq!(events[0]["request_id"], run["request_id"]);
        assert_eq!(events[3]["parent_request_id"], run["request_id"]);
        assert_eq!(events[6]["data"]["steps"], 3);
    }
    expect_silence(&mut bob).await;

    // Refused like a handshake: no token, a forged one.
    assert_eq!(server.post("/runs", "not-a-jwt").await.0, 401);
    server.metrics_show(&["wsctx_events_emitted_total 7"]).await;
}

#[tokio::test]
async fn a_tab_that_drops_mid_run_resumes_with_every_event_once_in_order() {
    let server = Server::start(fast_runs()).await;
    let alice = token("user-alice-7f3a");
    let (mut ws, _, start) = server.join_at("/ws/browser", &alice).await;
    let (status, _) = server.post("/runs", &alice).await;
    assert_eq!(status, 202);
    let mut seen = next_events(&mut ws, 2, start).await;
    // The connection drops without a close handshake; the run goes on meanwhile.
    drop(ws);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let last = position_of(seen.last().unwrap());
    let (mut ws, _) = server
        .connect(
            &format!("/ws/browser?resume={last}"),
            &[(header::AUTHORIZATION, &bearer(&alice))],
        )
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    let mut at = last;
    let missed = loop {
        let frame = next_json(&mut ws).await;
        if frame["type"] == "resumed" {
            break frame["missed"].as_u64().unwrap();
        }
        assert_eq!(
            position_of(&frame),
            ResumePoint::new(at.epoch(), at.seq() + 1)
        );
        at = position_of(&frame);
        seen.push(frame);
    };
    assert!(missed >= 1, "the run went on while the tab was away");
    let rest = RUN.len() - seen.len();
    seen.extend(next_events(&mut ws, rest, at).await);
    assert_eq!(names(&seen), RUN);
    expect_silence(&mut ws).await;

    let replayed = format!("wsctx_events_replayed_total {missed}");
    server
        .metrics_show(&["wsctx_resumes_total 1", &replayed])
        .await;
}

#[tokio::test]
async fn a_resume_from_an_unknown_epoch_is_told_to_reload() {
    let server = Server::start(fast_runs()).await;
    let alice = token("user-alice-7f3a");
    let (mut ws, _) = server
        .connect(
            "/ws?resume=00c0ffee00c0ffee.3",
            &[(header::AUTHORIZATION, &bearer(&alice))],
        )
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "welcome");
    assert_eq!(next_json(&mut ws).await, json!({"type": "resume_gap"}));
    // The socket stays open and gets live events of its new stream.
    server.post("/runs", &alice).await;
    let first = next_json(&mut ws).await;
    assert_eq!(
        (first["event"].as_str(), first["seq"].as_u64()),
        (Some("agent_started"), Some(1))
    );
}
