//! [`Limits`]: how many sockets, how many queued frames, how long idle.

use std::time::Duration;

/// The limits a [`ManagerFactory`](crate::ManagerFactory) enforces.
///
/// | field | default | when exceeded |
/// |---|---|---|
/// | `per_user` | 5 | CONNECTION_LIMIT (429 / 4429) |
/// | `global` | 10 000 | OVERLOADED (503 / 1013) |
/// | `outbound_queue` | 256 frames | the socket is closed as SLOW_CONSUMER (1013) |
/// | `idle_timeout` | 5 minutes | the idle reaper closes the socket with IDLE_TIMEOUT (4408) |
///
/// A limit of 0 sockets refuses every admission. An `outbound_queue` of 0 is treated
/// as 1: every socket can hold at least one frame.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use wsctx::Limits;
///
/// let limits = Limits { per_user: 3, idle_timeout: Duration::from_secs(60), ..Limits::default() };
/// assert_eq!(limits.global, 10_000);
/// assert_eq!(Limits::default().outbound_queue, 256);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    /// The most sockets one user may hold at once, closing ones included.
    pub per_user: usize,
    /// The most sockets the factory holds at once, over all users.
    pub global: usize,
    /// The most frames waiting in one socket's outbound queue.
    pub outbound_queue: usize,
    /// How long a socket may go without [`record_activity`](crate::IsolatedManager::record_activity)
    /// before the idle reaper closes it.
    pub idle_timeout: Duration,
}

impl Limits {
    /// The defaults: 5 sockets per user, 10 000 in all, 256 queued frames per socket,
    /// 5 minutes of idleness.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::Limits::DEFAULT, wsctx::Limits::default());
    /// ```
    pub const DEFAULT: Self = Self {
        per_user: 5,
        global: 10_000,
        outbound_queue: 256,
        idle_timeout: Duration::from_secs(5 * 60),
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
