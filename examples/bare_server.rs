//! The load run's baseline: a bare axum WebSocket server doing the same JWT check and the
//! same per-user fan-out as `examples/server.rs`, without wsctx. Not a pattern to copy:
//! it exists so `examples/loadgen.rs` can measure wsctx's overhead side by side.
//!
//! `WSCTX_JWT_SECRET=... cargo run --release --example bare_server -- --addr 127.0.0.1:8090`
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark baseline prints"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{DecodingKey, Validation, decode};
use tokio::sync::mpsc;

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
}

type Tabs = HashMap<String, Vec<(u64, mpsc::Sender<Arc<str>>)>>;

#[derive(Clone)]
struct AppState {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
    tabs: Arc<Mutex<Tabs>>,
    next_id: Arc<AtomicU64>,
}

async fn ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let user = match decode::<Claims>(token, &state.key, &state.validation) {
        Ok(data) if !data.claims.sub.trim().is_empty() => data.claims.sub,
        Ok(_) => return StatusCode::FORBIDDEN.into_response(),
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    upgrade.on_upgrade(move |socket| serve(socket, state, user))
}

async fn serve(socket: WebSocket, state: AppState, user: String) {
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Arc<str>>(256);
    state
        .tabs
        .lock()
        .expect("tabs")
        .entry(user.clone())
        .or_default()
        .push((id, tx));
    let (mut sink, mut stream) = socket.split();
    let welcome = format!(r#"{{"type":"welcome","client_id":"ws_{id}"}}"#);
    if sink.send(Message::Text(welcome.into())).await.is_err() {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink
                .send(Message::Text(text.as_ref().into()))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        if let Message::Text(text) = message {
            let frame: Arc<str> = serde_json::json!({"type": "message", "from": format!("ws_{id}"), "text": text.as_str()})
                .to_string()
                .into();
            let senders: Vec<_> = state
                .tabs
                .lock()
                .expect("tabs")
                .get(&user)
                .map(|tabs| tabs.iter().map(|(_, tx)| tx.clone()).collect())
                .unwrap_or_default();
            for tx in senders {
                let _ = tx.try_send(Arc::clone(&frame));
            }
        }
    }
    {
        let mut tabs = state.tabs.lock().expect("tabs");
        if let Some(list) = tabs.get_mut(&user) {
            list.retain(|(tab, _)| *tab != id);
            if list.is_empty() {
                tabs.remove(&user);
            }
        }
    }
    writer.abort();
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut addr: SocketAddr = "127.0.0.1:8090".parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--addr" {
            addr = args.next().ok_or("--addr needs a value")?.parse()?;
        }
    }
    let secret = std::env::var("WSCTX_JWT_SECRET").map_err(|_| "set WSCTX_JWT_SECRET")?;
    let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    let state = AppState {
        key: Arc::new(DecodingKey::from_secret(secret.as_bytes())),
        validation: Arc::new(validation),
        tabs: Arc::default(),
        next_id: Arc::default(),
    };
    let app = Router::new().route("/ws", get(ws)).with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("bare server listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
