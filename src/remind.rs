//! Reminders and cron jobs: a message the broker delivers later, or at every cron match.
//!
//! The text is sealed here exactly as a send would seal it (a crypto_box to one key, or one box per member for
//! `*`/`@group`), so the broker keeps only ciphertext. By default a reminder is for yourself: your session key
//! inside a launched session, your member key (every session of yours) elsewhere. Without a time it is sent now,
//! which is what a crontab line wants: cron decides when, the mesh delivers.

use serde::Serialize;

use crate::client::{Conn, Ctx, ask_once, unexpected};
use crate::cron::{Cron, fmt_offset, parse_offset};
use crate::crypto::{self, Keypair};
use crate::error::{Error, Result};
use crate::out::short_time;
use crate::target::{self, Candidate, Resolved, Target};
use crate::time::{days_in_month, parse_duration, parse_rfc3339};
use crate::wire::{self, Frame, Priority, SealedCopy, SendMessage};

/// When a reminder goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// At once, as a message with `subtype: "reminder"`.
    Now,
    /// Once, at this time (ms since the epoch).
    At(i64),
    /// At every match of a cron expression, at a fixed UTC offset (`+02:00`) or in UTC.
    Cron { expr: String, tz: Option<String> },
}

/// A reminder set or sent (`{"type":"scheduled",...}` or `{"type":"sent",...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reminder {
    pub r#type: &'static str,
    /// The schedule's id, or the sent message's.
    pub id: String,
    /// The target: a key, `*` or `@group`.
    pub to: String,
    /// Who that is: `yourself`, a display name, `everyone` or the group.
    pub to_name: String,
    /// The (next) delivery, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// For one sent now: stored for a recipient that is offline, not pushed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<bool>,
}

/// A pending reminder of yours (`{"type":"scheduled",...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub r#type: &'static str,
    pub id: String,
    pub to: String,
    pub to_name: String,
    /// The next delivery, RFC 3339 UTC.
    pub deliver_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fired_count: Option<u32>,
    /// The text, when a key of yours can open it (a reminder set from another session may not be).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub created_at: String,
}

/// Milliseconds since the epoch of a wall-clock time in the local time zone (`$TZ` applies).
fn local_ms(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    // SAFETY: a zeroed tm is a valid value; mktime reads and normalises only the struct we pass.
    let t = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        tm.tm_year = i32::try_from(y - 1900).ok()?;
        tm.tm_mon = i32::try_from(mo).ok()? - 1;
        tm.tm_mday = i32::try_from(d).ok()?;
        tm.tm_hour = i32::try_from(h).ok()?;
        tm.tm_min = i32::try_from(mi).ok()?;
        tm.tm_sec = i32::try_from(s).ok()?;
        tm.tm_isdst = -1;
        libc::mktime(&mut tm)
    };
    // time_t is 32 bits on some targets.
    #[allow(clippy::useless_conversion)]
    let t = i64::from(t);
    (t != -1).then(|| t * 1000)
}

/// The local date of `ms`.
fn local_date(ms: i64) -> Option<(i64, u32, u32)> {
    let secs = libc::time_t::try_from(ms.div_euclid(1000)).ok()?;
    // SAFETY: localtime_r writes only into the tm we pass; a zeroed tm is a valid value.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return None;
        }
        Some((
            i64::from(tm.tm_year) + 1900,
            u32::try_from(tm.tm_mon + 1).ok()?,
            u32::try_from(tm.tm_mday).ok()?,
        ))
    }
}

/// `HH:MM[:SS]` as numbers.
fn clock(s: &str) -> Option<(u32, u32, u32)> {
    let parts: Vec<&str> = s.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty() || p.len() > 2) {
        return None;
    }
    let n: Vec<u32> = parts
        .iter()
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (h, m, s) = (n[0], n[1], n.get(2).copied().unwrap_or(0));
    (h < 24 && m < 60 && s < 60).then_some((h, m, s))
}

/// `YYYY-MM-DD` as numbers.
fn date(s: &str) -> Option<(i64, u32, u32)> {
    let mut it = s.splitn(3, '-');
    let (y, m, d) = (it.next()?, it.next()?, it.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    ((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)).then_some((y, m, d))
}

/// `--at`: `HH:MM[:SS]` (the next time the local clock shows it), `YYYY-MM-DD[ HH:MM[:SS]]` in local time, or
/// an RFC 3339 time with its offset. Must be in the future.
pub fn parse_at(s: &str, now: i64) -> Result<i64> {
    let t = s.trim();
    let bad = || {
        Error::usage(format!(
            "--at: not a time: {s:?} (expected HH:MM, YYYY-MM-DD HH:MM in local time, or RFC 3339 like \
             2026-05-04T09:00:00Z)"
        ))
    };
    let at = if let Some((h, m, sec)) = clock(t) {
        let (y, mo, d) = local_date(now).ok_or_else(bad)?;
        let today = local_ms(y, mo, d, h, m, sec).ok_or_else(bad)?;
        if today > now {
            today
        } else {
            // Tomorrow by the calendar, so a daylight saving change in between keeps the wall-clock time.
            let (y, mo, d) = local_date(today + 36 * 3_600_000).ok_or_else(bad)?;
            local_ms(y, mo, d, h, m, sec).ok_or_else(bad)?
        }
    } else {
        let (day, time) = match t.split_once([' ', 'T']) {
            Some((d, rest)) => (d, Some(rest)),
            None => (t, None),
        };
        match (date(day), time.map(clock)) {
            (Some((y, mo, d)), None) => local_ms(y, mo, d, 0, 0, 0).ok_or_else(bad)?,
            (Some((y, mo, d)), Some(Some((h, m, sec)))) => {
                local_ms(y, mo, d, h, m, sec).ok_or_else(bad)?
            }
            _ => parse_rfc3339(t).map_err(|_| bad())?,
        }
    };
    if at <= now {
        return Err(Error::usage(format!(
            "--at: {s:?} ({}) is in the past",
            short_time(at)
        )));
    }
    Ok(at)
}

/// When a reminder goes out, from `--in`, `--at`, `--cron` and `--tz` (none of them: now).
pub fn when(
    r#in: Option<&str>,
    at: Option<&str>,
    cron: Option<&str>,
    tz: Option<&str>,
    now: i64,
) -> Result<When> {
    if [r#in, at, cron].iter().filter(|x| x.is_some()).count() > 1 {
        return Err(Error::usage("give only one of --in, --at and --cron"));
    }
    if tz.is_some() && cron.is_none() {
        return Err(Error::usage(
            "--tz goes with --cron (--at takes a time with its offset)",
        ));
    }
    if let Some(d) = r#in {
        let d = parse_duration(d).map_err(|e| e.context("--in"))?;
        if d.is_zero() {
            return Err(Error::usage("--in: the duration must be more than 0"));
        }
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        return Ok(When::At(now.saturating_add(ms)));
    }
    if let Some(a) = at {
        return Ok(When::At(parse_at(a, now)?));
    }
    if let Some(expr) = cron {
        let c = Cron::parse(expr)?;
        let tz = tz.map(parse_offset).transpose()?;
        if c.next_after(now, tz.unwrap_or(0)).is_none() {
            return Err(Error::usage(format!(
                "cron expression {expr:?} never matches"
            )));
        }
        return Ok(When::Cron {
            expr: c.to_string(),
            tz: tz.map(fmt_offset),
        });
    }
    Ok(When::Now)
}

/// Where a reminder goes once its target is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dest {
    /// One key, and who it is.
    Key { key: String, name: String },
    /// `*` or `@group`: one sealed copy per member key.
    Fanout { spec: String, members: Vec<String> },
}

/// Resolves `--to` (none or `self`: yourself) against the mesh's members and live sessions.
fn destination(conn: &mut Conn, slug: &str, to: Option<&str>) -> Result<Dest> {
    let me = conn.sender().public_hex();
    let Some(to) = to.map(str::trim).filter(|t| !t.is_empty() && *t != "self") else {
        return Ok(Dest::Key {
            key: me,
            name: "yourself".into(),
        });
    };
    let target = Target::parse(to)?;
    if matches!(target, Target::Topic(_)) {
        return Err(Error::usage(
            "reminders go to a peer, * or @group, not to a topic",
        ));
    }
    let members = crate::messaging::roster::members(conn)?;
    let peers = match conn.request(wire::ListPeers::default())? {
        Frame::PeersList(l) => l.peers,
        f => return Err(unexpected("list_peers", &f)),
    };
    let my_member = conn.hello_ack().member_id.clone().unwrap_or_default();
    let group = match &target {
        Target::Everyone => Some(None),
        Target::Group(g) => Some(Some(g.as_str())),
        _ => None,
    };
    if let Some(group) = group {
        let in_group = |name: &str, g: &str| name == g || name.starts_with(&format!("{g}/"));
        let members: Vec<String> = members
            .iter()
            .filter(|m| m.member_id != my_member)
            .filter(|m| {
                let Some(g) = group else { return true };
                m.groups.iter().any(|x| in_group(&x.name, g))
                    || peers.iter().any(|p| {
                        p.member_pubkey == m.pubkey && p.groups.iter().any(|x| in_group(&x.name, g))
                    })
            })
            .map(|m| m.pubkey.clone())
            .collect();
        let spec = group.map_or("*".to_string(), |g| format!("@{g}"));
        if members.is_empty() {
            return Err(Error::not_found(format!(
                "no members of {spec} besides you in mesh {slug}"
            )));
        }
        return Ok(Dest::Fanout { spec, members });
    }
    let mut candidates: Vec<Candidate> = members
        .iter()
        .map(|m| Candidate {
            name: m.display_name.clone(),
            pubkey: m.pubkey.clone(),
            member_pubkey: m.pubkey.clone(),
            mesh: slug.to_string(),
            online: m.online,
            control_plane: false,
        })
        .collect();
    candidates.extend(
        peers
            .iter()
            .filter(|p| p.peer_role == "session")
            .map(|p| Candidate {
                name: p.display_name.clone(),
                pubkey: p.pubkey.clone(),
                member_pubkey: p.member_pubkey.clone(),
                mesh: slug.to_string(),
                online: p.online.unwrap_or(true),
                control_plane: false,
            }),
    );
    let Resolved::Peer { key, peer } = target::resolve(&target, &candidates)? else {
        return Err(Error::internal("a peer target resolved to a group"));
    };
    // A name means the person: their member key reaches all their sessions and waits while they are offline.
    let key = match (&target, peer) {
        (Target::Name(_), Some(p)) => p.member_pubkey.clone(),
        _ => key,
    };
    let name = if key == me {
        "yourself".to_string()
    } else {
        peer.map_or_else(
            || format!("{}…", &key[..8.min(key.len())]),
            |p| p.name.clone(),
        )
    };
    Ok(Dest::Key { key, name })
}

/// The sealed body for `dest`: `(to, name, nonce, ciphertext, copies)`.
type Sealed = (String, String, String, String, Option<Vec<SealedCopy>>);

fn seal(dest: Dest, text: &str, sender: &Keypair) -> Result<Sealed> {
    let cannot = |key: &str, e: crypto::CryptoError| {
        Error::usage(format!(
            "cannot encrypt to {}…: {e}",
            &key[..8.min(key.len())]
        ))
    };
    match dest {
        Dest::Key { key, name } => {
            let (nonce, ct) =
                crypto::encrypt_dm(text.as_bytes(), &key, sender).map_err(|e| cannot(&key, e))?;
            Ok((key, name, nonce, ct, None))
        }
        Dest::Fanout { spec, members } => {
            let copies = members
                .iter()
                .map(|m| {
                    let (nonce, ciphertext) =
                        crypto::encrypt_dm(text.as_bytes(), m, sender).map_err(|e| cannot(m, e))?;
                    Ok(SealedCopy {
                        to: m.clone(),
                        nonce,
                        ciphertext,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let name = match spec.as_str() {
                "*" => "everyone".to_string(),
                g => g.to_string(),
            };
            Ok((spec, name, String::new(), String::new(), Some(copies)))
        }
    }
}

/// Sets a reminder of `text` for `to` (none: yourself), or sends it now when `when` is [`When::Now`].
pub fn remind(ctx: &Ctx, to: Option<&str>, when: &When, text: &str) -> Result<Reminder> {
    if text.trim().is_empty() {
        return Err(Error::usage("the reminder's message is empty"));
    }
    let mut conn = ctx.connect()?;
    let r = remind_on(&mut conn, &ctx.mesh.slug, to, when, text);
    conn.close();
    r
}

fn remind_on(
    conn: &mut Conn,
    slug: &str,
    to: Option<&str>,
    when: &When,
    text: &str,
) -> Result<Reminder> {
    let dest = destination(conn, slug, to)?;
    let (to, to_name, nonce, ciphertext, copies) = seal(dest, text, conn.sender())?;
    let (deliver_at, cron, tz) = match when {
        When::Now => {
            let send = SendMessage {
                target_spec: to.clone(),
                priority: Priority::Now,
                nonce,
                ciphertext,
                copies,
                subtype: Some("reminder".into()),
                ..SendMessage::default()
            };
            let ack = conn.send(send)?;
            return Ok(Reminder {
                r#type: "sent",
                id: ack.message_id,
                to,
                to_name,
                deliver_at: None,
                cron: None,
                tz: None,
                queued: Some(ack.queued),
            });
        }
        When::At(t) => (*t, None, None),
        When::Cron { expr, tz } => (0, Some(expr.clone()), tz.clone()),
    };
    let schedule = wire::Schedule {
        to: to.clone(),
        deliver_at,
        subtype: Some("reminder".into()),
        recurring: cron.as_ref().map(|_| true),
        cron,
        tz: tz.clone(),
        nonce,
        ciphertext,
        copies,
        ..wire::Schedule::default()
    };
    match conn.request(schedule)? {
        Frame::ScheduledAck(a) => Ok(Reminder {
            r#type: "scheduled",
            id: a.scheduled_id,
            to,
            to_name,
            deliver_at: Some(short_time(a.deliver_at)),
            cron: a.cron,
            tz,
            queued: None,
        }),
        f => Err(unexpected("schedule", &f)),
    }
}

/// Opens a sealed body with any of `mine` against any of `others` (a box opens with either end's secret).
fn open(nonce: &str, ct: &str, others: &[&str], mine: &[&Keypair]) -> Option<String> {
    others.iter().find_map(|o| {
        mine.iter().find_map(|k| {
            crypto::decrypt_dm(nonce, ct, o, k)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        })
    })
}

/// Your pending reminders, soonest first, with their text where a key here opens it.
pub fn list(ctx: &Ctx) -> Result<Vec<Pending>> {
    let member = ctx.mesh.keypair()?;
    let mut mine: Vec<&Keypair> = vec![&member];
    if let Some(s) = &ctx.session {
        mine.insert(0, &s.session);
    }
    let own: Vec<String> = mine.iter().map(|k| k.public_hex()).collect();
    let mut conn = ctx.connect()?;
    let replies = conn
        .request(wire::ListScheduled::default())
        .and_then(|l| Ok((l, crate::messaging::roster::members(&mut conn)?)));
    conn.close();
    let (entries, members) = match replies? {
        (Frame::ScheduledList(l), m) => (l.messages, m),
        (f, _) => return Err(unexpected("list_scheduled", &f)),
    };
    Ok(entries
        .into_iter()
        .map(|e| {
            let sender = e.sender_pubkey.clone().unwrap_or_default();
            let text = if !e.message.is_empty() {
                Some(e.message.clone())
            } else {
                let mut bodies = vec![(e.to.as_str(), e.nonce.as_str(), e.ciphertext.as_str())];
                bodies.extend(
                    e.copies
                        .iter()
                        .flatten()
                        .map(|c| (c.to.as_str(), c.nonce.as_str(), c.ciphertext.as_str())),
                );
                bodies
                    .iter()
                    .filter(|(_, n, c)| !n.is_empty() && !c.is_empty())
                    .find_map(|(to, n, c)| open(n, c, &[to, sender.as_str()], &mine))
            };
            let to_name = match e.to.as_str() {
                "*" => "everyone".to_string(),
                t if own.iter().any(|o| o == t) => "yourself".to_string(),
                t if t.starts_with('@') => t.to_string(),
                t => members.iter().find(|m| m.pubkey == t).map_or_else(
                    || format!("{}…", &t[..8.min(t.len())]),
                    |m| m.display_name.clone(),
                ),
            };
            Pending {
                r#type: "scheduled",
                id: e.id,
                to: e.to,
                to_name,
                deliver_at: short_time(e.deliver_at),
                cron: e.cron,
                tz: e.tz,
                fired_count: e.fired_count,
                text,
                created_at: short_time(e.created_at),
            }
        })
        .collect())
}

/// Cancels one of your reminders by id or unique id prefix; returns the full id.
pub fn cancel(ctx: &Ctx, id: &str) -> Result<String> {
    let c = wire::CancelScheduled {
        scheduled_id: id.trim().to_string(),
        ..wire::CancelScheduled::default()
    };
    match ask_once(ctx, c)? {
        Frame::CancelScheduledAck(a) if a.ok => Ok(a.scheduled_id),
        Frame::CancelScheduledAck(_) => Err(Error::not_found(format!(
            "no pending reminder of yours with id {id:?} in mesh {}",
            ctx.mesh.slug
        ))),
        f => Err(unexpected("cancel_scheduled", &f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000; // 2026-05-28T20:26:40Z

    #[test]
    fn when_from_flags() {
        assert_eq!(when(None, None, None, None, NOW).unwrap(), When::Now);
        assert_eq!(
            when(Some("2s"), None, None, None, NOW).unwrap(),
            When::At(NOW + 2000)
        );
        assert_eq!(
            when(Some("1h30m"), None, None, None, NOW).unwrap(),
            When::At(NOW + 5_400_000)
        );
        assert_eq!(
            when(None, None, Some("0  9 * * 1-5"), Some("+0200"), NOW).unwrap(),
            When::Cron {
                expr: "0 9 * * 1-5".into(),
                tz: Some("+02:00".into())
            }
        );
        for (i, a, c, tz, want) in [
            (Some("1m"), Some("10:00"), None, None, "only one of"),
            (None, None, None, Some("+02:00"), "--tz goes with --cron"),
            (Some("0s"), None, None, None, "more than 0"),
            (Some("soon"), None, None, None, "--in: not a duration"),
            (None, None, Some("0 9 * *"), None, "expected 5 fields"),
            (None, None, Some("0 0 30 2 *"), None, "never matches"),
            (
                None,
                None,
                Some("@daily"),
                Some("Europe/Paris"),
                "not a UTC offset",
            ),
        ] {
            let e = when(i, a, c, tz, NOW).unwrap_err();
            assert!(e.msg.contains(want), "{}", e.msg);
            assert_eq!(e.code, crate::error::Code::Usage);
        }
    }

    #[test]
    fn at_times() {
        assert_eq!(
            parse_at("2030-01-02T03:04:05Z", NOW).unwrap(),
            parse_rfc3339("2030-01-02T03:04:05Z").unwrap()
        );
        assert_eq!(
            parse_at("2030-01-02T05:04:05+02:00", NOW).unwrap(),
            parse_rfc3339("2030-01-02T03:04:05Z").unwrap()
        );
        // Local forms: HH:MM is within the next day, a local date-time is that day's time.
        let t = parse_at("09:30", NOW).unwrap();
        assert!(t > NOW && t <= NOW + 86_400_000 + 3_600_000, "{t}");
        assert_eq!(t % 60_000, 0);
        let local = parse_at("2030-01-02 03:04", NOW).unwrap();
        assert!((local - parse_rfc3339("2030-01-02T03:04:00Z").unwrap()).abs() <= 14 * 3_600_000);
        for bad in [
            "25:00",
            "9",
            "tomorrow",
            "2030-02-30 10:00",
            "2020-01-01T00:00:00Z",
        ] {
            assert!(parse_at(bad, NOW).is_err(), "{bad}");
        }
        assert!(
            parse_at("2020-01-01T00:00:00Z", NOW)
                .unwrap_err()
                .msg
                .contains("in the past")
        );
    }
}
