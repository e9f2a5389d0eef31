//! Output: human lines or JSON Lines on stdout, one error line on stderr.
//!
//! Every line is flushed as soon as it is written, so a stream (`cm-topic tail | jq`) reaches the next program
//! while it happens rather than when a buffer fills. A closed stdout (`cm-peers | head -1`) is not an error: the
//! reader has what it wanted, so the tool exits 0 at once, as ripgrep does.

use std::fmt::Display;
use std::io::{self, Write};

use crate::error::{Error, Result};

/// Where a tool writes its results.
pub struct Out {
    /// `--json`: one JSON object per line.
    pub json: bool,
    sink: Sink,
}

enum Sink {
    Stdout,
    /// In memory, for tests.
    Buffer(Vec<u8>),
}

impl Out {
    /// Output to stdout.
    pub fn new(json: bool) -> Out {
        Out {
            json,
            sink: Sink::Stdout,
        }
    }

    /// Output kept in memory; read it with [`Out::captured`].
    pub fn capture(json: bool) -> Out {
        Out {
            json,
            sink: Sink::Buffer(Vec::new()),
        }
    }

    /// Everything written so far to a captured output (empty for stdout).
    pub fn captured(&self) -> String {
        match &self.sink {
            Sink::Buffer(b) => String::from_utf8_lossy(b).into_owned(),
            Sink::Stdout => String::new(),
        }
    }

    /// Writes one line of human text.
    pub fn line(&mut self, s: impl Display) -> Result<()> {
        match &mut self.sink {
            Sink::Buffer(b) => {
                // Writing into a Vec cannot fail.
                let _ = writeln!(b, "{s}");
                Ok(())
            }
            Sink::Stdout => {
                let mut o = io::stdout().lock();
                check(writeln!(o, "{s}").and_then(|()| o.flush()))
            }
        }
    }

    /// Writes bytes as they are (a secret's value to a pipe), flushed.
    pub fn bytes(&mut self, b: &[u8]) -> Result<()> {
        match &mut self.sink {
            Sink::Buffer(v) => {
                v.extend_from_slice(b);
                Ok(())
            }
            Sink::Stdout => {
                let mut o = io::stdout().lock();
                check(o.write_all(b).and_then(|()| o.flush()))
            }
        }
    }

    /// Whether what is written reaches a terminal, where a secret is shown only when asked for.
    pub fn is_terminal(&self) -> bool {
        matches!(self.sink, Sink::Stdout) && stdout_is_tty()
    }

    /// Writes `v` as one compact JSON line.
    pub fn json(&mut self, v: &impl serde::Serialize) -> Result<()> {
        let s =
            serde_json::to_string(v).map_err(|e| Error::internal(format!("encoding JSON: {e}")))?;
        self.line(s)
    }

    /// Flushes stdout.
    pub fn flush(&mut self) -> Result<()> {
        match self.sink {
            Sink::Buffer(_) => Ok(()),
            Sink::Stdout => check(io::stdout().lock().flush()),
        }
    }
}

/// Turns a write error into ours, and a closed pipe into a successful exit.
fn check(r: io::Result<()>) -> Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Error::from(e).context("writing to stdout")),
    }
}

static TOOL: std::sync::Mutex<&'static str> = std::sync::Mutex::new("claudemesh");

/// Names the running tool for [`notice`]; [`crate::cli::main`] does it first thing (again when `cm VERB` hands
/// over to a tool).
pub fn set_tool(name: &'static str) {
    *TOOL.lock().unwrap_or_else(|e| e.into_inner()) = name;
}

/// Writes `msg` on stderr under the running tool's name: a word from the library on what it is doing.
pub fn notice(msg: impl Display) {
    let tool = *TOOL.lock().unwrap_or_else(|e| e.into_inner());
    warn(tool, msg);
}

/// Writes `tool: msg` as one line on stderr. A failure to write it is ignored: there is nowhere left to say so.
pub fn warn(tool: &str, msg: impl Display) {
    let msg = msg.to_string().replace('\n', " ");
    let _ = writeln!(io::stderr().lock(), "{tool}: {msg}");
}

/// Whether stdout is a terminal.
pub fn stdout_is_tty() -> bool {
    // SAFETY: isatty only looks at the descriptor number; any value is allowed.
    unsafe { libc::isatty(libc::STDOUT_FILENO) == 1 }
}

/// Whether stderr is a terminal.
pub fn stderr_is_tty() -> bool {
    // SAFETY: as in stdout_is_tty.
    unsafe { libc::isatty(libc::STDERR_FILENO) == 1 }
}

/// `ab12cd34`: enough of an id to type it back.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// `2026-05-04T09:00:00Z`: RFC 3339 UTC, without milliseconds when there are none.
pub fn short_time(ms: i64) -> String {
    let s = crate::time::fmt_rfc3339(ms);
    match s.strip_suffix(".000Z") {
        Some(t) => format!("{t}Z"),
        None => s,
    }
}

/// A JSON event as one line with its `type` first and the other keys in the order they were inserted.
pub fn event_line(v: &serde_json::Value) -> String {
    use serde_json::Value;
    let Value::Object(map) = v else {
        return v.to_string();
    };
    let Some(ty) = map.get("type") else {
        return v.to_string();
    };
    let mut s = format!("{{\"type\":{ty}");
    for (k, x) in map.iter().filter(|(k, _)| *k != "type") {
        s += &format!(",{}:{x}", Value::String(k.clone()));
    }
    s + "}"
}

/// `ab12cd34…`: enough of a key to recognise it.
pub fn short_key(key: &str) -> String {
    format!("{}…", key.get(..8).unwrap_or(key))
}

/// A time in the local time zone: `12:00:01` when it is today, else `2026-05-03 12:00:01`.
pub fn local_time(ms: i64, now_ms: i64) -> String {
    let (Some(t), Some(today)) = (local(ms), local(now_ms)) else {
        // No local time zone: fall back on UTC, marked.
        let s = crate::time::fmt_rfc3339(ms);
        return format!(
            "{} {}Z",
            s.get(..10).unwrap_or(&s),
            s.get(11..19).unwrap_or("")
        );
    };
    let clock = format!("{:02}:{:02}:{:02}", t.tm_hour, t.tm_min, t.tm_sec);
    if (t.tm_year, t.tm_yday) == (today.tm_year, today.tm_yday) {
        clock
    } else {
        format!(
            "{:04}-{:02}-{:02} {clock}",
            t.tm_year + 1900,
            t.tm_mon + 1,
            t.tm_mday
        )
    }
}

fn local(ms: i64) -> Option<libc::tm> {
    let secs = libc::time_t::try_from(ms.div_euclid(1000)).ok()?;
    // SAFETY: localtime_r only writes into the tm we pass, and reads `secs`; a zeroed tm is a valid value.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            None
        } else {
            Some(tm)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_lines_and_json() {
        let mut out = Out::capture(true);
        out.line("hello").unwrap();
        out.json(&serde_json::json!({"type": "x", "n": 1})).unwrap();
        out.flush().unwrap();
        assert_eq!(out.captured(), "hello\n{\"type\":\"x\",\"n\":1}\n");
        assert!(out.json);
    }

    #[test]
    fn events_put_their_type_first() {
        let v =
            serde_json::json!({"state": "connected", "type": "connection", "a": {"b": "\"q\""}});
        assert_eq!(
            event_line(&v),
            r#"{"type":"connection","state":"connected","a":{"b":"\"q\""}}"#
        );
        assert_eq!(event_line(&serde_json::json!({"x": 1})), r#"{"x":1}"#);
    }

    #[test]
    fn short_keys() {
        assert_eq!(short_key(&"ab".repeat(32)), "abababab…");
        assert_eq!(short_key("abc"), "abc…");
    }
}
