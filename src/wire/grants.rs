//! Grants and blocks (docs/protocol.md §6.12): who may DM a member, push to it with `now`, copy it on a
//! broadcast or fetch the files it uploaded. Additions: the original keeps them in a client file and a REST call.

use serde::{Deserialize, Serialize};

with_req_id! {
    /// `grant_set`: capabilities (`dm`, `broadcast`, `now`, `files`) allowed (`allow`) or refused to a member,
    /// named by its member or session key, or to everyone without a grant of their own (`peer: "*"`); answered
    /// with `grant_state`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct GrantSet {
        pub peer: String,
        pub caps: Vec<String>,
        pub allow: bool,
    }
}

with_req_id! {
    /// `grant_block`: blocks (`blocked`) or unblocks a member; answered with `grant_state`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct GrantBlock {
        pub peer: String,
        pub blocked: bool,
    }
}

with_req_id! {
    /// `grant_list`: the requester's own grants and blocks; answered with `grant_state`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct GrantList {}
}

with_req_id! {
    /// `grant_state`: what everyone may do (`everyone`), then each member with a grant or block of its own.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct GrantState {
        /// The capabilities a member without a grant of its own has.
        pub everyone: Vec<String>,
        pub peers: Vec<PeerGrant>,
    }
}

/// One member's grants in `grant_state`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PeerGrant {
    /// The member key.
    pub pubkey: String,
    pub name: String,
    pub blocked: bool,
    /// What the member may do (nothing while it is blocked).
    pub caps: Vec<String>,
    /// The capabilities granted to it, whatever everyone has.
    pub granted: Vec<String>,
    /// The capabilities refused to it, whatever everyone has.
    pub revoked: Vec<String>,
}
