//! The vault: secrets a member keeps in the mesh, sealed on the client. The broker checks shapes and sizes,
//! stores what it is given and hands each reader its own sealed key; it cannot open any of it.

use super::hub::{Hub, PKey};
use super::net::ConnId;
use super::store::{VaultRow, new_id};
use crate::crypto::b64;
use crate::time::{fmt_rfc3339, now_ms};
use crate::wire::{self, codes};

const MAX_KEY: usize = 128;
/// The largest ciphertext, in base64 characters: a value of about 48 KiB, under the 64 KiB frame.
const MAX_CIPHERTEXT: usize = 64_000;
const MAX_DESCRIPTION: usize = 512;
const MAX_READERS: usize = 64;
/// A sealed key is 48 bytes (a 32-byte key in a sealed box); base64 is 64 characters.
const MAX_SEALED: usize = 256;

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_KEY
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
}

fn is_b64(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && b64::decode(s).is_ok()
}

impl Hub {
    pub(super) fn on_vault_set(&mut self, conn: ConnId, pk: PKey, v: wire::VaultSet) {
        let req = v.req_id.as_deref();
        let Some((mesh, member)) = self
            .presences
            .get(&pk)
            .map(|p| (p.mesh_id.clone(), p.member_id.clone()))
        else {
            return;
        };
        let bad = |m: String| Some(m);
        let entry_type = if v.entry_type.is_empty() {
            "env"
        } else {
            v.entry_type.as_str()
        };
        let problem = if !valid_key(&v.key) {
            bad(format!(
                "a vault key is 1 to {MAX_KEY} characters of A-Z a-z 0-9 _ - . /"
            ))
        } else if !is_b64(&v.ciphertext, MAX_CIPHERTEXT) || !is_b64(&v.nonce, 64) {
            bad(format!(
                "a vault value is base64 ciphertext of at most {MAX_CIPHERTEXT} characters and a base64 nonce"
            ))
        } else if !is_b64(&v.sealed_key, MAX_SEALED) {
            bad("sealed_key: the entry's key sealed to your member key, base64".into())
        } else if !matches!(entry_type, "env" | "file") {
            bad(format!("entry_type is env or file, not {entry_type:?}"))
        } else if v
            .description
            .as_deref()
            .is_some_and(|d| d.len() > MAX_DESCRIPTION)
        {
            bad(format!("a description is at most {MAX_DESCRIPTION} bytes"))
        } else if v.readers.len() > MAX_READERS {
            bad(format!("at most {MAX_READERS} readers"))
        } else if v.readers.iter().any(|r| {
            r.pubkey.len() != 64
                || !r.pubkey.bytes().all(|b| b.is_ascii_hexdigit())
                || !is_b64(&r.sealed_key, MAX_SEALED)
        }) {
            bad("a reader is a member's 64-hex key and the entry's key sealed to it".into())
        } else {
            None
        };
        if let Some(m) = problem {
            return self.error(conn, codes::INVALID_ARGS, m, req);
        }
        let row = VaultRow {
            id: new_id(),
            mesh_id: mesh,
            member_id: member,
            key: v.key.clone(),
            ciphertext: v.ciphertext,
            nonce: v.nonce,
            sealed_key: v.sealed_key,
            entry_type: entry_type.to_string(),
            mount_path: v.mount_path,
            description: v.description,
            updated_at: now_ms(),
            ..VaultRow::default()
        };
        let readers: Vec<(String, String)> = v
            .readers
            .into_iter()
            .map(|r| (r.pubkey.to_ascii_lowercase(), r.sealed_key))
            .collect();
        if let Err(e) = self.store.vault_put(&row, &readers) {
            return self.store_error(conn, &e, req);
        }
        let ack = wire::VaultAck {
            key: v.key,
            action: "stored".into(),
            req_id: v.req_id.clone(),
        };
        self.reply_durable(conn, ack, Hub::durable_failure(req));
    }

    /// The entries the presence's member may read.
    fn vault_readable(
        &mut self,
        conn: ConnId,
        pk: &PKey,
        req: Option<&str>,
    ) -> Option<Vec<VaultRow>> {
        let (mesh, member, key) = self.presences.get(pk).map(|p| {
            (
                p.mesh_id.clone(),
                p.member_id.clone(),
                p.member_pubkey.clone(),
            )
        })?;
        match self.store.vault_readable(&mesh, &member, &key) {
            Ok(r) => Some(r),
            Err(e) => {
                self.store_error(conn, &e, req);
                None
            }
        }
    }

    pub(super) fn on_vault_get(&mut self, conn: ConnId, pk: PKey, g: wire::VaultGet) {
        let req = g.req_id.as_deref();
        let Some(rows) = self.vault_readable(conn, &pk, req) else {
            return;
        };
        let me = self
            .presences
            .get(&pk)
            .map(|p| p.member_id.clone())
            .unwrap_or_default();
        let entries = rows
            .into_iter()
            .filter(|r| g.keys.is_empty() || g.keys.contains(&r.key))
            .map(|r| wire::VaultSealed {
                key: r.key,
                ciphertext: r.ciphertext,
                nonce: r.nonce,
                sealed_key: r.sealed_key,
                entry_type: r.entry_type,
                mount_path: r.mount_path,
                owner: r.owner_name,
                mine: r.member_id == me,
            })
            .collect();
        let res = wire::VaultGetResult {
            entries,
            req_id: g.req_id,
        };
        self.reply(conn, res);
    }

    pub(super) fn on_vault_list(&mut self, conn: ConnId, pk: PKey, l: wire::VaultList) {
        let req = l.req_id.as_deref();
        let Some(rows) = self.vault_readable(conn, &pk, req) else {
            return;
        };
        let mut entries = Vec::new();
        for r in rows {
            let readers = match self.store.vault_reader_names(&r.id) {
                Ok(n) => n,
                Err(e) => return self.store_error(conn, &e, req),
            };
            entries.push(wire::VaultInfo {
                key: r.key,
                entry_type: r.entry_type,
                mount_path: r.mount_path,
                description: r.description,
                updated_at: fmt_rfc3339(r.updated_at),
                owner: r.owner_name,
                readers,
            });
        }
        let res = wire::VaultListResult {
            entries,
            req_id: l.req_id,
        };
        self.reply(conn, res);
    }

    pub(super) fn on_vault_delete(&mut self, conn: ConnId, pk: PKey, d: wire::VaultDelete) {
        let req = d.req_id.as_deref();
        let Some((mesh, member)) = self
            .presences
            .get(&pk)
            .map(|p| (p.mesh_id.clone(), p.member_id.clone()))
        else {
            return;
        };
        let deleted = match self.store.vault_delete(&mesh, &member, &d.key) {
            Ok(x) => x,
            Err(e) => return self.store_error(conn, &e, req),
        };
        let ack = wire::VaultAck {
            key: d.key,
            action: if deleted { "deleted" } else { "not_found" }.into(),
            req_id: d.req_id.clone(),
        };
        self.reply_durable(conn, ack, Hub::durable_failure(req));
    }
}
