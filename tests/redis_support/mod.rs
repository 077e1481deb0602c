//! Real `redis-server` processes for the cluster tests.
//!
//! Each [`RedisServer`] is a private server on a random loopback port (or a unix socket
//! in its own temporary directory), started with `--save '' --appendonly no` so nothing
//! outlives it, and killed when dropped. Never the packaged daemon on 6379. A test can
//! stop it (`SIGSTOP`), continue it (`SIGCONT`) and restart it without its data.
//!
//! The binary is `$WSCTX_REDIS_SERVER`, else `redis-server` on `PATH`. When it is missing
//! a test fails with a message that says how to install it (`scripts/test.sh` does it on
//! Debian). `WSCTX_SKIP_REDIS_TESTS=1` skips instead, loudly, and is refused under
//! `CI=true`: CI never passes by skipping.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a fresh server may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Listen {
    /// 127.0.0.1 and this port.
    Tcp(u16),
    /// A unix socket at this path (and no TCP port).
    Unix(PathBuf),
}

/// A private `redis-server` process, killed on drop.
#[derive(Debug)]
pub(crate) struct RedisServer {
    binary: PathBuf,
    dir: PathBuf,
    listen: Listen,
    extra: Vec<String>,
    child: Child,
}

fn redis_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WSCTX_REDIS_SERVER") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "wsctx-redis-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a temporary directory for redis-server");
    dir
}

/// A port that was free a moment ago (Redis has no "port 0 = pick one"). Another
/// process may take it first; [`RedisServer::start`] then tries another.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

impl RedisServer {
    /// A server on a random loopback port; `None` only when skipping was asked for
    /// outside CI.
    pub(crate) fn start() -> Option<Self> {
        Self::start_on(|| Listen::Tcp(free_port()), &[])
    }

    /// A server on a unix socket in its own temporary directory.
    pub(crate) fn start_unix() -> Option<Self> {
        Self::start_on(|| Listen::Unix(PathBuf::from("redis.sock")), &[])
    }

    #[allow(clippy::print_stderr, reason = "a skip must be seen")]
    fn start_on(listen: impl Fn() -> Listen, extra: &[&str]) -> Option<Self> {
        let Some(binary) = redis_binary() else {
            let help = "redis-server was not found: the cluster tests need Redis 7.0 or newer. \
                        Run scripts/test.sh (it installs Debian's redis-server and redis-tools \
                        when run as root), or install them yourself, or set WSCTX_REDIS_SERVER \
                        to a redis-server binary";
            if !ci() && std::env::var_os("WSCTX_SKIP_REDIS_TESTS").is_some_and(|v| v == "1") {
                eprintln!("SKIPPED (WSCTX_SKIP_REDIS_TESTS=1): {help}");
                return None;
            }
            panic!("{help}");
        };
        let dir = scratch_dir();
        let extra: Vec<String> = extra.iter().map(|&a| a.to_owned()).collect();
        let mut last_error = String::new();
        for _ in 0..5 {
            let listen = match listen() {
                Listen::Unix(name) => Listen::Unix(dir.join(name)),
                tcp @ Listen::Tcp(_) => tcp,
            };
            match spawn(&binary, &dir, &listen, &extra) {
                Ok(child) => {
                    return Some(Self {
                        binary,
                        dir,
                        listen,
                        extra,
                        child,
                    });
                }
                Err(error) => last_error = error,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// The URL the backplane connects to.
    pub(crate) fn url(&self) -> String {
        match &self.listen {
            Listen::Tcp(port) => format!("redis://127.0.0.1:{port}"),
            Listen::Unix(path) => format!("redis+unix://{}", path.display()),
        }
    }

    /// A plain client for looking at what the backplane wrote.
    pub(crate) fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("the test server's url parses")
    }

    /// Where it listens.
    pub(crate) fn listen(&self) -> &Listen {
        &self.listen
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freezes it (`SIGSTOP`): connections stay open, nothing is answered.
    pub(crate) fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets it run again (`SIGCONT`).
    pub(crate) fn resume(&self) {
        self.signal("CONT");
    }

    /// Kills it and starts a new, empty server at the same address: a Redis restart
    /// without persistence.
    pub(crate) fn restart_empty(&mut self) {
        self.signal("CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Listen::Unix(path) = &self.listen {
            let _ = std::fs::remove_file(path);
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        self.child = loop {
            // The port is ours until someone else binds it; retry while the old socket
            // is still being torn down.
            match spawn(&self.binary, &self.dir, &self.listen, &self.extra) {
                Ok(child) => break child,
                Err(error) if Instant::now() > deadline => {
                    panic!("redis-server did not restart: {error}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
    }

    fn signal(&self, signal: &str) {
        // The crate forbids `unsafe`, so no libc: the `kill` command sends it.
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }
}

/// A Redis Cluster of private servers, each its own master (no replicas), slots spread
/// by `redis-cli --cluster create`.
#[derive(Debug)]
pub(crate) struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// `masters` servers on random loopback ports (each with its cluster bus port, the
    /// port + 10000, free too), joined into one cluster that reports `cluster_state:ok`.
    pub(crate) fn start(masters: usize) -> Option<Self> {
        let mut nodes = Vec::with_capacity(masters);
        for _ in 0..masters {
            nodes.push(RedisServer::start_on(
                || Listen::Tcp(free_cluster_port()),
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ],
            )?);
        }
        let cli = nodes[0].binary.with_file_name("redis-cli");
        let cli = if cli.is_file() {
            cli
        } else {
            PathBuf::from("redis-cli")
        };
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| n.url().replace("redis://", ""))
            .collect();
        let output = Command::new(&cli)
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} (Debian package redis-tools; scripts/test.sh installs it): {e}",
                    cli.display()
                )
            });
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let deadline = Instant::now() + READY_TIMEOUT;
        for node in &nodes {
            loop {
                let info = Command::new(&cli)
                    .args(["-u", &node.url(), "cluster", "info"])
                    .output()
                    .expect("run redis-cli");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster did not become ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(Self { nodes })
    }

    /// The seed URLs: every node's.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The servers.
    pub(crate) fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

/// A free port whose cluster bus port (+10000) is free as well.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= 55_535 && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `redis-server` and waits until it answers; the error carries its log.
fn spawn(binary: &Path, dir: &Path, listen: &Listen, extra: &[String]) -> Result<Child, String> {
    let log = dir.join("redis.log");
    let mut command = Command::new(binary);
    command
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(&log)
        .args(["--bind", "127.0.0.1"])
        .args(extra);
    match listen {
        Listen::Tcp(port) => {
            command.args(["--port", &port.to_string()]);
        }
        Listen::Unix(path) => {
            command
                .args(["--port", "0", "--unixsocketperm", "700", "--unixsocket"])
                .arg(path);
        }
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("exited with {status}; log:\n{text}"));
        }
        if answers_as(listen, child.id()) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("no answer within 10 s".to_owned());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether the server at `listen` answers and is process `pid` (not another test's
/// server that took the port first).
fn answers_as(listen: &Listen, pid: u32) -> bool {
    fn exchange(stream: impl Read + Write, pid: u32) -> bool {
        let mut reader = BufReader::new(stream);
        if reader.get_mut().write_all(b"INFO server\r\n").is_err() {
            return false;
        }
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() {
            return false;
        }
        let Some(len) = header
            .trim_end()
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return false;
        };
        let mut body = vec![0u8; len + 2];
        reader.read_exact(&mut body).is_ok()
            && String::from_utf8_lossy(&body).contains(&format!("process_id:{pid}\r\n"))
    }
    let timeout = Some(Duration::from_millis(500));
    match listen {
        Listen::Tcp(port) => TcpStream::connect((Ipv4Addr::LOCALHOST, *port))
            .is_ok_and(|s| s.set_read_timeout(timeout).is_ok() && exchange(s, pid)),
        Listen::Unix(path) => UnixStream::connect(path)
            .is_ok_and(|s| s.set_read_timeout(timeout).is_ok() && exchange(s, pid)),
    }
}

/// A user id for tests.
pub(crate) fn user(id: &str) -> wsctx::UserId {
    wsctx::UserId::try_new(id).expect("a valid test user id")
}

/// A client id for tests.
pub(crate) fn tab(id: &str) -> wsctx::WebSocketClientId {
    wsctx::WebSocketClientId::try_new(id).expect("a valid test client id")
}

/// Acquires a lease that must be granted.
pub(crate) async fn granted(
    node: &wsctx::cluster::Backplane,
    user_id: &str,
    client: &str,
    limit: usize,
) -> wsctx::cluster::Lease {
    match node.acquire(&user(user_id), &tab(client), limit).await {
        Ok(wsctx::cluster::Acquire::Granted { lease, .. }) => lease,
        other => panic!("expected a lease, got {other:?}"),
    }
}

impl RedisServer {
    /// A plain connection to inspect or poke the server from a test.
    pub(crate) async fn connection(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test's redis-server")
    }

    /// Closes every pub/sub connection (`CLIENT KILL TYPE pubsub`); returns how many.
    pub(crate) async fn kill_subscribers(&self) -> usize {
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut self.connection().await)
            .await
            .expect("CLIENT KILL")
    }
}

/// The hashing key every cluster test node shares.
pub(crate) const HASHING_KEY: &[u8; 32] = b"cluster-tests-hashing-key-32byte";

/// A node's configuration for a test: `name`, leases living `ttl`, Redis calls bounded
/// by `response`.
pub(crate) fn node_config(
    url: &str,
    name: &str,
    ttl: Duration,
    response: Duration,
) -> wsctx::cluster::ClusterConfig {
    wsctx::cluster::ClusterConfig::builder(
        url,
        wsctx::cluster::HashingKey::new(HASHING_KEY).unwrap(),
    )
    .node_id(wsctx::cluster::NodeId::try_new(name).unwrap())
    .lease_ttl(ttl)
    .response_timeout(response)
    .build()
    .unwrap()
}

/// A bound context of `user_id` with client id `client`.
pub(crate) fn bound(user_id: &str, client: &str) -> wsctx::Context<wsctx::state::Bound> {
    wsctx::Context::builder()
        .user_id(user_id)
        .websocket_client_id(client)
        .build()
        .validate(&wsctx::Policy::default(), &wsctx::SequenceGenerator::new())
        .unwrap()
        .bind(None, &wsctx::UuidGenerator::new())
        .unwrap()
}

/// Closes every socket of `user_id` from `node` as a ban (4403 `banned`).
pub(crate) async fn ban(
    node: &wsctx::cluster::ClusterFactory,
    user_id: &str,
) -> wsctx::cluster::ClusterDisconnect {
    node.disconnect_user(
        &user(user_id),
        wsctx::CloseCode::FORBIDDEN,
        &wsctx::CloseReason::new("banned"),
    )
    .await
}
