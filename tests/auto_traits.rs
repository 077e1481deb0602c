//! Every public type is Send + Sync + 'static (so it can cross tasks and threads).

mod support;

use support::contexts::bound;
use wsctx::state::{Bound, Raw, Validated};

fn assert_send_sync<T: Send + Sync + 'static>() {}

#[test]
fn public_types_are_send_sync_static() {
    assert_send_sync::<wsctx::Context<Raw>>();
    assert_send_sync::<wsctx::Context<Validated>>();
    assert_send_sync::<wsctx::Context<Bound>>();
    assert_send_sync::<wsctx::ContextBuilder>();
    assert_send_sync::<wsctx::UserId>();
    assert_send_sync::<wsctx::ThreadId>();
    assert_send_sync::<wsctx::RunId>();
    assert_send_sync::<wsctx::RequestId>();
    assert_send_sync::<wsctx::WebSocketClientId>();
    assert_send_sync::<wsctx::Fingerprint>();
    assert_send_sync::<wsctx::Metadata>();
    assert_send_sync::<wsctx::Policy>();
    assert_send_sync::<wsctx::IdError>();
    assert_send_sync::<wsctx::Field>();
    assert_send_sync::<wsctx::FieldError>();
    assert_send_sync::<wsctx::FieldErrorKind>();
    assert_send_sync::<wsctx::ValidationError>();
    assert_send_sync::<wsctx::ContextError>();
    assert_send_sync::<wsctx::GenerateError>();
    assert_send_sync::<wsctx::Rejection>();
    assert_send_sync::<wsctx::ErrorCode>();
    assert_send_sync::<wsctx::Retry>();
    assert_send_sync::<wsctx::CloseStyle>();
    assert_send_sync::<wsctx::CloseCode>();
    assert_send_sync::<wsctx::CloseReason>();
    assert_send_sync::<wsctx::CloseFrame>();
    assert_send_sync::<wsctx::UnsendableCloseCode>();
    assert_send_sync::<wsctx::IdKind>();
    assert_send_sync::<wsctx::UuidGenerator>();
    assert_send_sync::<wsctx::SequenceGenerator>();
    assert_send_sync::<wsctx::Fallback<wsctx::SequenceGenerator>>();
    assert_send_sync::<wsctx::FromFn<fn(wsctx::IdKind) -> Result<String, wsctx::GenerateError>>>();
    assert_send_sync::<wsctx::ManagerFactory>();
    assert_send_sync::<wsctx::IsolatedManager>();
    assert_send_sync::<wsctx::Outbound>();
    assert_send_sync::<wsctx::Limits>();
    assert_send_sync::<wsctx::FactoryError>();
    assert_send_sync::<wsctx::Frame>();
    assert_send_sync::<wsctx::Delivery>();
    assert_send_sync::<wsctx::MetricsSnapshot>();
    assert_send_sync::<wsctx::TryRecvError>();
    assert_send_sync::<wsctx::Token>();
    assert_send_sync::<wsctx::TokenSource>();
    assert_send_sync::<wsctx::AuthError>();
    assert_send_sync::<wsctx::AuthenticatedUser>();
    assert_send_sync::<wsctx::EventType>();
    assert_send_sync::<wsctx::EventTypeError>();
    assert_send_sync::<wsctx::ResumePoint>();
    assert_send_sync::<wsctx::ResumePointError>();
    assert_send_sync::<wsctx::ReplayLimits>();
}

#[cfg(feature = "serde")]
#[test]
fn the_emitter_is_cheap_to_clone_and_crosses_threads() {
    fn assert_clone<T: Clone + Send + Sync + 'static>() {}
    assert_clone::<wsctx::Emitter>();
    assert_send_sync::<wsctx::EmitError>();
    assert!(size_of::<wsctx::Emitter>() <= size_of::<usize>());
}

#[test]
fn the_factory_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let factory = wsctx::ManagerFactory::default();
    send(&factory.run_idle_reaper(std::time::Duration::from_secs(1)));
    let (_manager, mut outbound) = factory.create(bound("user-a", "tab-1")).unwrap();
    send(&outbound.recv());
}

#[cfg(feature = "http")]
#[test]
fn http_types_are_send_sync_static() {
    assert_send_sync::<wsctx::http::ExtractConfig>();
    assert_send_sync::<wsctx::http::Origins>();
    assert_send_sync::<wsctx::http::Handshake>();
}

#[cfg(feature = "jwt")]
#[test]
fn jwt_types_are_send_sync_static() {
    assert_send_sync::<wsctx::jwt::JwtVerifier>();
    assert_send_sync::<wsctx::jwt::JwtKeyError>();
}

#[cfg(feature = "axum")]
#[test]
fn axum_types_are_send_sync_static() {
    struct Noop;
    impl wsctx::axum::MessageHandler for Noop {
        async fn on_message(&self, _: &wsctx::axum::Session, _: axum::extract::ws::Message) {}
    }
    assert_send_sync::<wsctx::axum::Authenticated>();
    assert_send_sync::<wsctx::axum::RejectMode>();
    assert_send_sync::<wsctx::axum::Session>();
    assert_send_sync::<wsctx::axum::Endpoint<Noop>>();
}
