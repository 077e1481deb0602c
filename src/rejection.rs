//! The rejection table and [`Rejection`], what a refused or closed client is told: an
//! HTTP status before the upgrade, a close frame after it.
//!
//! Every fact about an error code (its wire name, close reason, message, HTTP status,
//! close code, retry advice, `Retry-After`, and whose fault it is) is one row of the
//! `rejection_table!` invocation below; the enum, [`ErrorCode::ALL`], the accessors and
//! the table in [`ErrorCode`]'s documentation are generated from it. Adding a code is one
//! row here (and a row in the tests and in `ARCHITECTURE.md`, which a test checks).
//!
//! Each error type converts itself into a `Rejection` beside its own definition (auth,
//! context, generate, factory). [`ValidationError`] is the exception: it sits below this
//! module, and a rejection carries it as its detail, so its conversion lives here.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::close::{CloseCode, CloseFrame, CloseReason, MAX_CLOSE_REASON_BYTES};
use crate::error::{Field, FieldError, ValidationError};

/// How a client should react to a rejection.
///
/// # Examples
///
/// ```
/// assert_eq!(wsctx::Retry::AfterRefresh.as_str(), "after_refresh");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Retry {
    /// Do not reconnect with the same input.
    Never,
    /// Reconnect after obtaining a fresh token.
    AfterRefresh,
    /// Reconnect later, with exponential backoff and jitter.
    Backoff,
    /// Reconnect now.
    Immediate,
}

impl Retry {
    /// The advice's wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        const NAMES: [&str; 4] = ["never", "after_refresh", "backoff", "immediate"];
        NAMES[self as usize]
    }
}

impl fmt::Display for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the rejection table says about one [`ErrorCode`].
struct Spec {
    name: &'static str,
    reason: &'static str,
    message: &'static str,
    http: Option<u16>,
    close: CloseCode,
    retry: Retry,
    retry_after: Option<Duration>,
    client_caused: bool,
}

/// A close code of the table, checked when the table is compiled.
const fn table_close_code(code: u16) -> CloseCode {
    match CloseCode::new(code) {
        Some(code) => code,
        None => panic!("the rejection table names a close code that must not be sent"),
    }
}

/// The cells of a row that may be empty (`-`), as values and as documentation.
#[rustfmt::skip]
macro_rules! cell {
    (opt -) => { None };
    (opt $value:literal) => { Some($value) };
    (secs -) => { None };
    (secs $secs:literal) => { Some(Duration::from_secs($secs)) };
    (doc -) => { "—" };
    (doc $value:literal) => { stringify!($value) };
    (by client) => { true };
    (by server) => { false };
}

/// Generates [`ErrorCode`] and its table from one row per code, with named columns:
///
/// - `code`: the wire name; `reason`: the close reason token;
/// - `http`: the status before the upgrade (`-` when the failure only happens on a
///   live socket); `close`: the close code after it (checked at compile time);
/// - `retry`: a [`Retry`] variant; `after`: the `Retry-After` seconds, or `-`;
/// - `by`: `client` or `server` (whose fault it is);
/// - `cause`: when it happens (documentation); `message`: the fixed client message.
macro_rules! rejection_table {
    ($(
        $variant:ident { code: $name:literal, reason: $reason:literal, http: $http:tt, close: $close:literal, retry: $retry:ident, after: $after:tt, by: $by:ident, cause: $cause:literal, message: $message:literal }
    )*) => {
        spec_table! {
            /// Every reason a connection can be refused or closed: one row each of the
            /// rejection table, which decides every rendering.
            ///
            /// | error code | cause | HTTP | close | retry | `Retry-After` (s) |
            /// |---|---|---|---|---|---|
            $(
                #[doc = concat!(
                    "| ", $name, " | ", $cause, " | ", cell!(doc $http), " | ", $close,
                    " | [`", stringify!($retry), "`](Retry::", stringify!($retry), ") | ",
                    cell!(doc $after), " |"
                )]
            )*
            ///
            /// 1011 is used only for INTERNAL_ERROR, and no client-caused failure closes with
            /// 1000. [`CloseStyle::Opaque`] sends 1008 in place of every 44xx code.
            ///
            /// # Examples
            ///
            /// ```
            /// use wsctx::{CloseCode, ErrorCode};
            ///
            /// assert_eq!(ErrorCode::ConnectionLimit.as_str(), "CONNECTION_LIMIT");
            /// assert_eq!(ErrorCode::ConnectionLimit.http_status(), Some(429));
            /// assert_eq!(ErrorCode::ConnectionLimit.close_code(), CloseCode::TOO_MANY_REQUESTS);
            /// assert_eq!(ErrorCode::ALL[ErrorCode::Overloaded.index()], ErrorCode::Overloaded);
            /// ```
            pub enum ErrorCode("error codes", "error code", code) {
                $(
                    #[doc = concat!("`", $name, "`: ", $cause, ".")]
                    $variant => Spec {
                        name: $name,
                        reason: $reason,
                        message: $message,
                        http: cell!(opt $http),
                        close: table_close_code($close),
                        retry: Retry::$retry,
                        retry_after: cell!(secs $after),
                        client_caused: cell!(by $by),
                    },
                )*
            }
        }
    };
}

rejection_table! {
    NoToken { code: "NO_TOKEN", reason: "no_token", http: 401, close: 4401, retry: Never, after: -, by: client, cause: "no credential found", message: "no credential was presented" }
    InvalidFormat { code: "INVALID_FORMAT", reason: "invalid_format", http: 401, close: 4401, retry: Never, after: -, by: client, cause: "the token is malformed", message: "the credential is malformed" }
    ValidationFailed { code: "VALIDATION_FAILED", reason: "validation_failed", http: 401, close: 4401, retry: Never, after: -, by: client, cause: "signature, issuer or audience rejected", message: "the credential was rejected" }
    TokenExpired { code: "TOKEN_EXPIRED", reason: "token_expired", http: 401, close: 4401, retry: AfterRefresh, after: -, by: client, cause: "the token's `exp` has passed", message: "the credential has expired" }
    MissingUserId { code: "MISSING_USER_ID", reason: "missing_user_id", http: 403, close: 4403, retry: Never, after: -, by: client, cause: "a verified token without a usable subject", message: "the credential has no usable subject" }
    Forbidden { code: "FORBIDDEN", reason: "forbidden", http: 403, close: 4403, retry: Never, after: -, by: client, cause: "origin or permission refused", message: "the connection is not allowed" }
    InvalidContext { code: "INVALID_CONTEXT", reason: "invalid_context", http: 400, close: 4400, retry: Never, after: -, by: client, cause: "an id, metadata entry, depth or resume point failed the rules", message: "the connection context is invalid" }
    DuplicateClient { code: "DUPLICATE_CLIENT", reason: "duplicate_client", http: 409, close: 4409, retry: Never, after: -, by: client, cause: "the user already has a live socket with this client id", message: "a connection with this client id is already open" }
    ConnectionLimit { code: "CONNECTION_LIMIT", reason: "connection_limit", http: 429, close: 4429, retry: Backoff, after: 30, by: client, cause: "the per-user connection limit is reached", message: "too many connections for this user" }
    Overloaded { code: "OVERLOADED", reason: "overloaded", http: 503, close: 1013, retry: Backoff, after: 5, by: server, cause: "the global connection limit is reached", message: "the server is at capacity" }
    AuthUnavailable { code: "AUTH_UNAVAILABLE", reason: "auth_unavailable", http: 503, close: 1013, retry: Backoff, after: 5, by: server, cause: "the token verifier failed or timed out", message: "authentication is temporarily unavailable" }
    SlowConsumer { code: "SLOW_CONSUMER", reason: "slow_consumer", http: -, close: 1013, retry: Backoff, after: -, by: client, cause: "a socket's outbound queue overflowed", message: "the connection could not keep up" }
    IdleTimeout { code: "IDLE_TIMEOUT", reason: "idle_timeout", http: -, close: 4408, retry: Immediate, after: -, by: client, cause: "no activity within the idle timeout", message: "the connection was idle for too long" }
    ShuttingDown { code: "SHUTTING_DOWN", reason: "shutting_down", http: 503, close: 1012, retry: Backoff, after: 5, by: server, cause: "the server is draining", message: "the server is restarting" }
    ProtocolError { code: "PROTOCOL_ERROR", reason: "protocol_error", http: -, close: 1002, retry: Never, after: -, by: client, cause: "the client broke RFC 6455 (a reserved opcode or bit, an unmasked frame, a bad close frame)", message: "the websocket protocol was violated" }
    InvalidPayload { code: "INVALID_PAYLOAD", reason: "invalid_payload", http: -, close: 1007, retry: Never, after: -, by: client, cause: "a text frame or close reason that is not UTF-8", message: "a text message was not valid utf-8" }
    MessageTooBig { code: "MESSAGE_TOO_BIG", reason: "message_too_big", http: -, close: 1009, retry: Never, after: -, by: client, cause: "a message or frame over the endpoint's limit", message: "the message is too big" }
    HeartbeatTimeout { code: "HEARTBEAT_TIMEOUT", reason: "heartbeat_timeout", http: -, close: 4408, retry: Immediate, after: -, by: client, cause: "no pong (or any frame) within the heartbeat timeout", message: "the connection stopped answering pings" }
    BackplaneUnavailable { code: "BACKPLANE_UNAVAILABLE", reason: "backplane_unavailable", http: 503, close: 1013, retry: Backoff, after: 5, by: server, cause: "cluster mode: Redis unreachable or too slow for an admission", message: "the cluster backplane is temporarily unavailable" }
    InternalError { code: "INTERNAL_ERROR", reason: "internal_error", http: 500, close: 1011, retry: Backoff, after: -, by: server, cause: "a server bug", message: "internal server error" }
}

impl ErrorCode {
    spec_accessors! {
        /// This code's position in [`ALL`](Self::ALL), for per-code arrays of counters.
        index;

        /// The code's wire name, e.g. `"TOKEN_EXPIRED"`.
        as_str -> &'static str = name;

        /// The short lowercase token used as the close reason, e.g. `"token_expired"`.
        reason -> &'static str = reason;

        /// A fixed, lowercase, human-readable message that contains no client input.
        message -> &'static str = message;

        /// The HTTP status when rejected before the upgrade; `None` for failures that can
        /// only happen on a live socket.
        http_status -> Option<u16> = http;

        /// The close code when rejected after the upgrade (detailed style).
        close_code -> CloseCode = close;

        /// What the client should do next.
        retry -> Retry = retry;

        /// Whether the client caused this failure. Only INTERNAL_ERROR, AUTH_UNAVAILABLE,
        /// OVERLOADED and SHUTTING_DOWN are the server's side.
        is_client_caused -> bool = client_caused;
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much a post-upgrade close code reveals.
///
/// # Examples
///
/// ```
/// use wsctx::{CloseCode, CloseStyle, ErrorCode, Rejection};
///
/// let rejection = Rejection::new(ErrorCode::Forbidden);
/// assert_eq!(rejection.close_code(CloseStyle::Detailed), CloseCode::FORBIDDEN);
/// assert_eq!(rejection.close_code(CloseStyle::Opaque), CloseCode::POLICY_VIOLATION);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseStyle {
    /// The table's 44xx codes.
    #[default]
    Detailed,
    /// 1008 (policy violation) in place of every 44xx code, as RFC 6455 allows a server
    /// that hides policy details. Standard codes (1011, 1012, 1013) are unchanged.
    Opaque,
}

/// A refused or closed connection, as the client will see it: one value with two
/// renderings, an HTTP response before the upgrade and a close frame
/// ([`close_frame`](Self::close_frame)) after it. What each [`ErrorCode`] renders to is
/// the table on [`ErrorCode`].
///
/// A rejection holds no client input: its message is fixed per code, plus the names
/// (never the values) of failing fields.
///
/// # Examples
///
/// ```
/// use wsctx::{CloseCode, CloseStyle, ErrorCode, Rejection, Retry};
///
/// let rejection = Rejection::new(ErrorCode::TokenExpired);
/// assert_eq!(rejection.http_status(), Some(401));
/// let frame = rejection.close_frame(CloseStyle::Detailed);
/// assert_eq!(frame.code, CloseCode::UNAUTHORIZED);
/// assert_eq!(frame.reason.as_str(), "token_expired");
/// assert_eq!(rejection.retry(), Retry::AfterRefresh);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    code: ErrorCode,
    detail: Option<ValidationError>,
    retry_after: Option<Duration>,
}

impl Rejection {
    /// A rejection with the table's defaults for `code`.
    #[must_use]
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            detail: None,
            retry_after: code.spec().retry_after,
        }
    }

    /// Overrides the `Retry-After` advice.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use wsctx::{ErrorCode, Rejection};
    ///
    /// let r = Rejection::new(ErrorCode::Overloaded).with_retry_after(Duration::from_secs(9));
    /// assert_eq!(r.retry_after(), Some(Duration::from_secs(9)));
    /// ```
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The error code.
    #[must_use]
    pub const fn code(&self) -> ErrorCode {
        self.code
    }

    /// The failing fields, for INVALID_CONTEXT.
    #[must_use]
    pub const fn detail(&self) -> Option<&ValidationError> {
        self.detail.as_ref()
    }

    /// The HTTP status before the upgrade, `None` when the failure can only happen on a
    /// live socket.
    #[must_use]
    pub const fn http_status(&self) -> Option<u16> {
        self.code.http_status()
    }

    /// The close code after the upgrade, in the given style.
    #[must_use]
    pub const fn close_code(&self, style: CloseStyle) -> CloseCode {
        let code = self.code.close_code();
        match style {
            CloseStyle::Opaque if code.as_u16() >= 4400 && code.as_u16() < 4500 => {
                CloseCode::POLICY_VIOLATION
            }
            CloseStyle::Detailed | CloseStyle::Opaque => code,
        }
    }

    /// The close reason: the code's token, followed for INVALID_CONTEXT by the distinct
    /// names of the failing fields (`invalid_context:user_id,run_id`), as many whole
    /// names as fit in 123 bytes.
    #[must_use]
    pub fn close_reason(&self) -> CloseReason {
        let Some(detail) = &self.detail else {
            return CloseReason::new(self.code.reason());
        };
        let mut reason = String::with_capacity(MAX_CLOSE_REASON_BYTES);
        reason.push_str(self.code.reason());
        let mut fields: Vec<Field> = Vec::with_capacity(detail.len());
        for field in detail.iter().map(FieldError::field) {
            if fields.contains(&field) {
                continue;
            }
            let name = field.as_str();
            // Whole names only: a cut name would be misleading.
            if reason.len() + 1 + name.len() > MAX_CLOSE_REASON_BYTES {
                break;
            }
            reason.push(if fields.is_empty() { ':' } else { ',' });
            reason.push_str(name);
            fields.push(field);
        }
        CloseReason::new(&reason)
    }

    /// The close frame after the upgrade, in the given style: the one rendering every
    /// post-upgrade close of this crate goes through.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{CloseCode, CloseFrame, CloseStyle, ErrorCode, Rejection};
    ///
    /// let frame = Rejection::new(ErrorCode::IdleTimeout).close_frame(CloseStyle::Opaque);
    /// assert_eq!(frame, CloseFrame::new(CloseCode::POLICY_VIOLATION, "idle_timeout"));
    /// ```
    #[must_use]
    pub fn close_frame(&self, style: CloseStyle) -> CloseFrame {
        CloseFrame {
            code: self.close_code(style),
            reason: self.close_reason(),
        }
    }

    /// A human-readable message, safe to show the client: fixed per code, plus failing
    /// field names for INVALID_CONTEXT.
    #[must_use]
    pub fn message(&self) -> Cow<'static, str> {
        match &self.detail {
            Some(detail) => Cow::Owned(detail.to_string()),
            None => Cow::Borrowed(self.code.message()),
        }
    }

    /// The retry advice.
    #[must_use]
    pub const fn retry(&self) -> Retry {
        self.code.retry()
    }

    /// How long the client should wait before retrying, when the table gives a
    /// `Retry-After` (429 and 503).
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The error frame sent before a post-upgrade close:
    /// `{"type":"error","code":…,"message":…,"retry":…}`.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{ErrorCode, Rejection};
    ///
    /// assert_eq!(
    ///     Rejection::new(ErrorCode::NoToken).error_frame(),
    ///     r#"{"type":"error","code":"NO_TOKEN","message":"no credential was presented","retry":"never"}"#
    /// );
    /// ```
    #[must_use]
    pub fn error_frame(&self) -> String {
        let message = self.message();
        let mut frame = String::with_capacity(64 + message.len());
        frame.push_str(r#"{"type":"error","code":""#);
        frame.push_str(self.code.as_str());
        frame.push_str(r#"","message":""#);
        // Messages are fixed ASCII text and field names: nothing to escape, but stay
        // correct if that ever changes.
        for c in message.chars() {
            match c {
                '"' => frame.push_str("\\\""),
                '\\' => frame.push_str("\\\\"),
                c if c.is_control() => frame.push(' '),
                c => frame.push(c),
            }
        }
        frame.push_str(r#"","retry":""#);
        frame.push_str(self.retry().as_str());
        frame.push_str("\"}");
        frame
    }
}

impl From<ErrorCode> for Rejection {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

impl From<ValidationError> for Rejection {
    fn from(error: ValidationError) -> Self {
        Self {
            detail: Some(error),
            ..Self::new(ErrorCode::InvalidContext)
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message())
    }
}

impl std::error::Error for Rejection {}
