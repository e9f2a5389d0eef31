//! The hub driven through a detached `Io`: no sockets, every reply read back in order.
//!
//! Every test runs on SQLite, and again on PostgreSQL from the `postgres` module at the end (a fresh schema
//! each, skipped without a server outside CI): one suite, two backends.
//!
//! Compiled only for `cargo test` (declared `#[cfg(test)]` by its parent), so its `unwrap`s fail a test, never a user.
#![cfg(test)]

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::broker::net::{Output, Request};
use crate::broker::store::{SqliteStore, Store};
use crate::crypto::{Keypair, b64};

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("cm-hub-{}-{}", std::process::id(), new_id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(feature = "postgres")]
type PgConfig = Box<::postgres::Config>;
#[cfg(not(feature = "postgres"))]
type PgConfig = Box<()>;

thread_local! {
    /// The schema the next [`Fx`] of this thread (one test) opens its store in, instead of SQLite.
    static ON_POSTGRES: Cell<Option<PgConfig>> = const { Cell::new(None) };
}

/// A member's key pair and id.
struct Who {
    key: Keypair,
    id: String,
}

struct Fx {
    hub: Hub,
    io: Io,
    fail: Rc<Cell<bool>>,
    now: Instant,
    next_conn: ConnId,
    mesh_id: String,
    owner: Keypair,
    admin: Who,
    _dir: TempDir,
}

fn loopback() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

fn request(
    method: &str,
    path: &str,
    body: &Value,
    peer: SocketAddr,
    headers: &[(&str, &str)],
) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        query: None,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.to_string().into_bytes(),
        peer,
    }
}

/// Every text frame `conn` got, parsed.
fn frames(out: &[Output], conn: ConnId) -> Vec<Value> {
    out.iter()
        .filter_map(|o| match o {
            Output::Text(c, t) if *c == conn => Some(serde_json::from_str(t).unwrap()),
            _ => None,
        })
        .collect()
}

fn closes(out: &[Output], conn: ConnId) -> Vec<(u16, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Close(c, code, r) if *c == conn => Some((*code, r.clone())),
            _ => None,
        })
        .collect()
}

fn of_type<'a>(frames: &'a [Value], ty: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["type"] == ty).collect()
}

fn config(dir: &TempDir) -> HubConfig {
    HubConfig {
        data_dir: dir.0.clone(),
        database_url: None,
        admin_token: Some("s3cret".into()),
        max_conns_per_mesh: 100,
        rate_limit: None,
        lease: Duration::from_secs(30),
        max_file_bytes: 1_000_000,
        task_lease: Duration::from_secs(600),
        test_clock: false,
        public_url: None,
    }
}

fn create_body(name: &str, creator: &Keypair, owner: &Keypair) -> Value {
    let ts = now_ms();
    let signed = wire::mesh_create_signed(name, &creator.public_hex(), &owner.public_hex(), ts);
    json!({"name": name, "pubkey": creator.public_hex(), "ownerPubkey": owner.public_hex(), "timestamp": ts,
           "signature": creator.sign_hex(&signed)})
}

impl Fx {
    fn new() -> Fx {
        Fx::with(|_| {})
    }

    fn with(tweak: impl FnOnce(&mut HubConfig)) -> Fx {
        let dir = TempDir::new();
        let mut cfg = config(&dir);
        tweak(&mut cfg);
        let fail = Rc::new(Cell::new(false));
        let store: Box<dyn Store> = match ON_POSTGRES.with(Cell::take) {
            #[cfg(feature = "postgres")]
            Some(config) => {
                let mut store = crate::broker::store::PgStore::open_config(*config).unwrap();
                store.fail_commits = Some(fail.clone());
                Box::new(store)
            }
            _ => {
                let mut store = SqliteStore::open(&dir.0).unwrap();
                store.fail_commits = Some(fail.clone());
                Box::new(store)
            }
        };
        let hub = Hub::with_store(store, cfg).unwrap();
        let (owner, creator) = (Keypair::generate(), Keypair::generate());
        let mut fx = Fx {
            hub,
            io: Io::detached(),
            fail,
            now: Instant::now(),
            next_conn: 1,
            mesh_id: String::new(),
            owner,
            admin: Who {
                key: creator.clone(),
                id: String::new(),
            },
            _dir: dir,
        };
        // The config's admin token binds loopback too.
        let (status, v) = fx.http_from(
            "POST",
            "/cli/mesh/create",
            &create_body("Dev Team", &creator, &fx.owner.clone()),
            loopback(),
            &[("authorization", "Bearer s3cret")],
        );
        assert_eq!(status, 200, "{v}");
        fx.mesh_id = v["id"].as_str().unwrap().into();
        fx.admin.id = v["memberId"].as_str().unwrap().into();
        fx
    }

    fn http_from(
        &mut self,
        method: &str,
        path: &str,
        body: &Value,
        peer: SocketAddr,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let req = request(method, path, body, peer, headers);
        let HttpAction::Respond(r) = self.hub.on_http(&mut self.io, 999, &req) else {
            panic!("not a response")
        };
        self.hub.end_of_batch(&mut self.io);
        let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r.status, v)
    }

    fn http(&mut self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        self.http_from(method, path, body, loopback(), &[])
    }

    /// A signed v1 invite of this mesh, registered with the broker.
    fn invite(&mut self, max_uses: u32, role: &str) -> (String, Value) {
        let mut payload = json!({"v": 1, "mesh_id": self.mesh_id, "mesh_slug": "dev-team", "broker_url": "ws://x/ws",
            "expires_at": now_ms() / 1000 + 3600,
            "mesh_root_key": b64::encode_url(&crate::crypto::random_bytes::<32>()), "role": role,
            "owner_pubkey": self.owner.public_hex()});
        let signed = crate::broker::http::invite_v1_signed(&payload).unwrap();
        payload["signature"] = self.owner.sign_hex(&signed).into();
        let token = b64::encode_url(payload.to_string().as_bytes());
        let ts = now_ms();
        let sig = self.owner.sign_hex(&wire::invite_register_signed(
            &self.mesh_id,
            &token,
            max_uses,
            ts,
        ));
        let body = json!({"meshId": self.mesh_id, "token": token, "maxUses": max_uses, "timestamp": ts, "signature": sig});
        let (status, v) = self.http("POST", "/cli/mesh/invite", &body);
        assert_eq!(status, 200, "{v}");
        (token, payload)
    }

    fn join(&mut self, name: &str) -> Who {
        let (token, payload) = self.invite(1, "member");
        let key = Keypair::generate();
        let body = json!({"invite_token": token, "invite_payload": payload, "peer_pubkey": key.public_hex(), "display_name": name});
        let (status, v) = self.http("POST", "/join", &body);
        assert_eq!(status, 200, "{v}");
        Who {
            key,
            id: v["memberId"].as_str().unwrap().into(),
        }
    }

    fn open(&mut self) -> ConnId {
        let conn = self.next_conn;
        self.next_conn += 1;
        self.hub.on_open(&mut self.io, conn, loopback());
        conn
    }

    fn text(&mut self, conn: ConnId, v: &Value) -> Vec<Output> {
        self.hub.on_text(&mut self.io, conn, &v.to_string());
        self.hub.end_of_batch(&mut self.io);
        self.io.take_output()
    }

    fn hello_frame(&self, who: &Who, extra: Value) -> Value {
        let ts = hello_ts();
        let pk = who.key.public_hex();
        let sig = who
            .key
            .sign_hex(&wire::hello_signed(&self.mesh_id, &who.id, &pk, ts));
        let mut v = json!({"type": "hello", "meshId": self.mesh_id, "memberId": who.id, "pubkey": pk,
            "sessionId": "s", "pid": 1, "cwd": "/", "timestamp": ts, "signature": sig});
        merge(&mut v, extra);
        v
    }

    fn session_frame(&self, who: &Who, session: &Keypair, extra: Value) -> Value {
        let now = hello_ts();
        let (parent, sp) = (who.key.public_hex(), session.public_hex());
        let exp = now + 3_600_000;
        let att_sig = who
            .key
            .sign_hex(&wire::attestation_signed(&parent, &sp, exp));
        let sig = session.sign_hex(&wire::session_hello_signed(
            &self.mesh_id,
            &parent,
            &sp,
            now,
        ));
        let mut v = json!({"type": "session_hello", "meshId": self.mesh_id, "parentMemberId": who.id,
            "parentMemberPubkey": parent, "sessionPubkey": sp,
            "parentAttestation": {"sessionPubkey": sp, "parentMemberPubkey": parent, "expiresAt": exp, "signature": att_sig},
            "displayName": "sess", "sessionId": "sid", "pid": 2, "cwd": "/w", "timestamp": now, "signature": sig});
        merge(&mut v, extra);
        v
    }

    /// Connects with `hello` and returns the connection and everything sent in that batch.
    fn hello(&mut self, who: &Who, extra: Value) -> (ConnId, Vec<Output>) {
        let conn = self.open();
        let f = self.hello_frame(who, extra);
        let out = self.text(conn, &f);
        assert_eq!(
            of_type(&frames(&out, conn), "hello_ack").len(),
            1,
            "{out:?}"
        );
        (conn, out)
    }

    fn session(&mut self, who: &Who, session: &Keypair, extra: Value) -> (ConnId, Vec<Output>) {
        let conn = self.open();
        let f = self.session_frame(who, session, extra);
        let out = self.text(conn, &f);
        assert_eq!(
            of_type(&frames(&out, conn), "hello_ack").len(),
            1,
            "{out:?}"
        );
        (conn, out)
    }

    fn tick(&mut self, by: Duration) -> Vec<Output> {
        self.now += by;
        self.io.set_now(self.now);
        self.hub.on_tick(&mut self.io, self.now);
        self.hub.end_of_batch(&mut self.io);
        self.io.take_output()
    }

    fn close(&mut self, conn: ConnId, clean: bool) -> Vec<Output> {
        self.hub.on_close(&mut self.io, conn, clean);
        self.hub.end_of_batch(&mut self.io);
        self.io.take_output()
    }
}

fn merge(v: &mut Value, extra: Value) {
    if let (Value::Object(a), Value::Object(b)) = (v, extra) {
        for (k, x) in b {
            if x.is_null() {
                a.remove(&k);
            } else {
                a.insert(k, x);
            }
        }
    }
}

fn dm(to: &str, id: &str, priority: &str) -> Value {
    json!({"type": "send", "id": id, "targetSpec": to, "priority": priority, "nonce": "bm9uY2U=", "ciphertext": format!("ct-{id}")})
}

#[test]
fn hello_ack_and_session_state_errors() {
    let mut fx = Fx::new();
    let conn = fx.open();
    let out = fx.text(conn, &json!({"type": "list_peers", "_reqId": "r0"}));
    let f = frames(&out, conn);
    assert_eq!(
        (
            f[0]["code"].as_str(),
            f[0]["_reqId"].as_str(),
            f[0]["id"].as_str()
        ),
        (Some("no_hello"), Some("r0"), Some("r0"))
    );
    assert!(closes(&out, conn).is_empty());

    let hello = fx.hello_frame(&fx.admin_who(), json!({"sessionPubkey": "ab".repeat(32)}));
    let out = fx.text(conn, &hello);
    let ack = &frames(&out, conn)[0];
    assert_eq!(ack["type"], "hello_ack");
    assert_eq!(ack["memberId"], fx.admin.id.as_str());
    assert_eq!(ack["memberRole"], "admin");
    assert_eq!(ack["meshSlug"], "dev-team");
    assert_eq!(ack["meshName"], "Dev Team");
    assert_eq!(ack["memberDisplayName"], "Dev Team-owner");
    assert!(ack["serverTime"].is_i64() && ack["memberProfile"]["groups"].is_array());

    let out = fx.text(conn, &hello);
    assert_eq!(frames(&out, conn)[0]["code"], "already_authenticated");
    let out = fx.text(conn, &json!({"type": "no_such_thing", "_reqId": "r1"}));
    let f = &frames(&out, conn)[0];
    assert_eq!(
        (f["code"].as_str(), f["_reqId"].as_str()),
        (Some("unknown_type"), Some("r1"))
    );
    let out = fx.text(conn, &json!({"type": "message_status", "_reqId": "r2"}));
    assert_eq!(frames(&out, conn)[0]["code"], "malformed");
    let out = fx.text(conn, &json!({"type": "send", "id": "s1"}));
    let f = &frames(&out, conn)[0];
    assert_eq!(
        (f["code"].as_str(), f["id"].as_str()),
        (Some("malformed"), Some("s1"))
    );
    let conn2 = fx.open();
    fx.hub.on_text(&mut fx.io, conn2, "{not json");
    fx.hub.end_of_batch(&mut fx.io);
    let out = fx.io.take_output();
    assert_eq!(frames(&out, conn2)[0]["code"], "malformed");
    assert!(closes(&out, conn2).is_empty());

    // The broker echoes the presence as control-plane and ignored the unproven sessionPubkey.
    let out = fx.text(conn, &json!({"type": "list_peers", "_reqId": "p"}));
    let peers = &frames(&out, conn)[0]["peers"];
    assert_eq!(peers[0]["peerRole"], "control-plane");
    assert_eq!(peers[0]["pubkey"], fx.admin.key.public_hex());
}

impl Fx {
    fn admin_who(&self) -> Who {
        Who {
            key: self.admin.key.clone(),
            id: self.admin.id.clone(),
        }
    }
}

#[test]
fn hello_refusals_close_with_the_right_codes() {
    let mut fx = Fx::new();
    let bob = fx.join("bob");
    let cases: Vec<(Value, &str, u16)> = vec![
        (
            json!({"timestamp": now_ms() - 120_000}),
            "timestamp_skew",
            1008,
        ),
        (json!({"timestamp": "now"}), "timestamp_skew", 1008),
        (json!({"signature": "00".repeat(64)}), "bad_signature", 1008),
        (json!({"signature": "zz"}), "malformed", 1008),
        (json!({"sessionPubkey": "XYZ"}), "bad_session_pubkey", 1008),
    ];
    for (extra, code, close) in cases {
        let conn = fx.open();
        let f = fx.hello_frame(&bob, extra.clone());
        let out = fx.text(conn, &f);
        assert_eq!(frames(&out, conn)[0]["code"], code, "{extra}");
        assert_eq!(closes(&out, conn), [(close, code.to_string())], "{extra}");
    }
    // A clock off says by how much.
    let conn = fx.open();
    let f = fx.hello_frame(&bob, json!({"timestamp": now_ms() + 75_500}));
    let out = fx.text(conn, &f);
    let msg = frames(&out, conn)[0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.ends_with("signed 75 s ahead of the broker's clock"),
        "{msg}"
    );
    // Signed correctly, but with another member's id.
    let conn = fx.open();
    let liar = Who {
        key: bob.key.clone(),
        id: fx.admin.id.clone(),
    };
    let f = fx.hello_frame(&liar, json!({}));
    let out = fx.text(conn, &f);
    assert_eq!(frames(&out, conn)[0]["code"], "unauthorized");
    assert_eq!(closes(&out, conn), [(1008, "unauthorized".to_string())]);
    // A stranger's key.
    let conn = fx.open();
    let stranger = Who {
        key: Keypair::generate(),
        id: bob.id.clone(),
    };
    let f = fx.hello_frame(&stranger, json!({}));
    let out = fx.text(conn, &f);
    assert_eq!(frames(&out, conn)[0]["code"], "unauthorized");
}

#[test]
fn capacity_counts_live_presences_and_frees_them() {
    let mut fx = Fx::with(|c| c.max_conns_per_mesh = 1);
    let admin = fx.admin_who();
    let (c1, _) = fx.hello(&admin, json!({}));
    let conn = fx.open();
    let f = fx.hello_frame(&admin, json!({}));
    let out = fx.text(conn, &f);
    assert_eq!(frames(&out, conn)[0]["code"], "capacity");
    assert_eq!(closes(&out, conn), [(1013, "capacity".to_string())]);
    fx.close(c1, false);
    fx.hello(&admin, json!({}));
}

#[test]
fn session_presence_lifecycle_joined_grace_reattach_replace_left() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (watcher, _) = fx.hello(&admin, json!({}));
    let skey = Keypair::generate();
    let (s1, out) = fx.session(&bob, &skey, json!({}));
    let ev = &frames(&out, watcher)[0];
    assert_eq!(
        (ev["subtype"].as_str(), ev["event"].as_str()),
        (Some("system"), Some("peer_joined"))
    );
    assert_eq!(ev["eventData"]["pubkey"], skey.public_hex());
    assert_eq!(ev["senderPubkey"], "system");

    // A control-plane hello is never announced.
    let (_, out) = fx.hello(&bob, json!({}));
    assert!(frames(&out, watcher).is_empty());

    // Dropped without a close frame: gone at once, announced and out of list_peers (the grace is the broker's
    // own), then back on a reattach within it.
    let out = fx.close(s1, false);
    assert_eq!(frames(&out, watcher)[0]["event"], "peer_left");
    let out = fx.text(watcher, &json!({"type": "list_peers"}));
    let peers = frames(&out, watcher)[0]["peers"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        !peers
            .iter()
            .any(|p| p["pubkey"] == skey.public_hex().as_str()),
        "{peers:?}"
    );
    let (s2, out) = fx.session(&bob, &skey, json!({}));
    assert_eq!(frames(&out, watcher)[0]["event"], "peer_joined");

    // A second socket for the same key replaces the first, silently.
    let (s3, out) = fx.session(&bob, &skey, json!({}));
    assert_eq!(closes(&out, s2), [(1000, "session_replaced".to_string())]);
    assert!(frames(&out, watcher).is_empty());
    assert!(
        fx.close(s2, true).is_empty(),
        "the replaced socket's close changes nothing"
    );

    // A pull socket of the session is auxiliary: it replaces nothing and is not listed.
    let (_aux, out) = fx.session(&bob, &skey, json!({"capabilities": ["pull"]}));
    assert!(closes(&out, s3).is_empty() && frames(&out, watcher).is_empty());
    let out = fx.text(watcher, &json!({"type": "list_peers"}));
    let listed = frames(&out, watcher)[0]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["pubkey"] == skey.public_hex().as_str())
        .count();
    assert_eq!(listed, 1);

    // Unclean drop: peer_left at once, and nothing more when the grace runs out.
    let out = fx.close(s3, false);
    assert_eq!(frames(&out, watcher)[0]["event"], "peer_left");
    assert!(frames(&fx.tick(Duration::from_secs(60)), watcher).is_empty());
    assert!(frames(&fx.tick(Duration::from_secs(31)), watcher).is_empty());

    // A clean close leaves at once.
    let (s4, _) = fx.session(&bob, &skey, json!({}));
    let out = fx.close(s4, true);
    assert_eq!(frames(&out, watcher)[0]["event"], "peer_left");
}

#[test]
fn dm_to_an_offline_member_is_queued_then_pushed_acked_and_not_redelivered() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (a, _) = fx.hello(&admin, json!({}));
    let out = fx.text(a, &dm(&bob.key.public_hex(), "m1", "next"));
    let ack = &frames(&out, a)[0];
    assert_eq!(
        (
            ack["type"].as_str(),
            ack["queued"].as_bool(),
            ack["recipientOnline"].as_bool()
        ),
        (Some("ack"), Some(true), Some(false))
    );
    let mid = ack["messageId"].as_str().unwrap().to_string();
    assert_eq!(mid.len(), 32);

    let (b, out) = fx.hello(&bob, json!({}));
    let pushes = of_type(&frames(&out, b), "push")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(pushes.len(), 1);
    let p = &pushes[0];
    assert_eq!(p["messageId"], mid.as_str());
    assert_eq!(p["senderPubkey"], admin.key.public_hex());
    assert_eq!(p["senderMemberPubkey"], admin.key.public_hex());
    assert_eq!(p["senderMemberId"], admin.id.as_str());
    assert_eq!(p["senderName"], "Dev Team-owner");
    assert_eq!(p["targetSpec"], bob.key.public_hex());
    assert_eq!(
        (
            p["priority"].as_str(),
            p["nonce"].as_str(),
            p["ciphertext"].as_str()
        ),
        (Some("next"), Some("bm9uY2U="), Some("ct-m1"))
    );
    assert!(p["createdAt"].as_str().unwrap().ends_with('Z'));

    // Unacknowledged: pushed again after the lease, then backed off.
    assert_eq!(
        of_type(&frames(&fx.tick(Duration::from_secs(31)), b), "push").len(),
        1
    );
    assert!(of_type(&frames(&fx.tick(Duration::from_secs(31)), b), "push").is_empty());
    assert_eq!(
        of_type(&frames(&fx.tick(Duration::from_secs(30)), b), "push").len(),
        1
    );

    // An ack from someone else's connection does not count; the recipient's does.
    fx.text(a, &json!({"type": "client_ack", "brokerMessageId": mid}));
    let out = fx.text(
        a,
        &json!({"type": "message_status", "messageId": mid, "_reqId": "q"}),
    );
    assert_eq!(frames(&out, a)[0]["delivered"], false);
    fx.text(b, &json!({"type": "client_ack", "brokerMessageId": mid}));
    assert!(fx.tick(Duration::from_secs(600)).is_empty());
    let out = fx.text(
        a,
        &json!({"type": "message_status", "messageId": &mid[..10], "_reqId": "q"}),
    );
    let st = &frames(&out, a)[0];
    assert_eq!(
        (
            st["type"].as_str(),
            st["delivered"].as_bool(),
            st["_reqId"].as_str()
        ),
        (Some("message_status_result"), Some(true), Some("q"))
    );
    assert_eq!(st["recipients"][0]["status"], "delivered");
    assert_eq!(st["recipients"][0]["name"], "bob");

    // Reconnecting brings nothing back.
    fx.close(b, true);
    let (b2, out) = fx.hello(&bob, json!({}));
    assert!(of_type(&frames(&out, b2), "push").is_empty());
}

#[test]
fn live_dm_to_a_member_reaches_every_connection_but_the_senders_socket() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (a1, _) = fx.hello(&admin, json!({}));
    let (a2, _) = fx.hello(&admin, json!({}));
    let (b1, _) = fx.hello(&bob, json!({}));
    let (b2, _) = fx.session(&bob, &Keypair::generate(), json!({}));
    let (bp, _) = fx.hello(&bob, json!({"capabilities": ["pull"]}));
    let out = fx.text(a1, &dm(&bob.key.public_hex(), "x", "now"));
    let ack = &frames(&out, a1)[0];
    assert_eq!(
        (ack["queued"].as_bool(), ack["recipientOnline"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(of_type(&frames(&out, b1), "push").len(), 1);
    assert_eq!(of_type(&frames(&out, b2), "push").len(), 1);
    assert!(
        frames(&out, bp).is_empty(),
        "pull connections are not pushed to"
    );
    // To one's own member key: the other sockets of the member, not the sender's.
    let out = fx.text(a1, &dm(&admin.key.public_hex(), "y", "now"));
    assert_eq!(of_type(&frames(&out, a2), "push").len(), 1);
    assert_eq!(of_type(&frames(&out, a1), "push").len(), 0);
}

#[test]
fn dm_to_a_session_key_reaches_that_session_and_waits_for_it_when_offline() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let skey = Keypair::generate();
    let (s, _) = fx.session(&bob, &skey, json!({}));
    let (b, _) = fx.hello(&bob, json!({}));
    let (a, _) = fx.hello(&admin, json!({}));
    let out = fx.text(a, &dm(&skey.public_hex(), "1", "next"));
    assert_eq!(of_type(&frames(&out, s), "push").len(), 1);
    assert!(frames(&out, b).is_empty());
    // Gone for good (clean close): still a known session, so the DM is stored for it.
    fx.close(s, true);
    let out = fx.text(a, &dm(&skey.public_hex(), "2", "next"));
    assert_eq!(frames(&out, a)[0]["queued"], true);
    let (s2, out) = fx.session(&bob, &skey, json!({}));
    let pushed: Vec<_> = of_type(&frames(&out, s2), "push")
        .iter()
        .map(|p| p["ciphertext"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        pushed,
        ["ct-1", "ct-2"],
        "oldest first, the unacked one again"
    );
    // Unknown keys and topics are refused in the ack.
    let out = fx.text(a, &dm(&Keypair::generate().public_hex(), "3", "next"));
    assert!(
        frames(&out, a)[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("unknown target:")
    );
    let out = fx.text(a, &dm("#general", "4", "next"));
    assert_eq!(
        frames(&out, a)[0]["error"],
        "unknown target: no topic #general in this mesh"
    );
    assert_eq!(frames(&out, a)[0]["messageId"], "");
}

#[test]
fn priority_gating_holds_next_for_busy_peers_and_never_pushes_low() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (a, _) = fx.hello(&admin, json!({}));
    let (b, _) = fx.hello(&bob, json!({}));
    let out = fx.text(
        b,
        &json!({"type": "set_status", "status": "working", "_reqId": "st"}),
    );
    assert_eq!(frames(&out, b)[0]["type"], "ack");
    let to = bob.key.public_hex();
    let out = fx.text(a, &dm(&to, "n", "next"));
    assert!(frames(&out, b).is_empty());
    assert_eq!(frames(&out, a)[0]["queued"], true);
    let out = fx.text(a, &dm(&to, "now", "now"));
    assert_eq!(of_type(&frames(&out, b), "push").len(), 1);
    let out = fx.text(a, &dm(&to, "l", "low"));
    assert!(frames(&out, b).is_empty());
    let out = fx.text(b, &json!({"type": "set_status", "status": "idle"}));
    let got: Vec<_> = of_type(&frames(&out, b), "push")
        .iter()
        .map(|p| p["ciphertext"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        got,
        ["ct-n"],
        "idle drains next, not low, not what is already in flight"
    );
    // Low waits for a pull.
    let out = fx.text(b, &json!({"type": "inbox_fetch", "_reqId": "i"}));
    let inbox = &frames(&out, b)[0];
    assert_eq!(inbox["type"], "inbox");
    assert_eq!(inbox["messages"].as_array().unwrap().len(), 3);
    let out = fx.text(b, &json!({"type": "set_status", "status": "busy"}));
    assert_eq!(frames(&out, b)[0]["code"], "malformed");
}

#[test]
fn inbox_fetch_waits_for_a_delivery_or_the_deadline() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (a, _) = fx.hello(&admin, json!({}));
    let (b, _) = fx.hello(&bob, json!({"capabilities": ["pull"]}));
    let out = fx.text(
        b,
        &json!({"type": "inbox_fetch", "waitMs": 5000, "_reqId": "w1"}),
    );
    assert!(frames(&out, b).is_empty());
    let out = fx.text(a, &dm(&bob.key.public_hex(), "1", "low"));
    let inbox = &frames(&out, b)[0];
    assert_eq!(
        (inbox["type"].as_str(), inbox["_reqId"].as_str()),
        (Some("inbox"), Some("w1"))
    );
    assert_eq!(inbox["messages"][0]["ciphertext"], "ct-1");
    assert_eq!(frames(&out, a)[0]["queued"], false);

    fx.text(
        b,
        &json!({"type": "client_ack", "brokerMessageId": inbox["messages"][0]["messageId"]}),
    );
    let out = fx.text(
        b,
        &json!({"type": "inbox_fetch", "waitMs": 2000, "_reqId": "w2"}),
    );
    assert!(frames(&out, b).is_empty());
    assert!(frames(&fx.tick(Duration::from_secs(1)), b).is_empty());
    let out = fx.tick(Duration::from_secs(1));
    let f = &frames(&out, b)[0];
    assert_eq!(
        (f["_reqId"].as_str(), f["messages"].as_array().map(Vec::len)),
        (Some("w2"), Some(0))
    );
}

#[test]
fn broadcasts_with_copies_store_one_row_per_recipient_and_compat_sends_reach_groups() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let carol = fx.join("carol");
    let (a, _) = fx.hello(&admin, json!({}));
    let (b, _) = fx.hello(&bob, json!({}));
    let send = json!({"type": "send", "id": "b1", "targetSpec": "*", "priority": "next", "nonce": "", "ciphertext": "",
        "copies": [{"to": bob.key.public_hex(), "nonce": "n1", "ciphertext": "for-bob"},
                   {"to": carol.key.public_hex(), "nonce": "n2", "ciphertext": "for-carol"}]});
    let out = fx.text(a, &send);
    let ack = &frames(&out, a)[0];
    assert_eq!(
        (ack["queued"].as_bool(), ack["recipientOnline"].as_bool()),
        (Some(false), Some(true))
    );
    let p = &of_type(&frames(&out, b), "push")[0].clone();
    assert_eq!(
        (
            p["nonce"].as_str(),
            p["ciphertext"].as_str(),
            p["targetSpec"].as_str()
        ),
        (Some("n1"), Some("for-bob"), Some("*"))
    );
    let (c, out) = fx.hello(&carol, json!({}));
    assert_eq!(
        of_type(&frames(&out, c), "push")[0]["ciphertext"],
        "for-carol"
    );

    let bad = json!({"type": "send", "id": "b2", "targetSpec": "*", "priority": "next", "nonce": "", "ciphertext": "",
        "copies": [{"to": Keypair::generate().public_hex(), "nonce": "n", "ciphertext": "x"}]});
    let out = fx.text(a, &bad);
    assert!(
        frames(&out, a)[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("not_member:")
    );

    // Groups: carol joins eng/backend on her control plane (stored for the member); @eng reaches her, not bob.
    let out = fx.text(
        c,
        &json!({"type": "join_group", "name": "eng/backend", "_reqId": "g"}),
    );
    assert_eq!(frames(&out, c)[0]["type"], "ack");
    fx.close(c, true);
    let out = fx.text(a, &json!({"type": "send", "id": "g1", "targetSpec": "@eng", "priority": "next", "nonce": "", "ciphertext": "Z3JvdXA="}));
    assert_eq!(frames(&out, a)[0]["queued"], true);
    assert!(frames(&out, b).is_empty());
    let (c2, out) = fx.hello(&carol, json!({}));
    let got: Vec<_> = of_type(&frames(&out, c2), "push")
        .iter()
        .map(|p| p["ciphertext"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        got,
        ["for-carol", "Z3JvdXA="],
        "the unacknowledged copy again, then the group message"
    );
    let out = fx.text(c2, &json!({"type": "list_peers"}));
    let me = frames(&out, c2)[0]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["memberPubkey"] == carol.key.public_hex().as_str())
        .unwrap()
        .clone();
    assert_eq!(me["groups"][0]["name"], "eng/backend");
}

#[test]
fn a_repeated_client_message_id_is_stored_once() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (a, _) = fx.hello(&admin, json!({}));
    let mut send = dm(&bob.key.public_hex(), "1", "next");
    send["client_message_id"] = "c-1".into();
    let first = frames(&fx.text(a, &send), a)[0].clone();
    let again = frames(&fx.text(a, &send), a)[0].clone();
    assert_eq!(first["messageId"], again["messageId"]);
    assert_eq!(again["duplicate"], true);
    assert!(first.get("duplicate").is_none());
    let (b, out) = fx.hello(&bob, json!({}));
    let pushes = of_type(&frames(&out, b), "push")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0]["client_message_id"], "c-1");
    // Acknowledged by the sender's client id.
    fx.text(b, &json!({"type": "client_ack", "clientMessageId": "c-1"}));
    let out = fx.text(
        a,
        &json!({"type": "message_status", "messageId": first["messageId"]}),
    );
    assert_eq!(frames(&out, a)[0]["delivered"], true);
}

#[test]
fn the_rate_limit_refuses_sends_over_the_burst() {
    let mut fx = Fx::with(|c| {
        c.rate_limit = Some(RateLimit {
            per_second: 1.0 / 60.0,
            burst: 2.0,
        })
    });
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (a, _) = fx.hello(&admin, json!({}));
    let to = bob.key.public_hex();
    for i in 0..2 {
        assert!(
            frames(&fx.text(a, &dm(&to, &i.to_string(), "next")), a)[0]
                .get("error")
                .is_none()
        );
    }
    let ack = frames(&fx.text(a, &dm(&to, "3", "next")), a)[0].clone();
    assert!(
        ack["error"].as_str().unwrap().starts_with("rate_limit:"),
        "{ack}"
    );
    assert_eq!(
        (ack["messageId"].as_str(), ack["queued"].as_bool()),
        (Some(""), Some(false))
    );
    let big = json!({"type": "send", "id": "big", "targetSpec": to, "priority": "next", "nonce": "", "ciphertext": "A".repeat(70_000)});
    fx.tick(Duration::from_secs(120));
    let ack = frames(&fx.text(a, &big), a)[0].clone();
    assert!(
        ack["error"]
            .as_str()
            .unwrap()
            .starts_with("payload too large:"),
        "{ack}"
    );
}

#[test]
fn a_failed_commit_turns_acks_into_errors_and_drops_the_pushes() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (a, _) = fx.hello(&admin, json!({}));
    let (b, _) = fx.hello(&bob, json!({}));
    fx.fail.set(true);
    let out = fx.text(a, &dm(&bob.key.public_hex(), "lost", "now"));
    let ack = &frames(&out, a)[0];
    assert_eq!(ack["messageId"], "");
    assert!(
        ack["error"].as_str().unwrap().starts_with("internal:"),
        "{ack}"
    );
    assert!(
        frames(&out, b).is_empty(),
        "no push of a message that is not stored"
    );
    // Space is back: the same request works, and nothing of the failed batch survived.
    fx.fail.set(false);
    let out = fx.text(a, &dm(&bob.key.public_hex(), "kept", "now"));
    assert_eq!(frames(&out, a)[0]["queued"], false);
    let out = fx.text(b, &json!({"type": "inbox_fetch"}));
    let got: Vec<_> = frames(&out, b)[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["ciphertext"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, ["ct-kept"]);
    // The lost push's lease is gone too: its row id, reused by a delivery to someone else, pushes nothing here.
    let carol = fx.join("carol");
    fx.fail.set(true);
    fx.text(a, &dm(&bob.key.public_hex(), "lost-again", "now"));
    fx.fail.set(false);
    fx.text(a, &dm(&carol.key.public_hex(), "for-carol", "now"));
    let out = fx.tick(Duration::from_secs(31));
    let got: Vec<_> = of_type(&frames(&out, b), "push")
        .iter()
        .map(|p| p["ciphertext"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        got,
        ["ct-kept"],
        "only bob's own unacknowledged push comes back"
    );
}

#[test]
fn ban_closes_the_members_connections_and_refuses_its_hellos() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (a, _) = fx.hello(&admin, json!({}));
    let (b, _) = fx.hello(&bob, json!({}));
    let (bs, _) = fx.session(&bob, &Keypair::generate(), json!({}));
    let out = fx.text(
        b,
        &json!({"type": "ban", "target": "Dev Team-owner", "_reqId": "x"}),
    );
    assert_eq!(frames(&out, b)[0]["code"], "forbidden");
    let out = fx.text(a, &json!({"type": "ban", "target": "bob", "_reqId": "x"}));
    assert_eq!(
        frames(&out, a)
            .iter()
            .find(|f| f["type"] == "ban_ack")
            .unwrap()["banned"],
        "bob"
    );
    assert_eq!(closes(&out, b), [(4002, "banned".to_string())]);
    assert_eq!(closes(&out, bs), [(4002, "banned".to_string())]);
    assert_eq!(of_type(&frames(&out, a), "push")[0]["event"], "peer_left");
    let conn = fx.open();
    let f = fx.hello_frame(&bob, json!({}));
    let out = fx.text(conn, &f);
    assert_eq!(frames(&out, conn)[0]["code"], "revoked");
    assert_eq!(closes(&out, conn), [(4002, "revoked".to_string())]);
    let out = fx.text(a, &json!({"type": "unban", "target": "bob", "_reqId": "u"}));
    assert_eq!(frames(&out, a)[0]["unbanned"], "bob");
    fx.hello(&bob, json!({}));
}

#[test]
fn a_dm_to_a_member_key_reaches_its_presences_while_any_is_left_and_none_once_banned() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (a, _) = fx.hello(&admin, json!({}));
    let (b1, _) = fx.hello(&bob, json!({}));
    let (b2, _) = fx.hello(&bob, json!({}));
    let to = bob.key.public_hex();
    let out = fx.text(a, &dm(&to, "1", "now"));
    assert_eq!(frames(&out, a)[0]["queued"], false);
    assert_eq!(of_type(&frames(&out, b1), "push").len(), 1);
    assert_eq!(of_type(&frames(&out, b2), "push").len(), 1);
    // One of two presences gone: the member is still routed to, through the other.
    fx.close(b1, true);
    let out = fx.text(a, &dm(&to, "2", "now"));
    assert_eq!(of_type(&frames(&out, b2), "push").len(), 1);
    // Both gone: the member is offline, and the message waits for it.
    fx.close(b2, true);
    let out = fx.text(a, &dm(&to, "3", "now"));
    let ack = &frames(&out, a)[0];
    assert_eq!(
        (ack["queued"].as_bool(), ack["error"].as_str()),
        (Some(true), None)
    );
    // Banned while connected: the next DM is refused, not stored for it.
    let (b3, _) = fx.hello(&bob, json!({}));
    fx.text(a, &json!({"type": "ban", "target": "bob", "_reqId": "x"}));
    assert!(fx.hub.presences.values().all(|p| p.conn != Some(b3)));
    let out = fx.text(a, &dm(&to, "4", "now"));
    let err = frames(&out, a)[0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(err.contains("unknown target"), "{err}");
    assert!(!fx.hub.by_member_key.keys().any(|(_, k)| *k == to));
}

#[test]
fn a_post_to_a_public_topic_joins_the_poster_and_reaches_its_other_sockets_but_a_private_one_refuses()
 {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (a, _) = fx.hello(&admin, json!({}));
    let (b, _) = fx.hello(&bob, json!({}));
    let (b2, _) = fx.hello(&bob, json!({}));
    for (name, visibility) in [("pub", "public"), ("hr", "private")] {
        let out = fx.text(
            a,
            &json!({"type": "topic_create", "name": name, "visibility": visibility, "_reqId": name}),
        );
        assert_eq!(frames(&out, a)[0]["type"], "topic_created", "{name}");
    }
    let post = |to: &str, id: &str| {
        json!({"type": "send", "id": id, "targetSpec": to, "priority": "now", "nonce": "",
            "ciphertext": "aGVsbG8=", "bodyVersion": 1})
    };
    let out = fx.text(b, &post("#pub", "p1"));
    let ack = &frames(&out, b)[0];
    assert_eq!(
        (ack["type"].as_str(), ack["error"].as_str()),
        (Some("ack"), None),
        "{ack}"
    );
    let at_a = frames(&out, a);
    let pushes = of_type(&at_a, "push");
    assert!(
        pushes.iter().any(|p| p["event"] == "topic_member_joined"),
        "{at_a:?}"
    );
    assert!(
        pushes.iter().any(|p| p["ciphertext"] == "aGVsbG8="),
        "{at_a:?}"
    );
    let at_b2 = frames(&out, b2);
    assert!(
        of_type(&at_b2, "push")
            .iter()
            .any(|p| p["ciphertext"] == "aGVsbG8="),
        "the poster's other socket has its post: {at_b2:?}"
    );
    assert!(of_type(&frames(&out, b), "push").is_empty());
    let out = fx.text(b, &post("#hr", "p2"));
    let err = frames(&out, b)[0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(err.contains("only its members may post"), "{err}");
    assert!(of_type(&frames(&out, a), "push").is_empty());
}

#[test]
fn presence_requests_answer_acks_and_events() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (a, _) = fx.hello(&admin, json!({}));
    let skey = Keypair::generate();
    let (s, _) = fx.session(&bob, &skey, json!({"hostname": "box", "model": "opus"}));
    for (f, rid) in [
        (
            json!({"type": "set_summary", "summary": "fixing the build", "_reqId": "1"}),
            "1",
        ),
        (
            json!({"type": "set_profile", "title": "builder", "_reqId": "2"}),
            "2",
        ),
        (
            json!({"type": "join_group", "name": "ops", "role": "lead", "_reqId": "3"}),
            "3",
        ),
    ] {
        let out = fx.text(s, &f);
        let ack = &frames(&out, s)[0];
        assert_eq!(
            (ack["type"].as_str(), ack["_reqId"].as_str()),
            (Some("ack"), Some(rid))
        );
    }
    let out = fx.text(a, &json!({"type": "list_peers", "_reqId": "l"}));
    let peers = frames(&out, a)[0]["peers"].as_array().unwrap().clone();
    let p = peers
        .iter()
        .find(|p| p["pubkey"] == skey.public_hex().as_str())
        .unwrap();
    assert_eq!(p["summary"], "fixing the build");
    assert_eq!(p["profile"]["title"], "builder");
    assert_eq!(p["groups"], json!([{"name": "ops", "role": "lead"}]));
    assert_eq!(
        (
            p["hostname"].as_str(),
            p["model"].as_str(),
            p["peerRole"].as_str()
        ),
        (Some("box"), Some("opus"), Some("session"))
    );
    assert_eq!(p["memberPubkey"], bob.key.public_hex());
    assert_eq!(p["online"], true);

    let out = fx.text(
        s,
        &json!({"type": "set_visible", "visible": false, "_reqId": "v"}),
    );
    assert_eq!(of_type(&frames(&out, a), "push")[0]["event"], "peer_hidden");
    let out = fx.text(a, &json!({"type": "list_peers"}));
    assert!(
        frames(&out, a)[0]["peers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["pubkey"] != skey.public_hex().as_str())
    );
    let out = fx.text(s, &json!({"type": "list_peers"}));
    assert!(
        frames(&out, s)[0]["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pubkey"] == skey.public_hex().as_str())
    );

    let out = fx.text(a, &json!({"type": "members", "_reqId": "m"}));
    let members = frames(&out, a)[0]["members"].as_array().unwrap().clone();
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| m["online"] == true));
}

#[test]
fn http_routes_check_auth_and_answer_json() {
    let mut fx = Fx::new();
    let (status, v) = fx.http("GET", "/health", &Value::Null);
    assert_eq!(
        (status, v["status"].as_str(), v["store"].as_str()),
        (200, Some("ok"), Some("ok"))
    );
    assert_eq!(
        fx.http("GET", "/nope", &Value::Null),
        (404, json!({"ok": false, "error": "not_found"}))
    );
    let remote: SocketAddr = "10.0.0.1:5555".parse().unwrap();
    let (c, o) = (Keypair::generate(), Keypair::generate());
    let body = create_body("Dev Team", &c, &o);
    assert_eq!(
        fx.http_from("POST", "/cli/mesh/create", &body, remote, &[])
            .0,
        401
    );
    assert_eq!(
        fx.http_from(
            "POST",
            "/cli/mesh/create",
            &body,
            remote,
            &[("authorization", "Bearer nope")]
        )
        .0,
        403
    );
    let (status, v) = fx.http_from(
        "POST",
        "/cli/mesh/create",
        &body,
        remote,
        &[("authorization", "Bearer s3cret")],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["slug"], "dev-team-2");
    assert_eq!(v["member_id"], v["memberId"]);
    let mut forged = create_body("x", &c, &o);
    forged["name"] = "y".into();
    assert_eq!(
        fx.http_from(
            "POST",
            "/cli/mesh/create",
            &forged,
            loopback(),
            &[("authorization", "Bearer s3cret")]
        ),
        (401, json!({"ok": false, "error": "bad_signature"}))
    );
    assert_eq!(
        fx.http("POST", "/cli/mesh/create", &body).0,
        401,
        "a set admin token binds loopback too"
    );

    // /join: idempotent for a member, and every use counted.
    let (token, payload) = fx.invite(1, "member");
    let key = Keypair::generate();
    let join = json!({"invite_token": token, "invite_payload": payload, "peer_pubkey": key.public_hex(), "display_name": "dan"});
    let (s1, v1) = fx.http("POST", "/join", &join);
    let (s2, v2) = fx.http("POST", "/join", &join);
    assert_eq!(
        (s1, s2, v2["alreadyMember"].as_bool()),
        (200, 200, Some(true))
    );
    assert_eq!(v1["memberId"], v2["memberId"]);
    let mut other = join.clone();
    other["peer_pubkey"] = Keypair::generate().public_hex().into();
    assert_eq!(
        fx.http("POST", "/join", &other),
        (400, json!({"ok": false, "error": "invite_exhausted"}))
    );
    let mut unknown = other.clone();
    unknown["invite_token"] = "nope".into();
    assert_eq!(
        fx.http("POST", "/join", &unknown).1["error"],
        "invite_not_found"
    );
    let mut tampered = other.clone();
    tampered["invite_payload"]["role"] = "admin".into();
    assert_eq!(
        fx.http("POST", "/join", &tampered).1["error"],
        "invite_bad_signature"
    );
    assert_eq!(
        fx.http("POST", "/join", &json!({})).1["error"],
        "invite_token, invite_payload, peer_pubkey, display_name required"
    );

    let (status, metrics) = {
        let req = request("GET", "/metrics", &Value::Null, loopback(), &[]);
        let HttpAction::Respond(r) = fx.hub.on_http(&mut fx.io, 1, &req) else {
            panic!()
        };
        (r.status, String::from_utf8(r.body).unwrap())
    };
    assert_eq!(status, 200);
    assert!(
        metrics.contains("claudemesh_deliveries_pending 0"),
        "{metrics}"
    );
}

#[test]
fn files_are_paced_by_acks_and_kept_to_their_recipients() {
    let mut fx = Fx::new();
    let admin = Who {
        key: fx.admin.key.clone(),
        id: fx.admin.id.clone(),
    };
    let (bob, eve) = (fx.join("bob"), fx.join("eve"));
    let (a, _) = fx.hello(&admin, json!({}));
    let (b, _) = fx.hello(&bob, json!({}));
    let (e, _) = fx.hello(&eve, json!({}));
    let one = |fx: &mut Fx, conn: ConnId, v: Value| {
        let out = fx.text(conn, &v);
        let mut f = frames(&out, conn);
        assert_eq!(f.len(), 1, "{f:?}");
        f.remove(0)
    };
    let put = |size: u64, req: &str| {
        json!({"type": "file_put", "name": "x.bin", "size": size, "chunkSize": 1000, "_reqId": req,
               "recipients": [{"pubkey": admin.key.public_hex(), "sealedKey": "a2V5"},
                              {"pubkey": bob.key.public_hex(), "sealedKey": "Ym9i"}]})
    };

    let r = one(&mut fx, a, put(1_000_001, "big"));
    assert_eq!(
        (&r["code"], &r["_reqId"]),
        (&json!("file_too_large"), &json!("big"))
    );
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("at most 1000000 bytes"),
        "{r}"
    );
    let r = one(&mut fx, a, put(20_000, "p"));
    assert_eq!(r["type"], "file_put_ready", "{r}");
    let id = r["fileId"].as_str().unwrap().to_string();
    assert_eq!(one(&mut fx, a, put(10, "again"))["code"], "busy");
    let mut all = Vec::new();
    for seq in 0..20u8 {
        let chunk = vec![seq; 1016];
        all.extend_from_slice(&chunk);
        let c =
            json!({"type": "file_chunk", "fileId": id, "seq": seq, "data": b64::encode(&chunk)});
        assert_eq!(one(&mut fx, a, c)["type"], "file_chunk_ack");
    }
    let sha = crate::crypto::sha256_hex(&all);
    let r = one(
        &mut fx,
        a,
        json!({"type": "file_put_done", "fileId": id, "sha256": sha, "_reqId": "d"}),
    );
    assert_eq!(
        (&r["type"], &r["fileId"]),
        (&json!("file_stored"), &json!(id))
    );

    // eve is refused and sees nothing; bob gets his own sealed key and at most 8 chunks ahead of his acks.
    let get = json!({"type": "file_get", "fileId": id, "_reqId": "g"});
    assert_eq!(one(&mut fx, e, get.clone())["code"], "forbidden");
    let l = one(&mut fx, e, json!({"type": "file_list", "_reqId": "l"}));
    assert_eq!(l["files"], json!([]));
    let out = fx.text(b, &get);
    let f = frames(&out, b);
    assert_eq!(f.len(), 9, "meta and a window of chunks");
    assert_eq!(
        (&f[0]["type"], &f[0]["sealedKey"]),
        (&json!("file_meta"), &json!("Ym9i"))
    );
    assert_eq!(
        (&f[0]["size"], &f[0]["sha256"]),
        (&json!(20_000), &json!(sha))
    );
    assert_eq!(f[8]["seq"], 7);
    let ack = |seq: u64| json!({"type": "file_chunk_ack", "fileId": id, "seq": seq});
    assert_eq!(one(&mut fx, b, ack(0))["seq"], 8);
    let more = frames(&fx.text(b, &ack(7)), b);
    let seqs: Vec<u64> = more.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (9..16).collect::<Vec<_>>());
    let chunk = b64::decode(more[0]["data"].as_str().unwrap()).unwrap();
    assert_eq!(chunk, vec![9u8; 1016]);
    let l = one(&mut fx, b, json!({"type": "file_list", "_reqId": "l"}));
    assert_eq!(
        (&l["files"][0]["id"], &l["files"][0]["recipients"]),
        (&json!(id), &json!(2))
    );

    // Only the uploader or an admin removes it.
    let rm = json!({"type": "file_rm", "fileId": id, "_reqId": "rm"});
    assert_eq!(one(&mut fx, b, rm.clone())["code"], "forbidden");
    assert_eq!(one(&mut fx, a, rm)["type"], "ack");
    assert!(!fx.hub.cfg.data_dir.join("files").join(&id).exists());
    assert_eq!(one(&mut fx, b, get)["code"], "not_found");
}

#[test]
fn an_upload_dropped_with_its_connection_leaves_nothing() {
    let mut fx = Fx::new();
    let admin = Who {
        key: fx.admin.key.clone(),
        id: fx.admin.id.clone(),
    };
    let (a, _) = fx.hello(&admin, json!({}));
    let put = json!({"type": "file_put", "name": "x", "size": 5, "chunkSize": 2, "_reqId": "p",
        "recipients": [{"pubkey": admin.key.public_hex(), "sealedKey": "a2V5"}]});
    let out = fx.text(a, &put);
    let id = frames(&out, a)[0]["fileId"].as_str().unwrap().to_string();
    // Two of the three chunks of a five-byte file at a chunk size of 2: two bytes and a 16-byte tag each.
    for seq in 0..2 {
        let chunk = json!({"type": "file_chunk", "fileId": id, "seq": seq, "data": b64::encode(&[7u8; 18])});
        let out = fx.text(a, &chunk);
        assert_eq!(frames(&out, a)[0]["type"], "file_chunk_ack", "{out:?}");
    }
    let part = fx.hub.cfg.data_dir.join("files").join(format!("{id}.part"));
    if fx.hub.store.keeps_file_data() {
        assert!(!part.exists(), "the chunks are in the store, not on disk");
        assert!(fx.hub.store.file_chunk(&id, 1).unwrap().is_some());
    } else {
        assert!(part.exists());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&part).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
    fx.close(a, false);
    assert!(!part.exists());
    assert!(fx.hub.store.file_chunk(&id, 0).unwrap().is_none());
}

#[test]
fn a_chunk_kept_in_the_store_is_acknowledged_only_once_it_is_committed() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let (a, _) = fx.hello(&admin, json!({}));
    let put = json!({"type": "file_put", "name": "x", "size": 2, "chunkSize": 2, "_reqId": "p",
        "recipients": [{"pubkey": admin.key.public_hex(), "sealedKey": "a2V5"}]});
    let out = fx.text(a, &put);
    let id = frames(&out, a)[0]["fileId"].as_str().unwrap().to_string();
    fx.fail.set(true);
    let chunk =
        json!({"type": "file_chunk", "fileId": id, "seq": 0, "data": b64::encode(&[7u8; 18])});
    let got = frames(&fx.text(a, &chunk), a)[0].clone();
    fx.fail.set(false);
    if fx.hub.store.keeps_file_data() {
        // The chunk went with the batch: the uploader hears so, not that it was kept.
        assert_eq!(got["type"], "error", "{got}");
        assert!(fx.hub.store.file_chunk(&id, 0).unwrap().is_none());
    } else {
        // On disk the chunk does not wait for the store.
        assert_eq!(got["type"], "file_chunk_ack", "{got}");
    }
}

#[test]
fn task_and_context_events_reach_the_others_once_committed_and_never_when_lost() {
    let first_push = |out: &[Output], c: ConnId| of_type(&frames(out, c), "push")[0].clone();
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (a, _) = fx.hello(&admin, json!({}));
    let (b, _) = fx.hello(&bob, json!({}));
    let out = fx.text(
        a,
        &json!({"type": "create_task", "title": "fix it", "_reqId": "c"}),
    );
    let id = frames(&out, a)[0]["id"].as_str().unwrap().to_string();
    let ev = first_push(&out, b);
    assert_eq!(
        (&ev["event"], &ev["eventData"]["id"], &ev["eventData"]["by"]),
        (&json!("task_created"), &json!(id), &json!("Dev Team-owner"))
    );
    assert_eq!(ev["eventData"]["creatorMemberId"], fx.admin.id.as_str());
    assert!(
        of_type(&frames(&out, a), "push").is_empty(),
        "the maker is answered, not told"
    );
    // A lost batch: the claimer gets an error, and nobody hears of a claim that did not happen.
    fx.fail.set(true);
    let out = fx.text(
        b,
        &json!({"type": "claim_task", "taskId": id, "_reqId": "k"}),
    );
    assert_eq!(frames(&out, b)[0]["code"], "internal");
    assert!(frames(&out, a).is_empty());
    let share = json!({"type": "share_context", "summary": "notes", "_reqId": "s"});
    let out = fx.text(b, &share);
    assert_eq!(frames(&out, b)[0]["code"], "internal");
    assert!(frames(&out, a).is_empty());
    fx.fail.set(false);
    let out = fx.text(
        b,
        &json!({"type": "claim_task", "taskId": id, "_reqId": "k"}),
    );
    assert_eq!(frames(&out, b)[0]["type"], "task_list");
    let ev = first_push(&out, a);
    assert_eq!(
        (&ev["event"], &ev["eventData"]["claimedBy"]),
        (&json!("task_claimed"), &json!("bob"))
    );
    let out = fx.text(b, &share);
    assert_eq!(frames(&out, b)[0]["replaced"], false);
    let ev = first_push(&out, a);
    assert_eq!(
        (&ev["event"], &ev["eventData"]["summary"]),
        (&json!("context_shared"), &json!("notes"))
    );
}

#[test]
fn state_changes_go_out_after_the_commit_and_conflicts_name_the_version() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (a, _) = fx.hello(&admin, json!({}));
    let (b, _) = fx.hello(&bob, json!({}));
    let set = |v: i64, expected: Value| json!({"type": "set_state", "key": "k", "value": v, "expectedVersion": expected, "_reqId": "s"});
    let out = fx.text(a, &set(1, json!(0)));
    let r = &frames(&out, a)[0];
    assert_eq!(
        (r["type"].as_str(), r["version"].as_i64()),
        (Some("state_result"), Some(1))
    );
    let change = &frames(&out, b)[0];
    assert_eq!(
        (
            change["type"].as_str(),
            change["value"].as_i64(),
            change["updatedBy"].as_str()
        ),
        (Some("state_change"), Some(1), Some("Dev Team-owner"))
    );
    let out = fx.text(b, &set(2, json!(0)));
    let e = &frames(&out, b)[0];
    assert_eq!(
        (
            e["code"].as_str(),
            e["version"].as_i64(),
            e["_reqId"].as_str()
        ),
        (Some("version_conflict"), Some(1), Some("s"))
    );
    assert!(
        frames(&out, a).is_empty(),
        "a refused write changes nothing"
    );
    // A lost batch: the writer gets an error, and nobody hears of a change that did not happen.
    fx.fail.set(true);
    let out = fx.text(b, &set(2, json!(1)));
    assert_eq!(frames(&out, b)[0]["code"], "internal");
    assert!(frames(&out, a).is_empty());
    fx.fail.set(false);
    let out = fx.text(b, &json!({"type": "get_state", "key": "k", "_reqId": "g"}));
    assert_eq!(frames(&out, b)[0]["version"], 1);
}

#[test]
fn a_scheduled_message_lost_with_its_batch_fires_again_and_then_never() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (a, _) = fx.hello(&admin, json!({}));
    let (b, _) = fx.hello(&bob, json!({}));
    let schedule = json!({"type": "schedule", "to": bob.key.public_hex(), "deliverAt": now_ms() - 1,
        "nonce": "bm9uY2U=", "ciphertext": "c2VhbGVk", "_reqId": "r"});
    let out = fx.text(a, &schedule);
    let ack = &frames(&out, a)[0];
    assert_eq!(ack["type"], "scheduled_ack", "{ack}");
    assert!(fx.hub.next_deadline().is_some());
    fx.fail.set(true);
    let out = fx.tick(Duration::from_millis(10));
    assert!(
        frames(&out, b).is_empty(),
        "no push of a fire that was not stored"
    );
    fx.fail.set(false);
    let out = fx.tick(Duration::from_millis(10));
    let pushes = frames(&out, b);
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    assert_eq!(
        (
            pushes[0]["subtype"].as_str(),
            pushes[0]["ciphertext"].as_str(),
            pushes[0]["priority"].as_str()
        ),
        (Some("reminder"), Some("c2VhbGVk"), Some("now"))
    );
    assert!(frames(&fx.tick(Duration::from_secs(1)), b).is_empty());
    assert_eq!(fx.hub.next_deadline(), None, "nothing left to fire");
    let out = fx.text(a, &json!({"type": "list_scheduled", "_reqId": "l"}));
    assert_eq!(frames(&out, a)[0]["messages"], json!([]));
}

/// Scheduled messages once went through a copy of the send path whose broadcast skipped no one: a peer that hid
/// itself from a `*` send still got the same `*` as a reminder. Both now go through one fan-out.
#[test]
fn a_scheduled_broadcast_reaches_whom_the_same_send_reaches() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let carol = fx.join("carol");
    let dave = fx.join("dave");
    let (a, _) = fx.hello(&admin, json!({}));
    let (b, _) = fx.hello(&bob, json!({"status": "working"}));
    let (c, _) = fx.hello(&carol, json!({}));
    let out = fx.text(
        c,
        &json!({"type": "set_visible", "visible": false, "_reqId": "v"}),
    );
    assert_eq!(frames(&out, c)[0]["type"], "ack", "{out:?}");
    let out = fx.text(b, &json!({"type": "set_status", "status": "working"}));
    assert!(frames(&out, b).is_empty(), "{out:?}");

    let send = json!({"type": "send", "id": "s1", "targetSpec": "*", "priority": "now", "nonce": "",
        "ciphertext": "c2VudA=="});
    let out = fx.text(a, &send);
    let sent = (
        of_type(&frames(&out, b), "push").len(),
        of_type(&frames(&out, c), "push").len(),
    );
    assert_eq!(
        sent,
        (1, 0),
        "the send: busy bob gets a `now`, hidden carol nothing"
    );

    let schedule = json!({"type": "schedule", "to": "*", "deliverAt": now_ms() - 1, "message": "due",
        "_reqId": "r"});
    let out = fx.text(a, &schedule);
    assert_eq!(frames(&out, a)[0]["type"], "scheduled_ack", "{out:?}");
    let out = fx.tick(Duration::from_millis(10));
    let bob_got = of_type(&frames(&out, b), "push")
        .iter()
        .map(|p| (p["ciphertext"].clone(), p["subtype"].clone()))
        .collect::<Vec<_>>();
    assert_eq!(bob_got, [(json!(b64::encode(b"due")), json!("reminder"))]);
    assert!(
        of_type(&frames(&out, c), "push").is_empty(),
        "the reminder skips hidden carol as the send did"
    );

    // Offline dave was stored both ones, and gets them in order when he comes.
    let (d, out) = fx.hello(&dave, json!({}));
    let got = of_type(&frames(&out, d), "push")
        .iter()
        .map(|p| p["ciphertext"].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>();
    assert_eq!(got, ["c2VudA==".to_string(), b64::encode(b"due")]);
}

/// The clock in ms, never twice the same in this process: the broker accepts each signed hello once.
pub fn hello_ts() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = now_ms();
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(prev + 1)
}

#[test]
fn a_block_whose_commit_fails_is_forgotten_with_it() {
    let mut fx = Fx::new();
    let admin = fx.admin_who();
    let bob = fx.join("bob");
    let (a, _) = fx.hello(&admin, json!({}));
    let (b, _) = fx.hello(&bob, json!({}));
    let block = json!({"type": "grant_block", "peer": bob.key.public_hex(), "blocked": true, "_reqId": "g"});
    fx.fail.set(true);
    let out = fx.text(a, &block);
    assert_eq!(frames(&out, a)[0]["type"], "error", "{:?}", frames(&out, a));
    fx.fail.set(false);
    // Not stored, so not held in memory either: bob's DM goes through.
    let out = fx.text(b, &dm(&admin.key.public_hex(), "1", "next"));
    assert!(
        frames(&out, b)[0]["error"].is_null(),
        "{:?}",
        frames(&out, b)
    );
    // Stored: refused.
    let out = fx.text(a, &block);
    assert_eq!(frames(&out, a)[0]["type"], "grant_state");
    let out = fx.text(b, &dm(&admin.key.public_hex(), "2", "next"));
    assert_eq!(
        frames(&out, b)[0]["error"],
        "blocked by recipient grants (sender lacks dm capability)"
    );
}

/// The same tests on PostgreSQL.
#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    /// Runs `test` with its fixture's store in a fresh PostgreSQL schema; skips without a server (outside CI).
    fn on_postgres(test: fn()) {
        let Some(config) = crate::broker::store::pg::testdb::fresh_schema("h") else {
            return;
        };
        ON_POSTGRES.with(|c| c.set(Some(Box::new(config))));
        test();
        assert!(
            ON_POSTGRES.with(Cell::take).is_none(),
            "the fixture opened SQLite"
        );
    }

    #[test]
    fn hello_ack_and_session_state_errors() {
        on_postgres(super::hello_ack_and_session_state_errors);
    }

    #[test]
    fn hello_refusals_close_with_the_right_codes() {
        on_postgres(super::hello_refusals_close_with_the_right_codes);
    }

    #[test]
    fn capacity_counts_live_presences_and_frees_them() {
        on_postgres(super::capacity_counts_live_presences_and_frees_them);
    }

    #[test]
    fn session_presence_lifecycle_joined_grace_reattach_replace_left() {
        on_postgres(super::session_presence_lifecycle_joined_grace_reattach_replace_left);
    }

    #[test]
    fn dm_to_an_offline_member_is_queued_then_pushed_acked_and_not_redelivered() {
        on_postgres(super::dm_to_an_offline_member_is_queued_then_pushed_acked_and_not_redelivered);
    }

    #[test]
    fn live_dm_to_a_member_reaches_every_connection_but_the_senders_socket() {
        on_postgres(super::live_dm_to_a_member_reaches_every_connection_but_the_senders_socket);
    }

    #[test]
    fn dm_to_a_session_key_reaches_that_session_and_waits_for_it_when_offline() {
        on_postgres(super::dm_to_a_session_key_reaches_that_session_and_waits_for_it_when_offline);
    }

    #[test]
    fn priority_gating_holds_next_for_busy_peers_and_never_pushes_low() {
        on_postgres(super::priority_gating_holds_next_for_busy_peers_and_never_pushes_low);
    }

    #[test]
    fn inbox_fetch_waits_for_a_delivery_or_the_deadline() {
        on_postgres(super::inbox_fetch_waits_for_a_delivery_or_the_deadline);
    }

    #[test]
    fn broadcasts_with_copies_store_one_row_per_recipient_and_compat_sends_reach_groups() {
        on_postgres(
            super::broadcasts_with_copies_store_one_row_per_recipient_and_compat_sends_reach_groups,
        );
    }

    #[test]
    fn a_repeated_client_message_id_is_stored_once() {
        on_postgres(super::a_repeated_client_message_id_is_stored_once);
    }

    #[test]
    fn the_rate_limit_refuses_sends_over_the_burst() {
        on_postgres(super::the_rate_limit_refuses_sends_over_the_burst);
    }

    #[test]
    fn a_failed_commit_turns_acks_into_errors_and_drops_the_pushes() {
        on_postgres(super::a_failed_commit_turns_acks_into_errors_and_drops_the_pushes);
    }

    #[test]
    fn ban_closes_the_members_connections_and_refuses_its_hellos() {
        on_postgres(super::ban_closes_the_members_connections_and_refuses_its_hellos);
    }

    #[test]
    fn presence_requests_answer_acks_and_events() {
        on_postgres(super::presence_requests_answer_acks_and_events);
    }

    #[test]
    fn http_routes_check_auth_and_answer_json() {
        on_postgres(super::http_routes_check_auth_and_answer_json);
    }

    #[test]
    fn files_are_paced_by_acks_and_kept_to_their_recipients() {
        on_postgres(super::files_are_paced_by_acks_and_kept_to_their_recipients);
    }

    #[test]
    fn an_upload_dropped_with_its_connection_leaves_nothing() {
        on_postgres(super::an_upload_dropped_with_its_connection_leaves_nothing);
    }

    #[test]
    fn a_chunk_kept_in_the_store_is_acknowledged_only_once_it_is_committed() {
        on_postgres(super::a_chunk_kept_in_the_store_is_acknowledged_only_once_it_is_committed);
    }

    #[test]
    fn state_changes_go_out_after_the_commit_and_conflicts_name_the_version() {
        on_postgres(super::state_changes_go_out_after_the_commit_and_conflicts_name_the_version);
    }

    #[test]
    fn a_scheduled_message_lost_with_its_batch_fires_again_and_then_never() {
        on_postgres(super::a_scheduled_message_lost_with_its_batch_fires_again_and_then_never);
    }

    #[test]
    fn a_scheduled_broadcast_reaches_whom_the_same_send_reaches() {
        on_postgres(super::a_scheduled_broadcast_reaches_whom_the_same_send_reaches);
    }

    #[test]
    fn task_and_context_events_reach_the_others_once_committed_and_never_when_lost() {
        on_postgres(
            super::task_and_context_events_reach_the_others_once_committed_and_never_when_lost,
        );
    }

    #[test]
    fn a_block_whose_commit_fails_is_forgotten_with_it() {
        on_postgres(super::a_block_whose_commit_fails_is_forgotten_with_it);
    }
}
