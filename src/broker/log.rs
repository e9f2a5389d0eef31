//! The broker's log: one line per event on stderr, as text for people or JSON for collectors.
//!
//! Text: `2026-11-28T15:00:00.123Z INFO listening addr=127.0.0.1:7900`.
//! JSON: `{"ts":"2026-11-28T15:00:00.123Z","level":"info","msg":"listening","addr":"127.0.0.1:7900"}`.
//! Each line is written with one `write` so lines from a crash or a pipe never interleave.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `TIME LEVEL msg key=value ...`
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

static JSON: AtomicBool = AtomicBool::new(false);

/// Sets the format of every later line.
pub fn set_format(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
}

/// Logs an event that is part of normal operation.
pub fn info(msg: &str, fields: &[(&str, &dyn Display)]) {
    emit("info", msg, fields);
}

/// Logs something unusual the broker recovered from.
pub fn warn(msg: &str, fields: &[(&str, &dyn Display)]) {
    emit("warn", msg, fields);
}

/// Logs a failure.
pub fn error(msg: &str, fields: &[(&str, &dyn Display)]) {
    emit("error", msg, fields);
}

fn emit(level: &str, msg: &str, fields: &[(&str, &dyn Display)]) {
    let ts = rfc3339_now();
    let line = if JSON.load(Ordering::Relaxed) {
        json_line(&ts, level, msg, fields)
    } else {
        text_line(&ts, level, msg, fields)
    };
    // Under the test harness the line goes where it captures output, so a passing run stays quiet.
    #[cfg(test)]
    eprint!("{line}");
    // A log line that cannot be written has nowhere else to go.
    #[cfg(not(test))]
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
}

fn json_line(ts: &str, level: &str, msg: &str, fields: &[(&str, &dyn Display)]) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("ts".into(), ts.into());
    obj.insert("level".into(), level.into());
    obj.insert("msg".into(), msg.into());
    for (k, v) in fields {
        obj.insert((*k).to_string(), v.to_string().into());
    }
    let mut line = serde_json::Value::Object(obj).to_string();
    line.push('\n');
    line
}

fn text_line(ts: &str, level: &str, msg: &str, fields: &[(&str, &dyn Display)]) -> String {
    let mut line = format!("{ts} {} {msg}", level.to_ascii_uppercase());
    for (k, v) in fields {
        let v = v.to_string();
        // Quote values a reader could not split back apart; newlines would break one-line-per-event.
        if v.is_empty() || v.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
            line.push_str(&format!(" {k}={v:?}"));
        } else {
            line.push_str(&format!(" {k}={v}"));
        }
    }
    line.push('\n');
    line
}

fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_millis() as i64)
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_878_000_123), "2026-11-28T15:00:00.123Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn formats_lines() {
        let n = 3;
        let f: &[(&str, &dyn Display)] = &[("conns", &n), ("why", &"too many"), ("k", &"")];
        assert_eq!(
            text_line("T", "info", "hello", f),
            "T INFO hello conns=3 why=\"too many\" k=\"\"\n"
        );
        let j: serde_json::Value =
            serde_json::from_str(&json_line("T", "warn", "hello", f)).unwrap();
        assert_eq!(j["level"], "warn");
        assert_eq!(j["msg"], "hello");
        assert_eq!(j["conns"], "3");
        assert_eq!(j["why"], "too many");
    }
}
