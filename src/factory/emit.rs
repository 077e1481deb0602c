//! Event frames: the part an emitter renders once from its context
//! ([`EventHeader`]), the part each emit renders before taking any lock
//! ([`PreparedEvent`]), and the position the user's replay ring assigns under its lock.
//!
//! A frame is
//! `{"type":"event","event":…,"epoch":"<16 hex>","seq":n,"thread_id":…,"run_id":…,
//! "request_id":…,"parent_request_id":…|null,"depth":n,"ts":"<RFC 3339>","data":…}`.
//! The user id is never part of it.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::context::Context;
use crate::event::EventType;
use crate::factory::error::EmitError;
use crate::state::Valid;

/// The ids and depth of one execution context, rendered as the JSON members of an event
/// frame that follow its position: `,"thread_id":…,"run_id":…,"request_id":…,
/// "parent_request_id":…,"depth":n`.
#[derive(Debug)]
pub(super) struct EventHeader(Box<str>);

impl EventHeader {
    pub(super) fn new<S: Valid>(ctx: &Context<S>) -> Self {
        // `Value`'s `Display` writes JSON and cannot fail.
        let json = |text: &str| serde_json::Value::from(text).to_string();
        let parent = ctx
            .parent_request_id()
            .map_or_else(|| "null".to_owned(), |parent| json(parent.as_str()));
        Self(
            format!(
                r#","thread_id":{},"run_id":{},"request_id":{},"parent_request_id":{parent},"depth":{}"#,
                json(ctx.thread_id().as_str()),
                json(ctx.run_id().as_str()),
                json(ctx.request_id().as_str()),
                ctx.operation_depth(),
            )
            .into_boxed_str(),
        )
    }
}

/// An event frame rendered up to its position: everything but the epoch and the
/// sequence number, which the user's replay ring assigns under its lock. Rendering (the
/// expensive part: serializing the data) happens before that lock is taken.
#[derive(Debug)]
pub(super) struct PreparedEvent {
    /// `{"type":"event","event":"<name>","epoch":"`.
    head: String,
    /// `,"thread_id":…,"data":…}`: the frame after `seq`.
    tail: String,
}

impl PreparedEvent {
    /// Renders the frame of `event` emitted from the context of `header` at `at` with
    /// `data`, checking that the data is at most `max_data_bytes` bytes of JSON before
    /// anything else happens.
    pub(super) fn new(
        event: &EventType,
        header: &EventHeader,
        at: SystemTime,
        data: &(impl Serialize + ?Sized),
        max_data_bytes: usize,
    ) -> Result<Self, EmitError> {
        let mut tail = Vec::with_capacity(header.0.len() + 64 + max_data_bytes.min(192));
        tail.extend_from_slice(header.0.as_bytes());
        tail.extend_from_slice(br#","ts":""#);
        write_rfc3339(&mut tail, at).map_err(|_| EmitError::Serialize)?;
        tail.extend_from_slice(br#"","data":"#);
        let mut capped = Capped {
            out: &mut tail,
            room: max_data_bytes,
            exceeded: false,
        };
        if serde_json::to_writer(&mut capped, data).is_err() {
            return Err(if capped.exceeded {
                EmitError::DataTooLarge {
                    limit: max_data_bytes,
                }
            } else {
                EmitError::Serialize
            });
        }
        tail.push(b'}');
        let tail = String::from_utf8(tail).map_err(|_| EmitError::Serialize)?;
        Ok(Self {
            head: format!(r#"{{"type":"event","event":"{event}","epoch":""#),
            tail,
        })
    }

    /// The whole frame, at position `seq` of `epoch`.
    pub(super) fn render(&self, epoch: u64, seq: u64) -> Arc<str> {
        use std::fmt::Write as _;

        // 16 digits + `","seq":` + at most 20 digits.
        let position = 16 + 8 + 20;
        let mut frame = String::with_capacity(self.head.len() + position + self.tail.len());
        frame.push_str(&self.head);
        // Writing into a `String` cannot fail.
        let _ = write!(frame, r#"{epoch:016x}","seq":{seq}"#);
        frame.push_str(&self.tail);
        Arc::from(frame)
    }
}

/// Writes into `out` until `room` bytes were written, then fails and notes why.
struct Capped<'a> {
    out: &'a mut Vec<u8>,
    room: usize,
    exceeded: bool,
}

impl Write for Capped<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.len() > self.room {
            self.exceeded = true;
            return Err(io::Error::other("over the event data limit"));
        }
        self.room -= bytes.len();
        self.out.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The last instant RFC 3339 can write with a four-digit year, in whole seconds
/// since the Unix epoch: 9999-12-31T23:59:59Z.
const MAX_RFC3339_SECS: u64 = 253_402_300_799;

/// Writes `at` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds truncated). A time
/// before 1970 is written as the Unix epoch, one after the year 9999 as its last
/// millisecond: a clock that far off is wrong, and the frame must stay valid.
pub(super) fn write_rfc3339(out: &mut impl Write, at: SystemTime) -> io::Result<()> {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (secs, millis) = if since.as_secs() > MAX_RFC3339_SECS {
        (MAX_RFC3339_SECS, 999)
    } else {
        (since.as_secs(), since.subsec_millis())
    };
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
    )
}

/// The proleptic Gregorian date of day `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01, so that a leap day ends each 4-year cycle.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
