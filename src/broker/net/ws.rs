//! WebSocket framing: tungstenite decodes, the loop's own buffer holds what is encoded, frames read into events.

use super::tls::Stream;
use super::{Handler, MAX_FRAME, READ_BUDGET, READ_CHUNK, Server, State};
use std::io::{self, Read, Write};
use std::time::Instant;
use tungstenite::error::{Error as WsError, ProtocolError};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{CloseCode, Data as OpData, OpCode};
use tungstenite::protocol::{CloseFrame, Message, WebSocketConfig};

/// What one WebSocket read produced, detached from the borrow of the connection.
enum WsEvent {
    Text(String),
    Binary,
    Ping(tungstenite::Bytes),
    Nothing,
    Close(Option<CloseFrame>),
    WouldBlock,
    TooBig,
    Invalid(u16),
    Gone,
}

/// Lets tungstenite read frames but never write: the loop writes every byte itself, after the batch, so nothing
/// leaves before [`Handler::end_of_batch`] and output memory stays in one buffer it can shrink.
struct ReadOnly<'a> {
    tcp: &'a mut Stream,
    n: usize,
}

impl Read for ReadOnly<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        self.n += n;
        Ok(n)
    }
}

impl Write for ReadOnly<'_> {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

pub(super) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        .write_buffer_size(0)
        // tungstenite never writes (see ReadOnly), so it may queue nothing: its pong and close replies are
        // dropped and the loop sends its own.
        .max_write_buffer_size(1)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME))
}

pub(super) fn push_frame(buf: &mut Vec<u8>, frame: Frame) {
    // Formatting into a Vec cannot fail.
    let _ = frame.format(buf);
}

pub(super) fn text_frame(text: String) -> Frame {
    Frame::message(text.into_bytes(), OpCode::Data(OpData::Text), true)
}

pub(super) fn close_frame(code: u16, reason: &str) -> Frame {
    // A close frame's payload is at most 125 bytes: two for the code, the rest for the reason.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Frame::close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason[..end].to_string().into(),
    }))
}

pub(super) fn error_json(code: &str, message: &str) -> String {
    serde_json::json!({"type": "error", "code": code, "message": message}).to_string()
}

impl Server<'_> {
    pub(super) fn read_ws(&mut self, h: &mut impl Handler, idx: usize, now: Instant) {
        for _ in 0..READ_BUDGET {
            let Some(c) = self.conns.get_mut(idx) else {
                return;
            };
            let id = c.id;
            let State::Ws(ctx) = &mut c.state else { return };
            let mut r = ReadOnly {
                tcp: &mut c.tcp,
                n: 0,
            };
            let ev = match ctx.read(&mut r) {
                Ok(Message::Text(t)) => WsEvent::Text(t.as_str().to_string()),
                Ok(Message::Binary(_)) => WsEvent::Binary,
                Ok(Message::Ping(p)) => WsEvent::Ping(p),
                Ok(Message::Pong(_) | Message::Frame(_)) => WsEvent::Nothing,
                Ok(Message::Close(f)) => WsEvent::Close(f),
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => WsEvent::WouldBlock,
                Err(WsError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => WsEvent::Nothing,
                Err(WsError::Capacity(_)) => WsEvent::TooBig,
                Err(WsError::Utf8(_)) => WsEvent::Invalid(1007),
                Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                    WsEvent::Gone
                }
                Err(WsError::Protocol(_)) => WsEvent::Invalid(1002),
                Err(_) => WsEvent::Gone,
            };
            if r.n > 0 {
                c.heard = now;
                self.io.metrics.bytes_in += r.n as u64;
            }
            match ev {
                WsEvent::Text(t) => {
                    self.io.metrics.ws_messages_in += 1;
                    h.on_text(&mut self.io, id, &t);
                }
                WsEvent::Binary => {
                    let msg = error_json("malformed", "binary frames are not accepted");
                    push_frame(&mut c.wbuf, text_frame(msg));
                    self.mark(idx);
                }
                WsEvent::Ping(p) => {
                    push_frame(&mut c.wbuf, Frame::pong(p));
                    self.mark(idx);
                }
                WsEvent::Nothing => {}
                WsEvent::Close(f) => {
                    // Echo the client's code, as RFC 6455 §5.5.1 asks.
                    let reply = Frame::close(f.map(|f| CloseFrame {
                        code: f.code,
                        reason: "".into(),
                    }));
                    self.close_conn(idx, Some(reply), true, now);
                    return;
                }
                WsEvent::WouldBlock => return,
                WsEvent::TooBig => {
                    let msg = error_json(
                        "payload_too_large",
                        &format!("frame over {MAX_FRAME} bytes"),
                    );
                    push_frame(&mut c.wbuf, text_frame(msg));
                    self.close_conn(idx, Some(close_frame(1009, "frame too large")), true, now);
                    return;
                }
                WsEvent::Invalid(code) => {
                    self.close_conn(idx, Some(close_frame(code, "protocol error")), false, now);
                    return;
                }
                WsEvent::Gone => {
                    self.drop_conn(idx);
                    return;
                }
            }
        }
        let id = self.conns.get(idx).map_or(0, |c| c.id);
        self.again.push((idx, id));
    }
}
