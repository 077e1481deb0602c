//! Load generator: opens N concurrent WebSocket connections over loopback (5 tabs per
//! user by default), sends one message per user between its tabs, and reports handshakes
//! per second, p50/p99 handshake latency, delivery, and the server's memory per socket.
//!
//! ```sh
//! cargo run --release --example loadgen -- --url ws://127.0.0.1:8080/ws \
//!     --connections 10000 --server-pid <pid> --label wsctx
//! ```
//!
//! Tokens are HS256 JWTs minted with `WSCTX_JWT_SECRET` (`--aud`/`--iss` optional). The
//! run is bounded: every phase has a timeout, and it only talks to the given loopback URL.
//!
//! Cluster runs: `--url` takes several URLs separated by commas (the nodes; tab `i` goes
//! to node `i % n`, so one user's tabs spread over the nodes), `--server-pid` several pids
//! (memory is summed), and `--check-limit N` then tries one tab more than
//! `--tabs-per-user` for N users, each on another node than its last tab, and reports
//! how many were refused (HTTP 429 from a limit that counts every node).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a load generator prints"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

struct Options {
    urls: Vec<String>,
    connections: usize,
    tabs_per_user: usize,
    concurrency: usize,
    server_pids: Vec<u32>,
    label: String,
    check_limit: usize,
    aud: Option<String>,
    iss: Option<String>,
    secret: String,
}

fn parse_options() -> Result<Options, Box<dyn std::error::Error>> {
    let mut options = Options {
        urls: vec!["ws://127.0.0.1:8080/ws".to_owned()],
        connections: 10_000,
        tabs_per_user: 5,
        concurrency: 200,
        server_pids: Vec::new(),
        label: "server".to_owned(),
        check_limit: 0,
        aud: None,
        iss: None,
        secret: std::env::var("WSCTX_JWT_SECRET").map_err(|_| "set WSCTX_JWT_SECRET")?,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => options.urls = value()?.split(',').map(str::to_owned).collect(),
            "--connections" => options.connections = value()?.parse()?,
            "--tabs-per-user" => options.tabs_per_user = value()?.parse()?,
            "--concurrency" => options.concurrency = value()?.parse()?,
            "--server-pid" => {
                options.server_pids = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--check-limit" => options.check_limit = value()?.parse()?,
            "--label" => options.label = value()?,
            "--aud" => options.aud = Some(value()?),
            "--iss" => options.iss = Some(value()?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(options)
}

fn mint(options: &Options, sub: &str) -> Result<String, jsonwebtoken::errors::Error> {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    let mut claims = serde_json::json!({ "sub": sub, "exp": exp });
    if let Some(aud) = &options.aud {
        claims["aud"] = aud.as_str().into();
    }
    if let Some(iss) = &options.iss {
        claims["iss"] = iss.as_str().into();
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(options.secret.as_bytes()),
    )
}

/// Resident set size of `pid` in bytes, from /proc.
/// The summed resident memory of `pids` (`None` when one cannot be read, or none given).
fn total_rss(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| rss_bytes(pid)).sum()
}

/// Tries one tab more than `--tabs-per-user` for the first `--check-limit` users, on the
/// node after the one their last tab went to; returns "refused/tried" (or "-").
async fn check_limit(options: &Options, tokens: &[String], users: usize) -> String {
    let tries = options.check_limit.min(users);
    if tries == 0 {
        return "-".to_owned();
    }
    let mut refused = 0;
    let mut extra = Vec::new();
    for (user, token) in tokens.iter().enumerate().take(tries) {
        let last_tab = user * options.tabs_per_user + options.tabs_per_user - 1;
        let url = &options.urls[(last_tab + 1) % options.urls.len()];
        let Ok(mut request) = url.as_str().into_client_request() else {
            continue;
        };
        let Ok(bearer) = format!("Bearer {token}").parse() else {
            continue;
        };
        request.headers_mut().insert("authorization", bearer);
        let attempt = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(request),
        )
        .await;
        match attempt {
            Ok(Err(tungstenite::Error::Http(response))) if response.status().as_u16() == 429 => {
                refused += 1;
            }
            Ok(Ok((socket, _))) => extra.push(socket),
            _ => {}
        }
    }
    drop(extra);
    format!("{refused} / {tries}")
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn raise_fd_limit(wanted: u64) -> u64 {
    match rlimit::Resource::NOFILE.get() {
        Ok((soft, hard)) if soft < wanted => {
            let target = wanted.min(hard);
            let _ = rlimit::Resource::NOFILE.set(target, hard);
            rlimit::Resource::NOFILE.get().map_or(soft, |(s, _)| s)
        }
        Ok((soft, _)) => soft,
        Err(_) => 0,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

struct Tab {
    user: usize,
    outgoing: mpsc::UnboundedSender<Message>,
}

#[tokio::main]
#[allow(clippy::too_many_lines, clippy::cast_precision_loss)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = Arc::new(parse_options()?);
    let fd_limit = raise_fd_limit(options.connections as u64 + 1024);
    if fd_limit < options.connections as u64 + 64 {
        return Err(format!(
            "file-descriptor limit {fd_limit} is too low for {} sockets",
            options.connections
        )
        .into());
    }
    let users = options.connections.div_ceil(options.tabs_per_user);
    let tokens: Vec<String> = (0..users)
        .map(|u| mint(&options, &format!("load-user-{u:06}")))
        .collect::<Result<_, _>>()?;
    let tokens = Arc::new(tokens);

    let rss_before = total_rss(&options.server_pids);
    let welcomes = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicUsize::new(0));
    let misdelivered = Arc::new(AtomicUsize::new(0));
    let permits = Arc::new(Semaphore::new(options.concurrency));
    let started = Instant::now();
    let mut handshakes = Vec::with_capacity(options.connections);
    for i in 0..options.connections {
        let user = i / options.tabs_per_user;
        let (tokens, options, permits) = (
            Arc::clone(&tokens),
            Arc::clone(&options),
            Arc::clone(&permits),
        );
        let (welcomes, delivered, misdelivered) = (
            Arc::clone(&welcomes),
            Arc::clone(&delivered),
            Arc::clone(&misdelivered),
        );
        handshakes.push(tokio::spawn(async move {
            let permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
            let url = &options.urls[i % options.urls.len()];
            let mut request = url
                .as_str()
                .into_client_request()
                .map_err(|e| e.to_string())?;
            let bearer = format!("Bearer {}", tokens[user]);
            request
                .headers_mut()
                .insert("authorization", bearer.parse().map_err(|_| "header")?);
            let t0 = Instant::now();
            let (socket, response) = tokio::time::timeout(
                Duration::from_secs(30),
                tokio_tungstenite::connect_async(request),
            )
            .await
            .map_err(|_| "handshake timed out".to_owned())?
            .map_err(|e| e.to_string())?;
            let latency = t0.elapsed();
            drop(permit);
            if response.status().as_u16() != 101 {
                return Err(format!("status {}", response.status()));
            }
            let (mut sink, mut stream) = socket.split();
            let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
            tokio::spawn(async move {
                while let Some(message) = rx.recv().await {
                    let close = matches!(message, Message::Close(_));
                    if sink.send(message).await.is_err() || close {
                        break;
                    }
                }
            });
            let marker = format!("from-user-{user:06}");
            tokio::spawn(async move {
                while let Some(Ok(message)) = stream.next().await {
                    if let Message::Text(text) = message {
                        if text.contains(r#""type":"welcome""#) {
                            welcomes.fetch_add(1, Ordering::Relaxed);
                        } else if text.contains(r#""type":"message""#) {
                            if text.contains(&marker) {
                                delivered.fetch_add(1, Ordering::Relaxed);
                            } else {
                                misdelivered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            });
            Ok::<_, String>((latency, Tab { user, outgoing: tx }))
        }));
    }
    let mut latencies = Vec::with_capacity(options.connections);
    let mut tabs = Vec::with_capacity(options.connections);
    let mut failures = std::collections::BTreeMap::<String, usize>::new();
    for handle in handshakes {
        match handle.await {
            Ok(Ok((latency, tab))) => {
                latencies.push(latency);
                tabs.push(tab);
            }
            Ok(Err(e)) => *failures.entry(e).or_default() += 1,
            Err(e) => *failures.entry(e.to_string()).or_default() += 1,
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();

    // Let the server settle (welcomes written, buffers trimmed) before sampling memory.
    let deadline = Instant::now() + Duration::from_secs(20);
    while welcomes.load(Ordering::Relaxed) < tabs.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected = total_rss(&options.server_pids);

    // One message per user from its first tab; every tab of that user should get it.
    let mut expected = 0;
    let mut first_tab_seen = std::collections::HashSet::new();
    let per_user: Vec<usize> = {
        let mut counts = vec![0; users];
        for tab in &tabs {
            counts[tab.user] += 1;
        }
        counts
    };
    for tab in &tabs {
        if first_tab_seen.insert(tab.user) {
            let text = format!("from-user-{:06}", tab.user);
            let _ = tab.outgoing.send(Message::Text(text.into()));
            expected += per_user[tab.user];
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered.load(Ordering::Relaxed) + misdelivered.load(Ordering::Relaxed) < expected
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let limit = check_limit(&options, &tokens, users).await;
    for tab in &tabs {
        let _ = tab.outgoing.send(Message::Close(None));
    }

    let connected = latencies.len();
    let rate = connected as f64 / elapsed.as_secs_f64();
    let per_socket = match (rss_before, rss_connected) {
        (Some(before), Some(after)) if connected > 0 => format!(
            "{:.0}",
            (after.saturating_sub(before)) as f64 / connected as f64
        ),
        _ => "n/a".to_owned(),
    };
    println!(
        "| {} | {} / {} | {:.0} | {:.2} | {:.2} | {} | {} / {} | {} | {limit} |",
        options.label,
        connected,
        options.connections,
        rate,
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        per_socket,
        delivered.load(Ordering::Relaxed),
        expected,
        misdelivered.load(Ordering::Relaxed),
    );
    for (error, count) in &failures {
        eprintln!("{count} connections failed: {error}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    if misdelivered.load(Ordering::Relaxed) > 0 {
        return Err("a message reached another user's socket".into());
    }
    Ok(())
}
