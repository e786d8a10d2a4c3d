//! Each probe type against real sockets on loopback: what it calls up, what it calls down, and
//! the reason it gives (the words an operator reads in the transition log).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rvs::health::probe::{probe, Target};
use rvs::health::state::{Outcome, WeightHint};
use rvs_api::check::{validate_check, RawCheck};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

fn target(addr: SocketAddr, check_toml: &str) -> Target {
    let raw: RawCheck = toml::from_str(check_toml).unwrap();
    let mut problems = Vec::new();
    let check = validate_check(&raw, &mut problems).unwrap_or_else(|| panic!("{problems:?}"));
    Target {
        addr,
        source: Some("127.0.0.1".parse().unwrap()),
        check,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// Serves `reply` to every connection (after reading the request).
async fn serve(reply: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await;
            let _ = s.write_all(reply).await;
        }
    });
    addr
}

#[test]
fn tcp_and_http() {
    rt().block_on(async {
        let addr = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK").await;
        assert_eq!(probe(&target(addr, r#"type = "tcp""#)).await.text(), "connected");
        assert_eq!(
            probe(&target(closed_port(), r#"type = "tcp""#)).await,
            Outcome::Down {
                reason: "connect refused".into()
            }
        );
        let http = probe(&target(addr, "type = \"http\"\nbody = \"OK\"")).await;
        assert!(matches!(http, Outcome::Up { .. }), "{http:?}");
        let wrong = probe(&target(addr, "type = \"http\"\nstatus = [204]")).await;
        assert_eq!(wrong.text(), "http status 200");
        assert!(matches!(wrong, Outcome::Down { .. }));
        let failing = serve(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        assert_eq!(
            probe(&target(failing, r#"type = "http""#)).await.text(),
            "http status 503"
        );
        // Accepts and never answers: the timeout speaks.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = l.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let t = target(silent, "type = \"http\"\ntimeout = \"200ms\"\ninterval = \"1s\"");
        assert_eq!(probe(&t).await.text(), "timeout 200ms");
    });
}

#[test]
fn agent_and_exec() {
    rt().block_on(async {
        let agent = serve(b"75%\n").await;
        let t = target(
            SocketAddr::new(agent.ip(), 9),
            &format!("type = \"agent\"\nport = {}", agent.port()),
        );
        match probe(&t).await {
            Outcome::Up { weight, .. } => assert_eq!(
                weight,
                WeightHint::Agent {
                    pct: Some(75),
                    drain: None
                }
            ),
            o => panic!("{o:?}"),
        }
        let exec = |cmd: &str| target(closed_port(), &format!("type = \"exec\"\ncommand = {cmd}"));
        assert_eq!(probe(&exec(r#"["true"]"#)).await.text(), "exec exit 0");
        assert_eq!(probe(&exec(r#"["false"]"#)).await.text(), "exec exit 1");
        match probe(&exec(r#"["sh", "-c", "exit 9"]"#)).await {
            Outcome::Up { weight, detail } => {
                assert_eq!(weight, WeightHint::Absolute(7));
                assert_eq!(detail, "exec exit 9: weight 7");
            }
            o => panic!("{o:?}"),
        }
        let env = probe(&exec(r#"["sh", "-c", "test \"$RVS_REAL_ADDRESS\" = 127.0.0.1"]"#)).await;
        assert_eq!(env.text(), "exec exit 0", "the server is in the environment");
        let slow = target(
            closed_port(),
            "type = \"exec\"\ncommand = [\"sleep\", \"5\"]\ntimeout = \"200ms\"",
        );
        assert_eq!(probe(&slow).await.text(), "timeout 200ms");
    });
}

#[test]
fn udp() {
    rt().block_on(async {
        let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                let mut reply = b"pong ".to_vec();
                reply.extend_from_slice(&buf[..n]);
                let _ = echo.send_to(&reply, from).await;
            }
        });
        let ok = probe(&target(
            addr,
            "type = \"udp\"\npayload = \"ping\"\nexpect = \"pong\"",
        ))
        .await;
        assert_eq!(ok.text(), "udp reply of 9 bytes");
        let lacks = probe(&target(
            addr,
            "type = \"udp\"\npayload = \"ping\"\nexpect = \"hello\"",
        ))
        .await;
        assert_eq!(lacks.text(), "udp reply lacks \"hello\"");
        let unreachable = probe(&target(closed_port(), "type = \"udp\"\npayload = \"x\"")).await;
        assert_eq!(unreachable.text(), "udp port unreachable");
    });
}

#[test]
fn https_with_and_without_verification() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", "/CN=rs.example", "-days", "1"])
        .output()
        .expect("openssl (dpdk/setup.sh installs it)");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    rt().block_on(async {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(&key).unwrap();
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(s).await {
                        let mut buf = [0u8; 1024];
                        let _ = tls.read(&mut buf).await;
                        let _ = tls.write_all(b"HTTP/1.1 200 OK\r\n\r\nsecure").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        let plain = probe(&target(
            addr,
            "type = \"https\"\nbody = \"secure\"\nhost = \"rs.example\"",
        ))
        .await;
        assert_eq!(
            plain.text(),
            "http status 200",
            "verify = false accepts the self-signed server"
        );
        let strict = probe(&target(
            addr,
            "type = \"https\"\nverify = true\nhost = \"rs.example\"",
        ))
        .await;
        assert!(
            matches!(&strict, Outcome::Down { reason } if reason.starts_with("tls ")),
            "an untrusted certificate fails verification: {strict:?}"
        );
    });
}
