//! A small SMTP server for tests: it takes every message it is given
//! (EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and hands it
//! to the test as it was received, so a test reads the real message the
//! application sent and follows its links. Plain by default; started with
//! `SinkTls::Starttls` or `SinkTls::Tls` it speaks TLS with a certificate
//! for 127.0.0.1 and localhost from a CA of its own, made afresh for each
//! sink, so a client trusts it only through `ca_file()`.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// One message as the sink received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The `AUTH PLAIN` user and password the client sent, if it did.
    pub auth: Option<(String, String)>,
    /// The DATA: headers and body, dot-unstuffed, CRLF line ends.
    pub data: String,
    /// Whether the session was encrypted when the message was taken (after
    /// STARTTLS, or TLS from the first byte).
    pub tls: bool,
}

impl Mail {
    /// A header's value (unfolded), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }

    /// The body as text, its transfer encoding undone.
    pub fn text(&self) -> String {
        let body = self
            .data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        match encoding.as_str() {
            "quoted-printable" => quoted_printable(body),
            "base64" => {
                let compact: String = body.split_whitespace().collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("a base64 body");
                String::from_utf8(bytes).expect("a UTF-8 body")
            }
            _ => body.to_string(),
        }
        .replace("\r\n", "\n")
    }

    /// The first link in the body.
    pub fn link(&self) -> String {
        let text = self.text();
        let start = text.find("http").expect("the message has a link");
        text[start..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

fn quoted_printable(body: &str) -> String {
    let joined = body.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(byte) = u8::from_str_radix(hex, 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("a UTF-8 body")
}

/// How clients reach the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    /// Plain text only; STARTTLS is not offered.
    None,
    /// Plain, with STARTTLS offered in the EHLO answer.
    Starttls,
    /// TLS from the first byte.
    Tls,
}

/// The sink: listening on a loopback port until dropped.
pub struct SmtpSink {
    pub port: u16,
    received: mpsc::UnboundedReceiver<Mail>,
    task: tokio::task::JoinHandle<()>,
    /// The sink's own CA certificate (PEM), in TLS modes.
    ca: Option<tempfile::NamedTempFile>,
}

impl SmtpSink {
    /// A plain-text sink.
    pub async fn start() -> Self {
        Self::start_with(SinkTls::None).await
    }

    pub async fn start_with(mode: SinkTls) -> Self {
        let (acceptor, ca) = match mode {
            SinkTls::None => (None, None),
            SinkTls::Starttls | SinkTls::Tls => {
                let (acceptor, ca) = tls_identity();
                (Some(acceptor), Some(ca))
            }
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, received) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = session(stream, tx, mode, acceptor).await;
                });
            }
        });
        Self {
            port,
            received,
            task,
            ca,
        }
    }

    /// The PEM file of the CA that issued this sink's certificate: what
    /// `smtp.ca_file` names to trust it. Only TLS sinks have one.
    pub fn ca_file(&self) -> &Path {
        self.ca
            .as_ref()
            .expect("a plain sink has no certificate")
            .path()
    }

    /// The next message, waiting at most `wait`.
    pub async fn next(&mut self, wait: Duration) -> Mail {
        tokio::time::timeout(wait, self.received.recv())
            .await
            .expect("no message reached the SMTP sink in time")
            .expect("the sink stopped")
    }

    /// Whether no message arrives within `wait`.
    pub async fn nothing_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.received.recv())
            .await
            .is_err()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Longest line or message the sink reads: it is a test's, not a relay.
const MAX_LINE: usize = 4096;
const MAX_DATA: usize = 1024 * 1024;

/// A CA of the sink's own and a certificate it issued for the names a test
/// dials, the way a relay on a private CA is set up; the CA goes to a
/// temporary file for `smtp.ca_file`.
fn tls_identity() -> (TlsAcceptor, tempfile::NamedTempFile) {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Chatter test SMTP sink CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("the CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().expect("the sink's key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("the sink's names");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params
        .signed_by(&key, &issuer)
        .expect("the sink's certificate");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("the sink's TLS configuration");

    let mut ca_file = tempfile::Builder::new()
        .prefix("smtp-sink-ca-")
        .suffix(".pem")
        .tempfile()
        .expect("a temporary file");
    ca_file
        .write_all(ca_cert.pem().as_bytes())
        .expect("the CA written");
    (TlsAcceptor::from(Arc::new(config)), ca_file)
}

async fn session(
    stream: TcpStream,
    tx: mpsc::UnboundedSender<Mail>,
    mode: SinkTls,
    acceptor: Option<TlsAcceptor>,
) -> std::io::Result<()> {
    match (mode, acceptor) {
        (SinkTls::Tls, Some(acceptor)) => {
            let stream = acceptor.accept(stream).await?;
            dialogue(stream, &tx, Phase::Encrypted).await?;
        }
        (SinkTls::Starttls, Some(acceptor)) => {
            if let Some(stream) = dialogue(stream, &tx, Phase::OffersStarttls).await? {
                let stream = acceptor.accept(stream).await?;
                dialogue(stream, &tx, Phase::Upgraded).await?;
            }
        }
        _ => {
            dialogue(stream, &tx, Phase::Plain).await?;
        }
    }
    Ok(())
}

/// Where a dialogue stands with respect to TLS.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Plain,
    OffersStarttls,
    /// After STARTTLS: no second greeting (RFC 3207, the client speaks first).
    Upgraded,
    /// TLS from the first byte.
    Encrypted,
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, reply: &[u8]) -> std::io::Result<()> {
    stream.write_all(reply).await?;
    // TLS holds records until flushed; plain TCP ignores this.
    stream.flush().await
}

/// The next line, its end kept, at most `MAX_LINE` bytes of it; none at
/// the end of the stream.
async fn next_line<S: AsyncRead + Unpin>(
    stream: &mut BufReader<S>,
) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    let read = (&mut *stream)
        .take(MAX_LINE as u64)
        .read_line(&mut line)
        .await?;
    Ok((read > 0).then_some(line))
}

/// One SMTP dialogue over `stream`. Returns the stream, unread past the
/// command, when the client asked for STARTTLS and was told to go ahead.
async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    tx: &mpsc::UnboundedSender<Mail>,
    phase: Phase,
) -> std::io::Result<Option<S>> {
    let mut stream = BufReader::new(stream);
    let tls = matches!(phase, Phase::Upgraded | Phase::Encrypted);
    if phase != Phase::Upgraded {
        send(&mut stream, b"220 sink ESMTP ready\r\n").await?;
    }
    // Everything known before STARTTLS is forgotten after it (RFC 3207):
    // each dialogue starts with nothing.
    let mut from = String::new();
    let mut to = Vec::new();
    let mut auth = None;
    loop {
        let Some(line) = next_line(&mut stream).await? else {
            return Ok(None);
        };
        let line = line.trim_end_matches(['\r', '\n']);
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            if phase == Phase::OffersStarttls {
                b"250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n"
            } else {
                b"250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN\r\n"
            }
        } else if upper.starts_with("HELO") {
            b"250 sink\r\n"
        } else if upper == "STARTTLS" && phase == Phase::OffersStarttls {
            send(&mut stream, b"220 2.0.0 go ahead\r\n").await?;
            // Bytes sent after STARTTLS but before the handshake would be
            // plain-text commands smuggled into the encrypted session
            // (CVE-2011-0411): a client that does this is cut off.
            if !stream.buffer().is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "commands pipelined after STARTTLS",
                ));
            }
            return Ok(Some(stream.into_inner()));
        } else if upper.starts_with("AUTH PLAIN") {
            let encoded = line[10..].trim();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap_or_default();
            let parts: Vec<String> = decoded
                .split(|b| *b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            if parts.len() == 3 {
                auth = Some((parts[1].clone(), parts[2].clone()));
                b"235 2.7.0 accepted\r\n"
            } else {
                b"501 malformed AUTH PLAIN\r\n"
            }
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&line[10..]);
            to.clear();
            b"250 ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&line[8..]));
            b"250 ok\r\n"
        } else if upper == "DATA" {
            send(&mut stream, b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            loop {
                let Some(l) = next_line(&mut stream).await? else {
                    return Ok(None);
                };
                if l == ".\r\n" || l == ".\n" {
                    break;
                }
                let l = l.strip_prefix('.').unwrap_or(&l);
                data.push_str(l);
                if data.len() > MAX_DATA {
                    send(&mut stream, b"552 too large\r\n").await?;
                    return Ok(None);
                }
            }
            let _ = tx.send(Mail {
                from: from.clone(),
                to: to.clone(),
                auth: auth.clone(),
                data,
                tls,
            });
            b"250 ok: queued\r\n"
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 ok\r\n"
        } else if upper == "QUIT" {
            send(&mut stream, b"221 bye\r\n").await?;
            return Ok(None);
        } else {
            b"502 not implemented\r\n"
        };
        send(&mut stream, reply).await?;
    }
}

/// `<a@b>` with any parameters after it, as the address.
fn address(rest: &str) -> String {
    let rest = rest.trim();
    match (rest.find('<'), rest.find('>')) {
        (Some(start), Some(end)) if start < end => rest[start + 1..end].to_string(),
        _ => rest
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}
