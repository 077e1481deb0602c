//! [`EventType`]: the name of a server-pushed execution event.
//!
//! An event frame (sent by the emitter of the `serde` feature) is one JSON text message
//! sent to every live socket of one user:
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

impl_str_parse!(EventType, EventTypeError, try_new);

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
