//! Files (docs/protocol.md §6).

use serde::{Deserialize, Serialize};

with_req_id! {
    /// `file_put`: an upload of `size` plaintext bytes in chunks of `chunkSize`, each a secretbox under a key that
    /// only the recipients can open.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct FilePut {
        /// The file's name, as metadata only (a downloader sanitises it).
        pub name: String,
        /// Plaintext bytes; the broker's `max_file_bytes` applies to it.
        pub size: u64,
        /// Plaintext bytes per chunk; each ciphertext chunk is 16 bytes longer (the last may be shorter).
        pub chunk_size: u32,
        /// Who may download it, each with the file key sealed to them.
        pub recipients: Vec<FileRecipient>,
        /// What the uploader addressed (`bob`'s key, `*`, `@eng`), for listings.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub target_spec: Option<String>,
    }
}

/// One recipient of a file: a member or session key, and the file key sealed to it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRecipient {
    pub pubkey: String,
    /// Base64 `crypto_box_seal` of the 32-byte key and the 16-byte nonce prefix.
    pub sealed_key: String,
}

with_req_id! {
    /// `file_put_ready`: the broker made room for the upload.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct FilePutReady {
        pub file_id: String,
    }
}

/// `file_chunk`: ciphertext chunk `seq` (from 0) of a file, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChunk {
    pub file_id: String,
    pub seq: u64,
    /// Base64 (standard, padded), at most 48 KiB decoded.
    pub data: String,
}

/// `file_chunk_ack`: chunk `seq` arrived; the sender may go on.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChunkAck {
    pub file_id: String,
    pub seq: u64,
}

with_req_id! {
    /// `file_put_done`: the last chunk is sent; `sha256` is the hex SHA-256 of every ciphertext chunk in order.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct FilePutDone {
        pub file_id: String,
        pub sha256: String,
    }
}

with_req_id! {
    /// `file_stored`: the file is durable and listed.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct FileStored {
        pub file_id: String,
    }
}

with_req_id! {
    /// `file_get`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct FileGet {
        pub file_id: String,
    }
}

with_req_id! {
    /// `file_meta`: what a download needs before its chunks.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct FileMeta {
        pub file_id: String,
        pub name: String,
        /// Plaintext bytes.
        pub size: u64,
        /// Hex SHA-256 of the ciphertext chunks in order.
        pub sha256: String,
        /// The file key sealed to the caller (its session key's copy, else its member key's).
        pub sealed_key: String,
        pub chunk_size: u32,
    }
}

with_req_id! {
    /// `file_list`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct FileList {
    }
}

with_req_id! {
    /// `file_list_response`: newest first.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct FileListResponse {
        pub files: Vec<FileInfo>,
    }
}

/// One file in `file_list_response`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FileInfo {
    pub id: String,
    pub name: String,
    pub size: u64,
    /// The uploader's display name.
    pub uploaded_by: String,
    /// The key the uploader's socket spoke as.
    pub uploader_pubkey: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_spec: Option<String>,
    /// How many keys the file is sealed to (the uploader's own included).
    pub recipients: u32,
    /// RFC 3339.
    pub created_at: String,
}

with_req_id! {
    /// `file_rm`.
    #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct FileRm {
        pub file_id: String,
    }
}
