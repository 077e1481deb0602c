//! One node's pub/sub connection: the channels of the users it holds sockets of, a probe
//! of its own subscription, and reconnection when that subscription dies or goes deaf.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::backplane::{Backplane, BackplaneError, BackplaneErrorKind};
use super::envelope::{self, ClusterMessage, Instance};
use super::report::BusReport;
use crate::UserId;

mod task;
mod transport;

use task::Subscriber;

/// Publications [`Bus::publish_in_order`] may queue; more are refused.
const PUBLISH_QUEUE: usize = 4096;

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
///         ClusterMessage::Event { position, frame } => { /* positioned delivery */ }
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
/// });
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
    /// Publications queued by [`Bus::publish_in_order`], for the publisher task.
    queue: mpsc::Sender<(Box<str>, Vec<u8>)>,
    counters: Counters,
    task: Mutex<Option<JoinHandle<()>>>,
    publisher: Mutex<Option<JoinHandle<()>>>,
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

/// What [`Bus::status`] reads, each move also reported through the metrics facade.
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
    report: BusReport,
}

/// One method per counter: a step of the atomic (for `BusStatus`) and of its series.
macro_rules! counter_steps {
    ($($method:ident => $field:ident,)*) => {
        $(
            pub(super) fn $method(&self) {
                step(&self.$field, &self.report.$field);
            }
        )*
    };
}

/// One step of a counter, on the atomic and on its series.
fn step(counter: &AtomicU64, series: &crate::metrics::Count) {
    counter.fetch_add(1, Ordering::Relaxed);
    series.add(1);
}

impl Counters {
    fn new() -> Self {
        Self {
            subscribed: AtomicBool::new(false),
            published: AtomicU64::new(0),
            publish_errors: AtomicU64::new(0),
            received: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            deaf: AtomicU64::new(0),
            probe_lag_us: AtomicU64::new(0),
            report: BusReport::register(),
        }
    }

    pub(super) fn set_subscribed(&self, live: bool) {
        self.subscribed.store(live, Ordering::Relaxed);
        self.report.subscribed(live);
    }

    counter_steps! {
        published => published,
        publish_error => publish_errors,
        received => received,
        malformed => malformed,
        reconnected => reconnects,
        deaf => deaf,
    }

    pub(super) fn probe_lag(&self, lag: Duration) {
        let micros = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        self.probe_lag_us
            .store(micros.saturating_add(1), Ordering::Relaxed);
        self.report.probe_lag(lag);
    }
}

impl Shared {
    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Channel>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes `message` on `channel` now; the other nodes that got it.
    async fn publish_on(
        &self,
        channel: &str,
        subscribed_here: bool,
        message: &ClusterMessage,
    ) -> Result<usize, BackplaneError> {
        let payload = envelope::encode(&self.instance, message)
            .map_err(|_| BackplaneError::protocol("a close frame is not published"))?;
        match transport::publish(&self.backplane, channel, payload).await {
            Ok(receivers) => {
                self.counters.published();
                Ok(receivers.saturating_sub(usize::from(subscribed_here)))
            }
            Err(error) => {
                self.counters.publish_error();
                Err(error)
            }
        }
    }

    /// Queues `message` for `channel` on the publisher task; `false` when refused.
    fn queue_on(&self, channel: Box<str>, message: &ClusterMessage) -> bool {
        let queued = envelope::encode(&self.instance, message)
            .ok()
            .is_some_and(|payload| self.queue.try_send((channel, payload)).is_ok());
        if !queued {
            self.counters.publish_error();
        }
        queued
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
    /// Starts the subscriber task on the current tokio runtime: it connects, subscribes
    /// to this node's own channel and to every channel held, and keeps doing so after
    /// every loss of its connection. `deliver` is called on that task for every message
    /// another node publishes for a user this node holds a [`Subscription`] of: it must
    /// not block (hand the message to the local
    /// [`ManagerFactory`](crate::ManagerFactory), whose sends never wait).
    ///
    /// Nothing waits for Redis here: [`subscribe`](Self::subscribe) does, and
    /// [`status`](Self::status) tells whether the subscription is live.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::spawn`] does.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::cluster::{Backplane, Bus, BusConfig};
    /// # async fn run(backplane: Backplane) -> Result<(), Box<dyn std::error::Error>> {
    /// let bus = Bus::start(backplane, BusConfig::default(), |_incoming| {});
    /// let _held = bus.subscribe(&wsctx::UserId::try_new("alice")?).await?; // waits for Redis
    /// assert!(bus.status().subscribed);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn start(
        backplane: Backplane,
        config: BusConfig,
        deliver: impl Fn(Incoming) + Send + Sync + 'static,
    ) -> Self {
        let (commands, receiver) = mpsc::unbounded_channel();
        let (queue, queued) = mpsc::channel(PUBLISH_QUEUE);
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
            queue,
            counters: Counters::new(),
            task: Mutex::new(None),
            publisher: Mutex::new(None),
        });
        let subscriber = Subscriber {
            shared: Arc::downgrade(&shared),
            config,
            deliver: Arc::new(deliver),
            commands: receiver,
        };
        let task = tokio::spawn(subscriber.run());
        *shared.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        let publisher = tokio::spawn(publish_queued(Arc::downgrade(&shared), queued));
        *shared
            .publisher
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(publisher);
        Self { shared }
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

    /// Like [`subscribe`](Self::subscribe) without waiting for Redis: the channel is
    /// subscribed as soon as the bus can (at once when it is connected, else when it
    /// reconnects). For a socket admitted while Redis is away.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(bus: wsctx::cluster::Bus) -> Result<(), Box<dyn std::error::Error>> {
    /// let _held = bus.subscribe_later(&wsctx::UserId::try_new("alice")?);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "dropping the subscription unsubscribes"]
    pub fn subscribe_later(&self, user: &UserId) -> Subscription {
        let channel = self.shared.channel_of(user);
        {
            let mut channels = self.shared.channels();
            channels
                .entry(channel.clone())
                .or_insert_with(|| Channel {
                    user: user.clone(),
                    holders: 0,
                    confirmed: false,
                })
                .holders += 1;
        }
        let (reply, _) = oneshot::channel();
        let _ = self
            .shared
            .commands
            .send(Command::Subscribe(channel.clone(), reply));
        Subscription {
            shared: Arc::clone(&self.shared),
            channel,
        }
    }

    /// Publishes `message` on `user`'s channel and returns how many *other* nodes
    /// subscribed to it received it (nodes holding none of the user's sockets do not
    /// subscribe; this node skips its own message). Redis counts subscribers; this node
    /// takes itself off while it holds the channel or is giving it up, so the count can
    /// be off by one while this node's own subscription of the user is changing.
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
        let channel = self.shared.channel_of(user);
        let subscribed_here = self.shared.channels().contains_key(&channel);
        self.shared
            .publish_on(&channel, subscribed_here, message)
            .await
    }

    /// Queues `message` for `user`'s channel without waiting: one task per bus
    /// publishes the queue in order, so two messages queued here reach every other node
    /// in the order they were queued. For callers that cannot await (a socket's
    /// handler sending through `Session::send_to_user` of the axum runner).
    /// Returns `false`, counting a publish error, when the message is refused (a close
    /// frame) or the queue is full (Redis away for long).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{Frame, UserId, cluster::{Bus, ClusterMessage}};
    /// # fn run(bus: Bus) -> Result<(), Box<dyn std::error::Error>> {
    /// let queued = bus.publish_in_order(&UserId::try_new("alice")?, &ClusterMessage::Frame(Frame::text("hi")));
    /// assert!(queued);
    /// # Ok(())
    /// # }
    /// ```
    pub fn publish_in_order(&self, user: &UserId, message: &ClusterMessage) -> bool {
        self.shared.queue_on(self.shared.channel_of(user), message)
    }

    /// Whether this node holds a subscription of `user`'s channel now.
    #[cfg(feature = "serde")]
    pub(crate) fn is_subscribed(&self, user: &UserId) -> bool {
        self.shared
            .channels()
            .contains_key(&self.shared.channel_of(user))
    }

    /// This bus's instance id: what the append script puts in the envelopes it
    /// publishes for this node, so that the node skips them.
    #[cfg(feature = "serde")]
    pub(crate) fn instance(&self) -> &Instance {
        &self.shared.instance
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
        for task in [&self.shared.task, &self.shared.publisher] {
            if let Some(task) = task.lock().unwrap_or_else(PoisonError::into_inner).take() {
                task.abort();
            }
        }
        self.shared.counters.set_subscribed(false);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        for task in [&mut self.task, &mut self.publisher] {
            if let Some(task) = task
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                task.abort();
            }
        }
    }
}

/// The publisher task of [`Bus::publish_in_order`]: one publication at a time, in queue
/// order. Ends when the bus is gone.
async fn publish_queued(
    shared: std::sync::Weak<Shared>,
    mut queued: mpsc::Receiver<(Box<str>, Vec<u8>)>,
) {
    while let Some((channel, payload)) = queued.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match transport::publish(&shared.backplane, &channel, payload).await {
            Ok(_) => shared.counters.published(),
            Err(_) => shared.counters.publish_error(),
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

impl Subscription {
    /// Publishes `message` on the channel this subscription holds, as
    /// [`Bus::publish`] does for its user, without computing the channel's name again.
    ///
    /// # Errors
    ///
    /// As [`Bus::publish`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{Frame, cluster::{ClusterMessage, Subscription}};
    /// # async fn run(held: Subscription) -> Result<(), wsctx::cluster::BackplaneError> {
    /// let nodes = held.publish(&ClusterMessage::Frame(Frame::text("hi"))).await?;
    /// println!("{nodes} other nodes");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn publish(&self, message: &ClusterMessage) -> Result<usize, BackplaneError> {
        self.shared.publish_on(&self.channel, true, message).await
    }

    /// Queues `message` for the channel this subscription holds, as
    /// [`Bus::publish_in_order`] does for its user.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{Frame, cluster::{ClusterMessage, Subscription}};
    /// # fn run(held: Subscription) {
    /// let queued = held.publish_in_order(&ClusterMessage::Frame(Frame::text("hi")));
    /// # let _ = queued;
    /// # }
    /// ```
    pub fn publish_in_order(&self, message: &ClusterMessage) -> bool {
        self.shared.queue_on(self.channel.clone(), message)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let last = {
            let mut channels = self.shared.channels();
            // The entry stays, with no holder, until the task has unsubscribed: until
            // then Redis still counts this node, and `publish` must know it.
            match channels.get_mut(&self.channel) {
                Some(entry) if entry.holders > 0 => {
                    entry.holders -= 1;
                    // A subscribe from now on must wait for Redis: it queues behind the
                    // unsubscribe this drop sends.
                    entry.confirmed &= entry.holders > 0;
                    entry.holders == 0
                }
                _ => false,
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
