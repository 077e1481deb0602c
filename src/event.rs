//! Server-pushed execution events: [`EventType`], and (feature `serde`) the event frame
//! and [`EmitError`].
//!
//! An event frame is one JSON text message sent to every live socket of one user:
//!
//! ```json
//! {"type":"event","event":"run.progress","epoch":"9f3c…","seq":7,
//!  "thread_id":"…","run_id":"…","request_id":"…","parent_request_id":null,
//!  "depth":0,"ts":"2026-11-21T10:15:30.123Z","data":{"done":3}}
//! ```
//!
//! `epoch` and `seq` say where the event sits in the user's stream (see
//! [`ResumePoint`](crate::ResumePoint)); the ids and `depth` come from the execution
//! context that emitted it; `ts` is the emit time in RFC 3339, UTC, milliseconds;
//! `data` is the caller's value. The user id is never part of the frame.

use std::fmt;
use std::str::FromStr;

/// An event type is at most this many bytes of `[a-z0-9_.:-]`.
pub const MAX_EVENT_TYPE_BYTES: usize = 64;

/// The name of an execution event, such as `run.started` or `tool:search.done`: 1 to
/// [`MAX_EVENT_TYPE_BYTES`] bytes of `[a-z0-9_.:-]`.
///
/// The check runs at construction (and when deserializing, with the `serde` feature),
/// so a value of this type is always a valid name. Nothing is trimmed: a name with
/// spaces is refused, not repaired.
///
/// # Examples
///
/// ```
/// use wsctx::{EventType, EventTypeError};
///
/// let event = EventType::try_new("run.progress")?;
/// assert_eq!(event.as_str(), "run.progress");
/// assert_eq!("tool:search.done".parse::<EventType>()?.to_string(), "tool:search.done");
///
/// assert_eq!(EventType::try_new(""), Err(EventTypeError::Empty));
/// assert_eq!(EventType::try_new("Run.Started"), Err(EventTypeError::InvalidCharacter));
/// assert_eq!(EventType::try_new("x".repeat(65)), Err(EventTypeError::TooLong));
/// # Ok::<(), EventTypeError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(Box<str>);

impl EventType {
    /// Checks `name` and wraps it.
    ///
    /// # Errors
    ///
    /// [`EventTypeError::Empty`] for an empty or all-whitespace name,
    /// [`EventTypeError::TooLong`] above [`MAX_EVENT_TYPE_BYTES`] bytes,
    /// [`EventTypeError::InvalidCharacter`] for any byte outside `[a-z0-9_.:-]`.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{EventType, EventTypeError};
    ///
    /// assert!(EventType::try_new(String::from("job-42:done")).is_ok());
    /// assert_eq!(EventType::try_new("   "), Err(EventTypeError::Empty));
    /// assert_eq!(EventType::try_new("run started"), Err(EventTypeError::InvalidCharacter));
    /// ```
    pub fn try_new(name: impl Into<String>) -> Result<Self, EventTypeError> {
        let name = name.into();
        check(&name)?;
        Ok(Self(name.into_boxed_str()))
    }

    /// The name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::EventType::try_new("a.b")?.as_str(), "a.b");
    /// # Ok::<(), wsctx::EventTypeError>(())
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The rule of [`EventType`].
fn check(name: &str) -> Result<(), EventTypeError> {
    if name.trim().is_empty() {
        return Err(EventTypeError::Empty);
    }
    if name.len() > MAX_EVENT_TYPE_BYTES {
        return Err(EventTypeError::TooLong);
    }
    if !name
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b':' | b'-'))
    {
        return Err(EventTypeError::InvalidCharacter);
    }
    Ok(())
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EventType").field(&self.as_str()).finish()
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for EventType {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for EventType {
    type Err = EventTypeError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::try_new(name)
    }
}

impl TryFrom<&str> for EventType {
    type Error = EventTypeError;

    fn try_from(name: &str) -> Result<Self, Self::Error> {
        Self::try_new(name)
    }
}

impl TryFrom<String> for EventType {
    type Error = EventTypeError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::try_new(name)
    }
}

/// Why a name is not an [`EventType`]. Messages are fixed and never contain the name.
///
/// # Examples
///
/// ```
/// use wsctx::{EventType, EventTypeError};
///
/// let error = EventType::try_new("Run").unwrap_err();
/// assert_eq!(error, EventTypeError::InvalidCharacter);
/// assert_eq!(error.to_string(), "event type contains a character outside [a-z0-9_.:-]");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum EventTypeError {
    /// Empty, or only whitespace.
    #[error("event type is empty")]
    Empty,
    /// Longer than [`MAX_EVENT_TYPE_BYTES`] bytes.
    #[error("event type is longer than 64 bytes")]
    TooLong,
    /// Contains a byte outside `[a-z0-9_.:-]`.
    #[error("event type contains a character outside [a-z0-9_.:-]")]
    InvalidCharacter,
}

#[cfg(feature = "serde")]
pub use frame::EmitError;

/// Overrides the scalar `visit_*` methods of a string visitor so that a value of the
/// wrong type is refused without being written into the error.
#[cfg(feature = "serde")]
macro_rules! refuse_non_strings {
    () => {
        fn visit_bool<E: ::serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::invalid_type(
                ::serde::de::Unexpected::Other("a boolean"),
                &self,
            ))
        }
        fn visit_i64<E: ::serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::invalid_type(
                ::serde::de::Unexpected::Other("a number"),
                &self,
            ))
        }
        fn visit_u64<E: ::serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::invalid_type(
                ::serde::de::Unexpected::Other("a number"),
                &self,
            ))
        }
        fn visit_i128<E: ::serde::de::Error>(self, _: i128) -> Result<Self::Value, E> {
            Err(E::invalid_type(
                ::serde::de::Unexpected::Other("a number"),
                &self,
            ))
        }
        fn visit_u128<E: ::serde::de::Error>(self, _: u128) -> Result<Self::Value, E> {
            Err(E::invalid_type(
                ::serde::de::Unexpected::Other("a number"),
                &self,
            ))
        }
        fn visit_f64<E: ::serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::invalid_type(
                ::serde::de::Unexpected::Other("a number"),
                &self,
            ))
        }
        fn visit_bytes<E: ::serde::de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
            Err(E::invalid_type(
                ::serde::de::Unexpected::Other("bytes"),
                &self,
            ))
        }
    };
}
#[cfg(feature = "serde")]
pub(crate) use refuse_non_strings;

/// Drives a string visitor that uses [`refuse_non_strings`]. A self-describing format
/// hands a value of the wrong type to the visitor, which refuses it without quoting it;
/// `deserialize_str` would let the format quote it (`serde_json` does, for numbers).
/// Formats that are not human-readable are seldom self-describing, so they get
/// `deserialize_str`.
#[cfg(feature = "serde")]
pub(crate) fn deserialize_string<'de, D, V>(
    deserializer: D,
    visitor: V,
) -> Result<V::Value, D::Error>
where
    D: serde::Deserializer<'de>,
    V: serde::de::Visitor<'de>,
{
    if deserializer.is_human_readable() {
        deserializer.deserialize_any(visitor)
    } else {
        deserializer.deserialize_str(visitor)
    }
}

#[cfg(feature = "serde")]
mod serde_impls {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::EventType;

    impl Serialize for EventType {
        /// As its name.
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(self.as_str())
        }
    }

    impl<'de> Deserialize<'de> for EventType {
        /// From a string that passes the rule; the error names the broken rule, never
        /// the input. In a self-describing format the value must be a string: a number
        /// is refused, not converted (quote it in YAML).
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            super::deserialize_string(deserializer, EventTypeVisitor)
        }
    }

    struct EventTypeVisitor;

    impl Visitor<'_> for EventTypeVisitor {
        type Value = EventType;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an event type")
        }

        fn visit_str<E: de::Error>(self, name: &str) -> Result<EventType, E> {
            EventType::try_new(name).map_err(E::custom)
        }

        super::refuse_non_strings!();
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the factory's emitter renders frames from the next change on"
    )
)]
pub(crate) mod frame {
    use std::io::{self, Write};
    use std::sync::Arc;
    use std::time::{SystemTime, UNIX_EPOCH};

    use serde::Serialize;

    use super::EventType;
    use crate::context::Context;
    use crate::state::Valid;

    /// Why an event was not sent: its data could not be rendered into an event frame
    /// within the limit. Nothing was sent to anyone. Messages are fixed and never
    /// contain the event data.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::EmitError;
    ///
    /// let error = EmitError::DataTooLarge { limit: 65_536 };
    /// assert_eq!(error.to_string(), "event data is larger than 65536 bytes");
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
    #[non_exhaustive]
    pub enum EmitError {
        /// The data serializes to more than `limit` bytes of JSON. Serialization stops
        /// as soon as the limit is passed.
        #[error("event data is larger than {limit} bytes")]
        DataTooLarge {
            /// The configured limit, in bytes of serialized JSON.
            limit: usize,
        },
        /// The data's `Serialize` implementation failed, or it cannot be written as JSON
        /// (for example a map whose keys are not strings). The serializer's message is
        /// not kept: it may quote the data.
        #[error("event data cannot be serialized as json")]
        Serialize,
    }

    /// An event frame rendered up to its position: everything but the epoch and the
    /// sequence number, which the user's replay ring assigns under its lock. Rendering
    /// (the expensive part: serializing the data) happens before that lock is taken.
    #[derive(Debug)]
    pub(crate) struct PreparedEvent {
        event: EventType,
        /// `,"thread_id":…,"data":…}`: the frame after `seq`.
        tail: String,
    }

    impl PreparedEvent {
        /// Renders the frame of `event` emitted by `ctx` at `at` with `data`, checking
        /// that the data is at most `max_data_bytes` bytes of JSON before anything else
        /// happens.
        pub(crate) fn new<S: Valid>(
            event: &EventType,
            ctx: &Context<S>,
            at: SystemTime,
            data: &(impl Serialize + ?Sized),
            max_data_bytes: usize,
        ) -> Result<Self, EmitError> {
            let mut tail = Vec::with_capacity(256);
            let failed = |_| EmitError::Serialize;
            tail.extend_from_slice(br#","thread_id":"#);
            serde_json::to_writer(&mut tail, ctx.thread_id().as_str()).map_err(failed)?;
            tail.extend_from_slice(br#","run_id":"#);
            serde_json::to_writer(&mut tail, ctx.run_id().as_str()).map_err(failed)?;
            tail.extend_from_slice(br#","request_id":"#);
            serde_json::to_writer(&mut tail, ctx.request_id().as_str()).map_err(failed)?;
            tail.extend_from_slice(br#","parent_request_id":"#);
            match ctx.parent_request_id() {
                Some(parent) => {
                    serde_json::to_writer(&mut tail, parent.as_str()).map_err(failed)?;
                }
                None => tail.extend_from_slice(b"null"),
            }
            write!(tail, r#","depth":{},"ts":""#, ctx.operation_depth())
                .map_err(|_| EmitError::Serialize)?;
            write_rfc3339(&mut tail, at).map_err(|_| EmitError::Serialize)?;
            tail.extend_from_slice(br#"","data":"#);
            let mut capped = Capped {
                out: &mut tail,
                room: max_data_bytes,
                exceeded: false,
            };
            if serde_json::to_writer(&mut capped, data).is_err() {
                return Err(if capped.exceeded {
                    EmitError::DataTooLarge {
                        limit: max_data_bytes,
                    }
                } else {
                    EmitError::Serialize
                });
            }
            tail.push(b'}');
            let tail = String::from_utf8(tail).map_err(|_| EmitError::Serialize)?;
            Ok(Self {
                event: event.clone(),
                tail,
            })
        }

        /// The whole frame, at position `seq` of `epoch`.
        pub(crate) fn render(&self, epoch: u64, seq: u64) -> Arc<str> {
            use std::fmt::Write as _;

            const HEAD: &str = r#"{"type":"event","event":""#;
            // `","epoch":"` + 16 digits + `","seq":` + at most 20 digits.
            let position = 11 + 16 + 8 + 20;
            let mut frame = String::with_capacity(
                HEAD.len() + self.event.as_str().len() + position + self.tail.len(),
            );
            frame.push_str(HEAD);
            frame.push_str(self.event.as_str());
            // Writing into a `String` cannot fail.
            let _ = write!(frame, r#"","epoch":"{epoch:016x}","seq":{seq}"#);
            frame.push_str(&self.tail);
            Arc::from(frame)
        }
    }

    /// Writes into `out` until `room` bytes were written, then fails and notes why.
    struct Capped<'a> {
        out: &'a mut Vec<u8>,
        room: usize,
        exceeded: bool,
    }

    impl Write for Capped<'_> {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if bytes.len() > self.room {
                self.exceeded = true;
                return Err(io::Error::other("over the event data limit"));
            }
            self.room -= bytes.len();
            self.out.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The last instant RFC 3339 can write with a four-digit year, in whole seconds
    /// since the Unix epoch: 9999-12-31T23:59:59Z.
    const MAX_RFC3339_SECS: u64 = 253_402_300_799;

    /// Writes `at` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds truncated). A time
    /// before 1970 is written as the Unix epoch, one after the year 9999 as its last
    /// millisecond: a clock that far off is wrong, and the frame must stay valid.
    pub(super) fn write_rfc3339(out: &mut impl Write, at: SystemTime) -> io::Result<()> {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let (secs, millis) = if since.as_secs() > MAX_RFC3339_SECS {
            (MAX_RFC3339_SECS, 999)
        } else {
            (since.as_secs(), since.subsec_millis())
        };
        let (year, month, day) = civil_from_days(secs / 86_400);
        let of_day = secs % 86_400;
        write!(
            out,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60,
        )
    }

    /// The proleptic Gregorian date of day `days` after 1970-01-01 (Howard Hinnant's
    /// `civil_from_days`, for non-negative days).
    fn civil_from_days(days: u64) -> (u64, u64, u64) {
        // Shift the epoch to 0000-03-01, so that a leap day ends each 4-year cycle.
        let z = days + 719_468;
        let era = z / 146_097;
        let day_of_era = z % 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_from_march = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
        let month = if month_from_march < 10 {
            month_from_march + 3
        } else {
            month_from_march - 9
        };
        let year = era * 400 + year_of_era + u64::from(month <= 2);
        (year, month, day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: &str = "abcdefghijklmnopqrstuvwxyz0123456789_.:-";

    #[test]
    fn accepts_every_allowed_byte_and_both_length_bounds() {
        for byte in ALLOWED.chars() {
            assert_eq!(
                EventType::try_new(byte.to_string()).map(|e| e.to_string()),
                Ok(byte.to_string())
            );
        }
        let longest = "a".repeat(MAX_EVENT_TYPE_BYTES);
        assert_eq!(
            EventType::try_new(longest.as_str()).map(|e| e.as_str().len()),
            Ok(64)
        );
        assert_eq!(
            EventType::try_new("a".repeat(65)),
            Err(EventTypeError::TooLong)
        );
    }

    #[test]
    fn refuses_every_byte_outside_the_set() {
        for byte in 0..=u8::MAX {
            let Ok(text) = std::str::from_utf8(&[byte]).map(str::to_owned) else {
                continue;
            };
            let expected = if ALLOWED.contains(&text) {
                Ok(())
            } else if text.trim().is_empty() {
                Err(EventTypeError::Empty)
            } else {
                Err(EventTypeError::InvalidCharacter)
            };
            assert_eq!(
                EventType::try_new(text.as_str()).map(drop),
                expected,
                "{byte}"
            );
            // Inside a longer name too; whitespace there is not blank, just invalid.
            let inside = EventType::try_new(format!("run{text}x")).map(drop);
            assert_eq!(inside.is_ok(), expected.is_ok(), "{byte}");
        }
        for name in ["", " ", "\t\n", "\u{3000}"] {
            assert_eq!(
                EventType::try_new(name),
                Err(EventTypeError::Empty),
                "{name:?}"
            );
        }
        for name in [" run", "run ", "é", "run.ß", "RUN", "run/x", "run\u{0}"] {
            assert_eq!(
                EventType::try_new(name),
                Err(EventTypeError::InvalidCharacter),
                "{name:?}"
            );
        }
        // Length is counted in bytes: 33 two-byte characters are too long, not invalid.
        assert_eq!(
            EventType::try_new("é".repeat(33)),
            Err(EventTypeError::TooLong)
        );
    }

    #[test]
    fn every_constructor_applies_the_rule() {
        assert_eq!(
            EventType::try_from("run.x").map(|e| e.to_string()),
            Ok("run.x".to_owned())
        );
        assert_eq!(
            EventType::try_from(String::from("Run")),
            Err(EventTypeError::InvalidCharacter)
        );
        assert_eq!("".parse::<EventType>(), Err(EventTypeError::Empty));
        assert_eq!(
            format!("{:?}", EventType::try_new("a.b")),
            r#"Ok(EventType("a.b"))"#
        );
    }

    #[test]
    fn errors_are_lowercase_and_never_quote_the_name() {
        let marker = "SECRETMARKER";
        for name in [marker.to_owned(), format!("{marker} "), marker.repeat(10)] {
            let error = EventType::try_new(name).unwrap_err();
            for text in [error.to_string(), format!("{error:?}")] {
                assert!(!text.to_lowercase().contains("secretmarker"), "{text}");
            }
            assert_eq!(error.to_string(), error.to_string().to_lowercase());
        }
    }
}

#[cfg(test)]
#[cfg(feature = "serde")]
mod serde_tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::frame::{PreparedEvent, write_rfc3339};
    use super::*;
    use crate::{Context, Policy, SequenceGenerator};

    fn rfc3339(at: SystemTime) -> String {
        let mut out = Vec::new();
        write_rfc3339(&mut out, at).unwrap();
        String::from_utf8(out).unwrap()
    }

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

    #[test]
    fn resume_point_serde_round_trips_and_revalidates() {
        use crate::ResumePoint;

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
        let prepared =
            PreparedEvent::new(&event, &ctx("thread_1"), at, &json!({"done": 3}), 64).unwrap();
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
            .child("summarize", &SequenceGenerator::new())
            .unwrap();
        let event = EventType::try_new("tool:done").unwrap();
        let prepared = PreparedEvent::new(&event, &child, UNIX_EPOCH, &"ok", 16).unwrap();
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
        let ctx = ctx("t");
        // `"xxxx"` is 4 + 2 bytes of JSON.
        let data = "x".repeat(4);
        assert!(PreparedEvent::new(&event, &ctx, UNIX_EPOCH, &data, 6).is_ok());
        assert_eq!(
            PreparedEvent::new(&event, &ctx, UNIX_EPOCH, &data, 5).unwrap_err(),
            EmitError::DataTooLarge { limit: 5 }
        );
        // `null` is 4 bytes.
        let unit = PreparedEvent::new(&event, &ctx, UNIX_EPOCH, &(), 4).unwrap();
        assert!(unit.render(0, 1).ends_with(r#","data":null}"#));
        assert_eq!(
            PreparedEvent::new(&event, &ctx, UNIX_EPOCH, &(), 3).unwrap_err(),
            EmitError::DataTooLarge { limit: 3 }
        );
        assert_eq!(
            PreparedEvent::new(&event, &ctx, UNIX_EPOCH, &(), 0).unwrap_err(),
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
        let result = PreparedEvent::new(
            &EventType::try_new("e").unwrap(),
            &ctx("t"),
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
        let ctx = ctx("t");
        let error = PreparedEvent::new(&event, &ctx, UNIX_EPOCH, &Failing, 1 << 20).unwrap_err();
        assert_eq!(error, EmitError::Serialize);
        assert!(!format!("{error} {error:?}").contains("SecretMarker"));
        let mut map = std::collections::BTreeMap::new();
        map.insert(vec![1_u8], 1);
        assert_eq!(
            PreparedEvent::new(&event, &ctx, UNIX_EPOCH, &map, 1 << 20).unwrap_err(),
            EmitError::Serialize
        );
        assert_eq!(
            EmitError::Serialize.to_string(),
            "event data cannot be serialized as json"
        );
    }
}
