//! Every public type is Send + Sync + 'static (so it can cross tasks and threads).

#![allow(clippy::unwrap_used, reason = "a test fails loudly on the unexpected")]

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
    assert_send_sync::<wsctx::UnsendableCloseCode>();
    assert_send_sync::<wsctx::IdKind>();
    assert_send_sync::<wsctx::UuidGenerator>();
    assert_send_sync::<wsctx::SequenceGenerator>();
    assert_send_sync::<wsctx::Fallback<wsctx::SequenceGenerator>>();
    assert_send_sync::<wsctx::FromFn<fn(wsctx::IdKind) -> Result<String, wsctx::GenerateError>>>();
}
