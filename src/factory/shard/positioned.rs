//! Cluster mode on a shard (feature `redis`): events whose position the user's stream in
//! Redis gave, the admission that merges a run fetched from that stream, and holds that
//! keep a user's ring fed while an admission fetches.
//!
//! In cluster mode a user's ring here is this node's copy of the user's stream: every
//! event reaches it with its position ([`Shard::deliver_event`]), whichever node emitted
//! it, and the ring drops the copies it already has. A resuming socket gets its missed
//! events from the ring after the ring has merged what the stream held
//! ([`Start::Backfilled`](super::Start::Backfilled)), all under the shard's write lock.
//! The node takes a hold on the ring *before* it subscribes to the user's channel and
//! fetches the stream, so that an event published in between reaches the ring live or is
//! in the fetched run, and never neither.

use std::sync::Arc;

use tokio::time::Instant;

use super::{Entry, Shard, Start};
use crate::factory::frame::{Delivery, Frame};
use crate::factory::metrics::Counter;
use crate::factory::replay::Inserted;
use crate::id::UserId;
use crate::resume::ResumePoint;

/// Events fetched from a user's stream: `frames` are the events `first`, `first + 1`,
/// … of `epoch`; the stream's next event is `first + frames.len()`.
#[derive(Debug)]
pub(in crate::factory) struct Backfill {
    pub(in crate::factory) epoch: u64,
    pub(in crate::factory) first: u64,
    pub(in crate::factory) frames: Vec<Arc<str>>,
}

impl Shard {
    /// An event positioned by the user's stream: kept in the user's ring and queued on
    /// every socket of the user here, unless the ring already has it. A user with
    /// neither sockets nor a ring here gets nothing.
    pub(in crate::factory) fn deliver_event(
        &self,
        hash: u64,
        user: &UserId,
        point: ResumePoint,
        frame: Arc<str>,
    ) -> Delivery {
        let now = Instant::now();
        self.with_ring(hash, user, |ring, sockets| {
            match ring.insert(now, point, Arc::clone(&frame)) {
                Inserted::New { stored } => {
                    let mut delivery = self.fan_out(sockets, &Frame::Text(frame));
                    delivery.position = Some(point);
                    delivery.buffered = stored;
                    delivery
                }
                Inserted::Duplicate => Delivery::default(),
            }
        })
        .unwrap_or_default()
    }

    /// Like [`emit`](Shard::emit), in an epoch of this node alone (see
    /// `ReplayRing::push_detached`).
    #[cfg(feature = "serde")]
    pub(in crate::factory) fn emit_detached(
        &self,
        hash: u64,
        user: &UserId,
        render: impl FnOnce(u64, u64) -> Arc<str>,
    ) -> Delivery {
        self.emit_by(hash, user, |ring, now| ring.push_detached(now, render))
    }

    /// Merges `run` into the ring of `user` (created if needed) for an admission, sends
    /// the part newer than the ring to the user's sockets already here, and returns the
    /// frames the new socket starts with: the missed events after `resume` (or a gap),
    /// or the stream's position when there is no point.
    pub(super) fn merge_backfill(
        &self,
        entry: &mut Entry,
        user: &UserId,
        run: Backfill,
        resume: Option<ResumePoint>,
        now: Instant,
    ) -> Vec<Frame> {
        let (index, created) = entry.ring_index(user, &self.global);
        self.counters
            .add(Counter::RingsCreated, usize::from(created));
        let Entry { sockets, rings } = entry;
        let ring = rings[index].get_mut();
        ring.socket_arrived();
        for frame in ring.backfill(now, run.epoch, run.first, run.frames) {
            let here = sockets.iter().filter(|socket| socket.belongs_to(user));
            self.fan_out(here, &Frame::Text(frame));
        }
        let then = resume.map_or(Start::Position, Start::Resume);
        self.start_frames(ring, &then, now)
    }

    /// Keeps the ring of `user` (created if needed) while an admission fetches the
    /// user's stream. A ring no socket here kept fed may have missed events: its
    /// position is forgotten, and the next event or the fetched run positions it again.
    /// Returns where the ring is in the stream after that, if anywhere: the fetch must
    /// start there at the latest, or the ring would miss what lies between.
    pub(in crate::factory) fn hold_ring(&self, hash: u64, user: &UserId) -> Option<ResumePoint> {
        let mut users = self.write();
        let entry = users.entry(hash).or_default();
        let (index, created) = entry.ring_index(user, &self.global);
        self.counters
            .add(Counter::RingsCreated, usize::from(created));
        let fed = entry.sockets_of(user).next().is_some() || entry.rings[index].holds > 0;
        let held = &mut entry.rings[index];
        held.holds += 1;
        let ring = held.get_mut();
        ring.socket_arrived();
        if !fed {
            ring.forget_position();
        }
        ring.stream_position()
    }

    /// Lets go of a hold taken by [`hold_ring`](Self::hold_ring). The last hold of a
    /// user without sockets here starts the ring's countdown, as the last socket does.
    pub(in crate::factory) fn release_hold(&self, hash: u64, user: &UserId) {
        let mut users = self.write();
        let Some(entry) = users.get_mut(&hash) else {
            return;
        };
        let alone = entry.sockets_of(user).next().is_none();
        let Some(held) = entry.rings.iter_mut().find(|ring| ring.user == *user) else {
            return;
        };
        held.holds = held.holds.saturating_sub(1);
        if held.holds == 0 && alone {
            held.get_mut().last_socket_left(Instant::now());
        }
    }
}
