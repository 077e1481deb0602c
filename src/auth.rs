//! Authentication at the handshake: the secret [`Token`], the [`TokenVerifier`] trait, the
//! [`AuthenticatedUser`] it produces and the [`AuthError`] it fails with.
//!
//! Extracting a token from a request lives in the `http` feature
//! (`wsctx::http`); a ready verifier for JSON Web Tokens in the `jwt`
//! feature. This module depends on neither.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::{Field, FieldError, IdError, ValidationError};
use crate::id::UserId;
use crate::rejection::{ErrorCode, Rejection};

/// A bearer credential as presented by a client. A secret.
///
/// `Token` has no `Display`, no `Serialize` and no `PartialEq`; its `Debug` prints
/// `Token(<redacted>)`. The only way to read it is [`expose_secret`](Self::expose_secret),
/// meant for the verifier. It is not zeroized on drop.
///
/// # Examples
///
/// ```
/// use wsctx::Token;
///
/// let token = Token::new("eyJhbGciOi.payload.signature");
/// assert_eq!(format!("{token:?}"), "Token(<redacted>)");
/// assert_eq!(token.expose_secret(), "eyJhbGciOi.payload.signature");
/// ```
pub struct Token(Box<str>);

impl Token {
    /// Wraps a credential.
    ///
    /// # Examples
    ///
    /// ```
    /// let token = wsctx::Token::new(String::from("abc"));
    /// assert_eq!(token.len(), 3);
    /// ```
    #[must_use]
    pub fn new(token: impl Into<Box<str>>) -> Self {
        Self(token.into())
    }

    /// The credential itself. Pass it to a verifier; never log, store or echo it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::Token::new("abc").expose_secret(), "abc");
    /// ```
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The credential's length in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::Token::new("abcd").len(), 4);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the credential is empty. Extraction never produces an empty token.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(wsctx::Token::new("").is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Where a handshake's token was found. Sources are tried in this order.
///
/// # Examples
///
/// ```
/// assert_eq!(wsctx::TokenSource::Subprotocol.as_str(), "subprotocol");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (scheme compared case-insensitively).
    AuthorizationHeader,
    /// A `Sec-WebSocket-Protocol` entry `jwt.<base64url(token)>`.
    Subprotocol,
    /// The `token` query parameter, only when enabled explicitly.
    QueryParameter,
}

impl TokenSource {
    /// The source's name, for logs and metrics.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::TokenSource::AuthorizationHeader.as_str(), "authorization_header");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationHeader => "authorization_header",
            Self::Subprotocol => "subprotocol",
            Self::QueryParameter => "query_parameter",
        }
    }
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user whose credential a [`TokenVerifier`] accepted.
///
/// The only constructor, [`from_subject`](Self::from_subject), refuses an absent or blank
/// subject ([`AuthError::MissingSubject`]) and a subject that fails the structural rule of
/// [`UserId`] ([`AuthError::InvalidSubject`]): there is no fallback identity. The
/// deployment's [`Policy`](crate::Policy) (placeholder words such as `test` or `null`) is
/// applied when the context is validated, so such a subject ends as INVALID_CONTEXT.
///
/// Like [`UserId`], its `Debug` prints only a fingerprint.
///
/// # Examples
///
/// ```
/// use wsctx::{AuthError, AuthenticatedUser};
///
/// let user = AuthenticatedUser::from_subject(Some(" user-8f14e45f "))?;
/// assert_eq!(user.user_id().as_str(), "user-8f14e45f");
/// assert!(!format!("{user:?}").contains("8f14e45f"));
///
/// assert!(matches!(AuthenticatedUser::from_subject(Some("   ")), Err(AuthError::MissingSubject)));
/// assert!(matches!(AuthenticatedUser::from_subject(None), Err(AuthError::MissingSubject)));
/// assert!(matches!(
///     AuthenticatedUser::from_subject(Some("\u{202E}evil")),
///     Err(AuthError::InvalidSubject(_))
/// ));
/// # Ok::<(), AuthError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedUser {
    user_id: UserId,
    expires_at: Option<SystemTime>,
}

impl AuthenticatedUser {
    /// The user named by a verified credential's subject.
    ///
    /// Call this only with the subject of a credential you have verified.
    ///
    /// # Errors
    ///
    /// [`AuthError::MissingSubject`] when `subject` is `None` or only whitespace;
    /// [`AuthError::InvalidSubject`] when it fails the structural rule (longer than 256
    /// bytes, control or invisible formatting characters).
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{AuthError, AuthenticatedUser, ErrorCode, Rejection};
    ///
    /// let error = AuthenticatedUser::from_subject(Some(&"x".repeat(300))).unwrap_err();
    /// assert_eq!(Rejection::from(error).code(), ErrorCode::InvalidContext);
    /// ```
    pub fn from_subject(subject: Option<&str>) -> Result<Self, AuthError> {
        let subject = subject.ok_or(AuthError::MissingSubject)?;
        match UserId::try_new(subject) {
            Ok(user_id) => Ok(Self {
                user_id,
                expires_at: None,
            }),
            Err(IdError::Empty) => Err(AuthError::MissingSubject),
            Err(error) => Err(AuthError::InvalidSubject(error)),
        }
    }

    /// The user's id.
    ///
    /// # Examples
    ///
    /// ```
    /// let user = wsctx::AuthenticatedUser::from_subject(Some("u-1"))?;
    /// assert_eq!(user.user_id().as_str(), "u-1");
    /// # Ok::<(), wsctx::AuthError>(())
    /// ```
    #[must_use]
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// The same user, whose credential expires at `expires_at` (a JWT's `exp`). A
    /// verifier sets it; the axum adapter's runner closes the socket with TOKEN_EXPIRED
    /// when it passes, unless a refresh with a newer credential moved it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    ///
    /// let exp = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    /// let user = wsctx::AuthenticatedUser::from_subject(Some("u-1"))?.with_expiry(exp);
    /// assert_eq!(user.expires_at(), Some(exp));
    /// # Ok::<(), wsctx::AuthError>(())
    /// ```
    #[must_use]
    pub fn with_expiry(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// When the credential expires, if it does; `None` for a credential without an
    /// expiry.
    ///
    /// # Examples
    ///
    /// ```
    /// let user = wsctx::AuthenticatedUser::from_subject(Some("u-1"))?;
    /// assert_eq!(user.expires_at(), None);
    /// # Ok::<(), wsctx::AuthError>(())
    /// ```
    #[must_use]
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The user's id, by value.
    ///
    /// # Examples
    ///
    /// ```
    /// let id = wsctx::AuthenticatedUser::from_subject(Some("u-1"))?.into_user_id();
    /// assert_eq!(id.as_str(), "u-1");
    /// # Ok::<(), wsctx::AuthError>(())
    /// ```
    #[must_use]
    pub fn into_user_id(self) -> UserId {
        self.user_id
    }
}

/// A boxed error from a verifier's backend (an identity provider, a key store).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a handshake could not be authenticated.
///
/// Two families, never confused: a bad **credential** (the client's fault: 401 and close
/// 4401, or 403/400 for an unusable subject) and an **unavailable verifier** (the
/// server's side: AUTH_UNAVAILABLE, 503 and close 1013). Convert to a [`Rejection`] with
/// `From`. Messages are fixed text: they never contain the token or the subject.
///
/// # Examples
///
/// ```
/// use wsctx::{AuthError, ErrorCode, Rejection};
///
/// assert_eq!(AuthError::Expired.code(), ErrorCode::TokenExpired);
/// assert!(AuthError::Expired.is_credential_error());
///
/// let down = AuthError::unavailable(std::io::Error::other("idp unreachable"));
/// assert!(!down.is_credential_error());
/// assert_eq!(Rejection::from(down).http_status(), Some(503));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credential was presented: NO_TOKEN.
    #[error("no credential was presented")]
    NoToken,
    /// The credential is malformed (bad base64, not a JWT, too long): INVALID_FORMAT.
    #[error("the credential is malformed")]
    InvalidFormat,
    /// The signature, issuer, audience or another claim was rejected: VALIDATION_FAILED.
    #[error("the credential was rejected")]
    ValidationFailed,
    /// The credential has expired: TOKEN_EXPIRED.
    #[error("the credential has expired")]
    Expired,
    /// The credential is valid but names no subject (absent or blank): MISSING_USER_ID.
    #[error("the credential has no usable subject")]
    MissingSubject,
    /// The credential's subject fails the id rule: INVALID_CONTEXT for `user_id`.
    #[error("the credential's subject is not a valid user id: {0}")]
    InvalidSubject(IdError),
    /// The credential is valid but the user may not connect: FORBIDDEN.
    #[error("the connection is not allowed")]
    Forbidden,
    /// The verifier's backend failed: AUTH_UNAVAILABLE.
    #[error("the token verifier is unavailable")]
    Unavailable(#[source] BoxError),
    /// The verifier did not answer within the configured timeout: AUTH_UNAVAILABLE.
    #[error("the token verifier did not answer within {0:?}")]
    TimedOut(Duration),
}

impl AuthError {
    /// An [`AuthError::Unavailable`] with its cause. The cause is kept for the server's
    /// logs; it is never shown to the client.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::error::Error;
    ///
    /// let error = wsctx::AuthError::unavailable(std::io::Error::other("timeout"));
    /// assert!(error.source().is_some());
    /// ```
    pub fn unavailable(cause: impl Into<BoxError>) -> Self {
        Self::Unavailable(cause.into())
    }

    /// The error code of the rejection table.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{AuthError, ErrorCode};
    ///
    /// assert_eq!(AuthError::MissingSubject.code(), ErrorCode::MissingUserId);
    /// assert_eq!(AuthError::TimedOut(std::time::Duration::from_secs(5)).code(), ErrorCode::AuthUnavailable);
    /// ```
    #[must_use]
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::NoToken => ErrorCode::NoToken,
            Self::InvalidFormat => ErrorCode::InvalidFormat,
            Self::ValidationFailed => ErrorCode::ValidationFailed,
            Self::Expired => ErrorCode::TokenExpired,
            Self::MissingSubject => ErrorCode::MissingUserId,
            Self::InvalidSubject(_) => ErrorCode::InvalidContext,
            Self::Forbidden => ErrorCode::Forbidden,
            Self::Unavailable(_) | Self::TimedOut(_) => ErrorCode::AuthUnavailable,
        }
    }

    /// Whether the client's credential (or its subject) is at fault, as opposed to the
    /// verifier being unavailable.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(wsctx::AuthError::InvalidFormat.is_credential_error());
    /// ```
    #[must_use]
    pub const fn is_credential_error(&self) -> bool {
        !matches!(self, Self::Unavailable(_) | Self::TimedOut(_))
    }
}

impl From<AuthError> for Rejection {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::InvalidSubject(kind) => {
                ValidationError::single(FieldError::new(Field::UserId, kind.into())).into()
            }
            other => Self::new(other.code()),
        }
    }
}

/// Verifies a client's [`Token`] and names the user it belongs to.
///
/// An async trait (native `async fn` in traits; the returned future must be `Send`).
/// Implementations return [`AuthError::Unavailable`] when their backend fails, so that a
/// down identity provider is reported as AUTH_UNAVAILABLE (503/1013) and not as a bad
/// credential. Timeouts are applied by the caller (see `Handshake` in the `http`
/// feature). Implemented for `&T`, `Box<T>` and `Arc<T>`.
///
/// # Errors
///
/// [`verify`](Self::verify) returns an [`AuthError`]: a credential error, or
/// [`AuthError::Unavailable`].
///
/// # Examples
///
/// ```
/// use wsctx::{AuthError, AuthenticatedUser, Token, TokenVerifier};
///
/// /// Accepts `opaque-<user>` tokens from a (pretend) session store.
/// struct Sessions;
///
/// impl TokenVerifier for Sessions {
///     async fn verify(&self, token: &Token) -> Result<AuthenticatedUser, AuthError> {
///         let user = token.expose_secret().strip_prefix("opaque-").ok_or(AuthError::ValidationFailed)?;
///         AuthenticatedUser::from_subject(Some(user))
///     }
/// }
///
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// let user = block_on(Sessions.verify(&Token::new("opaque-u-42")))?;
/// assert_eq!(user.user_id().as_str(), "u-42");
/// assert!(block_on(Sessions.verify(&Token::new("nope"))).is_err());
/// # Ok::<(), AuthError>(())
/// ```
pub trait TokenVerifier: Send + Sync {
    /// Verifies `token`.
    ///
    /// # Errors
    ///
    /// A credential error ([`AuthError::InvalidFormat`], [`AuthError::ValidationFailed`],
    /// [`AuthError::Expired`], [`AuthError::MissingSubject`], ...) or
    /// [`AuthError::Unavailable`].
    fn verify(
        &self,
        token: &Token,
    ) -> impl Future<Output = Result<AuthenticatedUser, AuthError>> + Send;
}

/// What [`TokenVerifier::verify`] returns.
type Verified = Result<AuthenticatedUser, AuthError>;

/// Implements [`TokenVerifier`] for pointers to a verifier.
macro_rules! forward_verifier {
    ($($pointer:ty),*) => {$(
        impl<T: TokenVerifier> TokenVerifier for $pointer {
            fn verify(&self, token: &Token) -> impl Future<Output = Verified> + Send {
                (**self).verify(token)
            }
        }
    )*};
}
forward_verifier!(&T, Box<T>, Arc<T>);

/// A [`TokenVerifier`] from a function of the token that returns a future; see
/// [`verify_fn`].
#[derive(Clone, Copy)]
pub struct VerifyFn<F>(F);

impl<F> fmt::Debug for VerifyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerifyFn")
    }
}

/// A [`TokenVerifier`] from a function, as [`from_fn`](crate::from_fn) makes an id
/// generator from one. The function gets the token and returns a future of the outcome;
/// the future may not borrow the token, so read what it needs first (a verifier that does
/// no I/O returns [`std::future::ready`]).
///
/// # Examples
///
/// ```
/// use std::future::ready;
/// use wsctx::{AuthError, AuthenticatedUser, Token, TokenVerifier, verify_fn};
///
/// // Accepts `ok-<user>` tokens.
/// let verifier = verify_fn(|token: &Token| {
///     ready(match token.expose_secret().strip_prefix("ok-") {
///         Some(user) => AuthenticatedUser::from_subject(Some(user)),
///         None => Err(AuthError::ValidationFailed),
///     })
/// });
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// let user = block_on(verifier.verify(&Token::new("ok-u-42")))?;
/// assert_eq!(user.user_id().as_str(), "u-42");
/// assert!(block_on(verifier.verify(&Token::new("nope"))).is_err());
/// # Ok::<(), AuthError>(())
/// ```
pub fn verify_fn<F, Fut>(f: F) -> VerifyFn<F>
where
    F: Fn(&Token) -> Fut + Send + Sync,
    Fut: Future<Output = Verified> + Send,
{
    VerifyFn(f)
}

impl<F, Fut> TokenVerifier for VerifyFn<F>
where
    F: Fn(&Token) -> Fut + Send + Sync,
    Fut: Future<Output = Verified> + Send,
{
    fn verify(&self, token: &Token) -> impl Future<Output = Verified> + Send {
        (self.0)(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldErrorKind;

    #[test]
    fn token_debug_is_redacted() {
        let token = Token::new("super-secret-value");
        let debug = format!("{token:?}");
        assert!(!debug.contains("super"));
        assert!(!debug.contains("secret-value"));
    }

    #[test]
    fn subjects_that_are_blank_are_missing() {
        for subject in ["", "   ", "\u{3000}\t\n"] {
            assert!(matches!(
                AuthenticatedUser::from_subject(Some(subject)),
                Err(AuthError::MissingSubject)
            ));
        }
    }

    #[test]
    fn structurally_invalid_subjects_are_invalid_context_for_user_id() {
        for subject in [
            "x".repeat(300),
            "a\u{202E}b".to_owned(),
            "a\u{0}b".to_owned(),
        ] {
            let error = AuthenticatedUser::from_subject(Some(&subject)).unwrap_err();
            let rejection = Rejection::from(error);
            assert_eq!(rejection.code(), ErrorCode::InvalidContext);
            let detail = rejection.detail().unwrap();
            assert_eq!(detail.len(), 1);
            assert_eq!(detail.errors()[0].field(), Field::UserId);
            assert!(!rejection.error_frame().contains(&subject));
        }
        let error = AuthenticatedUser::from_subject(Some(&"x".repeat(300))).unwrap_err();
        let too_long = FieldError::new(Field::UserId, FieldErrorKind::TooLong);
        assert_eq!(
            Rejection::from(error).detail().unwrap().errors(),
            [too_long]
        );
    }

    #[test]
    fn every_auth_error_maps_to_its_table_row() {
        let cases = [
            (AuthError::NoToken, 401, 4401),
            (AuthError::InvalidFormat, 401, 4401),
            (AuthError::ValidationFailed, 401, 4401),
            (AuthError::Expired, 401, 4401),
            (AuthError::MissingSubject, 403, 4403),
            (AuthError::Forbidden, 403, 4403),
            (AuthError::InvalidSubject(IdError::TooLong), 400, 4400),
            (
                AuthError::unavailable(std::io::Error::other("x")),
                503,
                1013,
            ),
            (AuthError::TimedOut(Duration::from_secs(1)), 503, 1013),
        ];
        for (error, status, close) in cases {
            let credential = error.is_credential_error();
            let rejection = Rejection::from(error);
            assert_eq!(rejection.http_status(), Some(status));
            assert_eq!(
                rejection.close_code(crate::CloseStyle::Detailed).as_u16(),
                close
            );
            assert_eq!(credential, status != 503);
        }
    }
}
