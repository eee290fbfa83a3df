//! The ceiling: a loopback server that does nothing but send every byte
//! back. Driven by the same generator with the same requests as `raw`, it
//! measures what the machine, the kernel and the runtime allow for a round
//! trip of that size, so a server's throughput can be read as a fraction of
//! the possible.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves echo connections until the task is dropped.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if stream.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}
