//! The subscriber task: serves one connection at a time (messages, subscribe and
//! unsubscribe commands, the self-probe) and reconnects when it ends or goes deaf.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::transport::{self, Delivered, Transport};
use super::{BusConfig, Command, Deliver, Incoming, MAX_BACKOFF, MIN_BACKOFF, Shared};
use crate::cluster::backplane::{BackplaneError, BackplaneErrorKind};
use crate::cluster::envelope::{self, ClusterMessage, Envelope};

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The subscriber task's state. Holds the bus weakly: the task ends when the last
/// [`Bus`] and [`Subscription`] are gone.
pub(super) struct Subscriber {
    pub(super) shared: std::sync::Weak<Shared>,
    pub(super) config: BusConfig,
    pub(super) deliver: Deliver,
    pub(super) commands: mpsc::UnboundedReceiver<Command>,
}

/// One of this bus's own probes came back.
struct Heard {
    /// How long it took, when it was the outstanding one.
    lag: Option<Duration>,
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
    async fn connect(shared: &Shared) -> Result<Transport, BackplaneError> {
        let config = shared.backplane.config();
        let mut transport = Transport::connect(config).await?;
        let mut names: Vec<Box<str>> = {
            let mut channels = shared.channels();
            // A fresh connection holds no subscription: channels nobody holds any more
            // are gone with the old one.
            channels.retain(|_, entry| entry.holders > 0);
            channels.keys().cloned().collect()
        };
        names.push(shared.node_channel.clone());
        let args: Vec<&str> = names.iter().map(|name| &**name).collect();
        tokio::time::timeout(config.response_timeout(), transport.subscribe(&args))
            .await
            .map_err(|_| BackplaneError::from_kind(BackplaneErrorKind::Timeout))??;
        let mut channels = shared.channels();
        for name in &names {
            if let Some(entry) = channels.get_mut(name) {
                entry.confirmed = true;
            }
        }
        Ok(transport)
    }

    pub(super) async fn run(mut self) {
        let mut connection = None;
        let mut connected_once = false;
        let mut backoff = MIN_BACKOFF;
        loop {
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            if connection.is_none() {
                if let Ok(live) = Self::connect(&shared).await {
                    if connected_once {
                        shared.counters.reconnected();
                    }
                    connected_once = true;
                    backoff = MIN_BACKOFF;
                    connection = Some(live);
                } else {
                    drop(shared);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
            let Some(transport) = connection.take() else {
                continue;
            };
            shared.counters.set_subscribed(true);
            drop(shared);
            let ended = self.serve(transport).await;
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            shared.counters.set_subscribed(false);
            for entry in shared.channels().values_mut() {
                entry.confirmed = false;
            }
            if matches!(ended, Ended::Stop) {
                return;
            }
        }
    }

    /// Serves one connection until it ends, fails or goes deaf.
    async fn serve(&mut self, mut transport: Transport) -> Ended {
        let mut probes = tokio::time::interval(self.config.probe_interval);
        probes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sequence = 0u64;
        // The probe in flight: its sequence and when it was published.
        let mut outstanding: Option<(u64, Instant)> = None;
        // Overdue probes in a row while Redis answered: the second one is deafness (the
        // first may have been held up by Redis itself, stopped or busy for a while).
        let mut overdue = 0_u32;
        loop {
            tokio::select! {
                message = transport.next() => {
                    let Some(message) = message else { return Ended::Reconnect };
                    let Some(shared) = self.shared.upgrade() else { return Ended::Stop };
                    if let Some(heard) = self.handle(&shared, &message, outstanding) {
                        // One of our probes came back: the subscription hears.
                        if let Some(lag) = heard.lag {
                            shared.counters.probe_lag(lag);
                        }
                        shared.counters.set_subscribed(true);
                        outstanding = None;
                        overdue = 0;
                    }
                }
                command = self.commands.recv() => {
                    let Some(command) = command else { return Ended::Stop };
                    let Some(shared) = self.shared.upgrade() else { return Ended::Stop };
                    if !Self::command(&shared, &mut transport, command).await {
                        return Ended::Reconnect;
                    }
                }
                _ = probes.tick() => {
                    let Some(shared) = self.shared.upgrade() else { return Ended::Stop };
                    if let Some((_, sent)) = outstanding {
                        if sent.elapsed() <= self.config.probe_timeout_value() {
                            continue;
                        }
                        outstanding = None;
                        // Late: merely away if Redis answers nobody; deaf if it answers
                        // others and a second probe is late too.
                        if shared.backplane.ping().await.is_err() {
                            shared.counters.set_subscribed(false);
                            overdue = 0;
                            continue;
                        }
                        overdue += 1;
                        if overdue >= 2 {
                            shared.counters.deaf();
                            return Ended::Reconnect;
                        }
                    }
                    sequence += 1;
                    let probe = envelope::encode_probe(&shared.instance, sequence, now_us());
                    let sent = Instant::now();
                    match transport::publish(&shared.backplane, &shared.node_channel, probe).await {
                        // Redis took it but nobody listens on our own channel: this
                        // connection lost its subscriptions.
                        Ok(0) => {
                            shared.counters.deaf();
                            return Ended::Reconnect;
                        }
                        Ok(_) => outstanding = Some((sequence, sent)),
                        // Redis is away: not deafness; the renewals and admissions
                        // report it. Probe again next tick.
                        Err(_) => shared.counters.set_subscribed(false),
                    }
                }
            }
        }
    }

    /// Runs one subscribe/unsubscribe command; `false` when the connection failed it.
    async fn command(shared: &Shared, transport: &mut Transport, command: Command) -> bool {
        let timeout = shared.backplane.config().response_timeout();
        match command {
            Command::Subscribe(channel, reply) => {
                let result =
                    match tokio::time::timeout(timeout, transport.subscribe(&[&*channel])).await {
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
                let held = |shared: &Shared| {
                    shared
                        .channels()
                        .get(&channel)
                        .is_none_or(|entry| entry.holders > 0)
                };
                if held(shared) {
                    return true; // subscribed again meanwhile, or already gone
                }
                let done = matches!(
                    tokio::time::timeout(timeout, transport.unsubscribe(&channel)).await,
                    Ok(Ok(()))
                );
                if done {
                    // Redis no longer counts this node; unless a subscribe came meanwhile.
                    let mut channels = shared.channels();
                    if channels
                        .get(&channel)
                        .is_some_and(|entry| entry.holders == 0)
                    {
                        channels.remove(&channel);
                    }
                }
                done
            }
        }
    }

    /// Handles one message; returns `Some` when it is one of this bus's probes coming
    /// back, with the lag when it is the outstanding one.
    fn handle(
        &self,
        shared: &Shared,
        message: &Delivered,
        outstanding: Option<(u64, Instant)>,
    ) -> Option<Heard> {
        let channel = message.channel.as_str();
        let decoded = envelope::decode(&message.payload);
        let Ok((origin, envelope)) = decoded else {
            shared.counters.malformed();
            return None;
        };
        match envelope {
            Envelope::Probe { sequence, .. } => (origin == shared.instance).then(|| Heard {
                lag: outstanding
                    .filter(|(expected, _)| *expected == sequence)
                    .map(|(_, sent)| sent.elapsed()),
            }),
            Envelope::User(message) => {
                // This node's own frames and disconnects were delivered here before
                // they were published. Its own events were not: every node, this one
                // included, takes a user's events from the channel, in the order the
                // stream gave them.
                if origin == shared.instance && !matches!(message, ClusterMessage::Event { .. }) {
                    return None;
                }
                let user = shared
                    .channels()
                    .get(channel)
                    .map(|entry| entry.user.clone())?;
                shared.counters.received();
                (self.deliver)(Incoming { user, message });
                None
            }
        }
    }
}
