//! The sharded registry of live sockets: user hash -> that user's sockets.
//!
//! A user's sockets live in one shard, chosen by a keyed hash of the user id, behind a
//! `std::sync::RwLock` that is never held across an await. Two users on two shards
//! never touch the same lock or the same counters. Each shard is aligned to 128 bytes
//! so that neighbouring shards do not share a cache line.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::factory::metrics::Counters;
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

#[repr(align(128))]
#[derive(Default)]
pub(super) struct Shard {
    sockets: RwLock<SocketMap>,
    pub(super) counters: Counters,
}

impl Shard {
    pub(super) fn read(&self) -> RwLockReadGuard<'_, SocketMap> {
        // Nothing panics while holding this lock; recover rather than propagate if
        // that ever changes.
        self.sockets.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn write(&self) -> RwLockWriteGuard<'_, SocketMap> {
        self.sockets.write().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(super) struct Registry {
    shards: Box<[Shard]>,
    hasher: RandomState,
}

impl Registry {
    pub(super) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
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
    pub(super) fn shard(&self, hash: u64) -> &Shard {
        #[allow(clippy::cast_possible_truncation, reason = "masked to 6 bits")]
        let index = ((hash >> 40) as usize) & (SHARDS - 1);
        &self.shards[index]
    }

    pub(super) fn shards(&self) -> &[Shard] {
        &self.shards
    }
}
