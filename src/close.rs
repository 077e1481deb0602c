//! WebSocket close codes and reasons that are always sendable.

use std::fmt;

/// A close code a server may put in a close frame (RFC 6455 §7.4).
///
/// A `CloseCode` can never hold a code that must not be sent: 1004, 1005, 1006 and
/// 1015 are reserved, anything below 1000 or in 1016–2999 is unassigned, and codes of
/// 5000 and above do not exist. The constants name the codes this crate uses; use
/// [`CloseCode::new`] for others.
///
/// # Examples
///
/// ```
/// use wsctx::CloseCode;
///
/// assert_eq!(CloseCode::new(4401), Some(CloseCode::UNAUTHORIZED));
/// assert_eq!(CloseCode::new(1006), None);
/// assert_eq!(CloseCode::TRY_AGAIN_LATER.as_u16(), 1013);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: the purpose of the connection was fulfilled.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the server is going away (forced disconnect, shutdown).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: the peer broke the WebSocket protocol (PROTOCOL_ERROR).
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1007: a text frame was not UTF-8 (INVALID_PAYLOAD).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: a policy violation; the opaque style sends it for every 44xx code.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: a message was over the receiver's limit (MESSAGE_TOO_BIG).
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1011: an internal server error. Only [`ErrorCode::InternalError`](crate::ErrorCode::InternalError) uses it.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later (overloaded, or a dependency is down).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 4400: the context sent at the handshake is invalid.
    pub const BAD_REQUEST: Self = Self(4400);
    /// 4401: not authenticated.
    pub const UNAUTHORIZED: Self = Self(4401);
    /// 4403: authenticated but not allowed.
    pub const FORBIDDEN: Self = Self(4403);
    /// 4408: no activity within the idle timeout, or no answer to the heartbeat.
    pub const TIMEOUT: Self = Self(4408);
    /// 4409: a live socket already uses this client id.
    pub const CONFLICT: Self = Self(4409);
    /// 4429: too many connections for this user.
    pub const TOO_MANY_REQUESTS: Self = Self(4429);

    /// Returns the close code for `code` when it may be sent, `None` otherwise.
    ///
    /// Sendable: 1000–1003, 1007–1014, and 3000–4999.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::CloseCode;
    ///
    /// assert!(CloseCode::new(1000).is_some());
    /// assert!(CloseCode::new(999).is_none());
    /// assert!(CloseCode::new(1015).is_none());
    /// assert!(CloseCode::new(4999).is_some());
    /// ```
    #[must_use]
    pub const fn new(code: u16) -> Option<Self> {
        match code {
            1000..=1003 | 1007..=1014 | 3000..=4999 => Some(Self(code)),
            _ => None,
        }
    }

    /// The numeric code.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::CloseCode::GOING_AWAY.as_u16(), 1001);
    /// ```
    #[must_use]
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether this is an application code (4000–4999).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(wsctx::CloseCode::FORBIDDEN.is_application());
    /// assert!(!wsctx::CloseCode::TRY_AGAIN_LATER.is_application());
    /// ```
    #[must_use]
    pub const fn is_application(self) -> bool {
        self.0 >= 4000
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl TryFrom<u16> for CloseCode {
    type Error = UnsendableCloseCode;

    fn try_from(code: u16) -> Result<Self, Self::Error> {
        Self::new(code).ok_or(UnsendableCloseCode(code))
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The error of [`CloseCode::try_from`]: the code must not be sent.
///
/// # Examples
///
/// ```
/// use wsctx::CloseCode;
///
/// let err = CloseCode::try_from(1005).unwrap_err();
/// assert_eq!(err.to_string(), "close code 1005 must not be sent");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("close code {0} must not be sent")]
pub struct UnsendableCloseCode(pub u16);

/// The longest close reason, in bytes, a close frame can carry (RFC 6455 §5.5: a control
/// frame payload is at most 125 bytes, 2 of which hold the code).
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// A close reason of at most [`MAX_CLOSE_REASON_BYTES`] bytes of UTF-8.
///
/// [`CloseReason::new`] cuts a longer string on a character boundary, so the result is
/// always a valid UTF-8 prefix of the input.
///
/// # Examples
///
/// ```
/// use wsctx::CloseReason;
///
/// let long = "é".repeat(100); // 200 bytes
/// let reason = CloseReason::new(&long);
/// assert_eq!(reason.as_str().len(), 122); // 61 whole characters
/// assert!(long.starts_with(reason.as_str()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CloseReason(Box<str>);

impl CloseReason {
    /// Builds a reason from `reason`, cut to at most [`MAX_CLOSE_REASON_BYTES`] bytes on a
    /// character boundary.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::CloseReason::new("connection_limit").as_str(), "connection_limit");
    /// ```
    #[must_use]
    pub fn new(reason: &str) -> Self {
        Self(truncate_utf8(reason, MAX_CLOSE_REASON_BYTES).into())
    }

    /// The reason text.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::CloseReason::new("bye").as_str(), "bye");
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for CloseReason {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A close frame's payload: a [`CloseCode`] that may be sent and a [`CloseReason`] that
/// fits in the frame. Both fields are always valid, so they are public.
///
/// A [`Rejection`](crate::Rejection) renders its own with
/// [`Rejection::close_frame`](crate::Rejection::close_frame).
///
/// # Examples
///
/// ```
/// use wsctx::{CloseCode, CloseFrame};
///
/// let frame = CloseFrame::new(CloseCode::GOING_AWAY, "banned");
/// assert_eq!(frame.code.as_u16(), 1001);
/// assert_eq!(frame.reason.as_str(), "banned");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CloseFrame {
    /// The close code.
    pub code: CloseCode,
    /// The close reason (at most [`MAX_CLOSE_REASON_BYTES`] bytes).
    pub reason: CloseReason,
}

impl CloseFrame {
    /// A close frame with `code` and `reason`, the reason cut as [`CloseReason::new`]
    /// cuts it.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{CloseCode, CloseFrame};
    ///
    /// let frame = CloseFrame::new(CloseCode::NORMAL, "");
    /// assert!(frame.reason.as_str().is_empty());
    /// ```
    #[must_use]
    pub fn new(code: CloseCode, reason: &str) -> Self {
        Self {
            code,
            reason: CloseReason::new(reason),
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_never_splits_a_character() {
        let s = "a".repeat(122) + "€";
        assert_eq!(truncate_utf8(&s, 123), "a".repeat(122));
        assert_eq!(truncate_utf8("", 0), "");
    }
}
