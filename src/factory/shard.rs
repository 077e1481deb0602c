//! One shard of the registry: the map user hash -> sockets of the users whose hash falls
//! here, their counters, and the transitions on them (admission, release, fan-out,
//! closes).
//!
//! The handles ([`IsolatedManager`](crate::IsolatedManager), [`Outbound`](crate::Outbound))
//! hold an `Arc` of their shard, not of the factory: admitting and dropping sockets of
//! users on different shards never touches a shared reference count. The only shared
//! write on those paths is the global slot counter.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::close::{CloseCode, CloseFrame};
use crate::context::Context;
use crate::factory::error::FactoryError;
use crate::factory::frame::{Delivery, Frame};
use crate::factory::global::Global;
use crate::factory::metrics::{Counter, Counters, MetricsSnapshot};
use crate::factory::socket::{Push, Socket};
use crate::id::UserId;
use crate::rejection::{CloseStyle, ErrorCode};
use crate::state::Bound;
use crate::trace::{debug_event, warn_event};

/// The map key is already a keyed `SipHash` of the user id: pass it through.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// User hash -> the sockets of the user (or users, on a 64-bit hash collision: every
/// reader goes through [`user_sockets`], which filters by user id) with that hash.
type SocketMap = HashMap<u64, Vec<Arc<Socket>>, BuildHasherDefault<PassThrough>>;

/// The sockets of `user`, whose registry hash is `hash`.
fn user_sockets<'a>(
    map: &'a SocketMap,
    hash: u64,
    user: &'a UserId,
) -> impl Iterator<Item = &'a Arc<Socket>> {
    map.get(&hash)
        .into_iter()
        .flatten()
        .filter(move |socket| socket.belongs_to(user))
}

/// A slice of the registry. Aligned to 128 bytes so that two shards never share a
/// cache line.
#[repr(align(128))]
pub(super) struct Shard {
    sockets: RwLock<SocketMap>,
    counters: Counters,
    global: Arc<Global>,
}

impl Shard {
    pub(super) fn new(global: Arc<Global>) -> Self {
        Self {
            sockets: RwLock::default(),
            counters: Counters::default(),
            global,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, SocketMap> {
        // Nothing panics while holding this lock; recover rather than propagate if
        // that ever changes.
        self.sockets.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, SocketMap> {
        self.sockets.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The style this factory renders its closes in.
    pub(super) fn style(&self) -> CloseStyle {
        self.global.style()
    }

    /// Admits a socket for `ctx`, whose user hashes to `hash`: the checks and the
    /// insertion are one step under this shard's write lock, and the global slot is
    /// taken with a compare-and-swap inside it.
    pub(super) fn admit(
        &self,
        ctx: Context<Bound>,
        hash: u64,
    ) -> Result<Arc<Socket>, FactoryError> {
        let socket = Arc::new(Socket::new(ctx, hash));
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
        // Read under the shard lock: see `Global::begin_draining`.
        if global.is_draining() {
            return Err(FactoryError::ShuttingDown);
        }
        let ctx = new.context();
        let mut held = 0;
        for socket in user_sockets(sockets, new.hash(), ctx.user_id()) {
            held += 1;
            if !socket.is_closing()
                && socket.context().websocket_client_id() == ctx.websocket_client_id()
            {
                return Err(FactoryError::DuplicateClient);
            }
        }
        if held >= global.limits().per_user {
            return Err(FactoryError::ConnectionLimit);
        }
        if !global.take_slot() {
            return Err(FactoryError::Overloaded);
        }
        Ok(())
    }

    /// Closes `socket` and frees its slot, its per-user count and its client id.
    /// Called once, by the manager's drop.
    pub(super) fn release(&self, socket: &Arc<Socket>) {
        let discarded = socket
            .request_close(&CloseFrame::new(CloseCode::NORMAL, ""))
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
        self.global.free_slot();
        self.count_discarded(discarded);
    }

    /// How many sockets `user` holds, closing ones included.
    pub(super) fn connections(&self, hash: u64, user: &UserId) -> usize {
        user_sockets(&self.read(), hash, user).count()
    }

    /// Queues `frame` on every socket of `user`. A [`Frame::Close`] is refused: closing
    /// is `close_user`'s job.
    pub(super) fn send_to_user(&self, hash: u64, user: &UserId, frame: &Frame) -> Delivery {
        if frame.is_close() {
            return self.refuse(hash, user);
        }
        let capacity = self.global.limits().outbound_queue;
        let mut delivery = Delivery::default();
        let (mut slow, mut discarded) = (0, 0);
        {
            let sockets = self.read();
            for socket in user_sockets(&sockets, hash, user) {
                let overflow = || self.global.close_frame(ErrorCode::SlowConsumer);
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

    /// A send that is not carried out: every socket of `user` counts it as dropped.
    pub(super) fn refuse(&self, hash: u64, user: &UserId) -> Delivery {
        let dropped = self.connections(hash, user);
        self.counters.add(Counter::Dropped, dropped);
        debug_event!(sockets = dropped, "send refused");
        Delivery {
            delivered: 0,
            dropped,
        }
    }

    /// Closes one socket of this shard; counts it under `cause` when this call closed
    /// it.
    pub(super) fn close_socket(&self, socket: &Socket, frame: &CloseFrame, cause: Counter) -> bool {
        self.close_each([socket], frame, cause).0 == 1
    }

    /// Closes every open socket of `user`. Returns (closed now, already closing).
    pub(super) fn close_user(
        &self,
        hash: u64,
        user: &UserId,
        frame: &CloseFrame,
        cause: Counter,
    ) -> (usize, usize) {
        let sockets = self.read();
        self.close_each(
            user_sockets(&sockets, hash, user).map(|s| &**s),
            frame,
            cause,
        )
    }

    /// Closes the open sockets of this shard that match `filter`; returns how many.
    pub(super) fn close_where(
        &self,
        frame: &CloseFrame,
        cause: Counter,
        filter: impl Fn(&Socket) -> bool,
    ) -> usize {
        let sockets = self.read();
        let open = sockets.values().flatten().map(|s| &**s);
        self.close_each(open.filter(|s| !s.is_closing() && filter(s)), frame, cause)
            .0
    }

    /// Closes each of `sockets` with `frame`, counting the ones this call closed under
    /// `cause`. Returns (closed now, already closing).
    fn close_each<'a>(
        &self,
        sockets: impl IntoIterator<Item = &'a Socket>,
        frame: &CloseFrame,
        cause: Counter,
    ) -> (usize, usize) {
        let (mut closed, mut skipped, mut discarded) = (0, 0, 0);
        for socket in sockets {
            match socket.request_close(frame) {
                Some(n) => {
                    closed += 1;
                    discarded += n;
                }
                None => skipped += 1,
            }
        }
        self.counters.add(cause, closed);
        self.count_discarded(discarded);
        (closed, skipped)
    }

    /// Counts queued frames thrown away unsent.
    pub(super) fn count_discarded(&self, frames: usize) {
        self.counters.add(Counter::Discarded, frames);
    }

    /// Adds this shard's counters into `total`.
    pub(super) fn sum_into(&self, total: &mut MetricsSnapshot) {
        self.counters.sum_into(total);
    }
}
