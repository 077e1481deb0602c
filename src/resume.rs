//! [`ResumePoint`]: where a reconnecting client left off in its user's event stream.
//!
//! Every event sent to a user carries the user's current **epoch** (a random 64-bit id of
//! that user's replay ring, written as 16 lowercase hex digits) and a **sequence number**
//! in it (1 for the first event of an epoch, then 2, 3, …). A client remembers the last
//! pair it saw and presents it as `<epoch>.<seq>` when it reconnects; `<epoch>.0` means
//! "nothing seen yet in this epoch".

use std::fmt;

/// The number of hex digits of an epoch.
const EPOCH_DIGITS: usize = 16;

/// The longest text [`ResumePoint::from_str`] can accept: 16 hex digits, the dot and the
/// 20 digits of `u64::MAX`.
const MAX_TEXT_BYTES: usize = EPOCH_DIGITS + 1 + 20;

/// The last event a client saw: an epoch and a sequence number in it.
///
/// Written `<epoch>.<seq>`: the epoch as exactly 16 lowercase hex digits, the sequence
/// number in decimal without sign or leading zeros (`0` itself is allowed and means
/// "nothing seen yet"). Parsing is strict and refuses everything else with a
/// [`ResumePointError`] that never contains the input.
///
/// # Examples
///
/// ```
/// use wsctx::ResumePoint;
///
/// let point: ResumePoint = "00c0ffee00c0ffee.42".parse()?;
/// assert_eq!(point.epoch(), 0x00c0_ffee_00c0_ffee);
/// assert_eq!(point.seq(), 42);
/// assert_eq!(point.to_string(), "00c0ffee00c0ffee.42");
///
/// assert!("00C0FFEE00C0FFEE.42".parse::<ResumePoint>().is_err()); // upper case
/// assert!("00c0ffee00c0ffee.042".parse::<ResumePoint>().is_err()); // leading zero
/// # Ok::<(), wsctx::ResumePointError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResumePoint {
    epoch: u64,
    seq: u64,
}

impl ResumePoint {
    /// The point `seq` in `epoch`.
    ///
    /// # Examples
    ///
    /// ```
    /// let point = wsctx::ResumePoint::new(255, 0);
    /// assert_eq!(point.to_string(), "00000000000000ff.0");
    /// ```
    #[must_use]
    pub const fn new(epoch: u64, seq: u64) -> Self {
        Self { epoch, seq }
    }

    /// The epoch: the id of the user's replay ring when the client saw the event.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::ResumePoint::new(7, 1).epoch(), 7);
    /// ```
    #[must_use]
    pub const fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The sequence number of the last event the client saw; 0 when it saw none in this
    /// epoch.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::ResumePoint::new(7, 1).seq(), 1);
    /// ```
    #[must_use]
    pub const fn seq(&self) -> u64 {
        self.seq
    }

    /// Parses `<epoch>.<seq>`; the same as [`str::parse`].
    ///
    /// # Errors
    ///
    /// [`ResumePointError::Format`] when there is no single `.` or the text is longer
    /// than any point; [`ResumePointError::Epoch`] when the epoch is not 16 lowercase hex
    /// digits; [`ResumePointError::Seq`] when the sequence number is not a decimal `u64`
    /// without sign or leading zeros.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{ResumePoint, ResumePointError};
    ///
    /// assert_eq!(ResumePoint::parse("ffffffffffffffff.18446744073709551615")?,
    ///     ResumePoint::new(u64::MAX, u64::MAX));
    /// assert_eq!(ResumePoint::parse("12ab"), Err(ResumePointError::Format));
    /// assert_eq!(ResumePoint::parse("12ab.1"), Err(ResumePointError::Epoch));
    /// assert_eq!(ResumePoint::parse("00000000000012ab.+1"), Err(ResumePointError::Seq));
    /// # Ok::<(), ResumePointError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self, ResumePointError> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(ResumePointError::Format);
        }
        let Some((epoch, seq)) = text.split_once('.') else {
            return Err(ResumePointError::Format);
        };
        Ok(Self {
            epoch: parse_epoch(epoch)?,
            seq: parse_seq(seq)?,
        })
    }
}

/// Exactly 16 lowercase hex digits.
fn parse_epoch(text: &str) -> Result<u64, ResumePointError> {
    if text.len() != EPOCH_DIGITS {
        return Err(ResumePointError::Epoch);
    }
    text.bytes().try_fold(0_u64, |epoch, byte| {
        let digit = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            _ => return Err(ResumePointError::Epoch),
        };
        Ok(epoch << 4 | u64::from(digit))
    })
}

/// `0`, or a decimal number without sign or leading zeros that fits a `u64`.
fn parse_seq(text: &str) -> Result<u64, ResumePointError> {
    let well_formed = match text.as_bytes() {
        [] => false,
        [b'0'] => true,
        [first, rest @ ..] => matches!(first, b'1'..=b'9') && rest.iter().all(u8::is_ascii_digit),
    };
    if !well_formed {
        return Err(ResumePointError::Seq);
    }
    // Only digits are left, so the one failure is overflow.
    text.parse().map_err(|_| ResumePointError::Seq)
}

impl fmt::Display for ResumePoint {
    /// `<epoch as 16 lowercase hex digits>.<seq in decimal>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}.{}", self.epoch, self.seq)
    }
}

impl_str_parse!(ResumePoint, ResumePointError, parse);

/// Why a text is not a [`ResumePoint`]. Messages are fixed and never contain the input.
///
/// # Examples
///
/// ```
/// use wsctx::{ResumePoint, ResumePointError};
///
/// let error = "zzzzzzzzzzzzzzzz.1".parse::<ResumePoint>().unwrap_err();
/// assert_eq!(error, ResumePointError::Epoch);
/// assert_eq!(error.to_string(), "resume point epoch is not 16 lowercase hex digits");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ResumePointError {
    /// Not `<epoch>.<seq>`: no `.`, or longer than any resume point.
    #[error("resume point is not of the form <epoch>.<seq>")]
    Format,
    /// The epoch is not exactly 16 lowercase hex digits.
    #[error("resume point epoch is not 16 lowercase hex digits")]
    Epoch,
    /// The sequence number is not a decimal `u64` without sign or leading zeros.
    #[error("resume point sequence is not a decimal number without sign or leading zeros")]
    Seq,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip_at_the_edges() {
        for (epoch, seq) in [
            (0, 0),
            (0, 1),
            (u64::MAX, u64::MAX),
            (0x0123_4567_89ab_cdef, 10),
        ] {
            let point = ResumePoint::new(epoch, seq);
            let text = point.to_string();
            assert_eq!(text.len(), 17 + seq.to_string().len());
            assert_eq!(text.parse(), Ok(point), "{text}");
        }
    }

    #[test]
    fn refuses_every_malformed_shape_with_its_own_error() {
        let epoch = "0123456789abcdef";
        let cases: [(&str, ResumePointError); 20] = [
            ("", ResumePointError::Format),
            ("0123456789abcdef", ResumePointError::Format),
            (".", ResumePointError::Epoch),
            ("0123456789abcdef.", ResumePointError::Seq),
            (".1", ResumePointError::Epoch),
            ("0123456789abcde.1", ResumePointError::Epoch),
            ("0123456789abcdef0.1", ResumePointError::Epoch),
            ("0123456789ABCDEF.1", ResumePointError::Epoch),
            ("0123456789abcdeg.1", ResumePointError::Epoch),
            ("0x23456789abcdef.1", ResumePointError::Epoch),
            (" 123456789abcdef.1", ResumePointError::Epoch),
            ("0123456789abcdef.01", ResumePointError::Seq),
            ("0123456789abcdef.00", ResumePointError::Seq),
            ("0123456789abcdef.+1", ResumePointError::Seq),
            ("0123456789abcdef.-1", ResumePointError::Seq),
            ("0123456789abcdef.1 ", ResumePointError::Seq),
            ("0123456789abcdef.1.2", ResumePointError::Seq),
            (
                "0123456789abcdef.18446744073709551616",
                ResumePointError::Seq,
            ),
            ("0123456789abcdef.١", ResumePointError::Seq),
            (
                "0123456789abcdef.184467440737095516150",
                ResumePointError::Format,
            ),
        ];
        for (text, error) in cases {
            assert_eq!(ResumePoint::parse(text), Err(error), "{text:?}");
        }
        assert_eq!(
            ResumePoint::parse(&format!("{epoch}.18446744073709551615")),
            Ok(ResumePoint::new(0x0123_4567_89ab_cdef, u64::MAX))
        );
    }

    #[test]
    fn error_messages_are_lowercase_and_fixed() {
        for error in [
            ResumePointError::Format,
            ResumePointError::Epoch,
            ResumePointError::Seq,
        ] {
            let message = error.to_string();
            assert_eq!(message, message.to_lowercase());
        }
    }
}
