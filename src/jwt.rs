//! A [`TokenVerifier`] for JSON Web Tokens (feature `jwt`), with the [`jsonwebtoken`]
//! crate's types.
//!
//! [`JwtVerifier`] accepts tokens signed with one key (HS256, RS256, ES256 or `EdDSA`),
//! requires `exp`, checks `nbf` when present, and checks `aud` and `iss` when configured
//! (a token that carries an `aud` is refused unless an audience is configured). The `sub`
//! claim becomes the [`AuthenticatedUser`]; a token without a usable `sub` is
//! MISSING_USER_ID, never an invented identity. For keys published as a JWK set, with
//! rotation, see [`JwksVerifier`](crate::jwks::JwksVerifier).
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
//! # Keys are checked when a verifier is built
//!
//! A key that cannot be right is a [`JwtKeyError`] at start-up, never a 401 or a 503 on
//! every request: HS256 secrets of at least [`MIN_HS256_SECRET_BYTES`] bytes, RSA moduli
//! of [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] bits, ES256 keys on the P-256 curve only
//! (checked by the curve's object identifier and by decoding the point), Ed25519 keys
//! that decode to a point of large order. Signatures are checked with the pure-Rust
//! crates (`hmac`, `rsa`, `p256`, `ed25519-dalek`) on the parsed keys directly, so no
//! process-wide crypto provider is involved.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use hmac::{Hmac, Mac as _};
pub use jsonwebtoken;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, Header};
use p256::ecdsa::signature::Verifier as _;
use rsa::pkcs8::der::{self, Decode as _};
use rsa::pkcs8::spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::auth::{AuthError, AuthenticatedUser, Token, TokenVerifier};

/// The default clock-skew allowance for `exp` and `nbf`: 5 seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

/// The shortest HS256 secret [`JwtVerifier::hs256`] accepts: 32 bytes, the size of the
/// hash output (RFC 7518 §3.2).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// The smallest RSA modulus accepted, in bits (RFC 7518 §3.3 requires at least 2048).
pub const MIN_RSA_BITS: usize = 2048;

/// The largest RSA modulus accepted, in bits. Larger keys only cost verification time.
pub const MAX_RSA_BITS: usize = 8192;

/// `rsaEncryption` (RFC 8017).
const RSA_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-ecPublicKey` (RFC 5480).
const EC_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `secp256r1`, also called P-256 or prime256v1 (RFC 5480).
const P256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// `id-Ed25519` (RFC 8410).
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// A key a verifier could not use. Its message names the algorithm and the problem, never
/// key bytes.
///
/// # Examples
///
/// ```
/// let error = wsctx::jwt::JwtVerifier::hs256(b"short").unwrap_err();
/// assert_eq!(error.to_string(), "invalid HS256 key: a secret must be at least 32 bytes");
/// assert_eq!(error.algorithm(), Some("HS256"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtKeyError {
    algorithm: Option<&'static str>,
    problem: &'static str,
}

impl JwtKeyError {
    const fn new(algorithm: &'static str, problem: &'static str) -> Self {
        Self {
            algorithm: Some(algorithm),
            problem,
        }
    }

    /// A JWK whose algorithm could not be determined.
    pub(crate) const fn untyped(problem: &'static str) -> Self {
        Self {
            algorithm: None,
            problem,
        }
    }

    /// The algorithm the key was meant for, when known (`HS256`, `RS256`, `ES256`,
    /// `EdDSA`).
    ///
    /// # Examples
    ///
    /// ```
    /// let error = wsctx::jwt::JwtVerifier::rs256_pem(b"not a key").unwrap_err();
    /// assert_eq!(error.algorithm(), Some("RS256"));
    /// ```
    #[must_use]
    pub const fn algorithm(&self) -> Option<&'static str> {
        self.algorithm
    }

    /// What is wrong with the key, as fixed text.
    ///
    /// # Examples
    ///
    /// ```
    /// let error = wsctx::jwt::JwtVerifier::hs256(b"short").unwrap_err();
    /// assert_eq!(error.problem(), "a secret must be at least 32 bytes");
    /// ```
    #[must_use]
    pub const fn problem(&self) -> &'static str {
        self.problem
    }
}

impl fmt::Display for JwtKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.algorithm {
            Some(algorithm) => write!(f, "invalid {algorithm} key: {}", self.problem),
            None => write!(f, "invalid key: {}", self.problem),
        }
    }
}

impl std::error::Error for JwtKeyError {}

/// A verification key whose type and size were checked when it was built. Verifying with
/// it cannot fail for a reason of the key's.
#[derive(Clone)]
pub(crate) enum Key {
    Hs256(Hmac<Sha256>),
    Rs256(RsaPublicKey),
    Es256(p256::ecdsa::VerifyingKey),
    EdDsa(ed25519_dalek::VerifyingKey),
}

impl Key {
    fn hs256(secret: &[u8]) -> Result<Self, JwtKeyError> {
        const ERROR: JwtKeyError = JwtKeyError::new("HS256", "a secret must be at least 32 bytes");
        if secret.len() < MIN_HS256_SECRET_BYTES {
            return Err(ERROR);
        }
        Hmac::new_from_slice(secret)
            .map(Self::Hs256)
            .map_err(|_| ERROR)
    }

    /// An RSA public key from its modulus and exponent (big-endian bytes).
    fn rs256(modulus: &[u8], exponent: &[u8]) -> Result<Self, JwtKeyError> {
        let n = BigUint::from_bytes_be(modulus);
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&n.bits()) {
            return Err(JwtKeyError::new(
                "RS256",
                "the modulus must have 2048 to 8192 bits",
            ));
        }
        RsaPublicKey::new_with_max_size(n, BigUint::from_bytes_be(exponent), MAX_RSA_BITS)
            .map(Self::Rs256)
            .map_err(|_| JwtKeyError::new("RS256", "the public exponent is out of range"))
    }

    fn rs256_pem(pem: &[u8]) -> Result<Self, JwtKeyError> {
        const ERROR: JwtKeyError = JwtKeyError::new("RS256", "not an RSA public key in PEM");
        let (label, document) = pem_document(pem).ok_or(ERROR)?;
        let pkcs1 = match label.as_str() {
            "RSA PUBLIC KEY" => document,
            "PUBLIC KEY" => public_key_info(&document, RSA_OID, ERROR)?
                .subject_public_key
                .as_bytes()
                .ok_or(ERROR)?
                .to_vec(),
            _ => return Err(ERROR),
        };
        let key = rsa::pkcs1::RsaPublicKey::from_der(&pkcs1).map_err(|_| ERROR)?;
        Self::rs256(key.modulus.as_bytes(), key.public_exponent.as_bytes())
    }

    fn es256_pem(pem: &[u8]) -> Result<Self, JwtKeyError> {
        const ERROR: JwtKeyError = JwtKeyError::new("ES256", "not an EC public key in PEM");
        let document = spki_document(pem).ok_or(ERROR)?;
        let info = public_key_info(&document, EC_OID, ERROR)?;
        if info.algorithm.parameters_oid().ok() != Some(P256_OID) {
            return Err(WRONG_CURVE);
        }
        let point = info.subject_public_key.as_bytes().ok_or(ERROR)?;
        Self::es256(point)
    }

    /// A P-256 key from a SEC1-encoded point.
    fn es256(point: &[u8]) -> Result<Self, JwtKeyError> {
        p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
            .map(Self::Es256)
            .map_err(|_| JwtKeyError::new("ES256", "not a point on the P-256 curve"))
    }

    fn eddsa_pem(pem: &[u8]) -> Result<Self, JwtKeyError> {
        const ERROR: JwtKeyError = JwtKeyError::new("EdDSA", "not an Ed25519 public key in PEM");
        let document = spki_document(pem).ok_or(ERROR)?;
        public_key_info(&document, ED25519_OID, ERROR)?;
        let key = ed25519_dalek::VerifyingKey::from_public_key_der(&document).map_err(|_| ERROR)?;
        Self::eddsa(key)
    }

    fn eddsa(key: ed25519_dalek::VerifyingKey) -> Result<Self, JwtKeyError> {
        if key.is_weak() {
            return Err(JwtKeyError::new("EdDSA", "the point has small order"));
        }
        Ok(Self::EdDsa(key))
    }

    /// A key from a JWK: RSA (RS256), EC on P-256 (ES256) or OKP on Ed25519 (`EdDSA`). A
    /// key whose `use` is not `sig`, whose `key_ops` lacks `verify`, whose `alg` is
    /// another algorithm, or that is symmetric (`oct`) is refused.
    pub(crate) fn from_jwk(jwk: &Jwk) -> Result<Self, JwtKeyError> {
        let common = &jwk.common;
        if common
            .public_key_use
            .as_ref()
            .is_some_and(|usage| *usage != PublicKeyUse::Signature)
        {
            return Err(JwtKeyError::untyped("the key is not for signatures"));
        }
        if common
            .key_operations
            .as_ref()
            .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
        {
            return Err(JwtKeyError::untyped("the key's operations exclude verify"));
        }
        let (expected, algorithm) = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => (KeyAlgorithm::RS256, "RS256"),
            AlgorithmParameters::EllipticCurve(_) => (KeyAlgorithm::ES256, "ES256"),
            AlgorithmParameters::OctetKeyPair(_) => (KeyAlgorithm::EdDSA, "EdDSA"),
            AlgorithmParameters::OctetKey(_) => {
                return Err(JwtKeyError::untyped(
                    "a symmetric (oct) key is not accepted from a JWK",
                ));
            }
            _ => return Err(JwtKeyError::untyped("the key type is not supported")),
        };
        let bad = |what| JwtKeyError::new(algorithm, what);
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| bad("a parameter is not base64url"))
        };
        let key = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => Self::rs256(&decode(&rsa.n)?, &decode(&rsa.e)?),
            AlgorithmParameters::EllipticCurve(ec) => {
                if ec.curve != EllipticCurve::P256 {
                    return Err(WRONG_CURVE);
                }
                let (x, y) = (decode(&ec.x)?, decode(&ec.y)?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(bad("a coordinate is not 32 bytes"));
                }
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Self::es256(&point)
            }
            AlgorithmParameters::OctetKeyPair(okp) => {
                if okp.curve != EllipticCurve::Ed25519 {
                    return Err(bad("the key must be on the Ed25519 curve"));
                }
                let x: [u8; 32] = decode(&okp.x)?
                    .try_into()
                    .map_err(|_| bad("the key is not 32 bytes"))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|_| bad("not a point on the Ed25519 curve"))?;
                Self::eddsa(key)
            }
            _ => Err(JwtKeyError::untyped("the key type is not supported")),
        }?;
        // After the key itself, so that a P-384 key for ES384 is reported by its curve.
        if common.key_algorithm.is_some_and(|alg| alg != expected) {
            return Err(bad("the key names another algorithm"));
        }
        Ok(key)
    }

    /// The one algorithm this key verifies.
    pub(crate) fn algorithm(&self) -> Algorithm {
        match self {
            Self::Hs256(_) => Algorithm::HS256,
            Self::Rs256(_) => Algorithm::RS256,
            Self::Es256(_) => Algorithm::ES256,
            Self::EdDsa(_) => Algorithm::EdDSA,
        }
    }

    /// Whether `signature` is this key's signature of `message`.
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Hs256(mac) => {
                let mut mac = mac.clone();
                mac.update(message);
                // Constant-time comparison.
                mac.verify_slice(signature).is_ok()
            }
            Self::Rs256(key) => key
                .verify(
                    Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(message),
                    signature,
                )
                .is_ok(),
            Self::Es256(key) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(message, &signature).is_ok()),
            Self::EdDsa(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify_strict(message, &signature).is_ok()),
        }
    }

    /// The modulus size of an RSA key, for `Debug`.
    fn detail(&self) -> Option<usize> {
        match self {
            Self::Rs256(key) => Some(key.n().bits()),
            _ => None,
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Key");
        debug.field("algorithm", &self.algorithm());
        if let Some(bits) = self.detail() {
            debug.field("bits", &bits);
        }
        debug.finish_non_exhaustive()
    }
}

const WRONG_CURVE: JwtKeyError = JwtKeyError::new("ES256", "the key must be on the P-256 curve");

/// The label and DER bytes of a PEM document.
fn pem_document(pem: &[u8]) -> Option<(String, Vec<u8>)> {
    let pem = std::str::from_utf8(pem).ok()?;
    let (label, document) = der::Document::from_pem(pem).ok()?;
    Some((label.to_owned(), document.into_vec()))
}

/// A DER `SubjectPublicKeyInfo` whose algorithm is `oid`, or `error`.
fn public_key_info(
    document: &[u8],
    oid: ObjectIdentifier,
    error: JwtKeyError,
) -> Result<SubjectPublicKeyInfoRef<'_>, JwtKeyError> {
    match SubjectPublicKeyInfoRef::from_der(document) {
        Ok(info) if info.algorithm.oid == oid => Ok(info),
        _ => Err(error),
    }
}

/// The DER bytes of a `PUBLIC KEY` PEM document.
fn spki_document(pem: &[u8]) -> Option<Vec<u8>> {
    pem_document(pem)
        .filter(|(label, _)| label == "PUBLIC KEY")
        .map(|(_, document)| document)
}

/// The claim-rule setters shared by the JWT and JWKS builders (`audience`, `issuer`,
/// `leeway` on a `rules: ClaimRules` field); each takes its examples and attributes.
macro_rules! claim_rule_setters {
    (@names $field:ident, $claim:literal, $names:ident; $(#[$attr:meta])*) => {
        #[doc = concat!("Requires an `", $claim, "` claim naming one of `", stringify!($names), "`.")]
        ///
        /// # Examples
        ///
        $(#[$attr])*
        pub fn $field<I>(mut self, $names: I) -> Self
        where
            I: IntoIterator,
            I::Item: Into<String>,
        {
            self.rules.$field = Some($crate::jwt::ClaimRules::names($names));
            self
        }
    };
    (
        audience: $(#[$aud:meta])*
        issuer: $(#[$iss:meta])*
        leeway: $(#[$lee:meta])*
    ) => {
        $crate::jwt::claim_rule_setters!(@names audience, "aud", audiences; $(#[$aud])*);
        $crate::jwt::claim_rule_setters!(@names issuer, "iss", issuers; $(#[$iss])*);

        /// The clock-skew allowance for `exp` and `nbf`, in whole seconds (default
        /// [`DEFAULT_LEEWAY`](crate::jwt::DEFAULT_LEEWAY)).
        ///
        /// # Examples
        ///
        $(#[$lee])*
        pub fn leeway(mut self, leeway: ::std::time::Duration) -> Self {
            self.rules.leeway_secs = leeway.as_secs();
            self
        }
    };
}
pub(crate) use claim_rule_setters;

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
///     .leeway(Duration::from_secs(2));
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
    key: Key,
    rules: ClaimRules,
}

debug_fields!(JwtVerifier { key, rules });

impl JwtVerifier {
    fn with_key(key: Key) -> Self {
        Self {
            key,
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
        Key::hs256(secret.as_ref()).map(Self::with_key)
    }

    /// An RS256 verifier with an RSA public key in PEM (`BEGIN PUBLIC KEY` or
    /// `BEGIN RSA PUBLIC KEY`) whose modulus has [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`]
    /// bits.
    ///
    /// # Errors
    ///
    /// [`JwtKeyError`] when the PEM is not an RSA public key, or the modulus is too small
    /// or too large.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(wsctx::jwt::JwtVerifier::rs256_pem(b"not a key").is_err());
    /// ```
    pub fn rs256_pem(pem: &[u8]) -> Result<Self, JwtKeyError> {
        Key::rs256_pem(pem).map(Self::with_key)
    }

    /// An ES256 verifier with a P-256 public key in PEM (`BEGIN PUBLIC KEY`). The curve
    /// is checked: a P-384 or secp256k1 key is refused.
    ///
    /// # Errors
    ///
    /// [`JwtKeyError`] when the PEM is not an EC public key on P-256.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(wsctx::jwt::JwtVerifier::es256_pem(b"-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n").is_err());
    /// ```
    pub fn es256_pem(pem: &[u8]) -> Result<Self, JwtKeyError> {
        Key::es256_pem(pem).map(Self::with_key)
    }

    /// An `EdDSA` verifier with an Ed25519 public key in PEM (`BEGIN PUBLIC KEY`).
    ///
    /// # Errors
    ///
    /// [`JwtKeyError`] when the PEM is not an Ed25519 public key, or the key is a point of
    /// small order.
    ///
    /// # Examples
    ///
    /// ```
    /// let pem = b"-----BEGIN PUBLIC KEY-----
    /// MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=
    /// -----END PUBLIC KEY-----
    /// ";
    /// // The public key of RFC 8032, test 1.
    /// let verifier = wsctx::jwt::JwtVerifier::eddsa_pem(pem)?;
    /// # let _ = verifier;
    /// # Ok::<(), wsctx::jwt::JwtKeyError>(())
    /// ```
    pub fn eddsa_pem(pem: &[u8]) -> Result<Self, JwtKeyError> {
        Key::eddsa_pem(pem).map(Self::with_key)
    }

    /// A verifier with one key of a JWK: RSA (RS256), EC on P-256 (ES256) or OKP on
    /// Ed25519 (`EdDSA`), checked like the PEM constructors. The algorithm is the key
    /// type's; a JWK whose `alg` names another one, whose `use` is not `sig`, or that is a
    /// symmetric `oct` key is refused (use [`hs256`](Self::hs256) for a shared secret).
    ///
    /// # Errors
    ///
    /// [`JwtKeyError`] when the key is refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::jwt::{JwtVerifier, jsonwebtoken::jwk::Jwk};
    ///
    /// let jwk: Jwk = serde_json::from_str(r#"{
    ///     "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA",
    ///     "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    /// }"#)?;
    /// let verifier = JwtVerifier::from_jwk(&jwk)?;
    /// # let _ = verifier;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, JwtKeyError> {
        Key::from_jwk(jwk).map(Self::with_key)
    }

    claim_rule_setters! {
        audience:
        /// ```
        /// let verifier = wsctx::jwt::JwtVerifier::hs256(&[1u8; 32])?.audience(["wsctx", "chat"]);
        /// # let _ = verifier;
        /// # Ok::<(), wsctx::jwt::JwtKeyError>(())
        /// ```
        #[must_use]
        issuer:
        /// ```
        /// let verifier = wsctx::jwt::JwtVerifier::hs256(&[1u8; 32])?.issuer(["https://id.example"]);
        /// # let _ = verifier;
        /// # Ok::<(), wsctx::jwt::JwtKeyError>(())
        /// ```
        #[must_use]
        leeway:
        /// ```
        /// use std::time::Duration;
        ///
        /// let verifier = wsctx::jwt::JwtVerifier::hs256(&[1u8; 32])?.leeway(Duration::ZERO);
        /// # let _ = verifier;
        /// # Ok::<(), wsctx::jwt::JwtKeyError>(())
        /// ```
        #[must_use]
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
        Compact::parse(token.expose_secret())?.verify(&self.key, &self.rules)
    }
}

impl TokenVerifier for JwtVerifier {
    async fn verify(&self, token: &Token) -> Result<AuthenticatedUser, AuthError> {
        self.verify_now(token)
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

    /// Checks the signature with `key` (whose algorithm the header must name), then the
    /// claims with `rules`, then the subject.
    pub(crate) fn verify(
        &self,
        key: &Key,
        rules: &ClaimRules,
    ) -> Result<AuthenticatedUser, AuthError> {
        if self.header.alg != key.algorithm() {
            return Err(AuthError::ValidationFailed);
        }
        let signature = decode_part(self.signature)?;
        if !key.verifies(self.signing_input.as_bytes(), &signature) {
            return Err(AuthError::ValidationFailed);
        }
        let claims: Map<String, Value> = serde_json::from_slice(&decode_part(self.payload)?)
            .map_err(|_| AuthError::InvalidFormat)?;
        let exp = rules.check(&claims, jsonwebtoken::get_current_timestamp())?;
        // The socket runner closes the socket when the credential expires.
        Ok(subject(&claims)?.with_expiry(UNIX_EPOCH + Duration::from_secs(exp)))
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
    /// The accepted values of an `aud` or `iss` claim.
    pub(crate) fn names<I>(names: I) -> Vec<String>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        names.into_iter().map(Into::into).collect()
    }

    /// Checks the claims of a token whose signature was verified, at `now` (seconds since
    /// the Unix epoch). The issuer and audience come first: a token meant for someone
    /// else is VALIDATION_FAILED even when it has also expired. Returns `exp`.
    pub(crate) fn check(&self, claims: &Map<String, Value>, now: u64) -> Result<u64, AuthError> {
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
        Ok(exp)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_print_the_key() {
        let verifier = JwtVerifier::hs256(b"0123456789abcdef0123456789abcdef").unwrap();
        let debug = format!("{verifier:?}");
        assert!(!debug.contains("0123456789"));
        assert!(!debug.contains("48, 49, 50"));
        assert!(debug.contains("HS256"));
    }

    #[test]
    fn numeric_dates() {
        assert_eq!(numeric_date(None).unwrap(), None);
        assert_eq!(numeric_date(Some(&Value::Null)).unwrap(), None);
        assert_eq!(numeric_date(Some(&serde_json::json!(7))).unwrap(), Some(7));
        assert_eq!(
            numeric_date(Some(&serde_json::json!(7.6))).unwrap(),
            Some(8)
        );
        for bad in [
            serde_json::json!(-1),
            serde_json::json!(-0.5),
            serde_json::json!(1e30),
            serde_json::json!("7"),
            serde_json::json!(true),
        ] {
            assert!(numeric_date(Some(&bad)).is_err(), "{bad}");
        }
    }
}
