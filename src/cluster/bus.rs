//! One node's pub/sub connection: the channels of the users it holds sockets of, a probe
//! of its own subscription, and reconnection when that subscription dies or goes deaf.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::backplane::{Backplane, BackplaneError, BackplaneErrorKind};
use super::config::Target;
use super::envelope::{self, ClusterMessage, Envelope, Instance};
use crate::UserId;

/// Longest wait between two reconnection attempts of the subscriber.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// First wait before a reconnection attempt.
const MIN_BACKOFF: Duration = Duration::from_millis(50);

/// A message that another node published for a user this node holds sockets of.
///
/// # Examples
///
/// ```
/// use wsctx::cluster::{ClusterMessage, Incoming};
///
/// fn deliver(incoming: Incoming) {
///     match incoming.message {
///         ClusterMessage::Frame(frame) => { /* factory.send_to_user(&incoming.user, frame) */ }
///         ClusterMessage::Disconnect(close) => { /* factory.disconnect_user(&incoming.user, &close) */ }
///     }
/// }
/// # let _ = deliver;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Incoming {
    /// The user the message is for: known to this node because it subscribed to the
    /// user's channel for a socket it holds. The wire never carries the id.
    pub user: UserId,
    /// What to do for that user's sockets here.
    pub message: ClusterMessage,
}

/// How the bus watches its own subscription.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use wsctx::cluster::BusConfig;
///
/// let config = BusConfig::default().probe_interval(Duration::from_secs(2));
/// assert_eq!(config.probe_timeout_value(), Duration::from_secs(4));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusConfig {
    probe_interval: Duration,
    probe_timeout: Option<Duration>,
}

impl Default for BusConfig {
    /// A probe every 5 s; deaf when one has not come back after 10 s.
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(5),
            probe_timeout: None,
        }
    }
}

impl BusConfig {
    /// How often the bus publishes a probe on its own node channel (default 5 s).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = wsctx::cluster::BusConfig::default().probe_interval(Duration::from_millis(200));
    /// assert_eq!(config.probe_interval_value(), Duration::from_millis(200));
    /// ```
    #[must_use]
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How long a published probe may take to come back before the subscription counts
    /// as deaf and is reconnected (default twice the probe interval).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = wsctx::cluster::BusConfig::default().probe_timeout(Duration::from_secs(3));
    /// assert_eq!(config.probe_timeout_value(), Duration::from_secs(3));
    /// ```
    #[must_use]
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = Some(timeout);
        self
    }

    /// The probe interval.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(wsctx::cluster::BusConfig::default().probe_interval_value(), Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn probe_interval_value(&self) -> Duration {
        self.probe_interval
    }

    /// The probe timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(wsctx::cluster::BusConfig::default().probe_timeout_value(), Duration::from_secs(10));
    /// ```
    #[must_use]
    pub fn probe_timeout_value(&self) -> Duration {
        self.probe_timeout.unwrap_or(self.probe_interval * 2)
    }
}

/// What the bus has done since it started: counters for a metrics pipeline and health
/// checks. No ids.
///
/// # Examples
///
/// ```no_run
/// # async fn run(bus: wsctx::cluster::Bus) {
/// let status = bus.status();
/// if !status.subscribed {
///     println!("degraded: no live subscription ({} reconnects)", status.reconnects);
/// }
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusStatus {
    /// Whether the subscription is connected and its last probe came back in time.
    pub subscribed: bool,
    /// User channels subscribed now.
    pub channels: usize,
    /// Messages published by this node.
    pub published: u64,
    /// Publications that failed (Redis unavailable or refusing).
    pub publish_errors: u64,
    /// Messages from other nodes handed to the delivery function.
    pub received: u64,
    /// Payloads on a subscribed channel that were not envelopes (dropped).
    pub malformed: u64,
    /// Reconnections of the subscription after the first connection.
    pub reconnects: u64,
    /// Reconnections because a probe did not come back (a deaf subscription).
    pub deaf: u64,
    /// How long the last probe took from publish to receipt.
    pub probe_lag: Option<Duration>,
}

/// One node's pub/sub connection to the other nodes (feature `redis`).
///
/// Every user has a channel (named by the keyed user hash, see
/// [`UserKeys::channel`](super::UserKeys::channel)); a node subscribes to it while it
/// holds at least one of the user's sockets ([`subscribe`](Self::subscribe) returns a
/// counted [`Subscription`]) and [`publish`](Self::publish)es on it to reach the user's
/// sockets on the other nodes. Messages a node published itself are skipped when they
/// come back: it delivers locally first.
///
/// The subscription runs on its own connection and task. It reconnects and subscribes
/// again to every channel when the connection ends, and it publishes a probe on its own
/// node channel every [`BusConfig::probe_interval`]: a probe that Redis accepts but that
/// does not come back within [`BusConfig::probe_timeout`] means the subscription went
/// deaf without an error (a failover, a proxy), and the bus reconnects. Messages
/// published while a node was deaf or away are lost to it; the lease renewals (a
/// revocation) and the replay stream are what make up for that.
///
/// # Examples
///
/// ```no_run
/// use wsctx::{Frame, UserId};
/// use wsctx::cluster::{Backplane, Bus, BusConfig, ClusterConfig, ClusterMessage, HashingKey};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = ClusterConfig::builder("redis://127.0.0.1:6380", HashingKey::new([7u8; 32])?).build()?;
/// let backplane = Backplane::connect(config).await?;
/// let bus = Bus::start(backplane, BusConfig::default(), |incoming| {
///     println!("a message for one of our users: {:?}", incoming.message);
/// })
/// .await?;
///
/// let alice = UserId::try_new("alice")?;
/// let _held = bus.subscribe(&alice).await?; // while one of alice's sockets is here
/// let nodes = bus.publish(&alice, &ClusterMessage::Frame(Frame::text("hi"))).await?;
/// println!("{nodes} other nodes hold alice's sockets");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Bus {
    shared: Arc<Shared>,
}

type Deliver = Arc<dyn Fn(Incoming) + Send + Sync>;

struct Shared {
    backplane: Backplane,
    instance: Instance,
    node_channel: Box<str>,
    /// Channel name → the user it is for and how many sockets here hold it.
    channels: Mutex<HashMap<Box<str>, Channel>>,
    commands: mpsc::UnboundedSender<Command>,
    counters: Counters,
    task: Mutex<Option<JoinHandle<()>>>,
}

struct Channel {
    user: UserId,
    holders: usize,
    /// Redis confirmed the subscription on the current connection.
    confirmed: bool,
}

enum Command {
    Subscribe(Box<str>, oneshot::Sender<Result<(), BackplaneError>>),
    Unsubscribe(Box<str>),
}

#[derive(Default)]
struct Counters {
    subscribed: AtomicBool,
    published: AtomicU64,
    publish_errors: AtomicU64,
    received: AtomicU64,
    malformed: AtomicU64,
    reconnects: AtomicU64,
    deaf: AtomicU64,
    /// Microseconds, plus one (zero: no probe has come back yet).
    probe_lag_us: AtomicU64,
}

impl Shared {
    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Channel>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn channel_of(&self, user: &UserId) -> Box<str> {
        let keyspace = self.backplane.config().keyspace();
        keyspace
            .user_keys(keyspace.user_hash(user))
            .channel()
            .into()
    }
}

impl Bus {
    /// Opens the subscription connection, subscribes to this node's own channel and
    /// starts the subscriber task on the current tokio runtime. `deliver` is called on
    /// that task for every message another node publishes for a user this node holds a
    /// [`Subscription`] of: it must not block (hand the message to the local
    /// [`ManagerFactory`](crate::ManagerFactory), whose sends never wait).
    ///
    /// # Errors
    ///
    /// A [`BackplaneError`] when the first connection or subscription fails within the
    /// connection timeout plus the response timeout.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::cluster::{Backplane, Bus, BusConfig};
    /// # async fn run(backplane: Backplane) -> Result<(), wsctx::cluster::BackplaneError> {
    /// let bus = Bus::start(backplane, BusConfig::default(), |_incoming| {}).await?;
    /// assert!(bus.status().subscribed);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start(
        backplane: Backplane,
        config: BusConfig,
        deliver: impl Fn(Incoming) + Send + Sync + 'static,
    ) -> Result<Self, BackplaneError> {
        let (commands, receiver) = mpsc::unbounded_channel();
        let node_channel = backplane
            .config()
            .keyspace()
            .node_channel(backplane.config().node_id())
            .into_boxed_str();
        let shared = Arc::new(Shared {
            backplane,
            instance: uuid::Uuid::new_v4().into_bytes(),
            node_channel,
            channels: Mutex::new(HashMap::new()),
            commands,
            counters: Counters::default(),
            task: Mutex::new(None),
        });
        let first = Subscriber::connect(&shared).await?;
        shared.counters.subscribed.store(true, Ordering::Relaxed);
        let subscriber = Subscriber {
            shared: Arc::downgrade(&shared),
            config,
            deliver: Arc::new(deliver),
            commands: receiver,
        };
        let task = tokio::spawn(subscriber.run(first));
        *shared.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        Ok(Self { shared })
    }

    /// Holds `user`'s channel subscribed while the returned [`Subscription`] lives
    /// (counted: the channel is unsubscribed when the last one of the user's
    /// subscriptions here is dropped). Returns once Redis has confirmed the
    /// subscription, so nothing published after this returns is missed.
    ///
    /// # Errors
    ///
    /// A [`BackplaneError`] (unavailable) when Redis does not confirm within the
    /// response timeout.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(bus: wsctx::cluster::Bus) -> Result<(), Box<dyn std::error::Error>> {
    /// let alice = wsctx::UserId::try_new("alice")?;
    /// let first = bus.subscribe(&alice).await?;
    /// let second = bus.subscribe(&alice).await?; // no second SUBSCRIBE
    /// drop(first); // still subscribed
    /// drop(second); // unsubscribed
    /// # Ok(())
    /// # }
    /// ```
    pub async fn subscribe(&self, user: &UserId) -> Result<Subscription, BackplaneError> {
        let channel = self.shared.channel_of(user);
        let confirmed = {
            let mut channels = self.shared.channels();
            let entry = channels.entry(channel.clone()).or_insert_with(|| Channel {
                user: user.clone(),
                holders: 0,
                confirmed: false,
            });
            entry.holders += 1;
            entry.confirmed
        };
        let subscription = Subscription {
            shared: Arc::clone(&self.shared),
            channel: channel.clone(),
        };
        if confirmed {
            return Ok(subscription);
        }
        let (reply, answer) = oneshot::channel();
        let unavailable = || BackplaneError::from_kind(BackplaneErrorKind::Connection);
        self.shared
            .commands
            .send(Command::Subscribe(channel, reply))
            .map_err(|_| unavailable())?;
        let timeout = self.shared.backplane.config().response_timeout();
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(Ok(()))) => Ok(subscription),
            Ok(Ok(Err(error))) => Err(error),
            Ok(Err(_)) => Err(unavailable()),
            Err(_) => Err(BackplaneError::from_kind(BackplaneErrorKind::Timeout)),
        }
    }

    /// Publishes `message` on `user`'s channel and returns how many *other* nodes
    /// subscribed to it received it (nodes holding none of the user's sockets do not
    /// subscribe; this node skips its own message).
    ///
    /// # Errors
    ///
    /// A [`BackplaneError`]: unavailable when Redis does not answer within the response
    /// timeout; refused for a [`Frame::Close`](crate::Frame::Close) frame (closing every
    /// socket is a [`ClusterMessage::Disconnect`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{CloseCode, CloseFrame, UserId};
    /// # use wsctx::cluster::ClusterMessage;
    /// # async fn run(bus: wsctx::cluster::Bus) -> Result<(), Box<dyn std::error::Error>> {
    /// let ban = ClusterMessage::Disconnect(CloseFrame::new(CloseCode::FORBIDDEN, "banned"));
    /// bus.publish(&UserId::try_new("alice")?, &ban).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn publish(
        &self,
        user: &UserId,
        message: &ClusterMessage,
    ) -> Result<usize, BackplaneError> {
        let payload = envelope::encode(&self.shared.instance, message)
            .map_err(|_| BackplaneError::protocol("a close frame is not published"))?;
        let channel = self.shared.channel_of(user);
        let subscribed_here = self.shared.channels().contains_key(&channel);
        let result = self.publish_raw(&channel, payload).await;
        let counters = &self.shared.counters;
        match result {
            Ok(receivers) => {
                counters.published.fetch_add(1, Ordering::Relaxed);
                Ok(receivers.saturating_sub(usize::from(subscribed_here)))
            }
            Err(error) => {
                counters.publish_errors.fetch_add(1, Ordering::Relaxed);
                Err(error)
            }
        }
    }

    async fn publish_raw(&self, channel: &str, payload: Vec<u8>) -> Result<usize, BackplaneError> {
        publish(&self.shared.backplane, channel, payload).await
    }

    /// What the bus has done so far, and whether its subscription is live.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(bus: wsctx::cluster::Bus) {
    /// println!("{} messages from other nodes", bus.status().received);
    /// # }
    /// ```
    #[must_use]
    pub fn status(&self) -> BusStatus {
        let c = &self.shared.counters;
        let lag = c.probe_lag_us.load(Ordering::Relaxed);
        BusStatus {
            subscribed: c.subscribed.load(Ordering::Relaxed),
            channels: self.shared.channels().len(),
            published: c.published.load(Ordering::Relaxed),
            publish_errors: c.publish_errors.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            deaf: c.deaf.load(Ordering::Relaxed),
            probe_lag: lag.checked_sub(1).map(Duration::from_micros),
        }
    }

    /// Stops the subscriber task: no message is delivered after this returns. Also
    /// happens when the last clone of the bus is dropped.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(bus: wsctx::cluster::Bus) {
    /// bus.shutdown();
    /// assert!(!bus.status().subscribed);
    /// # }
    /// ```
    pub fn shutdown(&self) {
        if let Some(task) = self
            .shared
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        self.shared
            .counters
            .subscribed
            .store(false, Ordering::Relaxed);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Holds one user's channel subscribed on this node (see [`Bus::subscribe`]); dropping
/// the last one of a user unsubscribes.
///
/// # Examples
///
/// ```no_run
/// # async fn run(bus: wsctx::cluster::Bus, alice: wsctx::UserId) -> Result<(), wsctx::cluster::BackplaneError> {
/// let subscription = bus.subscribe(&alice).await?;
/// // ... while alice's socket lives on this node ...
/// drop(subscription);
/// # Ok(())
/// # }
/// ```
pub struct Subscription {
    shared: Arc<Shared>,
    channel: Box<str>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let last = {
            let mut channels = self.shared.channels();
            match channels.get_mut(&self.channel) {
                Some(entry) if entry.holders > 1 => {
                    entry.holders -= 1;
                    false
                }
                Some(_) => {
                    channels.remove(&self.channel);
                    true
                }
                None => false,
            }
        };
        if last {
            // The task checks again before unsubscribing: a subscribe that came in
            // meanwhile keeps the channel.
            let _ = self
                .shared
                .commands
                .send(Command::Unsubscribe(self.channel.clone()));
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

async fn publish(
    backplane: &Backplane,
    channel: &str,
    payload: Vec<u8>,
) -> Result<usize, BackplaneError> {
    backplane
        .call(|mut connection| async move {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async(&mut connection)
                .await
        })
        .await
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The subscriber task's state. Holds the bus weakly: the task ends when the last
/// [`Bus`] and [`Subscription`] are gone.
struct Subscriber {
    shared: std::sync::Weak<Shared>,
    config: BusConfig,
    deliver: Deliver,
    commands: mpsc::UnboundedReceiver<Command>,
}

/// Why the serving loop ended.
enum Ended {
    /// Reconnect (the connection ended, failed a command, or went deaf).
    Reconnect,
    /// The bus is gone.
    Stop,
}

impl Subscriber {
    /// Opens a pub/sub connection and subscribes to the node channel and every channel
    /// held now, bounded by the connection and response timeouts.
    async fn connect(shared: &Shared) -> Result<(PubSubSink, PubSubStream), BackplaneError> {
        let config = shared.backplane.config();
        let client = match &config.target {
            Target::Standalone(client) => client.clone(),
            #[cfg(feature = "redis-cluster")]
            Target::Cluster { .. } => {
                return Err(BackplaneError::protocol(
                    "the pub/sub bus needs a standalone redis",
                ));
            }
        };
        let deadline = config.connection_timeout() + config.response_timeout();
        let (mut sink, stream) = tokio::time::timeout(deadline, client.get_async_pubsub())
            .await
            .map_err(|_| BackplaneError::from_kind(BackplaneErrorKind::Timeout))??
            .split();
        let mut names: Vec<Box<str>> = shared.channels().keys().cloned().collect();
        names.push(shared.node_channel.clone());
        let args: Vec<&str> = names.iter().map(|name| &**name).collect();
        tokio::time::timeout(config.response_timeout(), sink.subscribe(&args))
            .await
            .map_err(|_| BackplaneError::from_kind(BackplaneErrorKind::Timeout))??;
        let mut channels = shared.channels();
        for name in &names {
            if let Some(entry) = channels.get_mut(name) {
                entry.confirmed = true;
            }
        }
        Ok((sink, stream))
    }

    async fn run(mut self, first: (PubSubSink, PubSubStream)) {
        let mut connection = Some(first);
        let mut backoff = MIN_BACKOFF;
        loop {
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            if connection.is_none() {
                if let Ok(live) = Self::connect(&shared).await {
                    shared.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    backoff = MIN_BACKOFF;
                    connection = Some(live);
                } else {
                    drop(shared);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
            let Some((sink, stream)) = connection.take() else {
                continue;
            };
            shared.counters.subscribed.store(true, Ordering::Relaxed);
            drop(shared);
            let ended = self.serve(sink, stream).await;
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            shared.counters.subscribed.store(false, Ordering::Relaxed);
            for entry in shared.channels().values_mut() {
                entry.confirmed = false;
            }
            if matches!(ended, Ended::Stop) {
                return;
            }
        }
    }

    /// Serves one connection until it ends, fails or goes deaf.
    async fn serve(&mut self, mut sink: PubSubSink, mut stream: PubSubStream) -> Ended {
        let mut probes = tokio::time::interval(self.config.probe_interval);
        probes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sequence = 0u64;
        // The probe in flight: its sequence and when it was published.
        let mut outstanding: Option<(u64, Instant)> = None;
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { return Ended::Reconnect };
                    let Some(shared) = self.shared.upgrade() else { return Ended::Stop };
                    if let Some(lag) = self.handle(&shared, &message, outstanding) {
                        shared.counters.probe_lag_us.store(
                            u64::try_from(lag.as_micros()).unwrap_or(u64::MAX).saturating_add(1),
                            Ordering::Relaxed,
                        );
                        shared.counters.subscribed.store(true, Ordering::Relaxed);
                        outstanding = None;
                    }
                }
                command = self.commands.recv() => {
                    let Some(command) = command else { return Ended::Stop };
                    let Some(shared) = self.shared.upgrade() else { return Ended::Stop };
                    if !Self::command(&shared, &mut sink, command).await {
                        return Ended::Reconnect;
                    }
                }
                _ = probes.tick() => {
                    let Some(shared) = self.shared.upgrade() else { return Ended::Stop };
                    if let Some((_, sent)) = outstanding {
                        if sent.elapsed() <= self.config.probe_timeout_value() {
                            continue;
                        }
                        // Late: deaf if Redis answers others, merely away if it doesn't.
                        if shared.backplane.ping().await.is_ok() {
                            shared.counters.deaf.fetch_add(1, Ordering::Relaxed);
                            return Ended::Reconnect;
                        }
                        shared.counters.subscribed.store(false, Ordering::Relaxed);
                        outstanding = None;
                        continue;
                    }
                    sequence += 1;
                    let probe = envelope::encode_probe(&shared.instance, sequence, now_us());
                    let sent = Instant::now();
                    match publish(&shared.backplane, &shared.node_channel, probe).await {
                        // Redis took it but nobody listens on our own channel: this
                        // connection lost its subscriptions.
                        Ok(0) => {
                            shared.counters.deaf.fetch_add(1, Ordering::Relaxed);
                            return Ended::Reconnect;
                        }
                        Ok(_) => outstanding = Some((sequence, sent)),
                        // Redis is away: not deafness; the renewals and admissions
                        // report it. Probe again next tick.
                        Err(_) => shared.counters.subscribed.store(false, Ordering::Relaxed),
                    }
                }
            }
        }
    }

    /// Runs one subscribe/unsubscribe command; `false` when the connection failed it.
    async fn command(shared: &Shared, sink: &mut PubSubSink, command: Command) -> bool {
        let timeout = shared.backplane.config().response_timeout();
        match command {
            Command::Subscribe(channel, reply) => {
                let result = match tokio::time::timeout(timeout, sink.subscribe(&*channel)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => Err(BackplaneError::from(error)),
                    Err(_) => Err(BackplaneError::from_kind(BackplaneErrorKind::Timeout)),
                };
                let ok = result.is_ok();
                if ok && let Some(entry) = shared.channels().get_mut(&channel) {
                    entry.confirmed = true;
                }
                let _ = reply.send(result);
                ok
            }
            Command::Unsubscribe(channel) => {
                if shared.channels().contains_key(&channel) {
                    return true; // subscribed again meanwhile
                }
                matches!(
                    tokio::time::timeout(timeout, sink.unsubscribe(&*channel)).await,
                    Ok(Ok(()))
                )
            }
        }
    }

    /// Handles one message; returns the probe's lag when it is this bus's outstanding
    /// probe coming back.
    fn handle(
        &self,
        shared: &Shared,
        message: &redis::Msg,
        outstanding: Option<(u64, Instant)>,
    ) -> Option<Duration> {
        let channel = message.get_channel_name();
        let decoded = envelope::decode(message.get_payload_bytes());
        let Ok((origin, envelope)) = decoded else {
            shared.counters.malformed.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        match envelope {
            Envelope::Probe { sequence, .. } => {
                let (expected, sent) = outstanding?;
                (origin == shared.instance && sequence == expected).then(|| sent.elapsed())
            }
            Envelope::User(message) => {
                if origin == shared.instance {
                    return None; // delivered locally before it was published
                }
                let user = shared
                    .channels()
                    .get(channel)
                    .map(|entry| entry.user.clone())?;
                shared.counters.received.fetch_add(1, Ordering::Relaxed);
                (self.deliver)(Incoming { user, message });
                None
            }
        }
    }
}
