//! `JwtVerifier`: HS256, RS256 and ES256 with the checked-in test-only keys of tests/keys.
#![cfg(feature = "jwt")]
mod support;

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use wsctx::jwt::JwtVerifier;
use wsctx::{AuthError, ErrorCode, Rejection, Token, TokenVerifier};

const SECRET: &[u8] = b"test-only-hs256-secret-0123456789abcdef";
const RS_PRIVATE: &[u8] = include_bytes!("keys/rs256-private.pem");
const RS_PUBLIC: &[u8] = include_bytes!("keys/rs256-public.pem");
const RS_OTHER: &[u8] = include_bytes!("keys/rs256-other-private.pem");
const ES_PRIVATE: &[u8] = include_bytes!("keys/es256-private.pem");
const ES_PUBLIC: &[u8] = include_bytes!("keys/es256-public.pem");
const ES_OTHER: &[u8] = include_bytes!("keys/es256-other-private.pem");

fn now() -> i64 {
    i64::try_from(support::jwt::now()).unwrap()
}

fn claims(sub: &Value) -> Value {
    json!({ "sub": sub, "aud": "wsctx", "iss": "wsctx-tests", "exp": now() + 600 })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(key);
    } else {
        claims[key] = value;
    }
    claims
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> Token {
    Token::new(support::jwt::sign(alg, key, claims))
}

fn hs(claims: &Value) -> Token {
    sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET), claims)
}

fn verifier() -> JwtVerifier {
    JwtVerifier::hs256(SECRET)
        .unwrap()
        .audience(["wsctx"])
        .issuer(["wsctx-tests"])
}

fn code(result: Result<wsctx::AuthenticatedUser, AuthError>) -> ErrorCode {
    Rejection::from(result.unwrap_err()).code()
}

#[test]
fn hs256_rs256_es256_accept_a_valid_token() {
    let good = claims(&json!("user-8f14e45f"));
    let hs256 = verifier().verify_now(&hs(&good)).unwrap();
    assert_eq!(hs256.user_id().as_str(), "user-8f14e45f");

    let rs = JwtVerifier::rs256_pem(RS_PUBLIC)
        .unwrap()
        .audience(["wsctx"]);
    let token = sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RS_PRIVATE).unwrap(),
        &good,
    );
    assert_eq!(
        rs.verify_now(&token).unwrap().user_id().as_str(),
        "user-8f14e45f"
    );

    let es = JwtVerifier::es256_pem(ES_PUBLIC)
        .unwrap()
        .audience(["wsctx"]);
    let token = sign(
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(ES_PRIVATE).unwrap(),
        &good,
    );
    assert_eq!(
        es.verify_now(&token).unwrap().user_id().as_str(),
        "user-8f14e45f"
    );
}

#[test]
fn a_wrong_signature_is_validation_failed() {
    let good = claims(&json!("user-1a"));
    let other = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-of-32-bytes-length!!"),
        &good,
    );
    assert_eq!(
        code(verifier().verify_now(&other)),
        ErrorCode::ValidationFailed
    );

    let rs = JwtVerifier::rs256_pem(RS_PUBLIC)
        .unwrap()
        .audience(["wsctx"]);
    let token = sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RS_OTHER).unwrap(),
        &good,
    );
    assert_eq!(code(rs.verify_now(&token)), ErrorCode::ValidationFailed);

    let es = JwtVerifier::es256_pem(ES_PUBLIC)
        .unwrap()
        .audience(["wsctx"]);
    let token = sign(
        Algorithm::ES256,
        &EncodingKey::from_ec_pem(ES_OTHER).unwrap(),
        &good,
    );
    assert_eq!(code(es.verify_now(&token)), ErrorCode::ValidationFailed);

    // A tampered payload keeps the old signature.
    let token = hs(&good);
    let mut parts: Vec<&str> = token.expose_secret().split('.').collect();
    let forged = hs(&claims(&json!("admin-0001")));
    let forged_payload = forged.expose_secret().split('.').nth(1).unwrap().to_owned();
    parts[1] = &forged_payload;
    assert_eq!(
        code(verifier().verify_now(&Token::new(parts.join(".")))),
        ErrorCode::ValidationFailed
    );
}

#[test]
fn algorithm_confusion_is_refused() {
    // An HS256 token "signed" with the RSA public key must not pass an RS256 verifier.
    let rs = JwtVerifier::rs256_pem(RS_PUBLIC)
        .unwrap()
        .audience(["wsctx"]);
    let token = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(RS_PUBLIC),
        &claims(&json!("user-1a")),
    );
    assert_eq!(code(rs.verify_now(&token)), ErrorCode::ValidationFailed);
    // alg "none".
    let unsigned =
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1c2VyLTFhIiwiZXhwIjo0MTAyNDQ0ODAwfQ.";
    assert!(verifier().verify_now(&Token::new(unsigned)).is_err());
}

#[test]
fn expiry_is_token_expired_and_honours_the_leeway() {
    let expired = with(claims(&json!("user-1a")), "exp", json!(now() - 3600));
    assert!(matches!(
        verifier().verify_now(&hs(&expired)),
        Err(AuthError::Expired)
    ));
    assert_eq!(
        code(verifier().verify_now(&hs(&expired))),
        ErrorCode::TokenExpired
    );

    let just = with(claims(&json!("user-1a")), "exp", json!(now() - 10));
    assert!(
        verifier().verify_now(&hs(&just)).is_ok(),
        "within the default 30 s leeway"
    );
    let strict = verifier().leeway(Duration::ZERO);
    assert!(matches!(
        strict.verify_now(&hs(&just)),
        Err(AuthError::Expired)
    ));

    let no_exp = with(claims(&json!("user-1a")), "exp", Value::Null);
    assert_eq!(
        code(verifier().verify_now(&hs(&no_exp))),
        ErrorCode::ValidationFailed
    );
}

#[test]
fn audience_issuer_and_nbf_are_checked() {
    let base = claims(&json!("user-1a"));
    let wrong_aud = with(base.clone(), "aud", json!("someone-else"));
    assert_eq!(
        code(verifier().verify_now(&hs(&wrong_aud))),
        ErrorCode::ValidationFailed
    );
    let no_aud = with(base.clone(), "aud", Value::Null);
    assert_eq!(
        code(verifier().verify_now(&hs(&no_aud))),
        ErrorCode::ValidationFailed
    );
    let wrong_iss = with(base.clone(), "iss", json!("evil"));
    assert_eq!(
        code(verifier().verify_now(&hs(&wrong_iss))),
        ErrorCode::ValidationFailed
    );
    let future = with(base.clone(), "nbf", json!(now() + 3600));
    assert_eq!(
        code(verifier().verify_now(&hs(&future))),
        ErrorCode::ValidationFailed
    );
    let past_nbf = with(base.clone(), "nbf", json!(now() - 5));
    assert!(verifier().verify_now(&hs(&past_nbf)).is_ok());

    // A token for some audience is refused by a verifier that expects none.
    let unscoped = JwtVerifier::hs256(SECRET).unwrap();
    assert_eq!(
        code(unscoped.verify_now(&hs(&base))),
        ErrorCode::ValidationFailed
    );
    assert!(
        unscoped
            .verify_now(&hs(&with(base, "aud", Value::Null)))
            .is_ok()
    );
}

#[test]
fn malformed_tokens_are_invalid_format() {
    for raw in [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "!!!.???.***",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        "eyJ4Ijp9.e30.c2ln",
    ] {
        assert_eq!(
            code(verifier().verify_now(&Token::new(raw))),
            ErrorCode::InvalidFormat,
            "{raw:?}"
        );
    }
}

#[test]
fn unusable_subjects_never_become_an_identity() {
    // (An array or object `sub` makes jsonwebtoken's claim parser fail: INVALID_FORMAT, still refused.)
    let array = hs(&with(claims(&json!("x")), "sub", json!(["user-1a"])));
    assert!(verifier().verify_now(&array).is_err());
    for sub in [Value::Null, json!(""), json!("   "), json!(42), json!(true)] {
        let token = hs(&with(claims(&json!("x")), "sub", sub.clone()));
        assert_eq!(
            code(verifier().verify_now(&token)),
            ErrorCode::MissingUserId,
            "{sub}"
        );
    }
    for sub in [
        "x".repeat(300),
        "user\u{202E}1".to_owned(),
        "a\u{7}b".to_owned(),
    ] {
        let token = hs(&claims(&json!(sub)));
        let rejection = Rejection::from(verifier().verify_now(&token).unwrap_err());
        assert_eq!(rejection.code(), ErrorCode::InvalidContext);
        assert!(!rejection.error_frame().contains(&sub));
        assert!(!rejection.close_reason().as_str().contains(&sub));
    }
}

#[tokio::test]
async fn the_async_trait_matches_the_sync_path() {
    let token = hs(&claims(&json!("user-1a")));
    let user = TokenVerifier::verify(&verifier(), &token).await.unwrap();
    assert_eq!(user.user_id().as_str(), "user-1a");
}

#[test]
fn bad_keys_are_refused_at_construction() {
    assert!(JwtVerifier::hs256(b"too-short").is_err());
    assert!(JwtVerifier::rs256_pem(ES_PUBLIC).is_err());
    assert!(JwtVerifier::es256_pem(RS_PUBLIC).is_err());
    assert!(JwtVerifier::rs256_pem(b"garbage").is_err());
}
