//! What a one-shot tool needs before it can talk to its mesh: the config, the chosen mesh, and who to speak as.

use super::{Conn, ConnOpts, SessionAuth};
use crate::config::{Config, MeshEntry, Paths, SessionKey};
use crate::error::Result;

/// The config directory, the loaded config, the selected mesh, and the session to speak as (if any).
pub struct Ctx {
    pub paths: Paths,
    pub config: Config,
    pub mesh: MeshEntry,
    /// Set inside a session started by `cm launch` (`$CLAUDEMESH_SESSION_ID` on the same mesh): one-shot tools
    /// then speak as that session, so a reply to what they send reaches the session's inbox.
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
        let session = match std::env::var("CLAUDEMESH_SESSION_ID") {
            Ok(id) if !id.is_empty() && env_mesh.is_none_or(|m| m == mesh.slug) => {
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
