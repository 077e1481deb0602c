//! Delivery across nodes: frames and disconnects published on the user's channel, events
//! positioned by the user's stream in Redis, and what a node does with what other nodes
//! publish.

use crate::cluster::bus::Incoming;
use crate::cluster::envelope::ClusterMessage;
use crate::factory::{Frame, ManagerFactory};
use crate::id::UserId;

use super::{ClusterDelivery, ClusterFactory, RemoteDelivery};

/// Hands a message from another node to this node's sockets of the user. Runs on the
/// bus's task: every call here is a non-blocking queue operation.
pub(super) fn deliver_incoming(local: &ManagerFactory, incoming: Incoming) {
    let Incoming { user, message, .. } = incoming;
    match message {
        ClusterMessage::Frame(frame) => {
            let _ = local.send_to_user(&user, frame);
        }
        ClusterMessage::Disconnect(close) => {
            local.disconnect_user(&user, &close);
        }
        ClusterMessage::Event { position, frame } => {
            let _ = local.deliver_event(&user, position, frame);
        }
    }
}

impl ClusterFactory {
    /// Queues `frame` on every live socket of `user` on this node at once, as
    /// [`ManagerFactory::send_to_user`] does, then publishes it on the user's channel
    /// for the nodes that hold the user's other sockets. The local part never waits for
    /// Redis and a Redis error never undoes it: the result reports the two apart.
    ///
    /// A frame is delivered at most once per socket and is not kept: a node that is
    /// away from Redis when it is published misses it. Frames sent from one node reach
    /// every tab in the order that node sent them; frames sent from different nodes at
    /// about the same time may interleave differently on different tabs (each node
    /// queues its own first). Use an emitter ([`emitter`](Self::emitter)) for what a
    /// client must be able to catch up on, in one order everywhere.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{Frame, UserId, cluster::ClusterFactory};
    /// # async fn run(factory: ClusterFactory) -> Result<(), Box<dyn std::error::Error>> {
    /// let sent = factory.send_to_user(&UserId::try_new("alice")?, Frame::text("report ready")).await;
    /// println!("{} tabs here, other nodes: {:?}", sent.local.delivered, sent.remote);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_to_user(&self, user: &UserId, frame: Frame) -> ClusterDelivery {
        let local = self.inner.local.send_to_user(user, frame.clone());
        let remote = if frame.is_close() {
            // Refused locally too: closing is `disconnect_user`'s job.
            RemoteDelivery::Refused
        } else {
            let published = self
                .inner
                .bus
                .publish(user, &ClusterMessage::Frame(frame))
                .await;
            RemoteDelivery::from_result(&published)
        };
        ClusterDelivery { local, remote }
    }
}

#[cfg(feature = "serde")]
mod emitter {
    use std::fmt;

    use serde::Serialize;

    use super::super::{ClusterDelivery, ClusterFactory, RemoteDelivery};
    use crate::cluster::stream::FrameParts;
    use crate::context::Context;
    use crate::event::EventType;
    use crate::factory::{Delivery, EmitError, Emitter};
    use crate::state::Valid;

    /// Sends events on behalf of an execution context to every socket of its user, on
    /// every node (feature `serde`). From [`ClusterFactory::emitter`].
    ///
    /// Each event gets its position from the user's stream in Redis: one script numbers
    /// it, keeps it in the stream (capped by count and age) and publishes it on the
    /// user's channel. Every node holding the user's sockets, this one included, queues
    /// it on them when it comes off the channel, so that every node sees the user's
    /// events in the stream's order whichever node emitted them. A tab that reconnects
    /// to any node resumes from the stream without loss or duplicates.
    ///
    /// The result's `local` part carries the event's position only (its counts are
    /// zero: this node's sockets get the event from the channel, moments later);
    /// `remote` counts the other nodes that received it.
    ///
    /// When Redis cannot be reached the event still reaches this node's sockets, in an
    /// epoch of this node alone (a tab that resumes from it gets a gap and reloads),
    /// and the result says the other nodes were not reached.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use wsctx::{Context, EventType, state::Validated, cluster::ClusterFactory};
    /// # async fn run(factory: ClusterFactory, ctx: Context<Validated>) -> Result<(), Box<dyn std::error::Error>> {
    /// let emitter = factory.emitter(&ctx);
    /// let step = EventType::try_new("run.step")?;
    /// let sent = emitter.emit(&step, &serde_json::json!({"n": 1})).await?;
    /// println!("at {:?}, other nodes: {:?}", sent.local.position, sent.remote);
    /// # Ok(())
    /// # }
    /// ```
    #[derive(Clone)]
    pub struct ClusterEmitter {
        factory: ClusterFactory,
        local: Emitter,
    }

    impl ClusterFactory {
        /// An emitter for `ctx`'s user on every node (feature `serde`); see
        /// [`ClusterEmitter`].
        ///
        /// # Examples
        ///
        /// ```no_run
        /// # use wsctx::{Context, state::Bound, cluster::ClusterFactory};
        /// # fn run(factory: ClusterFactory, ctx: Context<Bound>) {
        /// let emitter = factory.emitter(&ctx);
        /// # let _ = emitter;
        /// # }
        /// ```
        #[must_use]
        pub fn emitter<S: Valid>(&self, ctx: &Context<S>) -> ClusterEmitter {
            ClusterEmitter {
                factory: self.clone(),
                local: self.inner.local.emitter(ctx),
            }
        }
    }

    impl ClusterEmitter {
        /// Emits `event` with `data` to every socket of the user, on every node.
        ///
        /// # Errors
        ///
        /// As [`Emitter::emit`]: the data does not serialize, or is larger than
        /// [`Limits::event_data_bytes`](crate::Limits::event_data_bytes). Nothing is
        /// sent then.
        ///
        /// # Examples
        ///
        /// ```no_run
        /// # use wsctx::{EventType, cluster::ClusterEmitter};
        /// # async fn run(emitter: ClusterEmitter) -> Result<(), Box<dyn std::error::Error>> {
        /// emitter.emit(&EventType::try_new("run.done")?, &()).await?;
        /// # Ok(())
        /// # }
        /// ```
        pub async fn emit(
            &self,
            event: &EventType,
            data: &(impl Serialize + ?Sized),
        ) -> Result<ClusterDelivery, EmitError> {
            let prepared = self.local.prepare(event, data)?;
            let (head, middle, tail) = prepared.parts();
            let parts = FrameParts {
                head: &head,
                middle,
                tail,
            };
            let inner = &self.factory.inner;
            let user = self.local.user();
            let epoch = uuid::Uuid::new_v4().as_u64_pair().0;
            let appended = inner
                .backplane
                .append_event(user, &parts, inner.bus.instance(), epoch)
                .await;
            Ok(match appended {
                Ok(appended) => {
                    let subscribed_here = inner.bus.is_subscribed(user);
                    let nodes = appended
                        .receivers
                        .saturating_sub(usize::from(subscribed_here));
                    let local = Delivery {
                        position: Some(appended.position),
                        ..Delivery::default()
                    };
                    ClusterDelivery {
                        local,
                        remote: RemoteDelivery::Published { nodes },
                    }
                }
                Err(error) => ClusterDelivery {
                    local: self.local.emit_detached(&prepared),
                    remote: RemoteDelivery::Failed(error.kind()),
                },
            })
        }
    }

    impl fmt::Debug for ClusterEmitter {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ClusterEmitter")
                .field("local", &self.local)
                .finish_non_exhaustive()
        }
    }
}

#[cfg(feature = "serde")]
pub use emitter::ClusterEmitter;
