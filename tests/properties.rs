//! Property tests of the field rule, validation, serde, generators and rejections.
//!
//! Run with `cargo test --features proptest,serde --test properties`. Failing cases are
//! saved to `proptest-regressions/properties.txt` (committed) and replayed first.
#![cfg(all(feature = "proptest", feature = "serde"))]

use std::str::FromStr;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
// The glob import users are told to write, next to proptest's prelude.
use wsctx::proptest::*;
use wsctx::state::{Raw, Validated};
use wsctx::{
    CloseCode, CloseStyle, Context, ContextError, ErrorCode, Fallback, Field, FieldErrorKind,
    GenerateError, IdError, IdGenerator, IdKind, Policy, Rejection, RequestId, RunId,
    SequenceGenerator, ThreadId, UserId, UuidGenerator, WebSocketClientId, from_fn,
};

fn config() -> Config {
    Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/properties.txt",
        ))),
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------
// A deliberately naive model of the field rules (ARCHITECTURE.md), written from the text,
// not from src/rule.rs.
// ---------------------------------------------------------------------------------------

// The same model the fuzz targets check against: one copy, in fuzz/src/checks.rs.
#[path = "../fuzz/src/checks.rs"]
#[allow(
    dead_code,
    reason = "only the model is used here; the fuzz checks run in fuzz_seeds"
)]
pub mod checks;
use checks::model;

// ---------------------------------------------------------------------------------------
// Edge-biased input.
// ---------------------------------------------------------------------------------------

/// Characters at or next to every boundary of the rule.
const EDGE_CHARS: [char; 36] = [
    ' ', '\t', '\n', '\r', '\u{0B}', '\u{0C}', '\u{85}', '\u{A0}', '\u{1680}', '\u{2000}',
    '\u{200A}', '\u{2028}', '\u{2029}', '\u{202F}', '\u{205F}', '\u{3000}', // whitespace
    '\u{180E}', '\u{200B}', '\u{200F}', '\u{2010}', '\u{2029}', '\u{202A}', '\u{202E}', '\u{2060}',
    '\u{2064}', '\u{2065}', '\u{2066}', '\u{2069}', '\u{206A}', '\u{FEFE}', '\u{FEFF}', '\u{FFFE}',
    '\u{061C}', '\u{AD}', '\u{212A}', '\u{130}',
];

const MULTIBYTE: [char; 6] = ['é', 'ß', '日', '🙂', 'Σ', 'ſ'];

fn edge_char() -> impl Strategy<Value = char> {
    prop_oneof![
        5 => proptest::char::range(' ', '~'),
        3 => select(EDGE_CHARS.to_vec()),
        1 => proptest::char::range('\u{0}', '\u{1F}'),
        1 => proptest::char::range('\u{7F}', '\u{9F}'),
        2 => select(MULTIBYTE.to_vec()),
        1 => any::<char>(),
    ]
}

fn case_mix(word: &str, mask: u64) -> String {
    word.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// Arbitrary strings biased toward the rule's edges: edge characters, lengths around 256
/// bytes, and near-placeholders.
fn edge_string() -> impl Strategy<Value = String> {
    let short = vec(edge_char(), 0..=24).prop_map(String::from_iter);
    let around_limit = (
        vec(edge_char(), 0..=2),
        240..=262_usize,
        vec(edge_char(), 0..=3),
    )
        .prop_map(|(before, n, after)| {
            let mut s: String = before.into_iter().collect();
            s.push_str(&"a".repeat(n));
            s.extend(after);
            s
        });
    let placeholder_like = (
        prop_oneof![
            select(model::WORDS.to_vec()),
            select(model::PREFIXES.to_vec())
        ],
        any::<u64>(),
        vec(edge_char(), 0..=3),
        vec(edge_char(), 0..=12),
    )
        .prop_map(|(word, mask, before, after)| {
            let mut s: String = before.into_iter().collect();
            s.push_str(&case_mix(word, mask));
            s.extend(after);
            s
        });
    prop_oneof![4 => short, 2 => around_limit, 3 => placeholder_like]
}

// ---------------------------------------------------------------------------------------
// The newtypes and the policy agree with the model.
// ---------------------------------------------------------------------------------------

/// Checks one newtype against the model: same verdict, same stored value, an error the
/// model agrees with, and `FromStr` equal to `try_new`.
fn check_newtype<T>(
    input: &str,
    try_new: impl Fn(String) -> Result<T, IdError>,
    as_str: impl Fn(&T) -> &str,
) -> Result<(), TestCaseError>
where
    T: FromStr<Err = IdError> + PartialEq + std::fmt::Debug,
{
    let actual = try_new(input.to_owned());
    match (&actual, model::structure(input)) {
        (Ok(id), Ok(expected)) => prop_assert_eq!(as_str(id), expected.as_str()),
        (Err(error), Err(broken)) => prop_assert!(
            broken.contains(error),
            "{error:?} is not among the broken rules {broken:?}"
        ),
        (Ok(_), Err(broken)) => prop_assert!(false, "accepted, model says {broken:?}"),
        (Err(error), Ok(_)) => prop_assert!(false, "rejected with {error:?}, model accepts"),
    }
    prop_assert_eq!(T::from_str(input), actual);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn newtypes_accept_exactly_what_the_model_accepts(input in edge_string()) {
        check_newtype(&input, UserId::try_new, UserId::as_str)?;
        check_newtype(&input, ThreadId::try_new, ThreadId::as_str)?;
        check_newtype(&input, RunId::try_new, RunId::as_str)?;
        check_newtype(&input, RequestId::try_new, RequestId::as_str)?;
        check_newtype(&input, WebSocketClientId::try_new, WebSocketClientId::as_str)?;
        if let Ok(id) = ThreadId::try_new(input.clone()) {
            prop_assert_eq!(id.to_string(), id.as_str());
        }
    }

    #[test]
    fn accepted_ids_are_trimmed_short_visible_and_not_placeholders(input in edge_string()) {
        let outcome = Context::builder()
            .user_id(input.clone())
            .build()
            .validate(&Policy::default(), &SequenceGenerator::new());
        if let Ok(ctx) = outcome {
            let id = ctx.user_id().as_str();
            prop_assert_eq!(id, id.trim());
            prop_assert!(!id.is_empty() && id.len() <= 256);
            prop_assert!(!id.chars().any(|c| model::is_cc(c) || model::is_invisible(c)));
            prop_assert_eq!(model::policy(id), Ok(()));
        }
    }

    #[test]
    fn policy_agrees_with_the_model(input in edge_string()) {
        prop_assert_eq!(Policy::default().check(&input), model::policy(&input));
        prop_assert_eq!(Policy::permissive().check(&input), Ok(()));
    }

    #[test]
    fn validate_applies_the_rule_then_the_policy(input in edge_string()) {
        let expected = match model::structure(&input) {
            Err(broken) => Err(broken.into_iter().map(FieldErrorKind::from).collect()),
            Ok(_) => model::policy(&input).map_err(|kind| vec![kind]),
        };
        let actual = Context::builder()
            .user_id(input.clone())
            .build()
            .validate(&Policy::default(), &SequenceGenerator::new());
        match (actual, expected) {
            (Ok(ctx), Ok(())) => prop_assert_eq!(ctx.user_id().as_str(), model::trim(&input)),
            (Err(error), Err(kinds)) => {
                let invalid = error.as_invalid().expect("input errors are INVALID_CONTEXT");
                prop_assert_eq!(invalid.len(), 1);
                let only = invalid.errors()[0];
                prop_assert_eq!(only.field(), Field::UserId);
                prop_assert!(kinds.contains(&only.kind()), "{:?} not in {:?}", only.kind(), kinds);
            }
            (actual, expected) => prop_assert!(
                false,
                "validate gave {:?}, the model {:?}",
                actual.map(|_| ()),
                expected
            ),
        }
    }

    #[test]
    fn valid_ids_pass_the_model_and_every_newtype(id in valid_id()) {
        prop_assert_eq!(model::structure(&id), Ok(id.clone()));
        prop_assert_eq!(model::policy(&id), Ok(()));
        prop_assert!(UserId::try_new(id.clone()).is_ok());
        prop_assert!(WebSocketClientId::try_new(id).is_ok());
    }
}

// ---------------------------------------------------------------------------------------
// Validation: idempotence and serde round trips.
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn validate_is_idempotent(ctx in any::<Context<Validated>>()) {
        let again = ctx
            .clone()
            .into_raw()
            .validate(&Policy::default(), &SequenceGenerator::new());
        prop_assert_eq!(again.map_err(|e| e.to_string()), Ok(ctx));
    }

    #[test]
    fn valid_raw_contexts_validate_to_their_trimmed_values(raw in valid_raw_context()) {
        let json = serde_json::to_value(
            raw.clone().validate(&Policy::default(), &SequenceGenerator::new())
                .map_err(|e| TestCaseError::fail(e.to_string()))?,
        ).expect("validated contexts serialize");
        // Re-validating the validated form yields the same value.
        let ctx = raw.validate(&Policy::default(), &SequenceGenerator::new())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(ctx.user_id().as_str(), ctx.user_id().as_str().trim());
        prop_assert_eq!(&json["user_id"], &serde_json::Value::from(ctx.user_id().as_str()));
        let again = ctx.clone().into_raw().validate(&Policy::default(), &UuidGenerator::new());
        prop_assert_eq!(again.map_err(|e| e.to_string()), Ok(ctx));
    }

    #[test]
    fn validated_context_json_round_trip(ctx in any::<Context<Validated>>()) {
        let json = serde_json::to_string(&ctx).expect("validated contexts serialize");
        let back: Context<Validated> = serde_json::from_str(&json)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &ctx);
        let raw: Context<Raw> = serde_json::from_str(&json)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(raw, ctx.clone().into_raw());
    }

    #[test]
    fn newtype_json_round_trip(
        user in any::<UserId>(),
        thread in any::<ThreadId>(),
        run in any::<RunId>(),
        request in any::<RequestId>(),
        client in any::<WebSocketClientId>(),
    ) {
        fn round_trip<T>(id: &T, as_str: &str) -> Result<(), TestCaseError>
        where
            T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
        {
            let json = serde_json::to_string(id).expect("ids serialize");
            prop_assert_eq!(&json, &serde_json::to_string(as_str).expect("strings serialize"));
            let back: T = serde_json::from_str(&json).expect("a serialized id deserializes");
            prop_assert_eq!(&back, id);
            Ok(())
        }
        round_trip(&user, user.as_str())?;
        round_trip(&thread, thread.as_str())?;
        round_trip(&run, run.as_str())?;
        round_trip(&request, request.as_str())?;
        round_trip(&client, client.as_str())?;
    }

    #[test]
    fn newtype_deserialization_agrees_with_try_new(input in edge_string()) {
        let json = serde_json::to_string(&input).expect("strings serialize");
        let parsed: Result<RunId, _> = serde_json::from_str(&json);
        prop_assert_eq!(parsed.ok(), RunId::try_new(input).ok());
    }
}

// ---------------------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------------------

fn check_generated(ids: &dyn IdGenerator, prefix_of: impl Fn(IdKind) -> String) {
    for kind in IdKind::ALL {
        let id = ids.generate(kind).expect("this generator does not fail");
        assert!(
            id.starts_with(&prefix_of(kind)),
            "{id} lacks the prefix of {kind}"
        );
        assert_eq!(model::structure(&id), Ok(id.clone()), "{kind}: {id}");
        assert_eq!(model::policy(&id), Ok(()), "{kind}: {id}");
        let accepted = match kind {
            IdKind::Thread => ThreadId::try_new(id.clone()).is_ok(),
            IdKind::Run => RunId::try_new(id.clone()).is_ok(),
            IdKind::Request => RequestId::try_new(id.clone()).is_ok(),
            IdKind::WebSocketClient => WebSocketClientId::try_new(id.clone()).is_ok(),
            _ => unreachable!("a kind this test does not know"),
        };
        assert!(accepted, "{kind}: {id}");
    }
    let ctx = Context::builder()
        .user_id("user-1")
        .build()
        .validate(&Policy::default(), &ids)
        .expect("generated ids validate");
    assert!(
        ctx.thread_id()
            .as_str()
            .starts_with(&prefix_of(IdKind::Thread))
    );
    assert!(ctx.run_id().as_str().starts_with(&prefix_of(IdKind::Run)));
    assert!(
        ctx.request_id()
            .as_str()
            .starts_with(&prefix_of(IdKind::Request))
    );
    let bound = ctx.bind(None, &ids).expect("generated client ids validate");
    assert!(
        bound
            .websocket_client_id()
            .as_str()
            .starts_with(&prefix_of(IdKind::WebSocketClient))
    );
}

fn uuid_prefix(kind: IdKind) -> String {
    format!("{}_", kind.prefix())
}

#[test]
fn uuid_generator_output_validates() {
    for _ in 0..64 {
        check_generated(&UuidGenerator::new(), uuid_prefix);
    }
    let id = UuidGenerator::new()
        .generate(IdKind::Run)
        .expect("uuid ids");
    let uuid = id.strip_prefix("run_").expect("run prefix");
    assert_eq!(uuid.len(), 36);
    assert_eq!(uuid.as_bytes()[14], b'4', "a version 4 uuid: {id}");
}

#[test]
fn fallback_output_validates() {
    let broken = from_fn(|kind| Err(GenerateError::new(kind)));
    check_generated(&Fallback::to_uuid(broken), uuid_prefix);
    check_generated(
        &Fallback::new(broken, SequenceGenerator::new()),
        uuid_prefix,
    );
    let custom = from_fn(|kind: IdKind| Ok(format!("custom-{}-7", kind.prefix())));
    check_generated(&Fallback::new(custom, UuidGenerator::new()), |kind| {
        format!("custom-{}-", kind.prefix())
    });
}

#[test]
fn generators_that_emit_invalid_ids_are_internal_errors() {
    let bad = from_fn(|_| Ok(String::from("  \u{202E}  ")));
    let error = Context::builder()
        .user_id("user-1")
        .build()
        .validate(&Policy::default(), &bad)
        .expect_err("an invalid generated id never makes a context");
    assert!(matches!(error, ContextError::Internal(_)));
    let rejection = Rejection::from(error);
    assert_eq!(rejection.code(), ErrorCode::InternalError);
    assert_eq!(
        rejection.close_code(CloseStyle::Detailed),
        CloseCode::INTERNAL_ERROR
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sequence_generator_output_validates(start in any::<u64>()) {
        check_generated(&SequenceGenerator::starting_at(start), uuid_prefix);
    }
}

// ---------------------------------------------------------------------------------------
// Invalid input: each class is rejected, naming the right field and kind.
// ---------------------------------------------------------------------------------------

fn assert_rejected_exactly(
    raw: Context<Raw>,
    field: Field,
    kind: FieldErrorKind,
) -> Result<(), TestCaseError> {
    let error = raw
        .validate(&Policy::default(), &SequenceGenerator::new())
        .map(|_| ())
        .expect_err("an invalid context never validates");
    let invalid = error.as_invalid().expect("client input is INVALID_CONTEXT");
    let expected = [wsctx::FieldError::new(field, kind)];
    prop_assert_eq!(
        invalid.errors(),
        &expected[..],
        "expected only {} {:?}",
        field,
        kind
    );
    let rejection = Rejection::from(error);
    prop_assert_eq!(rejection.code(), ErrorCode::InvalidContext);
    let reason = rejection.close_reason();
    prop_assert_eq!(reason.as_str(), format!("invalid_context:{field}"));
    Ok(())
}

#[test]
fn every_invalid_class_is_rejected_naming_the_field_and_kind() {
    for class in InvalidClass::ALL {
        let mut runner = TestRunner::new(Config {
            cases: 48,
            ..config()
        });
        let outcome = runner.run(&invalid_raw_context_of(class), |(raw, field, kind)| {
            assert_eq!(kind, class.kind());
            assert_rejected_exactly(raw, field, kind)
        });
        if let Err(failure) = outcome {
            panic!("{class:?}: {failure}");
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_invalid_context_is_rejected_naming_the_field_and_kind(
        (raw, field, kind) in invalid_raw_context()
    ) {
        assert_rejected_exactly(raw, field, kind)?;
    }

    #[test]
    fn structural_classes_are_rejected_by_every_newtype(
        (input, expected) in prop_oneof![
            empty_id().prop_map(|s| (s, IdError::Empty)),
            whitespace_only_id().prop_map(|s| (s, IdError::Empty)),
            too_long_id().prop_map(|s| (s, IdError::TooLong)),
            control_character_id().prop_map(|s| (s, IdError::ControlCharacter)),
            invisible_character_id().prop_map(|s| (s, IdError::InvisibleCharacter)),
        ]
    ) {
        prop_assert_eq!(model::structure(&input), Err(vec![expected]));
        prop_assert_eq!(UserId::try_new(input.clone()).map(|_| ()), Err(expected));
        prop_assert_eq!(ThreadId::try_new(input.clone()).map(|_| ()), Err(expected));
        prop_assert_eq!(RunId::try_new(input.clone()).map(|_| ()), Err(expected));
        prop_assert_eq!(RequestId::try_new(input.clone()).map(|_| ()), Err(expected));
        prop_assert_eq!(WebSocketClientId::try_new(input).map(|_| ()), Err(expected));
    }

    #[test]
    fn placeholder_classes_pass_the_newtypes_and_fail_the_policy(
        (input, expected) in prop_oneof![
            placeholder_word_id().prop_map(|s| (s, FieldErrorKind::PlaceholderWord)),
            placeholder_prefix_id().prop_map(|s| (s, FieldErrorKind::PlaceholderPrefix)),
        ]
    ) {
        prop_assert!(UserId::try_new(input.clone()).is_ok());
        prop_assert_eq!(model::policy(&input), Err(expected));
        prop_assert_eq!(Policy::default().check(&input), Err(expected));
        prop_assert_eq!(Policy::permissive().check(&input), Ok(()));
    }
}

// ---------------------------------------------------------------------------------------
// Rejections: sendable close codes, short reasons, 1011 only for INTERNAL_ERROR.
// ---------------------------------------------------------------------------------------

const STYLES: [CloseStyle; 2] = [CloseStyle::Detailed, CloseStyle::Opaque];

fn check_rejection(rejection: &Rejection) {
    for style in STYLES {
        let code = rejection.close_code(style).as_u16();
        assert_eq!(
            CloseCode::new(code),
            Some(rejection.close_code(style)),
            "{rejection:?} {style:?}"
        );
        assert!(code >= 1000, "{code}");
        assert!(![1004, 1005, 1006, 1015].contains(&code), "{code}");
        assert_eq!(
            code == 1011,
            rejection.code() == ErrorCode::InternalError,
            "1011 iff INTERNAL_ERROR: {rejection:?} {style:?}"
        );
        if style == CloseStyle::Opaque {
            assert!(!(4400..4500).contains(&code), "opaque hides 44xx: {code}");
        }
    }
    let reason = rejection.close_reason();
    assert!(reason.as_str().len() <= 123, "{}", reason.as_str());
    assert!(reason.as_str().starts_with(rejection.code().reason()));
}

#[test]
fn every_rejection_without_detail_has_a_sendable_close_code() {
    for code in ErrorCode::ALL {
        let rejection = Rejection::new(code);
        check_rejection(&rejection);
        assert_eq!(rejection.close_reason().as_str(), code.reason());
        check_rejection(&Rejection::from(code));
    }
    // Exactly one error code closes with 1011.
    let internal: Vec<_> = ErrorCode::ALL
        .into_iter()
        .filter(|code| code.close_code() == CloseCode::INTERNAL_ERROR)
        .collect();
    assert_eq!(internal, [ErrorCode::InternalError]);
}

/// A context with one or more broken fields: one of [`invalid_raw_context`], or a
/// composite with any subset of the ids and the operation broken, maybe a depth past 10,
/// and up to 70 metadata entries including a reserved and upper-case keys.
fn multiply_invalid_context() -> impl Strategy<Value = Context<Raw>> {
    let composite = (
        vec(
            (
                select(vec![
                    "user", "thread", "run", "request", "parent", "client", "op",
                ]),
                prop_oneof![empty_id(), too_long_id(), control_character_id()],
            ),
            0..=7,
        ),
        proptest::option::of(11..=u64::MAX),
        0..=70_usize,
    )
        .prop_map(|(broken, depth, entries)| {
            let mut b = Context::builder().user_id("user-1");
            for (field, value) in broken {
                b = match field {
                    "user" => b.user_id(value),
                    "thread" => b.thread_id(value),
                    "run" => b.run_id(value),
                    "request" => b.request_id(value),
                    "parent" => b.parent_request_id(value),
                    "client" => b.websocket_client_id(value),
                    _ => b.operation(value),
                };
            }
            if let Some(depth) = depth {
                b = b.operation_depth(depth);
            }
            for i in 0..entries {
                let key = if i % 5 == 0 {
                    "user_id".to_owned()
                } else {
                    format!("K{i}")
                };
                b = b.metadata(key, "v");
            }
            b.build()
        });
    prop_oneof![invalid_raw_context().prop_map(|(raw, _, _)| raw), composite]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_rejection_with_detail_has_a_sendable_close_code(raw in multiply_invalid_context()) {
        match raw.validate(&Policy::default(), &SequenceGenerator::new()) {
            Ok(_) => {}
            Err(error) => {
                let rejection = Rejection::from(error);
                prop_assert_eq!(rejection.code(), ErrorCode::InvalidContext);
                prop_assert!(rejection.detail().is_some_and(|d| !d.is_empty()));
                check_rejection(&rejection);
                prop_assert_eq!(rejection.http_status(), Some(400));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// No error text contains the rejected input.
// ---------------------------------------------------------------------------------------

const MARKER: &str = "zq9Marker";

/// Invalid values that contain [`MARKER`], with where they go: values that break the
/// structural rule go to any id or the operation name, placeholder-prefixed values (which
/// only the policy refuses) to an id.
fn marked_invalid_value() -> impl Strategy<Value = (&'static str, String)> {
    let ids = vec![
        "user_id",
        "thread_id",
        "run_id",
        "request_id",
        "parent_request_id",
        "websocket_client_id",
    ];
    let mut any_field = ids.clone();
    any_field.push("operation");
    let structural = prop_oneof![
        (0..=4_usize).prop_map(|n| MARKER.repeat(30 + n)),
        proptest::char::range('\u{0}', '\u{1F}').prop_map(|c| format!("{MARKER}{c}x")),
        select(vec!['\u{200B}', '\u{202E}', '\u{2066}', '\u{FEFF}'])
            .prop_map(|c| format!("a{c}{MARKER}")),
    ];
    let placeholder = select(vec!["test_", "Mock_", "DEMO_"]).prop_map(|p| format!("{p}{MARKER}"));
    prop_oneof![
        3 => (select(any_field), structural),
        1 => (select(ids), placeholder),
    ]
}

fn assert_no_marker(text: &str, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(!text.contains(MARKER), "{} leaks the input: {}", what, text);
    prop_assert!(
        !text.to_lowercase().contains(&MARKER.to_lowercase()),
        "{} leaks the input: {}",
        what,
        text
    );
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn errors_never_contain_the_rejected_input(
        (field, value) in marked_invalid_value(),
        in_metadata in any::<bool>(),
    ) {
        // Through the builder.
        let mut b = Context::builder().user_id("user-1");
        b = match field {
            "user_id" => b.user_id(value.clone()),
            "thread_id" => b.thread_id(value.clone()),
            "run_id" => b.run_id(value.clone()),
            "request_id" => b.request_id(value.clone()),
            "parent_request_id" => b.parent_request_id(value.clone()),
            "websocket_client_id" => b.websocket_client_id(value.clone()),
            _ => b.operation(value.clone()),
        };
        if in_metadata {
            // An invalid key, and a too long value, both marked.
            b = b.metadata(MARKER, "v").metadata("k", MARKER.repeat(120));
        }
        let raw = b.build();
        assert_no_marker(&format!("{raw:?}"), "Context<Raw> Debug")?;
        let error = raw.validate(&Policy::default(), &SequenceGenerator::new())
            .map(|_| ())
            .expect_err("marked values are invalid");
        assert_no_marker(&error.to_string(), "ContextError Display")?;
        assert_no_marker(&format!("{error:?}"), "ContextError Debug")?;
        let rejection = Rejection::from(error);
        assert_no_marker(&rejection.to_string(), "Rejection Display")?;
        assert_no_marker(&format!("{rejection:?}"), "Rejection Debug")?;
        assert_no_marker(&rejection.error_frame(), "error frame")?;
        assert_no_marker(rejection.close_reason().as_str(), "close reason")?;

        // Through the newtypes.
        if let Err(e) = UserId::try_new(value.clone()) {
            assert_no_marker(&format!("{e} {e:?}"), "IdError")?;
        }

        // Through serde, as a value and as a key.
        let mut object = serde_json::Map::new();
        object.insert("user_id".into(), "user-1".into());
        object.insert(field.into(), value.clone().into());
        let json = serde_json::Value::Object(object).to_string();
        let error = serde_json::from_str::<Context<Validated>>(&json)
            .map(|_| ())
            .expect_err("marked values are invalid");
        assert_no_marker(&error.to_string(), "serde error")?;
        let unknown = format!(r#"{{"user_id":"user-1","{MARKER}":1}}"#);
        let error = serde_json::from_str::<Context<Raw>>(&unknown)
            .map(|_| ())
            .expect_err("unknown fields are refused");
        assert_no_marker(&error.to_string(), "unknown-field error")?;
        // Placeholder-prefixed values pass the newtypes (only the policy refuses them).
        let as_json = serde_json::to_string(&value).expect("strings serialize");
        if let Err(id_error) = serde_json::from_str::<ThreadId>(&as_json) {
            assert_no_marker(&id_error.to_string(), "newtype serde error")?;
        }
    }
}

/// A valid user id never shows in the Debug output of any context state.
#[test]
fn user_ids_are_not_printed_by_debug() {
    let ids = SequenceGenerator::new();
    let raw = Context::builder().user_id(MARKER).build();
    assert!(!format!("{raw:?}").contains(MARKER));
    let ctx = raw.validate(&Policy::default(), &ids).expect("valid");
    assert!(!format!("{ctx:?}").contains(MARKER));
    let bound = ctx.bind(None, &ids).expect("bound");
    assert!(!format!("{bound:?}").contains(MARKER));
}
