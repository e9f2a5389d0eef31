//! The broker's certificate: `--tls-cert` and `--tls-key` read into a rustls server configuration, and read
//! again on SIGHUP.
//!
//! Why a resolver and not a new `ServerConfig` per reload: rustls asks the configuration's resolver at every
//! handshake, so swapping the key behind it changes what new connections see while open ones keep the session
//! they negotiated, and the event loop needs no message to learn of it.

use super::log;
use crate::error::{Error, Result, io_message};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The certificate and key files, and the key rustls serves now.
#[derive(Debug)]
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Arc<Current>,
    config: Arc<rustls::ServerConfig>,
}

/// What [`ResolvesServerCert`] hands to every handshake.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A poisoned lock only means a reload panicked mid-swap; the value in it is still a whole key.
        Some(match self.0.read() {
            Ok(k) => k.clone(),
            Err(p) => p.into_inner().clone(),
        })
    }
}

impl Tls {
    /// Reads the PEM certificate chain (leaf first) and private key; a key that does not match the certificate
    /// is refused here rather than at the first handshake.
    pub fn load(cert: &Path, key: &Path) -> Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certified = read_pair(cert, key, &provider)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(certified))));
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal(format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // Plain HTTP/1.1 only: the WebSocket upgrade needs it, and advertising nothing makes clients assume it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current,
            config: Arc::new(config),
        })
    }

    /// The configuration the event loop serves with.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }

    /// Reads the files again and serves the new pair to handshakes from now on. A pair that does not load leaves
    /// the old one in place (and says why), so a botched renewal does not take the broker down.
    pub fn reload(&self) {
        match read_pair(&self.cert, &self.key, &self.provider) {
            Ok(k) => {
                let serial = leaf_fingerprint(&k);
                match self.current.0.write() {
                    Ok(mut cur) => *cur = Arc::new(k),
                    Err(p) => *p.into_inner() = Arc::new(k),
                }
                log::info(
                    "TLS certificate reloaded",
                    &[("cert", &self.cert.display()), ("sha256", &serial)],
                );
            }
            Err(e) => log::warn(
                "TLS certificate not reloaded; serving the previous one",
                &[("error", &e.msg)],
            ),
        }
    }

    /// The SHA-256 of the leaf certificate served now, hex: what the reload log line names.
    pub fn fingerprint(&self) -> String {
        match self.current.0.read() {
            Ok(k) => leaf_fingerprint(&k),
            Err(p) => leaf_fingerprint(&p.into_inner()),
        }
    }
}

fn leaf_fingerprint(k: &CertifiedKey) -> String {
    k.cert
        .first()
        .map(|c| crate::crypto::sha256_hex(c.as_ref()))
        .unwrap_or_default()
}

fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey> {
    let chain = read_certs(cert)?;
    let key_der = read_key(key)?;
    CertifiedKey::from_der(chain, key_der, provider).map_err(|e| {
        let why = match e {
            rustls::Error::InconsistentKeys(_) => {
                "it is not the key of that certificate".to_string()
            }
            e => e.to_string(),
        };
        Error::usage(format!(
            "--tls-key {} does not fit --tls-cert {}: {why}",
            key.display(),
            cert.display()
        ))
    })
}

fn read_file(flag: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::io(format!("--{flag} {}: {}", path.display(), io_message(&e))))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read_file("tls-cert", path)?;
    let bad = |why: String| Error::usage(format!("--tls-cert {}: {why}", path.display()));
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if chain.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read_file("tls-key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        Error::usage(format!(
            "--tls-key {}: no PEM private key in it ({e})",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    /// A fresh self-signed pair written to `dir` as `NAME.pem` and `NAME.key`.
    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, made.cert.pem()).unwrap();
        std::fs::write(&k, made.signing_key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn bad_files_fail_the_start_and_a_bad_reload_keeps_the_old_pair() {
        let dir = std::env::temp_dir().join(format!("cm-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c1, k1) = pair(&dir, "one");
        let (c2, k2) = pair(&dir, "two");
        let e = Tls::load(&c1, &k2).unwrap_err();
        assert_eq!(e.code, Code::Usage);
        assert!(
            e.msg.ends_with("it is not the key of that certificate"),
            "{}",
            e.msg
        );
        let e = Tls::load(&k1, &k1).unwrap_err();
        assert!(e.msg.contains("no PEM certificate"), "{}", e.msg);
        assert_eq!(
            Tls::load(&dir.join("none"), &k1).unwrap_err().code,
            Code::Io
        );

        let tls = Tls::load(&c1, &k1).unwrap();
        let first = tls.fingerprint();
        std::fs::copy(&c2, &c1).unwrap();
        tls.reload();
        assert_eq!(first, tls.fingerprint(), "cert two with key one: kept");
        std::fs::copy(&k2, &k1).unwrap();
        tls.reload();
        assert_ne!(first, tls.fingerprint(), "the whole new pair: served");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
