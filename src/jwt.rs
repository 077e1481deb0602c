//! A [`TokenVerifier`] for JSON Web Tokens on the [`jsonwebtoken`] crate (feature `jwt`).
//!
//! [`JwtVerifier`] accepts HS256, RS256 or ES256 tokens signed with one key, requires
//! `exp`, checks `nbf` when present, and checks `aud` and `iss` when configured (a token
//! that carries an `aud` is refused unless an audience is configured). The `sub` claim
//! becomes the [`AuthenticatedUser`]; a token without a usable `sub` is MISSING_USER_ID,
//! never an invented identity.
//!
//! | failure | [`AuthError`] | code |
//! |---|---|---|
//! | not three base64url parts, bad JSON, unknown `alg` | [`InvalidFormat`](AuthError::InvalidFormat) | INVALID_FORMAT |
//! | bad signature, wrong `alg`, `aud`, `iss`, `nbf` in the future, `exp` missing | [`ValidationFailed`](AuthError::ValidationFailed) | VALIDATION_FAILED |
//! | `exp` passed (beyond the leeway) | [`Expired`](AuthError::Expired) | TOKEN_EXPIRED |
//! | `sub` absent, not a string, or blank | [`MissingSubject`](AuthError::MissingSubject) | MISSING_USER_ID |
//! | `sub` fails the id rule | [`InvalidSubject`](AuthError::InvalidSubject) | INVALID_CONTEXT |
//!
//! The crate is built with jsonwebtoken's pure-Rust `rust_crypto` backend. If another
//! crate in the same build also enables its `aws_lc_rs` backend, jsonwebtoken cannot pick
//! one on its own: install a `jsonwebtoken::crypto::CryptoProvider` at start-up.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

pub use jsonwebtoken;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::auth::{AuthError, AuthenticatedUser, Token, TokenVerifier};

/// The default clock-skew allowance for `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The shortest HS256 secret [`JwtVerifier::hs256`] accepts: 32 bytes, the size of the
/// hash output (RFC 7518 §3.2).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// A key [`JwtVerifier`] could not use. Its message names the algorithm, never key bytes.
///
/// # Examples
///
/// ```
/// let error = wsctx::jwt::JwtVerifier::hs256(b"short").unwrap_err();
/// assert_eq!(error.to_string(), "invalid HS256 key: a secret must be at least 32 bytes");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("invalid {algorithm} key: {problem}")]
pub struct JwtKeyError {
    algorithm: &'static str,
    problem: &'static str,
    #[source]
    source: Option<jsonwebtoken::errors::Error>,
}

/// Verifies JSON Web Tokens signed with one key.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
/// use wsctx::Token;
/// use wsctx::jwt::JwtVerifier;
///
/// let secret = b"an-hs256-secret-of-at-least-32-bytes!";
/// let verifier = JwtVerifier::hs256(secret)?
///     .audience(["wsctx"])
///     .issuer(["https://issuer.example"])
///     .leeway(Duration::from_secs(10));
///
/// let claims = serde_json::json!({
///     "sub": "user-8f14e45f",
///     "aud": "wsctx",
///     "iss": "https://issuer.example",
///     "exp": get_current_timestamp() + 600,
/// });
/// let jwt = encode(&Header::default(), &claims, &EncodingKey::from_secret(secret))?;
///
/// let user = verifier.verify_now(&Token::new(jwt))?;
/// assert_eq!(user.user_id().as_str(), "user-8f14e45f");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .field("audience", &self.validation.aud)
            .field("issuer", &self.validation.iss)
            .field("leeway_secs", &self.validation.leeway)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for tokens signed with `key` under `algorithm`.
    ///
    /// `exp` is required, `nbf` is checked when present, and the leeway is
    /// [`DEFAULT_LEEWAY`]. Prefer the algorithm-named constructors, which also check the
    /// key.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::jwt::{JwtVerifier, jsonwebtoken::{Algorithm, DecodingKey}};
    ///
    /// let verifier = JwtVerifier::new(DecodingKey::from_secret(&[7; 32]), Algorithm::HS256);
    /// # let _ = verifier;
    /// ```
    #[must_use]
    pub fn new(key: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = DEFAULT_LEEWAY.as_secs();
        Self { key, validation }
    }

    /// An HS256 verifier with a shared secret.
    ///
    /// # Errors
    ///
    /// [`JwtKeyError`] when the secret is shorter than [`MIN_HS256_SECRET_BYTES`].
    ///
    /// # Examples
    ///
    /// ```
    /// let verifier = wsctx::jwt::JwtVerifier::hs256(&[42u8; 32])?;
    /// # let _ = verifier;
    /// # Ok::<(), wsctx::jwt::JwtKeyError>(())
    /// ```
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Self, JwtKeyError> {
        let secret = secret.as_ref();
        if secret.len() < MIN_HS256_SECRET_BYTES {
            return Err(JwtKeyError {
                algorithm: "HS256",
                problem: "a secret must be at least 32 bytes",
                source: None,
            });
        }
        Ok(Self::new(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
        ))
    }

    /// An RS256 verifier with an RSA public key in PEM (`BEGIN PUBLIC KEY` or
    /// `BEGIN RSA PUBLIC KEY`).
    ///
    /// # Errors
    ///
    /// [`JwtKeyError`] when the PEM is not an RSA public key.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(wsctx::jwt::JwtVerifier::rs256_pem(b"not a key").is_err());
    /// ```
    pub fn rs256_pem(pem: &[u8]) -> Result<Self, JwtKeyError> {
        DecodingKey::from_rsa_pem(pem)
            .map(|key| Self::new(key, Algorithm::RS256))
            .map_err(|source| JwtKeyError {
                algorithm: "RS256",
                problem: "not an RSA public key in PEM",
                source: Some(source),
            })
    }

    /// An ES256 verifier with a P-256 public key in PEM (`BEGIN PUBLIC KEY`).
    ///
    /// # Errors
    ///
    /// [`JwtKeyError`] when the PEM is not an EC public key.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(wsctx::jwt::JwtVerifier::es256_pem(b"-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n").is_err());
    /// ```
    pub fn es256_pem(pem: &[u8]) -> Result<Self, JwtKeyError> {
        DecodingKey::from_ec_pem(pem)
            .map(|key| Self::new(key, Algorithm::ES256))
            .map_err(|source| JwtKeyError {
                algorithm: "ES256",
                problem: "not an EC public key in PEM",
                source: Some(source),
            })
    }

    /// Requires an `aud` claim naming one of `audiences`.
    ///
    /// # Examples
    ///
    /// ```
    /// let verifier = wsctx::jwt::JwtVerifier::hs256(&[1u8; 32])?.audience(["wsctx", "chat"]);
    /// # let _ = verifier;
    /// # Ok::<(), wsctx::jwt::JwtKeyError>(())
    /// ```
    #[must_use]
    pub fn audience<I>(mut self, audiences: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.validation.aud = Some(audiences.into_iter().map(Into::into).collect());
        self.validation
            .required_spec_claims
            .insert("aud".to_owned());
        self
    }

    /// Requires an `iss` claim naming one of `issuers`.
    ///
    /// # Examples
    ///
    /// ```
    /// let verifier = wsctx::jwt::JwtVerifier::hs256(&[1u8; 32])?.issuer(["https://id.example"]);
    /// # let _ = verifier;
    /// # Ok::<(), wsctx::jwt::JwtKeyError>(())
    /// ```
    #[must_use]
    pub fn issuer<I>(mut self, issuers: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.validation.iss = Some(issuers.into_iter().map(Into::into).collect());
        self.validation
            .required_spec_claims
            .insert("iss".to_owned());
        self
    }

    /// The clock-skew allowance for `exp` and `nbf`, in whole seconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let verifier = wsctx::jwt::JwtVerifier::hs256(&[1u8; 32])?.leeway(Duration::ZERO);
    /// # let _ = verifier;
    /// # Ok::<(), wsctx::jwt::JwtKeyError>(())
    /// ```
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.validation.leeway = leeway.as_secs();
        self
    }

    /// Verifies `token` synchronously. JWT verification is CPU work only, so this also
    /// serves where no `await` is possible (tokio-tungstenite's handshake callback).
    ///
    /// # Errors
    ///
    /// See the table in the [module documentation](self).
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{AuthError, Token};
    ///
    /// let verifier = wsctx::jwt::JwtVerifier::hs256(&[1u8; 32])?;
    /// assert!(matches!(verifier.verify_now(&Token::new("not-a-jwt")), Err(AuthError::InvalidFormat)));
    /// # Ok::<(), wsctx::jwt::JwtKeyError>(())
    /// ```
    pub fn verify_now(&self, token: &Token) -> Result<AuthenticatedUser, AuthError> {
        let claims = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token.expose_secret(),
            &self.key,
            &self.validation,
        )
        .map_err(|error| map_error(error.kind()))?
        .claims;
        let subject = match claims.get("sub") {
            Some(serde_json::Value::String(sub)) => Some(sub.as_str()),
            _ => None,
        };
        let user = AuthenticatedUser::from_subject(subject)?;
        // `exp` is required and was validated: seconds since the epoch.
        let exp = claims.get("exp").and_then(serde_json::Value::as_f64);
        Ok(
            match exp.and_then(|secs| Duration::try_from_secs_f64(secs).ok()) {
                Some(exp) => user.with_expiry(UNIX_EPOCH + exp),
                None => user,
            },
        )
    }
}

/// Maps a jsonwebtoken failure to the rejection table. Unknown kinds fail closed as
/// VALIDATION_FAILED.
fn map_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::InvalidAlgorithmName => AuthError::InvalidFormat,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        // The key was checked when the verifier was built; a key or provider failure
        // here is the server's problem, not the client's.
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::MissingAlgorithm
        | ErrorKind::Provider(_) => AuthError::unavailable("the JWT key or crypto provider failed"),
        _ => AuthError::ValidationFailed,
    }
}

impl TokenVerifier for JwtVerifier {
    async fn verify(&self, token: &Token) -> Result<AuthenticatedUser, AuthError> {
        self.verify_now(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_print_the_key() {
        let verifier = JwtVerifier::hs256(b"0123456789abcdef0123456789abcdef").unwrap();
        let debug = format!("{verifier:?}");
        assert!(!debug.contains("0123456789"));
        assert!(debug.contains("HS256"));
    }

    #[test]
    fn unusable_keys_are_server_side() {
        let error = map_error(&ErrorKind::InvalidKeyFormat);
        assert!(!error.is_credential_error());
        assert!(map_error(&ErrorKind::InvalidSignature).is_credential_error());
    }
}
