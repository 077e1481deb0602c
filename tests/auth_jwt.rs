//! `JwtVerifier`: HS256, RS256, ES256 and `EdDSA` with the checked-in test-only keys of
//! tests/keys, and the key checks made when a verifier is built.
#![cfg(feature = "jwt")]
mod support;

use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use wsctx::jwt::{DEFAULT_LEEWAY, JwtKeyError, JwtVerifier};
use wsctx::{AuthError, ErrorCode, Rejection, Token, TokenVerifier};

const SECRET: &[u8] = b"test-only-hs256-secret-0123456789abcdef";
const RS_PRIVATE: &[u8] = include_bytes!("keys/rs256-private.pem");
const RS_PUBLIC: &[u8] = include_bytes!("keys/rs256-public.pem");
const RS_OTHER: &[u8] = include_bytes!("keys/rs256-other-private.pem");
const ES_PRIVATE: &[u8] = include_bytes!("keys/es256-private.pem");
const ES_PUBLIC: &[u8] = include_bytes!("keys/es256-public.pem");
const ES_OTHER: &[u8] = include_bytes!("keys/es256-other-private.pem");
const RS512_PRIVATE: &[u8] = include_bytes!("keys/rs512-private.pem");
const RS512_PUBLIC: &[u8] = include_bytes!("keys/rs512-public.pem");
const RS4200_PRIVATE: &[u8] = include_bytes!("keys/rs4200-private.pem");
const RS4200_PUBLIC: &[u8] = include_bytes!("keys/rs4200-public.pem");
const ES384_PRIVATE: &[u8] = include_bytes!("keys/es384-private.pem");
const ES384_PUBLIC: &[u8] = include_bytes!("keys/es384-public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("keys/ed25519-private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("keys/ed25519-public.pem");
const ED_OTHER: &[u8] = include_bytes!("keys/ed25519-other-private.pem");

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

/// `claims` signed with an HS256 secret the default verifier does not know.
fn hs_other_secret(claims: &Value) -> Token {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another-secret-of-32-bytes-length!!"),
        claims,
    )
}

/// The error code the default verifier refuses the HS256 token of `claims` with.
fn refused(claims: &Value) -> ErrorCode {
    code(verifier().verify_now(&hs(claims)))
}

/// The private key `pem` (PEM) of an `alg` key pair.
fn private_key(alg: Algorithm, pem: &[u8]) -> EncodingKey {
    match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        other => panic!("no PEM key pair for {other:?}"),
    }
    .unwrap()
}

/// `claims` signed under `alg` with the private key `pem`.
fn sign_pem(alg: Algorithm, pem: &[u8], claims: &Value) -> Token {
    sign(alg, &private_key(alg, pem), claims)
}

/// The public JWK of the `alg` key pair whose private key is `pem`.
fn jwk(alg: Algorithm, pem: &[u8]) -> Jwk {
    Jwk::from_encoding_key(&private_key(alg, pem), alg).unwrap()
}

/// A verifier from `key` (as `JwtVerifier::rs256_pem` and its kin return it) that
/// expects the audience `wsctx`.
fn for_wsctx(key: Result<JwtVerifier, JwtKeyError>) -> JwtVerifier {
    key.unwrap().audience(["wsctx"])
}

/// Checks that `verifier` reads `user-8f14e45f` from a token signed under `alg` with the
/// private key `own` and refuses one signed with `other` as VALIDATION_FAILED; returns
/// the accepted token.
#[track_caller]
fn accepts_only_its_key(verifier: &JwtVerifier, alg: Algorithm, own: &[u8], other: &[u8]) -> Token {
    let good = claims(&json!("user-8f14e45f"));
    let token = sign_pem(alg, own, &good);
    assert_eq!(user_of(verifier, &token), "user-8f14e45f");
    let forged = sign_pem(alg, other, &good);
    assert_eq!(
        code(verifier.verify_now(&forged)),
        ErrorCode::ValidationFailed
    );
    token
}

/// The user id `verifier` reads from `token`, which it must accept.
fn user_of(verifier: &JwtVerifier, token: &Token) -> String {
    verifier
        .verify_now(token)
        .unwrap()
        .user_id()
        .as_str()
        .to_owned()
}

#[test]
fn hs256_rs256_es256_accept_a_valid_token() {
    let good = claims(&json!("user-8f14e45f"));
    let hs256 = verifier().verify_now(&hs(&good)).unwrap();
    assert_eq!(hs256.user_id().as_str(), "user-8f14e45f");

    let rs = for_wsctx(JwtVerifier::rs256_pem(RS_PUBLIC));
    let token = sign_pem(Algorithm::RS256, RS_PRIVATE, &good);
    assert_eq!(user_of(&rs, &token), "user-8f14e45f");

    let es = for_wsctx(JwtVerifier::es256_pem(ES_PUBLIC));
    let token = sign_pem(Algorithm::ES256, ES_PRIVATE, &good);
    assert_eq!(user_of(&es, &token), "user-8f14e45f");
}

#[test]
fn a_wrong_signature_is_validation_failed() {
    let good = claims(&json!("user-1a"));
    let other = hs_other_secret(&good);
    assert_eq!(
        code(verifier().verify_now(&other)),
        ErrorCode::ValidationFailed
    );

    let rs = for_wsctx(JwtVerifier::rs256_pem(RS_PUBLIC));
    let token = sign_pem(Algorithm::RS256, RS_OTHER, &good);
    assert_eq!(code(rs.verify_now(&token)), ErrorCode::ValidationFailed);

    let es = for_wsctx(JwtVerifier::es256_pem(ES_PUBLIC));
    let token = sign_pem(Algorithm::ES256, ES_OTHER, &good);
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
    let rs = for_wsctx(JwtVerifier::rs256_pem(RS_PUBLIC));
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
    assert_eq!(refused(&expired), ErrorCode::TokenExpired);

    // The default leeway is at most 5 s: ten seconds past `exp` is expired.
    assert!(DEFAULT_LEEWAY <= Duration::from_secs(5));
    let ten_past = with(claims(&json!("user-1a")), "exp", json!(now() - 10));
    assert!(matches!(
        verifier().verify_now(&hs(&ten_past)),
        Err(AuthError::Expired)
    ));
    let just = with(claims(&json!("user-1a")), "exp", json!(now() - 1));
    assert!(
        verifier().verify_now(&hs(&just)).is_ok(),
        "within the default leeway"
    );
    let strict = verifier().leeway(Duration::ZERO);
    assert!(matches!(
        strict.verify_now(&hs(&ten_past)),
        Err(AuthError::Expired)
    ));
    let lenient = verifier().leeway(Duration::from_secs(60));
    assert!(lenient.verify_now(&hs(&ten_past)).is_ok());

    let no_exp = with(claims(&json!("user-1a")), "exp", Value::Null);
    assert_eq!(refused(&no_exp), ErrorCode::ValidationFailed);
}

#[test]
fn audience_issuer_and_nbf_are_checked() {
    let base = claims(&json!("user-1a"));
    let wrong_aud = with(base.clone(), "aud", json!("someone-else"));
    assert_eq!(refused(&wrong_aud), ErrorCode::ValidationFailed);
    let no_aud = with(base.clone(), "aud", Value::Null);
    assert_eq!(refused(&no_aud), ErrorCode::ValidationFailed);
    let wrong_iss = with(base.clone(), "iss", json!("evil"));
    assert_eq!(refused(&wrong_iss), ErrorCode::ValidationFailed);
    let future = with(base.clone(), "nbf", json!(now() + 3600));
    assert_eq!(refused(&future), ErrorCode::ValidationFailed);
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
    // Absent, `null`, blank, or not a string at all: a verified token without a usable
    // subject is MISSING_USER_ID (403/4403), never INVALID_FORMAT.
    let absent = with(claims(&json!("x")), "sub", Value::Null);
    assert_eq!(refused(&absent), ErrorCode::MissingUserId);
    for sub in [
        json!(null),
        json!(""),
        json!("   "),
        json!(42),
        json!(-1.5),
        json!(true),
        json!([]),
        json!(["user-1a"]),
        json!({}),
        json!({"id": "user-1a"}),
    ] {
        let token = hs(&claims(&sub));
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

#[test]
fn the_subject_is_read_only_after_the_signature_and_the_claims() {
    // A `sub` of the wrong type does not outrank a bad signature or an expired token.
    let array_sub = claims(&json!(["user-1a"]));
    let forged = hs_other_secret(&array_sub);
    assert_eq!(
        code(verifier().verify_now(&forged)),
        ErrorCode::ValidationFailed
    );
    let expired = with(claims(&json!({})), "exp", json!(now() - 3600));
    assert_eq!(refused(&expired), ErrorCode::TokenExpired);
    // A token for another audience is not ours, expired or not.
    let elsewhere = with(expired, "aud", json!("someone-else"));
    assert_eq!(refused(&elsewhere), ErrorCode::ValidationFailed);
    // Audiences as a list: one match is enough, a non-string entry refuses the token.
    let listed = with(claims(&json!("user-1a")), "aud", json!(["other", "wsctx"]));
    assert!(verifier().verify_now(&hs(&listed)).is_ok());
    let odd = with(claims(&json!("user-1a")), "aud", json!(["wsctx", 7]));
    assert_eq!(refused(&odd), ErrorCode::ValidationFailed);
    // `exp` must be a non-negative number.
    for exp in [json!("soon"), json!(-5), json!([1])] {
        let token = hs(&with(claims(&json!("user-1a")), "exp", exp.clone()));
        assert_eq!(
            code(verifier().verify_now(&token)),
            ErrorCode::ValidationFailed,
            "{exp}"
        );
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
    assert!(JwtVerifier::hs256([7u8; 31]).is_err());
    assert!(JwtVerifier::rs256_pem(ES_PUBLIC).is_err());
    assert!(JwtVerifier::es256_pem(RS_PUBLIC).is_err());
    assert!(JwtVerifier::rs256_pem(b"garbage").is_err());
    assert!(JwtVerifier::eddsa_pem(RS_PUBLIC).is_err());
    assert!(JwtVerifier::eddsa_pem(ES_PUBLIC).is_err());
    assert!(JwtVerifier::es256_pem(ED_PUBLIC).is_err());
    // A private key is not a public key.
    assert!(JwtVerifier::rs256_pem(RS_PRIVATE).is_err());
    assert!(JwtVerifier::es256_pem(ES_PRIVATE).is_err());
    assert!(JwtVerifier::eddsa_pem(ED_PRIVATE).is_err());
}

#[test]
fn rsa_keys_must_have_2048_to_8192_bits() {
    // 512 bits: refused, so no token signed with it can ever pass.
    let error = JwtVerifier::rs256_pem(RS512_PUBLIC).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid RS256 key: the modulus must have 2048 to 8192 bits"
    );
    // 4200 bits: accepted, and its tokens verify (a backend limited to 4096 bits would
    // refuse every one of them as a bad signature).
    let big = for_wsctx(JwtVerifier::rs256_pem(RS4200_PUBLIC));
    accepts_only_its_key(&big, Algorithm::RS256, RS4200_PRIVATE, RS_PRIVATE);
    // The boundaries, as JWKs (a modulus need not be a real key to be measured).
    for (bits, ok) in [
        (1024, false),
        (2047, false),
        (2048, true),
        (8192, true),
        (8193, false),
        (16384, false),
    ] {
        let result = JwtVerifier::from_jwk(&rsa_jwk_with_bits(bits));
        assert_eq!(result.is_ok(), ok, "{bits} bits");
    }
    // The 512-bit key as a JWK is refused too.
    let small = jwk(Algorithm::RS256, RS512_PRIVATE);
    assert!(JwtVerifier::from_jwk(&small).is_err());
}

/// An RSA JWK whose modulus has exactly `bits` bits (odd, top bit set).
fn rsa_jwk_with_bits(bits: usize) -> Jwk {
    use base64::Engine as _;
    let mut n = vec![0xA5u8; bits.div_ceil(8)];
    let top = (bits - 1) % 8;
    n[0] = (n[0] | (1 << top)) & (u8::MAX >> (7 - top));
    *n.last_mut().unwrap() |= 1;
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n);
    serde_json::from_value(json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256"})).unwrap()
}

#[test]
fn es256_needs_a_p256_key() {
    let error = JwtVerifier::es256_pem(ES384_PUBLIC).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid ES256 key: the key must be on the P-256 curve"
    );
    let p384 = jwk(Algorithm::ES384, ES384_PRIVATE);
    assert!(JwtVerifier::from_jwk(&p384).is_err());
    // A point that is not on the curve.
    let off_curve: Jwk = serde_json::from_value(json!({
        "kty": "EC", "crv": "P-256",
        "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "y": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    }))
    .unwrap();
    assert!(JwtVerifier::from_jwk(&off_curve).is_err());
}

#[test]
fn eddsa_ed25519_verifies() {
    let ed = for_wsctx(JwtVerifier::eddsa_pem(ED_PUBLIC));
    let token = accepts_only_its_key(&ed, Algorithm::EdDSA, ED_PRIVATE, ED_OTHER);
    // The same key as a JWK.
    let jwk = jwk(Algorithm::EdDSA, ED_PRIVATE);
    let from_jwk = JwtVerifier::from_jwk(&jwk).unwrap().audience(["wsctx"]);
    assert!(from_jwk.verify_now(&token).is_ok());
    // An RS256 token is refused by an EdDSA verifier, whatever it was signed with.
    let rs = sign_pem(
        Algorithm::RS256,
        RS_PRIVATE,
        &claims(&json!("user-8f14e45f")),
    );
    assert_eq!(code(ed.verify_now(&rs)), ErrorCode::ValidationFailed);
}

#[test]
fn jwks_keys_are_checked_like_pem_keys() {
    let rs = jwk(Algorithm::RS256, RS_PRIVATE);
    let verifier = JwtVerifier::from_jwk(&rs).unwrap().audience(["wsctx"]);
    let token = sign_pem(Algorithm::RS256, RS_PRIVATE, &claims(&json!("user-1a")));
    assert!(verifier.verify_now(&token).is_ok());
    let es = jwk(Algorithm::ES256, ES_PRIVATE);
    assert!(JwtVerifier::from_jwk(&es).is_ok());

    let mut wrong_alg = rs.clone();
    wrong_alg.common.key_algorithm = Some(jsonwebtoken::jwk::KeyAlgorithm::PS256);
    assert!(JwtVerifier::from_jwk(&wrong_alg).is_err());
    let mut mismatched = es.clone();
    mismatched.common.key_algorithm = Some(jsonwebtoken::jwk::KeyAlgorithm::RS256);
    assert!(JwtVerifier::from_jwk(&mismatched).is_err());
    let mut encryption = rs.clone();
    encryption.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Encryption);
    assert!(JwtVerifier::from_jwk(&encryption).is_err());
    let mut no_alg = rs;
    no_alg.common.key_algorithm = None;
    assert!(JwtVerifier::from_jwk(&no_alg).is_ok(), "RS256 is inferred");
    // A symmetric key never comes from a JWK.
    let oct: Jwk = serde_json::from_value(
        json!({"kty": "oct", "k": "dGVzdC1vbmx5LWhzMjU2LXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm", "alg": "HS256"}),
    )
    .unwrap();
    let error = JwtVerifier::from_jwk(&oct).unwrap_err();
    assert!(!error.to_string().contains("dGVzdC1"), "{error}");
}

#[test]
fn key_errors_never_print_key_material() {
    let error = JwtVerifier::rs256_pem(RS512_PUBLIC).unwrap_err();
    let pem = std::str::from_utf8(RS512_PUBLIC).unwrap();
    let body_line = pem.lines().nth(1).unwrap();
    assert!(!format!("{error} {error:?}").contains(&body_line[..16]));
}
