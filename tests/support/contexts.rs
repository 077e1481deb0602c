//! Contexts ready for the factory. Also included by `benches/factory.rs`.

use wsctx::state::Bound;
use wsctx::{
    Context, IsolatedManager, ManagerFactory, Outbound, Policy, SequenceGenerator, UuidGenerator,
};

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

/// Admits `N` sockets of `user` to `factory`, with the client ids `tab-1` to `tab-N`.
#[track_caller]
pub(crate) fn tabs<const N: usize>(
    factory: &ManagerFactory,
    user: &str,
) -> [(IsolatedManager, Outbound); N] {
    std::array::from_fn(|i| {
        let ctx = bound(user, &format!("tab-{}", i + 1));
        factory.create(ctx).expect("admitted")
    })
}
