//! The example's connection handling: the handshake callback ([`Gate`]) and the socket
//! loop. `main.rs` runs it; `tests/e2e_tungstenite.rs` includes this file and starts it on
//! an ephemeral port.
#![allow(
    clippy::print_stdout,
    reason = "a command-line program reports refusals"
)]

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use wsctx::http::{ExtractConfig, extract_token, query_context, select_subprotocol};
use wsctx::jwt::JwtVerifier;
use wsctx::state::Validated;
use wsctx::{Context, Frame, ManagerFactory, Policy, Rejection, UuidGenerator};

const SUBPROTOCOLS: [&str; 1] = ["wsctx.v1"];

/// Everything the synchronous callback needs.
pub(crate) struct Gate {
    verifier: JwtVerifier,
    policy: Policy,
    ids: UuidGenerator,
}

impl Gate {
    /// A gate for HS256 tokens signed with `secret`.
    pub(crate) fn hs256(secret: &[u8]) -> Result<Self, wsctx::jwt::JwtKeyError> {
        Ok(Self {
            verifier: JwtVerifier::hs256(secret)?,
            policy: Policy::default(),
            ids: UuidGenerator::new(),
        })
    }

    /// Origin aside, the same steps as `wsctx::http::Handshake::authenticate`, without
    /// an `await`.
    fn check(&self, request: &Request) -> Result<Context<Validated>, Rejection> {
        let (token, _source) =
            extract_token(request.headers(), request.uri(), &ExtractConfig::default())?;
        let user = self.verifier.verify_now(&token)?;
        Ok(query_context(request.uri())?
            .user_id(user.user_id().as_str())
            .build()
            .validate(&self.policy, &self.ids)?)
    }
}

/// Runs one connection: the handshake (refused or admitted), then the socket.
pub(crate) async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    gate: &Gate,
    factory: &ManagerFactory,
) {
    let mut admitted = None;
    #[allow(
        clippy::result_large_err,
        reason = "the signature tungstenite's Callback requires"
    )]
    let callback = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        let admit = gate
            .check(request)
            .and_then(|ctx| Ok(ctx.bind(Some(peer), &gate.ids)?))
            .and_then(|bound| Ok(factory.create(bound)?));
        match admit {
            Ok(manager) => {
                if let Some(protocol) = select_subprotocol(request.headers(), SUBPROTOCOLS) {
                    response
                        .headers_mut()
                        .insert(http::header::SEC_WEBSOCKET_PROTOCOL, protocol);
                }
                admitted = Some(manager);
                Ok(response)
            }
            // Non-2xx, JSON body: `Rejection::to_http_response` with tungstenite's body type.
            Err(rejection) => Err(rejection.to_http_response().map(Some)),
        }
    };
    let socket = match tokio_tungstenite::accept_hdr_async(stream, callback).await {
        Ok(socket) => socket,
        Err(WsError::Http(response)) => {
            println!("{peer}: refused with {}", response.status());
            return;
        }
        Err(error) => {
            println!("{peer}: handshake failed: {error}");
            return;
        }
    };
    let Some((manager, mut outbound)) = admitted else {
        return;
    };
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(frame) = outbound.recv().await {
            let message = match frame {
                Frame::Text(text) => Message::text(text.as_ref()),
                Frame::Binary(bytes) => Message::binary(bytes.to_vec()),
                Frame::Close(close) => Message::Close(Some(CloseFrame {
                    code: WsCloseCode::from(close.code.as_u16()),
                    reason: close.reason.as_str().into(),
                })),
            };
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        manager.record_activity();
        if let Message::Text(text) = message {
            // Every tab of this user gets it; no other user can.
            manager.send_to_user(Frame::text(text.as_str()));
        }
    }
    drop(manager);
    let _ = writer.await;
}

/// Accepts connections forever.
pub(crate) async fn run(
    listener: TcpListener,
    gate: Arc<Gate>,
    factory: ManagerFactory,
) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let gate = Arc::clone(&gate);
        let factory = factory.clone();
        tokio::spawn(async move { handle(stream, peer, &gate, &factory).await });
    }
}
