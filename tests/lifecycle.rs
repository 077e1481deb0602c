//! The lifecycle Raw → Validated → Bound, through the public API only.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use wsctx::state::Validated;
use wsctx::{
    CloseCode, CloseStyle, Context, ContextBuilder, ContextError, ErrorCode, Fallback, Field,
    FieldErrorKind, GenerateError, IdGenerator, IdKind, MAX_OPERATION_DEPTH, Policy, Rejection,
    SequenceGenerator, UuidGenerator, from_fn,
};

mod support;
use support::errors::reports;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn policy() -> Policy {
    Policy::default()
}

/// A context with only a user id, validated with `ids` generating the rest.
fn user_only(user: &str, ids: &impl IdGenerator) -> Result<Context<Validated>, ContextError> {
    Context::builder()
        .user_id(user)
        .build()
        .validate(&policy(), ids)
}

/// A context of user `u-1` with the setters `more` applies, validated with `ids`.
fn u1(
    more: impl FnOnce(ContextBuilder) -> ContextBuilder,
    ids: &impl IdGenerator,
) -> Result<Context<Validated>, ContextError> {
    more(Context::builder().user_id("u-1"))
        .build()
        .validate(&policy(), ids)
}

#[test]
fn given_fields_are_kept_trimmed() -> TestResult {
    let ctx = Context::builder()
        .user_id("  user-8f14e45f ")
        .thread_id("thread_a")
        .run_id(" run_b")
        .request_id("req_c ")
        .parent_request_id("req_parent")
        .websocket_client_id("tab-1")
        .metadata("locale", "de-CH")
        .operation_depth(3)
        .operation(" summarize ")
        .build()
        .validate(&policy(), &SequenceGenerator::new())?;
    assert_eq!(ctx.user_id().as_str(), "user-8f14e45f");
    assert_eq!(ctx.thread_id().as_str(), "thread_a");
    assert_eq!(ctx.run_id().as_str(), "run_b");
    assert_eq!(ctx.request_id().as_str(), "req_c");
    assert_eq!(
        ctx.parent_request_id().map(wsctx::RequestId::as_str),
        Some("req_parent")
    );
    assert_eq!(
        ctx.requested_client_id()
            .map(wsctx::WebSocketClientId::as_str),
        Some("tab-1")
    );
    assert_eq!(ctx.metadata().get("locale"), Some("de-CH"));
    assert_eq!(ctx.operation_depth(), 3);
    assert_eq!(ctx.operation(), Some("summarize"));
    Ok(())
}

#[test]
fn missing_ids_are_generated_but_the_user_id_never_is() -> TestResult {
    let kinds = Mutex::new(Vec::new());
    let recording = from_fn(|kind| {
        kinds.lock().unwrap().push(kind);
        SequenceGenerator::new().generate(kind)
    });
    let ctx = user_only("alice-42", &recording)?;
    assert_eq!(ctx.thread_id().as_str(), "thread_1");
    assert_eq!(ctx.run_id().as_str(), "run_1");
    assert_eq!(ctx.request_id().as_str(), "req_1");
    assert_eq!(
        *kinds.lock().unwrap(),
        [IdKind::Thread, IdKind::Run, IdKind::Request]
    );

    // No user id: refused, and the generator is not asked for anything.
    kinds.lock().unwrap().clear();
    let error = Context::builder()
        .build()
        .validate(&policy(), &recording)
        .unwrap_err();
    let invalid = error.as_invalid().expect("client error");
    assert_eq!(invalid.len(), 1);
    assert!(invalid.contains(Field::UserId, FieldErrorKind::Missing));
    assert!(kinds.lock().unwrap().is_empty());
    Ok(())
}

#[test]
fn uuid_ids_have_their_prefix_and_never_contain_the_user_id() -> TestResult {
    let ids = UuidGenerator::new();
    for user in ["alice", "thread", "0123456789abcdef"] {
        let bound = Context::builder()
            .user_id(user)
            .build()
            .validate(&policy(), &ids)?
            .bind(None, &ids)?;
        let generated = [
            bound.thread_id().as_str(),
            bound.run_id().as_str(),
            bound.request_id().as_str(),
            bound.websocket_client_id().as_str(),
        ];
        for (id, prefix) in generated.iter().zip(["thread_", "run_", "req_", "ws_"]) {
            assert!(id.starts_with(prefix), "{id}");
            assert_eq!(id.len(), prefix.len() + 36, "{id}");
            assert!(!id[prefix.len()..].contains(user), "{id} embeds {user}");
        }
    }
    Ok(())
}

#[test]
fn every_failing_field_is_reported_at_once_in_field_order() {
    let mut builder = Context::builder()
        .user_id(" null ")
        .thread_id("")
        .run_id("x".repeat(10_000))
        .request_id("req\u{202E}")
        .parent_request_id("a\u{0}")
        .websocket_client_id("test")
        .metadata("user_id", "spoof")
        .metadata("Bad Key", "v")
        .metadata("big", "v".repeat(1025))
        .operation_depth(11);
    for i in 0..70 {
        builder = builder.metadata(format!("k{i}"), "v");
    }
    let error = builder
        .build()
        .validate(&policy(), &SequenceGenerator::new())
        .unwrap_err();
    let invalid = error.as_invalid().expect("client error");
    let got: Vec<_> = invalid.iter().map(|e| (e.field(), e.kind())).collect();
    assert_eq!(
        got,
        [
            (Field::UserId, FieldErrorKind::PlaceholderWord),
            (Field::ThreadId, FieldErrorKind::Empty),
            (Field::RunId, FieldErrorKind::TooLong),
            (Field::RequestId, FieldErrorKind::InvisibleCharacter),
            (Field::ParentRequestId, FieldErrorKind::ControlCharacter),
            (Field::WebSocketClientId, FieldErrorKind::PlaceholderWord),
            (Field::Metadata, FieldErrorKind::TooManyEntries),
            (Field::Metadata, FieldErrorKind::ReservedKey),
            (Field::Metadata, FieldErrorKind::InvalidKey),
            (Field::Metadata, FieldErrorKind::ValueTooLong),
            (Field::OperationDepth, FieldErrorKind::DepthExceeded),
        ]
    );
}

#[test]
fn metadata_limits_and_reserved_keys() {
    let check = |key: &str, value: &str| {
        u1(|b| b.metadata(key, value), &SequenceGenerator::new())
            .err()
            .and_then(|e| e.as_invalid().map(|v| v.errors()[0].kind()))
    };
    assert_eq!(check(&"k".repeat(64), &"v".repeat(1024)), None);
    assert_eq!(
        check(&"k".repeat(65), "v"),
        Some(FieldErrorKind::InvalidKey)
    );
    assert_eq!(
        check("k", &"v".repeat(1025)),
        Some(FieldErrorKind::ValueTooLong)
    );
    assert_eq!(check("", "v"), Some(FieldErrorKind::InvalidKey));
    assert_eq!(check("a.b-c_9", ""), None);
    assert_eq!(check("Locale", "v"), Some(FieldErrorKind::InvalidKey));
    assert_eq!(check("ключ", "v"), Some(FieldErrorKind::InvalidKey));
    for reserved in wsctx::RESERVED_METADATA_KEYS {
        assert_eq!(
            check(reserved, "v"),
            Some(FieldErrorKind::ReservedKey),
            "{reserved}"
        );
    }

    let build = |n: usize| {
        let mut builder = Context::builder().user_id("u-1");
        for i in 0..n {
            builder = builder.metadata(format!("k{i}"), "v");
        }
        builder
            .build()
            .validate(&policy(), &SequenceGenerator::new())
    };
    assert_eq!(build(64).map(|c| c.metadata().len()).ok(), Some(64));
    let error = build(65).unwrap_err();
    let too_many = (Field::Metadata, FieldErrorKind::TooManyEntries);
    assert!(reports(&error, too_many.0, too_many.1));
}

#[test]
fn depth_is_limited_to_ten() -> TestResult {
    let ids = SequenceGenerator::new();
    let at_ten = u1(|b| b.operation_depth(10), &ids)?;
    assert_eq!(at_ten.operation_depth(), MAX_OPERATION_DEPTH);
    let error = at_ten.child("one-more", &policy(), &ids).unwrap_err();
    assert!(reports(
        &error,
        Field::OperationDepth,
        FieldErrorKind::DepthExceeded
    ));
    let error = u1(|b| b.operation_depth(11), &ids).unwrap_err();
    assert_eq!(Rejection::from(error).code(), ErrorCode::InvalidContext);
    Ok(())
}

#[test]
fn children_chain_to_depth_ten() -> TestResult {
    let ids = SequenceGenerator::new();
    let root = u1(|b| b.websocket_client_id("tab-1"), &ids)?.bind(None, &ids)?;
    let mut current = root.clone();
    for depth in 1..=10 {
        let child = current.child("step", &policy(), &ids)?;
        assert_eq!(child.operation_depth(), depth);
        assert_eq!(child.user_id(), root.user_id());
        assert_eq!(child.thread_id(), root.thread_id());
        assert_eq!(child.run_id(), root.run_id());
        assert_eq!(child.websocket_client_id(), root.websocket_client_id());
        assert_eq!(child.parent_request_id(), Some(current.request_id()));
        assert_ne!(child.request_id(), current.request_id());
        assert_eq!(child.operation(), Some("step"));
        current = child;
    }
    assert!(current.child("step", &policy(), &ids).is_err());
    let bad_op = root.child("\u{202E}", &policy(), &ids).unwrap_err();
    assert!(reports(
        &bad_op,
        Field::Operation,
        FieldErrorKind::InvisibleCharacter
    ));
    Ok(())
}

#[test]
fn a_generator_emitting_an_invalid_id_is_an_internal_error_not_an_invalid_context() {
    for bad in ["", "   ", "req\u{0}", "\u{FEFF}x"] {
        let generator = from_fn(move |_| Ok(bad.to_owned()));
        let error = user_only("u-1", &generator).unwrap_err();
        assert!(matches!(error, ContextError::Internal(_)), "{bad:?}");
        let rejection = Rejection::from(error);
        assert_eq!(rejection.code(), ErrorCode::InternalError);
        assert_eq!(
            rejection.close_code(CloseStyle::Detailed),
            CloseCode::INTERNAL_ERROR
        );
        assert_eq!(rejection.http_status(), Some(500));
    }
}

#[test]
fn a_failing_generator_surfaces_as_internal_error_at_bind_too() -> TestResult {
    let failing = from_fn(|kind| Err(GenerateError::new(kind)));
    let validated = u1(
        |b| b.thread_id("t-1").run_id("r-1").request_id("q-1"),
        &failing,
    )?;
    let error = validated.bind(None, &failing).unwrap_err();
    assert_eq!(error.kind(), IdKind::WebSocketClient);
    assert_eq!(Rejection::from(error).code(), ErrorCode::InternalError);
    Ok(())
}

#[test]
fn fallback_uses_the_secondary_generator_when_the_primary_fails() -> TestResult {
    let calls = AtomicUsize::new(0);
    let flaky = from_fn(|kind| {
        if calls.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
            Err(GenerateError::new(kind))
        } else {
            Ok(format!("{}_primary", kind.prefix()))
        }
    });
    let ids = Fallback::new(&flaky, SequenceGenerator::starting_at(100));
    let ctx = user_only("u-1", &ids)?;
    assert_eq!(ctx.thread_id().as_str(), "thread_100");
    assert_eq!(ctx.run_id().as_str(), "run_primary");
    assert_eq!(ctx.request_id().as_str(), "req_101");
    assert!(
        Fallback::to_uuid(from_fn(|k| Err(GenerateError::new(k))))
            .generate(IdKind::Run)?
            .starts_with("run_")
    );
    Ok(())
}

#[test]
fn bind_uses_the_requested_client_id_or_generates_one() -> TestResult {
    let ids = SequenceGenerator::new();
    let before = std::time::SystemTime::now();
    let given = u1(|b| b.websocket_client_id(" tab-7 "), &ids)?
        .bind(Some("127.0.0.1:4000".parse()?), &ids)?;
    assert_eq!(given.websocket_client_id().as_str(), "tab-7");
    assert_eq!(given.peer_addr(), Some("127.0.0.1:4000".parse()?));
    assert!(given.connected_at() >= before);

    let generated = user_only("u-1", &ids)?.bind(None, &ids)?;
    assert_eq!(generated.websocket_client_id().as_str(), "ws_7");
    assert_eq!(generated.peer_addr(), None);
    Ok(())
}

#[test]
fn validation_is_idempotent_through_into_raw() -> TestResult {
    let ids = UuidGenerator::new();
    let ctx = u1(|b| b.metadata("a", "1").operation_depth(2), &ids)?;
    let again = ctx.clone().into_raw().validate(&policy(), &ids)?;
    assert_eq!(again, ctx);
    let child = ctx.child("op", &policy(), &ids)?;
    assert_eq!(child.clone().into_raw().validate(&policy(), &ids)?, child);
    Ok(())
}

#[test]
fn try_from_validates_with_the_default_policy() {
    let ok: Result<Context<Validated>, _> = Context::builder().user_id("u-1").build().try_into();
    assert!(ok.is_ok());
    let refused: Result<Context<Validated>, _> =
        Context::builder().user_id("test").build().try_into();
    assert!(refused.is_err());
}

#[test]
fn generators_work_as_trait_objects_and_through_smart_pointers() -> TestResult {
    let boxed: Box<dyn IdGenerator> = Box::new(SequenceGenerator::new());
    let arc: std::sync::Arc<dyn IdGenerator> = std::sync::Arc::new(UuidGenerator::new());
    let a = user_only("u-1", &boxed)?;
    let b = Context::builder()
        .user_id("u-1")
        .build()
        .validate(&policy(), &*arc)?;
    assert_eq!(a.thread_id().as_str(), "thread_1");
    assert!(b.thread_id().as_str().starts_with("thread_"));
    Ok(())
}

/// A generated id takes the same path as a given one: the structural rule and then the
/// policy. A generator that emits a placeholder is a server bug (INTERNAL_ERROR, naming
/// the rule), never a context that its own round trip would refuse.
#[test]
fn a_generator_emitting_a_placeholder_is_an_internal_error() {
    let cases = [
        ("test", FieldErrorKind::PlaceholderWord),
        (" TEMP ", FieldErrorKind::PlaceholderWord),
        ("temp_1", FieldErrorKind::PlaceholderPrefix),
        ("Mock_thread", FieldErrorKind::PlaceholderPrefix),
        ("e\u{301}", FieldErrorKind::NotNormalized),
        ("id\u{AD}", FieldErrorKind::InvisibleCharacter),
    ];
    for (emitted, kind) in cases {
        let generator = from_fn(move |_| Ok(emitted.to_owned()));
        let error = Context::builder()
            .user_id("u-1")
            .build()
            .validate(&policy(), &generator)
            .unwrap_err();
        let ContextError::Internal(internal) = &error else {
            panic!("{emitted:?}: {error:?}");
        };
        assert_eq!(internal.kind(), IdKind::Thread, "{emitted:?}");
        assert_eq!(internal.invalid_output_error(), Some(kind), "{emitted:?}");
        assert!(!error.to_string().contains(emitted.trim()), "{error}");
        assert_eq!(Rejection::from(error).code(), ErrorCode::InternalError);
    }

    // The policy is the one passed to `validate`: one that allows the word accepts the
    // generated id, and the context validates again under it.
    let allowing = policy().allow_word("test");
    let test_ids = from_fn(|_| Ok("test".to_owned()));
    let ctx = Context::builder()
        .user_id("u-1")
        .build()
        .validate(&allowing, &test_ids)
        .unwrap();
    assert_eq!(ctx.run_id().as_str(), "test");
    assert_eq!(
        ctx.clone()
            .into_raw()
            .validate(&allowing, &test_ids)
            .unwrap(),
        ctx
    );
}

/// `child` generates the new request id through the same path, with the policy it is
/// given.
#[test]
fn a_child_with_a_placeholder_request_id_is_an_internal_error() -> TestResult {
    let parent = Context::builder()
        .user_id("u-1")
        .build()
        .validate(&policy(), &SequenceGenerator::new())?;
    let placeholder = from_fn(|_| Ok("req_test".to_owned()));
    // "req_test" is no placeholder; "test_req" is (a prefix, under 20 bytes).
    let child = parent.child("op", &policy(), &placeholder)?;
    assert_eq!(child.request_id().as_str(), "req_test");
    let placeholder = from_fn(|_| Ok("test_req".to_owned()));
    let error = parent.child("op", &policy(), &placeholder).unwrap_err();
    let ContextError::Internal(internal) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(internal.kind(), IdKind::Request);
    assert_eq!(
        internal.invalid_output_error(),
        Some(FieldErrorKind::PlaceholderPrefix)
    );
    assert_eq!(Rejection::from(error).code(), ErrorCode::InternalError);
    Ok(())
}
