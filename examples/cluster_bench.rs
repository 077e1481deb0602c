//! The cluster measurements (BENCHMARKS.md, "Cluster mode"): admissions per second with
//! 64 concurrent admit-and-drop loops, cluster factory next to the local factory; the
//! latency of a frame to a tab on another node next to one on the same node; and the
//! Redis commands per second that lease renewals cost for 10,000 users.
//!
//! ```sh
//! cargo run --release --example cluster_bench --features redis -- [--seconds 5] [--users 10000]
//! ```
//!
//! Starts its own `redis-server` (from `PATH` or `WSCTX_REDIS_SERVER`) on a free loopback
//! port, without persistence, and stops it at the end.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a measurement prints"
)]

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use wsctx::cluster::{Backplane, ClusterConfig, ClusterFactory, HashingKey, NodeId};
use wsctx::state::Bound;
use wsctx::{Context, Frame, Limits, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};

const CONCURRENCY: usize = 64;

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Result<Self, Box<dyn std::error::Error>> {
        let binary = std::env::var("WSCTX_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()?;
        Ok(Self { child, port })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bound(user: &str, client: &str) -> Context<Bound> {
    let ids = SequenceGenerator::new();
    let valid = Context::builder()
        .user_id(user)
        .websocket_client_id(client)
        .build()
        .validate(&Policy::default(), &ids)
        .unwrap_or_else(|error| panic!("a valid context: {error}"));
    valid
        .bind(None, &UuidGenerator::new())
        .unwrap_or_else(|error| panic!("a bound context: {error}"))
}

async fn node(
    url: &str,
    name: &str,
    ttl: Duration,
) -> Result<ClusterFactory, Box<dyn std::error::Error>> {
    let config = ClusterConfig::builder(url, HashingKey::new([7u8; 32])?)
        .node_id(NodeId::try_new(name)?)
        .lease_ttl(ttl)
        .build()?;
    let backplane = connect(config).await?;
    let local = ManagerFactory::new(Limits {
        global: 1_000_000,
        ..Limits::default()
    });
    Ok(ClusterFactory::start(local, backplane))
}

/// Connects, retrying while the fresh redis-server starts.
async fn connect(config: ClusterConfig) -> Result<Backplane, Box<dyn std::error::Error>> {
    let mut last = None;
    for _ in 0..50 {
        match Backplane::connect(config.clone()).await {
            Ok(backplane) => return Ok(backplane),
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Box::new(last.unwrap_or_else(|| {
        wsctx::cluster::BackplaneError::from_kind(wsctx::cluster::BackplaneErrorKind::Connection)
    })))
}

/// Admissions per second: `CONCURRENCY` loops, each admitting and dropping sockets of
/// its own user, for `seconds`.
async fn admissions<F, Fut>(seconds: u64, admit: F) -> f64
where
    F: Fn(Context<Bound>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut loops = Vec::new();
    for worker in 0..CONCURRENCY {
        let (admit, done) = (admit.clone(), Arc::clone(&done));
        loops.push(tokio::spawn(async move {
            let mut n = 0_u64;
            while Instant::now() < end {
                n += 1;
                let ctx = bound(&format!("bench-user-{worker}"), &format!("tab-{n}"));
                if admit(ctx).await {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for worker in loops {
        let _ = worker.await;
    }
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    rate
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// The time from `send_to_user` on `from` until the tab on `to` has the frame.
async fn latency(from: &ClusterFactory, to: &ClusterFactory, samples: usize) -> Vec<Duration> {
    let (_manager, mut outbound) = to
        .admit(bound("latency-user", "tab"))
        .await
        .unwrap_or_else(|error| panic!("admit: {error}"));
    let user = wsctx::UserId::try_new("latency-user").unwrap_or_else(|_| unreachable!());
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        // The send goes on by itself: on the same node the tab has the frame before the
        // publication to the other nodes is done.
        let send = {
            let (from, user) = (from.clone(), user.clone());
            tokio::spawn(async move { from.send_to_user(&user, Frame::text("x")).await })
        };
        let _ = outbound.recv().await;
        times.push(start.elapsed());
        let _ = send.await;
    }
    times.sort();
    times
}

/// (script calls, every command including those the scripts run) so far.
async fn commands_processed(url: &str) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let mut connection = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let info: String = redis::cmd("INFO")
        .arg("all")
        .query_async(&mut connection)
        .await?;
    let total = info
        .lines()
        .find_map(|line| line.strip_prefix("total_commands_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or("no total_commands_processed")?;
    // cmdstat_evalsha:calls=123,usec=...
    let scripts = info
        .lines()
        .filter(|line| line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:"))
        .filter_map(|line| {
            line.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    Ok((scripts, total))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut seconds = 5;
    let mut users = 10_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().ok_or("--seconds N")?.parse()?,
            "--users" => users = args.next().ok_or("--users N")?.parse()?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let redis = Redis::start()?;
    let url = redis.url();
    let ttl = Duration::from_secs(30);
    let (a, b) = (node(&url, "a", ttl).await?, node(&url, "b", ttl).await?);

    // Admissions: local factory, then cluster factory, same loops.
    let local = ManagerFactory::new(Limits {
        global: 1_000_000,
        ..Limits::default()
    });
    let local_rate = admissions(seconds, move |ctx| {
        let local = local.clone();
        async move { local.create(ctx).is_ok() }
    })
    .await;
    let cluster = a.clone();
    let cluster_rate = admissions(seconds, move |ctx| {
        let cluster = cluster.clone();
        async move { cluster.admit(ctx).await.is_ok() }
    })
    .await;
    println!(
        "admit+drop, {CONCURRENCY} concurrent: local {local_rate:.0}/s, cluster {cluster_rate:.0}/s, ratio {:.3}",
        cluster_rate / local_rate
    );

    // Latency: same node, then across nodes.
    let samples = 2_000;
    let same = latency(&a, &a, samples).await;
    let cross = latency(&a, &b, samples).await;
    for (name, times) in [("same node", &same), ("cross node", &cross)] {
        println!(
            "send_to_user -> tab, {name}: p50 {:?} p99 {:?} ({samples} samples)",
            percentile(times, 50),
            percentile(times, 99)
        );
    }

    // Renewal traffic: `users` users with one socket each on node c, whose leases live
    // 3 s (renewed every second); the commands of three renewal rounds, scaled to the
    // default 30 s lease (renewed every 10 s).
    let c = node(&url, "c", Duration::from_secs(3)).await?;
    let mut held = Vec::with_capacity(users);
    for n in 0..users {
        held.push(c.admit(bound(&format!("renew-user-{n}"), "tab")).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (scripts_before, total_before) = commands_processed(&url).await?;
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (scripts_after, total_after) = commands_processed(&url).await?;
    let elapsed = window.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss, reason = "rates")]
    let (scripts, total) = (
        (scripts_after - scripts_before) as f64 / elapsed,
        (total_after - total_before) as f64 / elapsed,
    );
    println!(
        "renewals, {users} users, 1 s rounds over {elapsed:.1} s: {scripts:.0} script calls/s, {total:.0} commands/s (the scripts' own included); at the default 30 s lease (10 s rounds): {:.0} script calls/s, {:.0} commands/s",
        scripts / 10.0,
        total / 10.0
    );
    drop(held);
    Ok(())
}
