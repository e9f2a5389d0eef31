//! Times and durations: RFC 3339 in UTC, durations like `1h30m`, and short ages like `5m`.
//!
//! The protocol only ever needs UTC instants and the proleptic Gregorian calendar, so the day arithmetic is done
//! here (Howard Hinnant's `days_from_civil`) rather than with a calendar crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

const MS_PER_DAY: i64 = 86_400_000;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month, day)` of a count of days since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both casts are in range by construction: d is 1..=31 and m is 1..=12.
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub(crate) fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `2026-01-02T03:04:05.678Z`: UTC with millisecond precision.
pub fn fmt_rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let (h, rem) = (rem / 3_600_000, rem % 3_600_000);
    let (mi, rem) = (rem / 60_000, rem % 60_000);
    let (s, milli) = (rem / 1000, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// Reads `n` ASCII digits at `*i`, advancing it.
fn digits(b: &[u8], i: &mut usize, n: usize) -> Option<u32> {
    let part = b.get(*i..*i + n)?;
    if !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    *i += n;
    Some(part.iter().fold(0, |acc, c| acc * 10 + u32::from(c - b'0')))
}

/// Expects the byte `c` at `*i`, advancing past it.
fn byte(b: &[u8], i: &mut usize, c: u8) -> Option<()> {
    (b.get(*i) == Some(&c)).then(|| *i += 1)
}

fn parse_rfc3339_opt(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut i = 0;
    let y = digits(b, &mut i, 4)?;
    byte(b, &mut i, b'-')?;
    let mo = digits(b, &mut i, 2)?;
    byte(b, &mut i, b'-')?;
    let d = digits(b, &mut i, 2)?;
    let y = i64::from(y);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return None;
    }
    let day_ms = days_from_civil(y, mo, d) * MS_PER_DAY;
    if i == b.len() {
        return Some(day_ms);
    }
    if !matches!(b[i], b'T' | b't' | b' ') {
        return None;
    }
    i += 1;
    let h = digits(b, &mut i, 2)?;
    byte(b, &mut i, b':')?;
    let mi = digits(b, &mut i, 2)?;
    byte(b, &mut i, b':')?;
    let sec = digits(b, &mut i, 2)?;
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut milli = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            // Only the first three digits count; finer precision is truncated.
            if i - start < 3 {
                milli = milli * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            milli *= 10;
        }
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' => {
            i += 1;
            0
        }
        sign @ (b'+' | b'-') => {
            let neg = *sign == b'-';
            i += 1;
            let oh = digits(b, &mut i, 2)?;
            byte(b, &mut i, b':')?;
            let om = digits(b, &mut i, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = i64::from(oh * 60 + om);
            if neg { -o } else { o }
        }
        _ => return None,
    };
    if i != b.len() {
        return None;
    }
    let local =
        day_ms + i64::from(h) * 3_600_000 + i64::from(mi) * 60_000 + i64::from(sec) * 1000 + milli;
    Some(local - offset_min * 60_000)
}

/// Parses an RFC 3339 time (`Z` or `±hh:mm`, optional fraction) or a bare date `YYYY-MM-DD` (midnight UTC) to
/// milliseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Result<i64> {
    parse_rfc3339_opt(s.trim()).ok_or_else(|| {
        Error::usage(format!(
            "not a time: {s:?} (expected RFC 3339 like 2026-01-02T15:04:05Z, or a date like 2026-01-02)"
        ))
    })
}

/// Parses an HTTP `Date` header (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`) to milliseconds since the epoch.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, mon, year, hms, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == mon)? + 1;
    parse_rfc3339_opt(&format!("{year}-{m:02}-{day:0>2}T{hms}Z"))
}

/// Parses a duration: `90s`, `30m`, `2h`, `7d`, combinations like `1h30m`, or plain seconds `45`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || {
        Error::usage(format!(
            "not a duration: {s:?} (expected e.g. 45, 90s, 30m, 2h, 7d or 1h30m)"
        ))
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if t.bytes().all(|c| c.is_ascii_digit()) {
        return t.parse::<u64>().map(Duration::from_secs).map_err(|_| bad());
    }
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for c in t.chars() {
        if let Some(dg) = c.to_digit(10) {
            let n = num
                .unwrap_or(0)
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(dg)));
            num = Some(n.ok_or_else(bad)?);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n = num.take().ok_or_else(bad)?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if num.is_some() {
        // A trailing number without a unit, as in `1h30`, is ambiguous.
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// A duration as `parse_duration` reads it back: `1h30m`, `45s`, `2d3h`, `0s`. Sub-second parts are dropped.
pub fn fmt_duration(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [('d', 86_400), ('h', 3600), ('m', 60), ('s', 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}

/// A short age for a time `ms_delta` milliseconds ago: `now` (under a minute, or in the future), `5m`, `3h`, `2d`.
pub fn fmt_ago(ms_delta: i64) -> String {
    let s = ms_delta / 1000;
    match s {
        ..60 => "now".into(),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            parse_rfc3339_opt("1994-11-06T08:49:37Z")
        );
        assert!(parse_http_date("Sun, 06 Nov 1994 08:49:37 CET").is_none());
        assert!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").is_none());
        assert!(parse_http_date("").is_none());
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(fmt_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(fmt_rfc3339(1_893_456_000_000), "2030-01-01T00:00:00.000Z");
        assert_eq!(fmt_rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(fmt_rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn civil_round_trips_over_centuries() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!(d >= 1 && d <= days_in_month(y, m));
        }
    }

    #[test]
    fn parses_what_it_formats() {
        for ms in [0, 1, 999, 1_700_000_000_123, 4_102_444_799_999, -86_400_000] {
            assert_eq!(parse_rfc3339(&fmt_rfc3339(ms)).unwrap(), ms);
        }
    }

    #[test]
    fn parses_offsets_fractions_and_dates() {
        let z = parse_rfc3339("2026-03-01T12:00:00Z").unwrap();
        assert_eq!(parse_rfc3339("2026-03-01T14:30:00+02:30").unwrap(), z);
        assert_eq!(parse_rfc3339("2026-03-01T07:00:00-05:00").unwrap(), z);
        assert_eq!(parse_rfc3339("2026-03-01t12:00:00z").unwrap(), z);
        assert_eq!(parse_rfc3339("2026-03-01T12:00:00.5Z").unwrap(), z + 500);
        assert_eq!(
            parse_rfc3339("2026-03-01T12:00:00.123456789Z").unwrap(),
            z + 123
        );
        assert_eq!(parse_rfc3339("2026-03-01").unwrap(), z - 12 * 3_600_000);
        assert_eq!(parse_rfc3339("1970-01-01").unwrap(), 0);
    }

    #[test]
    fn rejects_bad_times() {
        for s in [
            "",
            "2026",
            "2026-13-01",
            "2026-02-29",
            "2026-01-00",
            "2026-01-01T24:00:00Z",
            "2026-01-01T12:00:00",
            "2026-01-01T12:00Z",
            "2026-01-01T12:00:00.Z",
            "2026-01-01T12:00:00+0200",
            "2026-01-01T12:00:00Zx",
            "26-01-01",
        ] {
            let e = parse_rfc3339(s).unwrap_err();
            assert_eq!(e.code, crate::error::Code::Usage, "{s}");
        }
        assert!(parse_rfc3339("2024-02-29").is_ok());
    }

    #[test]
    fn parses_durations() {
        let secs = |s: &str| parse_duration(s).unwrap().as_secs();
        assert_eq!(secs("45"), 45);
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("30m"), 1800);
        assert_eq!(secs("2h"), 7200);
        assert_eq!(secs("7d"), 604_800);
        assert_eq!(secs("1h30m"), 5400);
        assert_eq!(secs("1d2h3m4s"), 93_784);
        assert_eq!(secs("0"), 0);
        for bad in [
            "",
            "h",
            "1x",
            "1h30",
            "-5m",
            "1.5h",
            "99999999999999999999",
            "18446744073709551615d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_durations() {
        let f = |s| fmt_duration(Duration::from_secs(s));
        assert_eq!(f(0), "0s");
        assert_eq!(f(45), "45s");
        assert_eq!(f(5400), "1h30m");
        assert_eq!(f(93_784), "1d2h3m4s");
        assert_eq!(f(86_400), "1d");
        for s in [1, 59, 61, 3599, 3601, 90_061] {
            assert_eq!(parse_duration(&f(s)).unwrap().as_secs(), s);
        }
    }

    #[test]
    fn formats_ages() {
        assert_eq!(fmt_ago(-5000), "now");
        assert_eq!(fmt_ago(59_999), "now");
        assert_eq!(fmt_ago(5 * 60_000), "5m");
        assert_eq!(fmt_ago(3 * 3_600_000 + 5), "3h");
        assert_eq!(fmt_ago(2 * MS_PER_DAY), "2d");
    }

    #[test]
    fn now_is_after_2024() {
        assert!(now_ms() > 1_704_067_200_000);
    }
}
