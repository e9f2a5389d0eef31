//! The vault: secrets kept in the mesh and sealed here, for yourself and the members you name. A value is put in
//! `crypto_secretbox` under a fresh key; that key is sealed (`crypto_box_seal`) to your member key and to each
//! reader's, so the broker stores only what none but those members can open.

use serde::Serialize;

use crate::client::{Ctx, Requester, ask_once as ask, unexpected};
use crate::crypto::{self, Keypair, b64, random_bytes};
use crate::error::{Error, Result};
use crate::messaging::roster::Roster;
use crate::wire::{self, Frame};

/// What a new secret needs besides its key and value.
#[derive(Debug, Clone, Default)]
pub struct NewSecret<'a> {
    /// `env` (the default) or `file`.
    pub entry_type: Option<&'a str>,
    pub mount_path: Option<&'a str>,
    pub description: Option<&'a str>,
    /// Members who may read it besides you: names and `@group`s.
    pub readers: Vec<&'a str>,
}

/// A secret opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub key: String,
    pub value: Vec<u8>,
    pub entry_type: String,
    pub mount_path: Option<String>,
    /// Who set it.
    pub owner: String,
}

/// An entry as `cm-vault list --json` prints it: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub r#type: &'static str,
    pub key: String,
    pub entry_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub owner: String,
    pub readers: Vec<String>,
    pub updated_at: String,
}

fn seal_to(secret: &[u8; 32], pubkey_hex: &str) -> Result<String> {
    let pk = crypto::parse_pubkey_hex(pubkey_hex)
        .and_then(|pk| crypto::ed25519_pk_to_x25519(&pk))
        .map_err(|e| Error::usage(format!("cannot seal to {pubkey_hex}: {e}")))?;
    Ok(b64::encode(&crypto::seal(secret, &pk)))
}

/// The member keys `specs` (names, `@group`s) name, without our own.
fn reader_keys(roster: &Roster, specs: &[&str]) -> Result<Vec<String>> {
    let mut keys: Vec<String> = Vec::new();
    for spec in specs {
        let found: Vec<String> = match spec.strip_prefix('@') {
            Some(g) => roster
                .fan_out(Some(g))
                .iter()
                .map(|m| m.pubkey.clone())
                .collect(),
            None => {
                let mut k: Vec<String> = roster
                    .candidates()
                    .into_iter()
                    .filter(|c| c.name == *spec)
                    .map(|c| c.member_pubkey)
                    .collect();
                k.dedup();
                k
            }
        };
        if found.is_empty() {
            return Err(Error::not_found(format!(
                "--for: no member named {spec:?} in mesh {}",
                roster.mesh
            )));
        }
        for k in found {
            if k != roster.own_member && !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    Ok(keys)
}

/// Seals `value` and stores it under `key`, readable by you and `new.readers`; how many others may read it.
pub fn set(ctx: &Ctx, key: &str, value: &[u8], new: &NewSecret) -> Result<usize> {
    let secret = random_bytes::<32>();
    let nonce = random_bytes::<24>();
    let mut conn = ctx.connect()?;
    let readers = if new.readers.is_empty() {
        Vec::new()
    } else {
        let own_key = conn.sender().public_hex();
        let roster = Roster::fetch(&mut conn, &ctx.mesh.slug, &ctx.mesh.pubkey, &own_key)?;
        reader_keys(&roster, &new.readers)?
            .into_iter()
            .map(|pk| {
                Ok(wire::VaultReader {
                    sealed_key: seal_to(&secret, &pk)?,
                    pubkey: pk,
                })
            })
            .collect::<Result<Vec<_>>>()?
    };
    let n = readers.len();
    let v = wire::VaultSet {
        key: key.to_string(),
        ciphertext: b64::encode(&crypto::secretbox_easy(value, &nonce, &secret)),
        nonce: b64::encode(&nonce),
        sealed_key: seal_to(&secret, &ctx.mesh.pubkey)?,
        entry_type: new.entry_type.unwrap_or("env").to_string(),
        mount_path: new.mount_path.map(str::to_string),
        description: new.description.map(str::to_string),
        readers,
        ..wire::VaultSet::default()
    };
    match conn.ask(v.into())? {
        Frame::VaultAck(a) if a.action == "stored" => Ok(n),
        f => Err(unexpected("vault_set", &f)),
    }
}

fn open(member: &Keypair, e: wire::VaultSealed) -> Result<Secret> {
    let what = || Error::auth(format!("{} does not open with your key", e.key));
    let sealed = b64::decode(&e.sealed_key).map_err(|_| what())?;
    let secret = crypto::seal_open(&sealed, &member.x25519_public(), &member.x25519_secret())
        .map_err(|_| what())?;
    let secret: [u8; 32] = secret.try_into().map_err(|_| what())?;
    let nonce = crypto::nonce_from_b64(&e.nonce).map_err(|_| what())?;
    let ct = b64::decode(&e.ciphertext).map_err(|_| what())?;
    let value = crypto::secretbox_open_easy(&ct, &nonce, &secret).map_err(|_| what())?;
    Ok(Secret {
        value,
        key: e.key,
        entry_type: e.entry_type,
        mount_path: e.mount_path,
        owner: e.owner,
    })
}

/// Opens the secrets `keys`: your own of each key, else the one another member shared (`from` picks which).
pub fn get(ctx: &Ctx, keys: &[&str], from: Option<&str>) -> Result<Vec<Secret>> {
    let g = wire::VaultGet {
        keys: keys.iter().map(|k| k.to_string()).collect(),
        ..wire::VaultGet::default()
    };
    let entries = match ask(ctx, g)? {
        Frame::VaultGetResult(r) => r.entries,
        f => return Err(unexpected("vault_get", &f)),
    };
    let member = ctx.mesh.keypair()?;
    let mut out = Vec::new();
    for k in keys {
        let mine: Vec<&wire::VaultSealed> = entries
            .iter()
            .filter(|e| e.key == *k)
            .filter(|e| from.is_none_or(|f| e.owner == f))
            .collect();
        // The broker lists one's own first.
        let pick = match mine.as_slice() {
            [] => {
                return Err(Error::not_found(format!(
                    "no secret {k:?} you may read{}",
                    from.map(|f| format!(" from {f}")).unwrap_or_default()
                )));
            }
            [one] => *one,
            [first, ..] if from.is_some() || first.mine => *first,
            many => {
                let owners: Vec<&str> = many.iter().map(|e| e.owner.as_str()).collect();
                return Err(Error::usage(format!(
                    "{k:?} is shared with you by {}: say whose with --from NAME",
                    owners.join(", ")
                )));
            }
        };
        out.push(open(&member, pick.clone())?);
    }
    Ok(out)
}

/// The secrets you may read, without their values.
pub fn list(ctx: &Ctx) -> Result<Vec<Entry>> {
    match ask(ctx, wire::VaultList::default())? {
        Frame::VaultListResult(r) => Ok(r
            .entries
            .into_iter()
            .map(|e| Entry {
                r#type: "secret",
                key: e.key,
                entry_type: e.entry_type,
                mount_path: e.mount_path,
                description: e.description,
                owner: e.owner,
                readers: e.readers,
                updated_at: e.updated_at,
            })
            .collect()),
        f => Err(unexpected("vault_list", &f)),
    }
}

/// Deletes your secret `key`; a NotFound when you have none of that key.
pub fn delete(ctx: &Ctx, key: &str) -> Result<()> {
    let d = wire::VaultDelete {
        key: key.to_string(),
        ..wire::VaultDelete::default()
    };
    match ask(ctx, d)? {
        Frame::VaultAck(a) if a.action == "deleted" => Ok(()),
        Frame::VaultAck(_) => Err(Error::not_found(format!("you have no secret {key:?}"))),
        f => Err(unexpected("vault_delete", &f)),
    }
}

/// `export KEY='value'` for a shell's `eval`, the value single-quoted; a key that is not a shell name is refused.
pub fn export_line(s: &Secret) -> Result<String> {
    let name_ok = s
        .key
        .bytes()
        .enumerate()
        .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
    if !name_ok || s.key.is_empty() {
        return Err(Error::usage(format!(
            "--env: {:?} is not a shell variable name",
            s.key
        )));
    }
    let v = String::from_utf8(s.value.clone())
        .map_err(|_| Error::usage(format!("--env: {} is not text", s.key)))?;
    Ok(format!("export {}='{}'", s.key, v.replace('\'', r"'\''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_for_its_member_only() {
        let (alice, eve) = (Keypair::generate(), Keypair::generate());
        let secret = random_bytes::<32>();
        let nonce = random_bytes::<24>();
        let e = wire::VaultSealed {
            key: "DB".into(),
            ciphertext: b64::encode(&crypto::secretbox_easy(b"hunter2", &nonce, &secret)),
            nonce: b64::encode(&nonce),
            sealed_key: seal_to(&secret, &alice.public_hex()).unwrap(),
            ..wire::VaultSealed::default()
        };
        assert_eq!(open(&alice, e.clone()).unwrap().value, b"hunter2");
        assert!(open(&eve, e).is_err());
    }

    #[test]
    fn export_lines_quote_for_the_shell() {
        let s = Secret {
            key: "DB_URL".into(),
            value: b"it's $HOME".to_vec(),
            entry_type: "env".into(),
            mount_path: None,
            owner: "a".into(),
        };
        assert_eq!(export_line(&s).unwrap(), r"export DB_URL='it'\''s $HOME'");
        let bad = Secret {
            key: "a-b".into(),
            ..s
        };
        assert!(export_line(&bad).is_err());
    }
}
