//! `wss://`: the server speaks TLS with a PEM certificate and key, and refuses bad files with
//! a clear error.

use std::sync::Arc;

use futures_util::StreamExt;
use real_server::{Config, SqliteStore, run, tls};
use tokio::net::TcpListener;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_client_talks_to_the_room_over_wss() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();

    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener =
        tls::TlsListener::new(tcp, tls::server_config(&cert_path, &key_path).unwrap()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let store = SqliteStore::open_dir(&dir.path().join("data")).unwrap();
    let server = tokio::spawn(run(listener, Config::defaults(), store, async {
        let _ = stopped.await;
    }));

    let mut roots = RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let client_config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(client_config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake with our certificate");
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/", tls)
        .await
        .expect("WebSocket over TLS");
    let Some(Ok(Message::Text(first))) = ws.next().await else {
        panic!("no handshake")
    };
    assert!(
        first.starts_with(r#"{"type":"HANDSHAKE","payload":{"serverName":"General""#),
        "{first}"
    );

    // A plain-text client gets no WebSocket from a TLS port.
    let plain = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await;
    assert!(plain.is_err());

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[test]
fn bad_certificate_files_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = tls::server_config(&missing, &missing).unwrap_err();
    assert!(format!("{err:#}").contains("missing.pem"), "{err:#}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate").unwrap();
    let err = tls::server_config(&empty, &empty).unwrap_err();
    assert!(format!("{err:#}").contains("no certificate"), "{err:#}");
}
