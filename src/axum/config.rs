//! [`EndpointConfig`]: what an [`Endpoint`](super::Endpoint) does at the socket edge.

use std::time::Duration;

/// How an [`Endpoint`](super::Endpoint) runs its sockets: limits, timeouts and buffer
/// sizes. A plain struct with public fields, like [`Limits`](crate::Limits); set it with
/// [`Endpoint::config`](super::Endpoint::config).
///
/// | field | default | what it bounds |
/// |---|---|---|
/// | `max_message_bytes` | 64 KiB | an inbound message (and frame); a larger one closes with MESSAGE_TOO_BIG (1009) |
/// | `write_timeout` | 10 s | every write to the socket; a write that takes longer drops the connection |
/// | `close_grace` | 5 s | from the moment a close is requested to the moment the connection is dropped, whatever the peer does |
/// | `ping_interval` | 25 s | how often the server pings (`None`: never) |
/// | `pong_timeout` | 20 s | how long after a ping the peer may stay silent before HEARTBEAT_TIMEOUT (4408) |
/// | `expiry_grace` | 0 | how long a socket outlives its credential's expiry before TOKEN_EXPIRED (4401) |
/// | `read_buffer_size` | 4 KiB | tungstenite's read buffer per socket (grows for a large message) |
/// | `write_buffer_size` | 0 | bytes tungstenite collects before writing (0: every frame is written at once) |
/// | `max_write_buffer_size` | 128 KiB | the most bytes waiting to be written to one socket; a larger outbound frame is not sent |
/// | `reply_queue` | 32 frames | frames [`Session::reply`](super::Session::reply) may queue for one socket |
/// | `send_position` | `false` | whether a socket admitted without `resume` first gets `{"type":"position","epoch":…,"seq":…}` (see [`ManagerFactory::create_with_position`](crate::ManagerFactory::create_with_position)) |
///
/// A socket whose close was requested (slow consumer, idle, heartbeat, token expiry,
/// disconnect, shutdown, a protocol violation) is dropped at most
/// `write_timeout + close_grace` after the request, plus the time the
/// [`MessageHandler`](super::MessageHandler) spends in the call it is in.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use wsctx::axum::EndpointConfig;
///
/// let config = EndpointConfig {
///     ping_interval: Some(Duration::from_secs(10)),
///     pong_timeout: Duration::from_secs(5),
///     ..EndpointConfig::default()
/// };
/// assert_eq!(config.close_grace, Duration::from_secs(5));
/// assert_eq!(EndpointConfig::default().max_message_bytes, 64 * 1024);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointConfig {
    /// The largest inbound message, and frame, in bytes.
    pub max_message_bytes: usize,
    /// The longest any single write (a frame, a ping, the close frame) may take.
    pub write_timeout: Duration,
    /// How long after a close is requested the connection is dropped at the latest,
    /// counted once from the request (frames from the peer do not extend it).
    pub close_grace: Duration,
    /// How often the server sends a ping; `None` (or zero) turns heartbeats off.
    pub ping_interval: Option<Duration>,
    /// How long the peer may stay silent (no pong, no frame) after a ping.
    pub pong_timeout: Duration,
    /// How long past its credential's expiry a socket may stay open.
    pub expiry_grace: Duration,
    /// tungstenite's read buffer, per socket.
    pub read_buffer_size: usize,
    /// How many bytes tungstenite collects before writing to the socket.
    pub write_buffer_size: usize,
    /// The most bytes waiting to be written to one socket. An outbound frame larger
    /// than this is not sent (a tracing warning is emitted). Raised to
    /// `write_buffer_size + 1` when it is not above `write_buffer_size`.
    pub max_write_buffer_size: usize,
    /// How many frames [`Session::reply`](super::Session::reply) may queue (at least 1).
    pub reply_queue: usize,
    /// Whether a socket admitted without a `resume` query parameter is told its
    /// position in its user's event stream first, so that it can resume even before
    /// its first event. Turn it on for clients that resume.
    pub send_position: bool,
}

impl EndpointConfig {
    /// The defaults; see the table on [`EndpointConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::axum::EndpointConfig;
    ///
    /// assert_eq!(EndpointConfig::DEFAULT, EndpointConfig::default());
    /// ```
    pub const DEFAULT: Self = Self {
        max_message_bytes: 64 * 1024,
        write_timeout: Duration::from_secs(10),
        close_grace: Duration::from_secs(5),
        ping_interval: Some(Duration::from_secs(25)),
        pong_timeout: Duration::from_secs(20),
        expiry_grace: Duration::ZERO,
        read_buffer_size: 4 * 1024,
        write_buffer_size: 0,
        max_write_buffer_size: 128 * 1024,
        reply_queue: 32,
        send_position: false,
    };

    /// The configuration with its buffer sizes made consistent (tungstenite panics on a
    /// maximum write buffer that is not above the write buffer), at least one reply slot,
    /// and a zero ping interval read as no heartbeat.
    pub(super) fn normalized(self) -> Self {
        let write_buffer_size = self.write_buffer_size.min(usize::MAX - 1);
        Self {
            write_buffer_size,
            max_write_buffer_size: self.max_write_buffer_size.max(write_buffer_size + 1),
            reply_queue: self.reply_queue.max(1),
            ping_interval: self.ping_interval.filter(|every| !every.is_zero()),
            ..self
        }
    }
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_buffers_never_make_tungstenite_panic() {
        let config = EndpointConfig {
            write_buffer_size: 4096,
            max_write_buffer_size: 1024,
            reply_queue: 0,
            ..EndpointConfig::DEFAULT
        }
        .normalized();
        assert!(config.max_write_buffer_size > config.write_buffer_size);
        assert_eq!(config.reply_queue, 1);
        let extreme = EndpointConfig {
            write_buffer_size: usize::MAX,
            ping_interval: Some(Duration::ZERO),
            ..EndpointConfig::DEFAULT
        }
        .normalized();
        assert!(extreme.max_write_buffer_size > extreme.write_buffer_size);
        assert_eq!(extreme.ping_interval, None);
    }
}
