//! `cm-bridge`: forwards the messages of a topic on one mesh into a topic on another, as JSON-line events.
//!
//! The bridge holds one [`Session`] per mesh, under a key of its own for this run, and is a member of every
//! bridged topic. A message is opened with its topic's key, sealed again under the other topic's key and posted
//! there with its author, place and time as a prefix of the text: `[from NAME on MESH#TOPIC at TIME] `. The
//! prefix is what keeps bridges from looping: a message that starts with `[from ` was forwarded already and is
//! never forwarded again, nor is one the bridge sent itself. After a reconnect it reads the history it missed.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::mpsc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{ConnOpts, Ctx, Event, Inbound, Session, SessionAuth, SessionOpts};
use crate::crypto::{self, Keypair, b64};
use crate::error::{Error, Result};
use crate::out::Out;
use crate::signal::{self, Signal};
use crate::topics;
use crate::wire::SendMessage;

/// What starts every forwarded text; a message that starts with it is never forwarded again.
const PREFIX: &str = "[from ";
/// How much history a reconnect reads to catch up.
const CATCH_UP: u32 = 100;
/// How many forwarded source ids are remembered against duplicates.
const MEMORY: usize = 10_000;

/// One end of a bridge: a topic of a joined mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct End {
    /// A joined mesh's slug.
    pub mesh: String,
    /// The topic's name, with or without `#`.
    pub topic: String,
}

/// Which way a bridge forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Both,
    AToB,
    BToA,
}

/// Two topics and which way messages go between them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    pub a: End,
    pub b: End,
    #[serde(default)]
    pub direction: Direction,
}

/// The file `cm-bridge run` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub bridges: Vec<Pair>,
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::from(e).context(path.display()))?;
        let c: Config = serde_json::from_str(&text)
            .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
        if c.bridges.is_empty() {
            return Err(Error::usage(format!(
                "{}: no bridges; see cm-bridge init",
                path.display()
            )));
        }
        for p in &c.bridges {
            for e in [&p.a, &p.b] {
                topics::topic_arg(&e.topic)?;
            }
            if p.a.mesh == p.b.mesh
                && p.a.topic.trim_start_matches('#') == p.b.topic.trim_start_matches('#')
            {
                return Err(Error::usage(format!(
                    "{}: a bridge from {}#{} to itself",
                    path.display(),
                    p.a.mesh,
                    p.a.topic
                )));
            }
        }
        Ok(c)
    }

    /// An example with one two-way bridge.
    pub fn example() -> Config {
        Config {
            bridges: vec![Pair {
                a: End {
                    mesh: "team-a".into(),
                    topic: "dev".into(),
                },
                b: End {
                    mesh: "team-b".into(),
                    topic: "dev".into(),
                },
                direction: Direction::Both,
            }],
        }
    }
}

/// Writes the example config to `path`; an existing file is left alone and is an error.
pub fn init(path: &Path) -> Result<()> {
    use std::io::Write;
    let mut text = serde_json::to_string_pretty(&Config::example())
        .map_err(|e| Error::internal(e.to_string()))?;
    text.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::exists(format!(
                "{} exists already; not replacing it",
                path.display()
            )),
            _ => Error::from(e).context(path.display()),
        })?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::from(e).context(path.display()))
}

/// A message the loop waits for: from a session, or a signal to stop.
enum Msg {
    Session(usize, Box<Event>),
    Stop(Signal),
}

/// A joined mesh: its session and the member key topic keys are sealed to.
struct Mesh {
    slug: String,
    session: Session,
    member: Keypair,
    own: String,
    reconnecting: bool,
}

/// A bridged topic.
struct Topic {
    mesh: usize,
    name: String,
    id: String,
    encrypted: bool,
    key: Option<[u8; 32]>,
    /// The newest `created_at` seen, where a catch-up starts.
    last_at: String,
    /// The topics its messages go to.
    to: Vec<usize>,
}

/// A message of a bridged topic, live or from history.
struct Incoming {
    id: String,
    sender_name: String,
    sender_pubkey: String,
    created_at: String,
    text: Option<String>,
}

/// A forward sent and not acked yet.
struct Pending {
    from: usize,
    from_id: String,
    to: usize,
    sender: Value,
}

struct Bridge<'a> {
    meshes: Vec<Mesh>,
    topics: Vec<Topic>,
    forwarded: HashSet<String>,
    pending: HashMap<String, Pending>,
    out: &'a mut Out,
}

/// Runs the bridges of the config at `path` until SIGINT or SIGTERM (then `Ok`), or until a broker ends a
/// session for good.
pub fn run(path: &Path, out: &mut Out) -> Result<()> {
    let config = Config::load(path)?;
    let (tx, rx) = mpsc::channel::<Msg>();
    // Blocked before any thread starts, so every thread inherits the mask and only the waiting thread sees them.
    let stop = tx.clone();
    signal::watch(&[Signal::Interrupt, Signal::Terminate], move |s| {
        let _ = stop.send(Msg::Stop(s));
    })?;
    let mut slugs: Vec<String> = Vec::new();
    for p in &config.bridges {
        for e in [&p.a, &p.b] {
            if !slugs.contains(&e.mesh) {
                slugs.push(e.mesh.clone());
            }
        }
    }
    let mut meshes = Vec::new();
    for (i, slug) in slugs.iter().enumerate() {
        let ctx = Ctx::load(Some(slug))?;
        let member = topics::member_key(&ctx)?;
        let session_key = Keypair::generate();
        let own = session_key.public_hex();
        let opts = SessionOpts {
            conn: ConnOpts {
                session: Some(SessionAuth {
                    session: session_key,
                }),
                pull: false,
                peer_type: "connector".into(),
                channel: "cm-bridge".into(),
                ..ctx.conn_opts()
            },
            ..SessionOpts::default()
        };
        let tx = tx.clone();
        let sink = Box::new(move |e| {
            let _ = tx.send(Msg::Session(i, Box::new(e)));
        });
        let session = Session::start_with(&ctx.mesh, opts, sink)?;
        meshes.push(Mesh {
            slug: slug.clone(),
            session,
            member,
            own,
            reconnecting: false,
        });
    }
    drop(tx);
    let mut b = Bridge {
        meshes,
        topics: Vec::new(),
        forwarded: HashSet::new(),
        pending: HashMap::new(),
        out,
    };
    let result = b.setup(&config).and_then(|()| b.run(&rx));
    for m in b.meshes {
        m.session.close();
    }
    result
}

impl Bridge<'_> {
    fn event(&mut self, v: Value) -> Result<()> {
        self.out.json(&v)?;
        self.out.flush()
    }

    fn topic_index(&mut self, e: &End) -> Result<usize> {
        let name = topics::topic_arg(&e.topic)?.to_string();
        let mesh = self
            .meshes
            .iter()
            .position(|m| m.slug == e.mesh)
            .ok_or_else(|| Error::internal("a mesh without a session"))?;
        if let Some(i) = self
            .topics
            .iter()
            .position(|t| t.mesh == mesh && t.name == name)
        {
            return Ok(i);
        }
        let m = &self.meshes[mesh];
        let mut r = &m.session;
        topics::join(&mut r, &name, &m.member.public_hex())
            .map_err(|e| e.context(format!("{}#{name}", m.slug)))?;
        let opened = topics::open(&mut r, &name, &m.member, 1, None)
            .map_err(|e| e.context(format!("{}#{name}", m.slug)))?;
        self.topics.push(Topic {
            mesh,
            name,
            id: opened.id,
            encrypted: opened.encrypted,
            key: opened.key,
            last_at: opened
                .history
                .last()
                .map(|m| m.created_at.clone())
                .unwrap_or_default(),
            to: Vec::new(),
        });
        Ok(self.topics.len() - 1)
    }

    fn setup(&mut self, config: &Config) -> Result<()> {
        for p in &config.bridges {
            let a = self.topic_index(&p.a)?;
            let b = self.topic_index(&p.b)?;
            if p.direction != Direction::BToA && !self.topics[a].to.contains(&b) {
                self.topics[a].to.push(b);
            }
            if p.direction != Direction::AToB && !self.topics[b].to.contains(&a) {
                self.topics[b].to.push(a);
            }
        }
        for i in 0..self.topics.len() {
            if self.topics[i].waiting_for_key() {
                self.out_note(i, "waiting for a copy of the topic key")?;
            }
        }
        Ok(())
    }

    fn out_note(&mut self, topic: usize, what: &str) -> Result<()> {
        let t = &self.topics[topic];
        let v = json!({"type": "note", "mesh": self.meshes[t.mesh].slug, "topic": t.name, "note": what});
        self.event(v)
    }

    fn run(&mut self, rx: &mpsc::Receiver<Msg>) -> Result<()> {
        loop {
            let Ok(msg) = rx.recv() else { return Ok(()) };
            let (i, ev) = match msg {
                Msg::Stop(s) => return s.outcome(),
                Msg::Session(i, ev) => (i, *ev),
            };
            let slug = self.meshes[i].slug.clone();
            match ev {
                Event::Message(m) => {
                    let id = m.id.clone();
                    self.message(i, *m)?;
                    self.meshes[i].session.ack(&id);
                }
                Event::Acked {
                    client_message_id,
                    ack,
                } => {
                    if let Some(p) = self.pending.remove(&client_message_id) {
                        let (f, t) = (&self.topics[p.from], &self.topics[p.to]);
                        let v = json!({"type": "forwarded",
                            "from": {"mesh": self.meshes[f.mesh].slug, "topic": f.name, "message_id": p.from_id},
                            "to": {"mesh": self.meshes[t.mesh].slug, "topic": t.name, "message_id": ack.message_id},
                            "sender": p.sender});
                        self.event(v)?;
                    }
                }
                Event::Failed {
                    client_message_id,
                    error,
                } => {
                    if let Some(p) = self.pending.remove(&client_message_id) {
                        let v = json!({"type": "dropped", "reason": "refused", "message_id": p.from_id,
                            "error": error.msg});
                        self.event(v)?;
                    }
                }
                Event::Connected { .. } => {
                    self.event(json!({"type": "connection", "mesh": slug, "state": "connected"}))?;
                    if std::mem::take(&mut self.meshes[i].reconnecting) {
                        self.catch_up(i)?;
                    }
                }
                Event::Disconnected { reason, retry_in } => {
                    self.meshes[i].reconnecting = true;
                    self.event(
                        json!({"type": "connection", "mesh": slug, "state": "disconnected",
                        "reason": reason, "retry_in_s": retry_in.map(|d| d.as_secs_f64())}),
                    )?;
                }
                Event::System { event, data } if event == "topic_member_joined" => {
                    let tid = data.get("topicId").and_then(Value::as_str).unwrap_or("");
                    if let Some(t) = self.topics.iter().position(|t| t.mesh == i && t.id == tid) {
                        self.reseal(t);
                    }
                }
                Event::Closed => {
                    self.event(json!({"type": "connection", "mesh": slug, "state": "closed"}))?;
                    return Err(Error::network(format!(
                        "mesh {slug}: the broker ended the session"
                    )));
                }
                _ => {}
            }
        }
    }

    fn message(&mut self, mesh: usize, mut m: Inbound) -> Result<()> {
        let Some(t) = self
            .topics
            .iter()
            .position(|t| t.mesh == mesh && m.to.as_deref() == Some(&format!("#{}", t.id)))
        else {
            return Ok(());
        };
        if self.topics[t].waiting_for_key() {
            self.try_key(t);
        }
        if let Some(k) = &self.topics[t].key {
            m.open_topic(k);
        }
        let inc = Incoming {
            sender_name: m
                .from
                .name
                .unwrap_or_else(|| crate::out::short_id(&m.from.pubkey).to_string()),
            sender_pubkey: m.from.pubkey,
            id: m.id,
            created_at: m.sent_at,
            text: m.text,
        };
        self.forward(t, inc)
    }

    fn forward(&mut self, from: usize, m: Incoming) -> Result<()> {
        if m.created_at > self.topics[from].last_at {
            self.topics[from].last_at = m.created_at.clone();
        }
        if self.topics[from].to.is_empty() || !self.remember(&m.id) {
            return Ok(());
        }
        let reason = if self.meshes.iter().any(|x| x.own == m.sender_pubkey) {
            Some("own")
        } else {
            match &m.text {
                None => Some("unreadable"),
                Some(t) if t.starts_with(PREFIX) => Some("forwarded_already"),
                Some(_) => None,
            }
        };
        if let Some(reason) = reason {
            let v = json!({"type": "dropped", "reason": reason, "message_id": m.id});
            return self.event(v);
        }
        let text = m.text.unwrap_or_default();
        let f = &self.topics[from];
        let body = format!(
            "{PREFIX}{} on {}#{} at {}] {text}",
            m.sender_name, self.meshes[f.mesh].slug, f.name, m.created_at
        );
        let sender =
            json!({"name": m.sender_name, "pubkey": m.sender_pubkey, "sent_at": m.created_at});
        for to in self.topics[from].to.clone() {
            if self.topics[to].waiting_for_key() {
                self.try_key(to);
            }
            let t = &self.topics[to];
            let (nonce, ciphertext, body_version) = match (t.encrypted, t.key) {
                (false, _) => (b64::encode(&[0u8; 24]), b64::encode(body.as_bytes()), 1),
                (true, Some(key)) => {
                    let n = crypto::random_bytes::<24>();
                    (
                        b64::encode(&n),
                        b64::encode(&crypto::secretbox_easy(body.as_bytes(), &n, &key)),
                        2,
                    )
                }
                (true, None) => {
                    let v = json!({"type": "dropped", "reason": "no_key", "message_id": m.id,
                        "to": {"mesh": self.meshes[t.mesh].slug, "topic": t.name}});
                    self.event(v)?;
                    continue;
                }
            };
            let send = SendMessage {
                target_spec: format!("#{}", t.id),
                nonce,
                ciphertext,
                body_version: Some(body_version),
                mentions: Some(topics::mentions(&text)),
                ..SendMessage::default()
            };
            let cmid = self.meshes[t.mesh].session.send(send);
            self.pending.insert(
                cmid,
                Pending {
                    from,
                    from_id: m.id.clone(),
                    to,
                    sender: sender.clone(),
                },
            );
        }
        Ok(())
    }

    /// Notes a source id; false when it was handled already.
    fn remember(&mut self, id: &str) -> bool {
        if self.forwarded.len() >= MEMORY {
            self.forwarded.clear();
        }
        self.forwarded.insert(id.to_string())
    }

    fn try_key(&mut self, t: usize) {
        let m = &self.meshes[self.topics[t].mesh];
        let mut r = &m.session;
        if let Ok(Some(k)) = topics::fetch_key(&mut r, &self.topics[t].id, &m.member) {
            self.topics[t].key = Some(k);
        }
    }

    /// Seals the key for members waiting for it; a failure is left for the next member who joins.
    fn reseal(&mut self, t: usize) {
        let topic = &self.topics[t];
        let Some(key) = topic.key else { return };
        let m = &self.meshes[topic.mesh];
        let mut r = &m.session;
        let _ = topics::reseal(&mut r, &topic.id, &key, &m.member);
    }

    /// After a reconnect: forwards what was posted on the mesh's topics while the connection was down.
    fn catch_up(&mut self, mesh: usize) -> Result<()> {
        for t in 0..self.topics.len() {
            if self.topics[t].mesh != mesh || self.topics[t].to.is_empty() {
                continue;
            }
            let page = {
                let m = &self.meshes[mesh];
                let mut r = &m.session;
                match topics::open(&mut r, &self.topics[t].id, &m.member, CATCH_UP, None) {
                    Ok(p) => p,
                    Err(_) => continue,
                }
            };
            if page.key.is_some() {
                self.topics[t].key = page.key;
            }
            let since = self.topics[t].last_at.clone();
            for h in page.history {
                if h.created_at < since {
                    continue;
                }
                let text = topics::open_body(
                    &h.nonce,
                    &h.ciphertext,
                    h.body_version.unwrap_or(1),
                    self.topics[t].key.as_ref(),
                )
                .ok();
                let inc = Incoming {
                    id: h.id,
                    sender_name: h.sender_name,
                    sender_pubkey: h.sender_pubkey,
                    created_at: h.created_at,
                    text,
                };
                self.forward(t, inc)?;
            }
        }
        Ok(())
    }
}

impl Topic {
    fn waiting_for_key(&self) -> bool {
        self.encrypted && self.key.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_and_the_example_round_trips() {
        let c: Config = serde_json::from_str(
            r##"{"bridges":[{"a":{"mesh":"x","topic":"#dev"},"b":{"mesh":"y","topic":"ops"},"direction":"a_to_b"}]}"##,
        )
        .unwrap();
        assert_eq!(c.bridges[0].direction, Direction::AToB);
        let text = serde_json::to_string(&Config::example()).unwrap();
        let back: Config = serde_json::from_str(&text).unwrap();
        assert_eq!(back.bridges[0].direction, Direction::Both);
        assert!(serde_json::from_str::<Config>(r#"{"bridges":[],"x":1}"#).is_err());
    }
}
