//! The slot-release measurement (BENCHMARKS.md, "Slot release"): how long a client that
//! never reads holds its slot after the server closes it.
//!
//! ```sh
//! cargo run --release --example slot_release -- [--sockets 100] [--mode full|quiet|pings]
//! ```
//!
//! An in-process server (the axum adapter with the default `EndpointConfig`: write
//! timeout 10 s, close grace 5 s) admits `--sockets` clients that never read (4 KiB
//! receive buffers), one user each. Then every user is disconnected at once, and each
//! socket's release (its handler's `on_close`, just before the slot is freed) is timed
//! from its own `disconnect_user` call.
//!
//! - `full`: before the close, the server has 4 MiB to write to each client, so its
//!   writes block; the release comes from the write timeout.
//! - `quiet`: nothing to write; the close frame goes out and the reply never comes; the
//!   release comes from the close grace.
//! - `pings`: as `quiet`, and each client sends a ping every 300 ms after the close: the
//!   grace must not restart.
//!
//! Only 127.0.0.1 is used; every phase has a timeout.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a measurement prints"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::ws::Message;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::any;
use futures_util::SinkExt as _;
use tokio::net::{TcpListener, TcpSocket};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use wsctx::axum::{Authenticated, Endpoint, EndpointConfig, MessageHandler, ServeConfig, Session};
use wsctx::http::Handshake;
use wsctx::jwt::JwtVerifier;
use wsctx::{
    CloseCode, CloseFrame, Context, Frame, Limits, ManagerFactory, Policy, Rejection, UserId,
    UuidGenerator,
};

const SECRET: &[u8] = b"slot-release-measurement-secret-0123456789";

/// When each user's socket was released.
#[derive(Default)]
struct Releases(Mutex<HashMap<String, Instant>>);

struct Recorder(Arc<Releases>);

impl MessageHandler for Recorder {
    async fn on_message(&self, _: &Session, _: Message) {}

    async fn on_close(&self, session: &Session) {
        let user = session.context().user_id().as_str().to_owned();
        if let Ok(mut releases) = self.0.0.lock() {
            releases.insert(user, Instant::now());
        }
    }
}

async fn ws(
    State(endpoint): State<Endpoint<Recorder>>,
    auth: Result<Authenticated, Rejection>,
    ws: WebSocketUpgrade,
) -> Response {
    endpoint
        .accept(ws, auth, wsctx::axum::RejectMode::BeforeUpgrade)
        .await
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Full,
    Quiet,
    Pings,
}

fn parse() -> Result<(usize, Mode), String> {
    let (mut sockets, mut mode) = (100, Mode::Full);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match (arg.as_str(), value.as_str()) {
            ("--sockets", n) => sockets = n.parse().map_err(|_| "--sockets needs a number")?,
            ("--mode", "full") => mode = Mode::Full,
            ("--mode", "quiet") => mode = Mode::Quiet,
            ("--mode", "pings") => mode = Mode::Pings,
            _ => return Err(format!("unknown argument {arg} {value}")),
        }
    }
    Ok((sockets, mode))
}

fn token(sub: &str) -> Result<String, jsonwebtoken::errors::Error> {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({ "sub": sub, "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[tokio::main]
#[allow(clippy::too_many_lines, reason = "one measurement, phase after phase")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (sockets, mode) = parse()?;
    let config = EndpointConfig::default();
    let factory = ManagerFactory::new(Limits {
        outbound_queue: 100_000,
        ..Limits::default()
    });
    let releases = Arc::new(Releases::default());
    let handshake = Handshake::builder(JwtVerifier::hs256(SECRET)?).build();
    let endpoint = Endpoint::new(handshake, factory.clone(), Recorder(Arc::clone(&releases)))
        .with_config(config);
    let router = Router::new().route("/ws", any(ws)).with_state(endpoint);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(wsctx::axum::serve(
        listener,
        router,
        ServeConfig::default(),
        std::future::pending(),
    ));

    // Clients that never read: the stream is held, never polled for input.
    let mut clients = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let socket = TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(4096)?;
        let stream = socket.connect(addr).await?;
        let mut request = format!("ws://{addr}/ws").into_client_request()?;
        let bearer = format!("Bearer {}", token(&format!("slot-user-{i:04}"))?);
        request
            .headers_mut()
            .insert("authorization", bearer.parse()?);
        let (client, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::client_async(request, stream),
        )
        .await??;
        clients.push(client);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while factory.metrics().active < sockets as u64 {
        if Instant::now() > deadline {
            return Err("not every socket was admitted".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    if mode == Mode::Full {
        let ids = UuidGenerator::new();
        let chunk: Arc<str> = "x".repeat(16 * 1024).into();
        for i in 0..sockets {
            let bound = Context::builder()
                .user_id(format!("slot-user-{i:04}"))
                .websocket_client_id("pump")
                .build()
                .validate(&Policy::default(), &ids)?
                .bind(None, &ids)?;
            // A second admission of the user, only to push frames to its socket.
            let (pump, outbound) = factory.create(bound)?;
            for _ in 0..256 {
                let _ = pump.send_to_user(Frame::Text(Arc::clone(&chunk)));
            }
            drop((pump, outbound));
        }
        // Let every writer fill its connection and block.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    let banned = CloseFrame::new(CloseCode::GOING_AWAY, "measured");
    let mut requested = HashMap::with_capacity(sockets);
    for i in 0..sockets {
        let user = format!("slot-user-{i:04}");
        let at = Instant::now();
        factory.disconnect_user(&UserId::try_new(user.as_str())?, &banned);
        requested.insert(user, at);
    }
    let pingers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                while mode == Mode::Pings
                    && client
                        .send(WsMessage::Ping(Vec::new().into()))
                        .await
                        .is_ok()
                {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                // Hold the connection, reading nothing.
                std::future::pending::<()>().await;
            })
        })
        .collect();

    let bound = config.write_timeout + config.close_grace;
    let deadline = Instant::now() + bound + Duration::from_secs(10);
    while factory.metrics().active > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let freed_at = releases.0.lock().map_err(|_| "poisoned")?.clone();
    let mut times: Vec<Duration> = requested
        .iter()
        .filter_map(|(user, at)| freed_at.get(user).map(|r| r.saturating_duration_since(*at)))
        .collect();
    times.sort_unstable();
    let m = factory.metrics();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    let max = times.last().copied().unwrap_or_default();
    println!(
        "| {mode:?} | {} / {sockets} | {:.0} | {:.0} | {:.0} | {} | {} |",
        times.len(),
        millis(median),
        millis(max),
        millis(bound),
        m.messages_discarded,
        m.active,
    );
    for pinger in pingers {
        pinger.abort();
    }
    server.abort();
    if times.len() < sockets || max > bound {
        return Err("a slot outlived write_timeout + close_grace".into());
    }
    Ok(())
}
