//! `cm-file` against a real `cm-broker`: a 20 MB round trip in small memory, access for recipients only, no
//! plaintext in the broker's data directory, the size limit, removal, and abandoned uploads.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use claudemesh::crypto::{Keypair, b64, sha256};
use claudemesh::files::FileKey;
use serde_json::json;

use crate::harness::{self, Broker, TempDir};
use crate::peer::{Peer, Run};

const MARKER: &[u8] = b"CLAUDEMESH-FILE-PLAINTEXT-MARKER-7f3a9c:";

/// `size` bytes of the marker repeated, with a counter so no two chunks are alike.
fn marked_file(path: &Path, size: usize) {
    let mut data = Vec::with_capacity(size);
    let mut n = 0u64;
    while data.len() < size {
        data.extend_from_slice(MARKER);
        data.extend_from_slice(format!("{n:012}\n").as_bytes());
        n += 1;
    }
    data.truncate(size);
    std::fs::write(path, data).unwrap();
}

/// Runs `bin args` as `peer` and returns what it left and its peak resident memory in KiB: the kernel's
/// high-water mark (`VmHWM`), read every few milliseconds until the process exits. (`wait4`'s `ru_maxrss` would
/// not do: it counts the test process's own memory, which the child shared until its `exec`.)
fn measured(peer: &Peer, bin: &str, args: &[&str]) -> (Run, u64) {
    let mut child = peer
        .cmd(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let status_file = format!("/proc/{}/status", child.id());
    let (mut peak, mut samples) = (0u64, 0);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        let hwm = std::fs::read_to_string(&status_file)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
        if let Some(h) = hwm {
            peak = peak.max(h);
            samples += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(samples > 0, "{bin} exited before its memory was read");
    let run = Run {
        code: status.code(),
        out: out.join().unwrap(),
        err: err.join().unwrap(),
    };
    (run, peak)
}

/// Every regular file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn by<'a>(peers: &'a [Peer], name: &str) -> &'a Peer {
    peers.iter().find(|p| p.name == name).unwrap()
}

/// The sealed keys the broker stores for a file.
fn sealed_keys(b: &Broker, id: &str) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(b.data.join("broker.db")).unwrap();
    let mut s = db
        .prepare("SELECT recipient_pubkey, sealed_key FROM file_keys WHERE file_id = ?1")
        .unwrap();
    s.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn twenty_megabytes_round_trip_in_small_memory_for_recipients_only() {
    let dir = TempDir::new("files");
    let b = Broker::start(&dir, &[]);
    let peers = harness::Mesh::new(&b, &["alice", "bob", "eve"]);
    let (alice, bob, eve) = (by(&peers, "alice"), by(&peers, "bob"), by(&peers, "eve"));
    let src = dir.0.join("report.bin");
    marked_file(&src, 20 * 1024 * 1024);
    let want = sha256(&std::fs::read(&src).unwrap());

    let (put, put_rss) = measured(
        alice,
        "cm-file",
        &["put", src.to_str().unwrap(), "--to", "bob", "--json"],
    );
    let stored = put.ok().remove(0);
    assert_eq!(stored["type"], "file_stored", "{stored}");
    assert_eq!(stored["name"], "report.bin");
    assert_eq!(stored["size"], 20 * 1024 * 1024);
    assert_eq!(stored["recipients"], 2, "bob and alice herself");
    assert_eq!(stored["notified"], true);
    let id = stored["id"].as_str().unwrap().to_string();

    // bob is told, and fetches it byte for byte.
    let inbox = bob.inbox();
    let note = inbox[0]["text"].as_str().unwrap();
    assert!(
        note.starts_with("📎 report.bin (21.0 MB)") && note.ends_with(&format!("cm-file get {id}")),
        "{note}"
    );
    let out = dir.0.join("bob-copy.bin");
    let (get, get_rss) = measured(
        bob,
        "cm-file",
        &["get", &id, "-o", out.to_str().unwrap(), "--json"],
    );
    let saved = get.ok().remove(0);
    assert_eq!(saved["type"], "file_saved");
    assert_eq!(saved["path"], out.to_str().unwrap());
    assert_eq!(sha256(&std::fs::read(&out).unwrap()), want);
    for (who, rss) in [("put", put_rss), ("get", get_rss)] {
        assert!(
            rss > 0 && rss < 20 * 1024,
            "cm-file {who} peaked at {rss} KiB"
        );
    }
    // eve is refused, and the raw ciphertext and sealed keys are of no use to her.
    let r = eve.run(
        "cm-file",
        &["get", &id, "-o", dir.0.join("eve").to_str().unwrap()],
    );
    assert_eq!(r.code, Some(7), "{}", r.err);
    assert!(r.err.contains("not shared with you"), "{}", r.err);
    assert!(!dir.0.join("eve").exists());
    let keys = sealed_keys(&b, &id);
    assert_eq!(keys.len(), 2);
    for (_, sealed) in &keys {
        assert!(FileKey::open_sealed(sealed, &[&eve.key, &Keypair::generate()]).is_err());
    }
    let bobs = keys.iter().find(|(k, _)| *k == bob.pubkey()).unwrap();
    let raw = std::fs::read(b.data.join("files").join(&id)).unwrap();
    let first = &raw[..claudemesh::files::CHUNK + 16];
    let fk = FileKey::open_sealed(&bobs.1, &[&bob.key]).unwrap();
    assert!(contains(&fk.open_chunk(0, false, first).unwrap(), MARKER));
    assert!(FileKey::generate().open_chunk(0, false, first).is_err());

    // The broker's data directory holds no plaintext, and its files are private.
    let files_dir = b.data.join("files");
    assert_eq!(
        std::fs::metadata(&files_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(files_dir.join(&id))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let stored_bytes = std::fs::metadata(files_dir.join(&id)).unwrap().len();
    assert_eq!(
        stored_bytes,
        20 * 1024 * 1024 + 16 * claudemesh::files::chunk_count(20 * 1024 * 1024)
    );
    for f in walk(&b.data) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!contains(&bytes, MARKER), "plaintext in {}", f.display());
    }

    // Lists: the uploader and the recipient see it, eve does not.
    for p in [alice, bob] {
        let l = p.run("cm-file", &["list", "--json"]).ok();
        assert_eq!(l.len(), 1, "{l:?}");
        assert_eq!(l[0]["id"], id.as_str());
        assert_eq!(l[0]["uploaded_by"], "alice");
        assert_eq!(l[0]["size"], 20 * 1024 * 1024);
    }
    assert!(eve.run("cm-file", &["list", "--json"]).ok().is_empty());
    let human = bob.run("cm-file", &["list"]);
    assert!(
        human.out.contains("report.bin") && human.out.contains("from alice"),
        "{}",
        human.out
    );

    // Only the uploader (or an admin) removes it; then it is gone everywhere.
    let r = bob.run("cm-file", &["rm", &id]);
    assert_eq!(r.code, Some(7), "{}", r.err);
    let r = alice.run("cm-file", &["rm", &id, "--json"]).ok();
    assert_eq!(r[0]["type"], "file_removed");
    assert!(!files_dir.join(&id).exists());
    assert!(alice.run("cm-file", &["list", "--json"]).ok().is_empty());
    let r = bob.run(
        "cm-file",
        &["get", &id, "-o", dir.0.join("gone").to_str().unwrap()],
    );
    assert_eq!(r.code, Some(5), "{}", r.err);
}

#[test]
fn a_file_for_yourself_a_group_and_the_name_it_is_saved_under() {
    let dir = TempDir::new("files-own");
    let b = Broker::start(&dir, &[]);
    let peers = harness::Mesh::new(&b, &["alice", "bob"]);
    let (alice, bob) = (by(&peers, "alice"), by(&peers, "bob"));
    let src = dir.0.join("notes.txt");
    std::fs::write(&src, b"just for me\n").unwrap();
    let r = alice.run("cm-file", &["put", src.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert!(r.out.contains("for you only"), "{}", r.out);
    let id = r
        .out
        .split(" as ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let r = bob.run("cm-file", &["get", &id]);
    assert_eq!(r.code, Some(7), "{}", r.err);

    // The first characters of the id do, as for reminders, API keys and topic messages.
    let by_prefix = dir.0.join("by-prefix.txt");
    let r = alice.run(
        "cm-file",
        &["get", &id[..8], "-o", by_prefix.to_str().unwrap()],
    );
    assert_eq!(r.code, Some(0), "{}", r.err);
    assert_eq!(std::fs::read(&by_prefix).unwrap(), b"just for me\n");
    assert_eq!(alice.run("cm-file", &["get", "zzzzzzzz"]).code, Some(5));
    assert_eq!(alice.run("cm-file", &["get", "ab"]).code, Some(3));

    // Saved under the stored name, in the directory -o names.
    let into = dir.0.join("into");
    std::fs::create_dir(&into).unwrap();
    alice
        .run(
            "cm-file",
            &["get", &id, "-o", into.to_str().unwrap(), "--json"],
        )
        .ok();
    assert_eq!(
        std::fs::read(into.join("notes.txt")).unwrap(),
        b"just for me\n"
    );
    // An existing file is kept unless --force.
    std::fs::write(into.join("notes.txt"), b"mine").unwrap();
    let r = alice.run("cm-file", &["get", &id, "-o", into.to_str().unwrap()]);
    assert_eq!(r.code, Some(6), "{}", r.err);
    assert!(r.err.contains("--force"), "{}", r.err);
    assert_eq!(std::fs::read(into.join("notes.txt")).unwrap(), b"mine");
    let r = alice.run(
        "cm-file",
        &["get", &id, "-o", into.to_str().unwrap(), "--force"],
    );
    assert!(r.out.starts_with("saved notes.txt (12 B) to "), "{}", r.out);
    assert_eq!(
        std::fs::read(into.join("notes.txt")).unwrap(),
        b"just for me\n"
    );

    // An empty file to everyone.
    let empty = dir.0.join("empty");
    std::fs::write(&empty, b"").unwrap();
    let s = alice
        .run(
            "cm-file",
            &["put", empty.to_str().unwrap(), "--to", "*", "--json"],
        )
        .ok()
        .remove(0);
    let id = s["id"].as_str().unwrap();
    let out = dir.0.join("empty-copy");
    bob.run(
        "cm-file",
        &["get", id, "-o", out.to_str().unwrap(), "--json"],
    )
    .ok();
    assert_eq!(std::fs::read(&out).unwrap(), b"");

    let r = alice.run("cm-file", &["put", src.to_str().unwrap(), "--topic", "dev"]);
    assert_eq!(r.code, Some(1), "{}", r.err);
    assert!(r.err.contains("topics"), "{}", r.err);
    let r = alice.run("cm-file", &["put", src.to_str().unwrap(), "--to", "nobody"]);
    assert_eq!(r.code, Some(5), "{}", r.err);
}

#[test]
fn over_the_limit_is_refused_with_the_limit() {
    let dir = TempDir::new("files-limit");
    let b = Broker::start(&dir, &["--max-file-size", "100000"]);
    let peers = harness::Mesh::new(&b, &["alice", "bob"]);
    let src = dir.0.join("big.bin");
    marked_file(&src, 200_000);
    let r = peers[0].run("cm-file", &["put", src.to_str().unwrap(), "--to", "bob"]);
    assert_eq!(r.code, Some(3), "{}", r.err);
    assert!(
        r.err.contains("file is 200000 bytes") && r.err.contains("at most 100000 bytes"),
        "{}",
        r.err
    );
    let left = b.data.join("files");
    assert!(!left.exists() || walk(&left).is_empty());
}

#[test]
fn an_abandoned_upload_is_deleted() {
    let dir = TempDir::new("files-drop");
    let b = Broker::start(&dir, &[]);
    let m = harness::Mesh::create(&b, "drop");
    let mut ws = m.connect(&b, &m.admin);
    let sealed = FileKey::generate().seal_to(&m.admin.pubkey()).unwrap();
    let ready = ws.request(
        json!({"type": "file_put", "name": "x", "size": 5000, "chunkSize": 1000,
               "recipients": [{"pubkey": m.admin.pubkey(), "sealedKey": sealed}]}),
        "file_put_ready",
    );
    let id = ready["fileId"].as_str().unwrap().to_string();
    ws.send(
        &json!({"type": "file_chunk", "fileId": id, "seq": 0, "data": b64::encode(&[7u8; 1016])}),
    );
    let ack = ws.recv_type("file_chunk_ack");
    assert_eq!(ack["seq"], 0);
    // A chunk of the wrong size ends the upload with an error.
    ws.send(
        &json!({"type": "file_chunk", "fileId": id, "seq": 1, "data": b64::encode(&[7u8; 10])}),
    );
    let e = ws.recv_type("error");
    assert_eq!(e["_reqId"], ready["_reqId"]);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("chunk 1 is 10 bytes"),
        "{e}"
    );
    let part = b.data.join("files").join(format!("{id}.part"));
    assert!(!part.exists());

    let ready = ws.request(
        json!({"type": "file_put", "name": "y", "size": 5000, "chunkSize": 1000,
               "recipients": [{"pubkey": m.admin.pubkey(), "sealedKey": sealed}]}),
        "file_put_ready",
    );
    let id = ready["fileId"].as_str().unwrap().to_string();
    ws.send(
        &json!({"type": "file_chunk", "fileId": id, "seq": 0, "data": b64::encode(&[7u8; 1016])}),
    );
    ws.recv_type("file_chunk_ack");
    let part = b.data.join("files").join(format!("{id}.part"));
    assert!(part.exists());
    drop(ws);
    let until = Instant::now() + Duration::from_secs(5);
    while part.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!part.exists(), "the part of a dropped upload stays");
    let mut ws = m.connect(&b, &m.admin);
    let l = ws.request(json!({"type": "file_list"}), "file_list_response");
    assert_eq!(l["files"], json!([]));
}
