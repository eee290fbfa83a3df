//! A client connection's byte stream, plain TCP or TLS over it, so the
//! doors never care which it is.
//!
//! A reply that fits the socket is written without a future
//! ([`Stream::write_now`]); TLS goes through its session as an
//! `AsyncRead`/`AsyncWrite`.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// An accepted connection, after any TLS handshake.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// The client's address (unspecified if the socket no longer knows).
    pub(crate) fn peer(&self) -> IpAddr {
        let tcp = match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        };
        tcp.peer_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip())
    }

    /// Reads into `buf` once bytes arrive: the count, 0 at the end of the
    /// stream. (tokio's own read: on epoll, a read that leaves room in the
    /// buffer clears the socket's readiness, so the next one waits for
    /// the next event instead of asking the kernel to be told there is
    /// nothing.)
    pub(crate) async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read_buf(cx, buf)).await
    }

    /// [`Stream::read_buf`] as a poll.
    pub(crate) fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        // A `read_buf` future holds nothing but its two borrows: dropped
        // after a pending poll, it loses nothing.
        match self {
            Stream::Plain(tcp) => std::pin::pin!(tcp.read_buf(buf)).poll(cx),
            Stream::Tls(s) => std::pin::pin!(s.read_buf(buf)).poll(cx),
        }
    }

    /// Writes what of `buf` the stream takes now, without waiting: None
    /// when it takes nothing yet. Plain TCP writes on the socket's
    /// readiness (`try_write`, no future); TLS is polled once, and a
    /// pending write is polled again, with the task's waker, by the wait
    /// that follows.
    pub(crate) fn write_now(&mut self, buf: &[u8]) -> Option<io::Result<usize>> {
        match self {
            Stream::Plain(tcp) => match tcp.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                written => Some(written),
            },
            Stream::Tls(s) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                match Pin::new(s.as_mut()).poll_write(&mut cx, buf) {
                    Poll::Ready(written) => Some(written),
                    Poll::Pending => None,
                }
            }
        }
    }

    /// Whether writes must be flushed (TLS keeps records in its session).
    pub(crate) fn buffers_writes(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
