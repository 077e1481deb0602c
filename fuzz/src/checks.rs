//! The invariants the fuzz targets check, one function per target. Each panics when an
//! invariant breaks; libFuzzer reports the panic as a crash.
//!
//! This file is the single source of truth for the checks: the fuzz crate exposes it as
//! `wsctx_fuzz::checks`, and the main crate's `tests/fuzz_seeds.rs` includes it with
//! `#[path]` to replay every committed seed on stable. It may use only `std`, `wsctx`
//! (with `serde`) and `serde_json`.

use wsctx::state::{Raw, Validated};
use wsctx::{
    CloseCode, CloseReason, CloseStyle, Context, ErrorCode, IdError, MAX_CLOSE_REASON_BYTES,
    Policy, Rejection, RequestId, RunId, SequenceGenerator, ThreadId, UserId, WebSocketClientId,
};

/// `validate_json`: bytes → `Context<Raw>` (`serde_json`) → validate.
///
/// - nothing panics;
/// - deserializing straight into `Context<Validated>` succeeds exactly when the raw
///   parse and validation both do;
/// - accepted ⇒ every id obeys the structural rule, serializing and deserializing gives
///   an equal context, and `into_raw` → validate gives an equal context;
/// - rejected ⇒ INVALID_CONTEXT (the sequence generator never fails): HTTP 400, a
///   sendable close code that is not 1011, a reason of at most 123 bytes.
///
/// # Panics
///
/// When an invariant breaks (that is how libFuzzer and `tests/fuzz_seeds.rs` see it).
pub fn validate_json(data: &[u8]) {
    let policy = Policy::default();
    let direct = serde_json::from_slice::<Context<Validated>>(data);
    let Ok(raw) = serde_json::from_slice::<Context<Raw>>(data) else {
        assert!(
            direct.is_err(),
            "a validated context parsed where a raw one did not"
        );
        return;
    };
    match raw.validate(&policy, &SequenceGenerator::new()) {
        Ok(ctx) => {
            assert!(
                direct.is_ok(),
                "validate accepted what deserialization refused"
            );
            for id in [
                ctx.user_id().as_str(),
                ctx.thread_id().as_str(),
                ctx.run_id().as_str(),
                ctx.request_id().as_str(),
            ] {
                assert_eq!(model::structure(id), Ok(id.to_owned()));
                assert_eq!(model::policy(id), Ok(()));
            }
            assert!(ctx.operation_depth() <= wsctx::MAX_OPERATION_DEPTH);
            assert!(ctx.metadata().len() <= wsctx::MAX_METADATA_ENTRIES);

            let json = serde_json::to_vec(&ctx).expect("a validated context serializes");
            let back: Context<Validated> =
                serde_json::from_slice(&json).expect("a serialized context deserializes");
            assert_eq!(back, ctx, "JSON round trip changed the context");

            let again = ctx
                .clone()
                .into_raw()
                .validate(&policy, &SequenceGenerator::new())
                .expect("a validated context re-validates");
            assert_eq!(again, ctx, "validate is not idempotent");
        }
        Err(error) => {
            assert!(
                direct.is_err(),
                "deserialization accepted what validate refused"
            );
            let invalid = error
                .as_invalid()
                .expect("the sequence generator never fails");
            assert!(!invalid.is_empty());
            let rejection = Rejection::from(error);
            assert_eq!(rejection.code(), ErrorCode::InvalidContext);
            assert_eq!(rejection.http_status(), Some(400));
            for style in [CloseStyle::Detailed, CloseStyle::Opaque] {
                let code = rejection.close_code(style);
                assert_eq!(CloseCode::new(code.as_u16()), Some(code));
                assert_ne!(code, CloseCode::INTERNAL_ERROR);
            }
            assert!(rejection.close_reason().as_str().len() <= MAX_CLOSE_REASON_BYTES);
        }
    }
}

/// `field_rule`: bytes (as lossy UTF-8) → each id newtype and the default policy.
///
/// Every newtype accepts exactly what the naive model accepts, stores the model's trimmed
/// value, and rejects with a rule the model says is broken; `FromStr` agrees with
/// `try_new`; the default policy agrees with the naive model.
///
/// # Panics
///
/// When an invariant breaks (that is how libFuzzer and `tests/fuzz_seeds.rs` see it).
pub fn field_rule(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let input = input.as_ref();
    let expected = model::structure(input);
    check_newtype(input, &expected, UserId::try_new(input), UserId::as_str);
    check_newtype(input, &expected, ThreadId::try_new(input), ThreadId::as_str);
    check_newtype(input, &expected, RunId::try_new(input), RunId::as_str);
    check_newtype(
        input,
        &expected,
        RequestId::try_new(input),
        RequestId::as_str,
    );
    check_newtype(
        input,
        &expected,
        WebSocketClientId::try_new(input),
        WebSocketClientId::as_str,
    );
    assert_eq!(
        input.parse::<RunId>().ok(),
        RunId::try_new(input).ok(),
        "FromStr and try_new disagree"
    );
    assert_eq!(
        Policy::default().check(input),
        model::policy(input),
        "the default policy disagrees with the model"
    );
}

fn check_newtype<T>(
    input: &str,
    expected: &Result<String, Vec<IdError>>,
    actual: Result<T, IdError>,
    as_str: fn(&T) -> &str,
) {
    match (actual, expected) {
        (Ok(id), Ok(trimmed)) => assert_eq!(as_str(&id), trimmed.as_str()),
        (Err(error), Err(broken)) => assert!(
            broken.contains(&error),
            "{error:?} is not among the broken rules {broken:?} for {input:?}"
        ),
        (Ok(_), Err(broken)) => panic!("accepted {input:?}; the model says {broken:?}"),
        (Err(error), Ok(_)) => panic!("rejected {input:?} with {error:?}; the model accepts"),
    }
}

/// `close_reason`: any string (bytes as lossy UTF-8) → `CloseReason::new`.
///
/// The reason is at most 123 bytes, valid UTF-8, a prefix of the input, and the longest
/// such prefix (the input itself when it fits).
///
/// # Panics
///
/// When an invariant breaks (that is how libFuzzer and `tests/fuzz_seeds.rs` see it).
pub fn close_reason(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let reason = CloseReason::new(&input);
    let text = reason.as_str();
    assert!(text.len() <= MAX_CLOSE_REASON_BYTES, "{} bytes", text.len());
    assert!(std::str::from_utf8(text.as_bytes()).is_ok());
    assert!(input.starts_with(text), "not a prefix of the input");
    match input[text.len()..].chars().next() {
        None => assert_eq!(text, input.as_ref()),
        Some(next) => assert!(
            text.len() + next.len_utf8() > MAX_CLOSE_REASON_BYTES,
            "cut too short: {} bytes, next char {} bytes",
            text.len(),
            next.len_utf8()
        ),
    }
    assert_eq!(reason.to_string(), text);
}

/// A naive model of the field rules (`ARCHITECTURE.md`, "Field rules"), written from the
/// text rather than from the library.
pub mod model {
    use wsctx::{FieldErrorKind, IdError};

    /// Unicode `White_Space`, listed by hand.
    fn is_white_space(c: char) -> bool {
        matches!(
            c as u32,
            0x09..=0x0D
                | 0x20
                | 0x85
                | 0xA0
                | 0x1680
                | 0x2000..=0x200A
                | 0x2028
                | 0x2029
                | 0x202F
                | 0x205F
                | 0x3000
        )
    }

    /// Unicode general category `Cc`.
    #[must_use]
    pub fn is_cc(c: char) -> bool {
        matches!(c as u32, 0x00..=0x1F | 0x7F..=0x9F)
    }

    /// The invisible formatting characters the field rules list.
    #[must_use]
    pub fn is_invisible(c: char) -> bool {
        matches!(
            c as u32,
            0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x2069 | 0xFEFF
        )
    }

    /// `s` without leading and trailing `White_Space`.
    #[must_use]
    pub fn trim(s: &str) -> String {
        let chars: Vec<char> = s.chars().collect();
        let start = chars.iter().position(|&c| !is_white_space(c));
        let end = chars.iter().rposition(|&c| !is_white_space(c));
        match (start, end) {
            (Some(start), Some(end)) => chars[start..=end].iter().collect(),
            _ => String::new(),
        }
    }

    /// The trimmed value when the structural rule accepts `s`, otherwise every rule it
    /// breaks.
    ///
    /// # Errors
    ///
    /// The broken rules, when there are any.
    pub fn structure(s: &str) -> Result<String, Vec<IdError>> {
        let t = trim(s);
        if t.is_empty() {
            return Err(vec![IdError::Empty]);
        }
        let mut broken = Vec::new();
        if t.len() > 256 {
            broken.push(IdError::TooLong);
        }
        if t.chars().any(is_cc) {
            broken.push(IdError::ControlCharacter);
        }
        if t.chars().any(is_invisible) {
            broken.push(IdError::InvisibleCharacter);
        }
        if broken.is_empty() {
            Ok(t)
        } else {
            Err(broken)
        }
    }

    /// The default placeholder words, restated from the text (not from `src/rule.rs`).
    pub const WORDS: [&str; 19] = [
        "registry",
        "placeholder",
        "default",
        "temp",
        "none",
        "null",
        "undefined",
        "0",
        "1",
        "xxx",
        "yyy",
        "example",
        "test",
        "demo",
        "sample",
        "template",
        "mock",
        "fake",
        "dummy",
    ];

    /// The default placeholder prefixes, restated from the text.
    pub const PREFIXES: [&str; 11] = [
        "placeholder_",
        "registry_",
        "default_",
        "temp_",
        "test_",
        "example_",
        "demo_",
        "sample_",
        "template_",
        "mock_",
        "fake_",
    ];

    /// The default policy: `to_lowercase` comparison; prefixes only under 20 bytes.
    ///
    /// # Errors
    ///
    /// The placeholder kind, when `s` is one.
    pub fn policy(s: &str) -> Result<(), FieldErrorKind> {
        let t = trim(s);
        let lower = t.to_lowercase();
        if WORDS.contains(&lower.as_str()) {
            Err(FieldErrorKind::PlaceholderWord)
        } else if t.len() < 20 && PREFIXES.iter().any(|p| lower.starts_with(p)) {
            Err(FieldErrorKind::PlaceholderPrefix)
        } else {
            Ok(())
        }
    }
}
