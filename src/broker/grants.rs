//! Grants and blocks: what a member lets others do to it, enforced here, not only by the client.
//!
//! A member decides, about another member or about everyone (`*`), whether it may send it direct messages
//! (`dm`), reach it with copies of broadcasts and group messages (`broadcast`), push to it with priority `now`
//! (`now`), and list and fetch the files it uploaded (`files`). With no decision everything is allowed, as before
//! grants existed; `revoke * CAP` turns a capability into an allow list. A block is stronger than any grant:
//! nothing from the blocked member reaches the blocker.
//!
//! What the sender learns, and why. A DM that may not be delivered is refused with the original broker's words,
//! `blocked by recipient grants (sender lacks dm capability)`, the same whether it was a block or a missing
//! grant: a sender waiting on an answer that will never come is worse than one told it will not, and the words
//! do not say which it was. A broadcast or group message skips the members that refuse it, silently, as the
//! original does, so a broadcast does not tell anyone who blocked them. A `now` without the grant is delivered as
//! `next` (pushed when the recipient is idle), not refused: it still arrives, it only does not interrupt.
//!
//! Every decision lives in memory ([`Grants`]), read from the store once when the hub opens, so the path of a
//! message pays a hash lookup per recipient and no query. A change is written to the store and applied here in
//! the same batch; a batch whose commit fails reads them back from the store. Several brokers over one database
//! each hold their own copy, read when they start: a change made on one reaches the others' memory only when
//! something tells them (a notification of the shared store's), which is for that store to carry.

use std::collections::{HashMap, HashSet};

use super::cluster::Event;
use super::hub::{Hub, PKey};
use super::log;
use super::net::ConnId;
use super::store::{BlockRow, GrantRow, Pending, Store};
use crate::error::Result;
use crate::time::now_ms;
use crate::wire::{self, Priority, codes};

/// What a member may be allowed or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Cap {
    Dm,
    Broadcast,
    Now,
    Files,
}

impl Cap {
    pub(super) const ALL: [Cap; 4] = [Cap::Dm, Cap::Broadcast, Cap::Now, Cap::Files];

    pub(super) fn name(self) -> &'static str {
        match self {
            Cap::Dm => "dm",
            Cap::Broadcast => "broadcast",
            Cap::Now => "now",
            Cap::Files => "files",
        }
    }

    fn parse(s: &str) -> Option<Cap> {
        Cap::ALL.into_iter().find(|c| c.name() == s)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Decisions about one peer (or everyone), by capability: `None` is no decision.
type Rules = [Option<bool>; 4];

/// One member's decisions.
#[derive(Debug, Clone, Default)]
struct Policy {
    blocked: HashSet<String>,
    /// By peer member id; `*` holds the decisions about everyone.
    rules: HashMap<String, Rules>,
}

impl Policy {
    fn allows(&self, peer: &str, cap: Cap) -> bool {
        if self.blocked.contains(peer) {
            return false;
        }
        let rule = |who: &str| self.rules.get(who).and_then(|r| r[cap.index()]);
        rule(peer).or_else(|| rule("*")).unwrap_or(true)
    }
}

/// Every member's decisions, by member id.
#[derive(Debug, Clone, Default)]
pub(super) struct Grants {
    by_member: HashMap<String, Policy>,
}

impl Grants {
    /// What the store holds.
    pub(super) fn load(store: &dyn Store) -> Result<Grants> {
        let mut g = Grants::default();
        for r in store.grants_all()? {
            if let Some(cap) = Cap::parse(&r.cap) {
                g.set(&r.member_id, &r.peer, cap, r.allow);
            }
        }
        for b in store.blocks_all()? {
            g.block(&b.member_id, &b.peer, true);
        }
        Ok(g)
    }

    /// Whether `owner` lets `peer` (member ids) do `cap`. A member never refuses itself.
    pub(super) fn allows(&self, owner: &str, peer: &str, cap: Cap) -> bool {
        owner == peer
            || self
                .by_member
                .get(owner)
                .is_none_or(|p| p.allows(peer, cap))
    }

    /// Whether `owner` blocked `peer`.
    pub(super) fn blocked(&self, owner: &str, peer: &str) -> bool {
        self.by_member
            .get(owner)
            .is_some_and(|p| p.blocked.contains(peer))
    }

    fn set(&mut self, owner: &str, peer: &str, cap: Cap, allow: bool) {
        let p = self.by_member.entry(owner.to_string()).or_default();
        p.rules.entry(peer.to_string()).or_default()[cap.index()] = Some(allow);
    }

    fn block(&mut self, owner: &str, peer: &str, blocked: bool) {
        let p = self.by_member.entry(owner.to_string()).or_default();
        if blocked {
            p.blocked.insert(peer.to_string());
        } else {
            p.blocked.remove(peer);
        }
    }
}

fn names(caps: impl Iterator<Item = Cap>) -> Vec<String> {
    caps.map(|c| c.name().to_string()).collect()
}

impl Hub {
    /// The priority `d` is delivered with: `now` only where its recipient lets the sender push with `now`.
    pub(super) fn priority_of(&self, d: &Pending) -> Priority {
        let p = d.message.priority;
        if p == Priority::Now
            && !self.grants.allows(
                &d.recipient_member_id,
                &d.message.sender_member_id,
                Cap::Now,
            )
        {
            return Priority::Next;
        }
        p
    }

    /// Reads the decisions back from the store, after a batch whose writes were lost.
    pub(super) fn reload_grants(&mut self) {
        match Grants::load(&*self.store) {
            Ok(g) => self.grants = g,
            Err(e) => log::error("reading grants back failed", &[("error", &e)]),
        }
    }

    /// The member id a request's `peer` names: a member or session key of the mesh, not the requester's own.
    /// `None` when an error was sent.
    fn grant_peer(
        &mut self,
        conn: ConnId,
        mesh: &str,
        member: &str,
        peer: &str,
        req: Option<&str>,
    ) -> Option<String> {
        let peer = peer.trim();
        if crate::crypto::parse_pubkey_hex(peer).is_err() {
            self.error(
                conn,
                codes::INVALID_ARGS,
                "peer is a member or session key (64 hex characters), or * for a grant to everyone",
                req,
            );
            return None;
        }
        match self.recipient_of(mesh, peer) {
            Ok(Some((id, _))) if id == member => {
                self.error(
                    conn,
                    codes::INVALID_ARGS,
                    "grants and blocks are about other members, not yourself",
                    req,
                );
                None
            }
            Ok(Some((id, _))) => Some(id),
            Ok(None) => {
                let short = peer.get(..16).unwrap_or(peer);
                self.error(
                    conn,
                    codes::NOT_FOUND,
                    format!("no member or session {short} in this mesh"),
                    req,
                );
                None
            }
            Err(e) => {
                self.store_error(conn, &e, req);
                None
            }
        }
    }

    pub(super) fn on_grant_set(&mut self, conn: ConnId, pk: PKey, g: wire::GrantSet) {
        let req = g.req_id.as_deref();
        let mut caps = Vec::new();
        for c in &g.caps {
            match Cap::parse(c.trim()) {
                Some(cap) if !caps.contains(&cap) => caps.push(cap),
                Some(_) => {}
                None => {
                    let known = names(Cap::ALL.into_iter()).join(", ");
                    let msg = format!("{c:?} is not a capability; they are {known}");
                    return self.error(conn, codes::INVALID_ARGS, msg, req);
                }
            }
        }
        if caps.is_empty() {
            let msg = "a grant names at least one capability";
            return self.error(conn, codes::INVALID_ARGS, msg, req);
        }
        let Some((mesh, member, _)) = self.speaker(pk) else {
            return;
        };
        let peer = if g.peer.trim() == "*" {
            "*".to_string()
        } else {
            match self.grant_peer(conn, &mesh, &member, &g.peer, req) {
                Some(p) => p,
                None => return,
            }
        };
        let at = now_ms();
        for cap in caps {
            let row = GrantRow {
                mesh_id: mesh.clone(),
                member_id: member.clone(),
                peer: peer.clone(),
                cap: cap.name().to_string(),
                allow: g.allow,
                updated_at: at,
            };
            if let Err(e) = self.store.grant_put(&row) {
                return self.store_error(conn, &e, req);
            }
            self.grants.set(&member, &peer, cap, g.allow);
        }
        self.tell(Event::Grants);
        self.grant_state(conn, &member, g.req_id.clone(), true);
    }

    pub(super) fn on_grant_block(&mut self, conn: ConnId, pk: PKey, b: wire::GrantBlock) {
        let req = b.req_id.as_deref();
        let Some((mesh, member, _)) = self.speaker(pk) else {
            return;
        };
        if b.peer.trim() == "*" {
            let msg = "a block names one member; to refuse everyone a capability, revoke it from *";
            return self.error(conn, codes::INVALID_ARGS, msg, req);
        }
        let Some(peer) = self.grant_peer(conn, &mesh, &member, &b.peer, req) else {
            return;
        };
        let wrote = if b.blocked {
            self.store.block_put(&BlockRow {
                mesh_id: mesh,
                member_id: member.clone(),
                peer: peer.clone(),
                created_at: now_ms(),
            })
        } else {
            self.store.block_delete(&member, &peer).map(|_| ())
        };
        if let Err(e) = wrote {
            return self.store_error(conn, &e, req);
        }
        self.grants.block(&member, &peer, b.blocked);
        self.tell(Event::Grants);
        self.grant_state(conn, &member, b.req_id.clone(), true);
    }

    pub(super) fn on_grant_list(&mut self, conn: ConnId, pk: PKey, l: wire::GrantList) {
        let Some((_, member, _)) = self.speaker(pk) else {
            return;
        };
        self.grant_state(conn, &member, l.req_id, false);
    }

    /// Answers with `member`'s decisions as they now are; `durable` when they report a write of this batch.
    fn grant_state(&mut self, conn: ConnId, member: &str, req_id: Option<String>, durable: bool) {
        let req = req_id.clone();
        let empty = Policy::default();
        let policy = self.grants.by_member.get(member).unwrap_or(&empty);
        let everyone = Cap::ALL
            .into_iter()
            .filter(|c| policy.rules.get("*").and_then(|r| r[c.index()]) != Some(false));
        let mut peers: Vec<&String> = policy
            .rules
            .keys()
            .filter(|p| *p != "*")
            .chain(&policy.blocked)
            .collect();
        peers.sort();
        peers.dedup();
        let mut out = Vec::with_capacity(peers.len());
        for id in peers {
            let (pubkey, name) = match self.store.member(id) {
                Ok(Some(m)) => (m.pubkey, m.display_name),
                Ok(None) => continue,
                Err(e) => return self.store_error(conn, &e, req.as_deref()),
            };
            let rules = policy.rules.get(id).copied().unwrap_or_default();
            let pick = |want: bool| {
                names(
                    Cap::ALL
                        .into_iter()
                        .filter(move |c| rules[c.index()] == Some(want)),
                )
            };
            out.push(wire::PeerGrant {
                pubkey,
                name,
                blocked: policy.blocked.contains(id),
                caps: names(Cap::ALL.into_iter().filter(|c| policy.allows(id, *c))),
                granted: pick(true),
                revoked: pick(false),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.pubkey.cmp(&b.pubkey)));
        let state = wire::GrantState {
            everyone: names(everyone),
            peers: out,
            req_id,
        };
        if durable {
            self.reply_durable(conn, state, Hub::durable_failure(req.as_deref()));
        } else {
            self.reply(conn, state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_decision_allows_a_block_refuses_all_and_a_peer_s_grant_beats_everyone_s() {
        let mut g = Grants::default();
        assert!(Cap::ALL.iter().all(|c| g.allows("a", "b", *c)));
        g.set("a", "*", Cap::Now, false);
        assert!(!g.allows("a", "b", Cap::Now));
        assert!(g.allows("a", "b", Cap::Dm));
        g.set("a", "b", Cap::Now, true);
        assert!(g.allows("a", "b", Cap::Now));
        assert!(!g.allows("a", "c", Cap::Now));
        g.block("a", "b", true);
        assert!(Cap::ALL.iter().all(|c| !g.allows("a", "b", *c)));
        assert!(g.allows("b", "a", Cap::Dm), "a block is one way");
        g.block("a", "b", false);
        assert!(g.allows("a", "b", Cap::Now), "unblocking keeps the grants");
        assert!(g.allows("a", "a", Cap::Dm), "no one refuses themselves");
    }
}
