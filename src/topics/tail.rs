//! `cm-topic tail`: the last messages of a topic, then every new one as it is posted, until Ctrl-C.
//!
//! It holds a [`Session`] under a key of its own for this run (a session of the member, so its own posts from
//! other tools show up, and so it never takes over the socket of a launched Claude Code session). The tail joins
//! the topic, since messages are pushed to members. While it holds the topic key it seals copies for members who
//! have none: every 30 s, and at once when someone joins. While it has no copy it asks again every 5 s. After a
//! reconnect it reads what it missed from the history.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use super::{Line, Opened, Thread, fetch_key, open, reseal};
use crate::client::{ConnOpts, Ctx, Event, Inbound, Session, SessionAuth, SessionOpts};
use crate::crypto::Keypair;
use crate::error::Result;
use crate::out::{self, Out};

/// How often a key holder seals the key for members who wait for it.
const RESEAL_EVERY: Duration = Duration::from_secs(30);
/// How often a tail without the key asks for it.
const KEY_RETRY: Duration = Duration::from_secs(5);
/// How long the loop waits for an event before it looks at the clock and at Ctrl-C.
const TICK: Duration = Duration::from_millis(200);
/// How much history a reconnect reads to catch up.
const CATCH_UP: u32 = 200;
/// How many shown ids are remembered, so a message read again while catching up is not shown twice.
const SHOWN_MEMORY: usize = 10_000;

/// How a tail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The session closed (the broker refused it for good).
    Closed,
    /// Ctrl-C.
    Interrupted,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Turns Ctrl-C into a flag the loop reads, so the tail closes its session and exits quietly.
fn catch_sigint() -> Result<()> {
    crate::signal::watch(&[crate::signal::Signal::Interrupt], |_| {
        INTERRUPTED.store(true, Ordering::SeqCst)
    })
}

struct Tail<'a> {
    session: &'a Session,
    member: Keypair,
    topic: Opened,
    thread: Thread,
    shown: HashSet<String>,
    last_sent_at: String,
    tool: &'a str,
    json: bool,
}

/// Runs `cm-topic tail` on `ctx`'s mesh: prints the last `limit` messages of `topic`, then each new one.
pub fn run(ctx: &Ctx, topic: &str, limit: u32, tool: &str, out: &mut Out) -> Result<Ended> {
    catch_sigint()?;
    let member = super::member_key(ctx)?;
    let opts = SessionOpts {
        conn: ConnOpts {
            session: Some(SessionAuth {
                session: Keypair::generate(),
            }),
            pull: false,
            ..ctx.conn_opts()
        },
        // A broker down at the start is said at once (exit 4), as every one-shot tool says it; once connected,
        // the tail rides out a broker restart.
        first_connect_required: true,
        ..SessionOpts::default()
    };
    let session = Session::start(&ctx.mesh, opts)?;
    let name = super::topic_arg(topic)?.to_string();
    let mut r = &session;
    let joined = super::join(&mut r, &name, &member.public_hex());
    if let Err(e) = joined {
        session.close();
        return Err(e);
    }
    let opened = match open(&mut r, &name, &member, limit.max(1), None) {
        Ok(o) => o,
        Err(e) => {
            session.close();
            return Err(e);
        }
    };
    if INTERRUPTED.load(Ordering::SeqCst) {
        session.close();
        return Ok(Ended::Interrupted);
    }
    let mut tail = Tail {
        session: &session,
        member,
        topic: opened,
        thread: Thread::default(),
        shown: HashSet::new(),
        last_sent_at: String::new(),
        tool,
        json: out.json,
    };
    let backfill = std::mem::take(&mut tail.topic.history);
    let skip = backfill.len().saturating_sub(limit as usize);
    for m in &backfill[skip..] {
        let line = Line::of(&tail.topic, m);
        tail.show(&line, out)?;
    }
    if let Some(m) = backfill.last() {
        tail.last_sent_at = m.created_at.clone();
    }
    if tail.topic.waiting_for_key() {
        tail.note(format!(
            "no copy of #{}'s key is sealed for you yet; waiting for a member who holds it",
            tail.topic.name
        ));
    }
    let ended = tail.run(out);
    session.close();
    ended
}

impl Tail<'_> {
    fn note(&self, msg: String) {
        if !self.json {
            out::warn(self.tool, msg);
        }
    }

    fn show(&mut self, line: &Line, out: &mut Out) -> Result<()> {
        if self.shown.len() >= SHOWN_MEMORY {
            self.shown.clear();
        }
        if !self.shown.insert(line.id.clone()) {
            return Ok(());
        }
        if line.sent_at > self.last_sent_at {
            self.last_sent_at = line.sent_at.clone();
        }
        if out.json {
            return out.json(line);
        }
        for row in self.thread.render(line) {
            out.line(row)?;
        }
        Ok(())
    }

    fn run(&mut self, out: &mut Out) -> Result<Ended> {
        let mut next_reseal = Instant::now();
        let mut next_key_try = Instant::now() + KEY_RETRY;
        let mut reconnected = false;
        loop {
            if INTERRUPTED.load(Ordering::SeqCst) {
                return Ok(Ended::Interrupted);
            }
            let now = Instant::now();
            if self.topic.key.is_some() && now >= next_reseal {
                self.reseal();
                next_reseal = now + RESEAL_EVERY;
            }
            if self.topic.waiting_for_key() && now >= next_key_try {
                self.try_key();
                next_key_try = now + KEY_RETRY;
            }
            match self.session.events().recv_timeout(TICK) {
                Ok(Event::Message(m)) => self.message(*m, out)?,
                Ok(Event::System { event, data }) => {
                    let ours = data.get("topicId").and_then(|v| v.as_str()) == Some(&self.topic.id);
                    if event == "topic_member_joined" && ours && self.topic.key.is_some() {
                        self.reseal();
                        next_reseal = Instant::now() + RESEAL_EVERY;
                    }
                }
                Ok(Event::Disconnected { reason, retry_in }) => {
                    reconnected = true;
                    if let Some(d) = retry_in {
                        self.note(format!(
                            "{reason}; reconnecting in {} s",
                            d.as_secs().max(1)
                        ));
                    }
                }
                Ok(Event::Connected { .. }) if reconnected => {
                    reconnected = false;
                    self.catch_up(out)?;
                }
                Ok(Event::Closed) | Err(RecvTimeoutError::Disconnected) => {
                    return Ok(Ended::Closed);
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn message(&mut self, mut m: Inbound, out: &mut Out) -> Result<()> {
        if m.to.as_deref() != Some(&format!("#{}", self.topic.id)) {
            return Ok(());
        }
        if self.topic.waiting_for_key() && m.decrypt_error.is_some() {
            self.try_key();
        }
        if let Some(k) = &self.topic.key {
            m.open_topic(k);
        }
        let line = Line {
            r#type: "message",
            id: m.id,
            topic: self.topic.name.clone(),
            topic_id: self.topic.id.clone(),
            from: super::Author {
                name: m
                    .from
                    .name
                    .unwrap_or_else(|| crate::out::short_id(&m.from.pubkey).to_string()),
                pubkey: m.from.pubkey,
                member_pubkey: m.from.member_pubkey,
            },
            text: m.text,
            decrypt_error: m.decrypt_error,
            reply_to: m.reply_to,
            body_version: if self.topic.encrypted { 2 } else { 1 },
            sent_at: m.sent_at,
        };
        self.show(&line, out)
    }

    fn try_key(&mut self) {
        let mut r = self.session;
        if let Ok(Some(k)) = fetch_key(&mut r, &self.topic.id, &self.member) {
            self.topic.key = Some(k);
            self.note(format!("got #{}'s key", self.topic.name));
        }
    }

    /// Seals the key for members waiting for it. Failures are left for the next round.
    fn reseal(&mut self) {
        let Some(key) = self.topic.key else { return };
        let mut r = self.session;
        if let Ok(names) = reseal(&mut r, &self.topic.id, &key, &self.member) {
            for n in names {
                self.note(format!("sealed #{}'s key for {n}", self.topic.name));
            }
        }
    }

    /// After a reconnect: what was posted while the connection was down.
    fn catch_up(&mut self, out: &mut Out) -> Result<()> {
        let mut r = self.session;
        let Ok(page) = open(&mut r, &self.topic.id, &self.member, CATCH_UP, None) else {
            return Ok(());
        };
        if page.key.is_some() {
            self.topic.key = page.key;
        }
        for m in &page.history {
            if m.created_at >= self.last_sent_at {
                let line = Line::of(&self.topic, m);
                self.show(&line, out)?;
            }
        }
        Ok(())
    }
}
