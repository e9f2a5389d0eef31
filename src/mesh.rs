//! Mesh management on this machine: create a mesh, invite to it, join one, rename, leave, list its members.
//!
//! The identity in `identity.json` is the member key in every mesh made or joined here. A mesh made here gets a
//! fresh owner key pair that signs its invites; it stays in `owners.json` and the broker only ever sees its public
//! half (DESIGN §6). Slugs in `config.json` are local names: renaming one changes nothing on the broker.

use std::time::Duration;

use crate::client::{Ctx, rest};
use crate::config::{Brokers, Config, Identity, MeshEntry, OwnerKeys, Paths, broker_ws_url};
use crate::crypto::{Keypair, b64, random_bytes};
use crate::error::{Code, Error, Result};
use crate::invite::{self, Invite};
use crate::time::{fmt_rfc3339, now_ms};
use crate::wire::{self, Frame};

/// The broker a mesh is made on when neither `--broker` nor a `cm login` names one: the one `cm up` runs.
pub const DEFAULT_BROKER: &str = "ws://127.0.0.1:7900/ws";

/// The identity, made now if there is none; `true` when it was just made.
pub fn ensure_identity(paths: &Paths, display_name: Option<&str>) -> Result<(Identity, bool)> {
    if let Some(id) = Identity::load(paths)? {
        return Ok((id, false));
    }
    match Identity::create(paths, display_name, false) {
        Ok(id) => Ok((id, true)),
        // Another process made it between our look and our write: use that one.
        Err(e) if e.code == Code::Exists => Ok((Identity::require(paths)?, false)),
        Err(e) => Err(e),
    }
}

/// `$USER` (else `$LOGNAME`), if set and not empty.
pub fn user_name() -> Option<String> {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

/// Where a display name came from, so a tool can say which one it picked and how to pick another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    /// `--name`.
    Flag,
    /// `displayName` in config.json.
    Config,
    /// The name `cm register --name` gave the identity.
    Identity,
    /// `git config user.name`.
    Git,
    /// `$USER` (or `$LOGNAME`).
    User,
    /// The host name.
    Host,
    /// None of them: `member`.
    Fallback,
}

impl NameSource {
    /// Where the name came from, as a person reads it.
    pub fn describe(self) -> &'static str {
        match self {
            NameSource::Flag => "--name",
            NameSource::Config => "displayName in config.json",
            NameSource::Identity => "your identity",
            NameSource::Git => "git config user.name",
            NameSource::User => "$USER",
            NameSource::Host => "the host name",
            NameSource::Fallback => "no name found anywhere",
        }
    }
}

/// A display name, where it came from, and the name it replaces when that one was taken in the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub source: NameSource,
    /// The name first chosen, when another member of the mesh had it already.
    pub taken: Option<String>,
}

impl Named {
    /// One line for stderr: the name, where it came from, how to pick another.
    pub fn words(&self, mesh: &str) -> String {
        match &self.taken {
            Some(t) => format!(
                "your name in {mesh} is {:?}: {t:?} (from {}) is another member's ('cm profile name NAME' picks \
                 another)",
                self.name,
                self.source.describe()
            ),
            None => format!(
                "your name in {mesh} is {:?} (from {}; --name NAME or 'cm profile name NAME' picks another)",
                self.name,
                self.source.describe()
            ),
        }
    }
}

/// `git config user.name`, if git is installed and it is set.
fn git_user_name() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["config", "--get", "user.name"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}

/// The display name to give the broker, and where it came from: `flag`, else the config's, else the identity's,
/// else `git config user.name`, else `$USER`, else the host name, else `member`.
pub fn choose_name(flag: Option<&str>, config: &Config, identity: Option<&Identity>) -> Named {
    let clean = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let found = [
        (NameSource::Flag, flag.map(str::to_string)),
        (NameSource::Config, config.display_name.clone()),
        (
            NameSource::Identity,
            identity.and_then(|i| i.display_name.clone()),
        ),
    ]
    .into_iter()
    .find_map(|(src, n)| n.and_then(clean).map(|n| (src, n)))
    .or_else(|| {
        git_user_name()
            .and_then(clean)
            .map(|n| (NameSource::Git, n))
    })
    .or_else(|| user_name().and_then(clean).map(|n| (NameSource::User, n)))
    .or_else(|| {
        crate::client::hostname()
            .and_then(clean)
            .map(|n| (NameSource::Host, n))
    });
    let (source, name) = found.unwrap_or((NameSource::Fallback, "member".into()));
    Named {
        name,
        source,
        taken: None,
    }
}

/// The display name to give the broker (see [`choose_name`]).
pub fn display_name(flag: Option<&str>, config: &Config, identity: Option<&Identity>) -> String {
    choose_name(flag, config, identity).name
}

/// `name`, or `name-2`, `name-3`, ... whichever no member in `members` but `me` has (names compared without
/// regard to case).
pub fn free_name(name: &str, members: &[wire::Member], me: &str) -> String {
    let taken = |n: &str| {
        members
            .iter()
            .any(|m| m.member_id != me && m.display_name.eq_ignore_ascii_case(n))
    };
    if !taken(name) {
        return name.to_string();
    }
    (2..)
        .map(|i| format!("{name}-{i}"))
        .find(|n| !taken(n))
        .unwrap_or_else(|| name.to_string())
}

/// The key in a mesh's entry in `config.json` under which the display name chosen there is kept, for `cm launch`.
/// Not in the original's schema, which ignores it.
pub const ENTRY_NAME: &str = "displayName";

/// The display name recorded for `mesh` when it was made or joined, or set with `cm profile name`.
pub fn entry_name(mesh: &MeshEntry) -> Option<&str> {
    mesh.extra
        .get(ENTRY_NAME)
        .and_then(|v| v.as_str())
        .filter(|s| !s.trim().is_empty())
}

/// Records `name` as the display name of the mesh `slug` in `config.json`.
pub fn record_name(paths: &Paths, slug: &str, name: &str) -> Result<()> {
    let mut config = Config::load(paths)?;
    if let Some(m) = config.meshes.iter_mut().find(|m| m.slug == slug) {
        m.extra.insert(ENTRY_NAME.into(), name.into());
        config.save(paths)?;
    }
    Ok(())
}

/// Refuses an empty name, or one over several lines or 64 characters.
fn check_name(what: &str, s: &str) -> Result<()> {
    if s.trim().is_empty() || s.chars().any(char::is_control) || s.chars().count() > 64 {
        return Err(Error::usage(format!(
            "{what} must be 1 to 64 characters on one line"
        )));
    }
    Ok(())
}

/// Whether `s` is a valid local slug: `^[a-z0-9][a-z0-9-]{0,31}$`.
pub fn valid_slug(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=32).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// A valid local slug made from what a broker or an invite calls the mesh.
fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.chars().take(32).collect();
    match out.trim_end_matches('-') {
        "" => "mesh".into(),
        s => s.into(),
    }
}

/// `base`, or `base-2`, `base-3`, ... whichever no joined mesh uses.
fn free_slug(config: &Config, base: &str) -> String {
    let taken = |s: &str| config.meshes.iter().any(|m| m.slug == s);
    if !taken(base) {
        return base.to_string();
    }
    (2..)
        .map(|n| {
            let suffix = format!("-{n}");
            let keep = 32usize.saturating_sub(suffix.len()).min(base.len());
            format!("{}{suffix}", base[..keep].trim_end_matches('-'))
        })
        .find(|s| !taken(s))
        .unwrap_or_else(|| base.to_string())
}

/// The broker to make a mesh on, and the token it asks for: `flag`, else the default `cm login`, else
/// [`DEFAULT_BROKER`].
pub fn broker_for_new(paths: &Paths, flag: Option<&str>) -> Result<(String, Option<String>)> {
    let brokers = Brokers::load(paths)?;
    let url = match flag {
        Some(f) => broker_ws_url(f)?,
        None => brokers
            .default
            .clone()
            .unwrap_or_else(|| DEFAULT_BROKER.to_string()),
    };
    let token = brokers.get(&url).and_then(|b| b.token.clone());
    Ok((url, token))
}

/// Makes mesh `name` on `broker_url` (with the broker's creation `token`, if any) and joins it: a fresh owner key
/// into `owners.json`, a fresh root key into the entry, the identity (made now if there is none) as the member key.
/// Returns the mesh's entry in `config.json`, and the display name chosen for it.
pub fn create(
    paths: &Paths,
    name: &str,
    broker_url: &str,
    token: Option<&str>,
    display: Option<&str>,
) -> Result<(MeshEntry, Named)> {
    check_name("the mesh name", name)?;
    if let Some(d) = display {
        check_name("--name", d)?;
    }
    let config = Config::load(paths)?;
    let (identity, _) = ensure_identity(paths, display)?;
    let member = identity.keypair()?;
    let named = choose_name(display, &config, Some(&identity));
    let owner = Keypair::generate();
    let made = rest::create_mesh(
        broker_url,
        &member,
        &owner.public_hex(),
        name,
        Some(&named.name),
        token,
    )
    .map_err(|e| e.context(format_args!("creating mesh {name:?} on {broker_url}")))?;
    // The owner key is saved before anything else: without it nobody can ever invite to this mesh.
    let mut owners = OwnerKeys::load(paths)?;
    owners.insert(&made.id, &owner);
    owners.save(paths)?;
    let mut config = Config::load(paths)?;
    let base = if made.slug.is_empty() {
        slugify(name)
    } else {
        slugify(&made.slug)
    };
    let entry = MeshEntry {
        mesh_id: made.id.clone(),
        member_id: made.member_id.clone(),
        slug: free_slug(&config, &base),
        name: if made.name.is_empty() {
            name.to_string()
        } else {
            made.name.clone()
        },
        pubkey: identity.pubkey.clone(),
        secret_key: identity.secret_key.clone(),
        broker_url: broker_url.to_string(),
        broker_urls: Vec::new(),
        joined_at: fmt_rfc3339(now_ms()),
        root_key: Some(b64::encode_url(&random_bytes::<32>())),
        invite_version: Some(1),
        extra: [(ENTRY_NAME.to_string(), named.name.clone().into())]
            .into_iter()
            .collect(),
    };
    config.upsert_mesh(entry.clone());
    config.save(paths)?;
    Ok((entry, named))
}

/// An invite just made and registered.
#[derive(Debug)]
pub struct Invited {
    pub invite: Invite,
    /// How many joins it allows.
    pub uses: u32,
}

/// Makes an invite to `mesh` signed by its owner key, which this machine must hold, and registers it with the
/// broker for `uses` joins. It expires `expires` from now and gives joiners `role` (`member` or `admin`).
pub fn invite(
    paths: &Paths,
    mesh: &MeshEntry,
    expires: Duration,
    role: &str,
    uses: u32,
) -> Result<Invited> {
    if role != "member" && role != "admin" {
        return Err(Error::usage(format!(
            "--role must be member or admin, not {role:?}"
        )));
    }
    if uses == 0 {
        return Err(Error::usage("--uses must be at least 1"));
    }
    if expires.is_zero() {
        return Err(Error::usage("--expires must be longer than 0s"));
    }
    let owner = OwnerKeys::load(paths)?.get(&mesh.mesh_id)?.ok_or_else(|| {
        Error::permission(format!(
            "only the mesh owner can invite (this machine has no owner key for {:?})",
            mesh.slug
        ))
    })?;
    let root_key = match &mesh.root_key {
        Some(k) if !k.is_empty() => k.clone(),
        // A mesh made by a client that kept no root key gets one now, and keeps it for every later invite.
        _ => {
            let key = b64::encode_url(&random_bytes::<32>());
            let mut config = Config::load(paths)?;
            if let Some(m) = config.meshes.iter_mut().find(|m| m.slug == mesh.slug) {
                m.root_key = Some(key.clone());
            }
            config.save(paths)?;
            key
        }
    };
    let secs = i64::try_from(expires.as_secs()).unwrap_or(i64::MAX / 2);
    let expires_at = (now_ms() / 1000).saturating_add(secs);
    // The token is a deterministic signature over second-resolution fields, so two invites made within one second
    // would be the same token, which the broker registers once. A later one expires a second earlier instead.
    for earlier in 0..60 {
        let inv = invite::make(
            &owner,
            &mesh.mesh_id,
            &mesh.slug,
            &mesh.broker_url,
            expires_at - earlier,
            &root_key,
            role,
        )?;
        match rest::register_invite(&mesh.broker_url, &mesh.mesh_id, &owner, &inv.token, uses) {
            Ok(()) => return Ok(Invited { invite: inv, uses }),
            Err(e) if e.code == Code::Exists => continue,
            Err(e) => return Err(e.context("registering the invite")),
        }
    }
    Err(Error::exists(
        "registering the invite: too many invites made this second; try again",
    ))
}

/// The error for a refused `POST /join`, by the broker's code (reference §2.6.1).
fn join_error(e: Error) -> Error {
    let code = e.msg.strip_prefix("broker refused: ").unwrap_or_default();
    let (c, msg) = match code {
        "invite_exhausted" => (
            Code::Permission,
            "the invite has been used up; ask for a new one",
        ),
        "invite_expired" => (
            Code::Permission,
            "the invite has expired; ask for a new one",
        ),
        "invite_revoked" => (Code::Permission, "the invite was revoked"),
        "member_revoked" => (
            Code::Auth,
            "revoked: you were removed from this mesh, and an invite does not undo that; ask its owner to \
             unban you",
        ),
        "invite_mismatch" => (
            Code::Auth,
            "the invite's payload is not the one registered with its token",
        ),
        "invite_not_found" => (
            Code::NotFound,
            "the broker does not know this invite (it was not registered there)",
        ),
        "mesh_not_found" => (Code::NotFound, "the broker does not know this mesh"),
        "invite_bad_signature" | "invite_owner_mismatch" | "invite_mesh_mismatch" => (
            Code::Auth,
            "the broker does not accept this invite's signature",
        ),
        _ => return e,
    };
    Error::new(c, format!("{msg} ({code})"))
}

/// The outcome of a join.
#[derive(Debug)]
pub struct Joined {
    /// The mesh's entry in `config.json`.
    pub entry: MeshEntry,
    /// The mesh was joined already (here, or on the broker with this identity).
    pub already_member: bool,
    /// The display name taken in the mesh, for a new member.
    pub name: Option<Named>,
}

/// Joins the mesh an invite link or token is for, as `display` (see [`display_name`]), with the identity (made
/// now if there is none).
pub fn join(paths: &Paths, input: &str, display: Option<&str>) -> Result<Joined> {
    if let Some(d) = display {
        check_name("--name", d)?;
    }
    let inv = invite::parse(input)?;
    invite::verify(&inv, now_ms() / 1000)?;
    let p = &inv.payload;
    // The payload exactly as the owner signed and the broker stored it: the broker refuses any other.
    let payload = crate::crypto::b64::decode_url(&inv.token)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .ok_or_else(|| Error::usage("the invite's token is not base64url JSON"))?;
    let config = Config::load(paths)?;
    if let Some(m) = config.meshes.iter().find(|m| m.mesh_id == p.mesh_id) {
        // Joined here before; the broker says whether that still holds (a ban does not show in config.json).
        // Only a broker that forgot this key uses the invite, and gives a new member id.
        let mut entry = m.clone();
        let name = display_name(display, &config, None);
        match rest::join(&m.broker_url, &inv.token, &payload, &m.pubkey, &name) {
            Ok(j) if j.member_id != entry.member_id => {
                entry.member_id = j.member_id;
                let mut config = Config::load(paths)?;
                config.upsert_mesh(entry.clone());
                config.save(paths)?;
            }
            Ok(_) => {}
            Err(e) if e.msg.ends_with("member_revoked") => {
                return Err(
                    join_error(e).context(format_args!("mesh {:?} at {}", m.slug, m.broker_url))
                );
            }
            // Expired, used up, unreachable: the membership recorded here is what there is to say.
            Err(_) => {}
        }
        return Ok(Joined {
            entry,
            already_member: true,
            name: None,
        });
    }
    let slug = if valid_slug(&p.mesh_slug) {
        p.mesh_slug.clone()
    } else {
        slugify(&p.mesh_slug)
    };
    if config.meshes.iter().any(|m| m.slug == slug) {
        return Err(Error::exists(format!(
            "another mesh is joined here as {slug:?}; rename it first ('cm-mesh rename {slug} NEW'), then join again"
        )));
    }
    let (identity, _) = ensure_identity(paths, display)?;
    let mut named = choose_name(display, &config, Some(&identity));
    let joined = rest::join(
        &p.broker_url,
        &inv.token,
        &payload,
        &identity.pubkey,
        &named.name,
    )
    .map_err(|e| join_error(e).context(format_args!("joining {slug:?} at {}", p.broker_url)))?;
    let mut entry = MeshEntry {
        mesh_id: p.mesh_id.clone(),
        member_id: joined.member_id,
        slug: slug.clone(),
        name: slug,
        pubkey: identity.pubkey.clone(),
        secret_key: identity.secret_key.clone(),
        broker_url: p.broker_url.clone(),
        broker_urls: Vec::new(),
        joined_at: fmt_rfc3339(now_ms()),
        root_key: Some(p.mesh_root_key.clone()),
        invite_version: Some(1),
        extra: Default::default(),
    };
    if !joined.already_member {
        match unique_name(&entry, &named.name) {
            Ok(Some(free)) => named.taken = Some(std::mem::replace(&mut named.name, free)),
            Ok(None) => {}
            Err(e) => crate::out::notice(format!(
                "could not check whether {:?} is another member's name: {}",
                named.name, e.msg
            )),
        }
    }
    entry
        .extra
        .insert(ENTRY_NAME.into(), named.name.clone().into());
    // Re-read: the config may have changed while the broker answered.
    let mut config = Config::load(paths)?;
    // Joining again keeps the brokers this machine was told of since.
    if let Some(old) = config
        .meshes
        .iter()
        .find(|m| m.slug == entry.slug && m.mesh_id == entry.mesh_id)
    {
        entry.broker_urls = old.broker_urls.clone();
    }
    config.upsert_mesh(entry.clone());
    config.save(paths)?;
    Ok(Joined {
        entry,
        already_member: joined.already_member,
        name: Some(named),
    })
}

/// After joining `mesh` as `name`: when another member has that name already, takes the first free `name-N`
/// instead (on the broker too) and returns it.
fn unique_name(mesh: &MeshEntry, name: &str) -> Result<Option<String>> {
    let mut conn = crate::client::Conn::open(mesh, &crate::client::ConnOpts::default())?;
    let r = (|| {
        let members = match conn.request(wire::Members::default())? {
            Frame::MembersList(l) => l.members,
            f => return Err(crate::client::unexpected("members", &f)),
        };
        let free = free_name(name, &members, &mesh.member_id);
        if free == name {
            return Ok(None);
        }
        conn.request(wire::SetProfile {
            display_name: Some(free.clone()),
            ..wire::SetProfile::default()
        })?;
        Ok(Some(free))
    })();
    conn.close();
    r
}

/// What [`set_brokers`] found of one broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerCheck {
    /// It took this member's hello.
    Serves,
    /// It could not be reached now (kept all the same: a broker may be down for maintenance).
    Unreachable(String),
}

/// Sets the brokers of mesh `slug` (a slug or name; the default mesh with `None`): the first becomes `brokerUrl`,
/// what every client tries first and the original client uses alone, the rest `brokerUrls`. Each is checked with
/// a hello as this member first: one that answers and refuses it serves another mesh or another database, and
/// nothing is changed. Returns the entry and what was found of each broker, in order.
pub fn set_brokers(
    paths: &Paths,
    slug: Option<&str>,
    urls: &[&str],
) -> Result<(MeshEntry, Vec<(String, BrokerCheck)>)> {
    let mut normalised: Vec<String> = Vec::new();
    for u in urls {
        let n = broker_ws_url(u)?;
        if !normalised.contains(&n) {
            normalised.push(n);
        }
    }
    let Some((first, rest)) = normalised.split_first() else {
        return Err(Error::usage("brokers needs at least one URL to set"));
    };
    let config = Config::load(paths)?;
    let mut entry = config.mesh(slug)?.clone();
    let mut checks = Vec::new();
    for url in &normalised {
        let mut one = entry.clone();
        one.broker_url = url.clone();
        one.broker_urls.clear();
        match crate::client::Conn::open(&one, &crate::client::ConnOpts::default()) {
            Ok(conn) => {
                conn.close();
                checks.push((url.clone(), BrokerCheck::Serves));
            }
            Err(e) if e.code == Code::Network => {
                checks.push((url.clone(), BrokerCheck::Unreachable(e.msg)));
            }
            Err(mut e) => {
                e.msg = format!(
                    "{url} does not take mesh {}'s member ({}); nothing changed",
                    entry.slug, e.msg
                );
                return Err(e);
            }
        }
    }
    entry.broker_url = first.clone();
    entry.broker_urls = rest.to_vec();
    // Re-read: the config may have changed while the brokers answered.
    let mut config = Config::load(paths)?;
    config.upsert_mesh(entry.clone());
    config.save(paths)?;
    Ok((entry, checks))
}

/// Renames the local slug `old` (a slug or name) to `new`; returns the old slug and the renamed entry. The mesh's
/// session keys move with it, so sessions keep their keys.
pub fn rename(paths: &Paths, old: &str, new: &str) -> Result<(String, MeshEntry)> {
    if !valid_slug(new) {
        return Err(Error::usage(format!(
            "invalid slug {new:?}: use 1 to 32 lower-case letters, digits and '-', starting with a letter or digit"
        )));
    }
    let mut config = Config::load(paths)?;
    let old_slug = config.mesh(Some(old))?.slug.clone();
    if old_slug == new {
        return Err(Error::usage(format!(
            "mesh {old_slug:?} is named so already"
        )));
    }
    if config.meshes.iter().any(|m| m.slug == new) {
        return Err(Error::exists(format!(
            "another mesh is joined here as {new:?}"
        )));
    }
    let sessions_old = paths.sessions().join(&old_slug);
    let sessions_new = paths.sessions().join(new);
    if sessions_old.is_dir() && !sessions_new.exists() {
        std::fs::rename(&sessions_old, &sessions_new).map_err(|e| {
            Error::from(e).context(format_args!("moving {}", sessions_old.display()))
        })?;
    }
    let mut renamed = None;
    for m in config.meshes.iter_mut().filter(|m| m.slug == old_slug) {
        if m.name == m.slug {
            m.name = new.to_string();
        }
        m.slug = new.to_string();
        renamed = Some(m.clone());
    }
    if config.default_mesh.as_deref() == Some(old_slug.as_str()) {
        config.default_mesh = Some(new.to_string());
    }
    config.save(paths)?;
    let renamed =
        renamed.ok_or_else(|| Error::internal("the mesh vanished while being renamed"))?;
    Ok((old_slug, renamed))
}

/// What leaving did.
#[derive(Debug)]
pub struct Left {
    /// The entry removed from `config.json`.
    pub entry: MeshEntry,
    /// This machine holds the mesh's owner key, and still does unless it was forgotten.
    pub owner_key: bool,
    /// The owner key was deleted.
    pub owner_key_forgotten: bool,
}

/// Removes mesh `slug` from this machine; its owner key too when `forget_owner_key`. The membership on the broker
/// stays, so joining again with an invite gives back the same member.
pub fn leave(paths: &Paths, slug: &str, forget_owner_key: bool) -> Result<Left> {
    let mut config = Config::load(paths)?;
    let slug = config.mesh(Some(slug))?.slug.clone();
    let mut owners = OwnerKeys::load(paths)?;
    let Some(entry) = config.remove_mesh(&slug) else {
        return Err(Error::internal("the mesh vanished while leaving it"));
    };
    let owner_key = owners.meshes.contains_key(&entry.mesh_id);
    let forgotten = owner_key && forget_owner_key;
    // The config goes first: a failure after it leaves the owner key in place, never a mesh without its key.
    config.save(paths)?;
    if forgotten {
        owners.meshes.remove(&entry.mesh_id);
        owners.save(paths)?;
    }
    Ok(Left {
        entry,
        owner_key,
        owner_key_forgotten: forgotten,
    })
}

/// The mesh's members, and the member id the caller is.
pub fn members(ctx: &Ctx) -> Result<(Vec<wire::Member>, String)> {
    let mut conn = ctx.connect()?;
    let me = conn
        .hello_ack()
        .member_id
        .clone()
        .unwrap_or_else(|| ctx.mesh.member_id.clone());
    let reply = conn.request(wire::Members::default())?;
    conn.close();
    match reply {
        Frame::MembersList(l) => Ok((l.members, me)),
        f => Err(Error::generic(format!(
            "broker answered members with {}",
            f.type_name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["dev", "a", "0-x", &"a".repeat(32)] {
            assert!(valid_slug(ok), "{ok}");
        }
        for bad in ["", "-a", "Dev", "a_b", "a b", &"a".repeat(33), "ü"] {
            assert!(!valid_slug(bad), "{bad}");
        }
        assert_eq!(slugify("My Mesh!"), "my-mesh");
        assert_eq!(slugify("!!"), "mesh");
        assert_eq!(slugify(&"x".repeat(40)).len(), 32);
    }

    #[test]
    fn free_slugs() {
        let mut c = Config::default();
        assert_eq!(free_slug(&c, "dev"), "dev");
        for s in ["dev", "dev-2"] {
            c.meshes.push(MeshEntry {
                mesh_id: s.into(),
                member_id: String::new(),
                slug: s.into(),
                name: s.into(),
                pubkey: String::new(),
                secret_key: String::new(),
                broker_url: String::new(),
                broker_urls: Vec::new(),
                joined_at: String::new(),
                root_key: None,
                invite_version: None,
                extra: Default::default(),
            });
        }
        assert_eq!(free_slug(&c, "dev"), "dev-3");
        let long = "a".repeat(32);
        assert_eq!(free_slug(&c, &long), long);
    }

    #[test]
    fn display_names() {
        let mut c = Config::default();
        assert_eq!(display_name(Some(" bob "), &c, None), "bob");
        c.display_name = Some("carol".into());
        assert_eq!(display_name(None, &c, None), "carol");
    }
}
