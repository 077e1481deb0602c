//! A raw WebSocket client on a plain `TcpStream`: it does the HTTP upgrade by hand and
//! then sends any frame, valid or not (unmasked, reserved opcodes, invalid UTF-8,
//! oversized), and reads only when told to. With a small receive buffer, a client that
//! never reads makes the server's writes block quickly.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

/// Opcodes (RFC 6455 §5.2).
pub(crate) const TEXT: u8 = 0x1;
pub(crate) const BINARY: u8 = 0x2;
pub(crate) const CLOSE: u8 = 0x8;
pub(crate) const PING: u8 = 0x9;
pub(crate) const PONG: u8 = 0xA;

/// One frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawFrame {
    pub(crate) opcode: u8,
    pub(crate) payload: Vec<u8>,
}

impl RawFrame {
    /// The close code and reason of a close frame.
    pub(crate) fn close(&self) -> Option<(u16, String)> {
        if self.opcode != CLOSE || self.payload.len() < 2 {
            return None;
        }
        let code = u16::from_be_bytes([self.payload[0], self.payload[1]]);
        Some((
            code,
            String::from_utf8_lossy(&self.payload[2..]).into_owned(),
        ))
    }

    pub(crate) fn text(&self) -> Option<&str> {
        (self.opcode == TEXT).then(|| std::str::from_utf8(&self.payload).ok())?
    }
}

/// How a raw client's handshake ended.
#[derive(Debug)]
pub(crate) enum Upgrade {
    /// 101: the socket is open.
    Switched(RawClient),
    /// Any other status, with the response (head and body).
    Refused(u16, String),
}

pub(crate) struct RawClient {
    stream: TcpStream,
    /// Bytes read past the frames returned so far.
    buffer: Vec<u8>,
}

impl std::fmt::Debug for RawClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawClient").finish_non_exhaustive()
    }
}

/// Connects to `addr` with a receive buffer of `recv_buffer` bytes (the kernel may round
/// it up), or the system default.
pub(crate) async fn tcp(addr: SocketAddr, recv_buffer: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    socket.connect(addr).await.unwrap()
}

/// Upgrades `stream` at `path` with `headers` (e.g. `Authorization`).
pub(crate) async fn upgrade(
    mut stream: TcpStream,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Upgrade {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("the handshake is answered within 10 s")
            .unwrap();
        assert!(n > 0, "the server closed during the handshake");
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    if status != 101 {
        // The body, as far as it arrives within a moment.
        let mut response = buffer;
        let mut chunk = [0u8; 1024];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(300), stream.read(&mut chunk)).await
        {
            if n == 0 {
                break;
            }
            response.extend_from_slice(&chunk[..n]);
        }
        return Upgrade::Refused(status, String::from_utf8_lossy(&response).into_owned());
    }
    buffer.drain(..head_end);
    Upgrade::Switched(RawClient { stream, buffer })
}

/// Connects and upgrades; panics unless the server switches protocols.
pub(crate) async fn connect(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    recv_buffer: Option<u32>,
) -> RawClient {
    match upgrade(tcp(addr, recv_buffer).await, addr, path, headers).await {
        Upgrade::Switched(client) => client,
        Upgrade::Refused(status, head) => panic!("refused with {status}: {head}"),
    }
}

/// Encodes one frame: `fin`, `opcode`, and the payload, masked with a fixed key when
/// `masked` (a client must mask; the server must refuse an unmasked frame).
pub(crate) fn encode(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(if fin { 0x80 } else { 0 } | (opcode & 0x0F));
    let mask_bit = if masked { 0x80 } else { 0 };
    // Lengths below 126 fit the second byte; 126 and 127 announce 16- and 64-bit ones.
    let len = payload.len();
    if len < 126 {
        frame.push(mask_bit | u8::try_from(len).unwrap());
    } else if let Ok(len) = u16::try_from(len) {
        frame.push(mask_bit | 0x7E);
        frame.extend_from_slice(&len.to_be_bytes());
    } else {
        frame.push(mask_bit | 0x7F);
        frame.extend_from_slice(&u64::try_from(len).unwrap().to_be_bytes());
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

impl RawClient {
    /// Writes raw bytes; returns whether the write succeeded (the server may be gone).
    pub(crate) async fn write_raw(&mut self, bytes: &[u8]) -> bool {
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.write_all(bytes)).await,
            Ok(Ok(()))
        )
    }

    /// Sends one frame; see [`encode`].
    pub(crate) async fn send(
        &mut self,
        fin: bool,
        opcode: u8,
        payload: &[u8],
        masked: bool,
    ) -> bool {
        self.write_raw(&encode(fin, opcode, payload, masked)).await
    }

    /// Sends a masked text frame.
    pub(crate) async fn text(&mut self, text: &str) -> bool {
        self.send(true, TEXT, text.as_bytes(), true).await
    }

    /// Sends a masked ping.
    pub(crate) async fn ping(&mut self) -> bool {
        self.send(true, PING, b"raw", true).await
    }

    /// Reads the next frame the server sent, within `wait`; `None` when the connection
    /// ended (or was reset) or nothing came in time.
    pub(crate) async fn read_frame(&mut self, wait: Duration) -> Option<RawFrame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((frame, used)) = decode(&self.buffer) {
                self.buffer.drain(..used);
                return Some(frame);
            }
            let mut chunk = vec![0u8; 64 * 1024];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await;
            match read {
                Ok(Ok(n)) if n > 0 => self.buffer.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Reads until the close frame, skipping and collecting text frames; `None` when the
    /// connection ended without one within `wait`.
    pub(crate) async fn read_close(
        &mut self,
        wait: Duration,
    ) -> (Option<(u16, String)>, Vec<String>) {
        let deadline = tokio::time::Instant::now() + wait;
        let mut texts = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_frame(left).await {
                Some(frame) if frame.opcode == CLOSE => return (frame.close(), texts),
                Some(frame) => {
                    if let Some(text) = frame.text() {
                        texts.push(text.to_owned());
                    }
                }
                None => return (None, texts),
            }
        }
    }

    /// Whether the server has closed the TCP connection: reads (and discards) whatever
    /// arrives until the end of the stream, within `wait`.
    pub(crate) async fn wait_eof(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }
}

/// Decodes one unmasked server frame from the front of `bytes`, with how many bytes it
/// used.
fn decode(bytes: &[u8]) -> Option<(RawFrame, usize)> {
    if bytes.len() < 2 {
        return None;
    }
    let opcode = bytes[0] & 0x0F;
    let (len, mut at) = match bytes[1] & 0x7F {
        126 => (
            usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])),
            4,
        ),
        127 => {
            let len: [u8; 8] = bytes.get(2..10)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(len)).ok()?, 10)
        }
        len => (usize::from(len), 2),
    };
    let mask = if bytes[1] & 0x80 != 0 {
        let key: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(key)
    } else {
        None
    };
    let payload = bytes.get(at..at + len)?;
    let payload = match mask {
        Some(key) => payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect(),
        None => payload.to_vec(),
    };
    Some((RawFrame { opcode, payload }, at + len))
}
