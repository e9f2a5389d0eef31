//! `cm-id`: the identity on this machine and the brokers it is logged in to, read and changed in the config
//! directory. None of it needs the network, and nothing here ever returns a secret.

use serde::Serialize;

use crate::config::{Brokers, Config, Identity, Paths, broker_ws_url};
use crate::error::{Error, Result, io_message};
use std::path::Path;

/// Makes the identity, `display_name` trimmed; refuses to replace one unless `force`.
pub fn register(paths: &Paths, display_name: Option<&str>, force: bool) -> Result<Identity> {
    let name = display_name.map(str::trim);
    if let Some(n) = name
        && (n.is_empty() || n.chars().any(char::is_control))
    {
        return Err(Error::usage("--name must be a non-empty name on one line"));
    }
    Identity::create(paths, name, force)
}

/// A joined mesh, as `whoami` shows it.
#[derive(Debug, Serialize)]
pub struct MeshRow {
    pub slug: String,
    pub mesh_id: String,
    pub member_id: String,
    pub pubkey: String,
    pub broker_url: String,
    /// Whether tools use it when neither `--mesh` nor `$CLAUDEMESH_MESH` names a mesh.
    pub default: bool,
}

/// A broker login; whether there is a token, never the token.
#[derive(Debug, Serialize)]
pub struct LoginRow {
    pub url: String,
    pub default: bool,
    pub token: bool,
    /// The CA file trusted for its TLS certificate (`cm login --ca-file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// Who this machine is: `whoami --json`.
#[derive(Debug, Serialize)]
pub struct Whoami {
    pub pubkey: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub created_at: String,
    pub config_dir: String,
    /// The default mesh's slug (see [`Config::default_entry`]); none with no mesh joined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_mesh: Option<String>,
    pub meshes: Vec<MeshRow>,
    pub logins: Vec<LoginRow>,
}

/// The identity, the meshes joined with it and the brokers logged in to; exit 2 without an identity.
pub fn whoami(paths: &Paths) -> Result<Whoami> {
    let id = Identity::require(paths)?;
    let config = Config::load(paths)?;
    let brokers = Brokers::load(paths)?;
    let logins = brokers
        .brokers
        .iter()
        .map(|b| LoginRow {
            default: brokers.default.as_deref() == Some(b.url.as_str()),
            url: b.url.clone(),
            token: b.token.is_some(),
            ca_file: b.ca_file.as_ref().map(|p| p.display().to_string()),
        })
        .collect();
    let default_mesh = config.default_entry().map(|m| m.slug.clone());
    Ok(Whoami {
        pubkey: id.pubkey,
        display_name: id.display_name,
        created_at: id.created_at,
        config_dir: paths.dir.display().to_string(),
        meshes: config
            .meshes
            .into_iter()
            .map(|m| MeshRow {
                default: default_mesh.as_deref() == Some(m.slug.as_str()),
                slug: m.slug,
                mesh_id: m.mesh_id,
                member_id: m.member_id,
                pubkey: m.pubkey,
                broker_url: m.broker_url,
            })
            .collect(),
        default_mesh,
        logins,
    })
}

/// Logs in to the broker at `given` (any URL form the tools accept), which becomes the default; returns its
/// `ws(s)://…/ws` URL. `ca_file` is a PEM file of CAs trusted for its TLS certificate; it must hold one, and is
/// recorded by its absolute path so that the login works from any directory.
pub fn login(
    paths: &Paths,
    given: &str,
    token: Option<&str>,
    ca_file: Option<&Path>,
) -> Result<String> {
    let url = broker_ws_url(given)?;
    if token.is_some_and(|t| t.trim().is_empty()) {
        return Err(Error::usage("--token is empty"));
    }
    let ca_file =
        match ca_file {
            Some(f) => {
                if !url.starts_with("wss://") {
                    return Err(Error::usage(format!(
                        "--ca-file: {url} is not a TLS broker (wss://)"
                    )));
                }
                crate::crypto::read_ca_file(f, "--ca-file")?;
                Some(std::fs::canonicalize(f).map_err(|e| {
                    Error::io(format!("--ca-file {}: {}", f.display(), io_message(&e)))
                })?)
            }
            None => None,
        };
    let mut brokers = Brokers::load(paths)?;
    brokers.login(&url, token);
    if let Some(b) = brokers.brokers.iter_mut().find(|b| b.url == url) {
        b.ca_file = ca_file;
    }
    brokers.save(paths)?;
    Ok(url)
}

/// Logs out of the broker at `given`, or of every broker; returns the URLs logged out of, never none.
pub fn logout(paths: &Paths, given: Option<&str>) -> Result<Vec<String>> {
    let url = given.map(broker_ws_url).transpose()?;
    let mut brokers = Brokers::load(paths)?;
    let gone = brokers.logout(url.as_deref());
    if gone.is_empty() {
        return Err(Error::not_found(match url {
            Some(u) => format!("not logged in to {u}"),
            None => "not logged in to any broker".into(),
        }));
    }
    brokers.save(paths)?;
    Ok(gone)
}
