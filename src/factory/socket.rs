//! One admitted socket: its context, its bounded outbound queue and its close slot. A
//! leaf: it knows nothing of the shard that holds it (the handles hold that).
//!
//! The queue is a `VecDeque` behind a `std::sync::Mutex` that is never held across an
//! await or while waking a task. The close slot sits beside the queue, so a close is
//! delivered even when the queue is full: the receiver checks it before the queue, and
//! a close throws the queued frames away.

use std::collections::VecDeque;
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context as TaskContext, Poll, Waker};

use crate::close::CloseFrame;
use crate::context::Context;
use crate::factory::error::TryRecvError;
use crate::factory::frame::Frame;
use crate::id::UserId;
use crate::state::Bound;

/// Queues that grew past this many slots shrink back to it once drained, so a burst
/// does not pin memory for the rest of the connection (8 slots are 192 bytes).
const RETAINED_QUEUE_SLOTS: usize = 8;

pub(super) struct Socket {
    ctx: Context<Bound>,
    /// The registry hash of the user id (shard and map key).
    hash: u64,
    /// Set, under the queue lock, when the close slot leaves `Open`. Read without it.
    closing: AtomicBool,
    /// Set when a close was requested for this socket (by its manager, a disconnect,
    /// shutdown or the idle reaper): its manager's sends are refused from then on. Not
    /// set by a queue overflow or a dropped receiver, which end only the writing side.
    close_requested: AtomicBool,
    /// Set by every recorded activity (and by the admission); the idle sweep clears it
    /// and moves `seen_active` to its own time. Activity costs one relaxed store, no
    /// clock read.
    active: AtomicBool,
    /// Nanoseconds since the factory's epoch at the last sweep that found `active` set.
    seen_active: AtomicU64,
    queue: Mutex<Queue>,
}

struct Queue {
    frames: VecDeque<Frame>,
    /// How many of the frames at the front were queued at admission (a resume's
    /// replayed events and its status frame) and are still waiting. They do not count
    /// against the queue's capacity: a client that resumes with a full ring of missed
    /// events still has room for the live ones.
    preloaded: usize,
    close: CloseSlot,
    waker: Option<Waker>,
}

impl Queue {
    /// The next frame for the receiver: a pending close first (after it, nothing more),
    /// otherwise the oldest queued frame.
    fn pop(&mut self) -> Result<Frame, TryRecvError> {
        match mem::replace(&mut self.close, CloseSlot::Taken) {
            CloseSlot::Pending(frame) => return Ok(Frame::Close(frame)),
            CloseSlot::Taken => return Err(TryRecvError::Closed),
            CloseSlot::Open => self.close = CloseSlot::Open,
        }
        let frame = self.frames.pop_front().ok_or(TryRecvError::Empty)?;
        self.preloaded = self.preloaded.saturating_sub(1);
        if self.frames.is_empty() && self.frames.capacity() > RETAINED_QUEUE_SLOTS {
            self.frames.shrink_to(RETAINED_QUEUE_SLOTS);
        }
        Ok(frame)
    }
}

enum CloseSlot {
    /// Frames flow.
    Open,
    /// A close was requested; the receiver yields it next.
    Pending(CloseFrame),
    /// The receiver has yielded the close frame, or is gone.
    Taken,
}

/// The outcome of [`Socket::push`].
pub(super) enum Push {
    /// The frame is in the queue.
    Queued,
    /// The socket is closing or closed; the frame was not queued.
    Closed,
    /// The queue was full: the socket is now closing and `discarded` queued frames were
    /// thrown away.
    Overflowed { discarded: usize },
}

impl Socket {
    pub(super) fn new(ctx: Context<Bound>, hash: u64) -> Self {
        Self {
            ctx,
            hash,
            closing: AtomicBool::new(false),
            close_requested: AtomicBool::new(false),
            active: AtomicBool::new(true),
            seen_active: AtomicU64::new(0),
            queue: Mutex::new(Queue {
                frames: VecDeque::new(),
                preloaded: 0,
                close: CloseSlot::Open,
                waker: None,
            }),
        }
    }

    pub(super) fn context(&self) -> &Context<Bound> {
        &self.ctx
    }

    pub(super) fn hash(&self) -> u64 {
        self.hash
    }

    pub(super) fn belongs_to(&self, user: &UserId) -> bool {
        self.ctx.user_id() == user
    }

    pub(super) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    pub(super) fn is_close_requested(&self) -> bool {
        self.close_requested.load(Ordering::Acquire)
    }

    pub(super) fn mark_active(&self) {
        // Read first: a busy socket's flag is already set, and skipping the store keeps
        // the cache line clean.
        if !self.active.load(Ordering::Relaxed) {
            self.active.store(true, Ordering::Relaxed);
        }
    }

    /// One idle sweep's look at this socket at time `now`: whether it has gone at least
    /// `timeout` without activity since the sweep that last saw it active.
    pub(super) fn idle_for(&self, now: u64, timeout: u64) -> bool {
        if self.active.swap(false, Ordering::Relaxed) {
            self.seen_active.store(now, Ordering::Relaxed);
            return false;
        }
        now.saturating_sub(self.seen_active.load(Ordering::Relaxed)) >= timeout
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while holding this lock; recover rather than propagate if
        // that ever changes.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `frames` on a socket no other thread can see yet (before it is
    /// registered): they go first and do not count against the queue's capacity.
    pub(super) fn preload(&self, frames: Vec<Frame>) {
        let mut queue = self.lock();
        queue.preloaded = frames.len();
        queue.frames = VecDeque::from(frames);
    }

    /// Queues `frame` unless the socket is closing. A full queue (`capacity` frames
    /// beyond the preloaded ones still waiting) closes the socket with the frame
    /// `overflow` returns.
    pub(super) fn push(
        &self,
        frame: Frame,
        capacity: usize,
        overflow: impl FnOnce() -> CloseFrame,
    ) -> Push {
        let mut queue = self.lock();
        if !matches!(queue.close, CloseSlot::Open) {
            return Push::Closed;
        }
        if queue.frames.len() < capacity.saturating_add(queue.preloaded) {
            queue.frames.push_back(frame);
            let waker = queue.waker.take();
            drop(queue);
            if let Some(waker) = waker {
                waker.wake();
            }
            return Push::Queued;
        }
        let discarded = self.close_and_wake(queue, overflow());
        Push::Overflowed { discarded }
    }

    /// Requests a close with (a copy of) `frame`. Returns the number of queued frames
    /// thrown away when this call started the close, `None` when the socket was already
    /// closing (its first close frame stands; the request is still recorded).
    pub(super) fn request_close(&self, frame: &CloseFrame) -> Option<usize> {
        self.close_requested.store(true, Ordering::Release);
        let queue = self.lock();
        if !matches!(queue.close, CloseSlot::Open) {
            return None;
        }
        Some(self.close_and_wake(queue, frame.clone()))
    }

    /// Moves an open socket to `Pending(frame)`; then, with the lock released, throws the
    /// queued frames away and wakes the receiver. Returns how many frames were thrown
    /// away.
    fn close_and_wake(&self, mut queue: MutexGuard<'_, Queue>, frame: CloseFrame) -> usize {
        queue.close = CloseSlot::Pending(frame);
        self.closing.store(true, Ordering::Release);
        let frames = mem::take(&mut queue.frames);
        queue.preloaded = 0;
        let waker = queue.waker.take();
        drop(queue);
        if let Some(waker) = waker {
            waker.wake();
        }
        frames.len()
    }

    /// The receiving side: the close frame first, then queued frames; `None` after the
    /// close frame was yielded.
    pub(super) fn poll_recv(&self, cx: &mut TaskContext<'_>) -> Poll<Option<Frame>> {
        let mut queue = self.lock();
        match queue.pop() {
            Ok(frame) => Poll::Ready(Some(frame)),
            Err(TryRecvError::Closed) => Poll::Ready(None),
            Err(TryRecvError::Empty) => {
                match &mut queue.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// Like [`poll_recv`](Self::poll_recv), without registering a waker.
    pub(super) fn try_recv(&self) -> Result<Frame, TryRecvError> {
        self.lock().pop()
    }

    /// The receiver is gone: nothing will be read again. Returns the number of queued
    /// frames thrown away.
    pub(super) fn receiver_dropped(&self) -> usize {
        let mut queue = self.lock();
        queue.close = CloseSlot::Taken;
        self.closing.store(true, Ordering::Release);
        queue.waker = None;
        let frames = mem::take(&mut queue.frames);
        queue.preloaded = 0;
        drop(queue);
        frames.len()
    }

    /// Frames waiting in the queue.
    pub(super) fn queued(&self) -> usize {
        self.lock().frames.len()
    }
}
