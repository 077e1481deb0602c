//! The key set source of the example server's `--jwks-url` (also used by
//! `tests/auth_jwks.rs`): one HTTP/1.1 GET with hyper's client connection, which is already
//! in the dependency tree through axum. Plain `http://` only; for an identity provider's
//! `https://` URL, plug an HTTPS client (reqwest, hyper-rustls) into
//! `JwksVerifier::builder` the same way.

#![allow(
    dead_code,
    reason = "shared by the example binary and the JWKS tests, which each use a part"
)]

use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use wsctx::jwks::{JwksError, JwksVerifier, KeySetSummary};
use wsctx::jwt::JwtVerifier;
use wsctx::jwt::jsonwebtoken::jwk::JwkSet;
use wsctx::{AuthError, AuthenticatedUser, BoxError, Token, TokenVerifier};

/// The largest key set accepted, in bytes.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Fetches the JWK set at `url` (`http://host[:port]/path`). Any status but 200, a body
/// over [`MAX_JWKS_BYTES`] or a body that is not a JWK set is an error.
pub(crate) async fn fetch_jwks(url: Uri) -> Result<JwkSet, BoxError> {
    if url.scheme_str() != Some("http") {
        return Err("the key set URL must start with http://".into());
    }
    let authority = url
        .authority()
        .ok_or("the key set URL has no host")?
        .clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let stream = TcpStream::connect((host, authority.port_u16().unwrap_or(80))).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let path = url.path_and_query().map_or("/", |path| path.as_str());
    let request = Request::get(path)
        .header(header::HOST, authority.as_str())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    if response.status() != StatusCode::OK {
        return Err(format!("the key set URL answered {}", response.status()).into());
    }
    let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await?
        .to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

/// A verifier over the key set at `url`, loaded before it is returned so that the server
/// does not start with a source it cannot reach; also what the set holds.
pub(crate) async fn verifier(
    url: Uri,
    audience: &str,
    issuer: &str,
) -> Result<(JwksVerifier, KeySetSummary), JwksError> {
    let verifier = JwksVerifier::builder(move || fetch_jwks(url.clone()))
        .audience([audience])
        .issuer([issuer])
        .min_refetch_interval(Duration::from_secs(30))
        .build();
    let summary = verifier.refresh().await?;
    Ok((verifier, summary))
}

/// The example server's verifier: the shared secret or the key set.
pub(crate) enum Verifier {
    Secret(Box<JwtVerifier>),
    KeySet(JwksVerifier),
}

impl TokenVerifier for Verifier {
    async fn verify(&self, token: &Token) -> Result<AuthenticatedUser, AuthError> {
        match self {
            Self::Secret(verifier) => verifier.verify(token).await,
            Self::KeySet(verifier) => verifier.verify(token).await,
        }
    }
}
