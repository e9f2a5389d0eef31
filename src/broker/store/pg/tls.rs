//! TLS to the database, with `sslmode` and `sslrootcert` meaning what they mean to libpq (and so to `psql` and
//! every operator's habits), over rustls.
//!
//! tokio-postgres negotiates TLS for `sslmode` disable, prefer and require; what a certificate must prove is
//! decided here:
//!
//! | sslmode | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (the default), `allow` | when the server offers it | no |
//! | `require` | always | no; with `sslrootcert`, as `verify-ca` (libpq does the same) |
//! | `verify-ca` | always | chain to a trusted CA |
//! | `verify-full` | always | chain to a trusted CA, and the certificate names the host |
//!
//! `sslrootcert` is a PEM file of CAs, or `system` for the Mozilla roots the broker carries (the default for the
//! verifying modes). Why `require` checks nothing: that is what it means to libpq, and a URL that works with
//! `psql` must behave the same here; an operator who wants the server proved asks for `verify-full`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};

/// What the server's certificate must prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing: the connection is encrypted against eavesdroppers only.
    Nothing,
    /// Its chain leads to a trusted CA.
    Chain,
    /// Its chain leads to a trusted CA and it names the host connected to.
    Full,
}

/// Where the trusted CAs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The Mozilla roots the broker carries.
    System,
    File(PathBuf),
}

/// The TLS side of a database URL, and the connector it makes.
#[derive(Clone)]
pub struct Tls {
    pub check: Check,
    pub roots: Roots,
    connector: MakeRustlsConnect,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("check", &self.check)
            .field("roots", &self.roots)
            .finish()
    }
}

impl Tls {
    /// Checks nothing and trusts the system roots: a config made without a URL (`prefer`, the default).
    pub fn unverified() -> Result<Tls> {
        Tls::new(Check::Nothing, Roots::System)
    }

    /// The connector for `check` against `roots`; a root file is read now, so a bad one fails at start.
    pub fn new(check: Check, roots: Roots) -> Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::Nothing => Arc::new(Unverified(provider.clone())),
            Check::Chain | Check::Full => {
                let mut store = rustls::RootCertStore::empty();
                match &roots {
                    Roots::System => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                    Roots::File(path) => {
                        for cert in read_roots(path)? {
                            store.add(cert).map_err(|e| {
                                Error::usage(format!("sslrootcert {}: {e}", path.display()))
                            })?;
                        }
                    }
                }
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                        .build()
                        .map_err(|e| Error::usage(format!("sslrootcert: {e}")))?;
                if check == Check::Full {
                    webpki
                } else {
                    Arc::new(ChainOnly(webpki))
                }
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Tls {
            check,
            roots,
            connector: MakeRustlsConnect::new(config),
        })
    }

    /// The connector tokio-postgres hands the stream to.
    pub fn connector(&self) -> MakeRustlsConnect {
        self.connector.clone()
    }
}

impl Tls {
    /// What a connection's failure says of the server's certificate, in an operator's words, when it is a
    /// certificate this side refused.
    pub fn refusal(&self, e: &postgres::Error, c: &postgres::Config) -> Option<String> {
        use rustls::CertificateError as C;
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        let cert = loop {
            let s = source?;
            if let Some(rustls::Error::InvalidCertificate(c)) = s.downcast_ref::<rustls::Error>() {
                break c;
            }
            source = match s
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => Some(inner),
                None => s.source(),
            };
        };
        let trusted = match &self.roots {
            Roots::File(p) => format!("a CA in sslrootcert {}", p.display()),
            Roots::System => {
                "a CA this machine trusts (for a private CA, name its PEM file with sslrootcert=FILE)".into()
            }
        };
        let host = super::host(c);
        Some(match cert {
            C::UnknownIssuer | C::BadSignature => {
                format!("its TLS certificate is not signed by {trusted}")
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                "its TLS certificate does not name {host}; connect by a name it carries, or use \
                 sslmode=verify-ca to check its CA only"
            ),
            C::Expired | C::ExpiredContext { .. } => "its TLS certificate has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "its TLS certificate is not valid yet (is this machine's clock right?)".into()
            }
            other => format!("its TLS certificate: {other:?}"),
        })
    }
}

fn read_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    crate::crypto::read_ca_file(path, "sslrootcert")
}

/// Splits a database URL into what tokio-postgres parses and the TLS it should use: `sslrootcert` and the
/// verifying `sslmode`s are taken out (tokio-postgres refuses them), and `sslmode=verify-*` becomes `require`.
pub fn split(url: &str) -> Result<(String, Check, Roots)> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => return Ok((url.to_string(), Check::Nothing, Roots::System)),
    };
    let mut kept = Vec::new();
    let mut mode: Option<String> = None;
    let mut roots: Option<Roots> = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sslmode" => mode = Some(decode(v)?),
            "sslrootcert" => {
                let v = decode(v)?;
                roots = Some(if v == "system" {
                    Roots::System
                } else if v.is_empty() {
                    return Err(Error::usage("sslrootcert: expected a PEM file or system"));
                } else {
                    Roots::File(PathBuf::from(v))
                });
            }
            _ => kept.push(pair),
        }
    }
    let (wire, check) = match mode.as_deref() {
        None | Some("prefer" | "allow") => ("prefer", Check::Nothing),
        Some("disable") => ("disable", Check::Nothing),
        Some("require") if roots.is_some() => ("require", Check::Chain),
        Some("require") => ("require", Check::Nothing),
        Some("verify-ca") => ("require", Check::Chain),
        Some("verify-full") => ("require", Check::Full),
        Some(other) => {
            return Err(Error::usage(format!(
                "sslmode={other}: expected disable, allow, prefer, require, verify-ca or verify-full"
            )));
        }
    };
    if mode.is_some() {
        kept.push(match wire {
            "disable" => "sslmode=disable",
            "require" => "sslmode=require",
            _ => "sslmode=prefer",
        });
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, check, roots.unwrap_or(Roots::System)))
}

/// `%XX` decoded, as tokio-postgres decodes the values it parses.
fn decode(v: &str) -> Result<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    Error::usage(format!(
                        "not a usable PostgreSQL URL: bad %-escape in {v:?}"
                    ))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::usage("not a usable PostgreSQL URL: a %-escape that is not UTF-8"))
}

/// `prefer` and `require`: any certificate, though the handshake's signatures are still checked, so the
/// session is with whoever holds the certificate's key.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain as webpki checks it, whatever name the certificate carries.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_mean_what_they_mean_to_libpq() {
        let base = "postgres://u@db.example:5432/mesh";
        assert_eq!(
            split(base).unwrap(),
            (base.to_string(), Check::Nothing, Roots::System)
        );
        let (url, check, roots) = split(&format!(
            "{base}?sslmode=verify-full&sslrootcert=/etc/ca%20x.pem&connect_timeout=5"
        ))
        .unwrap();
        assert_eq!(url, format!("{base}?connect_timeout=5&sslmode=require"));
        assert_eq!(check, Check::Full);
        assert_eq!(roots, Roots::File("/etc/ca x.pem".into()));
        let (url, check, _) = split(&format!("{base}?sslmode=verify-ca")).unwrap();
        assert_eq!(
            (url.ends_with("?sslmode=require"), check),
            (true, Check::Chain)
        );
        assert_eq!(
            split(&format!("{base}?sslmode=require")).unwrap().1,
            Check::Nothing
        );
        assert_eq!(
            split(&format!("{base}?sslmode=require&sslrootcert=system"))
                .unwrap()
                .1,
            Check::Chain,
            "a root given makes require verify the chain, as in libpq"
        );
        let (url, check, _) = split(&format!("{base}?sslmode=allow")).unwrap();
        assert_eq!(
            (url.ends_with("?sslmode=prefer"), check),
            (true, Check::Nothing)
        );
        assert_eq!(
            split(&format!("{base}?sslmode=disable")).unwrap().0,
            format!("{base}?sslmode=disable")
        );
        let e = split(&format!("{base}?sslmode=verify")).unwrap_err();
        assert!(e.to_string().contains("sslmode=verify: expected"), "{e}");
        assert!(split(&format!("{base}?sslrootcert=")).is_err());
        assert!(split(&format!("{base}?sslrootcert=%zz")).is_err());
    }

    #[test]
    fn a_root_file_without_a_certificate_is_refused() {
        let dir = std::env::temp_dir().join(format!("cm-pgtls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("empty.pem");
        std::fs::write(&f, "not a certificate\n").unwrap();
        let e = Tls::new(Check::Full, Roots::File(f.clone())).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let e = Tls::new(Check::Full, Roots::File(dir.join("missing.pem"))).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
        // Nothing to check reads no file.
        assert!(Tls::new(Check::Nothing, Roots::File(dir.join("missing.pem"))).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
