//! What a one-shot tool needs before it can talk to its mesh: the config, the chosen mesh, and who to speak as.

use super::{Conn, ConnOpts, SessionAuth};
use crate::config::{Config, MeshEntry, Paths, SessionKey};
use crate::error::Result;

/// The config directory, the loaded config, the selected mesh, and the session to speak as (if any).
pub struct Ctx {
    pub paths: Paths,
    pub config: Config,
    pub mesh: MeshEntry,
    /// Set inside a Claude Code session (see [`session_id`]) on that session's mesh: one-shot tools then speak as
    /// that session, so a reply to what they send reaches the session's inbox.
    pub session: Option<SessionAuth>,
}

impl Ctx {
    /// Loads the config and picks the mesh: `--mesh`, else `$CLAUDEMESH_MESH`, else the default mesh (`cm use`).
    pub fn load(mesh: Option<&str>) -> Result<Ctx> {
        let paths = Paths::resolve()?;
        let config = Config::load(&paths)?;
        let env_mesh = env_mesh();
        let selector = mesh.or(env_mesh.as_deref());
        let mesh = config.mesh(selector)?.clone();
        Ctx::for_mesh(paths, config, mesh, env_mesh.as_deref())
    }

    /// Like [`Ctx::load`], but as the member even inside a Claude Code session, and without making a session key:
    /// for a read before the session exists that must leave nothing behind (cm-mcp's template hint).
    pub fn load_member(mesh: Option<&str>) -> Result<Ctx> {
        let paths = Paths::resolve()?;
        let config = Config::load(&paths)?;
        let env_mesh = env_mesh();
        let mesh = config.mesh(mesh.or(env_mesh.as_deref()))?.clone();
        Ok(Ctx {
            paths,
            config,
            mesh,
            session: None,
        })
    }

    /// Like [`Ctx::load`], but with neither `--mesh` nor `$CLAUDEMESH_MESH` every joined mesh, in config order,
    /// for tools that look across meshes (peer lists, the inbox, resolving a name). No mesh joined is an error.
    pub fn load_all(mesh: Option<&str>) -> Result<Vec<Ctx>> {
        let env_mesh = env_mesh();
        if mesh.is_some() || env_mesh.is_some() {
            return Ok(vec![Ctx::load(mesh)?]);
        }
        let paths = Paths::resolve()?;
        let config = Config::load(&paths)?;
        if config.meshes.is_empty() {
            // The same error a single-mesh tool gives.
            config.mesh(None)?;
        }
        config
            .meshes
            .iter()
            .map(|m| Ctx::for_mesh(paths.clone(), config.clone(), m.clone(), None))
            .collect()
    }

    fn for_mesh(
        paths: Paths,
        config: Config,
        mesh: MeshEntry,
        env_mesh: Option<&str>,
    ) -> Result<Ctx> {
        // `cm launch` names the session's mesh in `$CLAUDEMESH_MESH`; a plain `claude`'s cm-mcp is on the default
        // mesh.
        let on_its_mesh = match env_mesh {
            Some(m) => m == mesh.slug,
            None => config.mesh(None).is_ok_and(|d| d.slug == mesh.slug),
        };
        let session = match session_id() {
            Some(id) if on_its_mesh => {
                let key = SessionKey::load_or_create(&paths, &mesh.slug, &id)?;
                Some(SessionAuth {
                    session: key.keypair()?,
                })
            }
            _ => None,
        };
        Ok(Ctx {
            paths,
            config,
            mesh,
            session,
        })
    }

    /// The options a one-shot connection uses: pull only, as the session when there is one.
    pub fn conn_opts(&self) -> ConnOpts {
        ConnOpts {
            session: self.session.clone(),
            display_name: std::env::var("CLAUDEMESH_DISPLAY_NAME")
                .ok()
                .filter(|s| !s.is_empty())
                .or_else(|| self.config.display_name.clone()),
            ..ConnOpts::default()
        }
    }

    /// Opens a one-shot connection to the mesh's broker.
    pub fn connect(&self) -> Result<Conn> {
        Conn::open(&self.mesh, &self.conn_opts())
    }
}

fn env_mesh() -> Option<String> {
    std::env::var("CLAUDEMESH_MESH")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Claude Code's session id as a hook gave it on stdin, for [`session_id`].
static HOOK_SESSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Records the session id a Claude Code hook was given on stdin; the first one counts.
pub fn set_hook_session(id: &str) {
    if crate::launch::is_uuid(id) {
        let _ = HOOK_SESSION.set(id.to_ascii_lowercase());
    }
}

/// The mesh session this process acts for inside Claude Code: `$CLAUDEMESH_SESSION_ID` (set by `cm launch`), else
/// Claude Code's own session id — `$CLAUDE_CODE_SESSION_ID`, which Claude Code sets, or the `session_id` a hook
/// was given — which is the session a plain `claude`'s cm-mcp joined as. `None` outside Claude Code.
pub fn session_id() -> Option<String> {
    if let Ok(s) = std::env::var("CLAUDEMESH_SESSION_ID")
        && !s.is_empty()
    {
        return Some(s);
    }
    match std::env::var("CLAUDE_CODE_SESSION_ID") {
        Ok(s) if crate::launch::is_uuid(&s) => Some(s.to_ascii_lowercase()),
        _ => HOOK_SESSION.get().cloned(),
    }
}
