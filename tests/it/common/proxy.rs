//! A TCP proxy a test can cut: while cut, it black-holes every byte both
//! ways without closing anything (as a partitioned network does, so the
//! peers only notice by their own timeouts); once healed, the connections
//! that lost bytes are closed (their streams are torn) and new ones pass.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free loopback port to `to`.
    pub async fn start(to: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let c = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(to).await else {
                    continue;
                };
                tokio::spawn(pass(inbound, outbound, c.clone()));
            }
        });
        Proxy { addr, cut, task }
    }

    /// Black-holes every byte from now on.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    /// Lets bytes through again.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Both directions of one connection.
async fn pass(a: TcpStream, b: TcpStream, cut: Arc<AtomicBool>) {
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    let torn = Arc::new(AtomicBool::new(false));
    let mut one = tokio::spawn(copy(ar, bw, cut.clone(), torn.clone()));
    let mut two = tokio::spawn(copy(br, aw, cut, torn));
    // Either side ending ends both.
    tokio::select! {
        _ = &mut one => {}
        _ = &mut two => {}
    }
    one.abort();
    two.abort();
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
    torn: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            r = from.read(&mut buf) => r,
            // Look now and then whether the link healed over a torn stream.
            () = tokio::time::sleep(std::time::Duration::from_millis(50)) => {
                if torn.load(Ordering::SeqCst) && !cut.load(Ordering::SeqCst) {
                    return;
                }
                continue;
            }
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if cut.load(Ordering::SeqCst) {
            torn.store(true, Ordering::SeqCst);
            continue;
        }
        if torn.load(Ordering::SeqCst) || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
