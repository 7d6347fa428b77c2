//! A stand-in for a foreign host: a TCP listener on `127.0.0.2` (another loopback address, so
//! nothing leaves the machine) that records every connection and the bytes it receives, and
//! answers each with a small JSON `200` (so a client that wrongly gets there is not stuck on it).
//! Security tests assert that it received nothing: no credentials, no token, no Case data.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// The loopback address that is not one the client may send to.
pub const FOREIGN_IP: &str = "127.0.0.2";

/// A running foreign listener. Its task runs until the test's runtime ends.
#[derive(Clone)]
pub struct ForeignHost {
    /// `http://127.0.0.2:PORT`.
    pub url: String,
    /// The port.
    pub port: u16,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// Starts a listener on `127.0.0.2:0`.
///
/// # Panics
/// When `127.0.0.2` cannot be bound (Linux routes all of 127.0.0.0/8 to loopback; some systems
/// need the address added to the loopback interface first).
pub async fn start() -> ForeignHost {
    let listener = TcpListener::bind((FOREIGN_IP, 0))
        .await
        .unwrap_or_else(|e| panic!("bind {FOREIGN_IP}:0 ({e}): add it to the loopback interface"));
    let port = listener.local_addr().expect("local_addr").port();
    let received: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let log = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let index = {
                let mut log = log.lock().unwrap();
                log.push(Vec::new());
                log.len() - 1
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                // Whatever arrives within a moment is what the client sent before its request
                // line and headers could be answered.
                if let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(500), socket.read(&mut buf)).await
                {
                    log.lock().unwrap()[index].extend_from_slice(&buf[..n]);
                }
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                          content-length: 2\r\nconnection: close\r\n\r\n{}",
                    )
                    .await;
                let _ = socket.shutdown().await;
            });
        }
    });
    ForeignHost {
        url: format!("http://{FOREIGN_IP}:{port}"),
        port,
        received: received.clone(),
    }
}

impl ForeignHost {
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// What each connection sent (lossy UTF-8), in order.
    pub fn received(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    /// Asserts that nothing connected.
    pub fn assert_untouched(&self, context: &str) {
        assert_eq!(
            self.connections(),
            0,
            "{context}: the foreign host {} received: {:?}",
            self.url,
            self.received()
        );
    }
}
