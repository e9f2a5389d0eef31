//! Cron expressions: the five standard fields, evaluated in UTC or at a fixed offset from it.
//!
//! The dialect is Vixie cron's, so a crontab line means here what it means there: `*`, numbers, ranges `a-b`,
//! steps `*/n`, `a-b/n` and `a/n`, comma lists, month names `jan`..`dec` and weekday names `sun`..`sat`, `0` and
//! `7` both Sunday, and the day-of-month and day-of-week fields ORed when both are restricted (a field that starts
//! with `*` counts as unrestricted, as in Vixie cron). `@yearly`, `@monthly`, `@weekly`, `@daily` (`@midnight`)
//! and `@hourly` are accepted too.
//!
//! Time zones are fixed offsets (`+02:00`, `-0530`): there is no time zone database here, so a schedule in a zone
//! with daylight saving time needs its offset changed when the clocks change.
//!
//! [`Cron::next_after`] skips whole months, days and hours that cannot match instead of stepping minute by minute,
//! so even an expression that never fires (`0 0 30 2 *`) is found out in a few thousand steps.

use std::fmt;

use crate::error::{Error, Result};
use crate::time::{civil_from_days, days_from_civil};

const MINUTES_PER_DAY: i64 = 1440;
/// How far ahead [`Cron::next_after`] looks: past eight years, so 29 February is found across 2100.
const HORIZON_DAYS: i64 = 9 * 366;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// Bit n: minute n (0-59).
    minute: u64,
    /// Bit n: hour n (0-23).
    hour: u32,
    /// Bit n: day of month n (1-31).
    dom: u32,
    /// Bit n: month n (1-12).
    month: u16,
    /// Bit n: weekday n (0-6, Sunday 0).
    dow: u8,
    dom_star: bool,
    dow_star: bool,
    text: String,
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn bad(expr: &str, why: impl fmt::Display) -> Error {
    Error::usage(format!("invalid cron expression {expr:?}: {why}"))
}

/// One field as a bit set over `lo..=hi`.
fn field(expr: &str, what: &str, s: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64> {
    let value = |v: &str| -> Result<u32> {
        let n = match v.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let lower = v.to_ascii_lowercase();
                let i = names.iter().position(|n| *n == lower).ok_or_else(|| {
                    bad(expr, format_args!("{what} {v:?} is not a number or a name"))
                })?;
                // Month names start at 1, weekday names at 0; `lo` is where each field starts.
                u32::try_from(i).unwrap_or(0) + lo
            }
        };
        if n < lo || n > hi {
            return Err(bad(
                expr,
                format_args!("{what} {n} is out of range {lo}-{hi}"),
            ));
        }
        Ok(n)
    };
    let mut bits = 0u64;
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => {
                let st = st.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(|| {
                    bad(
                        expr,
                        format_args!("{what} step {st:?} is not a positive number"),
                    )
                })?;
                (r, Some(st))
            }
            None => (part, None),
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            "" => return Err(bad(expr, format_args!("empty {what} in {s:?}"))),
            r => match r.split_once('-') {
                Some((x, y)) => (value(x)?, value(y)?),
                // `a/n` means from a to the end, as cronie reads it.
                None if step.is_some() => (value(r)?, hi),
                None => {
                    let v = value(r)?;
                    (v, v)
                }
            },
        };
        if a > b {
            return Err(bad(
                expr,
                format_args!("{what} range {a}-{b} runs backwards"),
            ));
        }
        let step = step.unwrap_or(1) as usize;
        for v in (a..=b).step_by(step) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

impl Cron {
    /// Parses five fields (minute hour day-of-month month day-of-week) or one of the `@` names.
    pub fn parse(expr: &str) -> Result<Cron> {
        let text = expr.split_whitespace().collect::<Vec<_>>().join(" ");
        let expanded = match text.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            t if t.starts_with('@') => return Err(bad(expr, "unknown @ name")),
            _ => text.as_str(),
        };
        let f: Vec<&str> = expanded.split(' ').collect();
        let [mi, h, dom, mon, dow] = f.as_slice() else {
            return Err(bad(
                expr,
                format_args!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
                    f.len()
                ),
            ));
        };
        let dow_bits = field(expr, "day-of-week", dow, 0, 7, &DAYS)?;
        // 7 is Sunday too.
        let dow_bits = (dow_bits | (dow_bits >> 7)) & 0x7f;
        Ok(Cron {
            minute: field(expr, "minute", mi, 0, 59, &[])?,
            hour: field(expr, "hour", h, 0, 23, &[])? as u32,
            dom: field(expr, "day-of-month", dom, 1, 31, &[])? as u32,
            month: field(expr, "month", mon, 1, 12, &MONTHS)? as u16,
            dow: dow_bits as u8,
            dom_star: dom.starts_with('*'),
            dow_star: dow.starts_with('*'),
            text,
        })
    }

    fn day_matches(&self, dom: u32, dow: u32) -> bool {
        let d = self.dom & (1 << dom) != 0;
        let w = self.dow & (1 << dow) != 0;
        if self.dom_star || self.dow_star {
            d && w
        } else {
            d || w
        }
    }

    /// The first matching minute strictly after `after_ms`, in ms since the epoch, with the fields read at
    /// `offset_min` minutes east of UTC. `None` when nothing matches within eight years (`0 0 31 2 *`).
    pub fn next_after(&self, after_ms: i64, offset_min: i32) -> Option<i64> {
        let offset_ms = i64::from(offset_min) * 60_000;
        // Minutes since the epoch on the local wall clock.
        let mut t = (after_ms.checked_add(offset_ms)?).div_euclid(60_000) + 1;
        let end = t + HORIZON_DAYS * MINUTES_PER_DAY;
        while t < end {
            let days = t.div_euclid(MINUTES_PER_DAY);
            let (y, m, d) = civil_from_days(days);
            if self.month & (1 << m) == 0 {
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                t = days_from_civil(ny, nm, 1) * MINUTES_PER_DAY;
                continue;
            }
            // 1970-01-01 was a Thursday.
            let dow = (days + 4).rem_euclid(7) as u32;
            if !self.day_matches(d, dow) {
                t = (days + 1) * MINUTES_PER_DAY;
                continue;
            }
            let in_day = t.rem_euclid(MINUTES_PER_DAY);
            let (h, mi) = ((in_day / 60) as u32, (in_day % 60) as u32);
            if self.hour & (1 << h) == 0 {
                t = match (h + 1..24).find(|x| self.hour & (1 << x) != 0) {
                    Some(nh) => days * MINUTES_PER_DAY + i64::from(nh) * 60,
                    None => (days + 1) * MINUTES_PER_DAY,
                };
                continue;
            }
            match (mi..60).find(|x| self.minute & (1 << x) != 0) {
                Some(nm) => {
                    let at = days * MINUTES_PER_DAY + i64::from(h) * 60 + i64::from(nm);
                    return Some(at * 60_000 - offset_ms);
                }
                None => t = days * MINUTES_PER_DAY + i64::from(h + 1) * 60,
            }
        }
        None
    }
}

/// Parses a fixed UTC offset: `Z`, `UTC`, `+02:00`, `-0530` or `+2`. Returns minutes east of UTC.
pub fn parse_offset(s: &str) -> Result<i32> {
    let t = s.trim();
    let bad = || {
        Error::usage(format!(
            "not a UTC offset: {s:?} (expected e.g. +02:00, -0530 or UTC; time zone names are not supported)"
        ))
    };
    if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
        return Ok(0);
    }
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.is_empty()
        || !digits.bytes().all(|c| c.is_ascii_digit())
        || rest.matches(':').count() > 1
    {
        return Err(bad());
    }
    let (h, m) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().map_err(|_| bad())?, 0),
        4 => (
            digits[..2].parse::<i32>().map_err(|_| bad())?,
            digits[2..].parse::<i32>().map_err(|_| bad())?,
        ),
        _ => return Err(bad()),
    };
    if h > 18 || m > 59 || (rest.contains(':') && digits.len() != 4) {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}

/// `+02:00`, `-05:30`, `+00:00`.
pub fn fmt_offset(min: i32) -> String {
    let sign = if min < 0 { '-' } else { '+' };
    let a = min.unsigned_abs();
    format!("{sign}{:02}:{:02}", a / 60, a % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{fmt_rfc3339, parse_rfc3339};

    fn next(expr: &str, after: &str) -> String {
        next_tz(expr, after, 0)
    }

    fn next_tz(expr: &str, after: &str, off: i32) -> String {
        let c = Cron::parse(expr).unwrap();
        fmt_rfc3339(c.next_after(parse_rfc3339(after).unwrap(), off).unwrap())
    }

    #[test]
    fn fields_and_steps() {
        assert_eq!(
            next("* * * * *", "2026-01-01T10:00:30Z"),
            "2026-01-01T10:01:00.000Z"
        );
        // Strictly after: a time on the minute moves on.
        assert_eq!(
            next("* * * * *", "2026-01-01T10:00:00Z"),
            "2026-01-01T10:01:00.000Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-01-01T10:16:00Z"),
            "2026-01-01T10:30:00.000Z"
        );
        assert_eq!(
            next("5,10-12 9 * * *", "2026-01-01T09:10:00Z"),
            "2026-01-01T09:11:00.000Z"
        );
        assert_eq!(
            next("0 9 * * *", "2026-01-01T09:00:00Z"),
            "2026-01-02T09:00:00.000Z"
        );
        assert_eq!(
            next("30 22/3 * * *", "2026-01-01T23:00:00Z"),
            "2026-01-02T22:30:00.000Z"
        );
        assert_eq!(
            next("0 0 1 */3 *", "2026-02-10T00:00:00Z"),
            "2026-04-01T00:00:00.000Z"
        );
    }

    #[test]
    fn names_and_sunday_as_seven() {
        // 2026-01-01 is a Thursday.
        assert_eq!(
            next("0 9 * * mon-fri", "2026-01-02T10:00:00Z"),
            "2026-01-05T09:00:00.000Z"
        );
        assert_eq!(
            next("0 9 * * 7", "2026-01-01T00:00:00Z"),
            "2026-01-04T09:00:00.000Z"
        );
        assert_eq!(
            next("0 9 * * SUN", "2026-01-01T00:00:00Z"),
            "2026-01-04T09:00:00.000Z"
        );
        assert_eq!(
            next("0 0 1 jul *", "2026-01-01T00:00:00Z"),
            "2026-07-01T00:00:00.000Z"
        );
        assert_eq!(
            next("@weekly", "2026-01-01T00:00:00Z"),
            "2026-01-04T00:00:00.000Z"
        );
        assert_eq!(
            next("@hourly", "2026-01-01T00:59:59Z"),
            "2026-01-01T01:00:00.000Z"
        );
    }

    #[test]
    fn day_fields_or_when_both_restricted() {
        // The 13th or a Friday: 2026-01-02 is a Friday, before the 13th.
        assert_eq!(
            next("0 0 13 * 5", "2026-01-01T00:00:00Z"),
            "2026-01-02T00:00:00.000Z"
        );
        assert_eq!(
            next("0 0 13 * 5", "2026-01-10T00:00:00Z"),
            "2026-01-13T00:00:00.000Z"
        );
        // A `*` field (even `*/2`) makes it AND, as Vixie cron does: odd days that are Mondays.
        assert_eq!(
            next("0 0 */2 * 1", "2026-01-01T00:00:00Z"),
            "2026-01-05T00:00:00.000Z"
        );
    }

    #[test]
    fn leap_days_and_never() {
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00:00Z"),
            "2028-02-29T00:00:00.000Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2096-03-01T00:00:00Z"),
            "2104-02-29T00:00:00.000Z"
        );
        let c = Cron::parse("0 0 30 2 *").unwrap();
        assert_eq!(c.next_after(0, 0), None);
    }

    #[test]
    fn offsets() {
        // 09:00 at +02:00 is 07:00 UTC.
        assert_eq!(
            next_tz("0 9 * * *", "2026-01-01T06:00:00Z", 120),
            "2026-01-01T07:00:00.000Z"
        );
        assert_eq!(
            next_tz("0 9 * * *", "2026-01-01T07:00:00Z", 120),
            "2026-01-02T07:00:00.000Z"
        );
        // The local date decides the weekday: Friday 01:00 at -05:00 is Friday 06:00 UTC.
        assert_eq!(
            next_tz("0 1 * * fri", "2026-01-01T00:00:00Z", -300),
            "2026-01-02T06:00:00.000Z"
        );
        assert_eq!(parse_offset("+02:00").unwrap(), 120);
        assert_eq!(parse_offset("-0530").unwrap(), -330);
        assert_eq!(parse_offset("+2").unwrap(), 120);
        assert_eq!(parse_offset("UTC").unwrap(), 0);
        for bad in ["Europe/Paris", "+25", "2", "+2:3", "+02:00:00", "", "+0a"] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
        assert_eq!(fmt_offset(-330), "-05:30");
        assert_eq!(fmt_offset(0), "+00:00");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for (expr, want) in [
            ("* * * *", "expected 5 fields"),
            ("60 * * * *", "minute 60 is out of range 0-59"),
            ("* 24 * * *", "hour 24"),
            ("* * 0 * *", "day-of-month 0"),
            ("* * * 13 *", "month 13"),
            ("* * * * 8", "day-of-week 8"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "backwards"),
            ("* * * foo *", "not a number or a name"),
            ("1,,2 * * * *", "empty minute"),
            ("@reboot", "unknown @ name"),
        ] {
            let e = Cron::parse(expr).unwrap_err();
            assert!(e.msg.contains(want), "{expr}: {}", e.msg);
        }
        assert_eq!(
            Cron::parse("  0   9 * * 1 ").unwrap().to_string(),
            "0 9 * * 1"
        );
    }
}
