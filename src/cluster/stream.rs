//! Each user's event stream in Redis: what positions an event cluster-wide and keeps the
//! recent ones for replay on any node.
//!
//! Two names of the user (see [`UserKeys`]): the *position* hash (the stream's epoch and
//! its last sequence number, kept a day after the last event) and the *stream* (the
//! recent event frames, capped by count and by age on Redis's clock). Two scripts change
//! and read them atomically:
//!
//! | script | does |
//! |---|---|
//! | append | takes the next sequence number (a new epoch when the user has none), renders the frame around it, appends it to the stream, trims the stream by count and age, and publishes it on the user's channel as an event envelope, all in one step |
//! | since | the stream's epoch and last sequence number (creating the epoch when there is none), and every held event after a point of that epoch |
//!
//! Publishing inside the append script puts the event on the channel in the same atomic
//! step that numbers it: a node that subscribed to the channel before it read the stream
//! sees every event either in what it read or live, or both (duplicates are dropped by
//! position), never neither.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::{Script, Value};

use super::backplane::{Backplane, BackplaneError};
#[cfg(feature = "serde")]
use super::config::Target;
#[cfg(feature = "serde")]
use super::envelope::{self, Instance};
use super::keys::UserKeys;
use super::lease::PRELUDE;
use crate::{ResumePoint, UserId};

/// How long a user's position outlives the user's last event: a tab that comes back
/// within it and missed nothing resumes without a gap.
pub(crate) const POSITION_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// KEYS: position, stream, channel. ARGV: epoch if the user has none (16 hex digits),
/// max events, max age (ms), position TTL (ms), the frame's head (up to the epoch),
/// between epoch and sequence number, tail (after it), the envelope's header, the
/// publish command. Returns {epoch, seq, subscribers that received it}.
#[cfg(feature = "serde")]
const APPEND: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', epoch)
end
local seq = int(redis.call('HINCRBY', KEYS[1], 's', 1))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local frame = ARGV[5] .. epoch .. ARGV[6] .. seq .. ARGV[7]
redis.call('XADD', KEYS[2], 'MAXLEN', '=', ARGV[2], '*', 's', seq, 'f', frame)
local oldest_ms = math.floor(now_us() / 1000) - tonumber(ARGV[3])
if oldest_ms > 0 then
  redis.call('XTRIM', KEYS[2], 'MINID', int(oldest_ms))
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local receivers = redis.call(ARGV[9], KEYS[3], ARGV[8] .. epoch .. '.' .. seq .. '\n' .. frame)
return {epoch, seq, receivers}
";

/// KEYS: position, stream. ARGV: epoch if the user has none, position TTL (ms), the
/// point's epoch ('' for none), the point's sequence number. Returns {epoch, last seq,
/// {seq, frame, seq, frame, …}} with the held events after the point when it is of the
/// stream's epoch.
const SINCE: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local last = tonumber(redis.call('HGET', KEYS[1], 's') or '0')
local out = {}
if epoch == ARGV[3] then
  local after = tonumber(ARGV[4])
  for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do
    local fields = entry[2]
    local seq, frame
    for i = 1, #fields, 2 do
      if fields[i] == 's' then seq = fields[i + 1] elseif fields[i] == 'f' then frame = fields[i + 1] end
    end
    if seq and frame and tonumber(seq) > after then
      out[#out + 1] = seq
      out[#out + 1] = frame
    end
  end
end
return {epoch, int(last), out}
";

struct Scripts {
    #[cfg(feature = "serde")]
    append: Script,
    since: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| {
    let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
    Scripts {
        #[cfg(feature = "serde")]
        append: script(APPEND),
        since: script(SINCE),
    }
});

/// An event frame around its position, for [`Backplane::append_event`]: the bytes before
/// the epoch's 16 hex digits, between them and the sequence number, and after it.
#[cfg(feature = "serde")]
pub(crate) struct FrameParts<'a> {
    pub(crate) head: &'a [u8],
    pub(crate) middle: &'a [u8],
    pub(crate) tail: &'a [u8],
}

/// What [`Backplane::append_event`] did: the event's position, and how many
/// subscribers of the user's channel (this node's included, when it subscribes) Redis
/// handed it to.
#[cfg(feature = "serde")]
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Appended {
    pub(crate) position: ResumePoint,
    pub(crate) receivers: usize,
}

/// What [`Backplane::stream_since`] read: the stream's epoch, its last sequence number,
/// and the held events after the point (when the point is of that epoch), in order
/// and without holes: the events `first`, `first + 1`, … up to `last`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Fetched {
    pub(crate) epoch: u64,
    pub(crate) first: u64,
    pub(crate) frames: Vec<Arc<str>>,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn epoch_hex(epoch: u64) -> String {
    format!("{epoch:016x}")
}

fn parse_epoch(value: &Value) -> Option<u64> {
    let Value::BulkString(bytes) = value else {
        return None;
    };
    let text = std::str::from_utf8(bytes).ok()?;
    (text.len() == 16)
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
}

fn parse_seq(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        _ => None,
    }
}

impl Backplane {
    fn user_keys(&self, user: &UserId) -> UserKeys {
        let keyspace = self.config().keyspace();
        keyspace.user_keys(keyspace.user_hash(user))
    }

    #[cfg(feature = "serde")]
    fn publish_command(&self) -> &'static str {
        match &self.config().target {
            Target::Standalone(_) => "PUBLISH",
            #[cfg(feature = "redis-cluster")]
            Target::Cluster { .. } => "SPUBLISH",
        }
    }

    /// Appends an event of `user` to the user's stream and publishes it on the user's
    /// channel, as the bus instance `origin`; returns its position and how many
    /// subscribers got it. `epoch` is the epoch to start when the user has none.
    #[cfg(feature = "serde")]
    pub(crate) async fn append_event(
        &self,
        user: &UserId,
        parts: &FrameParts<'_>,
        origin: &Instance,
        epoch: u64,
    ) -> Result<Appended, BackplaneError> {
        let keys = self.user_keys(user);
        let config = self.config();
        let mut invocation = SCRIPTS.append.prepare_invoke();
        invocation
            .key(keys.position())
            .key(keys.stream())
            .key(keys.channel())
            .arg(epoch_hex(epoch))
            .arg(config.stream_max_len())
            .arg(millis(config.stream_max_age()).max(1))
            .arg(millis(POSITION_TTL))
            .arg(parts.head)
            .arg(parts.middle)
            .arg(parts.tail)
            .arg(envelope::event_prefix(origin))
            .arg(self.publish_command());
        let reply = self.run_script(invocation).await?;
        parse_appended(&reply).ok_or_else(|| BackplaneError::protocol("unexpected append reply"))
    }

    /// Reads where `user`'s stream is, and the held events after `point` when it is of
    /// the stream's epoch (`None` only asks for the position). `epoch` is the epoch to
    /// start when the user has none.
    pub(crate) async fn stream_since(
        &self,
        user: &UserId,
        point: Option<ResumePoint>,
        epoch: u64,
    ) -> Result<Fetched, BackplaneError> {
        let keys = self.user_keys(user);
        let mut invocation = SCRIPTS.since.prepare_invoke();
        invocation
            .key(keys.position())
            .key(keys.stream())
            .arg(epoch_hex(epoch))
            .arg(millis(POSITION_TTL))
            .arg(point.map_or_else(String::new, |p| epoch_hex(p.epoch())))
            .arg(point.map_or(0, |p| p.seq()));
        let reply = self.run_script(invocation).await?;
        parse_fetched(&reply).ok_or_else(|| BackplaneError::protocol("unexpected stream reply"))
    }
}

/// `{epoch, seq, receivers}` → [`Appended`].
#[cfg(feature = "serde")]
fn parse_appended(reply: &Value) -> Option<Appended> {
    let Value::Array(items) = reply else {
        return None;
    };
    let [epoch, seq, receivers] = items.as_slice() else {
        return None;
    };
    Some(Appended {
        position: ResumePoint::new(parse_epoch(epoch)?, parse_seq(seq)?),
        receivers: usize::try_from(parse_seq(receivers)?).ok()?,
    })
}

/// `{epoch, last, {seq, frame, …}}` → the contiguous run that ends at `last` (a run
/// with a hole keeps only its part after the hole).
fn parse_fetched(reply: &Value) -> Option<Fetched> {
    let Value::Array(items) = reply else {
        return None;
    };
    let [epoch, last, events] = items.as_slice() else {
        return None;
    };
    let (epoch, last) = (parse_epoch(epoch)?, parse_seq(last)?);
    let Value::Array(events) = events else {
        return None;
    };
    let mut frames: Vec<Arc<str>> = Vec::with_capacity(events.len() / 2);
    let mut first = last.checked_add(1)?;
    // Walk back from the newest: keep the run that ends at `last` without a hole.
    for pair in events.chunks_exact(2).rev() {
        let (Some(seq), Value::BulkString(frame)) = (parse_seq(&pair[0]), &pair[1]) else {
            return None;
        };
        if seq.checked_add(1) != Some(first) {
            break;
        }
        frames.push(Arc::from(std::str::from_utf8(frame).ok()?));
        first = seq;
    }
    frames.reverse();
    Some(Fetched {
        epoch,
        first,
        frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    fn reply(last: i64, events: &[(&str, &str)]) -> Value {
        let events = events
            .iter()
            .flat_map(|(seq, frame)| [bulk(seq), bulk(frame)])
            .collect();
        Value::Array(vec![
            bulk("00000000000000ff"),
            Value::Int(last),
            Value::Array(events),
        ])
    }

    #[test]
    fn a_fetched_run_ends_at_the_last_event_without_a_hole() {
        let fetched = parse_fetched(&reply(4, &[("2", "b"), ("3", "c"), ("4", "d")])).unwrap();
        assert_eq!((fetched.epoch, fetched.first), (0xff, 2));
        assert_eq!(
            fetched.frames,
            vec![Arc::from("b"), Arc::from("c"), Arc::from("d")]
        );
        // A hole keeps only the part after it; a run short of `last` keeps nothing.
        let holed = parse_fetched(&reply(4, &[("1", "a"), ("3", "c"), ("4", "d")])).unwrap();
        assert_eq!((holed.first, holed.frames.len()), (3, 2));
        let short = parse_fetched(&reply(5, &[("3", "c"), ("4", "d")])).unwrap();
        assert_eq!((short.first, short.frames.len()), (6, 0));
        // Only the position: the next event is `last + 1`.
        let position = parse_fetched(&reply(9, &[])).unwrap();
        assert_eq!((position.first, position.frames.len()), (10, 0));
    }

    #[test]
    fn malformed_replies_are_refused() {
        assert_eq!(parse_fetched(&Value::Nil), None);
        assert_eq!(
            parse_fetched(&Value::Array(vec![
                bulk("ff"),
                Value::Int(1),
                Value::Array(vec![])
            ])),
            None
        );
        assert_eq!(parse_fetched(&reply(-1, &[])), None);
        assert_eq!(parse_fetched(&reply(2, &[("x", "b")])), None);
    }
}
