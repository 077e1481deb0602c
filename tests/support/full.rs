//! A factory at both of its limits, where each admission refusal is one call away.

use wsctx::{IsolatedManager, Limits, ManagerFactory, Outbound};

use super::contexts::bound;

/// One socket per user, two in all.
pub(crate) fn tight_limits() -> Limits {
    Limits {
        per_user: 1,
        global: 2,
        ..Limits::default()
    }
}

/// Admits `user-a` and `user-b` (client id `tab-1` each) to `factory`, built with
/// [`tight_limits`]: both limits are then reached. Hold the sockets returned.
#[track_caller]
pub(crate) fn fill(factory: &ManagerFactory) -> [(IsolatedManager, Outbound); 2] {
    ["user-a", "user-b"].map(|user| factory.create(bound(user, "tab-1")).expect("admitted"))
}
