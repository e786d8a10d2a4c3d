//! The probes, one per check type, on tokio: ordinary kernel sockets (over the host path's
//! twins), bound to the director's address on the port that faces the real server.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rvs_api::check::{CheckConfig, CheckKind, Tls};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use super::state::{agent_outcome, Outcome, WeightHint};

/// What a probe needs: where, from where, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// The director's address to probe from (None: the kernel chooses).
    pub source: Option<IpAddr>,
    pub check: CheckConfig,
}

/// The most of a reply a probe reads.
const READ_MAX: u64 = 64 * 1024;

fn up(detail: impl Into<String>) -> Outcome {
    Outcome::Up {
        detail: detail.into(),
        weight: WeightHint::Keep,
    }
}

fn down(reason: impl Into<String>) -> Outcome {
    Outcome::Down {
        reason: reason.into(),
    }
}

/// Why an I/O call failed, as an operator reads it.
fn io_reason(what: &str, e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    let why = match e.kind() {
        ConnectionRefused => "refused".to_string(),
        ConnectionReset => "reset".to_string(),
        TimedOut => "timed out".to_string(),
        _ => e.to_string(),
    };
    format!("{what} {why}")
}

/// Runs one probe within the check's timeout.
pub async fn probe(t: &Target) -> Outcome {
    match tokio::time::timeout(t.check.timeout, run(t)).await {
        Ok(o) => o,
        Err(_) => down(format!("timeout {:?}", t.check.timeout)),
    }
}

async fn run(t: &Target) -> Outcome {
    match &t.check.kind {
        CheckKind::Tcp => match connect(t).await {
            Ok(_) => up("connected"),
            Err(e) => down(io_reason("connect", &e)),
        },
        CheckKind::Http {
            tls,
            path,
            host,
            status,
            body,
        } => {
            let stream = match connect(t).await {
                Ok(s) => s,
                Err(e) => return down(io_reason("connect", &e)),
            };
            let host = host.clone().unwrap_or_else(|| match t.addr.ip() {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => format!("[{a}]"),
            });
            let request = format!(
                "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: rvs-check\r\nConnection: close\r\n\r\n"
            );
            let reply = match tls {
                None => exchange(stream, request.as_bytes()).await,
                Some(tls) => match tls_stream(stream, tls, t.addr.ip(), &host).await {
                    Ok(s) => exchange(s, request.as_bytes()).await,
                    Err(why) => return down(why),
                },
            };
            match reply {
                Ok(r) => http_outcome(&r, status, body.as_deref()),
                Err(e) => down(io_reason("http", &e)),
            }
        }
        CheckKind::Udp { payload, expect } => udp(t, payload, expect.as_deref()).await,
        CheckKind::Exec { command } => exec(t, command).await,
        CheckKind::Agent => {
            let mut stream = match connect(t).await {
                Ok(s) => s,
                Err(e) => return down(io_reason("agent connect", &e)),
            };
            let mut buf = Vec::new();
            let mut byte = [0u8; 1];
            // One line, at most 512 bytes (the agent closes or ends it with a newline).
            while buf.len() < 512 {
                match stream.read(&mut byte).await {
                    Ok(0) => break,
                    Ok(_) if byte[0] == b'\n' => break,
                    Ok(_) => buf.push(byte[0]),
                    Err(e) => return down(io_reason("agent", &e)),
                }
            }
            agent_outcome(&String::from_utf8_lossy(&buf))
        }
    }
}

/// The port a probe goes to: the check's, else the real server's.
fn dest(t: &Target) -> SocketAddr {
    SocketAddr::new(t.addr.ip(), t.check.port.unwrap_or(t.addr.port()))
}

async fn connect(t: &Target) -> std::io::Result<TcpStream> {
    let to = dest(t);
    let sock = if to.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(src) = t.source {
        sock.bind(SocketAddr::new(src, 0))?;
    }
    sock.connect(to).await
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, request: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(request).await?;
    s.flush().await?;
    let mut reply = Vec::new();
    let r = (&mut s).take(READ_MAX).read_to_end(&mut reply).await;
    // A server that closes without TLS close_notify has still answered.
    match r {
        Ok(_) => Ok(reply),
        Err(_) if !reply.is_empty() => Ok(reply),
        Err(e) => Err(e),
    }
}

/// Reads `HTTP/1.x NNN ...` and the body; `status` empty accepts 200..=399.
pub fn http_outcome(reply: &[u8], status: &[u16], body: Option<&str>) -> Outcome {
    let text = String::from_utf8_lossy(reply);
    let code = text
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok());
    let Some(code) = code else {
        return down(if reply.is_empty() {
            "http empty reply".to_string()
        } else {
            "http reply without a status line".to_string()
        });
    };
    let accepted = if status.is_empty() {
        (200..=399).contains(&code)
    } else {
        status.contains(&code)
    };
    if !accepted {
        return down(format!("http status {code}"));
    }
    if let Some(want) = body {
        let content = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        if !content.contains(want) {
            return down(format!("http status {code}, body lacks {want:?}"));
        }
    }
    up(format!("http status {code}"))
}

async fn udp(t: &Target, payload: &[u8], expect: Option<&str>) -> Outcome {
    let to = dest(t);
    let local = SocketAddr::new(
        t.source.unwrap_or(if to.is_ipv4() {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        }),
        0,
    );
    let sock = match UdpSocket::bind(local).await {
        Ok(s) => s,
        Err(e) => return down(io_reason("udp bind", &e)),
    };
    if let Err(e) = sock.connect(to).await {
        return down(io_reason("udp", &e));
    }
    if let Err(e) = sock.send(payload).await {
        return down(io_reason("udp send", &e));
    }
    let mut buf = vec![0u8; 2048];
    match sock.recv(&mut buf).await {
        Ok(n) => match expect {
            Some(w) if !String::from_utf8_lossy(&buf[..n]).contains(w) => {
                down(format!("udp reply lacks {w:?}"))
            }
            _ => up(format!("udp reply of {n} bytes")),
        },
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => down("udp port unreachable"),
        Err(e) => down(io_reason("udp", &e)),
    }
}

/// keepalived's MISC_CHECK with misc_dynamic: exit 0 up, 1 down, 2..=255 up with weight
/// status-2. The command gets the server in RVS_REAL_ADDRESS and RVS_REAL_PORT, and is killed
/// if it outlives the timeout.
async fn exec(t: &Target, command: &[String]) -> Outcome {
    let Some((prog, args)) = command.split_first() else {
        return down("exec: no command");
    };
    let child = tokio::process::Command::new(prog)
        .args(args)
        .env("RVS_REAL_ADDRESS", t.addr.ip().to_string())
        .env("RVS_REAL_PORT", t.addr.port().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await;
    match child.map(|s| s.code()) {
        Ok(Some(0)) => up("exec exit 0"),
        Ok(Some(1)) => down("exec exit 1"),
        Ok(Some(c)) => Outcome::Up {
            detail: format!("exec exit {c}: weight {}", c - 2),
            weight: WeightHint::Absolute((c - 2).max(0) as u32),
        },
        Ok(None) => down("exec killed by a signal"),
        Err(e) => down(io_reason("exec", &e)),
    }
}

async fn tls_stream(
    stream: TcpStream,
    tls: &Tls,
    ip: IpAddr,
    host: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    use rustls::pki_types::ServerName;
    let config = tls_config(tls)?;
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let server = match ServerName::try_from(name.to_string()) {
        Ok(n) => n,
        Err(_) => ServerName::IpAddress(ip.into()),
    };
    tokio_rustls::TlsConnector::from(config)
        .connect(server, stream)
        .await
        .map_err(|e| format!("tls {e}"))
}

fn tls_config(tls: &Tls) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls {e}"))?;
    let config = if tls.verify {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let file = tls
            .ca_file
            .clone()
            .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(&file)
            .map_err(|e| format!("tls ca_file {}: {e}", file.display()))?;
        for c in certs.flatten() {
            let _ = roots.add(c);
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// `verify = false`: any certificate is accepted (the signatures are still checked, so the
/// handshake is real); a health check asks "is it serving", not "is it who it says".
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How long to wait before a check's first probe, so that a thousand checks added at once
/// spread over their interval instead of probing together: a hash of the target.
pub fn first_delay(t: &Target) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.addr.hash(&mut h);
    let frac = (h.finish() % 1000) as f64 / 1000.0;
    t.check.interval.mul_f64(frac * 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_replies_are_judged_by_status_and_body() {
        let ok = b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nall OK here";
        assert_eq!(http_outcome(ok, &[], None), up("http status 200"));
        assert_eq!(http_outcome(ok, &[200], Some("OK here")), up("http status 200"));
        assert_eq!(
            http_outcome(ok, &[200], Some("ready")).text(),
            "http status 200, body lacks \"ready\""
        );
        assert_eq!(http_outcome(ok, &[204], None).text(), "http status 200");
        assert!(matches!(http_outcome(ok, &[204], None), Outcome::Down { .. }));
        let unavailable = b"HTTP/1.1 503 Service Unavailable\r\n\r\n";
        assert_eq!(http_outcome(unavailable, &[], None), down("http status 503"));
        assert_eq!(http_outcome(b"", &[], None), down("http empty reply"));
        assert_eq!(
            http_outcome(b"SSH-2.0-OpenSSH\r\n", &[], None),
            down("http reply without a status line")
        );
        let redirect = b"HTTP/1.1 302 Found\r\n\r\n";
        assert!(
            matches!(http_outcome(redirect, &[], None), Outcome::Up { .. }),
            "3xx is up by default"
        );
    }
}
