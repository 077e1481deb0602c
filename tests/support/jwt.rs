//! Real JSON Web Tokens, signed with real keys.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

/// Seconds since the Unix epoch, as JWTs count time.
pub(crate) fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// `claims` signed with `key` under `alg`.
#[track_caller]
pub(crate) fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("signed")
}

/// `claims` signed with the HS256 `secret`.
#[track_caller]
pub(crate) fn hs256(claims: &Value, secret: &[u8]) -> String {
    sign(Algorithm::HS256, &EncodingKey::from_secret(secret), claims)
}
