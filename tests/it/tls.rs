//! TLS on the listeners, with a CA made in the test: every door speaks it,
//! plain clients and clients with the wrong certificate are turned away at
//! the handshake, client certificates are checked when asked for, and
//! redis-cli connects with `--tls`.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use sessiond_server::{Config, Door, Storage, TlsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// A certificate authority and the files it signs, in a directory of
/// their own.
struct Pki {
    dir: PathBuf,
    ca: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sessiond-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("test CA {name}"));
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        Self {
            dir,
            ca_der: cert.der().clone(),
            ca: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` signed by the CA: (cert path, key path,
    /// and the two in rustls's form).
    fn issue(
        &self,
        file: &str,
        names: &[&str],
    ) -> (
        PathBuf,
        PathBuf,
        CertificateDer<'static>,
        PrivateKeyDer<'static>,
    ) {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (c, k, cert.der().clone(), der)
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_config(cert: &Path, key: &Path, client_ca: Option<PathBuf>, doors: Vec<Door>) -> Config {
    Config {
        storage: Storage::Memory,
        tls: TlsConfig {
            cert: Some(cert.to_path_buf()),
            key: Some(key.to_path_buf()),
            client_ca,
            doors,
        },
        ..Config::default()
    }
}

/// A TLS client trusting `ca`, presenting `identity` if given.
fn connector(
    ca: &CertificateDer<'static>,
    identity: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

/// Sends `request` over TLS and reads until the reply ends with `until`;
/// Err if the handshake or the exchange fails.
async fn exchange(
    tls: &TlsConnector,
    addr: std::net::SocketAddr,
    request: &[u8],
    until: &[u8],
) -> std::io::Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut s = tokio::time::timeout(Duration::from_secs(10), tls.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))??;
    s.write_all(request).await?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(until) {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("no reply"))??;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed",
            ));
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_door_speaks_tls_and_plain_clients_are_turned_away() {
    let pki = Pki::new("doors");
    let (cert, key, _, _) = pki.issue("server", &["localhost", "127.0.0.1"]);
    let all = Door::ALL.to_vec();
    let s = TestServer::start_with(tls_config(&cert, &key, None, all)).await;
    let tls = connector(&pki.ca_der, None);

    let reply = exchange(
        &tls,
        s.addr,
        b"SESSION.CREATE t1 DATA hello\r\nSESSION.GETDATA t1\r\n",
        b"hello\r\n",
    )
    .await;
    assert_eq!(reply.unwrap(), "+OK\r\n$5\r\nhello\r\n");
    let reply = exchange(&tls, s.memcache, b"get t1\r\n", b"END\r\n").await;
    assert_eq!(reply.unwrap(), "VALUE t1 0 5\r\nhello\r\nEND\r\n");
    let reply = exchange(
        &tls,
        s.http,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"ok\n",
    )
    .await;
    assert!(reply.unwrap().starts_with("HTTP/1.1 200 OK"));
    let reply = exchange(&tls, s.line, b"open t1 r\r\nget_all\r\n", b"\r\nok\r\n").await;
    assert_eq!(reply.unwrap(), "ok\r\nok\r\n");

    // Plain text on a TLS port is not a handshake: closed, nothing run.
    let mut plain = TcpStream::connect(s.addr).await.unwrap();
    plain.write_all(b"SESSION.DESTROY t1\r\n").await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut got)).await;
    assert!(!String::from_utf8_lossy(&got).contains("+OK"), "{got:?}");
    // A client that does not trust this server's CA gives up on it.
    let stranger = Pki::new("stranger");
    let err = exchange(
        &connector(&stranger.ca_der, None),
        s.addr,
        b"PING\r\n",
        b"\r\n",
    )
    .await;
    assert!(err.is_err(), "{err:?}");

    let info = exchange(&tls, s.addr, b"SESSION.EXISTS t1\r\nINFO\r\n", b"\r\n\r\n")
        .await
        .unwrap();
    assert!(
        info.starts_with(":1\r\n"),
        "t1 survived the plain client: {info}"
    );
    assert!(info.contains("tls_handshake_failures:2"), "{info}");

    // redis-cli, as an operator would use it.
    let cli = common::process::tool_available(
        std::process::Command::new("redis-cli").arg("--version"),
        "redis-cli (redis-tools)",
    );
    if cli {
        let out = std::process::Command::new("redis-cli")
            .args(["--tls", "--cacert"])
            .arg(pki.ca_path())
            .args([
                "--sni",
                "localhost",
                "-h",
                "127.0.0.1",
                "-p",
                &s.addr.port().to_string(),
            ])
            .args(["SESSION.GETDATA", "t1"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "hello",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_checked_when_asked_for() {
    let pki = Pki::new("mtls");
    let (cert, key, _, _) = pki.issue("server", &["localhost"]);
    let (_, _, client_cert, client_key) = pki.issue("client", &["web1.example"]);
    let config = tls_config(&cert, &key, Some(pki.ca_path()), vec![Door::Resp]);
    let s = TestServer::start_with(config).await;

    let with_cert = connector(&pki.ca_der, Some((client_cert, client_key)));
    assert_eq!(
        exchange(&with_cert, s.addr, b"PING\r\n", b"\r\n")
            .await
            .unwrap(),
        "+PONG\r\n"
    );
    // No certificate: refused (TLS 1.3 reports it on the first read).
    let without = connector(&pki.ca_der, None);
    assert!(exchange(&without, s.addr, b"PING\r\n", b"\r\n")
        .await
        .is_err());
    // A certificate from another CA: refused.
    let other = Pki::new("mtls-other");
    let (_, _, other_cert, other_key) = other.issue("client", &["web1.example"]);
    let wrong = connector(&pki.ca_der, Some((other_cert, other_key)));
    assert!(exchange(&wrong, s.addr, b"PING\r\n", b"\r\n")
        .await
        .is_err());

    // Only the listed doors speak TLS: memcached stays plain here.
    let mut mc = TcpStream::connect(s.memcache).await.unwrap();
    mc.write_all(b"version\r\n").await.unwrap();
    let mut buf = [0u8; 8];
    mc.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"VERSION ");
    s.stop().await;
}

#[test]
fn bad_tls_settings_stop_the_start_with_a_reason() {
    let pki = Pki::new("bad");
    let (cert, key, _, _) = pki.issue("server", &["localhost"]);
    let missing = pki.dir.join("missing.pem");
    let garbage = pki.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let all = || vec![Door::Resp];
    for (config, says) in [
        (tls_config(&missing, &key, None, all()), "missing.pem"),
        (tls_config(&garbage, &key, None, all()), "no certificate"),
        (tls_config(&cert, &garbage, None, all()), "private key"),
        (
            tls_config(&key.clone(), &key, None, all()),
            "no certificate",
        ),
        (
            tls_config(&cert, &key, Some(garbage.clone()), all()),
            "no certificate",
        ),
    ] {
        let err = sessiond_server::Server::open(config)
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(says), "{err}");
    }
    let half = Config {
        tls: TlsConfig {
            cert: Some(cert),
            ..TlsConfig::default()
        },
        ..Config::default()
    };
    assert!(half
        .validate()
        .unwrap_err()
        .to_string()
        .contains("tls.cert and tls.key"));
}
