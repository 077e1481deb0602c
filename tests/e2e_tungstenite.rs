//! End-to-end: examples/tungstenite/gate.rs (tokio-tungstenite's `accept_hdr_async` with the
//! `http` helpers) on an ephemeral 127.0.0.1 port.
#![cfg(all(feature = "http", feature = "jwt"))]
#[path = "../examples/tungstenite/gate.rs"]
mod example;
mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderValue, header};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use wsctx::{Limits, ManagerFactory};

const SECRET: &[u8] = b"tungstenite-test-only-secret-0123456789";

fn token(sub: &str, exp_offset: i64) -> String {
    let exp = support::jwt::now().saturating_add_signed(exp_offset);
    support::jwt::hs256(&serde_json::json!({ "sub": sub, "exp": exp }), SECRET)
}

async fn start(limits: Limits) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = Arc::new(example::Gate::hs256(SECRET).unwrap());
    tokio::spawn(example::run(listener, gate, ManagerFactory::new(limits)));
    addr
}

async fn connect(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(header::HeaderName, String)],
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        http::Response<Option<Vec<u8>>>,
    ),
    WsError,
> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .append(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .unwrap()
}

fn refusal(result: Result<impl Sized, WsError>) -> (u16, serde_json::Value) {
    let Err(WsError::Http(response)) = result else {
        panic!("expected an HTTP refusal")
    };
    let body: serde_json::Value =
        serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
    (response.status().as_u16(), body)
}

#[tokio::test]
async fn refusals_are_http_statuses_and_the_server_keeps_running() {
    let addr = start(Limits {
        per_user: 1,
        ..Limits::default()
    })
    .await;
    let (status, body) = refusal(connect(addr, "/", &[]).await);
    assert_eq!((status, body["code"].as_str()), (401, Some("NO_TOKEN")));
    let expired = token("user-alice-7f3a", -3600);
    let placeholder = token("null", 600);
    for (jwt, status, code) in [
        (&expired, 401, "TOKEN_EXPIRED"),
        (&placeholder, 400, "INVALID_CONTEXT"),
    ] {
        let bearer = [(header::AUTHORIZATION, format!("Bearer {jwt}"))];
        let (refused, body) = refusal(connect(addr, "/", &bearer).await);
        assert_eq!((refused, body["code"].as_str()), (status, Some(code)));
        assert!(!body.to_string().contains(jwt.as_str()));
    }

    // The refusals did not take the accept loop down.
    let alice = format!("Bearer {}", token("user-alice-7f3a", 600));
    let (mut ws, response) = connect(
        addr,
        "/?thread_id=t-1",
        &[
            (header::AUTHORIZATION, alice.clone()),
            (
                header::SEC_WEBSOCKET_PROTOCOL,
                "wsctx.v1, jwt.eA".to_owned(),
            ),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        response.headers()[header::SEC_WEBSOCKET_PROTOCOL],
        "wsctx.v1"
    );
    let (status, body) = refusal(connect(addr, "/", &[(header::AUTHORIZATION, alice)]).await);
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("CONNECTION_LIMIT"))
    );

    ws.send(Message::text("ping from alice")).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::text("ping from alice"));
}

/// Starts the example with short edge limits; returns its address and factory.
async fn start_edge(limits: Limits) -> (std::net::SocketAddr, ManagerFactory) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = Arc::new(example::Gate::hs256(SECRET).unwrap());
    let factory = ManagerFactory::new(limits);
    let edge = example::Edge {
        handshake_timeout: Duration::from_millis(500),
        max_pending: 64,
        write_timeout: Duration::from_millis(500),
        close_grace: Duration::from_millis(500),
    };
    tokio::spawn(example::run_with(listener, gate, factory.clone(), edge));
    (addr, factory)
}

async fn wait_freed(factory: &ManagerFactory, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while factory.metrics().active > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot not freed within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tungstenite_example_enforces_the_socket_edge() {
    use support::raw;

    let (addr, factory) = start_edge(Limits {
        outbound_queue: 100_000,
        ..Limits::default()
    })
    .await;
    let auth = |sub: &str, exp: i64| format!("Bearer {}", token(sub, exp));

    // A connection that never sends its handshake is dropped at the handshake timeout.
    let mut silent = raw::tcp(addr, None).await;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::io::AsyncReadExt::read(&mut silent, &mut buf),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "a silent connection was kept"
    );

    // Over-limit and non-UTF-8 messages close with 1009 and 1007.
    for (sub, bytes, code) in [
        (
            "user-big",
            raw::encode(true, raw::TEXT, &vec![b'a'; 70_000], true),
            1009,
        ),
        (
            "user-utf8",
            raw::encode(true, raw::TEXT, &[0xff, 0xfe], true),
            1007,
        ),
        ("user-opcode", raw::encode(true, 0x3, b"x", true), 1002),
    ] {
        let mut client = raw::connect(addr, "/", &[("Authorization", &auth(sub, 600))], None).await;
        client.write_raw(&bytes).await;
        let (close, _) = client.read_close(Duration::from_secs(5)).await;
        assert_eq!(close.map(|c| c.0), Some(code), "{sub}");
    }

    // An expired credential: the TOKEN_EXPIRED frame, then 4401.
    let mut expiring = raw::connect(
        addr,
        "/",
        &[("Authorization", &auth("user-expiring", 1))],
        None,
    )
    .await;
    let (close, texts) = expiring.read_close(Duration::from_secs(5)).await;
    assert_eq!(close, Some((4401, "token_expired".to_owned())));
    assert!(
        texts.iter().any(|t| t.contains("TOKEN_EXPIRED")),
        "{texts:?}"
    );
    drop(expiring);
    wait_freed(&factory, Duration::from_secs(5)).await;

    // A client that never reads, filled up and then disconnected, is dropped within
    // write timeout + close grace.
    let _never_reads = raw::connect(
        addr,
        "/",
        &[("Authorization", &auth("user-stuck", 600))],
        Some(4096),
    )
    .await;
    let (pump, mut pump_out) = factory
        .create(support::contexts::bound("user-stuck", "pump"))
        .unwrap();
    let chunk: Arc<str> = "x".repeat(16 * 1024).into();
    for _ in 0..512 {
        let _ = pump.send_to_user(wsctx::Frame::Text(chunk.clone()));
    }
    drop(pump);
    while pump_out.try_recv().is_ok() {}
    tokio::time::sleep(Duration::from_millis(300)).await;
    let user = wsctx::UserId::try_new("user-stuck").unwrap();
    factory.disconnect_user(
        &user,
        &wsctx::CloseFrame::new(wsctx::CloseCode::GOING_AWAY, "banned"),
    );
    wait_freed(
        &factory,
        Duration::from_millis(2500), // write timeout + close grace + slack
    )
    .await;
    assert!(
        factory.metrics().messages_discarded > 0,
        "the connection was not full"
    );
}
