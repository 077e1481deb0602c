//! [`serve`]: hyper's HTTP/1 server with a header-read timeout and a cap on connections
//! that have not upgraded yet, in place of `axum::serve` (which has neither).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use ::axum::Router;
use ::axum::body::Body;
use ::axum::extract::connect_info::ConnectInfo;
use ::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower_service::Service as _;

use crate::trace::debug_event;

/// How [`serve`] treats connections before they upgrade.
///
/// | field | default | |
/// |---|---|---|
/// | `header_read_timeout` | 10 s | a connection that has not sent a whole request head within it is dropped; counted from when the server starts reading a head (a connection's start, or the end of its previous response), not reset per byte |
/// | `max_pending` | 1024 | connections accepted and not yet upgraded (or finished); at the cap, new connections wait in the listen backlog |
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use wsctx::axum::ServeConfig;
///
/// let config = ServeConfig { header_read_timeout: Duration::from_secs(5), ..ServeConfig::default() };
/// assert_eq!(config.max_pending, 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServeConfig {
    /// How long a connection may take to send a whole request head.
    pub header_read_timeout: Duration,
    /// How many accepted connections may be waiting for, or in, an HTTP exchange (not yet
    /// upgraded) at once; at least 1.
    pub max_pending: usize,
}

impl ServeConfig {
    /// The defaults: a 10-second header-read timeout, 1024 pending connections.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::axum::ServeConfig::DEFAULT, wsctx::axum::ServeConfig::default());
    /// ```
    pub const DEFAULT: Self = Self {
        header_read_timeout: Duration::from_secs(10),
        max_pending: 1024,
    };
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Serves `router` on `listener` over HTTP/1.1 with WebSocket upgrades until `signal`
/// resolves, then stops accepting, lets every connection that has not upgraded finish its
/// exchange, and returns. Upgraded sockets are not waited for: drain them with
/// [`ManagerFactory::shutdown`](crate::ManagerFactory::shutdown).
///
/// Unlike `axum::serve`, a connection must send its request head within
/// [`ServeConfig::header_read_timeout`] and at most [`ServeConfig::max_pending`]
/// connections are served before they upgrade, so slow or silent clients cannot hold
/// file descriptors. Handlers can read [`ConnectInfo<SocketAddr>`] as with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
///
/// # Errors
///
/// None today: a failed `accept` is retried (after a pause when it is not a
/// per-connection error, such as running out of file descriptors).
///
/// # Examples
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use wsctx::axum::ServeConfig;
///
/// # async fn run() -> std::io::Result<()> {
/// let app = Router::new().route("/healthz", get(|| async { "ok" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let ctrl_c = async { let _ = tokio::signal::ctrl_c().await; };
/// wsctx::axum::serve(listener, app, ServeConfig::default(), ctrl_c).await?;
/// # Ok(())
/// # }
/// ```
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: ServeConfig,
    signal: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let max_pending = config.max_pending.clamp(1, Semaphore::MAX_PERMITS);
    let pending = Arc::new(Semaphore::new(max_pending));
    let (stop, stopped) = watch::channel(false);
    let mut signal = pin!(signal);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&pending).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
            () = &mut signal => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    if !is_connection_error(&error) {
                        debug_event!("accept failed; pausing");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(500)) => {}
                            () = &mut signal => break,
                        }
                    }
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let router = router.clone();
        let stopped = stopped.clone();
        tokio::spawn(connection(stream, peer, router, config, permit, stopped));
    }
    drop(listener);
    let _ = stop.send(true);
    // Every pending connection holds a permit until it upgrades or ends.
    let _ = pending
        .acquire_many(u32::try_from(max_pending).unwrap_or(u32::MAX))
        .await;
    Ok(())
}

/// Errors that concern one connection, not the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves one connection until it upgrades, ends, or is shut down.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    config: ServeConfig,
    _pending: OwnedSemaphorePermit,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move {
            let response: Result<Response<Body>, Infallible> = router.call(request).await;
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let mut conn = pin!(
        builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
    );
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = async { stopped.wait_for(|stop| *stop).await.is_ok() } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
