//! Handshake authentication and rejection rendering on `http` types (feature `http`).
//!
//! Works with anything built on the `http` crate: tokio-tungstenite's handshake callback,
//! hyper, and axum (the `axum` feature adds the extractor in `wsctx::axum`).
//!
//! - [`extract_token`] finds the client's credential, in this order: the
//!   `Authorization: Bearer <token>` header (scheme compared case-insensitively), a
//!   `Sec-WebSocket-Protocol` entry `jwt.<base64url(token)>`, and the `token` query
//!   parameter, the last only when [`ExtractConfig::allow_query_token`] is set.
//! - [`query_context`] reads the raw context fields a client may send in the query
//!   (`thread_id`, `run_id`, `request_id`, `client_id`); never the user id.
//! - [`query_resume`] reads `resume=<epoch>.<seq>`, where a reconnecting client left off
//!   in its user's event stream.
//! - [`Handshake`] runs extraction, verification (with a timeout) and validation, and
//!   selects the subprotocol to answer with (never the `jwt.` entry).
//! - [`Rejection::to_http_response`] renders a refusal before the upgrade.
//!
//! Nothing here panics on any header or URI bytes, and no error, response body or
//! `Debug` output contains a token.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ::http::header::{self, HeaderMap, HeaderValue};
use ::http::{Response, StatusCode, Uri};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::auth::{AuthError, AuthenticatedUser, Token, TokenSource, TokenVerifier};
use crate::context::{Context, ContextBuilder};
use crate::error::{Field, FieldError, FieldErrorKind, ValidationError};
use crate::generate::{IdGenerator, UuidGenerator};
use crate::metrics::{ByCode, Metric, describe};
use crate::rejection::{CloseStyle, ErrorCode, Rejection};
use crate::resume::ResumePoint;
use crate::rule::Policy;
use crate::state::{Bound, Validated};
use crate::trace::debug_event;
use tokio::sync::Semaphore;

/// The longest token [`extract_token`] accepts by default, in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The prefix of a `Sec-WebSocket-Protocol` entry that carries a token.
pub const SUBPROTOCOL_TOKEN_PREFIX: &str = "jwt.";

/// How long [`Handshake::verify`] waits for the verifier by default.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many verifications a [`Handshake`] runs at once by default; see
/// [`HandshakeBuilder::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// Where [`extract_token`] may look for a token, and how long a token may be.
///
/// The default reads the `Authorization` header and the subprotocol, never the query
/// (URLs end up in access logs and browser history), and accepts tokens of up to
/// [`DEFAULT_MAX_TOKEN_BYTES`] bytes.
///
/// # Examples
///
/// ```
/// use wsctx::http::ExtractConfig;
///
/// let config = ExtractConfig::default();
/// assert!(!config.query_token_allowed());
///
/// let legacy = ExtractConfig::default().allow_query_token(true).max_token_bytes(4096);
/// assert!(legacy.query_token_allowed());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct ExtractConfig {
    query_token: bool,
    max_token_bytes: usize,
}

impl Default for ExtractConfig {
    fn default() -> Self {
        Self {
            query_token: false,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }
}

impl ExtractConfig {
    /// Whether the `token` query parameter is read (after the header and the
    /// subprotocol). Off by default.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = wsctx::http::ExtractConfig::default().allow_query_token(true);
    /// assert!(config.query_token_allowed());
    /// ```
    pub const fn allow_query_token(mut self, allow: bool) -> Self {
        self.query_token = allow;
        self
    }

    /// The longest token accepted, in bytes; a longer one is INVALID_FORMAT.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = wsctx::http::ExtractConfig::default().max_token_bytes(2048);
    /// assert_eq!(config.max_token_len(), 2048);
    /// ```
    pub const fn max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = max;
        self
    }

    /// Whether the `token` query parameter is read.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!wsctx::http::ExtractConfig::default().query_token_allowed());
    /// ```
    #[must_use]
    pub const fn query_token_allowed(&self) -> bool {
        self.query_token
    }

    /// The longest token accepted, in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::http::ExtractConfig::default().max_token_len(), wsctx::http::DEFAULT_MAX_TOKEN_BYTES);
    /// ```
    #[must_use]
    pub const fn max_token_len(&self) -> usize {
        self.max_token_bytes
    }
}

/// Finds the client's token: the `Authorization: Bearer` header, then a
/// `Sec-WebSocket-Protocol` entry `jwt.<base64url(token)>`, then (only when enabled) the
/// `token` query parameter. The first source that holds a credential wins.
///
/// An `Authorization` header with another scheme (`Basic ...`) is not a credential for
/// this purpose and is skipped.
///
/// # Errors
///
/// [`AuthError::NoToken`] when no source holds a credential; [`AuthError::InvalidFormat`]
/// when the credential found is malformed: an empty bearer token, characters outside the
/// RFC 6750 token alphabet, invalid base64url or UTF-8 in the subprotocol entry, invalid
/// percent-encoding in the query, a second credential in the same source, or more than
/// [`ExtractConfig::max_token_len`] bytes.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, HeaderValue, Uri, header};
/// use wsctx::TokenSource;
/// use wsctx::http::{ExtractConfig, extract_token};
///
/// let mut headers = HeaderMap::new();
/// headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer abc.def.ghi"));
/// let uri = Uri::from_static("/ws");
///
/// let (token, source) = extract_token(&headers, &uri, &ExtractConfig::default())?;
/// assert_eq!(token.expose_secret(), "abc.def.ghi");
/// assert_eq!(source, TokenSource::AuthorizationHeader);
/// # Ok::<(), wsctx::AuthError>(())
/// ```
pub fn extract_token(
    headers: &HeaderMap,
    uri: &Uri,
    config: &ExtractConfig,
) -> Result<(Token, TokenSource), AuthError> {
    if let Some(token) = bearer_token(headers, config)? {
        return Ok((token, TokenSource::AuthorizationHeader));
    }
    if let Some(token) = subprotocol_token(headers, config)? {
        return Ok((token, TokenSource::Subprotocol));
    }
    if config.query_token
        && let Some(token) = query_token(uri, config)?
    {
        return Ok((token, TokenSource::QueryParameter));
    }
    Err(AuthError::NoToken)
}

/// The `b64token` alphabet of RFC 6750 §2.1 (which covers every JWT).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// Checks a credential's length and alphabet and wraps it.
fn checked_token(bytes: &[u8], config: &ExtractConfig) -> Result<Token, AuthError> {
    if bytes.is_empty()
        || bytes.len() > config.max_token_bytes
        || !bytes.iter().copied().all(is_token_byte)
    {
        return Err(AuthError::InvalidFormat);
    }
    // Every byte is ASCII, so this cannot fail; stay total anyway.
    let text = std::str::from_utf8(bytes).map_err(|_| AuthError::InvalidFormat)?;
    Ok(Token::new(text))
}

fn bearer_token(headers: &HeaderMap, config: &ExtractConfig) -> Result<Option<Token>, AuthError> {
    let mut found = None;
    for value in &headers.get_all(header::AUTHORIZATION) {
        let bytes = value.as_bytes().trim_ascii();
        let (scheme, rest) = match bytes.iter().position(|&b| b == b' ' || b == b'\t') {
            Some(at) => (&bytes[..at], &bytes[at..]),
            None => (bytes, &[][..]),
        };
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            continue;
        }
        if found.is_some() {
            return Err(AuthError::InvalidFormat);
        }
        found = Some(checked_token(rest.trim_ascii(), config)?);
    }
    Ok(found)
}

/// The base64url engine for subprotocol tokens: padding optional (browsers refuse `=` in
/// a protocol name, so clients send none).
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The entries of every `Sec-WebSocket-Protocol` header, trimmed, empty ones skipped.
fn protocol_entries(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|entry| !entry.is_empty())
}

fn is_token_entry(entry: &[u8]) -> bool {
    entry.len() >= SUBPROTOCOL_TOKEN_PREFIX.len()
        && entry[..SUBPROTOCOL_TOKEN_PREFIX.len()]
            .eq_ignore_ascii_case(SUBPROTOCOL_TOKEN_PREFIX.as_bytes())
}

fn subprotocol_token(
    headers: &HeaderMap,
    config: &ExtractConfig,
) -> Result<Option<Token>, AuthError> {
    let mut found = None;
    for entry in protocol_entries(headers) {
        if !is_token_entry(entry) {
            continue;
        }
        if found.is_some() {
            return Err(AuthError::InvalidFormat);
        }
        let encoded = &entry[SUBPROTOCOL_TOKEN_PREFIX.len()..];
        // Refuse before decoding anything larger than the limit could produce.
        if encoded.len() > config.max_token_bytes.saturating_mul(4) / 3 + 4 {
            return Err(AuthError::InvalidFormat);
        }
        let decoded = BASE64URL
            .decode(encoded)
            .map_err(|_| AuthError::InvalidFormat)?;
        found = Some(checked_token(&decoded, config)?);
    }
    Ok(found)
}

fn query_token(uri: &Uri, config: &ExtractConfig) -> Result<Option<Token>, AuthError> {
    let mut found = None;
    for (key, value) in query_pairs(uri) {
        if key != b"token" {
            continue;
        }
        if found.is_some() {
            return Err(AuthError::InvalidFormat);
        }
        if value.len() > config.max_token_bytes.saturating_mul(3) {
            return Err(AuthError::InvalidFormat);
        }
        let decoded = percent_decode(value).ok_or(AuthError::InvalidFormat)?;
        found = Some(checked_token(decoded.as_bytes(), config)?);
    }
    Ok(found)
}

/// The raw `key=value` pairs of the URI's query, undecoded. A pair without `=` has an
/// empty value.
fn query_pairs(uri: &Uri) -> impl Iterator<Item = (&[u8], &[u8])> {
    uri.query()
        .unwrap_or_default()
        .as_bytes()
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        })
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a
/// byte. `None` for a malformed escape or bytes that are not UTF-8 (never replaced
/// with U+FFFD: a value is taken exactly or refused).
fn percent_decode(input: &[u8]) -> Option<String> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(input.len());
    let mut bytes = input.iter().copied();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let high = hex(bytes.next()?)?;
                let low = hex(bytes.next()?)?;
                out.push(high << 4 | low);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// Reads the `resume` query parameter: the last event position a reconnecting client
/// saw, `<epoch>.<seq>` (see [`ResumePoint`]). `None` when the parameter is absent.
///
/// # Errors
///
/// INVALID_CONTEXT when the value is not a resume point (an empty value included) or
/// the parameter is given twice. The rejection never contains the value.
///
/// # Examples
///
/// ```
/// use http::Uri;
/// use wsctx::{ErrorCode, ResumePoint};
///
/// let uri = Uri::from_static("/ws?thread_id=t-1&resume=00c0ffee00c0ffee.42");
/// assert_eq!(wsctx::http::query_resume(&uri)?, Some(ResumePoint::new(0x00c0_ffee_00c0_ffee, 42)));
/// assert_eq!(wsctx::http::query_resume(&Uri::from_static("/ws"))?, None);
///
/// let bad = wsctx::http::query_resume(&Uri::from_static("/ws?resume=42")).unwrap_err();
/// assert_eq!(bad.code(), ErrorCode::InvalidContext);
/// assert_eq!(bad.http_status(), Some(400));
/// # Ok::<(), wsctx::Rejection>(())
/// ```
pub fn query_resume(uri: &Uri) -> Result<Option<ResumePoint>, Rejection> {
    let mut values = query_pairs(uri).filter(|(key, _)| *key == b"resume");
    let Some((_, value)) = values.next() else {
        return Ok(None);
    };
    let point = std::str::from_utf8(value)
        .ok()
        .and_then(|text| ResumePoint::parse(text).ok())
        .filter(|_| values.next().is_none());
    if point.is_none() {
        debug_event!(error_code = "INVALID_CONTEXT", "resume point refused");
    }
    point
        .map(Some)
        .ok_or_else(|| Rejection::new(ErrorCode::InvalidContext))
}

/// The fields [`query_context`] reads.
const QUERY_FIELDS: [Field; 4] = [
    Field::ThreadId,
    Field::RunId,
    Field::RequestId,
    Field::WebSocketClientId,
];

/// The query parameter of a field: its wire name, except for the client id, which a
/// client requests as `client_id`.
fn query_parameter(field: Field) -> &'static str {
    match field {
        Field::WebSocketClientId => "client_id",
        field => field.as_str(),
    }
}

/// Reads the raw context fields a client may send in the query: `thread_id`, `run_id`,
/// `request_id` and `client_id` (the requested `websocket_client_id`). Values are
/// percent-decoded (`+` is a space). Other parameters are ignored, **including
/// `user_id`**: the user id comes only from a verified token, so set it on the returned
/// builder from an [`AuthenticatedUser`].
///
/// Nothing is validated here beyond the encoding; [`Context::validate`] applies the rules.
///
/// # Errors
///
/// INVALID_CONTEXT (with [`FieldErrorKind::WrongType`] for each affected field) when a
/// field's value is not valid percent-encoded UTF-8, or when a field is given twice.
///
/// # Examples
///
/// ```
/// use http::Uri;
/// use wsctx::{Policy, UuidGenerator};
///
/// let uri = Uri::from_static("/ws?thread_id=thread%2042&user_id=mallory&run_id=run_1");
/// let ctx = wsctx::http::query_context(&uri)?
///     .user_id("user-from-the-token")
///     .build()
///     .validate(&Policy::default(), &UuidGenerator::new())?;
/// assert_eq!(ctx.thread_id().as_str(), "thread 42");
/// assert_eq!(ctx.user_id().as_str(), "user-from-the-token");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn query_context(uri: &Uri) -> Result<ContextBuilder, Rejection> {
    let mut values: [Option<String>; 4] = Default::default();
    let mut errors = Vec::new();
    for (key, value) in query_pairs(uri) {
        let Some(index) = QUERY_FIELDS
            .iter()
            .position(|field| query_parameter(*field).as_bytes() == key)
        else {
            continue;
        };
        let field = QUERY_FIELDS[index];
        let wrong = FieldError::new(field, FieldErrorKind::WrongType);
        if values[index].is_some() {
            if !errors.contains(&wrong) {
                errors.push(wrong);
            }
            continue;
        }
        match percent_decode(value) {
            Some(decoded) => values[index] = Some(decoded),
            None => errors.push(wrong),
        }
    }
    if let Some(error) = ValidationError::from_errors(errors) {
        debug_event!(error_code = "INVALID_CONTEXT", "query context refused");
        return Err(error.into());
    }
    let [thread_id, run_id, request_id, client_id] = values;
    let mut builder = Context::builder();
    if let Some(v) = thread_id {
        builder = builder.thread_id(v);
    }
    if let Some(v) = run_id {
        builder = builder.run_id(v);
    }
    if let Some(v) = request_id {
        builder = builder.request_id(v);
    }
    if let Some(v) = client_id {
        builder = builder.websocket_client_id(v);
    }
    Ok(builder)
}

/// The subprotocol to answer with: the first of `supported` (in the server's order of
/// preference) that the client offered. A `jwt.` entry is never selected, so a token is
/// never echoed back.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, HeaderValue, header};
///
/// let mut headers = HeaderMap::new();
/// headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("jwt.YWJj, wsctx.v1"));
/// let selected = wsctx::http::select_subprotocol(&headers, ["wsctx.v1"]);
/// assert_eq!(selected, Some(HeaderValue::from_static("wsctx.v1")));
/// assert_eq!(wsctx::http::select_subprotocol(&headers, ["jwt.YWJj"]), None);
/// ```
pub fn select_subprotocol<'a>(
    headers: &HeaderMap,
    supported: impl IntoIterator<Item = &'a str>,
) -> Option<HeaderValue> {
    supported
        .into_iter()
        .filter(|protocol| !is_token_entry(protocol.as_bytes()))
        .find(|protocol| protocol_entries(headers).any(|entry| entry == protocol.as_bytes()))
        .and_then(|protocol| HeaderValue::from_str(protocol).ok())
}

/// Which browser origins may open a socket (the `Origin` header; RFC 6455 §10.2).
/// A refused origin is FORBIDDEN. Requests without an `Origin` header (non-browser
/// clients) are not affected: the check defends against cross-site WebSocket hijacking,
/// it does not authenticate.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, HeaderValue, header};
/// use wsctx::http::Origins;
///
/// // Served over TLS (`wss://chat.example`): only pages of `https://chat.example`.
/// let same = Origins::SameOrigin { tls: true };
/// let mut headers = HeaderMap::new();
/// headers.insert(header::HOST, HeaderValue::from_static("chat.example"));
/// headers.insert(header::ORIGIN, HeaderValue::from_static("https://chat.example"));
/// assert!(same.allows(&headers));
///
/// // An insecure page on the same host is another origin.
/// headers.insert(header::ORIGIN, HeaderValue::from_static("http://chat.example"));
/// assert!(!same.allows(&headers));
///
/// headers.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
/// assert!(!same.allows(&headers));
/// assert!(Origins::Any.allows(&headers));
/// assert!(Origins::list(["https://app.example"]).allows(&HeaderMap::new()));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origins {
    /// Every origin (the default).
    #[default]
    Any,
    /// Only the origin the endpoint itself is served from. `tls` says how browsers reach
    /// the endpoint: `true` for `wss://` (also behind a proxy that terminates TLS),
    /// `false` for `ws://`.
    ///
    /// Exactly what is compared, and all of it must hold:
    ///
    /// - the `Origin` is `scheme://host` or `scheme://host:port`, nothing more (no user
    ///   info, path, query or fragment; `null` is refused);
    /// - its scheme is `https` when `tls` is set and `http` otherwise (ASCII case
    ///   ignored): a page served over plain HTTP is never the same origin as a TLS
    ///   endpoint, even on the same host;
    /// - its host equals the host of the request's `Host` header, ignoring ASCII case
    ///   (an IPv6 address in brackets is compared as written; no other normalization);
    /// - its effective port equals the `Host` header's effective port. The effective port
    ///   is the explicit one, else the default of the scheme: 443 for `https` (and for a
    ///   `Host` without a port when `tls` is set, as for `wss`), 80 for `http` (and for
    ///   `ws`).
    ///
    /// A request without a `Host` header, or with one that is not `host[:port]`, is
    /// refused when it carries an `Origin`.
    SameOrigin {
        /// Whether browsers reach the endpoint over TLS (`wss://`).
        tls: bool,
    },
    /// Only these origins, compared case-insensitively (`https://app.example`); a
    /// trailing `/` of a listed origin is ignored.
    List(Vec<String>),
}

impl Origins {
    /// Only the given origins.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::http::Origins;
    ///
    /// let origins = Origins::list(["https://app.example", "https://admin.example"]);
    /// assert!(matches!(origins, Origins::List(ref list) if list.len() == 2));
    /// ```
    pub fn list<I>(origins: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::List(origins.into_iter().map(Into::into).collect())
    }

    /// Whether a handshake with these headers may proceed. No `Origin` header: allowed.
    /// Several `Origin` headers, or one that is not visible ASCII: refused (unless `Any`).
    ///
    /// # Examples
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, header};
    /// use wsctx::http::Origins;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert(header::ORIGIN, HeaderValue::from_static("https://app.example"));
    /// assert!(Origins::list(["https://app.example"]).allows(&headers));
    /// assert!(!Origins::list(["https://other.example"]).allows(&headers));
    /// ```
    #[must_use]
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        if matches!(self, Self::Any) {
            return true;
        }
        let mut values = headers.get_all(header::ORIGIN).iter();
        let Some(origin) = values.next() else {
            return true;
        };
        if values.next().is_some() {
            return false;
        }
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.trim();
        match self {
            Self::Any => true,
            Self::SameOrigin { tls } => same_origin(origin, headers, *tls),
            Self::List(allowed) => allowed
                .iter()
                .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin)),
        }
    }
}

/// The check of [`Origins::SameOrigin`]; its documentation lists what is compared.
fn same_origin(origin: &str, headers: &HeaderMap, tls: bool) -> bool {
    let (scheme, default_port) = if tls { ("https", 443) } else { ("http", 80) };
    let Some((origin_scheme, origin_authority)) = origin.split_once("://") else {
        return false;
    };
    if !origin_scheme.eq_ignore_ascii_case(scheme) {
        return false;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    match (authority(origin_authority), authority(host.trim())) {
        (Some((origin_host, origin_port)), Some((host, port))) => {
            origin_host.eq_ignore_ascii_case(host)
                && origin_port.unwrap_or(default_port) == port.unwrap_or(default_port)
        }
        _ => false,
    }
}

/// Splits `host[:port]` (the host may be an IPv6 address in brackets). `None` for
/// anything else: an empty host, user info, a path, a query, a fragment, white space, or
/// a port that is empty or not a number up to 65535.
fn authority(text: &str) -> Option<(&str, Option<u16>)> {
    if text.is_empty()
        || text
            .bytes()
            .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\') || b.is_ascii_whitespace())
    {
        return None;
    }
    let (host, port) = if text.starts_with('[') {
        let end = text.find(']')?;
        let (host, rest) = text.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() || (!host.starts_with('[') && host.contains([':', '[', ']'])) {
        return None;
    }
    let port = match port {
        None => None,
        Some(port) if (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit()) => {
            Some(port.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// The seconds of a `Retry-After` header: rounded up, at least 1.
fn retry_after_secs(after: Duration) -> u64 {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    secs.max(1)
}

impl Rejection {
    /// Renders the rejection as an HTTP response, for refusing a handshake before the
    /// upgrade.
    ///
    /// - status: the table's HTTP status (500 for a code that has none, which only
    ///   happens on a live socket and so is a server bug here);
    /// - body: [`Rejection::error_frame`], `Content-Type: application/json`,
    ///   `Cache-Control: no-store`;
    /// - `WWW-Authenticate: Bearer` on 401 (with `error="invalid_token"` when a token was
    ///   presented), `Retry-After` in whole seconds when the table gives one (429, 503).
    ///
    /// The body and headers contain no token, header value, URL or user id. For
    /// tokio-tungstenite's `ErrorResponse`, map the body with `.map(Some)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{ErrorCode, Rejection};
    ///
    /// let response = Rejection::new(ErrorCode::ConnectionLimit).to_http_response();
    /// assert_eq!(response.status(), 429);
    /// assert_eq!(response.headers()["retry-after"], "30");
    /// assert_eq!(response.headers()["content-type"], "application/json");
    /// assert!(response.body().contains(r#""code":"CONNECTION_LIMIT""#));
    ///
    /// let response = Rejection::new(ErrorCode::NoToken).to_http_response();
    /// assert_eq!(response.headers()["www-authenticate"], "Bearer");
    /// ```
    #[must_use]
    pub fn to_http_response(&self) -> Response<String> {
        let status = self
            .http_status()
            .and_then(|status| StatusCode::from_u16(status).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = Response::new(self.error_frame());
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            let challenge = if self.code() == ErrorCode::NoToken {
                HeaderValue::from_static("Bearer")
            } else {
                HeaderValue::from_static(r#"Bearer error="invalid_token""#)
            };
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(after) = self.retry_after() {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(after)),
            );
        }
        response
    }
}

/// An object-safe view of a [`TokenVerifier`], so that [`Handshake`] needs no type
/// parameter.
trait DynVerifier: Send + Sync {
    fn verify_boxed<'a>(
        &'a self,
        token: &'a Token,
    ) -> Pin<Box<dyn Future<Output = Result<AuthenticatedUser, AuthError>> + Send + 'a>>;
}

impl<T: TokenVerifier> DynVerifier for T {
    fn verify_boxed<'a>(
        &'a self,
        token: &'a Token,
    ) -> Pin<Box<dyn Future<Output = Result<AuthenticatedUser, AuthError>> + Send + 'a>> {
        Box::pin(self.verify(token))
    }
}

struct Inner {
    verifier: Box<dyn DynVerifier>,
    ids: Arc<dyn IdGenerator>,
    policy: Policy,
    extract: ExtractConfig,
    verify_timeout: Duration,
    subprotocols: Vec<Cow<'static, str>>,
    close_style: CloseStyle,
    origins: Origins,
    /// Permits for verifications in flight.
    in_flight: Semaphore,
    max_in_flight: usize,
    /// Refusals by error code, on the `metrics` facade (nothing without the feature).
    refusals: ByCode,
}

/// Everything a server needs to admit a handshake: a verifier, the [`Policy`], an
/// [`IdGenerator`], where tokens may come from, the verification timeout, the
/// subprotocols the server speaks and the close-code style. A cheap `Clone` handle.
///
/// [`authenticate`](Self::authenticate) runs the whole check before the upgrade:
/// extract the token, verify it within the timeout, read the raw context from the query,
/// set the user id from the verified subject and validate.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use http::{HeaderMap, HeaderValue, Uri, header};
/// use wsctx::{AuthError, AuthenticatedUser, ErrorCode, Policy, Token, TokenVerifier};
/// use wsctx::http::Handshake;
///
/// struct Opaque;
/// impl TokenVerifier for Opaque {
///     async fn verify(&self, token: &Token) -> Result<AuthenticatedUser, AuthError> {
///         let user = token.expose_secret().strip_prefix("ok-").ok_or(AuthError::ValidationFailed)?;
///         AuthenticatedUser::from_subject(Some(user))
///     }
/// }
///
/// let handshake = Handshake::builder(Opaque)
///     .policy(Policy::default())
///     .verify_timeout(Duration::from_secs(2))
///     .subprotocols(["wsctx.v1"])
///     .build();
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
/// let mut headers = HeaderMap::new();
/// headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer ok-user-8f14"));
/// let ctx = handshake.authenticate(&headers, &Uri::from_static("/ws?thread_id=t-1")).await?;
/// assert_eq!(ctx.user_id().as_str(), "user-8f14");
/// assert_eq!(ctx.thread_id().as_str(), "t-1");
///
/// let refused = handshake.authenticate(&HeaderMap::new(), &Uri::from_static("/ws")).await;
/// assert_eq!(refused.unwrap_err().code(), ErrorCode::NoToken);
/// # Ok::<(), wsctx::Rejection>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Handshake {
    inner: Arc<Inner>,
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("policy", &self.inner.policy)
            .field("extract", &self.inner.extract)
            .field("verify_timeout", &self.inner.verify_timeout)
            .field("subprotocols", &self.inner.subprotocols)
            .field("close_style", &self.inner.close_style)
            .field("origins", &self.inner.origins)
            .field("max_in_flight", &self.inner.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// Starts configuring a handshake around `verifier`.
    ///
    /// Defaults: [`Policy::default`], [`UuidGenerator`], [`ExtractConfig::default`] (no
    /// query token), [`DEFAULT_VERIFY_TIMEOUT`], no subprotocols, [`CloseStyle::Detailed`],
    /// [`Origins::Any`], [`DEFAULT_MAX_IN_FLIGHT`] verifications at once.
    ///
    /// With the `metrics` feature, the handshake takes its handle on
    /// `wsctx_handshake_rejections_total` here, from the recorder in force. Every
    /// refusal of [`authenticate`](Handshake::authenticate), of [`bind`](Handshake::bind)
    /// and of the axum extractor is counted once under its error code; the building
    /// blocks called on their own (`extract_token`, `verify_capped`, `context`) are not.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::future::ready;
    /// use wsctx::{AuthError, verify_fn};
    ///
    /// let deny = verify_fn(|_| ready(Err(AuthError::ValidationFailed)));
    /// let handshake = wsctx::http::Handshake::builder(deny).build();
    /// assert_eq!(handshake.subprotocols().count(), 0);
    /// ```
    pub fn builder(verifier: impl TokenVerifier + 'static) -> HandshakeBuilder {
        HandshakeBuilder {
            inner: Inner {
                verifier: Box::new(verifier),
                ids: Arc::new(UuidGenerator::new()),
                policy: Policy::default(),
                extract: ExtractConfig::default(),
                verify_timeout: DEFAULT_VERIFY_TIMEOUT,
                subprotocols: Vec::new(),
                close_style: CloseStyle::Detailed,
                origins: Origins::Any,
                in_flight: Semaphore::new(DEFAULT_MAX_IN_FLIGHT),
                max_in_flight: DEFAULT_MAX_IN_FLIGHT,
                refusals: {
                    describe();
                    ByCode::register(Metric::HandshakeRejections)
                },
            },
        }
    }

    /// Finds the token (see [`extract_token`]).
    ///
    /// # Errors
    ///
    /// NO_TOKEN or INVALID_FORMAT.
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// use http::{HeaderMap, Uri};
    /// use wsctx::ErrorCode;
    ///
    /// let handshake = wsctx::http::Handshake::builder(verifier).build();
    /// let refused = handshake.extract_token(&HeaderMap::new(), &Uri::from_static("/ws?token=ok-u1"));
    /// assert_eq!(refused.unwrap_err().code(), ErrorCode::NoToken); // the query is off by default
    /// ```
    pub fn extract_token(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<(Token, TokenSource), Rejection> {
        extract_token(headers, uri, &self.inner.extract).map_err(|error| {
            debug_event!(
                error_code = error.code().as_str(),
                "token extraction refused"
            );
            Rejection::from(error)
        })
    }

    /// Verifies `token` with the configured verifier, within the configured timeout.
    ///
    /// # Errors
    ///
    /// The verifier's [`AuthError`], or [`AuthError::TimedOut`] (AUTH_UNAVAILABLE).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime with the time driver enabled (the timeout needs it).
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// use std::time::Duration;
    /// let handshake = wsctx::http::Handshake::builder(verifier).verify_timeout(Duration::from_secs(1)).build();
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
    /// let user = handshake.verify(&wsctx::Token::new("ok-user-8f14")).await?;
    /// assert_eq!(user.user_id().as_str(), "user-8f14");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn verify(&self, token: &Token) -> Result<AuthenticatedUser, AuthError> {
        let timeout = self.inner.verify_timeout;
        match tokio::time::timeout(timeout, self.inner.verifier.verify_boxed(token)).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => Err(AuthError::TimedOut(timeout)),
        }
    }

    /// [`verify`](Self::verify) under the cap of
    /// [`max_in_flight`](HandshakeBuilder::max_in_flight) verifications at once: over it,
    /// OVERLOADED without calling the verifier. [`authenticate`](Self::authenticate) and
    /// the axum adapter's `Session::refresh` verify through it.
    ///
    /// # Errors
    ///
    /// OVERLOADED when the cap is reached; otherwise the verifier's refusal as a
    /// [`Rejection`] (AUTH_UNAVAILABLE on a timeout).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime with the time driver enabled.
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// use wsctx::{ErrorCode, Token};
    ///
    /// let closed = wsctx::http::Handshake::builder(verifier).max_in_flight(0).build();
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
    /// let refused = closed.verify_capped(&Token::new("ok-user-8f14")).await.unwrap_err();
    /// assert_eq!(refused.code(), ErrorCode::Overloaded);
    /// assert_eq!(refused.http_status(), Some(503));
    /// # });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn verify_capped(&self, token: &Token) -> Result<AuthenticatedUser, Rejection> {
        let Ok(_permit) = self.inner.in_flight.try_acquire() else {
            debug_event!(
                error_code = "OVERLOADED",
                "too many verifications in flight"
            );
            return Err(Rejection::new(ErrorCode::Overloaded));
        };
        self.verify(token).await.map_err(|error| {
            debug_event!(error_code = error.code().as_str(), "token refused");
            Rejection::from(error)
        })
    }

    /// Builds the validated context of a verified user: the raw fields from the query
    /// ([`query_context`]), the user id from `user`, validated with the policy and the
    /// id generator.
    ///
    /// # Errors
    ///
    /// INVALID_CONTEXT when a field fails the rules; INTERNAL_ERROR when the id generator
    /// fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// use http::Uri;
    /// use wsctx::AuthenticatedUser;
    ///
    /// let handshake = wsctx::http::Handshake::builder(verifier).build();
    /// let user = AuthenticatedUser::from_subject(Some("user-8f14"))?;
    /// let ctx = handshake.context(&Uri::from_static("/ws?run_id=run-9"), &user)?;
    /// assert_eq!(ctx.run_id().as_str(), "run-9");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn context(
        &self,
        uri: &Uri,
        user: &AuthenticatedUser,
    ) -> Result<Context<Validated>, Rejection> {
        let context = query_context(uri)?
            .user_id(user.user_id().as_str())
            .build()
            .validate(&self.inner.policy, &*self.inner.ids)?;
        Ok(context)
    }

    /// Checks the origin, extracts, verifies and validates: the whole check before the
    /// upgrade.
    ///
    /// Credentials are checked before the context, so a client without a valid token
    /// learns nothing about its other fields.
    ///
    /// # Errors
    ///
    /// A [`Rejection`] with the code of the first failing step: FORBIDDEN (origin), NO_TOKEN,
    /// INVALID_FORMAT, VALIDATION_FAILED, TOKEN_EXPIRED, MISSING_USER_ID, FORBIDDEN,
    /// AUTH_UNAVAILABLE, INVALID_CONTEXT or INTERNAL_ERROR.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime with the time driver enabled.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Context<Validated>, Rejection> {
        Ok(self.authenticate_user(headers, uri).await?.0)
    }

    /// [`authenticate`](Self::authenticate), also returning the verified user (whose
    /// [`expires_at`](AuthenticatedUser::expires_at) the socket runner enforces).
    pub(crate) async fn authenticate_user(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<(Context<Validated>, AuthenticatedUser), Rejection> {
        self.checks(headers, uri).await.map_err(|r| self.refused(r))
    }

    /// Counts a refusal of this handshake (by its code, on the `metrics` facade) and
    /// hands it back. Every refusal of [`authenticate`](Self::authenticate) and
    /// [`bind`](Self::bind) goes through here, and the axum extractor's.
    pub(crate) fn refused(&self, rejection: Rejection) -> Rejection {
        self.inner.refusals.add(rejection.code());
        rejection
    }

    /// The checks of [`authenticate`](Self::authenticate), uncounted.
    async fn checks(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<(Context<Validated>, AuthenticatedUser), Rejection> {
        if !self.inner.origins.allows(headers) {
            debug_event!(error_code = "FORBIDDEN", "origin refused");
            return Err(Rejection::new(ErrorCode::Forbidden));
        }
        let (token, source) = self.extract_token(headers, uri)?;
        debug_event!(token_source = source.as_str(), "token found");
        let _ = source;
        let user = self.verify_capped(&token).await?;
        drop(token);
        Ok((self.context(uri, &user)?, user))
    }

    /// Binds a validated context to a socket, with this handshake's id generator.
    ///
    /// # Errors
    ///
    /// INTERNAL_ERROR when the id generator fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// use http::Uri;
    /// use wsctx::AuthenticatedUser;
    ///
    /// let handshake = wsctx::http::Handshake::builder(verifier).build();
    /// let user = AuthenticatedUser::from_subject(Some("user-8f14"))?;
    /// let ctx = handshake.context(&Uri::from_static("/ws"), &user)?;
    /// let bound = handshake.bind(ctx, Some("127.0.0.1:50000".parse()?))?;
    /// assert!(bound.websocket_client_id().as_str().starts_with("ws_"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(
        &self,
        context: Context<Validated>,
        peer: Option<SocketAddr>,
    ) -> Result<Context<Bound>, Rejection> {
        context
            .bind(peer, &*self.inner.ids)
            .map_err(|error| self.refused(error.into()))
    }

    /// The subprotocol to answer with (see [`select_subprotocol`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// use http::{HeaderMap, HeaderValue, header};
    ///
    /// let handshake = wsctx::http::Handshake::builder(verifier).subprotocols(["wsctx.v1"]).build();
    /// let mut headers = HeaderMap::new();
    /// headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("wsctx.v1, jwt.b2stdTE"));
    /// assert_eq!(handshake.select_subprotocol(&headers).unwrap(), "wsctx.v1");
    /// ```
    #[must_use]
    pub fn select_subprotocol(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        select_subprotocol(headers, self.subprotocols())
    }

    /// The subprotocols this server speaks, in order of preference.
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// let handshake = wsctx::http::Handshake::builder(verifier).subprotocols(["wsctx.v2", "wsctx.v1"]).build();
    /// assert_eq!(handshake.subprotocols().collect::<Vec<_>>(), ["wsctx.v2", "wsctx.v1"]);
    /// ```
    pub fn subprotocols(&self) -> impl Iterator<Item = &str> {
        self.inner.subprotocols.iter().map(AsRef::as_ref)
    }

    /// The policy contexts are validated with.
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// let handshake = wsctx::http::Handshake::builder(verifier).build();
    /// assert_eq!(handshake.policy(), &wsctx::Policy::default());
    /// ```
    #[must_use]
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The id generator contexts are validated and bound with.
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// use wsctx::IdKind;
    ///
    /// let handshake = wsctx::http::Handshake::builder(verifier).build();
    /// assert!(handshake.id_generator().generate(IdKind::Run)?.starts_with("run_"));
    /// # Ok::<(), wsctx::GenerateError>(())
    /// ```
    #[must_use]
    pub fn id_generator(&self) -> &dyn IdGenerator {
        &*self.inner.ids
    }

    /// The close-code style for rejections after the upgrade.
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// let handshake = wsctx::http::Handshake::builder(verifier).build();
    /// assert_eq!(handshake.close_style(), wsctx::CloseStyle::Detailed);
    /// ```
    #[must_use]
    pub fn close_style(&self) -> CloseStyle {
        self.inner.close_style
    }

    /// Where tokens may come from.
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// let handshake = wsctx::http::Handshake::builder(verifier).build();
    /// assert!(!handshake.extract_config().query_token_allowed());
    /// ```
    pub fn extract_config(&self) -> &ExtractConfig {
        &self.inner.extract
    }

    /// Which browser origins may connect.
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// let handshake = wsctx::http::Handshake::builder(verifier).build();
    /// assert_eq!(handshake.origins(), &wsctx::http::Origins::Any);
    /// ```
    #[must_use]
    pub fn origins(&self) -> &Origins {
        &self.inner.origins
    }

    /// How many verifications may run at once; see [`HandshakeBuilder::max_in_flight`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// let handshake = wsctx::http::Handshake::builder(verifier).build();
    /// assert_eq!(handshake.max_in_flight(), wsctx::http::DEFAULT_MAX_IN_FLIGHT);
    /// ```
    #[must_use]
    pub fn max_in_flight(&self) -> usize {
        self.inner.max_in_flight
    }
}

/// Configures a [`Handshake`]; see [`Handshake::builder`].
#[must_use]
pub struct HandshakeBuilder {
    inner: Inner,
}

impl fmt::Debug for HandshakeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeBuilder").finish_non_exhaustive()
    }
}

impl HandshakeBuilder {
    builder_setters! {
        /// The policy contexts are validated with.
        ///
        /// # Examples
        ///
        /// ```
        /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
        /// let numeric_ids = wsctx::Policy::default().allow_word("1");
        /// let handshake = wsctx::http::Handshake::builder(verifier).policy(numeric_ids.clone()).build();
        /// assert_eq!(handshake.policy(), &numeric_ids);
        /// ```
        policy(policy: Policy) => inner.policy;

        /// The id generator for missing thread, run, request and client ids.
        ///
        /// # Examples
        ///
        /// ```
        /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
        /// let handshake = wsctx::http::Handshake::builder(verifier).id_generator(wsctx::SequenceGenerator::new()).build();
        /// # let _ = handshake;
        /// ```
        id_generator(ids: impl IdGenerator + 'static) => inner.ids = Arc::new(ids);

        /// Where tokens may come from.
        ///
        /// # Examples
        ///
        /// ```
        /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
        /// use wsctx::http::ExtractConfig;
        ///
        /// let handshake = wsctx::http::Handshake::builder(verifier)
        ///     .extract(ExtractConfig::default().allow_query_token(true))
        ///     .build();
        /// assert!(handshake.extract_config().query_token_allowed());
        /// ```
        extract(config: ExtractConfig) => inner.extract;

        /// How long to wait for the verifier before answering AUTH_UNAVAILABLE.
        ///
        /// # Examples
        ///
        /// ```
        /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
        /// let handshake = wsctx::http::Handshake::builder(verifier)
        ///     .verify_timeout(std::time::Duration::from_millis(1500))
        ///     .build();
        /// # let _ = handshake;
        /// ```
        verify_timeout(timeout: Duration) => inner.verify_timeout;

        /// Which browser origins may connect; a refused origin is FORBIDDEN.
        ///
        /// # Examples
        ///
        /// ```
        /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
        /// use wsctx::http::Origins;
        ///
        /// let origins = Origins::SameOrigin { tls: true };
        /// let handshake = wsctx::http::Handshake::builder(verifier).origins(origins.clone()).build();
        /// assert_eq!(handshake.origins(), &origins);
        /// ```
        origins(origins: Origins) => inner.origins;

        /// The close-code style for rejections after the upgrade.
        ///
        /// # Examples
        ///
        /// ```
        /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
        /// use wsctx::CloseStyle;
        ///
        /// let handshake = wsctx::http::Handshake::builder(verifier).close_style(CloseStyle::Opaque).build();
        /// assert_eq!(handshake.close_style(), CloseStyle::Opaque);
        /// ```
        close_style(style: CloseStyle) => inner.close_style;
    }

    /// The subprotocols this server speaks, in order of preference. Entries starting with
    /// `jwt.` are dropped: a token entry is never selected, so never echoed.
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// let handshake = wsctx::http::Handshake::builder(verifier).subprotocols(["wsctx.v1", "jwt.x"]).build();
    /// assert_eq!(handshake.subprotocols().collect::<Vec<_>>(), ["wsctx.v1"]);
    /// ```
    pub fn subprotocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        self.inner.subprotocols = protocols
            .into_iter()
            .map(Into::into)
            .filter(|protocol: &Cow<'static, str>| !is_token_entry(protocol.as_bytes()))
            .collect();
        self
    }

    /// How many verifications ([`Handshake::authenticate`], [`Handshake::verify_capped`])
    /// may run at once; one more is refused with OVERLOADED (503 with `Retry-After`, or
    /// 1013 after the upgrade) without reaching the verifier. Default
    /// [`DEFAULT_MAX_IN_FLIGHT`]; 0 refuses every verification.
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// let handshake = wsctx::http::Handshake::builder(verifier).max_in_flight(64).build();
    /// assert_eq!(handshake.max_in_flight(), 64);
    /// ```
    pub fn max_in_flight(mut self, max: usize) -> Self {
        let max = max.min(Semaphore::MAX_PERMITS);
        self.inner.in_flight = Semaphore::new(max);
        self.inner.max_in_flight = max;
        self
    }

    /// Finishes the handshake configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// # let verifier = wsctx::verify_fn(|t: &wsctx::Token| std::future::ready(wsctx::AuthenticatedUser::from_subject(t.expose_secret().strip_prefix("ok-"))));
    /// let handshake = wsctx::http::Handshake::builder(verifier).build();
    /// let copy = handshake.clone(); // a cheap handle
    /// # let _ = copy;
    /// ```
    #[must_use]
    pub fn build(self) -> Handshake {
        Handshake {
            inner: Arc::new(self.inner),
        }
    }
}
