//! `cm-id`: the local identity and broker logins. Makes the ed25519 key every mesh made or joined here uses, shows
//! who you are (never a secret), and records the brokers to create meshes on. None of it needs the network.

use serde::Serialize;

use crate::cli::{Args, Complete, Example, Flag, Sub, Tool, flag, pos};
use crate::config::Paths;
use crate::error::{Error, Result};
use crate::id::{self, Whoami};
use crate::out::{self, Out};

const NAME: Flag = flag("name", "the display name peers see").value("NAME");
const FORCE: Flag = flag("force", "replace an existing identity with a new key");
const TOKEN: Flag = flag("token", "the broker's admin or creation token").value("TOKEN");
const CA_FILE: Flag = flag(
    "ca-file",
    "trust the CAs in this PEM file for the broker's TLS certificate (a private CA, or the certificate itself)",
)
.value("FILE")
.complete(Complete::File);

/// `cm-id`'s flag table.
pub static TOOL: Tool = Tool {
    name: "cm-id",
    about: "make and show your identity, and log in to brokers",
    description: "cm-id manages who you are on this machine. cm-id register makes your identity: an ed25519 key \
pair kept in identity.json in the config directory (mode 0600); the directory is made (mode 0700) if missing. Every mesh you create or join uses it as your member \
key. The secret key never leaves the machine and is never printed.

cm-id whoami shows your public key, the meshes you have joined (the default one, which tools use without --mesh, \
marked so) and the brokers you are logged in to. Without an identity it exits with status 2.

cm-id login URL records a broker as the default one to create meshes on, with its admin token when it was started \
with one (--token). http and https URLs are turned into the broker's WebSocket URL (ws://HOST:PORT/ws). \
Logging in asks the broker for its health and warns on stderr when nothing answers; the login is recorded \
either way. cm-id logout forgets one login, or all of them.",
    section: 1,
    args: &[],
    flags: &[],
    subs: &[
        Sub {
            name: "register",
            aliases: &[],
            about: "make the local identity (an ed25519 key pair)",
            args: &[],
            flags: &[NAME, FORCE],
        },
        Sub {
            name: "whoami",
            aliases: &["show"],
            about: "show your public key, joined meshes and broker logins",
            args: &[],
            flags: &[],
        },
        Sub {
            name: "login",
            aliases: &[],
            about: "record a broker, its token and its CA file, as the default",
            args: &[pos("URL")],
            flags: &[TOKEN, CA_FILE],
        },
        Sub {
            name: "logout",
            aliases: &[],
            about: "forget the login to URL, or every login",
            args: &[pos("URL").optional()],
            flags: &[],
        },
    ],
    mesh_flag: false,
    config_dir: true,
    trailing: false,
    examples: &[
        Example {
            cmd: "cm-id register --name alice",
            what: "Make your identity, shown to peers as alice.",
        },
        Example {
            cmd: "cm-id whoami --json",
            what: "Your public key, meshes and logins as one JSON object.",
        },
        Example {
            cmd: "cm-id login https://broker.example.com --token T",
            what: "Create meshes on that broker from now on.",
        },
    ],
    env: &[],
};

pub fn run(args: &Args, out: &mut Out) -> Result<()> {
    let paths = Paths::resolve()?;
    match args.sub {
        Some("register") => register(&paths, args, out),
        Some("login") => login(&paths, args, out),
        Some("logout") => logout(&paths, args, out),
        _ => whoami(&paths, out),
    }
}

/// `register --json`.
#[derive(Serialize)]
struct IdentityLine<'a> {
    r#type: &'static str,
    pubkey: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<&'a str>,
    created_at: &'a str,
    config_dir: String,
}

/// `whoami --json`.
#[derive(Serialize)]
struct WhoamiLine<'a> {
    r#type: &'static str,
    #[serde(flatten)]
    who: &'a Whoami,
}

/// `login`/`logout --json`.
#[derive(Serialize)]
struct LoginEvent<'a> {
    r#type: &'static str,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    default: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<bool>,
}

/// Rows of `key value`, the keys padded to one width.
fn aligned(out: &mut Out, rows: &[(&str, String)]) -> Result<()> {
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        out.line(format!("{k:w$}  {v}"))?;
    }
    Ok(())
}

fn register(paths: &Paths, args: &Args, out: &mut Out) -> Result<()> {
    let id = id::register(paths, args.value(&NAME), args.has(&FORCE))?;
    if out.json {
        return out.json(&IdentityLine {
            r#type: "identity",
            pubkey: &id.pubkey,
            display_name: id.display_name.as_deref(),
            created_at: &id.created_at,
            config_dir: paths.dir.display().to_string(),
        });
    }
    let mut rows = vec![("pubkey", id.pubkey.clone())];
    if let Some(n) = &id.display_name {
        rows.push(("name", n.clone()));
    }
    rows.push(("created", id.created_at.clone()));
    rows.push(("config", paths.dir.display().to_string()));
    aligned(out, &rows)
}

fn whoami(paths: &Paths, out: &mut Out) -> Result<()> {
    let who = id::whoami(paths)?;
    if out.json {
        return out.json(&WhoamiLine {
            r#type: "whoami",
            who: &who,
        });
    }
    let mut rows = vec![("pubkey", who.pubkey.clone())];
    if let Some(n) = &who.display_name {
        rows.push(("name", n.clone()));
    }
    rows.push(("created", who.created_at.clone()));
    rows.push(("config", who.config_dir.clone()));
    let width = |f: fn(&id::MeshRow) -> usize| who.meshes.iter().map(f).max().unwrap_or(0);
    let slug_w = width(|m| m.slug.len());
    let url_w = width(|m| m.broker_url.len());
    let member_w = width(|m| m.member_id.len());
    for m in &who.meshes {
        let key = if m.pubkey == who.pubkey {
            "your key".to_string()
        } else {
            format!("key {}…", m.pubkey.get(..12).unwrap_or(&m.pubkey))
        };
        let default = if m.default { "  (default)" } else { "" };
        rows.push((
            "mesh",
            format!(
                "{:slug_w$}  {:url_w$}  member {:member_w$}  {key}{default}",
                m.slug, m.broker_url, m.member_id
            ),
        ));
    }
    if who.meshes.is_empty() {
        rows.push((
            "mesh",
            "none joined: run 'cm new NAME' or 'cm join URL'".into(),
        ));
    }
    for b in &who.logins {
        let ca = b.ca_file.as_ref().map(|f| format!("CA file {f}"));
        let notes: Vec<&str> = [(b.default, "default"), (b.token, "token")]
            .into_iter()
            .filter_map(|(on, s)| on.then_some(s))
            .chain(ca.as_deref())
            .collect();
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join(", "))
        };
        rows.push(("broker", format!("{}{notes}", b.url)));
    }
    aligned(out, &rows)
}

fn login(paths: &Paths, args: &Args, out: &mut Out) -> Result<()> {
    let given = args
        .pos(0)
        .ok_or_else(|| Error::usage("login needs the broker's URL"))?;
    let token = args.value(&TOKEN);
    let ca_file = args.value(&CA_FILE).map(std::path::Path::new);
    let url = id::login(paths, given, token, ca_file)?;
    // Recorded either way (the broker may start later), but a typo should not wait for the first cm new to show.
    match crate::client::rest::health(&url) {
        Ok(_) => {}
        // A certificate this machine refuses is not a broker that is not up yet.
        Err(e) if e.code == crate::error::Code::Auth => out::warn(TOOL.name, e.msg),
        Err(e) => out::warn(
            TOOL.name,
            format!(
                "no broker answers at {url} yet ({}); cm new there fails until one does",
                e.msg
            ),
        ),
    }
    if out.json {
        return out.json(&LoginEvent {
            r#type: "login",
            url: &url,
            default: Some(true),
            token: Some(token.is_some()),
            ca_file: ca_file.is_some().then_some(true),
        });
    }
    let with = match (token.is_some(), ca_file.is_some()) {
        (true, true) => " with a token and a CA file",
        (true, false) => " with a token",
        (false, true) => " with a CA file",
        (false, false) => "",
    };
    out.line(format!("logged in to {url}{with} (default broker)"))
}

fn logout(paths: &Paths, args: &Args, out: &mut Out) -> Result<()> {
    for u in &id::logout(paths, args.pos(0))? {
        if out.json {
            out.json(&LoginEvent {
                r#type: "logout",
                url: u,
                default: None,
                ca_file: None,
                token: None,
            })?;
        } else {
            out.line(format!("logged out of {u}"))?;
        }
    }
    Ok(())
}
