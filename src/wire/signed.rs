//! The signed strings: what each signature covers, built here so both sides sign and verify the same bytes.

/// What a `hello` signs with the member key: `{meshId}|{memberId}|{pubkey}|{timestamp}`.
pub fn hello_signed(mesh_id: &str, member_id: &str, pubkey: &str, timestamp: i64) -> String {
    format!("{mesh_id}|{member_id}|{pubkey}|{timestamp}")
}

/// What the parent member key signs to vouch for a session key until `expires_at` (ms).
pub fn attestation_signed(
    parent_member_pubkey: &str,
    session_pubkey: &str,
    expires_at: i64,
) -> String {
    format!("claudemesh-session-attest|{parent_member_pubkey}|{session_pubkey}|{expires_at}")
}

/// What a `session_hello` signs with the session key.
pub fn session_hello_signed(
    mesh_id: &str,
    parent_member_pubkey: &str,
    session_pubkey: &str,
    timestamp: i64,
) -> String {
    format!(
        "claudemesh-session-hello|{mesh_id}|{parent_member_pubkey}|{session_pubkey}|{timestamp}"
    )
}

/// What the creator's key signs for `POST /cli/mesh/create`.
pub fn mesh_create_signed(name: &str, pubkey: &str, owner_pubkey: &str, timestamp: i64) -> String {
    format!("claudemesh-mesh-create|{name}|{pubkey}|{owner_pubkey}|{timestamp}")
}

/// What the owner key signs for `POST /cli/mesh/invite`. The token enters as the lowercase hex SHA-256 of its
/// text, computed here so both sides hash the same bytes.
pub fn invite_register_signed(mesh_id: &str, token: &str, max_uses: u32, timestamp: i64) -> String {
    let hash = crate::crypto::sha256_hex(token.as_bytes());
    format!("claudemesh-invite-register|{mesh_id}|{hash}|{max_uses}|{timestamp}")
}
