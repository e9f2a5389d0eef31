//! The crypto the original clients speak, byte for byte: libsodium's ed25519 keys and detached signatures, the
//! ed25519 → x25519 conversion, `crypto_box_easy`, `crypto_secretbox_easy` and `crypto_box_seal`, plus the base64 and
//! hex encodings the wire uses (reference §2.1, §4.11).
//!
//! Everything here is proven against `tests/vectors/crypto.json` (a copy of the project's shared vectors), which
//! libsodium itself produced. The one place where the Rust crates and libsodium part ways is the x25519 secret:
//! libsodium stores it clamped, so we clamp too.

use crypto_box::aead::{Aead, OsRng, generic_array::GenericArray};
use crypto_box::{SalsaBox, SecretKey as BoxSecret};
use crypto_secretbox::{KeyInit, XSalsa20Poly1305};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;

/// Why a crypto operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The input has the wrong shape: bad hex or base64, a wrong length, a key that is not a valid point.
    Malformed(String),
    /// A well-formed signature that does not verify.
    BadSignature,
    /// A ciphertext that does not open under the given keys (wrong key, or tampered with).
    Decrypt,
}

/// The result of a crypto operation.
pub type CryptoResult<T> = Result<T, CryptoError>;

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptoError::Malformed(m) => f.write_str(m),
            CryptoError::BadSignature => f.write_str("signature does not verify"),
            CryptoError::Decrypt => f.write_str("cannot decrypt: wrong key or tampered message"),
        }
    }
}

impl std::error::Error for CryptoError {}

impl From<CryptoError> for crate::error::Error {
    fn from(e: CryptoError) -> crate::error::Error {
        use crate::error::Error;
        match e {
            CryptoError::Malformed(m) => Error::generic(m),
            CryptoError::BadSignature | CryptoError::Decrypt => Error::auth(e.to_string()),
        }
    }
}

fn malformed(msg: impl Into<String>) -> CryptoError {
    CryptoError::Malformed(msg.into())
}

/// An ed25519 identity in libsodium's form: `secret` is `seed ‖ public`.
#[derive(Clone)]
pub struct Keypair {
    /// The ed25519 public key.
    pub public: [u8; 32],
    /// libsodium's 64-byte secret key: the 32-byte seed followed by the public key.
    pub secret: [u8; 64],
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("public", &self.public_hex())
            .finish_non_exhaustive()
    }
}

impl Keypair {
    /// A fresh identity from the OS random source.
    pub fn generate() -> Keypair {
        Keypair::from_seed(&random_bytes::<32>())
    }

    /// The identity libsodium's `crypto_sign_seed_keypair` derives from `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Keypair {
        let public = SigningKey::from_bytes(seed).verifying_key().to_bytes();
        let mut secret = [0u8; 64];
        secret[..32].copy_from_slice(seed);
        secret[32..].copy_from_slice(&public);
        Keypair { public, secret }
    }

    /// Reads a 128-hex libsodium secret key, refusing one whose public half does not belong to its seed.
    pub fn from_secret_hex(hex: &str) -> CryptoResult<Keypair> {
        let bytes = hex::decode(hex)?;
        let secret: [u8; 64] = bytes
            .try_into()
            .map_err(|_| malformed("secret key must be 128 hex characters"))?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&secret[..32]);
        let kp = Keypair::from_seed(&seed);
        if kp.secret != secret {
            return Err(malformed(
                "secret key's public half does not match its seed",
            ));
        }
        Ok(kp)
    }

    /// The public key as 64 lowercase hex characters, the form the broker compares.
    pub fn public_hex(&self) -> String {
        hex::encode(&self.public)
    }

    /// The secret key as 128 lowercase hex characters.
    pub fn secret_hex(&self) -> String {
        hex::encode(&self.secret)
    }

    fn signing_key(&self) -> SigningKey {
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&self.secret[..32]);
        SigningKey::from_bytes(&seed)
    }

    /// A detached ed25519 signature over `msg` (`crypto_sign_detached`).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing_key().sign(msg).to_bytes()
    }

    /// A detached signature over the UTF-8 bytes of `msg`, as 128 lowercase hex characters.
    pub fn sign_hex(&self, msg: &str) -> String {
        hex::encode(&self.sign(msg.as_bytes()))
    }

    /// The x25519 secret key, clamped as `crypto_sign_ed25519_sk_to_curve25519` returns it.
    pub fn x25519_secret(&self) -> [u8; 32] {
        let mut s = self.signing_key().to_scalar_bytes();
        s[0] &= 248;
        s[31] &= 127;
        s[31] |= 64;
        s
    }

    /// The x25519 public key, as `crypto_sign_ed25519_pk_to_curve25519` derives it from the public half.
    pub fn x25519_public(&self) -> [u8; 32] {
        // Derived through the seed rather than by decoding `public`, so that it cannot fail; every constructor
        // keeps the two consistent.
        self.signing_key()
            .verifying_key()
            .to_montgomery()
            .to_bytes()
    }
}

/// Parses a public key in the wire's only accepted form: exactly 64 lowercase hex characters.
pub fn parse_pubkey_hex(hex: &str) -> CryptoResult<[u8; 32]> {
    let ok = hex.len() == 64
        && hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    if !ok {
        return Err(malformed("public key must be 64 lowercase hex characters"));
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&hex::decode(hex)?);
    Ok(out)
}

/// Checks a detached signature (128 hex, any case) by `pubkey_hex` over `msg`, with libsodium's strictness.
pub fn verify_hex(pubkey_hex: &str, msg: &[u8], sig_hex: &str) -> CryptoResult<()> {
    let pk = parse_pubkey_hex(pubkey_hex)?;
    let sig: [u8; 64] = hex::decode(sig_hex)?
        .try_into()
        .map_err(|_| malformed("signature must be 128 hex characters"))?;
    let vk = VerifyingKey::from_bytes(&pk).map_err(|_| CryptoError::BadSignature)?;
    vk.verify_strict(msg, &Signature::from_bytes(&sig))
        .map_err(|_| CryptoError::BadSignature)
}

/// `crypto_sign_ed25519_pk_to_curve25519`: refuses what libsodium refuses (not a point, small order, or outside
/// the prime-order subgroup).
pub fn ed25519_pk_to_x25519(pk: &[u8; 32]) -> CryptoResult<[u8; 32]> {
    let bad = || malformed("not a valid ed25519 public key");
    let vk = VerifyingKey::from_bytes(pk).map_err(|_| bad())?;
    let point = vk.to_edwards();
    if point.is_small_order() || !point.is_torsion_free() {
        return Err(bad());
    }
    Ok(vk.to_montgomery().to_bytes())
}

fn salsa_box(public: &[u8; 32], secret: &[u8; 32]) -> SalsaBox {
    SalsaBox::new(&(*public).into(), &BoxSecret::from_bytes(*secret))
}

/// `crypto_box_easy`: the 16-byte tag followed by the ciphertext.
pub fn box_easy(
    msg: &[u8],
    nonce: &[u8; 24],
    recipient_x_pk: &[u8; 32],
    sender_x_sk: &[u8; 32],
) -> Vec<u8> {
    salsa_box(recipient_x_pk, sender_x_sk)
        .encrypt(GenericArray::from_slice(nonce), msg)
        // XSalsa20Poly1305 fails only when given associated data, and `&[u8]` carries none.
        .expect("crypto_box encryption is infallible without associated data")
}

/// `crypto_box_open_easy`.
pub fn box_open_easy(
    ct: &[u8],
    nonce: &[u8; 24],
    sender_x_pk: &[u8; 32],
    recipient_x_sk: &[u8; 32],
) -> CryptoResult<Vec<u8>> {
    salsa_box(sender_x_pk, recipient_x_sk)
        .decrypt(GenericArray::from_slice(nonce), ct)
        .map_err(|_| CryptoError::Decrypt)
}

/// Encrypts a DM for the ed25519 key `recipient_ed_pk_hex` under a random nonce: `(nonce, ciphertext)`, both in
/// padded standard base64.
pub fn encrypt_dm(
    plaintext: &[u8],
    recipient_ed_pk_hex: &str,
    sender: &Keypair,
) -> CryptoResult<(String, String)> {
    let recipient = ed25519_pk_to_x25519(&parse_pubkey_hex(recipient_ed_pk_hex)?)?;
    let nonce = random_bytes::<24>();
    let ct = box_easy(plaintext, &nonce, &recipient, &sender.x25519_secret());
    Ok((b64::encode(&nonce), b64::encode(&ct)))
}

/// Opens a DM that the ed25519 key `sender_ed_pk_hex` sent to `recipient`.
pub fn decrypt_dm(
    nonce_b64: &str,
    ct_b64: &str,
    sender_ed_pk_hex: &str,
    recipient: &Keypair,
) -> CryptoResult<Vec<u8>> {
    let sender = ed25519_pk_to_x25519(&parse_pubkey_hex(sender_ed_pk_hex)?)?;
    let nonce = nonce_from_b64(nonce_b64)?;
    let ct = b64::decode(ct_b64)?;
    box_open_easy(&ct, &nonce, &sender, &recipient.x25519_secret())
}

/// `crypto_secretbox_easy`: the 16-byte tag followed by the ciphertext.
pub fn secretbox_easy(msg: &[u8], nonce: &[u8; 24], key: &[u8; 32]) -> Vec<u8> {
    XSalsa20Poly1305::new(GenericArray::from_slice(key))
        .encrypt(GenericArray::from_slice(nonce), msg)
        // XSalsa20Poly1305 fails only when given associated data, and `&[u8]` carries none.
        .expect("secretbox encryption is infallible without associated data")
}

/// `crypto_secretbox_open_easy`.
pub fn secretbox_open_easy(ct: &[u8], nonce: &[u8; 24], key: &[u8; 32]) -> CryptoResult<Vec<u8>> {
    XSalsa20Poly1305::new(GenericArray::from_slice(key))
        .decrypt(GenericArray::from_slice(nonce), ct)
        .map_err(|_| CryptoError::Decrypt)
}

/// `crypto_box_seal`: an anonymous box, `ephemeral pk ‖ crypto_box_easy(msg)`.
pub fn seal(msg: &[u8], recipient_x_pk: &[u8; 32]) -> Vec<u8> {
    crypto_box::PublicKey::from(*recipient_x_pk)
        .seal(&mut OsRng, msg)
        // Sealing encrypts with XSalsa20Poly1305 and no associated data, which cannot fail.
        .expect("crypto_box_seal is infallible without associated data")
}

/// `crypto_box_seal_open`.
pub fn seal_open(
    ct: &[u8],
    recipient_x_pk: &[u8; 32],
    recipient_x_sk: &[u8; 32],
) -> CryptoResult<Vec<u8>> {
    let sk = BoxSecret::from_bytes(*recipient_x_sk);
    // libsodium derives the nonce from the given public key, so a key that does not match the secret fails to open.
    if sk.public_key().as_bytes() != recipient_x_pk {
        return Err(CryptoError::Decrypt);
    }
    sk.unseal(ct).map_err(|_| CryptoError::Decrypt)
}

/// Seals a topic key for the member `recipient_ed_pk_hex`: `(encryptedKey, nonce)` where `encryptedKey` is
/// base64(sealer's x25519 pk ‖ crypto_box_easy(key)), both in padded standard base64.
pub fn seal_topic_key(
    topic_key: &[u8; 32],
    recipient_ed_pk_hex: &str,
    sealer: &Keypair,
) -> CryptoResult<(String, String)> {
    let recipient = ed25519_pk_to_x25519(&parse_pubkey_hex(recipient_ed_pk_hex)?)?;
    let nonce = random_bytes::<24>();
    let blob = topic_key_blob(topic_key, &nonce, &recipient, sealer);
    Ok((b64::encode(&blob), b64::encode(&nonce)))
}

fn topic_key_blob(
    topic_key: &[u8; 32],
    nonce: &[u8; 24],
    recipient_x_pk: &[u8; 32],
    sealer: &Keypair,
) -> Vec<u8> {
    let mut blob = sealer.x25519_public().to_vec();
    blob.extend(box_easy(
        topic_key,
        nonce,
        recipient_x_pk,
        &sealer.x25519_secret(),
    ));
    blob
}

/// Opens a sealed topic key. The sealer's x25519 key is the blob's first 32 bytes, never a field from elsewhere.
pub fn open_topic_key(
    encrypted_key_b64: &str,
    nonce_b64: &str,
    member: &Keypair,
) -> CryptoResult<[u8; 32]> {
    let blob = b64::decode(encrypted_key_b64)?;
    let nonce = nonce_from_b64(nonce_b64)?;
    if blob.len() < 32 + 16 {
        return Err(malformed(format!(
            "sealed topic key is {} bytes, too short",
            blob.len()
        )));
    }
    let (sender, ct) = blob.split_at(32);
    let mut sender_pk = [0u8; 32];
    sender_pk.copy_from_slice(sender);
    let key = box_open_easy(ct, &nonce, &sender_pk, &member.x25519_secret())?;
    let len = key.len();
    key.try_into()
        .map_err(|_| malformed(format!("topic key is {len} bytes, expected 32")))
}

/// `N` bytes from the OS random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // Fails only when the OS has no entropy source at all; carrying on without randomness would be worse.
    getrandom::getrandom(&mut out).expect("the OS random source is unavailable");
    out
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// HMAC-SHA256 (RFC 2104) of `msg` under `key`, as GitHub signs a webhook's body (`X-Hub-Signature-256`).
/// A dozen lines over sha2 rather than the `hmac` crate: only the broker needs it, the construction is fixed,
/// and RFC 4231's vectors in the tests below prove it.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&sha256(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(k.map(|b| b ^ 0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(k.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// SHA-256 of `data` as 64 lowercase hex characters.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(&sha256(data))
}

/// Decodes a 24-byte nonce from padded standard base64.
pub fn nonce_from_b64(s: &str) -> CryptoResult<[u8; 24]> {
    let bytes = b64::decode(s)?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| malformed(format!("nonce is {len} bytes, expected 24")))
}

/// Base64 in the two variants the wire uses.
pub mod b64 {
    use super::{CryptoResult, malformed};
    use base64::Engine;
    use base64::alphabet::URL_SAFE;
    use base64::engine::DecodePaddingMode;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

    // Tokens are written without padding, but one pasted from a padded encoder should still read.
    const URL: GeneralPurpose = GeneralPurpose::new(
        &URL_SAFE,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );

    /// Standard base64 with padding (libsodium's `ORIGINAL`).
    pub fn encode(b: &[u8]) -> String {
        STANDARD.encode(b)
    }

    /// Decodes standard base64 with padding.
    pub fn decode(s: &str) -> CryptoResult<Vec<u8>> {
        STANDARD
            .decode(s)
            .map_err(|e| malformed(format!("invalid base64: {e}")))
    }

    /// URL-safe base64 without padding (libsodium's `URLSAFE_NO_PADDING`).
    pub fn encode_url(b: &[u8]) -> String {
        URL.encode(b)
    }

    /// Decodes URL-safe base64, with or without padding.
    pub fn decode_url(s: &str) -> CryptoResult<Vec<u8>> {
        URL.decode(s)
            .map_err(|e| malformed(format!("invalid base64url: {e}")))
    }
}

/// Hex: lowercase out, either case in.
pub mod hex {
    use super::{CryptoResult, malformed};

    /// Lowercase hex of `b`.
    pub fn encode(b: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(b.len() * 2);
        for &x in b {
            s.push(DIGITS[usize::from(x >> 4)] as char);
            s.push(DIGITS[usize::from(x & 15)] as char);
        }
        s
    }

    /// Decodes hex of either case.
    pub fn decode(s: &str) -> CryptoResult<Vec<u8>> {
        if !s.len().is_multiple_of(2) {
            return Err(malformed("invalid hex: odd length"));
        }
        s.as_bytes()
            .chunks(2)
            .map(|p| match (nibble(p[0]), nibble(p[1])) {
                (Some(h), Some(l)) => Ok(h << 4 | l),
                _ => Err(malformed("invalid hex: not a hex digit")),
            })
            .collect()
    }

    fn nibble(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
}

/// The certificates of a PEM file of CAs; `what` says where its name came from (`$CLAUDEMESH_CA_FILE`,
/// `--ca-file`), for the error. A file without a certificate is refused: trusting nothing new is surely not
/// what was meant.
pub fn read_ca_file(
    path: &std::path::Path,
    what: &str,
) -> crate::error::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use crate::error::Error;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| {
        Error::io(format!(
            "reading {what} {shown}: {}",
            crate::error::io_message(&e)
        ))
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::usage(format!("{what} {shown}: {e}")))?;
    if certs.is_empty() {
        return Err(Error::usage(format!(
            "{what} {shown}: no PEM certificate in it"
        )));
    }
    Ok(certs)
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

    #[test]
    fn the_vectors_are_a_copy_of_the_shared_ones() {
        // Where the project's shared vectors are checked out beside this repository, the copy must not drift.
        let ours = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/crypto.json");
        let shared = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors/crypto.json");
        if let Ok(theirs) = std::fs::read(shared) {
            assert!(
                std::fs::read(ours).unwrap() == theirs,
                "{ours} differs from {shared}"
            );
        }
    }

    fn s<'a>(v: &'a Value, key: &str) -> &'a str {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("vector field {key} missing"))
    }

    fn ident(v: &Value, name: &str) -> Keypair {
        let id = &v["identities"][name];
        let seed: [u8; 32] = hex::decode(s(id, "seed_hex")).unwrap().try_into().unwrap();
        Keypair::from_seed(&seed)
    }

    fn arr<const N: usize>(b: Vec<u8>) -> [u8; N] {
        b.try_into().unwrap()
    }

    #[test]
    fn identities_match_libsodium() {
        let v = vectors();
        let ids = v["identities"].as_object().unwrap();
        assert!(ids.len() >= 5);
        for (name, id) in ids {
            let kp = ident(&v, name);
            assert_eq!(kp.public_hex(), s(id, "pubkey_hex"), "{name}");
            assert_eq!(kp.secret_hex(), s(id, "secret_hex"), "{name}");
            assert_eq!(
                hex::encode(&kp.x25519_public()),
                s(id, "x25519_pub_hex"),
                "{name}"
            );
            assert_eq!(
                hex::encode(&kp.x25519_secret()),
                s(id, "x25519_secret_hex"),
                "{name}"
            );
            let pk = parse_pubkey_hex(s(id, "pubkey_hex")).unwrap();
            assert_eq!(
                hex::encode(&ed25519_pk_to_x25519(&pk).unwrap()),
                s(id, "x25519_pub_hex")
            );
            let again = Keypair::from_secret_hex(s(id, "secret_hex")).unwrap();
            assert_eq!(again.secret, kp.secret);
            assert_eq!(
                Keypair::from_secret_hex(&s(id, "secret_hex").to_uppercase())
                    .unwrap()
                    .public,
                kp.public
            );
        }
    }

    #[test]
    fn signatures_match_libsodium() {
        let v = vectors();
        let sigs = v["signatures"].as_array().unwrap();
        assert_eq!(sigs.len(), 3);
        for sig in sigs {
            let kp = ident(&v, s(sig, "signer"));
            let msg = s(sig, "message");
            assert_eq!(
                kp.sign_hex(msg),
                s(sig, "signature_hex"),
                "{}",
                s(sig, "what")
            );
            verify_hex(&kp.public_hex(), msg.as_bytes(), s(sig, "signature_hex")).unwrap();
            verify_hex(
                &kp.public_hex(),
                msg.as_bytes(),
                &s(sig, "signature_hex").to_uppercase(),
            )
            .unwrap();
            let mut other = msg.to_string();
            other.push('x');
            assert_eq!(
                verify_hex(&kp.public_hex(), other.as_bytes(), s(sig, "signature_hex")),
                Err(CryptoError::BadSignature)
            );
        }
    }

    #[test]
    fn invite_v1_signature_and_token() {
        let v = vectors();
        let inv = &v["invite_v1"];
        let owner = ident(&v, "mesh-owner");
        let payload = &inv["payload"];
        assert_eq!(s(payload, "owner_pubkey"), owner.public_hex());
        assert_eq!(owner.sign_hex(s(inv, "canonical")), s(payload, "signature"));
        verify_hex(
            s(payload, "owner_pubkey"),
            s(inv, "canonical").as_bytes(),
            s(payload, "signature"),
        )
        .unwrap();

        let token = s(inv, "token");
        let bytes = b64::decode_url(token).unwrap();
        let decoded: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(&decoded, payload);
        assert_eq!(b64::encode_url(&bytes), token);
        assert_eq!(s(inv, "url"), format!("ic://join/{token}"));
        // The root key inside is base64url without padding, 32 bytes.
        assert_eq!(
            b64::decode_url(s(payload, "mesh_root_key")).unwrap().len(),
            32
        );
    }

    #[test]
    fn crypto_box_easy_matches_libsodium() {
        let v = vectors();
        let boxes = v["crypto_box_easy"].as_array().unwrap();
        assert_eq!(boxes.len(), 4);
        for bx in boxes {
            let from = ident(&v, s(bx, "from"));
            let to = ident(&v, s(bx, "to"));
            let nonce = nonce_from_b64(s(bx, "nonce_b64")).unwrap();
            let pt = s(bx, "plaintext").as_bytes();
            let ct = box_easy(pt, &nonce, &to.x25519_public(), &from.x25519_secret());
            assert_eq!(b64::encode(&ct), s(bx, "ciphertext_b64"));
            assert_eq!(ct.len(), pt.len() + 16);
            let opened = decrypt_dm(
                s(bx, "nonce_b64"),
                s(bx, "ciphertext_b64"),
                &from.public_hex(),
                &to,
            )
            .unwrap();
            assert_eq!(opened, pt);
            // The wrong recipient cannot open it.
            let carol = ident(&v, "carol");
            assert_eq!(
                decrypt_dm(
                    s(bx, "nonce_b64"),
                    s(bx, "ciphertext_b64"),
                    &from.public_hex(),
                    &carol
                ),
                Err(CryptoError::Decrypt)
            );
        }
    }

    #[test]
    fn crypto_box_easy_tampered_fails() {
        let v = vectors();
        let t = &v["crypto_box_easy_tampered"];
        assert_eq!(t["must_fail"], Value::Bool(true));
        let from = ident(&v, s(t, "from"));
        let to = ident(&v, s(t, "to"));
        let r = decrypt_dm(
            s(t, "nonce_b64"),
            s(t, "ciphertext_b64"),
            &from.public_hex(),
            &to,
        );
        assert_eq!(r, Err(CryptoError::Decrypt));
    }

    #[test]
    fn crypto_secretbox_easy_matches_libsodium() {
        let v = vectors();
        let boxes = v["crypto_secretbox_easy"].as_array().unwrap();
        assert_eq!(boxes.len(), 2);
        for bx in boxes {
            let key: [u8; 32] = arr(b64::decode(s(bx, "key_b64")).unwrap());
            let nonce = nonce_from_b64(s(bx, "nonce_b64")).unwrap();
            let pt = s(bx, "plaintext").as_bytes();
            let ct = secretbox_easy(pt, &nonce, &key);
            assert_eq!(b64::encode(&ct), s(bx, "ciphertext_b64"));
            assert_eq!(secretbox_open_easy(&ct, &nonce, &key).unwrap(), pt);
            let mut wrong = key;
            wrong[0] ^= 1;
            assert_eq!(
                secretbox_open_easy(&ct, &nonce, &wrong),
                Err(CryptoError::Decrypt)
            );
        }
    }

    #[test]
    fn topic_key_seal_matches_libsodium() {
        let v = vectors();
        let t = &v["topic_key_seal"];
        let sealer = ident(&v, s(t, "sealer"));
        let recipient = ident(&v, s(t, "recipient"));
        let key: [u8; 32] = arr(b64::decode(s(t, "topic_key_b64")).unwrap());

        let opened =
            open_topic_key(s(t, "encrypted_key_b64"), s(t, "nonce_b64"), &recipient).unwrap();
        assert_eq!(opened, key);

        let nonce = nonce_from_b64(s(t, "nonce_b64")).unwrap();
        let blob = topic_key_blob(&key, &nonce, &recipient.x25519_public(), &sealer);
        assert_eq!(blob.len(), 80);
        assert_eq!(b64::encode(&blob), s(t, "encrypted_key_b64"));

        assert_eq!(
            open_topic_key(s(t, "encrypted_key_b64"), s(t, "nonce_b64"), &sealer),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn crypto_box_seal_opens() {
        let v = vectors();
        let t = &v["crypto_box_seal"];
        let bob = ident(&v, s(t, "recipient"));
        let sealed = b64::decode(s(t, "sealed_b64")).unwrap();
        let opened = seal_open(&sealed, &bob.x25519_public(), &bob.x25519_secret()).unwrap();
        assert_eq!(b64::encode(&opened), s(t, "plaintext_b64"));

        let alice = ident(&v, "alice");
        assert_eq!(
            seal_open(&sealed, &alice.x25519_public(), &alice.x25519_secret()),
            Err(CryptoError::Decrypt)
        );
        // A public key that does not belong to the secret fails, as in libsodium.
        assert_eq!(
            seal_open(&sealed, &alice.x25519_public(), &bob.x25519_secret()),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(
            seal_open(&sealed[..40], &bob.x25519_public(), &bob.x25519_secret()),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn round_trips() {
        let a = Keypair::generate();
        let b = Keypair::generate();
        assert_ne!(a.public, b.public);
        assert_eq!(
            Keypair::from_secret_hex(&a.secret_hex()).unwrap().public,
            a.public
        );

        let (nonce, ct) = encrypt_dm("hi there".as_bytes(), &b.public_hex(), &a).unwrap();
        assert_eq!(nonce.len(), 32);
        assert_eq!(
            decrypt_dm(&nonce, &ct, &a.public_hex(), &b).unwrap(),
            b"hi there"
        );
        assert_eq!(
            decrypt_dm(&nonce, &ct, &b.public_hex(), &b),
            Err(CryptoError::Decrypt)
        );

        let key = random_bytes::<32>();
        let (ek, n) = seal_topic_key(&key, &b.public_hex(), &a).unwrap();
        assert_eq!(b64::decode(&ek).unwrap().len(), 80);
        assert_eq!(open_topic_key(&ek, &n, &b).unwrap(), key);
        assert_eq!(open_topic_key(&ek, &n, &a), Err(CryptoError::Decrypt));

        let sealed = seal(b"root key", &b.x25519_public());
        assert_eq!(sealed.len(), 32 + 16 + 8);
        assert_eq!(
            seal_open(&sealed, &b.x25519_public(), &b.x25519_secret()).unwrap(),
            b"root key"
        );

        let sig = a.sign_hex("msg");
        verify_hex(&a.public_hex(), b"msg", &sig).unwrap();
        assert_eq!(
            verify_hex(&b.public_hex(), b"msg", &sig),
            Err(CryptoError::BadSignature)
        );

        for bytes in [&b""[..], b"f", b"fo", b"foo", b"\xff\xfe\x00"] {
            assert_eq!(b64::decode(&b64::encode(bytes)).unwrap(), bytes);
            assert_eq!(b64::decode_url(&b64::encode_url(bytes)).unwrap(), bytes);
            assert_eq!(hex::decode(&hex::encode(bytes)).unwrap(), bytes);
        }
        assert_eq!(
            b64::decode_url("_-8=").unwrap(),
            b64::decode_url("_-8").unwrap()
        );
        assert_eq!(hex::decode("ABcd").unwrap(), [0xab, 0xcd]);
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn malformed_inputs() {
        let v = vectors();
        let alice = ident(&v, "alice");
        let pk = alice.public_hex();
        let is_malformed = |r: CryptoResult<()>| matches!(r, Err(CryptoError::Malformed(_)));

        assert!(parse_pubkey_hex(&pk.to_uppercase()).is_err());
        assert!(parse_pubkey_hex(&pk[..62]).is_err());
        assert!(parse_pubkey_hex(&format!("{}g", &pk[..63])).is_err());
        assert!(parse_pubkey_hex(&format!("{pk}00")).is_err());

        let sig = alice.sign_hex("m");
        assert!(is_malformed(verify_hex(&pk.to_uppercase(), b"m", &sig)));
        assert!(is_malformed(verify_hex(&pk, b"m", &sig[..126])));
        assert!(is_malformed(verify_hex(
            &pk,
            b"m",
            &format!("{}zz", &sig[..126])
        )));
        assert!(is_malformed(verify_hex(&pk, b"m", "")));

        assert!(matches!(
            Keypair::from_secret_hex("abc"),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            Keypair::from_secret_hex(&pk),
            Err(CryptoError::Malformed(_))
        ));
        let mut wrong = alice.secret_hex();
        wrong.replace_range(127.., if wrong.ends_with('0') { "1" } else { "0" });
        assert!(matches!(
            Keypair::from_secret_hex(&wrong),
            Err(CryptoError::Malformed(_))
        ));

        assert!(matches!(
            nonce_from_b64("AAAA"),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            b64::decode("not base64!"),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            b64::decode("qPUTLMZNW0hOArvZJ4IErSI-rSegLVob"),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(hex::decode("abc"), Err(CryptoError::Malformed(_))));
        assert!(matches!(
            decrypt_dm("AAAA", "AAAA", &pk, &alice),
            Err(CryptoError::Malformed(_))
        ));
        assert!(matches!(
            open_topic_key("AAAA", &b64::encode(&[0; 24]), &alice),
            Err(CryptoError::Malformed(_))
        ));
        // A ciphertext shorter than the tag is a failed open, not a panic.
        let n = [0u8; 24];
        assert_eq!(
            box_open_easy(
                &[1, 2, 3],
                &n,
                &alice.x25519_public(),
                &alice.x25519_secret()
            ),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(
            secretbox_open_easy(&[], &n, &[0; 32]),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn invalid_points_are_rejected() {
        // The identity, a point of order 2, and a y with no point on the curve.
        let identity = {
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        };
        let mut order2 = [0xffu8; 32];
        order2[0] = 0xec;
        order2[31] = 0x7f;
        assert!(ed25519_pk_to_x25519(&identity).is_err());
        assert!(ed25519_pk_to_x25519(&order2).is_err());
        let mut not_on_curve = [0u8; 32];
        not_on_curve[0] = 2;
        assert!(ed25519_pk_to_x25519(&not_on_curve).is_err());
        assert!(encrypt_dm(b"x", &hex::encode(&identity), &Keypair::generate()).is_err());

        // A valid key plus a small-order component is outside the prime-order subgroup.
        let alice = Keypair::from_seed(&[7; 32]);
        let mixed = VerifyingKey::from_bytes(&alice.public)
            .unwrap()
            .to_edwards()
            + VerifyingKey::from_bytes(&order2).unwrap().to_edwards();
        let mixed = mixed.compress().to_bytes();
        assert!(ed25519_pk_to_x25519(&mixed).is_err());
        assert!(ed25519_pk_to_x25519(&alice.public).is_ok());
    }

    #[test]
    fn error_codes_and_debug() {
        use crate::error::{Code, Error};
        assert_eq!(
            Error::from(CryptoError::Malformed("bad".into())),
            Error::new(Code::Generic, "bad")
        );
        assert_eq!(Error::from(CryptoError::BadSignature).code, Code::Auth);
        assert_eq!(Error::from(CryptoError::Decrypt).code, Code::Auth);
        let kp = Keypair::from_seed(&[9; 32]);
        let dbg = format!("{kp:?}");
        assert!(dbg.contains(&kp.public_hex()));
        assert!(!dbg.contains(&hex::encode(&kp.secret[..32])));
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // Test cases 1, 2 and 6 (a key longer than the block, hashed first).
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, msg, want) in cases {
            assert_eq!(hex::encode(&hmac_sha256(key, msg)), want);
        }
    }
}
