//! [`Limits`]: how many sockets, how many queued frames, how long idle, how much event
//! history ([`ReplayLimits`]) and how large an event's data.

use std::time::Duration;

/// The limits a [`ManagerFactory`](crate::ManagerFactory) enforces.
///
/// | field | default | when exceeded |
/// |---|---|---|
/// | `per_user` | 5 | CONNECTION_LIMIT (429 / 4429) |
/// | `global` | 10 000 | OVERLOADED (503 / 1013) |
/// | `outbound_queue` | 256 frames | the socket is closed as SLOW_CONSUMER (1013) |
/// | `idle_timeout` | 5 minutes | the idle reaper closes the socket with IDLE_TIMEOUT (4408) |
/// | `replay` | see [`ReplayLimits`] | the oldest events are no longer replayable: a client that missed them gets `resume_gap` |
/// | `event_data_bytes` | 64 KiB | `emit` returns `EmitError::DataTooLarge` and sends nothing |
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
    /// How much event history each user keeps for reconnecting clients.
    pub replay: ReplayLimits,
    /// The most bytes of serialized JSON an event's `data` may take.
    pub event_data_bytes: usize,
}

impl Limits {
    /// The defaults: 5 sockets per user, 10 000 in all, 256 queued frames per socket,
    /// 5 minutes of idleness, [`ReplayLimits::DEFAULT`], 64 KiB of event data.
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
        replay: ReplayLimits::DEFAULT,
        event_data_bytes: 64 << 10,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How much event history the factory keeps so that a reconnecting client can resume.
///
/// Each user has one ring of recent events. It keeps the newest events within all of
/// these limits and throws away the oldest first:
///
/// | field | default | meaning |
/// |---|---|---|
/// | `events_per_user` | 256 | the most events one user's ring holds |
/// | `window` | 2 minutes | an event older than this is thrown away; a ring is freed this long after its user's last socket left (and its last event) |
/// | `bytes_per_user` | 256 KiB | the most bytes one user's ring holds |
/// | `bytes_total` | 64 MiB | the most bytes all rings hold together |
///
/// An event counts its frame's bytes plus 64 bytes of bookkeeping. An event that does
/// not fit `bytes_per_user` on its own is not kept, and neither is anything before it:
/// resuming from before it gets a gap. When `bytes_total` is reached, the user whose
/// event does not fit makes room by throwing away their own oldest events; if their
/// ring is empty and there is still no room, the event is not kept. One user's events
/// never push out another user's.
///
/// 0 in `events_per_user`, `bytes_per_user` or `bytes_total`, or a zero `window`,
/// keeps nothing: every client that missed an event gets a gap.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use wsctx::ReplayLimits;
///
/// let limits = ReplayLimits { window: Duration::from_secs(30), ..ReplayLimits::default() };
/// assert_eq!(limits.events_per_user, 256);
/// assert_eq!(ReplayLimits::default().bytes_total, 64 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplayLimits {
    /// The most events one user's ring holds.
    pub events_per_user: usize,
    /// How long an event stays replayable, and how long a ring outlives its user's
    /// last socket.
    pub window: Duration,
    /// The most bytes one user's ring holds.
    pub bytes_per_user: usize,
    /// The most bytes all rings of one factory hold together.
    pub bytes_total: usize,
}

impl ReplayLimits {
    /// The defaults: 256 events, 2 minutes, 256 KiB per user, 64 MiB in all.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::ReplayLimits::DEFAULT, wsctx::ReplayLimits::default());
    /// ```
    pub const DEFAULT: Self = Self {
        events_per_user: 256,
        window: Duration::from_secs(2 * 60),
        bytes_per_user: 256 << 10,
        bytes_total: 64 << 20,
    };
}

impl Default for ReplayLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
