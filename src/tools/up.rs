//! `cm-up`: `cm up` starts a broker on this machine and sets up what a fresh machine lacks; `cm down` stops it.

use serde::Serialize;

use crate::cli::{Args, Complete, Example, Flag, Sub, Tool, flag};
use crate::error::Result;
use crate::out::Out;
use crate::up::{self, Down, Source};

const DATA: Flag = flag(
    "data",
    "the broker's data directory, default $XDG_DATA_HOME/claudemesh-broker",
)
.value("DIR")
.complete(Complete::Dir);
const LISTEN: Flag = flag(
    "listen",
    "where the broker listens, default 127.0.0.1:7900 (port 0 picks a free one)",
)
.value("ADDR");
const NAME: Flag = flag("name", "your display name, and the first mesh's name").value("DISPLAY");

/// `cm-up`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-up",
    about: "start a local broker and set up an identity and a first mesh; stop it again",
    description: "cm-up up (cm up) gets this machine ready: it starts cm-broker in the background unless a broker \
already answers (the one an earlier cm up started, or anything at the listen address, default 127.0.0.1:7900), \
makes your identity if there is none, and creates a mesh named after you on that broker if you have joined none. \
Your name is --name, else displayName in config.json, else your identity's, else git config user.name, else \
$USER, else the host name; cm up says which. Then it prints what to do next. Running it again changes nothing and says so.

The broker keeps its data in --data DIR (default $XDG_DATA_HOME/claudemesh-broker, else \
~/.local/share/claudemesh-broker). cm up writes up.json there (the broker's pid and URL) and appends the broker's \
log to broker.log. The broker runs in its own session, so closing the terminal does not stop it.

cm-up down (cm down) stops the broker cm up started, and nothing else: SIGTERM, then SIGKILL if it has not exited \
within 10 s. With nothing to stop it says so and exits 0. cm-up status shows whether it runs, its URL and pid. \
Without a subcommand cm-up runs up.",
    section: 1,
    args: &[],
    flags: &[DATA],
    subs: &[
        Sub {
            name: "up",
            aliases: &["start"],
            about: "start the broker if needed; make an identity and a mesh if there are none",
            args: &[],
            flags: &[LISTEN, NAME],
        },
        Sub {
            name: "down",
            aliases: &["stop"],
            about: "stop the broker cm up started",
            args: &[],
            flags: &[],
        },
        Sub {
            name: "status",
            aliases: &[],
            about: "whether the broker cm up started is running",
            args: &[],
            flags: &[],
        },
    ],
    mesh_flag: false,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm up",
            what: "A broker on 127.0.0.1:7900, your identity and a first mesh.",
        },
        Example {
            cmd: "cm-up up --listen 127.0.0.1:0 --data /tmp/cmb",
            what: "A throwaway broker on a free port.",
        },
        Example {
            cmd: "cm down",
            what: "Stop the broker cm up started.",
        },
    ],
    env: &[
        (
            "XDG_DATA_HOME",
            "Where the default data directory goes (else ~/.local/share).",
        ),
        (
            "USER",
            "Your display name and the first mesh's, when neither --name, the config nor git config user.name \
             gives one (then the host name).",
        ),
    ],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let data = up::data_dir(args.value(&DATA));
    match args.sub {
        Some("down") => down(&data, out),
        Some("status") => status(&data, out),
        _ => up(
            &data,
            args.value(&LISTEN).unwrap_or(up::DEFAULT_LISTEN),
            args.value(&NAME),
            out,
        ),
    }
}

/// `up --json`: the broker.
#[derive(Serialize)]
struct BrokerLine<'a> {
    r#type: &'static str,
    url: &'a str,
    /// `started`, `running` or `external`.
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    data_dir: String,
    log: String,
}

/// `up --json`: the identity.
#[derive(Serialize)]
struct IdentityLine<'a> {
    r#type: &'static str,
    pubkey: &'a str,
    created: bool,
}

/// `up --json`: a joined mesh.
#[derive(Serialize)]
struct MeshLine<'a> {
    r#type: &'static str,
    slug: &'a str,
    name: &'a str,
    mesh_id: &'a str,
    member_id: &'a str,
    broker_url: &'a str,
    created: bool,
}

/// `down --json`.
#[derive(Serialize)]
struct DownLine<'a> {
    r#type: &'static str,
    stopped: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    killed: Option<bool>,
    /// `up.json` named this pid, which was no longer a running broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    stale_pid: Option<u32>,
}

impl Default for DownLine<'_> {
    fn default() -> Self {
        DownLine {
            r#type: "down",
            stopped: false,
            pid: None,
            url: None,
            killed: None,
            stale_pid: None,
        }
    }
}

/// `status --json`.
#[derive(Serialize)]
struct StatusLine<'a> {
    r#type: &'static str,
    running: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<&'a str>,
    data_dir: String,
}

fn up(data: &std::path::Path, listen: &str, name: Option<&str>, out: &mut Out) -> Result<()> {
    links(out)?;
    let up = up::up(data, listen, name)?;
    if let (Some(n), Some(m)) = (&up.name, up.meshes.first()) {
        crate::out::notice(n.words(&m.slug));
    }
    let b = &up.broker;
    let log = up::log_file(data);
    if out.json {
        out.json(&BrokerLine {
            r#type: "broker",
            url: &b.url,
            state: b.source.as_str(),
            pid: b.pid,
            data_dir: data.display().to_string(),
            log: log.display().to_string(),
        })?;
        out.json(&IdentityLine {
            r#type: "identity",
            pubkey: &up.identity.0,
            created: up.identity.1,
        })?;
        for m in &up.meshes {
            out.json(&MeshLine {
                r#type: "mesh",
                slug: &m.slug,
                name: &m.name,
                mesh_id: &m.mesh_id,
                member_id: &m.member_id,
                broker_url: &m.broker_url,
                created: up.mesh_created,
            })?;
        }
        return Ok(());
    }
    let pid = b.pid.map(|p| format!(", pid {p}")).unwrap_or_default();
    let how = match b.source {
        Source::Started => format!("started{pid}; log {}", log.display()),
        Source::Running => format!("already running{pid}"),
        Source::External => "already running, not started by cm up".into(),
    };
    out.line(format!("broker    {} ({how})", b.url))?;
    let (pk, made) = &up.identity;
    let made = if *made { "made now" } else { "exists" };
    out.line(format!(
        "identity  {}… ({made})",
        pk.get(..16).unwrap_or(pk)
    ))?;
    for m in &up.meshes {
        let how = if up.mesh_created {
            "created now"
        } else {
            "joined"
        };
        out.line(format!("mesh      {} on {} ({how})", m.slug, m.broker_url))?;
    }
    let first = up.meshes.first().map(|m| m.slug.as_str()).unwrap_or("it");
    if b.source != Source::Started && !up.identity.1 && !up.mesh_created {
        out.line("everything is up already")?;
    }
    out.line("")?;
    out.line("next:")?;
    out.line(format!(
        "  cm invite            make a link that lets someone join {first}"
    ))?;
    out.line("  cm install           register claudemesh with Claude Code")?;
    out.line("  cm launch            start Claude Code in the mesh")?;
    out.line("  cm send NAME TEXT    send a peer a message")
}

fn down(data: &std::path::Path, out: &mut Out) -> Result<()> {
    let d = up::down(data)?;
    if out.json {
        let line = match &d {
            Down::Stopped { pid, url, killed } => DownLine {
                stopped: true,
                pid: Some(*pid),
                url: Some(url),
                killed: Some(*killed),
                ..DownLine::default()
            },
            Down::Stale { pid } => DownLine {
                stale_pid: Some(*pid),
                ..DownLine::default()
            },
            Down::Nothing => DownLine::default(),
        };
        return out.json(&line);
    }
    match d {
        Down::Stopped { pid, url, killed } => {
            let how = if killed {
                "killed: it did not stop within 10 s"
            } else {
                "stopped"
            };
            out.line(format!("{how} the broker at {url} (pid {pid})"))
        }
        Down::Stale { pid } => out.line(format!(
            "no broker started by cm up is running (pid {pid} is gone; forgot it)"
        )),
        Down::Nothing => out.line("no broker started by cm up is running"),
    }
}

fn status(data: &std::path::Path, out: &mut Out) -> Result<()> {
    let st = up::status(data)?;
    if out.json {
        let (s, running) = match &st {
            Some((s, running)) => (Some(s), *running),
            None => (None, false),
        };
        return out.json(&StatusLine {
            r#type: "status",
            running,
            url: s.map(|s| s.url.as_str()),
            pid: s.map(|s| s.pid),
            started_at: s.map(|s| s.started_at.as_str()),
            data_dir: data.display().to_string(),
        });
    }
    match st {
        Some((s, true)) => out.line(format!(
            "running at {} (pid {}, since {})",
            s.url, s.pid, s.started_at
        )),
        Some((s, false)) => out.line(format!(
            "not answering at {} (pid {}); cm up starts it again",
            s.url, s.pid
        )),
        None => out.line("not running (cm up starts it)"),
    }
}

/// The `cm-*` links beside `cm` (`cm links`), made on the way: a line when some were made, a warning when they
/// cannot be, and never a reason not to start (every tool runs as `cm VERB` too).
fn links(out: &mut Out) -> Result<()> {
    use crate::multicall;
    let made = multicall::cm_path().and_then(|cm| {
        let dir = cm
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        Ok((multicall::make_links(&dir, &cm)?, dir))
    });
    let (done, dir) = match made {
        Ok(x) => x,
        Err(e) => {
            crate::out::warn(
                TOOL.name,
                format!("no cm-* links made ({e}); run the tools as cm VERB"),
            );
            return Ok(());
        }
    };
    let (new, foreign) = multicall::summary(&done);
    if !foreign.is_empty() {
        crate::out::warn(
            TOOL.name,
            format!(
                "left alone in {}, not claudemesh's: {} (see cm links)",
                dir.display(),
                foreign.join(", ")
            ),
        );
    }
    if new == 0 {
        return Ok(());
    }
    if out.json {
        out.json(&serde_json::json!({"type": "links", "dir": dir, "made": new}))
    } else {
        out.line(format!("made {new} cm-* links in {}", dir.display()))
    }
}
