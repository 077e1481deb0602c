//! The `token_extraction` check (wsctx feature `http`). Kept apart from `checks.rs`
//! because `tests/fuzz_seeds.rs` compiles that file with only `serde` enabled.
//!
//! Input layout: byte 0 chooses the configuration (bit 0: query token allowed); the rest,
//! split on `\n`, is a request target (first line) followed by `name: value` header lines.
//! Lines that do not form a valid URI, header name or header value are skipped, as an
//! HTTP parser would have refused them before wsctx sees them.

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use wsctx::TokenSource;
use wsctx::http::{ExtractConfig, extract_token};

/// Splits fuzz input into (query allowed, request target, headers).
fn parse(data: &[u8]) -> (bool, Uri, HeaderMap) {
    let (flags, rest) = data.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
    let mut lines = rest.split(|&b| b == b'\n');
    let uri = lines
        .next()
        .and_then(|line| Uri::try_from(line).ok())
        .unwrap_or_else(|| Uri::from_static("/ws"));
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    (flags & 1 == 1, uri, headers)
}

/// Percent-decodes `s` (lossy; `+` is left as is).
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && i + 2 < s.len()
            && let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// No panic; a returned token is present in the input (as is, base64url-encoded for the
/// subprotocol, or percent-decoded for the query); the query is never read unless
/// enabled.
///
/// # Panics
///
/// When one of those properties does not hold: that is the finding.
pub fn token_extraction(data: &[u8]) {
    let (query_allowed, uri, headers) = parse(data);
    let config = ExtractConfig::default().allow_query_token(query_allowed);
    let result = extract_token(&headers, &uri, &config);

    if let Ok((token, source)) = &result {
        let secret = token.expose_secret().as_bytes();
        assert!(!secret.is_empty(), "an empty token was returned");
        assert!(
            secret.len() <= config.max_token_len(),
            "a token over the size limit"
        );
        let present = match source {
            TokenSource::AuthorizationHeader => contains(data, secret),
            TokenSource::Subprotocol => {
                let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
                contains(data, encoded.as_bytes()) || contains(data, secret)
            }
            TokenSource::QueryParameter => {
                assert!(query_allowed, "the query was read while disabled");
                contains(&percent_decode(data), secret) || contains(data, secret)
            }
            _ => false,
        };
        assert!(present, "the token {source:?} returned is not in the input");
    }

    if !query_allowed {
        // Without the query: the same answer as for the path alone.
        let path_only = Uri::try_from(uri.path()).unwrap_or_else(|_| Uri::from_static("/"));
        let without_query = extract_token(&headers, &path_only, &config);
        assert_eq!(
            result
                .as_ref()
                .map(|(t, s)| (t.expose_secret().to_owned(), *s))
                .map_err(ToString::to_string),
            without_query
                .as_ref()
                .map(|(t, s)| (t.expose_secret().to_owned(), *s))
                .map_err(ToString::to_string),
            "the query changed the outcome while disabled"
        );
    }
}
