//! The original claudemesh broker, as far as our tools can tell it apart from cm-broker: a proxy in front of a
//! real cm-broker that does what the original does where the two differ (reference §7.4, broker-protocol.md):
//!
//! - `hello_ack` carries no `features`;
//! - a frame the original does not know (`members`, `inbox_fetch`, `get_profile`, `notifications_*`, `file_*`,
//!   `topic_key`, `topic_pending_seals`, `topic_seal`, `del_state`, `release_task`) is dropped without a word;
//! - `set_state`, `set_status`, `set_summary`, `join_group`, `leave_group`, `topic_join`, `topic_leave` and
//!   `topic_mark_read` are done and answered with nothing (the proxy takes their `_reqId` off, and cm-broker
//!   answers none without one);
//! - `topic_history_response` has no `topicId`;
//! - `context_shared` echoes no `_reqId` (and says nothing of `replaced`, our addition);
//! - the `"pull"` capability means nothing: queued messages are pushed to every connection at its hello.
//!
//! Plain HTTP (the REST routes, `/health`, `/join`) passes through unchanged. The frames the proxy dropped are
//! counted, so a test can tell that a tool did not even try.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

use crate::harness::Broker;

/// Frames the original broker does not know: it drops them and answers nothing.
pub const UNKNOWN_THERE: &[&str] = &[
    "members",
    "inbox_fetch",
    "get_profile",
    "notifications_list",
    "notifications_read",
    "file_put",
    "file_chunk",
    "file_chunk_ack",
    "file_put_done",
    "file_get",
    "file_list",
    "file_rm",
    "topic_key",
    "topic_pending_seals",
    "topic_seal",
    "del_state",
    "release_task",
    "reserve_paths",
    "release_paths",
    "list_reservations",
];

/// Frames the original broker takes and answers nothing to.
pub const UNANSWERED_THERE: &[&str] = &[
    "set_state",
    "set_status",
    "set_summary",
    "join_group",
    "leave_group",
    "topic_join",
    "topic_leave",
    "topic_mark_read",
];

/// A listening imitation of the original broker in front of `broker`; it stops with the test process.
pub struct Original {
    pub addr: SocketAddr,
    /// The `type`s of the frames it dropped, in order.
    dropped: Arc<Mutex<Vec<String>>>,
    conns: Arc<AtomicUsize>,
}

impl Original {
    pub fn start(broker: &Broker) -> Original {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let upstream = broker.addr;
        let dropped = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(AtomicUsize::new(0));
        let (d, c) = (dropped.clone(), conns.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                let d = d.clone();
                c.fetch_add(1, Ordering::Relaxed);
                std::thread::spawn(move || serve(s, upstream, d));
            }
        });
        Original {
            addr,
            dropped,
            conns,
        }
    }

    /// The WebSocket URL tools are given, as they would be given the original's.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The frames dropped so far, by type.
    pub fn dropped(&self) -> Vec<String> {
        self.dropped.lock().unwrap().clone()
    }
}

fn serve(mut client: TcpStream, upstream: SocketAddr, dropped: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    if !text.contains("upgrade: websocket") {
        // Plain HTTP: byte for byte, both ways.
        if up.write_all(&head).is_err() {
            return;
        }
        pipe_bytes(client, up);
        return;
    }
    let key = String::from_utf8_lossy(&head[..end])
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        tungstenite::handshake::derive_accept_key(key.as_bytes())
    );
    if client.write_all(answer.as_bytes()).is_err() {
        return;
    }
    let Ok((up_ws, _)) =
        tungstenite::client(format!("ws://{upstream}/ws"), up.try_clone().unwrap())
    else {
        return;
    };
    let rest = head[end..].to_vec();
    let client_r =
        WebSocket::from_partially_read(client.try_clone().unwrap(), rest, Role::Server, None);
    let client_w = WebSocket::from_raw_socket(client.try_clone().unwrap(), Role::Server, None);
    let up_w = WebSocket::from_raw_socket(up.try_clone().unwrap(), Role::Client, None);
    let (c2, u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
    let toward_broker = std::thread::spawn(move || {
        relay(client_r, up_w, |v| to_broker(v, &dropped));
        let _ = c2.shutdown(Shutdown::Both);
        let _ = u2.shutdown(Shutdown::Both);
    });
    relay(up_ws, client_w, from_broker);
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
    let _ = toward_broker.join();
}

/// Copies text frames from `from` to `to` through `edit` (`None`: dropped) until either side closes.
fn relay(
    mut from: WebSocket<TcpStream>,
    mut to: WebSocket<TcpStream>,
    edit: impl Fn(Value) -> Option<Value>,
) {
    loop {
        match from.read() {
            Ok(Message::Text(t)) => {
                let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                    if to.send(Message::Text(t)).is_err() {
                        return;
                    }
                    continue;
                };
                if let Some(v) = edit(v)
                    && to.send(Message::text(v.to_string())).is_err()
                {
                    return;
                }
            }
            Ok(Message::Close(f)) => {
                let _ = to.close(f);
                let _ = to.flush();
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

fn to_broker(mut v: Value, dropped: &Mutex<Vec<String>>) -> Option<Value> {
    let ty = v["type"].as_str().unwrap_or_default().to_string();
    if UNKNOWN_THERE.contains(&ty.as_str()) {
        dropped.lock().unwrap().push(ty);
        return None;
    }
    if UNANSWERED_THERE.contains(&ty.as_str())
        && let Some(o) = v.as_object_mut()
    {
        o.remove("_reqId");
    }
    if (ty == "hello" || ty == "session_hello")
        && let Some(o) = v.as_object_mut()
    {
        o.remove("capabilities");
    }
    Some(v)
}

fn from_broker(mut v: Value) -> Option<Value> {
    let strip: &[&str] = match v["type"].as_str() {
        Some("hello_ack") => &["features"],
        Some("topic_history_response") => &["topicId"],
        Some("context_shared") => &["_reqId", "replaced"],
        _ => return Some(v),
    };
    if let Some(o) = v.as_object_mut() {
        for k in strip {
            o.remove(*k);
        }
    }
    Some(v)
}

fn pipe_bytes(client: TcpStream, up: TcpStream) {
    let (mut c1, mut u1) = (client.try_clone().unwrap(), up.try_clone().unwrap());
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut u1, &mut c1);
        let _ = c1.shutdown(Shutdown::Write);
    });
    let (mut c, mut u) = (client, up);
    let _ = std::io::copy(&mut c, &mut u);
    let _ = u.shutdown(Shutdown::Write);
    let _ = back.join();
}
