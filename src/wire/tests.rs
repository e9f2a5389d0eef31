//! Every frame against the reference's examples: round trips, omitted fields, request ids, signed strings.
//!
//! Compiled only for `cargo test` (declared `#[cfg(test)]` by its parent), so its `unwrap`s fail a test, never a user.
#![cfg(test)]

use super::frame::TYPE_NAMES;
use super::*;
use serde_json::json;

const ALICE: &str = "774d112253f997813c824bb345c796940a0d878c09430870e907b50c472fbf6d";
const SESSION: &str = "ae850d3f8f94fc06638828add922c27ea3273c9fb526bc13b2fab08ba4d25c37";

/// One frame of every type, shaped as the reference's examples and docs/protocol.md's additions. Only known
/// fields, so a round trip must keep every non-null one.
fn samples() -> Vec<Value> {
    vec![
        json!({"type":"hello","meshId":"m1","memberId":"u1","pubkey":ALICE,"sessionPubkey":SESSION,
            "displayName":"alice","sessionId":"s1","pid":4242,"cwd":"/src","hostname":"box","peerType":"ai",
            "channel":"claude-code","model":"opus-4","groups":[{"name":"eng","role":"lead"},{"name":"ops"}],
            "timestamp":1764340800123i64,"signature":"ab".repeat(64),"protocolVersion":1,
            "capabilities":["pull"]}),
        json!({"type":"session_hello","meshId":"m1","parentMemberId":"u1","parentMemberPubkey":ALICE,
            "sessionPubkey":SESSION,"parentAttestation":{"sessionPubkey":SESSION,"parentMemberPubkey":ALICE,
            "expiresAt":1764384000123i64,"signature":"cd".repeat(64)},"displayName":"alice/1","sessionId":"s2",
            "pid":7,"cwd":"/src","groups":[],"role":"session","timestamp":1764340800123i64,
            "signature":"ef".repeat(64),"capabilities":["pull"]}),
        json!({"type":"hello_ack","presenceId":"p1","memberId":"u1","memberDisplayName":"alice",
            "memberRole":"admin","meshId":"m1","meshSlug":"dev","meshName":"Dev",
            "memberProfile":{"roleTag":null,"groups":[{"name":"eng"}],"messageMode":"push"},
            "meshPolicy":{"selfEditable":{"displayName":true,"roleTag":true,"groups":false,"messageMode":true}},
            "serverTime":1764340800500i64,"restored":true,"lastSummary":"fixing",
            "lastSeenAt":"2026-05-04T10:00:00.123Z","restoredGroups":[{"name":"eng"}]}),
        json!({"type":"error","code":"topic_not_found","message":"no topic dev","id":"r9","_reqId":"r9"}),
        json!({"type":"send","id":"c1","targetSpec":"*","priority":"next","nonce":"","ciphertext":"",
            "client_message_id":"c1","request_fingerprint":"00".repeat(32),
            "copies":[{"to":ALICE,"nonce":"bm9uY2U=","ciphertext":"Y3Q="}],"subtype":"reminder",
            "replyToId":"q1","mentions":["bob"],"bodyVersion":2,"_reqId":"r1"}),
        json!({"type":"ack","id":"c1","messageId":"q".repeat(32),"queued":false,"recipientOnline":true,
            "duplicate":true,"_reqId":"r1"}),
        json!({"type":"ack","id":"c2","messageId":"","queued":false,"error":"unknown target: bob"}),
        json!({"type":"push","messageId":"q1","meshId":"m1","senderPubkey":SESSION,
            "senderMemberPubkey":ALICE,"senderMemberId":"u1","senderName":"alice","targetSpec":"@eng",
            "priority":"now","nonce":"bm9uY2U=","ciphertext":"Y3Q=","createdAt":"2026-05-04T10:00:00.123Z",
            "client_message_id":"c1","request_fingerprint":"00".repeat(32),"subtype":"reminder",
            "topic":"dev","topicId":"t1","replyToId":"q0","bodyVersion":2}),
        json!({"type":"push","subtype":"system","event":"peer_joined",
            "eventData":{"name":"bob","pubkey":SESSION,"groups":[]},"messageId":"e1","meshId":"m1",
            "senderPubkey":"system","priority":"low","nonce":"","ciphertext":"",
            "createdAt":"2026-05-04T10:00:00.123Z"}),
        json!({"type":"client_ack","clientMessageId":"c1","brokerMessageId":"q1"}),
        json!({"type":"message_status","messageId":"q1abcdef","_reqId":"r2"}),
        json!({"type":"message_status_result","messageId":"q1abcdef","targetSpec":ALICE,"delivered":false,
            "deliveredAt":null,"recipients":[{"name":"alice","pubkey":ALICE,"status":"pending"}],
            "_reqId":"r2"}),
        json!({"type":"list_peers","_reqId":"r3"}),
        json!({"type":"peers_list","_reqId":"r3","peers":[{"pubkey":SESSION,"memberPubkey":ALICE,
            "memberId":"u1","displayName":"alice","status":"working","summary":null,
            "groups":[{"name":"eng","role":"lead"}],"sessionId":"s2","connectedAt":"2026-05-04T10:00:00.123Z",
            "cwd":"/src","peerRole":"session","hostname":"box","peerType":"ai","channel":"claudemesh-session",
            "model":"opus-4","visible":true,"profile":{"avatar":"🦀","title":"dev","bio":"hi",
            "capabilities":["rust"]},"online":true}]}),
        json!({"type":"set_status","status":"dnd","_reqId":"r4"}),
        json!({"type":"set_summary","summary":"reviewing","_reqId":"r4"}),
        json!({"type":"set_visible","visible":false,"_reqId":"r5"}),
        json!({"type":"set_profile","avatar":"🦀","title":"dev","bio":"hi","capabilities":[],"_reqId":"r6"}),
        json!({"type":"join_group","name":"eng/backend","role":"lead","_reqId":"r7"}),
        json!({"type":"leave_group","name":"eng/backend","_reqId":"r7"}),
        json!({"type":"members","_reqId":"r8"}),
        json!({"type":"members_list","members":[{"memberId":"u1","pubkey":ALICE,"displayName":"alice",
            "role":"admin","groups":[{"name":"eng"}],"joinedAt":"2026-05-04T10:00:00.123Z","online":true}],
            "_reqId":"r8"}),
        json!({"type":"inbox_fetch","limit":50,"sessionPubkey":SESSION,"waitMs":30000,"_reqId":"r9"}),
        json!({"type":"inbox","messages":[{"messageId":"q1","meshId":"m1","senderPubkey":ALICE,
            "priority":"next","nonce":"bm9uY2U=","ciphertext":"Y3Q=","createdAt":"2026-05-04T10:00:00.123Z"}],
            "_reqId":"r9"}),
        json!({"type":"set_state","key":"deploy","value":{"frozen":true,"by":["a",1,null]},
            "expectedVersion":3,"_reqId":"s1"}),
        json!({"type":"del_state","key":"deploy","expectedVersion":4,"_reqId":"s2"}),
        json!({"type":"get_state","key":"deploy","_reqId":"s3"}),
        json!({"type":"state_result","key":"deploy","value":{"frozen":true},"updatedBy":"alice",
            "updatedAt":"2026-05-04T10:00:00.123Z","version":4,"_reqId":"s3"}),
        json!({"type":"list_state","_reqId":"s4"}),
        json!({"type":"state_list","entries":[{"key":"a","value":1,"updatedBy":"alice",
            "updatedAt":"2026-05-04T10:00:00.123Z","version":1}],"_reqId":"s4"}),
        json!({"type":"state_change","key":"a","value":"x","updatedBy":"bob","version":2}),
        json!({"type":"remember","content":"the deploy key rotates monthly","tags":["ops"],"_reqId":"m1"}),
        json!({"type":"memory_stored","id":"mem1","_reqId":"m1"}),
        json!({"type":"recall","query":"deploy","limit":5,"_reqId":"m2"}),
        json!({"type":"memory_results","memories":[{"id":"mem1","content":"the deploy key rotates monthly",
            "tags":["ops"],"rememberedBy":"alice","rememberedAt":"2026-05-04T10:00:00.123Z","score":1.5,
            "snippet":"the [deploy] key"}],"_reqId":"m2"}),
        json!({"type":"forget","memoryId":"mem1","_reqId":"m3"}),
        json!({"type":"schedule","to":SESSION,"message":"stand-up","deliverAt":1764340860000i64,
            "subtype":"reminder","cron":"0 9 * * 1-5","recurring":true,"_reqId":"c1"}),
        json!({"type":"scheduled_ack","scheduledId":"sc1","deliverAt":1764340860000i64,"cron":"0 9 * * 1-5",
            "_reqId":"c1"}),
        json!({"type":"list_scheduled","_reqId":"c2"}),
        json!({"type":"scheduled_list","messages":[{"id":"sc1","to":SESSION,"message":"stand-up",
            "deliverAt":1764340860000i64,"createdAt":1764340800000i64,"cron":"0 9 * * 1-5","firedCount":3}],
            "_reqId":"c2"}),
        json!({"type":"cancel_scheduled","scheduledId":"sc1","_reqId":"c3"}),
        json!({"type":"cancel_scheduled_ack","scheduledId":"sc1","ok":true,"_reqId":"c3"}),
        json!({"type":"get_profile","_reqId":"g1"}),
        json!({"type":"profile_result","scope":"session","sessionPubkey":SESSION,"displayName":"alice/1",
            "summary":"fixing CI","status":"working","visible":true,"roleTag":"reviewer",
            "groups":[{"name":"eng","role":"lead"}],"online":true,"_reqId":"g1"}),
        json!({"type":"schedule","to":"*","deliverAt":1764340860000i64,"subtype":"reminder","tz":"+02:00",
            "copies":[{"to":ALICE,"nonce":"bm9uY2U=","ciphertext":"Y3Q="}],"_reqId":"c4"}),
        json!({"type":"topic_create","name":"dev","description":"the dev room","visibility":"public",
            "keys":[{"memberId":"u1","encryptedKey":"a2V5","nonce":"bm9uY2U="}],"_reqId":"t1"}),
        json!({"type":"topic_created","topic":{"id":"t1","name":"dev","visibility":"public","encrypted":true},
            "created":true,"_reqId":"t1"}),
        json!({"type":"topic_list","_reqId":"t2"}),
        json!({"type":"topic_list_response","topics":[{"id":"t1","name":"dev","description":null,
            "visibility":"public","memberCount":2,"createdAt":"2026-05-04T10:00:00.123Z"}],"_reqId":"t2"}),
        json!({"type":"topic_join","topic":"dev","role":"observer","_reqId":"t3"}),
        json!({"type":"topic_leave","topic":"dev","_reqId":"t4"}),
        json!({"type":"topic_members","topic":"dev","_reqId":"t5"}),
        json!({"type":"topic_members_response","topic":"dev","members":[{"memberId":"u1","pubkey":ALICE,
            "displayName":"alice","role":"lead","joinedAt":"2026-05-04T10:00:00.123Z","lastReadAt":null}],
            "_reqId":"t5"}),
        json!({"type":"topic_history","topic":"dev","limit":20,"beforeId":"tm9","_reqId":"t6"}),
        json!({"type":"topic_history_response","topic":"dev","messages":[{"id":"tm1","senderPubkey":SESSION,
            "senderMemberId":"u1","senderName":"alice","nonce":"bm9uY2U=","ciphertext":"Y3Q=","bodyVersion":2,
            "replyToId":"tm0","createdAt":"2026-05-04T10:00:00.123Z"}],"_reqId":"t6"}),
        json!({"type":"topic_mark_read","topic":"dev","_reqId":"t7"}),
        json!({"type":"topic_key","topic":"dev","_reqId":"t8"}),
        json!({"type":"topic_key_response","topic":"dev","topicId":"t1","encryptedKey":"a2V5","nonce":"bm9uY2U=",
            "_reqId":"t8"}),
        json!({"type":"topic_pending_seals","topic":"dev","_reqId":"t9"}),
        json!({"type":"topic_pending_seals_response","topic":"dev","topicId":"t1","pending":[{"memberId":"u2",
            "pubkey":ALICE,"displayName":"carol"}],"_reqId":"t9"}),
        json!({"type":"topic_seal","topic":"dev","memberId":"u2","encryptedKey":"a2V5","nonce":"bm9uY2U=",
            "_reqId":"t10"}),
        json!({"type":"notifications_list","all":true,"limit":10,"_reqId":"n1"}),
        json!({"type":"notifications_list_response","notifications":[{"id":"n1","messageId":"tm1",
            "topicId":"t1","topicName":"dev","senderName":"alice","senderPubkey":ALICE,"nonce":"bm9uY2U=",
            "ciphertext":"Y3Q=","bodyVersion":2,"kind":"mention","createdAt":"2026-05-04T10:00:00.123Z",
            "readAt":null}],"_reqId":"n1"}),
        json!({"type":"notifications_read","ids":["n1"],"all":false,"_reqId":"n2"}),
        json!({"type":"notifications_read_response","marked":1,"_reqId":"n2"}),
        json!({"type":"apikey_create","label":"cli-post-42","capabilities":["send","read"],
            "topicScopes":["dev"],"expiresAt":"2026-05-04T10:05:00.000Z","_reqId":"k1"}),
        json!({"type":"apikey_created","id":"k1","secret":"cm_abc","label":"cli-post-42","prefix":"cm_abcdefgh",
            "capabilities":["send"],"topicScopes":null,"createdAt":"2026-05-04T10:00:00.123Z","_reqId":"k1"}),
        json!({"type":"apikey_list","_reqId":"k2"}),
        json!({"type":"apikey_list_response","keys":[{"id":"k1","label":"cli","prefix":"cm_abcdefgh",
            "capabilities":["admin"],"topicScopes":["dev"],"createdAt":"2026-05-04T10:00:00.123Z",
            "lastUsedAt":null,"revokedAt":"2026-05-04T11:00:00.000Z","expiresAt":null}],"_reqId":"k2"}),
        json!({"type":"apikey_revoke","id":"k1","_reqId":"k3"}),
        json!({"type":"apikey_revoke_response","status":"not_unique","matches":2,"_reqId":"k3"}),
        json!({"type":"ban","target":"mallory","reason":"spam","_reqId":"b1"}),
        json!({"type":"ban_ack","banned":"mallory","_reqId":"b1"}),
        json!({"type":"unban","target":"mallory","_reqId":"b2"}),
        json!({"type":"unban_ack","unbanned":"mallory","_reqId":"b2"}),
        json!({"type":"file_put","name":"report.pdf","size":2100000,"chunkSize":48128,
            "recipients":[{"pubkey":ALICE,"sealedKey":"c2VhbGVk"}],"targetSpec":ALICE,"_reqId":"f1"}),
        json!({"type":"file_put_ready","fileId":"F1","_reqId":"f1"}),
        json!({"type":"file_chunk","fileId":"F1","seq":0,"data":"AAEC"}),
        json!({"type":"file_chunk_ack","fileId":"F1","seq":0}),
        json!({"type":"file_put_done","fileId":"F1","sha256":"ab".repeat(32),"_reqId":"f2"}),
        json!({"type":"file_stored","fileId":"F1","_reqId":"f2"}),
        json!({"type":"file_get","fileId":"F1","_reqId":"f3"}),
        json!({"type":"file_meta","fileId":"F1","name":"report.pdf","size":2100000,"sha256":"ab".repeat(32),
            "sealedKey":"c2VhbGVk","chunkSize":48128,"_reqId":"f3"}),
        json!({"type":"file_list","_reqId":"f4"}),
        json!({"type":"file_list_response","files":[{"id":"F1","name":"report.pdf","size":2100000,
            "uploadedBy":"alice","uploaderPubkey":ALICE,"targetSpec":"*","recipients":2,
            "createdAt":"2026-01-01T00:00:00.000Z"}],"_reqId":"f4"}),
        json!({"type":"file_rm","fileId":"F1","_reqId":"f5"}),
        json!({"type":"create_task","title":"fix it","assignee":"bob","priority":"high","tags":["ci"],
            "_reqId":"t1"}),
        json!({"type":"task_created","id":"T1","title":"fix it","_reqId":"t1"}),
        json!({"type":"claim_task","taskId":"T1","_reqId":"t2"}),
        json!({"type":"complete_task","taskId":"T1","result":"done","_reqId":"t3"}),
        json!({"type":"release_task","taskId":"T1","_reqId":"t4"}),
        json!({"type":"list_tasks","status":"open","assignee":"bob","_reqId":"t5"}),
        json!({"type":"task_list","tasks":[{"id":"T1","title":"fix it","assignee":"bob","claimedBy":"bob",
            "status":"done","priority":"high","createdBy":"alice","tags":["ci"],
            "createdAt":"2026-01-01T00:00:00.000Z","claimedAt":"2026-01-01T00:01:00.000Z",
            "completedAt":"2026-01-01T00:02:00.000Z","result":"done"}],"_reqId":"t5"}),
        json!({"type":"share_context","summary":"auth is in src/auth","filesRead":["src/auth.rs"],
            "keyFindings":["tokens expire early"],"tags":["auth"],"_reqId":"c1"}),
        json!({"type":"context_shared","id":"C1","replaced":true,"_reqId":"c1"}),
        json!({"type":"get_context","query":"auth","_reqId":"c2"}),
        json!({"type":"context_results","contexts":[{"peerName":"alice","summary":"auth is in src/auth",
            "filesRead":["src/auth.rs"],"keyFindings":["tokens expire early"],"tags":["auth"],
            "updatedAt":"2026-01-01T00:00:00.000Z"}],"_reqId":"c2"}),
        json!({"type":"list_contexts","_reqId":"c3"}),
        json!({"type":"context_list","contexts":[],"_reqId":"c3"}),
        json!({"type":"reserve_paths","scope":"github.com/a/b","paths":["src/**"],"exclusive":true,
            "ttlSecs":3600,"reason":"parser","_reqId":"r1"}),
        json!({"type":"release_paths","scope":"github.com/a/b","paths":["src/**"],"_reqId":"r2"}),
        json!({"type":"list_reservations","scope":"github.com/a/b","_reqId":"r3"}),
        json!({"type":"reservation_list","reservations":[],"conflicts":[{"path":"src/lib.rs","held":{
            "id":"R1","scope":"github.com/a/b","path":"src/**","exclusive":true,"reason":"parser","memberId":"M1",
            "memberName":"bob","createdAt":"2026-01-01T00:00:00.000Z","expiresAt":"2026-01-01T01:00:00.000Z"}}],
            "_reqId":"r1"}),
        json!({"type":"vault_set","key":"DB_URL","ciphertext":"AAAA","nonce":"BBBB","sealed_key":"CCCC",
            "entry_type":"env","mount_path":"/etc/x","description":"db","readers":[{"pubkey":ALICE,
            "sealed_key":"DDDD"}],"_reqId":"v1"}),
        json!({"type":"vault_ack","key":"DB_URL","action":"stored","_reqId":"v1"}),
        json!({"type":"vault_get","keys":["DB_URL"],"_reqId":"v2"}),
        json!({"type":"vault_get_result","entries":[{"key":"DB_URL","ciphertext":"AAAA","nonce":"BBBB",
            "sealed_key":"DDDD","entry_type":"env","mount_path":"/etc/x","owner":"alice","mine":false}],
            "_reqId":"v2"}),
        json!({"type":"vault_list","_reqId":"v3"}),
        json!({"type":"vault_list_result","entries":[{"key":"DB_URL","entry_type":"env","description":"db",
            "updated_at":"2026-01-01T00:00:00.000Z","owner":"alice","readers":["bob"]}],"_reqId":"v3"}),
        json!({"type":"vault_delete","key":"DB_URL","_reqId":"v4"}),
        json!({"type":"grant_set","peer":ALICE,"caps":["dm","now"],"allow":false,"_reqId":"g1"}),
        json!({"type":"grant_block","peer":ALICE,"blocked":true,"_reqId":"g2"}),
        json!({"type":"grant_list","_reqId":"g3"}),
        json!({"type":"grant_state","everyone":["dm","broadcast","files"],"peers":[{"pubkey":ALICE,
            "name":"alice","blocked":false,"caps":["dm","broadcast","now","files"],"granted":["now"],
            "revoked":[]}],"_reqId":"g3"}),
        json!({"type":"create_webhook","name":"ci","to":"@ops","_reqId":"w1"}),
        json!({"type":"webhook_ack","name":"ci","url":"/hooks/H1","secret":"ab12","id":"H1","to":"@ops",
            "_reqId":"w1"}),
        json!({"type":"list_webhooks","_reqId":"w2"}),
        json!({"type":"webhook_list","webhooks":[{"name":"ci","url":"/hooks/H1","active":true,
            "createdAt":"2026-01-01T00:00:00.000Z","to":"@ops","toName":"bob","createdBy":"alice"}],"_reqId":"w2"}),
        json!({"type":"delete_webhook","name":"ci","_reqId":"w3"}),
    ]
}

/// Every non-null field of `input` is in `output` with the same value (recursively), and `output` has no
/// `null` except as a state value.
fn assert_kept(input: &Value, output: &Value, path: &str) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                if v.is_null() {
                    assert!(!o.contains_key(k), "{path}.{k}: null must be omitted");
                } else if k == "value" || k == "eventData" {
                    assert_eq!(Some(v), o.get(k), "{path}.{k}");
                } else {
                    let Some(ov) = o.get(k) else {
                        panic!("{path}.{k} was dropped")
                    };
                    assert_kept(v, ov, &format!("{path}.{k}"));
                }
            }
            for (k, v) in o {
                assert!(!v.is_null() || k == "value", "{path}.{k}: null in output");
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            assert_eq!(i.len(), o.len(), "{path}");
            for (n, (a, b)) in i.iter().zip(o).enumerate() {
                assert_kept(a, b, &format!("{path}[{n}]"));
            }
        }
        _ => assert_eq!(input, output, "{path}"),
    }
}

#[test]
fn every_frame_round_trips() {
    let samples = samples();
    let mut seen = std::collections::BTreeSet::new();
    for sample in &samples {
        let ty = sample["type"].as_str().unwrap();
        let frame = parse(&sample.to_string()).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(frame.type_name(), ty);
        let text = frame.to_json();
        let out: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(out["type"], ty, "{text}");
        assert_kept(sample, &out, ty);
        assert_eq!(parse(&text).unwrap(), frame, "{ty}");
        assert_eq!(
            frame.req_id(),
            sample.get("_reqId").and_then(Value::as_str),
            "{ty}"
        );
        seen.insert(ty);
    }
    assert_eq!(
        seen,
        TYPE_NAMES.iter().copied().collect(),
        "a sample of every type"
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let f = parse(r#"{"type":"get_state","key":"a","extra":{"deep":[1]},"_reqId":"r"}"#).unwrap();
    assert_eq!(
        f,
        Frame::GetState(GetState {
            key: "a".into(),
            req_id: Some("r".into())
        })
    );
    assert_eq!(
        f.to_json(),
        r#"{"type":"get_state","key":"a","_reqId":"r"}"#
    );
}

#[test]
fn unknown_type_parses_as_unknown() {
    let f = parse(r#"{"type":"vector_search","collection":"c","query":"q","_reqId":"r"}"#).unwrap();
    assert_eq!(f, Frame::Unknown);
    assert_eq!(f.type_name(), "unknown");
    assert_eq!(f.req_id(), None);
    assert_eq!(
        peek_req_id(r#"{"type":"vector_search","_reqId":"r"}"#).as_deref(),
        Some("r")
    );
    assert!(parse(r#"{"key":"a"}"#).is_err(), "no type");
    assert!(parse(r#"{"type":7}"#).is_err());
    assert!(parse("[]").is_err());
}

#[test]
fn known_type_with_bad_fields_is_an_error() {
    assert!(parse(r#"{"type":"get_state"}"#).is_err());
    assert!(
        parse(r#"{"type":"send","targetSpec":"*","priority":"urgent","nonce":"","ciphertext":""}"#)
            .is_err()
    );
    assert!(
        parse(r#"{"type":"set_state","key":"a"}"#).is_err(),
        "a value is required, null included"
    );
    assert!(parse(r#"{"type":"set_state","key":"a","value":null}"#).is_ok());
    assert_eq!(
        peek_req_id(r#"{"type":"get_state","_reqId":"r1"}"#).as_deref(),
        Some("r1")
    );
    assert_eq!(peek_req_id("not json"), None);
}

#[test]
fn optional_fields_are_omitted() {
    assert_eq!(
        Frame::from(ErrorFrame::new(codes::NO_HELLO, "must send hello first")).to_json(),
        r#"{"type":"error","code":"no_hello","message":"must send hello first"}"#
    );
    assert_eq!(
        Frame::from(Ack::done(None)).to_json(),
        r#"{"type":"ack","id":"","messageId":"","queued":false}"#
    );
    let send = SendMessage {
        target_spec: "*".into(),
        ..Default::default()
    };
    assert_eq!(
        Frame::from(send).to_json(),
        r#"{"type":"send","id":"","targetSpec":"*","priority":"next","nonce":"","ciphertext":""}"#
    );
    let push = Push::system(
        "m1",
        "e1",
        "2026-05-04T10:00:00.123Z",
        "peer_left",
        json!({"name":"bob"}),
    );
    assert!(push.is_system());
    assert_eq!(
        Frame::from(push).to_json(),
        r#"{"type":"push","messageId":"e1","meshId":"m1","senderPubkey":"system","priority":"low","nonce":"","ciphertext":"","createdAt":"2026-05-04T10:00:00.123Z","subtype":"system","event":"peer_left","eventData":{"name":"bob"}}"#
    );
    // A missing state key is `value: null`, which is a value and is sent.
    let missing = StateResult {
        key: "k".into(),
        ..Default::default()
    };
    assert_eq!(
        Frame::from(missing).to_json(),
        r#"{"type":"state_result","key":"k","value":null,"updatedBy":"","updatedAt":""}"#
    );
    let hello = Hello {
        mesh_id: "m".into(),
        member_id: "u".into(),
        pubkey: ALICE.into(),
        ..Default::default()
    };
    let text = Frame::from(hello).to_json();
    for absent in [
        "null",
        "sessionPubkey",
        "groups",
        "capabilities",
        "protocolVersion",
    ] {
        assert!(!text.contains(absent), "{absent} in {text}");
    }
}

#[test]
fn absent_and_empty_lists_differ_where_they_mean_different_things() {
    let f = parse(r#"{"type":"send","targetSpec":"*","priority":"low","copies":[]}"#).unwrap();
    let Frame::Send(s) = &f else { panic!("{f:?}") };
    assert_eq!(s.copies, Some(vec![]));
    assert!(f.to_json().contains(r#""copies":[]"#));
    let Frame::Hello(h) = parse(&samples()[0].to_string()).unwrap() else {
        panic!()
    };
    assert_eq!(h.groups.map(|g| g.len()), Some(2));
}

#[test]
fn req_id_is_echoed() {
    let req = parse(r#"{"type":"recall","query":"x","_reqId":"abc"}"#).unwrap();
    let reply = Frame::from(MemoryResults {
        req_id: req.req_id().map(str::to_string),
        ..Default::default()
    });
    assert_eq!(
        reply.to_json(),
        r#"{"type":"memory_results","memories":[],"_reqId":"abc"}"#
    );
    assert_eq!(parse(&reply.to_json()).unwrap().req_id(), Some("abc"));

    let err = ErrorFrame::new(codes::TOPIC_NOT_FOUND, "no such topic").with_req_id(req.req_id());
    assert_eq!(
        Frame::from(err).to_json(),
        r#"{"type":"error","code":"topic_not_found","message":"no such topic","id":"abc","_reqId":"abc"}"#
    );
    // The original's topic handlers put the request id in `id` only.
    let old =
        parse(r#"{"type":"error","code":"topic_not_found","message":"x","id":"r7"}"#).unwrap();
    assert_eq!(old.req_id(), Some("r7"));

    let done = Frame::from(Ack::done(Some("v1")));
    assert_eq!(
        done.to_json(),
        r#"{"type":"ack","id":"v1","messageId":"","queued":false,"_reqId":"v1"}"#
    );
    let refused = Ack::refused("c9", "rate_limit: slow down");
    assert_eq!((refused.queued, refused.message_id.as_str()), (false, ""));
}

/// `_reqId` is declared once for every frame that carries it; these pin the bytes it gives, with and without
/// one, and that they read back the same.
#[test]
fn req_id_bytes_with_and_without_one() {
    let cases: Vec<(Frame, &str)> = vec![
        (
            ListPeers { req_id: None }.into(),
            r#"{"type":"list_peers"}"#,
        ),
        (
            ListPeers {
                req_id: Some("r1".into()),
            }
            .into(),
            r#"{"type":"list_peers","_reqId":"r1"}"#,
        ),
        (
            MessageStatus {
                message_id: "abcdefgh".into(),
                req_id: Some("r2".into()),
            }
            .into(),
            r#"{"type":"message_status","messageId":"abcdefgh","_reqId":"r2"}"#,
        ),
        (
            Inbox {
                messages: Vec::new(),
                req_id: None,
            }
            .into(),
            r#"{"type":"inbox","messages":[]}"#,
        ),
        (
            Ack {
                id: "s1".into(),
                message_id: "m1".into(),
                queued: true,
                recipient_online: Some(false),
                req_id: Some("r3".into()),
                ..Ack::default()
            }
            .into(),
            r#"{"type":"ack","id":"s1","messageId":"m1","queued":true,"recipientOnline":false,"_reqId":"r3"}"#,
        ),
    ];
    for (frame, want) in cases {
        assert_eq!(frame.to_json(), want);
        assert_eq!(parse(want).unwrap(), frame, "{want}");
    }
}

#[test]
fn hello_timestamp_must_be_an_integer() {
    let mut hello = samples()[0].clone();
    assert!(matches!(parse(&hello.to_string()), Ok(Frame::Hello(_))));
    hello["timestamp"] = json!("1764340800123");
    assert!(parse(&hello.to_string()).is_err(), "string timestamp");
    hello["timestamp"] = json!(1764340800123.5);
    assert!(parse(&hello.to_string()).is_err(), "fractional timestamp");
    hello.as_object_mut().unwrap().remove("timestamp");
    assert!(parse(&hello.to_string()).is_err(), "no timestamp");

    let mut session = samples()[1].clone();
    session["timestamp"] = json!("1764340800123");
    assert!(parse(&session.to_string()).is_err(), "string timestamp");
    let mut session = samples()[1].clone();
    session["parentAttestation"]["expiresAt"] = json!("soon");
    assert!(parse(&session.to_string()).is_err(), "string expiresAt");
}

#[test]
fn replies_from_an_original_broker_parse() {
    // Drained-push shape (a) and the bare hello_ack of the original.
    let push = r#"{"type":"push","messageId":"q","meshId":"m","senderPubkey":"k","priority":"next",
        "nonce":"n","ciphertext":"c","createdAt":"2026-05-04T10:00:00.123Z"}"#;
    let Frame::Push(p) = parse(push).unwrap() else {
        panic!()
    };
    assert_eq!(
        (p.sender_name.as_deref(), p.priority, p.is_system()),
        (None, Priority::Next, false)
    );
    let ack = parse(r#"{"type":"hello_ack","presenceId":"p","memberDisplayName":"a"}"#).unwrap();
    let Frame::HelloAck(a) = ack else { panic!() };
    assert_eq!((a.presence_id.as_str(), a.member_profile), ("p", None));
    let peers = parse(
        r#"{"type":"peers_list","peers":[{"pubkey":"k","displayName":"a","status":"idle"}]}"#,
    );
    let Frame::PeersList(l) = peers.unwrap() else {
        panic!()
    };
    assert_eq!(l.peers[0].peer_role, "");
}

#[test]
fn priority_and_status_parse() {
    assert_eq!("now".parse::<Priority>().unwrap(), Priority::Now);
    assert_eq!(Priority::Low.as_str(), "low");
    assert_eq!("dnd".parse::<Status>().unwrap().as_str(), "dnd");
    assert_eq!(
        "urgent".parse::<Priority>().unwrap_err().code,
        crate::error::Code::Usage
    );
    assert!("busy".parse::<Status>().is_err());
}

#[test]
fn signed_strings_match_the_vectors() {
    let text = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/crypto.json"
    ));
    let v: Value = serde_json::from_str(text).unwrap();
    let key = |who: &str| {
        v["identities"][who]["pubkey_hex"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (alice, session) = (key("alice"), key("alice-session"));
    let mesh = v["invite_v1"]["payload"]["mesh_id"].as_str().unwrap();
    let member = "mEmBeRiDaBcDeFgHiJkLmNoPqRsTuVwX";
    let (ts, expires) = (1764340800123, 1764384000123);

    let hello = Hello {
        mesh_id: mesh.into(),
        member_id: member.into(),
        pubkey: alice.clone(),
        timestamp: ts,
        ..Default::default()
    };
    let attestation = Attestation {
        session_pubkey: session.clone(),
        parent_member_pubkey: alice.clone(),
        expires_at: expires,
        signature: String::new(),
    };
    let session_hello = SessionHello {
        mesh_id: mesh.into(),
        parent_member_pubkey: alice.clone(),
        session_pubkey: session.clone(),
        timestamp: ts,
        ..Default::default()
    };
    let ours = [
        (
            "hello",
            hello_signed(mesh, member, &alice, ts),
            hello.signed(),
        ),
        (
            "session attestation (12h)",
            attestation_signed(&alice, &session, expires),
            attestation.signed(),
        ),
        (
            "session_hello",
            session_hello_signed(mesh, &alice, &session, ts),
            session_hello.signed(),
        ),
    ];
    let sigs = v["signatures"].as_array().unwrap();
    assert_eq!(sigs.len(), ours.len());
    for (what, by_fn, by_method) in ours {
        let vector = sigs
            .iter()
            .find(|s| s["what"] == what)
            .unwrap_or_else(|| panic!("{what}"));
        assert_eq!(by_fn, vector["message"].as_str().unwrap(), "{what}");
        assert_eq!(by_method, by_fn, "{what}");
    }
}

#[test]
fn signed_strings_of_the_http_additions() {
    assert_eq!(
        mesh_create_signed("dev", ALICE, SESSION, 1764340800123),
        format!("claudemesh-mesh-create|dev|{ALICE}|{SESSION}|1764340800123")
    );
    // SHA-256("abc"), the FIPS 180-2 example.
    assert_eq!(
        invite_register_signed("m1", "abc", 5, 1764340800123),
        "claudemesh-invite-register|m1|ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad|5|1764340800123"
    );
}
