//! The dashboard at `/`, driven in headless Chromium (Debian's `chromium`
//! and `chromium-driver`, which `.ci/run` installs) over WebDriver: the
//! numbers it shows match the JSON API, search finds a user's sessions,
//! and "Destroy" really destroys. A screenshot is saved to
//! `target/test-artifacts/dashboard.png`.

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::TestServer;
use serde_json::{json, Value};
use sessiond_server::{Config, Storage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One HTTP/1.1 exchange with a JSON body; (status, JSON body).
async fn http(addr: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // Read by Content-Length (chromedriver keeps the connection open).
    let mut raw = Vec::new();
    // On the heap: unoptimised, every call's future keeps its own copy of
    // this buffer in the test's frame, and .ci/run gives the PostgreSQL
    // pass a 1 MB stack.
    let mut buf = vec![0u8; 16 * 1024];
    let (head, body_start) = loop {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the headers");
        raw.extend_from_slice(&buf[..n]);
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break (String::from_utf8_lossy(&raw[..at]).into_owned(), at + 4);
        }
    };
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {head}"));
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(len) => {
            while raw.len() < body_start + len {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed before the body was whole");
                raw.extend_from_slice(&buf[..n]);
            }
        }
        None => {
            s.read_to_end(&mut raw).await.unwrap();
        }
    }
    let rest = String::from_utf8_lossy(&raw[body_start..]).into_owned();
    let rest = if lower.contains("transfer-encoding: chunked") {
        unchunk(&rest)
    } else {
        rest
    };
    (status, serde_json::from_str(&rest).unwrap_or(Value::Null))
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A chromedriver process and one browser session in it; both end on drop.
struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: common::TempDir,
}

impl Browser {
    /// None (the test skipped, or under `CI` failed) without Debian's
    /// chromium and chromium-driver.
    async fn start() -> Option<Self> {
        for exe in [CHROMIUM, CHROMEDRIVER] {
            if !std::path::Path::new(exe).exists() {
                common::process::skipped(&format!("{exe} (Debian's chromium and chromium-driver)"));
                return None;
            }
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = format!("127.0.0.1:{port}");
        for _ in 0..100 {
            if TcpStream::connect(&addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // From here the driver (and any browser on this profile) is ended
        // on every path, a failed session start included: `Drop` does it.
        let mut browser = Self {
            driver,
            addr,
            session: String::new(),
            _profile: common::TempDir::new("chromium"),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", browser._profile.0.display()),
                ],
            },
        }}});
        let (status, v) = http(&browser.addr, "POST", "/session", Some(&caps)).await;
        assert_eq!(status, 200, "new WebDriver session: {v}");
        browser.session = v["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Some(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let (status, v) = http(&self.addr, method, &path, body.as_ref()).await;
        assert_eq!(status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// Runs `script` in the page (a function body; `arguments` as given).
    async fn js(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    async fn text(&self, id: &str) -> String {
        self.js(
            "const e = document.getElementById(arguments[0]); return e ? e.textContent : null;",
            json!([id]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Polls until `check` of the element's text holds (5 s at most).
    async fn wait_text(&self, id: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..100 {
            last = self.text(id).await;
            if check(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("#{id} never showed {what}; last: {last:?}");
    }

    /// The WebDriver id of the element a CSS selector finds.
    async fn find(&self, css: &str) -> String {
        let found = self
            .call(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    /// Clicks the element a CSS selector finds, as a user would.
    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})))
            .await;
    }

    /// Types into the element a CSS selector finds.
    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn accept_confirm(&self) {
        for _ in 0..100 {
            let path = format!("/session/{}/alert/accept", self.session);
            let (status, _) = http(&self.addr, "POST", &path, Some(&json!({}))).await;
            if status == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no confirmation dialog came up");
    }

    async fn screenshot(&self, to: &std::path::Path) {
        use base64ct::Encoding;
        let png = self.call("GET", "/screenshot", None).await;
        let bytes = base64ct::Base64::decode_vec(png.as_str().unwrap_or_default()).unwrap();
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
}

impl Drop for Browser {
    /// Ends the browser, then its driver: killing chromedriver alone leaves
    /// Chromium and its helpers running. Deleting the WebDriver session
    /// quits Chromium; anything still running on this test's private
    /// profile (a crash mid-test, a panic before the session) is ended too.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if self.session.is_empty() {
            // No session was made: nothing to delete.
        } else if let Ok(mut t) = std::net::TcpStream::connect(&self.addr) {
            let _ = t.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.session, self.addr
            );
            if t.write_all(request.as_bytes()).is_ok() {
                let mut reply = Vec::new();
                let _ = t.read_to_end(&mut reply);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = Command::new("pkill")
            .arg("-f")
            // The pattern starts with dashes: not an option of pkill's.
            .arg("--")
            .arg(format!("--user-data-dir={}", self._profile.0.display()))
            .status();
    }
}

/// Where the screenshot goes: `target/test-artifacts/`.
fn artifact(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("test-artifacts").join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_api_numbers_finds_and_destroys() {
    let s = TestServer::start_with(Config {
        storage: Storage::Memory,
        plugins_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/docs/plugins").into(),
        ..Config::default()
    })
    .await;
    let mut c = s.client().await;
    // Function calls to show: a plugin, one refused, and a Redis script.
    c.call(&["SESSION.CREATE", "s-cart"]).await.unwrap();
    for item in ["sku-1", "sku-2", "sku-3"] {
        let _ = c
            .call(&["SESSION.PLUGIN", "s-cart", "cart_add", item, "2"])
            .await;
    }
    c.call(&["EVAL", "return 1", "0"]).await.unwrap();
    for (id, user) in [("s-alice-1", "42"), ("s-alice-2", "42"), ("s-bob", "7")] {
        c.call(&["SESSION.CREATE", id, "DATA", "cart|a:0:{}"])
            .await
            .unwrap();
        c.call(&["SESSION.SET", id, "user_id", user]).await.unwrap();
    }
    // Some contention to show: a lock held while another client queues.
    c.call(&["SESSION.LOCK", "s-bob", "LEASE", "300"])
        .await
        .unwrap();
    let mut waiter = s.client().await;
    waiter
        .call(&["SESSION.LOCK", "s-bob", "WAIT", "2000"])
        .await
        .unwrap();

    let http_addr = s.http.to_string();
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser
        .goto(&format!("http://{http_addr}/?interval=250"))
        .await;

    // The counts shown are the API's.
    let (_, stats) = http(&http_addr, "GET", "/api/v1/stats", None).await;
    let api_sessions = stats["tenants"][0]["sessions"].as_u64().unwrap();
    assert_eq!(api_sessions, 4);
    browser
        .wait_text("sessions", "the API's session count", |t| {
            t == api_sessions.to_string()
        })
        .await;
    // The storage panel says where the sessions are: on the PostgreSQL
    // pass, the database, this node and the pool.
    if stats["cluster"].is_object() {
        let node = stats["cluster"]["node"].as_str().unwrap().to_string();
        browser
            .wait_text("persistence", "the cluster's storage", |t| {
                t.contains(&format!("postgres, node {node}"))
                    && t.contains("in touch")
                    && t.contains("db connections")
            })
            .await;
    } else {
        browser
            .wait_text("persistence", "the storage", |t| t.contains("memory only"))
            .await;
    }
    // The functions' figures are the API's: cart_add called three times,
    // once refused (the cart was full), and the EVAL.
    let fns = &stats["server"]["functions"];
    let cart = fns
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "cart_add")
        .unwrap_or_else(|| panic!("cart_add in {fns}"));
    assert_eq!((&cart["calls"], &cart["errors"]), (&json!(3), &json!(1)));
    browser
        .wait_text("functions", "the function figures", |t| {
            t.contains("cart_add") && t.contains("(eval)")
        })
        .await;
    let waits = stats["tenants"][0]["lock_waits"].as_u64().unwrap();
    assert_eq!(waits, 1);
    browser
        .wait_text("contended", "the contended session", |t| {
            t.contains("s-bob") && t.contains('1')
        })
        .await;
    browser
        .wait_text("listed", "every session listed", |t| t == "4 listed")
        .await;

    // Search: the sessions of user 42.
    browser.type_into("#var", "user_id").await;
    browser.type_into("#value", "42").await;
    browser.click("#search").await;
    browser
        .wait_text("listed", "user 42's two sessions", |t| t == "2 listed")
        .await;
    let (_, found) = http(&http_addr, "GET", "/api/v1/find?var=user_id&value=42", None).await;
    let mut ids: Vec<String> = found["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let shown = browser.text("list").await;
    for id in &ids {
        assert!(shown.contains(id.as_str()), "{id} not shown in {shown}");
    }
    assert!(!shown.contains("s-bob"));

    // Destroy one from the page: it is gone from the page and the server.
    browser
        .click("#list tr[data-id='s-alice-1'] button.destroy")
        .await;
    browser.accept_confirm().await;
    browser
        .wait_text("listed", "one session fewer", |t| t == "1 listed")
        .await;
    let (status, _) = http(&http_addr, "GET", "/api/v1/sessions/s-alice-1", None).await;
    assert_eq!(status, 404, "destroyed on the server");
    assert_eq!(
        c.call(&["SESSION.EXISTS", "s-alice-1"]).await.unwrap(),
        sessiond_client::RespValue::Int(0)
    );
    browser
        .wait_text("sessions", "the new count", |t| t == "3")
        .await;

    let shot = artifact("dashboard.png");
    browser.screenshot(&shot).await;
    let size = std::fs::metadata(&shot).unwrap().len();
    assert!(size > 10_000, "a real screenshot, {size} bytes");
    println!("dashboard screenshot: {}", shot.display());
    drop(browser);
    s.stop().await;
}
