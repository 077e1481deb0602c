//! Counters, kept per shard so that two users on two shards never share a cache line,
//! and [`MetricsSnapshot`], their sum; and [`Report`], the factory's handles on the
//! `metrics` facade (nothing without the feature), which every counter bump also moves.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::{ByCode, Count, Level, Metric, describe};
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
    #[cfg_attr(
        not(feature = "serde"),
        allow(dead_code, reason = "counted by the emitter")
    )]
    Emitted,
    Replayed,
    Resumed,
    ResumeGaps,
    RingsCreated,
    RingsFreed,
}

impl Counter {
    const COUNT: usize = Self::RingsFreed as usize + 1;

    const ALL: [Self; Self::COUNT] = [
        Self::Admitted,
        Self::Freed,
        Self::Delivered,
        Self::Dropped,
        Self::Discarded,
        Self::SlowConsumers,
        Self::IdleTimeouts,
        Self::Disconnected,
        Self::ClosedByShutdown,
        Self::Emitted,
        Self::Replayed,
        Self::Resumed,
        Self::ResumeGaps,
        Self::RingsCreated,
        Self::RingsFreed,
    ];

    /// The series of the facade this counter moves. The factory's own closes are the
    /// closes of their code; the rings are counted by the replay rings themselves (a
    /// gauge, see [`Report::rings`]).
    fn series(self, closed: &ByCode) -> Count {
        let metric = match self {
            Self::Admitted => Metric::ConnectionsAdmitted,
            Self::Freed => Metric::ConnectionsFreed,
            Self::Delivered => Metric::MessagesDelivered,
            Self::Dropped => Metric::MessagesDropped,
            Self::Discarded => Metric::MessagesDiscarded,
            Self::Disconnected => Metric::ConnectionsDisconnected,
            Self::Emitted => Metric::EventsEmitted,
            Self::Replayed => Metric::EventsReplayed,
            Self::Resumed => Metric::Resumes,
            Self::ResumeGaps => Metric::ResumeGaps,
            Self::SlowConsumers => return closed.get(ErrorCode::SlowConsumer).clone(),
            Self::IdleTimeouts => return closed.get(ErrorCode::IdleTimeout).clone(),
            Self::ClosedByShutdown => return closed.get(ErrorCode::ShuttingDown).clone(),
            Self::RingsCreated | Self::RingsFreed => return Count::none(),
        };
        Count::register(metric)
    }
}

/// One factory's handles on the `metrics` facade, taken from the recorder in force when
/// the factory is created. Zero-sized without the `metrics` feature.
pub(super) struct Report {
    counts: [Count; Counter::COUNT],
    rejected: ByCode,
    closed: ByCode,
    /// Moved with the global slot count.
    pub(super) active: Level,
    /// Moved by each replay ring's creation and drop.
    pub(super) rings: Level,
    /// Moved with the replay byte budget.
    pub(super) replay_bytes: Level,
}

impl Report {
    /// Describes every metric to the recorder in force and takes the factory's handles
    /// from it.
    pub(super) fn register() -> Self {
        describe();
        let closed = ByCode::register(Metric::ConnectionsClosed);
        Self {
            counts: Counter::ALL.map(|counter| counter.series(&closed)),
            rejected: ByCode::register(Metric::AdmissionRejections),
            closed,
            active: Level::register(Metric::ConnectionsActive),
            rings: Level::register(Metric::ReplayRings),
            replay_bytes: Level::register(Metric::ReplayBytes),
        }
    }
}

/// The counters of one shard. Each is bumped by the transition it counts, which also
/// moves the counter's series on the factory's [`Report`].
pub(super) struct Counters {
    counts: [AtomicU64; Counter::COUNT],
    rejected: [AtomicU64; ErrorCode::COUNT],
    closed_with: [AtomicU64; ErrorCode::COUNT],
    report: Arc<Report>,
}

impl Counters {
    pub(super) fn new(report: Arc<Report>) -> Self {
        Self {
            counts: Default::default(),
            rejected: Default::default(),
            closed_with: Default::default(),
            report,
        }
    }

    /// Adds `n` to `counter`; a no-op for 0, so hot paths skip the atomic.
    pub(super) fn add(&self, counter: Counter, n: usize) {
        add(&self.counts[counter as usize], n);
        self.report.counts[counter as usize].add(n);
    }

    /// The value of `counter` now.
    pub(super) fn get(&self, counter: Counter) -> u64 {
        self.counts[counter as usize].load(Ordering::Relaxed)
    }

    /// Counts an admission refused with `code`.
    pub(super) fn rejected(&self, code: ErrorCode) {
        add(&self.rejected[code.index()], 1);
        self.report.rejected.add(code);
    }

    /// Counts a socket closed with a rejection of `code`.
    pub(super) fn closed_with(&self, code: ErrorCode) {
        add(&self.closed_with[code.index()], 1);
        self.report.closed.add(code);
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
            emitted,
            replayed,
            resumed,
            gaps,
            rings_created,
            rings_freed,
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
        total.events_emitted += emitted;
        total.events_replayed += replayed;
        total.resumes += resumed;
        total.resume_gaps += gaps;
        // Created and freed under the same shard lock, so never fewer created.
        total.replay_rings += rings_created.saturating_sub(rings_freed);
        for (sum, counter) in total.rejected.iter_mut().zip(&self.rejected) {
            *sum += get(counter);
        }
        for (sum, counter) in total.closed_with.iter_mut().zip(&self.closed_with) {
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
/// No counter is labelled with a user or client id. With the `metrics` feature each
/// counter and gauge is also reported through the `metrics` crate's facade, under the
/// names of `wsctx::metrics::Metric`, whose table names the field each one mirrors.
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
    /// Events sent by an emitter (`Emitter::emit`, feature `serde`), one per event
    /// whatever the number of sockets; an emit refused for its data is not counted.
    pub events_emitted: u64,
    /// Events queued again for a resuming client by
    /// [`create_resuming`](crate::ManagerFactory::create_resuming), one per frame.
    /// Not counted in `messages_delivered`.
    pub events_replayed: u64,
    /// Resumes that found every missed event (`{"type":"resumed",…}`).
    pub resumes: u64,
    /// Resumes that could not be served (`{"type":"resume_gap"}`): another epoch, or
    /// missed events no longer held.
    pub resume_gaps: u64,
    /// Users holding a replay ring now (a gauge).
    pub replay_rings: u64,
    /// Bytes held by all replay rings now, as counted against
    /// [`ReplayLimits::bytes_total`](crate::ReplayLimits::bytes_total) (a gauge).
    pub replay_bytes: u64,
    /// Admissions refused, per error code; read with [`rejected`](Self::rejected).
    rejected: [u64; ErrorCode::COUNT],
    /// Sockets closed by [`close_with`](crate::IsolatedManager::close_with), per error
    /// code; read with [`closed`](Self::closed).
    closed_with: [u64; ErrorCode::COUNT],
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

    /// Sockets the server closed with `code`: the factory's own closes (SLOW_CONSUMER,
    /// IDLE_TIMEOUT, SHUTTING_DOWN, also counted in `slow_consumers`, `idle_timeouts` and
    /// `closed_by_shutdown`) and every [`close_with`](crate::IsolatedManager::close_with),
    /// which is how the axum runner closes protocol violations (PROTOCOL_ERROR,
    /// INVALID_PAYLOAD, MESSAGE_TOO_BIG), silent peers (HEARTBEAT_TIMEOUT) and expired
    /// credentials (TOKEN_EXPIRED).
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let bound = Context::builder().user_id("user-a").build()
    /// #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
    /// use wsctx::{ErrorCode, Rejection};
    ///
    /// let factory = ManagerFactory::default();
    /// let (manager, _outbound) = factory.create(bound)?;
    /// manager.close_with(&Rejection::new(ErrorCode::ProtocolError));
    /// assert_eq!(factory.metrics().closed(ErrorCode::ProtocolError), 1);
    /// assert_eq!(factory.metrics().closed(ErrorCode::IdleTimeout), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub const fn closed(&self, code: ErrorCode) -> u64 {
        let own = match code {
            ErrorCode::SlowConsumer => self.slow_consumers,
            ErrorCode::IdleTimeout => self.idle_timeouts,
            ErrorCode::ShuttingDown => self.closed_by_shutdown,
            _ => 0,
        };
        own + self.closed_with[code.index()]
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
