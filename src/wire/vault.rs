//! The vault (reference §6.10): secrets sealed on the client. The broker stores ciphertext and keys sealed to
//! members' public keys, and never a value in clear. Payload fields are snake_case, as the original's.

use serde::{Deserialize, Serialize};

with_req_id! {
    /// `vault_set`: answered with `vault_ack` (`action: "stored"`).
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct VaultSet {
        pub key: String,
        /// base64: the value in `crypto_secretbox` under a random key.
        pub ciphertext: String,
        /// base64, 24 bytes.
        pub nonce: String,
        /// base64: the secretbox key sealed to the setter's member key.
        pub sealed_key: String,
        /// `env` (the default) or `file`.
        #[serde(default)]
        pub entry_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub mount_path: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        /// Other members who may read it, the key sealed to each (addition).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub readers: Vec<VaultReader>,
    }
}

/// A member who may read an entry, and the entry's key sealed to them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VaultReader {
    /// The member's ed25519 key, hex.
    pub pubkey: String,
    pub sealed_key: String,
}

with_req_id! {
    /// `vault_ack`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default)]
    pub struct VaultAck {
        pub key: String,
        /// `stored`, `deleted` or `not_found`.
        pub action: String,
    }
}

with_req_id! {
    /// `vault_get`: the entries of those keys the requester may read, the key sealed to it.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default)]
    pub struct VaultGet {
        pub keys: Vec<String>,
    }
}

with_req_id! {
    /// `vault_get_result`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default)]
    pub struct VaultGetResult {
        pub entries: Vec<VaultSealed>,
    }
}

/// An entry as `vault_get` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VaultSealed {
    pub key: String,
    pub ciphertext: String,
    pub nonce: String,
    /// Sealed to the requester's member key.
    pub sealed_key: String,
    pub entry_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    /// The display name of the member who set it (addition).
    pub owner: String,
    /// Set by the requester itself (addition).
    pub mine: bool,
}

with_req_id! {
    /// `vault_list`: the entries the requester may read.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default)]
    pub struct VaultList {}
}

with_req_id! {
    /// `vault_list_result`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default)]
    pub struct VaultListResult {
        pub entries: Vec<VaultInfo>,
    }
}

/// An entry as `vault_list` gives it: no ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VaultInfo {
    pub key: String,
    pub entry_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// RFC 3339.
    pub updated_at: String,
    /// The setter's display name (addition).
    pub owner: String,
    /// The names of the other members who may read it (addition).
    pub readers: Vec<String>,
}

with_req_id! {
    /// `vault_delete`: one's own entry; answered with `vault_ack`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default)]
    pub struct VaultDelete {
        pub key: String,
    }
}
