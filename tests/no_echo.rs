//! No error, rejection or Debug output contains the rejected input, and no Debug output
//! contains a user id.

mod support;

use wsctx::{Context, Policy, Rejection, SequenceGenerator, UserId};

const MARKER: &str = "SeCrEtMaRkEr";

fn assert_clean(what: &str, text: &str) {
    assert!(
        !text.to_lowercase().contains(&MARKER.to_lowercase()),
        "{what} leaks the input: {text}"
    );
}

#[test]
fn errors_never_contain_the_rejected_value() {
    let bad_values = [
        format!("{MARKER}\u{202E}"),
        format!("{MARKER}\u{0}"),
        MARKER.repeat(30),
        format!("test_{}", &MARKER[..3]),
    ];
    for bad in &bad_values {
        for field in 0..7 {
            let b = Context::builder().user_id("u-1");
            let b = match field {
                0 => Context::builder().user_id(bad.as_str()),
                1 => b.thread_id(bad.as_str()),
                2 => b.run_id(bad.as_str()),
                3 => b.request_id(bad.as_str()),
                4 => b.parent_request_id(bad.as_str()),
                5 => b.websocket_client_id(bad.as_str()),
                _ => b
                    .metadata(bad.as_str(), bad.as_str())
                    .metadata("k", bad.repeat(40)),
            };
            let raw = b.build();
            assert_clean("Context<Raw> Debug", &format!("{raw:?}"));
            let error = raw
                .validate(&Policy::default(), &SequenceGenerator::new())
                .unwrap_err();
            assert_clean("ContextError Display", &error.to_string());
            assert_clean("ContextError Debug", &format!("{error:?}"));
            let rejection = Rejection::from(error);
            assert_clean("Rejection Display", &rejection.to_string());
            assert_clean("Rejection Debug", &format!("{rejection:?}"));
            assert_clean("error frame", &rejection.error_frame());
            assert_clean("close reason", rejection.close_reason().as_str());
        }
    }
    for bad in &bad_values {
        if let Err(e) = UserId::try_new(bad.as_str()) {
            assert_clean("IdError", &format!("{e} {e:?}"));
        }
    }
}

#[test]
fn debug_output_never_contains_a_user_id() {
    let ids = SequenceGenerator::new();
    let user = format!("user-{MARKER}");
    let raw = Context::builder().user_id(user.as_str()).build();
    assert_clean("raw Debug", &format!("{raw:?}"));
    let validated = raw.validate(&Policy::default(), &ids).unwrap();
    assert_clean("validated Debug", &format!("{validated:?}"));
    let bound = validated.bind(None, &ids).unwrap();
    assert_clean("bound Debug", &format!("{bound:?}"));
    assert_clean("UserId Debug", &format!("{:?}", bound.user_id()));
    // The fingerprint stands in for the id and is stable.
    assert_eq!(
        format!("{:?}", bound.user_id()),
        format!("{:?}", UserId::try_new(user).unwrap())
    );
}

/// Every deserializer of the crate, fed values of every shape that carry a marker: no
/// error message contains the marker (serde's default messages quote the input, e.g.
/// "invalid type: integer `1234567`").
#[cfg(feature = "serde")]
mod deserializers {
    use serde::Deserialize;
    use serde::de::value::{
        BoolDeserializer, BytesDeserializer, CharDeserializer, Error as ValueError,
        F64Deserializer, I64Deserializer, MapDeserializer, SeqDeserializer, StrDeserializer,
        U64Deserializer,
    };
    use wsctx::state::{Raw, Validated};
    use wsctx::{Context, RequestId, RunId, ThreadId, UserId, WebSocketClientId};

    use super::support::errors::reports;
    use super::{MARKER, assert_clean};

    const NUMBER: &str = "1234567";

    /// JSON documents of every shape, each carrying the marker or the number.
    fn documents() -> Vec<String> {
        vec![
            NUMBER.to_owned(),
            format!("-{NUMBER}"),
            format!("{NUMBER}.25"),
            format!("{NUMBER}e3"),
            format!("\"{MARKER}\\u202E\""),
            format!("\" {MARKER}\\u0000\""),
            format!("\"{}\"", MARKER.repeat(30)),
            format!("[\"{MARKER}\", {NUMBER}]"),
            format!("{{\"{MARKER}\": {NUMBER}}}"),
            format!("{{\"user_id\": {NUMBER}}}"),
            format!("{{\"user_id\": \"u-1\", \"metadata\": {{\"{MARKER}\": \"x\"}}}}"),
            format!("{{\"user_id\": \"u-1\", \"metadata\": {{\"k\": \"{MARKER}\\u0000\"}}}}"),
            format!("{{\"user_id\": \"u-1\", \"thread_id\": \"{MARKER}\\u202E\"}}"),
            format!("{{\"user_id\": \"test_{MARKER}\"}}"),
            "true".to_owned(),
            "null".to_owned(),
        ]
    }

    fn clean(what: &str, error: impl std::fmt::Display) {
        let text = error.to_string();
        assert_clean(what, &text);
        assert!(!text.contains(NUMBER), "{what} leaks the number: {text}");
    }

    /// Runs the check macro `$check` over every type that can be read from the wire.
    macro_rules! for_each_wire_type {
        ($check:ident) => {
            $check!(
                UserId,
                ThreadId,
                RunId,
                RequestId,
                WebSocketClientId,
                Context<Raw>,
                Context<Validated>
            )
        };
    }

    macro_rules! check_json {
        ($($ty:ty),*) => {$(
            for json in documents() {
                if let Err(error) = serde_json::from_str::<$ty>(&json) {
                    clean(concat!(stringify!($ty), " from JSON"), error);
                }
            }
        )*};
    }

    #[test]
    fn json_errors_never_contain_the_input() {
        for_each_wire_type!(check_json);
        // The cases above really are refused (the test is not vacuous).
        assert!(serde_json::from_str::<UserId>(NUMBER).is_err());
        assert!(serde_json::from_str::<Context<Raw>>(&format!("\"{MARKER}\"")).is_err());
        assert!(
            serde_json::from_str::<Context<Validated>>(&format!("{{\"user_id\": {NUMBER}}}"))
                .is_err()
        );
    }

    macro_rules! check_values {
        ($($ty:ty),*) => {$(
            let what = concat!(stringify!($ty), " from a serde value");
            let number = NUMBER.parse::<u64>().unwrap();
            let results = [
                <$ty>::deserialize(U64Deserializer::<ValueError>::new(number)).err(),
                <$ty>::deserialize(I64Deserializer::<ValueError>::new(-1_234_567)).err(),
                <$ty>::deserialize(F64Deserializer::<ValueError>::new(1_234_567.25)).err(),
                <$ty>::deserialize(BoolDeserializer::<ValueError>::new(true)).err(),
                <$ty>::deserialize(CharDeserializer::<ValueError>::new('\u{202E}')).err(),
                <$ty>::deserialize(StrDeserializer::<ValueError>::new(&format!("{MARKER}\u{202E}"))).err(),
                <$ty>::deserialize(BytesDeserializer::<ValueError>::new(MARKER.as_bytes())).err(),
                <$ty>::deserialize(SeqDeserializer::<_, ValueError>::new([number].into_iter())).err(),
                <$ty>::deserialize(MapDeserializer::<_, ValueError>::new([(number, MARKER)].into_iter())).err(),
                <$ty>::deserialize(MapDeserializer::<_, ValueError>::new([(MARKER, number)].into_iter())).err(),
            ];
            for error in results.into_iter().flatten() {
                clean(what, error);
            }
        )*};
    }

    #[test]
    fn other_formats_errors_never_contain_the_input() {
        for_each_wire_type!(check_values);
    }

    #[test]
    fn metadata_with_non_string_keys_is_a_wrong_type_not_an_echo() {
        use wsctx::{Field, FieldErrorKind, Policy, SequenceGenerator};
        let number = NUMBER.parse::<u64>().unwrap();
        let metadata = MapDeserializer::<_, ValueError>::new([(number, MARKER)].into_iter());
        let raw = Context::<Raw>::deserialize(MapDeserializer::<_, ValueError>::new(
            [("metadata", metadata)].into_iter(),
        ))
        .unwrap();
        let error = raw
            .validate(&Policy::default(), &SequenceGenerator::new())
            .unwrap_err();
        assert!(
            reports(&error, Field::Metadata, FieldErrorKind::WrongType),
            "{error}"
        );
        clean("metadata validation", &error);
    }
}
