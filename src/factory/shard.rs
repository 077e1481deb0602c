//! One shard of the registry and the transitions that touch one shard: admission,
//! release, fan-out and closes. Also [`Global`], the state every shard shares.
//!
//! A socket holds an `Arc` of its shard, not of the factory: admitting and dropping
//! sockets of users on different shards never touches a shared reference count. The
//! only shared write on those paths is the global admission counter.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::close::{CloseCode, CloseFrame};
use crate::context::Context;
use crate::factory::error::FactoryError;
use crate::factory::frame::{Delivery, Frame};
use crate::factory::limits::Limits;
use crate::factory::metrics::{Counter, Counters};
use crate::factory::registry::SocketMap;
use crate::factory::socket::{Push, Socket};
use crate::id::UserId;
use crate::rejection::{CloseStyle, ErrorCode, Rejection};
use crate::state::Bound;
use crate::trace::warn_event;

/// Keeps a hot atomic on its own cache line.
#[repr(align(128))]
pub(super) struct Padded<T>(pub(super) T);

/// What every shard of one factory shares.
pub(super) struct Global {
    pub(super) limits: Limits,
    pub(super) style: CloseStyle,
    /// Sockets holding a slot; never above `limits.global`.
    pub(super) active: Padded<AtomicUsize>,
    pub(super) draining: AtomicBool,
    /// Wakes idle reapers on shutdown.
    pub(super) shutdown: Notify,
    /// Time zero of the idle clock.
    epoch: Instant,
}

impl Global {
    pub(super) fn new(limits: Limits, style: CloseStyle) -> Self {
        Self {
            limits,
            style,
            active: Padded(AtomicUsize::new(0)),
            draining: AtomicBool::new(false),
            shutdown: Notify::new(),
            epoch: Instant::now(),
        }
    }

    /// Nanoseconds since the factory's epoch, on Tokio's clock (which tests can pause).
    pub(super) fn now(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.epoch))
    }

    /// The close frame of `code` in this factory's style.
    pub(super) fn close_frame(&self, code: ErrorCode) -> CloseFrame {
        Rejection::new(code).close_frame(self.style)
    }

    pub(super) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub(super) fn active(&self) -> usize {
        self.active.0.load(Ordering::Relaxed)
    }
}

/// A duration in nanoseconds, saturating.
pub(super) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A slice of the registry: the sockets of the users whose hash falls here, their
/// counters, and a handle to the shared state. Aligned to 128 bytes so that two shards
/// never share a cache line.
#[repr(align(128))]
pub(super) struct Shard {
    sockets: RwLock<SocketMap>,
    pub(super) counters: Counters,
    pub(super) global: Arc<Global>,
}

impl Shard {
    pub(super) fn new(global: Arc<Global>) -> Self {
        Self {
            sockets: RwLock::default(),
            counters: Counters::default(),
            global,
        }
    }

    pub(super) fn read(&self) -> RwLockReadGuard<'_, SocketMap> {
        // Nothing panics while holding this lock; recover rather than propagate if
        // that ever changes.
        self.sockets.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, SocketMap> {
        self.sockets.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a socket for `ctx`, whose user hashes to `hash`: the checks and the
    /// insertion are one step under this shard's write lock, and the global slot is
    /// taken with a compare-and-swap inside it.
    pub(super) fn admit(
        self: &Arc<Self>,
        ctx: Context<Bound>,
        hash: u64,
    ) -> Result<Arc<Socket>, FactoryError> {
        let socket = Arc::new(Socket::new(ctx, hash, Arc::clone(self)));
        let mut sockets = self.write();
        if let Err(error) = self.check(&sockets, &socket) {
            drop(sockets);
            self.counters.rejected(error.code());
            return Err(error);
        }
        sockets.entry(hash).or_default().push(Arc::clone(&socket));
        self.counters.add(Counter::Admitted, 1);
        drop(sockets);
        Ok(socket)
    }

    /// The admission checks, in order: draining, duplicate client id, per-user limit,
    /// global limit (which takes the slot when it passes).
    fn check(&self, sockets: &SocketMap, new: &Socket) -> Result<(), FactoryError> {
        let global = &*self.global;
        // Read under the shard lock: `shutdown` sets the flag before it visits the
        // shards, so an admission either sees it or is closed by that visit.
        if global.is_draining() {
            return Err(FactoryError::ShuttingDown);
        }
        let ctx = new.context();
        let mut held = 0;
        if let Some(list) = sockets.get(&new.hash()) {
            for socket in list.iter().filter(|s| s.belongs_to(ctx.user_id())) {
                held += 1;
                if !socket.is_closing()
                    && socket.context().websocket_client_id() == ctx.websocket_client_id()
                {
                    return Err(FactoryError::DuplicateClient);
                }
            }
        }
        if held >= global.limits.per_user {
            return Err(FactoryError::ConnectionLimit);
        }
        let limit = global.limits.global;
        global
            .active
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |active| {
                (active < limit).then_some(active + 1)
            })
            .map(drop)
            .map_err(|_| FactoryError::Overloaded)
    }

    /// Closes `socket` and frees its slot, its per-user count and its client id.
    /// Called once, by the manager's drop.
    pub(super) fn release(&self, socket: &Arc<Socket>) {
        let discarded = socket
            .request_close(CloseFrame::new(CloseCode::NORMAL, ""))
            .unwrap_or(0);
        let hash = socket.hash();
        let mut sockets = self.write();
        if let Some(list) = sockets.get_mut(&hash) {
            if let Some(index) = list.iter().position(|s| Arc::ptr_eq(s, socket)) {
                list.swap_remove(index);
            }
            if list.is_empty() {
                sockets.remove(&hash);
            }
        }
        self.counters.add(Counter::Freed, 1);
        drop(sockets);
        self.global.active.0.fetch_sub(1, Ordering::AcqRel);
        self.counters.add(Counter::Discarded, discarded);
    }

    /// How many sockets `user` holds, closing ones included.
    pub(super) fn connections(&self, hash: u64, user: &UserId) -> usize {
        self.read()
            .get(&hash)
            .map_or(0, |list| list.iter().filter(|s| s.belongs_to(user)).count())
    }

    /// Queues `frame` on every socket of the sender's user; a [`Frame::Close`] closes
    /// them instead.
    pub(super) fn send_to_user(&self, sender: &Socket, frame: Frame) -> Delivery {
        let hash = sender.hash();
        let user = sender.context().user_id();
        if let Frame::Close(close) = frame {
            let (closed, skipped) = self.close_user(hash, user, &close, Counter::Disconnected);
            return Delivery {
                delivered: closed,
                dropped: skipped,
            };
        }
        let global = &*self.global;
        let capacity = global.limits.outbound_queue;
        let mut delivery = Delivery::default();
        let (mut slow, mut discarded) = (0, 0);
        {
            let sockets = self.read();
            let list = sockets.get(&hash).map_or(&[][..], Vec::as_slice);
            for socket in list.iter().filter(|s| s.belongs_to(user)) {
                let overflow = || global.close_frame(ErrorCode::SlowConsumer);
                match socket.push(frame.clone(), capacity, overflow) {
                    Push::Queued => delivery.delivered += 1,
                    Push::Closed => delivery.dropped += 1,
                    Push::Overflowed { discarded: n } => {
                        delivery.dropped += 1;
                        slow += 1;
                        discarded += n;
                    }
                }
            }
        }
        let counters = &self.counters;
        counters.add(Counter::Delivered, delivery.delivered);
        counters.add(Counter::Dropped, delivery.dropped);
        counters.add(Counter::SlowConsumers, slow);
        counters.add(Counter::Discarded, discarded);
        if slow > 0 {
            warn_event!(
                error_code = "SLOW_CONSUMER",
                sockets = slow,
                "outbound queue full, socket closed"
            );
        }
        delivery
    }

    /// Closes one socket of this shard; counts it under `cause` when this call closed
    /// it.
    pub(super) fn close_socket(&self, socket: &Socket, frame: CloseFrame, cause: Counter) -> bool {
        let Some(discarded) = socket.request_close(frame) else {
            return false;
        };
        self.counters.add(cause, 1);
        self.counters.add(Counter::Discarded, discarded);
        true
    }

    /// Closes one socket of this shard with a rejection's frame; counts it under `code`
    /// when this call closed it.
    pub(super) fn close_socket_with(
        &self,
        socket: &Socket,
        frame: CloseFrame,
        code: ErrorCode,
    ) -> bool {
        let Some(discarded) = socket.request_close(frame) else {
            return false;
        };
        self.counters.closed_with(code);
        self.counters.add(Counter::Discarded, discarded);
        true
    }

    /// Closes every open socket of `user`. Returns (closed now, already closing).
    pub(super) fn close_user(
        &self,
        hash: u64,
        user: &UserId,
        frame: &CloseFrame,
        cause: Counter,
    ) -> (usize, usize) {
        let (mut closed, mut skipped, mut discarded) = (0, 0, 0);
        {
            let sockets = self.read();
            let list = sockets.get(&hash).map_or(&[][..], Vec::as_slice);
            for socket in list.iter().filter(|s| s.belongs_to(user)) {
                match socket.request_close(frame.clone()) {
                    Some(n) => {
                        closed += 1;
                        discarded += n;
                    }
                    None => skipped += 1,
                }
            }
        }
        self.counters.add(cause, closed);
        self.counters.add(Counter::Discarded, discarded);
        (closed, skipped)
    }

    /// Closes the open sockets of this shard that match `filter`; returns how many.
    pub(super) fn close_where(
        &self,
        frame: &CloseFrame,
        cause: Counter,
        filter: impl Fn(&Socket) -> bool,
    ) -> usize {
        let (mut closed, mut discarded) = (0, 0);
        {
            let sockets = self.read();
            for socket in sockets.values().flatten() {
                if socket.is_closing() || !filter(socket) {
                    continue;
                }
                if let Some(n) = socket.request_close(frame.clone()) {
                    closed += 1;
                    discarded += n;
                }
            }
        }
        self.counters.add(cause, closed);
        self.counters.add(Counter::Discarded, discarded);
        closed
    }
}
