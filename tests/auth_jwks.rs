//! `JwksVerifier` against a real HTTP server on 127.0.0.1 serving a JWK set that each test
//! changes as it goes, fetched with the example server's HTTP source. Tokens are real
//! JWTs signed with the test-only keys of tests/keys; fetches are counted at the server.
#![cfg(feature = "jwt")]
#![allow(clippy::unwrap_used, reason = "a test fails loudly on the unexpected")]

#[path = "../examples/server/jwks.rs"]
mod source;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::future::join_all;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use serde_json::json;
use tokio::time::Instant;
use wsctx::jwks::{JwksBuilder, JwksError, JwksVerifier};
use wsctx::{AuthError, ErrorCode, Rejection, Token, TokenVerifier};

const RS_PRIVATE: &[u8] = include_bytes!("keys/rs256-private.pem");
const RS_OTHER: &[u8] = include_bytes!("keys/rs256-other-private.pem");
const ES_PRIVATE: &[u8] = include_bytes!("keys/es256-private.pem");
const ED_PRIVATE: &[u8] = include_bytes!("keys/ed25519-private.pem");
const RS512_PRIVATE: &[u8] = include_bytes!("keys/rs512-private.pem");
const ES384_PRIVATE: &[u8] = include_bytes!("keys/es384-private.pem");

/// A signing key and the algorithm it signs with.
struct Signer {
    algorithm: Algorithm,
    key: EncodingKey,
}

fn rs256() -> Signer {
    Signer {
        algorithm: Algorithm::RS256,
        key: EncodingKey::from_rsa_pem(RS_PRIVATE).unwrap(),
    }
}
fn es256() -> Signer {
    Signer {
        algorithm: Algorithm::ES256,
        key: EncodingKey::from_ec_pem(ES_PRIVATE).unwrap(),
    }
}
fn eddsa() -> Signer {
    Signer {
        algorithm: Algorithm::EdDSA,
        key: EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
    }
}

impl Signer {
    /// The public JWK of this key under `kid`.
    fn jwk(&self, kid: &str) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.algorithm).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        jwk
    }

    /// A valid token for `sub`, with `kid` in its header (or none).
    fn token(&self, kid: Option<&str>, sub: &str) -> Token {
        let mut header = Header::new(self.algorithm);
        header.kid = kid.map(str::to_owned);
        let claims = json!({
            "sub": sub, "aud": "wsctx", "iss": "wsctx-tests",
            "exp": get_current_timestamp() + 600,
        });
        Token::new(encode(&header, &claims, &self.key).unwrap())
    }
}

/// What the key set server answers.
#[derive(Clone)]
enum Answer {
    Set(JwkSet),
    Status(StatusCode),
    Slow(Duration, JwkSet),
}

struct Served {
    answer: Mutex<Answer>,
    fetches: AtomicUsize,
}

/// A key set server on 127.0.0.1 whose answer the test can change.
struct KeyServer {
    addr: SocketAddr,
    served: Arc<Served>,
    task: tokio::task::JoinHandle<()>,
}

async fn answer(State(served): State<Arc<Served>>) -> Response {
    served.fetches.fetch_add(1, Ordering::SeqCst);
    let answer = served.answer.lock().unwrap().clone();
    match answer {
        Answer::Set(set) => json_response(&set),
        Answer::Status(status) => status.into_response(),
        Answer::Slow(delay, set) => {
            tokio::time::sleep(delay).await;
            json_response(&set)
        }
    }
}

fn json_response(set: &JwkSet) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(set).unwrap(),
    )
        .into_response()
}

impl KeyServer {
    async fn start(answer_with: Answer) -> Self {
        let served = Arc::new(Served {
            answer: Mutex::new(answer_with),
            fetches: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/jwks.json", get(answer))
            .with_state(Arc::clone(&served));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { addr, served, task }
    }

    fn serve(&self, answer: Answer) {
        *self.served.answer.lock().unwrap() = answer;
    }

    fn fetches(&self) -> usize {
        self.served.fetches.load(Ordering::SeqCst)
    }

    /// A verifier fetching from this server, with the tests' audience and issuer.
    fn verifier(&self) -> JwksBuilder {
        let url: hyper::Uri = format!("http://{}/jwks.json", self.addr).parse().unwrap();
        JwksVerifier::builder(move || source::fetch_jwks(url.clone()))
            .audience(["wsctx"])
            .issuer(["wsctx-tests"])
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn set(keys: Vec<Jwk>) -> JwkSet {
    JwkSet { keys }
}

async fn code(verifier: &JwksVerifier, token: &Token) -> ErrorCode {
    Rejection::from(verifier.verify(token).await.unwrap_err()).code()
}

async fn user(verifier: &JwksVerifier, token: &Token) -> String {
    verifier
        .verify(token)
        .await
        .unwrap()
        .user_id()
        .as_str()
        .to_owned()
}

#[tokio::test]
async fn rotation_keeps_old_and_new_keys_valid_until_the_old_one_is_removed() {
    let (k1, k2, k3) = (rs256(), es256(), eddsa());
    let server = KeyServer::start(Answer::Set(set(vec![k1.jwk("2025-01")]))).await;
    let refresh = Duration::from_millis(1500);
    let verifier = server
        .verifier()
        .refresh_interval(refresh)
        .min_refetch_interval(Duration::from_millis(200))
        .build();

    assert_eq!(
        user(&verifier, &k1.token(Some("2025-01"), "user-1a")).await,
        "user-1a"
    );
    assert_eq!(server.fetches(), 1);

    // The provider publishes the next keys; a token with a new kid fetches them at once.
    server.serve(Answer::Set(set(vec![
        k1.jwk("2025-01"),
        k2.jwk("2025-02"),
        k3.jwk("2025-03"),
    ])));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        user(&verifier, &k2.token(Some("2025-02"), "user-2b")).await,
        "user-2b"
    );
    assert_eq!(server.fetches(), 2);
    // Old and new keys are valid at once, without more fetches.
    assert_eq!(
        user(&verifier, &k1.token(Some("2025-01"), "user-1a")).await,
        "user-1a"
    );
    assert_eq!(
        user(&verifier, &k3.token(Some("2025-03"), "user-3c")).await,
        "user-3c"
    );
    assert_eq!(server.fetches(), 2);

    // The old key is removed; once the cached set is due for a refresh it is gone.
    server.serve(Answer::Set(set(vec![k2.jwk("2025-02"), k3.jwk("2025-03")])));
    tokio::time::sleep(refresh + Duration::from_millis(100)).await;
    assert_eq!(
        code(&verifier, &k1.token(Some("2025-01"), "user-1a")).await,
        ErrorCode::ValidationFailed
    );
    assert_eq!(server.fetches(), 3);
    assert_eq!(
        user(&verifier, &k2.token(Some("2025-02"), "user-2b")).await,
        "user-2b"
    );
    assert_eq!(server.fetches(), 3);
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_then_is_validation_failed() {
    let (known, stranger) = (rs256(), eddsa());
    let server = KeyServer::start(Answer::Set(set(vec![known.jwk("a")]))).await;
    let interval = Duration::from_secs(2);
    let verifier = server.verifier().min_refetch_interval(interval).build();
    assert_eq!(verifier.refresh().await.unwrap().key_ids(), ["a"]);
    assert_eq!(server.fetches(), 1);

    tokio::time::sleep(interval + Duration::from_millis(50)).await;
    let forged = stranger.token(Some("ghost"), "user-1a");
    assert_eq!(code(&verifier, &forged).await, ErrorCode::ValidationFailed);
    assert_eq!(server.fetches(), 2, "one refetch for the unknown kid");
    // Within the interval, another unknown kid fetches nothing.
    let forged = stranger.token(Some("ghost-2"), "user-1a");
    assert_eq!(code(&verifier, &forged).await, ErrorCode::ValidationFailed);
    assert_eq!(server.fetches(), 2);
    // A known kid still verifies; a token without a kid is refused without a fetch.
    assert_eq!(
        user(&verifier, &known.token(Some("a"), "user-1a")).await,
        "user-1a"
    );
    assert_eq!(
        code(&verifier, &known.token(None, "user-1a")).await,
        ErrorCode::ValidationFailed
    );
    // The right kid with the wrong key, or the key's kid with another algorithm.
    let other = Signer {
        algorithm: Algorithm::RS256,
        key: EncodingKey::from_rsa_pem(RS_OTHER).unwrap(),
    };
    assert_eq!(
        code(&verifier, &other.token(Some("a"), "user-1a")).await,
        ErrorCode::ValidationFailed
    );
    let confused = Signer {
        algorithm: Algorithm::HS256,
        key: EncodingKey::from_secret(b"any-secret-of-at-least-32-bytes-long"),
    };
    assert_eq!(
        code(&verifier, &confused.token(Some("a"), "user-1a")).await,
        ErrorCode::ValidationFailed
    );
    assert_eq!(server.fetches(), 2);
}

#[tokio::test]
async fn a_thousand_forged_kids_cause_at_most_one_fetch_per_interval() {
    let known = rs256();
    let stranger = eddsa();
    let server = KeyServer::start(Answer::Set(set(vec![known.jwk("a")]))).await;
    let interval = Duration::from_millis(300);
    let verifier = server.verifier().min_refetch_interval(interval).build();
    verifier.refresh().await.unwrap();

    let started = Instant::now();
    let forged: Vec<Token> = (0..1000)
        .map(|i| stranger.token(Some(&format!("forged-{i}-{}", i * 7919 % 1000)), "user-1a"))
        .collect();
    // Ten bursts of a hundred concurrent verifications, spread over about a second.
    for burst in forged.chunks(100) {
        let results = join_all(burst.iter().map(|token| verifier.verify(token))).await;
        for result in results {
            assert!(matches!(result, Err(AuthError::ValidationFailed)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    let intervals = elapsed.as_millis().div_ceil(interval.as_millis());
    let refetches = server.fetches() - 1;
    assert!(
        refetches as u128 <= intervals,
        "{refetches} refetches in {elapsed:?} (at most one per {interval:?})"
    );
    assert!(refetches >= 1, "an unknown kid does refetch");
}

#[tokio::test]
async fn concurrent_verifications_share_one_fetch_even_when_the_first_is_cancelled() {
    let key = rs256();
    let server = KeyServer::start(Answer::Slow(
        Duration::from_millis(300),
        set(vec![key.jwk("a")]),
    ))
    .await;
    let verifier = server.verifier().build();
    let token = key.token(Some("a"), "user-1a");

    // The first verification starts the fetch and is given up after 50 ms.
    let cancelled = tokio::time::timeout(Duration::from_millis(50), verifier.verify(&token)).await;
    assert!(cancelled.is_err());
    // Two hundred more wait for that same fetch, which went on without its starter.
    let results = join_all((0..200).map(|_| verifier.verify(&token))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn a_source_that_fails_or_times_out_is_auth_unavailable() {
    let key = rs256();
    let token = key.token(Some("a"), "user-1a");

    // The source answers 503.
    let server = KeyServer::start(Answer::Status(StatusCode::SERVICE_UNAVAILABLE)).await;
    let verifier = server.verifier().build();
    let error = verifier.verify(&token).await.unwrap_err();
    assert!(matches!(error, AuthError::Unavailable(_)));
    assert!(!error.is_credential_error());
    let rejection = Rejection::from(error);
    assert_eq!(rejection.code(), ErrorCode::AuthUnavailable);
    assert_eq!(rejection.http_status(), Some(503));
    assert_eq!(
        rejection.close_code(wsctx::CloseStyle::Detailed).as_u16(),
        1013
    );
    assert!(matches!(
        verifier.refresh().await,
        Err(JwksError::Source(_))
    ));

    // The source does not answer in time.
    server.serve(Answer::Slow(
        Duration::from_secs(5),
        set(vec![key.jwk("a")]),
    ));
    let verifier = server
        .verifier()
        .fetch_timeout(Duration::from_millis(200))
        .build();
    let started = Instant::now();
    assert_eq!(code(&verifier, &token).await, ErrorCode::AuthUnavailable);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(
        verifier.refresh().await,
        Err(JwksError::TimedOut(_))
    ));

    // Nothing listens at all.
    let addr = server.addr;
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let url: hyper::Uri = format!("http://{addr}/jwks.json").parse().unwrap();
    let verifier = JwksVerifier::builder(move || source::fetch_jwks(url.clone())).build();
    assert_eq!(code(&verifier, &token).await, ErrorCode::AuthUnavailable);
}

#[tokio::test]
async fn a_loaded_set_outlives_a_failing_source_up_to_its_maximum_age() {
    let key = rs256();
    let token = key.token(Some("a"), "user-1a");
    let server = KeyServer::start(Answer::Set(set(vec![key.jwk("a")]))).await;
    let verifier = server
        .verifier()
        .refresh_interval(Duration::from_millis(200))
        .min_refetch_interval(Duration::from_millis(100))
        .max_age(Duration::from_millis(1200))
        .build();
    verifier.refresh().await.unwrap();
    server.serve(Answer::Status(StatusCode::INTERNAL_SERVER_ERROR));
    // Due for a refresh, the refresh fails: the set at hand is still used.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(user(&verifier, &token).await, "user-1a");
    assert_eq!(server.fetches(), 2);
    // But a kid it lacks may be a new key the failing source could not deliver: 503.
    let new_key = eddsa().token(Some("new"), "user-1a");
    assert_eq!(code(&verifier, &new_key).await, ErrorCode::AuthUnavailable);
    // Past the maximum age, nothing is trusted any more: 503, not 401.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(code(&verifier, &token).await, ErrorCode::AuthUnavailable);
    // The source comes back: the next fetch (after the minimum interval) recovers.
    server.serve(Answer::Set(set(vec![key.jwk("a")])));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(user(&verifier, &token).await, "user-1a");
}

#[tokio::test]
async fn keys_of_the_wrong_type_or_size_are_refused_at_load() {
    let good = rs256();
    let weak = Signer {
        algorithm: Algorithm::RS256,
        key: EncodingKey::from_rsa_pem(RS512_PRIVATE).unwrap(),
    };
    let p384 = Jwk::from_encoding_key(
        &EncodingKey::from_ec_pem(ES384_PRIVATE).unwrap(),
        Algorithm::ES384,
    )
    .unwrap();
    let mut p384 = p384;
    p384.common.key_id = Some("p384".to_owned());
    let oct: Jwk = serde_json::from_value(json!({
        "kty": "oct", "kid": "hmac", "alg": "HS256",
        "k": "YW55LXNlY3JldC1vZi1hdC1sZWFzdC0zMi1ieXRlcy1sb25n",
    }))
    .unwrap();
    let mut encryption = es256().jwk("enc");
    encryption.common.public_key_use = Some(PublicKeyUse::Encryption);
    let mut no_kid = eddsa().jwk("x");
    no_kid.common.key_id = None;
    let keys = set(vec![
        good.jwk("good"),
        weak.jwk("weak"),
        p384,
        oct,
        encryption,
        es256().jwk("dup"),
        eddsa().jwk("dup"),
        no_kid,
    ]);
    let server = KeyServer::start(Answer::Set(keys)).await;
    let verifier = server.verifier().build();
    let summary = verifier.refresh().await.unwrap();
    assert_eq!(summary.key_ids(), ["good"]);
    let refused: Vec<Option<&str>> = summary.refused().iter().map(|r| r.kid()).collect();
    assert_eq!(
        refused,
        [
            Some("weak"),
            Some("p384"),
            Some("hmac"),
            Some("enc"),
            Some("dup"),
            Some("dup"),
            None
        ]
    );
    assert_eq!(
        summary.refused()[0].error().to_string(),
        "invalid RS256 key: the modulus must have 2048 to 8192 bits"
    );
    assert_eq!(
        summary.refused()[1].error().to_string(),
        "invalid ES256 key: the key must be on the P-256 curve"
    );
    // A token signed by the refused 512-bit key is never accepted.
    let weak_token = weak.token(Some("weak"), "user-1a");
    assert_eq!(
        code(&verifier, &weak_token).await,
        ErrorCode::ValidationFailed
    );
    assert_eq!(
        user(&verifier, &good.token(Some("good"), "user-1a")).await,
        "user-1a"
    );

    // A set with no usable key at all is a failed load: 503, not 401.
    server.serve(Answer::Set(set(vec![weak.jwk("weak")])));
    let verifier = server.verifier().build();
    assert!(matches!(
        verifier.refresh().await,
        Err(JwksError::NoUsableKey(ref refused)) if refused.len() == 1
    ));
    let verifier = server.verifier().build();
    assert_eq!(
        code(&verifier, &weak_token).await,
        ErrorCode::AuthUnavailable
    );
}

#[tokio::test]
async fn errors_and_debug_never_print_tokens() {
    let key = rs256();
    let server = KeyServer::start(Answer::Set(set(vec![key.jwk("a")]))).await;
    let verifier = server.verifier().build();
    let token = key.token(Some("a"), "user-secret-subject");
    verifier.verify(&token).await.unwrap();
    let signature = token.expose_secret().rsplit('.').next().unwrap();
    let debug = format!("{verifier:?}");
    assert!(!debug.contains(&signature[..20]));
    assert!(!debug.contains("user-secret-subject"));
    assert!(debug.contains("\"a\""), "the kids are listed: {debug}");
}

#[test]
fn the_public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<JwksVerifier>();
    assert_send_sync::<JwksBuilder>();
    assert_send_sync::<JwksError>();
    assert_send_sync::<wsctx::jwks::KeySetSummary>();
    assert_send_sync::<wsctx::jwks::RefusedKey>();
}
