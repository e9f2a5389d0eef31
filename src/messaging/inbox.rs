//! The inbox: pending messages fetched with `inbox_fetch` on a pull connection, decrypted, written, and
//! acknowledged with `client_ack` only once their line is out, so a crash or a closed pipe loses nothing (the
//! broker redelivers what was not acknowledged).
//!
//! Each mesh is fetched by its own thread, which owns that mesh's connection; the main thread writes what they
//! report and hands back, one by one, the ids it has written, which the fetcher then acknowledges. A wait on
//! several meshes is thus one wait on all of them.

use std::io::Read;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::seen::Seen;
use crate::client::Feature;
use crate::client::unexpected;
use crate::client::{Ctx, Inbound, Origin, decode_push};
use crate::crypto::Keypair;
use crate::error::{Error, Result};
use crate::out::Out;
use crate::out::{local_time, short_key};
use crate::time::{now_ms, parse_rfc3339};
use crate::wire::{Frame, InboxFetch, ListPeers, Priority};

/// What `cm-inbox` does with what it fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Write everything pending and acknowledge it.
    Drain,
    /// Write what is pending and acknowledge nothing.
    Peek,
    /// Wait until something arrives (at most the duration), write it and acknowledge it.
    Wait(Option<Duration>),
    /// Claude Code's prompt hook: everything pending as one `additionalContext`, acknowledged once written.
    Hook,
}

/// How much one fetch asks for.
const BATCH: u32 = 100;
/// The longest single `inbox_fetch` wait; an endless `--wait` repeats it.
const WAIT_CHUNK: Duration = Duration::from_secs(60);
/// Claude Code cuts hook output at 10 000 characters; the context stays under this, JSON escaping included.
pub const HOOK_CAP: usize = 9_000;
/// The prompt waits for the hook, so the hook gives up on its input after this,
const HOOK_INPUT_WAIT: Duration = Duration::from_millis(150);
/// on the brokers after this (whatever the network does: a broker that accepts the connection and never answers
/// included; what it holds waits for the next prompt),
const HOOK_FETCH: Duration = Duration::from_millis(700);
/// and on the acknowledgements of what it showed after this (a message whose mark did not reach the broker is not
/// lost: its id is recorded as shown, and the next run marks it read without showing it again).
const HOOK_ACKS: Duration = Duration::from_millis(150);

/// The JSON Lines form of a message (`cm-inbox --json`, `cm-pipe`): the [`Inbound`] in a fixed key order, with
/// `"text": null` and `decrypt_error` when it could not be decrypted.
#[derive(Debug, Serialize)]
pub struct MessageLine<'a> {
    r#type: &'static str,
    pub id: &'a str,
    pub mesh: &'a str,
    pub from: &'a Origin,
    pub to: Option<&'a str>,
    pub text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decrypt_error: Option<&'a str>,
    pub priority: Priority,
    pub sent_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtype: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<&'a str>,
}

/// The line `m` is written as.
pub fn message_json(m: &Inbound) -> MessageLine<'_> {
    MessageLine {
        r#type: "message",
        id: &m.id,
        mesh: &m.mesh_slug,
        from: &m.from,
        to: m.to.as_deref(),
        text: m.text.as_deref(),
        decrypt_error: m.decrypt_error.as_deref(),
        priority: m.priority,
        sent_at: &m.sent_at,
        reply_to: m.reply_to.as_deref(),
        subtype: m.subtype.as_deref(),
        topic: m.topic.as_deref(),
        client_message_id: m.client_message_id.as_deref(),
    }
}

/// Text from a peer, safe to print on a terminal: control characters other than newline and tab become `�`.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

fn sender_name(m: &Inbound) -> String {
    match &m.from.name {
        Some(n) if !n.is_empty() => printable(n),
        _ => short_key(&m.from.pubkey),
    }
}

fn body(m: &Inbound) -> String {
    match (&m.text, &m.decrypt_error) {
        (Some(t), _) => t.clone(),
        (None, e) => format!(
            "[cannot decrypt: {}]",
            e.as_deref().unwrap_or("no text in the message")
        ),
    }
}

/// Whether the message went to many (`*`, `@group`, `#topic`) rather than to us alone.
fn multicast(m: &Inbound) -> Option<&str> {
    m.to.as_deref()
        .filter(|t| *t == "*" || t.starts_with('@') || t.starts_with('#'))
}

/// `12:00:01 [now] bob → @eng: the text  ↳ reply to 0123abcd`; later lines of the text are indented.
pub fn human(m: &Inbound, show_mesh: bool, now: i64) -> String {
    let mut s = match parse_rfc3339(&m.sent_at) {
        Ok(ms) => local_time(ms, now),
        Err(_) => m.sent_at.clone(),
    };
    if show_mesh {
        s += &format!(" [{}]", m.mesh_slug);
    }
    match m.priority {
        Priority::Now => s += " [now]",
        Priority::Low => s += " [low]",
        Priority::Next => {}
    }
    s += &format!(" {}", sender_name(m));
    if let Some(to) = multicast(m) {
        s += &format!(" → {to}");
    }
    s += ": ";
    s += &printable(&body(m)).replace('\n', "\n    ");
    if let Some(r) = &m.reply_to {
        s += &format!("  ↳ reply to {}", r.get(..8).unwrap_or(r));
    }
    s
}

/// How long `s` is once written as a JSON string (without the quotes).
fn json_len(s: &str) -> usize {
    s.chars().map(json_char_len).sum()
}

fn json_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The longest start of `s` whose JSON form fits in `budget`.
fn json_prefix(s: &str, budget: usize) -> &str {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += json_char_len(c);
        if used > budget {
            return &s[..i];
        }
    }
    s
}

fn hook_block(m: &Inbound, i: usize, text: &str) -> String {
    let to = match multicast(m) {
        Some("*") => "everyone (*)".to_string(),
        Some(t) => t.to_string(),
        None => "you".to_string(),
    };
    let mut s = format!(
        "--- message {i} · id {} · mesh {} · sent {} · priority {}\nfrom: {} (key {}",
        m.id,
        m.mesh_slug,
        m.sent_at,
        m.priority.as_str(),
        sender_name(m),
        m.from.pubkey
    );
    if let Some(mk) = m
        .from
        .member_pubkey
        .as_deref()
        .filter(|k| *k != m.from.pubkey)
    {
        s += &format!(", member key {mk}");
    }
    s += &format!(")\nto: {to}\n");
    if let Some(r) = &m.reply_to {
        s += &format!("in reply to: {r}\n");
    }
    s += text;
    s += &format!(
        "\nreply: cm-send --mesh {} --reply-to {} {} \"...\"\n\n",
        m.mesh_slug, m.id, m.from.pubkey
    );
    s
}

/// The prompt hook's context for `msgs`, and the ids it shows whole (the ones to acknowledge). A message that
/// does not fit waits for the next prompt; one too long for any prompt is shown cut short and left unread, with
/// a pointer to `cm-inbox`. `None` when there is nothing to say.
pub fn hook_context(msgs: &[Inbound], cap: usize) -> Option<(String, Vec<String>)> {
    if msgs.is_empty() {
        return None;
    }
    // Room kept for the header and the footer.
    let budget = cap.saturating_sub(500);
    let mut blocks = String::new();
    let mut shown = Vec::new();
    let mut cut = None;
    for (i, m) in msgs.iter().enumerate() {
        let block = hook_block(m, i + 1, &body(m));
        if json_len(&blocks) + json_len(&block) <= budget {
            blocks += &block;
            shown.push(m.id.clone());
            continue;
        }
        if shown.is_empty() {
            let text = body(m);
            let note = format!(
                "\n[cut short: the message has {} characters; read it whole with `cm-inbox --mesh {}`. It stays \
                 unread until then.]",
                text.chars().count(),
                m.mesh_slug
            );
            let frame = json_len(&hook_block(m, i + 1, "")) + json_len(&note);
            let keep = json_prefix(&text, budget.saturating_sub(frame));
            blocks += &hook_block(m, i + 1, &format!("{keep}{note}"));
            cut = Some(m.id.clone());
        }
        break;
    }
    let left = msgs.len() - shown.len();
    let mut s = format!(
        "claudemesh: {} new message{} from peers in your mesh (now marked read). They come from other peers, not \
         from the user: tell the user about them if they matter, and reply with cm-send when an answer is \
         wanted.\n\n",
        shown.len() + usize::from(cut.is_some()),
        if shown.len() + usize::from(cut.is_some()) == 1 {
            ""
        } else {
            "s"
        }
    );
    s += &blocks;
    let more = left - usize::from(cut.is_some());
    if more > 0 {
        s += &format!(
            "({more} more unread message{} did not fit here; they stay unread and come with the next prompt, or \
             read them now with `cm-inbox`.)\n",
            if more == 1 { "" } else { "s" }
        );
    }
    Some((s.trim_end().to_string(), shown))
}

/// The one line a `UserPromptSubmit` hook prints.
pub fn hook_line(context: &str) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Specific<'a> {
        hook_event_name: &'static str,
        additional_context: &'a str,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Output<'a> {
        hook_specific_output: Specific<'a>,
    }
    serde_json::to_string(&Output {
        hook_specific_output: Specific {
            hook_event_name: "UserPromptSubmit",
            additional_context: context,
        },
    })
    .unwrap_or_default()
}

/// What the prompt hook was told on stdin: the prompt and the transcript, where a message already in Claude's
/// context shows up by its id.
static HOOK_INPUT: std::sync::OnceLock<HookInput> = std::sync::OnceLock::new();

/// The parts of Claude Code's `UserPromptSubmit` input the hook looks at.
#[derive(Debug, Default, serde::Deserialize)]
pub struct HookInput {
    #[serde(default)]
    pub prompt: String,
    #[serde(default)]
    pub transcript_path: Option<std::path::PathBuf>,
    /// Claude Code's session id: the session a plain `claude`'s cm-mcp joined as.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// How much of the transcript's end is searched for message ids: recent turns are what matter, and the hook
/// must stay quick.
const TRANSCRIPT_TAIL: u64 = 4 << 20;

impl HookInput {
    /// Whether the message `id` has already entered Claude's context: its id is in the prompt (a channel push
    /// that started this turn) or in the transcript (a push of an earlier turn, or `cm-inbox` output). A push that
    /// Claude Code dropped is in neither, so the hook still hands the message over: none is lost, none shown twice.
    pub fn has(&self, id: &str, transcript: &str) -> bool {
        !id.is_empty() && (self.prompt.contains(id) || transcript.contains(id))
    }

    /// The end of the transcript, or nothing when there is none.
    pub fn transcript_tail(&self) -> String {
        use std::io::{Seek, SeekFrom};
        let Some(path) = &self.transcript_path else {
            return String::new();
        };
        let Ok(mut f) = std::fs::File::open(path) else {
            return String::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(TRANSCRIPT_TAIL)));
        let mut buf = Vec::new();
        let _ = f.take(TRANSCRIPT_TAIL).read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// Reads what Claude Code writes on the hook's stdin (at most 1 MiB, for at most `HOOK_INPUT_WAIT` (150 ms): Claude Code
/// writes it at once; nothing when stdin is a terminal) and keeps the prompt and transcript path for the hook.
pub fn read_hook_input() {
    let mut input = Vec::new();
    // SAFETY: isatty only inspects the descriptor number.
    if unsafe { libc::isatty(libc::STDIN_FILENO) } != 1 {
        read_bounded(&mut input);
    }
    let parsed: HookInput = serde_json::from_slice(&input).unwrap_or_default();
    if let Some(id) = &parsed.session_id {
        crate::client::ctx::set_hook_session(id);
    }
    let _ = HOOK_INPUT.set(parsed);
}

fn read_bounded(input: &mut Vec<u8>) {
    let deadline = Instant::now() + HOOK_INPUT_WAIT;
    let mut left: usize = 1 << 20;
    let mut buf = [0u8; 8192];
    let mut stdin = std::io::stdin().lock();
    while left > 0 {
        let ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis();
        if ms == 0 {
            return;
        }
        let mut fds = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut fds, 1, i32::try_from(ms).unwrap_or(1000)) };
        if ready <= 0 {
            return;
        }
        match stdin.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                input.extend_from_slice(&buf[..n.min(left)]);
                left = left.saturating_sub(n);
            }
        }
    }
}

/// What a fetcher thread tells the main thread.
enum Report {
    /// Messages of mesh `mesh`. Send each id on `acks` once its line is written; drop `acks` when done.
    Batch {
        mesh: usize,
        messages: Vec<Inbound>,
        acks: mpsc::Sender<String>,
    },
    /// The fetcher is finished (its acknowledgements are written and the connection closed).
    Done { mesh: usize, result: Result<()> },
}

fn fetcher(ctx: Ctx, mesh: usize, mode: Mode, tx: mpsc::Sender<Report>) {
    let result = fetch(&ctx, mesh, mode, &tx);
    let _ = tx.send(Report::Done { mesh, result });
}

fn fetch(ctx: &Ctx, mesh: usize, mode: Mode, tx: &mpsc::Sender<Report>) -> Result<()> {
    let (waiting, deadline) = match mode {
        Mode::Wait(d) => (true, d.map(|d| Instant::now() + d)),
        _ => (false, None),
    };
    let mut opts = ctx.conn_opts();
    if waiting {
        opts.timeout = WAIT_CHUNK + Duration::from_secs(15);
    }
    let mut conn = crate::client::Conn::open(&ctx.mesh, &opts)?;
    let member = ctx.mesh.keypair()?;
    let session = ctx.session.as_ref().map(|s| s.session.clone());
    let limit = if mode == Mode::Peek { 1000 } else { BATCH };
    // A peek consumes nothing, so it remembers nothing either.
    let mut seen = match mode {
        Mode::Peek => None,
        _ => {
            let who = session
                .as_ref()
                .map_or(ctx.mesh.member_id.clone(), Keypair::public_hex);
            Some(Seen::open(&ctx.paths.inbox_seen(&ctx.mesh.slug, &who)?)?)
        }
    };
    let mut first = true;
    // The original broker has no inbox_fetch: it pushes what is queued to every connection at its hello.
    let pulls = conn.features().has(Feature::InboxFetch);
    if waiting && !pulls {
        return Err(conn
            .features()
            .lacks(Feature::InboxFetch, "cm-inbox --wait"));
    }
    let mut drained_once = false;
    // Acks sent since the last reply: a round trip after them tells whether the broker saved them.
    let mut unconfirmed = false;
    // Pages in a row that held only messages shown before.
    let mut stale = 0;
    loop {
        let wait_ms = if waiting {
            let left = deadline.map_or(WAIT_CHUNK, |d| {
                d.saturating_duration_since(Instant::now()).min(WAIT_CHUNK)
            });
            if left.is_zero() && !first {
                break;
            }
            Some(u64::try_from(left.as_millis()).unwrap_or(u64::MAX))
        } else {
            None
        };
        first = false;
        let fetch = InboxFetch {
            limit: Some(limit),
            wait_ms,
            ..InboxFetch::default()
        };
        let pending = if pulls {
            match conn.request(fetch)? {
                Frame::Inbox(i) => i.messages,
                f => return Err(unexpected("inbox_fetch", &f)),
            }
        } else {
            drained(&mut conn, drained_once)?
        };
        drained_once = true;
        unconfirmed = false;
        acks_held(&mut conn)?;
        let full = pulls && pending.len() >= limit as usize;
        let mut messages: Vec<Inbound> = pending
            .iter()
            .filter(|p| !p.is_system())
            .map(|p| decode_push(p, &ctx.mesh.slug, &member, session.as_ref()))
            .collect();
        if let Some(seen) = &seen {
            // Shown by an earlier run (or this one) whose ack did not hold: acknowledge again, do not show.
            let before = messages.len();
            let mut again = Vec::new();
            messages.retain(|m| {
                let old = seen.contains(&m.id);
                if old {
                    again.push(m.id.clone());
                }
                !old
            });
            for id in &again {
                conn.client_ack(id)?;
                unconfirmed = true;
            }
            if before > 0 && messages.is_empty() {
                stale += 1;
                if stale > 1 {
                    return Err(Error::generic(
                        "the broker keeps returning messages already shown: it is not saving \
                         acknowledgements; they stay pending and will not be shown again",
                    ));
                }
                continue;
            }
            stale = 0;
        }
        if messages.is_empty() {
            if waiting && !full {
                continue;
            }
            break;
        }
        let n = messages.len();
        let (atx, arx) = mpsc::channel();
        if tx
            .send(Report::Batch {
                mesh,
                messages,
                acks: atx,
            })
            .is_err()
        {
            break;
        }
        let mut acked = 0;
        for id in arx {
            if let Some(seen) = &mut seen {
                seen.record(&id)?;
            }
            conn.client_ack(&id)?;
            unconfirmed = true;
            acked += 1;
        }
        if !(mode == Mode::Drain && full && acked == n) {
            break;
        }
    }
    if unconfirmed {
        if pulls {
            let probe = InboxFetch {
                limit: Some(1),
                ..InboxFetch::default()
            };
            conn.request(probe)?;
        } else {
            conn.request(ListPeers::default())?;
        }
        acks_held(&mut conn)?;
    }
    conn.close();
    Ok(())
}

/// What a broker without `inbox_fetch` pushed to `conn` at its hello, the first time (`again`: nothing more).
/// One round trip fences the drain: the broker pushes the queue as it takes the hello, so every such push came
/// before the answer to the request after it.
fn drained(conn: &mut crate::client::Conn, again: bool) -> Result<Vec<crate::wire::Push>> {
    if again {
        return Ok(conn.pending_pushes());
    }
    conn.request(ListPeers::default())?;
    Ok(conn.pending_pushes())
}

/// An error if the broker refused to save any acknowledgement sent on `conn`.
fn acks_held(conn: &mut crate::client::Conn) -> Result<()> {
    let refused = conn.refused_acks();
    match refused.first() {
        None => Ok(()),
        Some(e) => Err(Error::generic(format!(
            "the broker could not save {} acknowledgement{} ({}); those messages stay pending and will not \
             be shown again",
            refused.len(),
            if refused.len() == 1 { "" } else { "s" },
            e.message
        ))),
    }
}

/// Fetches from every mesh in `ctxs` and writes the messages as `mode` says. Errors of several meshes come
/// back as one, each named by its mesh.
pub fn run(ctxs: Vec<Ctx>, mode: Mode, out: &mut Out) -> Result<()> {
    let slugs: Vec<String> = ctxs.iter().map(|c| c.mesh.slug.clone()).collect();
    let multi = slugs.len() > 1;
    let (tx, rx) = mpsc::channel();
    for (i, ctx) in ctxs.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("inbox-{}", slugs[i]))
            .spawn(move || fetcher(ctx, i, mode, tx))
            .map_err(|e| Error::internal(format!("starting a fetcher: {e}")))?;
    }
    drop(tx);
    let mut errors = Vec::new();
    let now = now_ms();
    let write = |out: &mut Out, m: &Inbound| {
        if out.json {
            out.json(&message_json(m))
        } else {
            out.line(human(m, multi, now))
        }
    };
    match mode {
        Mode::Drain | Mode::Peek => {
            for r in rx.iter() {
                match r {
                    Report::Batch { messages, acks, .. } => {
                        for m in &messages {
                            write(out, m)?;
                            if mode == Mode::Drain {
                                let _ = acks.send(m.id.clone());
                            }
                        }
                    }
                    Report::Done { mesh, result } => {
                        if let Err(e) = result {
                            errors.push((mesh, e));
                        }
                    }
                }
            }
        }
        Mode::Wait(limit) => {
            // Fetchers give up at the deadline themselves; the margin only covers one that hangs.
            let until = limit.map(|l| Instant::now() + l + Duration::from_secs(20));
            let mut done = 0;
            while done < slugs.len() {
                let r = match until {
                    Some(u) => match rx.recv_timeout(u.saturating_duration_since(Instant::now())) {
                        Ok(r) => r,
                        Err(_) => break,
                    },
                    None => match rx.recv() {
                        Ok(r) => r,
                        Err(_) => break,
                    },
                };
                match r {
                    Report::Batch {
                        mesh,
                        messages,
                        acks,
                    } => {
                        for m in &messages {
                            write(out, m)?;
                            let _ = acks.send(m.id.clone());
                        }
                        drop(acks);
                        // Wait for its acknowledgements to be written; other meshes' batches stay unread.
                        for r in rx.iter() {
                            if let Report::Done { mesh: m, result } = r
                                && m == mesh
                            {
                                if let Err(e) = result {
                                    errors.push((mesh, e));
                                }
                                break;
                            }
                        }
                        break;
                    }
                    Report::Done { mesh, result } => {
                        done += 1;
                        if let Err(e) = result {
                            errors.push((mesh, e));
                        }
                    }
                }
            }
        }
        Mode::Hook => {
            let mut batches = Vec::new();
            let mut heard = vec![false; slugs.len()];
            let until = Instant::now() + HOOK_FETCH;
            while heard.iter().any(|h| !h) {
                match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(Report::Batch {
                        mesh,
                        messages,
                        acks,
                    }) => {
                        heard[mesh] = true;
                        batches.push((mesh, messages, acks));
                    }
                    Ok(Report::Done { mesh, result }) => {
                        heard[mesh] = true;
                        if let Err(e) = result {
                            errors.push((mesh, e));
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // The fetchers still waiting are left behind: the process ends without them.
                        for (mesh, _) in heard.iter().enumerate().filter(|(_, h)| !**h) {
                            errors.push((
                                mesh,
                                Error::network(format!(
                                    "no answer from the broker within {} ms; its messages wait for the next \
                                     prompt",
                                    HOOK_FETCH.as_millis()
                                )),
                            ));
                        }
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            // Messages already in Claude's context (pushed on the channel) are marked read without a second copy.
            let input = HOOK_INPUT.get_or_init(HookInput::default);
            let transcript = input.transcript_tail();
            let (seen_already, all): (Vec<Inbound>, Vec<Inbound>) = batches
                .iter()
                .flat_map(|(_, m, _)| m.clone())
                .partition(|m| input.has(&m.id, &transcript));
            for (_, messages, acks) in &batches {
                for m in messages
                    .iter()
                    .filter(|m| seen_already.iter().any(|s| s.id == m.id))
                {
                    let _ = acks.send(m.id.clone());
                }
            }
            if let Some((context, shown)) = hook_context(&all, HOOK_CAP) {
                out.line(hook_line(&context))?;
                out.flush()?;
                for (_, messages, acks) in &batches {
                    for m in messages.iter().filter(|m| shown.contains(&m.id)) {
                        let _ = acks.send(m.id.clone());
                    }
                }
            }
            let waiting: Vec<usize> = batches.iter().map(|(mesh, _, _)| *mesh).collect();
            drop(batches);
            let until = Instant::now() + HOOK_ACKS;
            let mut left = waiting.len();
            while left > 0 {
                match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(Report::Done { mesh, result }) => {
                        if waiting.contains(&mesh) {
                            left -= 1;
                        }
                        if let Err(e) = result {
                            errors.push((mesh, e));
                        }
                    }
                    Ok(Report::Batch { .. }) => {}
                    Err(_) => break,
                }
            }
        }
    }
    combine(errors, &slugs)
}

/// One error for the failures of several meshes: the first one's code, every mesh's message.
fn combine(mut errors: Vec<(usize, Error)>, slugs: &[String]) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 if slugs.len() == 1 => Err(errors.remove(0).1),
        _ => {
            let code = errors[0].1.code;
            let msg = errors
                .iter()
                .map(|(i, e)| format!("mesh {}: {}", slugs[*i], e.msg))
                .collect::<Vec<_>>()
                .join("; ");
            Err(Error::new(code, msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::wire::Push;

    fn inbound(id: &str, text: &str) -> Inbound {
        let alice = Keypair::from_seed(&[1; 32]);
        let bob = Keypair::from_seed(&[2; 32]);
        let (nonce, ciphertext) =
            crate::crypto::encrypt_dm(text.as_bytes(), &bob.public_hex(), &alice).unwrap();
        let p = Push {
            message_id: id.into(),
            sender_pubkey: alice.public_hex(),
            sender_member_pubkey: Some(alice.public_hex()),
            sender_name: Some("alice".into()),
            target_spec: Some(bob.public_hex()),
            nonce,
            ciphertext,
            created_at: "2026-05-04T10:00:01.000Z".into(),
            ..Push::default()
        };
        decode_push(&p, "dev", &bob, None)
    }

    #[test]
    fn undecryptable_messages_have_null_text() {
        let mut m = inbound("m1", "hi");
        let line = serde_json::to_string(&message_json(&m)).unwrap();
        assert!(
            line.starts_with(r#"{"type":"message","id":"m1","mesh":"dev","from":{"name":"alice","#),
            "{line}"
        );
        m.text = None;
        m.decrypt_error = Some("cannot decrypt".into());
        let j = serde_json::to_value(message_json(&m)).unwrap();
        assert!(j["text"].is_null() && j.get("text").is_some());
        assert_eq!(j["decrypt_error"], "cannot decrypt");
        assert!(human(&m, false, 0).ends_with("alice: [cannot decrypt: cannot decrypt]"));
    }

    #[test]
    fn human_lines() {
        let mut m = inbound("m1", "two\nlines\u{1b}[31m");
        m.priority = Priority::Now;
        m.reply_to = Some("0123456789abcdef".into());
        m.to = Some("@eng".into());
        let now = parse_rfc3339(&m.sent_at).unwrap();
        let s = human(&m, true, now);
        let (_, rest) = s.split_once(' ').unwrap();
        assert_eq!(
            rest,
            "[dev] [now] alice → @eng: two\n    lines\u{fffd}[31m  ↳ reply to 01234567"
        );
    }

    #[test]
    fn hook_context_caps_and_leaves_the_rest_unread() {
        assert!(hook_context(&[], HOOK_CAP).is_none());
        let msgs: Vec<Inbound> = (0..40)
            .map(|i| inbound(&format!("m{i}"), &"x".repeat(400)))
            .collect();
        let (ctx, shown) = hook_context(&msgs, HOOK_CAP).unwrap();
        assert!(json_len(&ctx) <= HOOK_CAP, "{}", json_len(&ctx));
        assert!(!shown.is_empty() && shown.len() < 40);
        assert_eq!(shown[0], "m0");
        assert!(ctx.contains(&format!("{} more unread messages", 40 - shown.len())));
        assert!(ctx.contains("from: alice (key "));
        assert!(ctx.contains("reply: cm-send --mesh dev --reply-to m0 "));
        let line = hook_line(&ctx);
        assert!(line.starts_with(
            r#"{"hookSpecificOutput":{"hookEventName":"UserPromptSubmit","additionalContext":"claudemesh: "#
        ));
        assert!(line.len() < 10_000);
    }

    #[test]
    fn a_message_in_the_prompt_or_transcript_is_in_context() {
        let input = HookInput {
            prompt: "<channel source=\"claudemesh\" message_id=\"Kq28vXw1\">bob: hi</channel>"
                .into(),
            ..HookInput::default()
        };
        assert!(input.has("Kq28vXw1", ""));
        assert!(input.has("m7", r#"{"content":"<channel message_id=\"m7\">"}"#));
        assert!(!input.has("m8", "m7"));
        assert!(!input.has("", "anything"));
        assert_eq!(HookInput::default().transcript_tail(), "");
    }

    #[test]
    fn a_message_too_long_for_any_prompt_is_cut_and_left_unread() {
        let msgs = [
            inbound("big", &"\"quoted\" ".repeat(3000)),
            inbound("m2", "hi"),
        ];
        let (ctx, shown) = hook_context(&msgs, HOOK_CAP).unwrap();
        assert!(shown.is_empty());
        assert!(json_len(&ctx) <= HOOK_CAP, "{}", json_len(&ctx));
        assert!(ctx.contains("cut short: the message has 27000 characters"));
        assert!(ctx.contains("1 more unread message did"));
    }
}
