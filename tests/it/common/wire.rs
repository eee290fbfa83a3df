//! A raw socket for the text-ish doors (memcached text and binary, the
//! line protocol, hand-written RESP): send bytes, read until a reply is
//! whole.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Wire {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Wire {
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::from_stream(TcpStream::connect(addr).await.expect("connect"))
    }

    pub fn from_stream(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no whole reply in 10 s; have {:?}",
                    String::from_utf8_lossy(&self.buf)
                )
            })
            .expect("read");
        assert!(
            n > 0,
            "closed; have {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Sends `bytes`, then reads until what came ends with `until`.
    pub async fn ask(&mut self, bytes: &[u8], until: &[u8]) -> String {
        self.stream.write_all(bytes).await.expect("write");
        while !self.buf.ends_with(until) {
            self.fill().await;
        }
        String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned()
    }

    /// Sends `line` and CRLF, then reads one reply line (without CRLF).
    pub async fn line(&mut self, line: &str) -> String {
        let reply = self.ask(format!("{line}\r\n").as_bytes(), b"\r\n").await;
        reply.trim_end().to_string()
    }

    /// Sends one binary memcached request and reads its one response:
    /// (status, body after extras and key).
    pub async fn binary(&mut self, request: &[u8]) -> (u16, Vec<u8>) {
        self.stream.write_all(request).await.expect("write");
        loop {
            if self.buf.len() >= 24 {
                let body =
                    u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]])
                        as usize;
                if self.buf.len() >= 24 + body {
                    let packet: Vec<u8> = self.buf.drain(..24 + body).collect();
                    let status = u16::from_be_bytes([packet[6], packet[7]]);
                    let skip = 24
                        + usize::from(packet[4])
                        + usize::from(u16::from_be_bytes([packet[2], packet[3]]));
                    return (status, packet[skip..].to_vec());
                }
            }
            self.fill().await;
        }
    }
}
