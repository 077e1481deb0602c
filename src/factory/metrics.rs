//! Counters, kept per shard so that two users on two shards never share a cache line,
//! and [`MetricsSnapshot`], their sum.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::rejection::ErrorCode;

/// A counter of one shard, other than the refused admissions (which are counted per
/// [`ErrorCode`]). The transitions that close a socket name the counter of their cause.
#[derive(Clone, Copy, Debug)]
pub(super) enum Counter {
    Admitted,
    Freed,
    Delivered,
    Dropped,
    Discarded,
    SlowConsumers,
    IdleTimeouts,
    Disconnected,
    ClosedByShutdown,
}

/// The counters of one shard. Each is bumped by the transition it counts.
#[derive(Debug, Default)]
pub(super) struct Counters {
    counts: [AtomicU64; 9],
    rejected: [AtomicU64; ErrorCode::COUNT],
}

impl Counters {
    /// Adds `n` to `counter`; a no-op for 0, so hot paths skip the atomic.
    pub(super) fn add(&self, counter: Counter, n: usize) {
        add(&self.counts[counter as usize], n);
    }

    /// Counts an admission refused with `code`.
    pub(super) fn rejected(&self, code: ErrorCode) {
        add(&self.rejected[code.index()], 1);
    }

    /// Adds this shard's counters into `total`.
    pub(super) fn sum_into(&self, total: &mut MetricsSnapshot) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let [
            admitted,
            freed,
            delivered,
            dropped,
            discarded,
            slow,
            idle,
            disconnected,
            shutdown,
        ] = self.counts.each_ref().map(get);
        total.admitted += admitted;
        total.freed += freed;
        total.messages_delivered += delivered;
        total.messages_dropped += dropped;
        total.messages_discarded += discarded;
        total.slow_consumers += slow;
        total.idle_timeouts += idle;
        total.disconnected += disconnected;
        total.closed_by_shutdown += shutdown;
        for (sum, counter) in total.rejected.iter_mut().zip(&self.rejected) {
            *sum += get(counter);
        }
    }
}

fn add(counter: &AtomicU64, n: usize) {
    if n > 0 {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
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
    /// Frames placed in an outbound queue (one per receiving socket).
    pub messages_delivered: u64,
    /// Frames not placed in a socket's queue because it was full, the socket was
    /// closing, or the send was refused (one per socket).
    pub messages_dropped: u64,
    /// Frames already queued and then thrown away unsent because their socket closed.
    pub messages_discarded: u64,
    /// Sockets closed as SLOW_CONSUMER because their outbound queue was full.
    pub slow_consumers: u64,
    /// Sockets closed by the idle reaper with IDLE_TIMEOUT.
    pub idle_timeouts: u64,
    /// Sockets closed by [`disconnect_user`](crate::ManagerFactory::disconnect_user) or
    /// [`IsolatedManager::close`](crate::IsolatedManager::close).
    pub disconnected: u64,
    /// Sockets closed by [`shutdown`](crate::ManagerFactory::shutdown).
    pub closed_by_shutdown: u64,
    /// Admissions refused, per error code; read with [`rejected`](Self::rejected).
    rejected: [u64; ErrorCode::COUNT],
}

impl MetricsSnapshot {
    /// Admissions refused with `code` (CONNECTION_LIMIT, OVERLOADED, DUPLICATE_CLIENT or
    /// SHUTTING_DOWN); 0 for codes the factory never returns.
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
        self.rejected[code.index()]
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
        let (mut total, mut i) = (0, 0);
        while i < ErrorCode::COUNT {
            total += self.rejected[i];
            i += 1;
        }
        total
    }
}
