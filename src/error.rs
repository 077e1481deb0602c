//! Validation errors (what is wrong with which field) and [`Rejection`] (what the client
//! is told: an HTTP status before the upgrade, a close code after it).
//!
//! No error in this module stores or prints a rejected value: messages name the field
//! and the rule, never the input.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::close::{CloseCode, CloseReason, MAX_CLOSE_REASON_BYTES};
use crate::generate::GenerateError;

/// Why an id failed the structural rule (see the crate docs, "Field rules").
///
/// # Examples
///
/// ```
/// use wsctx::{IdError, UserId};
///
/// assert_eq!(UserId::try_new("   ").unwrap_err(), IdError::Empty);
/// assert_eq!(IdError::TooLong.to_string(), "is longer than 256 bytes");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Nothing is left after trimming whitespace.
    #[error("is empty")]
    Empty,
    /// Longer than [`MAX_ID_BYTES`](crate::MAX_ID_BYTES) bytes after trimming.
    #[error("is longer than 256 bytes")]
    TooLong,
    /// Contains a control character (Unicode `Cc`).
    #[error("contains a control character")]
    ControlCharacter,
    /// Contains a zero-width, bidi or other invisible formatting character.
    #[error("contains an invisible formatting character")]
    InvisibleCharacter,
}

/// A field of a context, as named in error messages and on the wire.
///
/// # Examples
///
/// ```
/// assert_eq!(wsctx::Field::WebSocketClientId.as_str(), "websocket_client_id");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Field {
    /// `user_id`.
    UserId,
    /// `thread_id`.
    ThreadId,
    /// `run_id`.
    RunId,
    /// `request_id`.
    RequestId,
    /// `parent_request_id`.
    ParentRequestId,
    /// `websocket_client_id`.
    WebSocketClientId,
    /// `metadata`: the map as a whole, or one of its entries (never named: keys are input).
    Metadata,
    /// `operation_depth`.
    OperationDepth,
    /// `operation`: the name given to [`Context::child`](crate::Context::child).
    Operation,
}

impl Field {
    /// The field's wire name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::Field::UserId.as_str(), "user_id");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UserId => "user_id",
            Self::ThreadId => "thread_id",
            Self::RunId => "run_id",
            Self::RequestId => "request_id",
            Self::ParentRequestId => "parent_request_id",
            Self::WebSocketClientId => "websocket_client_id",
            Self::Metadata => "metadata",
            Self::OperationDepth => "operation_depth",
            Self::Operation => "operation",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with a field.
///
/// # Examples
///
/// ```
/// use wsctx::FieldErrorKind;
///
/// assert_eq!(FieldErrorKind::PlaceholderWord.to_string(), "is a placeholder value");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum FieldErrorKind {
    /// A required field is absent.
    #[error("is missing")]
    Missing,
    /// The value has the wrong type (for example a JSON number, array, object or null
    /// where a string is expected). Never coerced.
    #[error("has the wrong type")]
    WrongType,
    /// Nothing is left after trimming whitespace.
    #[error("is empty")]
    Empty,
    /// Longer than 256 bytes after trimming.
    #[error("is longer than 256 bytes")]
    TooLong,
    /// Contains a control character.
    #[error("contains a control character")]
    ControlCharacter,
    /// Contains an invisible formatting character.
    #[error("contains an invisible formatting character")]
    InvisibleCharacter,
    /// Equal to a placeholder word of the [`Policy`](crate::Policy).
    #[error("is a placeholder value")]
    PlaceholderWord,
    /// Shorter than 20 bytes and starts with a placeholder prefix of the [`Policy`](crate::Policy).
    #[error("starts with a placeholder prefix")]
    PlaceholderPrefix,
    /// The metadata has more than [`MAX_METADATA_ENTRIES`](crate::MAX_METADATA_ENTRIES) entries.
    #[error("has more than 64 entries")]
    TooManyEntries,
    /// A metadata key is reserved for a context field.
    #[error("uses a reserved key")]
    ReservedKey,
    /// A metadata key is empty, longer than 64 bytes, or not made of `[a-z0-9_.-]`.
    #[error("has a key that is not 1 to 64 bytes of [a-z0-9_.-]")]
    InvalidKey,
    /// A metadata value is longer than 1024 bytes.
    #[error("has a value longer than 1024 bytes")]
    ValueTooLong,
    /// The operation depth is above [`MAX_OPERATION_DEPTH`](crate::MAX_OPERATION_DEPTH).
    #[error("is deeper than 10")]
    DepthExceeded,
}

impl From<IdError> for FieldErrorKind {
    fn from(error: IdError) -> Self {
        match error {
            IdError::Empty => Self::Empty,
            IdError::TooLong => Self::TooLong,
            IdError::ControlCharacter => Self::ControlCharacter,
            IdError::InvisibleCharacter => Self::InvisibleCharacter,
        }
    }
}

/// One failing field: which field, and what is wrong with it.
///
/// # Examples
///
/// ```
/// use wsctx::{Field, FieldError, FieldErrorKind};
///
/// let error = FieldError::new(Field::RunId, FieldErrorKind::Empty);
/// assert_eq!(error.to_string(), "run_id is empty");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{field} {kind}")]
pub struct FieldError {
    field: Field,
    kind: FieldErrorKind,
}

impl FieldError {
    /// A field error.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{Field, FieldError, FieldErrorKind};
    ///
    /// let error = FieldError::new(Field::UserId, FieldErrorKind::Missing);
    /// assert_eq!(error.field(), Field::UserId);
    /// ```
    #[must_use]
    pub const fn new(field: Field, kind: FieldErrorKind) -> Self {
        Self { field, kind }
    }

    /// The failing field.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Field, FieldError, FieldErrorKind};
    /// assert_eq!(FieldError::new(Field::RunId, FieldErrorKind::Empty).field(), Field::RunId);
    /// ```
    #[must_use]
    pub const fn field(&self) -> Field {
        self.field
    }

    /// What is wrong with it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Field, FieldError, FieldErrorKind};
    /// assert_eq!(FieldError::new(Field::RunId, FieldErrorKind::Empty).kind(), FieldErrorKind::Empty);
    /// ```
    #[must_use]
    pub const fn kind(&self) -> FieldErrorKind {
        self.kind
    }
}

/// Every failing field of one validation, in field order; never empty.
///
/// # Examples
///
/// ```
/// use wsctx::{Context, Field, FieldErrorKind, Policy, UuidGenerator};
///
/// let error = Context::builder()
///     .user_id(" null ")
///     .thread_id("")
///     .build()
///     .validate(&Policy::default(), &UuidGenerator::new())
///     .unwrap_err();
/// let invalid = error.as_invalid().unwrap();
/// assert_eq!(invalid.len(), 2);
/// assert!(invalid.contains(Field::UserId, FieldErrorKind::PlaceholderWord));
/// assert_eq!(
///     invalid.to_string(),
///     "invalid context: user_id is a placeholder value; thread_id is empty"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    errors: Vec<FieldError>,
}

impl ValidationError {
    /// Builds the error from the collected field errors; `None` when there are none.
    pub(crate) fn from_errors(errors: Vec<FieldError>) -> Option<Self> {
        (!errors.is_empty()).then_some(Self { errors })
    }

    /// A validation error with a single failing field.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{Field, FieldError, FieldErrorKind, ValidationError};
    ///
    /// let error = ValidationError::single(FieldError::new(Field::UserId, FieldErrorKind::Missing));
    /// assert_eq!(error.len(), 1);
    /// ```
    #[must_use]
    pub fn single(error: FieldError) -> Self {
        Self {
            errors: vec![error],
        }
    }

    /// The failing fields, in the order they were checked.
    #[must_use]
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// How many fields failed (at least one).
    #[must_use]
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always `false`: a `ValidationError` has at least one field error. Present for
    /// symmetry with [`len`](Self::len).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Whether `field` failed with `kind`.
    #[must_use]
    pub fn contains(&self, field: Field, kind: FieldErrorKind) -> bool {
        self.errors.contains(&FieldError::new(field, kind))
    }

    /// Iterates over the failing fields.
    pub fn iter(&self) -> std::slice::Iter<'_, FieldError> {
        self.errors.iter()
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid context: ")?;
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            fmt::Display::fmt(error, f)?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a ValidationError {
    type Item = &'a FieldError;
    type IntoIter = std::slice::Iter<'a, FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// Why a context could not move to its next state: the client's input was invalid, or
/// the server's id generator failed (a server bug, never the client's fault).
///
/// # Examples
///
/// ```
/// use wsctx::{Context, ContextError, ErrorCode, Policy, Rejection, UuidGenerator};
///
/// let error = Context::builder().build().validate(&Policy::default(), &UuidGenerator::new()).unwrap_err();
/// assert!(matches!(error, ContextError::Invalid(_)));
/// assert_eq!(Rejection::from(error).code(), ErrorCode::InvalidContext);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The input failed the rules: INVALID_CONTEXT.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The id generator failed or produced an invalid id: INTERNAL_ERROR.
    #[error(transparent)]
    Internal(#[from] GenerateError),
}

impl ContextError {
    /// The validation error, when the input was at fault.
    #[must_use]
    pub fn as_invalid(&self) -> Option<&ValidationError> {
        match self {
            Self::Invalid(error) => Some(error),
            Self::Internal(_) => None,
        }
    }
}

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
        match self {
            Self::Never => "never",
            Self::AfterRefresh => "after_refresh",
            Self::Backoff => "backoff",
            Self::Immediate => "immediate",
        }
    }
}

impl fmt::Display for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every reason a connection can be refused or closed. See the table on [`Rejection`].
///
/// # Examples
///
/// ```
/// use wsctx::{CloseCode, ErrorCode};
///
/// assert_eq!(ErrorCode::ConnectionLimit.as_str(), "CONNECTION_LIMIT");
/// assert_eq!(ErrorCode::ConnectionLimit.http_status(), Some(429));
/// assert_eq!(ErrorCode::ConnectionLimit.close_code(), CloseCode::TOO_MANY_REQUESTS);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No credential found.
    NoToken,
    /// The token is malformed.
    InvalidFormat,
    /// Signature, issuer or audience rejected.
    ValidationFailed,
    /// The token's `exp` has passed.
    TokenExpired,
    /// A verified token without a usable subject.
    MissingUserId,
    /// Origin or permission refused.
    Forbidden,
    /// An id, metadata entry or depth failed the rules.
    InvalidContext,
    /// The user already has a live socket with this client id.
    DuplicateClient,
    /// The per-user connection limit is reached.
    ConnectionLimit,
    /// The global connection limit is reached.
    Overloaded,
    /// The token verifier failed or timed out (not the client's fault).
    AuthUnavailable,
    /// A socket's outbound queue overflowed.
    SlowConsumer,
    /// No activity within the idle timeout.
    IdleTimeout,
    /// The server is draining.
    ShuttingDown,
    /// Cluster mode: Redis unreachable or too slow for an admission (not the client's
    /// fault).
    BackplaneUnavailable,
    /// A server bug.
    InternalError,
}

/// Everything the rejection table says about one [`ErrorCode`].
struct Spec {
    name: &'static str,
    reason: &'static str,
    message: &'static str,
    http: Option<u16>,
    close: CloseCode,
    retry: Retry,
    retry_after_secs: Option<u64>,
}

impl ErrorCode {
    /// Every error code, in table order.
    pub const ALL: [Self; 16] = [
        Self::NoToken,
        Self::InvalidFormat,
        Self::ValidationFailed,
        Self::TokenExpired,
        Self::MissingUserId,
        Self::Forbidden,
        Self::InvalidContext,
        Self::DuplicateClient,
        Self::ConnectionLimit,
        Self::Overloaded,
        Self::AuthUnavailable,
        Self::SlowConsumer,
        Self::IdleTimeout,
        Self::ShuttingDown,
        Self::BackplaneUnavailable,
        Self::InternalError,
    ];

    /// The rejection table (DESIGN §5): the one place that decides every rendering.
    #[rustfmt::skip]
    const fn spec(self) -> Spec {
        const fn row(
            name: &'static str,
            reason: &'static str,
            message: &'static str,
            http: Option<u16>,
            close: CloseCode,
            retry: Retry,
            retry_after_secs: Option<u64>,
        ) -> Spec {
            Spec {
                name,
                reason,
                message,
                http,
                close,
                retry,
                retry_after_secs,
            }
        }
        use CloseCode as C;
        use Retry as R;
        match self {
            Self::NoToken => row("NO_TOKEN", "no_token", "no credential was presented", Some(401), C::UNAUTHORIZED, R::Never, None),
            Self::InvalidFormat => row("INVALID_FORMAT", "invalid_format", "the credential is malformed", Some(401), C::UNAUTHORIZED, R::Never, None),
            Self::ValidationFailed => row("VALIDATION_FAILED", "validation_failed", "the credential was rejected", Some(401), C::UNAUTHORIZED, R::Never, None),
            Self::TokenExpired => row("TOKEN_EXPIRED", "token_expired", "the credential has expired", Some(401), C::UNAUTHORIZED, R::AfterRefresh, None),
            Self::MissingUserId => row("MISSING_USER_ID", "missing_user_id", "the credential has no usable subject", Some(403), C::FORBIDDEN, R::Never, None),
            Self::Forbidden => row("FORBIDDEN", "forbidden", "the connection is not allowed", Some(403), C::FORBIDDEN, R::Never, None),
            Self::InvalidContext => row("INVALID_CONTEXT", "invalid_context", "the connection context is invalid", Some(400), C::BAD_REQUEST, R::Never, None),
            Self::DuplicateClient => row("DUPLICATE_CLIENT", "duplicate_client", "a connection with this client id is already open", Some(409), C::CONFLICT, R::Never, None),
            Self::ConnectionLimit => row("CONNECTION_LIMIT", "connection_limit", "too many connections for this user", Some(429), C::TOO_MANY_REQUESTS, R::Backoff, Some(30)),
            Self::Overloaded => row("OVERLOADED", "overloaded", "the server is at capacity", Some(503), C::TRY_AGAIN_LATER, R::Backoff, Some(5)),
            Self::AuthUnavailable => row("AUTH_UNAVAILABLE", "auth_unavailable", "authentication is temporarily unavailable", Some(503), C::TRY_AGAIN_LATER, R::Backoff, Some(5)),
            Self::SlowConsumer => row("SLOW_CONSUMER", "slow_consumer", "the connection could not keep up", None, C::TRY_AGAIN_LATER, R::Backoff, None),
            Self::IdleTimeout => row("IDLE_TIMEOUT", "idle_timeout", "the connection was idle for too long", None, C::TIMEOUT, R::Immediate, None),
            Self::ShuttingDown => row("SHUTTING_DOWN", "shutting_down", "the server is restarting", Some(503), C::SERVICE_RESTART, R::Backoff, Some(5)),
            Self::BackplaneUnavailable => row("BACKPLANE_UNAVAILABLE", "backplane_unavailable", "the cluster backplane is temporarily unavailable", Some(503), C::TRY_AGAIN_LATER, R::Backoff, Some(5)),
            Self::InternalError => row("INTERNAL_ERROR", "internal_error", "internal server error", Some(500), C::INTERNAL_ERROR, R::Backoff, None),
        }
    }

    /// The code's wire name, e.g. `"TOKEN_EXPIRED"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// The short lowercase token used as the close reason, e.g. `"token_expired"`.
    #[must_use]
    pub const fn reason(self) -> &'static str {
        self.spec().reason
    }

    /// A fixed, lowercase, human-readable message that contains no client input.
    #[must_use]
    pub const fn message(self) -> &'static str {
        self.spec().message
    }

    /// The HTTP status when rejected before the upgrade; `None` for failures that can
    /// only happen on a live socket.
    #[must_use]
    pub const fn http_status(self) -> Option<u16> {
        self.spec().http
    }

    /// The close code when rejected after the upgrade (detailed style).
    #[must_use]
    pub const fn close_code(self) -> CloseCode {
        self.spec().close
    }

    /// What the client should do next.
    #[must_use]
    pub const fn retry(self) -> Retry {
        self.spec().retry
    }

    /// Whether the client caused this failure. Only INTERNAL_ERROR, AUTH_UNAVAILABLE,
    /// BACKPLANE_UNAVAILABLE, OVERLOADED and SHUTTING_DOWN are the server's side.
    #[must_use]
    pub const fn is_client_caused(self) -> bool {
        !matches!(
            self,
            Self::InternalError
                | Self::AuthUnavailable
                | Self::BackplaneUnavailable
                | Self::Overloaded
                | Self::ShuttingDown
        )
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
/// renderings, an HTTP response before the upgrade and a close frame after it.
///
/// | error code | HTTP | close | retry |
/// |---|---|---|---|
/// | NO_TOKEN | 401 | 4401 | never |
/// | INVALID_FORMAT | 401 | 4401 | never |
/// | VALIDATION_FAILED | 401 | 4401 | never |
/// | TOKEN_EXPIRED | 401 | 4401 | `after_refresh` |
/// | MISSING_USER_ID | 403 | 4403 | never |
/// | FORBIDDEN | 403 | 4403 | never |
/// | INVALID_CONTEXT | 400 | 4400 | never |
/// | DUPLICATE_CLIENT | 409 | 4409 | never |
/// | CONNECTION_LIMIT | 429 | 4429 | backoff |
/// | OVERLOADED | 503 + Retry-After | 1013 | backoff |
/// | AUTH_UNAVAILABLE | 503 | 1013 | backoff |
/// | SLOW_CONSUMER | — | 1013 | backoff |
/// | IDLE_TIMEOUT | — | 4408 | immediate |
/// | SHUTTING_DOWN | 503 | 1012 | backoff |
/// | BACKPLANE_UNAVAILABLE | 503 + Retry-After | 1013 | backoff |
/// | INTERNAL_ERROR | 500 | 1011 | backoff |
///
/// 1011 is used only for INTERNAL_ERROR. A rejection holds no client input: its
/// message is fixed per code, plus the names (never the values) of failing fields.
///
/// # Examples
///
/// ```
/// use wsctx::{CloseCode, CloseStyle, ErrorCode, Rejection, Retry};
///
/// let rejection = Rejection::new(ErrorCode::TokenExpired);
/// assert_eq!(rejection.http_status(), Some(401));
/// assert_eq!(rejection.close_code(CloseStyle::Detailed), CloseCode::UNAUTHORIZED);
/// assert_eq!(rejection.close_reason().as_str(), "token_expired");
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
            retry_after: code.spec().retry_after_secs.map(Duration::from_secs),
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
        match &self.detail {
            Some(detail) => {
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
            None => CloseReason::new(self.code.reason()),
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

impl From<GenerateError> for Rejection {
    fn from(_: GenerateError) -> Self {
        Self::new(ErrorCode::InternalError)
    }
}

impl From<ContextError> for Rejection {
    fn from(error: ContextError) -> Self {
        match error {
            ContextError::Invalid(error) => error.into(),
            ContextError::Internal(error) => error.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message())
    }
}

impl std::error::Error for Rejection {}
