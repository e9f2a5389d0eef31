//! The client library against a real cm-broker: Conn round trips, Session across broker restarts, resend dedupe,
//! and attestations that expire between reconnects.

use std::time::Duration;

use claudemesh::client::rest;
use claudemesh::client::{Conn, ConnOpts, Event, Session, SessionAuth, SessionOpts, decode_push};
use claudemesh::config::MeshEntry;
use claudemesh::crypto::{Keypair, encrypt_dm};
use claudemesh::wire::{Frame, InboxFetch, ListPeers, Priority, SendMessage};

use crate::harness::{Broker, Mesh, TempDir};

fn url(b: &Broker) -> String {
    format!("ws://{}/ws", b.addr)
}

/// The config entry a member of `mesh` would have.
fn entry(b: &Broker, mesh: &Mesh, key: &Keypair, member_id: &str, name: &str) -> MeshEntry {
    MeshEntry {
        mesh_id: mesh.id.clone(),
        member_id: member_id.to_string(),
        slug: mesh.slug.clone(),
        name: name.to_string(),
        pubkey: key.public_hex(),
        secret_key: key.secret_hex(),
        broker_url: url(b),
        broker_urls: Vec::new(),
        joined_at: String::new(),
        root_key: None,
        invite_version: Some(1),
        extra: Default::default(),
    }
}

/// A mesh whose admin is the first entry, and one joined member per name after it.
fn mesh(b: &Broker, names: &[&str]) -> Vec<MeshEntry> {
    let m = Mesh::create(b, "test");
    let mut out = vec![entry(b, &m, &m.admin.key, &m.admin.id, "admin")];
    for name in names {
        let j = m.join(b, name);
        out.push(entry(b, &m, &j.key, &j.id, name));
    }
    out
}

fn keys(m: &MeshEntry) -> Keypair {
    Keypair::from_secret_hex(&m.secret_key).unwrap()
}

/// A DM from `from` (speaking as `sender`) to the key `to`.
fn dm(sender: &Keypair, to: &str, text: &str, cmid: Option<&str>) -> SendMessage {
    let (nonce, ciphertext) = encrypt_dm(text.as_bytes(), to, sender).unwrap();
    SendMessage {
        target_spec: to.to_string(),
        priority: Priority::Now,
        nonce,
        ciphertext,
        client_message_id: cmid.map(str::to_string),
        ..SendMessage::default()
    }
}

fn next(s: &Session) -> Event {
    s.events()
        .recv_timeout(Duration::from_secs(20))
        .expect("an event within 20 s")
}

/// Skips events until one matches, failing on `Closed`.
fn until(s: &Session, what: &str, want: impl Fn(&Event) -> bool) -> Event {
    loop {
        let e = next(s);
        if want(&e) {
            return e;
        }
        assert!(
            !matches!(e, Event::Closed),
            "session closed waiting for {what}"
        );
    }
}

fn connected(s: &Session) {
    until(s, "Connected", |e| matches!(e, Event::Connected { .. }));
}

/// Pending inbox of a pull connection, as texts.
fn inbox_texts(conn: &mut Conn, me: &Keypair, slug: &str) -> Vec<(String, Option<String>)> {
    let Frame::Inbox(inbox) = conn.request(InboxFetch::default()).unwrap() else {
        panic!("inbox_fetch answered with something else")
    };
    inbox
        .messages
        .iter()
        .map(|p| (p.message_id.clone(), decode_push(p, slug, me, None).text))
        .collect()
}

#[test]
fn conn_dm_round_trip() {
    let dir = TempDir::new("client-conn");
    let broker = Broker::start(&dir, &[]);
    let m = mesh(&broker, &["bob"]);
    let (alice, bob) = (&m[0], &m[1]);

    let mut a = Conn::open(alice, &ConnOpts::default()).unwrap();
    assert!(!a.hello_ack().presence_id.is_empty());
    let ack = a
        .send(dm(a.sender(), &bob.pubkey, "hello bob", None))
        .unwrap();
    assert!(!ack.message_id.is_empty());
    assert!(ack.queued, "bob has no connection, so the DM is stored");
    a.close();

    let mut b = Conn::open(bob, &ConnOpts::default()).unwrap();
    let got = inbox_texts(&mut b, &keys(bob), &bob.slug);
    assert_eq!(
        got,
        vec![(ack.message_id.clone(), Some("hello bob".into()))]
    );
    b.client_ack(&ack.message_id).unwrap();
    assert!(inbox_texts(&mut b, &keys(bob), &bob.slug).is_empty());

    // A refused request maps to a code; a peer list is a request like any other.
    assert!(matches!(
        b.request(ListPeers::default()).unwrap(),
        Frame::PeersList(_)
    ));
    let e = b
        .send(dm(
            b.sender(),
            &Keypair::generate().public_hex(),
            "nobody",
            None,
        ))
        .unwrap_err();
    assert_eq!(e.code, claudemesh::error::Code::NotFound, "{}", e.msg);
    b.close();
}

#[test]
fn unreachable_and_refused() {
    let dir = TempDir::new("client-refused");
    let broker = Broker::start(&dir, &[]);
    let m = mesh(&broker, &[]);
    let mut stranger = m[0].clone();
    let kp = Keypair::generate();
    stranger.pubkey = kp.public_hex();
    stranger.secret_key = kp.secret_hex();
    let e = Conn::open(&stranger, &ConnOpts::default()).err().unwrap();
    assert_eq!(e.code, claudemesh::error::Code::Auth);
    assert!(
        e.msg.starts_with("broker refused hello: unauthorized"),
        "{}",
        e.msg
    );

    let at = url(&broker);
    broker.kill();
    let e = Conn::open(&m[0], &ConnOpts::default()).err().unwrap();
    assert_eq!(e.code, claudemesh::error::Code::Network);
    assert_eq!(
        e.msg,
        format!("cannot reach broker at {at}: connection refused")
    );

    // The REST calls say the same, with the HTTP address.
    let e = rest::health(&at).unwrap_err();
    assert_eq!(e.code, claudemesh::error::Code::Network);
    let http = at.replace("ws://", "http://").replace("/ws", "");
    assert_eq!(
        e.msg,
        format!("cannot reach broker at {http}: connection refused")
    );
}

#[test]
fn session_survives_a_broker_restart_and_delivers_once() {
    let dir = TempDir::new("client-restart");
    let broker = Broker::start(&dir, &[]);
    let m = mesh(&broker, &["bob"]);
    let (alice, bob) = (&m[0], &m[1]);
    let bob_session = Keypair::generate();
    let a = Session::start(alice, SessionOpts::default()).unwrap();
    let mut opts = SessionOpts::default();
    opts.conn.session = Some(SessionAuth {
        session: bob_session.clone(),
    });
    let b = Session::start(bob, opts).unwrap();
    connected(&a);
    connected(&b);

    let (addr, data) = (broker.addr, broker.data.clone());
    broker.kill();
    for s in [&a, &b] {
        match until(s, "Disconnected", |e| {
            matches!(e, Event::Disconnected { .. })
        }) {
            Event::Disconnected { retry_in, .. } => assert!(retry_in.is_some()),
            _ => unreachable!(),
        }
    }
    // Sent while the broker is down: held, then sent after the reconnect.
    let cmid = a.send(dm(
        a.sender(),
        &bob_session.public_hex(),
        "while you were out",
        None,
    ));
    let _broker = Broker::start_in(&data, &["--listen", &addr.to_string()]);

    let first = match until(&a, "Acked", |e| {
        matches!(e, Event::Acked { .. } | Event::Failed { .. })
    }) {
        Event::Acked {
            client_message_id,
            ack,
        } => {
            assert_eq!(client_message_id, cmid);
            ack.message_id
        }
        e => panic!("expected Acked, got {e:?}"),
    };
    let got = match until(&b, "Message", |e| matches!(e, Event::Message(_))) {
        Event::Message(m) => m,
        _ => unreachable!(),
    };
    assert_eq!(got.id, first);
    assert_eq!(got.text.as_deref(), Some("while you were out"));
    assert_eq!(
        got.from.member_pubkey.as_deref(),
        Some(alice.pubkey.as_str())
    );
    b.ack(&got.id);

    // The next message is the next thing bob sees: the first did not come twice.
    a.send(dm(a.sender(), &bob_session.public_hex(), "marker", None));
    match until(&b, "Message", |e| matches!(e, Event::Message(_))) {
        Event::Message(m) => assert_eq!(m.text.as_deref(), Some("marker")),
        _ => unreachable!(),
    }
    a.close();
    b.close();
}

#[test]
fn a_repeated_send_is_stored_once() {
    let dir = TempDir::new("client-dedupe");
    let broker = Broker::start(&dir, &[]);
    let m = mesh(&broker, &["bob"]);
    let (alice, bob) = (&m[0], &m[1]);
    let mut a = Conn::open(alice, &ConnOpts::default()).unwrap();
    let first = a
        .send(dm(a.sender(), &bob.pubkey, "once", Some("retry-me")))
        .unwrap();
    // The same send again, as a client that lost the ack would retry it (on a new socket).
    a.close();
    let mut a = Conn::open(alice, &ConnOpts::default()).unwrap();
    let again = a
        .send(dm(a.sender(), &bob.pubkey, "once", Some("retry-me")))
        .unwrap();
    assert_eq!(again.message_id, first.message_id);
    assert_eq!(again.duplicate, Some(true));
    a.close();

    let mut b = Conn::open(bob, &ConnOpts::default()).unwrap();
    let got = inbox_texts(&mut b, &keys(bob), &bob.slug);
    assert_eq!(got, vec![(first.message_id, Some("once".into()))]);
}

#[test]
fn short_attestations_are_minted_again_at_every_connect() {
    let dir = TempDir::new("client-ttl");
    let broker = Broker::start(&dir, &[]);
    let m = mesh(&broker, &[]);
    let ttl = Duration::from_secs(2);
    let mut opts = SessionOpts {
        attestation_ttl: ttl,
        ..SessionOpts::default()
    };
    opts.conn.session = Some(SessionAuth {
        session: Keypair::generate(),
    });
    let s = Session::start(&m[0], opts).unwrap();
    connected(&s);
    for _ in 0..3 {
        // Outlive the attestation of the current connection: the premise of the test, not a synchronisation.
        std::thread::sleep(ttl + Duration::from_millis(200));
        s.reconnect();
        // Exactly a drop and a connect: a replayed attestation would be refused with `expired` here.
        match next(&s) {
            Event::Disconnected {
                reason,
                retry_in: Some(_),
            } => assert_eq!(reason, "reconnect requested"),
            e => panic!("expected the requested drop, got {e:?}"),
        }
        match next(&s) {
            Event::Connected { .. } => {}
            e => panic!("expected to connect again, got {e:?}"),
        }
        assert!(matches!(
            s.request(ListPeers::default()).unwrap(),
            Frame::PeersList(_)
        ));
    }
    s.close();
}

#[test]
fn rest_calls() {
    let dir = TempDir::new("client-rest");
    let broker = Broker::start(&dir, &[]);
    let at = url(&broker);
    let (health, latency) = rest::health(&at).unwrap();
    assert_eq!(health["status"], "ok");
    assert!(latency < Duration::from_secs(10));

    let (creator, owner) = (Keypair::generate(), Keypair::generate());
    let m = rest::create_mesh(
        &at,
        &creator,
        &owner.public_hex(),
        "Team",
        Some("ann"),
        None,
    )
    .unwrap();
    assert!(!m.id.is_empty() && !m.member_id.is_empty() && !m.slug.is_empty());
    assert_eq!(m.name, "Team");

    let inv = claudemesh::invite::make(
        &owner,
        &m.id,
        &m.slug,
        &at,
        claudemesh::time::now_ms() / 1000 + 3600,
        &claudemesh::crypto::b64::encode_url(&[7u8; 32]),
        "member",
    )
    .unwrap();
    // Signed by a key that does not own the mesh: refused.
    let e = rest::register_invite(&at, &m.id, &creator, &inv.token, 5).unwrap_err();
    assert_eq!(e.code, claudemesh::error::Code::Auth, "{}", e.msg);
    rest::register_invite(&at, &m.id, &owner, &inv.token, 5).unwrap();
    let e = rest::register_invite(&at, &m.id, &owner, &inv.token, 5).unwrap_err();
    assert_eq!(e.code, claudemesh::error::Code::Exists, "{}", e.msg);

    let payload = serde_json::to_value(&inv.payload).unwrap();
    let bob = Keypair::generate();
    let j = rest::join(&at, &inv.token, &payload, &bob.public_hex(), "bob").unwrap();
    assert!(!j.already_member);
    let again = rest::join(&at, &inv.token, &payload, &bob.public_hex(), "bob").unwrap();
    assert_eq!(again.member_id, j.member_id);
    assert!(again.already_member);

    let e = rest::join(
        &at,
        "not-a-registered-token",
        &payload,
        &bob.public_hex(),
        "x",
    )
    .unwrap_err();
    assert_eq!(e.code, claudemesh::error::Code::Usage);
    assert_eq!(e.msg, "broker refused: invite_not_found");
}
