//! The sharded registry of live sockets: which [`Shard`] holds a user's sockets.
//!
//! A user's sockets live in one shard, chosen by a keyed hash of the user id,
//! behind a `std::sync::RwLock` that is never held across an await. Two users on two
//! shards never touch the same lock, the same counters or the same reference count.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use crate::factory::global::Global;
use crate::factory::shard::Shard;
use crate::id::UserId;

/// Number of shards; a power of two.
const SHARDS: usize = 64;

/// The shards of one factory, and the keyed hash that picks a user's shard.
pub(super) struct Registry {
    shards: Box<[Arc<Shard>]>,
    hasher: RandomState,
}

impl Registry {
    pub(super) fn new(global: &Arc<Global>) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Arc::new(Shard::new(Arc::clone(global))))
                .collect(),
            hasher: RandomState::new(),
        }
    }

    /// The registry hash of `user`: keyed per factory, so it says nothing outside it.
    pub(super) fn hash(&self, user: &UserId) -> u64 {
        self.hasher.hash_one(user.as_str())
    }

    /// The shard of a user hash. Takes bits 40..46: the map uses the low bits for its
    /// buckets and the top 7 for its control bytes, and those must stay spread within a
    /// shard.
    pub(super) fn shard(&self, hash: u64) -> &Arc<Shard> {
        #[allow(clippy::cast_possible_truncation, reason = "masked to 6 bits")]
        let index = ((hash >> 40) as usize) & (SHARDS - 1);
        &self.shards[index]
    }

    pub(super) fn shards(&self) -> impl Iterator<Item = &Shard> {
        self.shards.iter().map(|shard| &**shard)
    }
}
