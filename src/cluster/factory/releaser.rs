//! The releaser task: releases the leases of ended admissions (and of acquisitions whose
//! outcome is unknown) in batches, owner-checked, retrying while Redis is away.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::cluster::backplane::Backplane;
use crate::cluster::lease::Lease;
use crate::trace::debug_event;

/// The most leases one release call carries.
const MAX_BATCH: usize = 512;

/// The longest wait before a failed batch is tried again (shorter when the renew
/// interval is).
const MAX_RETRY_DELAY: Duration = Duration::from_millis(250);

/// Releases what arrives on `queue` until every sender is gone and nothing is left.
///
/// A batch that fails is retried after a short wait (at most 250 ms), with whatever arrived
/// meanwhile: releasing is owner-checked and idempotent, so retrying a release that did
/// take effect is harmless. A lease is dropped from the retries once it is two lease
/// TTLs old: by then it has expired in Redis anyway.
pub(super) async fn run(backplane: Backplane, mut queue: UnboundedReceiver<Lease>) {
    let config = backplane.config();
    let give_up = config.lease_ttl().saturating_mul(2);
    let retry = config
        .renew_interval()
        .clamp(Duration::from_millis(1), MAX_RETRY_DELAY);
    let mut pending: Vec<(Lease, Instant)> = Vec::new();
    loop {
        if pending.is_empty() {
            let Some(lease) = queue.recv().await else {
                return;
            };
            pending.push((lease, Instant::now()));
        }
        while pending.len() < MAX_BATCH {
            let Ok(lease) = queue.try_recv() else { break };
            pending.push((lease, Instant::now()));
        }
        pending.retain(|(_, queued)| queued.elapsed() < give_up);
        let batch: Vec<Lease> = pending.iter().map(|(lease, _)| lease.clone()).collect();
        if batch.is_empty() {
            continue;
        }
        if backplane.release(&batch).await.is_ok() {
            pending.clear();
        } else {
            debug_event!(leases = batch.len(), "lease release failed; retrying");
            tokio::time::sleep(retry).await;
        }
    }
}
