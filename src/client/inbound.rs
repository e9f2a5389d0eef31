//! Inbound messages: a `push` decoded and decrypted into what an application shows or forwards.
//!
//! How a body is opened, by what the push says about itself:
//!
//! - **System pushes** (`subtype` `system`, or `senderPubkey` `system`) and an original broker's webhook pushes
//!   (`subtype` `webhook`, the body in clear in `eventData`, no ciphertext) are events, not messages;
//!   [`Session`](super::Session) reports them as [`Event::System`](super::Event::System). Given one anyway,
//!   [`decode_push`] returns a system push without text and a webhook's with its `eventData`.
//! - **cm-broker's webhook messages** (`subtype` `webhook`, `senderPubkey` `webhook:<name>`) carry the posted
//!   body in a sealed box (`crypto_box_seal`) to the member key, opened with the member secret.
//! - **An empty `nonce`** marks a compat body: base64 of the UTF-8 plaintext, which only the scheduler's
//!   reminders and original clients produce (reference §4.11). The text is the decoded base64.
//! - **A topic message with `bodyVersion` 2** is a secretbox under the topic key, which this module does not
//!   hold: it comes out with `decrypt_error` until [`Inbound::open_topic`] opens it. A topic message without
//!   `bodyVersion` 2 is an original client's v1 topic body, base64 plaintext.
//! - **Everything else** is a crypto_box from `senderPubkey`: opened with the session secret, then the member
//!   secret. A DM (`targetSpec` a key, or absent) that opens under neither carries `decrypt_error` and no text —
//!   its ciphertext is never shown as text (original-cli §16: the daemon stored garbage that way).
//! - **A broadcast or group push** (`targetSpec` `*` or `@…`) that does not open is the one ambiguous case:
//!   it is either our sealed copy that failed, or an original client's base64 plaintext sent without `copies`,
//!   and nothing on the wire tells them apart. It is read as plaintext only if the base64 decodes to UTF-8
//!   without control characters other than tab and newline; a crypto_box's first 16 bytes are its Poly1305 tag,
//!   which passes that test with a probability below one in a million, so a failed copy reports `decrypt_error`.

use crate::crypto::{self, Keypair, b64};
use crate::wire::{Priority, Push};
use serde::Serialize;

/// Who sent a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The sender's display name, when the broker said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The key the sender's socket spoke as (a session key, or the member key): reply to this.
    pub pubkey: String,
    /// The sender's member key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_pubkey: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
}

/// A message as the application sees it; serialized as a JSON Lines event with `"type": "message"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename = "message")]
pub struct Inbound {
    /// The broker's message id: what `client_ack` and dedupe use.
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_message_id: Option<String>,
    pub mesh_slug: String,
    pub from: Origin,
    /// The send's target: a key for a DM, `*`, `@group` or `#topic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The plaintext; absent when it could not be decrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Why there is no text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decrypt_error: Option<String>,
    pub priority: Priority,
    /// When the broker accepted it, RFC 3339 UTC.
    pub sent_at: String,
    /// `reminder`, or the sender's own tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
    /// The topic's name for a topic message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The message this one answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// A topic body waiting for [`Inbound::open_topic`]: `(nonce, ciphertext)`.
    #[serde(skip)]
    sealed: Option<(String, String)>,
}

/// Decodes a message push for `member` (and `session`, when the socket speaks as one) of the mesh `mesh_slug`,
/// by the rules in this module's documentation.
pub fn decode_push(
    push: &Push,
    mesh_slug: &str,
    member: &Keypair,
    session: Option<&Keypair>,
) -> Inbound {
    let (text, decrypt_error) = match open(push, member, session) {
        Ok(t) => (t, None),
        Err(e) => (None, Some(e)),
    };
    Inbound {
        id: push.message_id.clone(),
        client_message_id: push.client_message_id.clone(),
        mesh_slug: mesh_slug.to_string(),
        from: Origin {
            name: push.sender_name.clone(),
            pubkey: push.sender_pubkey.clone(),
            member_pubkey: push.sender_member_pubkey.clone(),
            member_id: push.sender_member_id.clone(),
        },
        to: push.target_spec.clone(),
        text,
        decrypt_error,
        priority: push.priority,
        sent_at: push.created_at.clone(),
        subtype: push.subtype.clone(),
        topic: push
            .topic
            .clone()
            .or_else(|| push.topic_id.as_ref().map(|t| format!("#{t}"))),
        reply_to: push.reply_to_id.clone(),
        sealed: (is_topic(push) && push.body_version == Some(2))
            .then(|| (push.nonce.clone(), push.ciphertext.clone())),
    }
}

impl Inbound {
    /// The id of the topic whose key this message waits for, when it is a v2 topic message not yet opened.
    pub fn sealed_topic(&self) -> Option<&str> {
        self.sealed.as_ref()?;
        self.to.as_deref()?.strip_prefix('#')
    }

    /// Opens a v2 topic message that [`decode_push`] left encrypted, with the topic key; does nothing to any
    /// other message.
    pub fn open_topic(&mut self, topic_key: &[u8; 32]) {
        let Some((nonce, ct)) = &self.sealed else {
            return;
        };
        let opened = crypto::nonce_from_b64(nonce).and_then(|n| {
            let ct = b64::decode(ct)?;
            crypto::secretbox_open_easy(&ct, &n, topic_key)
        });
        match opened.map(String::from_utf8) {
            Ok(Ok(t)) => {
                self.text = Some(t);
                self.decrypt_error = None;
                self.sealed = None;
            }
            Ok(Err(_)) => self.decrypt_error = Some("topic message is not UTF-8".into()),
            Err(e) => self.decrypt_error = Some(format!("topic message: {e}")),
        }
    }
}

fn is_topic(push: &Push) -> bool {
    push.topic_id.is_some()
        || push
            .target_spec
            .as_deref()
            .is_some_and(|t| t.starts_with('#'))
}

fn is_multicast(push: &Push) -> bool {
    push.target_spec
        .as_deref()
        .is_some_and(|t| t == "*" || t.starts_with('@'))
}

/// The text of a push, `Ok(None)` for an event without one, or why it cannot be read.
fn open(
    push: &Push,
    member: &Keypair,
    session: Option<&Keypair>,
) -> Result<Option<String>, String> {
    if push.is_system() {
        return Ok(None);
    }
    if push.subtype.as_deref() == Some("webhook") {
        if push.ciphertext.is_empty() {
            return Ok(push.event_data.as_ref().map(|d| d.to_string()));
        }
        let sealed = b64::decode(&push.ciphertext).map_err(|e| e.to_string())?;
        let opened =
            crypto::seal_open(&sealed, &member.x25519_public(), &member.x25519_secret())
                .map_err(|_| "webhook message: does not open with this member's key".to_string())?;
        return String::from_utf8(opened)
            .map(Some)
            .map_err(|_| "webhook message is not UTF-8".into());
    }
    if push.nonce.is_empty() {
        return plain(&push.ciphertext).map(Some);
    }
    if is_topic(push) {
        return if push.body_version == Some(2) {
            Err("topic message: needs the topic key".into())
        } else {
            plain(&push.ciphertext).map(Some)
        };
    }
    let mut last = None;
    for key in session.into_iter().chain(Some(member)) {
        match crypto::decrypt_dm(&push.nonce, &push.ciphertext, &push.sender_pubkey, key) {
            Ok(bytes) => {
                return String::from_utf8(bytes)
                    .map(Some)
                    .map_err(|_| "message is not UTF-8".into());
            }
            Err(e) => last = Some(e),
        }
    }
    if is_multicast(push)
        && let Ok(t) = plain(&push.ciphertext)
        && t.chars().all(|c| !c.is_control() || c == '\n' || c == '\t')
    {
        return Ok(Some(t));
    }
    Err(match last {
        Some(e) => e.to_string(),
        None => "no key to decrypt with".into(),
    })
}

/// Base64 of UTF-8 plaintext.
fn plain(b64_text: &str) -> Result<String, String> {
    let bytes = b64::decode(b64_text).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "message body is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn vectors() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/crypto.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    fn identity(v: &Value, who: &str) -> Keypair {
        Keypair::from_secret_hex(v["identities"][who]["secret_hex"].as_str().unwrap()).unwrap()
    }

    fn dm_push(v: &Value, i: usize) -> Push {
        let b = &v["crypto_box_easy"][i];
        Push {
            message_id: format!("m{i}"),
            sender_pubkey: identity(v, "alice").public_hex(),
            sender_name: Some("alice".into()),
            target_spec: Some(identity(v, "bob").public_hex()),
            nonce: b["nonce_b64"].as_str().unwrap().into(),
            ciphertext: b["ciphertext_b64"].as_str().unwrap().into(),
            created_at: "2026-05-04T10:00:00.123Z".into(),
            ..Push::default()
        }
    }

    #[test]
    fn dm_opens_with_the_member_key_after_trying_the_session_key() {
        let v = vectors();
        let bob = identity(&v, "bob");
        let other = Keypair::generate();
        for i in 0..v["crypto_box_easy"].as_array().unwrap().len() {
            let want = v["crypto_box_easy"][i]["plaintext"].as_str().unwrap();
            let m = decode_push(&dm_push(&v, i), "dev", &bob, Some(&other));
            assert_eq!(m.text.as_deref(), Some(want));
            assert_eq!(m.decrypt_error, None);
            // ...and with the session key when the box was made for it.
            let m = decode_push(&dm_push(&v, i), "dev", &other, Some(&bob));
            assert_eq!(m.text.as_deref(), Some(want));
        }
    }

    #[test]
    fn undecryptable_dm_is_never_shown_as_text() {
        let v = vectors();
        let t = &v["crypto_box_easy_tampered"];
        let mut p = dm_push(&v, 0);
        p.nonce = t["nonce_b64"].as_str().unwrap().into();
        p.ciphertext = t["ciphertext_b64"].as_str().unwrap().into();
        let m = decode_push(&p, "dev", &identity(&v, "bob"), None);
        assert_eq!(m.text, None);
        assert!(m.decrypt_error.unwrap().contains("cannot decrypt"));

        // A DM whose ciphertext happens to be valid base64 of text still does not fall back.
        let mut p = dm_push(&v, 0);
        p.ciphertext = b64::encode(b"looks like plaintext but is a DM");
        let m = decode_push(&p, "dev", &identity(&v, "bob"), None);
        assert_eq!(m.text, None);
        assert!(m.decrypt_error.is_some());
    }

    #[test]
    fn compat_bodies() {
        let v = vectors();
        let bob = identity(&v, "bob");
        // Empty nonce: a reminder from the scheduler, base64 plaintext.
        let mut p = dm_push(&v, 0);
        p.nonce = String::new();
        p.ciphertext = b64::encode("stand-up in 5".as_bytes());
        p.subtype = Some("reminder".into());
        assert_eq!(
            decode_push(&p, "dev", &bob, None).text.as_deref(),
            Some("stand-up in 5")
        );

        // A broadcast without copies from an original client: random nonce, base64 plaintext.
        let mut p = dm_push(&v, 0);
        p.target_spec = Some("*".into());
        p.ciphertext = b64::encode("hello all\nsecond line".as_bytes());
        let m = decode_push(&p, "dev", &bob, None);
        assert_eq!(m.text.as_deref(), Some("hello all\nsecond line"));

        // A sealed copy that does not open is not mistaken for plaintext.
        let t = &v["crypto_box_easy_tampered"];
        p.ciphertext = t["ciphertext_b64"].as_str().unwrap().into();
        let m = decode_push(&p, "dev", &bob, None);
        assert_eq!(m.text, None);
        assert!(m.decrypt_error.is_some());
    }

    #[test]
    fn a_webhook_message_opens_with_the_member_key_only() {
        let (bob, eve) = (Keypair::generate(), Keypair::generate());
        let body = r#"{"action":"opened","number":7}"#;
        let p = Push {
            message_id: "w1".into(),
            sender_pubkey: "webhook:ci".into(),
            sender_name: Some("webhook:ci".into()),
            target_spec: Some(bob.public_hex()),
            subtype: Some("webhook".into()),
            event: Some("ci".into()),
            ciphertext: b64::encode(&crypto::seal(body.as_bytes(), &bob.x25519_public())),
            ..Push::default()
        };
        let m = decode_push(&p, "dev", &bob, Some(&eve));
        assert_eq!(m.text.as_deref(), Some(body));
        assert_eq!(m.from.name.as_deref(), Some("webhook:ci"));
        let m = decode_push(&p, "dev", &eve, None);
        assert_eq!(m.text, None);
        assert!(m.decrypt_error.unwrap().contains("does not open"));
    }

    #[test]
    fn topic_v2_needs_the_key() {
        let v = vectors();
        let s = &v["crypto_secretbox_easy"][0];
        let mut p = dm_push(&v, 0);
        p.target_spec = Some("#t1".into());
        p.topic = Some("dev".into());
        p.body_version = Some(2);
        p.nonce = s["nonce_b64"].as_str().unwrap().into();
        p.ciphertext = s["ciphertext_b64"].as_str().unwrap().into();
        let mut m = decode_push(&p, "dev", &identity(&v, "bob"), None);
        assert_eq!(m.text, None);
        let key: [u8; 32] = b64::decode(s["key_b64"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        m.open_topic(&key);
        assert_eq!(m.text.as_deref(), Some("first topic post"));
        assert_eq!(m.decrypt_error, None);
    }

    #[test]
    fn serializes_as_a_message_event() {
        let v = vectors();
        let m = decode_push(&dm_push(&v, 0), "dev", &identity(&v, "bob"), None);
        let j = serde_json::to_value(&m).unwrap();
        assert_eq!(j["type"], "message");
        assert_eq!(j["text"], "hello bob");
        assert_eq!(j["from"]["name"], "alice");
        assert_eq!(j["sent_at"], "2026-05-04T10:00:00.123Z");
        assert_eq!(j["priority"], "next");
        assert_eq!(j["mesh_slug"], "dev");
        assert!(j.get("decrypt_error").is_none());
    }
}
