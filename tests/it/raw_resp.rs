//! The native door with raw bytes: pipelining, inline commands, frames split
//! across TCP writes, RESP3, and bad input that must be answered without
//! harming the server.

use crate::common;

use std::time::Duration;

use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until `expected` bytes arrived (or fails after a while).
async fn read_exact_reply(stream: &mut (impl tokio::io::AsyncRead + Unpin), expected: &[u8]) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < expected.len() {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("reply in time")
            .expect("read");
        assert!(
            n > 0,
            "closed early; got {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got))
        .await
        .expect("closed in time")
        .expect("read");
    got
}

#[tokio::test]
async fn pipelined_commands_answer_in_order() {
    let s = TestServer::start().await;
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    let mut req = Vec::new();
    req.extend_from_slice(b"*2\r\n$14\r\nSESSION.CREATE\r\n$1\r\na\r\n");
    for i in 0..50 {
        let v = i.to_string();
        req.extend_from_slice(
            format!(
                "*4\r\n$11\r\nSESSION.SET\r\n$1\r\na\r\n$1\r\nn\r\n${}\r\n{}\r\n",
                v.len(),
                v
            )
            .as_bytes(),
        );
    }
    req.extend_from_slice(b"*3\r\n$11\r\nSESSION.GET\r\n$1\r\na\r\n$1\r\nn\r\n");
    t.write_all(&req).await.unwrap();
    let mut expected = b"+OK\r\n".repeat(51);
    expected.extend_from_slice(b"$2\r\n49\r\n");
    read_exact_reply(&mut t, &expected).await;
}

#[tokio::test]
async fn inline_commands_like_telnet() {
    let s = TestServer::start().await;
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    t.write_all(b"SESSION.CREATE abc\r\nSESSION.SET abc greeting \"hello world\"\nSESSION.GET abc greeting\r\n\r\nPING\r\n")
        .await
        .unwrap();
    read_exact_reply(&mut t, b"+OK\r\n+OK\r\n$11\r\nhello world\r\n+PONG\r\n").await;
}

#[tokio::test]
async fn frames_split_at_every_byte_parse_the_same() {
    let s = TestServer::start().await;
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    t.set_nodelay(true).unwrap();
    let frame = b"*4\r\n$14\r\nSESSION.CREATE\r\n$3\r\nxyz\r\n$4\r\nDATA\r\n$5\r\nhello\r\n*2\r\n$15\r\nSESSION.GETDATA\r\n$3\r\nxyz\r\n";
    for byte in frame.chunks(1) {
        t.write_all(byte).await.unwrap();
        t.flush().await.unwrap();
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    read_exact_reply(&mut t, b"+OK\r\n$5\r\nhello\r\n").await;
}

#[tokio::test]
async fn resp3_after_hello_3() {
    let s = TestServer::start().await;
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    t.write_all(
        b"SESSION.CREATE a\r\nSESSION.SET a k v\r\nSESSION.GET a missing\r\nSESSION.GETALL a\r\n",
    )
    .await
    .unwrap();
    read_exact_reply(&mut t, b"+OK\r\n+OK\r\n$-1\r\n*2\r\n$1\r\nk\r\n$1\r\nv\r\n").await;
    t.write_all(b"HELLO 3\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = t.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"%7\r\n"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    t.write_all(b"SESSION.GET a missing\r\nSESSION.GETALL a\r\n")
        .await
        .unwrap();
    read_exact_reply(&mut t, b"_\r\n%1\r\n$1\r\nk\r\n$1\r\nv\r\n").await;
}

#[tokio::test]
async fn command_errors_keep_the_connection() {
    let s = TestServer::start().await;
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    t.write_all(b"NOPE\r\nSESSION.SET a b\r\nSESSION.GET missing x\r\nSESSION.LOCK a MODE sideways\r\nPING\r\n")
        .await
        .unwrap();
    let expected = concat!(
        "-ERR unknown command 'NOPE'; COMMAND lists the commands, docs/protocol.md explains them\r\n",
        "-ERR wrong number of arguments for 'SESSION.SET': SESSION.SET id name value\r\n",
        "-NOSESSION no session 'missing'\r\n",
        "-ERR MODE must be write or read, not 'sideways'\r\n",
        "+PONG\r\n"
    );
    read_exact_reply(&mut t, expected.as_bytes()).await;
}

#[tokio::test]
async fn framing_errors_close_only_that_connection() {
    let s = TestServer::start().await;
    let mut good = s.client().await;
    for bad in [
        &b"*1\r\n$-7\r\n"[..],
        b"*2\r\n$4\r\nPING\r\n:12\r\n",
        b"*1\r\n$999999999999\r\n",
        b"*99999999\r\n",
        b"*1\r\n$4\r\nPINGxx",
        b"ECHO \"unterminated\r\n",
    ] {
        let mut t = TcpStream::connect(s.addr).await.unwrap();
        t.write_all(bad).await.unwrap();
        let got = read_to_close(&mut t).await;
        assert!(
            got.starts_with(b"-ERR Protocol error"),
            "{:?} -> {:?}",
            String::from_utf8_lossy(bad),
            String::from_utf8_lossy(&got)
        );
    }
    assert!(good.ping().await.unwrap(), "other clients are unaffected");
}

#[tokio::test]
async fn oversized_inline_line_is_refused() {
    let s = TestServer::start().await;
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    let junk = vec![b'a'; 70 * 1024];
    // The server may close before reading everything; a write error is fine.
    let _ = t.write_all(&junk).await;
    let got = read_to_close(&mut t).await;
    assert!(
        got.starts_with(b"-ERR Protocol error: inline command line longer than"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn quit_answers_and_closes() {
    let s = TestServer::start().await;
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    t.write_all(b"QUIT\r\nPING\r\n").await.unwrap();
    assert_eq!(read_to_close(&mut t).await, b"+OK\r\n");
}

#[tokio::test]
async fn command_lists_the_table() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let n = c.call(&["COMMAND", "COUNT"]).await.unwrap();
    assert_eq!(
        n,
        sessiond_client::RespValue::Int(sessiond_proto::native::COMMANDS.len() as i64)
    );
    let r = c.call(&["COMMAND"]).await.unwrap();
    let sessiond_client::RespValue::Array(all) = r else {
        panic!("{r:?}")
    };
    assert_eq!(all.len(), sessiond_proto::native::COMMANDS.len());
}

#[tokio::test]
async fn an_oversized_value_is_refused_and_the_connection_goes_on() {
    let s = TestServer::start().await;
    let mut t = TcpStream::connect(s.addr).await.unwrap();
    // 17 MiB, over the default 16 MiB max_value_bytes: a phpredis write of
    // a too-big session.
    let value = vec![b'v'; 17 * 1024 * 1024];
    let mut req = format!(
        "*4\r\n$5\r\nSETEX\r\n$22\r\nPHPREDIS_SESSION:abcde\r\n$4\r\n1440\r\n${}\r\n",
        value.len()
    )
    .into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n*1\r\n$4\r\nPING\r\n");
    let (mut r, mut w) = t.split();
    let write = async {
        w.write_all(&req).await.unwrap();
    };
    let read = read_exact_reply(
        &mut r,
        b"-LIMIT argument of 17825792 bytes is over the limit of 16777216 bytes (max_value_bytes); the request was skipped\r\n+PONG\r\n",
    );
    tokio::join!(write, read);
    // Nothing was stored, and the connection still serves.
    t.write_all(b"EXISTS PHPREDIS_SESSION:abcde\r\n")
        .await
        .unwrap();
    read_exact_reply(&mut t, b":0\r\n").await;
}
