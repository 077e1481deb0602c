//! The renewer task: every third of the lease TTL, renews every lease this node holds
//! and closes the sockets whose lease was revoked (a disconnect on any node) or taken
//! (their client id admitted again elsewhere).

use std::sync::Arc;

use tokio::time::MissedTickBehavior;

use crate::close::{CloseCode, CloseFrame};
use crate::cluster::backplane::Backplane;
use crate::cluster::factory::held::Held;
use crate::cluster::lease::Renewal;
use crate::rejection::{ErrorCode, Rejection};
use crate::trace::debug_event;

/// Renews every `renew_interval` until aborted. The first renewal is one interval after
/// the start (a lease is fresh when granted).
pub(super) async fn run(backplane: Backplane, held: Arc<Held>) {
    let mut tick = tokio::time::interval(backplane.config().renew_interval());
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        renew_once(&backplane, &held).await;
    }
}

/// One round: renew a snapshot of the held leases (no lock held while Redis answers),
/// then act on each answer.
///
/// - Revoked: close the socket with the marker's close frame.
/// - Taken: close the socket with DUPLICATE_CLIENT.
/// - Renewed, re-created, or an error: if the admission ended while the call was under
///   way, its release may have reached Redis before this renewal, which then re-created
///   the lease: release it again (owner-checked, so a second release is harmless).
///
/// A renewal error (Redis away) closes nothing: the sockets stay open and the next round
/// tries again; a lease that expired meanwhile is re-created then.
async fn renew_once(backplane: &Backplane, held: &Held) {
    let (ids, leases) = held.snapshot();
    if leases.is_empty() {
        return;
    }
    let results = backplane.renew(&leases).await;
    let (mut failed, mut closed) = (0_usize, 0_usize);
    for ((id, lease), result) in ids.into_iter().zip(leases).zip(results) {
        match result {
            Ok(Renewal::Revoked(revocation)) => {
                if let Some(manager) = held.stop_renewing(id) {
                    let frame = revocation.map_or_else(
                        || CloseFrame::new(CloseCode::POLICY_VIOLATION, "disconnected"),
                        |revocation| CloseFrame {
                            code: revocation.code,
                            reason: revocation.reason,
                        },
                    );
                    closed += usize::from(manager.close(&frame));
                }
            }
            Ok(Renewal::Taken) => {
                if let Some(manager) = held.stop_renewing(id) {
                    closed += usize::from(
                        manager.close_with(&Rejection::new(ErrorCode::DuplicateClient)),
                    );
                }
            }
            other => {
                failed += usize::from(other.is_err());
                if !held.contains(id) {
                    held.release_later(lease);
                }
            }
        }
    }
    if failed > 0 {
        debug_event!(leases = failed, "lease renewal failed; retrying next round");
    }
    if closed > 0 {
        debug_event!(sockets = closed, "sockets closed: lease revoked or taken");
    }
}
