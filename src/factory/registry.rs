//! The sharded registry of live sockets: user hash -> that user's sockets.
//!
//! A user's sockets live in one [`Shard`], chosen by a keyed hash of the user id,
//! behind a `std::sync::RwLock` that is never held across an await. Two users on two
//! shards never touch the same lock, the same counters or the same reference count.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Arc;

use crate::factory::shard::{Global, Shard};
use crate::factory::socket::Socket;
use crate::id::UserId;

/// Number of shards; a power of two.
const SHARDS: usize = 64;

/// The map key is already a keyed `SipHash` of the user id: pass it through.
#[derive(Default)]
pub(super) struct PassThrough(u64);

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
/// reader filters by user id) with that hash.
pub(super) type SocketMap = HashMap<u64, Vec<Arc<Socket>>, BuildHasherDefault<PassThrough>>;

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
