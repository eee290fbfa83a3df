//! The HTTP_SessionServer line protocol over a real socket: the seed's
//! telnet conversation, write mode blocking another writer until close,
//! read mode shared, and the same session through the native door.

use crate::common;

use std::time::Duration;

use common::process::{signal, start_binary};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub(crate) struct Line {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Line {
    pub(crate) async fn connect(port: u16) -> Self {
        let (r, w) = TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap()
            .into_split();
        Self {
            r: BufReader::new(r),
            w,
        }
    }

    async fn send(&mut self, line: &str) {
        self.w
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    async fn reply(&mut self) -> String {
        let mut s = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.r.read_line(&mut s))
            .await
            .expect("a reply in time")
            .unwrap();
        s.trim_end().to_string()
    }

    pub(crate) async fn ask(&mut self, line: &str) -> String {
        self.send(line).await;
        self.reply().await
    }
}

#[tokio::test]
async fn the_seed_conversation_and_write_mode_blocking() {
    let line_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let line_addr = format!("127.0.0.1:{line_port}");
    let (mut child, resp_port) =
        start_binary(&["--storage", "memory", "--listen-line", &line_addr]);

    let mut a = Line::connect(line_port).await;
    let created = a.ask("new").await;
    let id = created.strip_prefix("ok ").expect("ok <id>").to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(a.ask("put foo bar").await, "ok");
    assert_eq!(a.ask("get foo").await, "ok bar");
    assert_eq!(a.ask("put greeting hello world").await, "ok");
    assert_eq!(a.ask("put_all n=1&multi=line%0Avalue").await, "ok");
    assert_eq!(
        a.ask("get multi").await,
        "ok line%0Avalue",
        "newlines are escaped"
    );
    assert_eq!(a.ask("remove n").await, "ok");
    assert_eq!(
        a.ask("get_all").await,
        "ok foo=bar&greeting=hello%20world&multi=line%0Avalue"
    );
    assert!(a.ask("get nope").await.starts_with("err no variable"));
    assert!(a.ask("fly").await.starts_with("err unknown command"));
    assert!(a.ask("fly/away").await.starts_with("err unknown command"));

    // Another client asking to write waits until the first one closes.
    let mut b = Line::connect(line_port).await;
    b.send(&format!("open {id} w")).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), b.reply())
            .await
            .is_err(),
        "the second writer is blocked"
    );
    assert_eq!(a.ask("close").await, "ok");
    assert_eq!(b.reply().await, "ok", "and gets it once the first closes");
    assert_eq!(b.ask("get greeting").await, "ok hello world");

    // commit: b keeps reading, readers may enter; nobody may write.
    assert_eq!(b.ask("commit").await, "ok");
    assert!(b
        .ask("put x y")
        .await
        .starts_with("err the session is open read-only"));
    let mut c = Line::connect(line_port).await;
    assert_eq!(c.ask(&format!("open {id} r")).await, "ok");
    assert_eq!(c.ask("get foo").await, "ok bar");
    assert_eq!(c.ask("close").await, "ok");
    assert_eq!(b.ask("close").await, "ok");

    // regenerate_id moves the session; the native door sees the same data.
    let mut d = Line::connect(line_port).await;
    assert_eq!(d.ask(&format!("open {id}")).await, "ok");
    let new = d
        .ask("regenerate_id")
        .await
        .strip_prefix("ok ")
        .unwrap()
        .to_string();
    assert_ne!(new, id);
    assert_eq!(d.ask("close").await, "ok");
    let mut native = sessiond_client::Client::connect(("127.0.0.1", resp_port))
        .await
        .unwrap();
    assert_eq!(
        native.get(&new, "foo").await.unwrap().as_deref(),
        Some(&b"bar"[..])
    );
    assert!(!native.exists(&id).await.unwrap());
    assert!(d
        .ask("open missing-session")
        .await
        .starts_with("err no session"));
    assert_eq!(d.ask("quit").await, "ok");

    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success());
}
