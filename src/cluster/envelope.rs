//! The binary form of what one node publishes to the others: a small envelope that never
//! names a user (the channel it travels on carries the keyed user hash, nothing else).
//!
//! | bytes | field |
//! |---|---|
//! | 0 | format version, [`VERSION`] |
//! | 1 | kind: 1 text frame, 2 binary frame, 3 disconnect, 4 probe, 5 event |
//! | 2..18 | the publishing bus's instance id (random, 16 bytes): a node skips its own messages |
//! | 18.. | text: the UTF-8 text · binary: the bytes · disconnect: close code (u16, big endian) then the UTF-8 reason · probe: sequence (u64 BE) then send time (µs, u64 BE) · event: its position `<epoch>.<seq>`, a newline, the frame's UTF-8 text |
//!
//! Decoding never panics: anything else is an [`EnvelopeError`], counted and dropped.

use std::fmt;
use std::sync::Arc;

use crate::{CloseCode, CloseFrame, Frame, MAX_CLOSE_REASON_BYTES, ResumePoint};

/// The envelope format this crate writes and reads.
pub(crate) const VERSION: u8 = 1;

/// A bus instance id: random per [`Bus`](super::Bus), so that two processes started with
/// the same node id still tell their messages apart.
pub(crate) type Instance = [u8; 16];

const HEADER: usize = 2 + 16;

/// What one node tells the nodes that hold one user's sockets.
///
/// # Examples
///
/// ```
/// use wsctx::{CloseCode, CloseFrame, Frame};
/// use wsctx::cluster::ClusterMessage;
///
/// let chat = ClusterMessage::Frame(Frame::text("hello"));
/// let ban = ClusterMessage::Disconnect(CloseFrame::new(CloseCode::FORBIDDEN, "banned"));
/// assert_ne!(chat, ban);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterMessage {
    /// A text or binary frame for every socket of the user
    /// ([`ManagerFactory::send_to_user`](crate::ManagerFactory::send_to_user)).
    Frame(Frame),
    /// Close every socket of the user with this frame
    /// ([`ManagerFactory::disconnect_user`](crate::ManagerFactory::disconnect_user)).
    Disconnect(CloseFrame),
    /// An event frame at its position in the user's stream (published by the script
    /// that appends it to the stream).
    Event {
        /// The event's position.
        position: ResumePoint,
        /// The event frame, position included.
        frame: Arc<str>,
    },
}

/// A decoded envelope.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Envelope {
    /// A message for the user whose channel it came on.
    User(ClusterMessage),
    /// A bus's probe of its own subscription.
    Probe { sequence: u64, sent_us: u64 },
}

/// Why bytes on a channel are not an envelope. The message never quotes the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EnvelopeError {
    /// Shorter than the header, or a probe of the wrong length.
    Truncated,
    /// Another format version (a node running a newer or older crate).
    Version,
    /// A kind byte this version does not know.
    Kind,
    /// A text or a close reason that is not UTF-8, or a reason over the close frame limit.
    Text,
    /// A close code that may not be sent.
    CloseCode,
    /// The envelope is for a frame kind that is never published (a close frame).
    Unpublishable,
    /// An event without a valid position.
    Position,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "cluster envelope is truncated",
            Self::Version => "cluster envelope has another format version",
            Self::Kind => "cluster envelope has an unknown kind",
            Self::Text => "cluster envelope text is not valid",
            Self::CloseCode => "cluster envelope close code may not be sent",
            Self::Unpublishable => "a close frame is published as a disconnect, not a frame",
            Self::Position => "cluster envelope event has no valid position",
        })
    }
}

impl std::error::Error for EnvelopeError {}

const TEXT: u8 = 1;
const BINARY: u8 = 2;
const DISCONNECT: u8 = 3;
const PROBE: u8 = 4;
const EVENT: u8 = 5;

fn header(kind: u8, origin: &Instance, body: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(origin);
    out
}

/// Encodes `message` as published by `origin`.
///
/// # Errors
///
/// [`EnvelopeError::Unpublishable`] for a [`Frame::Close`]: closing every tab is a
/// [`ClusterMessage::Disconnect`].
pub(crate) fn encode(
    origin: &Instance,
    message: &ClusterMessage,
) -> Result<Vec<u8>, EnvelopeError> {
    Ok(match message {
        ClusterMessage::Frame(Frame::Text(text)) => {
            let mut out = header(TEXT, origin, text.len());
            out.extend_from_slice(text.as_bytes());
            out
        }
        ClusterMessage::Frame(Frame::Binary(bytes)) => {
            let mut out = header(BINARY, origin, bytes.len());
            out.extend_from_slice(bytes);
            out
        }
        ClusterMessage::Frame(Frame::Close(_)) => return Err(EnvelopeError::Unpublishable),
        ClusterMessage::Event { position, frame } => {
            let mut out = event_prefix(origin);
            out.extend_from_slice(position.to_string().as_bytes());
            out.push(b'\n');
            out.extend_from_slice(frame.as_bytes());
            out
        }
        ClusterMessage::Disconnect(frame) => {
            let reason = frame.reason.as_str();
            let mut out = header(DISCONNECT, origin, 2 + reason.len());
            out.extend_from_slice(&frame.code.as_u16().to_be_bytes());
            out.extend_from_slice(reason.as_bytes());
            out
        }
    })
}

/// The header of an event envelope: a script in Redis appends the position, a
/// newline and the frame.
pub(crate) fn event_prefix(origin: &Instance) -> Vec<u8> {
    header(EVENT, origin, 0)
}

/// Encodes a probe.
pub(crate) fn encode_probe(origin: &Instance, sequence: u64, sent_us: u64) -> Vec<u8> {
    let mut out = header(PROBE, origin, 16);
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&sent_us.to_be_bytes());
    out
}

/// Decodes an envelope: who published it and what it says.
///
/// # Errors
///
/// An [`EnvelopeError`] for anything that is not an envelope of this format version.
pub(crate) fn decode(bytes: &[u8]) -> Result<(Instance, Envelope), EnvelopeError> {
    let Some((head, body)) = bytes.split_at_checked(HEADER) else {
        return Err(EnvelopeError::Truncated);
    };
    if head[0] != VERSION {
        return Err(EnvelopeError::Version);
    }
    let mut origin = Instance::default();
    origin.copy_from_slice(&head[2..]);
    let envelope = match head[1] {
        TEXT => {
            let text = std::str::from_utf8(body).map_err(|_| EnvelopeError::Text)?;
            Envelope::User(ClusterMessage::Frame(Frame::Text(Arc::from(text))))
        }
        BINARY => Envelope::User(ClusterMessage::Frame(Frame::Binary(Arc::from(body)))),
        DISCONNECT => {
            let Some((code, reason)) = body.split_at_checked(2) else {
                return Err(EnvelopeError::Truncated);
            };
            let code = CloseCode::new(u16::from_be_bytes([code[0], code[1]]))
                .ok_or(EnvelopeError::CloseCode)?;
            let reason = std::str::from_utf8(reason).map_err(|_| EnvelopeError::Text)?;
            if reason.len() > MAX_CLOSE_REASON_BYTES {
                return Err(EnvelopeError::Text);
            }
            Envelope::User(ClusterMessage::Disconnect(CloseFrame::new(code, reason)))
        }
        EVENT => {
            let newline = body
                .iter()
                .position(|&b| b == b'\n')
                .ok_or(EnvelopeError::Position)?;
            let (position, frame) = (&body[..newline], &body[newline + 1..]);
            let position = std::str::from_utf8(position)
                .ok()
                .and_then(|text| text.parse::<ResumePoint>().ok())
                .filter(|point| point.seq() > 0)
                .ok_or(EnvelopeError::Position)?;
            let frame = std::str::from_utf8(frame).map_err(|_| EnvelopeError::Text)?;
            Envelope::User(ClusterMessage::Event {
                position,
                frame: Arc::from(frame),
            })
        }
        PROBE => {
            let (Some(sequence), Some(sent_us)) = (
                body.get(..8).and_then(|b| b.try_into().ok()),
                body.get(8..).and_then(|b| b.try_into().ok()),
            ) else {
                return Err(EnvelopeError::Truncated);
            };
            Envelope::Probe {
                sequence: u64::from_be_bytes(sequence),
                sent_us: u64::from_be_bytes(sent_us),
            }
        }
        _ => return Err(EnvelopeError::Kind),
    };
    Ok((origin, envelope))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CloseCode;

    const ME: Instance = [7; 16];

    fn round_trip(message: &ClusterMessage) {
        let bytes = encode(&ME, message).expect("publishable");
        assert_eq!(
            decode(&bytes),
            Ok((ME, Envelope::User(message.clone()))),
            "{message:?}"
        );
    }

    #[test]
    fn every_message_survives_the_wire() {
        round_trip(&ClusterMessage::Frame(Frame::text("héllo")));
        round_trip(&ClusterMessage::Frame(Frame::text("")));
        round_trip(&ClusterMessage::Frame(Frame::binary(vec![0, 255, 1])));
        round_trip(&ClusterMessage::Event {
            position: ResumePoint::new(u64::MAX, 7),
            frame: Arc::from("{\"seq\":7}\nsecond line"),
        });
        round_trip(&ClusterMessage::Disconnect(CloseFrame::new(
            CloseCode::FORBIDDEN,
            &"é".repeat(61),
        )));
        let probe = encode_probe(&ME, 3, u64::MAX);
        assert_eq!(
            decode(&probe),
            Ok((
                ME,
                Envelope::Probe {
                    sequence: 3,
                    sent_us: u64::MAX
                }
            ))
        );
    }

    #[test]
    fn a_close_frame_is_not_published() {
        let close = ClusterMessage::Frame(Frame::Close(CloseFrame::new(CloseCode::NORMAL, "")));
        assert_eq!(encode(&ME, &close), Err(EnvelopeError::Unpublishable));
    }

    #[test]
    fn bad_bytes_are_typed_errors() {
        let text = encode(&ME, &ClusterMessage::Frame(Frame::text("hi"))).expect("text");
        let disconnect = encode(
            &ME,
            &ClusterMessage::Disconnect(CloseFrame::new(CloseCode::FORBIDDEN, "x")),
        )
        .expect("disconnect");
        let with = |mut bytes: Vec<u8>, at: usize, value: u8| {
            bytes[at] = value;
            bytes
        };
        let cases: [(Vec<u8>, EnvelopeError); 8] = [
            (Vec::new(), EnvelopeError::Truncated),
            (text[..HEADER - 1].to_vec(), EnvelopeError::Truncated),
            (with(text.clone(), 0, VERSION + 1), EnvelopeError::Version),
            (with(text.clone(), 1, 9), EnvelopeError::Kind),
            (with(text.clone(), HEADER, 0xff), EnvelopeError::Text),
            (disconnect[..=HEADER].to_vec(), EnvelopeError::Truncated),
            (
                with(disconnect.clone(), HEADER, 0x03),
                EnvelopeError::CloseCode,
            ), // 0x0333 = 819
            (
                encode_probe(&ME, 1, 2)[..HEADER + 15].to_vec(),
                EnvelopeError::Truncated,
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode(&bytes), Err(expected), "{bytes:?}");
        }
        for bad in [
            &b"no newline"[..],
            b"00000000000000ff.0\n{}",
            b"ff.1\n{}",
            b"\n{}",
        ] {
            let mut event = event_prefix(&ME);
            event.extend_from_slice(bad);
            assert_eq!(decode(&event), Err(EnvelopeError::Position), "{bad:?}");
        }
        let mut event = event_prefix(&ME);
        event.extend_from_slice(b"00000000000000ff.1\n\xff");
        assert_eq!(decode(&event), Err(EnvelopeError::Text));
        let mut long = header(DISCONNECT, &ME, 0);
        long.extend_from_slice(&4403u16.to_be_bytes());
        long.extend_from_slice(&[b'a'; MAX_CLOSE_REASON_BYTES + 1]);
        assert_eq!(decode(&long), Err(EnvelopeError::Text));
    }
}
