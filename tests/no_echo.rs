//! No error, rejection or Debug output contains the rejected input, and no Debug output
//! contains a user id.

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
