//! Mail over SMTP: the `Mailer` that sign-up (address verification),
//! password reset and usage notices send through. Built from `smtp.*` when
//! `smtp.host` is set; without it there is no mailer and callers do
//! without mail. lettre speaks SMTP on tokio, with rustls for STARTTLS or
//! TLS from the first byte.
//!
//! The password comes only from the environment (`config`) and is never
//! logged: errors carry lettre's own text, which names no credential.
//!
//! The relay's certificate is checked against the Mozilla roots and, for a
//! relay on a private CA, the certificates in `smtp.ca_file`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::config::{SmtpSettings, SmtpTls};
use crate::error_kind::{Class, Classify, Kind};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("smtp.from {0:?} is not a mailbox (`Name <address>` or an address)")]
    BadSender(String),
    #[error("{0:?} is not an address mail can go to")]
    BadRecipient(String),
    #[error("the SMTP settings are not usable: {0}")]
    Settings(String),
    #[error("the message could not be built: {0}")]
    Build(String),
    #[error("the SMTP server did not take the message: {0}")]
    Send(String),
}

impl Classify for MailError {
    fn kind(&self) -> Kind {
        match self {
            MailError::BadRecipient(_) => Kind::bad_input(),
            MailError::BadSender(_) | MailError::Settings(_) | MailError::Build(_) => {
                Kind::internal()
            }
            MailError::Send(_) => Kind::new(Class::Unavailable, "mail_unavailable")
                .saying("mail could not be sent just now; try again shortly")
                .retry_after(Duration::from_secs(30)),
        }
    }
}

/// Subjects and bodies are ours, but the recipient and any text a caller
/// puts in come from users: bound what one message may carry.
const MAX_SUBJECT_CHARS: usize = 200;
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Sends plain-text mail through the configured relay. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: Arc<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
}

impl Mailer {
    /// The mailer `smtp.*` describes, or None when `smtp.host` is unset.
    pub fn from_settings(smtp: &SmtpSettings) -> Result<Option<Self>, MailError> {
        let Some(host) = smtp.host.as_deref() else {
            return Ok(None);
        };
        let from_text = smtp.from.as_deref().unwrap_or_default();
        let from: Mailbox = from_text
            .parse()
            .map_err(|_| MailError::BadSender(from_text.to_string()))?;
        // Read even when `tls` is `none`: a wrong path shows at start-up,
        // not on the day someone turns TLS on.
        let extra_roots = match &smtp.ca_file {
            Some(path) => trusted_certificates(path)?,
            None => Vec::new(),
        };
        let tls_parameters = || {
            let mut builder = TlsParameters::builder(host.to_string());
            for certificate in extra_roots {
                builder = builder.add_root_certificate(certificate);
            }
            builder
                .build_rustls()
                .map_err(|e| MailError::Settings(e.to_string()))
        };
        let plain = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host);
        let builder = match smtp.tls {
            SmtpTls::None => plain,
            // Required, not Opportunistic: a relay (or someone in the way)
            // that does not offer STARTTLS gets nothing in the clear.
            SmtpTls::Starttls => plain.tls(Tls::Required(tls_parameters()?)),
            SmtpTls::Tls => plain.tls(Tls::Wrapper(tls_parameters()?)),
        };
        let mut builder = builder
            .port(smtp.port)
            .timeout(Some(Duration::from_secs(smtp.timeout_secs.max(1))));
        if let Some(username) = &smtp.username {
            let password = smtp
                .password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        Ok(Some(Self {
            transport: Arc::new(builder.build()),
            from,
        }))
    }

    /// Sends one plain-text message to `to`; returns once the relay took it.
    pub async fn send(&self, to: &str, subject: &str, text_body: &str) -> Result<(), MailError> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| MailError::BadRecipient(to.to_string()))?;
        if subject.chars().count() > MAX_SUBJECT_CHARS || text_body.len() > MAX_BODY_BYTES {
            return Err(MailError::Build(
                "the subject or the body is too long".into(),
            ));
        }
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text_body.to_string())
            .map_err(|e| MailError::Build(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Send(e.to_string()))
    }

    /// Sends without making the caller wait (a request answers at once and
    /// the relay's pace is not the client's business); a failure is logged
    /// with the recipient's domain only.
    pub fn send_later(&self, to: String, subject: String, text_body: String) {
        let mailer = self.clone();
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&to, &subject, &text_body).await {
                let domain = to.rsplit('@').next().unwrap_or_default().to_string();
                tracing::error!(error = %e, %domain, %subject, "mail not sent");
            }
        });
    }
}

/// The certificates of `smtp.ca_file` (PEM), each checked to be usable as
/// a trust anchor here, so that a bad file stops the start rather than
/// every later message.
fn trusted_certificates(path: &Path) -> Result<Vec<Certificate>, MailError> {
    let named = |problem: String| {
        MailError::Settings(format!("smtp.ca_file {}: {problem}", path.display()))
    };
    let pem = std::fs::read(path).map_err(|e| named(format!("cannot be read: {e}")))?;
    let ders = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| named(format!("is not PEM: {e}")))?;
    if ders.is_empty() {
        return Err(named(
            "holds no certificate (no `-----BEGIN CERTIFICATE-----`)".into(),
        ));
    }
    let mut anchors = rustls::RootCertStore::empty();
    ders.into_iter()
        .enumerate()
        .map(|(i, der)| {
            anchors
                .add(der.clone())
                .map_err(|e| named(format!("certificate {} is not usable: {e}", i + 1)))?;
            Certificate::from_der(der.to_vec()).map_err(|e| named(e.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(host: Option<&str>, from: Option<&str>) -> SmtpSettings {
        SmtpSettings {
            host: host.map(str::to_string),
            from: from.map(str::to_string),
            ..SmtpSettings::default()
        }
    }

    #[test]
    fn no_host_no_mailer() {
        assert!(
            Mailer::from_settings(&settings(None, None))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_bad_sender_is_named() {
        let err = match Mailer::from_settings(&settings(Some("localhost"), Some("not an address")))
        {
            Err(e) => e,
            Ok(_) => panic!("a bad sender was taken"),
        };
        assert!(err.to_string().contains("not an address"), "{err}");
        for tls in [SmtpTls::None, SmtpTls::Starttls, SmtpTls::Tls] {
            let mut s = settings(Some("localhost"), Some("Chatter <no-reply@example.com>"));
            s.tls = tls;
            assert!(Mailer::from_settings(&s).unwrap().is_some());
        }
    }

    fn file_with(contents: &[u8]) -> tempfile::NamedTempFile {
        use std::io::Write as _;
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(contents).unwrap();
        file
    }

    fn ca_pem(name: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn a_ca_file_of_one_or_more_certificates_is_taken_for_every_tls_mode() {
        let one = file_with(ca_pem("one").as_bytes());
        let bundle = file_with(format!("{}\n{}", ca_pem("one"), ca_pem("two")).as_bytes());
        for file in [&one, &bundle] {
            for tls in [SmtpTls::None, SmtpTls::Starttls, SmtpTls::Tls] {
                let mut s = settings(Some("localhost"), Some("no-reply@example.com"));
                s.tls = tls;
                s.ca_file = Some(file.path().to_path_buf());
                assert!(Mailer::from_settings(&s).unwrap().is_some());
            }
        }
    }

    #[test]
    fn a_ca_file_without_a_usable_certificate_is_named() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "holds no certificate"),
            (b"a relay's CA, surely\n", "holds no certificate"),
            (
                b"-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n",
                "holds no certificate",
            ),
            (
                b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
                "is not PEM",
            ),
            (b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n", "is not PEM"),
            (
                b"-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
                "certificate 1 is not usable",
            ),
        ];
        for (contents, says) in cases {
            let file = file_with(contents);
            let mut s = settings(Some("localhost"), Some("no-reply@example.com"));
            s.ca_file = Some(file.path().to_path_buf());
            let err = match Mailer::from_settings(&s) {
                Err(e) => e,
                Ok(_) => panic!("{contents:?} was taken"),
            };
            assert!(matches!(err, MailError::Settings(_)), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains(&file.path().display().to_string()) && text.contains(says),
                "{contents:?}: {text}"
            );
        }
    }

    #[tokio::test]
    async fn a_bad_recipient_is_refused_before_any_connection() {
        // Port 9 on loopback: nothing listens, and nothing is tried.
        let mut s = settings(Some("127.0.0.1"), Some("no-reply@example.com"));
        s.tls = SmtpTls::None;
        s.port = 9;
        let mailer = Mailer::from_settings(&s).unwrap().unwrap();
        let err = mailer.send("nobody", "hi", "body").await.unwrap_err();
        assert!(matches!(err, MailError::BadRecipient(_)), "{err:?}");
        let err = mailer
            .send("a@example.com", &"s".repeat(201), "body")
            .await
            .unwrap_err();
        assert!(matches!(err, MailError::Build(_)), "{err:?}");
    }
}
