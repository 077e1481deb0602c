//! JSON in and out (feature `serde`).
#![cfg(feature = "serde")]
mod support;

use wsctx::state::{Raw, Validated};
use wsctx::{Context, Field, FieldErrorKind, Policy, SequenceGenerator, ThreadId, UserId};

use support::errors::reports;

fn validate_json(json: &str) -> Result<Context<Validated>, wsctx::ContextError> {
    let raw: Context<Raw> = serde_json::from_str(json).expect("well-formed raw context");
    raw.validate(&Policy::default(), &SequenceGenerator::new())
}

#[test]
fn ids_of_the_wrong_type_are_invalid_context_naming_the_field() {
    let fields = [
        ("user_id", Field::UserId),
        ("thread_id", Field::ThreadId),
        ("run_id", Field::RunId),
        ("request_id", Field::RequestId),
        ("parent_request_id", Field::ParentRequestId),
        ("websocket_client_id", Field::WebSocketClientId),
        ("operation", Field::Operation),
    ];
    for (name, field) in fields {
        for value in [
            "null",
            "0",
            "7",
            "-1",
            "1.5",
            "true",
            "[]",
            r#"["u-1"]"#,
            "{}",
            r#"{"a":[1,{"b":null}]}"#,
        ] {
            let json = if name == "user_id" {
                format!(r#"{{"user_id": {value}}}"#)
            } else {
                format!(r#"{{"user_id": "u-1", "{name}": {value}}}"#)
            };
            let error = validate_json(&json).unwrap_err();
            let invalid = error.as_invalid().expect("client error");
            assert_eq!(invalid.len(), 1, "{json}");
            assert!(
                invalid.contains(field, FieldErrorKind::WrongType),
                "{json}: {invalid}"
            );
        }
    }
}

#[test]
fn metadata_and_depth_of_the_wrong_type_are_reported() {
    for (json, field) in [
        (r#"{"user_id":"u-1","metadata":{"k":1}}"#, Field::Metadata),
        (
            r#"{"user_id":"u-1","metadata":{"k":null}}"#,
            Field::Metadata,
        ),
        (r#"{"user_id":"u-1","metadata":[]}"#, Field::Metadata),
        (r#"{"user_id":"u-1","metadata":"x"}"#, Field::Metadata),
        (
            r#"{"user_id":"u-1","operation_depth":"3"}"#,
            Field::OperationDepth,
        ),
        (
            r#"{"user_id":"u-1","operation_depth":-1}"#,
            Field::OperationDepth,
        ),
        (
            r#"{"user_id":"u-1","operation_depth":2.5}"#,
            Field::OperationDepth,
        ),
    ] {
        let error = validate_json(json).unwrap_err();
        assert!(
            reports(&error, field, FieldErrorKind::WrongType),
            "{json}: {error}"
        );
    }
    let deep = validate_json(r#"{"user_id":"u-1","operation_depth":18446744073709551615}"#);
    assert!(reports(
        &deep.unwrap_err(),
        Field::OperationDepth,
        FieldErrorKind::DepthExceeded
    ));
}

#[test]
fn unknown_and_duplicate_fields_are_deserialization_errors() {
    let unknown = serde_json::from_str::<Context<Raw>>(r#"{"user_id":"u-1","is_admin":true}"#)
        .unwrap_err()
        .to_string();
    assert!(
        unknown.starts_with("unknown field, expected one of"),
        "{unknown}"
    );
    assert!(
        !unknown.contains("is_admin"),
        "the unknown name is not echoed"
    );
    let duplicate =
        serde_json::from_str::<Context<Raw>>(r#"{"user_id":"a-1","user_id":"b-2"}"#).unwrap_err();
    assert!(duplicate.to_string().contains("duplicate field `user_id`"));
    assert!(serde_json::from_str::<Context<Raw>>("[]").is_err());
    assert!(serde_json::from_str::<Context<Raw>>(r#""u-1""#).is_err());
}

#[test]
fn validated_contexts_deserialize_only_through_validation() {
    let ok: Context<Validated> =
        serde_json::from_str(r#"{"user_id":" u-1 ","thread_id":"t-1"}"#).unwrap();
    assert_eq!(ok.user_id().as_str(), "u-1");
    let refused = serde_json::from_str::<Context<Validated>>(r#"{"user_id":" null "}"#)
        .unwrap_err()
        .to_string();
    assert!(
        refused.starts_with("invalid context: user_id is a placeholder value"),
        "{refused}"
    );
    assert!(serde_json::from_str::<Context<Validated>>(r#"{"thread_id":"t-1"}"#).is_err());
}

#[test]
fn validated_contexts_round_trip_through_json() {
    let ctx = validate_json(
        r#"{"user_id":"u-1","websocket_client_id":"tab-1","metadata":{"locale":"en","z":""},"operation_depth":4,"operation":"op","parent_request_id":"req_0"}"#,
    )
    .unwrap();
    let json = serde_json::to_string(&ctx).unwrap();
    let back: Context<Validated> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ctx);
    let raw_back: Context<Raw> = serde_json::from_str(&json).unwrap();
    assert_eq!(raw_back, ctx.clone().into_raw());
}

#[test]
fn newtypes_serialize_as_strings_and_revalidate() {
    let id = ThreadId::try_new("t-1").unwrap();
    assert_eq!(serde_json::to_string(&id).unwrap(), r#""t-1""#);
    assert_eq!(serde_json::from_str::<ThreadId>(r#"" t-1 ""#).unwrap(), id);
    let error = serde_json::from_str::<UserId>("\"\\u202Eabc\"")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("contains an invisible formatting character"),
        "{error}"
    );
    assert!(!error.contains("abc"));
    // Wrong types get a fixed message that quotes nothing.
    let error = serde_json::from_str::<UserId>("17")
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("UserId must be a string"), "{error}");
    let error = serde_json::from_str::<Context<Raw>>(r#""u-1""#)
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("a context must be an object"), "{error}");
}
