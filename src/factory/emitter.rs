//! [`Emitter`] (feature `serde`): server-side work reporting events to its user's tabs.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::event::EventType;
use crate::factory::emit::{EventHeader, PreparedEvent};
use crate::factory::error::EmitError;
use crate::factory::frame::Delivery;
use crate::factory::shard::Shard;
use crate::id::UserId;

/// Sends execution events on behalf of one execution context to every live socket of
/// that context's user, and keeps them for tabs that are reconnecting. Made by
/// [`ManagerFactory::emitter`](crate::ManagerFactory::emitter) from a validated or bound
/// context at any depth (a [`child`](crate::Context::child) for each sub-operation).
///
/// Cheap to clone (one reference count) and `Send + Sync + 'static`: move it into the
/// task doing the work. It needs no socket of the user: events to a user who is
/// reconnecting wait in the user's replay ring (see [`ReplayLimits`](crate::ReplayLimits)).
///
/// Each event is one JSON text frame:
///
/// ```json
/// {"type":"event","event":"tool_executing","epoch":"9f3c04d1a2b3c4d5","seq":7,
///  "thread_id":"…","run_id":"…","request_id":"…","parent_request_id":null,
///  "depth":0,"ts":"2026-11-21T10:15:30.123Z","data":{"tool":"search"}}
/// ```
///
/// `epoch` and `seq` are the event's position in the user's stream (a client resumes
/// from the last one it saw, see
/// [`create_resuming`](crate::ManagerFactory::create_resuming)); the ids and `depth` are
/// the context's; `ts` is the time of the `emit` call (RFC 3339, UTC, milliseconds);
/// `data` is the caller's value. The user id is never part of the frame, and an
/// emitter's `Debug` output shows only its [`Fingerprint`](crate::Fingerprint).
///
/// # Examples
///
/// ```
/// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
/// # let ids = SequenceGenerator::new();
/// # let validated = Context::builder().user_id("user-a").build().validate(&Policy::default(), &ids)?;
/// use wsctx::EventType;
///
/// let factory = ManagerFactory::default();
/// let (_tab, mut outbound) = factory.create(validated.clone().bind(None, &UuidGenerator::new())?)?;
///
/// // The work runs elsewhere, on a child context of the request.
/// let step = validated.child("search", &Policy::default(), &ids)?;
/// let emitter = factory.emitter(&step);
/// let delivery = emitter.emit(&EventType::try_new("tool_executing")?, &serde_json::json!({"tool": "search"}))?;
/// assert_eq!(delivery.delivered, 1);
///
/// let frame: serde_json::Value = serde_json::from_str(outbound.try_recv()?.as_text().unwrap())?;
/// assert_eq!(frame["event"], "tool_executing");
/// assert_eq!(frame["depth"], 1);
/// assert_eq!(frame["seq"], 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Emitter {
    inner: Arc<Inner>,
}

struct Inner {
    shard: Arc<Shard>,
    hash: u64,
    user: UserId,
    header: EventHeader,
    max_data_bytes: usize,
}

impl Emitter {
    pub(super) fn new(
        shard: Arc<Shard>,
        hash: u64,
        user: UserId,
        header: EventHeader,
        max_data_bytes: usize,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                shard,
                hash,
                user,
                header,
                max_data_bytes,
            }),
        }
    }

    /// Sends `event` with `data` to every live socket of the user, and keeps it in the
    /// user's replay ring. Never waits and never blocks on a socket: a socket whose
    /// queue is full is closed as SLOW_CONSUMER, as with any send.
    ///
    /// The data is serialized first, before any lock is taken; when that fails nothing
    /// is sent to anyone and nothing is kept. The returned [`Delivery`] has the event's
    /// `position` (`None` when the user has no socket and no ring: nobody could resume
    /// it) and whether the ring holds it (`buffered`).
    ///
    /// # Errors
    ///
    /// [`EmitError::DataTooLarge`] when `data` serializes to more than
    /// [`Limits::event_data_bytes`](crate::Limits::event_data_bytes) bytes of JSON (the
    /// serializer stops at the limit); [`EmitError::Serialize`] when it cannot be
    /// serialized as JSON.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Context, ManagerFactory, Policy, SequenceGenerator, UuidGenerator};
    /// # let ctx = Context::builder().user_id("user-a").build().validate(&Policy::default(), &SequenceGenerator::new())?;
    /// use wsctx::{EmitError, EventType, Limits};
    ///
    /// let factory = ManagerFactory::new(Limits { event_data_bytes: 16, ..Limits::default() });
    /// let (_tab, outbound) = factory.create(ctx.clone().bind(None, &UuidGenerator::new())?)?;
    /// let thinking = EventType::try_new("agent_thinking")?;
    ///
    /// let error = factory.emitter(&ctx).emit(&thinking, &"x".repeat(100)).unwrap_err();
    /// assert_eq!(error, EmitError::DataTooLarge { limit: 16 });
    /// assert!(outbound.is_empty()); // nothing was sent
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn emit(
        &self,
        event: &EventType,
        data: &(impl Serialize + ?Sized),
    ) -> Result<Delivery, EmitError> {
        let inner = &*self.inner;
        let prepared = PreparedEvent::new(
            event,
            &inner.header,
            SystemTime::now(),
            data,
            inner.max_data_bytes,
        )?;
        let render = |epoch, seq| prepared.render(epoch, seq);
        Ok(inner.shard.emit(inner.hash, &inner.user, render))
    }
}

/// Cluster mode's use of an emitter: the event is positioned by the user's stream in
/// Redis, not by this node's ring.
#[cfg(feature = "redis")]
impl Emitter {
    /// The user the events are for.
    pub(crate) fn user(&self) -> &UserId {
        &self.inner.user
    }

    /// Renders `event` with `data` up to its position, checking the data's size.
    pub(crate) fn prepare<'a>(
        &self,
        event: &'a EventType,
        data: &(impl Serialize + ?Sized),
    ) -> Result<PreparedEvent<'a>, EmitError> {
        let inner = &*self.inner;
        PreparedEvent::new(
            event,
            &inner.header,
            SystemTime::now(),
            data,
            inner.max_data_bytes,
        )
    }

    /// Delivers a prepared event to the user's sockets here in an epoch of this node
    /// alone: what cluster mode does when the user's stream cannot be reached.
    pub(crate) fn emit_detached(&self, prepared: &PreparedEvent<'_>) -> Delivery {
        let inner = &*self.inner;
        let render = |epoch, seq| prepared.render(epoch, seq);
        inner.shard.emit_detached(inner.hash, &inner.user, render)
    }
}

impl fmt::Debug for Emitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emitter")
            .field("user", &self.inner.user.fingerprint())
            .finish_non_exhaustive()
    }
}
