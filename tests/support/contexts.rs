//! Contexts ready for the factory. Also included by `benches/factory.rs`.

use wsctx::state::Bound;
use wsctx::{Context, Policy, SequenceGenerator, UuidGenerator};

/// A bound context of `user` on the socket that asks for client id `tab`; the other
/// ids are generated deterministically, the client id is the requested one.
#[track_caller]
pub(crate) fn bound(user: &str, tab: &str) -> Context<Bound> {
    Context::builder()
        .user_id(user)
        .websocket_client_id(tab)
        .build()
        .validate(&Policy::default(), &SequenceGenerator::new())
        .expect("a valid context")
        .bind(None, &UuidGenerator::new())
        .expect("a bound context")
}
