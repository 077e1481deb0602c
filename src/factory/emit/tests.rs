//! The event frame renderer against exact frames, an independent date formatter and
//! the data limit.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{EventHeader, PreparedEvent, write_rfc3339};
use crate::factory::error::EmitError;
use crate::{Context, EventType, Policy, SequenceGenerator};

fn rfc3339(at: SystemTime) -> String {
    let mut out = Vec::new();
    write_rfc3339(&mut out, at);
    String::from_utf8(out).unwrap()
}

#[test]
fn rfc3339_known_instants_and_clamps() {
    let at = |millis: u64| UNIX_EPOCH + Duration::from_millis(millis);
    assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(at(1_700_000_000_123)), "2023-11-14T22:13:20.123Z");
    assert_eq!(rfc3339(at(951_782_400_000)), "2000-02-29T00:00:00.000Z");
    assert_eq!(rfc3339(at(4_107_542_399_999)), "2100-02-28T23:59:59.999Z");
    assert_eq!(rfc3339(at(4_107_542_400_000)), "2100-03-01T00:00:00.000Z");
    assert_eq!(rfc3339(at(253_402_300_799_999)), "9999-12-31T23:59:59.999Z");
    // Truncated, not rounded.
    assert_eq!(
        rfc3339(UNIX_EPOCH + Duration::from_nanos(1_999_999)),
        "1970-01-01T00:00:00.001Z"
    );
    // Outside what four digits of year can say: clamped.
    assert_eq!(rfc3339(at(253_402_300_800_000)), "9999-12-31T23:59:59.999Z");
    if let Some(far) = UNIX_EPOCH.checked_add(Duration::from_secs(1 << 40)) {
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59.999Z");
    }
    if let Some(before) = UNIX_EPOCH.checked_sub(Duration::from_secs(1)) {
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00.000Z");
    }
}

proptest! {
    /// Against an independent formatter: `httpdate` writes the same instant as
    /// `Sun, 06 Nov 1994 08:49:37 GMT`.
    #[test]
    fn rfc3339_agrees_with_httpdate(secs in 0_u64..=253_402_300_799, millis in 0_u64..1000) {
        let at = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
        let ours = rfc3339(at);
        let theirs = httpdate::fmt_http_date(at);
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let parts: Vec<&str> = theirs.split([' ', ':']).collect();
        let month = months.iter().position(|m| *m == parts[2]).unwrap() + 1;
        let expected = format!(
            "{}-{month:02}-{}T{}:{}:{}.{millis:03}Z",
            parts[3], parts[1], parts[4], parts[5], parts[6]
        );
        prop_assert_eq!(ours, expected);
    }
}

fn ctx(thread: &str) -> Context<crate::state::Validated> {
    Context::builder()
        .user_id("USER-MARKER-7")
        .thread_id(thread)
        .run_id("run_1")
        .request_id("req_1")
        .build()
        .validate(&Policy::default(), &SequenceGenerator::new())
        .unwrap()
}

#[test]
fn renders_the_exact_frame_without_the_user_id() {
    let event = EventType::try_new("run.progress").unwrap();
    let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    let prepared = PreparedEvent::new(
        &event,
        &EventHeader::new(&ctx("thread_1")),
        at,
        &json!({"done": 3}),
        64,
    )
    .unwrap();
    let frame = prepared.render(0x00c0_ffee, 7);
    assert_eq!(
        &*frame,
        r#"{"type":"event","event":"run.progress","epoch":"0000000000c0ffee","seq":7,"thread_id":"thread_1","run_id":"run_1","request_id":"req_1","parent_request_id":null,"depth":0,"ts":"2023-11-14T22:13:20.123Z","data":{"done":3}}"#
    );
    assert!(!frame.contains("USER-MARKER"));
    // The same prepared event at another position differs only there.
    let other = prepared.render(u64::MAX, u64::MAX);
    assert!(
        other.contains(r#""epoch":"ffffffffffffffff","seq":18446744073709551615,"#),
        "{other}"
    );
    assert_eq!(other.len(), frame.len() + 19);
}

#[test]
fn a_child_context_renders_its_parent_and_depth_and_ids_are_escaped() {
    let parent = ctx(r#"quote"back\slash/é"#);
    let child = parent
        .child("summarize", &Policy::default(), &SequenceGenerator::new())
        .unwrap();
    let event = EventType::try_new("tool:done").unwrap();
    let prepared =
        PreparedEvent::new(&event, &EventHeader::new(&child), UNIX_EPOCH, &"ok", 16).unwrap();
    let value: Value = serde_json::from_str(&prepared.render(1, 2)).unwrap();
    assert_eq!(value["thread_id"], r#"quote"back\slash/é"#);
    assert_eq!(value["request_id"], child.request_id().as_str());
    assert_eq!(value["parent_request_id"], "req_1");
    assert_eq!(value["depth"], 1);
    assert_eq!(value["data"], "ok");
    assert_eq!(value["epoch"], "0000000000000001");
    assert_eq!(value["seq"], 2);
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 11);
}

#[test]
fn data_at_the_limit_passes_and_one_byte_more_is_refused() {
    let event = EventType::try_new("e").unwrap();
    let header = EventHeader::new(&ctx("t"));
    // `"xxxx"` is 4 + 2 bytes of JSON.
    let data = "x".repeat(4);
    assert!(PreparedEvent::new(&event, &header, UNIX_EPOCH, &data, 6).is_ok());
    assert_eq!(
        PreparedEvent::new(&event, &header, UNIX_EPOCH, &data, 5).unwrap_err(),
        EmitError::DataTooLarge { limit: 5 }
    );
    // `null` is 4 bytes.
    let unit = PreparedEvent::new(&event, &header, UNIX_EPOCH, &(), 4).unwrap();
    assert!(unit.render(0, 1).ends_with(r#","data":null}"#));
    assert_eq!(
        PreparedEvent::new(&event, &header, UNIX_EPOCH, &(), 3).unwrap_err(),
        EmitError::DataTooLarge { limit: 3 }
    );
    assert_eq!(
        PreparedEvent::new(&event, &header, UNIX_EPOCH, &(), 0).unwrap_err(),
        EmitError::DataTooLarge { limit: 0 }
    );
}

/// A long sequence that counts how many of its items were serialized.
struct Counted<'a>(&'a std::cell::Cell<usize>);

impl serde::Serialize for Counted<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq((0..1_000_000).inspect(|_| self.0.set(self.0.get() + 1)))
    }
}

#[test]
fn oversized_data_stops_serializing_at_the_limit() {
    let items = std::cell::Cell::new(0);
    let event = EventType::try_new("e").unwrap();
    let result = PreparedEvent::new(
        &event,
        &EventHeader::new(&ctx("t")),
        UNIX_EPOCH,
        &Counted(&items),
        1000,
    );
    assert_eq!(result.unwrap_err(), EmitError::DataTooLarge { limit: 1000 });
    assert!(items.get() < 1000, "serialized {} items", items.get());
}

/// Data whose `Serialize` fails with a message quoting the data.
struct Failing;

impl serde::Serialize for Failing {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("SecretMarker"))
    }
}

#[test]
fn failing_or_non_json_data_is_a_serialize_error_that_quotes_nothing() {
    let event = EventType::try_new("e").unwrap();
    let header = EventHeader::new(&ctx("t"));
    let error = PreparedEvent::new(&event, &header, UNIX_EPOCH, &Failing, 1 << 20).unwrap_err();
    assert_eq!(error, EmitError::Serialize);
    assert!(!format!("{error} {error:?}").contains("SecretMarker"));
    let mut map = std::collections::BTreeMap::new();
    map.insert(vec![1_u8], 1);
    assert_eq!(
        PreparedEvent::new(&event, &header, UNIX_EPOCH, &map, 1 << 20).unwrap_err(),
        EmitError::Serialize
    );
    assert_eq!(
        EmitError::Serialize.to_string(),
        "event data cannot be serialized as json"
    );
}
