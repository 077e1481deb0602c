//! The wsctx example server: JWT-authenticated WebSocket connections where every text frame a socket
//! sends reaches all the sockets of the same user, and nobody else.
//!
//! ```text
//! cargo run --example server --features axum,jwt -- [--addr 127.0.0.1:8080] [--max-per-user 5]
//! cargo run --example server --features axum,jwt -- --mint-token <sub>   # needs WSCTX_JWT_SECRET
//! cargo run --example server --features axum,jwt -- --jwks-url http://127.0.0.1:9000/jwks.json
//! cargo run --example server --features redis -- --redis redis://127.0.0.1:6379   # one node of a cluster
//! ```
//!
//! - `GET /ws`: refuses a bad handshake with the HTTP status of the rejection table.
//! - `GET /ws/browser`: upgrades, then refuses with an error frame and the close code.
//! - `GET /`: a page that connects with the token in the subprotocol.
//! - `POST /runs` (bearer token): a simulated agent run on a child context of the user's
//!   request; over a few seconds it reports `agent_started`, `agent_thinking`,
//!   `tool_executing`, `tool_completed` and `agent_completed` to every tab of that user.
//! - `POST /signout` (bearer token): closes every tab of that user (on every node in
//!   cluster mode) with 4401 `signed_out`.
//! - `GET /healthz`, `GET /metrics` (Prometheus text from `metrics-exporter-prometheus`: the
//!   names of `wsctx::metrics::Metric`; labels are error codes, never user ids).
//! - `POST /demo/token` (**demo only**): a fresh token for the user of the bearer token
//!   presented, so that the page can show a live refresh; a real deployment gets fresh
//!   tokens from its identity provider.
//!
//! Every socket first gets `{"type":"welcome",…}`, then its position in the user's event
//! stream (`{"type":"position","epoch":…,"seq":…}`). A socket that connects with
//! `?resume=<epoch>.<seq>` gets the events it missed and `{"type":"resumed","missed":n}`
//! instead, or `{"type":"resume_gap"}` when they are gone.
//!
//! A socket lives no longer than its token: at `exp` it gets the TOKEN_EXPIRED error frame
//! and close 4401, unless the client sent `{"type":"refresh","token":…}` with a newer
//! token of the same user first (answered `{"type":"refreshed","expires_at":…}`). Request
//! heads must arrive within 10 seconds; the server pings every 25 seconds.
//!
//! The HS256 secret comes from `WSCTX_JWT_SECRET` (at least 32 bytes); without it a
//! random one is generated and a ready demo token is printed. Tokens must name audience
//! `wsctx` and issuer `wsctx-demo`. With `--jwks-url` the server verifies RS256, ES256 and
//! `EdDSA` tokens with the keys of the JWK set at that URL instead (chosen by the token's
//! `kid`, refetched for an unknown `kid` at most every 30 s); it loads the set at start-up
//! and exits if it cannot. Ctrl-C or SIGTERM closes every socket with 1012.
//!
//! With `--redis <url>` (or `WSCTX_REDIS_URL`; feature `redis`) the server is one node of a
//! cluster on that Redis: the per-user limit and duplicate client ids count every node,
//! chat messages, run events and disconnects reach the user's tabs on every node, and a
//! tab resumes on any node. Keys and channels carry a keyed hash of the user id, under
//! `WSCTX_HASHING_KEY` (at least 32 bytes, the same on every node; the JWT secret when
//! unset). `/healthz` says `degraded` while the node cannot reach Redis.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program"
)]

mod app;
mod jwks;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// How long printed demo tokens stay valid.
const DEMO_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long the tokens `POST /demo/token` hands the page stay valid.
const REFRESHED_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

struct Args {
    addr: SocketAddr,
    max_per_user: usize,
    mint: Option<String>,
    jwks_url: Option<http::Uri>,
    redis: Option<String>,
}

const USAGE: &str =
    "usage: server [--addr HOST:PORT] [--max-per-user N] [--mint-token SUB] [--jwks-url URL]
  --addr          listen address (default 127.0.0.1:8080, or WSCTX_ADDR)
  --max-per-user  sockets one user may hold (default 5)
  --mint-token    print a token for SUB signed with WSCTX_JWT_SECRET, then exit
  --jwks-url      verify tokens with the JWK set at this http:// URL instead of the secret
  --redis         run as one node of a cluster on this Redis (feature redis)
environment: WSCTX_JWT_SECRET (HS256 secret, at least 32 bytes), WSCTX_ADDR,
  WSCTX_REDIS_URL (as --redis), WSCTX_HASHING_KEY (cluster key hashing, at least 32 bytes)";

fn parse_args() -> Result<Args, String> {
    let mut addr = std::env::var("WSCTX_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let mut max_per_user = 5;
    let mut mint = None;
    let mut jwks_url = None;
    let mut redis = std::env::var("WSCTX_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => addr = value("--addr")?,
            "--max-per-user" => {
                max_per_user = value("--max-per-user")?
                    .parse()
                    .map_err(|_| "--max-per-user needs a positive integer".to_owned())?;
            }
            "--mint-token" => mint = Some(value("--mint-token")?),
            "--jwks-url" => {
                let url = value("--jwks-url")?;
                jwks_url = Some(url.parse().map_err(|_| format!("not a URL: {url:?}"))?);
            }
            "--redis" => redis = Some(value("--redis")?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if max_per_user == 0 {
        return Err("--max-per-user needs a positive integer".to_owned());
    }
    let addr = addr
        .parse()
        .map_err(|_| format!("not a socket address: {addr:?}"))?;
    if mint.is_some() && jwks_url.is_some() {
        return Err(
            "--mint-token signs with the secret; it cannot be used with --jwks-url".to_owned(),
        );
    }
    Ok(Args {
        addr,
        max_per_user,
        mint,
        jwks_url,
        redis,
    })
}

/// Cluster mode's connection, when `--redis` (or `WSCTX_REDIS_URL`) names a Redis.
#[cfg(feature = "redis")]
async fn cluster(
    url: Option<&str>,
    secret: &[u8],
) -> Result<Option<wsctx::cluster::Backplane>, String> {
    match url {
        Some(url) => backplane(url, secret).await.map(Some),
        None => Ok(None),
    }
}

/// Without the feature `redis` there is no cluster mode.
#[cfg(not(feature = "redis"))]
#[allow(clippy::unused_async, reason = "the same call as with the feature")]
async fn cluster(url: Option<&str>, _secret: &[u8]) -> Result<Option<()>, String> {
    match url {
        Some(_) => Err("this build has no cluster mode: run it with --features redis".to_owned()),
        None => Ok(None),
    }
}

/// Connects to the cluster's Redis (feature `redis`), hashing keys under
/// `WSCTX_HASHING_KEY`, else under `fallback_key` (the JWT secret).
#[cfg(feature = "redis")]
async fn backplane(url: &str, fallback_key: &[u8]) -> Result<wsctx::cluster::Backplane, String> {
    use wsctx::cluster::{Backplane, ClusterConfig, HashingKey};
    let key = match std::env::var("WSCTX_HASHING_KEY") {
        Ok(key) => HashingKey::new(key),
        Err(_) if !fallback_key.is_empty() => HashingKey::new(fallback_key),
        Err(_) => return Err("--redis with --jwks-url needs WSCTX_HASHING_KEY".to_owned()),
    }
    .map_err(|error| format!("WSCTX_HASHING_KEY: {error}"))?;
    let config = ClusterConfig::builder(url, key)
        .build()
        .map_err(|error| format!("--redis: {error}"))?;
    Backplane::connect(config)
        .await
        .map_err(|error| format!("cannot reach the redis backplane: {error}"))
}

/// The secret from `WSCTX_JWT_SECRET`, or a fresh random one (`true` when generated).
fn secret() -> Result<(Vec<u8>, bool), String> {
    match std::env::var("WSCTX_JWT_SECRET") {
        Ok(secret) if secret.len() >= wsctx::jwt::MIN_HS256_SECRET_BYTES => {
            Ok((secret.into_bytes(), false))
        }
        Ok(_) => Err("WSCTX_JWT_SECRET must be at least 32 bytes".to_owned()),
        Err(_) => {
            // 244 random bits from two v4 UUIDs, as 64 hex characters.
            let random = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            Ok((random.into_bytes(), true))
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    eprintln!("shutting down: closing every socket with 1012");
}

/// Loads the key set at `url`, warning about each key it refuses; an exit code when the
/// set cannot be loaded.
async fn load_key_set(url: &http::Uri) -> Result<wsctx::jwks::JwksVerifier, ExitCode> {
    match jwks::verifier(url.clone(), app::AUDIENCE, app::ISSUER).await {
        Ok((verifier, summary)) => {
            for refused in summary.refused() {
                let kid = refused.kid().unwrap_or("(no kid)");
                eprintln!(
                    "warning: key {kid:?} of the set is not used: {}",
                    refused.error()
                );
            }
            Ok(verifier)
        }
        Err(error) => {
            eprintln!("error: cannot load the key set: {error}");
            Err(ExitCode::from(2))
        }
    }
}

/// What the server prints when it starts: where it listens, and how to get in.
fn print_start(addr: SocketAddr, args: &Args, secret: &[u8], generated: bool) {
    println!("wsctx example server listening on http://{addr}");
    if let Some(url) = &args.redis {
        // The address without its password.
        let host = url.rsplit('@').next().unwrap_or(url);
        println!("cluster mode: one node of the cluster on {host}");
    }
    if generated {
        match app::mint_token(secret, "user-alice-7f3a", DEMO_TOKEN_TTL) {
            Ok(token) => {
                println!("WSCTX_JWT_SECRET is not set: generated a random secret for this run.");
                println!("demo token (sub user-alice-7f3a, valid 24 h):\n  {token}");
                println!("connect:\n  websocat -H 'Authorization: Bearer {token}' ws://{addr}/ws");
                println!("browser:\n  http://{addr}/#token={token}");
                println!(
                    "start a run:\n  curl -X POST -H 'Authorization: Bearer {token}' http://{addr}/runs"
                );
            }
            Err(error) => eprintln!("warning: could not mint a demo token: {error}"),
        }
    } else if let Some(url) = &args.jwks_url {
        println!("verifying tokens with the key set at {url}");
    } else {
        println!(
            "mint a token: cargo run --example server --features axum,jwt -- --mint-token <sub>"
        );
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let key_set = match &args.jwks_url {
        Some(url) => match load_key_set(url).await {
            Ok(verifier) => Some(verifier),
            Err(code) => return code,
        },
        None => None,
    };
    let (secret, generated) = match (&key_set, secret()) {
        (Some(_), _) => (Vec::new(), false),
        (None, Ok(secret)) => secret,
        (None, Err(message)) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };

    if let Some(sub) = args.mint {
        if generated {
            eprintln!("error: --mint-token needs WSCTX_JWT_SECRET (the server's secret)");
            return ExitCode::from(2);
        }
        return match app::mint_token(&secret, &sub, DEMO_TOKEN_TTL) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        };
    }

    let verifier = match (key_set, app::verifier(&secret)) {
        (Some(key_set), _) => jwks::Verifier::KeySet(key_set),
        (None, Ok(verifier)) => jwks::Verifier::Secret(Box::new(verifier)),
        (None, Err(error)) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    let backplane = match cluster(args.redis.as_deref(), &secret).await {
        Ok(backplane) => backplane,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let options = app::Options {
        #[cfg(feature = "redis")]
        backplane,
        limits: wsctx::Limits {
            per_user: args.max_per_user,
            ..wsctx::Limits::default()
        },
        // Demo tokens are signed with the shared secret; with a key set there is none.
        demo_tokens: (args.jwks_url.is_none()).then(|| app::DemoTokens {
            secret: secret.clone(),
            ttl: REFRESHED_TOKEN_TTL,
        }),
        ..app::Options::default()
    };
    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(args.addr);
    print_start(addr, &args, &secret, generated);

    let app = app::app(verifier, &options);
    if let Err(error) = app::serve(listener, app, shutdown_signal()).await {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    println!("stopped");
    ExitCode::SUCCESS
}
