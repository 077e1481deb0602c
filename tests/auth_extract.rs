//! Token extraction, query context and rejection rendering on `http` types.
#![cfg(feature = "http")]
mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue, Uri, header};
use wsctx::http::{ExtractConfig, Handshake, extract_token, query_context, select_subprotocol};
use wsctx::{
    AuthError, AuthenticatedUser, ErrorCode, Field, FieldErrorKind, Policy, Rejection, Token,
    TokenSource, TokenVerifier, UuidGenerator,
};

use support::errors::reports;

fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    map
}

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

fn extract(
    map: &HeaderMap,
    u: &str,
    config: ExtractConfig,
) -> Result<(String, TokenSource), AuthError> {
    extract_token(map, &uri(u), &config).map(|(t, s)| (t.expose_secret().to_owned(), s))
}

fn protocol_entry(token: &str) -> String {
    format!("jwt.{}", URL_SAFE_NO_PAD.encode(token))
}

#[test]
fn bearer_scheme_is_case_insensitive() {
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let map = headers(&[(header::AUTHORIZATION, &format!("{scheme} a.b.c"))]);
        assert_eq!(
            extract(&map, "/ws", ExtractConfig::default()).unwrap(),
            ("a.b.c".to_owned(), TokenSource::AuthorizationHeader)
        );
    }
    let map = headers(&[(header::AUTHORIZATION, "Bearer \t  a.b.c  ")]);
    assert_eq!(
        extract(&map, "/ws", ExtractConfig::default()).unwrap().0,
        "a.b.c"
    );
}

#[test]
fn malformed_bearer_is_invalid_format() {
    for value in [
        "Bearer",
        "Bearer   ",
        "Bearer a b",
        "Bearer a,b",
        "Bearer a\"b",
        "Bearer é",
    ] {
        let mut map = HeaderMap::new();
        map.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        );
        assert!(
            matches!(
                extract(&map, "/ws", ExtractConfig::default()),
                Err(AuthError::InvalidFormat)
            ),
            "{value:?}"
        );
    }
    // Two bearer credentials are ambiguous.
    let map = headers(&[
        (header::AUTHORIZATION, "Bearer a"),
        (header::AUTHORIZATION, "bearer b"),
    ]);
    assert!(matches!(
        extract(&map, "/ws", ExtractConfig::default()),
        Err(AuthError::InvalidFormat)
    ));
}

#[test]
fn other_authorization_schemes_are_skipped() {
    let map = headers(&[(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")]);
    assert!(matches!(
        extract(&map, "/ws", ExtractConfig::default()),
        Err(AuthError::NoToken)
    ));
    let map = headers(&[(header::AUTHORIZATION, "Bearerabc")]);
    assert!(matches!(
        extract(&map, "/ws", ExtractConfig::default()),
        Err(AuthError::NoToken)
    ));
    let map = headers(&[
        (header::AUTHORIZATION, "Basic dXNlcjpwYXNz"),
        (
            header::SEC_WEBSOCKET_PROTOCOL,
            &format!("wsctx.v1, {}", protocol_entry("x.y.z")),
        ),
    ]);
    assert_eq!(
        extract(&map, "/ws", ExtractConfig::default()).unwrap().1,
        TokenSource::Subprotocol
    );
}

#[test]
fn subprotocol_token_is_decoded() {
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln";
    for header_value in [
        format!("wsctx.v1, {}", protocol_entry(token)),
        format!("{} ,wsctx.v1", protocol_entry(token)),
        format!("{}=", protocol_entry("ab")), // padding tolerated
    ] {
        let map = headers(&[(header::SEC_WEBSOCKET_PROTOCOL, &header_value)]);
        let (found, source) = extract(&map, "/ws", ExtractConfig::default()).unwrap();
        assert_eq!(source, TokenSource::Subprotocol);
        assert!(found == token || found == "ab");
    }
    // Split over two headers.
    let map = headers(&[
        (header::SEC_WEBSOCKET_PROTOCOL, "wsctx.v1"),
        (header::SEC_WEBSOCKET_PROTOCOL, &protocol_entry(token)),
    ]);
    assert_eq!(
        extract(&map, "/ws", ExtractConfig::default()).unwrap().0,
        token
    );
}

#[test]
fn malformed_subprotocol_token_is_invalid_format() {
    let not_utf8 = format!("jwt.{}", URL_SAFE_NO_PAD.encode([0xff, 0xfe, 0x00]));
    let bad_alphabet = format!("jwt.{}", URL_SAFE_NO_PAD.encode("a b"));
    let two = format!("{}, {}", protocol_entry("a"), protocol_entry("b"));
    for value in [
        "jwt.",
        "jwt.!!!",
        "jwt.a",
        "jwt.YW*j",
        not_utf8.as_str(),
        bad_alphabet.as_str(),
        two.as_str(),
    ] {
        let map = headers(&[(header::SEC_WEBSOCKET_PROTOCOL, value)]);
        assert!(
            matches!(
                extract(&map, "/ws", ExtractConfig::default()),
                Err(AuthError::InvalidFormat)
            ),
            "{value:?}"
        );
    }
}

#[test]
fn query_token_is_read_only_when_enabled() {
    let map = HeaderMap::new();
    assert!(matches!(
        extract(&map, "/ws?token=a.b.c", ExtractConfig::default()),
        Err(AuthError::NoToken)
    ));
    let on = ExtractConfig::default().allow_query_token(true);
    assert_eq!(
        extract(&map, "/ws?x=1&token=a.b%2Ec", on).unwrap(),
        ("a.b.c".to_owned(), TokenSource::QueryParameter)
    );
    for bad in [
        "/ws?token=",
        "/ws?token=a%2",
        "/ws?token=a%zz",
        "/ws?token=%FF",
        "/ws?token=a&token=b",
        "/ws?token=a+b",
    ] {
        assert!(
            matches!(extract(&map, bad, on), Err(AuthError::InvalidFormat)),
            "{bad}"
        );
    }
}

#[test]
fn sources_are_tried_in_order() {
    let on = ExtractConfig::default().allow_query_token(true);
    let all = headers(&[
        (header::AUTHORIZATION, "Bearer from-header"),
        (
            header::SEC_WEBSOCKET_PROTOCOL,
            &protocol_entry("from-protocol"),
        ),
    ]);
    assert_eq!(
        extract(&all, "/ws?token=from-query", on).unwrap().0,
        "from-header"
    );
    let two = headers(&[(
        header::SEC_WEBSOCKET_PROTOCOL,
        &protocol_entry("from-protocol"),
    )]);
    assert_eq!(
        extract(&two, "/ws?token=from-query", on).unwrap().0,
        "from-protocol"
    );
    assert_eq!(
        extract(&HeaderMap::new(), "/ws?token=from-query", on)
            .unwrap()
            .0,
        "from-query"
    );
    assert!(matches!(
        extract(&HeaderMap::new(), "/ws", on),
        Err(AuthError::NoToken)
    ));
}

#[test]
fn huge_tokens_are_refused_without_panicking() {
    let huge = "a".repeat(100_000);
    let map = headers(&[(header::AUTHORIZATION, &format!("Bearer {huge}"))]);
    assert!(matches!(
        extract(&map, "/ws", ExtractConfig::default()),
        Err(AuthError::InvalidFormat)
    ));
    let map = headers(&[(header::SEC_WEBSOCKET_PROTOCOL, &protocol_entry(&huge))]);
    assert!(matches!(
        extract(&map, "/ws", ExtractConfig::default()),
        Err(AuthError::InvalidFormat)
    ));
    let on = ExtractConfig::default().allow_query_token(true);
    assert!(matches!(
        extract(
            &HeaderMap::new(),
            &format!("/ws?token={}", &huge[..20_000]),
            on
        ),
        Err(AuthError::InvalidFormat)
    ));
    // Exactly at the limit is fine.
    let small = ExtractConfig::default().max_token_bytes(8);
    let map = headers(&[(header::AUTHORIZATION, "Bearer 12345678")]);
    assert!(extract(&map, "/ws", small).is_ok());
    let map = headers(&[(header::AUTHORIZATION, "Bearer 123456789")]);
    assert!(extract(&map, "/ws", small).is_err());
}

#[test]
fn arbitrary_header_bytes_never_panic() {
    let config = ExtractConfig::default().allow_query_token(true);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for len in 0..400 {
        let bytes: Vec<u8> = (0..len % 97)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed.to_le_bytes()[0]
            })
            .collect();
        let mut map = HeaderMap::new();
        for name in [header::AUTHORIZATION, header::SEC_WEBSOCKET_PROTOCOL] {
            let mut value = if len % 2 == 0 {
                b"Bearer ".to_vec()
            } else {
                b"jwt.".to_vec()
            };
            value.extend_from_slice(&bytes);
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                map.append(name, value);
            }
        }
        let _ = extract_token(&map, &uri("/ws?token=%e2%82"), &config);
        let _ = select_subprotocol(&map, ["wsctx.v1"]);
    }
}

#[test]
fn query_context_reads_fields_but_never_the_user_id() {
    let builder = query_context(&uri(
        "/ws?thread_id=thread%20one&run_id=run+2&request_id=req_3&client_id=tab-4&user_id=mallory&foo=bar",
    ))
    .unwrap();
    let ctx = builder
        .user_id("alice-8f14")
        .build()
        .validate(&Policy::default(), &UuidGenerator::new())
        .unwrap()
        .bind(None, &UuidGenerator::new())
        .unwrap();
    assert_eq!(ctx.user_id().as_str(), "alice-8f14");
    assert_eq!(ctx.thread_id().as_str(), "thread one");
    assert_eq!(ctx.run_id().as_str(), "run 2");
    assert_eq!(ctx.request_id().as_str(), "req_3");
    assert_eq!(ctx.websocket_client_id().as_str(), "tab-4");

    // Without a user id from a token, the query cannot make a valid context.
    let error = query_context(&uri("/ws?user_id=mallory"))
        .unwrap()
        .build()
        .validate(&Policy::default(), &UuidGenerator::new())
        .unwrap_err();
    assert!(reports(&error, Field::UserId, FieldErrorKind::Missing));
}

#[test]
fn malformed_or_repeated_query_fields_are_invalid_context() {
    for (query, field) in [
        ("/ws?thread_id=%ZZ", Field::ThreadId),
        ("/ws?run_id=%C3%28", Field::RunId),
        ("/ws?request_id=a&request_id=b", Field::RequestId),
        ("/ws?client_id=%", Field::WebSocketClientId),
    ] {
        let rejection = query_context(&uri(query)).unwrap_err();
        assert_eq!(rejection.code(), ErrorCode::InvalidContext, "{query}");
        assert!(
            rejection
                .detail()
                .unwrap()
                .contains(field, FieldErrorKind::WrongType)
        );
    }
}

#[test]
fn subprotocol_selection_never_echoes_the_token_entry() {
    let map = headers(&[(
        header::SEC_WEBSOCKET_PROTOCOL,
        &format!("{}, wsctx.v1, other", protocol_entry("t")),
    )]);
    assert_eq!(
        select_subprotocol(&map, ["wsctx.v2", "wsctx.v1"]).unwrap(),
        "wsctx.v1"
    );
    assert_eq!(select_subprotocol(&map, ["none"]), None);
    let entry = protocol_entry("t");
    assert_eq!(select_subprotocol(&map, [entry.as_str()]), None);
    assert_eq!(select_subprotocol(&HeaderMap::new(), ["wsctx.v1"]), None);
}

#[test]
fn http_rendering_follows_the_table() {
    for code in ErrorCode::ALL {
        let rejection = Rejection::new(code);
        let response = rejection.to_http_response();
        let expected = code.http_status().unwrap_or(500);
        assert_eq!(response.status().as_u16(), expected, "{code}");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["code"], code.as_str());
        assert_eq!(body["retry"], code.retry().as_str());
        assert_eq!(response.body(), &rejection.error_frame());
        assert_eq!(
            response.headers().contains_key(header::WWW_AUTHENTICATE),
            expected == 401
        );
        if matches!(expected, 429 | 503) {
            let secs: u64 = response.headers()[header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(secs >= 1);
        }
    }
    let response = Rejection::new(ErrorCode::Overloaded)
        .with_retry_after(Duration::from_millis(1500))
        .to_http_response();
    assert_eq!(response.headers()[header::RETRY_AFTER], "2");
}

struct Verifier(Result<&'static str, fn() -> AuthError>, Duration);

impl TokenVerifier for Verifier {
    async fn verify(&self, _token: &Token) -> Result<AuthenticatedUser, AuthError> {
        tokio::time::sleep(self.1).await;
        match self.0 {
            Ok(subject) => AuthenticatedUser::from_subject(Some(subject)),
            Err(make) => Err(make()),
        }
    }
}

async fn authenticate(
    verifier: Verifier,
    query: &str,
) -> Result<wsctx::Context<wsctx::state::Validated>, Rejection> {
    let handshake = Handshake::builder(verifier)
        .verify_timeout(Duration::from_millis(200))
        .build();
    let map = headers(&[(header::AUTHORIZATION, "Bearer some.token.value")]);
    handshake.authenticate(&map, &uri(query)).await
}

/// The code `verifier`'s handshake refuses the request for `query` with.
async fn refused(verifier: Verifier, query: &str) -> ErrorCode {
    authenticate(verifier, query).await.unwrap_err().code()
}

#[tokio::test]
async fn handshake_maps_each_step_to_its_code() {
    let ok = |s| Verifier(Ok(s), Duration::ZERO);
    assert_eq!(
        authenticate(ok("user-8f14"), "/ws")
            .await
            .unwrap()
            .user_id()
            .as_str(),
        "user-8f14"
    );
    assert_eq!(refused(ok("   "), "/ws").await, ErrorCode::MissingUserId);
    assert_eq!(
        refused(ok(" null "), "/ws").await,
        ErrorCode::InvalidContext
    );
    assert_eq!(refused(ok("test"), "/ws").await, ErrorCode::InvalidContext);
    assert_eq!(
        refused(ok("a\u{202E}b"), "/ws").await,
        ErrorCode::InvalidContext
    );
    assert_eq!(
        refused(ok("user-8f14"), "/ws?thread_id=null").await,
        ErrorCode::InvalidContext
    );
    let fail = |f| Verifier(Err(f), Duration::ZERO);
    assert_eq!(
        refused(fail(|| AuthError::Expired), "/ws").await,
        ErrorCode::TokenExpired
    );
    assert_eq!(
        refused(fail(|| AuthError::unavailable("idp down")), "/ws").await,
        ErrorCode::AuthUnavailable
    );
    // Bad credential wins over a bad context: nothing about the context leaks.
    assert_eq!(
        refused(fail(|| AuthError::ValidationFailed), "/ws?thread_id=%ZZ").await,
        ErrorCode::ValidationFailed
    );
}

#[tokio::test]
async fn a_slow_verifier_times_out_as_auth_unavailable() {
    let slow = Verifier(Ok("user-8f14"), Duration::from_secs(30));
    let started = std::time::Instant::now();
    let rejection = authenticate(slow, "/ws").await.unwrap_err();
    assert_eq!(rejection.code(), ErrorCode::AuthUnavailable);
    assert_eq!(rejection.http_status(), Some(503));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn token_and_errors_never_print_the_secret() {
    let map = headers(&[(header::AUTHORIZATION, "Bearer s3cr3t-t0ken")]);
    let (token, _) = extract_token(&map, &uri("/ws"), &ExtractConfig::default()).unwrap();
    assert!(!format!("{token:?}").contains("s3cr3t"));
    let map = headers(&[(header::AUTHORIZATION, "Bearer s3cr3t t0ken")]);
    let error = extract_token(&map, &uri("/ws"), &ExtractConfig::default()).unwrap_err();
    let mut rendered = format!("{error} {error:?}");
    rendered.push_str(&Rejection::from(error).error_frame());
    assert!(!rendered.contains("s3cr3t"));
}
