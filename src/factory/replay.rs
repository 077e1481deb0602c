//! Replay: the per-user ring of recent event frames that lets a reconnecting client
//! receive what it missed, within [`ReplayLimits`].
//!
//! A [`ReplayRing`] belongs to one user. It has a random **epoch** and numbers that
//! user's events 1, 2, 3, … in it. It holds the newest events that fit its limits, as
//! one contiguous run ending at the newest: an event that cannot be held throws away
//! everything before it, so the ring never holds a run with a hole in it. Given the
//! last position a client saw, [`ReplayRing::since`] returns every later event, in
//! order, or [`Replay::Gap`] when some of them are gone.
//!
//! The ring is plain data: no lock, no clock, no allocation beyond its queue. The
//! caller holds it under its own lock and passes the time in. What all rings of one
//! factory share is a [`ReplayPool`]: the limits, and an atomic count of the bytes
//! held, which never exceeds [`ReplayLimits::bytes_total`].

#![cfg_attr(
    not(feature = "serde"),
    allow(
        dead_code,
        reason = "events are pushed by the emitter, which needs the serde feature"
    )
)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::time::Instant;

use crate::factory::limits::ReplayLimits;
use crate::metrics::Level;
use crate::resume::ResumePoint;

/// What each held event costs beyond its frame's bytes: the queue slot, the shared
/// string's header, the timestamp.
pub(super) const EVENT_OVERHEAD_BYTES: usize = 64;

/// Queue slots an empty ring keeps; a queue that grew past them shrinks back once empty.
const RETAINED_SLOTS: usize = 8;

/// Whether `limits` can hold any event at all.
fn keeps_anything(limits: &ReplayLimits) -> bool {
    limits.events_per_user > 0
        && !limits.window.is_zero()
        && limits.bytes_per_user > 0
        && limits.bytes_total > 0
}

/// A fresh random epoch for a new ring.
pub(super) fn random_epoch() -> u64 {
    // A v4 UUID has 122 random bits: 4 fixed bits in the high half, 2 at the top of
    // the low half, so the halves' fixed bits never meet and the XOR is all random.
    let (high, low) = uuid::Uuid::new_v4().as_u64_pair();
    high ^ low
}

/// What every ring of one factory shares: the limits, the bytes held in all, and the
/// gauges of the `metrics` facade that follow the rings and the bytes.
pub(super) struct ReplayPool {
    limits: ReplayLimits,
    /// Bytes held by all rings; never above `limits.bytes_total`.
    held: AtomicUsize,
    /// Moved by each ring's creation and drop.
    rings: Level,
    /// Moved with `held`.
    bytes: Level,
}

impl ReplayPool {
    /// A pool whose rings and bytes move the gauges `rings` and `bytes`.
    pub(super) fn new(limits: ReplayLimits, rings: Level, bytes: Level) -> Self {
        Self {
            limits,
            held: AtomicUsize::new(0),
            rings,
            bytes,
        }
    }

    /// A pool that reports to no recorder.
    #[cfg(test)]
    pub(super) fn unreported(limits: ReplayLimits) -> Self {
        Self::new(limits, Level::none(), Level::none())
    }

    /// Bytes held by all rings now (the gauge of the metrics).
    pub(super) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget if they fit under the total.
    fn try_reserve(&self, bytes: usize) -> bool {
        let total = self.limits.bytes_total;
        let reserved = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|sum| *sum <= total)
            })
            .is_ok();
        if reserved {
            self.bytes.up(bytes);
        }
        reserved
    }

    /// Gives back bytes taken by [`try_reserve`](Self::try_reserve).
    fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.held.fetch_sub(bytes, Ordering::AcqRel);
            self.bytes.down(bytes);
        }
    }
}

/// One held event.
struct Entry {
    /// When it was pushed (never before the entry ahead of it).
    at: Instant,
    frame: Arc<str>,
}

impl Entry {
    fn cost(&self) -> usize {
        cost(&self.frame)
    }
}

/// What an event with this frame costs the budgets.
fn cost(frame: &str) -> usize {
    frame.len().saturating_add(EVENT_OVERHEAD_BYTES)
}

/// The outcome of [`ReplayRing::push_with`].
#[derive(Debug)]
pub(super) struct Pushed {
    /// The event's sequence number in the ring's epoch.
    pub(super) seq: u64,
    /// The frame, for sending to the live sockets.
    pub(super) frame: Arc<str>,
    /// Whether the ring holds the event; when not, it also let go of every older event.
    pub(super) stored: bool,
}

/// What a resuming client is owed, from [`ReplayRing::since`].
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Replay {
    /// Every event after the client's position, oldest first; empty when it missed
    /// nothing.
    Missed(Vec<Arc<str>>),
    /// Some of those events are no longer held (another epoch, thrown away, expired, or
    /// a position this ring never reached): the client must reload.
    Gap,
}

/// One user's recent events. See the module documentation.
///
/// Invariant: `events` holds the sequence numbers `next_seq - events.len()` up to
/// `next_seq - 1`, in order, and `bytes` is the sum of their costs, which is what this
/// ring holds of the pool.
pub(super) struct ReplayRing {
    pool: Arc<ReplayPool>,
    epoch: u64,
    /// The number the next event gets; at least 1 (the first event of an epoch is 1,
    /// so that position 0 means "nothing seen").
    next_seq: u64,
    events: VecDeque<Entry>,
    bytes: usize,
    /// The time of the newest event pushed, held or not.
    last_event_at: Option<Instant>,
    /// When the user's last socket left; `None` while a socket is attached.
    left_at: Option<Instant>,
}

impl ReplayRing {
    /// An empty ring in `epoch` (use [`random_epoch`]), with a socket attached.
    pub(super) fn new(pool: Arc<ReplayPool>, epoch: u64) -> Self {
        pool.rings.up(1);
        Self {
            pool,
            epoch,
            next_seq: 1,
            events: VecDeque::new(),
            bytes: 0,
            last_event_at: None,
            left_at: None,
        }
    }

    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The position of a client that has seen every event so far.
    pub(super) fn position(&self) -> ResumePoint {
        ResumePoint::new(self.epoch, self.next_seq - 1)
    }

    /// Events held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.events.len()
    }

    /// Bytes held (frames plus bookkeeping), as counted against the limits.
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Assigns the next sequence number, has `render` build the frame for that
    /// position, and keeps the frame if the limits allow, throwing away the oldest
    /// events (expired ones first) to make room.
    ///
    /// `now` earlier than the previous event's time counts as that time, so that the
    /// ring stays in time order when two emitters read the clock in one order and take
    /// the lock in the other.
    pub(super) fn push_with(
        &mut self,
        now: Instant,
        render: impl FnOnce(u64, u64) -> Arc<str>,
    ) -> Pushed {
        if self.next_seq == u64::MAX {
            // 2^64 - 2 events in one epoch: start another, so that no number repeats.
            self.clear();
            self.epoch = self.epoch.wrapping_add(0x9e37_79b9_7f4a_7c15);
            self.next_seq = 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let frame = render(self.epoch, seq);
        let at = self.last_event_at.map_or(now, |last| last.max(now));
        self.last_event_at = Some(at);
        self.prune(at);

        let limits = self.pool.limits;
        let cost = cost(&frame);
        if !keeps_anything(&limits) || cost > limits.bytes_per_user || cost > limits.bytes_total {
            self.clear();
            return Pushed {
                seq,
                frame,
                stored: false,
            };
        }
        while self.events.len() >= limits.events_per_user && self.evict_oldest() {}
        while self.bytes.saturating_add(cost) > limits.bytes_per_user && self.evict_oldest() {}
        // The total is shared: make room from this user's own events only. When none
        // are left (the ring is empty), the event is not kept.
        while !self.pool.try_reserve(cost) {
            if !self.evict_oldest() {
                return Pushed {
                    seq,
                    frame,
                    stored: false,
                };
            }
        }
        self.events.push_back(Entry {
            at,
            frame: Arc::clone(&frame),
        });
        self.bytes += cost;
        Pushed {
            seq,
            frame,
            stored: true,
        }
    }

    /// Every event after `point`, oldest first, if the ring still holds all of them at
    /// `now`; otherwise [`Replay::Gap`]. Throws away expired events first.
    pub(super) fn since(&mut self, point: ResumePoint, now: Instant) -> Replay {
        self.prune(now);
        if point.epoch() != self.epoch {
            return Replay::Gap;
        }
        let newest = self.next_seq - 1;
        if point.seq() > newest {
            return Replay::Gap;
        }
        let missed = newest - point.seq();
        let held = self.events.len();
        match usize::try_from(missed) {
            Ok(missed) if missed <= held => Replay::Missed(
                self.events
                    .iter()
                    .skip(held - missed)
                    .map(|entry| Arc::clone(&entry.frame))
                    .collect(),
            ),
            _ => Replay::Gap,
        }
    }

    /// Throws away the events that are at least [`ReplayLimits::window`] old at `now`.
    /// Returns how many.
    pub(super) fn prune(&mut self, now: Instant) -> usize {
        let window = self.pool.limits.window;
        let mut pruned = 0;
        while self
            .events
            .front()
            .is_some_and(|oldest| now.saturating_duration_since(oldest.at) >= window)
        {
            self.evict_oldest();
            pruned += 1;
        }
        self.shrink_if_empty();
        pruned
    }

    /// A socket of the user was admitted: the ring is in use.
    pub(super) fn socket_arrived(&mut self) {
        self.left_at = None;
    }

    /// The user's last socket left at `now`: the ring is freed after the window.
    pub(super) fn last_socket_left(&mut self, now: Instant) {
        self.left_at = Some(now);
    }

    /// When the ring may be freed: one window after the later of the last socket
    /// leaving and the newest event. `None` while a socket is attached (or when that
    /// time is past what the clock can hold).
    pub(super) fn expires_at(&self) -> Option<Instant> {
        let left = self.left_at?;
        let latest = self.last_event_at.map_or(left, |at| at.max(left));
        latest.checked_add(self.pool.limits.window)
    }

    /// Whether the ring may be freed at `now`.
    pub(super) fn is_expired(&self, now: Instant) -> bool {
        self.expires_at().is_some_and(|at| now >= at)
    }

    /// Throws away the oldest event; `false` when there is none.
    fn evict_oldest(&mut self) -> bool {
        let Some(oldest) = self.events.pop_front() else {
            return false;
        };
        let cost = oldest.cost();
        self.bytes -= cost;
        self.pool.release(cost);
        true
    }

    /// Throws away every event.
    fn clear(&mut self) {
        self.events.clear();
        self.shrink_if_empty();
        self.pool.release(self.bytes);
        self.bytes = 0;
    }

    /// An empty ring gives back most of a queue that grew in a burst: the budgets
    /// count held events, not spare capacity.
    fn shrink_if_empty(&mut self) {
        if self.events.is_empty() && self.events.capacity() > RETAINED_SLOTS {
            self.events.shrink_to(RETAINED_SLOTS);
        }
    }
}

impl Drop for ReplayRing {
    fn drop(&mut self) {
        self.pool.release(self.bytes);
        self.pool.rings.down(1);
    }
}

#[cfg(test)]
mod tests;
