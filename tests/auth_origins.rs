//! `Origins`: which browser pages may open a socket. `SameOrigin` compares the scheme, the
//! host and the effective port of the `Origin` with the endpoint's.
#![cfg(feature = "http")]
#![allow(clippy::unwrap_used, reason = "a test fails loudly on the unexpected")]

use http::{HeaderMap, HeaderValue, header};
use wsctx::http::Origins;

fn request(host: Option<&str>, origin: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(host) = host {
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
    }
    if let Some(origin) = origin {
        headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
    }
    headers
}

fn allows(origins: &Origins, host: &str, origin: &str) -> bool {
    origins.allows(&request(Some(host), Some(origin)))
}

const TLS: Origins = Origins::SameOrigin { tls: true };
const PLAIN: Origins = Origins::SameOrigin { tls: false };

#[test]
fn a_tls_endpoint_refuses_insecure_pages_of_the_same_host() {
    // The defect: `chat.example` served over wss accepted `http://chat.example`.
    assert!(!allows(&TLS, "chat.example", "http://chat.example"));
    assert!(!allows(&TLS, "chat.example:443", "http://chat.example:443"));
    assert!(!allows(
        &TLS,
        "chat.example:8443",
        "http://chat.example:8443"
    ));
    assert!(allows(&TLS, "chat.example", "https://chat.example"));
    // And a plain endpoint refuses TLS pages: they are another origin too.
    assert!(!allows(&PLAIN, "chat.example", "https://chat.example"));
    assert!(allows(&PLAIN, "chat.example", "http://chat.example"));
}

#[test]
fn effective_ports_are_compared() {
    // Default ports, written or not: https/wss 443, http/ws 80.
    assert!(allows(&TLS, "chat.example", "https://chat.example:443"));
    assert!(allows(&TLS, "chat.example:443", "https://chat.example"));
    assert!(allows(&PLAIN, "chat.example", "http://chat.example:80"));
    assert!(allows(&PLAIN, "chat.example:80", "http://chat.example"));
    // Explicit ports must match.
    assert!(allows(
        &TLS,
        "chat.example:8443",
        "https://chat.example:8443"
    ));
    assert!(allows(&PLAIN, "127.0.0.1:8080", "http://127.0.0.1:8080"));
    assert!(!allows(&TLS, "chat.example:8443", "https://chat.example"));
    assert!(!allows(&TLS, "chat.example", "https://chat.example:8443"));
    assert!(!allows(
        &PLAIN,
        "chat.example:8080",
        "http://chat.example:8081"
    ));
    // 80 is not the default of https, 443 not that of http.
    assert!(!allows(&TLS, "chat.example:80", "https://chat.example"));
    assert!(!allows(&PLAIN, "chat.example:443", "http://chat.example"));
}

#[test]
fn hosts_are_compared_ignoring_ascii_case_only() {
    assert!(allows(&TLS, "Chat.Example", "HTTPS://chat.EXAMPLE"));
    assert!(!allows(&TLS, "chat.example", "https://evil.example"));
    assert!(!allows(
        &TLS,
        "chat.example",
        "https://chat.example.evil.example"
    ));
    assert!(!allows(&TLS, "chat.example", "https://evilchat.example"));
    assert!(!allows(&TLS, "chat.example", "https://chat.example."));
    assert!(allows(&PLAIN, "[::1]:8080", "http://[::1]:8080"));
    assert!(allows(&PLAIN, "[::1]", "http://[::1]:80"));
    assert!(!allows(&PLAIN, "[::1]:8080", "http://[::2]:8080"));
}

#[test]
fn anything_but_scheme_host_and_port_is_refused() {
    for origin in [
        "null",
        "chat.example",
        "https://",
        "https://chat.example/",
        "https://chat.example/path",
        "https://chat.example?q",
        "https://chat.example#f",
        "https://user@chat.example",
        "https://user:pass@chat.example",
        "https://chat.example:",
        "https://chat.example:443:443",
        "https://chat.example:65536",
        "https://chat.example:-1",
        "https://chat.example:+443",
        "https://chat.example:000443",
        "https://chat .example",
        "https://[::1",
        "https://[::1]x",
        "wss://chat.example",
        "ws://chat.example",
        "file://chat.example",
    ] {
        assert!(!allows(&TLS, "chat.example", origin), "{origin}");
    }
    // A malformed Host header refuses any Origin.
    for host in [
        "",
        "chat.example:",
        "chat.example:x",
        "user@chat.example",
        "a b",
    ] {
        assert!(
            !TLS.allows(&request(Some(host), Some("https://chat.example"))),
            "{host:?}"
        );
    }
    // No Host header: refused when an Origin is present.
    assert!(!TLS.allows(&request(None, Some("https://chat.example"))));
}

#[test]
fn requests_without_an_origin_are_not_browser_requests() {
    assert!(TLS.allows(&request(Some("chat.example"), None)));
    assert!(TLS.allows(&request(None, None)));
    // Two Origin headers are ambiguous.
    let mut headers = request(Some("chat.example"), Some("https://chat.example"));
    headers.append(
        header::ORIGIN,
        HeaderValue::from_static("https://chat.example"),
    );
    assert!(!TLS.allows(&headers));
    assert!(Origins::Any.allows(&headers));
}

#[test]
fn listed_origins_are_compared_whole() {
    let list = Origins::list(["https://app.example/", "http://localhost:3000"]);
    assert!(allows(&list, "api.example", "https://app.example"));
    assert!(allows(&list, "api.example", "HTTPS://APP.EXAMPLE"));
    assert!(allows(&list, "api.example", "http://localhost:3000"));
    assert!(!allows(&list, "api.example", "http://app.example"));
    assert!(!allows(&list, "api.example", "http://localhost:3001"));
}
