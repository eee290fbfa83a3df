//! Starting the real server on an ephemeral loopback port.

#![allow(dead_code)]

use std::net::SocketAddr;

use sessiond_server::{Config, Server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server; stops when dropped or by `stop()`.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Config::default()).await
    }

    pub async fn start_with(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            Server::new(config)
                .run(listener, async {
                    let _ = rx.await;
                })
                .await
                .expect("server run");
        });
        Self {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn client(&self) -> sessiond_client::Client {
        sessiond_client::Client::connect(self.addr)
            .await
            .expect("connect")
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
