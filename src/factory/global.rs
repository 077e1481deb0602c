//! [`Global`]: the state every shard of one factory shares (the limits, the global slot
//! count, the draining flag, the idle clock, the replay byte budget, the handles on the
//! `metrics` facade).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio::time::Instant;

use crate::close::CloseFrame;
use crate::factory::limits::Limits;
use crate::factory::metrics::Report;
use crate::factory::replay::ReplayPool;
use crate::rejection::{CloseStyle, ErrorCode, Rejection};

/// Keeps a hot atomic alone on 128 bytes: two cache lines, because x86's adjacent-line
/// prefetcher pulls lines in pairs and some ARM cores (Apple's) have 128-byte lines, so
/// 64 bytes would still let a neighbour's writes invalidate it.
#[repr(align(128))]
pub(super) struct Padded<T>(pub(super) T);

pub(super) struct Global {
    limits: Limits,
    style: CloseStyle,
    /// Sockets holding a slot; never above `limits.global`.
    active: Padded<AtomicUsize>,
    draining: AtomicBool,
    /// Wakes idle reapers on shutdown.
    shutdown: Notify,
    /// Time zero of the idle clock.
    epoch: Instant,
    /// The byte budget all replay rings share.
    replay: Arc<ReplayPool>,
    /// The factory's handles on the `metrics` facade.
    report: Arc<Report>,
}

impl Global {
    /// Takes the factory's metric handles from the recorder in force.
    pub(super) fn new(limits: Limits, style: CloseStyle) -> Self {
        let report = Arc::new(Report::register());
        Self {
            limits,
            style,
            active: Padded(AtomicUsize::new(0)),
            draining: AtomicBool::new(false),
            shutdown: Notify::new(),
            epoch: Instant::now(),
            replay: Arc::new(ReplayPool::new(
                limits.replay,
                report.rings.clone(),
                report.replay_bytes.clone(),
            )),
            report,
        }
    }

    pub(super) fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(super) fn style(&self) -> CloseStyle {
        self.style
    }

    /// The factory's handles on the `metrics` facade.
    pub(super) fn report(&self) -> &Arc<Report> {
        &self.report
    }

    /// What every replay ring of this factory shares.
    pub(super) fn replay(&self) -> &Arc<ReplayPool> {
        &self.replay
    }

    /// Nanoseconds since the factory's epoch, on Tokio's clock (which tests can pause).
    pub(super) fn now(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.epoch))
    }

    /// The close frame of `code` in this factory's style.
    pub(super) fn close_frame(&self, code: ErrorCode) -> CloseFrame {
        Rejection::new(code).close_frame(self.style)
    }

    /// Takes one global slot unless all [`Limits::global`] are taken. Called under the
    /// admitting shard's write lock, after the per-user checks passed.
    pub(super) fn take_slot(&self) -> bool {
        let limit = self.limits.global;
        let taken = self
            .active
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < limit).then_some(active + 1)
            })
            .is_ok();
        if taken {
            self.report.active.up(1);
        }
        taken
    }

    /// Gives back a slot taken by [`take_slot`](Self::take_slot).
    pub(super) fn free_slot(&self) {
        self.active.0.fetch_sub(1, Ordering::AcqRel);
        self.report.active.down(1);
    }

    pub(super) fn active(&self) -> usize {
        self.active.0.load(Ordering::Relaxed)
    }

    /// The draining protocol: the flag is set before the caller visits the shards to
    /// close their sockets, and an admission reads it under its shard's lock. So an
    /// admission either sees the flag, or took that lock first and is closed by the
    /// visit. Wakes the idle reapers.
    pub(super) fn begin_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.shutdown.notify_waiters();
    }

    pub(super) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Resolves at the next [`begin_draining`](Self::begin_draining); enable it before
    /// checking [`is_draining`](Self::is_draining), so that no wake-up is missed.
    pub(super) fn draining_notified(&self) -> Notified<'_> {
        self.shutdown.notified()
    }
}

/// A duration in nanoseconds, saturating.
pub(super) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
