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
