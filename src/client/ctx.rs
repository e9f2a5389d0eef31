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
    /// Loads the config and picks the mesh: `--mesh`, else `$CLAUDEMESH_MESH`, else the only joined mesh.
    pub fn load(mesh: Option<&str>) -> Result<Ctx> {
        let paths = Paths::resolve()?;
        let config = Config::load(&paths)?;
        let env_mesh = std::env::var("CLAUDEMESH_MESH")
            .ok()
            .filter(|s| !s.is_empty());
        let selector = mesh.or(env_mesh.as_deref());
        let mesh = config.mesh(selector)?.clone();
        let session = match std::env::var("CLAUDEMESH_SESSION_ID") {
            Ok(id) if !id.is_empty() && env_mesh.as_deref().is_none_or(|m| m == mesh.slug) => {
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
