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

/// What an event frame starts with, up to the event's name.
const HEAD: &[u8] = br#"{"type":"event","event":""#;
/// Between the name and the epoch's hex digits.
const EPOCH: &[u8] = br#"","epoch":""#;
/// Between the epoch and the sequence number.
const SEQ: &[u8] = br#"","seq":"#;

/// An event frame rendered up to its position: everything but the epoch and the
/// sequence number, which the user's replay ring assigns under its lock. Rendering (the
/// expensive part: serializing the data) happens before that lock is taken.
#[derive(Debug)]
pub(crate) struct PreparedEvent<'a> {
    event: &'a EventType,
    /// `,"thread_id":…,"data":…}`: the frame after `seq`.
    tail: Vec<u8>,
}

impl<'a> PreparedEvent<'a> {
    /// Renders the frame of `event` emitted from the context of `header` at `at` with
    /// `data`, checking that the data is at most `max_data_bytes` bytes of JSON before
    /// anything else happens.
    pub(super) fn new(
        event: &'a EventType,
        header: &EventHeader,
        at: SystemTime,
        data: &(impl Serialize + ?Sized),
        max_data_bytes: usize,
    ) -> Result<Self, EmitError> {
        let mut tail = Vec::with_capacity(header.0.len() + 64 + max_data_bytes.min(192));
        tail.extend_from_slice(header.0.as_bytes());
        tail.extend_from_slice(br#","ts":""#);
        write_rfc3339(&mut tail, at);
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
        Ok(Self { event, tail })
    }

    /// The frame around its position: what comes before the epoch's hex digits, what
    /// comes between them and the sequence number, and what follows it. Another
    /// renderer (cluster mode: a script in Redis) puts the position in between and
    /// gets the bytes [`render`](Self::render) would.
    #[cfg(feature = "redis")]
    pub(crate) fn parts(&self) -> (Vec<u8>, &'static [u8], &[u8]) {
        let event = self.event.as_str().as_bytes();
        let mut head = Vec::with_capacity(HEAD.len() + event.len() + EPOCH.len());
        head.extend_from_slice(HEAD);
        head.extend_from_slice(event);
        head.extend_from_slice(EPOCH);
        (head, SEQ, &self.tail)
    }

    /// The whole frame, at position `seq` of `epoch`.
    pub(crate) fn render(&self, epoch: u64, seq: u64) -> Arc<str> {
        let event = self.event.as_str().as_bytes();
        let mut frame = Vec::with_capacity(
            HEAD.len() + event.len() + EPOCH.len() + 16 + SEQ.len() + 20 + self.tail.len(),
        );
        frame.extend_from_slice(HEAD);
        frame.extend_from_slice(event);
        frame.extend_from_slice(EPOCH);
        for shift in (0..16).rev() {
            let nibble = u8::try_from((epoch >> (shift * 4)) & 0xf).unwrap_or(0);
            frame.push(b"0123456789abcdef"[usize::from(nibble)]);
        }
        frame.extend_from_slice(SEQ);
        push_decimal(&mut frame, seq);
        frame.extend_from_slice(&self.tail);
        // Every part is UTF-8: the event name and the digits are ASCII, the tail came
        // from `serde_json` and the header's strings.
        Arc::from(String::from_utf8(frame).unwrap_or_default())
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0_u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `n` as exactly `width` decimal digits (`n` must fit).
fn push_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = [b'0'; 4];
    let mut n = n;
    for digit in digits[..width].iter_mut().rev() {
        *digit = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
    }
    out.extend_from_slice(&digits[..width]);
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
pub(super) fn write_rfc3339(out: &mut Vec<u8>, at: SystemTime) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (secs, millis) = if since.as_secs() > MAX_RFC3339_SECS {
        (MAX_RFC3339_SECS, 999)
    } else {
        (since.as_secs(), since.subsec_millis())
    };
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    let parts = [
        (year, 4, b'-'),
        (month, 2, b'-'),
        (day, 2, b'T'),
        (of_day / 3600, 2, b':'),
        (of_day / 60 % 60, 2, b':'),
        (of_day % 60, 2, b'.'),
        (u64::from(millis), 3, b'Z'),
    ];
    for (value, width, separator) in parts {
        push_padded(out, value, width);
        out.push(separator);
    }
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
