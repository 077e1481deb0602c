//! The leases this node holds, each beside a weak handle to its socket's manager, and
//! the guard whose drop releases one lease exactly once. The renewer reads a snapshot;
//! the releaser gets every lease to release through an unbounded queue, so a drop never
//! blocks or awaits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::mpsc::UnboundedSender;

use crate::cluster::lease::Lease;
use crate::factory::IsolatedManager;

struct Entry {
    lease: Lease,
    manager: Weak<IsolatedManager>,
    /// Cleared once a renewal found the lease revoked or taken: its socket is closing,
    /// and renewing it again would only repeat that.
    renewing: bool,
}

/// The leases of this node's live admissions.
pub(super) struct Held {
    entries: Mutex<HashMap<u64, Entry>>,
    next: AtomicU64,
    releases: UnboundedSender<Lease>,
}

impl Held {
    pub(super) fn new(releases: UnboundedSender<Lease>) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            releases,
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        // Every critical section is a map operation that cannot leave it half-changed.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a granted lease; the guard releases it when dropped.
    pub(super) fn insert(
        self: &Arc<Self>,
        lease: Lease,
        manager: &Arc<IsolatedManager>,
    ) -> LeaseGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            lease,
            manager: Arc::downgrade(manager),
            renewing: true,
        };
        self.entries().insert(id, entry);
        LeaseGuard {
            held: Arc::clone(self),
            id,
        }
    }

    /// The leases to renew now, with their ids. Copied out: no lock is held while the
    /// renewal awaits Redis.
    pub(super) fn snapshot(&self) -> (Vec<u64>, Vec<Lease>) {
        self.entries()
            .iter()
            .filter(|(_, entry)| entry.renewing)
            .map(|(&id, entry)| (id, entry.lease.clone()))
            .unzip()
    }

    /// Stops renewing lease `id` and returns its manager, if the admission is still
    /// live and was renewing.
    pub(super) fn stop_renewing(&self, id: u64) -> Option<Arc<IsolatedManager>> {
        let manager = {
            let mut entries = self.entries();
            let entry = entries.get_mut(&id).filter(|entry| entry.renewing)?;
            entry.renewing = false;
            entry.manager.clone()
        };
        manager.upgrade()
    }

    /// Whether the admission of lease `id` is still live.
    pub(super) fn contains(&self, id: u64) -> bool {
        self.entries().contains_key(&id)
    }

    /// How many admissions hold a lease on this node.
    pub(super) fn len(&self) -> usize {
        self.entries().len()
    }

    /// Queues `lease` for the releaser. If the releaser is gone (the runtime shut
    /// down), the lease expires by itself within one lease TTL.
    pub(super) fn release_later(&self, lease: Lease) {
        let _ = self.releases.send(lease);
    }
}

/// One admission's lease: dropping it releases the lease exactly once (the map entry is
/// removed once, and only its removal queues the release).
pub(super) struct LeaseGuard {
    held: Arc<Held>,
    id: u64,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let entry = self.held.entries().remove(&self.id);
        if let Some(entry) = entry {
            self.held.release_later(entry.lease);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};

    fn manager(factory: &ManagerFactory, client: &str) -> Arc<IsolatedManager> {
        let ids = SequenceGenerator::new();
        let bound = Context::builder()
            .user_id("user-a")
            .websocket_client_id(client)
            .build()
            .validate(&Policy::default(), &ids)
            .unwrap()
            .bind(None, &UuidGenerator::new())
            .unwrap();
        Arc::new(factory.create(bound).unwrap().0)
    }

    #[test]
    fn a_guard_queues_its_release_once_and_only_live_renewing_leases_are_renewed() {
        let (releases, mut queue) = tokio::sync::mpsc::unbounded_channel();
        let held = Arc::new(Held::new(releases));
        let factory = ManagerFactory::default();
        let (one, two) = (manager(&factory, "t1"), manager(&factory, "t2"));
        let first = held.insert(Lease::for_tests(1, 1, "n:0:1"), &one);
        let second = held.insert(Lease::for_tests(1, 2, "n:0:2"), &two);
        let (ids, leases) = held.snapshot();
        assert_eq!((ids.len(), leases.len(), held.len()), (2, 2, 2));

        // A revoked or taken lease is closed once and not renewed again.
        let stopped = held.stop_renewing(second.id).expect("its manager is live");
        assert!(Arc::ptr_eq(&stopped, &two));
        assert!(held.stop_renewing(second.id).is_none());
        assert_eq!(held.snapshot().1, [Lease::for_tests(1, 1, "n:0:1")]);
        assert!(held.contains(second.id));

        // Each drop queues exactly its own lease, once.
        drop(first);
        assert_eq!(queue.try_recv().unwrap(), Lease::for_tests(1, 1, "n:0:1"));
        assert!(queue.try_recv().is_err());
        drop(second);
        assert_eq!(queue.try_recv().unwrap(), Lease::for_tests(1, 2, "n:0:2"));
        assert!(queue.try_recv().is_err());
        assert_eq!(held.len(), 0);
        assert!(held.snapshot().1.is_empty());

        // A manager gone before its guard is not handed out.
        let three = manager(&factory, "t3");
        let third = held.insert(Lease::for_tests(1, 3, "n:0:3"), &three);
        drop(three);
        assert!(held.stop_renewing(third.id).is_none());
    }
}
