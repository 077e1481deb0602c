//! wsctx with tokio-tungstenite: authenticate in `accept_hdr_async`'s handshake callback,
//! refuse with the table's HTTP status, and run admitted sockets through a
//! [`ManagerFactory`].
//!
//! ```text
//! WSCTX_JWT_SECRET=$(head -c 32 /dev/urandom | base64) \
//!   cargo run --example tungstenite --features http,jwt -- 127.0.0.1:9001
//! ```
//!
//! tokio-tungstenite's callback is synchronous, so the token is verified with
//! [`JwtVerifier::verify_now`](wsctx::jwt::JwtVerifier::verify_now) (JWT verification is
//! CPU work only). An asynchronous
//! verifier would need the axum adapter or a pre-read of the request head. When the
//! callback refuses, `accept_hdr_async` writes the non-2xx response and returns
//! `Err(Error::Http(..))`: that is a refusal, not a crash.
//!
//! The socket edge, as far as tokio-tungstenite allows (the axum adapter's runner does all
//! of it):
//!
//! - the whole handshake, request head included, must finish within 10 seconds, and at
//!   most 1024 connections are in their handshake at once;
//! - messages are limited to 64 KiB, the buffers are small (4 KiB read buffer, eager
//!   writes, at most 128 KiB waiting), and a protocol violation closes with 1002, 1007
//!   or 1009;
//! - every write has a 10-second timeout, a close waits at most 5 seconds for the
//!   client's reply, and a socket is closed with 4401 when its token expires.
//!
//! What it cannot do: cap verifications in flight (the callback is synchronous, so a
//! verification never waits; an asynchronous verifier, with `max_in_flight`, needs the
//! axum adapter or a pre-read of the request head), refresh a credential on a live
//! socket (`Session::refresh` is the axum adapter's), or tell a slow request head from a
//! slow handshake (one timeout covers both). It sends no heartbeat pings.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program"
)]

mod gate;

use std::sync::Arc;

use tokio::net::TcpListener;
use wsctx::ManagerFactory;

use gate::{Gate, run};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let secret = std::env::var("WSCTX_JWT_SECRET")
        .map_err(|_| "set WSCTX_JWT_SECRET (at least 32 bytes)")?;
    let gate = Arc::new(Gate::hs256(secret.as_bytes())?);
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on ws://{addr}");
    run(listener, gate, ManagerFactory::default()).await?;
    Ok(())
}
