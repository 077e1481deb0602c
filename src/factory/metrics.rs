//! Counters, kept per shard so that two users on two shards never share a cache line,
//! and [`MetricsSnapshot`], their sum.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::ErrorCode;
use crate::factory::error::FactoryError;

/// The counters of one shard. Each is bumped by the transition it counts.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) admitted: AtomicU64,
    pub(super) freed: AtomicU64,
    pub(super) rejected_connection_limit: AtomicU64,
    pub(super) rejected_overloaded: AtomicU64,
    pub(super) rejected_duplicate_client: AtomicU64,
    pub(super) rejected_shutting_down: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) discarded: AtomicU64,
    pub(super) slow_consumers: AtomicU64,
    pub(super) idle_timeouts: AtomicU64,
    pub(super) disconnected: AtomicU64,
    pub(super) closed_by_shutdown: AtomicU64,
}

/// Adds `n` to a counter; a no-op for 0, so hot paths skip the atomic.
pub(super) fn add(counter: &AtomicU64, n: usize) {
    if n > 0 {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl Counters {
    pub(super) fn rejected(&self, error: FactoryError) {
        let counter = match error {
            FactoryError::ConnectionLimit => &self.rejected_connection_limit,
            FactoryError::Overloaded => &self.rejected_overloaded,
            FactoryError::DuplicateClient => &self.rejected_duplicate_client,
            FactoryError::ShuttingDown => &self.rejected_shutting_down,
        };
        add(counter, 1);
    }

    /// Adds this shard's counters into `total`.
    pub(super) fn sum_into(&self, total: &mut MetricsSnapshot) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        total.admitted += get(&self.admitted);
        total.freed += get(&self.freed);
        total.rejected_connection_limit += get(&self.rejected_connection_limit);
        total.rejected_overloaded += get(&self.rejected_overloaded);
        total.rejected_duplicate_client += get(&self.rejected_duplicate_client);
        total.rejected_shutting_down += get(&self.rejected_shutting_down);
        total.messages_delivered += get(&self.delivered);
        total.messages_dropped += get(&self.dropped);
        total.messages_discarded += get(&self.discarded);
        total.slow_consumers += get(&self.slow_consumers);
        total.idle_timeouts += get(&self.idle_timeouts);
        total.disconnected += get(&self.disconnected);
        total.closed_by_shutdown += get(&self.closed_by_shutdown);
    }
}

/// The factory's counters at one moment. Counters only grow, except `active`.
///
/// Each counter is read on its own, so a snapshot taken while sockets come and go may
/// be off by the transitions in flight; once they settle, `active == admitted - freed`.
/// No counter is labelled with a user or client id.
///
/// # Examples
///
/// ```
/// # use wsctx::{Context, ErrorCode, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
/// # let bound = |tab: &str| -> Result<Context<wsctx::state::Bound>, Box<dyn std::error::Error>> {
/// #     Ok(Context::builder().user_id("user-a").websocket_client_id(tab).build()
/// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?)
/// # };
/// let factory = ManagerFactory::default();
/// let first = factory.create(bound("tab-1")?)?;
/// assert!(factory.create(bound("tab-1")?).is_err()); // same client id
/// drop(first);
///
/// let m = factory.metrics();
/// assert_eq!((m.admitted, m.freed, m.active), (1, 1, 0));
/// assert_eq!(m.rejected(ErrorCode::DuplicateClient), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Sockets admitted by [`create`](crate::ManagerFactory::create).
    pub admitted: u64,
    /// Slots freed by dropping an [`IsolatedManager`](crate::IsolatedManager).
    pub freed: u64,
    /// Sockets holding a slot now.
    pub active: u64,
    /// Admissions refused with CONNECTION_LIMIT.
    pub rejected_connection_limit: u64,
    /// Admissions refused with OVERLOADED.
    pub rejected_overloaded: u64,
    /// Admissions refused with DUPLICATE_CLIENT.
    pub rejected_duplicate_client: u64,
    /// Admissions refused with SHUTTING_DOWN.
    pub rejected_shutting_down: u64,
    /// Frames placed in an outbound queue (one per receiving socket).
    pub messages_delivered: u64,
    /// Frames not placed in a socket's queue because it was full or the socket was
    /// closing (one per socket).
    pub messages_dropped: u64,
    /// Frames already queued and then thrown away unsent because their socket closed.
    pub messages_discarded: u64,
    /// Sockets closed as SLOW_CONSUMER because their outbound queue was full.
    pub slow_consumers: u64,
    /// Sockets closed by the idle reaper with IDLE_TIMEOUT.
    pub idle_timeouts: u64,
    /// Sockets closed by [`disconnect_user`](crate::ManagerFactory::disconnect_user),
    /// [`IsolatedManager::close`](crate::IsolatedManager::close) or a
    /// [`Frame::Close`](crate::Frame::Close) sent to a user.
    pub disconnected: u64,
    /// Sockets closed by [`shutdown`](crate::ManagerFactory::shutdown).
    pub closed_by_shutdown: u64,
}

impl MetricsSnapshot {
    /// Admissions refused with `code`; 0 for codes the factory never returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{ErrorCode, ManagerFactory};
    ///
    /// assert_eq!(ManagerFactory::default().metrics().rejected(ErrorCode::Overloaded), 0);
    /// ```
    #[must_use]
    pub const fn rejected(&self, code: ErrorCode) -> u64 {
        match code {
            ErrorCode::ConnectionLimit => self.rejected_connection_limit,
            ErrorCode::Overloaded => self.rejected_overloaded,
            ErrorCode::DuplicateClient => self.rejected_duplicate_client,
            ErrorCode::ShuttingDown => self.rejected_shutting_down,
            _ => 0,
        }
    }

    /// Every refused admission.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::ManagerFactory::default().metrics().rejected_total(), 0);
    /// ```
    #[must_use]
    pub const fn rejected_total(&self) -> u64 {
        self.rejected_connection_limit
            + self.rejected_overloaded
            + self.rejected_duplicate_client
            + self.rejected_shutting_down
    }
}
