//! Wake-ups between nodes on MySQL, which has no NOTIFY: the node whose
//! write handed a lock to a request queued on another node tells that
//! node itself, once the write is committed, in a UDP datagram to the
//! address the node registered in `sessiond_node.wake_addr`. A datagram
//! carries the same channel and message as PostgreSQL's NOTIFY, and a MAC
//! under the cluster's `sessiond_meta.wake_key` (random, made with the
//! schema; only who can read the database knows it), so a node acts only
//! on wake-ups from the cluster's nodes — and even a forged or replayed
//! one only makes a waiter look at its row. A lost datagram costs what a
//! lost NOTIFY costs: the waiter looks at its row once a second and at
//! its holders' lease deadline anyway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use blake2::{Blake2b256, Digest};
use parking_lot::Mutex;
use tokio::net::UdpSocket;

/// What a datagram starts with.
const MAGIC: &[u8] = b"sessiond-wake-1\n";

/// The longest datagram a node reads (a channel and a payload are short).
const MAX_DATAGRAM: usize = 512;

/// This node's side of the wake-ups.
pub(crate) struct Hints {
    socket: Arc<UdpSocket>,
    /// Sends without waiting (a full send buffer drops the wake-up, as a
    /// lost datagram would): the write path never waits on a wake-up.
    sender: std::net::UdpSocket,
    key: Vec<u8>,
    /// Every node's address, by its channel, as last read.
    addrs: Mutex<HashMap<String, SocketAddr>>,
    /// The address this node registered.
    pub(crate) advertised: SocketAddr,
}

impl Hints {
    /// Binds a socket on every interface, on `port` (0: one of the
    /// system's choice); the address other nodes reach it at is `ip` with
    /// that port.
    pub(crate) async fn bind(
        ip: std::net::IpAddr,
        port: u16,
        key: Vec<u8>,
    ) -> std::io::Result<Self> {
        let any = SocketAddr::new(
            if ip.is_ipv4() {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            },
            port,
        );
        let socket = UdpSocket::bind(any).await?;
        let port = socket.local_addr()?.port();
        let sender = std::net::UdpSocket::bind(SocketAddr::new(any.ip(), 0))?;
        sender.set_nonblocking(true)?;
        Ok(Self {
            socket: Arc::new(socket),
            sender,
            key,
            addrs: Mutex::new(HashMap::new()),
            advertised: SocketAddr::new(ip, port),
        })
    }

    /// The nodes' addresses as read with the heartbeat: name, address.
    pub(crate) fn set_addrs(&self, nodes: &[(String, Option<String>)]) {
        let mut addrs = HashMap::with_capacity(nodes.len());
        for (node, addr) in nodes {
            if let Some(a) = addr.as_deref().and_then(|a| a.parse().ok()) {
                addrs.insert(super::wake::channel(node), a);
            }
        }
        *self.addrs.lock() = addrs;
    }

    fn mac(&self, body: &[u8]) -> [u8; 16] {
        let mut h = Blake2b256::new();
        h.update((self.key.len() as u32).to_be_bytes());
        h.update(&self.key);
        h.update(body);
        let d = h.finalize();
        let mut m = [0u8; 16];
        m.copy_from_slice(&d[..16]);
        m
    }

    fn datagram(&self, channel: &str, payload: &str) -> Vec<u8> {
        let mut d = Vec::with_capacity(MAGIC.len() + channel.len() + payload.len() + 17);
        d.extend_from_slice(MAGIC);
        d.extend_from_slice(channel.as_bytes());
        d.push(b'\n');
        d.extend_from_slice(payload.as_bytes());
        let mac = self.mac(&d);
        d.extend_from_slice(&mac);
        d
    }

    /// Sends each wake-up to its node; answers those whose node's address
    /// is not known yet (a node that joined since the last heartbeat).
    pub(crate) fn send(&self, wakeups: &[(String, String)]) -> Vec<(String, String)> {
        let mut unknown = Vec::new();
        for (channel, payload) in wakeups {
            let Some(addr) = self.addrs.lock().get(channel).copied() else {
                unknown.push((channel.clone(), payload.clone()));
                continue;
            };
            let d = self.datagram(channel, payload);
            if let Err(e) = self.sender.send_to(&d, addr) {
                tracing::debug!(error = %e, %addr, "a wake-up was not sent");
            }
        }
        unknown
    }

    /// The next wake-up for `channel` (this node's) that carries the
    /// cluster's MAC; others are dropped.
    pub(crate) async fn recv(&self, channel: &str) -> std::io::Result<String> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let (n, from) = self.socket.recv_from(&mut buf).await?;
            match self.open(&buf[..n], channel) {
                Some(p) => return Ok(p),
                None => tracing::debug!(%from, "a datagram that is not a wake-up of this cluster"),
            }
        }
    }

    fn open(&self, d: &[u8], channel: &str) -> Option<String> {
        let (body, mac) = d.split_at_checked(d.len().checked_sub(16)?)?;
        if self.mac(body) != mac {
            return None;
        }
        let rest = body.strip_prefix(MAGIC)?;
        let nl = rest.iter().position(|&b| b == b'\n')?;
        if &rest[..nl] != channel.as_bytes() {
            return None;
        }
        String::from_utf8(rest[nl + 1..].to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_up_reaches_its_node_and_a_forged_one_does_not() {
        let ip = "127.0.0.1".parse().expect("ip");
        let a = Hints::bind(ip, 0, b"k".to_vec()).await.expect("bind");
        let b = Hints::bind(ip, 0, b"k".to_vec()).await.expect("bind");
        let stranger = Hints::bind(ip, 0, b"other".to_vec()).await.expect("bind");
        let channel_b = super::super::wake::channel("b");
        for h in [&a, &stranger] {
            h.set_addrs(&[("b".into(), Some(b.advertised.to_string()))]);
        }
        stranger.send(&[(channel_b.clone(), "1 2".into())]);
        let unknown = a.send(&[
            (channel_b.clone(), "7 42".into()),
            ("elsewhere".into(), "1 1".into()),
        ]);
        assert_eq!(unknown, vec![("elsewhere".to_string(), "1 1".to_string())]);
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), b.recv(&channel_b))
            .await
            .expect("in time")
            .expect("recv");
        assert_eq!(got, "7 42", "the stranger's datagram is dropped");
        assert_eq!(
            a.open(&a.datagram("x", "1 2"), "y"),
            None,
            "another channel"
        );
        let mut d = a.datagram("x", "1 2");
        d[MAGIC.len()] ^= 1;
        assert_eq!(a.open(&d, "x"), None, "changed on the way");
    }
}
