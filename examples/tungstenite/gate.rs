//! The example's connection handling: the handshake callback ([`Gate`]) and the socket
//! loop. `main.rs` runs it; `tests/e2e_tungstenite.rs` includes this file and starts it on
//! an ephemeral port.
#![allow(
    clippy::print_stdout,
    reason = "a command-line program reports refusals"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use wsctx::http::{ExtractConfig, extract_token, query_context, select_subprotocol};
use wsctx::jwt::JwtVerifier;
use wsctx::state::Validated;
use wsctx::{
    CloseStyle, Context, ErrorCode, Frame, IsolatedManager, ManagerFactory, Outbound, Policy,
    Rejection, UuidGenerator,
};

const SUBPROTOCOLS: [&str; 1] = ["wsctx.v1"];

/// The socket edge's limits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Edge {
    /// How long a connection may take to complete its handshake (request head included).
    pub(crate) handshake_timeout: Duration,
    /// How many connections may be in their handshake at once.
    pub(crate) max_pending: usize,
    /// The longest a single write to a socket may take.
    pub(crate) write_timeout: Duration,
    /// How long after a close the connection is dropped at the latest.
    pub(crate) close_grace: Duration,
}

impl Default for Edge {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            max_pending: 1024,
            write_timeout: Duration::from_secs(10),
            close_grace: Duration::from_secs(5),
        }
    }
}

/// Small buffers (an idle socket costs a few KiB), a 64 KiB message limit, and a bounded
/// write buffer: the same sizes as the axum adapter's defaults.
pub(crate) fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024))
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(128 * 1024)
}

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
    /// an `await`; also returns when the credential expires.
    fn check(
        &self,
        request: &Request,
    ) -> Result<(Context<Validated>, Option<SystemTime>), Rejection> {
        let (token, _source) =
            extract_token(request.headers(), request.uri(), &ExtractConfig::default())?;
        let user = self.verifier.verify_now(&token)?;
        let ctx = query_context(request.uri())?
            .user_id(user.user_id().as_str())
            .build()
            .validate(&self.policy, &self.ids)?;
        Ok((ctx, user.expires_at()))
    }
}

/// Runs one connection: the handshake (refused or admitted, within the handshake
/// timeout, holding a `pending` slot), then the socket.
pub(crate) async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    gate: &Gate,
    factory: &ManagerFactory,
    edge: Edge,
    pending: OwnedSemaphorePermit,
) {
    let mut admitted = None;
    #[allow(
        clippy::result_large_err,
        reason = "the signature tungstenite's Callback requires"
    )]
    let callback = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        let admit = gate.check(request).and_then(|(ctx, expires_at)| {
            let bound = ctx.bind(Some(peer), &gate.ids)?;
            Ok((factory.create(bound)?, expires_at))
        });
        match admit {
            Ok(admission) => {
                if let Some(protocol) = select_subprotocol(request.headers(), SUBPROTOCOLS) {
                    response
                        .headers_mut()
                        .insert(http::header::SEC_WEBSOCKET_PROTOCOL, protocol);
                }
                admitted = Some(admission);
                Ok(response)
            }
            // Non-2xx, JSON body: `Rejection::to_http_response` with tungstenite's body type.
            Err(rejection) => Err(rejection.to_http_response().map(Some)),
        }
    };
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(socket_config()));
    let handshake = timeout(edge.handshake_timeout, handshake).await;
    drop(pending);
    let socket = match handshake {
        Ok(Ok(socket)) => socket,
        Ok(Err(WsError::Http(response))) => {
            println!("{peer}: refused with {}", response.status());
            return;
        }
        Ok(Err(error)) => {
            println!("{peer}: handshake failed: {error}");
            return;
        }
        Err(_elapsed) => {
            println!("{peer}: handshake timed out");
            return;
        }
    };
    let Some(((manager, outbound), expires_at)) = admitted else {
        return;
    };
    serve(socket, &manager, outbound, expires_at, edge).await;
}

/// The socket loop, in one task: frames for the user go out (each write within the write
/// timeout), text frames from the client go to every tab of its user. A close (requested
/// through the factory, a protocol violation, or the credential's expiry) is written, and
/// the connection dropped a close grace later at the latest.
async fn serve(
    mut socket: WebSocketStream<TcpStream>,
    manager: &IsolatedManager,
    mut outbound: Outbound,
    expires_at: Option<SystemTime>,
    edge: Edge,
) {
    let expiry = expires_at
        .map(|at| Instant::now() + at.duration_since(SystemTime::now()).unwrap_or_default());
    let closing_since = loop {
        tokio::select! {
            // The outbound first: after a violation, its close frame goes out before the
            // ended stream is seen.
            biased;
            frame = outbound.recv() => match frame {
                Some(Frame::Close(close)) => {
                    let now = Instant::now();
                    let message = Message::Close(Some(CloseFrame {
                        code: WsCloseCode::from(close.code.as_u16()),
                        reason: close.reason.as_str().into(),
                    }));
                    let _ = timeout(edge.write_timeout.min(edge.close_grace), socket.send(message)).await;
                    break now;
                }
                Some(frame) => {
                    let message = match frame {
                        Frame::Binary(bytes) => Message::binary(bytes.to_vec()),
                        frame => Message::text(frame.as_text().unwrap_or_default()),
                    };
                    if !matches!(timeout(edge.write_timeout, socket.send(message)).await, Ok(Ok(()))) {
                        return; // the peer is gone or does not read
                    }
                }
                None => return,
            },
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) if !manager.is_closing() => {
                    manager.record_activity();
                    // Every tab of this user gets it; no other user can.
                    let _ = manager.send_to_user(Frame::text(text.as_str()));
                }
                Some(Ok(Message::Close(_))) => break Instant::now(),
                Some(Ok(_)) => manager.record_activity(),
                // A protocol violation gets its own close code (1002, 1007, 1009).
                Some(Err(error)) => match violation(&error) {
                    Some(code) => {
                        manager.close_with(&Rejection::new(code));
                    }
                    None => return,
                },
                None => return,
            },
            () = async { sleep_until(expiry.unwrap_or_else(Instant::now)).await }, if expiry.is_some() => {
                let rejection = Rejection::new(ErrorCode::TokenExpired);
                let error = Message::text(rejection.error_frame());
                let _ = timeout(edge.write_timeout, socket.send(error)).await;
                manager.close(&rejection.close_frame(CloseStyle::Detailed));
            }
        }
    };
    // Wait for the client's close reply, never past one deadline.
    let _ = timeout_at(closing_since + edge.close_grace, async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

/// The error code of a protocol violation; `None` when the transport failed.
fn violation(error: &WsError) -> Option<ErrorCode> {
    match error {
        WsError::Capacity(_) => Some(ErrorCode::MessageTooBig),
        WsError::Utf8(_) => Some(ErrorCode::InvalidPayload),
        WsError::Protocol(_) | WsError::AttackAttempt => Some(ErrorCode::ProtocolError),
        _ => None,
    }
}

/// Accepts connections forever with the default [`Edge`].
pub(crate) async fn run(
    listener: TcpListener,
    gate: Arc<Gate>,
    factory: ManagerFactory,
) -> std::io::Result<()> {
    run_with(listener, gate, factory, Edge::default()).await
}

/// Accepts connections forever; at most `edge.max_pending` of them are in their handshake
/// at once (the others wait in the listen backlog).
pub(crate) async fn run_with(
    listener: TcpListener,
    gate: Arc<Gate>,
    factory: ManagerFactory,
    edge: Edge,
) -> std::io::Result<()> {
    let pending = Arc::new(Semaphore::new(edge.max_pending.max(1)));
    loop {
        let Ok(permit) = Arc::clone(&pending).acquire_owned().await else {
            return Ok(());
        };
        let (stream, peer) = listener.accept().await?;
        let gate = Arc::clone(&gate);
        let factory = factory.clone();
        tokio::spawn(async move { handle(stream, peer, &gate, &factory, edge, permit).await });
    }
}
