//! [`Features`]: what the broker on the other end offers beyond the original claudemesh broker's protocol.
//!
//! cm-broker names its additions in `hello_ack.features` ([`wire::FEATURES`]); an original broker sends no such
//! list and has none of them. It drops a frame it does not know without a word, and answers nothing to some
//! frames ours answer, so a tool that asked it anyway would wait out its timeout, or take silence for success.
//! This is the one place that knows which frame needs what: [`Features::check`] refuses, before anything is sent,
//! a frame the broker cannot answer, and [`Features::has`] lets a tool pick the path that broker has.

use crate::error::{Error, Result};
use crate::wire::{self, Frame, HelloAck};

/// One addition of cm-broker's, by its name in `hello_ack.features`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// `members`: every member of the mesh, online or not.
    Members,
    /// `inbox_fetch`: pending deliveries pulled by a one-shot tool.
    InboxFetch,
    /// `get_profile`.
    Profile,
    /// `notifications_list`, `notifications_read`.
    Notifications,
    /// `file_put`, `file_get`, `file_list`, `file_rm`.
    Files,
    /// Replies to `set_state`, `set_status`, `set_summary`, group and topic membership changes.
    Replies,
    /// `topicId` in `topic_history_response`.
    HistoryTopicId,
    /// Topic keys made and sealed by clients: `topic_key`, `topic_pending_seals`, `topic_seal`.
    TopicKeys,
    /// `del_state`.
    DelState,
    /// `release_task`.
    ReleaseTask,
    /// `reserve_paths`, `release_paths`, `list_reservations`: file reservations.
    Reservations,
    /// `grant_set`, `grant_block`, `grant_list`: grants and blocks the broker enforces.
    Grants,
    /// System pushes of every change to a task to the mesh's live sessions.
    TaskEvents,
    /// `create_webhook` with `to`: a webhook's posts sealed for a member, a group or a topic.
    WebhookTargets,
}

impl Feature {
    /// Every feature, for tests and docs.
    pub const ALL: [Feature; 14] = [
        Feature::Members,
        Feature::InboxFetch,
        Feature::Profile,
        Feature::Notifications,
        Feature::Files,
        Feature::Replies,
        Feature::HistoryTopicId,
        Feature::TopicKeys,
        Feature::DelState,
        Feature::ReleaseTask,
        Feature::Reservations,
        Feature::Grants,
        Feature::TaskEvents,
        Feature::WebhookTargets,
    ];

    /// The name in `hello_ack.features`.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Members => "members",
            Feature::InboxFetch => "inbox_fetch",
            Feature::Profile => "get_profile",
            Feature::Notifications => "notifications",
            Feature::Files => "files",
            Feature::Replies => "replies",
            Feature::HistoryTopicId => "history_topic_id",
            Feature::TopicKeys => "topic_keys",
            Feature::DelState => "del_state",
            Feature::ReleaseTask => "release_task",
            Feature::Reservations => "reservations",
            Feature::Grants => "grants",
            Feature::TaskEvents => "task_events",
            Feature::WebhookTargets => "webhook_targets",
        }
    }

    /// What a user is told the broker lacks.
    fn what(self) -> &'static str {
        match self {
            Feature::Members => "member list",
            Feature::InboxFetch => "inbox to fetch from",
            Feature::Profile => "profile to read back",
            Feature::Notifications => "mention notifications over WebSocket",
            Feature::Files => "file store",
            Feature::Replies => "replies to this request",
            Feature::HistoryTopicId => "topic ids in history",
            Feature::TopicKeys => {
                "topic keys made by clients (it hands its own out over REST only)"
            }
            Feature::DelState => "way to delete a state key",
            Feature::ReleaseTask => "way to release a claimed task",
            Feature::Reservations => "file reservations",
            Feature::Grants => {
                "grants or blocks of its own (the original keeps them in a file of the client's)"
            }
            Feature::TaskEvents => "task events",
            Feature::WebhookTargets => {
                "webhooks aimed at one member, group or topic (its webhooks post to every connection)"
            }
        }
    }

    /// The feature a request needs, if any. A frame whose reply needs [`Feature::Replies`] is listed too: the
    /// original takes it and answers nothing, so it must go out with [`Features::check`]'s blessing only as a
    /// frame that expects no reply.
    pub fn needed_by(frame: &Frame) -> Option<Feature> {
        Some(match frame {
            Frame::Members(_) => Feature::Members,
            Frame::InboxFetch(_) => Feature::InboxFetch,
            Frame::GetProfile(_) => Feature::Profile,
            Frame::NotificationsList(_) | Frame::NotificationsRead(_) => Feature::Notifications,
            Frame::FilePut(_)
            | Frame::FileGet(_)
            | Frame::FileList(_)
            | Frame::FileRm(_)
            | Frame::FilePutDone(_) => Feature::Files,
            Frame::TopicKey(_) | Frame::TopicPendingSeals(_) | Frame::TopicSeal(_) => {
                Feature::TopicKeys
            }
            Frame::DelState(_) => Feature::DelState,
            Frame::ReleaseTask(_) => Feature::ReleaseTask,
            Frame::ReservePaths(_) | Frame::ReleasePaths(_) | Frame::ListReservations(_) => {
                Feature::Reservations
            }
            Frame::GrantSet(_) | Frame::GrantBlock(_) | Frame::GrantList(_) => Feature::Grants,
            Frame::CreateWebhook(c) if c.to.is_some() => Feature::WebhookTargets,
            f if unanswered_there(f) => Feature::Replies,
            _ => return None,
        })
    }
}

/// Frames the original broker takes and answers nothing to (reference §7.4); ours answers them when they carry a
/// `_reqId`.
fn unanswered_there(frame: &Frame) -> bool {
    matches!(
        frame,
        Frame::SetState(_)
            | Frame::SetStatus(_)
            | Frame::SetSummary(_)
            | Frame::JoinGroup(_)
            | Frame::LeaveGroup(_)
            | Frame::TopicJoin(_)
            | Frame::TopicLeave(_)
            | Frame::TopicMarkRead(_)
    )
}

/// The features of the broker a socket is connected to, as its `hello_ack` named them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// `None`: no list, an original broker.
    names: Option<Vec<String>>,
}

impl Features {
    /// The features a `hello_ack` names; none when it names none (an original broker).
    pub fn of(ack: &HelloAck) -> Features {
        Features {
            names: ack.features.clone(),
        }
    }

    /// Everything cm-broker offers, for tests and for a session not yet connected.
    pub fn all() -> Features {
        Features {
            names: Some(wire::FEATURES.iter().map(|f| f.to_string()).collect()),
        }
    }

    /// Whether the broker offers `f`.
    pub fn has(&self, f: Feature) -> bool {
        self.names
            .as_ref()
            .is_some_and(|n| n.iter().any(|x| x == f.name()))
    }

    /// Whether the broker said nothing of its features: an original claudemesh broker.
    pub fn original(&self) -> bool {
        self.names.is_none()
    }

    /// Refuses `frame`, sent as a request that waits for its reply, when the broker cannot answer it: at once,
    /// with one line that says what the broker lacks, and [`crate::error::Code::Unsupported`].
    pub fn check(&self, frame: &Frame) -> Result<()> {
        match Feature::needed_by(frame) {
            Some(f) if !self.has(f) => Err(self.lacks(f, frame.type_name())),
            _ => Ok(()),
        }
    }

    /// The error for a broker without `f`, for what `doing` needed it.
    pub fn lacks(&self, f: Feature, doing: &str) -> Error {
        let which = if self.original() {
            "this broker (an original claudemesh broker)"
        } else {
            "this broker"
        };
        Error::unsupported(format!(
            "{which} has no {} ({doing} needs the {:?} feature)",
            f.what(),
            f.name()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_feature_is_one_the_broker_names() {
        for f in Feature::ALL {
            assert!(wire::FEATURES.contains(&f.name()), "{}", f.name());
        }
        assert_eq!(Feature::ALL.len(), wire::FEATURES.len());
    }

    #[test]
    fn an_original_broker_has_none_and_is_refused_before_anything_is_sent() {
        let original = Features::of(&HelloAck::default());
        assert!(original.original());
        let e = original
            .check(&Frame::Members(wire::Members::default()))
            .unwrap_err();
        assert_eq!(e.code, crate::error::Code::Unsupported);
        assert!(
            e.msg
                .starts_with("this broker (an original claudemesh broker) has no member list")
        );
        assert!(
            original
                .check(&Frame::ListPeers(wire::ListPeers::default()))
                .is_ok()
        );
        assert!(
            original
                .check(&Frame::SetState(wire::SetState::default()))
                .is_err()
        );
        // A webhook the original can make (to everyone); one aimed elsewhere it would silently send to everyone.
        let hook = |to: Option<&str>| {
            Frame::CreateWebhook(wire::CreateWebhook {
                name: "ci".into(),
                to: to.map(str::to_string),
                ..wire::CreateWebhook::default()
            })
        };
        assert!(original.check(&hook(None)).is_ok());
        let e = original.check(&hook(Some("@ops"))).unwrap_err();
        assert!(e.msg.contains("webhooks aimed at one member"), "{}", e.msg);
        let ours = Features::all();
        assert!(ours.check(&hook(Some("@ops"))).is_ok());
        assert!(
            ours.check(&Frame::SetState(wire::SetState::default()))
                .is_ok()
        );
        assert!(Feature::ALL.iter().all(|f| ours.has(*f)));
    }
}
