//! The public value types of server push: `EventType`, `ResumePoint`, `ReplayLimits`.
//! Property tests against naive models written from their documentation.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on the unexpected")]

use std::time::Duration;

use proptest::prelude::*;
use wsctx::{EventType, EventTypeError, ReplayLimits, ResumePoint};

#[test]
fn replay_defaults_are_the_documented_ones() {
    let limits = ReplayLimits::default();
    assert_eq!(limits.events_per_user, 256);
    assert_eq!(limits.window, Duration::from_secs(120));
    assert_eq!(limits.bytes_per_user, 256 * 1024);
    assert_eq!(limits.bytes_total, 64 * 1024 * 1024);
}

#[test]
fn event_type_refuses_blank_uppercase_and_65_bytes() {
    assert_eq!(EventType::try_new(""), Err(EventTypeError::Empty));
    assert_eq!(EventType::try_new("  "), Err(EventTypeError::Empty));
    assert_eq!(
        EventType::try_new("Agent_started"),
        Err(EventTypeError::InvalidCharacter)
    );
    assert_eq!(
        EventType::try_new("a".repeat(65)),
        Err(EventTypeError::TooLong)
    );
    assert!(EventType::try_new("a".repeat(64)).is_ok());
}

/// The rule as documented: 1 to 64 bytes, each one of `[a-z0-9_.:-]`.
fn model_accepts(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.:-".contains(c))
}

/// Mostly near-valid names: the allowed set plus a few bytes just outside it.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_.:-]{0,70}",
        "[a-z0-9_.:\\-A-Z /;`{é\u{0} \t]{0,70}",
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn event_type_accepts_exactly_what_the_rule_allows(name in name()) {
        let result = EventType::try_new(name.as_str());
        prop_assert_eq!(result.is_ok(), model_accepts(&name));
        match result {
            Ok(event) => prop_assert_eq!(event.as_str(), name.as_str()),
            Err(error) => {
                let expected = if name.trim().is_empty() {
                    EventTypeError::Empty
                } else if name.len() > 64 {
                    EventTypeError::TooLong
                } else {
                    EventTypeError::InvalidCharacter
                };
                prop_assert_eq!(error, expected);
            }
        }
    }

    #[test]
    fn resume_points_round_trip(epoch in any::<u64>(), seq in any::<u64>()) {
        let point = ResumePoint::new(epoch, seq);
        prop_assert_eq!(point.to_string().parse::<ResumePoint>(), Ok(point));
    }

    /// Strict parsing means one spelling per point: whatever parses prints back as the
    /// same text.
    #[test]
    fn a_parsed_resume_point_prints_as_its_input(
        text in prop_oneof!["[0-9a-fA-F]{15,17}\\.[0-9+-]{0,21}", any::<String>()],
    ) {
        if let Ok(point) = text.parse::<ResumePoint>() {
            prop_assert_eq!(point.to_string(), text);
        }
    }
}

#[test]
fn errors_never_contain_the_input() {
    let marker = "zqxjzqxj";
    let inputs = [
        marker.to_owned(),
        format!("{marker}.1"),
        format!("0123456789abcdef.{marker}"),
        marker.repeat(10),
    ];
    for input in &inputs {
        let error = input.parse::<ResumePoint>().unwrap_err();
        assert!(!format!("{error} {error:?}").contains(marker), "{error:?}");
        let error = EventType::try_new(format!("{}{marker}", "Q")).unwrap_err();
        assert!(!format!("{error} {error:?}").contains(marker), "{error:?}");
    }
}

#[cfg(feature = "serde")]
#[test]
fn serde_refuses_what_parsing_refuses_without_quoting_it() {
    let error = serde_json::from_str::<ResumePoint>(r#""0123456789abcdef.007""#).unwrap_err();
    assert!(error.to_string().contains("leading zeros"), "{error}");
    assert!(!error.to_string().contains("007"), "{error}");
    let error = serde_json::from_str::<EventType>(r#""run.Zqxj""#).unwrap_err();
    assert!(!error.to_string().contains("Zqxj"), "{error}");
    let event: EventType = serde_json::from_str(r#""run.done""#).unwrap();
    assert_eq!(serde_json::to_value(&event).unwrap(), "run.done");
}

#[cfg(feature = "serde")]
#[test]
fn event_type_serde_round_trips_and_revalidates() {
    let event = EventType::try_new("run.started").unwrap();
    assert_eq!(serde_json::to_string(&event).unwrap(), r#""run.started""#);
    assert_eq!(
        serde_json::from_str::<EventType>(r#""run.started""#).unwrap(),
        event
    );
    for bad in [r#""""#, r#""Run""#, r#"" run""#] {
        assert!(serde_json::from_str::<EventType>(bad).is_err(), "{bad}");
    }
    let error = serde_json::from_str::<EventType>(r#""SecretMarker""#).unwrap_err();
    assert!(!error.to_string().contains("SecretMarker"), "{error}");
    assert!(
        error.to_string().contains("outside [a-z0-9_.:-]"),
        "{error}"
    );
    for wrong_type in ["424242", "-424242", "4242.5", "true"] {
        let error = serde_json::from_str::<EventType>(wrong_type)
            .unwrap_err()
            .to_string();
        assert!(
            !error.contains("4242") && !error.contains("true"),
            "{error}"
        );
    }
}

#[cfg(feature = "serde")]
#[test]
fn resume_point_serde_round_trips_and_revalidates() {
    let point = ResumePoint::new(0xab, 7);
    let text = serde_json::to_string(&point).unwrap();
    assert_eq!(text, r#""00000000000000ab.7""#);
    assert_eq!(serde_json::from_str::<ResumePoint>(&text).unwrap(), point);
    let error = serde_json::from_str::<ResumePoint>(r#""00000000000000ab.07""#).unwrap_err();
    assert!(!error.to_string().contains("ab.07"), "{error}");
    let error = serde_json::from_str::<ResumePoint>("171717")
        .unwrap_err()
        .to_string();
    assert!(!error.contains("171717"), "{error}");
}
