//! The socket runner: one [`Connection`] per admitted socket, one task, one `select!`.
//!
//! A connection is either open or closing. While open, the loop waits on, in this order:
//! the frames the handler replied with, the user's outbound queue (whose first frame
//! after a close request is the close frame), inbound frames, the heartbeat timer and
//! the credential's expiry. Once closing, it only reads (discarding data) until the
//! peer's close reply or one absolute deadline, then drops the connection.
//!
//! Every write has a timeout; a write that times out drops the connection at once (its
//! peer is not reading). So a socket whose close was requested is gone at most
//! `write_timeout + close_grace` later, whatever its peer does.

use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use ::axum::body::Bytes;
use ::axum::extract::ws::{self, Message, WebSocket};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep, sleep_until, timeout_at};

use super::config::EndpointConfig;
use super::session::{Admission, MessageHandler, Session};
use crate::close::CloseFrame;
use crate::factory::{Frame, Outbound};
use crate::http::Handshake;
use crate::rejection::{CloseStyle, ErrorCode, Rejection};
use crate::trace::{debug_event, warn_event};

/// Whether the loop goes on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// Where a connection is in its life.
#[derive(Clone, Copy)]
enum State {
    /// Frames flow both ways.
    Open,
    /// The close frame was sent (or the peer's close received): only the peer's close
    /// reply is awaited, until `deadline`.
    Closing { deadline: Instant },
}

/// The heartbeat: when to ping next, and by when the peer must have said something.
struct Heartbeat {
    next_ping: Option<Instant>,
    answer_by: Option<Instant>,
}

impl Heartbeat {
    /// The next moment the heartbeat needs the loop.
    fn wake_at(&self) -> Option<Instant> {
        match (self.next_ping, self.answer_by) {
            (Some(ping), Some(answer)) => Some(ping.min(answer)),
            (ping, answer) => ping.or(answer),
        }
    }
}

/// One admitted socket and everything its loop needs.
pub(super) struct Connection<H> {
    socket: WebSocket,
    session: Session,
    outbound: Outbound,
    replies: mpsc::Receiver<Frame>,
    handler: Arc<H>,
    config: EndpointConfig,
    state: State,
    heartbeat: Heartbeat,
    /// Fires at the heartbeat's next wake-up.
    heartbeat_timer: Pin<Box<Sleep>>,
    /// The credential's expiry the timer below was set for.
    expires_at: Option<SystemTime>,
    /// Fires when the credential expires (plus the grace); unarmed without an expiry.
    expiry_timer: Option<Pin<Box<Sleep>>>,
}

impl<H: MessageHandler> Connection<H> {
    /// The connection of an admitted socket: its session (with the handshake, for
    /// refreshes) and reply channel are made here.
    pub(super) fn new(
        socket: WebSocket,
        admission: Admission,
        handshake: Handshake,
        handler: Arc<H>,
        config: EndpointConfig,
    ) -> Self {
        let (manager, outbound, expires_at) = admission.into_parts();
        let (replies_tx, replies) = mpsc::channel(config.reply_queue);
        let now = Instant::now();
        let next_ping = config
            .ping_interval
            .and_then(|every| now.checked_add(every));
        Self {
            socket,
            session: Session::new(manager, replies_tx, handshake, expires_at),
            outbound,
            replies,
            handler,
            config,
            state: State::Open,
            heartbeat: Heartbeat {
                next_ping,
                answer_by: None,
            },
            heartbeat_timer: Box::pin(sleep_until(next_ping.unwrap_or(now))),
            expires_at: None,
            expiry_timer: None,
        }
    }

    /// Runs the socket until it is done, then frees its slot (dropping the session).
    pub(super) async fn run(mut self) {
        self.handler.on_open(&self.session).await;
        self.track_expiry();
        loop {
            let flow = match self.state {
                State::Open => self.step_open().await,
                State::Closing { deadline } => self.step_closing(deadline).await,
            };
            if flow == Flow::Stop {
                break;
            }
        }
        self.handler.on_close(&self.session).await;
        debug_event!("socket finished");
    }

    /// One turn of the open loop.
    async fn step_open(&mut self) -> Flow {
        let closing = self.session.manager().is_closing();
        let heartbeat_armed = self.heartbeat.wake_at().is_some();
        let expiry_armed = self.expiry_timer.is_some() && !closing;
        tokio::select! {
            biased;
            // This socket's own replies go first; none once a close was requested.
            Some(frame) = self.replies.recv(), if !closing => self.write_frame(frame).await,
            // The user's queue. After a close request its next frame is the close frame.
            frame = self.outbound.recv() => match frame {
                Some(Frame::Close(close)) => self.begin_close(&close).await,
                Some(frame) => self.write_frame(frame).await,
                None => Flow::Stop,
            },
            message = self.socket.next() => self.on_inbound(message).await,
            () = &mut self.heartbeat_timer, if heartbeat_armed => self.on_heartbeat().await,
            () = expiry(&mut self.expiry_timer), if expiry_armed => self.on_expiry(),
        }
    }

    /// One turn of the closing loop: read and discard until the peer's close reply,
    /// the end of the stream, or the deadline.
    async fn step_closing(&mut self, deadline: Instant) -> Flow {
        tokio::select! {
            message = self.socket.next() => match message {
                Some(Ok(_)) => Flow::Continue,
                None | Some(Err(_)) => Flow::Stop,
            },
            () = sleep_until(deadline) => {
                debug_event!("close grace elapsed");
                Flow::Stop
            }
        }
    }

    /// Handles one inbound frame (or the end of the stream) while open.
    async fn on_inbound(&mut self, message: Option<Result<Message, ::axum::Error>>) -> Flow {
        let message = match message {
            None => return Flow::Stop,
            Some(Ok(message)) => message,
            Some(Err(error)) => return self.on_read_error(error),
        };
        // Anything from the peer proves it alive.
        if self.heartbeat.answer_by.take().is_some() {
            self.rearm_heartbeat();
        }
        match message {
            Message::Text(_) | Message::Binary(_) => {
                self.session.manager().record_activity();
                // A close was requested: the handler gets nothing more from this socket.
                if !self.session.manager().is_closing() {
                    self.handler.on_message(&self.session, message).await;
                    self.track_expiry();
                }
            }
            // tungstenite queues the pong; it goes out with the next read or write.
            Message::Ping(_) => self.session.manager().record_activity(),
            Message::Pong(_) => {}
            // The peer closes: tungstenite queues the close reply and ends the stream
            // once it is out. Give it the grace.
            Message::Close(_) => self.enter_closing(Instant::now()),
        }
        Flow::Continue
    }

    /// A read failed: a protocol violation is closed with its code; anything else means
    /// the transport is gone.
    fn on_read_error(&mut self, error: ::axum::Error) -> Flow {
        match violation(error) {
            Some(code) => {
                debug_event!(error_code = code.as_str(), "protocol violation");
                self.session.manager().close_with(&Rejection::new(code));
                // The close frame comes out of the outbound queue next.
                Flow::Continue
            }
            None => Flow::Stop,
        }
    }

    /// The heartbeat timer fired: close a silent peer, or send the next ping.
    async fn on_heartbeat(&mut self) -> Flow {
        let now = Instant::now();
        if self.heartbeat.answer_by.is_some_and(|by| now >= by) {
            debug_event!(error_code = "HEARTBEAT_TIMEOUT", "peer silent");
            self.heartbeat = Heartbeat {
                next_ping: None,
                answer_by: None,
            };
            self.session
                .manager()
                .close_with(&Rejection::new(ErrorCode::HeartbeatTimeout));
            return Flow::Continue;
        }
        if self.heartbeat.next_ping.is_some_and(|at| now >= at) {
            self.heartbeat.next_ping = self
                .config
                .ping_interval
                .and_then(|every| now.checked_add(every));
            if self.heartbeat.answer_by.is_none() {
                self.heartbeat.answer_by = now.checked_add(self.config.pong_timeout);
            }
            self.rearm_heartbeat();
            return self.write(Message::Ping(Bytes::new())).await;
        }
        self.rearm_heartbeat();
        Flow::Continue
    }

    fn rearm_heartbeat(&mut self) {
        if let Some(at) = self.heartbeat.wake_at() {
            self.heartbeat_timer.as_mut().reset(at);
        }
    }

    /// The credential expired: error frame, then 4401 with retry `after_refresh`.
    fn on_expiry(&mut self) -> Flow {
        debug_event!(error_code = "TOKEN_EXPIRED", "credential expired");
        self.expiry_timer = None;
        self.session
            .close_with(&Rejection::new(ErrorCode::TokenExpired));
        Flow::Continue
    }

    /// Follows the session's expiry after a handler call (which may have refreshed it).
    fn track_expiry(&mut self) {
        let expires_at = self.session.expires_at();
        if expires_at == self.expires_at && (expires_at.is_none() || self.expiry_timer.is_some()) {
            return;
        }
        self.expires_at = expires_at;
        self.expiry_timer = expires_at.and_then(|at| {
            let left = at.duration_since(SystemTime::now()).unwrap_or_default();
            let deadline = Instant::now()
                .checked_add(left)?
                .checked_add(self.config.expiry_grace)?;
            Some(Box::pin(sleep_until(deadline)))
        });
    }

    /// The close was requested: write the session's error frame (if any) and the close
    /// frame, then wait for the peer's reply until the one deadline.
    async fn begin_close(&mut self, close: &CloseFrame) -> Flow {
        let now = Instant::now();
        self.enter_closing(now);
        let State::Closing { deadline } = self.state else {
            return Flow::Stop;
        };
        let write_by = now
            .checked_add(self.config.write_timeout)
            .map_or(deadline, |by| by.min(deadline));
        if let Some(text) = self.session.take_error_frame()
            && self.write_by(write_by, Message::Text(text.into())).await == Flow::Stop
        {
            return Flow::Stop;
        }
        self.write_by(write_by, close_message(close)).await
    }

    fn enter_closing(&mut self, now: Instant) {
        let deadline = now.checked_add(self.config.close_grace).unwrap_or(now);
        self.state = State::Closing { deadline };
    }

    async fn write_frame(&mut self, frame: Frame) -> Flow {
        match frame {
            Frame::Close(close) => self.begin_close(&close).await,
            frame => self.write(to_message(frame)).await,
        }
    }

    /// Writes one message within the write timeout.
    async fn write(&mut self, message: Message) -> Flow {
        let by = Instant::now()
            .checked_add(self.config.write_timeout)
            .unwrap_or_else(far_future);
        self.write_by(by, message).await
    }

    /// Writes one message by `by`; a late or failed write ends the connection. A frame
    /// too large for the write buffer is skipped.
    async fn write_by(&mut self, by: Instant, message: Message) -> Flow {
        match timeout_at(by, self.socket.send(message)).await {
            Ok(Ok(())) => Flow::Continue,
            Ok(Err(error)) => {
                if is_write_buffer_full(error) {
                    warn_event!("outbound frame larger than max_write_buffer_size: not sent");
                    Flow::Continue
                } else {
                    Flow::Stop
                }
            }
            Err(_elapsed) => {
                debug_event!("write timed out: peer not reading");
                Flow::Stop
            }
        }
    }
}

/// Waits for the expiry timer; never returns when there is none.
async fn expiry(timer: &mut Option<Pin<Box<Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// An instant far enough away to never fire.
fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(86_400 * 365 * 30)
}

/// The error code of a protocol violation, or `None` when the transport itself failed.
fn violation(error: ::axum::Error) -> Option<ErrorCode> {
    use tungstenite::Error as Ws;
    use tungstenite::error::ProtocolError;

    match error.into_inner().downcast::<Ws>() {
        Ok(error) => match *error {
            Ws::Capacity(_) => Some(ErrorCode::MessageTooBig),
            Ws::Utf8(_) => Some(ErrorCode::InvalidPayload),
            Ws::Protocol(ProtocolError::ResetWithoutClosingHandshake)
            | Ws::ConnectionClosed
            | Ws::AlreadyClosed
            | Ws::Io(_) => None,
            _ => Some(ErrorCode::ProtocolError),
        },
        // Not tungstenite's error: the close attempt is harmless if the peer is gone.
        Err(_) => Some(ErrorCode::ProtocolError),
    }
}

fn is_write_buffer_full(error: ::axum::Error) -> bool {
    error
        .into_inner()
        .downcast::<tungstenite::Error>()
        .is_ok_and(|error| matches!(*error, tungstenite::Error::WriteBufferFull(_)))
}

fn to_message(frame: Frame) -> Message {
    match frame {
        Frame::Text(text) => Message::Text(text.as_ref().into()),
        Frame::Binary(bytes) => Message::Binary(Bytes::copy_from_slice(&bytes)),
        Frame::Close(close) => close_message(&close),
    }
}

fn close_message(close: &CloseFrame) -> Message {
    Message::Close(Some(ws::CloseFrame {
        code: close.code.as_u16(),
        reason: close.reason.as_str().into(),
    }))
}

/// Refuses an upgraded socket with `config`'s timeouts: the error frame, the close
/// frame, then the peer's close reply until `close_grace`.
pub(super) async fn reject(
    mut socket: WebSocket,
    rejection: &Rejection,
    style: CloseStyle,
    config: &EndpointConfig,
) {
    debug_event!(
        error_code = rejection.code().as_str(),
        "socket refused after upgrade"
    );
    let now = Instant::now();
    let deadline = now.checked_add(config.close_grace).unwrap_or(now);
    let write_by = now
        .checked_add(config.write_timeout)
        .map_or(deadline, |by| by.min(deadline));
    let frame = Message::Text(rejection.error_frame().into());
    let close = close_message(&rejection.close_frame(style));
    let sent = timeout_at(write_by, async {
        socket.send(frame).await?;
        socket.send(close).await
    })
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    let _ = timeout_at(deadline, async {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await;
}
