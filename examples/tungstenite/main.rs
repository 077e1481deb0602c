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
