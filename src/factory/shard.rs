//! One shard of the registry: the map user hash -> sockets and replay rings of the users
//! whose hash falls here, their counters, and the transitions on them (admission,
//! release, fan-out, events and resumes, closes).
//!
//! The handles ([`IsolatedManager`](crate::IsolatedManager), [`Outbound`](crate::Outbound))
//! hold an `Arc` of their shard, not of the factory: admitting and dropping sockets of
//! users on different shards never touches a shared reference count. The only shared
//! write on those paths is the global slot counter.
//!
//! Locks are taken in one order: this shard's map, then a user's ring, then each socket's
//! queue. None is held across an await.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::time::Instant;

use crate::close::{CloseCode, CloseFrame};
use crate::context::Context;
use crate::factory::error::FactoryError;
use crate::factory::frame::{Delivery, Frame};
use crate::factory::global::Global;
use crate::factory::metrics::{Counter, Counters, MetricsSnapshot};
#[cfg(feature = "serde")]
use crate::factory::replay::Pushed;
use crate::factory::replay::{Replay, ReplayRing, random_epoch};
use crate::factory::socket::{Push, Socket};
use crate::id::UserId;
use crate::rejection::{CloseStyle, ErrorCode};
use crate::resume::ResumePoint;
use crate::state::Bound;
use crate::trace::{debug_event, warn_event};

#[cfg(feature = "redis")]
mod positioned;

#[cfg(feature = "redis")]
pub(super) use positioned::Backfill;

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

/// The users with one hash (more than one only on a 64-bit hash collision: every reader
/// goes through [`Entry::sockets_of`] and [`Entry::ring_of`], which filter by user id).
#[derive(Default)]
struct Entry {
    sockets: Vec<Arc<Socket>>,
    /// One ring per user of this hash that has one; empty (no allocation) for users
    /// that never had an event or a resume.
    rings: Vec<UserRing>,
}

/// A user's replay ring, behind its own lock so that emits to users of one shard run
/// in parallel under the shard's read lock.
struct UserRing {
    user: UserId,
    ring: Mutex<ReplayRing>,
    /// Cluster mode: admissions in progress that keep the ring fed while they fetch
    /// the user's stream (see `positioned.rs`). Changed under the shard's write lock.
    #[cfg(feature = "redis")]
    holds: usize,
}

impl UserRing {
    #[cfg(any(feature = "serde", feature = "redis"))]
    fn lock(&self) -> std::sync::MutexGuard<'_, ReplayRing> {
        // Nothing panics while holding this lock; recover rather than propagate if
        // that ever changes.
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get_mut(&mut self) -> &mut ReplayRing {
        self.ring.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether an admission in progress keeps the ring (cluster mode).
    #[cfg_attr(
        not(feature = "redis"),
        allow(clippy::unused_self, reason = "only cluster mode holds rings")
    )]
    fn is_held(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.holds > 0;
        #[cfg(not(feature = "redis"))]
        false
    }
}

impl Entry {
    fn sockets_of<'a>(&'a self, user: &'a UserId) -> impl Iterator<Item = &'a Arc<Socket>> {
        self.sockets
            .iter()
            .filter(move |socket| socket.belongs_to(user))
    }

    #[cfg(any(feature = "serde", feature = "redis"))]
    fn ring_of(&self, user: &UserId) -> Option<&UserRing> {
        self.rings.iter().find(|ring| ring.user == *user)
    }

    fn ring_of_mut(&mut self, user: &UserId) -> Option<&mut ReplayRing> {
        self.rings
            .iter_mut()
            .find(|ring| ring.user == *user)
            .map(UserRing::get_mut)
    }

    /// The index in `rings` of the ring of `user`, created (in a fresh epoch) when the
    /// user has none; and whether it was created.
    fn ring_index(&mut self, user: &UserId, global: &Global) -> (usize, bool) {
        if let Some(index) = self.rings.iter().position(|ring| ring.user == *user) {
            return (index, false);
        }
        self.rings.reserve_exact(1);
        self.rings.push(UserRing {
            user: user.clone(),
            ring: Mutex::new(ReplayRing::new(Arc::clone(global.replay()), random_epoch())),
            #[cfg(feature = "redis")]
            holds: 0,
        });
        (self.rings.len() - 1, true)
    }

    fn is_empty(&self) -> bool {
        self.sockets.is_empty() && self.rings.is_empty()
    }
}

/// User hash -> the users with that hash.
type UserMap = HashMap<u64, Entry, BuildHasherDefault<PassThrough>>;

/// The sockets of `user`, whose registry hash is `hash`.
fn user_sockets<'a>(
    map: &'a UserMap,
    hash: u64,
    user: &'a UserId,
) -> impl Iterator<Item = &'a Arc<Socket>> {
    map.get(&hash)
        .into_iter()
        .flat_map(move |entry| entry.sockets_of(user))
}

/// What an admission queues on the new socket before anything else.
#[derive(Debug)]
pub(super) enum Start {
    /// Nothing.
    Plain,
    /// `{"type":"position",…}`: where the user's event stream is now.
    Position,
    /// The events after this point, then `{"type":"resumed",…}`; or
    /// `{"type":"resume_gap"}`.
    Resume(ResumePoint),
    /// Cluster mode: merge a run fetched from the user's stream into the ring first
    /// (its part newer than the ring goes to the user's other sockets here), then
    /// `Resume` from the point, or `Position` without one.
    #[cfg(feature = "redis")]
    Backfilled(Backfill, Option<ResumePoint>),
}

/// A slice of the registry. Aligned to 128 bytes so that two shards never share a
/// cache line.
#[repr(align(128))]
pub(super) struct Shard {
    users: RwLock<UserMap>,
    counters: Counters,
    global: Arc<Global>,
}

impl Shard {
    pub(super) fn new(global: Arc<Global>) -> Self {
        Self {
            users: RwLock::default(),
            counters: Counters::new(Arc::clone(global.report())),
            global,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, UserMap> {
        // Nothing panics while holding this lock; recover rather than propagate if
        // that ever changes.
        self.users.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, UserMap> {
        self.users.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The style this factory renders its closes in.
    pub(super) fn style(&self) -> CloseStyle {
        self.global.style()
    }

    /// Admits a socket for `ctx`, whose user hashes to `hash`: the checks, the frames
    /// `start` asks for and the insertion are one step under this shard's write lock,
    /// and the global slot is taken with a compare-and-swap inside it. An event emitted
    /// concurrently is therefore either in the replayed frames or delivered live after
    /// them, never both and never neither.
    #[cfg_attr(
        not(feature = "redis"),
        allow(
            clippy::needless_pass_by_value,
            reason = "cluster mode's start carries a run to merge"
        )
    )]
    pub(super) fn admit(
        &self,
        ctx: Context<Bound>,
        hash: u64,
        start: Start,
    ) -> Result<Arc<Socket>, FactoryError> {
        let socket = Arc::new(Socket::new(ctx, hash));
        let user = socket.context().user_id();
        let now = Instant::now();
        let mut users = self.write();
        if let Err(error) = self.check(&users, &socket) {
            drop(users);
            self.counters.rejected(error.code());
            return Err(error);
        }
        let entry = users.entry(hash).or_default();
        match start {
            Start::Plain => {
                if let Some(ring) = entry.ring_of_mut(user) {
                    ring.socket_arrived();
                }
            }
            Start::Position | Start::Resume(_) => {
                let (index, created) = entry.ring_index(user, &self.global);
                let ring = entry.rings[index].get_mut();
                ring.socket_arrived();
                let frames = self.start_frames(ring, &start, now);
                socket.preload(frames);
                self.counters
                    .add(Counter::RingsCreated, usize::from(created));
            }
            #[cfg(feature = "redis")]
            Start::Backfilled(run, resume) => {
                let frames = self.merge_backfill(entry, user, run, resume, now);
                socket.preload(frames);
            }
        }
        entry.sockets.push(Arc::clone(&socket));
        self.counters.add(Counter::Admitted, 1);
        drop(users);
        Ok(socket)
    }

    /// The frames a socket starting at `start` gets first, counted.
    fn start_frames(&self, ring: &mut ReplayRing, start: &Start, now: Instant) -> Vec<Frame> {
        match start {
            Start::Plain => Vec::new(),
            #[cfg(feature = "redis")]
            Start::Backfilled(..) => Vec::new(),
            Start::Position => {
                let position = ring.position();
                vec![Frame::text(format!(
                    r#"{{"type":"position","epoch":"{:016x}","seq":{}}}"#,
                    position.epoch(),
                    position.seq()
                ))]
            }
            Start::Resume(point) => match ring.since(*point, now) {
                Replay::Missed(missed) => {
                    let n = missed.len();
                    self.counters.add(Counter::Resumed, 1);
                    self.counters.add(Counter::Replayed, n);
                    let mut frames: Vec<Frame> = Vec::with_capacity(n + 1);
                    frames.extend(missed.into_iter().map(Frame::Text));
                    frames.push(Frame::text(format!(r#"{{"type":"resumed","missed":{n}}}"#)));
                    frames
                }
                Replay::Gap => {
                    self.counters.add(Counter::ResumeGaps, 1);
                    vec![Frame::text(r#"{"type":"resume_gap"}"#)]
                }
            },
        }
    }

    /// The admission checks, in order: draining, duplicate client id, per-user limit,
    /// global limit (which takes the slot when it passes).
    fn check(&self, users: &UserMap, new: &Socket) -> Result<(), FactoryError> {
        let global = &*self.global;
        // Read under the shard lock: see `Global::begin_draining`.
        if global.is_draining() {
            return Err(FactoryError::ShuttingDown);
        }
        let ctx = new.context();
        let mut held = 0;
        for socket in user_sockets(users, new.hash(), ctx.user_id()) {
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

    /// Closes `socket` and frees its slot, its per-user count and its client id. When it
    /// was its user's last socket, the user's ring starts its countdown. Called once,
    /// by the manager's drop.
    pub(super) fn release(&self, socket: &Arc<Socket>) {
        let discarded = socket
            .request_close(&CloseFrame::new(CloseCode::NORMAL, ""))
            .unwrap_or(0);
        let hash = socket.hash();
        let user = socket.context().user_id();
        let mut users = self.write();
        if let Some(entry) = users.get_mut(&hash) {
            if let Some(index) = entry.sockets.iter().position(|s| Arc::ptr_eq(s, socket)) {
                entry.sockets.swap_remove(index);
            }
            if entry.sockets_of(user).next().is_none()
                && let Some(ring) = entry.ring_of_mut(user)
            {
                ring.last_socket_left(Instant::now());
            }
            if entry.is_empty() {
                users.remove(&hash);
            }
        }
        self.counters.add(Counter::Freed, 1);
        drop(users);
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
        let users = self.read();
        let delivery = self.fan_out(user_sockets(&users, hash, user), frame);
        drop(users);
        delivery
    }

    /// Gives the next position of `user`'s stream to `event`, keeps the frame in the
    /// user's ring and queues it on every socket of the user, all under the ring's lock,
    /// so that every socket gets the user's events in the order of their positions.
    ///
    /// A user with sockets but no ring gets one. A user with neither keeps nothing and
    /// gets nothing: nobody can hold a position to resume from.
    ///
    /// `render` builds the frame of the event at a position (epoch, sequence number).
    #[cfg(feature = "serde")]
    pub(super) fn emit(
        &self,
        hash: u64,
        user: &UserId,
        render: impl FnOnce(u64, u64) -> Arc<str>,
    ) -> Delivery {
        self.emit_by(hash, user, |ring, now| ring.push_with(now, render))
    }

    /// An emit whose ring step is `push`: counted, under the ring's lock, fanned out.
    #[cfg(feature = "serde")]
    pub(super) fn emit_by(
        &self,
        hash: u64,
        user: &UserId,
        push: impl FnOnce(&mut ReplayRing, Instant) -> Pushed,
    ) -> Delivery {
        self.counters.add(Counter::Emitted, 1);
        let now = Instant::now();
        self.with_ring(hash, user, |ring, sockets| {
            let pushed = push(ring, now);
            self.push_event(ring, sockets, pushed)
        })
        .unwrap_or_default()
    }

    /// Runs `f` on the ring of `user` and the user's sockets, under the ring's lock,
    /// creating the ring when the user has sockets but no ring yet. `None` when the
    /// user has neither here.
    #[cfg(any(feature = "serde", feature = "redis"))]
    fn with_ring<R>(
        &self,
        hash: u64,
        user: &UserId,
        f: impl FnOnce(&mut ReplayRing, &mut dyn Iterator<Item = &Arc<Socket>>) -> R,
    ) -> Option<R> {
        {
            let users = self.read();
            let entry = users.get(&hash)?;
            if let Some(ring) = entry.ring_of(user) {
                return Some(f(&mut ring.lock(), &mut entry.sockets_of(user)));
            }
            entry.sockets_of(user).next()?;
        }
        // The user's first event: creating the ring takes the write lock. The state may
        // have changed in between, so look again.
        let mut users = self.write();
        let entry = users.get_mut(&hash)?;
        if entry.ring_of(user).is_none() {
            entry.sockets_of(user).next()?;
        }
        let (index, created) = entry.ring_index(user, &self.global);
        self.counters
            .add(Counter::RingsCreated, usize::from(created));
        let Entry { sockets, rings } = entry;
        let mut sockets = sockets.iter().filter(|socket| socket.belongs_to(user));
        Some(f(rings[index].get_mut(), &mut sockets))
    }

    /// Fans the frame of the event just pushed into `ring` out to `sockets`.
    #[cfg(feature = "serde")]
    fn push_event<'a>(
        &self,
        ring: &ReplayRing,
        sockets: impl Iterator<Item = &'a Arc<Socket>>,
        pushed: Pushed,
    ) -> Delivery {
        let mut delivery = self.fan_out(sockets, &Frame::Text(pushed.frame));
        delivery.position = Some(ResumePoint::new(ring.epoch(), pushed.seq));
        delivery.buffered = pushed.stored;
        delivery
    }

    /// Queues `frame` on each of `sockets` and counts the outcome.
    fn fan_out<'a>(
        &self,
        sockets: impl Iterator<Item = &'a Arc<Socket>>,
        frame: &Frame,
    ) -> Delivery {
        let capacity = self.global.limits().outbound_queue;
        let mut delivery = Delivery::default();
        let (mut slow, mut discarded) = (0, 0);
        for socket in sockets {
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
            dropped,
            ..Delivery::default()
        }
    }

    /// Throws away expired events, and frees the rings of users without sockets once
    /// their window has passed. Returns how many rings it freed.
    pub(super) fn free_expired_rings(&self, now: Instant) -> usize {
        if self.counters.get(Counter::RingsCreated) == self.counters.get(Counter::RingsFreed) {
            return 0;
        }
        let mut freed = 0;
        let mut users = self.write();
        users.retain(|_, entry| {
            let Entry { sockets, rings } = entry;
            rings.retain_mut(|user_ring| {
                let held = user_ring.is_held();
                let UserRing { user, ring, .. } = user_ring;
                let ring = ring.get_mut().unwrap_or_else(PoisonError::into_inner);
                ring.prune(now);
                let kept =
                    held || !ring.is_expired(now) || sockets.iter().any(|s| s.belongs_to(user));
                freed += usize::from(!kept);
                kept
            });
            !entry.is_empty()
        });
        drop(users);
        self.counters.add(Counter::RingsFreed, freed);
        freed
    }

    /// Closes one socket of this shard; counts it under `cause` when this call closed
    /// it.
    pub(super) fn close_socket(&self, socket: &Socket, frame: &CloseFrame, cause: Counter) -> bool {
        self.close_each([socket], frame, cause).0 == 1
    }

    /// Closes one socket of this shard with a rejection's frame; counts it under `code`
    /// when this call closed it.
    pub(super) fn close_socket_with(
        &self,
        socket: &Socket,
        frame: &CloseFrame,
        code: ErrorCode,
    ) -> bool {
        let Some(discarded) = socket.request_close(frame) else {
            return false;
        };
        self.counters.closed_with(code);
        self.count_discarded(discarded);
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
        let users = self.read();
        self.close_each(user_sockets(&users, hash, user).map(|s| &**s), frame, cause)
    }

    /// Closes the open sockets of this shard that match `filter`; returns how many.
    pub(super) fn close_where(
        &self,
        frame: &CloseFrame,
        cause: Counter,
        filter: impl Fn(&Socket) -> bool,
    ) -> usize {
        let users = self.read();
        let open = users
            .values()
            .flat_map(|entry| &entry.sockets)
            .map(|s| &**s);
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
