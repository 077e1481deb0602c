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
//! | bad signature, wrong `alg`, `aud`, `iss`, `nbf` in the future, `exp` missing or not a number | [`ValidationFailed`](AuthError::ValidationFailed) | VALIDATION_FAILED |
//! | `exp` passed (beyond the leeway) | [`Expired`](AuthError::Expired) | TOKEN_EXPIRED |
//! | `sub` absent, `null`, blank, or not a string (a number, a boolean, an array, an object) | [`MissingSubject`](AuthError::MissingSubject) | MISSING_USER_ID |
//! | `sub` fails the id rule | [`InvalidSubject`](AuthError::InvalidSubject) | INVALID_CONTEXT |
//!
//! The checks run in that order: the header, then the signature, then the issuer and
//! audience, then `exp` and `nbf`, and the subject last, so a token that is forged, meant
//! for someone else or expired is never reported by what its `sub` looks like.
//!
//! The crate is built with jsonwebtoken's pure-Rust `rust_crypto` backend. If another
//! crate in the same build also enables its `aws_lc_rs` backend, jsonwebtoken cannot pick
//! one on its own: install a `jsonwebtoken::crypto::CryptoProvider` at start-up.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub use jsonwebtoken;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use serde_json::{Map, Value};

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
    algorithm: Algorithm,
    rules: ClaimRules,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithm", &self.algorithm)
            .field("audience", &self.rules.audience)
            .field("issuer", &self.rules.issuer)
            .field("leeway_secs", &self.rules.leeway_secs)
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
        Self {
            key,
            algorithm,
            rules: ClaimRules::default(),
        }
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
        self.rules.audience = Some(audiences.into_iter().map(Into::into).collect());
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
        self.rules.issuer = Some(issuers.into_iter().map(Into::into).collect());
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
        self.rules.leeway_secs = leeway.as_secs();
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
        let compact = Compact::parse(token.expose_secret())?;
        if compact.header.alg != self.algorithm {
            return Err(AuthError::ValidationFailed);
        }
        match jsonwebtoken::crypto::verify(
            compact.signature,
            compact.signing_input.as_bytes(),
            &self.key,
            self.algorithm,
        ) {
            Ok(true) => {}
            Ok(false) => return Err(AuthError::ValidationFailed),
            Err(error) => return Err(map_error(error.kind())),
        }
        let claims = compact.claims()?;
        self.rules
            .check(&claims, jsonwebtoken::get_current_timestamp())?;
        subject(&claims)
    }
}

/// A compact JWS (`header.payload.signature`) split into its parts, with the header
/// decoded. Nothing here is trusted before the signature is checked.
pub(crate) struct Compact<'a> {
    /// The decoded header (its `alg` and `kid` choose the key).
    pub(crate) header: Header,
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'a str,
    /// The base64url payload.
    payload: &'a str,
    /// The base64url signature.
    signature: &'a str,
}

impl<'a> Compact<'a> {
    /// Splits `token` and decodes its header. Anything but three parts with a decodable
    /// JSON header naming a known algorithm is INVALID_FORMAT.
    pub(crate) fn parse(token: &'a str) -> Result<Self, AuthError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(AuthError::InvalidFormat)?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or(AuthError::InvalidFormat)?;
        if payload.contains('.') {
            return Err(AuthError::InvalidFormat);
        }
        let header =
            serde_json::from_slice(&decode_part(header)?).map_err(|_| AuthError::InvalidFormat)?;
        Ok(Self {
            header,
            signing_input,
            payload,
            signature,
        })
    }

    /// The payload as a JSON object; call only after the signature was verified.
    fn claims(&self) -> Result<Map<String, Value>, AuthError> {
        serde_json::from_slice(&decode_part(self.payload)?).map_err(|_| AuthError::InvalidFormat)
    }
}

/// Decodes one base64url part (no padding); a bad part is INVALID_FORMAT.
fn decode_part(part: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::InvalidFormat)
}

/// The claim checks: `exp` required, `nbf` when present, `iss` and `aud` when configured
/// (a token with an `aud` is refused when no audience is configured), with a leeway.
#[derive(Clone, Debug)]
pub(crate) struct ClaimRules {
    pub(crate) audience: Option<Vec<String>>,
    pub(crate) issuer: Option<Vec<String>>,
    pub(crate) leeway_secs: u64,
}

impl Default for ClaimRules {
    fn default() -> Self {
        Self {
            audience: None,
            issuer: None,
            leeway_secs: DEFAULT_LEEWAY.as_secs(),
        }
    }
}

impl ClaimRules {
    /// Checks the claims of a token whose signature was verified, at `now` (seconds since
    /// the Unix epoch). The issuer and audience come first: a token meant for someone
    /// else is VALIDATION_FAILED even when it has also expired.
    pub(crate) fn check(&self, claims: &Map<String, Value>, now: u64) -> Result<(), AuthError> {
        let exp = numeric_date(claims.get("exp"))?.ok_or(AuthError::ValidationFailed)?;
        let nbf = numeric_date(claims.get("nbf"))?;
        if let Some(issuers) = &self.issuer {
            match claims.get("iss") {
                Some(Value::String(iss)) if issuers.contains(iss) => {}
                _ => return Err(AuthError::ValidationFailed),
            }
        }
        let audience = claims.get("aud").filter(|aud| !aud.is_null());
        match (&self.audience, audience) {
            (None, None) => {}
            // An empty list names no audience.
            (None, Some(Value::Array(list))) if list.is_empty() => {}
            (None, Some(_)) | (Some(_), None) => return Err(AuthError::ValidationFailed),
            (Some(expected), Some(aud)) => {
                let named = |value: &Value| {
                    value
                        .as_str()
                        .is_some_and(|a| expected.iter().any(|e| e == a))
                };
                let ok = match aud {
                    Value::String(_) => named(aud),
                    Value::Array(list) => {
                        list.iter().all(Value::is_string) && list.iter().any(named)
                    }
                    _ => false,
                };
                if !ok {
                    return Err(AuthError::ValidationFailed);
                }
            }
        }
        if exp.saturating_add(self.leeway_secs) < now {
            return Err(AuthError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now.saturating_add(self.leeway_secs)) {
            return Err(AuthError::ValidationFailed);
        }
        Ok(())
    }
}

/// A `NumericDate` claim: absent or `null` is `None`; a non-negative number (a fraction is
/// rounded) is its value; anything else is VALIDATION_FAILED.
fn numeric_date(value: Option<&Value>) -> Result<Option<u64>, AuthError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(secs) = n.as_u64() {
                return Ok(Some(secs));
            }
            match n.as_f64() {
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "finite, non-negative and below 2^64, checked first"
                )]
                Some(secs)
                    if secs.is_finite() && (0.0..18_446_744_073_709_551_615.0).contains(&secs) =>
                {
                    Ok(Some(secs.round() as u64))
                }
                _ => Err(AuthError::ValidationFailed),
            }
        }
        Some(_) => Err(AuthError::ValidationFailed),
    }
}

/// The user named by verified claims: `sub` must be a string; absent, `null`, a number,
/// a boolean, an array or an object is MISSING_USER_ID.
pub(crate) fn subject(claims: &Map<String, Value>) -> Result<AuthenticatedUser, AuthError> {
    match claims.get("sub") {
        Some(Value::String(sub)) => AuthenticatedUser::from_subject(Some(sub)),
        _ => Err(AuthError::MissingSubject),
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
