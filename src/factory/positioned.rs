//! Hooks for cluster mode (feature `redis`): what a cluster layer above the factory
//! needs to keep each node's replay rings a copy of the user's stream in Redis. See
//! `shard/positioned.rs` for the rules.

use std::sync::Arc;

use super::shard::{Backfill, Shard};
use super::{Delivery, FactoryError, IsolatedManager, ManagerFactory, Outbound, Start};
use crate::context::Context;
use crate::id::UserId;
use crate::resume::ResumePoint;
use crate::state::Bound;

impl ManagerFactory {
    /// Delivers an event whose position the user's stream gave to every socket of
    /// `user` here, unless this node already has it.
    pub(crate) fn deliver_event(
        &self,
        user: &UserId,
        point: ResumePoint,
        frame: Arc<str>,
    ) -> Delivery {
        let hash = self.shared.registry.hash(user);
        self.shared
            .registry
            .shard(hash)
            .deliver_event(hash, user, point, frame)
    }

    /// Admits like [`create_resuming`](Self::create_resuming) (with a point) or
    /// [`create_with_position`](Self::create_with_position) (without), after merging
    /// `backfill`, fetched from the user's stream, into the user's ring; one atomic
    /// step under the shard lock.
    pub(crate) fn admit_backfilled(
        &self,
        ctx: Context<Bound>,
        epoch: u64,
        first: u64,
        frames: Vec<Arc<str>>,
        resume: Option<ResumePoint>,
    ) -> Result<(IsolatedManager, Outbound), FactoryError> {
        let run = Backfill {
            epoch,
            first,
            frames,
        };
        self.admit(ctx, Start::Backfilled(run, resume))
    }

    /// Keeps `user`'s ring here, fed by [`deliver_event`](Self::deliver_event), until
    /// the returned hold is dropped: take it before subscribing to the user's channel
    /// and fetching the stream.
    pub(crate) fn hold_ring(&self, user: &UserId) -> RingHold {
        let hash = self.shared.registry.hash(user);
        let shard = Arc::clone(self.shared.registry.shard(hash));
        let position = shard.hold_ring(hash, user);
        RingHold {
            shard,
            hash,
            user: user.clone(),
            position,
        }
    }
}

/// A hold on one user's ring, from [`ManagerFactory::hold_ring`]; released on drop.
pub(crate) struct RingHold {
    shard: Arc<Shard>,
    hash: u64,
    user: UserId,
    position: Option<ResumePoint>,
}

impl RingHold {
    /// Where the held ring was in the user's stream when the hold was taken (`None`:
    /// not placed, it takes whatever run comes). A fetch for an admission must start
    /// there at the latest: the run is merged into the ring, and what lies between its
    /// position and the run's start would be missing.
    pub(crate) fn position(&self) -> Option<ResumePoint> {
        self.position
    }
}

impl Drop for RingHold {
    fn drop(&mut self) {
        self.shard.release_hold(self.hash, &self.user);
    }
}
