//! TLS to PostgreSQL with libpq's `sslmode` meanings, so a `DATABASE_URL`
//! that worked for Django (psycopg, libpq) works here: `disable`; `allow`
//! and `prefer` (the default: encrypt when the server offers it); `require`
//! (always encrypt, trust any certificate, as libpq does unless a root
//! certificate is given); `verify-ca` (the certificate chains to a trusted
//! root) and `verify-full` (and names the host). Trusted roots come from
//! `sslrootcert=FILE` (PEM), else the Mozilla roots built into the binary.
//!
//! tokio-postgres knows only `disable|prefer|require` and no `sslrootcert`,
//! so both are taken out of the URL here and enforced by the TLS connector.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Connection, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::db::DbError;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = DbError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(DbError::BadUrl(format!(
                    "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, \
                     verify-full"
                )));
            }
        })
    }
}

/// Where and how to connect: the tokio-postgres configuration and the TLS
/// connector that enforces the URL's `sslmode`.
#[derive(Clone)]
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
    pub ssl_mode: SslMode,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password; its own Debug redacts it.
        f.debug_struct("PgTarget")
            .field("config", &self.config)
            .field("ssl_mode", &self.ssl_mode)
            .finish()
    }
}

impl PgTarget {
    /// Parses a `postgres://` URL (or a `key=value` string, which keeps
    /// tokio-postgres's own `sslmode` handling).
    pub fn from_url(url: &str) -> Result<Self, DbError> {
        let (rest, ssl_mode, root_cert) = split_tls_options(url)?;
        let mut config =
            tokio_postgres::Config::from_str(&rest).map_err(|e| DbError::BadUrl(e.to_string()))?;
        let ssl_mode = ssl_mode.unwrap_or(match config.get_ssl_mode() {
            WireMode::Disable => SslMode::Disable,
            WireMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        });
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => WireMode::Disable,
            SslMode::Prefer => WireMode::Prefer,
            _ => WireMode::Require,
        });
        let tls = connector(ssl_mode, root_cert)?;
        Ok(Self {
            config,
            tls,
            ssl_mode,
        })
    }

    /// A target for a configuration made in code (the embedded cluster's
    /// Unix socket): no TLS.
    pub fn plain(mut config: tokio_postgres::Config) -> Result<Self, DbError> {
        config.ssl_mode(WireMode::Disable);
        Ok(Self {
            config,
            tls: connector(SslMode::Disable, None)?,
            ssl_mode: SslMode::Disable,
        })
    }
}

/// The stream a session runs on: TLS or plain, per connection.
pub type Stream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

impl PgTarget {
    /// Opens one session. With `prefer`, as in libpq, a TLS handshake that
    /// fails (a certificate we cannot read, a broken server setup) is not
    /// the end: the session is retried without TLS, which the server may
    /// still accept.
    pub async fn connect(
        &self,
    ) -> Result<(Client, Connection<Socket, Stream>), tokio_postgres::Error> {
        match self.config.connect(self.tls.clone()).await {
            Err(e) if self.ssl_mode == SslMode::Prefer && is_tls_failure(&e) => {
                tracing::warn!(error = %e, "TLS could not be set up (sslmode=prefer): connecting without it");
                let mut plain = self.config.clone();
                plain.ssl_mode(WireMode::Disable);
                plain.connect(self.tls.clone()).await
            }
            other => other,
        }
    }
}

/// Whether connecting failed in the TLS handshake (not in reaching the
/// server, not in PostgreSQL's own answer). tokio-postgres keeps its error
/// kinds private; the handshake's error is a rustls error or an I/O error
/// wrapping one, under the message below.
fn is_tls_failure(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_none() && e.to_string().contains("TLS")
}

/// deadpool's way in: every pooled session through `PgTarget::connect`.
pub(crate) struct Connector(pub PgTarget);

impl deadpool_postgres::Connect for Connector {
    fn connect(
        &self,
        _: &tokio_postgres::Config,
    ) -> futures_util::future::BoxFuture<
        '_,
        Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        Box::pin(async move {
            let (client, connection) = self.0.connect().await?;
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "database connection closed");
                }
            });
            Ok((client, task))
        })
    }
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query.
fn split_tls_options(url: &str) -> Result<(String, Option<SslMode>, Option<PathBuf>), DbError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Ok((url.to_string(), None, None));
    }
    let mut parsed = url::Url::parse(url).map_err(|e| DbError::BadUrl(e.to_string()))?;
    let mut ssl_mode = None;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "sslmode" => ssl_mode = Some(value.parse()?),
            "sslrootcert" if value != "system" => root_cert = Some(PathBuf::from(value.as_ref())),
            "sslrootcert" => {}
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((parsed.into(), ssl_mode, root_cert))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn connector(mode: SslMode, root_cert: Option<PathBuf>) -> Result<MakeRustlsConnect, DbError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::BadUrl(format!("TLS: {e}")))?;
    // libpq: with a root certificate at hand, `require` verifies the chain.
    let mode = match (mode, &root_cert) {
        (SslMode::Require, Some(_)) => SslMode::VerifyCa,
        (mode, _) => mode,
    };
    let config = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(trusted_roots(root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| DbError::BadUrl(format!("TLS: {e}")))?;
            if mode == SslMode::VerifyFull {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
                    .with_no_client_auth()
            }
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

fn trusted_roots(file: Option<PathBuf>) -> Result<RootCertStore, DbError> {
    let mut roots = RootCertStore::empty();
    let Some(file) = file else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let unreadable =
        |e: &dyn std::fmt::Display| DbError::BadUrl(format!("sslrootcert {}: {e}", file.display()));
    let certs = CertificateDer::pem_file_iter(&file)
        .map_err(|e| unreadable(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(unreadable(&"no certificate in the file"));
    }
    Ok(roots)
}

/// `prefer` and `require`: encrypted, any certificate (libpq's meaning);
/// the handshake's signatures are still checked, against the public key
/// alone. The certificate itself is not parsed by webpki, which refuses
/// what libpq takes: Citus's automatic certificate is X.509 version 1 with a
/// zero-length validity, and webpki rejects version 1 outright.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl AnyCertificate {
    fn verify(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let bad = || TlsError::InvalidCertificate(rustls::CertificateError::BadEncoding);
        let spki = der::subject_public_key_info(cert.as_ref()).ok_or_else(bad)?;
        if tls13 {
            return rustls::crypto::verify_tls13_signature_with_raw_key(
                message,
                &SubjectPublicKeyInfoDer::from(spki),
                dss,
                &self.0.signature_verification_algorithms,
            );
        }
        let (algorithm, key) = der::algorithm_and_key(spki).ok_or_else(bad)?;
        let candidates = self
            .0
            .signature_verification_algorithms
            .mapping
            .iter()
            .filter(|(scheme, _)| *scheme == dss.scheme)
            .flat_map(|(_, algs)| algs.iter())
            .filter(|alg| alg.public_key_alg_id().as_ref() == algorithm);
        let mut seen = false;
        for alg in candidates {
            seen = true;
            if alg.verify_signature(key, message, dss.signature()).is_ok() {
                return Ok(HandshakeSignatureValid::assertion());
            }
        }
        Err(if seen {
            TlsError::InvalidCertificate(rustls::CertificateError::BadSignature)
        } else {
            TlsError::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            )
        })
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.verify(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.verify(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Just enough DER to find a certificate's public key, whatever its
/// version or validity (RFC 5280 4.1).
mod der {
    /// One element: (tag, contents, the rest after it).
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }

    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xa0;
    const BIT_STRING: u8 = 0x03;

    /// The certificate's subjectPublicKeyInfo, whole (tag and length too).
    pub fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
        let (SEQUENCE, certificate, _) = element(cert)? else {
            return None;
        };
        let (SEQUENCE, tbs, _) = element(certificate)? else {
            return None;
        };
        let mut rest = tbs;
        // [0] version is absent in version 1 certificates.
        if let Some((VERSION, _, after)) = element(rest) {
            rest = after;
        }
        // serialNumber, signature, issuer, validity, subject.
        for _ in 0..5 {
            rest = element(rest)?.2;
        }
        let (SEQUENCE, _, after) = element(rest)? else {
            return None;
        };
        Some(&rest[..rest.len() - after.len()])
    }

    /// A subjectPublicKeyInfo's algorithm (the AlgorithmIdentifier's
    /// contents, as rustls compares them) and the key's bits.
    pub fn algorithm_and_key(spki: &[u8]) -> Option<(&[u8], &[u8])> {
        let (SEQUENCE, spki, _) = element(spki)? else {
            return None;
        };
        let (SEQUENCE, algorithm, rest) = element(spki)? else {
            return None;
        };
        let (BIT_STRING, bits, _) = element(rest)? else {
            return None;
        };
        // The first byte counts the unused bits: 0 for every key type.
        let (&0, key) = bits.split_first()? else {
            return None;
        };
        Some((algorithm, key))
    }
}

/// `verify-ca`: the chain must reach a trusted root; the name may differ.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(TlsError::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(TlsError::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_options_leave_the_url_and_the_rest_stays() {
        let (rest, mode, root) = split_tls_options(
            "postgres://u:p%40ss@db.example.com:5432/app?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=chatter",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p%40ss@db.example.com:5432/app?application_name=chatter"
        );
        assert_eq!(mode, Some(SslMode::VerifyFull));
        assert_eq!(root, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn no_options_no_query() {
        let (rest, mode, _) =
            split_tls_options("postgresql://localhost/app?sslmode=require").unwrap();
        assert_eq!(rest, "postgresql://localhost/app");
        assert_eq!(mode, Some(SslMode::Require));
    }

    #[test]
    fn the_default_is_prefer_as_in_libpq() {
        let target = PgTarget::from_url("postgres://localhost/app").unwrap();
        assert_eq!(target.ssl_mode, SslMode::Prefer);
        assert_eq!(target.config.get_ssl_mode(), WireMode::Prefer);
    }

    #[test]
    fn verify_modes_require_tls_on_the_wire() {
        for url in [
            "postgres://localhost/app?sslmode=verify-ca",
            "postgres://localhost/app?sslmode=verify-full",
        ] {
            let target = PgTarget::from_url(url).unwrap();
            assert_eq!(target.config.get_ssl_mode(), WireMode::Require, "{url}");
        }
    }

    #[test]
    fn an_unknown_sslmode_is_a_clear_error() {
        let err = PgTarget::from_url("postgres://localhost/app?sslmode=always").unwrap_err();
        assert!(err.to_string().contains("sslmode=always"), "{err}");
    }

    #[test]
    fn a_missing_root_certificate_file_is_named() {
        let err = PgTarget::from_url(
            "postgres://localhost/app?sslmode=verify-ca&sslrootcert=/no/such.pem",
        )
        .unwrap_err();
        assert!(err.to_string().contains("/no/such.pem"), "{err}");
    }
}
